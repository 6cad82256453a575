//! The `leafe` binary: parse, set up logging, run, map the outcome to an exit
//! code (0 success, 1 a requested check failed, 2 error).

use std::process::ExitCode;

use clap::Parser;
use leafe::cli::{Cli, run};

fn main() -> ExitCode {
    // Die quietly when the reader of stdout goes away (`leafe sql … | head`),
    // like other Unix tools, instead of failing on a broken pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let default_level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line: the context chain, each cause once (many errors already
            // quote their source), newlines folded.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
