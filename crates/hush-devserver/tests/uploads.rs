//! The upload service (XEP-0363) checked by hand: its disco, slot requests and their refusals
//! over XMPP with a raw client, and its HTTPS side with a raw TLS client that trusts the
//! server's CA — PUT and GET as a client does them, and every refusal of a malformed,
//! unauthorized or oversized request.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::sync::Arc;
use std::time::Duration;

use hush_devserver::{DevServer, Options, UploadAttack};
use hush_test_support::devserver::{server, Raw, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The text between `start` and the next `end` after it.
fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).unwrap_or_else(|| panic!("no {start} in {s}")) + start.len();
    let len = s[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end} in {s}"));
    &s[from..from + len]
}

/// A slot as the server wrote it: put URL, Authorization value, get URL.
struct Slot {
    put: String,
    auth: String,
    get: String,
}

impl Slot {
    /// The URL's path.
    fn path(url: &str) -> String {
        let rest = url.split_once("://").unwrap().1;
        rest[rest.find('/').unwrap()..].to_owned()
    }
}

/// Asks for a slot over XMPP; returns the answer's text.
async fn ask(raw: &mut Raw, id: &str, attrs: &str) -> String {
    raw.send(&format!(
        "<iq to='upload.localhost' type='get' id='{id}'>\
         <request xmlns='urn:xmpp:http:upload:0' {attrs}/></iq>"
    ))
    .await;
    raw.until_id(id).await.replace('\'', "\"")
}

async fn slot(raw: &mut Raw, id: &str, size: usize) -> Slot {
    let answer = ask(
        raw,
        id,
        &format!("filename='f.bin' size='{size}' content-type='application/octet-stream'"),
    )
    .await;
    assert!(answer.contains("type=\"result\""), "{answer}");
    Slot {
        put: between(&answer, "<put url=\"", "\"").to_owned(),
        auth: between(&answer, "name=\"Authorization\">", "<").to_owned(),
        get: between(&answer, "<get url=\"", "\"").to_owned(),
    }
}

async fn login(server: &DevServer) -> Raw {
    server.register("alice", "pw").unwrap();
    Raw::login(server, "alice", "pw", "a").await.0
}

/// One HTTPS exchange with the upload service: sends `request` as it is, reads to the end.
/// Returns the status code and the whole response.
async fn https(server: &DevServer, request: &[u8]) -> (u16, Vec<u8>) {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.upload_ca_der()))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.upload_address()).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    // The server may answer (and stop reading) before all is written.
    let _ = tls.write_all(request).await;
    let _ = tls.flush().await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server did not close the connection");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, response)
}

fn put(slot: &Slot, auth: Option<&str>, length: Option<usize>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "PUT {} HTTP/1.1\r\nHost: localhost\r\n",
        Slot::path(&slot.put)
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    if let Some(n) = length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

fn get(path: &str, method: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// The response's body (after the blank line).
fn body_of(response: &[u8]) -> &[u8] {
    let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    &response[at + 4..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_is_discovered_and_slots_are_handed_out_or_refused() {
    let server = DevServer::start(Options {
        max_upload_bytes: 1000,
        max_upload_store_bytes: 2500,
        ..Options::default()
    })
    .await
    .unwrap();
    assert_eq!(server.upload_domain(), "upload.localhost");
    let mut raw = login(&server).await;

    raw.send("<iq to='localhost' type='get' id='i1'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await;
    let items = raw.until_id("i1").await.replace('\'', "\"");
    assert!(items.contains("jid=\"upload.localhost\""), "{items}");
    raw.send("<iq to='upload.localhost' type='get' id='i2'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await;
    let info = raw.until_id("i2").await.replace('\'', "\"");
    for needle in [
        "category=\"store\"",
        "type=\"file\"",
        "<feature var=\"urn:xmpp:http:upload:0\">",
        "<value>urn:xmpp:http:upload:0</value>",
        "var=\"max-file-size\"",
        "<value>1000</value>",
    ] {
        assert!(info.contains(needle), "{needle} not in {info}");
    }

    let a = slot(&mut raw, "s1", 1000).await;
    let b = slot(&mut raw, "s2", 1000).await;
    let port = server.upload_address().port();
    assert!(
        a.put
            .starts_with(&format!("https://localhost:{port}/upload/")),
        "{}",
        a.put
    );
    assert!(a.put.ends_with("/f.bin"), "{}", a.put);
    assert_eq!(a.put, a.get);
    assert_ne!(a.put, b.put);
    assert_ne!(a.auth, b.auth);
    assert!(a.auth.len() >= 32, "{}", a.auth);
    assert_eq!(server.upload_requests(), vec!["f.bin", "f.bin"]);

    // Above the limit: not-acceptable, with the limit.
    let big = ask(&mut raw, "s3", "filename='f' size='1001'").await;
    assert!(
        big.contains("not-acceptable") && big.contains("file-too-large"),
        "{big}"
    );
    assert!(big.contains("<max-file-size>1000</max-file-size>"), "{big}");
    // 2000 bytes promised: another 1000 would pass the 2500 the store holds.
    let full = ask(&mut raw, "s4", "filename='f' size='1000'").await;
    assert!(full.contains("resource-constraint"), "{full}");
    assert!(ask(&mut raw, "s5", "filename='f' size='500'")
        .await
        .contains("<slot"));
    // Malformed requests.
    for (id, attrs) in [
        ("b1", "size='10'"),
        ("b2", "filename='f'"),
        ("b3", "filename='a/b' size='10'"),
        ("b4", "filename='f' size='ten'"),
        ("b5", "filename='' size='10'"),
    ] {
        let answer = ask(&mut raw, id, attrs).await;
        assert!(answer.contains("bad-request"), "{attrs}: {answer}");
    }
    raw.send("<iq to='upload.localhost' type='set' id='b6'><request xmlns='urn:xmpp:http:upload:0' filename='f' size='1'/></iq>")
        .await;
    assert!(raw.until_id("b6").await.contains("bad-request"));
    raw.send("<iq to='upload.localhost' type='get' id='b7'><query xmlns='urn:x'/></iq>")
        .await;
    assert!(raw.until_id("b7").await.contains("service-unavailable"));
    raw.send("<iq to='x@upload.localhost' type='get' id='b8'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    assert!(raw.until_id("b8").await.contains("service-unavailable"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_with_its_slots_authorization_and_length_is_kept_and_served() {
    let server = server().await;
    let mut raw = login(&server).await;
    let s = slot(&mut raw, "s1", 5000).await;
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let path = Slot::path(&s.put);

    // Refused before the body is read: nothing is kept.
    let cases: [(Option<&str>, Option<usize>, u16); 5] = [
        (None, Some(5000), 403),
        (Some("Bearer wrong"), Some(5000), 403),
        (Some(s.auth.as_str()), None, 411),
        (Some(s.auth.as_str()), Some(5001), 413),
        (Some(s.auth.as_str()), Some(4999), 400),
    ];
    for (auth, length, status) in cases {
        let (got, response) = https(&server, &put(&s, auth, length, &data)).await;
        assert_eq!(got, status, "{}", String::from_utf8_lossy(&response));
    }
    assert!(server.uploads().is_empty());
    assert_eq!(
        https(&server, &get(&path, "GET")).await.0,
        404,
        "not PUT yet"
    );

    // A body that stops short keeps nothing, and the slot can be tried again.
    let short = put(&s, Some(&s.auth), Some(5000), &data[..100]);
    {
        let (status, _) = https_half_closed(&server, &short).await;
        assert_eq!(status, None, "an answer to a body cut short");
    }
    assert!(server.uploads().is_empty());

    let (status, response) = https(&server, &put(&s, Some(&s.auth), Some(5000), &data)).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&response));
    assert_eq!(server.uploads(), vec![data.clone()]);
    // Once only.
    assert_eq!(
        https(&server, &put(&s, Some(&s.auth), Some(5000), &data))
            .await
            .0,
        409
    );

    let (status, response) = https(&server, &get(&path, "GET")).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&response);
    assert!(text.contains("Content-Length: 5000\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert_eq!(body_of(&response), &data[..]);
    let (status, response) = https(&server, &get(&path, "HEAD")).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&response).contains("Content-Length: 5000\r\n"));
    assert!(body_of(&response).is_empty());

    // The serving attacks, seen from the wire.
    server.set_upload_attack(Some(UploadAttack::Truncate));
    let (_, response) = https(&server, &get(&path, "GET")).await;
    assert_eq!(body_of(&response), &data[..2500]);
    assert!(String::from_utf8_lossy(&response).contains("Content-Length: 2500\r\n"));
    server.set_upload_attack(Some(UploadAttack::FlipByte));
    let (_, response) = https(&server, &get(&path, "GET")).await;
    let served = body_of(&response);
    assert_eq!(served.len(), 5000);
    assert_eq!(served.iter().zip(&data).filter(|(a, b)| a != b).count(), 1);
    server.set_upload_attack(None);
    assert_eq!(
        server.uploads(),
        vec![data],
        "what is stored is not changed"
    );
    server.shutdown().await;
}

/// Sends `request`, then closes the sending side; the status of an answer, if one came.
async fn https_half_closed(server: &DevServer, request: &[u8]) -> (Option<u16>, Vec<u8>) {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.upload_ca_der()))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.upload_address()).await.unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    tls.shutdown().await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut response)).await;
    let status = String::from_utf8_lossy(&response)
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    (status, response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_their_status_and_the_service_goes_on() {
    let server = server().await;
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"POST /upload/x/y HTTP/1.1\r\n\r\n".to_vec(), 405),
        (b"GET /nothing/here HTTP/1.1\r\n\r\n".to_vec(), 404),
        (b"GET /x HTTP/3.0\r\n\r\n".to_vec(), 505),
        (b"GET x HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"\x00\x01\x02 garbage\r\n\r\n".to_vec(), 400),
        (b"GET /x HTTP/1.1\nHost: a\n\n\r\n\r\n".to_vec(), 400),
        (
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            501,
        ),
        (
            b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
            400,
        ),
        (b"PUT /x HTTP/1.1\r\nExpect: magic\r\n\r\n".to_vec(), 417),
        (
            format!("GET /x HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            431,
        ),
    ];
    for (request, status) in cases {
        let (got, response) = https(&server, &request).await;
        assert_eq!(
            got,
            status,
            "{:?} → {}",
            String::from_utf8_lossy(&request[..request.len().min(60)]),
            String::from_utf8_lossy(&response)
        );
    }
    // Plain HTTP on the TLS port is not served at all.
    let mut tcp = TcpStream::connect(server.upload_address()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut back = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut back)).await;
    assert!(
        !String::from_utf8_lossy(&back).contains("HTTP/1.1"),
        "{back:?}"
    );

    // Still serving.
    let mut raw = login(&server).await;
    let s = slot(&mut raw, "s1", 3).await;
    let (status, _) = https(&server, &put(&s, Some(&s.auth), Some(3), b"abc")).await;
    assert_eq!(status, 201);
    assert_eq!(server.uploads(), vec![b"abc".to_vec()]);
    server.shutdown().await;
}
