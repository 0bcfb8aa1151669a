//! `hush`: end-to-end encrypted XMPP messaging from the command line.
//!
//! Every command takes `--home DIR` (env `HUSH_HOME`) holding one account's config and store,
//! and `--json` for one JSON object per line. Errors print one `error: …` line (with `--json`,
//! one JSON object on stderr) and exit with the status of their kind ([`error::Kind`]).
//! The store is encrypted under a passphrase (`--passphrase-stdin`, `--passphrase-env NAME`,
//! `HUSH_PASSPHRASE`, or the terminal) unless `hush init --unencrypted-store` chose otherwise.
//!
//! The layout: [`cli`] declares the commands, [`commands`] holds one module per command,
//! [`output`] is the one printer (text or JSON) they all report through, [`advice`] words the
//! library's typed failures with this program's command lines, and [`error`] is the one error
//! type. `hush demo` ([`demo`]) is behind the default `demo` cargo feature, which brings in
//! the development server.

#![forbid(unsafe_code)]

mod advice;
mod agent;
mod chat;
mod cli;
mod commands;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod home;
mod output;
mod qr;
mod signals;
mod terminal;
mod verification;

use std::process::ExitCode;

use clap::Parser;
use terminal::printable;

use crate::cli::Cli;
use crate::error::{CliError, Kind};

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
            let line = log_line(r.level(), r.target(), &r.args().to_string(), self.only_hush);
            output::note(&line);
        }
    }
    fn flush(&self) {}
}

/// One log line: by default in the style of every other line on stderr (`warning: …`); when
/// asked for (`HUSH_LOG`), with the level and the layer that said it. Log lines quote the
/// network too (senders, server errors): made printable.
fn log_line(level: log::Level, target: &str, text: &str, plain: bool) -> String {
    let text = printable(text);
    if plain {
        let word = match level {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            _ => "note",
        };
        format!("{word}: {text}")
    } else {
        format!("[{level} {target}] {text}")
    }
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
    // `--json` anywhere before a `--` asks for errors as JSON too, usage errors included.
    let json = std::env::args()
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            // clap's message up to its usage block, on one line.
            let text = e.to_string();
            let what = text.split("\n\n").next().unwrap_or_default();
            let what = what.strip_prefix("error: ").unwrap_or(what);
            let message = what.split_whitespace().collect::<Vec<_>>().join(" ");
            return fail(json, Kind::Usage, &message);
        }
        // Help, version, and usage errors on a terminal: as clap prints them (exit 2).
        Err(e) => e.exit(),
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`hush recv | head -1`): what it wanted was
        // written, and nothing was lost (what was read is in history). Quietly done.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(json, e.kind(), &e.to_string()),
    }
}

/// Reports a failure on standard error — one `error: …` line, or with `--json` one object
/// `{"error": …, "kind": …, "exit": …}` — and gives the exit status of its kind.
fn fail(json: bool, kind: Kind, message: &str) -> ExitCode {
    let code = kind.exit_code();
    if json {
        let line = serde_json::json!({"error": message, "kind": kind.name(), "exit": code});
        // JSON escapes every control character, so the line cannot be forged either.
        output::note_raw(&line.to_string());
    } else {
        output::note(&format!("error: {}", printable(message)));
    }
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_look_like_the_other_lines_unless_the_log_was_asked_for() {
        let warn = log_line(
            log::Level::Warn,
            "hush_xmpp::client",
            "lost\nthe link",
            true,
        );
        assert_eq!(warn, "warning: lost\n    | the link");
        let asked = log_line(log::Level::Debug, "hush_xmpp::client", "x", false);
        assert_eq!(asked, "[DEBUG hush_xmpp::client] x");
    }
}
