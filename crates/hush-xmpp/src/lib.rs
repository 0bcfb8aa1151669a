//! # hush-xmpp: Hush on the wire
//!
//! The async (tokio) XMPP side: log in (STARTTLS, or plaintext to loopback only), publish and
//! fetch OMEMO device lists and bundles over PEP with the `open` access model, and send and
//! receive `<encrypted/>` messages. All cryptography happens in `hush-proto`; this crate only
//! moves its elements.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod bookmarks;
mod client;
mod disco;
mod error;
mod incoming;
pub mod limits;
mod login;
mod muc;
mod pep;
pub use hush_engine::strangers;
pub use hush_engine::{
    AtmReport, DeviceState, FetchFailed, KeyConcern, Obstacle, Refusal, SasArrival, Unconfirmed,
    UserDecision, Warning,
};
mod queue;
mod resolve;
mod roster;
pub mod transfer;
mod upload;

pub use account::{
    resource, Comparison, Delivery, FileSent, Hush, SendOptions, SendReport, TrustDecided,
    DEFAULT_INACTIVE_AFTER, ROLLBACK_WARNING,
};
pub use bookmarks::Bookmark;
pub use client::{ArchivePage, ConnectOptions, Entered, LinkStats, XmppClient, MAX_SENT_STANZA};
pub use error::{
    condition_name, login_condition, ArchiveFault, DefinedCondition, Disconnect, LoginCondition,
    Request, Result, XmppError,
};
pub use incoming::{Incoming, Payload};
pub use roster::{Contact, Subscription};
pub use tokio_xmpp::parsers::jid::BareJid;
pub use transfer::{Downloaded, Http, NoProgress, Progress, TransferError, Uploaded};
pub use upload::{Slot, UploadService};

/// Entry points for the fuzz targets in `fuzz/`, built only with the `fuzzing` feature: not
/// part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::{BareJid, Incoming};
    use hush_proto::Element;

    /// How the client reads a `<message/>` stanza: parsed by xmpp-parsers as tokio-xmpp
    /// does, then read as a device-list notification and classified (see
    /// `incoming::classify`).
    pub fn classify(m: &Element, own: &BareJid, mam_query: Option<&str>) -> Option<Incoming> {
        let m = tokio_xmpp::parsers::message::Message::try_from(m.clone()).ok()?;
        let _ = crate::disco::device_list_update(&m);
        crate::incoming::classify(m, own, mam_query)
    }
}
