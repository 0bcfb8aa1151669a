//! A new key exchange from a peer whose current state with us is already answered: the peer
//! starting over (its new state must become ours), or a late copy of a key exchange it wrote
//! during simultaneous initiation and dropped since (moving to it would lose what we send).
//! OMEMO:2 tells them apart by the SCE stamp inside the encryption; these tests seal real
//! envelopes with chosen stamps.
//!
//! "python-like" below is a peer that keeps one session per device and drops its own unanswered
//! state when the other side's key exchange arrives, as python-omemo's `SessionManager` does
//! (`interop_python.rs` drives the real one).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use common::Party;
use hush_proto::{sce, Initiation, ProtoError, Session, Suite};

const A: &str = "alice@example.org";
const B: &str = "bob@example.net";
const SUITE: Suite = Suite::Omemo2;
/// A point in time; stamps below are counted from it.
const T0: u64 = 1_795_435_200;

/// `from` writes `text` to `to` (device `device`) in an SCE envelope stamped `at`.
fn write(from: &mut Party, to: &str, device: u32, text: &str, at: u64) -> String {
    let envelope = sce::seal(&[sce::body(text)], &from.jid, to, Some(at), &mut from.rng).unwrap();
    from.send(SUITE, &[(to, device)], Some(&envelope))
}

/// The body of an envelope `reader` opens from `sender`.
fn read(reader: &mut Party, sender: &str, xml: &str) -> Result<String, ProtoError> {
    let opened = reader.receive(sender, xml)?;
    if opened.payload.is_none() {
        return Ok(String::new());
    }
    let env = opened.envelope(sce::Expect {
        from: sender,
        to: &reader.jid,
        require_to: true,
    })?;
    Ok(env.content.iter().map(|c| c.text()).collect())
}

/// An empty message from `from` to `to` (a key-exchange answer).
fn answer(from: &mut Party, to: &str, device: u32) -> String {
    from.send(SUITE, &[(to, device)], None)
}

fn carries_kex(xml: &str) -> bool {
    let el = hush_proto::EncryptedElement::from_element(&xml.parse().unwrap()).unwrap();
    el.keys.iter().any(|k| k.kex)
}

/// Bob's session with Alice, through the store's bytes (the stamps must survive them).
fn stored(bob: &mut Party) -> &Session {
    let key = (A.to_owned(), 11);
    let bytes = bob.sessions[&key].to_bytes();
    bob.sessions
        .insert(key.clone(), Session::from_bytes(&bytes).unwrap());
    &bob.sessions[&key]
}

/// Both write first; python-like Alice reads Bob's key exchange, drops her own state for it
/// and writes on Bob's (stamped `alice_later`); Bob reads that first, and Alice's first key
/// exchange (stamped `alice_first`) last. Bob must stay on his own state, which is the only one
/// Alice holds: she reads what he writes next.
fn late_key_exchange(alice_first: u64, alice_later: u64) {
    let mut alice = Party::new(A, 11, 1);
    let mut bob = Party::new(B, 22, 2);
    alice.connect(SUITE, &[&bob]);
    bob.connect(SUITE, &[&alice]);
    let first = write(&mut alice, B, 22, "alice writes first", T0 + alice_first);
    let bobs = write(&mut bob, A, 11, "so does bob", T0);
    alice.sessions.clear();
    assert_eq!(read(&mut alice, B, &bobs).unwrap(), "so does bob");
    let empty = answer(&mut alice, B, 22);
    let later = write(&mut alice, B, 22, "on your session now", T0 + alice_later);
    assert!(!carries_kex(&later));
    assert_eq!(read(&mut bob, A, &empty).unwrap(), "");
    assert_eq!(read(&mut bob, A, &later).unwrap(), "on your session now");
    assert!(stored(&mut bob).is_confirmed());
    assert_eq!(read(&mut bob, A, &first).unwrap(), "alice writes first");
    let session = stored(&mut bob);
    assert_eq!(session.initiation(), Initiation::Active, "{session:?}");
    assert_eq!(session.previous_states(), 1, "Alice's first state is kept");
    // Bob answers the key exchange and writes; Alice reads both on the one state she has.
    let empty = answer(&mut bob, A, 11);
    assert_eq!(read(&mut alice, B, &empty).unwrap(), "");
    let reply = write(&mut bob, A, 11, "still on mine", T0 + 5);
    assert_eq!(read(&mut alice, B, &reply).unwrap(), "still on mine");
    let back = write(&mut alice, B, 22, "and mine", T0 + 6);
    assert_eq!(read(&mut bob, A, &back).unwrap(), "and mine");
}

#[test]
fn a_key_exchange_stamped_before_the_peer_wrote_on_our_state_is_late() {
    late_key_exchange(0, 1);
}

/// Whole-second stamps: the race of simultaneous initiation fits in one second. Against a state
/// we started, an equal stamp is late.
#[test]
fn a_key_exchange_stamped_in_the_same_second_against_our_own_state_is_late() {
    late_key_exchange(0, 0);
}

/// Alice and Bob talk on a state `starter` started, stamped `T0`, and Alice writes once more
/// on it stamped `T0 + alice_until`; then Alice starts over from Bob's bundle and writes,
/// stamped `T0 + restart`. Returns both, Bob having read Alice's new key exchange.
fn talk_then_alice_restarts(starter: &str, alice_until: u64, restart: u64) -> (Party, Party) {
    let mut alice = Party::new(A, 11, 3);
    let mut bob = Party::new(B, 22, 4);
    if starter == A {
        alice.connect(SUITE, &[&bob]);
        let hello = write(&mut alice, B, 22, "hello", T0);
        assert_eq!(read(&mut bob, A, &hello).unwrap(), "hello");
        let reply = write(&mut bob, A, 11, "hi", T0);
        assert_eq!(read(&mut alice, B, &reply).unwrap(), "hi");
    } else {
        bob.connect(SUITE, &[&alice]);
        let hello = write(&mut bob, A, 11, "hello", T0);
        assert_eq!(read(&mut alice, B, &hello).unwrap(), "hello");
        let reply = write(&mut alice, B, 22, "hi", T0);
        assert_eq!(read(&mut bob, A, &reply).unwrap(), "hi");
    }
    let more = write(&mut alice, B, 22, "more", T0 + alice_until);
    assert_eq!(read(&mut bob, A, &more).unwrap(), "more");
    // `hush session reset`, or a restored backup: Alice's state is gone.
    alice.sessions.clear();
    alice.connect(SUITE, &[&bob]);
    let fresh = write(&mut alice, B, 22, "starting over", T0 + restart);
    assert!(carries_kex(&fresh));
    assert_eq!(read(&mut bob, A, &fresh).unwrap(), "starting over");
    (alice, bob)
}

/// Bob writes on whatever he sends with now; Alice, who holds only her new state, must read it.
fn bob_reaches_alice(alice: &mut Party, bob: &mut Party, at: u64) {
    let reply = write(bob, A, 11, "welcome back", T0 + at);
    assert_eq!(read(alice, B, &reply).unwrap(), "welcome back");
    assert_eq!(stored(bob).initiation(), Initiation::Passive);
    assert!(!carries_kex(&write(alice, B, 22, "settled", T0 + at)));
}

#[test]
fn a_restart_stamped_after_the_peers_messages_becomes_current() {
    for starter in [A, B] {
        let (mut alice, mut bob) = talk_then_alice_restarts(starter, 0, 1);
        bob_reaches_alice(&mut alice, &mut bob, 2);
    }
}

/// The peer's clock was set back between its last message on the old state and its restart:
/// the restart is stamped before that last message, but after its first one, so it is still a
/// restart. (Comparing with the latest stamp would take it for late.)
#[test]
fn a_restart_after_the_peers_clock_was_set_back_is_still_a_restart() {
    for starter in [A, B] {
        let (mut alice, mut bob) = talk_then_alice_restarts(starter, 100, 50);
        bob_reaches_alice(&mut alice, &mut bob, 51);
    }
}

/// A restart within the second of the peer's first message, on a state the peer started: the
/// peer had no reason to hold two key exchanges of its own but starting over.
#[test]
fn a_restart_in_the_same_second_against_the_peers_own_state_becomes_current() {
    let (mut alice, mut bob) = talk_then_alice_restarts(A, 0, 0);
    bob_reaches_alice(&mut alice, &mut bob, 0);
}

/// A restart within the second of the peer's first message on a state we started looks exactly
/// like a late key exchange, and is kept as an earlier state. The peer still sends its key
/// exchange (nobody answered it on its state); its next message stamped later moves us there.
#[test]
fn a_restart_in_the_same_second_against_our_own_state_converges_on_the_next_message() {
    let (mut alice, mut bob) = talk_then_alice_restarts(B, 0, 0);
    assert_eq!(stored(&mut bob).initiation(), Initiation::Active);
    let again = write(&mut alice, B, 22, "anyone there?", T0 + 1);
    assert!(carries_kex(&again), "Alice's new state is still unanswered");
    assert_eq!(read(&mut bob, A, &again).unwrap(), "anyone there?");
    bob_reaches_alice(&mut alice, &mut bob, 2);
}

/// Without stamps (legacy OMEMO, or payloads that are not SCE envelopes) a key exchange after
/// the answered state is a restart, whatever its order: the rule cannot tell, and a real
/// restart must not lose what we send.
#[test]
fn without_stamps_a_new_key_exchange_is_a_restart() {
    for suite in Suite::ALL {
        let mut alice = Party::new(A, 11, 5);
        let mut bob = Party::new(B, 22, 6);
        bob.connect(suite, &[&alice]);
        let hello = bob.send(suite, &[(A, 11)], Some(b"hello"));
        let _ = alice.receive(B, &hello).unwrap();
        let reply = alice.send(suite, &[(B, 22)], Some(b"hi"));
        let _ = bob.receive(A, &reply).unwrap();
        alice.sessions.clear();
        alice.connect(suite, &[&bob]);
        let fresh = alice.send(suite, &[(B, 22)], Some(b"starting over"));
        assert_eq!(bob.receive_text(A, &fresh).unwrap(), b"starting over");
        let back = bob.send(suite, &[(A, 11)], Some(b"welcome back"));
        assert_eq!(alice.receive_text(B, &back).unwrap(), b"welcome back");
    }
}
