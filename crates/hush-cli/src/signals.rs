//! SIGINT and SIGTERM for the commands that run until stopped (`recv --follow`, `agent`): the
//! first asks them to stop between two steps, so nothing committed goes unshown; a second
//! ends the process at once.

/// Calls `stop` on the first SIGINT or SIGTERM; on a second, ends the process at once with
/// the status a shell reports for the signal (130 or 143). Must be called inside the runtime.
pub(crate) fn on_interrupt(stop: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        interrupted().await;
        stop();
        let code = interrupted().await;
        crate::output::note(
            "interrupted again: stopping at once; what was received is in `hush history`",
        );
        std::process::exit(code);
    });
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and gives the exit status a shell reports for it
/// (130 or 143). If the handlers cannot be installed it never resolves: the process then ends
/// as signals end it by default.
async fn interrupted() -> i32 {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => 130,
                    _ = term.recv() => 143,
                }
            }
            _ => std::future::pending().await,
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
