//! The replicate loop: one replicate per seed, up to `jobs` at a time, each
//! running its stages in order and recording their timings.

use std::collections::BTreeMap;

use anyhow::Context;

use super::context::Replicate;
use super::curve::curve_stage;
use super::evaluation::eval_stage;
use super::exploration::explore_stage;
use super::levels::Splits;
use super::pretrain::pretrain_stage;
use super::training::{train_env_steps, train_stage};
use super::{Cell, CurvePoint, ExperimentConfig, Log, StageTime};
use crate::store::Store;

/// What every replicate reads, owned (so that seeds run as tasks of their
/// own).
pub(super) struct Shared {
    pub(super) store: Store,
    pub(super) run: String,
    pub(super) cfg: ExperimentConfig,
    pub(super) splits: Splits,
    pub(super) ks: Vec<u64>,
    pub(super) command_line: String,
}

/// What one seed's replicate adds to the results.
pub(super) struct SeedOutput {
    pub(super) training: Vec<serde_json::Value>,
    pub(super) cells: Vec<Cell>,
    pub(super) curve: Vec<CurvePoint>,
    pub(super) stages: Vec<StageTime>,
}

/// Progress lines of a replicate running as a task: sent to the
/// experiment's [`Log`] by the task that awaits the replicates.
pub(super) struct Lines(tokio::sync::mpsc::UnboundedSender<String>);

impl Log for Lines {
    fn line(&self, text: &str) {
        // The receiver lives until every replicate has finished.
        let _ = self.0.send(text.to_string());
    }
}

/// Runs the replicate of every seed, up to `jobs` at a time, and returns
/// their outputs in the config's seed order. The first replicate to fail
/// stops the others (what they committed stays in the store, and a rerun
/// resumes it).
pub(super) async fn replicates(
    shared: &std::sync::Arc<Shared>,
    jobs: usize,
    log: &dyn Log,
) -> anyhow::Result<Vec<SeedOutput>> {
    let seeds = shared.cfg.seeds.clone();
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut outputs: BTreeMap<usize, SeedOutput> = BTreeMap::new();
    let mut next = 0;
    loop {
        while next < seeds.len() && tasks.len() < jobs {
            let (shared, lines, i) = (shared.clone(), Lines(tx.clone()), next);
            let seed = seeds[i];
            tasks.spawn(async move { (i, replicate(&shared, seed, &lines).await) });
            next += 1;
        }
        if tasks.is_empty() {
            break;
        }
        tokio::select! {
            Some(text) = rx.recv() => log.line(&text),
            Some(done) = tasks.join_next() => {
                let (i, result) = done.context("a replicate panicked")?;
                let out = result.with_context(|| format!("seed {}", seeds[i]))?;
                // Its own lines first: every one was sent before it ended.
                while let Ok(text) = rx.try_recv() {
                    log.line(&text);
                }
                log.line(&seed_summary(seeds[i], &out, &shared.ks, outputs.len() + 1, seeds.len()));
                outputs.insert(i, out);
            }
        }
    }
    drop(tx);
    while let Some(text) = rx.recv().await {
        log.line(&text);
    }
    Ok(outputs.into_values().collect())
}

/// The line logged when a seed's replicate is done: its held-out Pass@1
/// and Pass@k at the largest k, by method (a first result before the
/// other seeds finish).
pub(super) fn seed_summary(
    seed: u64,
    out: &SeedOutput,
    ks: &[u64],
    done: usize,
    seeds: usize,
) -> String {
    let (first, last) = (
        ks.first().copied().unwrap_or(1),
        ks.last().copied().unwrap_or(1),
    );
    let by_method: Vec<String> = out
        .cells
        .iter()
        .filter(|c| c.split == "heldout")
        .map(|c| {
            let p = |k: u64| c.pass_at_k.get(&k.to_string()).copied().unwrap_or(f64::NAN);
            format!("{} {:.3} / {:.3}", c.method.label(), p(first), p(last))
        })
        .collect();
    format!(
        "[seed {seed}] done ({done} of {seeds} seeds); held-out Pass@{first} / Pass@{last}: {}",
        by_method.join(", ")
    )
}

/// One seed's replicate: pretraining, exploration, training, evaluation
/// and the curve, each stage skipped when the store has it.
pub(super) async fn replicate(
    shared: &Shared,
    seed: u64,
    log: &(dyn Log + Sync),
) -> anyhow::Result<SeedOutput> {
    let cfg = &shared.cfg;
    let mut r = Replicate {
        store: &shared.store,
        run: &shared.run,
        cfg,
        splits: &shared.splits,
        ks: &shared.ks,
        seed,
        p: format!("{}.s{seed}", shared.run),
        command_line: &shared.command_line,
        log,
        stages: Vec::new(),
    };
    let mut training = Vec::new();
    let mut cells = Vec::new();
    let mut curve = Vec::new();
    let base = pretrain_stage(&mut r).await?;
    let explored = explore_stage(&mut r, &base.model).await?;
    for &m in &cfg.methods {
        training.extend(train_stage(&mut r, m, &base.model, &explored).await?);
    }
    for m in cfg.evaluated() {
        let train_env_steps = train_env_steps(m, seed, &training, &explored);
        let simulated = explored.simulated_of(m);
        cells.extend(eval_stage(&mut r, m, train_env_steps, simulated).await?);
    }
    if cfg.curve.parts > 0 {
        curve.extend(curve_stage(&mut r, &base.model, &explored).await?);
    }
    Ok(SeedOutput {
        training,
        cells,
        curve,
        stages: r.stages,
    })
}
