//! Confirm-on-use (`hush agent --confirm`, like `ssh-add -c`): the agent asks on its own
//! terminal before it serves a new connection, naming the process that connected; the answer
//! holds for that connection while it stays open. Only `ping`, `lock` and `unlock` are served
//! without asking (they reveal and change nothing that needs the keys).
//!
//! One thread reads the terminal, one question at a time. A question not answered within
//! [`PATIENCE`] is refused; a line typed after that answers nothing (the thread says so).

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::AgentError;
use crate::terminal::printable;

/// How long a question waits for its answer.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// The controlling terminal.
const TTY: &str = "/dev/tty";

/// The methods served without asking.
pub(crate) fn needs_asking(method: &str) -> bool {
    !matches!(method, "ping" | "lock" | "unlock")
}

/// A question for the terminal.
struct Question {
    who: String,
    answer: oneshot::Sender<bool>,
}

/// The agent's terminal, to ask on.
pub(crate) struct Confirm {
    questions: std_mpsc::Sender<Question>,
}

impl Confirm {
    /// Opens the controlling terminal (an agent without one cannot ask: an error).
    pub(crate) fn open() -> Result<Self, AgentError> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(TTY)
            .map_err(AgentError::NoTerminalToAsk)?;
        let (questions, asked) = std_mpsc::channel::<Question>();
        std::thread::spawn(move || ask_each(tty, &asked));
        Ok(Self { questions })
    }

    /// Asks whether `who` may use the account; `false` when the answer is no, or does not
    /// come within [`PATIENCE`].
    pub(crate) async fn ask(&self, who: String) -> bool {
        let (answer, answered) = oneshot::channel();
        if self.questions.send(Question { who, answer }).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(PATIENCE, answered).await, Ok(Ok(true)))
    }
}

/// The terminal thread: each question, its answer line.
fn ask_each(tty: std::fs::File, asked: &std_mpsc::Receiver<Question>) {
    let Ok(mut out) = tty.try_clone() else {
        return;
    };
    let mut lines = BufReader::new(tty);
    while let Ok(q) = asked.recv() {
        if q.answer.is_closed() {
            continue; // its time ran out while an earlier one was asked
        }
        let _ = write!(
            out,
            "\nhush agent: {} connected. Allow it to read and write as this account while it \
             stays connected? [y/N] ",
            q.who
        );
        let _ = out.flush();
        let mut line = String::new();
        if lines.read_line(&mut line).unwrap_or(0) == 0 {
            return; // the terminal is gone: every later question is refused
        }
        let yes = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        if q.answer.send(yes).is_err() {
            let _ = writeln!(
                out,
                "hush agent: too late ({PATIENCE:?} passed): it was refused"
            );
        }
    }
}

/// Who is on the other end of a connection, as the question names it: the command line of
/// process `pid` (made printable, cut to 200 characters).
pub(crate) fn describe(pid: Option<i32>) -> String {
    let Some(pid) = pid else {
        return "a process (its id is unknown)".into();
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = printable(&words.join(" "));
    if line.chars().count() > 200 {
        line = line.chars().take(200).collect::<String>() + "…";
    }
    if line.is_empty() {
        format!("process {pid}")
    } else {
        format!("process {pid} ({line})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_methods_go_unasked() {
        for m in ["ping", "lock", "unlock"] {
            assert!(!needs_asking(m), "{m}");
        }
        for m in [
            "send",
            "history",
            "subscribe",
            "trust",
            "status",
            "contacts",
            "nonsense",
        ] {
            assert!(needs_asking(m), "{m}");
        }
    }

    #[test]
    fn a_process_is_named_by_its_command_line() {
        let me = describe(Some(i32::try_from(std::process::id()).unwrap()));
        assert!(
            me.starts_with(&format!("process {} (", std::process::id())),
            "{me}"
        );
        assert_eq!(describe(None), "a process (its id is unknown)");
    }
}
