//! Accounts for the tests against a real server (Prosody, ejabberd): a device with a fresh key
//! set in an in-memory store, connected and announced; and the scenarios both servers run.

#![allow(dead_code)]

use std::time::Duration;

use hush_proto::{sce, seal, DeviceEntry, DeviceList, LocalDevice, Recipient, Session, Suite};
use hush_store::MemoryStore;
/// A store holding a new device of `jid`, not yet connected (the same as the devserver tests').
pub use hush_test_support::devserver::offline_device;
use hush_test_support::XmppServer;
use hush_xmpp::{BareJid, ConnectOptions, Hush, XmppClient, XmppError};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Registers `user` (password `pw`) and connects its first device `device_id`, through `via`
/// (`host:port`) when given.
pub async fn account(
    server: &impl XmppServer,
    via: Option<&str>,
    user: &str,
    device_id: u32,
) -> Hush<MemoryStore> {
    let jid = server.register(user, "pw");
    device(server, via, &jid, device_id).await
}

/// Connects and announces a new device `device_id` of the existing account `jid`.
pub async fn device(
    server: &impl XmppServer,
    via: Option<&str>,
    jid: &str,
    device_id: u32,
) -> Hush<MemoryStore> {
    let mut hush = connect(server, via, offline_device(jid, device_id)).await;
    hush.announce().await.unwrap();
    hush
}

/// How the tests connect to `server` (through `via`, a relay, if given).
pub fn options(server: &impl XmppServer, via: Option<&str>) -> ConnectOptions {
    ConnectOptions {
        server: Some(via.map_or_else(|| server.address(), str::to_owned)),
        insecure_loopback: true,
        timeout: Duration::from_secs(20),
        dns: None,
    }
}

/// Connects the account in `store`.
pub async fn connect(
    server: &impl XmppServer,
    via: Option<&str>,
    store: MemoryStore,
) -> Hush<MemoryStore> {
    Hush::connect(store, "pw", &options(server, via))
        .await
        .unwrap()
}

/// Waits (bounded) for the next message and checks its text.
pub async fn expect_text(hush: &mut Hush<MemoryStore>, text: &str) {
    let d = hush
        .receive(Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("`{text}` did not arrive"));
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
}

/// PEP publish and fetch of device lists and bundles in both namespaces (two devices of one
/// account on the single omemo:2 bundles node), an encrypted message each way, contacts
/// without OMEMO, and only ciphertext in what the server stored.
pub async fn omemo_in_both_namespaces(server: &impl XmppServer) {
    let alice_jid = server.register("alice", "alice-pass");
    let bob_jid = server.register("bob", "bob-pass");
    let mut rng = StdRng::seed_from_u64(7);
    let alice_dev = LocalDevice::generate(1001, 30, 0, &mut rng).unwrap();
    let alice_laptop = LocalDevice::generate(1003, 30, 0, &mut rng).unwrap();
    let bob_dev = LocalDevice::generate(2002, 30, 0, &mut rng).unwrap();
    let mut alice = XmppClient::connect(&alice_jid, "alice-pass", &options(server, None))
        .await
        .unwrap();
    let mut bob = XmppClient::connect(&bob_jid, "bob-pass", &options(server, None))
        .await
        .unwrap();
    let alice_bare: BareJid = alice_jid.parse().unwrap();
    let bob_bare: BareJid = bob_jid.parse().unwrap();

    for suite in Suite::ALL {
        // Alice publishes two devices; on the single OMEMO:2 bundles node the second bundle
        // must not push the first out (max_items).
        let list = DeviceList {
            suite,
            devices: vec![DeviceEntry::new(1001), DeviceEntry::new(1003)],
        };
        alice.publish_device_list(&list).await.unwrap();
        alice
            .publish_bundle(&alice_dev.bundle(suite))
            .await
            .unwrap();
        alice
            .publish_bundle(&alice_laptop.bundle(suite))
            .await
            .unwrap();
        // Publishing again (a refill) replaces the item in place.
        alice
            .publish_bundle(&alice_dev.bundle(suite))
            .await
            .unwrap();

        let fetched = bob.device_list(&alice_bare, suite).await.unwrap();
        assert_eq!(
            fetched.devices.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![1001, 1003]
        );
        assert_eq!(
            bob.bundle(&alice_bare, suite, 1003).await.unwrap(),
            alice_laptop.bundle(suite)
        );
        let bundle = bob.bundle(&alice_bare, suite, 1001).await.unwrap();
        assert_eq!(bundle, alice_dev.bundle(suite));

        let text = format!("attack at dawn via {suite}");
        let payload = match suite {
            Suite::Omemo2 => {
                sce::seal(&[sce::body(&text)], &bob_jid, &alice_jid, Some(0), &mut rng).unwrap()
            }
            _ => text.clone().into_bytes(),
        };
        let mut session = Session::initiate(bob_dev.identity(), &bundle, &mut rng).unwrap();
        let el = seal(
            suite,
            2002,
            Some(&payload),
            &mut [Recipient {
                jid: &alice_jid,
                device_id: 1001,
                session: &mut session,
            }],
            &mut rng,
        )
        .unwrap();
        bob.send_message(&hush_engine::MessageStanza::encrypted(
            alice_bare.as_str(),
            el.clone(),
            format!("m-{suite}"),
        ))
        .await
        .unwrap();

        let incoming = alice
            .next_encrypted(Duration::from_secs(20), None)
            .await
            .unwrap()
            .expect("the message arrives");
        assert_eq!(incoming.sender, bob_bare);
        let encrypted = incoming.encrypted().cloned().unwrap().unwrap();
        assert_eq!(encrypted, el);
        assert_eq!(incoming.peer, bob_bare);
        assert_eq!(incoming.ids.origin_id, Some(format!("m-{suite}")));
        let opened = alice_dev
            .open(&encrypted, &alice_jid, &bob_jid, None, &mut rng)
            .unwrap();
        let plain = opened.payload.unwrap();
        let got = match suite {
            Suite::Omemo2 => sce::open(
                &plain,
                sce::Expect {
                    from: &bob_jid,
                    to: &alice_jid,
                    require_to: false,
                },
            )
            .unwrap()
            .content[0]
                .text(),
            _ => String::from_utf8(plain.to_vec()).unwrap(),
        };
        assert_eq!(got, text);
    }

    // Contacts without OMEMO: a clear error, not an empty list.
    let carol_jid = server.register("carol", "carol-pass");
    let carol: BareJid = carol_jid.parse().unwrap();
    let err = bob.device_list(&carol, Suite::Omemo2).await.unwrap_err();
    assert!(matches!(err, XmppError::NothingPublished { .. }), "{err}");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    // The server's archives hold ciphertext only.
    let stored = server.stored_bytes();
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(12).any(|w| w == b"attack at da"),
        "plaintext found in the server's data directory"
    );
}

/// Reads on `hush` (which answers requests for its presence as it reads) until `done` holds
/// for its contacts and the requests it was sent, or fails after 60 s.
pub async fn read_until(
    hush: &mut Hush<MemoryStore>,
    what: &str,
    done: impl Fn(&[hush_xmpp::Contact], &[hush_xmpp::BareJid]) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let contacts = hush.contacts().await.unwrap();
        if done(&contacts, hush.presence_requests()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: not {what} within 60 s: {contacts:?}, asked by {:?}",
            hush.jid(),
            hush.presence_requests()
        );
        // Reading is what lets presence arrive and be answered; nothing else is expected.
        let d = hush.receive(Duration::from_millis(300)).await.unwrap();
        assert!(d.is_none(), "{d:?}");
    }
}

/// Contacts (RFC 6121): Alice adds Bob while he is offline; Bob, online, sees her request and
/// does not answer it until he adds her; Alice, online, accepts his: both ways on both sides.
/// Then she removes him, and he no longer sees her.
pub async fn contacts_both_ways(server: &impl XmppServer) {
    use hush_xmpp::Subscription;
    let mut alice = account(server, None, "alice", 51).await;
    let mut bob = account(server, None, "bob", 61).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    alice.add_contact(&b).await.unwrap();
    let mine = alice.contacts().await.unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        (mine[0].subscription, mine[0].asked),
        (Subscription::None, true)
    );

    read_until(&mut bob, "asked by Alice", |c, asks| {
        c.is_empty() && asks == [a.clone()]
    })
    .await;
    bob.add_contact(&a).await.unwrap();
    read_until(&mut alice, "both ways", |c, _| {
        c.len() == 1 && c[0].jid == b && c[0].subscription == Subscription::Both
    })
    .await;
    read_until(&mut bob, "both ways", |c, asks| {
        c.len() == 1 && c[0].subscription == Subscription::Both && !c[0].asked && asks.is_empty()
    })
    .await;

    alice.remove_contact(&b).await.unwrap();
    assert!(alice.contacts().await.unwrap().is_empty());
    read_until(&mut bob, "no longer subscribed", |c, _| {
        c.len() == 1 && c[0].subscription == Subscription::None
    })
    .await;
}
