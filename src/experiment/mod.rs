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
use crate::train::distill::{DistillConfig, Method, distill};
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
    /// Distillation of LEAFE, LEAFE w/o experience and RFT.
    pub distill: DistillConfig,
    /// The GRPO baseline (its budget is LEAFE's exploration steps).
    pub grpo: GrpoConfig,
    /// Evaluation.
    pub eval: EvalConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            seeds: vec![0, 1, 2],
            methods: vec![
                ExpMethod::Leafe,
                ExpMethod::LeafeNoExperience,
                ExpMethod::Rft,
                ExpMethod::Grpo,
            ],
            levels: LevelsConfig::default(),
            pretrain: PretrainConfig::default(),
            explore: ExploreConfig::default(),
            rft_root_samples: 64,
            distill: DistillConfig {
                fit: crate::train::FitConfig {
                    epochs: 10,
                    learning_rate: 5e-4,
                    ..crate::train::FitConfig::default()
                },
                ..DistillConfig::default()
            },
            grpo: GrpoConfig::default(),
            eval: EvalConfig::default(),
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

    fn check(&self) -> anyhow::Result<()> {
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
    /// `heldout` or `shifted`.
    pub split: String,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Samples per task.
    pub samples: usize,
    /// Mean Pass@k by k.
    pub pass_at_k: BTreeMap<String, f64>,
    /// Environment steps the method's training interacted for (0 for base).
    pub train_env_steps: u64,
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
}

struct Splits {
    demos: Vec<Level>,
    tasks: Vec<Level>,
    heldout: Vec<Level>,
    shifted: Vec<Level>,
}

fn make_levels(cfg: &ExperimentConfig) -> anyhow::Result<Splits> {
    let train = generate(&cfg.levels.train).context("generating the training levels")?;
    let (demos, tasks) = train.split_at(cfg.pretrain.demo_levels);
    let seen: std::collections::HashSet<String> = train.iter().map(|l| l.task_id()).collect();
    let mut heldout = generate(&cfg.levels.heldout).context("generating the held-out levels")?;
    let mut shifted = generate(&cfg.levels.shifted).context("generating the shifted levels")?;
    heldout.retain(|l| !seen.contains(&l.task_id()));
    shifted.retain(|l| !seen.contains(&l.task_id()));
    dedup(&mut heldout);
    dedup(&mut shifted);
    if heldout.is_empty() || shifted.is_empty() {
        bail!("the held-out or shifted split is empty after removing training levels");
    }
    Ok(Splits {
        demos: demos.to_vec(),
        tasks: tasks.to_vec(),
        heldout,
        shifted,
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
pub async fn run_experiment(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
    command_line: &str,
    log: &dyn Log,
) -> anyhow::Result<Results> {
    cfg.check()?;
    crate::store::validate_run_id(run)?;
    let resolved = serde_json::to_value(cfg).expect("config serializes");
    match store.commit(run).await? {
        Some(_) => {
            let recorded = recorded_config(store, run).await?;
            if recorded != resolved {
                bail!(
                    "run `{run}` exists in {} with another config; choose another --name (or rerun with the recorded config to resume)",
                    store.url()
                );
            }
            log.line(&format!(
                "run {run}: found in the store, resuming (stages already done are skipped)"
            ));
        }
        None => {
            let spec = RunSpec {
                run_id: run.to_string(),
                kind: "experiment".into(),
                seed: cfg.seeds.first().map(|&s| s as i64),
                config: resolved.clone(),
                command_line: command_line.to_string(),
                meta: serde_json::json!({ "config": resolved }),
            };
            store.begin_run(spec).await?.commit().await?;
        }
    }
    let mut stages = Vec::new();
    let started = Instant::now();
    let splits = tokio::task::block_in_place(|| make_levels(cfg))?;
    for (name, levels) in [
        ("demos", &splits.demos),
        ("train", &splits.tasks),
        ("heldout", &splits.heldout),
        ("shifted", &splits.shifted),
    ] {
        store
            .put_report_file(
                run,
                &format!("levels/{name}.txt"),
                to_boxoban_text(levels).into_bytes(),
            )
            .await?;
    }
    stages.push(StageTime {
        seed: None,
        stage: "levels".into(),
        seconds: started.elapsed().as_secs_f64(),
        detail: format!(
            "{} demo, {} train, {} held-out, {} shifted levels",
            splits.demos.len(),
            splits.tasks.len(),
            splits.heldout.len(),
            splits.shifted.len()
        ),
    });
    log.line(&format!("levels: {}", stages[0].detail));

    let ks = cfg.ks();
    let mut cells = Vec::new();
    let mut training = Vec::new();
    for &seed in &cfg.seeds {
        let p = format!("{run}.s{seed}");
        let mut stage = |name: &str, t: Instant, detail: String| {
            let seconds = t.elapsed().as_secs_f64();
            log.line(&format!("[seed {seed}] {name}: {detail} ({seconds:.1}s)"));
            stages.push(StageTime {
                seed: Some(seed),
                stage: name.to_string(),
                seconds,
                detail,
            });
        };

        // Base policy.
        let t = Instant::now();
        let base = format!("{p}.base");
        if store.model_manifest(&base).await?.is_none() {
            let pcfg = PretrainConfig {
                seed,
                ..cfg.pretrain.clone()
            };
            let (policy, report) = tokio::task::block_in_place(|| {
                pretrain_world(&SokobanWorld, &splits.demos, &pcfg, |_, _, _| {})
            })?;
            record_and_save(
                store,
                &format!("{base}.train"),
                &base,
                &policy,
                seed,
                serde_json::json!({ "experiment": run, "method": "pretrain", "pretrain": pcfg, "report": report }),
                command_line,
            )
            .await?;
            stage(
                "pretrain",
                t,
                format!(
                    "{} demonstration steps, loss {:.3} → {:.3}",
                    report.samples,
                    report.epoch_losses.first().copied().unwrap_or(f32::NAN),
                    report.epoch_losses.last().copied().unwrap_or(f32::NAN)
                ),
            );
        } else {
            stage("pretrain", t, "done before".into());
        }

        // Stage 1, three ways.
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
        let mut explore_steps: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, ecfg) in explores {
            let t = Instant::now();
            let job = ExploreJob {
                run_id: format!("{p}.{id}"),
                model: base.clone(),
                levels_source: format!("reports/{run}/levels/train.txt"),
                levels: splits.tasks.clone(),
                split: Some("train".into()),
                shard: Shard::ALL,
                chunk_tasks: 256,
                config: ecfg,
                command_line: command_line.to_string(),
            };
            let s = job.run(&SokobanWorld, store, &()).await?;
            let (tasks, solved, steps) = run_stats(store, &format!("{p}.{id}.%")).await?;
            explore_steps.insert(id, steps);
            stage(
                id,
                t,
                if s.tasks == 0 {
                    format!("done before: {tasks} tasks, {solved} solved, {steps} env steps")
                } else {
                    format!(
                        "{tasks} tasks, {solved} solved, {} episodes, {} reflections, {steps} env steps",
                        s.episodes, s.reflections
                    )
                },
            );
        }

        // Stage 2.
        for &m in &cfg.methods {
            let model = format!("{p}.{}", m.id());
            let t = Instant::now();
            if m == ExpMethod::Base || store.model_manifest(&model).await?.is_some() {
                if m != ExpMethod::Base {
                    stage(&format!("train {}", m.id()), t, "done before".into());
                    if let Some(v) = recorded_training(store, &model).await? {
                        training.push(v);
                    }
                }
                continue;
            }
            let explore_run = format!("{p}.{}.%", m.explore_id().expect("trained method"));
            if m == ExpMethod::Grpo {
                let budget = explore_steps["explore-leafe"];
                let init = load_policy(store, &base, SokobanWorld.encoder()).await?;
                let gcfg = GrpoConfig {
                    seed,
                    ..cfg.grpo.clone()
                };
                let prefix = format!("{model}.a{}", crate::store::now_us() / 1_000_000);
                let max_steps = gcfg.max_steps as usize;
                let (policy, report) = grpo(
                    store,
                    &init,
                    &splits.tasks,
                    &|| SokobanWorld.make_env(max_steps),
                    &prefix,
                    budget,
                    None,
                    &gcfg,
                    command_line,
                    |_| {},
                )
                .await?;
                let summary = serde_json::json!({
                    "seed": seed, "method": m, "env_steps": report.env_steps, "iterations": report.iterations,
                });
                record_and_save(
                    store,
                    &format!("{model}.train"),
                    &model,
                    &policy,
                    seed,
                    serde_json::json!({
                        "experiment": run, "method": m, "init": base, "budget": budget,
                        "grpo": gcfg, "report": report, "sample_runs": format!("{prefix}.%"), "summary": summary,
                    }),
                    command_line,
                )
                .await?;
                training.push(summary);
                stage(
                    "train grpo",
                    t,
                    format!(
                        "{} iterations, {} of {budget} env steps, sample success {:.3} → {:.3}",
                        report.iterations,
                        report.env_steps,
                        report.success_rates.first().copied().unwrap_or(0.0),
                        report.success_rates.last().copied().unwrap_or(0.0)
                    ),
                );
                continue;
            }
            let method = if m == ExpMethod::Rft {
                Method::Rft
            } else {
                Method::Leafe
            };
            let dcfg = DistillConfig {
                fit: crate::train::FitConfig {
                    seed,
                    ..cfg.distill.fit.clone()
                },
                ..cfg.distill.clone()
            };
            let (policy, report) = distill(
                store,
                &base,
                SokobanWorld.encoder(),
                method,
                &explore_run,
                None,
                &dcfg,
                |_, _, _| {},
            )
            .await
            .with_context(|| format!("training {model}"))?;
            let summary = serde_json::json!({
                "seed": seed, "method": m, "pairs": report.pairs, "rehearsal": report.rehearsal,
                "env_steps": explore_steps.get(m.explore_id().unwrap_or_default()).copied().unwrap_or(0),
            });
            record_and_save(
                store,
                &format!("{model}.train"),
                &model,
                &policy,
                seed,
                serde_json::json!({
                    "experiment": run, "method": m, "init": base, "runs": explore_run,
                    "distill": dcfg, "report": report, "summary": summary,
                }),
                command_line,
            )
            .await?;
            training.push(summary);
            stage(
                &format!("train {}", m.id()),
                t,
                format!(
                    "{} counterfactual pairs + {} rehearsal rows, loss {:.3} → {:.3}",
                    report.pairs,
                    report.rehearsal,
                    report.epoch_losses.first().copied().unwrap_or(f32::NAN),
                    report.epoch_losses.last().copied().unwrap_or(f32::NAN)
                ),
            );
        }

        // Evaluation.
        for m in cfg.evaluated() {
            let model = format!("{p}.{}", m.id());
            let train_env_steps = match m {
                ExpMethod::Base => 0,
                ExpMethod::Grpo => training
                    .iter()
                    .find(|v| v["seed"] == seed && v["method"] == "grpo")
                    .and_then(|v| v["env_steps"].as_u64())
                    .unwrap_or(0),
                _ => explore_steps
                    .get(m.explore_id().unwrap_or_default())
                    .copied()
                    .unwrap_or(0),
            };
            // Loaded once per model, and only if some split still needs it.
            let mut policy = None;
            for (split, levels) in [("heldout", &splits.heldout), ("shifted", &splits.shifted)] {
                let t = Instant::now();
                let eval_run = format!("{p}.eval.{}.{split}", m.id());
                let (pass, fresh) = match store.commit(&eval_run).await? {
                    Some(marker) => (
                        serde_json::from_value::<BTreeMap<String, f64>>(
                            marker.meta["pass_at_k"].clone(),
                        )
                        .with_context(|| format!("reading Pass@k of {eval_run}"))?,
                        false,
                    ),
                    None => {
                        if policy.is_none() {
                            policy =
                                Some(load_policy(store, &model, SokobanWorld.encoder()).await?);
                        }
                        let policy = policy.as_ref().expect("loaded above");
                        let source = format!("reports/{run}/levels/{split}.txt");
                        let max_steps = cfg.eval.max_steps as usize;
                        let r = evaluate(
                            store,
                            policy,
                            &|| SokobanWorld.make_env(max_steps),
                            &EvalSpec {
                                model: &model,
                                levels,
                                levels_source: &source,
                                split,
                                samples: cfg.eval.samples,
                                ks: &ks,
                                temperature: cfg.eval.temperature,
                                max_steps: cfg.eval.max_steps,
                                seed: seed.wrapping_add(1_000_003),
                                run_id: Some(&eval_run),
                                command_line,
                            },
                        )
                        .await?;
                        (
                            r.pass_at_k
                                .iter()
                                .map(|(k, p)| (k.to_string(), *p))
                                .collect(),
                            true,
                        )
                    }
                };
                let first = ks.first().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
                let last = ks.last().map(|k| pass[&k.to_string()]).unwrap_or(0.0);
                stage(
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
                    tasks: levels.len(),
                    samples: cfg.eval.samples,
                    pass_at_k: pass,
                    train_env_steps,
                });
            }
        }
    }
    let results = Results {
        run: run.to_string(),
        config: cfg.clone(),
        ks,
        splits: BTreeMap::from([
            ("demos".to_string(), splits.demos.len()),
            ("train".to_string(), splits.tasks.len()),
            ("heldout".to_string(), splits.heldout.len()),
            ("shifted".to_string(), splits.shifted.len()),
        ]),
        cells,
        training,
        stages,
        command_line: command_line.to_string(),
    };
    report::write(store, &results).await?;
    Ok(results)
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
