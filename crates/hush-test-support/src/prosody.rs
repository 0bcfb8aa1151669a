//! A private Prosody for the tests: its own config, data directory and loopback port.
//! Prosody and its SQLite driver must be installed (`./scripts/test` installs both from apt);
//! without them the tests fail with that instruction, they never skip.
//!
//! [`Prosody::start`] starts one, [`Prosody::register`] makes accounts on it, and dropping it
//! stops the server and removes its data.

use std::net::TcpListener;

use crate::host::{data_root, is_root, wait_listening, which};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Prosody, serving `localhost` on a loopback port of its own; stopped and its data
/// removed when dropped.
pub struct Prosody {
    child: Child,
    /// The server's directory: its config, logs, certificates and (under `data/`) storage.
    pub dir: PathBuf,
    /// The client-to-server port on 127.0.0.1.
    pub port: u16,
    /// The direct TLS (XEP-0368) client port on 127.0.0.1, on servers started with
    /// [`Self::start_tls`].
    pub direct_tls_port: Option<u16>,
    /// The HTTPS port of the upload service (XEP-0363, Prosody's `http_file_share`), on
    /// servers started with [`Self::start_with_uploads`].
    pub https_port: Option<u16>,
    config: PathBuf,
    as_prosody_user: bool,
}

/// A second domain the TLS servers ([`Prosody::start_tls`]) serve, in their certificate too:
/// `localhost` cannot be found through DNS (resolvers answer for it themselves, RFC 6761), so
/// the tests that find a server through SRV records use this one.
pub const DNS_DOMAIN: &str = "hush.test";
/// The room service (XEP-0045) of the test Prosody, with its archive (`muc_mam`).
pub const MUC_SERVICE: &str = "conference.localhost";

/// The upload service (XEP-0363) of servers started with [`Prosody::start_with_uploads`].
pub const UPLOAD_SERVICE: &str = "upload.localhost";
/// The largest file that service takes, in bytes (a little over 1 GiB, for the big test).
pub const UPLOAD_LIMIT: u64 = (1 << 30) + (1 << 20);

/// The modules every test server runs; `smacks` is Stream Management (XEP-0198).
const MODULES: &[&str] = &[
    "roster", "saslauth", "disco", "carbons", "pep", "mam", "offline", "ping", "smacks",
];

impl Prosody {
    /// Starts a server with the usual modules; `name` (with the process id) names its
    /// directory, so that tests running at once do not share one.
    pub fn start(name: &str) -> Self {
        Self::start_without(name, &[])
    }

    /// A server without some of the usual modules (e.g. without Stream Management or PEP).
    pub fn start_without(name: &str, missing: &[&str]) -> Self {
        Self::start_with(name, missing, false, false)
    }

    /// A server with an HTTP upload service (XEP-0363) at [`UPLOAD_SERVICE`], serving files
    /// over HTTPS on `localhost` with a certificate from the test CA ([`test_ca_file`]), up to
    /// [`UPLOAD_LIMIT`] bytes each. The XMPP port stays plaintext, as for [`Self::start`].
    pub fn start_with_uploads(name: &str) -> Self {
        Self::start_with(name, &[], false, true)
    }

    /// The files the upload service keeps (the ciphertext of what was uploaded), wherever
    /// under its data directory Prosody put them, sorted.
    pub fn uploaded_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, inside: bool, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    let here = inside || entry.file_name() == "http_file_share";
                    walk(&path, here, out);
                } else if inside {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.join("data"), false, &mut out);
        out.sort();
        out
    }

    /// A server that requires STARTTLS, with a certificate for `localhost` issued by a test
    /// CA whose certificate is at [`Self::ca_file`].
    pub fn start_tls(name: &str) -> Self {
        Self::start_with(name, &[], true, false)
    }

    /// The test CA's certificate (PEM), for servers started with [`Self::start_tls`].
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(name: &str, missing: &[&str], tls: bool, uploads: bool) -> Self {
        const MUC_DOMAIN: &str = MUC_SERVICE;
        let mut modules: Vec<String> = MODULES
            .iter()
            .filter(|m| !missing.contains(m))
            .map(|m| format!("\"{m}\""))
            .collect();
        if tls {
            modules.push("\"tls\"".into());
        }
        let modules = modules.join("; ");
        assert!(
            which("prosody").is_some() && which("prosodyctl").is_some(),
            "Prosody is not installed: run ./scripts/test, which installs it (apt-get install prosody)"
        );
        let dir = data_root().join(format!("prosody-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let port = free_port();
        let direct_tls_port = tls.then(free_port);
        let https_port = uploads.then(free_port);
        let d = dir.display();
        if tls || uploads {
            make_certificates(&dir);
        }
        // Global HTTPS settings, then (last, as a component's settings follow its line) the
        // upload component.
        let (https_config, upload_component) = match https_port {
            Some(https) => (
                format!(
                    "https_ports = {{ {https} }}\n\
                     https_ssl = {{ certificate = \"{d}/server.pem\"; key = \"{d}/server.key\" }}\n\
                     http_external_url = \"https://localhost:{https}/\""
                ),
                format!(
                    "Component \"{UPLOAD_SERVICE}\" \"http_file_share\"\n\
                     http_host = \"localhost\"\n\
                     http_file_share_size_limit = {UPLOAD_LIMIT}\n\
                     http_file_share_daily_quota = {quota}\n\
                     http_file_share_global_quota = {quota}",
                    quota = UPLOAD_LIMIT * 8
                ),
            ),
            None => ("https_ports = { }".to_owned(), String::new()),
        };
        let tls_config = match direct_tls_port {
            Some(direct) => {
                let ssl =
                    format!("{{ certificate = \"{d}/server.pem\"; key = \"{d}/server.key\" }}");
                format!(
                    "c2s_require_encryption = true\nssl = {ssl}\n\
                     c2s_direct_tls_ports = {{ {direct} }}\nc2s_direct_tls_ssl = {ssl}"
                )
            }
            None => "c2s_require_encryption = false".to_owned(),
        };
        let more_hosts = if tls {
            format!("VirtualHost \"{DNS_DOMAIN}\"")
        } else {
            String::new()
        };
        let config = dir.join("prosody.cfg.lua");
        std::fs::write(
            &config,
            format!(
                r#"pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
log = {{ info = "{d}/prosody.log"; error = "{d}/error.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
s2s_ports = {{ }}
http_ports = {{ }}
{https_config}
{tls_config}
authentication = "internal_hashed"
modules_enabled = {{ {modules} }}
archive_expires_after = "never"
-- SQL storage, as Prosody recommends for archives: the default file storage rewrites and
-- rereads a user's whole archive for every query page (minutes for a 10,000-message catch-up).
-- Accounts stay in files: `prosodyctl register` then never writes into the SQLite database the
-- running server holds (it failed, with nothing on stderr, when the server was writing).
default_storage = "sql"
storage = {{ accounts = "internal" }}
sql = {{ driver = "SQLite3"; database = "prosody.sqlite" }}
-- Replies go out at once instead of waiting on Nagle's algorithm (loopback latency tests).
network_settings = {{ nagle = false }}
VirtualHost "localhost"
{more_hosts}
-- Rooms (XEP-0045) with their archive (XEP-0313): Prosody's defaults otherwise (rooms are
-- open and semi-anonymous unless their creator configures them, as Hush does).
Component "{MUC_DOMAIN}" "muc"
modules_enabled = {{ "muc_mam" }}
{upload_component}
"#
            ),
        )
        .unwrap();
        let as_prosody_user = is_root();
        if as_prosody_user {
            // Prosody refuses to run as root; give its user the directory.
            assert!(Command::new("chown")
                .arg("-R")
                .arg("prosody")
                .arg(&dir)
                .status()
                .unwrap()
                .success());
        }
        let mut cmd = if as_prosody_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "prosody", "--", "prosody"]);
            c
        } else {
            Command::new("prosody")
        };
        let child = cmd
            .arg("--config")
            .arg(&config)
            .arg("-F")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prosody");
        let mut server = Self {
            child,
            dir,
            port,
            direct_tls_port,
            https_port,
            config,
            as_prosody_user,
        };
        server.wait_listening();
        server
    }

    /// Polls until the c2s port accepts connections (bounded), failing with the server's log.
    fn wait_listening(&mut self) {
        let log = log_of(&self.dir);
        let ports: Vec<u16> = [Some(self.port), self.direct_tls_port, self.https_port]
            .into_iter()
            .flatten()
            .collect();
        wait_listening(
            &mut self.child,
            &ports,
            Duration::from_secs(30),
            "prosody",
            log,
        );
    }

    /// The server's log so far (empty if there is none yet), for failure messages.
    pub fn log(&self) -> String {
        log_of(&self.dir)()
    }

    /// `127.0.0.1:PORT`, what a client connects to.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Registers `user` on `localhost` with `password` (with `prosodyctl`); returns the bare
    /// JID, `user@localhost`.
    pub fn register(&self, user: &str, password: &str) -> String {
        self.register_on(user, "localhost", password)
    }

    /// Registers `user` on `domain` (`localhost`, or [`DNS_DOMAIN`] on TLS servers) with
    /// `password`; returns the bare JID.
    ///
    /// `prosodyctl` writes into the SQLite database the running server holds. On a loaded
    /// machine the server may be writing at that moment (a component creating its tables at
    /// start-up), and `prosodyctl` then fails with nothing on stderr: a CI run lost a test to
    /// that. A failed registration is tried again a bounded number of times, and the last
    /// failure names everything `prosodyctl` printed.
    pub fn register_on(&self, user: &str, domain: &str, password: &str) -> String {
        const ATTEMPTS: u32 = 20;
        for attempt in 1..=ATTEMPTS {
            let mut cmd = if self.as_prosody_user {
                let mut c = Command::new("runuser");
                c.args(["-u", "prosody", "--", "prosodyctl"]);
                c
            } else {
                Command::new("prosodyctl")
            };
            let out = cmd
                .arg("--config")
                .arg(&self.config)
                .args(["register", user, domain, password])
                .output()
                .unwrap();
            if out.status.success() {
                return format!("{user}@{domain}");
            }
            assert!(
                attempt < ATTEMPTS,
                "register {user} ({ATTEMPTS} attempts): {}\nstdout: {}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
        }
        unreachable!("the loop returns or fails on its last attempt")
    }

    /// Every byte Prosody stored on disk (archives, offline messages, PEP).
    pub fn stored_bytes(&self) -> Vec<u8> {
        crate::host::all_bytes(&self.dir.join("data"))
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed for the TLS tests (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// The test CA every TLS server of this process gets its certificate from (made once, with
/// the openssl tool, installed with Prosody's TLS library): the PEM file to trust, e.g.
/// through `SSL_CERT_FILE`, which both the XMPP connection and file transfers honour.
pub fn test_ca_file() -> PathBuf {
    static CA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CA.get_or_init(|| {
        let dir = data_root().join(format!("hush-test-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &EC_KEY,
                &[
                    "-days",
                    "2",
                    "-subj",
                    "/CN=Hush test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ],
            ]
            .concat(),
        );
        dir.join("ca.pem")
    })
    .clone()
}

/// A certificate for `localhost` (and the other test names) in `dir`, issued by the test
/// CA, whose certificate is copied beside it as `ca.pem`.
fn make_certificates(dir: &Path) {
    let ca = test_ca_file();
    let ca_key = ca.with_file_name("ca.key");
    std::fs::copy(&ca, dir.join("ca.pem")).unwrap();
    openssl(
        dir,
        &[
            &["req"][..],
            &EC_KEY,
            &[
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "subjectAltName=DNS:localhost,DNS:{DNS_DOMAIN},DNS:{UPLOAD_SERVICE}\n\
             basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    let (ca, ca_key) = (ca.display().to_string(), ca_key.display().to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-CAserial",
            "serial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
}

impl Drop for Prosody {
    fn drop(&mut self) {
        // runuser forwards SIGTERM/SIGKILL to prosody; kill the whole child.
        let _ = Command::new("pkill")
            .arg("-f")
            .arg(self.config.display().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads the log of the Prosody in `dir` (empty if there is none yet).
fn log_of(dir: &Path) -> impl Fn() -> String {
    let file = dir.join("prosody.log");
    move || std::fs::read_to_string(&file).unwrap_or_default()
}
