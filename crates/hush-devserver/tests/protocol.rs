//! Protocol details checked by hand with a raw client: routing and its errors, disco, roster,
//! Carbons rules, XEP-0359 stanza ids, PEP publish-options preconditions and access models,
//! archive paging with RSM, and offline delivery on initial presence.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use hush_test_support::devserver::{server, Raw};

/// The XEP-0115 verification string of the raw client's disco#info answer below.
fn caps_ver() -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    base64::engine::general_purpose::STANDARD
        .encode(Sha1::digest(b"client/pc//t<urn:example:node+notify<"))
}

fn register(server: &hush_devserver::DevServer, users: &[&str]) {
    for u in users {
        server.register(u, "pw").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_and_its_errors() {
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut alice, alice_full) = Raw::login(&server, "alice", "pw", "a").await;
    let (mut bob, bob_full) = Raw::login(&server, "bob", "pw", "b").await;
    bob.send("<presence/>").await;
    bob.until("<presence").await;

    // To an unknown user: service-unavailable, for messages and IQs (RFC 6121 §8.5.1).
    alice
        .send("<message to='nobody@localhost' id='m1' type='chat'><body>x</body></message>")
        .await;
    let e = alice.until_id("m1").await;
    assert!(
        e.contains("service-unavailable") && e.contains("error"),
        "{e}"
    );
    alice
        .send("<iq to='nobody@localhost' type='get' id='i1'><query xmlns='urn:x'/></iq>")
        .await;
    assert!(alice.until_id("i1").await.contains("service-unavailable"));
    // To a full JID that is not connected.
    alice
        .send("<iq to='bob@localhost/gone' type='get' id='i2'><query xmlns='urn:x'/></iq>")
        .await;
    assert!(alice.until_id("i2").await.contains("service-unavailable"));
    // To another server.
    alice
        .send("<message to='bob@example.org' id='m2'><body>x</body></message>")
        .await;
    assert!(alice
        .until_id("m2")
        .await
        .contains("remote-server-not-found"));
    // A malformed JID.
    alice
        .send("<message to='@@@' id='m3'><body>x</body></message>")
        .await;
    assert!(alice.until_id("m3").await.contains("jid-malformed"));
    // An unknown payload addressed to the server, and an IQ with two payloads.
    alice
        .send("<iq type='get' id='i3'><query xmlns='urn:example:nothing'/></iq>")
        .await;
    assert!(alice.until_id("i3").await.contains("service-unavailable"));
    alice
        .send("<iq type='get' id='i4'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(alice.until_id("i4").await.contains("bad-request"));

    // An IQ to a full JID goes to that session, with the sender stamped.
    alice
        .send(&format!(
            "<iq to='{bob_full}' from='forged@localhost/x' type='get' id='i5'><query xmlns='urn:x'/></iq>"
        ))
        .await;
    let got = bob.until_id("i5").await;
    assert!(got.contains(&alice_full), "{got}");
    assert!(!got.contains("forged"), "{got}");
    bob.send(&format!("<iq to='{alice_full}' type='result' id='i5'/>"))
        .await;
    assert!(alice.until_id("i5").await.contains("result"));

    // A message to the bare JID reaches the available session.
    alice
        .send("<message to='bob@localhost' type='chat' id='m4'><body>hi</body></message>")
        .await;
    let m = bob.until_id("m4").await;
    assert!(m.contains("hi") && m.contains(&alice_full), "{m}");

    // Disco of the server and of an account; the roster is empty.
    alice
        .send("<iq to='localhost' type='get' id='d1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let d = alice.until_id("d1").await;
    for f in ["urn:xmpp:ping", "urn:xmpp:carbons:2", "urn:xmpp:mam:2"] {
        assert!(d.contains(f), "{d}");
    }
    alice
        .send("<iq to='bob@localhost' type='get' id='d2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let d = alice.until_id("d2").await;
    assert!(
        d.contains("pep") && d.contains("pubsub#publish-options"),
        "{d}"
    );
    alice
        .send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await;
    let r = alice.until_id("r1").await;
    assert!(
        r.contains("result") && r.contains("jabber:iq:roster"),
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_stanza_ids_and_offline_delivery() {
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut a1, _) = Raw::login(&server, "alice", "pw", "one").await;
    let (mut a2, _) = Raw::login(&server, "alice", "pw", "two").await;
    for a in [&mut a1, &mut a2] {
        a.send("<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
            .await;
        a.until_id("c").await;
    }
    a1.send("<presence/>").await;
    a2.send("<presence/>").await;
    a2.until("<presence").await;

    // Bob is offline: the message waits, with a stanza id from Bob's archive (the forged one
    // is removed), and a2 gets a sent Carbon.
    a1.send(
        "<message to='bob@localhost' type='chat' id='m1'><body>while you were out</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/></message>",
    )
    .await;
    let carbon = a2.until("</sent>").await;
    assert!(carbon.contains("while you were out"), "{carbon}");
    assert!(carbon.contains("by=\"alice@localhost\"") || carbon.contains("by='alice@localhost'"));
    // A private message gets no Carbon (XEP-0280 §8): once a1's stream has been handled up
    // to a ping after it, the next thing a2 sees is its own ping answer, not a copy.
    a1.send(
        "<message to='bob@localhost' type='chat' id='m2'><body>just me</body>\
         <private xmlns='urn:xmpp:carbons:2'/></message>",
    )
    .await;
    a1.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    a1.until_id("p1").await;
    a2.send("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let before_ping = a2.until_id("p").await;
    assert!(!before_ping.contains("just me"), "{before_ping}");

    let archived = server.archive("bob");
    assert_eq!(archived.len(), 2);
    assert_eq!(server.offline("bob").len(), 2);
    let (mut bob, _) = Raw::login(&server, "bob", "pw", "b").await;
    bob.send("<presence/>").await;
    let first = bob.until("while you were out").await;
    let first = first + &bob.until("</message>").await;
    assert!(!first.contains("forged"), "{first}");
    assert!(first.contains(&archived[0].id), "the archive's id: {first}");
    assert!(first.contains("urn:xmpp:delay"), "{first}");
    bob.until("just me").await;
    assert!(server.offline("bob").is_empty(), "delivered, so gone");

    // Bob answers a1's full JID: a1 gets it, a2 a received Carbon.
    let a1_full = "alice@localhost/one";
    bob.send(&format!(
        "<message to='{a1_full}' type='chat' id='m3'><body>welcome back</body></message>"
    ))
    .await;
    a1.until("welcome back").await;
    let received = a2.until("</received>").await;
    assert!(received.contains("welcome back"), "{received}");
    server.shutdown().await;
}

const PUBLISH_OPEN: &str = "<iq type='set' id='ID'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
    <publish node='urn:example:node'><item id='current'><data xmlns='urn:example'>VALUE</data></item></publish>\
    <publish-options><x xmlns='jabber:x:data' type='submit'>\
    <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='pubsub#access_model'><value>MODEL</value></field></x></publish-options></pubsub></iq>";

fn publish(id: &str, value: &str, model: &str) -> String {
    PUBLISH_OPEN
        .replace("ID", id)
        .replace("VALUE", value)
        .replace("MODEL", model)
}

fn fetch(id: &str, owner: &str) -> String {
    format!(
        "<iq type='get' to='{owner}' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <items node='urn:example:node'/></pubsub></iq>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_preconditions_access_and_notifications() {
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut alice, _) = Raw::login(&server, "alice", "pw", "a").await;
    let (mut bob, _) = Raw::login(&server, "bob", "pw", "b").await;
    // Bob's client announces caps; the server asks what they mean, Bob says +notify.
    let ver = caps_ver();
    let presence = format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:test' ver='{ver}'/></presence>"
    );
    bob.send(&presence).await;
    let query = bob.until("</iq>").await;
    assert!(
        query.contains("disco#info") && query.contains(&format!("urn:test#{ver}")),
        "{query}"
    );
    let id = query
        .split("id=\"")
        .nth(1)
        .or_else(|| query.split("id='").nth(1))
        .and_then(|s| s.split(['"', '\'']).next())
        .unwrap()
        .to_owned();
    bob.send(&format!(
        "<iq type='result' to='localhost' id='{id}'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:test#{ver}'>\
         <identity category='client' type='pc' name='t'/><feature var='urn:example:node+notify'/></query></iq>"
    ))
    .await;

    alice.send(&publish("p1", "one", "open")).await;
    assert!(alice.until_id("p1").await.contains("result"));
    // Bob (another user, open node, +notify) is notified.
    let event = bob.until("</message>").await;
    assert!(
        event.contains("pubsub#event") && event.contains("one"),
        "{event}"
    );
    // Anyone reads an open node.
    bob.send(&fetch("f1", "alice@localhost")).await;
    assert!(bob.until_id("f1").await.contains("one"));
    // A second session with the same caps (verified, so cached) is not asked again, and
    // gets the node's last item as soon as it is available (as Prosody does).
    let (mut bob2, _) = Raw::login(&server, "bob", "pw", "b2").await;
    bob2.send(&presence).await;
    let before = bob2.until("pubsub#event").await;
    assert!(!before.contains("disco#info"), "{before}");
    bob2.until("one").await;

    // Other options than the node has: conflict + precondition-not-met, as Prosody does.
    alice.send(&publish("p2", "two", "whitelist")).await;
    let refused = alice.until_id("p2").await;
    assert!(
        refused.contains("conflict") && refused.contains("precondition-not-met"),
        "{refused}"
    );
    // The owner reconfigures, then publishes without options.
    alice
        .send(
            "<iq type='set' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
             <configure node='urn:example:node'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
             <field var='pubsub#access_model'><value>whitelist</value></field></x></configure></pubsub></iq>",
        )
        .await;
    assert!(alice.until_id("c1").await.contains("result"));
    alice.send(&publish("p3", "three", "whitelist")).await;
    assert!(alice.until_id("p3").await.contains("result"));
    alice
        .send("<iq type='get' id='c2'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='urn:example:node'/></pubsub></iq>")
        .await;
    let form = alice.until_id("c2").await;
    assert!(form.contains("whitelist"), "{form}");
    // Now only the owner reads it, and nobody else is notified.
    bob.send(&fetch("f2", "alice@localhost")).await;
    assert!(bob.until_id("f2").await.contains("forbidden"));
    alice.send(&fetch("f3", "alice@localhost")).await;
    let own = alice.until_id("f3").await;
    assert!(
        own.contains("three") && !own.contains("one"),
        "max_items is 1: {own}"
    );
    // Missing nodes, publishing to someone else.
    bob.send("<iq type='get' to='alice@localhost' id='f4'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='none'/></pubsub></iq>")
        .await;
    assert!(bob.until_id("f4").await.contains("item-not-found"));
    bob.send(
        &publish("p4", "x", "open")
            .replace("<iq type='set'", "<iq type='set' to='alice@localhost'"),
    )
    .await;
    assert!(bob.until_id("p4").await.contains("forbidden"));
    assert_eq!(server.pep_items("alice", "urn:example:node").len(), 1);

    // Retract, then delete.
    alice
        .send("<iq type='set' id='r1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='urn:example:node'><item id='current'/></retract></pubsub></iq>")
        .await;
    assert!(alice.until_id("r1").await.contains("result"));
    assert!(server.pep_items("alice", "urn:example:node").is_empty());
    alice
        .send("<iq type='set' id='x1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='urn:example:node'/></pubsub></iq>")
        .await;
    assert!(alice.until_id("x1").await.contains("result"));
    alice.send(&fetch("f5", "alice@localhost")).await;
    assert!(alice.until_id("f5").await.contains("item-not-found"));
    server.shutdown().await;
}

fn mam(id: &str, rsm: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='urn:xmpp:mam:2' queryid='q-{id}'>\
         <set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set></query></iq>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_paging_by_hand() {
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut alice, _) = Raw::login(&server, "alice", "pw", "a").await;
    for i in 0..7 {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='s{i}'><body>n{i}</body></message>"
            ))
            .await;
    }
    // Not archived: no body, a headline, a chat state.
    alice
        .send("<message to='bob@localhost' type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await;
    alice
        .send("<message to='bob@localhost' type='headline'><body>h</body></message>")
        .await;
    alice
        .send("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    alice.until_id("sync").await;
    let ids: Vec<String> = server.archive("alice").into_iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 7);

    // The form.
    alice
        .send("<iq type='get' id='form'><query xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    assert!(alice.until_id("form").await.contains("jabber:x:data"));
    // Pages of 3 from the start: results first, then the fin.
    alice.send(&mam("a", "<max>3</max>")).await;
    let page = alice.until_id("a").await;
    let at = |s: &str| page.find(s).unwrap();
    assert!(at("n0") < at("n1") && at("n2") < at("<fin"), "{page}");
    assert!(
        !page.contains("n3") && !page.contains("complete=\"true\""),
        "{page}"
    );
    assert!(page.contains("<count>7</count>"), "{page}");
    assert!(page.contains(&format!("<last>{}</last>", ids[2])), "{page}");
    alice
        .send(&mam("b", &format!("<max>5</max><after>{}</after>", ids[2])))
        .await;
    let page = alice.until_id("b").await;
    assert!(page.contains("n3") && page.contains("n6"), "{page}");
    assert!(page.contains("complete=\"true\"") || page.contains("complete='true'"));
    // The last page: an empty <before/>.
    alice.send(&mam("c", "<max>2</max><before/>")).await;
    let page = alice.until_id("c").await;
    assert!(
        page.contains("n5") && page.contains("n6") && !page.contains("n4"),
        "{page}"
    );
    // Ids the archive does not have.
    alice.send(&mam("d", "<after>nonsense</after>")).await;
    assert!(alice.until_id("d").await.contains("item-not-found"));
    alice
        .send(&mam("e", "<before>00000000-000000000001</before>"))
        .await;
    assert!(alice.until_id("e").await.contains("item-not-found"));
    alice.send(&mam("f", "<max>many</max>")).await;
    assert!(alice.until_id("f").await.contains("bad-request"));
    // Someone else's archive.
    alice
        .send("<iq type='set' to='bob@localhost' id='g'><query xmlns='urn:xmpp:mam:2'/></iq>")
        .await;
    assert!(alice.until_id("g").await.contains("forbidden"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_stanzas_get_error_replies_and_nothing_breaks() {
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut alice, _) = Raw::login(&server, "alice", "pw", "a").await;
    // (stanza, the error condition expected in the reply)
    let cases = [
        ("<iq type='bogus' id='o1'><ping xmlns='urn:xmpp:ping'/></iq>", "bad-request"),
        ("<iq type='get' id='o2'/>", "bad-request"),
        ("<message type='bogus' id='o3' to='bob@localhost'><body>x</body></message>", "bad-request"),
        ("<presence type='bogus' id='o4'/>", "bad-request"),
        ("<iq type='set' id='o5'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>again</resource></bind></iq>", "not-allowed"),
        ("<iq type='set' id='o6' to='bob@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>", "forbidden"),
        ("<iq type='set' id='o7'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>wrong</value></field></x></query></iq>", "bad-request"),
        ("<iq type='set' id='o8'><query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'><field var='with'><value>@@</value></field></x></query></iq>", "bad-request"),
        ("<iq type='set' id='o9'><pubsub xmlns='http://jabber.org/protocol/pubsub'/></iq>", "feature-not-implemented"),
        ("<iq type='set' id='o10'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish/></pubsub></iq>", "nodeid-required"),
        ("<iq type='set' id='o11'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><a xmlns='x'/><b xmlns='x'/></item></publish></pubsub></iq>", "invalid-payload"),
        ("<iq type='set' id='o12'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><a xmlns='x'/></item></publish><publish-options><x xmlns='jabber:x:data'><field var='pubsub#max_items'><value>-3</value></field></x></publish-options></pubsub></iq>", "bad-request"),
        ("<iq type='get' id='o13'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items/></pubsub></iq>", "nodeid-required"),
        ("<iq type='get' id='o14'><pubsub xmlns='http://jabber.org/protocol/pubsub'><subscriptions/></pubsub></iq>", "unsupported"),
        ("<iq type='set' id='o15'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><configure node='missing'/></pubsub></iq>", "item-not-found"),
        ("<iq type='set' id='o16'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'/></iq>", "bad-request"),
        ("<iq type='set' id='o17' to='bob@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'><delete node='n'/></pubsub></iq>", "forbidden"),
        ("<iq type='get' id='o18'><query xmlns='http://jabber.org/protocol/disco#info' node='nothing'/></iq>", "item-not-found"),
        ("<iq type='set' id='o19' to='localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'/></pubsub></iq>", "service-unavailable"),
        ("<iq type='set' id='o20'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>", "feature-not-implemented"),
        ("<iq type='set' id='o21'><pubsub xmlns='http://jabber.org/protocol/pubsub'><retract node='n'><item id='x'/></retract></pubsub></iq>", "item-not-found"),
    ];
    for (stanza, condition) in cases {
        alice.send(stanza).await;
        let id = stanza
            .split("id='")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .unwrap();
        let reply = alice.until_id(id).await;
        assert!(
            reply.contains("error") && reply.contains(condition),
            "{stanza}\n→ {reply}"
        );
    }
    // Errors are never answered, results to nobody vanish, and the stream is still fine.
    alice
        .send("<message type='error' to='nobody@localhost'><error type='cancel'/></message>")
        .await;
    alice
        .send("<iq type='result' id='stray' to='localhost'/>")
        .await;
    alice
        .send("<iq type='get' id='ok'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let reply = alice.until_id("ok").await;
    assert!(
        reply.contains("result") && !reply.contains("error"),
        "{reply}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeclared_namespace_prefix_reaches_the_recipient_and_breaks_nothing() {
    // Valid XML that minidom parses and its writer refuses to write as parsed (a prefix an
    // ancestor declared, declared again): the server must still deliver, and keep serving.
    let server = server().await;
    register(&server, &["alice", "bob"]);
    let (mut alice, _) = Raw::login(&server, "alice", "pw", "a").await;
    let (mut bob, _) = Raw::login(&server, "bob", "pw", "b").await;
    bob.send("<presence/>").await;
    bob.until("<presence").await;
    for (id, payload) in [
        (
            "p1",
            "<x xmlns='urn:example' xmlns:p='urn:p'><y xmlns:p='urn:p'/></x>",
        ),
        (
            "p2",
            "<x xmlns='urn:example' xmlns:p='urn:p'><p:y xmlns:p='urn:q'/></x>",
        ),
    ] {
        alice
            .send(&format!(
                "<message to='bob@localhost' type='chat' id='{id}' xmlns:p='urn:p'><body xmlns:p='urn:p'>{id}</body>{payload}</message>"
            ))
            .await;
        let got = bob.until_id(id).await;
        assert!(got.contains(&format!(">{id}<")), "{got}");
    }
    alice
        .send(
            "<message to='bob@localhost' type='chat' id='after'><body>still here</body></message>",
        )
        .await;
    assert!(bob.until_id("after").await.contains("still here"));
    server.shutdown().await;
}
