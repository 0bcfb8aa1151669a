//! For the tests against `hush-devserver` (its own, and `hush-xmpp`'s hostile-server tests):
//! a devserver per test, Hush accounts on it (a device with fresh keys in an in-memory store,
//! connected and announced), and a raw XMPP client that speaks the protocol by hand for what
//! Hush never sends.
//!
//! Every account's password is `pw`. Waits are bounded by [`PATIENCE`], so that a test that
//! would hang fails instead.

use std::time::Duration;

use hush_devserver::{DevServer, Options};
use hush_proto::LocalDevice;
use hush_store::{MemoryStore, Store};
use hush_xmpp::{ConnectOptions, Hush};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long anything may take before a test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Starts a devserver with the default options.
pub async fn server() -> DevServer {
    DevServer::start(Options::default()).await.unwrap()
}

/// How the tests connect to `server`: plaintext to its loopback address, 15 s timeout.
pub fn options(server: &DevServer) -> ConnectOptions {
    ConnectOptions {
        server: Some(server.address().to_string()),
        insecure_loopback: true,
        timeout: Duration::from_secs(15),
        dns: None,
    }
}

/// Registers `user` (password `pw`) and connects its first device.
pub async fn account(server: &DevServer, user: &str, device_id: u32) -> Hush<MemoryStore> {
    let jid = server.register(user, "pw").unwrap();
    device(server, &jid, device_id).await
}

/// Connects and announces a new device of the existing account `jid`.
pub async fn device(server: &DevServer, jid: &str, device_id: u32) -> Hush<MemoryStore> {
    let mut hush = connect(server, offline_device(jid, device_id)).await;
    hush.announce().await.unwrap();
    hush
}

/// A store holding a new device of `jid`, not yet connected.
pub fn offline_device(jid: &str, device_id: u32) -> MemoryStore {
    let mut store = MemoryStore::default();
    store.create_account(jid, &new_keys(device_id)).unwrap();
    store
}

/// The keys of a new device `device_id`, made now, as `hush init` makes them (the signed
/// prekey's age counts from here).
pub fn new_keys(device_id: u32) -> LocalDevice {
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    LocalDevice::generate(device_id, 20, now, &mut rng).unwrap()
}

/// Connects the account in `store`.
pub async fn connect(server: &DevServer, store: MemoryStore) -> Hush<MemoryStore> {
    Hush::connect(store, "pw", &options(server)).await.unwrap()
}

/// Brings a device online: reads the archive, sends presence (with caps), reads again.
pub async fn online(hush: &mut Hush<MemoryStore>) {
    let caught = hush.catch_up(0).await.unwrap();
    assert!(caught.is_empty(), "unexpected backlog: {caught:?}");
}

/// Waits (bounded) for the next message and checks its text.
pub async fn expect_text(hush: &mut Hush<MemoryStore>, text: &str) {
    let d = hush
        .receive(PATIENCE)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("`{text}` did not arrive"));
    assert_eq!(d.body.as_deref(), Some(text), "{d:?}");
}

/// Polls `condition` until it holds, failing after [`PATIENCE`]. Only for state that has no
/// event to wait for.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An XMPP client written by hand: what it sends is exactly what the test says.
pub struct Raw {
    tcp: TcpStream,
    /// Everything read so far and not yet consumed by [`Raw::until`].
    buffer: String,
}

impl Raw {
    /// Opens a TCP connection to `server`; nothing is sent yet.
    pub async fn connect(server: &DevServer) -> Raw {
        Raw {
            tcp: TcpStream::connect(server.address()).await.unwrap(),
            buffer: String::new(),
        }
    }

    /// Sends `xml` as it is (it must all arrive).
    pub async fn send(&mut self, xml: &str) {
        self.tcp.write_all(xml.as_bytes()).await.unwrap();
    }

    /// Sends what may not all arrive (the server may close the stream on the way).
    pub async fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.tcp.write_all(bytes).await
    }

    /// Sends a client stream header for `localhost`.
    pub async fn header(&mut self) {
        self.send(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
        )
        .await;
    }

    /// Reads until `needle` appears; returns everything up to and including it.
    pub async fn until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.buffer.find(needle) {
                let rest = self.buffer.split_off(at + needle.len());
                return std::mem::replace(&mut self.buffer, rest);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no `{needle}` in time; got {:?}", self.buffer))
                .unwrap_or(0);
            assert!(
                n > 0,
                "stream ended before `{needle}`; got {:?}",
                self.buffer
            );
            self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    /// Reads until the stanza whose `id` is `id` is complete; returns everything up to its
    /// end. (Good enough for IQs: they do not nest.)
    pub async fn until_id(&mut self, id: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(end) = Self::end_of(&self.buffer, id) {
                let rest = self.buffer.split_off(end);
                return std::mem::replace(&mut self.buffer, rest);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("no stanza `{id}` in time; got {:?}", self.buffer))
                .unwrap_or(0);
            assert!(n > 0, "stream ended before `{id}`; got {:?}", self.buffer);
            self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    fn end_of(buffer: &str, id: &str) -> Option<usize> {
        let at = [format!("id=\"{id}\""), format!("id='{id}'")]
            .iter()
            .filter_map(|n| buffer.find(n.as_str()))
            .min()?;
        let start = buffer[..at].rfind('<')?;
        let name: String = buffer[start + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == ':')
            .collect();
        let tag_end = at + buffer[at..].find('>')?;
        if buffer[..tag_end].ends_with('/') {
            return Some(tag_end + 1);
        }
        let close = format!("</{name}>");
        Some(tag_end + buffer[tag_end..].find(&close)? + close.len())
    }

    /// Reads until the server closes the connection; returns what came.
    pub async fn read_to_close(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.tcp.read(&mut chunk))
                .await
                .expect("the server did not close the stream")
                .unwrap_or(0);
            if n == 0 {
                return std::mem::take(&mut self.buffer);
            }
            self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    }

    /// Logs in with PLAIN and binds `resource`; returns the full JID.
    pub async fn login(
        server: &DevServer,
        user: &str,
        password: &str,
        resource: &str,
    ) -> (Raw, String) {
        use base64::Engine;
        let mut raw = Raw::connect(server).await;
        raw.header().await;
        raw.until("</stream:features>").await;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        raw.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"
        ))
        .await;
        raw.until("<success").await;
        raw.header().await;
        let features = raw.until("</stream:features>").await;
        assert!(
            features.contains("urn:ietf:params:xml:ns:xmpp-bind"),
            "{features}"
        );
        raw.send(&format!(
            "<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let bound = raw.until("</iq>").await;
        let jid = bound
            .split("<jid>")
            .nth(1)
            .and_then(|s| s.split("</jid>").next())
            .unwrap_or_else(|| panic!("no jid in {bound}"))
            .to_owned();
        (raw, jid)
    }
}
