//! Rooms (XEP-0045) with OMEMO (XEP-0384 §5.8) through a real Prosody and its room service:
//! a private room created and configured by Hush, three accounts with two devices each talking
//! in it, our own reflected messages, a member removed, the room's archive read after being
//! offline, bookmarks, and nothing in clear on the server.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::time::Duration;

use hush_engine::SendOptions;
use hush_store::{Affiliation, MemoryStore};
use hush_test_support::prosody::{Prosody, MUC_SERVICE};
use hush_xmpp::{BareJid, Hush};

/// The next message `hush` shows (bounded wait), which must be `text` from `from` in `room`.
async fn expect_room_text(hush: &mut Hush<MemoryStore>, room: &BareJid, from: &str, text: &str) {
    let d = hush
        .receive(Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("`{text}` did not arrive"));
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
    assert_eq!(d.from, from, "{d:?}");
    assert_eq!(d.arrival.room.as_deref(), Some(room.as_str()), "{d:?}");
    assert!(d.arrival.nick.is_some(), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_accounts_and_a_second_device_talk_in_a_private_room() {
    let server = Prosody::start("rooms");
    let room: BareJid = format!("team@{MUC_SERVICE}").parse().unwrap();
    let mut alice = support::account(&server, None, "alice", 11).await;
    let mut bob = support::account(&server, None, "bob", 21).await;
    let mut carol = support::account(&server, None, "carol", 31).await;
    let mut laptop = support::device(&server, None, "alice@localhost", 12).await;
    let mut bob_laptop = support::device(&server, None, "bob@localhost", 22).await;
    let mut carol_laptop = support::device(&server, None, "carol@localhost", 32).await;
    let (bob_jid, carol_jid): (BareJid, BareJid) = (
        "bob@localhost".parse().unwrap(),
        "carol@localhost".parse().unwrap(),
    );

    // Alice creates the room: Hush makes it members-only and non-anonymous.
    let created = alice.join_room(&room, Some("alice")).await.unwrap();
    assert!(
        created.config.members_only && created.config.non_anonymous,
        "{created:?}"
    );
    assert_eq!(
        created.affiliation("alice@localhost"),
        Some(Affiliation::Owner)
    );
    // Bob cannot enter before he is a member.
    let refused = bob.join_room(&room, Some("bob")).await.unwrap_err();
    assert!(refused.to_string().contains("refused"), "{refused}");
    for jid in [&bob_jid, &carol_jid] {
        alice
            .set_room_member(&room, jid, Some(Affiliation::Member))
            .await
            .unwrap();
    }
    bob.join_room(&room, Some("bob")).await.unwrap();
    let seen = carol.join_room(&room, None).await.unwrap();
    assert_eq!(
        seen.nick, "carol",
        "the account's name is the default nickname"
    );
    assert_eq!(seen.members.len(), 3, "{seen:?}");
    laptop.join_room(&room, Some("alice")).await.unwrap();
    bob_laptop.join_room(&room, Some("bob")).await.unwrap();
    carol_laptop.join_room(&room, None).await.unwrap();

    let report = alice
        .send_to_room(&room, "hello room", SendOptions::default())
        .await
        .unwrap();
    let mut reached = report.devices.clone();
    reached.sort();
    assert_eq!(
        reached,
        [
            ("alice@localhost".to_owned(), 12),
            ("bob@localhost".to_owned(), 21),
            ("bob@localhost".to_owned(), 22),
            ("carol@localhost".to_owned(), 31),
            ("carol@localhost".to_owned(), 32)
        ]
    );
    for device in [
        &mut bob,
        &mut bob_laptop,
        &mut carol,
        &mut carol_laptop,
        &mut laptop,
    ] {
        expect_room_text(device, &room, "alice@localhost", "hello room").await;
    }

    // Bob answers from his laptop; Alice's first message is his, not her own reflected one,
    // and his phone reads it as his own account's.
    bob_laptop
        .send_to_room(&room, "hi from bob", SendOptions::default())
        .await
        .unwrap();
    for device in [
        &mut alice,
        &mut laptop,
        &mut carol,
        &mut carol_laptop,
        &mut bob,
    ] {
        expect_room_text(device, &room, "bob@localhost", "hi from bob").await;
    }

    // Carol is no longer a member: the next message has no key for her.
    alice
        .set_room_member(&room, &carol_jid, None)
        .await
        .unwrap();
    let report = alice
        .send_to_room(&room, "after carol", SendOptions::default())
        .await
        .unwrap();
    assert!(
        !report.devices.iter().any(|(j, _)| j == "carol@localhost"),
        "{:?}",
        report.devices
    );
    expect_room_text(&mut bob, &room, "alice@localhost", "after carol").await;
    expect_room_text(&mut bob_laptop, &room, "alice@localhost", "after carol").await;

    // The room kept only ciphertext.
    let stored = server.stored_bytes();
    for text in ["hello room", "hi from bob", "after carol"] {
        assert!(
            !stored.windows(text.len()).any(|w| w == text.as_bytes()),
            "`{text}` is in clear in Prosody's storage"
        );
    }
}

/// The room's archive (XEP-0313 §6): a member who was offline reads what was said meanwhile,
/// once each, in order, with the real JID of who said it; a member who joins later reads
/// nothing older than the join (it was not encrypted for them), and the first message it is
/// handed is the first one meant for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_member_catches_up_from_the_room_archive_and_a_new_one_starts_at_its_join() {
    let server = Prosody::start("room-archive");
    let room: BareJid = format!("archive@{MUC_SERVICE}").parse().unwrap();
    let mut alice = support::account(&server, None, "alice", 11).await;
    let mut bob = support::account(&server, None, "bob", 21).await;
    let mut carol = support::account(&server, None, "carol", 31).await;
    let (bob_jid, carol_jid): (BareJid, BareJid) = (
        "bob@localhost".parse().unwrap(),
        "carol@localhost".parse().unwrap(),
    );
    alice.join_room(&room, Some("alice")).await.unwrap();
    alice
        .set_room_member(&room, &bob_jid, Some(Affiliation::Member))
        .await
        .unwrap();
    bob.join_room(&room, None).await.unwrap();
    alice
        .send_to_room(&room, "before bob left", SendOptions::default())
        .await
        .unwrap();
    expect_room_text(&mut bob, &room, "alice@localhost", "before bob left").await;

    // Bob goes offline; Alice writes twice, then adds Carol, who joins and is written to.
    let bob_store = bob.close().await.unwrap();
    for text in ["while bob was away", "still away"] {
        alice
            .send_to_room(&room, text, SendOptions::default())
            .await
            .unwrap();
    }
    alice
        .set_room_member(&room, &carol_jid, Some(Affiliation::Member))
        .await
        .unwrap();
    carol.join_room(&room, None).await.unwrap();
    let report = alice
        .send_to_room(&room, "welcome carol", SendOptions::default())
        .await
        .unwrap();
    assert!(
        report
            .devices
            .iter()
            .any(|(j, d)| j == "bob@localhost" && *d == 21),
        "an offline member is still a reader: {:?}",
        report.devices
    );
    // Carol's first message is the first one meant for her: nothing older from the archive.
    expect_room_text(&mut carol, &room, "alice@localhost", "welcome carol").await;

    // Bob comes back: the catch-up reads the room's archive since he left, each message once.
    let mut bob = support::connect(&server, None, bob_store).await;
    for text in ["while bob was away", "still away", "welcome carol"] {
        expect_room_text(&mut bob, &room, "alice@localhost", text).await;
    }
    // Carol writes: Bob (in the room again) and Alice read it live, once.
    carol
        .send_to_room(&room, "hello from carol", SendOptions::default())
        .await
        .unwrap();
    expect_room_text(&mut bob, &room, "carol@localhost", "hello from carol").await;
    expect_room_text(&mut alice, &room, "carol@localhost", "hello from carol").await;

    // Bob's archive place moved past what he read: a second reconnection reads nothing again,
    // and the next message he is handed is the next one sent.
    let bob_store = bob.close().await.unwrap();
    let mut bob = support::connect(&server, None, bob_store).await;
    alice
        .send_to_room(&room, "one more", SendOptions::default())
        .await
        .unwrap();
    expect_room_text(&mut bob, &room, "alice@localhost", "one more").await;
}

/// Bookmarks (XEP-0402): a room joined on one device is entered by the account's other
/// devices when they connect, and one left is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_joined_on_one_device_is_entered_by_the_others_through_its_bookmark() {
    let server = Prosody::start("room-bookmarks");
    let room: BareJid = format!("synced@{MUC_SERVICE}").parse().unwrap();
    let mut phone = support::account(&server, None, "alice", 11).await;
    let mut bob = support::account(&server, None, "bob", 21).await;
    // Alice's desktop is set up, then switched off before she joins the room on her phone.
    let desktop = support::device(&server, None, "alice@localhost", 13).await;
    let desktop = desktop.close().await.unwrap();
    phone.join_room(&room, Some("alice")).await.unwrap();
    phone
        .set_room_member(
            &room,
            &"bob@localhost".parse().unwrap(),
            Some(Affiliation::Member),
        )
        .await
        .unwrap();
    bob.join_room(&room, None).await.unwrap();
    let bookmarks = phone.bookmarks().await.unwrap();
    assert_eq!(bookmarks.len(), 1, "{bookmarks:?}");
    assert_eq!(bookmarks[0].room, room);
    assert!(bookmarks[0].autojoin);
    assert!(bookmarks[0].joined_at.is_some(), "{bookmarks:?}");

    // Bob writes while the desktop is off; it was one of Alice's devices, so it has a key.
    bob.send_to_room(&room, "while the desktop was off", SendOptions::default())
        .await
        .unwrap();
    expect_room_text(
        &mut phone,
        &room,
        "bob@localhost",
        "while the desktop was off",
    )
    .await;
    // Switched on, the desktop enters the room through its bookmark and reads, from the
    // room's archive, what was said since Alice joined: not only what comes next.
    let mut desktop = support::connect(&server, None, desktop).await;
    let caught: Vec<Option<String>> = desktop
        .catch_up(0)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.body)
        .collect();
    assert_eq!(
        caught,
        [Some("while the desktop was off".to_owned())],
        "the desktop's catch-up"
    );

    // Alice's laptop connects for the first time: it enters the room on its own, and reads
    // Bob's next message.
    let mut laptop = support::device(&server, None, "alice@localhost", 12).await;
    laptop.catch_up(0).await.unwrap();
    let rooms = laptop.rooms().unwrap();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0].nick, "alice");
    bob.send_to_room(&room, "hello both devices", SendOptions::default())
        .await
        .unwrap();
    expect_room_text(&mut laptop, &room, "bob@localhost", "hello both devices").await;
    expect_room_text(&mut phone, &room, "bob@localhost", "hello both devices").await;

    // Left on the phone: a third device does not enter it.
    phone.leave_room(&room).await.unwrap();
    let mut tablet = support::device(&server, None, "alice@localhost", 14).await;
    tablet.catch_up(0).await.unwrap();
    assert!(tablet.rooms().unwrap().is_empty());
}
