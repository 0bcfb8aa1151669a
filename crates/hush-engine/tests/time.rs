//! When history says a message was sent: the server's stamp on what our archive returns is
//! believed (never in the future); a `<delay/>` inside a message delivered live may have been
//! written by its sender, so it cannot move the message before anything the conversation
//! already holds.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_engine::ServerStamp;
use hush_store::{MessageIds, Store};
use hush_test_support::simulation::{Envelope, Payload, World, ALICE};

const FRIEND: &str = "friend@example.org";

fn message(n: u32, sent_at: Option<ServerStamp>) -> Envelope {
    let mut env = Envelope::outside(
        FRIEND,
        Payload::Plain(format!("message {n}")),
        MessageIds {
            origin_id: Some(format!("origin-{n}")),
            ..Default::default()
        },
    );
    env.sent_at = sent_at;
    env
}

/// The times history holds for the conversation, oldest first.
fn times(w: &World) -> Vec<u64> {
    let history = w.devices[&11].store.history(FRIEND, 100).unwrap();
    history.iter().map(|m| m.at).collect()
}

#[test]
fn a_delivered_stamp_cannot_backdate_a_message_before_the_conversation() {
    let mut w = World::new(1);
    w.add_device(ALICE, 11);
    let first = w.now;
    assert!(w.receive_now(11, message(1, None)).is_some());
    w.now += 3_600;
    // Offline storage's stamp within the gap is believed.
    let stored = first + 600;
    assert!(w
        .receive_now(11, message(2, Some(ServerStamp::Delivered(stored))))
        .is_some());
    // A stamp the sender wrote ("sent in 2001"), and one in the future.
    assert!(w
        .receive_now(11, message(3, Some(ServerStamp::Delivered(978_307_200))))
        .is_some());
    assert!(w
        .receive_now(11, message(4, Some(ServerStamp::Delivered(w.now + 86_400))))
        .is_some());
    assert_eq!(times(&w), [first, stored, stored, w.now]);
}

#[test]
fn the_archives_stamp_is_believed_but_never_in_the_future() {
    let mut w = World::new(2);
    w.add_device(ALICE, 11);
    let now = w.now;
    assert!(w.receive_now(11, message(1, None)).is_some());
    // A catch-up can return what was sent before messages already read.
    let earlier = now - 86_400;
    assert!(w
        .receive_now(11, message(2, Some(ServerStamp::Archive(earlier))))
        .is_some());
    assert!(w
        .receive_now(11, message(3, Some(ServerStamp::Archive(now + 60))))
        .is_some());
    assert_eq!(times(&w), [now, earlier, now]);
}
