//! `hush`: end-to-end encrypted XMPP messaging from the command line.
//!
//! Every command takes `--home DIR` (env `HUSH_HOME`) holding one account's config and store,
//! and `--json` for one JSON object per line. Errors print one `error: …` line and exit 1.
//! The store is encrypted under a passphrase (`--passphrase-stdin`, `--passphrase-env NAME`,
//! `HUSH_PASSPHRASE`, or the terminal) unless `hush init --unencrypted-store` chose otherwise.

#![forbid(unsafe_code)]

mod advice;
mod conversation;
mod demo;
mod home;
mod terminal;

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hush_proto::{LocalDevice, Suite, DEFAULT_PREKEYS};
use hush_store::{SqliteStore, Store, Trust};
use hush_xmpp::{BareJid, ConnectOptions, Delivery, Hush};
use serde_json::json;
use terminal::printable;
use zeroize::Zeroizing;

use crate::home::{Config, Home, PassphraseSource};

#[derive(Parser)]
#[command(
    name = "hush",
    version,
    about = "End-to-end encrypted XMPP messaging (OMEMO)"
)]
struct Cli {
    /// Directory holding this account's config and store.
    #[arg(long, global = true, env = "HUSH_HOME")]
    home: Option<std::path::PathBuf>,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    /// Read the store passphrase from standard input (default: the environment variable
    /// HUSH_PASSPHRASE, else a prompt on the terminal).
    #[arg(long, global = true, conflicts_with = "passphrase_env")]
    passphrase_stdin: bool,
    /// Read the store passphrase from this environment variable.
    #[arg(long, global = true, value_name = "NAME")]
    passphrase_env: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the account profile and a new device identity, connect, publish device and keys.
    Init {
        /// The account's JID.
        #[arg(long)]
        jid: String,
        /// Server address HOST:PORT (default: the JID's domain, port 5222).
        #[arg(long)]
        server: Option<String>,
        /// Read the XMPP password from standard input.
        #[arg(long, conflicts_with = "password_env")]
        password_stdin: bool,
        /// Read the XMPP password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        /// Allow an unencrypted connection, only to 127.0.0.0/8 or ::1 (local test servers).
        #[arg(long)]
        insecure_loopback: bool,
        /// Keep the store unencrypted on disk (no passphrase): keys, messages and the XMPP
        /// password are then protected by file permissions only. Every command warns.
        #[arg(long)]
        unencrypted_store: bool,
    },
    /// Encrypt TEXT for every device of JID and our other devices, and send it. Nothing is
    /// ever sent in clear unless asked for (`--plaintext`, or `hush config --encryption off`).
    Send {
        /// The recipient's bare JID.
        jid: String,
        /// The message.
        #[arg(required = true)]
        text: Vec<String>,
        /// Send this message in clear (readable by the servers on the way).
        #[arg(long)]
        plaintext: bool,
    },
    /// Show or change settings: the global encryption switch, or with JID that
    /// conversation's switch and the authentication it requires.
    Config {
        /// The conversation (default: the global settings).
        jid: Option<String>,
        /// Switch encryption on or off.
        #[arg(long, value_parser = ["on", "off"])]
        encryption: Option<String>,
        /// The authentication every message to JID must reach: `strong` sends only to
        /// verified devices; `weak` also to blindly trusted ones.
        #[arg(long, value_parser = ["weak", "strong"], requires = "jid")]
        require_auth: Option<String>,
        /// Block JID: its messages and key exchanges are ignored.
        #[arg(long, value_parser = ["on", "off"], requires = "jid")]
        blocked: Option<String>,
    },
    /// The stored history of a conversation, oldest first: what was sent and received, and
    /// every message that could not be decrypted (offline, from the store).
    History {
        /// The contact.
        jid: String,
        /// At most this many of the latest entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The conversation's security properties, who can read it and who could add a reader.
    Status {
        /// The contact.
        jid: String,
    },
    /// Mark a contact's device (id or fingerprint) as verified.
    Trust {
        /// The contact.
        jid: String,
        /// A device id or a fingerprint (as `hush devices` shows it).
        device: String,
    },
    /// Verify devices from a contact's verification URI (QR code or `hush fingerprint`):
    /// `xmpp:JID?omemo-sid-DEVICE=FINGERPRINT`. A different key than the one we hold is
    /// reported as a mismatch and not verified.
    Verify {
        /// The URI.
        uri: String,
    },
    /// Refuse a contact's device (id or fingerprint): it gets no keys any more.
    Distrust {
        /// The contact.
        jid: String,
        /// A device id or a fingerprint.
        device: String,
    },
    /// Connect, catch up, and print messages as they are decrypted.
    Recv {
        /// Stop once at least this many messages were printed (everything caught up from the
        /// archive is printed, so none is committed unseen).
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds without a message.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Our device and fingerprint, as text and as a verification URI.
    Fingerprint,
    /// Known devices of a contact (or our own device), with fingerprints and trust.
    Devices {
        /// The contact (default: ourselves).
        jid: Option<String>,
        /// Remove these devices of ours from our published device lists (a lost or
        /// reinstalled device); nobody encrypts to them afterwards. A device still in use adds
        /// itself back when it next connects, as XEP-0384 asks.
        #[arg(long, value_name = "DEVICE", num_args = 1.., conflicts_with = "jid")]
        remove: Vec<u32>,
    },
    /// Session management.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// The store on disk.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// A walkthrough on a private server inside this process, with nothing to set up: four
    /// devices, an offline one catching up, verification, and a server that tampers.
    Demo,
}

#[derive(Subcommand)]
enum StoreAction {
    /// Encrypt an unencrypted store (made with --unencrypted-store, or by an older hush)
    /// under a new passphrase, and move the XMPP password out of config.json into it.
    Encrypt,
}

#[derive(Subcommand)]
enum SessionAction {
    /// Replace broken sessions with JID (one device or all): the next message starts new ones.
    Reset {
        /// The contact.
        jid: String,
        /// Only this device.
        device: Option<u32>,
    },
}

type Fallible<T> = Result<T, String>;

/// Log lines on stderr. By default only Hush's own warnings (a lost connection, a device
/// re-adding itself); `HUSH_LOG=debug` (or `trace`, `info`, `warn`) shows every layer's log,
/// the network library's included — except its `trace` lines, at any level: they are the raw
/// stream, the login exchange (a PLAIN password, a SCRAM proof) included.
struct StderrLog {
    level: log::LevelFilter,
    only_hush: bool,
}

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        let ours = m.target().starts_with("hush");
        m.level() <= self.level && (ours || (!self.only_hush && m.level() < log::Level::Trace))
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            // Log lines quote the network too (senders, server errors): made printable.
            let line = format!(
                "[{} {}] {}",
                r.level(),
                r.target(),
                printable(&r.args().to_string())
            );
            eprintln!("{}", terminal::fit(&line, terminal::stderr_width()));
        }
    }
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let logger = match std::env::var("HUSH_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
    {
        Some(level) => StderrLog {
            level,
            only_hush: false,
        },
        None => StderrLog {
            level: log::LevelFilter::Warn,
            only_hush: true,
        },
    };
    let level = logger.level;
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(level);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("error: {}", printable(&e.to_string()));
            eprintln!("{}", terminal::fit(&line, terminal::stderr_width()));
            ExitCode::FAILURE
        }
    }
}

fn bare(jid: &str) -> Fallible<BareJid> {
    jid.parse()
        .map_err(|_| format!("`{jid}` is not a valid JID"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn connect_options(config: &Config) -> ConnectOptions {
    ConnectOptions {
        server: config.server.clone(),
        insecure_loopback: config.insecure_loopback,
        timeout: Duration::from_secs(30),
    }
}

use advice::Me;
use conversation::trust_name;

/// Who we are, for advice addressed to the other side.
fn me(hush: &Hush<SqliteStore>) -> Me {
    Me {
        jid: hush.jid().to_string(),
        device: hush.device_id(),
    }
}

async fn connect(home: &Home) -> Fallible<(Hush<SqliteStore>, Config)> {
    home.require()?;
    home.lock_sessions()?;
    let store = home.open_store()?;
    let config = home.config(&store)?;
    let hush = Hush::connect(store, &config.password, &connect_options(&config))
        .await
        .map_err(|e| e.to_string())?;
    Ok((hush, config))
}

async fn run(cli: Cli) -> Fallible<()> {
    let json = cli.json;
    if let Command::Demo = cli.command {
        // Zero setup: no home directory, no account, nothing written to disk.
        return demo::run(json).await;
    }
    let source = match (cli.passphrase_stdin, cli.passphrase_env) {
        (true, _) => PassphraseSource::Stdin,
        (false, Some(var)) => PassphraseSource::Env(var),
        (false, None) => PassphraseSource::Default,
    };
    let home = Home::locate(cli.home, source)?;
    match cli.command {
        Command::Init {
            jid,
            server,
            password_stdin,
            password_env,
            insecure_loopback,
            unencrypted_store,
        } => {
            let jid = bare(&jid)?;
            if home.exists() {
                return Err(format!(
                    "{} already holds an account; use another --home",
                    home.dir().display()
                ));
            }
            if password_stdin && home.passphrase_from_stdin() {
                return Err(
                    "--password-stdin and --passphrase-stdin cannot both read standard \
                            input; give one of them with an environment variable"
                        .into(),
                );
            }
            if unencrypted_store && home.passphrase_named() {
                return Err(
                    "--unencrypted-store keeps the store without a passphrase; do not give one"
                        .into(),
                );
            }
            let password = Zeroizing::new(match (password_stdin, password_env) {
                (true, _) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| format!("reading the password: {e}"))?;
                    s.trim_end_matches(['\r', '\n']).to_owned()
                }
                (false, Some(var)) => std::env::var(&var)
                    .map_err(|_| format!("environment variable {var} is not set"))?,
                (false, None) => {
                    return Err(
                        "give the password with --password-stdin or --password-env NAME".into(),
                    )
                }
            });
            if !unencrypted_store {
                // Asked for before anything is created, so a missing one leaves no trace.
                home.new_passphrase()
                    .map_err(|e| format!("{e} (or opt out with --unencrypted-store)"))?;
            }
            init(
                &home,
                &jid,
                server,
                password,
                insecure_loopback,
                !unencrypted_store,
                json,
            )
            .await
        }
        Command::Send {
            jid,
            text,
            plaintext,
        } => {
            let to = bare(&jid)?;
            let (mut hush, config) = connect(&home).await?;
            // Found on connecting: said before anything else (the send below is safe: it
            // builds new sessions).
            if let Some(notice) = hush.take_rollback_notice() {
                print_delivery(&notice, json, &me(&hush));
            }
            let options = hush_xmpp::SendOptions {
                plaintext,
                global_off: config.encryption_off,
            };
            let report = hush
                .send(&to, &text.join(" "), options)
                .await
                .map_err(|e| advice::xmpp(&e))?;
            hush.close().await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    json!({"sent": true, "to": to.to_string(), "ns": report.suite.map(|s| s.name()),
                           "encrypted": report.suite.is_some(),
                           "devices": report.devices.iter().map(|(j, d)| json!({"jid": j, "device": d})).collect::<Vec<_>>(),
                           "skipped": report.skipped.iter().map(|(j, d, w)| json!({"jid": j, "device": d, "why": advice::obstacle(w)})).collect::<Vec<_>>(),
                           "new_keys": report.new_keys.iter().map(|(j, d, f)| json!({"jid": j, "device": d, "fingerprint": f})).collect::<Vec<_>>(),
                           "security": conversation::properties_json(&report.properties)})
                );
            } else {
                match report.suite {
                    Some(suite) => println!(
                        "sent to {to} ({suite}), encrypted for {} device(s), authentication {}",
                        report.devices.len(),
                        report.properties.authentication
                    ),
                    None => println!("sent to {to} IN CLEAR, as you asked"),
                }
                for (j, d, fp) in &report.new_keys {
                    println!(
                        "new device {d} of {j}, fingerprint {fp}: not verified yet \
                         (compare fingerprints, then `hush verify URI`)"
                    );
                }
                for (j, d, why) in &report.skipped {
                    say(&format!(
                        "warning: not encrypted for device {d} of {j}: {}",
                        printable(&advice::obstacle(why))
                    ));
                }
            }
            Ok(())
        }
        Command::Config {
            jid,
            encryption,
            require_auth,
            blocked,
        } => {
            let mut store = home.open_store()?;
            let mut config = home.config(&store)?;
            match jid {
                None => {
                    if let Some(e) = encryption {
                        config.encryption_off = e == "off";
                        home.write_config(&mut store, &config)?;
                    }
                    if json {
                        println!(
                            "{}",
                            json!({"global_encryption": if config.encryption_off { "off" } else { "on" }})
                        );
                    } else {
                        println!(
                            "encryption (every conversation): {}",
                            if config.encryption_off { "OFF" } else { "on" }
                        );
                    }
                }
                Some(jid) => {
                    let jid = bare(&jid)?.to_string();
                    let mut record = store.conversation(&jid).map_err(|e| e.to_string())?;
                    if let Some(e) = encryption {
                        record.policy.off = e == "off";
                    }
                    if let Some(b) = blocked {
                        record.blocked = b == "on";
                    }
                    if let Some(a) = require_auth {
                        record.policy.min_auth = hush_proto::policy::Authentication::from_name(&a)
                            .ok_or("unknown authentication level")?;
                    }
                    store
                        .set_conversation(&jid, &record)
                        .map_err(|e| e.to_string())?;
                    if json {
                        println!(
                            "{}",
                            json!({"jid": jid, "encryption": if record.policy.off { "off" } else { "on" },
                                              "require_auth": record.policy.min_auth.name()})
                        );
                    } else {
                        println!(
                            "{jid}: encryption {}, requires {} authentication",
                            if record.policy.off { "OFF" } else { "on" },
                            record.policy.min_auth
                        );
                    }
                }
            }
            Ok(())
        }
        Command::History { jid, limit } => {
            let jid = bare(&jid)?.to_string();
            let store = home.open_store()?;
            let account = store
                .account()
                .map_err(|e| e.to_string())?
                .ok_or("no account here: run `hush init` first")?;
            let me = Me {
                jid: account.jid,
                device: account.device.device_id(),
            };
            for m in store.history(&jid, limit).map_err(|e| e.to_string())? {
                print_history_entry(&m, json, &me);
            }
            Ok(())
        }
        Command::Status { jid } => {
            let jid = bare(&jid)?.to_string();
            let store = home.open_store()?;
            let global_off = home.config(&store)?.encryption_off;
            conversation::status(&store, &jid, global_off, json)
        }
        Command::Verify { uri } => {
            let mut store = home.open_store()?;
            for (d, fp) in conversation::verify(&mut store, &uri, unix_now())? {
                if json {
                    println!(
                        "{}",
                        json!({"device": d, "fingerprint": fp, "trust": "verified"})
                    );
                } else {
                    println!("device {d} ({fp}): verified");
                }
            }
            Ok(())
        }
        Command::Trust { jid, device } => set_trust(&home, &jid, &device, Trust::Verified, json),
        Command::Distrust { jid, device } => {
            set_trust(&home, &jid, &device, Trust::Distrusted, json)
        }
        Command::Recv { count, timeout } => {
            let (mut hush, config) = connect(&home).await?;
            // Status goes to stderr, so stdout stays one message (or JSON object) per line.
            eprintln!(
                "connected as {} (device {}), waiting for messages",
                hush.jid(),
                hush.device_id()
            );
            // A rollback found on connecting comes first, and is not a message (`--count`).
            if let Some(notice) = hush.take_rollback_notice() {
                print_delivery(&notice, json, &me(&hush));
            }
            // First what arrived while we were away (the archive), then live messages.
            let since = config.created_at;
            let mut seen = 0;
            // `--count` counts messages (texts and failures), not news of a new key.
            for d in hush.catch_up(since).await.map_err(|e| e.to_string())? {
                print_delivery(&d, json, &me(&hush));
                seen += usize::from(!d.is_key_notice());
            }
            while count.is_none_or(|c| seen < c) {
                match hush
                    .receive(Duration::from_secs(timeout))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(d) => {
                        print_delivery(&d, json, &me(&hush));
                        seen += usize::from(!d.is_key_notice());
                    }
                    None => break,
                }
            }
            // `--count` is reached, but a catch-up may have read more from the server at once:
            // they are committed, so nothing else would ever show them. Shown now.
            for d in hush.take_unshown() {
                print_delivery(&d, json, &me(&hush));
            }
            hush.close().await.map_err(|e| e.to_string())?;
            Ok(())
        }
        // Handled above, before the home directory is located.
        Command::Demo => demo::run(json).await,
        Command::Fingerprint => {
            let store = home.open_store()?;
            let account = store
                .account()
                .map_err(|e| e.to_string())?
                .ok_or("no account here: run `hush init` first")?;
            let identity = account.device.identity().public();
            let fp = identity.fingerprint();
            let uri =
                conversation::verification_uri(&account.jid, account.device.device_id(), identity);
            if json {
                println!(
                    "{}",
                    json!({"jid": account.jid, "device": account.device.device_id(), "fingerprint": fp, "uri": uri})
                );
            } else {
                println!(
                    "{} device {}\n{fp}\n{uri}",
                    account.jid,
                    account.device.device_id()
                );
            }
            Ok(())
        }
        Command::Devices { jid: None, remove } if !remove.is_empty() => {
            let (mut hush, _) = connect(&home).await?;
            let n = hush
                .remove_own_devices(&remove)
                .await
                .map_err(|e| e.to_string())?;
            hush.close().await.map_err(|e| e.to_string())?;
            if json {
                println!("{}", json!({"removed": remove, "entries": n}));
            } else if n == 0 {
                println!("none of these devices was listed");
            } else {
                println!("removed from our device lists: {remove:?} ({n} list entries)");
            }
            Ok(())
        }
        Command::Devices { jid, .. } => {
            let store = home.open_store()?;
            let account = store
                .account()
                .map_err(|e| e.to_string())?
                .ok_or("no account here: run `hush init` first")?;
            let jid = jid.unwrap_or_else(|| account.jid.clone());
            for suite in Suite::ALL {
                let sessions = store.sessions_of(suite, &jid).map_err(|e| e.to_string())?;
                for d in store.devices(suite, &jid).map_err(|e| e.to_string())? {
                    let identity = sessions
                        .iter()
                        .find(|(id, _)| *id == d.device_id)
                        .map(|(_, s)| *s.peer_identity());
                    let trust = match &identity {
                        Some(i) => store.trust(&jid, i).map_err(|e| e.to_string())?,
                        None => None,
                    };
                    let fp = identity.map(|i| i.fingerprint());
                    if json {
                        println!(
                            "{}",
                            json!({"jid": jid, "device": d.device_id, "ns": suite.name(), "listed": d.listed,
                            "last_seen": d.last_seen, "fingerprint": fp, "trust": trust_name(trust)})
                        );
                    } else {
                        println!(
                            "{jid} device {} ({suite}){} fingerprint {} trust {} last seen {}",
                            d.device_id,
                            if d.listed { "" } else { " [no longer listed]" },
                            fp.as_deref().unwrap_or("unknown (no session yet)"),
                            trust_name(trust),
                            hush_wire::date::format(d.last_seen)
                        );
                    }
                }
            }
            if jid == account.jid && !json {
                println!(
                    "this device: {} fingerprint {}",
                    account.device.device_id(),
                    account.device.identity().public().fingerprint()
                );
            }
            Ok(())
        }
        Command::Store {
            action: StoreAction::Encrypt,
        } => {
            home.encrypt_store()?;
            if json {
                println!("{}", json!({"store": "encrypted"}));
            } else {
                println!(
                    "the store in {} is encrypted now, and holds the XMPP password; keep the \
                     passphrase safe: without it the account cannot be opened",
                    home.dir().display()
                );
            }
            Ok(())
        }
        Command::Session {
            action: SessionAction::Reset { jid, device },
        } => {
            let jid = bare(&jid)?;
            home.require()?;
            home.lock_sessions()?;
            let mut store = home.open_store()?;
            let n = hush_store::reset_sessions(&mut store, jid.as_str(), device)
                .map_err(|e| e.to_string())?;
            if json {
                println!("{}", json!({"reset": n, "jid": jid.to_string()}));
            } else {
                println!(
                    "removed {n} session(s) with {jid}; the next message you send starts new ones"
                );
            }
            Ok(())
        }
    }
}

fn set_trust(home: &Home, jid: &str, device: &str, trust: Trust, json: bool) -> Fallible<()> {
    let jid = bare(jid)?.to_string();
    let mut store = home.open_store()?;
    let done = conversation::set_trust(&mut store, &jid, device, trust, unix_now())?;
    for (d, fp) in done {
        if json {
            println!(
                "{}",
                json!({"jid": jid, "device": d, "fingerprint": fp, "trust": trust_name(Some(trust))})
            );
        } else {
            println!("{jid} device {d} ({fp}): {}", trust_name(Some(trust)));
        }
    }
    Ok(())
}

fn print_history_entry(m: &hush_store::StoredMessage, json: bool, me: &Me) {
    let body = m.body.as_deref().map(String::from_utf8_lossy);
    let outgoing = m.direction == hush_store::Direction::Out;
    let error = m
        .failure
        .as_ref()
        .map(|f| advice::failure(f, &m.sender, m.sender_device, me));
    if json {
        println!(
            "{}",
            json!({"at": m.at, "direction": if outgoing { "out" } else { "in" },
                   "from": m.sender, "device": m.sender_device,
                   "ns": m.encrypted.then(|| m.suite.name()), "encrypted": m.encrypted,
                   "body": body, "error": error, "failure": m.failure.as_ref().map(|f| f.kind())})
        );
        return;
    }
    let when = hush_wire::date::format(m.at);
    let arrow = if outgoing { "→" } else { "←" };
    let clear = if m.encrypted { "" } else { " (UNENCRYPTED)" };
    match (&body, &error) {
        (Some(b), _) => say(&format!(
            "{when} {arrow} {}{clear}: {}",
            printable(&m.sender),
            printable(b)
        )),
        (None, Some(e)) => say(&format!("{when} {arrow} !! {}", printable(e))),
        (None, None) => {}
    }
}

fn print_delivery(d: &Delivery, json: bool, me: &Me) {
    let error = d
        .failure
        .as_ref()
        .map(|f| advice::failure(f, &d.from, d.device, me));
    if json {
        println!(
            "{}",
            json!({"from": d.from, "device": d.device, "ns": d.suite.map(|s| s.name()),
                   "encrypted": d.suite.is_some(), "body": d.body, "error": error,
                   "failure": d.failure.as_ref().map(|f| f.kind()),
                   "trust": trust_name(d.trust), "warning": d.warning, "new_key": d.new_key,
                   "security": conversation::properties_json(&d.properties)})
        );
        return;
    }
    // Everything below that came from the network is made printable, and every line fitted to
    // the terminal: a body or an error quoting a stanza must not forge or overwrite a line (see
    // `terminal`).
    let from = printable(&d.from);
    if let Some(w) = &d.warning {
        say(&format!("!! WARNING: {}", printable(w)));
    }
    if let Some(fp) = &d.new_key {
        say(&format!(
            "!! NEW KEY: device {} of {from} uses a key you have not seen before, fingerprint {fp} \
             (compare it with theirs, then `hush verify` or `hush trust`)",
            d.device
        ));
        if d.is_key_notice() {
            return;
        }
    }
    let body = printable(d.body.as_deref().unwrap_or(""));
    say(&match (&error, d.suite) {
        (Some(e), _) => format!("!! {}", printable(e)),
        (None, Some(suite)) => format!(
            "{from} (device {}, {}, {}): {body}",
            d.device,
            suite,
            trust_name(d.trust),
        ),
        (None, None) => format!("{from} (UNENCRYPTED): {body}"),
    });
}

/// Prints a line of text output that holds text from the network (already [`printable`]),
/// broken to the terminal's width (see [`terminal::fit`]).
fn say(line: &str) {
    println!("{}", terminal::fit(line, terminal::stdout_width()));
}

async fn init(
    home: &Home,
    jid: &BareJid,
    server: Option<String>,
    password: Zeroizing<String>,
    insecure_loopback: bool,
    encrypted: bool,
    json: bool,
) -> Fallible<()> {
    home.create()?;
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let device_id = 1 + (rand_core::Rng::next_u32(&mut rng) % 0x7fff_fffe);
    let device = LocalDevice::generate(device_id, DEFAULT_PREKEYS, unix_now(), &mut rng)
        .map_err(|e| e.to_string())?;
    let config = Config {
        jid: jid.to_string(),
        server,
        insecure_loopback,
        password,
        created_at: unix_now(),
        encryption_off: false,
    };
    let result = async {
        home.lock_sessions()?;
        let mut store = home.create_store(encrypted)?;
        store
            .create_account(jid.as_str(), &device)
            .map_err(|e| e.to_string())?;
        home.write_config(&mut store, &config)?;
        let mut hush = Hush::connect(store, &config.password, &connect_options(&config))
            .await
            .map_err(|e| e.to_string())?;
        hush.announce().await.map_err(|e| e.to_string())?;
        hush.close().await.map_err(|e| e.to_string())
    }
    .await;
    if let Err(e) = result {
        // Leave nothing half-made behind, so `hush init` can simply be run again.
        home.remove_created();
        return Err(e);
    }
    if !encrypted {
        eprintln!(
            "warning: the store in {} is not encrypted, as you chose (--unencrypted-store): \
             anyone who can read it can read your keys, messages and XMPP password",
            home.dir().display()
        );
    }
    let fp = device.identity().public().fingerprint();
    if json {
        println!(
            "{}",
            json!({"jid": jid.to_string(), "device": device_id, "fingerprint": fp,
                   "store": if encrypted { "encrypted" } else { "unencrypted" }})
        );
    } else {
        println!("initialised {jid}, device {device_id}\nfingerprint {fp}");
    }
    Ok(())
}
