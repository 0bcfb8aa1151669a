//! # hush-xmpp: Hush on the wire
//!
//! The async (tokio) XMPP side: log in (STARTTLS, or plaintext to loopback only), publish and
//! fetch OMEMO device lists and bundles over PEP with the `open` access model, and send and
//! receive `<encrypted/>` messages. All cryptography happens in `hush-proto`; this crate only
//! moves its elements.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod account;
mod client;
mod disco;
mod error;
mod incoming;
pub mod limits;
mod login;
mod pep;
pub use hush_engine::strangers;
mod queue;

pub use account::{
    Delivery, Hush, SendOptions, SendReport, DEFAULT_INACTIVE_AFTER, ROLLBACK_WARNING,
};
pub use client::{ArchivePage, ConnectOptions, LinkStats, XmppClient};
pub use error::{Result, XmppError};
pub use incoming::{Incoming, Payload};
pub use tokio_xmpp::parsers::jid::BareJid;
