//! The experiment on a text environment (`leafe run --preset textworld`, or
//! a config with a `[text]` section): the same replicate as on Sokoban, with
//! the text policy ([`crate::policy::text`]) as the network, task ids as the
//! levels and an environment process (an `--env` spec) as the world.
//!
//! Per seed: the base policy is cloned from the demonstrations of the
//! `demos` tasks (the environment's `demo` verb: TextWorld's walkthroughs;
//! a base policy only, as Sokoban's solver solutions are); the `train`
//! tasks are explored as LEAFE, LEAFE without experience, LEAFE without
//! rollback and RFT's independent rollouts, with the feedback reflector (no
//! oracle: a text world's walkthrough is never consulted after
//! pretraining); each method is distilled from its exploration and GRPO
//! samples the `train` tasks with the steps LEAFE's exploration spent; every
//! model is evaluated on the `heldout` tasks and on the `shifted` tasks of
//! `shifted_env` (larger worlds, longer quests).

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{ExpMethod, ExperimentConfig};
use crate::env::schemes::EnvSource;
use crate::train::text::TextPretrainConfig;

/// A range of numeric task ids (TextWorld: the seeds of generated games).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskIds {
    /// The first id.
    pub first: u64,
    /// How many.
    pub count: usize,
}

impl TaskIds {
    /// The ids, as the environment reads them.
    pub fn ids(&self) -> Vec<String> {
        (self.first..self.first + self.count as u64)
            .map(|i| i.to_string())
            .collect()
    }

    fn overlaps(&self, other: &TaskIds) -> bool {
        let end = |t: &TaskIds| t.first + t.count as u64;
        self.first < end(other) && other.first < end(self)
    }
}

/// The text environment of an experiment and its task splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextArena {
    /// The environment of the demonstration, training and held-out tasks,
    /// as `--env` takes it (`textworld:DIR [OPTIONS]`, `cmd:COMMAND`, …).
    pub env: String,
    /// The environment of the shifted tasks (TextWorld: larger worlds and
    /// longer quests).
    pub shifted_env: String,
    /// Tasks whose demonstrations the base policy is cloned from.
    pub demos: TaskIds,
    /// Tasks explored (Stage 1) and sampled by GRPO.
    pub train: TaskIds,
    /// Held-out tasks of `env`.
    pub heldout: TaskIds,
    /// Tasks of `shifted_env`.
    pub shifted: TaskIds,
    /// The base policy's behaviour cloning (`demo_levels` and `seed` are
    /// replaced by the `demos` count and the replicate's seed).
    pub pretrain: TextPretrainConfig,
    /// Milliseconds the environment may take for one request (TextWorld
    /// generates a game on its first use: seconds, more on a loaded machine).
    pub env_timeout_ms: u64,
}

impl Default for TextArena {
    fn default() -> Self {
        TextArena {
            env: "textworld:textworld-games".into(),
            shifted_env: "textworld:textworld-games --world-size 5 --nb-objects 8 --quest-length 5"
                .into(),
            demos: TaskIds {
                first: 1,
                count: 40,
            },
            train: TaskIds {
                first: 1001,
                count: 60,
            },
            heldout: TaskIds {
                first: 2001,
                count: 30,
            },
            shifted: TaskIds {
                first: 3001,
                count: 30,
            },
            pretrain: TextPretrainConfig::default(),
            env_timeout_ms: 120_000,
        }
    }
}

/// The task ids of each split.
#[derive(Debug, Clone)]
pub(super) struct TextSplits {
    pub(super) demos: Vec<String>,
    pub(super) tasks: Vec<String>,
    pub(super) heldout: Vec<String>,
    pub(super) shifted: Vec<String>,
}

impl TextArena {
    /// Refuses what a text experiment cannot run.
    pub(super) fn check(&self, cfg: &ExperimentConfig) -> anyhow::Result<()> {
        if cfg.methods.contains(&ExpMethod::LeafeOracle) {
            bail!(
                "methods: leafe_oracle needs a solver, which a text environment does not have; remove it"
            );
        }
        if cfg.curve.parts > 0 {
            bail!("curve.parts must be 0 for a text environment (the curve runs on Sokoban only)");
        }
        let splits = [
            ("demos", &self.demos),
            ("train", &self.train),
            ("heldout", &self.heldout),
            ("shifted", &self.shifted),
        ];
        for (name, ids) in splits {
            if ids.count == 0 {
                bail!("text.{name}.count must be at least 1");
            }
        }
        // The shifted tasks are of another environment, so their ids may
        // repeat the others'; the rest share one and must not overlap.
        for (i, (a, x)) in splits[..3].iter().enumerate() {
            for (b, y) in &splits[i + 1..3] {
                if x.overlaps(y) {
                    bail!("text.{a} and text.{b} overlap: a task would be in two splits");
                }
            }
        }
        for (name, spec) in [("env", &self.env), ("shifted_env", &self.shifted_env)] {
            if crate::setup::process_env(Some(spec))?.is_none() {
                bail!(
                    "text.{name} = {spec:?} is not a text environment (textworld:DIR, cmd:COMMAND, scienceworld:, gym:…, openenv:…)"
                );
            }
        }
        Ok(())
    }

    /// The splits' task ids.
    pub(super) fn splits(&self) -> TextSplits {
        TextSplits {
            demos: self.demos.ids(),
            tasks: self.train.ids(),
            heldout: self.heldout.ids(),
            shifted: self.shifted.ids(),
        }
    }

    /// Environments of `spec` (`env` or `shifted_env`) that truncate
    /// episodes at `max_steps`.
    pub(super) fn pool(&self, spec: &str, max_steps: usize) -> anyhow::Result<Arc<EnvSource>> {
        let p = crate::setup::process_env(Some(spec))?
            .with_context(|| format!("{spec:?} is not a text environment"))?;
        Ok(crate::setup::process_pool(
            &p.command,
            self.env_timeout_ms,
            max_steps,
        )?)
    }

    /// The pretraining config of a replicate.
    pub(super) fn pretrain_config(&self, seed: u64) -> TextPretrainConfig {
        TextPretrainConfig {
            demo_levels: self.demos.count,
            seed,
            fit: crate::train::FitConfig {
                seed,
                ..self.pretrain.fit.clone()
            },
            ..self.pretrain.clone()
        }
    }
}
