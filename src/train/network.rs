//! The network a job trains, and the step every distillation ends with:
//! train the board network or the text policy from the store, record the
//! run, save the model.

use std::sync::Arc;

use super::{Result, distill, load_policy, record_and_save, text};
use crate::policy::Encoder;
use crate::store::Store;

/// Which network a distillation trains: what `leafe train` loads the
/// `--init` model as.
#[derive(Clone)]
pub enum Network {
    /// A board network reading the planes of a world's encoder.
    Board(Arc<dyn Encoder>),
    /// The text policy ([`crate::policy::text`]), for any text environment.
    Text,
}

/// Distils `init` with `method` (LEAFE or RFT) on the runs matching
/// `patterns`, then records run `run_id` (its config: `describe` of the
/// report) and saves the model as `name`.
///
/// # Errors
/// The distillation's and the store's.
#[allow(clippy::too_many_arguments)]
pub async fn distill_and_save(
    store: &Store,
    network: &Network,
    init: &str,
    method: distill::Method,
    patterns: &[String],
    queries: Option<&std::path::Path>,
    config: &distill::DistillConfig,
    run_id: &str,
    name: &str,
    describe: impl FnOnce(&distill::DistillReport) -> serde_json::Value,
    command_line: &str,
    progress: impl FnMut(usize, usize, f32),
) -> Result<distill::DistillReport> {
    let seed = config.fit.seed;
    match network {
        Network::Board(encoder) => {
            let (policy, report) = distill::distill_runs(
                store,
                init,
                encoder.clone(),
                method,
                patterns,
                queries,
                config,
                progress,
            )
            .await?;
            let json = describe(&report);
            record_and_save(store, run_id, name, &policy, seed, json, command_line).await?;
            Ok(report)
        }
        Network::Text => {
            let (policy, report) = text::distill::distill_text(
                store, init, method, patterns, queries, config, progress,
            )
            .await?;
            let json = describe(&report);
            text::record_and_save_text(
                store,
                "train",
                run_id,
                name,
                &policy,
                seed,
                json,
                command_line,
            )
            .await?;
            Ok(report)
        }
    }
}

/// Saves model `from` unchanged as `to`, recorded as run `run_id` with
/// `config` (what a distillation with no data yields: the policy it
/// started from).
///
/// # Errors
/// The store's and the checkpoint's.
#[allow(clippy::too_many_arguments)]
pub async fn save_copy(
    store: &Store,
    network: &Network,
    from: &str,
    to: &str,
    run_id: &str,
    seed: u64,
    config: serde_json::Value,
    command_line: &str,
) -> Result<()> {
    match network {
        Network::Board(encoder) => {
            let policy = load_policy(store, from, encoder.clone()).await?;
            record_and_save(store, run_id, to, &policy, seed, config, command_line).await
        }
        Network::Text => {
            let policy = text::load_text_policy(store, from).await?;
            text::record_and_save_text(
                store,
                "train",
                run_id,
                to,
                &policy,
                seed,
                config,
                command_line,
            )
            .await
        }
    }
}
