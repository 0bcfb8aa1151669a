//! A store put back behind Hush's back — the file replaced by an older copy, as a snapshot or
//! a backup tool would — is found on the next connect, from what the server shows of this
//! device, and repaired before anything is sent: the next message starts a new session
//! instead of reusing message keys the contact already saw used.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};

use hush_devserver::DevServer;
use hush_proto::Suite;
use hush_store::{Direction, Failure, SessionKey, SqliteStore, Store};
use hush_test_support::devserver::{account, expect_text, new_keys, options, server, PATIENCE};
use hush_xmpp::{BareJid, Hush};

/// A scratch directory for this test's store files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rollback-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A new account `user` whose device `device_id` keeps its state in the SQLite file `path`,
/// connected and announced.
async fn file_account(
    server: &DevServer,
    user: &str,
    device_id: u32,
    path: &Path,
) -> Hush<SqliteStore> {
    let jid = server.register(user, "pw").unwrap();
    let mut store = SqliteStore::open(path, &Default::default()).unwrap();
    store.create_account(&jid, &new_keys(device_id)).unwrap();
    let mut hush = Hush::connect(store, "pw", &options(server)).await.unwrap();
    hush.announce().await.unwrap();
    hush
}

/// Connects the device kept in `path` again.
async fn reopen(server: &DevServer, path: &Path) -> Hush<SqliteStore> {
    let store = SqliteStore::open(path, &Default::default()).unwrap();
    Hush::connect(store, "pw", &options(server)).await.unwrap()
}

/// Closes the connection and the store (closing the last handle folds the write-ahead log
/// into the file, so the file alone is the whole store).
async fn shut(hush: Hush<SqliteStore>) {
    drop(hush.close().await.unwrap());
}

/// The next delivery, which must be the text `text` from `from`, read without error.
async fn expect_from<S: Store>(hush: &mut Hush<S>, from: &BareJid, text: &str) {
    let d = hush
        .receive(PATIENCE)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("`{text}` did not arrive"));
    assert_eq!(d.failure, None, "{d:?}");
    assert_eq!(d.from, from.as_str(), "{d:?}");
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
}

/// Alice sends on a session, her store file is put back to a copy from before, and she
/// reconnects: the messages she sent since the copy are in her archive but not in her store.
/// The connect finds them, rewinds her sessions and says so once; her next message reaches Bob
/// on a new session (the rewound one would repeat the message keys of "three" and "four", and
/// Bob could not read it), and the conversation goes on both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_after_the_copy_show_the_rollback() {
    let server = server().await;
    let dir = scratch("sent");
    let path = dir.join("store.db");
    let mut alice = file_account(&server, "alice", 11, &path).await;
    let mut bob = account(&server, "bob", 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    alice.send_text(&b, "one").await.unwrap();
    expect_from(&mut bob, &a, "one").await;
    bob.send_text(&a, "two").await.unwrap();
    expect_from(&mut alice, &b, "two").await;
    shut(alice).await;
    let copy = dir.join("copy.db");
    std::fs::copy(&path, &copy).unwrap();

    let mut alice = reopen(&server, &path).await;
    assert!(
        alice.take_rollback_notice().is_none(),
        "nothing happened yet"
    );
    alice.send_text(&b, "three").await.unwrap();
    alice.send_text(&b, "four").await.unwrap();
    expect_from(&mut bob, &a, "three").await;
    expect_from(&mut bob, &a, "four").await;
    shut(alice).await;

    // The old copy takes the file's place.
    std::fs::copy(&copy, &path).unwrap();
    let mut alice = reopen(&server, &path).await;
    let notice = alice
        .take_rollback_notice()
        .expect("the rollback is reported");
    assert!(
        matches!(notice.warning, Some(hush_xmpp::Warning::RolledBack)),
        "{notice:?}"
    );
    assert!(
        matches!(&notice.failure, Some(Failure::RolledBack { evidence })
            if evidence.contains("2 message(s) this device sent")),
        "{notice:?}"
    );
    assert!(alice.take_rollback_notice().is_none(), "reported once");
    assert!(alice.rollback_found());
    let key = SessionKey::new(Suite::Omemo2, b.as_str(), 22);
    assert_eq!(
        alice.store().sessions_needing_reset().unwrap(),
        std::slice::from_ref(&key)
    );
    let lost: Vec<_> = alice
        .store()
        .history(b.as_str(), 10)
        .unwrap()
        .into_iter()
        .filter(|m| m.direction == Direction::Out && m.body.is_none())
        .collect();
    assert_eq!(
        lost.len(),
        2,
        "both lost messages are in history, without text"
    );

    let before = alice.store().session(&key).unwrap().unwrap();
    alice.send_text(&b, "five").await.unwrap();
    let after = alice.store().session(&key).unwrap().unwrap();
    assert_ne!(
        before.to_bytes().as_slice(),
        after.to_bytes().as_slice(),
        "the session changed"
    );
    assert!(
        alice.store().sessions_needing_reset().unwrap().is_empty(),
        "the rewound session was replaced"
    );
    // Bob reads it: no message key of the lost messages was used again.
    expect_from(&mut bob, &a, "five").await;
    bob.send_text(&a, "six").await.unwrap();
    expect_from(&mut alice, &b, "six").await;
    let failures: Vec<_> = bob
        .store()
        .history(a.as_str(), 100)
        .unwrap()
        .into_iter()
        .filter_map(|m| m.failure)
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    shut(alice).await;

    // Repaired, the store shows no rollback on the next connect.
    let mut alice = reopen(&server, &path).await;
    assert!(alice.take_rollback_notice().is_none());
    alice.send_text(&b, "seven").await.unwrap();
    expect_text(&mut bob, "seven").await;
}

/// Bob's first message uses one of Alice's one-time prekeys, and Alice republishes her bundle
/// without it; then her store file is put back to a copy from before. Her published bundle
/// now holds prekeys her store never issued: the connect reports the rollback, takes the
/// prekey Bob used out of what she offers (it must not be handed out twice), and she still
/// reads Bob's message again from the archive and answers on the session it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_published_after_the_copy_shows_the_rollback() {
    let server = server().await;
    let dir = scratch("bundle");
    let path = dir.join("store.db");
    let alice = file_account(&server, "alice", 11, &path).await;
    let mut bob = account(&server, "bob", 22).await;
    let (a, b) = (alice.jid().clone(), bob.jid().clone());
    let offered = |hush: &Hush<SqliteStore>| -> Vec<u32> {
        let device = hush.store().account().unwrap().unwrap().device;
        device
            .bundle(Suite::Omemo2)
            .prekeys
            .iter()
            .map(|(id, _)| *id)
            .collect()
    };
    let before = offered(&alice);
    shut(alice).await;
    let copy = dir.join("copy.db");
    std::fs::copy(&path, &copy).unwrap();

    let mut alice = reopen(&server, &path).await;
    bob.send_text(&a, "hello").await.unwrap();
    expect_from(&mut alice, &b, "hello").await;
    let used: Vec<u32> = before
        .iter()
        .copied()
        .filter(|id| !offered(&alice).contains(id))
        .collect();
    assert_eq!(used.len(), 1, "Bob's key exchange used one prekey");
    shut(alice).await;

    std::fs::copy(&copy, &path).unwrap();
    let mut alice = reopen(&server, &path).await;
    let notice = alice
        .take_rollback_notice()
        .expect("the rollback is reported");
    assert!(
        matches!(&notice.failure, Some(Failure::RolledBack { evidence })
            if evidence.contains("one-time prekey")),
        "{notice:?}"
    );
    assert!(
        !offered(&alice).contains(&used[0]),
        "the prekey Bob used is not offered again"
    );
    // A catch-up from the account's start (what `hush recv` does) reads Bob's message again:
    // it was lost with the rest, and the prekey it used is kept for late key exchanges.
    let found = alice.catch_up(0).await.unwrap();
    let texts: Vec<_> = found
        .iter()
        .map(|d| (d.from.as_str(), d.body.as_deref(), d.failure.as_ref()))
        .collect();
    assert_eq!(texts, [(b.as_str(), Some("hello"), None)]);
    alice.send_text(&b, "hello back").await.unwrap();
    expect_from(&mut bob, &a, "hello back").await;
}

/// A run that stopped between saving new keys (used prekeys retired, the pool refilled) and
/// publishing them left the server offering prekeys the store no longer has. That is no
/// rollback (the store is ahead of the server, not behind): the next connect publishes the
/// bundle again, so new contacts get prekeys that work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_saved_but_never_published_is_published_on_connect() {
    let server = server().await;
    let dir = scratch("unpublished");
    let path = dir.join("alice.db");
    let alice = file_account(&server, "alice", 11, &path).await;
    let published_item = |server: &DevServer| {
        server
            .pep_items("alice", "urn:xmpp:omemo:2:bundles")
            .into_iter()
            .map(|i| String::from(&i))
            .find(|i| i.contains("id='11'"))
            .expect("the bundle is published")
    };
    let before = published_item(&server);
    shut(alice).await;
    // What `maintain_keys` saves, without the publication that follows it.
    let mut store = SqliteStore::open(&path, &Default::default()).unwrap();
    let mut keys = store.account().unwrap().unwrap().device;
    let first = keys.bundle(Suite::Omemo2).prekeys[0].0;
    keys.retire_prekey(first, 0);
    keys.refill_prekeys(20, &mut rand_core::UnwrapErr(rand::rngs::SysRng));
    store.retire_prekeys(&keys).unwrap();
    drop(store);
    assert_eq!(published_item(&server), before, "nothing published yet");
    let mut alice = reopen(&server, &path).await;
    let after = published_item(&server);
    assert_ne!(after, before, "the bundle was published again");
    let item: hush_devserver::Element = after.parse().unwrap();
    let bundle = item.children().next().expect("the bundle in the item");
    let published = hush_proto::Bundle::from_element(bundle, 11).unwrap();
    let now_stored = alice.store().account().unwrap().unwrap().device;
    assert_eq!(published, now_stored.bundle(Suite::Omemo2));
    assert!(published.prekeys.iter().all(|(id, _)| *id != first));
    assert!(alice.take_rollback_notice().is_none(), "no rollback");
    shut(alice).await;
}
