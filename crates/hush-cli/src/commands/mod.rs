//! One module per command; this one finds the home, dispatches, and holds what several
//! commands share (connecting, parsing a JID, the clock).

mod attest;
mod config;
pub(crate) mod contacts;
pub(crate) mod devices;
pub(crate) mod files;
pub(crate) mod fingerprint;
pub(crate) mod history;
mod init;
mod recv;
pub(crate) mod rooms;
mod sas;
pub(crate) mod send;
pub(crate) mod session;
pub(crate) mod status;
mod store;
pub(crate) mod trust;

use std::time::Duration;

use hush_store::SqliteStore;
use hush_xmpp::{BareJid, ConnectOptions, Hush};

use crate::advice::Me;
use crate::agent::client::Agent;
use crate::cli::{
    AgentAction, AttestAction, Cli, Command, ContactsAction, MembersAction, SessionAction,
    StoreAction,
};
use crate::error::{CliError, Result};
use crate::home::{Config, Home, PassphraseSource};
use crate::output::{Printer, Shown};
use serde_json::{json, Value};

pub(crate) use trust::verification_uri;
#[cfg(feature = "demo")]
pub(crate) use trust::verify;

/// Runs the command the user gave.
pub(crate) async fn run(cli: Cli) -> Result<()> {
    let out = Printer::new(cli.json);
    #[cfg(feature = "demo")]
    if let Command::Demo = cli.command {
        // Zero setup: no home directory, no account, nothing written to disk.
        return Ok(crate::demo::run(out.is_json()).await?);
    }
    let source = match (cli.passphrase_stdin, cli.passphrase_env) {
        (true, _) => PassphraseSource::Stdin,
        (false, Some(var)) => PassphraseSource::Env(var),
        (false, None) => PassphraseSource::Default,
    };
    let home = Home::locate(cli.home, source)?;
    // A running agent holds the account: what it serves goes through it, without the
    // passphrase (it has the store open).
    if let Some((method, params, list)) = served_by_agent(&cli.command)? {
        if let Some(agent) = Agent::find(&home).await? {
            let mut agent = agent.printing_for(out);
            let result = agent.call(method, params).await?;
            return show_from_agent(result, list, out);
        }
    }
    match cli.command {
        Command::Init {
            jid,
            server,
            password_stdin,
            password_env,
            insecure_loopback,
            unencrypted_store,
        } => {
            let setup = init::Setup {
                jid: bare(&jid)?,
                server,
                password_stdin,
                password_env,
                insecure_loopback,
                encrypted: !unencrypted_store,
            };
            init::run(&home, setup, out).await
        }
        Command::Send {
            jid,
            text,
            plaintext,
            muc,
        } => {
            let jid = bare(&jid)?;
            let text = message_text(&text, home.passphrase_from_stdin())?;
            let to = if muc {
                send::To::Room(&jid)
            } else {
                send::To::Contact(&jid)
            };
            send::run(&home, to, &text, plaintext, out).await
        }
        Command::SendFile { jid, path, muc } => {
            let jid = bare(&jid)?;
            let to = if muc {
                send::To::Room(&jid)
            } else {
                send::To::Contact(&jid)
            };
            files::send_file(&home, to, &path, out).await
        }
        Command::Fetch {
            link,
            name,
            downloads,
            max_size,
        } => {
            let downloads = files::Downloads::new(&home, downloads, Some(max_size));
            files::fetch_link(&link, &downloads, name.as_deref(), out).await
        }
        Command::Join { .. } | Command::Leave { .. } | Command::Rooms | Command::Members { .. } => {
            let change = rooms_change(&cli.command)?;
            rooms::run(&home, &change, out).await
        }
        Command::Config {
            jid,
            encryption,
            require_auth,
            blocked,
            trust_model,
        } => {
            let jid = jid.map(|j| bare(&j)).transpose()?;
            let change = config::Change {
                encryption,
                require_auth,
                blocked,
                trust_model,
            };
            config::run(&home, jid.as_ref(), change, out)
        }
        Command::History { jid, limit } => history::run(&home, &bare(&jid)?, limit, out),
        Command::Status { jid } => status::run(&home, &bare(&jid)?, out),
        Command::Verify { uri } => trust::run_verify(&home, &uri, out).await,
        Command::Attest { action } => {
            let ask = match action {
                AttestAction::Statement => attest::Ask::Statement,
                AttestAction::Publish {
                    openpgp,
                    x509_chain,
                    x509_signature,
                } => attest::Ask::Publish {
                    openpgp,
                    x509_chain,
                    x509_signature,
                },
                AttestAction::Anchor {
                    remove: Some(id), ..
                } => attest::Ask::RemoveAnchor(id),
                AttestAction::Anchor { openpgp, x509, .. } => attest::Ask::Anchor { openpgp, x509 },
                AttestAction::Anchors => attest::Ask::Anchors,
                AttestAction::Check { jid } => attest::Ask::Check(bare(&jid)?),
            };
            attest::run(&home, ask, out).await
        }
        Command::Sas {
            jid,
            device,
            wait,
            timeout,
        } => {
            let jid = jid.map(|j| bare(&j)).transpose()?;
            let ask = match (jid, device, wait) {
                (jid, None, true) => sas::Ask::Wait(jid),
                (Some(jid), Some(device), false) => sas::Ask::Start(jid, device),
                _ => return Err(CliError::SasUsage),
            };
            sas::run(&home, ask, Duration::from_secs(timeout), out).await
        }
        Command::Trust { jid, device } => {
            trust::run(
                &home,
                &bare(&jid)?,
                &device,
                hush_store::Trust::Verified,
                out,
            )
            .await
        }
        Command::Distrust { jid, device } => {
            trust::run(
                &home,
                &bare(&jid)?,
                &device,
                hush_store::Trust::Distrusted,
                out,
            )
            .await
        }
        Command::Recv {
            count,
            timeout,
            follow,
            downloads,
            max_download,
        } => {
            let until = if follow {
                recv::Until::Interrupted
            } else {
                recv::Until::Quiet(Duration::from_secs(timeout))
            };
            let downloads = files::Downloads::new(&home, downloads, max_download);
            recv::run(&home, count, until, &downloads, out).await
        }
        Command::Fingerprint { qr, uri } => fingerprint::run(
            &home,
            fingerprint::Form::from_names(qr.as_deref(), Some(&uri)),
            out,
        ),
        Command::Contacts { action } => {
            contacts::run(&home, &contacts_change(action.as_ref())?, out).await
        }
        Command::Chat { jid } => {
            let jid = jid.map(|j| bare(&j)).transpose()?;
            crate::chat::run(home, jid).await
        }
        Command::Devices { jid: None, remove } if !remove.is_empty() => {
            devices::remove(&home, &remove, out).await
        }
        Command::Devices { jid, .. } => {
            let jid = jid.map(|j| bare(&j)).transpose()?;
            devices::list(&home, jid.as_ref(), out)
        }
        Command::Agent {
            action: None,
            confirm,
        } => crate::agent::server::run(home, confirm).await,
        Command::Agent {
            action: Some(AgentAction::Lock),
            ..
        } => crate::agent::client::lock(&home, out).await,
        Command::Agent {
            action: Some(AgentAction::Unlock),
            ..
        } => crate::agent::client::unlock(&home, out).await,
        Command::Store {
            action: StoreAction::Encrypt,
        } => store::encrypt(&home, out),
        Command::Session {
            action: SessionAction::Reset { jid, device },
        } => session::reset(&home, &bare(&jid)?, device, out),
        // Handled above, before the home directory is located.
        #[cfg(feature = "demo")]
        Command::Demo => Ok(crate::demo::run(out.is_json()).await?),
    }
}

/// The agent method, its parameters and (for a list) the member holding it, of the commands
/// the agent serves that print what it answers (`send` and `recv` talk to it themselves).
fn served_by_agent(
    command: &Command,
) -> Result<Option<(&'static str, Value, Option<&'static str>)>> {
    Ok(Some(match command {
        Command::History { jid, limit } => (
            "history",
            json!({"jid": bare(jid)?.to_string(), "limit": limit}),
            Some("messages"),
        ),
        Command::Status { jid } => ("status", json!({"jid": bare(jid)?.to_string()}), None),
        Command::Fingerprint { qr, uri } => ("fingerprint", json!({"qr": qr, "uri": uri}), None),
        Command::Devices { jid, remove } if remove.is_empty() => {
            let jid = jid.as_deref().map(bare).transpose()?;
            (
                "devices",
                json!({"jid": jid.map(|j| j.to_string())}),
                Some("devices"),
            )
        }
        Command::Trust { jid, device } | Command::Distrust { jid, device } => (
            if matches!(command, Command::Trust { .. }) {
                "trust"
            } else {
                "distrust"
            },
            json!({"jid": bare(jid)?.to_string(), "device": device}),
            Some("devices"),
        ),
        Command::Verify { uri } => ("verify", json!({"uri": uri}), Some("devices")),
        Command::Devices { jid: None, remove } => {
            ("remove_devices", json!({"devices": remove}), None)
        }
        Command::Contacts { action } => match contacts_change(action.as_ref())? {
            contacts::Change::List => ("contacts", json!({}), Some("contacts")),
            contacts::Change::Add(jid) => ("add_contact", json!({"jid": jid.to_string()}), None),
            contacts::Change::Remove(jid) => {
                ("remove_contact", json!({"jid": jid.to_string()}), None)
            }
        },
        Command::Join { .. } | Command::Leave { .. } | Command::Rooms | Command::Members { .. } => {
            match rooms_change(command)? {
                rooms::Change::Join { room, nick } => (
                    "join",
                    json!({"room": room.to_string(), "nick": nick}),
                    None,
                ),
                rooms::Change::Leave(room) => ("leave", json!({"room": room.to_string()}), None),
                rooms::Change::List => ("rooms", json!({}), Some("rooms")),
                rooms::Change::Members(room) => (
                    "members",
                    json!({"room": room.to_string()}),
                    Some("members"),
                ),
                rooms::Change::Affiliate {
                    room,
                    jid,
                    affiliation,
                } => (
                    "set_member",
                    json!({"room": room.to_string(), "jid": jid.to_string(),
                       "affiliation": affiliation.map(|a| a.as_str())}),
                    None,
                ),
            }
        }
        Command::Session {
            action: SessionAction::Reset { jid, device },
        } => (
            "reset",
            json!({"jid": bare(jid)?.to_string(), "device": device}),
            None,
        ),
        _ => return Ok(None),
    }))
}

/// Prints what the agent answered as the command prints it without one: a list one JSON
/// object per line (`--json`), or the text lines.
fn show_from_agent(result: Shown, list: Option<&str>, out: Printer) -> Result<()> {
    match list {
        Some(member) if out.is_json() => {
            for item in result.json[member].as_array().into_iter().flatten() {
                out.show(&Shown {
                    json: item.clone(),
                    text: Vec::new(),
                })?;
            }
            Ok(())
        }
        _ => out.show(&result),
    }
}

/// What `hush join`, `leave`, `rooms` or `members` asks for.
fn rooms_change(command: &Command) -> Result<rooms::Change> {
    Ok(match command {
        Command::Join { room, nick } => rooms::Change::Join {
            room: bare(room)?,
            nick: nick.clone(),
        },
        Command::Leave { room } => rooms::Change::Leave(bare(room)?),
        Command::Members { room, action } => match action {
            None => rooms::Change::Members(bare(room)?),
            Some(MembersAction::Add { jid, admin }) => rooms::Change::Affiliate {
                room: bare(room)?,
                jid: bare(jid)?,
                affiliation: Some(if *admin {
                    hush_store::Affiliation::Admin
                } else {
                    hush_store::Affiliation::Member
                }),
            },
            Some(MembersAction::Remove { jid }) => rooms::Change::Affiliate {
                room: bare(room)?,
                jid: bare(jid)?,
                affiliation: None,
            },
        },
        _ => rooms::Change::List,
    })
}

/// What `hush contacts [ACTION]` asks for.
fn contacts_change(action: Option<&ContactsAction>) -> Result<contacts::Change> {
    Ok(match action {
        None | Some(ContactsAction::List) => contacts::Change::List,
        Some(ContactsAction::Add { jid }) => contacts::Change::Add(bare(jid)?),
        Some(ContactsAction::Remove { jid }) => contacts::Change::Remove(bare(jid)?),
    })
}

/// `jid` as a bare JID, or a clear error (naming the bare JID when a full one was given).
pub(crate) fn bare(jid: &str) -> Result<BareJid> {
    // The domain part holds no `/`: the first one starts the resource.
    if let Some((account, _resource)) = jid.split_once('/') {
        if let Ok(account) = account.parse::<BareJid>() {
            return Err(CliError::FullJid {
                full: jid.to_owned(),
                bare: account.to_string(),
            });
        }
    }
    jid.parse().map_err(|_| CliError::BadJid(jid.to_owned()))
}

/// The text of `hush send`: its words joined by spaces, or standard input for `-` (unless the
/// passphrase is read from there). Empty text is refused: it would be sent as an empty
/// message, which other clients show as nothing or drop.
fn message_text(words: &[String], passphrase_on_stdin: bool) -> Result<String> {
    let text = if words == ["-"] {
        if passphrase_on_stdin {
            return Err(CliError::TextAndPassphraseOnStdin);
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(CliError::ReadMessage)?;
        // The line break that ends the last line of the input is not part of the message.
        let kept = text.strip_suffix('\n').unwrap_or(&text);
        kept.strip_suffix('\r').unwrap_or(kept).to_owned()
    } else {
        words.join(" ")
    };
    if text.trim().is_empty() {
        return Err(CliError::EmptyMessage);
    }
    Ok(text)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The environment variable naming a DNS server (`IP:PORT`) to find accounts' servers with,
/// instead of the system's resolver (a private test domain, a resolver of one's own).
const DNS_SERVER_VAR: &str = "HUSH_DNS_SERVER";

fn connect_options(config: &Config) -> Result<ConnectOptions> {
    let dns = match std::env::var(DNS_SERVER_VAR) {
        Ok(value) if !value.is_empty() => {
            Some(value.parse().map_err(|_| CliError::BadDnsServer {
                var: DNS_SERVER_VAR,
                value,
            })?)
        }
        _ => None,
    };
    Ok(ConnectOptions {
        server: config.server.clone(),
        insecure_loopback: config.insecure_loopback,
        timeout: Duration::from_secs(30),
        dns,
    })
}

/// Takes the account's session lock, opens the store and logs in.
pub(crate) async fn connect(home: &Home) -> Result<(Hush<SqliteStore>, Config)> {
    home.require()?;
    home.lock_sessions()?;
    let store = home.open_store()?;
    let config = home.config(&store)?;
    let hush = Hush::connect(store, &config.password, &connect_options(&config)?).await?;
    Ok((hush, config))
}

/// Who we are, for advice addressed to the other side.
pub(crate) fn me(hush: &Hush<SqliteStore>) -> Me {
    Me {
        jid: hush.jid().to_string(),
        device: hush.device_id(),
    }
}

/// The account of an opened store (offline commands), or [`CliError::NoAccount`].
fn account(store: &SqliteStore) -> Result<hush_store::Account> {
    hush_store::Store::account(store)?.ok_or(CliError::NoAccount)
}
