//! The env protocol's overhead.
//!
//! Run: `cargo bench --bench protocol` (release). What it measures, on the
//! first Boxoban fixture level with random actions (reset when an episode
//! ends), in steps per second:
//! - `env_step/in_process`: `Env::step("up")` on the built-in Sokoban;
//! - `env_step/over_protocol`: the same through `ProcessEnv` talking to
//!   `leafe env serve sokoban` (JSON Lines over pipes: one request and one
//!   response line per step, observation text and state bytes included).
//!
//! The ratio is what an environment pays for living in another process.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::env::Env;
use leafe::env::process::{ProcessConfig, ProcessEnv};
use leafe::worlds::sokoban::levels::read_level_file;
use leafe::worlds::sokoban::{Sokoban, SokobanConfig};
use rand::{Rng, SeedableRng};

const NAMES: [&str; 4] = ["up", "down", "left", "right"];

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/boxoban/unfiltered-test-000-first60.txt")
}

fn actions(n: usize) -> Vec<&'static str> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    (0..n).map(|_| NAMES[rng.random_range(0..4)]).collect()
}

fn run<E: Env>(env: &mut E, task: &E::Task, acts: &[&str]) {
    for a in acts {
        if env.status().is_terminal() {
            env.reset(task, 0).unwrap();
        }
        black_box(env.step(a).unwrap());
    }
}

fn env_step(c: &mut Criterion) {
    let level = read_level_file(fixture()).unwrap().remove(0);
    let acts = actions(1024);
    let mut g = c.benchmark_group("env_step");
    g.throughput(Throughput::Elements(acts.len() as u64));
    let mut local = Sokoban::new(level.clone(), SokobanConfig::default());
    g.bench_function("in_process", |b| b.iter(|| run(&mut local, &level, &acts)));
    let mut remote = ProcessEnv::spawn(ProcessConfig {
        command: vec![
            env!("CARGO_BIN_EXE_leafe").into(),
            "env".into(),
            "serve".into(),
            "sokoban".into(),
            "--levels".into(),
            fixture().display().to_string(),
        ],
        timeout_ms: 30_000,
        max_steps: 0,
    })
    .unwrap();
    let task = "0".to_string();
    remote.reset(&task, 0).unwrap();
    g.bench_function("over_protocol", |b| {
        b.iter(|| run(&mut remote, &task, &acts))
    });
    g.finish();
}

criterion_group!(benches, env_step);
criterion_main!(benches);
