//! `hush store encrypt`: encrypts a store kept in clear, under a new passphrase.

use serde_json::json;

use crate::error::Result;
use crate::home::Home;
use crate::output::{Printer, Shown};

pub(super) fn encrypt(home: &Home, out: Printer) -> Result<()> {
    home.encrypt_store()?;
    out.show(&Shown {
        json: json!({"store": "encrypted"}),
        text: vec![format!(
            "the store in {} is encrypted now, and holds the XMPP password; keep the \
             passphrase safe: without it the account cannot be opened",
            home.dir().display()
        )],
    })?;
    Ok(())
}
