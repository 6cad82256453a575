//! A replicate's context: what its stages read (the store, the config, the
//! level sets, the seed), and the stage timings they record.

use std::time::Instant;

use super::levels::Splits;
use super::{ExpMethod, ExperimentConfig, Log, StageTime};
use crate::store::Store;

/// One seed's replicate: what its stages read, and the stage timings they
/// record.
pub(super) struct Replicate<'a> {
    pub(super) store: &'a Store,
    /// The experiment's run name.
    pub(super) run: &'a str,
    pub(super) cfg: &'a ExperimentConfig,
    pub(super) splits: &'a Splits,
    /// The k values reported.
    pub(super) ks: &'a [u64],
    pub(super) seed: u64,
    /// `<run>.s<seed>`: the prefix of every run and model id of the replicate.
    pub(super) p: String,
    pub(super) command_line: &'a str,
    pub(super) log: &'a (dyn Log + Sync),
    /// Timings of the stages done so far, in order.
    pub(super) stages: Vec<StageTime>,
}

impl Replicate<'_> {
    /// Model id of method `m`: `<run>.s<seed>.<method id>`.
    pub(super) fn model(&self, m: ExpMethod) -> String {
        format!("{}.{}", self.p, m.id())
    }

    /// Logs stage `name`, started at `t`, and records its timing.
    pub(super) fn stage(&mut self, name: &str, t: Instant, detail: String) {
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
pub(super) fn first_last(series: &[f32], empty: f32) -> (f32, f32) {
    (
        series.first().copied().unwrap_or(empty),
        series.last().copied().unwrap_or(empty),
    )
}
