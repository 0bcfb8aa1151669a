//! Bounded memory and time under a hostile server (issue #12): real Hush clients against
//! `hush-devserver` whose adversary floods a client while it waits for an answer, serves an
//! archive that never ends, or pushes device lists as long as a stanza allows. Each test
//! asserts that what the client keeps, and how long it works, stays bounded — and that
//! nothing the archive holds is lost on the way. The README's hostile-server matrix lists
//! them (32 and up).

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hush_devserver::{DevServer, Element};
use hush_proto::Suite;
use hush_store::Store;
use hush_test_support::devserver::{self, connect, eventually, PATIENCE};
use hush_test_support::hostile::*;
use hush_xmpp::{Delivery, XmppClient, XmppError};

// ---- 32–33. a flood while an answer is awaited ----------------------------------------------

/// What Alice sends while the flood is on; the adversary lets these through as it would.
const REAL: [&str; 3] = ["real one", "real two", "real three"];

/// Bob asks the server something (a ping: `flush`); the server holds the answer back and
/// meanwhile writes `count` messages in clear of `size` bytes each to Bob from a stranger
/// (not archived: delivered straight to the session), then lets Alice's three messages through
/// (archived as usual), then the answer. Returns how many junk messages Bob showed, Alice's
/// texts in the order he showed them, and Bob.
async fn flood_while_bob_waits(count: usize, size: usize) -> (usize, Vec<String>, Device) {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_full = server.sessions("bob").pop().expect("Bob is connected");
    let held: Arc<Mutex<(Option<Element>, usize)>> = Arc::default();
    let hold = held.clone();
    let mut released = false;
    on_delivery(&server, move |to, s| {
        if bare_of(to) != "bob@localhost" || released {
            return vec![s];
        }
        let mut held = hold.lock().unwrap();
        if s.name() == "iq" && s.attr("type") == Some("result") && held.0.is_none() {
            held.0 = Some(s);
            return vec![];
        }
        if is_omemo(&s) {
            held.1 += 1;
            if held.1 == REAL.len() {
                released = true;
                return [Some(s), held.0.take()].into_iter().flatten().collect();
            }
        }
        vec![s]
    });
    let filler = "x".repeat(size);
    let bob_jid = bob.jid().clone();
    let flood = async {
        eventually("Bob's answer is held back", || {
            held.lock().unwrap().0.is_some()
        })
        .await;
        for i in 0..count {
            server.inject(
                &bob_full,
                parse(&format!(
                    "<message xmlns='jabber:client' from='mallory@localhost/m' to='{bob_full}' \
                     type='chat' id='junk-{i}'><body>junk {i} {filler}</body></message>"
                )),
            );
        }
        for text in REAL {
            alice.send_text(&bob_jid, text).await.unwrap();
        }
    };
    // Bob's request and the flood run side by side.
    let (flushed, ()) = tokio::join!(bob.flush(), flood);
    flushed.unwrap();
    honest(&server);
    let (mut junk, mut real) = (0, Vec::new());
    while real.len() < REAL.len() {
        let d = next(&mut bob).await;
        if d.from == "mallory@localhost" {
            junk += 1;
        } else {
            real.push(d.body.unwrap_or_default());
        }
    }
    nothing(&mut bob).await;
    (junk, real, bob)
}

/// How many of `flooded` junk messages Bob kept while he waited, from what he says he dropped
/// (the junk and Alice's three came then; everything after the first drop is dropped). Not
/// all that was kept need be shown: strangers' messages have a budget of their own.
fn kept_of(bob: &Device, flooded: usize) -> usize {
    flooded + REAL.len() - bob.link_stats().not_queued as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_messages_while_an_answer_is_awaited_is_bounded_in_count() {
    let (junk, real, bob) = flood_while_bob_waits(3000, 16).await;
    // Alice's messages were dropped from the full queue like the junk after it, and the
    // archive gave them back: each once, in order.
    assert_eq!(real, REAL);
    let kept = kept_of(&bob, 3000);
    assert!(kept <= 1024, "{kept} flooded messages were kept");
    assert!(junk <= kept, "{junk} shown, {kept} kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_messages_while_an_answer_is_awaited_is_bounded_in_bytes() {
    let (junk, real, bob) = flood_while_bob_waits(6, 1000 * 1024).await;
    assert_eq!(real, REAL);
    // 4 MiB hold at most four of these.
    let kept = kept_of(&bob, 6);
    assert!(kept <= 4, "{kept} flooded messages of 1000 KiB were kept");
    assert!(junk <= kept, "{junk} shown, {kept} kept");
}

// ---- 34–37. archive catch-ups that never end ------------------------------------------------

const RSM: &str = "http://jabber.org/protocol/rsm";

/// The MAM query inside a client's IQ, if it is one: `(iq id, queryid, after)`.
fn archive_query(iq: &Element) -> Option<(String, String, Option<String>)> {
    if iq.name() != "iq" {
        return None;
    }
    let query = iq.get_child("query", "urn:xmpp:mam:2")?;
    let after = query
        .get_child("set", RSM)
        .and_then(|set| set.get_child("after", RSM))
        .map(|a| a.text());
    Some((
        iq.attr("id")?.to_owned(),
        query.attr("queryid")?.to_owned(),
        after,
    ))
}

/// One archive result for query `qid`, with archive id `id`, forwarding `stanza`.
fn archive_result(to: &str, qid: &str, id: &str, stanza: &str) -> Element {
    parse(&format!(
        "<message xmlns='jabber:client' from='bob@localhost' to='{to}'>\
           <result xmlns='urn:xmpp:mam:2' queryid='{qid}' id='{id}'>\
             <forwarded xmlns='urn:xmpp:forward:0'>\
               <delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>{stanza}\
             </forwarded></result></message>"
    ))
}

/// An archived message Hush does not read.
const HEADLINE: &str = "<message xmlns='jabber:client' from='news@localhost' to='bob@localhost' \
                        type='headline'><body>old news</body></message>";

/// The end of a page that says there is more after `last`.
fn incomplete_fin(to: &str, iq_id: &str, last: &str) -> Element {
    parse(&format!(
        "<iq xmlns='jabber:client' type='result' id='{iq_id}' to='{to}'>\
           <fin xmlns='urn:xmpp:mam:2'><set xmlns='{RSM}'>\
             <first index='0'>{last}</first><last>{last}</last><count>1000000000</count>\
           </set></fin></iq>"
    ))
}

/// Bob (offline meanwhile) connects to a server whose archive answers every query with a page
/// of `per_page` results and says there is more, ids advancing, forever. Each page holds the
/// message Bob read first ("hello bob", known: skipped as a copy) and then headlines, which
/// Bob does not read (cheap for the test; they count as results all the same). Returns the
/// catch-up's outcome and how many pages the server served until it ended.
async fn endless_archive(per_page: usize) -> (Result<Vec<Delivery>, XmppError>, usize) {
    let server = server().await;
    let (mut alice, bob) = pair(&server).await;
    let store = bob.close().await.unwrap();
    let read = server
        .archive("bob")
        .into_iter()
        .find(|a| a.stanza.contains("encrypted"))
        .expect("Bob's archive holds what Alice sent")
        .stanza;
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let forger = server.clone();
    on_request(&server, move |from, s| {
        let Some((iq_id, qid, _)) = archive_query(&s).filter(|_| bare_of(from) == "bob@localhost")
        else {
            return vec![s];
        };
        let page = count.fetch_add(1, Ordering::SeqCst);
        let mut last = format!("endless-{page}");
        for i in 0..per_page {
            last = format!("endless-{page}-{i}");
            let stanza = if i == 0 { read.as_str() } else { HEADLINE };
            forger.inject(from, archive_result(from, &qid, &last, stanza));
        }
        forger.inject(from, incomplete_fin(from, &iq_id, &last));
        vec![]
    });
    let mut bob = connect(&server, store).await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), bob.catch_up(0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the catch-up was still going after 60 s and {} pages",
                served.load(Ordering::SeqCst)
            )
        });
    let pages = served.load(Ordering::SeqCst);
    // Once the server behaves, the catch-up resumes (its place is gone: it reads the archive
    // again) and the conversation goes on.
    honest(&server);
    alice
        .send_text(bob.jid(), "after the endless archive")
        .await
        .unwrap();
    expect(&mut bob, "after the endless archive").await;
    nothing(&mut bob).await;
    (outcome, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_whose_pages_never_end_is_cut_off_by_results() {
    let (outcome, pages) = endless_archive(100).await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(err, XmppError::ArchiveTooLong { results, .. } if results > 20_000),
        "{err}"
    );
    assert!(pages <= 202, "{pages} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_of_empty_pages_that_never_ends_is_cut_off_by_pages() {
    let (outcome, pages) = endless_archive(0).await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(err, XmppError::ArchiveTooLong { pages: 1001, .. }),
        "{err}"
    );
    assert!(pages <= 1002, "{pages} pages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_that_always_loses_our_place_is_cut_off() {
    let server = server().await;
    let (mut alice, store) = bob_away(&server, "while bob was away").await;
    // Every query that resumes after an id is answered "no such id" (as if the archive had
    // expired it), and no page ever says it is complete: Bob reads the archive from the
    // start again, and again.
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    let forger = server.clone();
    let adversary = Rules {
        from_client: Some(Box::new(move |from: &str, s: Element| {
            let Some((iq_id, _, Some(_))) =
                archive_query(&s).filter(|_| bare_of(from) == "bob@localhost")
            else {
                return vec![s];
            };
            count.fetch_add(1, Ordering::SeqCst);
            forger.inject(
                from,
                parse(&format!(
                    "<iq xmlns='jabber:client' type='error' id='{iq_id}' to='{from}'>\
                       <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                )),
            );
            vec![]
        })),
        to_client: Some(Box::new(|to: &str, s: Element| {
            if bare_of(to) == "bob@localhost" && s.name() == "iq" {
                return vec![parse(&xml(&s).replace(" complete='true'", ""))];
            }
            vec![s]
        })),
    };
    server.set_adversary(Some(Box::new(adversary)));
    let mut bob = connect(&server, store).await;
    let outcome = tokio::time::timeout(Duration::from_secs(60), bob.catch_up(0))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the catch-up was still going after 60 s and {} restarts",
                served.load(Ordering::SeqCst)
            )
        });
    // The message was read (and committed) on the first pass; it is returned once.
    let texts: Vec<String> = outcome
        .unwrap()
        .into_iter()
        .filter_map(|d| d.body)
        .collect();
    assert_eq!(texts, ["while bob was away"]);
    assert!(served.load(Ordering::SeqCst) <= 501, "{served:?} restarts");
    honest(&server);
    alice.send_text(bob.jid(), "back to normal").await.unwrap();
    expect(&mut bob, "back to normal").await;
    nothing(&mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_page_that_never_ends_times_out() {
    let server = server().await;
    let (_alice, store) = bob_away(&server, "while bob was away").await;
    // The results come, the end of the page (`<fin/>`) never does.
    on_delivery(&server, |to, s| {
        if bare_of(to) == "bob@localhost" && s.name() == "iq" && xml(&s).contains("<fin ") {
            return vec![];
        }
        vec![s]
    });
    let mut bob = connect(&server, store).await;
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(60), bob.catch_up(0))
        .await
        .expect("the catch-up was still going after 60 s");
    let err = outcome.unwrap_err();
    assert!(matches!(err, XmppError::Timeout(_)), "{err}");
    // The request timeout (20 s), counted once for the page, not restarted by its results.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    honest(&server);
    expect(&mut bob, "while bob was away").await;
    nothing(&mut bob).await;
}

// ---- 38–39. device lists as long as a stanza allows -----------------------------------------

/// A PEP notification from `owner` carrying a device list of `suite` with the ids `ids`, each
/// labelled `label` when it is not empty.
fn device_list_push(
    owner: &str,
    to: &str,
    suite: Suite,
    ids: impl IntoIterator<Item = u32>,
    label: &str,
) -> Element {
    parse(&device_list_push_text(owner, to, suite, ids, label))
}

/// The same as text, as compact as XML allows: 50,000 devices fit in one stanza of less than
/// the 1 MiB the client reads (the devserver's serializer spells things out at more length).
fn device_list_push_text(
    owner: &str,
    to: &str,
    suite: Suite,
    ids: impl IntoIterator<Item = u32>,
    label: &str,
) -> String {
    let root = if suite == Suite::Omemo2 {
        "devices"
    } else {
        "list"
    };
    let label = if label.is_empty() {
        String::new()
    } else {
        format!(" label='{label}'")
    };
    let entries: String = ids
        .into_iter()
        .map(|id| format!("<device id='{id}'{label}/>"))
        .collect();
    format!(
        "<message xmlns='jabber:client' from='{owner}' to='{to}' type='headline'>\
           <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{}'>\
             <item id='current'><{root} xmlns='{}'>{entries}</{root}></item>\
           </items></event></message>",
        suite.devices_node(),
        suite.namespace()
    )
}

/// The devices of `jid` that `hush` has recorded as listed.
fn listed(hush: &Device, suite: Suite, jid: &str) -> Vec<u32> {
    hush.store()
        .devices(suite, jid)
        .unwrap()
        .into_iter()
        .filter(|d| d.listed)
        .map(|d| d.device_id)
        .collect()
}

/// How long Bob takes to read `push` (written as these exact bytes) and a message after it:
/// his `receive` returns the message once the push before it was read.
async fn time_to_read(server: &DevServer, bob: &mut Device, push: String, n: usize) -> Duration {
    assert!(push.len() < 1 << 20, "the push fits in one stanza");
    let bob_full = server.sessions("bob").pop().expect("Bob is connected");
    let started = Instant::now();
    server.inject_raw(&bob_full, push.into_bytes());
    server.inject(
        &bob_full,
        parse(&format!(
            "<message xmlns='jabber:client' from='carol@localhost/c' to='{bob_full}' \
             type='chat' id='marker-{n}'><body>marker {n}</body></message>"
        )),
    );
    let d = next(bob).await;
    assert_eq!(d.body, Some(format!("marker {n}")));
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_list_pushes_of_50000_devices_are_read_in_linear_time_and_ignored() {
    let server = server().await;
    let (_alice, mut bob) = pair(&server).await;
    let bob_full = server.sessions("bob").pop().expect("Bob is connected");
    let owners = [
        ("alice@localhost", Suite::Omemo2),
        ("bob@localhost", Suite::Legacy),
    ];
    // Each list twice, as many bytes each time: 129 ids over and over (little to compare,
    // even for a parser that compares each id with every earlier one), then 50,000 different
    // ids. Both are too long to be taken (129 devices at least). Reading a stanza of about
    // 1 MB takes the network library most of a second unoptimised; comparing every id with
    // every earlier one added about 5 s per list.
    let (mut few, mut different) = (Duration::ZERO, Duration::ZERO);
    for (n, (owner, suite)) in owners.into_iter().enumerate() {
        let repeated = (0..50_000).map(|i| 10_000 + i % 129);
        let again = device_list_push_text(owner, &bob_full, suite, repeated, "");
        few += time_to_read(&server, &mut bob, again, 2 * n).await;
        let all = device_list_push_text(owner, &bob_full, suite, 10_000..60_000, "");
        different += time_to_read(&server, &mut bob, all, 2 * n + 1).await;
    }
    // Generous, and measured against the same work on the same machine at the same time.
    assert!(
        different < few * 3 + Duration::from_millis(500),
        "50,000 different ids took {different:?}, 129 ids over and over {few:?}"
    );
    // They were read, not cut off as oversized (which would drop the connection) ...
    assert_eq!(bob.link_stats().drops, 0, "{:?}", bob.link_stats());
    // ... and none of them was taken for a real list (the pushed ids are 10,000 and up).
    for (owner, suite) in owners {
        let ids = listed(&bob, suite, owner);
        assert!(
            ids.iter().all(|id| *id < 10_000),
            "{owner} {suite}: {ids:?}"
        );
    }
    assert_eq!(listed(&bob, Suite::Omemo2, "alice@localhost"), [11]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_lists_over_the_limit_are_not_kept_by_the_client() {
    let server = server().await;
    server.register("bob", "pw").unwrap();
    let mut client = XmppClient::connect("bob@localhost", "pw", &devserver::options(&server))
        .await
        .unwrap();
    let full = server.sessions("bob").pop().expect("Bob is connected");
    let label = "L".repeat(2_000);
    for suite in Suite::ALL {
        for push in [
            // One device too many; the most any account may have; a few devices whose labels
            // make the list heavier than 128 ordinary ones.
            device_list_push("alice@localhost", &full, suite, 1..=129, ""),
            device_list_push("carol@localhost", &full, suite, 1..=128, ""),
            device_list_push("dave@localhost", &full, suite, 1..=40, &label),
        ] {
            server.inject(&full, push);
        }
    }
    // A message after the pushes: once it is read, the pushes before it were too.
    server.inject(
        &full,
        parse(&format!(
            "<message xmlns='jabber:client' from='carol@localhost/c' to='{full}' type='chat'>\
               <body>marker</body></message>"
        )),
    );
    let marker = client.next_encrypted(PATIENCE, None).await.unwrap();
    assert!(marker.is_some(), "the marker did not arrive");
    let kept: Vec<(String, Suite, usize)> = client
        .take_device_list_updates()
        .into_iter()
        .map(|(jid, list)| (jid.to_string(), list.suite, list.devices.len()))
        .collect();
    let want: Vec<(String, Suite, usize)> = Suite::ALL
        .into_iter()
        .map(|suite| ("carol@localhost".to_owned(), suite, 128))
        .collect();
    assert_eq!(kept, want);
}

// ---- 40. our own device list, pushed full of forged devices ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_own_list_of_forged_devices_is_not_republished_over_the_limit() {
    let server = server().await;
    let (mut alice, mut bob) = pair(&server).await;
    let bob_full = server.sessions("bob").pop().expect("Bob is connected");
    // The server pushes Bob "his" device list: 128 devices he never heard of, without him.
    // Bob adds himself back (as XEP-0384 asks) — which would make 129.
    server.inject(
        &bob_full,
        device_list_push("bob@localhost", &bob_full, Suite::Omemo2, 5000..5128, ""),
    );
    alice.send_text(bob.jid(), "marker").await.unwrap();
    expect(&mut bob, "marker").await;
    // Nothing over the limit went out: the list on the server is still Bob's own.
    let published: Vec<String> = server
        .pep_items("bob", Suite::Omemo2.devices_node())
        .iter()
        .map(xml)
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].matches("<device ").count(), 1, "{published:?}");
    // And both still write to each other.
    bob.send_text(alice.jid(), "still reachable").await.unwrap();
    expect(&mut alice, "still reachable").await;
    alice.send_text(bob.jid(), "both ways").await.unwrap();
    expect(&mut bob, "both ways").await;
}
