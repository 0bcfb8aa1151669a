//! Why a message in history has no text: a typed value, stored as such.
//!
//! The layers below the user interface record *what happened* (a message did not decrypt, a
//! stranger went over its limit, the store was rolled back); the interface words it and adds
//! what the user can do, with its own command lines. So history holds a [`Failure`], never a
//! sentence written for one particular front end.
//!
//! In SQLite a failure is one text column: a record separator, the kind, then its fields
//! separated by unit separators ([`Failure::encode`]). Rows written before failures were typed
//! hold free text, read back as [`Failure::Recorded`].

use core::fmt;

/// Why a message in history has no text (see the module docs). The sender, its device and the
/// conversation are in the history entry itself, so they are not repeated here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The message did not decrypt.
    Undecryptable {
        /// The protocol error, as the protocol core describes it.
        detail: String,
    },
    /// The message holds no key for this device: the sending client left it out (it does not
    /// know this device yet, counts it inactive, or does not trust it). Nothing this side
    /// does to its sessions can help; the sender's client must include the device.
    NotForThisDevice,
    /// A message we sent came back from the server as undeliverable; its text stays.
    Undelivered {
        /// The server's error condition.
        condition: String,
    },
    /// The sender's session was built on keys this device no longer keeps (it was away longer
    /// than they are kept); a new session was offered to the sending device, so what it
    /// writes from then on reads here.
    RetiredKeys {
        /// The protocol error, as the protocol core describes it.
        detail: String,
    },
    /// A key exchange from a device we hold a session with, under another identity key: not
    /// accepted (XEP-0384 leaves replacing a session to the user); the old session stays.
    IdentityChanged {
        /// The fingerprint of the identity key the key exchange carried.
        fingerprint: String,
    },
    /// A key exchange under an identity key the claimed sender's account does not publish for
    /// that device: someone else made it, or changed it on the way. Nothing of it was read.
    ForgedKeyExchange {
        /// The fingerprint of the key the key exchange carried.
        claimed: String,
        /// The fingerprint of the key the sender's account publishes for that device.
        published: String,
    },
    /// A sender we never wrote to reached the hourly limit for strangers: what else it sends
    /// this hour is ignored.
    StrangerLimit {
        /// New sessions or failures each stranger may cost per hour.
        per_sender: u32,
        /// New sessions or failures all strangers together may cost per hour.
        all: u32,
    },
    /// So many strangers reached their limit this hour that they are no longer named one by
    /// one: this sender and others are ignored, with one such notice an hour.
    StrangersUnnamed,
    /// Key exchanges from devices the sender does not list reached their hourly limit.
    UnlistedDevices {
        /// How many are taken per hour.
        per_sender: u32,
    },
    /// Key exchanges in the sender's name, under keys the sender does not publish, reached
    /// their hourly limit: someone is sending them in the sender's name.
    UnconfirmedKeyExchanges {
        /// How many are shown per hour.
        per_sender: u32,
    },
    /// A message this device sent, found on the server but not in the store, which was
    /// rolled back: its text is gone.
    LostSent {
        /// Whom it was sent to.
        to: String,
    },
    /// The store was found rolled back behind what this device already did.
    RolledBack {
        /// What showed it.
        evidence: String,
    },
    /// Free text, as versions before typed failures stored it.
    Recorded(String),
}

/// Starts an encoded failure; never the first character of text stored before.
const RECORD: char = '\u{1e}';
/// Separates the fields of an encoded failure.
const UNIT: char = '\u{1f}';

impl Failure {
    /// The stable name of the kind, as stored and as `--json` output shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Undecryptable { .. } => "undecryptable",
            Self::RetiredKeys { .. } => "retired-keys",
            Self::NotForThisDevice => "not-for-this-device",
            Self::Undelivered { .. } => "undelivered",
            Self::IdentityChanged { .. } => "identity-changed",
            Self::ForgedKeyExchange { .. } => "forged-key-exchange",
            Self::StrangerLimit { .. } => "stranger-limit",
            Self::StrangersUnnamed => "strangers-unnamed",
            Self::UnlistedDevices { .. } => "unlisted-devices",
            Self::UnconfirmedKeyExchanges { .. } => "unconfirmed-key-exchanges",
            Self::LostSent { .. } => "lost-sent",
            Self::RolledBack { .. } => "rolled-back",
            Self::Recorded(_) => "recorded",
        }
    }

    /// The form the SQLite store keeps (see the module docs). A free-text field comes last,
    /// so whatever it holds cannot shift the fields before it.
    pub fn encode(&self) -> String {
        let fields: Vec<String> = match self {
            Self::Recorded(text) => return text.clone(),
            Self::Undecryptable { detail } | Self::RetiredKeys { detail } => vec![detail.clone()],
            Self::IdentityChanged { fingerprint } => vec![fingerprint.clone()],
            Self::Undelivered { condition } => vec![condition.clone()],
            Self::ForgedKeyExchange { claimed, published } => {
                vec![claimed.clone(), published.clone()]
            }
            Self::StrangerLimit { per_sender, all } => {
                vec![per_sender.to_string(), all.to_string()]
            }
            Self::UnlistedDevices { per_sender } | Self::UnconfirmedKeyExchanges { per_sender } => {
                vec![per_sender.to_string()]
            }
            Self::StrangersUnnamed | Self::NotForThisDevice => Vec::new(),
            Self::LostSent { to } => vec![to.clone()],
            Self::RolledBack { evidence } => vec![evidence.clone()],
        };
        let mut out = String::new();
        out.push(RECORD);
        out.push_str(self.kind());
        for f in fields {
            out.push(UNIT);
            out.push_str(&f);
        }
        out
    }

    /// Reads back what [`encode`](Self::encode) wrote. Text that is not an encoded failure
    /// (stored before failures were typed, or damaged) comes back as [`Failure::Recorded`]:
    /// nothing stored is ever lost to a parse.
    pub fn decode(stored: &str) -> Self {
        Self::decode_typed(stored).unwrap_or_else(|| Self::Recorded(stored.to_owned()))
    }

    fn decode_typed(stored: &str) -> Option<Self> {
        let rest = stored.strip_prefix(RECORD)?;
        let (kind, fields) = match rest.split_once(UNIT) {
            Some((kind, fields)) => (kind, Some(fields)),
            None => (rest, None),
        };
        let number = |s: &str| s.parse::<u32>().ok();
        Some(match (kind, fields) {
            ("undecryptable", Some(f)) => Self::Undecryptable {
                detail: f.to_owned(),
            },
            ("retired-keys", Some(f)) => Self::RetiredKeys {
                detail: f.to_owned(),
            },
            ("identity-changed", Some(f)) => Self::IdentityChanged {
                fingerprint: f.to_owned(),
            },
            ("forged-key-exchange", Some(f)) => {
                let (claimed, published) = f.split_once(UNIT)?;
                Self::ForgedKeyExchange {
                    claimed: claimed.to_owned(),
                    published: published.to_owned(),
                }
            }
            ("stranger-limit", Some(f)) => {
                let (per_sender, all) = f.split_once(UNIT)?;
                Self::StrangerLimit {
                    per_sender: number(per_sender)?,
                    all: number(all)?,
                }
            }
            ("strangers-unnamed", None) => Self::StrangersUnnamed,
            ("not-for-this-device", None) => Self::NotForThisDevice,
            ("undelivered", Some(f)) => Self::Undelivered {
                condition: f.to_owned(),
            },
            ("unlisted-devices", Some(f)) => Self::UnlistedDevices {
                per_sender: number(f)?,
            },
            ("unconfirmed-key-exchanges", Some(f)) => Self::UnconfirmedKeyExchanges {
                per_sender: number(f)?,
            },
            ("lost-sent", Some(f)) => Self::LostSent { to: f.to_owned() },
            ("rolled-back", Some(f)) => Self::RolledBack {
                evidence: f.to_owned(),
            },
            _ => return None,
        })
    }
}

/// What happened, in a sentence without advice: front ends add what the user can do (and
/// name the sender and device, which the history entry carries).
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Undecryptable { detail } => write!(f, "could not decrypt: {detail}"),
            Self::Undelivered { condition } => {
                write!(f, "NOT DELIVERED: the server returned it ({condition})")
            }
            Self::NotForThisDevice => f.write_str(
                "the message was not encrypted for this device: the sending client left it out",
            ),
            Self::RetiredKeys { detail } => write!(
                f,
                "could not decrypt: {detail}; the session was built on keys this device no \
                 longer keeps, and a new session was offered"
            ),
            Self::IdentityChanged { fingerprint } => write!(
                f,
                "a key exchange with a DIFFERENT identity key ({fingerprint}) was not accepted; \
                 the old session stays"
            ),
            Self::ForgedKeyExchange { claimed, published } => write!(
                f,
                "REFUSED a key exchange carrying identity key {claimed}, while the sender \
                 publishes {published} for that device; nothing of it was read"
            ),
            Self::StrangerLimit { per_sender, all } => write!(
                f,
                "ignored messages and key exchanges from a sender you never wrote to: the \
                 limit for strangers ({per_sender} new sessions or failures per sender, {all} \
                 in all, per hour) is reached"
            ),
            Self::StrangersUnnamed => f.write_str(
                "ignored messages and key exchanges from this sender and others over their \
                 hourly limit: too many senders reached it to name them one by one",
            ),
            Self::UnlistedDevices { per_sender } => write!(
                f,
                "ignored key exchanges from devices the sender does not list (at most \
                 {per_sender} per hour are taken)"
            ),
            Self::UnconfirmedKeyExchanges { per_sender } => write!(
                f,
                "ignored more key exchanges in the sender's name under keys the sender does \
                 not publish (at most {per_sender} per hour are shown)"
            ),
            Self::LostSent { to } => write!(
                f,
                "a message this device sent to {to} is on the server but not in this store, \
                 which was rolled back; its text is gone"
            ),
            Self::RolledBack { evidence } => write!(f, "the store was rolled back: {evidence}"),
            Self::Recorded(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Failure> {
        vec![
            Failure::Undecryptable {
                detail: "authentication failed: the message was tampered with".into(),
            },
            Failure::RetiredKeys {
                detail: "key exchange uses signed prekey 3".into(),
            },
            Failure::IdentityChanged {
                fingerprint: "05ab cd".into(),
            },
            Failure::ForgedKeyExchange {
                claimed: "aa".into(),
                published: "bb".into(),
            },
            Failure::StrangerLimit {
                per_sender: 5,
                all: 50,
            },
            Failure::StrangersUnnamed,
            Failure::NotForThisDevice,
            Failure::Undelivered {
                condition: "service-unavailable".into(),
            },
            Failure::UnlistedDevices { per_sender: 5 },
            Failure::UnconfirmedKeyExchanges { per_sender: 5 },
            Failure::LostSent {
                to: "bob@example.org".into(),
            },
            Failure::RolledBack {
                evidence: "one-time prekey 11".into(),
            },
            Failure::Recorded("could not decrypt (an old row)".into()),
        ]
    }

    #[test]
    fn every_kind_reads_back_as_written() {
        for f in every_kind() {
            assert_eq!(Failure::decode(&f.encode()), f, "{}", f.encode());
        }
    }

    #[test]
    fn separators_inside_free_text_do_not_shift_fields() {
        let f = Failure::Undecryptable {
            detail: format!("a{UNIT}b{RECORD}c"),
        };
        assert_eq!(Failure::decode(&f.encode()), f);
    }

    #[test]
    fn text_from_before_typed_failures_and_damaged_records_are_kept_as_text() {
        let old = "could not decrypt a message from device 7 of a@b: bad MAC";
        assert_eq!(Failure::decode(old), Failure::Recorded(old.into()));
        for damaged in [
            format!("{RECORD}stranger-limit{UNIT}5"),
            format!("{RECORD}stranger-limit{UNIT}five{UNIT}50"),
            format!("{RECORD}no-such-kind{UNIT}x"),
            format!("{RECORD}lost-sent"),
            format!("{RECORD}undecryptable"),
        ] {
            assert_eq!(
                Failure::decode(&damaged),
                Failure::Recorded(damaged.clone()),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn the_display_names_no_command_line() {
        for f in every_kind() {
            assert!(!f.to_string().contains("hush "), "{f}");
        }
    }
}
