//! Why a message was not sent, and why a device was left out: typed values.
//!
//! The engine says *what* stood in the way (a device silent for 95 days, a bundle the server
//! would not give, a conversation that requires verified devices); front ends word it and add
//! what the user can do. The `Display` texts here are plain descriptions, without advice.

use core::fmt;
use std::sync::Arc;

use hush_proto::policy::{LeftOut, Missing};
use hush_proto::{ProtoError, Suite};

/// Why the shell could not fetch a bundle: its own error, kept as the source.
#[derive(Clone, Debug)]
pub struct FetchFailed(pub Arc<dyn std::error::Error + Send + Sync>);

impl FetchFailed {
    /// Wraps the shell's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Display for FetchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FetchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Why one device gets no key for a message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Obstacle {
    /// Not heard from for longer than the inactivity limit (a message from it brings it back).
    Inactive {
        /// Whole days since it was last heard from.
        days: u64,
    },
    /// Its bundle could not be had.
    NoBundle(FetchFailed),
    /// Its bundle was had but no session could be built on it (a bad signature, an invalid
    /// key).
    BadBundle(ProtoError),
    /// The bundle was not fetched (the shell had none for it).
    NotFetched,
    /// The send policy left it out.
    Policy(LeftOut),
}

impl Obstacle {
    /// Its name for scripts: `inactive`, `no-bundle`, `bad-bundle`, `not-fetched`, `policy`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Inactive { .. } => "inactive",
            Self::NoBundle(_) => "no-bundle",
            Self::BadBundle(_) => "bad-bundle",
            Self::NotFetched => "not-fetched",
            Self::Policy(_) => "policy",
        }
    }

    /// Whether the device was meant to get the message and could not be reached (its keys
    /// could not be had or used), as opposed to left out on purpose (inactive, by policy).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::NoBundle(_) | Self::BadBundle(_) | Self::NotFetched
        )
    }
}

impl fmt::Display for Obstacle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inactive { days } => write!(f, "inactive: not heard from for {days} days"),
            Self::NoBundle(e) => write!(f, "its keys could not be fetched: {e}"),
            Self::BadBundle(e) => write!(f, "its published keys are unusable: {e}"),
            Self::NotFetched => f.write_str("no bundle"),
            Self::Policy(why) => why.fmt(f),
        }
    }
}

/// How one of the addressee's devices stood when a send was refused.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DeviceState {
    /// Usable, its key verified.
    Verified,
    /// Usable, its key trusted without verification.
    NotVerified,
    /// Its key is distrusted.
    Distrusted,
    /// Usable, its key waits for the user's decision.
    Undecided,
    /// It could not be encrypted to.
    Unusable(Obstacle),
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Verified => f.write_str("verified"),
            Self::NotVerified => f.write_str("not verified"),
            Self::Distrusted => f.write_str("distrusted"),
            Self::Undecided => f.write_str("trust undecided"),
            Self::Unusable(why) => why.fmt(f),
        }
    }
}

/// Why nothing was sent (and nothing stored).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Refusal {
    /// The send policy found no way to send as the conversation requires.
    Policy {
        /// What the message could not have.
        missing: Missing,
        /// Each of the addressee's devices, and how it stood.
        devices: Vec<(u32, DeviceState)>,
    },
    /// The policy chose to send in clear although nobody asked (a guard: never expected).
    UnaskedPlaintext,
    /// The policy had no readers to decide over (a guard: never expected).
    NoDecision,
    /// The addressee's device list in a suite this conversation used is gone and only an
    /// older suite is left: a server may be downgrading the conversation.
    Downgrade {
        /// The suite the conversation used.
        used: Suite,
        /// The only suite left.
        left: Suite,
    },
    /// The room may not receive encrypted messages as it is.
    Room(crate::RoomRefusal),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Policy { missing, devices } => {
                write!(f, "missing {missing}")?;
                for (i, (device, state)) in devices.iter().enumerate() {
                    let sep = if i == 0 { " (" } else { "; " };
                    write!(f, "{sep}device {device}: {state}")?;
                }
                if !devices.is_empty() {
                    f.write_str(")")?;
                }
                Ok(())
            }
            Self::UnaskedPlaintext => {
                f.write_str("missing encryption (the policy chose plaintext nobody asked for)")
            }
            Self::NoDecision => {
                f.write_str("missing a decision (the policy had no readers to encrypt for)")
            }
            Self::Downgrade { used, left } => write!(
                f,
                "missing their {used} device list: it is gone although this conversation used \
                 {used}, and only {left} is left; a server may be downgrading it"
            ),
            Self::Room(why) => why.fmt(f),
        }
    }
}
