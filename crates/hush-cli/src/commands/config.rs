//! `hush config`: the global encryption switch, or one conversation's switches.

use hush_proto::policy::{Authentication, TrustModel};
use hush_store::Store;
use hush_xmpp::BareJid;
use serde_json::json;

use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{Printer, Shown};

/// The switches given (each `None` when not given).
pub(super) struct Change {
    pub(super) encryption: Option<String>,
    pub(super) require_auth: Option<String>,
    pub(super) blocked: Option<String>,
    pub(super) trust_model: Option<String>,
}

pub(super) fn run(home: &Home, jid: Option<&BareJid>, change: Change, out: Printer) -> Result<()> {
    let mut store = home.open_store()?;
    let mut config = home.config(&store)?;
    let Some(jid) = jid else {
        if let Some(e) = change.encryption {
            config.encryption_off = e == "off";
            home.write_config(&mut store, &config)?;
        }
        if let Some(m) = change.trust_model {
            let model = TrustModel::from_name(&m).ok_or(CliError::AccountTrustModel)?;
            store.set_default_trust_model(model)?;
        }
        let model = store.default_trust_model()?;
        out.show(&Shown {
            json: json!({"global_encryption": if config.encryption_off { "off" } else { "on" },
                         "trust_model": model.name()}),
            text: vec![
                format!(
                    "encryption (every conversation): {}",
                    if config.encryption_off { "OFF" } else { "on" }
                ),
                format!("trust model (every contact without its own): {model}"),
            ],
        })?;
        return Ok(());
    };
    let jid = jid.to_string();
    let mut record = store.conversation(&jid)?;
    if let Some(e) = change.encryption {
        record.policy.off = e == "off";
    }
    if let Some(b) = change.blocked {
        record.blocked = b == "on";
    }
    if let Some(m) = change.trust_model {
        // `account` (not a model's name) goes back to the account's model.
        record.trust_model = TrustModel::from_name(&m);
    }
    // clap allows only the names `from_name` knows.
    if let Some(a) = change
        .require_auth
        .and_then(|a| Authentication::from_name(&a))
    {
        record.policy.min_auth = a;
    }
    store.set_conversation(&jid, &record)?;
    let model = store.trust_model(&jid)?;
    out.show(&Shown {
        json: json!({"jid": jid, "encryption": if record.policy.off { "off" } else { "on" },
                     "require_auth": record.policy.min_auth.name(),
                     "blocked": record.blocked,
                     "trust_model": model.name(),
                     "trust_model_set_for": if record.trust_model.is_some() { "contact" } else { "account" }}),
        text: vec![format!(
            "{jid}: encryption {}, requires {} authentication{}",
            if record.policy.off { "OFF" } else { "on" },
            record.policy.min_auth,
            if record.blocked {
                ", BLOCKED (nothing from it is shown)"
            } else {
                ""
            }
        ), format!(
            "{jid}: trust model {model}{}",
            if record.trust_model.is_some() { "" } else { " (the account's)" }
        )],
    })?;
    Ok(())
}
