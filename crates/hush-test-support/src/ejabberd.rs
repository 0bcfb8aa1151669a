//! A private ejabberd for the tests: its own config, database, Erlang node name and loopback
//! ports. ejabberd must be installed (`./scripts/test` installs it from apt); without it the
//! tests fail with that instruction, they never skip.
//!
//! [`Ejabberd::start`] starts one, [`Ejabberd::register`] makes accounts on it (through its
//! HTTP API, which answers in milliseconds where `ejabberdctl register` starts an Erlang node
//! per call), and dropping it stops the server and removes its data.
//!
//! Debian's `ejabberdctl` runs ejabberd as its own `ejabberd` user and refuses any other
//! unprivileged user, so the tests that use it must run as root (as `./scripts/test` does in
//! CI) or as that user.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::host::{data_root, is_root, wait_listening, which};

/// A running ejabberd serving `localhost` on loopback ports of its own; stopped and its data
/// removed when dropped.
pub struct Ejabberd {
    child: Child,
    /// The server's directory: its config, logs and (under `spool/`) database.
    pub dir: PathBuf,
    /// The client-to-server port on 127.0.0.1.
    pub port: u16,
    /// The HTTP API's port on 127.0.0.1 (account registration).
    api_port: u16,
    /// The Erlang node's name, unique per server.
    node: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration: c2s without TLS on loopback, the HTTP API for registration from
/// loopback, and the modules OMEMO needs (PEP, MAM for everything, Carbons, offline storage,
/// Stream Management, entity caps).
fn config(port: u16, api_port: u16) -> String {
    format!(
        r#"hosts:
  - localhost
loglevel: info
certfiles:
  - /etc/ejabberd/ejabberd.pem
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: {api_port}
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
api_permissions:
  "registration from loopback":
    from:
      - mod_http_api
    who:
      ip: 127.0.0.0/8
    what:
      - register
auth_method: internal
auth_password_format: scram
modules:
  mod_caps: {{}}
  mod_carboncopy: {{}}
  mod_disco: {{}}
  mod_http_api: {{}}
  mod_mam:
    assume_mam_usage: true
    default: always
  mod_offline: {{}}
  mod_ping: {{}}
  mod_pubsub:
    plugins:
      - flat
      - pep
  mod_roster: {{}}
  mod_stream_mgmt: {{}}
"#
    )
}

impl Ejabberd {
    /// Starts a server; `name` (with the process id) names its directory and Erlang node, so
    /// that tests running at once do not share one.
    pub fn start(name: &str) -> Self {
        assert!(
            which("ejabberdctl").is_some() || std::path::Path::new("/usr/sbin/ejabberdctl").exists(),
            "ejabberd is not installed: run ./scripts/test, which installs it (apt-get install ejabberd)"
        );
        assert!(
            is_root(),
            "Debian's ejabberdctl runs ejabberd as the `ejabberd` user only when started by \
             root: run the ejabberd tests as root (./scripts/test does in CI)"
        );
        let id = format!("{name}-{}", std::process::id());
        let dir = data_root().join(format!("ejabberd-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let (port, api_port) = (free_port(), free_port());
        std::fs::write(dir.join("ejabberd.yml"), config(port, api_port)).unwrap();
        // Without this file ejabberdctl reads the system's, which names the system's config.
        std::fs::write(
            dir.join("ejabberdctl.cfg"),
            "ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\n",
        )
        .unwrap();
        // The parent directory must be reachable by the ejabberd user too.
        for d in [dir.parent().unwrap(), dir.as_path()] {
            assert!(Command::new("chmod")
                .arg("a+rx")
                .arg(d)
                .status()
                .unwrap()
                .success());
        }
        assert!(Command::new("chown")
            .arg("-R")
            .arg("ejabberd")
            .arg(&dir)
            .status()
            .unwrap()
            .success());
        let node = format!(
            "hush-{}@localhost",
            id.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let child = Command::new("runuser")
            .args(["-u", "ejabberd", "--", "ejabberdctl", "--config-dir"])
            .arg(&dir)
            .arg("--spool")
            .arg(dir.join("spool"))
            .arg("--logs")
            .arg(dir.join("logs"))
            .args(["--node", &node, "foreground"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ejabberd");
        let mut server = Self {
            child,
            dir,
            port,
            api_port,
            node,
        };
        server.wait_listening();
        server
    }

    /// Polls until both ports accept connections (bounded: an Erlang node takes seconds to
    /// start), failing with the server's log.
    fn wait_listening(&mut self) {
        let file = self.dir.join("logs/ejabberd.log");
        let log = move || std::fs::read_to_string(&file).unwrap_or_default();
        let ports = [self.port, self.api_port];
        wait_listening(
            &mut self.child,
            &ports,
            Duration::from_secs(90),
            "ejabberd",
            log,
        );
    }

    /// The server's log so far (empty if there is none yet), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/ejabberd.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`, what a client connects to.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Registers `user` on `localhost` with `password` (through the HTTP API); returns the bare
    /// JID, `user@localhost`.
    pub fn register(&self, user: &str, password: &str) -> String {
        let body = format!(r#"{{"user":"{user}","host":"localhost","password":"{password}"}}"#);
        let mut stream = TcpStream::connect(("127.0.0.1", self.api_port)).unwrap();
        write!(
            stream,
            "POST /api/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "register {user}: {answer}\n{}",
            self.log()
        );
        format!("{user}@localhost")
    }

    /// Every byte ejabberd stored on disk (its Mnesia database: archives, offline messages,
    /// PEP).
    pub fn stored_bytes(&self) -> Vec<u8> {
        crate::host::all_bytes(&self.dir.join("spool"))
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        // runuser and ejabberdctl start the Erlang VM as a child; stop it by its node name.
        let _ = Command::new("pkill").arg("-f").arg(&self.node).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
