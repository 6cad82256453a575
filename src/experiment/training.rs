//! The train stage (Stage 2): LEAFE, its ablations and RFT distilled from
//! their explorations, GRPO with LEAFE's environment-step budget.

use std::time::Instant;

use anyhow::Context;
use serde::Serialize;

use super::ExpMethod;
use super::context::{Replicate, first_last};
use super::exploration::ExploreStageSummary;
use super::lookup::recorded_training;
use crate::explore::World;
use crate::train::distill::{DistillConfig, Method};
use crate::train::grpo::{GrpoConfig, grpo};
use crate::train::{
    Network, TrainError, distill_and_save, load_policy, record_and_save, save_copy,
};
use crate::worlds::SokobanWorld;

/// Stage 2 for method `m`: trains its model from the base policy `base`
/// unless the model is in the store already. Returns its line for
/// `Results::training`: the summary recorded with the model when it was
/// trained before (None when it has none), None for the base policy.
pub(super) async fn train_stage(
    r: &mut Replicate<'_>,
    m: ExpMethod,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<Option<serde_json::Value>> {
    if m == ExpMethod::Base {
        return Ok(None);
    }
    let model = r.model(m);
    let t = Instant::now();
    if r.store.model_manifest(&model).await?.is_some() {
        r.stage(&format!("train {}", m.id()), t, "done before".into());
        return recorded_training(r.store, &model).await;
    }
    let (summary, detail) = if m == ExpMethod::Grpo {
        let s = grpo_stage(r, &model, base, explored).await?;
        (serde_json::to_value(&s)?, s.detail())
    } else {
        let s = distill_stage(r, m, &model, base, explored).await?;
        (serde_json::to_value(&s)?, s.detail())
    };
    r.stage(&format!("train {}", m.id()), t, detail);
    Ok(Some(summary))
}

/// A GRPO training; serializes to its line in `Results::training`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct GrpoSummary {
    pub(super) seed: u64,
    /// Always [`ExpMethod::Grpo`].
    pub(super) method: ExpMethod,
    /// Environment steps sampled.
    pub(super) env_steps: u64,
    /// Policy updates.
    pub(super) iterations: usize,
    /// The budget: LEAFE's exploration steps (log only).
    #[serde(skip)]
    pub(super) budget: u64,
    /// Sample success rate of the first and last iteration (log only).
    #[serde(skip)]
    pub(super) success: (f32, f32),
}

impl GrpoSummary {
    /// What a GRPO report of seed `seed` at `budget` says.
    pub(super) fn of(seed: u64, report: &crate::train::grpo::GrpoReport, budget: u64) -> Self {
        GrpoSummary {
            seed,
            method: ExpMethod::Grpo,
            env_steps: report.env_steps,
            iterations: report.iterations,
            budget,
            success: first_last(&report.success_rates, 0.0),
        }
    }

    /// The stage's log detail.
    pub(super) fn detail(&self) -> String {
        format!(
            "{} iterations, {} of {} env steps, sample success {:.3} → {:.3}",
            self.iterations, self.env_steps, self.budget, self.success.0, self.success.1
        )
    }
}

/// Trains GRPO's `model` from `base` on the training tasks, with as many
/// environment steps as LEAFE's exploration spent, and records it with its
/// summary.
pub(super) async fn grpo_stage(
    r: &Replicate<'_>,
    model: &str,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<GrpoSummary> {
    let m = ExpMethod::Grpo;
    let budget =
        (explored.env_steps_of(ExpMethod::Leafe) as f64 * r.cfg.grpo_budget_scale).round() as u64;
    let gcfg = GrpoConfig {
        seed: r.seed,
        ..r.cfg.grpo.clone()
    };
    let prefix = format!("{model}.a{}", crate::store::now_us() / 1_000_000);
    if let (Some(arena), Some(text)) = (&r.cfg.text, &r.splits.text) {
        let init = crate::train::text::load_text_policy(r.store, base).await?;
        let pool = arena.pool(&arena.env, gcfg.max_steps as usize)?;
        let (policy, report) = crate::train::text::grpo::grpo_text(
            r.store,
            &init,
            &text.tasks,
            &|| pool.make(),
            &prefix,
            budget,
            None,
            &gcfg,
            r.command_line,
            |_| {},
        )
        .await?;
        let summary = GrpoSummary::of(r.seed, &report, budget);
        crate::train::text::record_and_save_text(
            r.store,
            "train",
            &format!("{model}.train"),
            model,
            &policy,
            r.seed,
            serde_json::json!({
                "experiment": r.run, "method": m, "init": base, "budget": budget,
                "grpo": gcfg, "report": report, "sample_runs": format!("{prefix}.%"), "summary": summary,
            }),
            r.command_line,
        )
        .await?;
        return Ok(summary);
    }
    let init = load_policy(r.store, base, SokobanWorld.encoder()).await?;
    let max_steps = gcfg.max_steps as usize;
    // The curve's checkpoints: the policy after the first iteration that
    // reaches each fraction of the budget.
    let parts = r.cfg.curve.parts;
    let mut marks: Vec<usize> = r.cfg.curve.fractions();
    let mut checkpoints: Vec<(usize, u64, crate::policy::neural::NeuralPolicy)> = Vec::new();
    let (policy, report) = grpo(
        r.store,
        &init,
        &r.splits.tasks,
        &|| SokobanWorld.make_env(max_steps),
        &prefix,
        budget,
        None,
        &gcfg,
        r.command_line,
        |rep, policy| {
            while let Some(&n) = marks.first()
                && rep.env_steps * parts as u64 >= budget * n as u64
            {
                checkpoints.push((n, rep.env_steps, policy.clone()));
                marks.remove(0);
            }
        },
    )
    .await?;
    // Checkpoints first: a final model in the store implies its checkpoints.
    for (n, env_steps, checkpoint) in &checkpoints {
        let name = part_model(model, *n, parts);
        record_and_save(
            r.store,
            &format!("{name}.train"),
            &name,
            checkpoint,
            r.seed,
            serde_json::json!({
                "experiment": r.run, "method": m, "init": base, "checkpoint_of": model,
                "summary": { "seed": r.seed, "method": m, "env_steps": env_steps, "part": n, "parts": parts },
            }),
            r.command_line,
        )
        .await?;
    }
    let summary = GrpoSummary::of(r.seed, &report, budget);
    record_and_save(
        r.store,
        &format!("{model}.train"),
        model,
        &policy,
        r.seed,
        serde_json::json!({
            "experiment": r.run, "method": m, "init": base, "budget": budget,
            "grpo": gcfg, "report": report, "sample_runs": format!("{prefix}.%"), "summary": summary,
        }),
        r.command_line,
    )
    .await?;
    Ok(summary)
}

/// A distillation (LEAFE, LEAFE w/o experience, RFT); serializes to its line
/// in `Results::training`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DistillSummary {
    pub(super) seed: u64,
    pub(super) method: ExpMethod,
    /// Counterfactual pairs trained on.
    pub(super) pairs: usize,
    /// Rehearsal rows trained on.
    pub(super) rehearsal: usize,
    /// Environment steps of the exploration the data came from.
    pub(super) env_steps: u64,
    /// The curve point (`{part, parts}`) when trained on part of the
    /// exploration; null for the method's model.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub(super) part: serde_json::Value,
    /// Loss of the first and last epoch (log only).
    #[serde(skip)]
    pub(super) loss: (f32, f32),
}

impl DistillSummary {
    /// The stage's log detail.
    pub(super) fn detail(&self) -> String {
        format!(
            "{} counterfactual pairs + {} rehearsal rows, loss {:.3} → {:.3}",
            self.pairs, self.rehearsal, self.loss.0, self.loss.1
        )
    }
}

/// Trains method `m`'s `model` from `base` by distillation on its
/// exploration's runs (through the queries in `queries/`), and records it with
/// its summary.
pub(super) async fn distill_stage(
    r: &Replicate<'_>,
    m: ExpMethod,
    model: &str,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<DistillSummary> {
    let explore_run = format!("{}.{}.%", r.p, m.explore_id().expect("trained method"));
    distill_on(
        r,
        m,
        model,
        base,
        &[explore_run],
        explored.env_steps_of(m),
        serde_json::Value::Null,
    )
    .await
}

/// Distils method `m`'s `model` from `base` on the runs matching
/// `patterns` (LIKE), which cost `env_steps`, and records it with its
/// summary (plus `part`, the curve point it is, if any).
pub(super) async fn distill_on(
    r: &Replicate<'_>,
    m: ExpMethod,
    model: &str,
    base: &str,
    patterns: &[String],
    env_steps: u64,
    part: serde_json::Value,
) -> anyhow::Result<DistillSummary> {
    let explore_run = patterns.join(", ");
    let method = if m == ExpMethod::Rft {
        Method::Rft
    } else {
        Method::Leafe
    };
    let dcfg = DistillConfig {
        fit: crate::train::FitConfig {
            seed: r.seed,
            ..r.cfg.distill.fit.clone()
        },
        ..r.cfg.distill.clone()
    };
    let summary = |report: &crate::train::distill::DistillReport| DistillSummary {
        seed: r.seed,
        method: m,
        pairs: report.pairs,
        rehearsal: report.rehearsal,
        env_steps,
        part: part.clone(),
        loss: first_last(&report.epoch_losses, f32::NAN),
    };
    let network = match r.cfg.text {
        Some(_) => Network::Text,
        None => Network::Board(SokobanWorld.encoder()),
    };
    let describe = |report: &crate::train::distill::DistillReport| {
        serde_json::json!({
            "experiment": r.run, "method": m, "init": base, "runs": explore_run,
            "distill": dcfg, "report": report, "summary": summary(report),
        })
    };
    let run_id = format!("{model}.train");
    let report = match distill_and_save(
        r.store,
        &network,
        base,
        method,
        patterns,
        None,
        &dcfg,
        &run_id,
        model,
        describe,
        r.command_line,
        |_, _, _| {},
    )
    .await
    {
        Ok(report) => report,
        // Exploration found no success to learn from: the method's model is
        // the base policy, unchanged (and says so: 0 pairs, 0 rows).
        Err(TrainError::NoData(_)) => {
            let report = crate::train::distill::DistillReport {
                pairs: 0,
                rehearsal: 0,
                epoch_losses: Vec::new(),
            };
            save_copy(
                r.store,
                &network,
                base,
                model,
                &run_id,
                r.seed,
                describe(&report),
                r.command_line,
            )
            .await
            .with_context(|| format!("saving {model}"))?;
            report
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("training {model}"))),
    };
    Ok(summary(&report))
}

/// Environment steps method `m`'s training interacted for in replicate
/// `seed`: GRPO's from its line in `training`, a distilled method's
/// exploration's, none for the base policy.
pub(super) fn train_env_steps(
    m: ExpMethod,
    seed: u64,
    training: &[serde_json::Value],
    explored: &ExploreStageSummary,
) -> u64 {
    match m {
        ExpMethod::Base => 0,
        ExpMethod::Grpo => training
            .iter()
            .find(|v| v["seed"] == seed && v["method"] == "grpo")
            .and_then(|v| v["env_steps"].as_u64())
            .unwrap_or(0),
        _ => explored.env_steps_of(m),
    }
}

/// The model of method model `model` trained on (or checkpointed at) `n`
/// of `parts` parts: `<model>.part<n>of<parts>`.
pub(super) fn part_model(model: &str, n: usize, parts: usize) -> String {
    format!("{model}.part{n}of{parts}")
}
