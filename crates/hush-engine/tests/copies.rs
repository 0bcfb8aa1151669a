//! Copies and unauthenticated stanzas change nothing: a copy of a message already stored (a
//! live message read again from the archive, a replay) spends no budget and writes nothing, and
//! a "sent" copy of our own that does not authenticate makes nobody a contact.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_engine::strangers;
use hush_store::{MessageIds, Store};
use hush_test_support::simulation::{self, Envelope, Payload, Provenance, World, ALICE};

const NEWCOMER: &str = "colleague@example.org";
const MALLORY: &str = "mallory@example.net";

/// A message in clear from the newcomer, as archived and delivered under the same ids.
fn from_newcomer(n: u32) -> Envelope {
    Envelope::outside(
        NEWCOMER,
        Payload::Plain(format!("message {n}")),
        MessageIds {
            archive: Some(ALICE.into()),
            stanza_id: Some(format!("mam-{n}")),
            origin_id: Some(format!("origin-{n}")),
            digest: None,
        },
    )
}

#[test]
fn copies_of_a_strangers_messages_spend_nothing_of_its_budget() {
    let mut w = World::new(1);
    w.add_device(ALICE, 11);
    let per = strangers::PER_STRANGER;
    // Most of the budget, read live; then the catch-up reads every one of them again.
    for n in 0..per - 1 {
        assert!(w.receive_now(11, from_newcomer(n)).is_some());
    }
    for n in 0..per - 1 {
        assert!(
            w.receive_now(11, from_newcomer(n)).is_none(),
            "copy {n} shown"
        );
    }
    // The next real message still fits the budget.
    let last = w
        .receive_now(11, from_newcomer(per - 1))
        .expect("the last message is shown");
    assert_eq!(last.text, format!("message {}", per - 1));
    let history = w.devices[&11].store.history(NEWCOMER, 100).unwrap();
    assert_eq!(history.len() as u32, per, "{history:?}");
    assert!(history.iter().all(|m| m.failure.is_none()), "{history:?}");
}

#[test]
fn copies_of_a_strangers_failures_spend_nothing_of_its_budget() {
    let mut w = World::new(2);
    w.add_device(ALICE, 11);
    let garbage = |n: u32| {
        Envelope::outside(
            NEWCOMER,
            Payload::Unreadable,
            MessageIds {
                archive: Some(ALICE.into()),
                stanza_id: Some(format!("mam-bad-{n}")),
                ..Default::default()
            },
        )
    };
    let per = strangers::PER_STRANGER;
    for n in 0..per - 1 {
        assert!(w.receive_now(11, garbage(n)).is_some_and(|s| s.failed));
    }
    for n in 0..per - 1 {
        assert!(w.receive_now(11, garbage(n)).is_none(), "copy {n} shown");
    }
    let last = w
        .receive_now(11, from_newcomer(100))
        .expect("the message in clear is shown");
    assert_eq!(last.text, "message 100");
}

/// A "sent" copy of our own, addressed to `to`: what a forged sent-Carbon or archive result
/// looks like.
fn own_copy(to: &str, payload: Payload, origin: &str) -> Envelope {
    Envelope {
        sender: ALICE.into(),
        peer: to.into(),
        payload,
        ids: MessageIds {
            origin_id: Some(origin.into()),
            ..Default::default()
        },
        sent_at: None,
        provenance: Provenance::Outside,
    }
}

#[test]
fn an_unauthenticated_sent_copy_makes_nobody_a_contact() {
    let mut w = World::new(3);
    w.add_device(ALICE, 11);
    let shown = w.receive_now(11, own_copy(MALLORY, Payload::Unreadable, "g1"));
    assert!(shown.is_some_and(|s| s.failed));
    w.receive_now(11, own_copy(MALLORY, Payload::Plain("hi".into()), "p1"));
    assert!(
        !w.devices[&11].store.conversation(MALLORY).unwrap().contact,
        "a sent copy that did not authenticate made Mallory a contact"
    );
}

#[test]
fn an_authenticated_sent_copy_makes_its_addressee_a_contact() {
    let mut w = World::new(4);
    w.add_device(ALICE, 11);
    w.add_device(ALICE, 12);
    w.add_device(simulation::BOB, 21);
    w.send(12, simulation::BOB, "hello from the laptop")
        .unwrap();
    w.drain();
    assert!(
        w.devices[&11]
            .store
            .conversation(simulation::BOB)
            .unwrap()
            .contact
    );
}

#[test]
fn a_copy_read_when_the_budget_is_spent_brings_no_notice() {
    let mut w = World::new(6);
    w.add_device(ALICE, 11);
    let per = strangers::PER_STRANGER;
    for n in 0..per {
        assert!(w.receive_now(11, from_newcomer(n)).is_some());
    }
    // The catch-up reads the first one again: nothing was ignored, so nothing is said.
    assert!(w.receive_now(11, from_newcomer(0)).is_none());
    let history = w.devices[&11].store.history(NEWCOMER, 100).unwrap();
    assert!(history.iter().all(|m| m.failure.is_none()), "{history:?}");
    // The next new message is over the budget: that one is announced.
    let notice = w.receive_now(11, from_newcomer(per)).expect("a notice");
    assert!(notice.failed && notice.text.contains("limit"), "{notice:?}");
}
