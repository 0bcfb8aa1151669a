//! Encrypted files through a real Prosody and its upload service (XEP-0363 over HTTPS with a
//! certificate from the test CA): a file goes up encrypted and comes down whole, named and
//! checked; the server holds nothing of its content or name; a file the server changed, cut
//! or swapped is refused and nothing of it is kept.

// Test code: a failed assumption is a failed test, so it may unwrap, expect and panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hush_files::{FileError, SharedFile};
use hush_store::MemoryStore;
use hush_test_support::prosody::{test_ca_file, Prosody};
use hush_xmpp::{BareJid, Hush, NoProgress, TransferError, XmppError};
use rand::RngExt;

/// Every test here trusts the test CA the way users trust theirs: through `SSL_CERT_FILE`.
/// All servers of this process share that CA, so every test sets the same value.
fn trust_test_ca() {
    // SAFETY-free in edition 2021; the value is the same for every test of this process.
    std::env::set_var("SSL_CERT_FILE", test_ca_file());
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("files-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill(&mut data[..]);
    data
}

/// The next delivery that shares a file.
async fn next_file(hush: &mut Hush<MemoryStore>) -> (hush_xmpp::Delivery, SharedFile) {
    let d = hush
        .receive(Duration::from_secs(60))
        .await
        .unwrap()
        .expect("the message sharing the file did not arrive");
    let file = d.file.clone().unwrap_or_else(|| panic!("no file in {d:?}"));
    (d, file)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_arrives_whole_and_the_server_holds_only_ciphertext() {
    trust_test_ca();
    let server = Prosody::start_with_uploads("files");
    let mut alice = support::account(&server, None, "alice", 1001).await;
    let mut bob = support::account(&server, None, "bob", 2001).await;
    let bob_jid: BareJid = "bob@localhost".parse().unwrap();
    let dir = scratch("whole");
    let name = "holiday-summit-photo.jpg";
    let content = random_bytes(300_017);
    std::fs::write(dir.join(name), &content).unwrap();

    let sent = alice
        .send_file(&bob_jid, &dir.join(name), Arc::new(NoProgress))
        .await
        .unwrap();
    assert_eq!(sent.report.devices.len(), 1, "{:?}", sent.report);
    assert!(sent.file.link.url.starts_with("https://localhost:"));

    let (delivery, file) = next_file(&mut bob).await;
    assert_eq!(delivery.from, "alice@localhost");
    assert_eq!(file.name.as_deref(), Some(name), "omemo:2 carries the name");
    assert_eq!(file.size, Some(content.len() as u64));
    assert_eq!(file.media_type.as_deref(), Some("image/jpeg"));
    let downloads = scratch("whole-downloads");
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(got.path, downloads.join(name));
    assert_eq!(std::fs::read(&got.path).unwrap(), content);
    assert_eq!(Some(got.sha256), file.sha256);
    // The same file again gets a name of its own; nothing is overwritten.
    let again = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.path, downloads.join("holiday-summit-photo (1).jpg"));

    // What the server stored: the ciphertext, under a name that says nothing.
    let stored = server.stored_bytes();
    let find = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(!find(name.as_bytes()), "the file name is on the server");
    assert!(!find(b"holiday"), "part of the file name is on the server");
    for at in [0, 1000, 150_000, content.len() - 32] {
        assert!(
            !find(&content[at..at + 32]),
            "plaintext at {at} is on the server"
        );
    }
    let uploads = server.uploaded_files();
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let stored_file = std::fs::read(&uploads[0]).unwrap();
    assert_eq!(stored_file.len(), content.len() + 16, "ciphertext and tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_cut_or_oversized_download_is_refused_and_nothing_is_kept() {
    trust_test_ca();
    let server = Prosody::start_with_uploads("tamper");
    let mut alice = support::account(&server, None, "alice", 1001).await;
    let mut bob = support::account(&server, None, "bob", 2001).await;
    let bob_jid: BareJid = "bob@localhost".parse().unwrap();
    let dir = scratch("tamper");
    let content = random_bytes(70_000);
    std::fs::write(dir.join("report.pdf"), &content).unwrap();
    alice
        .send_file(&bob_jid, &dir.join("report.pdf"), Arc::new(NoProgress))
        .await
        .unwrap();
    let (_, file) = next_file(&mut bob).await;
    let uploads = server.uploaded_files();
    let stored = uploads[0].clone();
    let original = std::fs::read(&stored).unwrap();
    let downloads = scratch("tamper-downloads");

    // Above the limit the user set: not even started.
    let err = bob
        .fetch_file(&file, &downloads, 1000, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, XmppError::Transfer(TransferError::Oversized { .. })),
        "{err}"
    );

    // One bit changed by the server.
    let mut changed = original.clone();
    changed[12_345] ^= 1;
    std::fs::write(&stored, &changed).unwrap();
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

    // Another file of the same size served in its place.
    std::fs::write(&stored, random_bytes(original.len())).unwrap();
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
    assert_eq!(files_in(&downloads), Vec::<String>::new());

    // Served whole again, it is read.
    std::fs::write(&stored, &original).unwrap();
    let got = bob
        .fetch_file(&file, &downloads, 1 << 30, &NoProgress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upload_service_the_error_says_so_and_nothing_is_sent() {
    trust_test_ca();
    let server = Prosody::start("no-uploads");
    let mut alice = support::account(&server, None, "alice", 1001).await;
    let _bob = support::account(&server, None, "bob", 2001).await;
    let dir = scratch("no-service");
    std::fs::write(dir.join("a.txt"), b"hello").unwrap();
    let err = alice
        .send_file(
            &"bob@localhost".parse().unwrap(),
            &dir.join("a.txt"),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, XmppError::Transfer(TransferError::NoService { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("no HTTP file upload service"),
        "{err}"
    );
}

/// A contact nobody could encrypt for (no OMEMO device): the send's own refusal, and nothing
/// is uploaded first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_uploaded_for_a_message_that_could_not_go() {
    trust_test_ca();
    let server = Prosody::start_with_uploads("no-reader");
    let mut alice = support::account(&server, None, "alice", 1001).await;
    let carol = server.register("carol", "pw");
    let dir = scratch("no-reader");
    std::fs::write(dir.join("a.txt"), b"hello").unwrap();
    let err = alice
        .send_file(
            &carol.parse().unwrap(),
            &dir.join("a.txt"),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, XmppError::NotSent { .. }), "{err}");
    assert_eq!(server.uploaded_files(), Vec::<PathBuf>::new());
}
