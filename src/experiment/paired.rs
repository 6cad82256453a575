//! Paired differences over tasks: LEAFE against the baselines, per split,
//! with bootstrap intervals, from the store's eval episodes.

use std::collections::BTreeMap;

use anyhow::Context;
use arrow::array::AsArray;
use arrow::datatypes::Int64Type;

use super::{ExpMethod, ExperimentConfig, Paired, stats};
use crate::query::{QuerySession, load_query};
use crate::store::Store;

/// Bootstrap resamples of [`paired_differences`].
pub(crate) const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// LEAFE against base, RFT and GRPO (where evaluated), per split, at the
/// smallest and largest k, from the eval episodes of the store
/// (`queries/pass_at_k_inputs.sql`).
pub(super) async fn paired_differences(
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
