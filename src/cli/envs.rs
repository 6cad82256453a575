//! `leafe env …`: environments as processes.
//!
//! `leafe env serve NAME --levels FILE` speaks the leafe env protocol
//! (`src/env/process.rs`, `docs/protocol.md`) on stdin/stdout for a
//! built-in environment, so the protocol can be tested, benchmarked and
//! tried without writing an adapter. Logs go to stderr.

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use anyhow::Context;

use crate::env::Env;
use crate::env::process::serve;
use crate::explore::World;
use crate::with_world;

/// Environments as processes.
#[derive(Debug, clap::Subcommand)]
pub enum EnvCmd {
    /// Serve a built-in environment over the env protocol (JSON Lines on
    /// stdin/stdout). Task ids are positions in --levels (0, 1, …) or the
    /// tasks' stable ids.
    Serve(ServeArgs),
}

/// Flags of `leafe env serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The environment: sokoban or gridworld.
    pub env: String,
    /// Task file (Boxoban levels for sokoban, a grid file for gridworld).
    #[arg(long)]
    pub levels: PathBuf,
    /// Step limit of an episode (truncation).
    #[arg(long, default_value_t = 120)]
    pub max_steps: usize,
}

/// Runs an `env` subcommand; returns the exit code.
pub fn run(cmd: EnvCmd) -> anyhow::Result<u8> {
    match cmd {
        EnvCmd::Serve(a) => {
            let env = a.env.clone();
            with_world!(env.as_str(), |w| serve_world(w, &a)).map_err(anyhow::Error::msg)?
        }
    }
}

fn serve_world<W: World>(world: W, a: &ServeArgs) -> anyhow::Result<u8>
where
    <W::Env as Env>::Snapshot: serde::Serialize + serde::de::DeserializeOwned,
{
    let tasks = world
        .read_tasks(&a.levels)
        .with_context(|| format!("reading {}", a.levels.display()))?;
    let mut env = world.make_env(a.max_steps)?;
    // Whether the environment has snapshots: ask it once, on the first task.
    let snapshots = match tasks.first() {
        Some(t) => {
            env.reset(t, 0)?;
            env.snapshot()?.is_some()
        }
        None => false,
    };
    let ids: Vec<String> = tasks.iter().map(|t| env.task_id(t)).collect();
    let resolve = |id: &str| {
        id.parse::<usize>()
            .ok()
            .and_then(|i| tasks.get(i))
            .or_else(|| ids.iter().position(|x| x == id).map(|i| &tasks[i]))
            .cloned()
    };
    tracing::info!(
        env = world.name(),
        tasks = tasks.len(),
        snapshots,
        "serving the env protocol on stdin/stdout"
    );
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(
        &mut env,
        &resolve,
        snapshots,
        BufReader::new(stdin.lock()),
        BufWriter::new(stdout.lock()),
    )?;
    Ok(0)
}
