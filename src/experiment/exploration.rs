//! The explore stage (Stage 1): the training tasks explored as many ways as
//! the compared methods need, each exploration a run of the store.

use std::collections::BTreeMap;
use std::time::Instant;

use super::context::Replicate;
use super::lookup::{chunk_markers, run_stats};
use super::{ExpMethod, ExperimentConfig};
use crate::explore::ExploreConfig;
use crate::pipeline::{ExploreJob, Shard};
use crate::worlds::SokobanWorld;

/// The explorations the compared methods need, by exploration id, each with
/// its config for `seed`: LEAFE (also GRPO's budget), LEAFE without
/// experience, and RFT's independent rollouts (no rollback).
pub(super) fn explorations(
    cfg: &ExperimentConfig,
    seed: u64,
) -> Vec<(&'static str, ExploreConfig)> {
    let mut explores: Vec<(&str, ExploreConfig)> = Vec::new();
    let wants = |m: ExpMethod| cfg.methods.contains(&m);
    if wants(ExpMethod::Leafe) || wants(ExpMethod::Grpo) {
        explores.push((
            "explore-leafe",
            ExploreConfig {
                seed,
                ..cfg.explore.clone()
            },
        ));
    }
    if wants(ExpMethod::LeafeNoExperience) {
        explores.push((
            "explore-noexp",
            ExploreConfig {
                seed,
                use_experience: false,
                ..cfg.explore.clone()
            },
        ));
    }
    if wants(ExpMethod::LeafeNoRollback) {
        explores.push((
            "explore-norollback",
            ExploreConfig {
                seed,
                rollback: false,
                ..cfg.explore.clone()
            },
        ));
    }
    if wants(ExpMethod::LeafeOracle) {
        let mut oracle = ExploreConfig {
            seed,
            ..cfg.explore.clone()
        };
        oracle.reflector.oracle = true;
        oracle.guidance.penalty = cfg.oracle_penalty;
        explores.push(("explore-oracle", oracle));
    }
    if wants(ExpMethod::Rft) {
        explores.push((
            "explore-rft",
            ExploreConfig {
                seed,
                max_depth: 0,
                root_samples: cfg.rft_root_samples,
                ..cfg.explore.clone()
            },
        ));
    }
    explores
}

/// One exploration run, as the store has it after the stage.
#[derive(Debug, Clone)]
pub(super) struct ExplorationSummary {
    /// Distinct tasks explored.
    pub(super) tasks: i64,
    /// Tasks with a success.
    pub(super) solved: i64,
    /// Environment steps spent.
    pub(super) env_steps: u64,
    /// What the exploration consulted besides the environment, summed over
    /// its chunks' commit markers (`meta.consulted`: solver searches, solver
    /// nodes, lookahead moves; empty or 0 for every method but the oracle).
    pub(super) consulted: BTreeMap<String, u64>,
    /// Its chunks' run ids, in order.
    pub(super) chunks: Vec<String>,
    /// Episodes and reflections of this invocation; None when the run was
    /// found done in the store.
    pub(super) fresh: Option<(usize, usize)>,
}

impl ExplorationSummary {
    /// Simulated transitions charged to the method on top of its
    /// environment steps: the solver's expanded push states and the
    /// lookahead's simulated moves.
    pub(super) fn simulated(&self) -> u64 {
        ["solver_nodes", "lookahead_moves"]
            .iter()
            .map(|k| self.consulted.get(*k).copied().unwrap_or(0))
            .sum()
    }

    /// The stage's log detail.
    pub(super) fn detail(&self) -> String {
        let (tasks, solved, steps) = (self.tasks, self.solved, self.env_steps);
        let c = |k: &str| self.consulted.get(k).copied().unwrap_or(0);
        let consulted = format!(
            "; consulted {} solver searches ({} nodes), {} simulated lookahead moves",
            c("solver_searches"),
            c("solver_nodes"),
            c("lookahead_moves")
        );
        match self.fresh {
            None => {
                format!("done before: {tasks} tasks, {solved} solved, {steps} env steps{consulted}")
            }
            Some((episodes, reflections)) => format!(
                "{tasks} tasks, {solved} solved, {episodes} episodes, {reflections} reflections, {steps} env steps{consulted}"
            ),
        }
    }
}

/// The explorations of a replicate, by exploration id (`explore-leafe`, …).
#[derive(Debug, Clone)]
pub(super) struct ExploreStageSummary {
    /// Only the explorations the compared methods need.
    pub(super) runs: BTreeMap<&'static str, ExplorationSummary>,
}

impl ExploreStageSummary {
    /// Interaction charged to the exploration method `m` trains on: its
    /// environment steps plus the simulated transitions it consulted; 0
    /// when it has none.
    pub(super) fn env_steps_of(&self, m: ExpMethod) -> u64 {
        self.runs
            .get(m.explore_id().unwrap_or_default())
            .map_or(0, |e| e.env_steps + e.simulated())
    }

    /// The simulated part of [`Self::env_steps_of`].
    pub(super) fn simulated_of(&self, m: ExpMethod) -> u64 {
        self.runs
            .get(m.explore_id().unwrap_or_default())
            .map_or(0, ExplorationSummary::simulated)
    }
}

/// Exploration `id` of the replicate's training tasks `levels` with the
/// base policy `base`, as run `<run>.s<seed>.<id>`.
fn explore_job<T>(
    r: &Replicate<'_>,
    id: &str,
    base: &str,
    chunk_tasks: usize,
    config: &ExploreConfig,
    levels: Vec<T>,
) -> ExploreJob<T> {
    ExploreJob {
        run_id: format!("{}.{id}", r.p),
        model: base.to_string(),
        levels_source: format!("reports/{}/levels/train.txt", r.run),
        levels,
        split: Some("train".into()),
        shard: Shard::ALL,
        chunk_tasks,
        config: config.clone(),
        command_line: r.command_line.to_string(),
    }
}

/// Stage 1, as many ways as the methods need (see [`explorations`]): explores
/// the training tasks with the base policy `base`, each exploration as run
/// `<run>.s<seed>.<exploration id>`; a run already in the store is not redone.
pub(super) async fn explore_stage(
    r: &mut Replicate<'_>,
    base: &str,
) -> anyhow::Result<ExploreStageSummary> {
    let mut runs = BTreeMap::new();
    // Chunks of tasks: the curve's parts (a part's cost is its tasks').
    let chunk_tasks = match r.cfg.curve.parts {
        0 => 256,
        parts => r.splits.tasks.len().div_ceil(parts).max(1),
    };
    for (id, ecfg) in explorations(r.cfg, r.seed) {
        let t = Instant::now();
        let p = &r.p;
        let s = match (&r.cfg.text, &r.splits.text) {
            (Some(arena), Some(text)) => {
                // The text policy, the experience acting on its
                // distribution; the reflector reads the feedback alone.
                let policy = crate::train::text::load_text_policy(r.store, base)
                    .await?
                    .with_guide(std::sync::Arc::new(crate::policy::ExperienceGuide {
                        config: ecfg.guidance.clone(),
                    }));
                let pool = arena.pool(&arena.env, ecfg.max_steps as usize)?;
                explore_job(r, id, base, chunk_tasks, &ecfg, text.tasks.clone())
                    .run_with(
                        r.store,
                        &arena.env,
                        &|| pool.make(),
                        &policy,
                        &crate::reflect::FeedbackReflector,
                        None,
                        &(),
                    )
                    .await?
            }
            _ => {
                explore_job(r, id, base, chunk_tasks, &ecfg, r.splits.tasks.clone())
                    .run(&SokobanWorld, r.store, &())
                    .await?
            }
        };
        let (tasks, solved, env_steps) = run_stats(r.store, &format!("{p}.{id}.%")).await?;
        let (chunks, consulted) = chunk_markers(r.store, &format!("{p}.{id}.c")).await?;
        let summary = ExplorationSummary {
            tasks,
            solved,
            env_steps,
            consulted,
            chunks,
            fresh: (s.tasks != 0).then_some((s.episodes, s.reflections)),
        };
        r.stage(id, t, summary.detail());
        runs.insert(id, summary);
    }
    Ok(ExploreStageSummary { runs })
}
