//! Answers a hostile server sends that xmpp-parsers cannot read (issue #13): real Hush clients
//! against `hush-devserver` whose adversary removes a part the XEPs require from an archive
//! page's end or from bundle answers. Each is an error that says so, never a guess, and nothing
//! is lost: once the server behaves, the conversation goes on. The README's hostile-server
//! matrix lists them (42 and 43).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hush_test_support::devserver::{connect, device};
use hush_test_support::hostile::*;
use hush_xmpp::XmppError;

/// `xml` without its first `<set …>…</set>`.
fn without_set(xml: &str) -> Option<String> {
    let start = xml.find("<set ")?;
    let end = xml[start..].find("</set>")? + start + "</set>".len();
    Some(format!("{}{}", &xml[..start], &xml[end..]))
}

/// `xml` without ` complete='true'` (or with double quotes).
fn without_complete(xml: &str) -> String {
    xml.replace(" complete='true'", "")
        .replace(" complete=\"true\"", "")
}

/// Makes the server strip the RSM `<set/>` from every `<fin/>` it sends Bob, and its
/// `complete='true'` too unless `keep_complete`; counts the pages it mangled.
fn strip_fins(server: &hush_devserver::DevServer, keep_complete: bool) -> Arc<AtomicUsize> {
    let mangled = Arc::new(AtomicUsize::new(0));
    let count = mangled.clone();
    on_delivery(server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == "bob@localhost" && s.name() == "iq" && text.contains("<fin ") {
            if let Some(stripped) = without_set(&text) {
                count.fetch_add(1, Ordering::SeqCst);
                let stripped = if keep_complete {
                    stripped
                } else {
                    without_complete(&stripped)
                };
                return vec![parse(&stripped)];
            }
        }
        vec![s]
    });
    mangled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_page_end_without_its_set_is_an_error_and_loses_nothing() {
    let server = server().await;
    let (_alice, store) = bob_away(&server, "while bob was away").await;
    // Every `<fin/>` to Bob loses its RSM `<set/>`, which XEP-0313 requires, and the claim
    // that the archive is complete: where the next page starts is unknown.
    let mangled = strip_fins(&server, false);
    let mut bob = connect(&server, store).await;
    let err = bob.catch_up(0).await.unwrap_err();
    assert!(
        matches!(
            err,
            XmppError::ArchiveMisbehaves(hush_xmpp::ArchiveFault::UnreadableEnd)
        ),
        "{err}"
    );
    assert!(mangled.load(Ordering::SeqCst) >= 1);
    // Nothing was taken for read: once the server behaves, the message arrives.
    honest(&server);
    expect(&mut bob, "while bob was away").await;
    nothing(&mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_says_it_is_complete_needs_no_set() {
    let server = server().await;
    let (_alice, store) = bob_away(&server, "while bob was away").await;
    // The `<set/>` is missing but the `<fin/>` says the archive is complete: there is no next
    // page to find, so the page is read — once, however often the catch-up runs.
    let mangled = strip_fins(&server, true);
    let mut bob = connect(&server, store).await;
    let caught = caught_up(&mut bob).await;
    assert_eq!(caught, ["while bob was away"]);
    assert!(mangled.load(Ordering::SeqCst) >= 1);
    let again = caught_up(&mut bob).await;
    assert!(again.is_empty(), "{again:?}");
    nothing(&mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_answer_that_cannot_be_read_refuses_the_send_and_says_why() {
    let server = server().await;
    let (mut alice, _bob) = pair(&server).await;
    let dave = server.register("dave", "pw").unwrap();
    let mut dave = device(&server, &dave, 44).await;
    // The answers to Alice's bundle fetches lose the node of their `<items/>`, which
    // XEP-0060 requires.
    let mangled = Arc::new(AtomicUsize::new(0));
    let count = mangled.clone();
    on_delivery(&server, move |to, s| {
        let text = xml(&s);
        if bare_of(to) == "alice@localhost" && s.name() == "iq" && text.contains("bundles") {
            if let Some(at) = text.find("<items node=") {
                count.fetch_add(1, Ordering::SeqCst);
                let stripped = format!("{}<items x-node={}", &text[..at], &text[at + 12..]);
                return vec![parse(&stripped)];
            }
        }
        vec![s]
    });
    let err = alice
        .send_text(dave.jid(), "to dave")
        .await
        .expect_err("no device of Dave's could be read");
    assert!(matches!(err, XmppError::NotSent { .. }), "{err}");
    assert!(err.to_string().contains("cannot be read"), "{err}");
    assert!(mangled.load(Ordering::SeqCst) >= 1);
    nothing(&mut dave).await;
    honest(&server);
    alice.send_text(dave.jid(), "to dave, again").await.unwrap();
    expect(&mut dave, "to dave, again").await;
}
