//! Property tests: delivery patterns, tampering, and hostile bytes in every parser.

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
    Bundle, DeviceList, Element, EncryptedElement, KeyEntry, LocalDevice, ProtoError, Session,
    Suite,
};
use proptest::prelude::*;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.net";

fn suite_strategy() -> impl Strategy<Value = Suite> {
    prop_oneof![Just(Suite::Omemo2), Just(Suite::Legacy)]
}

/// One round: who sends, how many messages, and how the batch is delivered.
#[derive(Debug, Clone)]
struct Round {
    alice_sends: bool,
    count: usize,
    /// Per message: 0 = deliver now, 1 = deliver late, 2 = drop, 3 = deliver now twice.
    fates: Vec<u8>,
    shuffle: Vec<u64>,
}

fn round() -> impl Strategy<Value = Round> {
    (any::<bool>(), 1usize..6).prop_flat_map(|(alice_sends, count)| {
        (
            Just(alice_sends),
            Just(count),
            prop::collection::vec(0u8..4, count),
            prop::collection::vec(any::<u64>(), count * 2),
        )
            .prop_map(|(alice_sends, count, fates, shuffle)| Round {
                alice_sends,
                count,
                fates,
                shuffle,
            })
    })
}

fn shuffled<T>(mut items: Vec<T>, keys: &[u64]) -> Vec<T> {
    let mut keyed: Vec<(u64, T)> = items
        .drain(..)
        .enumerate()
        .map(|(i, t)| (keys.get(i).copied().unwrap_or(i as u64), t))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, t)| t).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the interleaving, reordering, duplication and loss (within the skip bounds),
    /// every delivered message decrypts exactly once to what was sent; repeats are refused.
    #[test]
    fn any_delivery_pattern_decrypts_exactly_once(suite in suite_strategy(), rounds in prop::collection::vec(round(), 1..12), late_keys in prop::collection::vec(any::<u64>(), 64)) {
        let mut alice = Party::new(ALICE, 11, 1);
        let mut bob = Party::new(BOB, 22, 2);
        alice.connect(suite, &[&bob]);
        let mut late: Vec<(bool, String, Vec<u8>)> = Vec::new();
        let mut serial = 0u32;
        let mut delivered = std::collections::HashSet::new();
        let deliver = |alice: &mut Party, bob: &mut Party, to_bob: bool, xml: &str, text: &[u8], delivered: &mut std::collections::HashSet<Vec<u8>>| {
            let (rx, from) = if to_bob { (bob, ALICE) } else { (alice, BOB) };
            match rx.receive(from, xml) {
                Ok(o) => {
                    let got = o.payload.expect("payload").to_vec();
                    assert_eq!(got, text);
                    assert!(delivered.insert(got), "decrypted twice");
                }
                Err(ProtoError::MessageKeyGone { .. }) => assert!(delivered.contains(text), "refused a fresh message"),
                Err(e) => panic!("unexpected error {e}"),
            }
        };
        for r in rounds {
            // Bob can only write once a key exchange reached him.
            let alice_sends = r.alice_sends || !bob.sessions.contains_key(&(ALICE.to_string(), 11));
            let mut now = Vec::new();
            for i in 0..r.count {
                serial += 1;
                let text = format!("m{serial}").into_bytes();
                let xml = if alice_sends { alice.send(suite, &[(BOB, 22)], Some(&text)) } else { bob.send(suite, &[(ALICE, 11)], Some(&text)) };
                match r.fates[i] {
                    0 => now.push((alice_sends, xml, text)),
                    1 => late.push((alice_sends, xml, text)),
                    2 => {}
                    _ => { now.push((alice_sends, xml.clone(), text.clone())); now.push((alice_sends, xml, text)); }
                }
            }
            for (to_bob, xml, text) in shuffled(now, &r.shuffle) {
                deliver(&mut alice, &mut bob, to_bob, &xml, &text, &mut delivered);
            }
        }
        for (to_bob, xml, text) in shuffled(late, &late_keys) {
            deliver(&mut alice, &mut bob, to_bob, &xml, &text, &mut delivered);
        }
    }

    /// Flipping any bit of any key, IV or payload byte is detected, and the receiver's state is
    /// untouched: the genuine message still decrypts afterwards.
    #[test]
    fn tampering_is_rejected_without_damage(suite in suite_strategy(), established in any::<bool>(), target in 0u8..3, pos in any::<usize>(), bit in 0u8..8) {
        let mut alice = Party::new(ALICE, 11, 1);
        let mut bob = Party::new(BOB, 22, 2);
        alice.connect(suite, &[&bob]);
        if established {
            let m = alice.send(suite, &[(BOB, 22)], Some(b"setup"));
            let _ = bob.receive(ALICE, &m).unwrap();
            let r = bob.send(suite, &[(ALICE, 11)], None);
            let _ = alice.receive(BOB, &r).unwrap();
        }
        let xml = alice.send(suite, &[(BOB, 22)], Some(b"genuine text"));
        let good = EncryptedElement::from_element(&xml.parse::<Element>().unwrap()).unwrap();
        let mut bad = good.clone();
        let bytes: &mut Vec<u8> = match (target, bad.iv.as_mut()) {
            (0, _) | (1, None) => &mut bad.keys[0].data,
            (1, Some(iv)) => iv,
            _ => bad.payload.as_mut().unwrap(),
        };
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        let bad_xml = String::from(&bad.to_element());
        prop_assert!(bob.receive(ALICE, &bad_xml).is_err());
        prop_assert_eq!(bob.receive_text(ALICE, &xml).unwrap(), b"genuine text".to_vec());
    }

    /// Random bytes where the key material goes: an error, never a panic.
    #[test]
    fn random_key_data_is_an_error(suite in suite_strategy(), kex in any::<bool>(), data in prop::collection::vec(any::<u8>(), 0..300), payload in prop::option::of(prop::collection::vec(any::<u8>(), 0..64))) {
        let mut bob = Party::new(BOB, 22, 2);
        let mut alice = Party::new(ALICE, 11, 1);
        alice.connect(suite, &[&bob]);
        let m = alice.send(suite, &[(BOB, 22)], Some(b"x"));
        let _ = bob.receive(ALICE, &m).unwrap();
        let el = EncryptedElement {
            suite, sid: 11,
            keys: vec![KeyEntry { jid: (suite == Suite::Omemo2).then(|| BOB.to_owned()), rid: 22, kex, data }],
            iv: (suite == Suite::Legacy).then(|| vec![0; 12]),
            payload,
        };
        let mut rng = common::rng(3);
        let session = bob.sessions.get(&(ALICE.to_string(), 11)).cloned();
        prop_assert!(bob.device.open(&el, BOB, ALICE, session, &mut rng).is_err());
    }

    /// Hostile bytes into every decoder: stored state, XML elements and SCE envelopes.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), text in "\\PC{0,200}") {
        let _ = Session::from_bytes(&bytes);
        let _ = LocalDevice::from_bytes(&bytes);
        let _ = hush_proto::sce::open(&bytes, hush_proto::sce::Expect { from: ALICE, to: BOB, require_to: false });
        for ns in ["urn:xmpp:omemo:2", "eu.siacs.conversations.axolotl", "urn:xmpp:omemo:1"] {
            let forms = [
                format!("<encrypted xmlns='{ns}'><header sid='{}'><keys jid='{BOB}'><key rid='22' kex='true'>{text}</key></keys><key rid='22'>{text}</key><iv>{text}</iv></header><payload>{text}</payload></encrypted>", bytes.len()),
                format!("<bundle xmlns='{ns}'><spk id='1'>{text}</spk><spks>{text}</spks><ik>{text}</ik><prekeys><pk id='1'>{text}</pk></prekeys><signedPreKeyPublic signedPreKeyId='1'>{text}</signedPreKeyPublic><signedPreKeySignature>{text}</signedPreKeySignature><identityKey>{text}</identityKey></bundle>"),
                format!("<devices xmlns='{ns}'><device id='{text}'/></devices>"),
                format!("<list xmlns='{ns}'><device id='{}'/></list>", bytes.len()),
            ];
            for f in forms {
                if let Ok(el) = f.parse::<Element>() {
                    if let Ok(enc) = EncryptedElement::from_element(&el) {
                        let bob = Party::new(BOB, 22, 2);
                        let mut rng = common::rng(1);
                        let _ = bob.device.open(&enc, BOB, ALICE, None, &mut rng);
                    }
                    let _ = Bundle::from_element(&el, 7);
                    let _ = DeviceList::from_element(&el);
                }
            }
        }
    }
}

#[test]
fn element_and_lists_round_trip() {
    let mut rng = common::rng(9);
    let device = LocalDevice::generate(5, 30, 0, &mut rng).unwrap();
    for suite in Suite::ALL {
        let bundle = device.bundle(suite);
        let parsed =
            Bundle::from_element(&String::from(&bundle.to_element()).parse().unwrap(), 5).unwrap();
        assert_eq!(parsed, bundle);
        parsed.verify().unwrap();
        let list = DeviceList {
            suite,
            devices: vec![
                hush_proto::DeviceEntry::labelled(5, "laptop", device.identity(), &mut rng),
                hush_proto::DeviceEntry::new(6),
            ],
        };
        let back =
            DeviceList::from_element(&String::from(&list.to_element()).parse().unwrap()).unwrap();
        assert_eq!(back.devices.len(), 2);
        if suite == Suite::Omemo2 {
            assert_eq!(
                back.devices[0].verified_label(device.identity().public()),
                Some("laptop")
            );
            let mut forged = back.devices[0].clone();
            forged.label = Some("phone".into());
            assert_eq!(
                forged.verified_label(device.identity().public()),
                None,
                "a label with a bad signature is ignored"
            );
        }
    }
}
