//! Look-ups in the store: a run's recorded config, a model's recorded
//! training summary, an exploration's committed chunks, a run's interaction
//! cost (`queries/interaction_cost.sql`).

use std::collections::BTreeMap;

use anyhow::Context;
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use crate::query::{QuerySession, load_query};
use crate::store::Store;

pub(super) async fn recorded_config(store: &Store, run: &str) -> anyhow::Result<serde_json::Value> {
    let marker = store
        .commit(run)
        .await?
        .with_context(|| format!("run {run} is not committed"))?;
    Ok(marker.meta["config"].clone())
}

pub(super) async fn recorded_training(
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
pub(super) async fn chunk_markers(
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
pub(super) async fn run_stats(store: &Store, pattern: &str) -> anyhow::Result<(i64, i64, u64)> {
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
