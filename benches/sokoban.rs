//! Sokoban environment and solver benchmarks.
//!
//! Run: `cargo bench --bench sokoban` (add `-- step` or `-- solve` to filter).
//!
//! Measures:
//! - `step/apply`: raw steps per second on a Boxoban level (the allocation-free
//!   hot path, `Sokoban::apply`; random actions, reset when an episode ends).
//! - `step/apply+snapshot+restore`: the same with a snapshot before every
//!   step and a restore every 16 steps (the rollback pattern of LEAFE).
//! - `step/env_step`: Sokoban's typed step (`Sokoban::act`), which also
//!   builds the feedback string.
//! - `step/env_step_by_name`: the generic boundary, `Env::step("up")`:
//!   action by name, feedback and flags as a `Transition`.
//! - `solve/*`: solver time per level (throughput in levels) on generated
//!   6×6 1-box and 8×8 2-box levels and on the first 60 Boxoban
//!   unfiltered-test levels (fixtures).
//!
//! Targets (DESIGN.md): tens of millions of steps/s per core; 6×6 levels
//! solved in milliseconds; ≥ 90% of Boxoban unfiltered levels within 1 s.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::env::Env;
use leafe::worlds::sokoban::generate::{GeneratorConfig, generate};
use leafe::worlds::sokoban::levels::read_level_file;
use leafe::worlds::sokoban::solve::{SolverConfig, solve};
use leafe::worlds::sokoban::{Level, Sokoban, SokobanConfig};

fn boxoban() -> Vec<Level> {
    let mut p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boxoban/unfiltered-test-000-first60.txt");
    if !p.exists() {
        p = PathBuf::from("/work/main/tests/fixtures/boxoban/unfiltered-test-000-first60.txt");
    }
    read_level_file(p).expect("fixture")
}

/// Random actions from a fixed xorshift stream (no RNG cost in the loop).
fn actions(n: usize) -> Vec<usize> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 33) as usize % 4
        })
        .collect()
}

fn bench_step(c: &mut Criterion) {
    let level = boxoban().remove(0);
    let acts = actions(4096);
    let mut g = c.benchmark_group("step");
    g.throughput(Throughput::Elements(acts.len() as u64));
    g.bench_function("apply", |b| {
        let mut env = Sokoban::new(level.clone(), SokobanConfig::default());
        b.iter(|| {
            for &a in &acts {
                let ev = env.apply(a);
                if env.state().status.is_terminal() {
                    env.restart();
                }
                black_box(ev);
            }
        })
    });
    g.bench_function("apply+snapshot+restore", |b| {
        let mut env = Sokoban::new(level.clone(), SokobanConfig::default());
        b.iter(|| {
            let mut saved = *env.state();
            for (i, &a) in acts.iter().enumerate() {
                if i % 16 == 15 {
                    env.restore_state(&saved);
                }
                saved = black_box(*env.state());
                black_box(env.apply(a));
                if env.state().status.is_terminal() {
                    env.restart();
                }
            }
        })
    });
    g.bench_function("env_step", |b| {
        let mut env = Sokoban::new(level.clone(), SokobanConfig::default());
        b.iter(|| {
            for &a in &acts {
                if env.status().is_terminal() {
                    env.restart();
                }
                black_box(env.act(a).ok());
            }
        })
    });
    g.bench_function("env_step_by_name", |b| {
        use leafe::env::Env;
        let mut env = Sokoban::new(level.clone(), SokobanConfig::default());
        let names = leafe::worlds::sokoban::DIR_NAMES;
        b.iter(|| {
            for &a in &acts {
                if env.status().is_terminal() {
                    env.restart();
                }
                black_box(Env::step(&mut env, names[a]).ok());
            }
        })
    });
    g.finish();
}

fn bench_solve(c: &mut Criterion) {
    let small = |w, boxes| {
        generate(&GeneratorConfig {
            width: w,
            height: w,
            boxes,
            count: 50,
            seed: 0,
            ..GeneratorConfig::default()
        })
        .expect("generate")
    };
    let sets = [
        ("6x6_1box", small(6, 1)),
        ("8x8_2box", small(8, 2)),
        ("boxoban_unfiltered", boxoban()),
    ];
    let cfg = SolverConfig {
        time_limit_ms: Some(1_000),
        ..SolverConfig::default()
    };
    let mut g = c.benchmark_group("solve");
    g.sample_size(10);
    for (name, levels) in &sets {
        g.throughput(Throughput::Elements(levels.len() as u64));
        g.bench_function(*name, |b| {
            b.iter(|| {
                for l in levels {
                    black_box(solve(l, &cfg));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_step, bench_solve);
criterion_main!(benches);
