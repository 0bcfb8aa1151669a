//! SIGINT, SIGTERM and SIGHUP for the commands that run until stopped (`recv`, `agent`): the
//! first asks them to stop between two steps, so nothing committed goes unshown; a second
//! ends the process at once.

/// Calls `stop` on the first SIGINT, SIGTERM or SIGHUP (a closed terminal); on a second, ends
/// the process at once with the status a shell reports for that signal (130, 143 or 129).
/// Must be called inside the runtime.
pub(crate) fn on_interrupt(stop: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        let Some(mut signals) = Signals::install() else {
            // Without handlers, signals end the process as they do by default.
            return;
        };
        signals.next().await;
        stop();
        let code = signals.next().await;
        // A chat on the screen gives the terminal back first.
        crate::chat::give_back_terminal();
        crate::output::divert_notes(None);
        crate::output::note(
            "interrupted again: stopping at once; what was received is in `hush history`",
        );
        std::process::exit(code);
    });
}

/// The signal streams, installed once: a second signal between two waits is not missed.
struct Signals {
    #[cfg(unix)]
    streams: [(tokio::signal::unix::Signal, i32); 3],
}

impl Signals {
    fn install() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Some(Self {
                streams: [
                    (signal(SignalKind::interrupt()).ok()?, 130),
                    (signal(SignalKind::terminate()).ok()?, 143),
                    (signal(SignalKind::hangup()).ok()?, 129),
                ],
            })
        }
        #[cfg(not(unix))]
        Some(Self {})
    }

    /// The next signal, as the exit status it stands for.
    async fn next(&mut self) -> i32 {
        #[cfg(unix)]
        {
            let [(int, a), (term, b), (hup, c)] = &mut self.streams;
            tokio::select! {
                _ = int.recv() => *a,
                _ = term.recv() => *b,
                _ = hup.recv() => *c,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            130
        }
    }
}
