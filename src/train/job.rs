//! A training job as `leafe train` runs it: what was asked (a method, the
//! model to start from, the runs to learn from, a config file and the flags
//! that override it), resolved once into a [`TrainJob`], then run on its
//! world and recorded in the store.
//!
//! `setup::train_job` resolves a [`TrainRequest`] (which world the model
//! plays, the config, whether the output name is free); [`run_job`] trains,
//! saves the model with its run and returns what happened. The command line
//! only parses, calls these two and prints the [`TrainOutcome`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use super::distill::{DistillConfig, DistillReport, Method};
use super::grpo::{GrpoConfig, GrpoReport, grpo};
use super::incremental::{Increment, train_increment};
use super::{Network, Result, TrainError, distill_and_save, load_policy, record_and_save};
use std::sync::Arc;

use crate::env::schemes::EnvSource;
use crate::explore::World;
use crate::query::{QuerySession, load_query};
use crate::store::{Store, now_us};

/// What the user asked `leafe train` for, before anything is resolved.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// LEAFE, RFT or GRPO.
    pub method: Method,
    /// The model to start from.
    pub init: String,
    /// The environment named by `--env` (default: the `init` model's).
    pub env: Option<String>,
    /// Runs to learn from (a SQL LIKE pattern on `run_id`); for GRPO, the
    /// runs whose environment steps set its budget.
    pub runs: String,
    /// GRPO: the levels it samples from.
    pub levels: Option<PathBuf>,
    /// GRPO: the interaction budget (default: what `runs` spent).
    pub budget: Option<u64>,
    /// The name of the trained model (with `incremental`, of its line).
    pub out_model: String,
    /// A TOML file of `DistillConfig` (or, for GRPO, `GrpoConfig`) fields.
    pub config: Option<PathBuf>,
    /// Directory of the query files (embedded copies for those it lacks).
    pub queries: PathBuf,
    /// Flags that override the config file.
    pub overrides: Overrides,
    /// Train the next version of a model line on runs it has not seen.
    pub incremental: bool,
}

/// The command-line settings that override a config file's fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `DistillConfig::beta`.
    pub beta: Option<f32>,
    /// `FitConfig::epochs`.
    pub epochs: Option<usize>,
    /// `FitConfig::seed`, or `GrpoConfig::seed`.
    pub seed: Option<u64>,
    /// `DistillConfig::shuffle_buffer`.
    pub shuffle_buffer: Option<usize>,
}

impl Overrides {
    /// `cfg` with these settings over it.
    #[must_use]
    pub fn distill(&self, mut cfg: DistillConfig) -> DistillConfig {
        if let Some(v) = self.beta {
            cfg.beta = v;
        }
        if let Some(v) = self.epochs {
            cfg.fit.epochs = v;
        }
        if let Some(v) = self.seed {
            cfg.fit.seed = v;
        }
        if let Some(v) = self.shuffle_buffer {
            cfg.shuffle_buffer = v;
        }
        cfg
    }

    /// `cfg` with the settings that apply to GRPO (the seed) over it.
    #[must_use]
    pub fn grpo(&self, mut cfg: GrpoConfig) -> GrpoConfig {
        if let Some(v) = self.seed {
            cfg.seed = v;
        }
        cfg
    }
}

/// The resolved config of a job.
#[derive(Debug, Clone)]
pub enum JobConfig {
    /// LEAFE or RFT (one model, or the next version of a line).
    Distill(DistillConfig),
    /// GRPO.
    Grpo(GrpoConfig),
}

/// A training job with everything resolved.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// What was asked.
    pub request: TrainRequest,
    /// The built-in world it trains in; for a text model, the `--env`
    /// spec (empty without one).
    pub world: String,
    /// Whether the `--init` model is a text policy: it distils from the
    /// store's text paths and samples GRPO's groups in the `--env` process.
    pub text: bool,
    /// The config file's fields with the flags over them.
    pub config: JobConfig,
}

/// Progress of a running job.
#[derive(Debug, Clone, Copy)]
pub enum TrainProgress<'a> {
    /// A fit's minibatch `step` of `total`, at `loss`.
    Fit {
        /// Minibatches done.
        step: usize,
        /// Minibatches in all.
        total: usize,
        /// The last minibatch's loss.
        loss: f32,
    },
    /// GRPO after an iteration.
    Grpo {
        /// What it did so far.
        report: &'a GrpoReport,
        /// Its interaction budget.
        budget: u64,
    },
}

/// What a job did.
#[derive(Debug, Clone)]
pub enum TrainOutcome {
    /// A LEAFE or RFT model was saved.
    Distilled {
        /// The training run's id.
        run_id: String,
        /// The distillation's report.
        report: DistillReport,
    },
    /// A GRPO model was saved.
    Grpo {
        /// The training run's id.
        run_id: String,
        /// What GRPO did.
        report: GrpoReport,
        /// Its interaction budget in environment steps.
        budget: u64,
    },
    /// Scheduled training: a new version, or nothing new.
    Increment(Increment),
}

/// Runs `job` in `world`, saves the model and records its run (with
/// `command_line`).
///
/// # Errors
/// What training fails with, wrapped in [`TrainError::During`] with what it
/// was doing; [`TrainError::Invalid`] for GRPO without a budget or with
/// levels that do not read.
pub async fn run_job<W: World>(
    store: &Store,
    world: W,
    job: &TrainJob,
    command_line: &str,
    progress: impl FnMut(TrainProgress<'_>),
) -> Result<TrainOutcome> {
    match &job.config {
        JobConfig::Grpo(cfg) => run_grpo(store, world, job, cfg, command_line, progress).await,
        JobConfig::Distill(cfg) => {
            run_distill(
                store,
                &Network::Board(world.encoder()),
                job,
                cfg,
                command_line,
                progress,
            )
            .await
        }
    }
}

/// [`run_job`] for a text model ([`TrainJob::text`]): LEAFE and RFT from
/// the store's text paths; GRPO samples its groups in `grpo_env` (the
/// tasks, and the `--env` environment that [`crate::setup::text_grpo_env`]
/// starts).
///
/// # Errors
/// As [`run_job`]; [`TrainError::Invalid`] for GRPO without an
/// environment.
pub async fn run_text_job(
    store: &Store,
    job: &TrainJob,
    grpo_env: Option<(&[String], &Arc<EnvSource>)>,
    command_line: &str,
    mut progress: impl FnMut(TrainProgress<'_>),
) -> Result<TrainOutcome> {
    let r = &job.request;
    let cfg = match &job.config {
        JobConfig::Distill(cfg) => {
            return run_distill(store, &Network::Text, job, cfg, command_line, progress).await;
        }
        JobConfig::Grpo(cfg) => cfg,
    };
    let Some((tasks, source)) = grpo_env else {
        return Err(TrainError::Invalid(
            "--method grpo with a text model samples in its environment: pass --env (the text environment the model acts in) and --levels (task ids, one per line)".into(),
        ));
    };
    let budget = grpo_budget(store, r).await?;
    let init = super::text::load_text_policy(store, &r.init).await?;
    let run_prefix = format!("grpo-{}-{}", r.out_model, now_us() / 1_000_000);
    let (policy, report) = super::text::grpo::grpo_text(
        store,
        &init,
        tasks,
        &|| source.make(),
        &run_prefix,
        budget,
        Some(&r.queries),
        cfg,
        command_line,
        |report| progress(TrainProgress::Grpo { report, budget }),
    )
    .await
    .map_err(|e| e.during(format!("training {} from {} by GRPO", r.out_model, r.init)))?;
    let config = serde_json::json!({
        "method": "grpo", "init": r.init, "budget_runs": r.runs, "budget": budget, "env": job.world,
        "levels": r.levels.as_ref().map(|l| l.display().to_string()),
        "out_model": r.out_model, "grpo": cfg, "report": report, "sample_runs": format!("{run_prefix}.%"),
    });
    let run_id = format!("{run_prefix}.train");
    super::text::record_and_save_text(
        store,
        "train",
        &run_id,
        &r.out_model,
        &policy,
        cfg.seed,
        config,
        command_line,
    )
    .await?;
    Ok(TrainOutcome::Grpo {
        run_id,
        report,
        budget,
    })
}

async fn run_distill(
    store: &Store,
    network: &Network,
    job: &TrainJob,
    cfg: &DistillConfig,
    command_line: &str,
    mut progress: impl FnMut(TrainProgress<'_>),
) -> Result<TrainOutcome> {
    let r = &job.request;
    let fit = |step, total, loss| progress(TrainProgress::Fit { step, total, loss });
    if r.incremental {
        return train_increment(
            store,
            &r.out_model,
            &r.init,
            network,
            r.method,
            &r.runs,
            Some(&r.queries),
            cfg,
            command_line,
            fit,
        )
        .await
        .map(TrainOutcome::Increment)
        .map_err(|e| e.during(format!("training model line {}", r.out_model)));
    }
    let run_id = format!("train-{}-{}", r.out_model, now_us() / 1_000_000);
    let report = distill_and_save(
        store,
        network,
        &r.init,
        r.method,
        std::slice::from_ref(&r.runs),
        Some(&r.queries),
        cfg,
        &run_id,
        &r.out_model,
        |report| {
            serde_json::json!({
                "method": r.method, "init": r.init, "runs": r.runs, "out_model": r.out_model,
                "queries": r.queries.display().to_string(), "distill": cfg, "report": report,
            })
        },
        command_line,
        fit,
    )
    .await
    .map_err(|e| e.during(format!("training {} from {}", r.out_model, r.init)))?;
    Ok(TrainOutcome::Distilled { run_id, report })
}

async fn run_grpo<W: World>(
    store: &Store,
    world: W,
    job: &TrainJob,
    cfg: &GrpoConfig,
    command_line: &str,
    mut progress: impl FnMut(TrainProgress<'_>),
) -> Result<TrainOutcome> {
    let r = &job.request;
    let levels_path = r.levels.as_deref().ok_or_else(|| {
        TrainError::Invalid("--method grpo needs --levels (the tasks it samples)".into())
    })?;
    let levels = world
        .read_tasks(levels_path)
        .map_err(|e| TrainError::Invalid(format!("reading the GRPO levels: {e}")))?;
    let budget = grpo_budget(store, r).await?;
    let init = load_policy(store, &r.init, world.encoder()).await?;
    let max_steps = cfg.max_steps as usize;
    let run_prefix = format!("grpo-{}-{}", r.out_model, now_us() / 1_000_000);
    let (policy, report) = grpo(
        store,
        &init,
        &levels,
        &|| world.make_env(max_steps),
        &run_prefix,
        budget,
        Some(&r.queries),
        cfg,
        command_line,
        |report, _| progress(TrainProgress::Grpo { report, budget }),
    )
    .await?;
    let config = serde_json::json!({
        "method": "grpo", "init": r.init, "budget_runs": r.runs, "budget": budget, "levels": levels_path.display().to_string(),
        "out_model": r.out_model, "grpo": cfg, "report": report, "sample_runs": format!("{run_prefix}.%"),
    });
    let run_id = format!("{run_prefix}.train");
    record_and_save(
        store,
        &run_id,
        &r.out_model,
        &policy,
        cfg.seed,
        config,
        command_line,
    )
    .await?;
    Ok(TrainOutcome::Grpo {
        run_id,
        report,
        budget,
    })
}

/// GRPO's budget: `--budget`, else the steps the `--runs` spent.
///
/// # Errors
/// [`TrainError::Invalid`] for a budget of 0; the query's.
async fn grpo_budget(store: &Store, r: &TrainRequest) -> Result<u64> {
    let budget = match r.budget {
        Some(b) => b,
        None => interaction_budget(store, &r.runs, &r.queries).await?,
    };
    if budget == 0 {
        return Err(TrainError::Invalid(format!(
            "no interaction budget: the runs matching `{}` spent no environment steps (or pass --budget)",
            r.runs
        )));
    }
    Ok(budget)
}

/// The environment steps the runs matching `runs` spent
/// (`interaction_cost.sql`): the budget that gives GRPO what the runs' method
/// had.
///
/// # Errors
/// [`TrainError::Query`] when the query fails; [`TrainError::Invalid`] when
/// it returns no `steps`.
pub async fn interaction_budget(store: &Store, runs: &str, queries: &Path) -> Result<u64> {
    let session = QuerySession::open(store).await?;
    let q = load_query(Some(queries), "interaction_cost")?
        .bind(&BTreeMap::from([("run".to_string(), runs.to_string())]))?;
    let batches = session.collect(&q).await?;
    let steps = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .and_then(|b| b.column_by_name("steps"))
        .ok_or_else(|| {
            TrainError::Invalid("interaction_cost.sql returns no `steps` column".into())
        })?;
    Ok(steps.as_primitive::<Int64Type>().value(0).max(0) as u64)
}
