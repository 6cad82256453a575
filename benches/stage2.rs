//! Stage 2 and evaluation benchmarks.
//!
//! Run: `cargo bench --bench stage2` (release). One exploration job (64 tasks,
//! default settings, from a pretrained base) is written to a temporary store
//! first; then:
//! - `distill/<method>`: one epoch of LEAFE or RFT training from the store —
//!   queries (`counterfactual_pairs.sql`, `rehearsal.sql`) → record batches →
//!   tensors → Adam steps; throughput in training samples (the rows the
//!   method trains on).
//! - `grpo/iteration`: GRPO iterations (sample 32 tasks × 8 → write to the
//!   store → advantages in SQL → clipped policy-gradient update) for a budget
//!   of 30,720 environment steps; throughput in environment steps.
//! - `eval/rollouts`: Pass@k sampling, 64 held-out levels × 32 samples
//!   (batched rollouts); throughput in rollouts.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::explore::{ExploreConfig, World, sample_rollouts};
use leafe::pipeline::{ExploreJob, Shard};
use leafe::store::Store;
use leafe::train::distill::{DistillConfig, Method, distill};
use leafe::train::grpo::{GrpoConfig, grpo};
use leafe::train::{FitConfig, PretrainConfig, load_policy, pretrain_world, save_policy};
use leafe::worlds::SokobanWorld;
use leafe::worlds::sokoban::generate::{GeneratorConfig, generate};

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

fn stage2(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let (base, _) = pretrain_world(
        &SokobanWorld,
        &levels(300, 2),
        &PretrainConfig::default(),
        |_, _, _| {},
    )
    .unwrap();
    rt.block_on(save_policy(&store, "base", &base, serde_json::Value::Null))
        .unwrap();
    let tasks = levels(64, 3);
    let job = ExploreJob {
        run_id: "x".into(),
        model: "base".into(),
        levels_source: "bench".into(),
        levels: tasks.clone(),
        split: None,
        shard: Shard::ALL,
        chunk_tasks: 64,
        config: ExploreConfig::default(),
        command_line: "bench".into(),
    };
    rt.block_on(job.run(&SokobanWorld, &store, &())).unwrap();

    let cfg = DistillConfig {
        fit: FitConfig {
            epochs: 1,
            ..FitConfig::default()
        },
        ..DistillConfig::default()
    };
    let mut g = c.benchmark_group("distill");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    for (name, method) in [("leafe", Method::Leafe), ("rft", Method::Rft)] {
        let (_, report) = rt
            .block_on(distill(
                &store,
                "base",
                SokobanWorld.encoder(),
                method,
                "x.%",
                None,
                &cfg,
                |_, _, _| {},
            ))
            .unwrap();
        println!(
            "distill {name}: {} counterfactual pairs + {} rehearsal rows per epoch",
            report.pairs, report.rehearsal
        );
        g.throughput(Throughput::Elements(
            (report.pairs + report.rehearsal) as u64,
        ));
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(distill(
                    &store,
                    "base",
                    SokobanWorld.encoder(),
                    method,
                    "x.%",
                    None,
                    &cfg,
                    |_, _, _| {},
                ))
                .unwrap()
            })
        });
    }
    g.finish();

    let init = rt
        .block_on(load_policy(&store, "base", SokobanWorld.encoder()))
        .unwrap();
    let make_env = || SokobanWorld.make_env(60);
    let gcfg = GrpoConfig::default();
    let budget = 2 * gcfg.tasks_per_iteration as u64 * gcfg.group_size as u64 * 60;
    let mut n = 0;
    let mut g = c.benchmark_group("grpo");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let (_, report) = rt
        .block_on(grpo(
            &store,
            &init,
            &tasks,
            &make_env,
            "g0",
            budget,
            None,
            &gcfg,
            "bench",
            |_, _| {},
        ))
        .unwrap();
    println!(
        "grpo: {} iterations, {} env steps per {budget}-step budget",
        report.iterations, report.env_steps
    );
    g.throughput(Throughput::Elements(report.env_steps));
    g.bench_function("iteration", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(grpo(
                &store,
                &init,
                &tasks,
                &make_env,
                &format!("g{n}"),
                budget,
                None,
                &gcfg,
                "bench",
                |_, _| {},
            ))
            .unwrap()
        })
    });
    g.finish();

    let held = levels(64, 4);
    let mut g = c.benchmark_group("eval");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(64 * 32));
    g.bench_function("rollouts", |b| {
        b.iter(|| sample_rollouts(&held, &make_env, &init, 32, 1.0, 0, 1024).unwrap())
    });
    g.finish();
}

criterion_group!(benches, stage2);
criterion_main!(benches);
