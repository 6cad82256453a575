//! Steps per second and the cost of a rollback by replay through each
//! adapter: OpenEnv over HTTP and over WebSocket (leafe's native client),
//! gymnasium FrozenLake and ScienceWorld (the compiled-in adapters over the
//! env protocol).
//!
//! Run through `benches/adapters.sh`, which starts the OpenEnv fixture
//! servers, runs this bench, and runs the same environments without leafe
//! (`benches/adapters_direct.py`) so that leafe's own per-step overhead can
//! be told apart from the environment's time:
//!
//! ```sh
//! LEAFE_ENVS_PYTHON=/path/to/venv/bin/python benches/adapters.sh
//! ```
//!
//! Alone: `ADAPTER_SPECS='openenv:ws://127.0.0.1:8000|...' cargo bench
//! --bench adapters`. Prints one line per spec: steps/s over random legal
//! actions (resets included), and the time of a rollback by replay of a
//! 20-step prefix (reset + 20 verified steps).

use std::time::Instant;

use leafe::env::schemes::{EnvSource, resolve_with};
use leafe::env::{Env, Rollback, Step, roll_back};

fn main() {
    let python = std::env::var("LEAFE_ENVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let steps: usize = std::env::var("ADAPTER_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let specs = std::env::var("ADAPTER_SPECS").unwrap_or_default();
    for entry in specs.split('|').filter(|s| !s.is_empty()) {
        // `SPEC#TASK#N`: the task to run and, optionally, fewer steps.
        let mut parts = entry.split('#');
        let spec = parts.next().unwrap();
        let task = parts.next().unwrap_or("0").to_string();
        let n: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(steps);
        match bench(spec, &task, n, &python) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{spec}: failed: {e}"),
        }
    }
}

fn bench(spec: &str, task: &str, n: usize, python: &str) -> Result<String, String> {
    let (cmd, _) = resolve_with(spec, python)
        .map_err(|e| e.to_string())?
        .ok_or("not an adapter spec")?;
    let source = EnvSource::new(&cmd, 60_000, 0).map_err(|e| e.to_string())?;
    let mut env = source.make().map_err(|e| e.to_string())?;
    let task = task.to_string();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut pick = |legal: &[String]| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        legal[(rng % legal.len() as u64) as usize].clone()
    };
    // Warm up (process start, connection, first reset).
    env.reset(&task, 0).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut resets = 0;
    for _ in 0..n {
        let legal = env.legal_actions();
        if legal.is_empty() {
            resets += 1;
            env.reset(&task, resets).map_err(|e| e.to_string())?;
            continue;
        }
        let a = pick(&legal);
        env.step(&a).map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    // A 20-step episode (or as long as it lasts), then back to its end.
    let mut recorded = Vec::new();
    let mut obs = env.reset(&task, 7).map_err(|e| e.to_string())?;
    for t in 0..20 {
        let legal = env.legal_actions();
        if legal.is_empty() {
            break;
        }
        let a = pick(&legal);
        let transition = env.step(&a).map_err(|e| e.to_string())?;
        recorded.push(Step {
            t,
            observation: obs,
            action: a,
            action_index: None,
            log_prob: 0.0,
            call: None,
            legal: None,
            transition,
        });
        obs = env.observe();
    }
    let tau = recorded.len().saturating_sub(1);
    let back = Instant::now();
    let rounds = 5;
    for _ in 0..rounds {
        roll_back(
            &mut env,
            &task,
            &recorded,
            tau,
            &Rollback::Replay { seed: 7 },
        )
        .map_err(|e| e.to_string())?;
    }
    let rollback_ms = back.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    Ok(format!(
        "leafe {spec} task {task}: {:.0} steps/s over {n} steps ({resets} resets); rollback by replay of {tau} steps: {rollback_ms:.1} ms{}",
        n as f64 / secs,
        match source.resync_steps() {
            0 => String::new(),
            r => format!(" ({r} re-sync steps)"),
        }
    ))
}
