//! What the user must be told prominently about a message that was read: typed values, worded
//! by front ends (which know the sender and device from the [`Delivery`](crate::Delivery)).

use core::fmt;

use crate::refusal::FetchFailed;

/// A warning that goes with a delivered message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Warning {
    /// It came in clear, in a conversation that was encrypted until now (a peer or a server
    /// downgrading it): the servers on the way could read or change it.
    Downgrade,
    /// The store was found rolled back (see [`crate::ROLLBACK_WARNING`]).
    RolledBack,
    /// A room changed under us (a notice, not a message): see [`RoomChange`].
    RoomChanged(RoomChange),
    /// About who wrote an encrypted message: its device could not be confirmed as the
    /// sender's, its key is not one the user trusts, or both.
    Sender {
        /// Why the key exchange could not be checked against the sender's published keys.
        unconfirmed: Option<Unconfirmed>,
        /// What the user decided (or did not) about the device's key.
        key: Option<KeyConcern>,
    },
}

/// Why a key exchange could not be checked against what its sender's account publishes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Unconfirmed {
    /// The bundle the server answered with belongs to another device (a confused server).
    OtherDevice(u32),
    /// The bundle has a signed prekey its identity key did not sign.
    BadSignature,
    /// The bundle could not be had.
    Unreadable(FetchFailed),
    /// The bundle was not fetched.
    NotFetched,
}

/// What the user decided (or did not) about the key of a device that wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyConcern {
    /// The user distrusted this key: it may not be the sender.
    Distrusted,
    /// A new device, not verified, although the user verified others of the sender.
    NewUnverified,
    /// Not verified, in a conversation that requires verified devices.
    NotVerified,
}

impl fmt::Display for Unconfirmed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OtherDevice(d) => write!(
                f,
                "the bundle fetched for it belongs to device {d} (a confused server)"
            ),
            Self::BadSignature => f.write_str(
                "the bundle it publishes has a signed prekey its identity key did not sign",
            ),
            Self::Unreadable(e) => write!(f, "its published keys could not be read: {e}"),
            Self::NotFetched => f.write_str("its published keys were not fetched"),
        }
    }
}

impl fmt::Display for KeyConcern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Distrusted => "its key is one you DISTRUSTED",
            Self::NewUnverified => {
                "it is a NEW device you have not verified, although you verified others of \
                 the sender"
            }
            Self::NotVerified => {
                "it is NOT VERIFIED, in a conversation that requires verified devices"
            }
        })
    }
}

/// What a room did that the user must hear of when it happens, not at the next send.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomChange {
    /// The room removed this account (XEP-0045 status code: 301 banned, 307 kicked, 321
    /// affiliation taken away, 322 the room became members-only, 332 the service shut down).
    Removed {
        /// The status code the room gave.
        code: u16,
    },
    /// The room is no longer private enough for encrypted messages: what the next send to it
    /// would be refused for.
    NoLongerPrivate(crate::RoomRefusal),
}

impl fmt::Display for RoomChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Removed { code } => {
                let why = match code {
                    301 => "you were banned",
                    307 => "you were kicked",
                    321 => "your membership was taken away",
                    322 => "it became members-only and you are not a member",
                    332 => "its service is shutting down",
                    0 => "it gave no reason; it may have been destroyed",
                    _ => "for a reason this version does not know",
                };
                write!(
                    f,
                    "the room removed you ({why}, status {code}): you no longer read or write there"
                )
            }
            Self::NoLongerPrivate(why) => write!(
                f,
                "the room changed: {why}. Nothing encrypted is sent there until it is private \
                 again"
            ),
        }
    }
}

/// A plain description, without the sender's name: front ends word it with the delivery's
/// sender and device.
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RoomChanged(change) => write!(f, "ROOM CHANGED: {change}"),
            Self::Downgrade => f.write_str(
                "UNENCRYPTED: this message came in clear, in a conversation that was encrypted \
                 until now; the servers on the way could read or change it",
            ),
            Self::RolledBack => f.write_str(crate::ROLLBACK_WARNING),
            Self::Sender { unconfirmed, key } => {
                if let Some(u) = unconfirmed {
                    write!(
                        f,
                        "UNCONFIRMED SENDER: the sending device could not be checked ({u})"
                    )?;
                }
                if let Some(k) = key {
                    let and = if unconfirmed.is_some() { "; and " } else { "" };
                    write!(f, "{and}{k}")?;
                }
                Ok(())
            }
        }
    }
}
