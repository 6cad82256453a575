//! `leafe train` (Stage 2 from SQL) and `leafe eval` (Pass@k).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::stage1::{bar, read_toml};
use super::{StoreArgs, command_line};
use crate::env::sokoban::levels::read_level_file;
use crate::eval::mean_pass_at_k;
use crate::explore::sample_rollouts;
use crate::query::OutputFormat;
use crate::store::{EpisodeBatchBuilder, EpisodeRow, RunSpec, Table, now_us};
use crate::train::distill::{DistillConfig, Method, distill};
use crate::train::{load_policy, save_policy};

/// Arguments of `leafe train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// leafe: counterfactual pairs + beta × rehearsal; rft: rehearsal only;
    /// grpo: outcome RL sampling its own rollouts (needs --levels).
    #[arg(long, value_enum)]
    pub method: Method,
    /// Model to start from.
    #[arg(long)]
    pub init: String,
    /// Runs to learn from, as a SQL LIKE pattern on run_id (e.g. `e1.%`); for
    /// grpo, the runs whose environment steps set its interaction budget.
    #[arg(long)]
    pub runs: String,
    /// grpo: the levels it samples from.
    #[arg(long)]
    pub levels: Option<PathBuf>,
    /// grpo: interaction budget in environment steps (default: the steps the
    /// --runs spent, so all methods get the same budget).
    #[arg(long)]
    pub budget: Option<u64>,
    /// Name of the trained model.
    #[arg(long)]
    pub out_model: String,
    /// TOML file with DistillConfig fields; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of the training queries (counterfactual_pairs.sql,
    /// rehearsal.sql); the embedded copies are used for files it lacks.
    #[arg(long, default_value = "queries")]
    pub queries: PathBuf,
    /// Rehearsal weight relative to counterfactual pairs [default: 0.5].
    #[arg(long)]
    pub beta: Option<f32>,
    /// Passes over the data [default: 3].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of shuffling [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Arguments of `leafe eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Model to evaluate.
    #[arg(long)]
    pub model: String,
    /// Held-out levels (Boxoban format).
    #[arg(long)]
    pub levels: PathBuf,
    /// Split name recorded and reported.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Samples per task (n of the Pass@k estimator).
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// k values, comma-separated; default 1, 2, 4, … up to --samples.
    #[arg(long, value_delimiter = ',')]
    pub k: Vec<u64>,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Step limit of an episode.
    #[arg(long, default_value_t = 60)]
    pub max_steps: u16,
    /// Seed of sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run id of the eval episodes written to the store; default eval-<model>-<split>-s<seed>-<time>.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Do not write eval episodes to the store.
    #[arg(long)]
    pub no_write: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// `leafe train`.
pub async fn train_cmd(a: TrainArgs, quiet: bool) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    let mut cfg: DistillConfig = read_toml(a.config.as_deref())?;
    if let Some(v) = a.beta {
        cfg.beta = v;
    }
    if let Some(v) = a.epochs {
        cfg.fit.epochs = v;
    }
    if let Some(v) = a.seed {
        cfg.fit.seed = v;
    }
    if store.model_manifest(&a.out_model).await?.is_some() {
        bail!(
            "model `{}` already exists in {} (models are never overwritten; choose another --out-model)",
            a.out_model,
            store.url()
        );
    }
    if a.method == Method::Grpo {
        return grpo_cmd(a, quiet).await;
    }
    let pb = bar(0, quiet);
    let started = Instant::now();
    let (policy, report) = distill(
        &store,
        &a.init,
        a.method,
        &a.runs,
        Some(&a.queries),
        &cfg,
        |step, total, loss| {
            pb.set_length(total as u64);
            pb.set_position(step as u64);
            pb.set_message(format!("loss {loss:.3}"));
        },
    )
    .await
    .with_context(|| format!("training {} from {}", a.out_model, a.init))?;
    pb.finish_and_clear();
    let run_id = format!("train-{}-{}", a.out_model, now_us() / 1_000_000);
    let config = serde_json::json!({
        "method": a.method, "init": a.init, "runs": a.runs, "out_model": a.out_model,
        "queries": a.queries.display().to_string(), "distill": cfg, "report": report,
    });
    let spec = RunSpec {
        run_id: run_id.clone(),
        kind: "train".into(),
        seed: Some(cfg.fit.seed as i64),
        config: config.clone(),
        command_line: command_line(),
        meta: serde_json::Value::Null,
    };
    store.begin_run(spec).await?.commit().await?;
    save_policy(
        &store,
        &a.out_model,
        &policy.with_name(&a.out_model),
        serde_json::json!({ "run_id": run_id, "train": config }),
    )
    .await?;
    println!(
        "saved model {} ({:?} from {} on runs `{}`: {} counterfactual pairs, {} rehearsal rows, loss {:.3} → {:.3}, {:.1}s); run {run_id}",
        a.out_model,
        a.method,
        a.init,
        a.runs,
        report.pairs,
        report.rehearsal,
        report.epoch_losses.first().copied().unwrap_or(f32::NAN),
        report.epoch_losses.last().copied().unwrap_or(f32::NAN),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}

/// `leafe eval`.
pub async fn eval_cmd(a: EvalArgs) -> anyhow::Result<u8> {
    let store = a.store.open()?;
    if a.samples == 0 {
        bail!("--samples must be at least 1");
    }
    let ks: Vec<u64> = if a.k.is_empty() {
        (0..)
            .map(|i| 1u64 << i)
            .take_while(|&k| k <= a.samples as u64)
            .collect()
    } else {
        a.k.clone()
    };
    if let Some(bad) = ks.iter().find(|&&k| k == 0 || k > a.samples as u64) {
        bail!(
            "--k {bad} is outside 1..={} (k cannot exceed --samples)",
            a.samples
        );
    }
    let policy = load_policy(&store, &a.model).await?;
    let levels = read_level_file(&a.levels).context("reading the evaluation levels")?;
    let started = Instant::now();
    let outcomes = tokio::task::block_in_place(|| {
        sample_rollouts(
            &levels,
            &policy,
            a.samples,
            a.temperature,
            a.max_steps,
            a.seed,
            1024,
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    let mut counts = vec![(a.samples as u64, 0u64); levels.len()];
    for o in &outcomes {
        counts[o.level].1 += u64::from(o.success);
    }
    let pass: Vec<(u64, f64)> = ks
        .iter()
        .map(|&k| (k, mean_pass_at_k(&counts, k)))
        .collect();
    if !a.no_write {
        let run_id = a.run_id.clone().unwrap_or_else(|| {
            format!(
                "eval-{}-{}-s{}-{}",
                a.model,
                a.split,
                a.seed,
                now_us() / 1_000_000
            )
        });
        let spec = RunSpec {
            run_id: run_id.clone(),
            kind: "eval".into(),
            seed: Some(a.seed as i64),
            config: serde_json::json!({
                "model": a.model, "levels": a.levels.display().to_string(), "split": a.split, "samples": a.samples,
                "temperature": a.temperature, "max_steps": a.max_steps, "pass_at_k": pass.iter().map(|(k, p)| (k.to_string(), *p)).collect::<std::collections::BTreeMap<_, _>>(),
            }),
            command_line: command_line(),
            meta: serde_json::Value::Null,
        };
        let mut run = store.begin_run(spec).await?;
        let mut b = EpisodeBatchBuilder::default();
        let created_at_us = now_us();
        let task_ids: Vec<String> = levels.iter().map(|l| l.task_id()).collect();
        let sources: Vec<String> = (0..levels.len())
            .map(|i| format!("{}#{i}", a.levels.display()))
            .collect();
        for (i, o) in outcomes.iter().enumerate() {
            let id = i as i64;
            b.push(&EpisodeRow {
                episode_id: id,
                tree_id: id,
                parent_episode_id: None,
                reflection_id: None,
                rollback_step: None,
                depth: 0,
                sample_index: o.sample as i32,
                origin: "eval",
                task_id: &task_ids[o.level],
                task_source: Some(&sources[o.level]),
                split: Some(&a.split),
                policy: &a.model,
                experience_in_context: false,
                success: o.success,
                status: if o.success { "solved" } else { "step_limit" },
                episode_return: o.episode_return,
                length: o.length as i32,
                interaction_cost: o.length as i64,
                created_at_us,
            });
            if b.len() >= 65_536 {
                let batch = b.finish();
                run.write(Table::Episodes, &batch).await?;
            }
        }
        let batch = b.finish();
        run.write(Table::Episodes, &batch).await?;
        run.commit().await?;
        eprintln!(
            "wrote {} eval episodes as run {run_id} ({:.1}s of rollouts)",
            outcomes.len(),
            secs
        );
    }
    match a.format {
        OutputFormat::Json => {
            let obj = serde_json::json!({
                "model": a.model, "split": a.split, "tasks": levels.len(), "samples": a.samples,
                "pass_at_k": pass.iter().map(|(k, p)| (k.to_string(), serde_json::json!(p))).collect::<serde_json::Map<_, _>>(),
            });
            println!("{obj}");
        }
        OutputFormat::Csv => {
            println!(
                "model,split,tasks,samples,{}",
                ks.iter()
                    .map(|k| format!("pass@{k}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            println!(
                "{},{},{},{},{}",
                a.model,
                a.split,
                levels.len(),
                a.samples,
                pass.iter()
                    .map(|(_, p)| format!("{p:.4}"))
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        OutputFormat::Table => {
            println!(
                "{:<16} {:<8} {:>6} {:>8}  {}",
                "model",
                "split",
                "tasks",
                "samples",
                ks.iter()
                    .map(|k| format!("{:>8}", format!("pass@{k}")))
                    .collect::<String>()
            );
            println!(
                "{:<16} {:<8} {:>6} {:>8}  {}",
                a.model,
                a.split,
                levels.len(),
                a.samples,
                pass.iter()
                    .map(|(_, p)| format!("{p:>8.3}"))
                    .collect::<String>()
            );
        }
    }
    Ok(0)
}

async fn grpo_cmd(a: TrainArgs, quiet: bool) -> anyhow::Result<u8> {
    use crate::train::grpo::{GrpoConfig, grpo};
    let store = a.store.open()?;
    let Some(levels_path) = &a.levels else {
        bail!("--method grpo needs --levels (the tasks it samples)")
    };
    let levels = read_level_file(levels_path).context("reading the GRPO levels")?;
    let mut cfg: GrpoConfig = read_toml(a.config.as_deref())?;
    if let Some(v) = a.seed {
        cfg.seed = v;
    }
    let budget = match a.budget {
        Some(b) => b,
        None => {
            let session = crate::query::QuerySession::open(&store).await?;
            let q = crate::query::QueryText::parse("budget", "-- @param run string\nSELECT CAST(COALESCE(SUM(interaction_cost), 0) AS BIGINT) AS steps FROM episodes WHERE run_id LIKE ${run}")?
                .bind(&std::collections::BTreeMap::from([("run".to_string(), a.runs.clone())]))?;
            let b = session.collect(&q).await?;
            use arrow::array::AsArray;
            b[0].column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0)
                .max(0) as u64
        }
    };
    if budget == 0 {
        bail!(
            "no interaction budget: the runs matching `{}` spent no environment steps (or pass --budget)",
            a.runs
        );
    }
    let init = load_policy(&store, &a.init).await?;
    let pb = bar(budget, quiet);
    let started = Instant::now();
    let run_prefix = format!("grpo-{}-{}", a.out_model, now_us() / 1_000_000);
    let (policy, report) = grpo(
        &store,
        &init,
        &levels,
        &run_prefix,
        budget,
        Some(&a.queries),
        &cfg,
        &command_line(),
        |r| {
            pb.set_position(r.env_steps.min(budget));
            pb.set_message(format!(
                "iteration {}, success {:.3}",
                r.iterations,
                r.success_rates.last().copied().unwrap_or(0.0)
            ));
        },
    )
    .await?;
    pb.finish_and_clear();
    let config = serde_json::json!({
        "method": "grpo", "init": a.init, "budget_runs": a.runs, "budget": budget, "levels": levels_path.display().to_string(),
        "out_model": a.out_model, "grpo": cfg, "report": report, "sample_runs": format!("{run_prefix}.%"),
    });
    let run_id = format!("{run_prefix}.train");
    let spec = RunSpec {
        run_id: run_id.clone(),
        kind: "train".into(),
        seed: Some(cfg.seed as i64),
        config: config.clone(),
        command_line: command_line(),
        meta: serde_json::Value::Null,
    };
    store.begin_run(spec).await?.commit().await?;
    save_policy(
        &store,
        &a.out_model,
        &policy.with_name(&a.out_model),
        serde_json::json!({ "run_id": run_id, "train": config }),
    )
    .await?;
    println!(
        "saved model {} (grpo from {}: {} iterations, {} of {budget} env steps, sample success {:.3} → {:.3}, {:.1}s); run {run_id}",
        a.out_model,
        a.init,
        report.iterations,
        report.env_steps,
        report.success_rates.first().copied().unwrap_or(0.0),
        report.success_rates.last().copied().unwrap_or(0.0),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
