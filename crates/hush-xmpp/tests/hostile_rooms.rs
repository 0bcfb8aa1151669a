//! Hostile room services (XEP-0045 with OMEMO, XEP-0384 §5.8): `hush-devserver`'s rooms with an
//! adversary that hides a member, adds one, relabels who sent a message, replays and reorders
//! room messages, or turns the room anonymous mid-conversation. Each attack is detected or
//! harmless: nothing is read as someone else's, nothing is shown twice, nothing goes out in
//! clear, and what the service did to the list of readers is shown to the sender. (The
//! `World` checks, when each test ends, that no room archive holds a text in clear.)

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::{Arc, Mutex};

use hush_devserver::{DevServer, Element};
use hush_engine::{Refusal, RoomChange, RoomRefusal, SendOptions, Warning};
use hush_store::{Affiliation, Store};
use hush_test_support::devserver::{self, connect, online};
use hush_test_support::hostile::*;
use hush_xmpp::{BareJid, XmppError};

/// Alice (owner, device 11), Bob (22) and Carol (33) in the private room `team`, each having
/// read Alice's first message there.
async fn room_of_three(server: &DevServer) -> (BareJid, Device, Device, Device) {
    let room: BareJid = format!("team@{}", server.muc_domain()).parse().unwrap();
    let mut alice = devserver::account(server, "alice", 11).await;
    let mut bob = devserver::account(server, "bob", 22).await;
    let mut carol = devserver::account(server, "carol", 33).await;
    let created = alice.join_room(&room, Some("alice")).await.unwrap();
    assert!(
        created.config.members_only && created.config.non_anonymous,
        "{created:?}"
    );
    for who in ["bob@localhost", "carol@localhost"] {
        alice
            .set_room_member(&room, &who.parse().unwrap(), Some(Affiliation::Member))
            .await
            .unwrap();
    }
    bob.join_room(&room, None).await.unwrap();
    carol.join_room(&room, None).await.unwrap();
    alice
        .send_to_room(&room, "welcome", SendOptions::default())
        .await
        .unwrap();
    expect_in_room(&mut bob, &room, "alice@localhost", "welcome").await;
    expect_in_room(&mut carol, &room, "alice@localhost", "welcome").await;
    (room, alice, bob, carol)
}

/// The next delivery is `text` from `from` in `room`.
async fn expect_in_room(hush: &mut Device, room: &BareJid, from: &str, text: &str) {
    let d = next(hush).await;
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
    assert!(d.failure.is_none(), "{d:?}");
    assert_eq!(d.from, from, "{d:?}");
    assert_eq!(d.arrival.room.as_deref(), Some(room.as_str()), "{d:?}");
}

/// A room message (`type='groupchat'` with an OMEMO element) from a room's occupant.
fn is_room_omemo(s: &Element) -> bool {
    is_omemo(s) && s.attr("type") == Some("groupchat")
}

/// A copy of `e` without the descendants `drop` picks (at any depth).
fn without(e: &Element, drop: &dyn Fn(&Element) -> bool) -> Element {
    let mut copy = e.clone();
    let nodes = copy.take_nodes();
    for node in nodes {
        match node {
            tokio_xmpp::minidom::Node::Element(child) => {
                if !drop(&child) {
                    copy.append_child(without(&child, drop));
                }
            }
            other => copy.append_node(other),
        }
    }
    copy
}

/// An answer to a `muc#admin` list request.
fn is_member_list(s: &Element) -> bool {
    s.name() == "iq"
        && s.children()
            .any(|c| c.is("query", "http://jabber.org/protocol/muc#admin"))
}

// ---- an honest service ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_room_service_carries_everyone_both_ways_and_its_archive_catches_up() {
    let server = server().await;
    let (room, mut alice, mut bob, mut carol) = room_of_three(&server).await;
    bob.send_to_room(&room, "hi from bob", SendOptions::default())
        .await
        .unwrap();
    expect_in_room(&mut alice, &room, "bob@localhost", "hi from bob").await;
    expect_in_room(&mut carol, &room, "bob@localhost", "hi from bob").await;

    // Carol goes away; what is said meanwhile reaches her from the room's archive.
    let carol_store = carol.close().await.unwrap();
    alice
        .send_to_room(&room, "while carol was away", SendOptions::default())
        .await
        .unwrap();
    expect_in_room(&mut bob, &room, "alice@localhost", "while carol was away").await;
    let mut carol = connect(&server, carol_store).await;
    expect_in_room(&mut carol, &room, "alice@localhost", "while carol was away").await;
    nothing(&mut carol).await;
    assert!(server.room_archive(room.as_str()).len() >= 3);

    // Someone who is no member is refused at the door, and cannot read the room's archive.
    let mut dave = devserver::account(&server, "dave", 44).await;
    let refused = dave.join_room(&room, None).await.unwrap_err();
    assert!(refused.to_string().contains("refused"), "{refused}");
    assert!(dave.rooms().unwrap().is_empty());
}

// ---- 1. a member hidden -----------------------------------------------------------------------

/// The service leaves Carol out of the member list Alice reads: Alice's message has no key for
/// her, and Carol is told so (a failure she sees), not left to wonder; Alice's report names
/// Carol as a member lost, so she sees it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_room_hides_sees_a_failure_and_the_sender_is_told() {
    let server = server().await;
    let (room, mut alice, mut bob, mut carol) = room_of_three(&server).await;
    on_delivery(&server, |to, s| {
        if bare_of(to) == "alice@localhost" && is_member_list(&s) {
            let hidden = without(&s, &|c| c.attr("jid") == Some("carol@localhost"));
            return vec![hidden];
        }
        vec![s]
    });
    let report = alice
        .send_to_room(&room, "carol must not read this", SendOptions::default())
        .await
        .unwrap();
    assert!(
        !report.devices.iter().any(|(j, _)| j == "carol@localhost"),
        "{report:?}"
    );
    assert_eq!(report.members_removed, ["carol@localhost"], "{report:?}");
    expect_in_room(
        &mut bob,
        &room,
        "alice@localhost",
        "carol must not read this",
    )
    .await;
    let d = next(&mut carol).await;
    assert!(d.body.is_none(), "{d:?}");
    assert!(
        d.failure.is_some(),
        "Carol must see that a message was not for her: {d:?}"
    );
}

// ---- 2. a member added ------------------------------------------------------------------------

/// The service adds Mallory to the member list: she is a member as far as anyone can tell, so
/// she gets a key — and Alice's report names her as a new reader, so the addition is seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_the_room_adds_is_named_as_a_new_reader() {
    let server = server().await;
    let (room, alice, mut bob, _carol) = room_of_three(&server).await;
    let _mallory = devserver::account(&server, "mallory", 66).await;
    on_delivery(&server, |to, mut s| {
        let lists_members = s
            .children()
            .flat_map(Element::children)
            .any(|i| i.attr("affiliation") == Some("member"));
        if bare_of(to) == "alice@localhost" && is_member_list(&s) && lists_members {
            let item = parse(
                "<item xmlns='http://jabber.org/protocol/muc#admin' affiliation='member' \
                 jid='mallory@localhost'/>",
            );
            if let Some(q) = s.children_mut().next() {
                q.append_child(item);
            }
        }
        vec![s]
    });
    // Alice's device reconnects first (as `hush recv` would): it reads the member list, with
    // Mallory, and stores it. The next send's report still names her.
    let store = alice.close().await.unwrap();
    let mut alice = connect(&server, store).await;
    online(&mut alice).await;
    assert!(alice.rooms().unwrap()[0]
        .affiliation("mallory@localhost")
        .is_some());
    let report = alice
        .send_to_room(&room, "who reads this?", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(report.members_added, ["mallory@localhost"], "{report:?}");
    assert!(
        report
            .devices
            .iter()
            .any(|(j, d)| j == "mallory@localhost" && *d == 66),
        "{report:?}"
    );
    expect_in_room(&mut bob, &room, "alice@localhost", "who reads this?").await;

    // The next message, with the list unchanged, reports nothing new.
    let report = alice
        .send_to_room(&room, "again", SendOptions::default())
        .await
        .unwrap();
    assert!(report.members_added.is_empty(), "{report:?}");
}

// ---- 3. a message relabelled ------------------------------------------------------------------

/// The service says Alice's message came from Carol's nickname: Bob reads it under Carol's
/// real JID, where it does not decrypt — a visible failure, never Alice's text as Carol's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_relabelled_to_another_member_fails_visibly() {
    let server = server().await;
    let (room, mut alice, mut bob, _carol) = room_of_three(&server).await;
    let from_alice = format!("{room}/alice");
    let as_carol = format!("{room}/carol");
    on_delivery(&server, move |to, s| {
        if bare_of(to) == "bob@localhost" && is_room_omemo(&s) {
            return vec![parse(&xml(&s).replace(&from_alice, &as_carol))];
        }
        vec![s]
    });
    alice
        .send_to_room(&room, "signed, alice", SendOptions::default())
        .await
        .unwrap();
    let d = next(&mut bob).await;
    assert!(d.body.is_none(), "a relabelled message was shown: {d:?}");
    assert!(d.failure.is_some(), "{d:?}");
    honest(&server);
    alice
        .send_to_room(&room, "after the relabelling", SendOptions::default())
        .await
        .unwrap();
    expect_in_room(&mut bob, &room, "alice@localhost", "after the relabelling").await;
}

// ---- 4. replayed and reordered ----------------------------------------------------------------

/// The service delivers Alice's first message twice and after her second: Bob reads each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_and_reordered_room_messages_are_read_once_each() {
    let server = server().await;
    let (room, mut alice, mut bob, _carol) = room_of_three(&server).await;
    // (room messages to Bob so far, the first of them while held back)
    let held: Arc<Mutex<(usize, Option<Element>)>> = Arc::default();
    let keep = held.clone();
    on_delivery(&server, move |to, s| {
        if bare_of(to) != "bob@localhost" || !is_room_omemo(&s) {
            return vec![s];
        }
        let mut held = keep.lock().unwrap();
        held.0 += 1;
        match (held.0, held.1.take()) {
            // The first is held back …
            (1, _) => {
                held.1 = Some(s);
                vec![]
            }
            // … and comes after the second, twice.
            (_, Some(first)) => vec![s, first.clone(), first],
            (_, None) => vec![s],
        }
    });
    alice
        .send_to_room(&room, "one", SendOptions::default())
        .await
        .unwrap();
    alice
        .send_to_room(&room, "two", SendOptions::default())
        .await
        .unwrap();
    expect_in_room(&mut bob, &room, "alice@localhost", "two").await;
    expect_in_room(&mut bob, &room, "alice@localhost", "one").await;
    nothing(&mut bob).await;
    assert_eq!(held.lock().unwrap().0, 2, "Bob was sent two room messages");
}

// ---- 5. turned anonymous ----------------------------------------------------------------------

/// The service turns the room semi-anonymous mid-conversation (a configuration notice, status
/// 173): Alice's next message is refused — not sent in clear, not encrypted for readers the
/// room no longer names — and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_turned_anonymous_gets_nothing_encrypted_and_nothing_in_clear() {
    let server = server().await;
    let (room, mut alice, mut bob, _carol) = room_of_three(&server).await;
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = sent.clone();
    on_request(&server, move |_, s| {
        seen.lock().unwrap().push(xml(&s));
        vec![s]
    });
    // Whether or not its notice (status 173) was read first, the room is read again before
    // every send.
    assert!(server.set_room_privacy(room.as_str(), true, false));
    let refused = alice
        .send_to_room(&room, "never in clear", SendOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            XmppError::NotSent {
                refusal: Refusal::Room(RoomRefusal::Anonymous),
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(
        !sent
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.contains("never in clear")),
        "the text went out"
    );
    assert!(
        !alice.rooms().unwrap()[0].config.non_anonymous,
        "the stored room must say what it is now"
    );
    // Bob, who was not sending, is told when it happens.
    let d = next(&mut bob).await;
    assert!(d.is_room_notice(), "{d:?}");
    assert!(
        matches!(
            &d.warning,
            Some(Warning::RoomChanged(RoomChange::NoLongerPrivate(
                RoomRefusal::Anonymous
            )))
        ),
        "{d:?}"
    );
    assert_eq!(d.arrival.room.as_deref(), Some(room.as_str()));
}

// ---- 6. removed -------------------------------------------------------------------------------

/// Alice takes Carol's membership away: Carol is told at once, the room is forgotten (its
/// history stays), and she is not entered again on her next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_is_told_at_once_and_the_room_is_forgotten() {
    let server = server().await;
    let (room, mut alice, _bob, mut carol) = room_of_three(&server).await;
    alice
        .set_room_member(&room, &"carol@localhost".parse().unwrap(), None)
        .await
        .unwrap();
    let d = next(&mut carol).await;
    assert!(
        matches!(
            &d.warning,
            Some(Warning::RoomChanged(RoomChange::Removed { code: 321 }))
        ),
        "{d:?}"
    );
    assert!(carol.rooms().unwrap().is_empty());
    assert_eq!(carol.store().history(room.as_str(), 10).unwrap().len(), 1);
    let store = carol.close().await.unwrap();
    let mut carol = connect(&server, store).await;
    nothing(&mut carol).await;
    assert!(carol.rooms().unwrap().is_empty());
}

// ---- 7. a member's device list withheld -------------------------------------------------------

/// The server will not give Carol's device list: the message goes to the others, and the
/// report names Carol as a member unreached, her list unreadable — a failure the sender sees,
/// not a member "without devices".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_device_list_is_withheld_is_reported_as_unreachable() {
    let server = server().await;
    let (room, mut alice, mut bob, _carol) = room_of_three(&server).await;
    on_delivery(&server, |to, s| {
        let carols_list = s.name() == "iq"
            && s.attr("type") == Some("result")
            && s.attr("from") == Some("carol@localhost")
            && xml(&s).contains("devices");
        if bare_of(to) == "alice@localhost" && carols_list {
            let id = s.attr("id").unwrap_or_default();
            return vec![parse(&format!(
                "<iq xmlns='jabber:client' type='error' id='{id}' from='carol@localhost' \
                 to='{to}'><error type='wait'><resource-constraint \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            ))];
        }
        vec![s]
    });
    let report = alice
        .send_to_room(&room, "carol's server is busy", SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report.members_unreached,
        [(
            "carol@localhost".to_owned(),
            hush_engine::Unreached::ListUnreadable
        )],
        "{report:?}"
    );
    assert!(report.without_devices.is_empty(), "{report:?}");
    expect_in_room(&mut bob, &room, "alice@localhost", "carol's server is busy").await;
}
