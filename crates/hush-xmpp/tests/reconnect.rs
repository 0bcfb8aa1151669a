//! A flaky link between Alice and a real Prosody: the connection is cut and new connections are
//! refused for a while, so the client has to retry with backoff. With Stream Management
//! (XEP-0198) the session resumes and nothing is lost; without it the session is rebuilt and
//! what was sent meanwhile comes from offline storage and the archive, exactly once.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hush_store::Store;
use hush_test_support::prosody::Prosody;
use hush_xmpp::BareJid;
use support::{account, expect_text};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay to the server that the test can cut, and keep shut until it reopens it.
struct Link {
    port: u16,
    /// `true` while the link is down; every change cuts the connections of the moment.
    down: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
}

impl Link {
    async fn to(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (down, watch_down) = watch::channel(false);
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *watch_down.borrow() {
                    drop(client); // refused while down
                    continue;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let mut cut = watch_down.clone();
                cut.mark_unchanged(); // only a change after this connection cuts it
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = cut.changed() => {}
                    }
                    // Dropping both halves closes both sockets: each side sees the link die.
                });
            }
        });
        Self {
            port,
            down,
            connections,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        self.down.send_replace(true);
    }

    fn restore(&self) {
        self.down.send_replace(false);
    }
}

/// Cuts Alice's link, sends while she is away, restores the link and checks that everything
/// arrives once, both ways.
async fn flaky_link(server: Prosody, resumable: bool) {
    let link = Link::to(server.port).await;
    let mut alice = account(&server, Some(&link.address()), "alice", 11).await;
    let mut bob = account(&server, None, "bob", 22).await;
    let alice_jid: BareJid = alice.jid().clone();
    let bob_jid: BareJid = bob.jid().clone();

    bob.send_text(&alice_jid, "before the cut").await.unwrap();
    expect_text(&mut alice, "before the cut").await;
    alice.send_text(&bob_jid, "hello bob").await.unwrap();
    expect_text(&mut bob, "hello bob").await;

    link.cut();
    let before = link.connections.load(Ordering::SeqCst);
    // Bob's message reaches the server while Alice cannot connect; the ping makes sure the
    // server has handled it before the link comes back.
    bob.send_text(&alice_jid, "while you were away")
        .await
        .unwrap();
    bob.flush().await.unwrap();
    link.restore();

    expect_text(&mut alice, "while you were away").await;
    assert!(
        link.connections.load(Ordering::SeqCst) > before,
        "Alice reconnected"
    );
    let stats = alice.link_stats();
    assert_eq!(stats.drops, 1, "{stats:?}");
    if resumable {
        assert_eq!((stats.resumed, stats.rebuilt), (1, 0), "{stats:?}");
    } else {
        assert_eq!((stats.resumed, stats.rebuilt), (0, 1), "{stats:?}");
    }
    alice.send_text(&bob_jid, "back again").await.unwrap();
    expect_text(&mut bob, "back again").await;
    // Exactly once: nothing else is waiting for Alice.
    let extra = alice.receive(Duration::from_secs(3)).await.unwrap();
    assert!(extra.is_none(), "delivered twice: {extra:?}");
    let history = alice.store().history(bob_jid.as_str(), 100).unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|m| m.body.as_deref() == Some(b"while you were away".as_slice()))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_management_resumes_without_loss() {
    flaky_link(Prosody::start("reconnect-sm"), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stream_management_the_archive_fills_the_gap() {
    flaky_link(Prosody::start_without("reconnect-nosm", &["smacks"]), false).await;
}
