//! Archive catch-up (XEP-0313) through a real Prosody: many pages in order and exactly once,
//! presence only after the archive is read (so the offline copies are not pushed as well), and
//! a resume point the archive no longer has.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_store::Store;
use hush_test_support::prosody::Prosody;
use support::{account, connect, expect_text};

/// More than two of Prosody's 50-result pages.
const BACKLOG: usize = 120;
const YEAR: u64 = 365 * 86_400;

fn a_year_later() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + YEAR
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_backlog_arrives_once_in_order_and_live_messages_follow() {
    let server = Prosody::start("catch-up-pages");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let (alice_jid, bob_jid) = (alice.jid().clone(), bob.jid().clone());
    bob.send_text(&alice_jid, "first").await.unwrap();
    expect_text(&mut alice, "first").await;
    let store = alice.close().await.unwrap();

    // Alice is offline: everything waits in her archive and as offline messages.
    for i in 0..BACKLOG {
        bob.send_text(&alice_jid, &format!("while away {i}"))
            .await
            .unwrap();
    }
    bob.flush().await.unwrap();

    let mut alice = connect(&server, None, store).await;
    // Alice's clock says a year has passed; history keeps the archive's times.
    alice.set_clock(a_year_later);
    let got = alice.catch_up(0).await.unwrap();
    let texts: Vec<_> = got
        .iter()
        .map(|d| d.body.clone().unwrap_or_default())
        .collect();
    let want: Vec<_> = (0..BACKLOG).map(|i| format!("while away {i}")).collect();
    assert_eq!(texts, want);
    assert!(got
        .iter()
        .all(|d| d.failure.is_none() && d.from == bob_jid.as_str()));

    // Presence went out after the archive: nothing comes twice (Prosody would otherwise push
    // every offline copy now), and a new message arrives live.
    bob.send_text(&alice_jid, "live").await.unwrap();
    expect_text(&mut alice, "live").await;
    let extra = alice.receive(Duration::from_secs(2)).await.unwrap();
    assert!(extra.is_none(), "{extra:?}");
    let history = alice.store().history(bob_jid.as_str(), 1000).unwrap();
    assert_eq!(
        history.len(),
        BACKLOG + 2,
        "first, the backlog, live: once each"
    );
    let real_now = a_year_later() - YEAR;
    for m in &history[1..=BACKLOG] {
        assert!(
            m.at <= real_now + 5 && m.at + 300 >= real_now,
            "archived at {} (now {real_now})",
            m.at
        );
    }
    assert!(
        history[BACKLOG + 1].at + 5 >= real_now + YEAR,
        "the live one: now"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_point_the_archive_lost_is_read_again_from_the_start() {
    let server = Prosody::start("catch-up-lost");
    let mut alice = account(&server, None, "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid = alice.jid().clone();
    bob.send_text(&alice_jid, "before").await.unwrap();
    expect_text(&mut alice, "before").await;
    let mut store = alice.close().await.unwrap();

    // Alice's resume point names an archive id Prosody never had (as after an archive
    // expired, or a store restored from an older backup): querying after it is refused with
    // item-not-found.
    store
        .set_archive_resume(alice_jid.as_str(), "expired-archive-id")
        .unwrap();

    for i in 0..3 {
        bob.send_text(&alice_jid, &format!("after {i}"))
            .await
            .unwrap();
    }
    bob.flush().await.unwrap();

    // The catch-up reads the whole archive again: "before" is recognised as a copy, the three
    // new messages arrive once, and the next catch-up resumes from a real archive id.
    let mut alice = connect(&server, None, store).await;
    let got = alice.catch_up(0).await.unwrap();
    let texts: Vec<_> = got
        .iter()
        .map(|d| d.body.clone().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["after 0", "after 1", "after 2"]);
    let resume = alice
        .store()
        .archive_resume(alice_jid.as_str())
        .unwrap()
        .unwrap();
    assert_ne!(resume, "expired-archive-id");
    assert!(alice.catch_up(0).await.unwrap().is_empty());
}
