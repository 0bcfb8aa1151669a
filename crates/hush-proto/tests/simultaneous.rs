//! Simultaneous initiation: two devices each start a session from the other's bundle before
//! reading the other's key exchange. Both must read everything the other sent, and both must
//! settle on one session (no key exchange resent forever, ratchet steps in both directions).
//!
//! The parties behave as Hush's account layer does: every message carrying a key exchange is
//! answered at once with an empty message (XEP-0384), and whatever session `open` hands back
//! is stored.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use common::Party;
use hush_proto::{EncryptedElement, ProtoError, Suite};
use proptest::prelude::*;

const A: &str = "alice@example.org";
const B: &str = "bob@example.net";

/// A message in flight: its XML and the text it carries (`None`: an empty answer).
struct InFlight {
    xml: String,
    text: Option<Vec<u8>>,
}

struct World {
    suite: Suite,
    parties: [Party; 2],
    /// `wires[i]`: messages on their way to party `i`.
    wires: [Vec<InFlight>; 2],
    /// `read[i]`: the texts party `i` read, in the order it read them.
    read: [Vec<Vec<u8>>; 2],
    sent: [Vec<Vec<u8>>; 2],
    failures: Vec<String>,
}

fn jid(i: usize) -> &'static str {
    [A, B][i]
}

fn device(i: usize) -> u32 {
    [11, 22][i]
}

fn carries_kex(xml: &str) -> bool {
    let el = EncryptedElement::from_element(&xml.parse().unwrap()).unwrap();
    el.keys.iter().any(|k| k.kex)
}

impl World {
    /// Both parties start a session from the other's bundle, before any message.
    fn new(suite: Suite, seed: u64) -> Self {
        let mut a = Party::new(A, device(0), seed.wrapping_mul(2).wrapping_add(1));
        let mut b = Party::new(B, device(1), seed.wrapping_mul(2).wrapping_add(2));
        a.connect(suite, &[&b]);
        b.connect(suite, &[&a]);
        Self {
            suite,
            parties: [a, b],
            wires: [Vec::new(), Vec::new()],
            read: [Vec::new(), Vec::new()],
            sent: [Vec::new(), Vec::new()],
            failures: Vec::new(),
        }
    }

    fn send(&mut self, from: usize, text: Option<Vec<u8>>) {
        let to = 1 - from;
        let xml = self.parties[from].send(self.suite, &[(jid(to), device(to))], text.as_deref());
        if let Some(t) = &text {
            self.sent[from].push(t.clone());
        }
        self.wires[to].push(InFlight { xml, text });
    }

    /// Delivers message `pick` (modulo what is in flight) to party `to`; answers a key exchange.
    fn deliver(&mut self, to: usize, pick: usize) -> bool {
        if self.wires[to].is_empty() {
            return false;
        }
        let m = self.wires[to].remove(pick % self.wires[to].len());
        let from = 1 - to;
        match self.parties[to].receive(jid(from), &m.xml) {
            Ok(opened) => {
                let got = opened.payload.as_ref().map(|p| p.to_vec());
                assert_eq!(got, m.text, "party {to} read something else than was sent");
                if let Some(t) = got {
                    self.read[to].push(t);
                }
                if opened.was_key_exchange {
                    self.send(to, None);
                }
            }
            Err(e) => self.failures.push(format!(
                "party {to} could not read {:?}: {e}",
                m.text.map(|t| String::from_utf8_lossy(&t).into_owned())
            )),
        }
        true
    }

    /// Delivers everything in flight, answers included, in a fixed order.
    fn drain(&mut self) {
        for _ in 0..1000 {
            if !self.deliver(0, 0) && !self.deliver(1, 0) {
                return;
            }
        }
        panic!("empty answers kept bouncing: the parties never settled");
    }

    /// One message each way, each read before the next is sent.
    fn round_trip(&mut self, n: usize) {
        self.send(0, Some(format!("ping {n}").into_bytes()));
        self.drain();
        self.send(1, Some(format!("pong {n}").into_bytes()));
        self.drain();
    }

    fn check_everything_read_once(&self) {
        assert!(self.failures.is_empty(), "{:#?}", self.failures);
        for i in 0..2 {
            let mut sent = self.sent[1 - i].clone();
            let mut read = self.read[i].clone();
            sent.sort();
            read.sort();
            assert_eq!(
                read, sent,
                "party {i} did not read exactly what was sent to it"
            );
        }
    }

    /// Settled: both sessions confirmed, and a message each way goes without a key exchange.
    fn check_settled(&mut self) {
        for i in 0..2 {
            let s = &self.parties[i].sessions[&(jid(1 - i).to_owned(), device(1 - i))];
            assert!(
                s.is_confirmed(),
                "party {i} still sends its key exchange: {s:?}"
            );
        }
        for from in 0..2 {
            let to = 1 - from;
            let xml = self.parties[from].send(self.suite, &[(jid(to), device(to))], Some(b"check"));
            assert!(
                !carries_kex(&xml),
                "party {from} still sends a key exchange"
            );
            self.sent[from].push(b"check".to_vec());
            self.wires[to].push(InFlight {
                xml,
                text: Some(b"check".to_vec()),
            });
            self.drain();
        }
    }
}

/// The case the issue measured: both write first, three rounds each way — now every message is
/// read in both suites and the sessions settle.
#[test]
fn both_write_first_then_talk() {
    for suite in Suite::ALL {
        let mut w = World::new(suite, 7);
        w.send(0, Some(b"hi bob".to_vec()));
        w.send(1, Some(b"hi alice".to_vec()));
        for n in 0..3 {
            w.round_trip(n);
        }
        w.check_everything_read_once();
        w.check_settled();
        w.check_everything_read_once();
    }
}

/// Each side writes several messages before reading anything, and reads them before its own
/// answers arrive.
#[test]
fn both_write_bursts_first() {
    for suite in Suite::ALL {
        let mut w = World::new(suite, 8);
        for n in 0..4 {
            w.send(0, Some(format!("a{n}").into_bytes()));
            w.send(1, Some(format!("b{n}").into_bytes()));
        }
        // Alice reads all of Bob's first, answering each key exchange, before Bob reads any.
        while w.deliver(0, 0) {}
        for n in 4..7 {
            w.send(0, Some(format!("a{n}").into_bytes()));
        }
        w.drain();
        w.round_trip(0);
        w.check_everything_read_once();
        w.check_settled();
    }
}

/// A replayed key exchange from a state kept as an earlier one does not roll the session back
/// or read twice: the ratchet has used that message key.
#[test]
fn replayed_key_exchange_after_settling_changes_nothing() {
    for suite in Suite::ALL {
        let mut w = World::new(suite, 9);
        w.send(0, Some(b"first a".to_vec()));
        w.send(1, Some(b"first b".to_vec()));
        let replay = w.wires[0][0].xml.clone();
        w.drain();
        w.round_trip(0);
        let before = w.parties[0].sessions[&(B.to_owned(), 22)].to_bytes();
        let again = w.parties[0].receive(B, &replay);
        assert!(
            matches!(again, Err(ProtoError::MessageKeyGone { .. })),
            "{again:?}"
        );
        let after = w.parties[0].sessions[&(B.to_owned(), 22)].to_bytes();
        assert_eq!(*before, *after, "a replay must not change the session");
        w.check_settled();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any interleaving of sends and deliveries (in any order) after both sides initiated:
    /// every message is read exactly once, and a few round trips afterwards settle the session.
    #[test]
    fn any_interleaving_reads_everything_and_settles(
        seed in any::<u64>(),
        legacy in any::<bool>(),
        steps in prop::collection::vec((0u8..4, any::<usize>()), 1..60),
    ) {
        let suite = if legacy { Suite::Legacy } else { Suite::Omemo2 };
        let mut w = World::new(suite, seed);
        w.send(0, Some(b"opening a".to_vec()));
        w.send(1, Some(b"opening b".to_vec()));
        for (n, (action, pick)) in steps.into_iter().enumerate() {
            match action {
                0 => w.send(0, Some(format!("a{n}").into_bytes())),
                1 => w.send(1, Some(format!("b{n}").into_bytes())),
                2 => { w.deliver(0, pick); }
                _ => { w.deliver(1, pick); }
            }
        }
        w.drain();
        for n in 0..2 {
            w.round_trip(n);
        }
        w.check_everything_read_once();
        w.check_settled();
    }
}

/// A peer starts over (a new key exchange after the old session was confirmed); replaying the
/// old key exchange afterwards neither reads again nor rolls the session back to the old state.
#[test]
fn a_key_exchange_replayed_after_a_newer_one_never_rolls_back() {
    for suite in Suite::ALL {
        let mut alice = Party::new(A, 11, 41);
        let mut bob = Party::new(B, 22, 42);
        alice.connect(suite, &[&bob]);
        let old = alice.send(suite, &[(B, 22)], Some(b"old"));
        let _ = bob.receive(A, &old).unwrap();
        let answer = bob.send(suite, &[(A, 11)], None);
        let _ = alice.receive(B, &answer).unwrap();
        // Alice starts over from Bob's bundle.
        alice.sessions.clear();
        alice.connect(suite, &[&bob]);
        let new = alice.send(suite, &[(B, 22)], Some(b"new"));
        assert_eq!(bob.receive_text(A, &new).unwrap(), b"new");
        let before = bob.sessions[&(A.to_owned(), 11)].to_bytes();
        assert_eq!(
            bob.receive(A, &old).unwrap_err(),
            ProtoError::MessageKeyGone { counter: 0 }
        );
        assert_eq!(*bob.sessions[&(A.to_owned(), 11)].to_bytes(), *before);
        // Bob answers on the new session, and Alice reads it.
        let reply = bob.send(suite, &[(A, 11)], Some(b"on the new one"));
        assert_eq!(alice.receive_text(B, &reply).unwrap(), b"on the new one");
    }
}
