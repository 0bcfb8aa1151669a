//! End-to-end behaviour of sessions in both suites: key exchange, multi-device, ordering,
//! replays, tampering, bounds and persistence.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod common;

use common::Party;
use hush_proto::{
    ProtoError, Session, Suite, HEARTBEAT_AFTER, MAX_EARLIER_STEPS, MAX_SKIP_PER_MESSAGE,
};

fn has_kex(xml: &str) -> bool {
    let el = hush_proto::EncryptedElement::from_element(&xml.parse().unwrap()).unwrap();
    let attr = if el.suite == Suite::Omemo2 {
        "kex="
    } else {
        "prekey="
    };
    assert_eq!(el.keys.iter().any(|k| k.kex), xml.contains(attr));
    el.keys.iter().all(|k| k.kex)
}

fn pair(suite: Suite) -> (Party, Party) {
    let mut alice = Party::new("alice@example.org", 11, 1);
    let bob = Party::new("bob@example.net", 22, 2);
    alice.connect(suite, &[&bob]);
    (alice, bob)
}

#[test]
fn key_exchange_then_conversation() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"hello bob"));
        let again = alice.send(suite, &[("bob@example.net", 22)], Some(b"still there?"));
        assert!(has_kex(&first), "{first}");
        assert!(has_kex(&again), "kex is resent until answered");

        let opened = bob.receive("alice@example.org", &first).unwrap();
        assert_eq!(opened.payload.unwrap().as_slice(), b"hello bob");
        assert!(opened.was_key_exchange);
        assert!(opened.new_state);
        assert!(!opened.identity_changed);
        let used = opened.consumed_prekey.expect("a one-time prekey was used");
        assert_eq!(opened.sender_identity, *alice.device.identity().public());
        // The resent key exchange is recognised: same session, no second prekey.
        let opened = bob.receive("alice@example.org", &again).unwrap();
        assert_eq!(opened.payload.unwrap().as_slice(), b"still there?");
        assert!(!opened.new_state && opened.consumed_prekey.is_none());
        assert!(bob
            .device
            .bundle(suite)
            .prekeys
            .iter()
            .all(|(id, _)| *id != used));

        // Bob answers with an empty message; Alice stops sending the key exchange.
        let empty = bob.send(suite, &[("alice@example.org", 11)], None);
        assert!(!empty.contains("<payload"));
        assert!(alice
            .receive("bob@example.net", &empty)
            .unwrap()
            .payload
            .is_none());
        let plain = alice.send(suite, &[("bob@example.net", 22)], Some(b"third"));
        assert!(!has_kex(&plain));
        assert!(!plain.contains("kex=") && !plain.contains("prekey="));
        assert_eq!(
            bob.receive_text("alice@example.org", &plain).unwrap(),
            b"third"
        );

        for i in 0..50 {
            let m = bob.send(
                suite,
                &[("alice@example.org", 11)],
                Some(format!("b{i}").as_bytes()),
            );
            assert_eq!(
                alice.receive_text("bob@example.net", &m).unwrap(),
                format!("b{i}").as_bytes()
            );
            let m = alice.send(
                suite,
                &[("bob@example.net", 22)],
                Some(format!("a{i}").as_bytes()),
            );
            assert_eq!(
                bob.receive_text("alice@example.org", &m).unwrap(),
                format!("a{i}").as_bytes()
            );
        }
    }
}

#[test]
fn one_message_for_many_devices_including_own() {
    for suite in Suite::ALL {
        let mut alice1 = Party::new("alice@example.org", 1, 10);
        let mut alice2 = Party::new("alice@example.org", 2, 11);
        let mut bobs: Vec<Party> = (0..5)
            .map(|i| Party::new("bob@example.net", 100 + i, 20 + i as u64))
            .collect();
        let mut targets: Vec<&Party> = bobs.iter().collect();
        targets.push(&alice2);
        alice1.connect(suite, &targets);
        let mut to: Vec<(&str, u32)> = (0..5).map(|i| ("bob@example.net", 100 + i)).collect();
        to.push(("alice@example.org", 2));
        let xml = alice1.send(suite, &to, Some(b"to everyone"));
        for b in &mut bobs {
            assert_eq!(
                b.receive_text("alice@example.org", &xml).unwrap(),
                b"to everyone"
            );
        }
        assert_eq!(
            alice2.receive_text("alice@example.org", &xml).unwrap(),
            b"to everyone"
        );
        // A device that was not a recipient is told so.
        let mut stranger = Party::new("bob@example.net", 999, 99);
        assert_eq!(
            stranger.receive("alice@example.org", &xml).unwrap_err(),
            ProtoError::NotForThisDevice(999)
        );
    }
}

#[test]
fn out_of_order_duplicates_and_skips() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"0"));
        let _ = bob.receive("alice@example.org", &first).unwrap();
        let reply = bob.send(suite, &[("alice@example.org", 11)], Some(b"r"));
        let _ = alice.receive("bob@example.net", &reply).unwrap();
        let msgs: Vec<String> = (1..=20)
            .map(|i| {
                alice.send(
                    suite,
                    &[("bob@example.net", 22)],
                    Some(format!("{i}").as_bytes()),
                )
            })
            .collect();
        for i in [
            19usize, 3, 0, 7, 18, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        ] {
            assert_eq!(
                bob.receive_text("alice@example.org", &msgs[i]).unwrap(),
                format!("{}", i + 1).as_bytes()
            );
        }
        for m in [&msgs[0], &msgs[19], &msgs[10]] {
            assert!(matches!(
                bob.receive("alice@example.org", m),
                Err(ProtoError::MessageKeyGone { .. })
            ));
        }
        assert!(
            matches!(
                bob.receive("alice@example.org", &first),
                Err(ProtoError::MessageKeyGone { .. })
            ),
            "the very first message cannot be replayed"
        );
    }
}

#[test]
fn hostile_skip_counts_are_bounded() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"0"));
        let _ = bob.receive("alice@example.org", &first).unwrap();
        // Alice's ratchet runs far ahead: the message after the gap must be refused, cheaply.
        for _ in 0..MAX_SKIP_PER_MESSAGE + 1 {
            alice.send(suite, &[("bob@example.net", 22)], Some(b"lost"));
        }
        let far = alice.send(suite, &[("bob@example.net", 22)], Some(b"far"));
        assert!(matches!(
            bob.receive("alice@example.org", &far),
            Err(ProtoError::TooManySkipped { .. })
        ));
        let session = &bob.sessions[&("alice@example.org".to_string(), 11)];
        assert_eq!(
            session.skipped_keys(),
            0,
            "nothing was stored for the refused message"
        );
    }
}

#[test]
fn sessions_survive_serialization() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let m = alice.send(suite, &[("bob@example.net", 22)], Some(b"a"));
        let _ = bob.receive("alice@example.org", &m).unwrap();
        let late = alice.send(suite, &[("bob@example.net", 22)], Some(b"late"));
        let next = alice.send(suite, &[("bob@example.net", 22)], Some(b"next"));
        assert_eq!(
            bob.receive_text("alice@example.org", &next).unwrap(),
            b"next"
        );
        // Save and restore everything Bob has, then continue.
        let key = ("alice@example.org".to_string(), 11);
        let saved = bob.sessions[&key].to_bytes();
        bob.sessions
            .insert(key.clone(), Session::from_bytes(&saved).unwrap());
        bob.device = hush_proto::LocalDevice::from_bytes(&bob.device.to_bytes()).unwrap();
        assert_eq!(
            bob.receive_text("alice@example.org", &late).unwrap(),
            b"late",
            "skipped keys persisted"
        );
        let r = bob.send(suite, &[("alice@example.org", 11)], Some(b"r"));
        assert_eq!(alice.receive_text("bob@example.net", &r).unwrap(), b"r");
        assert!(Session::from_bytes(&saved[..saved.len() / 2]).is_err());
        assert!(hush_proto::LocalDevice::from_bytes(b"garbage").is_err());
    }
}

#[test]
fn forged_bundle_signature_is_refused() {
    for suite in Suite::ALL {
        let bob = Party::new("bob@example.net", 22, 2);
        let alice = Party::new("alice@example.org", 11, 1);
        let mut bundle = bob.device.bundle(suite);
        bundle.spk_signature[10] ^= 4;
        let mut rng = common::rng(5);
        assert_eq!(
            Session::initiate(alice.device.identity(), &bundle, &mut rng).unwrap_err(),
            ProtoError::BadSignature("signed prekey")
        );
        let mut swapped = bob.device.bundle(suite);
        swapped.identity = *alice.device.identity().public();
        assert!(Session::initiate(alice.device.identity(), &swapped, &mut rng).is_err());
        let mut empty = bob.device.bundle(suite);
        empty.prekeys.clear();
        assert_eq!(
            Session::initiate(alice.device.identity(), &empty, &mut rng).unwrap_err(),
            ProtoError::NoPreKeys(22)
        );
    }
}

#[test]
fn message_without_session_and_unknown_prekey() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"x"));
        let _ = bob.receive("alice@example.org", &first).unwrap();
        let reply = bob.send(suite, &[("alice@example.org", 11)], None);
        let _ = alice.receive("bob@example.net", &reply).unwrap();
        let plain = alice.send(suite, &[("bob@example.net", 22)], Some(b"y"));
        bob.sessions.clear();
        assert_eq!(
            bob.receive("alice@example.org", &plain).unwrap_err(),
            ProtoError::NoSession {
                jid: "alice@example.org".into(),
                device: 11
            }
        );
        // Once the prekey of the first exchange is forgotten (after its grace period, during
        // which an exact replay is recognised by its content digest above this layer),
        // replaying it cannot build a session.
        assert_eq!(bob.device.forget_retired_prekeys(1), 1);
        assert!(matches!(
            bob.receive("alice@example.org", &first),
            Err(ProtoError::UnknownPreKey(_))
        ));
    }
}

#[test]
fn peer_rebuilding_its_session_is_flagged() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let m = alice.send(suite, &[("bob@example.net", 22)], Some(b"one"));
        let _ = bob.receive("alice@example.org", &m).unwrap();
        // Alice loses her session (e.g. a restore) and starts a new one from Bob's bundle.
        alice.sessions.clear();
        alice.connect(suite, &[&bob]);
        let m = alice.send(suite, &[("bob@example.net", 22)], Some(b"two"));
        let opened = bob.receive("alice@example.org", &m).unwrap();
        assert!(opened.new_state && !opened.identity_changed);
        assert_eq!(opened.session.previous_states(), 1, "the old state is kept");
        assert_eq!(opened.payload.unwrap().as_slice(), b"two");
        let r = bob.send(suite, &[("alice@example.org", 11)], Some(b"three"));
        assert_eq!(alice.receive_text("bob@example.net", &r).unwrap(), b"three");
    }
}

#[test]
fn stripped_payload_is_refused_and_costs_nothing() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"setup"));
        let _ = bob.receive("alice@example.org", &first).unwrap();
        let xml = alice.send(suite, &[("bob@example.net", 22)], Some(b"the real one"));
        let mut el = hush_proto::EncryptedElement::from_element(&xml.parse().unwrap()).unwrap();
        el.payload = None;
        let stripped = String::from(&el.to_element());
        assert_eq!(
            bob.receive("alice@example.org", &stripped).unwrap_err(),
            ProtoError::MissingPayload,
            "{suite}"
        );
        assert_eq!(
            bob.receive_text("alice@example.org", &xml).unwrap(),
            b"the real one"
        );
    }
}

#[test]
fn a_bad_entry_for_someone_else_does_not_hide_ours() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let xml = alice.send(suite, &[("bob@example.net", 22)], Some(b"still readable"));
        let garbage = if suite == Suite::Omemo2 {
            "<key rid='0'>!!</key>"
        } else {
            "<key rid='99999999999'>x</key>"
        };
        let tampered = xml.replacen("<key ", &format!("{garbage}<key "), 1);
        assert_ne!(tampered, xml);
        assert_eq!(
            bob.receive_text("alice@example.org", &tampered).unwrap(),
            b"still readable"
        );
        let list = format!(
            "<list xmlns='{}'><device id='0'/><device id='x'/><device id='7'/></list>",
            Suite::Legacy.namespace()
        );
        let parsed = hush_proto::DeviceList::from_element(&list.parse().unwrap()).unwrap();
        assert_eq!(parsed.devices, vec![hush_proto::DeviceEntry::new(7)]);
    }
}

#[test]
fn heartbeat_is_due_once_after_53_unanswered_messages() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let to_bob = [("bob@example.net", 22)];
        let to_alice = [("alice@example.org", 11)];
        let due =
            |bob: &Party| bob.sessions[&("alice@example.org".to_owned(), 11)].needs_heartbeat();
        // Bob answers the key exchange, as Hush does, so the session is confirmed.
        let first = alice.send(suite, &to_bob, Some(b"0"));
        bob.receive_text("alice@example.org", &first).unwrap();
        let answer = bob.send(suite, &to_alice, None);
        assert!(alice
            .receive("bob@example.net", &answer)
            .unwrap()
            .payload
            .is_none());
        for i in 1..HEARTBEAT_AFTER {
            let m = alice.send(suite, &to_bob, Some(b"x"));
            bob.receive_text("alice@example.org", &m).unwrap();
            assert!(!due(&bob), "{suite}: due after only {i} messages");
        }
        let m = alice.send(suite, &to_bob, Some(b"53rd"));
        bob.receive_text("alice@example.org", &m).unwrap();
        assert!(
            due(&bob),
            "{suite}: due after {HEARTBEAT_AFTER} unanswered messages"
        );
        // The heartbeat itself (an empty message) settles it, even before Alice reads it.
        let beat = bob.send(suite, &to_alice, None);
        assert!(!due(&bob));
        let m = alice.send(suite, &to_bob, Some(b"more"));
        bob.receive_text("alice@example.org", &m).unwrap();
        assert!(!due(&bob), "{suite}: one heartbeat per ratchet step");
        // Once Alice has it, her next messages start a new chain: the count starts again.
        assert!(alice
            .receive("bob@example.net", &beat)
            .unwrap()
            .payload
            .is_none());
        let m = alice.send(suite, &to_bob, Some(b"new chain"));
        bob.receive_text("alice@example.org", &m).unwrap();
        assert!(!due(&bob));
        assert_eq!(
            bob.sessions[&("alice@example.org".to_owned(), 11)].receiving_chain_length(),
            1
        );
    }
}

/// A late message whose skipped key was dropped (more than `MAX_SKIPPED_KEYS` later keys kept)
/// is an error that names the gone key — no "duplicate" verdict, which the ratchet cannot
/// authenticate — and the session goes on.
#[test]
fn a_late_message_whose_key_was_evicted_is_an_error_not_a_duplicate() {
    let suite = Suite::Omemo2;
    let (mut alice, mut bob) = pair(suite);
    let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"kex"));
    bob.receive_text("alice@example.org", &first).unwrap();
    let reply = bob.send(suite, &[("alice@example.org", 11)], Some(b"ok"));
    alice.receive_text("bob@example.net", &reply).unwrap();
    let msgs: Vec<String> = (0..=hush_proto::MAX_SKIPPED_KEYS + 2)
        .map(|i| {
            alice.send(
                suite,
                &[("bob@example.net", 22)],
                Some(format!("{i}").as_bytes()),
            )
        })
        .collect();
    // Skips 0..1000 (all kept), then skipping 1001 pushes out the key for message 0.
    let last = msgs.len() - 1;
    bob.receive_text("alice@example.org", &msgs[last - 2])
        .unwrap();
    bob.receive_text("alice@example.org", &msgs[last]).unwrap();
    assert_eq!(
        bob.receive("alice@example.org", &msgs[0]).unwrap_err(),
        ProtoError::MessageKeyGone { counter: 0 }
    );
    assert_eq!(
        bob.receive_text("alice@example.org", &msgs[1]).unwrap(),
        b"1",
        "a late message whose key is still kept reads"
    );
}

/// The prekey race: two senders pick the same one-time prekey from the same published bundle.
/// The receiver retires it after the first key exchange (out of the bundle at once), and the
/// second sender's key exchange still builds its session.
#[test]
fn two_senders_with_the_same_prekey_both_get_sessions() {
    for suite in Suite::ALL {
        let mut bob = Party::new("bob@example.net", 22, 2);
        let bundle_xml = String::from(&bob.device.bundle(suite).to_element());
        let mut only_one =
            hush_proto::Bundle::from_element(&bundle_xml.parse().unwrap(), 22).unwrap();
        only_one.prekeys.truncate(1);
        let mut senders: Vec<Party> = [("alice@example.org", 11), ("carol@example.com", 33)]
            .into_iter()
            .enumerate()
            .map(|(i, (jid, id))| {
                let mut p = Party::new(jid, id, 10 + i as u64);
                let s = Session::initiate(p.device.identity(), &only_one, &mut p.rng).unwrap();
                p.sessions.insert(("bob@example.net".into(), 22), s);
                p
            })
            .collect();
        let first = senders[0].send(suite, &[("bob@example.net", 22)], Some(b"first"));
        let second = senders[1].send(suite, &[("bob@example.net", 22)], Some(b"second"));
        // Receiving retires the used prekey (see `Party::receive`): out of the bundle at once.
        let used = bob
            .receive("alice@example.org", &first)
            .unwrap()
            .consumed_prekey
            .unwrap();
        assert!(bob
            .device
            .bundle(suite)
            .prekeys
            .iter()
            .all(|(id, _)| *id != used));
        assert_eq!(
            bob.receive_text("carol@example.com", &second).unwrap(),
            b"second"
        );
        // Past its grace the retired prekey is gone for good.
        assert_eq!(bob.device.forget_retired_prekeys(1), 1);
        let third = {
            let mut late = Party::new("dave@example.net", 44, 20);
            let s = Session::initiate(late.device.identity(), &only_one, &mut late.rng).unwrap();
            late.sessions.insert(("bob@example.net".into(), 22), s);
            late.send(suite, &[("bob@example.net", 22)], Some(b"too late"))
        };
        assert_eq!(
            bob.receive("dave@example.net", &third).unwrap_err(),
            ProtoError::UnknownPreKey(used)
        );
    }
}

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

/// Alice and Bob on a state Alice started (S1), each having read the other, so Bob holds S1's
/// receiving chain for Alice's current ratchet key; Bob has written one more message on S1,
/// not delivered yet. Then Alice starts over `restarts` times (each new state read by Bob),
/// keeping S1 aside. Returns both with S1 back in Alice's hands, and Bob's held message.
fn s1_behind_restarts(suite: Suite, restarts: usize) -> (Party, Party, String) {
    let (mut alice, mut bob) = pair(suite);
    let hello = alice.send(suite, &[(BOB, 22)], Some(b"hello"));
    bob.receive_text(ALICE, &hello).unwrap();
    let hi = bob.send(suite, &[(ALICE, 11)], Some(b"hi"));
    alice.receive_text(BOB, &hi).unwrap();
    let on_s1 = alice.send(suite, &[(BOB, 22)], Some(b"on S1"));
    bob.receive_text(ALICE, &on_s1).unwrap();
    let held = bob.send(suite, &[(ALICE, 11)], Some(b"held"));
    let s1 = alice.sessions.remove(&(BOB.to_owned(), 22)).unwrap();
    for n in 0..restarts {
        alice.connect(suite, &[&bob]);
        let fresh = alice.send(suite, &[(BOB, 22)], Some(format!("restart {n}").as_bytes()));
        bob.receive_text(ALICE, &fresh).unwrap();
    }
    assert_eq!(
        bob.sessions[&(ALICE.to_owned(), 11)].previous_states(),
        restarts
    );
    alice.sessions.insert((BOB.to_owned(), 22), s1);
    (alice, bob, held)
}

/// A message on a receiving chain an earlier state knows is read however deep that state is:
/// it costs walking one chain, in the one state that knows the ratchet key.
#[test]
fn earlier_states_read_their_known_chains_at_any_depth() {
    for suite in Suite::ALL {
        let (mut alice, mut bob, _) = s1_behind_restarts(suite, 10);
        let more = alice.send(suite, &[(BOB, 22)], Some(b"more on S1"));
        assert_eq!(bob.receive_text(ALICE, &more).unwrap(), b"more on S1");
        // S1 is current again: Alice, holding S1 only, reads what Bob writes next.
        let reply = bob.send(suite, &[(ALICE, 11)], Some(b"back on S1"));
        assert_eq!(alice.receive_text(BOB, &reply).unwrap(), b"back on S1");
    }
}

/// A message under a ratchet key no state knows makes us run a DH ratchet step on the current
/// state and on the `MAX_EARLIER_STEPS` most recently used earlier ones only: a forged message
/// must not cost one on each of the 40 kept states. Alice answering Bob's held message on S1
/// steps her ratchet; Bob reads that only while S1 is among those states.
#[test]
fn a_ratchet_step_is_run_on_the_most_recent_earlier_states_only() {
    for suite in Suite::ALL {
        for restarts in [1, MAX_EARLIER_STEPS, MAX_EARLIER_STEPS + 1] {
            let (mut alice, mut bob, held) = s1_behind_restarts(suite, restarts);
            assert_eq!(alice.receive_text(BOB, &held).unwrap(), b"held");
            let answer = alice.send(suite, &[(BOB, 22)], Some(b"answer on S1"));
            let before = bob.sessions[&(ALICE.to_owned(), 11)].to_bytes();
            let read = bob.receive(ALICE, &answer);
            if restarts <= MAX_EARLIER_STEPS {
                assert_eq!(read.unwrap().payload.unwrap().as_slice(), b"answer on S1");
            } else {
                assert!(
                    matches!(read, Err(ProtoError::AuthenticationFailed(_))),
                    "S1 is earlier state {}: {read:?}",
                    restarts - 1
                );
                let after = bob.sessions[&(ALICE.to_owned(), 11)].to_bytes();
                assert_eq!(*before, *after, "a message nobody read changes nothing");
            }
        }
    }
}

/// Skipped message keys are bounded across the whole record: when a new state skips keys, the
/// least recently used state loses its oldest first, and the current state keeps all of its.
#[test]
fn skipped_keys_are_bounded_across_the_record() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        // S1 and S2 each skip 600 keys: 1,200 together, 200 over the total.
        let mut s1 = Vec::new();
        for n in 0..601 {
            s1.push(alice.send(suite, &[(BOB, 22)], Some(format!("s1 {n}").as_bytes())));
        }
        bob.receive_text(ALICE, &s1[600]).unwrap();
        alice.connect(suite, &[&bob]);
        let mut s2 = Vec::new();
        for n in 0..601 {
            s2.push(alice.send(suite, &[(BOB, 22)], Some(format!("s2 {n}").as_bytes())));
        }
        bob.receive_text(ALICE, &s2[600]).unwrap();
        let bytes = bob.sessions[&(ALICE.to_owned(), 11)].to_bytes();
        let stored = Session::from_bytes(&bytes).unwrap();
        assert_eq!(stored.skipped_keys(), hush_proto::MAX_SKIPPED_KEYS);
        bob.sessions.insert((ALICE.to_owned(), 11), stored);
        // The 200 oldest of S1 are gone; its newer ones and all of S2's are kept.
        for gone in [0, 199] {
            assert!(bob.receive(ALICE, &s1[gone]).is_err(), "s1 {gone}");
        }
        for (kept, texts) in [(200, &s1), (599, &s1), (0, &s2), (599, &s2)] {
            assert!(bob.receive(ALICE, &texts[kept]).is_ok(), "{kept}");
        }
    }
}

/// `Opened::envelope` checks the parse `open` made exactly as `sce::open` checks the payload:
/// the same envelope, the same refusals.
#[test]
fn the_opened_envelope_is_what_sce_open_says() {
    use hush_proto::sce;
    let suite = Suite::Omemo2;
    let (mut alice, mut bob) = pair(suite);
    let envelope = sce::seal(&[sce::body("hi")], ALICE, BOB, Some(7), &mut alice.rng).unwrap();
    let payloads: [&[u8]; 3] = [&envelope, b"not an envelope", b"<envelope xmlns='x'/>"];
    for payload in payloads {
        let xml = alice.send(suite, &[(BOB, 22)], Some(payload));
        let opened = bob.receive(ALICE, &xml).unwrap();
        for from in [ALICE, "mallory@example.org"] {
            let expect = sce::Expect {
                from,
                to: BOB,
                require_to: true,
            };
            assert_eq!(
                opened.envelope(expect),
                sce::open(payload, expect),
                "{from}: {}",
                String::from_utf8_lossy(payload)
            );
        }
    }
    let empty = alice.send(suite, &[(BOB, 22)], None);
    let opened = bob.receive(ALICE, &empty).unwrap();
    let expect = sce::Expect {
        from: ALICE,
        to: BOB,
        require_to: false,
    };
    assert!(matches!(
        opened.envelope(expect),
        Err(ProtoError::Envelope(hush_proto::EnvelopeFault::NoPayload))
    ));
}

/// A session whose sending side was rewound (a restore, a rollback) is replaced by a fresh one
/// from the peer's bundle with `Session::restart`: what the peer already sent on the old state
/// is still read, and reading it never makes the old state current again — the next message
/// goes out on the new state, with its key exchange.
#[test]
fn a_restarted_session_reads_the_old_state_but_never_sends_on_it() {
    for suite in Suite::ALL {
        let (mut alice, mut bob) = pair(suite);
        let first = alice.send(suite, &[("bob@example.net", 22)], Some(b"hello"));
        bob.receive_text("alice@example.org", &first).unwrap();
        let answer = bob.send(suite, &[("alice@example.org", 11)], Some(b"hi"));
        alice.receive_text("bob@example.net", &answer).unwrap();
        // Bob writes again; meanwhile Alice's session is rewound and replaced.
        let in_flight = bob.send(suite, &[("alice@example.org", 11)], Some(b"in flight"));
        let key = ("bob@example.net".to_owned(), 22);
        let old = alice.sessions.remove(&key).unwrap();
        let bundle = bob.device.bundle(suite);
        let new = Session::initiate(alice.device.identity(), &bundle, &mut alice.rng).unwrap();
        let restarted = old.restart(new);
        assert_eq!(restarted.previous_states(), 1);
        alice.sessions.insert(key, restarted);
        // The message in flight on the old state is read...
        assert_eq!(
            alice.receive_text("bob@example.net", &in_flight).unwrap(),
            b"in flight"
        );
        // ...and Alice still sends on the new state (a key exchange Bob takes as a restart).
        let next = alice.send(suite, &[("bob@example.net", 22)], Some(b"after"));
        assert!(has_kex(&next), "{next}");
        let opened = bob.receive("alice@example.org", &next).unwrap();
        assert!(opened.new_state);
        assert_eq!(opened.payload.unwrap().as_slice(), b"after");
        // A stored and reloaded record keeps the old state read-only.
        let reloaded =
            Session::from_bytes(&alice.sessions[&("bob@example.net".to_owned(), 22)].to_bytes())
                .unwrap();
        assert_eq!(reloaded.previous_states(), 1);
    }
}
