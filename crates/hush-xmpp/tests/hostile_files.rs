//! Hostile upload services (XEP-0363 with encrypted files): `hush-devserver`'s HTTPS upload
//! service serving a shared file changed, cut, extended or swapped for another, answering
//! slots with `http://` URLs, or with a get URL where nothing listens. Each attack is
//! detected: nothing the server changed is ever saved (the download directory stays empty),
//! nothing goes over plain HTTP, and a message is only sent once its file is uploaded. An
//! honest service gets the file through whole, and holds only ciphertext under a name that
//! says nothing. (The `World` checks, when each test ends, that no stored message holds a text
//! in clear.)
//!
//! Every account trusts the devserver's upload CA through `Hush::trust_for_files`, not
//! through `SSL_CERT_FILE`.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hush_devserver::{DevServer, Options, UploadAttack};
use hush_files::{FileError, SharedFile, TAG_LEN};
use hush_test_support::hostile::*;
use hush_xmpp::{BareJid, NoProgress, TransferError, XmppError};
use rand::RngExt;

/// A fresh, empty directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill(&mut data[..]);
    data
}

/// The names in `dir` (hidden `.part` files included), sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Alice and Bob as [`pair`] makes them, both trusting the upload service's CA.
async fn file_pair(server: &DevServer) -> (Device, Device) {
    let (mut alice, mut bob) = pair(server).await;
    alice.trust_for_files(server.upload_ca_der());
    bob.trust_for_files(server.upload_ca_der());
    (alice, bob)
}

/// Writes `content` to `dir/name` and has Alice share it with Bob; returns the file as Bob
/// received it.
async fn share(
    alice: &mut Device,
    bob: &mut Device,
    dir: &Path,
    name: &str,
    content: &[u8],
) -> SharedFile {
    std::fs::write(dir.join(name), content).unwrap();
    let bob_jid = bob.jid().clone();
    let sent = alice
        .send_file(&bob_jid, &dir.join(name), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(sent.report.devices.len(), 1, "{:?}", sent.report);
    let d = next(bob).await;
    assert_eq!(d.from, "alice@localhost", "{d:?}");
    assert!(d.failure.is_none(), "{d:?}");
    let file = d.file.unwrap_or_else(|| panic!("no file in the delivery"));
    assert_eq!(file.name.as_deref(), Some(name));
    assert_eq!(file.size, Some(content.len() as u64));
    file
}

/// Alice shares one file with Bob through an honest service; the server then serves it as
/// `attack` says. Bob's fetch must fail; the error is returned after checking that nothing
/// was kept — and that the same link reads once the service is honest again (so the failure
/// was the attack's doing).
async fn served_with(attack: UploadAttack, name: &str) -> XmppError {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let dir = scratch(name);
    let content = random_bytes(100_003);
    let file = share(&mut alice, &mut bob, &dir, "minutes.txt", &content).await;
    let downloads = scratch(&format!("{name}-downloads"));

    server.set_upload_attack(Some(attack));
    let err = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        files_in(&downloads),
        Vec::<String>::new(),
        "nothing is kept"
    );

    server.set_upload_attack(None);
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), content);
    err
}

// ---- an honest service ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_upload_service_carries_the_file_whole_and_sees_only_ciphertext() {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let dir = scratch("honest");
    let name = "quarterly-merger-plan.pdf";
    let content = random_bytes(250_007);
    let file = share(&mut alice, &mut bob, &dir, name, &content).await;
    let port = server.upload_address().port();
    assert!(
        file.link
            .url
            .starts_with(&format!("https://localhost:{port}/upload/")),
        "{}",
        file.link.url
    );
    assert_eq!(file.media_type.as_deref(), Some("application/pdf"));

    let downloads = scratch("honest-downloads");
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(got.path, downloads.join(name));
    assert_eq!(std::fs::read(&got.path).unwrap(), content);
    assert_eq!(Some(got.sha256), file.sha256);
    assert_eq!(files_in(&downloads), vec![name.to_owned()]);

    // What the server saw: one upload, ciphertext and tag, without any of the plaintext; the
    // name it was asked for says nothing of the file's.
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1);
    let stored = &uploads[0];
    assert_eq!(stored.len(), content.len() + TAG_LEN);
    let holds = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    for at in [0, 1000, 125_000, content.len() - 32] {
        assert!(
            !holds(&content[at..at + 32]),
            "plaintext at {at} is on the server"
        );
    }
    assert!(!holds(name.as_bytes()), "the file name is in the upload");
    assert!(
        !holds(b"quarterly"),
        "part of the file name is in the upload"
    );
    let asked = server.upload_requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        !asked[0].contains("quarterly") && !asked[0].contains(".pdf"),
        "the slot request names the file: {asked:?}"
    );
}

// ---- F1–F4: the file served changed ------------------------------------------------------------

/// F1: one byte of the ciphertext changed: the tag does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_served_with_a_byte_changed_is_refused_and_nothing_is_kept() {
    let err = served_with(UploadAttack::FlipByte, "flip").await;
    assert!(
        matches!(
            err,
            XmppError::Transfer(TransferError::Crypto(FileError::Tampered))
        ),
        "{err}"
    );
}

/// F2: the file cut to half, with a `Content-Length` that says so. More than a tag's worth
/// arrives, so its last 16 bytes are taken as the tag and do not verify: `Tampered`, which
/// the opener reports before the size is compared with the announced one (`Truncated` is
/// for a download shorter than a tag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_served_cut_short_is_refused_and_nothing_is_kept() {
    let err = served_with(UploadAttack::Truncate, "cut").await;
    assert!(
        matches!(
            err,
            XmppError::Transfer(TransferError::Crypto(FileError::Tampered))
        ),
        "{err}"
    );
}

/// F3: 1024 bytes appended, counted in `Content-Length`. The sender announced the size, so
/// the client expects at most that plus the tag and refuses the response from its length
/// alone (`Oversized`, the limit being that expected length) before reading any of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_served_with_bytes_appended_is_refused_and_nothing_is_kept() {
    let err = served_with(UploadAttack::Extend, "extended").await;
    let expected = 100_003 + TAG_LEN as u64;
    assert!(
        matches!(
            err,
            XmppError::Transfer(TransferError::Oversized { limit }) if limit == expected
        ),
        "{err}"
    );
}

/// F4: another upload of the same length served in the file's place (Alice shared two files
/// of one size; Bob asks for the first and is served the second): another key's ciphertext
/// does not verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_file_of_the_same_length_served_instead_is_refused_and_nothing_is_kept() {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let dir = scratch("swap");
    let first = random_bytes(64_000);
    let second = random_bytes(64_000);
    let file = share(&mut alice, &mut bob, &dir, "first.bin", &first).await;
    let other = share(&mut alice, &mut bob, &dir, "second.bin", &second).await;
    assert_ne!(file.link.url, other.link.url);
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0].len(), uploads[1].len());

    let downloads = scratch("swap-downloads");
    server.set_upload_attack(Some(UploadAttack::Substitute));
    let err = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            XmppError::Transfer(TransferError::Crypto(FileError::Tampered))
        ),
        "{err}"
    );
    assert_eq!(
        files_in(&downloads),
        Vec::<String>::new(),
        "nothing is kept"
    );

    server.set_upload_attack(None);
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), first);
}

// ---- F5–F6: slots that lead astray ---------------------------------------------------------------

/// F5: the slot's URLs are `http://`: Alice refuses before anything is uploaded or sent; the
/// next message Bob gets is the text she sends afterwards (messages between two accounts
/// arrive in order, so a file message sent before it would have come first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_with_http_urls_is_refused_and_nothing_is_uploaded_or_sent() {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let bob_jid: BareJid = bob.jid().clone();
    let dir = scratch("plain-http");
    std::fs::write(dir.join("notes.txt"), random_bytes(5_000)).unwrap();

    server.set_upload_attack(Some(UploadAttack::PlainHttp));
    let err = alice
        .send_file(&bob_jid, &dir.join("notes.txt"), Arc::new(NoProgress))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            XmppError::Transfer(TransferError::NotHttps { url }) if url.starts_with("http://")
        ),
        "{err}"
    );
    assert!(server.uploads().is_empty(), "something was uploaded");
    assert_eq!(server.upload_requests().len(), 1, "the slot was asked for");

    server.set_upload_attack(None);
    alice
        .send_text(&bob_jid, "after the refusal")
        .await
        .unwrap();
    let d = next(&mut bob).await;
    assert_eq!(d.body.as_deref(), Some("after the refusal"), "{d:?}");
    assert!(d.file.is_none(), "{d:?}");
    nothing(&mut bob).await;
}

/// F6: the slot's get URL points at a loopback port where nothing listens: the upload goes
/// to the put URL and the message goes out, but Bob's fetch fails on the connection
/// (`Http`), and nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_whose_get_url_leads_nowhere_fails_the_download_and_nothing_is_kept() {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let dir = scratch("elsewhere");
    let content = random_bytes(30_000);

    server.set_upload_attack(Some(UploadAttack::GetElsewhere));
    let file = share(&mut alice, &mut bob, &dir, "photo.jpg", &content).await;
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1, "the upload went to the put URL");
    assert_eq!(uploads[0].len(), content.len() + TAG_LEN);
    let port = server.upload_address().port();
    assert!(
        file.link.url.starts_with("https://localhost:"),
        "{}",
        file.link.url
    );
    assert!(
        !file
            .link
            .url
            .starts_with(&format!("https://localhost:{port}/")),
        "the link should lead elsewhere: {}",
        file.link.url
    );

    let downloads = scratch("elsewhere-downloads");
    server.set_upload_attack(None);
    let err = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, XmppError::Transfer(TransferError::Http { .. })),
        "{err}"
    );
    assert_eq!(
        files_in(&downloads),
        Vec::<String>::new(),
        "nothing is kept"
    );
}

// ---- the service's limit ------------------------------------------------------------------------

/// The service's `max-file-size` (from its disco#info form) is read: a file whose ciphertext
/// would be larger is refused before a slot is asked for, and nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_above_the_services_limit_is_refused_before_a_slot_is_asked_for() {
    let server = World(
        DevServer::start(Options {
            max_upload_bytes: 10_000,
            ..Options::default()
        })
        .await
        .unwrap(),
    );
    let (mut alice, mut bob) = file_pair(&server).await;
    let bob_jid: BareJid = bob.jid().clone();
    let dir = scratch("limit");
    std::fs::write(dir.join("big.bin"), random_bytes(10_000)).unwrap();
    let err = alice
        .send_file(&bob_jid, &dir.join("big.bin"), Arc::new(NoProgress))
        .await
        .unwrap_err();
    let expected = 10_000 + TAG_LEN as u64;
    assert!(
        matches!(
            err,
            XmppError::Transfer(TransferError::TooLarge { size, max: 10_000 }) if size == expected
        ),
        "{err}"
    );
    assert!(server.upload_requests().is_empty(), "a slot was asked for");

    // Just under the limit, it goes through.
    let small = random_bytes(10_000 - TAG_LEN);
    let file = share(&mut alice, &mut bob, &dir, "small.bin", &small).await;
    let downloads = scratch("limit-downloads");
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), small);
}

// ---- a network that drops downloads -------------------------------------------------------------

/// Every whole-file download is cut halfway (the connection drops): the download resumes
/// with a range request from what it had (whole blocks of it, re-encrypted to carry the tag's
/// computation on) and the file arrives whole, with nothing left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_halfway_resumes_where_it_stopped_and_arrives_whole() {
    let server = server().await;
    let (mut alice, mut bob) = file_pair(&server).await;
    let dir = scratch("cut-off");
    let content = random_bytes(1_000_003);
    let file = share(&mut alice, &mut bob, &dir, "long-report.pdf", &content).await;
    let downloads = scratch("cut-off-downloads");

    server.set_upload_attack(Some(UploadAttack::CutOff));
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), content);
    assert_eq!(Some(got.sha256), file.sha256);
    assert_eq!(files_in(&downloads), vec!["long-report.pdf".to_owned()]);
}
