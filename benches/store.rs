//! Store benchmarks.
//!
//! Run: `cargo bench --bench store` (release build). What it measures:
//! - `write_steps`: rows of the `steps` table written per second through a
//!   run writer into a local store (zstd Parquet, page statistics), commit included.
//! - `counterfactual_join`: the "counterfactual pairs" join (successful branches
//!   joined to their own steps from tau) over a synthetic store of
//!   `LEAFE_BENCH_STEPS` steps (default 10 million), both aggregated (join cost)
//!   and streamed as the full `queries/counterfactual_pairs.sql` result.
//! - before the criterion groups, peak resident memory (VmHWM) while writing
//!   1 M and then 10 M step rows: flat memory means the two peaks are close.
//!
//! The 10M-step store is built once under `target/bench-store-<N>` and reused.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use leafe::query::{QuerySession, QueryText};
use leafe::store::{RunSpec, StepBatchBuilder, StepRow, Store, Table};
use leafe::synth::{SynthConfig, synthesize};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name)
}

/// A batch of `n` realistic step rows (6×6 board text, short feedback).
fn steps_batch(first_episode: i64, n: usize) -> arrow::record_batch::RecordBatch {
    let mut b = StepBatchBuilder::default();
    let board = "######\n#@ $ #\n#  .##\n# #  #\n#    #\n######\n";
    for i in 0..n {
        b.push(&StepRow {
            episode_id: first_episode + (i / 30) as i64,
            t: (i % 30) as i32,
            observation: board,
            state: None,
            action: (i % 4) as i32,
            action_text: ["up", "down", "left", "right"][i % 4],
            reward: -0.1,
            done: i % 30 == 29,
            feedback: [
                "moved up",
                "moved down",
                "blocked by a wall",
                "pushed a box",
            ][i % 4],
            mistake: None,
            log_prob: -0.5 - (i % 7) as f32 * 0.1,
            experience_in_context: i % 3 == 0,
            llm_call_id: None,
            flags: None,
            info: None,
            legal_actions: None,
        });
    }
    b.finish()
}

async fn write_rows(
    store: &Store,
    run_id: &str,
    batch: &arrow::record_batch::RecordBatch,
    batches: usize,
) {
    let spec = RunSpec {
        run_id: run_id.into(),
        kind: "bench".into(),
        seed: None,
        config: serde_json::json!({}),
        command_line: "bench".into(),
        meta: serde_json::Value::Null,
    };
    let mut run = store.begin_run(spec).await.unwrap();
    for _ in 0..batches {
        run.write(Table::Steps, batch).await.unwrap();
    }
    run.commit().await.unwrap();
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak_rss() {
    // Linux: writing 5 to clear_refs resets VmHWM to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn memory_is_flat() {
    let rt = rt();
    let batch = steps_batch(0, 65_536);
    for (label, batches) in [("1M", 16usize), ("10M", 160)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        reset_peak_rss();
        let before = peak_rss_kib();
        let t = Instant::now();
        rt.block_on(write_rows(&store, "mem", &batch, batches));
        let rows = batches * batch.num_rows();
        println!(
            "peak RSS writing {label} step rows: {} MiB (baseline {} MiB); {:.2} M rows/s",
            peak_rss_kib() / 1024,
            before / 1024,
            rows as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
}

fn write_steps(c: &mut Criterion) {
    memory_is_flat();
    let rt = rt();
    let batch = steps_batch(0, 65_536);
    let batches = 16;
    let mut g = c.benchmark_group("write_steps");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements((batch.num_rows() * batches) as u64));
    g.bench_function("1M_rows_local", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::open(dir.path().to_str().unwrap()).unwrap();
                let t = Instant::now();
                rt.block_on(write_rows(&store, "w", &batch, batches));
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn counterfactual_join(c: &mut Criterion) {
    let steps: u64 = std::env::var("LEAFE_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let dir = bench_dir(&format!("bench-store-{steps}"));
    let url = dir.display().to_string();
    let rt = rt();
    let store = Store::open(&url).unwrap();
    if rt.block_on(store.commit("synth")).unwrap().is_none() {
        // ~22 steps per episode in the synthetic trees.
        let cfg = SynthConfig {
            episodes: steps / 22,
            seed: 1,
            ..SynthConfig::default()
        };
        let t = Instant::now();
        let s = rt
            .block_on(synthesize(&store, "synth", &cfg, "bench"))
            .unwrap();
        println!(
            "built bench store: {} steps, {} episodes in {:.1}s ({:.2} M step rows/s incl. generation)",
            s.steps,
            s.episodes,
            t.elapsed().as_secs_f64(),
            s.steps as f64 / t.elapsed().as_secs_f64() / 1e6
        );
    }
    let session = rt.block_on(QuerySession::open(&store)).unwrap();
    let agg = QueryText::inline(
        "SELECT COUNT(*) AS pairs, SUM(s.action) AS a FROM episodes e \
         JOIN steps s ON s.run_id = e.run_id AND s.episode_id = e.episode_id \
         WHERE e.origin = 'branch' AND e.success",
    )
    .bind(&BTreeMap::new())
    .unwrap();
    let file = QueryText::from_file(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("queries/counterfactual_pairs.sql"),
    )
    .unwrap()
    .bind(&BTreeMap::new())
    .unwrap();
    let mut g = c.benchmark_group("counterfactual_join");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(steps));
    g.bench_function(format!("aggregate_{steps}_steps"), |b| {
        b.iter(|| rt.block_on(session.collect(&agg)).unwrap())
    });
    g.bench_function(format!("stream_pairs_sql_{steps}_steps"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut stream = session.stream(&file).await.unwrap();
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    rows += batch.unwrap().num_rows();
                }
                rows
            })
        })
    });
    g.finish();
}

criterion_group!(benches, write_steps, counterfactual_join);
criterion_main!(benches);
