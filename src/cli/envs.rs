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
use crate::explore::World;
use crate::with_world;

/// Environments as processes.
#[derive(Debug, clap::Subcommand)]
pub enum EnvCmd {
    /// Serve a built-in environment over the env protocol (JSON Lines on
    /// stdin/stdout). Task ids are positions in --levels (0, 1, …) or the
    /// tasks' stable ids.
    Serve(ServeArgs),
    /// Check an environment against the protocol's laws (hello, reset,
    /// legal actions honoured, replay reproduces, snapshot/restore
    /// round-trips, terminal states refuse steps); each law is reported as
    /// passed, failed (with what was seen) or skipped (with why). Exit 1 if
    /// any failed.
    Check(CheckArgs),
}

/// Flags of `leafe env check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The environment: `cmd:COMMAND` (a process speaking the env protocol,
    /// run with `sh -c`), `textworld:GAMES_DIR`, or a built-in one (sokoban,
    /// gridworld), checked through `leafe env serve`.
    #[arg(long)]
    pub env: String,
    /// Task ids, one per line (for a built-in environment: its task file).
    #[arg(long)]
    pub levels: PathBuf,
    /// Seed of the resets and of the random walks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps of the random walks that replay and snapshot are checked on.
    #[arg(long, default_value_t = 12)]
    pub walk_steps: usize,
    /// Steps a random walk may take to reach an episode's end (terminal law).
    #[arg(long, default_value_t = 500)]
    pub max_steps: usize,
    /// Milliseconds the process may take to answer a request [default:
    /// 30000; 120000 for textworld:, which generates a game on its first
    /// use]
    #[arg(long)]
    pub env_timeout_ms: Option<u64>,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = crate::query::OutputFormat::Table)]
    pub format: crate::query::OutputFormat,
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
        EnvCmd::Check(a) => check_cmd(&a),
    }
}

fn check_cmd(a: &CheckArgs) -> anyhow::Result<u8> {
    use crate::env::check::{CheckOptions, check};
    let (command, timeout_ms, tasks) = match crate::setup::process_env(Some(a.env.as_str()))? {
        Some(p) => (
            p.command.clone(),
            p.timeout(a.env_timeout_ms),
            crate::setup::read_task_ids(&a.levels)?,
        ),
        None => {
            // A built-in environment, through its own server: task ids are
            // positions in the task file.
            let n = with_world!(a.env.as_str(), |w| w
                .read_tasks(&a.levels)
                .map(|t| t.len())
                .with_context(|| format!("reading {}", a.levels.display())))
            .map_err(anyhow::Error::msg)??;
            let exe = std::env::current_exe().context("locating the leafe binary")?;
            let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
            (
                format!(
                    "{} env serve {} --levels {}",
                    quote(&exe.to_string_lossy()),
                    quote(&a.env),
                    quote(&a.levels.to_string_lossy())
                ),
                a.env_timeout_ms.unwrap_or(crate::setup::ENV_TIMEOUT_MS),
                (0..n).map(|i| i.to_string()).collect(),
            )
        }
    };
    let pool_config = crate::env::process::ProcessConfig {
        command: vec!["sh".into(), "-c".into(), command],
        timeout_ms,
        max_steps: 0,
    };
    let laws = check(
        &pool_config,
        &CheckOptions {
            tasks,
            seed: a.seed,
            walk_steps: a.walk_steps,
            max_steps: a.max_steps,
            ..CheckOptions::default()
        },
    );
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "law",
            std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
                laws.iter().map(|l| l.law),
            )) as arrow::array::ArrayRef,
        ),
        (
            "result",
            std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
                laws.iter().map(|l| l.verdict.as_str()),
            )),
        ),
        (
            "detail",
            std::sync::Arc::new(arrow::array::StringArray::from_iter_values(
                laws.iter().map(|l| l.verdict.detail()),
            )),
        ),
    ])?;
    crate::query::write_batches(&mut std::io::stdout().lock(), &[batch], a.format)?;
    let failed = laws
        .iter()
        .filter(|l| matches!(l.verdict, crate::env::check::Verdict::Failed(_)))
        .count();
    if failed > 0 {
        eprintln!("{}: {failed} of {} law(s) failed", a.env, laws.len());
        return Ok(1);
    }
    Ok(0)
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
    crate::env::process::serve_described(
        &mut env,
        &resolve,
        snapshots,
        Some(world.system_prompt()),
        BufReader::new(stdin.lock()),
        BufWriter::new(stdout.lock()),
    )?;
    Ok(0)
}
