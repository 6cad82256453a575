//! The level sets of an experiment: generated from the config, training
//! levels removed from the evaluation splits, written into the report folder.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use super::ExperimentConfig;
use crate::store::Store;
use crate::worlds::sokoban::Level;
use crate::worlds::sokoban::generate::generate;
use crate::worlds::sokoban::levels::to_boxoban_text;

pub(super) struct Splits {
    pub(super) demos: Vec<Level>,
    pub(super) tasks: Vec<Level>,
    pub(super) heldout: Vec<Level>,
    pub(super) shifted: Vec<Level>,
    pub(super) hard: Vec<Level>,
    /// The task ids of a text experiment (the level vectors are then empty).
    pub(super) text: Option<super::text::TextSplits>,
}

pub(super) fn make_levels(cfg: &ExperimentConfig) -> anyhow::Result<Splits> {
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
        text: None,
    })
}

pub(super) fn dedup(levels: &mut Vec<Level>) {
    let mut seen = std::collections::HashSet::new();
    levels.retain(|l| seen.insert(l.task_id()));
}

/// Level counts per split.
#[derive(Debug, Clone, Copy)]
pub(super) struct LevelsSummary {
    /// Demonstration levels of the base policy.
    pub(super) demos: usize,
    /// Exploration tasks.
    pub(super) train: usize,
    /// Held-out levels.
    pub(super) heldout: usize,
    /// Shifted levels.
    pub(super) shifted: usize,
    /// Hard levels.
    pub(super) hard: usize,
}

impl LevelsSummary {
    /// The stage's log detail.
    pub(super) fn detail(&self) -> String {
        format!(
            "{} demo, {} train, {} held-out, {} shifted, {} hard levels",
            self.demos, self.train, self.heldout, self.shifted, self.hard
        )
    }

    /// The counts as `Results::splits` lists them.
    pub(super) fn by_split(&self) -> BTreeMap<String, usize> {
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
pub(super) async fn levels_stage(
    store: &Store,
    run: &str,
    cfg: &ExperimentConfig,
) -> anyhow::Result<(Splits, LevelsSummary)> {
    if let Some(arena) = &cfg.text {
        let text = arena.splits();
        for (name, ids) in [
            ("demos", &text.demos),
            ("train", &text.tasks),
            ("heldout", &text.heldout),
            ("shifted", &text.shifted),
        ] {
            let mut body = ids.join("\n");
            body.push('\n');
            store
                .put_report_file(run, &format!("levels/{name}.txt"), body.into_bytes())
                .await?;
        }
        let summary = LevelsSummary {
            demos: text.demos.len(),
            train: text.tasks.len(),
            heldout: text.heldout.len(),
            shifted: text.shifted.len(),
            hard: 0,
        };
        let splits = Splits {
            demos: Vec::new(),
            tasks: Vec::new(),
            heldout: Vec::new(),
            shifted: Vec::new(),
            hard: Vec::new(),
            text: Some(text),
        };
        return Ok((splits, summary));
    }
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
