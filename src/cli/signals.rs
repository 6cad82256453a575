//! Signals of the `leafe` process: a reader of stdout that goes away ends
//! leafe quietly, and Ctrl-C / SIGTERM kill the environment processes
//! (each in a process group of its own, so the terminal's signal does not
//! reach them) before leafe exits.
//!
//! SIGPIPE itself stays ignored: a write to an environment process that
//! died must be an error the explorer records, not a kill.

/// Whether `e` is a write to stdout whose reader went away.
pub(super) fn is_broken_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Stdout for commands that stream rows (`leafe sql`): a write whose reader
/// went away ends leafe at once ([`die_of_sigpipe`]), whatever error type
/// the writer above would have wrapped it in.
pub(super) struct QuietStdout<W>(pub(super) W);

impl<W: std::io::Write> std::io::Write for QuietStdout<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_of_sigpipe(),
            r => r,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => die_of_sigpipe(),
            r => r,
        }
    }
}

/// Ends the process as a Unix tool does when its output pipe closes: by
/// SIGPIPE, silently (the shell sees status 141).
pub(super) fn die_of_sigpipe() -> ! {
    crate::env::process::kill_all();
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE and raises it; the
    // process ends here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(141)
}

/// `println!` panics on a closed stdout; this hook turns that panic into
/// [`die_of_sigpipe`] and leaves every other panic to the default hook.
pub(super) fn quiet_on_broken_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            die_of_sigpipe();
        }
        default(info);
    }));
}

/// On Ctrl-C or SIGTERM: kill every environment process group, then exit
/// as the signal would have (130 / 143). Call inside the runtime.
pub(super) fn clean_up_on_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        crate::env::process::kill_all();
        eprintln!("interrupted; environment processes killed");
        std::process::exit(130);
    });
    #[cfg(unix)]
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            crate::env::process::kill_all();
            std::process::exit(143);
        }
    });
}
