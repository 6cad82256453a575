//! `leafe run`: the paper's comparison, end to end, from one config.
//!
//! For each seed: pretrain a base policy by behaviour cloning, explore the
//! training tasks three ways (LEAFE: reflect + roll back + guided branches;
//! LEAFE without experience: roll back but branch unguided; rejection
//! sampling: independent rollouts, no rollback — the RFT data), train LEAFE,
//! LEAFE-without-experience and RFT from their runs with the queries in
//! `queries/`, train GRPO with the environment steps LEAFE's exploration
//! spent, and evaluate every model on the held-out and the shifted split.
//! Then aggregate over seeds into `reports/<run>/` (report.md, results.json,
//! one Pass@k-vs-k SVG per split).
//!
//! Every stage writes to the store under ids derived from the run name, and
//! a stage whose output is already there is not redone: rerunning the same
//! command after a crash resumes, and rerunning it after success rebuilds
//! the report from the store alone. The resolved config is committed first
//! as run `<run>` (kind `experiment`); a rerun with another config under the
//! same name is refused.
//!
//! | file | what |
//! | --- | --- |
//! | `config.rs` | [`ExperimentConfig`] and its parts: methods, level sets, evaluation, curve |
//! | `levels.rs` | the level sets, generated and written into the report folder |
//! | `replicate.rs` | the replicate loop: seeds `jobs` at a time, a replicate's stages in order |
//! | `context.rs` | what a replicate's stages read, and their timings |
//! | `pretrain.rs`, `exploration.rs`, `training.rs`, `evaluation.rs`, `curve.rs` | the stages of a replicate |
//! | `paired.rs` | paired differences over tasks (bootstrap) |
//! | `stats.rs` | means, confidence intervals, the bootstrap |
//! | `results.rs` | what the report is made of |
//! | `report.rs` | the report: Markdown, JSON, SVG |
//! | `lookup.rs` | look-ups in the store: recorded configs and trainings, chunks, interaction cost |
//! | `text.rs` | the experiment on a text environment: its tasks, environments and pretraining |

mod context;
mod curve;
mod evaluation;
mod exploration;
mod levels;
mod lookup;
mod paired;
mod pretrain;
mod replicate;
pub mod text;
mod training;

mod config;
pub mod report;
mod results;
pub mod stats;

use std::time::Instant;

use anyhow::bail;

pub use config::{CurveConfig, EvalConfig, ExpMethod, ExperimentConfig, LevelsConfig};
pub(crate) use paired::BOOTSTRAP_RESAMPLES;
pub use results::{Cell, CurvePoint, Paired, Results, StageTime};

use crate::store::{RunSpec, Store};
use levels::levels_stage;
use lookup::recorded_config;
use paired::paired_differences;
use replicate::{Shared, replicates};

/// Progress lines go here (stderr in the CLI; nothing in tests).
pub trait Log {
    /// One line of progress.
    fn line(&self, text: &str);
}

impl Log for () {
    fn line(&self, _: &str) {}
}

/// Runs (or resumes) the experiment `run` and writes its report. Returns the
/// results.
///
/// Up to `jobs` seeds run at once (each seed's replicate is computed exactly
/// as alone: its own seeded stages, runs and models; the results are
/// gathered in seed order), so the figures do not depend on `jobs`.
pub async fn run_experiment(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
    command_line: &str,
    jobs: usize,
    log: &dyn Log,
) -> anyhow::Result<Results> {
    if prepare_run(store, run, cfg, command_line).await? {
        log.line(&format!(
            "run {run}: found in the store, resuming (stages already done are skipped)"
        ));
    }
    let started = Instant::now();
    let (splits, levels) = levels_stage(store, run, cfg).await?;
    let mut stages = vec![StageTime {
        seed: None,
        stage: "levels".into(),
        seconds: started.elapsed().as_secs_f64(),
        detail: levels.detail(),
    }];
    log.line(&format!("levels: {}", stages[0].detail));

    let ks = cfg.ks();
    let shared = std::sync::Arc::new(Shared {
        store: store.clone(),
        run: run.to_string(),
        cfg: cfg.clone(),
        splits,
        ks: ks.clone(),
        command_line: command_line.to_string(),
    });
    let mut cells = Vec::new();
    let mut training = Vec::new();
    let mut curve = Vec::new();
    for out in replicates(&shared, jobs, log).await? {
        training.extend(out.training);
        cells.extend(out.cells);
        curve.extend(out.curve);
        stages.extend(out.stages);
    }
    let paired = paired_differences(store, run, cfg, &ks).await?;
    let results = Results {
        run: run.to_string(),
        config: cfg.clone(),
        ks,
        splits: levels.by_split(),
        cells,
        training,
        stages,
        command_line: command_line.to_string(),
        paired,
        curve,
    };
    report::write(store, &results).await?;
    Ok(results)
}

/// Checks the config and the run id, then commits the resolved config as run
/// `run` (kind `experiment`), or, when that run exists, refuses it unless it
/// was recorded with the same config. Returns whether the run is resumed.
async fn prepare_run(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
    command_line: &str,
) -> anyhow::Result<bool> {
    cfg.check()?;
    crate::store::validate_run_id(run)?;
    let resolved = serde_json::to_value(cfg).expect("config serializes");
    if store.commit(run).await?.is_some() {
        let recorded = recorded_config(store, run).await?;
        if recorded != resolved {
            bail!(
                "run `{run}` exists in {} with another config; choose another --name (or rerun with the recorded config to resume)",
                store.url()
            );
        }
        return Ok(true);
    }
    let spec = RunSpec {
        run_id: run.to_string(),
        kind: "experiment".into(),
        seed: cfg.seeds.first().map(|&s| s as i64),
        config: resolved.clone(),
        command_line: command_line.to_string(),
        meta: serde_json::json!({ "config": resolved }),
    };
    store.begin_run(spec).await?.commit().await?;
    Ok(false)
}
