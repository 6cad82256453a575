//! Stage 1 benchmarks.
//!
//! Run: `cargo bench --bench stage1` (release). What it measures:
//! - `policy_inference`: action distributions per second of the default
//!   network (7×10×10 → 256 → 256 → 4) in batches of 512 states.
//! - `explore_job`: a full exploration job (batched rollouts, reflection,
//!   rollback, branching, Parquet writing and commit) on 64 generated 6×6
//!   2-box levels; reported as tasks/s (× 60 for tasks/minute). The environment
//!   steps per second are printed once before the group.
//! - `train_step`: supervised training throughput of the same network in
//!   samples/s (batch 256, Adam), the cost Stage 2 pays per sample.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::explore::ExploreConfig;
use leafe::pipeline::{ExploreJob, Shard};
use leafe::policy::{NeuralPolicy, PolicyNetConfig, default_device};
use leafe::store::Store;
use leafe::train::{FitConfig, PretrainConfig, Samples, fit, pretrain_world, save_policy};
use leafe::worlds::SokobanWorld;
use leafe::worlds::sokoban::generate::{GeneratorConfig, generate};
use leafe::worlds::sokoban::{Sokoban, SokobanPlanes};

fn levels(count: usize, seed: u64) -> Vec<leafe::worlds::sokoban::Level> {
    generate(&GeneratorConfig {
        width: 6,
        height: 6,
        boxes: 2,
        count,
        seed,
        min_pushes: 5,
        ..GeneratorConfig::default()
    })
    .unwrap()
}

fn policy_inference(c: &mut Criterion) {
    let policy = NeuralPolicy::untrained(
        "bench",
        PolicyNetConfig::new(),
        std::sync::Arc::new(SokobanPlanes),
        0,
    )
    .unwrap();
    let lv = levels(512, 1);
    let envs: Vec<Sokoban> = lv
        .into_iter()
        .map(|l| Sokoban::new(l, Default::default()))
        .collect();
    let observations: Vec<_> = envs.iter().map(|e| e.observation()).collect();
    let mut planes = Vec::new();
    policy
        .encode_batch(observations.iter(), &mut planes)
        .unwrap();
    let mut g = c.benchmark_group("policy_inference");
    g.throughput(Throughput::Elements(envs.len() as u64));
    g.bench_function("batch_512", |b| {
        b.iter(|| policy.log_probs(&planes, envs.len()).unwrap())
    });
    g.bench_function("encode_512", |b| {
        b.iter(|| {
            policy
                .encode_batch(observations.iter(), &mut planes)
                .unwrap()
        })
    });
    g.finish();
}

fn explore_job(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = PretrainConfig {
        demo_levels: 300,
        fit: FitConfig {
            epochs: 10,
            ..FitConfig::default()
        },
        ..PretrainConfig::default()
    };
    let (base, _) = pretrain_world(&SokobanWorld, &levels(300, 2), &cfg, |_, _, _| {}).unwrap();
    let tasks = levels(64, 3);
    let job = |run_id: String| ExploreJob {
        run_id,
        model: "base".into(),
        levels_source: "bench".into(),
        levels: tasks.clone(),
        split: None,
        shard: Shard::ALL,
        chunk_tasks: 64,
        config: ExploreConfig::default(),
        command_line: "bench".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    rt.block_on(save_policy(&store, "base", &base, serde_json::Value::Null))
        .unwrap();
    let t = Instant::now();
    let s = rt
        .block_on(job("warm".into()).run(&SokobanWorld, &store, &()))
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "explore job: {} tasks, {} episodes, {} reflections, {} env steps in {secs:.2}s: {:.0} tasks/min, {:.0} env steps/s (policy steps, store writing included)",
        s.tasks,
        s.episodes,
        s.reflections,
        s.env_steps,
        s.tasks as f64 / secs * 60.0,
        s.env_steps as f64 / secs
    );
    let mut n = 0;
    let mut g = c.benchmark_group("explore_job");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(tasks.len() as u64));
    g.bench_function("64_tasks_6x6_2box", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(job(format!("r{n}")).run(&SokobanWorld, &store, &()))
                .unwrap()
        })
    });
    g.finish();
}

fn train_step(c: &mut Criterion) {
    let config = PolicyNetConfig::new();
    let n = 8192;
    let width = config.input_size();
    let samples = Samples {
        planes: (0..n * width)
            .map(|i| ((i * 7919) % 13 == 0) as u8 as f32)
            .collect(),
        actions: (0..n).map(|i| (i % 4) as i32).collect(),
        weights: Vec::new(),
    };
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("mlp_batch256_8192_samples", |b| {
        b.iter(|| {
            let net = config.init(&default_device(), 0);
            fit(
                net,
                &config,
                &samples,
                &FitConfig {
                    epochs: 1,
                    ..FitConfig::default()
                },
                |_, _, _| {},
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, policy_inference, explore_job, train_step);
criterion_main!(benches);
