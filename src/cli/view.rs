//! `leafe view`: serve the viewer, or write its static copy.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::StoreArgs;
use crate::view::{Api, ServeOptions, export, serve, server::new_token};

/// Arguments of `leafe view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on (port 0: a free port). Any address but loopback
    /// requires a token.
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub addr: SocketAddr,
    /// The token every request must carry (default on a non-loopback
    /// address: a random one, printed in the URL).
    #[arg(long, env = "LEAFE_VIEW_TOKEN")]
    pub token: Option<String>,
    /// Open the page in the default browser.
    #[arg(long)]
    pub open: bool,
    /// Write the views of the runs matching --runs as static files (HTML
    /// and JSON) to this local directory instead of serving.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Runs to export, as a SQL LIKE pattern on run_id.
    #[arg(long, default_value = "%")]
    pub runs: String,
    /// Directory of the query files; embedded copies serve for files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
}

/// Runs `leafe view`.
pub async fn view_cmd(a: ViewArgs) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let api = Api::new(store, Some(a.queries.clone()));
    if let Some(dir) = &a.export {
        let s = export(&api, dir, &a.runs).await?;
        if s.runs == 0 {
            eprintln!(
                "leafe view: no committed run matches `{}` in {}",
                a.runs,
                api.store().url()
            );
            return Ok(1);
        }
        println!(
            "leafe view: exported {} run(s), {} task tree(s), {} episode(s) as {} files to {} (serve it with any static file server)",
            s.runs,
            s.tasks,
            s.episodes,
            s.files,
            dir.display()
        );
        return Ok(0);
    }
    let token = match (&a.token, a.addr.ip().is_loopback()) {
        (Some(t), _) if t.len() < 16 => {
            anyhow::bail!("--token: at least 16 characters (give none to have one generated)")
        }
        (Some(t), _) => Some(t.clone()),
        (None, true) => None,
        (None, false) => Some(new_token()),
    };
    serve(
        api,
        ServeOptions {
            addr: a.addr,
            token,
            open: a.open,
        },
    )
    .await?;
    Ok(0)
}
