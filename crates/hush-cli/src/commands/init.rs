//! `hush init`: a new device identity for an account, its store, and its keys published.

use std::io::Read;

use hush_proto::{LocalDevice, DEFAULT_PREKEYS};
use hush_store::Store;
use hush_xmpp::{BareJid, Hush};
use serde_json::json;
use zeroize::Zeroizing;

use super::{connect_options, unix_now};
use crate::error::{CliError, Result};
use crate::home::{Config, Home};
use crate::output::{Printer, Shown};

/// What `hush init` was asked for.
pub(super) struct Setup {
    pub(super) jid: BareJid,
    pub(super) server: Option<String>,
    pub(super) password_stdin: bool,
    pub(super) password_env: Option<String>,
    pub(super) insecure_loopback: bool,
    pub(super) encrypted: bool,
}

pub(super) async fn run(home: &Home, setup: Setup, out: Printer) -> Result<()> {
    if home.exists() {
        return Err(CliError::HomeInUse(home.dir().to_owned()));
    }
    if setup.password_stdin && home.passphrase_from_stdin() {
        return Err(CliError::StdinTwice);
    }
    if !setup.encrypted && home.passphrase_named() {
        return Err(CliError::PassphraseUnwanted);
    }
    let password = Zeroizing::new(match (setup.password_stdin, &setup.password_env) {
        (true, _) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(CliError::ReadPassword)?;
            s.trim_end_matches(['\r', '\n']).to_owned()
        }
        (false, Some(var)) => {
            std::env::var(var).map_err(|_| CliError::UnsetVariable(var.clone()))?
        }
        (false, None) => return Err(CliError::NoPassword),
    });
    if setup.encrypted {
        // Asked for before anything is created, so a missing one leaves no trace.
        home.new_passphrase().map_err(CliError::NewPassphrase)?;
    }
    home.create()?;
    let mut rng = rand_core::UnwrapErr(rand::rngs::SysRng);
    let device_id = 1 + (rand_core::Rng::next_u32(&mut rng) % 0x7fff_fffe);
    let device = LocalDevice::generate(device_id, DEFAULT_PREKEYS, unix_now(), &mut rng)?;
    let config = Config {
        jid: setup.jid.to_string(),
        server: setup.server,
        insecure_loopback: setup.insecure_loopback,
        password,
        created_at: unix_now(),
        encryption_off: false,
    };
    let result: Result<()> = async {
        home.lock_sessions()?;
        let mut store = home.create_store(setup.encrypted)?;
        store.create_account(setup.jid.as_str(), &device)?;
        home.write_config(&mut store, &config)?;
        let mut hush = Hush::connect(store, &config.password, &connect_options(&config)?).await?;
        hush.announce().await?;
        hush.close().await?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        // Leave nothing half-made behind, so `hush init` can simply be run again.
        home.remove_created();
        return Err(e);
    }
    if !setup.encrypted {
        crate::output::note(&format!(
            "warning: the store in {} is not encrypted, as you chose (--unencrypted-store): \
             anyone who can read it can read your keys, messages and XMPP password",
            home.dir().display()
        ));
    }
    let fp = device.identity().public().fingerprint();
    let jid = setup.jid;
    out.show(&Shown {
        json: json!({"jid": jid.to_string(), "device": device_id, "fingerprint": fp,
                     "store": if setup.encrypted { "encrypted" } else { "unencrypted" }}),
        text: vec![
            format!("initialised {jid}, device {device_id}"),
            format!("fingerprint {fp}"),
        ],
    })?;
    Ok(())
}
