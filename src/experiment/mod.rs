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

pub mod report;
pub mod stats;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use serde::{Deserialize, Serialize};

use crate::eval::{EvalSpec, default_ks, evaluate};
use crate::explore::ExploreConfig;
use crate::explore::World;
use crate::pipeline::{ExploreJob, Shard};
use crate::query::{QuerySession, load_query};
use crate::store::{RunSpec, Store};
use crate::train::distill::{DistillConfig, Method, distill_runs, like_exact};
use crate::train::grpo::{GrpoConfig, grpo};
use crate::train::{PretrainConfig, load_policy, pretrain_world, record_and_save};
use crate::worlds::SokobanWorld;
use crate::worlds::sokoban::Level;
use crate::worlds::sokoban::generate::{GeneratorConfig, generate};
use crate::worlds::sokoban::levels::to_boxoban_text;

/// The methods compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpMethod {
    /// The pretrained base policy, untouched.
    Base,
    /// Counterfactual distillation of guided branches + rehearsal.
    Leafe,
    /// The same, from branches sampled without the experience.
    LeafeNoExperience,
    /// The same, from branches that start from the task's start with the
    /// experience in context instead of rolling back to tau.
    LeafeNoRollback,
    /// LEAFE with the oracle reflector (Sokoban's solver picks tau and the
    /// fix) and the lookahead guidance: the ablation row that shows what
    /// oracle access adds.
    LeafeOracle,
    /// Rejection-sampling fine-tuning: rehearsal of successful independent rollouts.
    Rft,
    /// Outcome RL with group-normalised advantages.
    Grpo,
}

impl ExpMethod {
    /// Short id used in model and run names.
    pub fn id(self) -> &'static str {
        match self {
            ExpMethod::Base => "base",
            ExpMethod::Leafe => "leafe",
            ExpMethod::LeafeNoExperience => "leafe-noexp",
            ExpMethod::LeafeNoRollback => "leafe-norollback",
            ExpMethod::LeafeOracle => "leafe-oracle",
            ExpMethod::Rft => "rft",
            ExpMethod::Grpo => "grpo",
        }
    }

    /// Name in reports.
    pub fn label(self) -> &'static str {
        match self {
            ExpMethod::Base => "base (BC)",
            ExpMethod::Leafe => "LEAFE",
            ExpMethod::LeafeNoExperience => "LEAFE w/o experience",
            ExpMethod::LeafeNoRollback => "LEAFE w/o rollback",
            ExpMethod::LeafeOracle => "LEAFE, oracle reflector",
            ExpMethod::Rft => "RFT",
            ExpMethod::Grpo => "GRPO",
        }
    }

    /// Exploration run whose data the method trains on (and whose
    /// environment steps are its interaction cost).
    fn explore_id(self) -> Option<&'static str> {
        match self {
            ExpMethod::Leafe | ExpMethod::Grpo => Some("explore-leafe"),
            ExpMethod::LeafeNoExperience => Some("explore-noexp"),
            ExpMethod::LeafeNoRollback => Some("explore-norollback"),
            ExpMethod::LeafeOracle => Some("explore-oracle"),
            ExpMethod::Rft => Some("explore-rft"),
            ExpMethod::Base => None,
        }
    }
}

/// The level sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelsConfig {
    /// Training levels: the first `pretrain.demo_levels` are the base policy's
    /// demonstrations, the rest are the tasks Stage 1 explores (and GRPO samples).
    pub train: GeneratorConfig,
    /// Held-out levels of the training distribution (levels also in the
    /// training set are dropped).
    pub heldout: GeneratorConfig,
    /// The shifted split: larger boards or more boxes.
    pub shifted: GeneratorConfig,
    /// The harder shifted split: larger boards and more boxes.
    pub hard: GeneratorConfig,
}

impl Default for LevelsConfig {
    fn default() -> Self {
        let base = GeneratorConfig {
            width: 6,
            height: 6,
            boxes: 2,
            min_pushes: 5,
            ..GeneratorConfig::default()
        };
        LevelsConfig {
            train: GeneratorConfig {
                count: 700,
                seed: 1,
                ..base.clone()
            },
            heldout: GeneratorConfig {
                count: 200,
                seed: 2,
                ..base.clone()
            },
            shifted: GeneratorConfig {
                width: 7,
                height: 7,
                count: 100,
                seed: 3,
                ..base.clone()
            },
            hard: GeneratorConfig {
                width: 7,
                height: 7,
                boxes: 3,
                count: 100,
                seed: 4,
                ..base
            },
        }
    }
}

/// How models are evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Samples per task (n of the Pass@k estimator).
    pub samples: usize,
    /// k values reported (empty: 1, 2, 4, … up to `samples`).
    pub ks: Vec<u64>,
    /// Sampling temperature.
    pub temperature: f32,
    /// Step limit of an episode.
    pub max_steps: u16,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            samples: 128,
            ks: Vec::new(),
            temperature: 1.0,
            max_steps: 60,
        }
    }
}

/// The whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// One full replicate per seed (pretraining, exploration, training and
    /// evaluation sampling are all seeded by it; the level sets are shared).
    pub seeds: Vec<u64>,
    /// Methods compared (base is always evaluated).
    pub methods: Vec<ExpMethod>,
    /// The level sets.
    pub levels: LevelsConfig,
    /// The base policy.
    pub pretrain: PretrainConfig,
    /// Stage 1 (LEAFE; the ablations derive from it).
    pub explore: ExploreConfig,
    /// Independent rollouts per task at most for the RFT data (the per-task
    /// budget of `explore` bounds it as it bounds LEAFE).
    pub rft_root_samples: usize,
    /// The guide's lookahead penalty (nats) of the `leafe_oracle` row, whose
    /// reflector is the oracle; every other method explores with
    /// `explore.guidance` (penalty 0: no lookahead).
    pub oracle_penalty: f32,
    /// Distillation of LEAFE, LEAFE w/o experience and RFT.
    pub distill: DistillConfig,
    /// The GRPO baseline (its budget is LEAFE's exploration steps times
    /// `grpo_budget_scale`).
    pub grpo: GrpoConfig,
    /// GRPO's budget as a multiple of the environment steps LEAFE's
    /// exploration spent: 1 is the equal-budget comparison; the large
    /// config (`configs/grpo-10x.toml`) gives it 10.
    pub grpo_budget_scale: f64,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Success against environment steps (the paper's Figure 3).
    pub curve: CurveConfig,
}

/// The points of the success-vs-environment-steps curve besides each
/// method's final one: LEAFE and RFT distilled from the first 1/2, 1/4, …
/// of their exploration (explored in `parts` chunks of tasks, so a part
/// costs what its tasks cost), and GRPO's checkpoints at the same fractions
/// of its budget. Each is evaluated on the held-out split with `samples`
/// samples per task (Pass@1); the final points are the main evaluation's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurveConfig {
    /// Chunks the exploration tasks are split into (0: no curve).
    pub parts: usize,
    /// Samples per held-out task at each intermediate point.
    pub samples: usize,
}

impl Default for CurveConfig {
    fn default() -> Self {
        CurveConfig {
            parts: 4,
            samples: 16,
        }
    }
}

impl CurveConfig {
    /// The intermediate points, as chunks of `parts`: parts/2, parts/4, …,
    /// down to 1, smallest first.
    pub fn fractions(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let mut n = self.parts / 2;
        while n >= 1 {
            out.push(n);
            n /= 2;
        }
        out.reverse();
        out
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            seeds: vec![0, 1, 2, 3, 4],
            methods: vec![
                ExpMethod::Leafe,
                ExpMethod::LeafeNoExperience,
                ExpMethod::LeafeNoRollback,
                ExpMethod::LeafeOracle,
                ExpMethod::Rft,
                ExpMethod::Grpo,
            ],
            levels: LevelsConfig::default(),
            pretrain: PretrainConfig::default(),
            explore: ExploreConfig::default(),
            rft_root_samples: 64,
            oracle_penalty: 4.0,
            distill: DistillConfig {
                fit: crate::train::FitConfig {
                    epochs: 10,
                    learning_rate: 5e-4,
                    ..crate::train::FitConfig::default()
                },
                ..DistillConfig::default()
            },
            grpo: GrpoConfig::default(),
            grpo_budget_scale: 1.0,
            eval: EvalConfig::default(),
            curve: CurveConfig::default(),
        }
    }
}

impl ExperimentConfig {
    /// The methods evaluated, base first, without repeats.
    pub fn evaluated(&self) -> Vec<ExpMethod> {
        let mut m = vec![ExpMethod::Base];
        for x in &self.methods {
            if !m.contains(x) {
                m.push(*x);
            }
        }
        m
    }

    /// The k values reported.
    pub fn ks(&self) -> Vec<u64> {
        if self.eval.ks.is_empty() {
            default_ks(self.eval.samples)
        } else {
            self.eval.ks.clone()
        }
    }

    /// Refuses settings no experiment can run with, in one line naming the field.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.seeds.is_empty() {
            bail!("seeds: give at least one seed");
        }
        let mut seen = self.seeds.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.seeds.len() {
            bail!("seeds: {:?} repeats a seed", self.seeds);
        }
        if self.levels.train.count <= self.pretrain.demo_levels {
            bail!(
                "levels.train.count ({}) must exceed pretrain.demo_levels ({}): the rest are the exploration tasks",
                self.levels.train.count,
                self.pretrain.demo_levels
            );
        }
        if self.eval.samples == 0 {
            bail!("eval.samples must be at least 1");
        }
        if let Some(k) = self
            .ks()
            .iter()
            .find(|&&k| k == 0 || k > self.eval.samples as u64)
        {
            bail!(
                "eval.ks: {k} is outside 1..={} (k cannot exceed eval.samples)",
                self.eval.samples
            );
        }
        if self.rft_root_samples == 0 {
            bail!("rft_root_samples must be at least 1");
        }
        if !(self.grpo_budget_scale.is_finite() && self.grpo_budget_scale > 0.0) {
            bail!(
                "grpo_budget_scale must be a positive number (1 = LEAFE's steps), not {}",
                self.grpo_budget_scale
            );
        }
        if !(self.oracle_penalty.is_finite() && self.oracle_penalty >= 0.0) {
            bail!(
                "oracle_penalty must be a number of nats ≥ 0, not {}",
                self.oracle_penalty
            );
        }
        if self.curve.parts > 0 && self.curve.samples == 0 {
            bail!("curve.samples must be at least 1 (or curve.parts = 0: no curve)");
        }
        Ok(())
    }

    /// A short stable hash of the config (the default run name).
    pub fn fingerprint(&self) -> String {
        let text = serde_json::to_string(self).expect("config serializes");
        // FNV-1a, 64 bit: stable across builds and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:08x}", h >> 32)
    }
}

/// Result of one (seed, method, split) evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Seed of the replicate.
    pub seed: u64,
    /// Method.
    pub method: ExpMethod,
    /// `heldout`, `shifted` or `hard`.
    pub split: String,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Samples per task.
    pub samples: usize,
    /// Mean Pass@k by k.
    pub pass_at_k: BTreeMap<String, f64>,
    /// Interaction the method's training is charged for (0 for base):
    /// environment steps plus `simulated_steps`.
    pub train_env_steps: u64,
    /// The simulated transitions included in `train_env_steps` (the oracle
    /// row's solver nodes and lookahead moves; 0 for every other method).
    #[serde(default)]
    pub simulated_steps: u64,
}

/// Wall time of one stage in this invocation (0 when it was resumed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageTime {
    /// Seed of the replicate (None: shared stages).
    pub seed: Option<u64>,
    /// Stage name.
    pub stage: String,
    /// Seconds spent (0: found done in the store).
    pub seconds: f64,
    /// What it did, in a few words.
    pub detail: String,
}

/// Everything the report is made of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The run name.
    pub run: String,
    /// The resolved config.
    pub config: ExperimentConfig,
    /// k values.
    pub ks: Vec<u64>,
    /// Level counts per split.
    pub splits: BTreeMap<String, usize>,
    /// One cell per (seed, method, split).
    pub cells: Vec<Cell>,
    /// Training data volume per (seed, method): counterfactual pairs, rehearsal rows.
    pub training: Vec<serde_json::Value>,
    /// Stage timings of the invocation that wrote this report.
    pub stages: Vec<StageTime>,
    /// The command that regenerates it.
    pub command_line: String,
    /// Paired differences over tasks (LEAFE against the baselines).
    #[serde(default)]
    pub paired: Vec<Paired>,
    /// The intermediate points of the success-vs-environment-steps curve.
    #[serde(default)]
    pub curve: Vec<CurvePoint>,
}

/// A paired comparison of two methods on one split at one k: per task the
/// difference of their Pass@k (each averaged over seeds), its mean over
/// tasks and the 95 % bootstrap interval of that mean (tasks resampled).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Paired {
    /// Split.
    pub split: String,
    /// The method compared.
    pub a: ExpMethod,
    /// The method it is compared against.
    pub b: ExpMethod,
    /// k of Pass@k.
    pub k: u64,
    /// Tasks paired.
    pub tasks: usize,
    /// Mean of a − b over tasks.
    pub mean: f64,
    /// 2.5 % bootstrap quantile.
    pub lo: f64,
    /// 97.5 % bootstrap quantile.
    pub hi: f64,
}

/// Bootstrap resamples of [`paired_differences`].
pub(crate) const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// LEAFE against base, RFT and GRPO (where evaluated), per split, at the
/// smallest and largest k, from the eval episodes of the store
/// (`queries/pass_at_k_inputs.sql`).
async fn paired_differences(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
    ks: &[u64],
) -> anyhow::Result<Vec<Paired>> {
    let session = QuerySession::open(store).await?;
    let q = load_query(None, "pass_at_k_inputs")?.bind(&BTreeMap::from([(
        "run".to_string(),
        format!("{run}.s%.eval.%"),
    )]))?;
    // (policy, split) -> task -> (n, c)
    let mut counts: BTreeMap<(String, String), BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    for b in session.collect(&q).await? {
        let col = |name: &str| {
            b.column_by_name(name)
                .with_context(|| format!("pass_at_k_inputs.sql returns no `{name}`"))
        };
        let (policy, split, task) = (
            col("policy")?.as_string::<i32>(),
            col("split")?.as_string::<i32>(),
            col("task_id")?.as_string::<i32>(),
        );
        let n = arrow::compute::cast(col("n")?, &arrow::datatypes::DataType::Int64)?;
        let c = arrow::compute::cast(col("c")?, &arrow::datatypes::DataType::Int64)?;
        let (n, c) = (n.as_primitive::<Int64Type>(), c.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            counts
                .entry((policy.value(i).to_string(), split.value(i).to_string()))
                .or_default()
                .insert(
                    task.value(i).to_string(),
                    (n.value(i) as u64, c.value(i) as u64),
                );
        }
    }
    let evaluated = cfg.evaluated();
    let (Some(&k_lo), Some(&k_hi)) = (ks.first(), ks.last()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for split in ["heldout", "shifted", "hard"] {
        // Per method: task -> Pass@k per seed.
        let per_task = |m: ExpMethod, k: u64| -> Option<BTreeMap<String, f64>> {
            let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            for seed in &cfg.seeds {
                let tasks =
                    counts.get(&(format!("{run}.s{seed}.{}", m.id()), split.to_string()))?;
                for (task, &(n, c)) in tasks {
                    let e = sums.entry(task.clone()).or_default();
                    e.0 += crate::eval::pass_at_k(n, c, k.min(n));
                    e.1 += 1;
                }
            }
            Some(
                sums.into_iter()
                    .map(|(t, (s, n))| (t, s / n as f64))
                    .collect(),
            )
        };
        for b in [ExpMethod::Base, ExpMethod::Rft, ExpMethod::Grpo] {
            if !evaluated.contains(&ExpMethod::Leafe) || !evaluated.contains(&b) {
                continue;
            }
            for k in [k_lo, k_hi] {
                let (Some(va), Some(vb)) = (per_task(ExpMethod::Leafe, k), per_task(b, k)) else {
                    continue;
                };
                let diffs: Vec<f64> = va
                    .iter()
                    .filter_map(|(t, a)| vb.get(t).map(|b| a - b))
                    .collect();
                let (mean, lo, hi) = stats::paired_bootstrap(&diffs, BOOTSTRAP_RESAMPLES, 2603 + k);
                out.push(Paired {
                    split: split.to_string(),
                    a: ExpMethod::Leafe,
                    b,
                    k,
                    tasks: diffs.len(),
                    mean,
                    lo,
                    hi,
                });
            }
        }
    }
    Ok(out)
}

struct Splits {
    demos: Vec<Level>,
    tasks: Vec<Level>,
    heldout: Vec<Level>,
    shifted: Vec<Level>,
    hard: Vec<Level>,
}

fn make_levels(cfg: &ExperimentConfig) -> anyhow::Result<Splits> {
    let train = generate(&cfg.levels.train).context("generating the training levels")?;
    let (demos, tasks) = train.split_at(cfg.pretrain.demo_levels);
    let seen: std::collections::HashSet<String> = train.iter().map(|l| l.task_id()).collect();
    let mut heldout = generate(&cfg.levels.heldout).context("generating the held-out levels")?;
    let mut shifted = generate(&cfg.levels.shifted).context("generating the shifted levels")?;
    let mut hard = generate(&cfg.levels.hard).context("generating the hard levels")?;
    for split in [&mut heldout, &mut shifted, &mut hard] {
        split.retain(|l| !seen.contains(&l.task_id()));
        dedup(split);
    }
    if heldout.is_empty() || shifted.is_empty() || hard.is_empty() {
        bail!("the held-out, shifted or hard split is empty after removing training levels");
    }
    Ok(Splits {
        demos: demos.to_vec(),
        tasks: tasks.to_vec(),
        heldout,
        shifted,
        hard,
    })
}

fn dedup(levels: &mut Vec<Level>) {
    let mut seen = std::collections::HashSet::new();
    levels.retain(|l| seen.insert(l.task_id()));
}

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

/// Level counts per split.
#[derive(Debug, Clone, Copy)]
struct LevelsSummary {
    /// Demonstration levels of the base policy.
    demos: usize,
    /// Exploration tasks.
    train: usize,
    /// Held-out levels.
    heldout: usize,
    /// Shifted levels.
    shifted: usize,
    /// Hard levels.
    hard: usize,
}

impl LevelsSummary {
    /// The stage's log detail.
    fn detail(&self) -> String {
        format!(
            "{} demo, {} train, {} held-out, {} shifted, {} hard levels",
            self.demos, self.train, self.heldout, self.shifted, self.hard
        )
    }

    /// The counts as `Results::splits` lists them.
    fn by_split(&self) -> BTreeMap<String, usize> {
        BTreeMap::from([
            ("demos".to_string(), self.demos),
            ("train".to_string(), self.train),
            ("heldout".to_string(), self.heldout),
            ("shifted".to_string(), self.shifted),
            ("hard".to_string(), self.hard),
        ])
    }
}

/// Generates the level sets and writes each into the report folder as
/// `levels/<split>.txt` (Boxoban text): the levels source that exploration and
/// evaluation runs cite.
async fn levels_stage(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
) -> anyhow::Result<(Splits, LevelsSummary)> {
    let splits = tokio::task::block_in_place(|| make_levels(cfg))?;
    for (name, levels) in [
        ("demos", &splits.demos),
        ("train", &splits.tasks),
        ("heldout", &splits.heldout),
        ("shifted", &splits.shifted),
        ("hard", &splits.hard),
    ] {
        store
            .put_report_file(
                run,
                &format!("levels/{name}.txt"),
                to_boxoban_text(levels).into_bytes(),
            )
            .await?;
    }
    let summary = LevelsSummary {
        demos: splits.demos.len(),
        train: splits.tasks.len(),
        heldout: splits.heldout.len(),
        shifted: splits.shifted.len(),
        hard: splits.hard.len(),
    };
    Ok((splits, summary))
}

/// What every replicate reads, owned (so that seeds run as tasks of their
/// own).
struct Shared {
    store: Store,
    run: String,
    cfg: ExperimentConfig,
    splits: Splits,
    ks: Vec<u64>,
    command_line: String,
}

/// What one seed's replicate adds to the results.
struct SeedOutput {
    training: Vec<serde_json::Value>,
    cells: Vec<Cell>,
    curve: Vec<CurvePoint>,
    stages: Vec<StageTime>,
}

/// Progress lines of a replicate running as a task: sent to the
/// experiment's [`Log`] by the task that awaits the replicates.
struct Lines(tokio::sync::mpsc::UnboundedSender<String>);

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
async fn replicates(
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
fn seed_summary(seed: u64, out: &SeedOutput, ks: &[u64], done: usize, seeds: usize) -> String {
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
async fn replicate(
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

/// One seed's replicate: what its stages read, and the stage timings they
/// record.
struct Replicate<'a> {
    store: &'a Store,
    /// The experiment's run name.
    run: &'a str,
    cfg: &'a ExperimentConfig,
    splits: &'a Splits,
    /// The k values reported.
    ks: &'a [u64],
    seed: u64,
    /// `<run>.s<seed>`: the prefix of every run and model id of the replicate.
    p: String,
    command_line: &'a str,
    log: &'a (dyn Log + Sync),
    /// Timings of the stages done so far, in order.
    stages: Vec<StageTime>,
}

impl Replicate<'_> {
    /// Model id of method `m`: `<run>.s<seed>.<method id>`.
    fn model(&self, m: ExpMethod) -> String {
        format!("{}.{}", self.p, m.id())
    }

    /// Logs stage `name`, started at `t`, and records its timing.
    fn stage(&mut self, name: &str, t: Instant, detail: String) {
        let seconds = t.elapsed().as_secs_f64();
        self.log.line(&format!(
            "[seed {}] {name}: {detail} ({seconds:.1}s)",
            self.seed
        ));
        self.stages.push(StageTime {
            seed: Some(self.seed),
            stage: name.to_string(),
            seconds,
            detail,
        });
    }
}

/// First and last of a per-epoch (or per-iteration) series, `empty` for both
/// when it has none.
fn first_last(series: &[f32], empty: f32) -> (f32, f32) {
    (
        series.first().copied().unwrap_or(empty),
        series.last().copied().unwrap_or(empty),
    )
}

/// The base policy of a replicate.
#[derive(Debug, Clone)]
struct PretrainSummary {
    /// Its model id, `<run>.s<seed>.base`.
    model: String,
    /// Demonstration steps fitted and the first and last epoch loss; None
    /// when the model was found in the store.
    fit: Option<(usize, (f32, f32))>,
}

impl PretrainSummary {
    /// The stage's log detail.
    fn detail(&self) -> String {
        match self.fit {
            None => "done before".into(),
            Some((samples, (first, last))) => {
                format!("{samples} demonstration steps, loss {first:.3} → {last:.3}")
            }
        }
    }
}

/// Pretrains the replicate's base policy by behaviour cloning on the
/// demonstration levels, unless its model is in the store already.
async fn pretrain_stage(r: &mut Replicate<'_>) -> anyhow::Result<PretrainSummary> {
    let t = Instant::now();
    let model = r.model(ExpMethod::Base);
    let mut fit = None;
    if r.store.model_manifest(&model).await?.is_none() {
        let pcfg = PretrainConfig {
            seed: r.seed,
            ..r.cfg.pretrain.clone()
        };
        let (policy, report) = tokio::task::block_in_place(|| {
            pretrain_world(&SokobanWorld, &r.splits.demos, &pcfg, |_, _, _| {})
        })?;
        record_and_save(
            r.store,
            &format!("{model}.train"),
            &model,
            &policy,
            r.seed,
            serde_json::json!({ "experiment": r.run, "method": "pretrain", "pretrain": pcfg, "report": report }),
            r.command_line,
        )
        .await?;
        fit = Some((report.samples, first_last(&report.epoch_losses, f32::NAN)));
    }
    let summary = PretrainSummary { model, fit };
    r.stage("pretrain", t, summary.detail());
    Ok(summary)
}

/// The explorations the compared methods need, by exploration id, each with
/// its config for `seed`: LEAFE (also GRPO's budget), LEAFE without
/// experience, and RFT's independent rollouts (no rollback).
fn explorations(cfg: &ExperimentConfig, seed: u64) -> Vec<(&'static str, ExploreConfig)> {
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
struct ExplorationSummary {
    /// Distinct tasks explored.
    tasks: i64,
    /// Tasks with a success.
    solved: i64,
    /// Environment steps spent.
    env_steps: u64,
    /// What the exploration consulted besides the environment, summed over
    /// its chunks' commit markers (`meta.consulted`: solver searches, solver
    /// nodes, lookahead moves; empty or 0 for every method but the oracle).
    consulted: BTreeMap<String, u64>,
    /// Its chunks' run ids, in order.
    chunks: Vec<String>,
    /// Episodes and reflections of this invocation; None when the run was
    /// found done in the store.
    fresh: Option<(usize, usize)>,
}

impl ExplorationSummary {
    /// Simulated transitions charged to the method on top of its
    /// environment steps: the solver's expanded push states and the
    /// lookahead's simulated moves.
    fn simulated(&self) -> u64 {
        ["solver_nodes", "lookahead_moves"]
            .iter()
            .map(|k| self.consulted.get(*k).copied().unwrap_or(0))
            .sum()
    }

    /// The stage's log detail.
    fn detail(&self) -> String {
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
struct ExploreStageSummary {
    /// Only the explorations the compared methods need.
    runs: BTreeMap<&'static str, ExplorationSummary>,
}

impl ExploreStageSummary {
    /// Interaction charged to the exploration method `m` trains on: its
    /// environment steps plus the simulated transitions it consulted; 0
    /// when it has none.
    fn env_steps_of(&self, m: ExpMethod) -> u64 {
        self.runs
            .get(m.explore_id().unwrap_or_default())
            .map_or(0, |e| e.env_steps + e.simulated())
    }

    /// The simulated part of [`Self::env_steps_of`].
    fn simulated_of(&self, m: ExpMethod) -> u64 {
        self.runs
            .get(m.explore_id().unwrap_or_default())
            .map_or(0, ExplorationSummary::simulated)
    }
}

/// Stage 1, as many ways as the methods need (see [`explorations`]): explores
/// the training tasks with the base policy `base`, each exploration as run
/// `<run>.s<seed>.<exploration id>`; a run already in the store is not redone.
async fn explore_stage(r: &mut Replicate<'_>, base: &str) -> anyhow::Result<ExploreStageSummary> {
    let mut runs = BTreeMap::new();
    // Chunks of tasks: the curve's parts (a part's cost is its tasks').
    let chunk_tasks = match r.cfg.curve.parts {
        0 => 256,
        parts => r.splits.tasks.len().div_ceil(parts).max(1),
    };
    for (id, ecfg) in explorations(r.cfg, r.seed) {
        let t = Instant::now();
        let p = &r.p;
        let job = ExploreJob {
            run_id: format!("{p}.{id}"),
            model: base.to_string(),
            levels_source: format!("reports/{}/levels/train.txt", r.run),
            levels: r.splits.tasks.clone(),
            split: Some("train".into()),
            shard: Shard::ALL,
            chunk_tasks,
            config: ecfg,
            command_line: r.command_line.to_string(),
        };
        let s = job.run(&SokobanWorld, r.store, &()).await?;
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

/// Stage 2 for method `m`: trains its model from the base policy `base`
/// unless the model is in the store already. Returns its line for
/// `Results::training`: the summary recorded with the model when it was
/// trained before (None when it has none), None for the base policy.
async fn train_stage(
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
struct GrpoSummary {
    seed: u64,
    /// Always [`ExpMethod::Grpo`].
    method: ExpMethod,
    /// Environment steps sampled.
    env_steps: u64,
    /// Policy updates.
    iterations: usize,
    /// The budget: LEAFE's exploration steps (log only).
    #[serde(skip)]
    budget: u64,
    /// Sample success rate of the first and last iteration (log only).
    #[serde(skip)]
    success: (f32, f32),
}

impl GrpoSummary {
    /// The stage's log detail.
    fn detail(&self) -> String {
        format!(
            "{} iterations, {} of {} env steps, sample success {:.3} → {:.3}",
            self.iterations, self.env_steps, self.budget, self.success.0, self.success.1
        )
    }
}

/// Trains GRPO's `model` from `base` on the training tasks, with as many
/// environment steps as LEAFE's exploration spent, and records it with its
/// summary.
async fn grpo_stage(
    r: &Replicate<'_>,
    model: &str,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<GrpoSummary> {
    let m = ExpMethod::Grpo;
    let budget =
        (explored.env_steps_of(ExpMethod::Leafe) as f64 * r.cfg.grpo_budget_scale).round() as u64;
    let init = load_policy(r.store, base, SokobanWorld.encoder()).await?;
    let gcfg = GrpoConfig {
        seed: r.seed,
        ..r.cfg.grpo.clone()
    };
    let prefix = format!("{model}.a{}", crate::store::now_us() / 1_000_000);
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
    let summary = GrpoSummary {
        seed: r.seed,
        method: m,
        env_steps: report.env_steps,
        iterations: report.iterations,
        budget,
        success: first_last(&report.success_rates, 0.0),
    };
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
struct DistillSummary {
    seed: u64,
    method: ExpMethod,
    /// Counterfactual pairs trained on.
    pairs: usize,
    /// Rehearsal rows trained on.
    rehearsal: usize,
    /// Environment steps of the exploration the data came from.
    env_steps: u64,
    /// The curve point (`{part, parts}`) when trained on part of the
    /// exploration; null for the method's model.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    part: serde_json::Value,
    /// Loss of the first and last epoch (log only).
    #[serde(skip)]
    loss: (f32, f32),
}

impl DistillSummary {
    /// The stage's log detail.
    fn detail(&self) -> String {
        format!(
            "{} counterfactual pairs + {} rehearsal rows, loss {:.3} → {:.3}",
            self.pairs, self.rehearsal, self.loss.0, self.loss.1
        )
    }
}

/// Trains method `m`'s `model` from `base` by distillation on its
/// exploration's runs (through the queries in `queries/`), and records it with
/// its summary.
async fn distill_stage(
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
async fn distill_on(
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
    let (policy, report) = distill_runs(
        r.store,
        base,
        SokobanWorld.encoder(),
        method,
        patterns,
        None,
        &dcfg,
        |_, _, _| {},
    )
    .await
    .with_context(|| format!("training {model}"))?;
    let summary = DistillSummary {
        seed: r.seed,
        method: m,
        pairs: report.pairs,
        rehearsal: report.rehearsal,
        env_steps,
        part,
        loss: first_last(&report.epoch_losses, f32::NAN),
    };
    record_and_save(
        r.store,
        &format!("{model}.train"),
        model,
        &policy,
        r.seed,
        serde_json::json!({
            "experiment": r.run, "method": m, "init": base, "runs": explore_run,
            "distill": dcfg, "report": report, "summary": summary,
        }),
        r.command_line,
    )
    .await?;
    Ok(summary)
}

/// Environment steps method `m`'s training interacted for in replicate
/// `seed`: GRPO's from its line in `training`, a distilled method's
/// exploration's, none for the base policy.
fn train_env_steps(
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

/// Evaluates method `m`'s model on the held-out, shifted and hard splits, each as
/// run `<run>.s<seed>.eval.<method>.<split>`; a split evaluated before is
/// read back from its run's commit marker. Returns one cell per split.
async fn eval_stage(
    r: &mut Replicate<'_>,
    m: ExpMethod,
    train_env_steps: u64,
    simulated_steps: u64,
) -> anyhow::Result<Vec<Cell>> {
    let (cfg, ks, seed) = (r.cfg, r.ks, r.seed);
    let model = r.model(m);
    let splits = r.splits;
    // The three splits are evaluated at once, each as a task of its own (on
    // two cores, rollouts are one thread each). They share nothing but the
    // store, and each evaluation computes exactly what it would alone (its
    // own batches and seeds), so the figures do not depend on the overlap.
    let mut handles = Vec::new();
    for (split, levels) in [
        ("heldout", &splits.heldout),
        ("shifted", &splits.shifted),
        ("hard", &splits.hard),
    ] {
        let job = EvalJob {
            store: r.store.clone(),
            run: r.run.to_string(),
            model: model.clone(),
            split,
            levels: levels.clone(),
            samples: cfg.eval.samples,
            ks: ks.to_vec(),
            eval_run: format!("{}.eval.{}.{split}", r.p, m.id()),
            seed,
            command_line: r.command_line.to_string(),
            eval: cfg.eval.clone(),
        };
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = eval_job(&job, &mut None).await;
            (job.split, job.levels.len(), t, result)
        }));
    }
    let mut cells = Vec::new();
    for h in handles {
        let (split, tasks, t, result) = h.await.context("an evaluation task panicked")?;
        let (pass, fresh) = result?;
        let first = ks.first().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
        let last = ks.last().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
        r.stage(
            &format!("eval {} {split}", m.id()),
            t,
            format!(
                "{}Pass@{} {first:.3}, Pass@{} {last:.3}",
                if fresh { "" } else { "done before: " },
                ks.first().unwrap_or(&1),
                ks.last().unwrap_or(&1)
            ),
        );
        cells.push(Cell {
            seed,
            method: m,
            split: split.to_string(),
            tasks,
            samples: cfg.eval.samples,
            pass_at_k: pass,
            train_env_steps,
            simulated_steps,
        });
    }
    Ok(cells)
}

/// One evaluation of a model on one split, with everything it needs owned
/// (so that splits can be evaluated concurrently).
struct EvalJob {
    store: Store,
    run: String,
    model: String,
    split: &'static str,
    levels: Vec<Level>,
    samples: usize,
    ks: Vec<u64>,
    eval_run: String,
    seed: u64,
    command_line: String,
    eval: EvalConfig,
}

/// Pass@k of `model` on one split (name, levels) with `samples` samples
/// per task, as eval run `eval_run`, or read back from that run's commit
/// marker when it was evaluated before. `policy` caches the loaded model.
/// Returns Pass@k by k and whether it was evaluated now.
async fn eval_split(
    r: &Replicate<'_>,
    policy: &mut Option<crate::policy::neural::NeuralPolicy>,
    model: &str,
    (split, levels): (&'static str, &[Level]),
    samples: usize,
    ks: &[u64],
    eval_run: &str,
) -> anyhow::Result<(BTreeMap<String, f64>, bool)> {
    let job = EvalJob {
        store: r.store.clone(),
        run: r.run.to_string(),
        model: model.to_string(),
        split,
        levels: levels.to_vec(),
        samples,
        ks: ks.to_vec(),
        eval_run: eval_run.to_string(),
        seed: r.seed,
        command_line: r.command_line.to_string(),
        eval: r.cfg.eval.clone(),
    };
    eval_job(&job, policy).await
}

/// Runs (or reads back) one [`EvalJob`].
async fn eval_job(
    job: &EvalJob,
    policy: &mut Option<crate::policy::neural::NeuralPolicy>,
) -> anyhow::Result<(BTreeMap<String, f64>, bool)> {
    let store = &job.store;
    if let Some(marker) = store.commit(&job.eval_run).await? {
        let pass =
            serde_json::from_value::<BTreeMap<String, f64>>(marker.meta["pass_at_k"].clone())
                .with_context(|| format!("reading Pass@k of {}", job.eval_run))?;
        return Ok((pass, false));
    }
    if policy.is_none() {
        *policy = Some(load_policy(store, &job.model, SokobanWorld.encoder()).await?);
    }
    let policy = policy.as_ref().expect("loaded above");
    let source = format!("reports/{}/levels/{}.txt", job.run, job.split);
    let max_steps = job.eval.max_steps as usize;
    let e = evaluate(
        store,
        policy,
        &|| SokobanWorld.make_env(max_steps),
        &EvalSpec {
            model: &job.model,
            levels: &job.levels,
            levels_source: &source,
            split: job.split,
            samples: job.samples,
            ks: &job.ks,
            temperature: job.eval.temperature,
            max_steps: job.eval.max_steps,
            seed: job.seed.wrapping_add(1_000_003),
            run_id: Some(&job.eval_run),
            command_line: &job.command_line,
            calls: None,
        },
    )
    .await?;
    Ok((
        e.pass_at_k
            .iter()
            .map(|(k, p)| (k.to_string(), *p))
            .collect(),
        true,
    ))
}

/// The model of method model `model` trained on (or checkpointed at) `n`
/// of `parts` parts: `<model>.part<n>of<parts>`.
fn part_model(model: &str, n: usize, parts: usize) -> String {
    format!("{model}.part{n}of{parts}")
}

/// One intermediate point of the success-vs-environment-steps curve (see
/// [`CurveConfig`]); the final points are the held-out cells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurvePoint {
    /// Seed of the replicate.
    pub seed: u64,
    /// Method.
    pub method: ExpMethod,
    /// Parts of the exploration trained on (LEAFE, RFT), or fraction of the
    /// budget reached (GRPO), out of `parts`.
    pub part: usize,
    /// See [`CurveConfig::parts`].
    pub parts: usize,
    /// Environment steps the point's training interacted for.
    pub env_steps: u64,
    /// Held-out Pass@1.
    pub pass1: f64,
    /// Samples per held-out task.
    pub samples: usize,
}

/// The curve's intermediate points of the replicate: LEAFE and RFT
/// distilled from the first parts of their exploration, GRPO's checkpoints
/// (saved by [`grpo_stage`]), each evaluated on held-out. Models and
/// evaluations found in the store are not redone.
async fn curve_stage(
    r: &mut Replicate<'_>,
    base: &str,
    explored: &ExploreStageSummary,
) -> anyhow::Result<Vec<CurvePoint>> {
    let curve = r.cfg.curve.clone();
    let mut points = Vec::new();
    for m in [ExpMethod::Leafe, ExpMethod::Rft, ExpMethod::Grpo] {
        if !r.cfg.methods.contains(&m) {
            continue;
        }
        for n in curve.fractions() {
            let t = Instant::now();
            let model = part_model(&r.model(m), n, curve.parts);
            let recorded = recorded_training(r.store, &model).await?;
            let env_steps = match (recorded, m) {
                (Some(v), _) => v["env_steps"].as_u64().unwrap_or(0),
                // GRPO's run ended before this fraction of its budget.
                (None, ExpMethod::Grpo) => continue,
                (None, _) => {
                    let Some(chunks) = explored
                        .runs
                        .get(m.explore_id().expect("explored"))
                        .and_then(|e| e.chunks.get(..n))
                    else {
                        continue;
                    };
                    let mut env_steps = 0;
                    for c in chunks {
                        env_steps += run_stats(r.store, &like_exact(c)).await?.2;
                    }
                    let patterns: Vec<String> = chunks.iter().map(|c| like_exact(c)).collect();
                    let part = serde_json::json!({ "part": n, "parts": curve.parts });
                    distill_on(r, m, &model, base, &patterns, env_steps, part).await?;
                    env_steps
                }
            };
            let eval_run = format!("{}.curve.{}.part{n}of{}.heldout", r.p, m.id(), curve.parts);
            let (pass, fresh) = eval_split(
                r,
                &mut None,
                &model,
                ("heldout", &r.splits.heldout),
                curve.samples,
                &[1],
                &eval_run,
            )
            .await?;
            let pass1 = pass.get("1").copied().unwrap_or(f64::NAN);
            r.stage(
                &format!("curve {} {n}/{}", m.id(), curve.parts),
                t,
                format!(
                    "{}{env_steps} env steps, held-out Pass@1 {pass1:.3} ({} samples)",
                    if fresh { "" } else { "done before: " },
                    curve.samples
                ),
            );
            points.push(CurvePoint {
                seed: r.seed,
                method: m,
                part: n,
                parts: curve.parts,
                env_steps,
                pass1,
                samples: curve.samples,
            });
        }
    }
    Ok(points)
}

async fn recorded_config(store: &Store, run: &str) -> anyhow::Result<serde_json::Value> {
    let marker = store
        .commit(run)
        .await?
        .with_context(|| format!("run {run} is not committed"))?;
    Ok(marker.meta["config"].clone())
}

async fn recorded_training(
    store: &Store,
    model: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(store
        .model_manifest(model)
        .await?
        .map(|m| m["provenance"]["train"]["summary"].clone())
        .filter(|v| !v.is_null()))
}

/// The committed chunks whose run id starts with `prefix`, in order, and
/// the sum of their `meta.consulted` counters.
async fn chunk_markers(
    store: &Store,
    prefix: &str,
) -> anyhow::Result<(Vec<String>, BTreeMap<String, u64>)> {
    let mut chunks = Vec::new();
    let mut consulted = BTreeMap::new();
    for m in store.commits().await? {
        if !m.run_id.starts_with(prefix) {
            continue;
        }
        if let Some(c) = m.meta.get("consulted").and_then(|c| c.as_object()) {
            for (k, v) in c {
                *consulted.entry(k.clone()).or_insert(0) += v.as_u64().unwrap_or(0);
            }
        }
        chunks.push(m.run_id);
    }
    chunks.sort();
    Ok((chunks, consulted))
}

/// (distinct tasks, tasks with a success, environment steps) of the runs
/// matching `pattern`.
async fn run_stats(store: &Store, pattern: &str) -> anyhow::Result<(i64, i64, u64)> {
    let session = QuerySession::open(store).await?;
    let q = load_query(None, "interaction_cost")?
        .bind(&BTreeMap::from([("run".to_string(), pattern.to_string())]))?;
    let b = session.collect(&q).await?;
    let Some(b) = b.first() else {
        return Ok((0, 0, 0));
    };
    let v = |i: usize| b.column(i).as_primitive::<Int64Type>().value(0);
    Ok((v(0), v(1), v(2).max(0) as u64))
}
