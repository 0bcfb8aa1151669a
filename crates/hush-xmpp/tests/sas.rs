//! Short authentication strings between real Hush clients through `hush-devserver`: two
//! devices see the same seven words and, once the user confirms, each has the other verified;
//! a server that slips in devices of its own and relays between them cannot make the words on
//! the two real devices match.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_store::{SessionKey, Store, Trust, TrustSource};
use hush_test_support::devserver::device;
use hush_test_support::hostile::*;
use hush_xmpp::{Comparison, SasArrival, XmppError};

/// The next delivery, which must be a step of a comparison.
async fn next_step(hush: &mut Device) -> SasArrival {
    let d = next(hush).await;
    assert!(d.is_sas_notice(), "{d:?}");
    d.sas.unwrap()
}

/// A whole comparison: `i` starts it with device `device` of `r`'s account, `r` accepts, the
/// keys cross. Gives both sides' comparisons.
async fn compare(i: &mut Device, r: &mut Device, device: u32) -> (Comparison, Comparison) {
    let mut ci = i.sas_start(&r.jid().clone(), device).await.unwrap();
    let start = next_step(r).await;
    let mut cr = r.sas_accept(&start).await.unwrap();
    let accept = next_step(i).await;
    assert!(i.sas_continue(&mut ci, &accept).await.unwrap());
    let key = next_step(r).await;
    assert!(r.sas_continue(&mut cr, &key).await.unwrap());
    let key = next_step(i).await;
    assert!(i.sas_continue(&mut ci, &key).await.unwrap());
    (ci, cr)
}

fn key_of(hush: &Device, jid: &str, device: u32) -> hush_proto::IdentityKey {
    *hush
        .store()
        .session(&SessionKey::new(hush_proto::Suite::Omemo2, jid, device))
        .unwrap()
        .unwrap()
        .peer_identity()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_see_the_same_words_and_verify_each_other() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let (a, b) = (alice.jid().to_string(), bob.jid().to_string());
    let (ca, cb) = compare(&mut alice, &mut bob, 22).await;
    let words = ca.code().unwrap().to_string();
    assert_eq!(words, cb.code().unwrap().to_string());
    assert_eq!(words.split(' ').count(), 7, "{words}");
    assert_eq!((ca.them().device, cb.them().device), (22, 11));
    // Both users say the words match.
    alice.sas_confirm(ca).await.unwrap();
    bob.sas_confirm(cb).await.unwrap();
    let bob_key = key_of(&alice, &b, 22);
    assert_eq!(
        alice.store().trust(&b, &bob_key).unwrap(),
        Some(Trust::Verified)
    );
    assert_eq!(
        alice.store().trust_source(&b, &bob_key).unwrap(),
        Some(TrustSource::Sas)
    );
    let alice_key = key_of(&bob, &a, 11);
    assert_eq!(
        bob.store().trust(&a, &alice_key).unwrap(),
        Some(Trust::Verified)
    );
    // The conversation now has strong authentication, and the comparison left no trace in it.
    let report = alice
        .send_text(bob.jid(), "verified by words")
        .await
        .unwrap();
    assert_eq!(
        report.properties.authentication,
        hush_proto::policy::Authentication::Strong
    );
    expect(&mut bob, "verified by words").await;
    assert_eq!(
        alice.store().history(&b, 10).unwrap().len(),
        3,
        "hello bob, hello alice, verified by words"
    );
}

/// The server adds a device of its own to each account and relays: Alice compares with "Bob's
/// new device" (the server's), Bob with "Alice's new device" (the server's). Each of those
/// comparisons works on its own — but Alice's words and Bob's words differ, which the two
/// people see when they compare them; Alice cancels, and nothing is verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_the_middle_cannot_make_the_words_match() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let (a, b) = (alice.jid().to_string(), bob.jid().to_string());
    let mut mole_as_bob = device(&server, &b, 666).await;
    let mut mole_as_alice = device(&server, &a, 777).await;
    let (alice_side, mole_1) = compare(&mut alice, &mut mole_as_bob, 666).await;
    let (mole_2, bob_side) = compare(&mut mole_as_alice, &mut bob, 22).await;
    assert_eq!(alice_side.code(), mole_1.code());
    assert_eq!(mole_2.code(), bob_side.code());
    assert_ne!(
        alice_side.code().unwrap().to_string(),
        bob_side.code().unwrap().to_string(),
        "the words on the two real devices must differ"
    );
    // The people see different words: Alice cancels; the server's device is not verified.
    alice.sas_cancel(alice_side, "mismatch").await.unwrap();
    let cancel = next_step(&mut mole_as_bob).await;
    let mut m1 = mole_1;
    let refused = mole_as_bob
        .sas_continue(&mut m1, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(refused, XmppError::Comparison(_)), "{refused}");
    assert!(refused.to_string().contains("mismatch"), "{refused}");
    let mole_key = key_of(&alice, &b, 666);
    assert_ne!(
        alice.store().trust(&b, &mole_key).unwrap(),
        Some(Trust::Verified)
    );
}

/// A device the user refused cannot be compared with, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_device_is_not_compared_with() {
    let server = server().await;
    let (mut alice, bob) = pair(&server).await;
    let b = bob.jid().to_string();
    let key = key_of(&alice, &b, 22);
    alice
        .store_mut()
        .set_trust(&b, &key, Trust::Distrusted, 1)
        .unwrap();
    let refused = alice.sas_start(&bob.jid().clone(), 22).await.unwrap_err();
    assert!(
        matches!(refused, XmppError::CannotCompare { device: 22, .. }),
        "{refused}"
    );
}
