//! Evaluation: Pass@k with the unbiased estimator.
//!
//! For a task with n samples of which c succeeded, Pass@k = 1 − C(n−c, k) / C(n, k)
//! (Chen et al. 2021): the probability that at least one of k samples drawn
//! without replacement from the n succeeds. Computed as a running product so
//! large n does not overflow.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::env::{self, Env};
use crate::explore::rows::PlainEpisode;
use crate::explore::sample_rollouts;
use crate::policy::Policy;
use crate::store::{EpisodeBatchBuilder, RunSpec, Store, Table, now_us};

/// What to evaluate and how, on tasks of type `T`.
#[derive(Debug, Clone)]
pub struct EvalSpec<'a, T> {
    /// Model name (recorded as the episodes' policy).
    pub model: &'a str,
    /// The tasks.
    pub levels: &'a [T],
    /// Where the levels came from (recorded; task source prefix).
    pub levels_source: &'a str,
    /// Split name recorded and reported.
    pub split: &'a str,
    /// Samples per task (n of the estimator).
    pub samples: usize,
    /// The k values reported (each 1..=samples).
    pub ks: &'a [u64],
    /// Sampling temperature.
    pub temperature: f32,
    /// Step limit of an episode (recorded; the caller's environments end
    /// episodes there).
    pub max_steps: u16,
    /// Seed of sampling.
    pub seed: u64,
    /// Write the eval episodes as this run (None: write nothing).
    pub run_id: Option<&'a str>,
    /// The command line, recorded with the run.
    pub command_line: &'a str,
    /// The model calls an LLM policy logged, written with the run (its
    /// `llm_calls`; eval runs keep no steps).
    pub calls: Option<&'a crate::policy::llm::CallLog>,
}

/// What an evaluation measured.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    /// Tasks evaluated.
    pub tasks: usize,
    /// Samples per task.
    pub samples: usize,
    /// Mean Pass@k over tasks, by k.
    pub pass_at_k: BTreeMap<u64, f64>,
    /// Rollouts sampled.
    pub rollouts: usize,
    /// Environment steps executed.
    pub env_steps: u64,
    /// Seconds spent sampling.
    pub seconds: f64,
}

/// Errors of evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The request cannot be evaluated.
    #[error("{0}")]
    Invalid(String),
    /// Sampling failed.
    #[error(transparent)]
    Explore(#[from] crate::explore::ExploreError),
    /// Writing the eval episodes failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Samples `spec.samples` rollouts per task, computes Pass@k and (with a run
/// id) writes every rollout as an `eval` episode in one committed run whose
/// config records the Pass@k figures (marker meta too, so a caller can reuse
/// a finished evaluation without reading the episodes).
pub async fn evaluate<E, P>(
    store: &Store,
    policy: &P,
    make_env: &(dyn Fn() -> env::Result<E> + Sync),
    spec: &EvalSpec<'_, E::Task>,
) -> Result<EvalResult, EvalError>
where
    E: Env,
    P: Policy + ?Sized,
{
    if spec.samples == 0 {
        return Err(EvalError::Invalid("samples must be at least 1".into()));
    }
    if let Some(bad) = spec.ks.iter().find(|&&k| k == 0 || k > spec.samples as u64) {
        return Err(EvalError::Invalid(format!(
            "k = {bad} is outside 1..={} (k cannot exceed the samples per task)",
            spec.samples
        )));
    }
    let started = Instant::now();
    let outcomes = tokio::task::block_in_place(|| {
        sample_rollouts(
            spec.levels,
            make_env,
            policy,
            spec.samples,
            spec.temperature,
            spec.seed,
            1024,
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let mut counts = vec![(spec.samples as u64, 0u64); spec.levels.len()];
    for o in &outcomes {
        counts[o.level].1 += u64::from(o.success);
    }
    let result = EvalResult {
        tasks: spec.levels.len(),
        samples: spec.samples,
        pass_at_k: spec
            .ks
            .iter()
            .map(|&k| (k, mean_pass_at_k(&counts, k)))
            .collect(),
        rollouts: outcomes.len(),
        env_steps: outcomes.iter().map(|o| o.length as u64).sum(),
        seconds,
    };
    let Some(run_id) = spec.run_id else {
        return Ok(result);
    };
    let pass_json: serde_json::Map<String, serde_json::Value> = result
        .pass_at_k
        .iter()
        .map(|(k, p)| (k.to_string(), serde_json::json!(p)))
        .collect();
    let probe = make_env().map_err(crate::explore::ExploreError::from)?;
    let task_ids: Vec<String> = spec.levels.iter().map(|l| probe.task_id(l)).collect();
    let env_description = probe.describe();
    drop(probe);
    let run_spec = RunSpec {
        run_id: run_id.to_string(),
        kind: "eval".into(),
        seed: Some(spec.seed as i64),
        config: serde_json::json!({
            "model": spec.model, "levels": spec.levels_source, "split": spec.split,
            "samples": spec.samples, "temperature": spec.temperature,
            "max_steps": spec.max_steps, "seed": spec.seed, "pass_at_k": pass_json,
            "env_description": env_description,
        }),
        command_line: spec.command_line.to_string(),
        meta: serde_json::json!({ "pass_at_k": pass_json, "tasks": result.tasks, "samples": spec.samples }),
    };
    let mut run = store.begin_run(run_spec).await?;
    let mut b = EpisodeBatchBuilder::default();
    let created_at_us = now_us();
    let sources: Vec<String> = (0..spec.levels.len())
        .map(|i| format!("{}#{i}", spec.levels_source))
        .collect();
    for (i, o) in outcomes.iter().enumerate() {
        PlainEpisode {
            id: i as i64,
            sample_index: o.sample,
            origin: "eval",
            task_id: &task_ids[o.level],
            task_source: Some(&sources[o.level]),
            split: Some(spec.split),
            policy: spec.model,
            success: o.success,
            status: o.status.as_str(),
            episode_return: o.episode_return,
            length: o.length,
            error: None,
        }
        .push(&mut b, created_at_us);
        if b.len() >= 65_536 {
            let batch = b.finish();
            run.write(Table::Episodes, &batch).await?;
        }
    }
    let batch = b.finish();
    run.write(Table::Episodes, &batch).await?;
    if let Some(log) = spec.calls {
        crate::explore::rows::write_llm_calls(&mut run, &log.take(), 16 * 1024).await?;
    }
    run.commit().await?;
    Ok(result)
}

/// One evaluation as one row for the shared table/CSV/JSON writer: model,
/// split, tasks, samples, then Pass@k — as columns `pass@k` (flat, for
/// tables and CSV) or as one `pass_at_k` object keyed by k (`nested`, for
/// JSON).
///
/// # Errors
/// Never for well-formed input (Arrow's own checks).
pub fn summary_batch(
    model: &str,
    split: &str,
    tasks: usize,
    samples: usize,
    pass_at_k: &BTreeMap<u64, f64>,
    nested: bool,
) -> Result<arrow::record_batch::RecordBatch, arrow::error::ArrowError> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, StringArray, StructArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Fields};
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("model", Arc::new(StringArray::from(vec![model]))),
        ("split", Arc::new(StringArray::from(vec![split]))),
        ("tasks", Arc::new(UInt64Array::from(vec![tasks as u64]))),
        ("samples", Arc::new(UInt64Array::from(vec![samples as u64]))),
    ];
    let values: Vec<(String, ArrayRef)> = pass_at_k
        .iter()
        .map(|(k, p)| {
            (
                k.to_string(),
                Arc::new(Float64Array::from(vec![*p])) as ArrayRef,
            )
        })
        .collect();
    let flat_names: Vec<String> = values.iter().map(|(k, _)| format!("pass@{k}")).collect();
    let nested_column;
    if nested {
        let fields: Fields = values
            .iter()
            .map(|(k, _)| Field::new(k, DataType::Float64, false))
            .collect();
        nested_column = Arc::new(StructArray::try_new(
            fields,
            values.iter().map(|(_, v)| v.clone()).collect(),
            None,
        )?) as ArrayRef;
        columns.push(("pass_at_k", nested_column));
    } else {
        for ((_, v), name) in values.iter().zip(&flat_names) {
            columns.push((name, v.clone()));
        }
    }
    arrow::record_batch::RecordBatch::try_from_iter(columns)
}

/// The default k values: 1, 2, 4, … up to `samples`.
pub fn default_ks(samples: usize) -> Vec<u64> {
    (0..)
        .map(|i| 1u64 << i)
        .take_while(|&k| k <= samples as u64)
        .collect()
}

/// Unbiased Pass@k for one task; `k` must be ≤ `n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> f64 {
    assert!(
        k >= 1 && k <= n && c <= n,
        "pass_at_k needs 1 <= k <= n and c <= n (n={n}, c={c}, k={k})"
    );
    if n - c < k {
        return 1.0;
    }
    // C(n−c, k) / C(n, k) = Π_{i=0}^{k−1} (n−c−i) / (n−i)
    let mut fail = 1.0f64;
    for i in 0..k {
        fail *= (n - c - i) as f64 / (n - i) as f64;
    }
    1.0 - fail
}

/// Mean Pass@k over tasks given (n, c) per task.
pub fn mean_pass_at_k(counts: &[(u64, u64)], k: u64) -> f64 {
    if counts.is_empty() {
        return 0.0;
    }
    counts.iter().map(|&(n, c)| pass_at_k(n, c, k)).sum::<f64>() / counts.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(n: u64, c: u64, k: u64) -> f64 {
        // Enumerate all k-subsets of n items where the first c succeed.
        let (n, c, k) = (n as usize, c as usize, k as usize);
        let (mut hit, mut total) = (0u64, 0u64);
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize != k {
                continue;
            }
            total += 1;
            if (0..c).any(|i| mask & (1 << i) != 0) {
                hit += 1;
            }
        }
        hit as f64 / total as f64
    }

    #[test]
    fn equals_brute_force_and_is_monotone_in_k() {
        for n in 1..=10u64 {
            for c in 0..=n {
                let mut prev = 0.0;
                for k in 1..=n {
                    let p = pass_at_k(n, c, k);
                    assert!(
                        (p - brute_force(n, c, k)).abs() < 1e-12,
                        "n={n} c={c} k={k}"
                    );
                    assert!((0.0..=1.0).contains(&p));
                    assert!(p >= prev - 1e-15);
                    prev = p;
                }
            }
        }
        assert_eq!(pass_at_k(128, 0, 128), 0.0);
        assert!((pass_at_k(128, 1, 1) - 1.0 / 128.0).abs() < 1e-12);
    }
}
