//! `leafe pretrain`: a base policy by behaviour cloning, for a built-in
//! world (the MLP over its encoding) or for any text environment (the text
//! policy, from the environment's demonstrations).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::StoreArgs;
use super::command_line;
use super::stage1::bar;
use crate::eval::mean_pass_at_k;
use crate::explore::{World, count_successes};
use crate::train::{PretrainConfig, pretrain_world, record_and_save_as};
use crate::with_world;

/// Arguments of `leafe pretrain`.
#[derive(Debug, Args)]
pub struct PretrainArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Environment: sokoban or gridworld (the MLP over the board), or a
    /// text environment (`cmd:…`, `textworld:…`, `scienceworld:…`,
    /// `gym:…`, `openenv:…`) whose demonstrations (the protocol's `demo`
    /// verb) train the text policy.
    #[arg(long, default_value = "sokoban")]
    pub env: String,
    /// Training tasks (Boxoban levels for sokoban, a grid file for
    /// gridworld, one task id per line for a text environment); the first
    /// --demo-levels are imitated.
    #[arg(long)]
    pub levels: PathBuf,
    /// Name of the model to save (models/<name>/ in the store).
    #[arg(long, default_value = "base")]
    pub out_model: String,
    /// TOML file with PretrainConfig fields; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tasks whose demonstrations (solver solutions, shortest paths) are imitated [default: 300].
    #[arg(long)]
    pub demo_levels: Option<usize>,
    /// Passes over the demonstrations [default: 10].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of initialisation and shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Held-out levels to measure the new policy on (success rate and Pass@k).
    #[arg(long)]
    pub eval_levels: Option<PathBuf>,
    /// Samples per held-out level.
    #[arg(long, default_value_t = 32)]
    pub eval_samples: usize,
    /// Step limit of evaluation episodes.
    #[arg(long, default_value_t = 60)]
    pub eval_max_steps: u16,
    /// Milliseconds a text environment's process may take to answer a
    /// request [default: 30000; 120000 for textworld:, which generates a
    /// game on its first use]
    #[arg(long)]
    pub env_timeout_ms: Option<u64>,
}

/// `leafe pretrain`.
pub async fn pretrain_cmd(a: PretrainArgs, quiet: bool) -> anyhow::Result<u8> {
    if let Some(p) = crate::setup::process_env(Some(a.env.as_str()))? {
        return pretrain_text_cmd(&p, a, quiet).await;
    }
    let env = a.env.clone();
    with_world!(env.as_str(), |w| pretrain_in(w, a, quiet).await).map_err(anyhow::Error::msg)?
}

async fn pretrain_in<W: World>(world: W, a: PretrainArgs, quiet: bool) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let mut cfg: PretrainConfig = crate::setup::read_config(a.config.as_deref())?;
    if let Some(v) = a.demo_levels {
        cfg.demo_levels = v;
    }
    if let Some(v) = a.epochs {
        cfg.fit.epochs = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
        cfg.fit.seed = v;
    }
    let levels = world
        .read_tasks(&a.levels)
        .context("reading the training levels")?;
    crate::setup::ensure_new_model(&store, &a.out_model).await?;
    let pb = bar(0, quiet);
    pb.set_message("behaviour cloning");
    let started = Instant::now();
    let (policy, report) = tokio::task::block_in_place(|| {
        pretrain_world(&world, &levels, &cfg, |step, total, loss| {
            pb.set_length(total as u64);
            pb.set_position(step as u64);
            pb.set_message(format!("loss {loss:.3}"));
        })
    })?;
    pb.finish_and_clear();
    let train_secs = started.elapsed().as_secs_f64();
    let mut eval = serde_json::Value::Null;
    if let Some(path) = &a.eval_levels {
        let held_out = world
            .read_tasks(path)
            .context("reading the evaluation levels")?;
        let n = a.eval_samples.max(1);
        let started = Instant::now();
        let successes = tokio::task::block_in_place(|| {
            count_successes(
                &held_out,
                &|| world.make_env(a.eval_max_steps as usize),
                &policy,
                n,
                1.0,
                cfg.seed ^ 0xE7A1,
                512,
            )
        })?;
        let pass = held_out_line(path, held_out.len(), n, &successes, started);
        eval = serde_json::json!({ "levels": path.display().to_string(), "samples": n, "max_steps": a.eval_max_steps, "pass_at_k": pass });
    }
    // The run records the resolved config; the model records the run.
    let run_id = format!(
        "pretrain-{}-{}",
        a.out_model,
        crate::store::now_us() / 1_000_000
    );
    let config_json = serde_json::json!({
        "pretrain": cfg,
        "env": world.name(),
        "levels": a.levels.display().to_string(),
        "out_model": a.out_model,
        "report": report,
        "eval": eval,
    });
    record_and_save_as(
        &store,
        "pretrain",
        &run_id,
        &a.out_model,
        &policy,
        cfg.seed,
        config_json,
        &command_line(),
    )
    .await?;
    println!(
        "saved model {} to {} ({} demo levels, {} pairs, loss {:.3} → {:.3}, {:.1}s); run {run_id}",
        a.out_model,
        store.url(),
        report.levels,
        report.samples,
        report.epoch_losses.first().copied().unwrap_or(f32::NAN),
        report.epoch_losses.last().copied().unwrap_or(f32::NAN),
        train_secs
    );
    Ok(0)
}

/// Prints the held-out line (Pass@1, 2, 4, … n) and returns Pass@k by k.
fn held_out_line(
    path: &std::path::Path,
    tasks: usize,
    n: usize,
    successes: &[u32],
    started: Instant,
) -> serde_json::Map<String, serde_json::Value> {
    let counts: Vec<(u64, u64)> = successes.iter().map(|&c| (n as u64, c as u64)).collect();
    let ks: Vec<u64> = (0..)
        .map(|i| 1u64 << i)
        .take_while(|&k| k <= n as u64)
        .collect();
    let pass: serde_json::Map<String, serde_json::Value> = ks
        .iter()
        .map(|&k| (k.to_string(), serde_json::json!(mean_pass_at_k(&counts, k))))
        .collect();
    println!(
        "held-out {} ({tasks} levels × {n} samples, {:.1}s): {}",
        path.display(),
        started.elapsed().as_secs_f64(),
        ks.iter()
            .map(|k| format!(
                "pass@{k} {:.3}",
                pass[&k.to_string()].as_f64().unwrap_or(0.0)
            ))
            .collect::<Vec<_>>()
            .join("  ")
    );
    pass
}

/// `leafe pretrain --env <text environment>`: the text policy cloned from
/// the environment's demonstrations.
async fn pretrain_text_cmd(
    env: &crate::setup::ProcessSpec,
    a: PretrainArgs,
    quiet: bool,
) -> anyhow::Result<u8> {
    let command = env.command.as_str();
    use crate::train::text::{TextPretrainConfig, pretrain_text, record_and_save_text};
    let store = a.store.open()?;
    let mut cfg: TextPretrainConfig = crate::setup::read_config(a.config.as_deref())?;
    if let Some(v) = a.demo_levels {
        cfg.demo_levels = v;
    }
    if let Some(v) = a.epochs {
        cfg.fit.epochs = v;
    }
    if let Some(v) = a.seed {
        cfg.seed = v;
        cfg.fit.seed = v;
    }
    let tasks = crate::setup::read_task_ids(&a.levels)?;
    crate::setup::ensure_new_model(&store, &a.out_model).await?;
    let timeout_ms = env.timeout(a.env_timeout_ms);
    let pool = crate::setup::process_pool(command, timeout_ms, cfg.max_steps as usize)?;
    let pb = bar(0, quiet);
    pb.set_message("replaying demonstrations");
    let started = Instant::now();
    let (policy, report) = tokio::task::block_in_place(|| -> anyhow::Result<_> {
        let mut env = pool.make()?;
        Ok(pretrain_text(
            &mut env,
            &tasks,
            &cfg,
            |step, total, loss| {
                pb.set_length(total as u64);
                pb.set_position(step as u64);
                pb.set_message(format!("loss {loss:.3}"));
            },
        )?)
    })?;
    pb.finish_and_clear();
    let train_secs = started.elapsed().as_secs_f64();
    let mut eval = serde_json::Value::Null;
    if let Some(path) = &a.eval_levels {
        let held_out = crate::setup::read_task_ids(path)?;
        let eval_pool = crate::setup::process_pool(command, timeout_ms, a.eval_max_steps as usize)?;
        let n = a.eval_samples.max(1);
        let started = Instant::now();
        // Few episodes at once: each holds an environment process.
        let successes = tokio::task::block_in_place(|| {
            count_successes(
                &held_out,
                &|| eval_pool.make(),
                &policy,
                n,
                1.0,
                cfg.seed ^ 0xE7A1,
                16,
            )
        })?;
        let pass = held_out_line(path, held_out.len(), n, &successes, started);
        eval = serde_json::json!({ "levels": path.display().to_string(), "samples": n, "max_steps": a.eval_max_steps, "pass_at_k": pass });
    }
    let run_id = format!(
        "pretrain-{}-{}",
        a.out_model,
        crate::store::now_us() / 1_000_000
    );
    let config_json = serde_json::json!({
        "pretrain_text": cfg,
        "env": a.env,
        "levels": a.levels.display().to_string(),
        "out_model": a.out_model,
        "report": report,
        "eval": eval,
    });
    record_and_save_text(
        &store,
        "pretrain",
        &run_id,
        &a.out_model,
        &policy,
        cfg.seed,
        config_json,
        &command_line(),
    )
    .await?;
    println!(
        "saved text model {} to {} ({} demonstrations replayed, {} without one, {} decisions, {} actions not legal; {} words; loss {:.3} → {:.3}, {:.1}s); run {run_id}",
        a.out_model,
        store.url(),
        report.demos.tasks,
        report.demos.without,
        report.demos.decisions,
        report.demos.not_legal,
        report.vocab,
        report.epoch_losses.first().copied().unwrap_or(f32::NAN),
        report.epoch_losses.last().copied().unwrap_or(f32::NAN),
        train_secs
    );
    Ok(0)
}
