//! What both sides of an XMPP stream need, for Hush's client (`hush-xmpp`) and its test server
//! (`hush-devserver`) alike, so neither depends on the other:
//!
//! * [`limits`]: stanza size and depth limits, checked on the raw bytes before any XML parser
//!   sees them.
//! * [`date`]: XEP-0082 dates and times.
//! * [`caps`]: XEP-0115 verification strings and their hash.
//!
//! No I/O.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod caps;
pub mod date;
pub mod limits;
