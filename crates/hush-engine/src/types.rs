//! What the engine reports to the user: deliveries and send reports.

use hush_proto::policy::Properties;
use hush_proto::Suite;
use hush_store::{Failure, Trust};

/// What a send did.
#[derive(Debug, Clone)]
pub struct SendReport {
    /// The suite used (OMEMO:2 when the contact announces it, legacy otherwise); `None` when
    /// the user had it sent in clear.
    pub suite: Option<Suite>,
    /// Every suite the message went out in, best first: one for a contact; for a room, one per
    /// suite its readers announce (each reader got the best it announces).
    pub suites: Vec<Suite>,
    /// The devices the message was encrypted for: `(jid, device id)`.
    pub devices: Vec<(String, u32)>,
    /// Devices left out, with why (no bundle, distrusted, not verified, inactive).
    pub skipped: Vec<(String, u32, crate::Obstacle)>,
    /// What the message had.
    pub properties: Properties,
    /// Keys this send met for the first time — a contact's new device, or one the server
    /// added to a device list: `(jid, device id, fingerprint)`. Whether each got the message
    /// is in `devices` / `skipped`; the user should be told either way.
    pub new_keys: Vec<(String, u32, String)>,
    /// Room members with no OMEMO device at all: they cannot read the message (always empty
    /// for a direct message, which is refused instead).
    pub without_devices: Vec<String>,
    /// For a room: members its member list gained since this account last sent there (in
    /// this run), or since the list was last read. The room service decides who is a member,
    /// so it can add a reader: the user is told of every new one.
    pub members_added: Vec<String>,
    /// For a room: members its member list lost since then (they get no key any more).
    pub members_removed: Vec<String>,
    /// For a room: members who got no key at all, with why (see [`Unreached`]): they cannot
    /// read the message — a failure, unlike `without_devices`.
    pub members_unreached: Vec<(String, Unreached)>,
}

/// Why a room member got no key for a message although they are a member.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreached {
    /// Their device list could not be read (their server did not answer, or refused).
    ListUnreadable,
    /// Their device list names more devices than any account has (a flooded list).
    ListTooLong {
        /// How many it named.
        count: usize,
    },
    /// They announce only a weaker suite than one we already used with them: a server may be
    /// hiding their better list. They are left out rather than downgraded (in a room the
    /// others still get the message; to a contact the send is refused).
    Downgrade {
        /// The suite used with them before.
        used: Suite,
        /// The only suite they announce now.
        left: Suite,
    },
}

impl core::fmt::Display for Unreached {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ListUnreadable => f.write_str("their device list could not be read"),
            Self::ListTooLong { count } => write!(
                f,
                "their device list names {count} devices, more than any account has"
            ),
            Self::Downgrade { used, left } => write!(
                f,
                "they now announce only {left} although {used} was used with them (a server \
                 may be hiding their {used} devices): left out rather than downgraded"
            ),
        }
    }
}

/// How one message may be sent, besides the conversation's own settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendOptions {
    /// The user asked for this message to go in clear (`hush send --plaintext`).
    pub plaintext: bool,
    /// The user switched encryption off for every conversation.
    pub global_off: bool,
}

/// What a message says: its text, and for omemo:2 readers any further stanza children sealed
/// in the same envelope (a shared file's `<file-sharing/>`, XEP-0447). Legacy OMEMO encrypts
/// the body alone, so the body must make sense by itself (a file's `aesgcm://` link).
#[derive(Clone, Default)]
pub struct Content {
    /// The `<body/>` text.
    pub body: String,
    /// More elements for the SCE envelope; never sent in clear.
    pub extra: Vec<minidom::Element>,
}

impl std::fmt::Debug for Content {
    // The text and the elements may hold secrets (a shared file's key): only their sizes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("body_bytes", &self.body.len())
            .field("extra_elements", &self.extra.len())
            .finish()
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Self {
            body: text.to_owned(),
            extra: Vec::new(),
        }
    }
}

impl From<&String> for Content {
    fn from(text: &String) -> Self {
        Self::from(text.as_str())
    }
}

/// A received message after it was committed to the store.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's bare JID.
    pub from: String,
    /// The sender's device id (0 for a message in clear).
    pub device: u32,
    /// The suite it came in; `None` for a message in clear.
    pub suite: Option<Suite>,
    /// The text, when it decrypted (or came in clear) and had a body.
    pub body: Option<String>,
    /// Why it has no text, when it did not decrypt or was refused (also stored in history).
    pub failure: Option<Failure>,
    /// The trust state of the sending device's key.
    pub trust: Option<Trust>,
    /// What this message really had.
    pub properties: Properties,
    /// A warning to show prominently (a message in clear in an encrypted conversation).
    pub warning: Option<crate::Warning>,
    /// The encrypted file this message shares: from its `<file-sharing/>` element (omemo:2),
    /// or from a body that is only an `aesgcm://` link (what every client sends). Not
    /// downloaded: that is the shell's to do, or the user's.
    pub file: Option<hush_files::SharedFile>,
    /// The fingerprint of the sending device's identity key when this message is the first
    /// we saw of it — however it came (a message, an empty key exchange, a Carbon, the
    /// archive). A delivery with neither `body` nor `failure` carries only this news.
    pub new_key: Option<String>,
    /// What the trust message it carried did (XEP-0450): keys whose trust changed, statements
    /// held until the sending device is verified. A delivery with only this has no body.
    pub atm: Option<crate::AtmReport>,
    /// A message of a short-authentication-string comparison (see [`hush_proto::sas`]),
    /// with the device that sent it as its OMEMO session knows it. A delivery with only this
    /// has no body.
    pub sas: Option<SasArrival>,
    /// Where it was going, when, and under which id.
    pub arrival: Arrival,
}

/// A message of a comparison of short authentication strings, and its sender.
#[derive(Debug, Clone)]
pub struct SasArrival {
    /// The message.
    pub message: hush_proto::sas::SasMessage,
    /// The device that sent it: its account, id, and the identity key its session holds.
    pub from: hush_proto::sas::Party,
}

/// Where a delivered message was going and when it came: what a script needs to place it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrival {
    /// The recipient's bare JID: ours for what others sent us, the contact's for a copy of
    /// what our other devices sent.
    pub to: String,
    /// When it was sent as our server says (offline storage and the archive stamp what they
    /// kept), else when it arrived; never in the future (unix seconds). `None` for a notice
    /// that is no message.
    pub at: Option<u64>,
    /// True when our server held it before we read it (offline storage or the archive): `at`
    /// is then its stamp, not the time we read it.
    pub delayed: bool,
    /// Its id: the sender's origin id (XEP-0359), else the id our archive gave it.
    pub id: Option<String>,
    /// The room it was sent to (XEP-0045), for a room message; `to` is the room too.
    pub room: Option<String>,
    /// The sender's nickname in that room.
    pub nick: Option<String>,
}

impl Delivery {
    /// A notice that `room` changed ([`crate::RoomChange`]): from the room, no text, no
    /// failure, the change as its warning.
    pub fn room_notice(room: &str, change: crate::RoomChange) -> Self {
        Self {
            from: room.to_owned(),
            device: 0,
            suite: None,
            body: None,
            failure: None,
            trust: None,
            properties: Properties::PLAINTEXT,
            warning: Some(crate::Warning::RoomChanged(change)),
            file: None,
            new_key: None,
            atm: None,
            sas: None,
            arrival: Arrival {
                to: room.to_owned(),
                room: Some(room.to_owned()),
                ..Arrival::default()
            },
        }
    }

    /// True for a notice that a room changed ([`Self::room_notice`]).
    pub fn is_room_notice(&self) -> bool {
        matches!(self.warning, Some(crate::Warning::RoomChanged(_)))
    }

    /// True when it only announces a new key (an empty message from a device we did not
    /// know): no text, no failure, no trust message.
    pub fn is_key_notice(&self) -> bool {
        self.body.is_none()
            && self.failure.is_none()
            && self.new_key.is_some()
            && self.atm.is_none()
            && self.sas.is_none()
    }

    /// True when it is a step of a comparison of short authentication strings: see
    /// [`Self::sas`].
    pub fn is_sas_notice(&self) -> bool {
        self.body.is_none() && self.failure.is_none() && self.sas.is_some()
    }

    /// True when it is a trust message (XEP-0450): what it did is in [`Self::atm`].
    pub fn is_trust_notice(&self) -> bool {
        self.body.is_none() && self.failure.is_none() && self.atm.is_some()
    }
}
