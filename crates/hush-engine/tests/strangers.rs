//! A flood of strangers: past the number of senders that get a notice by name, the others
//! still get one notice together, once an hour, so nobody is ignored without a word.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_store::{Failure, MessageIds, Store};
use hush_test_support::simulation::{Envelope, Payload, World, ALICE};

fn plain(from: &str, n: usize) -> Envelope {
    Envelope::outside(
        from,
        Payload::Plain(format!("message {n}")),
        MessageIds {
            origin_id: Some(format!("o-{n}")),
            ..Default::default()
        },
    )
}

#[test]
fn strangers_past_the_named_notices_get_one_notice_together() {
    let mut w = World::new(5);
    w.add_device(ALICE, 11);
    // Enough senders to use up every notice by name: the first ones are read, the next are
    // each told about by name.
    for i in 0..64 {
        w.receive_now(11, plain(&format!("s{i}@flood.example"), i));
    }
    let friend = "new.friend@example.org";
    let shown = w.receive_now(11, plain(friend, 1000));
    let notice = shown.expect("the new friend's message leaves a visible trace");
    assert!(notice.failed, "a notice, not the message: {notice:?}");
    assert!(
        notice.from == friend && notice.failure == Some(Failure::StrangersUnnamed),
        "{notice:?}"
    );
    assert_eq!(w.devices[&11].store.history(friend, 10).unwrap().len(), 1);
    // Once an hour: the senders after it were announced by it ("and others").
    for i in 0..100 {
        let other = format!("another{i}@example.org");
        assert!(w.receive_now(11, plain(&other, 2000 + i)).is_none());
        assert!(w.devices[&11].store.history(&other, 10).unwrap().is_empty());
    }
    // An hour later the budget is fresh: a new sender is read.
    w.now += hush_engine::strangers::WINDOW;
    let read = w
        .receive_now(11, plain("later@example.org", 1002))
        .expect("read");
    assert_eq!(read.text, "message 1002");
}
