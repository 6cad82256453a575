//! The pretrain stage: a replicate's base policy by behaviour cloning.

use std::time::Instant;

use super::ExpMethod;
use super::context::{Replicate, first_last};
use crate::train::{PretrainConfig, pretrain_world, record_and_save};
use crate::worlds::SokobanWorld;

/// The base policy of a replicate.
#[derive(Debug, Clone)]
pub(super) struct PretrainSummary {
    /// Its model id, `<run>.s<seed>.base`.
    pub(super) model: String,
    /// Demonstration steps fitted and the first and last epoch loss; None
    /// when the model was found in the store.
    pub(super) fit: Option<(usize, (f32, f32))>,
}

impl PretrainSummary {
    /// The stage's log detail.
    pub(super) fn detail(&self) -> String {
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
pub(super) async fn pretrain_stage(r: &mut Replicate<'_>) -> anyhow::Result<PretrainSummary> {
    let t = Instant::now();
    let model = r.model(ExpMethod::Base);
    let mut fit = None;
    if let (Some(arena), Some(text)) = (&r.cfg.text, &r.splits.text) {
        if r.store.model_manifest(&model).await?.is_none() {
            let pcfg = arena.pretrain_config(r.seed);
            let pool = arena.pool(&arena.env, pcfg.max_steps as usize)?;
            let mut env = pool.make()?;
            let (policy, report) = tokio::task::block_in_place(|| {
                crate::train::text::pretrain_text(&mut env, &text.demos, &pcfg, |_, _, _| {})
            })?;
            drop(env);
            crate::train::text::record_and_save_text(
                r.store,
                "train",
                &format!("{model}.train"),
                &model,
                &policy,
                r.seed,
                serde_json::json!({ "experiment": r.run, "method": "pretrain", "pretrain": pcfg, "report": report }),
                r.command_line,
            )
            .await?;
            if report.demos.without > 0 {
                r.log.line(&format!(
                    "[seed {}] pretrain: {} of {} demonstrations could not be replayed{}",
                    r.seed,
                    report.demos.without,
                    text.demos.len(),
                    report
                        .demos
                        .first_error
                        .as_deref()
                        .map(|e| format!(" (the first: {e})"))
                        .unwrap_or_default()
                ));
            }
            fit = Some((
                report.demos.decisions,
                first_last(&report.epoch_losses, f32::NAN),
            ));
        }
    } else if r.store.model_manifest(&model).await?.is_none() {
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
