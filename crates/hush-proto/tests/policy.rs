//! The send policy as a state machine under random event sequences: the peer's devices appear,
//! vanish or change trust, servers fail (devices become unusable), switches flip, the user
//! lowers requirements, messages are sent. Whatever happens, no plaintext leaves without a
//! user action, and properties never go down without one.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_proto::policy::{
    decide, Authentication, Conversation, Decision, KeyTrust, LeftOut, Missing, Reader,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Event {
    /// The devices that could read the next message (peer's and our own others), as the
    /// server and the store present them now: any list, including none.
    Readers(Vec<Reader>),
    GlobalOff(bool),
    ConversationOff(bool),
    /// The user lowers (or raises) the authentication this conversation needs.
    Require(Authentication),
    Send {
        plaintext_requested: bool,
    },
}

fn trust() -> impl Strategy<Value = Option<KeyTrust>> {
    prop_oneof![
        Just(None),
        Just(Some(KeyTrust::Verified)),
        Just(Some(KeyTrust::Blind)),
        Just(Some(KeyTrust::Undecided)),
        Just(Some(KeyTrust::Distrusted)),
    ]
}

fn reader() -> impl Strategy<Value = Reader> {
    (1u32..6, trust(), any::<bool>(), any::<bool>()).prop_map(|(device, trust, usable, peer)| {
        Reader {
            jid: if peer { "bob@x" } else { "me@x" }.into(),
            device,
            trust,
            usable,
            peer,
        }
    })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => prop::collection::vec(reader(), 0..5).prop_map(Event::Readers),
        1 => any::<bool>().prop_map(Event::GlobalOff),
        1 => any::<bool>().prop_map(Event::ConversationOff),
        1 => prop_oneof![Just(Authentication::Weak), Just(Authentication::Strong)].prop_map(Event::Require),
        5 => Just(Event::Send { plaintext_requested: false }),
        1 => Just(Event::Send { plaintext_requested: true }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_plaintext_and_no_downgrade_without_the_user(events in prop::collection::vec(event(), 1..60)) {
        let mut conv = Conversation::default();
        let mut global_off = false;
        let mut readers: Vec<Reader> = Vec::new();
        // The best authentication reached, and whether the user lowered anything since.
        let mut reached: Option<Authentication> = None;
        let mut user_lowered = false;
        for e in events {
            match e {
                Event::Readers(mut r) => {
                    // One entry per device, as the store has them.
                    let mut seen = std::collections::HashSet::new();
                    r.retain(|x| seen.insert((x.jid.clone(), x.device)));
                    readers = r;
                }
                Event::GlobalOff(off) => {
                    global_off = off;
                    user_lowered |= off;
                }
                Event::ConversationOff(off) => {
                    conv.off = off;
                    user_lowered |= off;
                }
                Event::Require(a) => {
                    user_lowered |= a < conv.min_auth;
                    conv.min_auth = a;
                }
                Event::Send { plaintext_requested } => {
                    match decide(&conv, global_off, plaintext_requested, &readers) {
                        Decision::Plaintext { .. } => {
                            prop_assert!(plaintext_requested || conv.off || global_off,
                                "plaintext without a user action");
                        }
                        Decision::Refuse { missing } => match missing {
                            Missing::StrongAuthenticationInClear => prop_assert!(
                                (plaintext_requested || conv.off || global_off)
                                    && conv.min_auth == Authentication::Strong
                            ),
                            Missing::NoDevice => prop_assert!(!readers.iter().any(|r| r.peer)),
                            _ => prop_assert!(readers.iter().any(|r| r.peer)),
                        },
                        Decision::Encrypt { to, left_out, properties } => {
                            prop_assert!(!(plaintext_requested || conv.off || global_off));
                            prop_assert!(properties.confidentiality);
                            prop_assert!(properties.authentication >= conv.min_auth);
                            if let Some(best) = reached {
                                prop_assert!(user_lowered || properties.authentication >= best,
                                    "authentication went down from {best} to {} by itself", properties.authentication);
                            }
                            // Every reader is accounted for exactly once; none is distrusted or
                            // unusable; at least one belongs to the peer.
                            prop_assert_eq!(to.len() + left_out.len(), readers.len());
                            for (jid, device) in &to {
                                let r = readers.iter().find(|r| &r.jid == jid && r.device == *device).unwrap();
                                prop_assert!(r.usable);
                                prop_assert!(matches!(r.trust, Some(KeyTrust::Verified) | Some(KeyTrust::Blind)));
                                if conv.min_auth == Authentication::Strong {
                                    prop_assert_eq!(r.trust, Some(KeyTrust::Verified));
                                }
                            }
                            prop_assert!(to.iter().any(|(j, _)| j == "bob@x"));
                            for (_, _, why) in &left_out {
                                prop_assert!(*why != LeftOut::NotVerified || conv.min_auth == Authentication::Strong);
                            }
                            if properties.authentication == Authentication::Strong && conv.min_auth < Authentication::Strong {
                                // Raised by itself only when every possible reader is verified.
                                prop_assert!(readers.iter().all(|r| matches!(r.trust, Some(KeyTrust::Verified) | Some(KeyTrust::Distrusted))));
                            }
                            conv = conv.after_encrypted(&properties);
                            // A user action resets the baseline to what is reached after it.
                            reached = Some(match reached {
                                Some(b) if !user_lowered => b.max(properties.authentication),
                                _ => properties.authentication,
                            });
                            user_lowered = false;
                        }
                    }
                }
            }
        }
    }
}
