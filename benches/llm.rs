//! The LLM policy's throughput against a scripted OpenAI-compatible server.
//!
//! Run: `cargo bench --bench llm` (release). The server (in-process, on
//! 127.0.0.1) answers every chat completion after 20 ms, as a model would
//! after its prefill and decode. `llm_policy/batch_64/in_flight_N`: one
//! `Policy::act` over 64 turns with at most N requests in flight, in turns
//! per second. With the server's fixed latency the bound is N / 20 ms: the
//! figures show whether leafe reaches it (the server is the limit) or not.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::env::Observation;
use leafe::policy::llm::{LlmConfig, LlmPolicy};
use leafe::policy::scripted::{completion, server};
use leafe::policy::{Policy, Turn};
use rand::SeedableRng;

fn llm_policy(c: &mut Criterion) {
    let (url, _) = server(Arc::new(|_: &serde_json::Value, _| {
        (200, completion("{\"action\": \"up\"}"), 20)
    }));
    let observation = Observation::text("#####\n#@$.#\n#####");
    let legal: Vec<String> = ["up", "down", "left", "right"].map(String::from).to_vec();
    let mut g = c.benchmark_group("llm_policy");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(64));
    for in_flight in [1usize, 8, 64] {
        let policy = LlmPolicy::new(
            "bench",
            LlmConfig {
                base_url: url.clone(),
                max_in_flight: in_flight,
                ..LlmConfig::default()
            },
        )
        .unwrap();
        g.bench_function(format!("batch_64/in_flight_{in_flight}"), |b| {
            b.iter(|| {
                let mut rngs: Vec<rand_chacha::ChaCha8Rng> = (0..64)
                    .map(rand_chacha::ChaCha8Rng::seed_from_u64)
                    .collect();
                let mut memories: Vec<leafe::policy::Memory> = (0..64).map(|_| None).collect();
                let mut turns: Vec<Turn<'_>> = rngs
                    .iter_mut()
                    .zip(memories.iter_mut())
                    .map(|(rng, memory)| Turn {
                        history: &[],
                        observation: &observation,
                        legal: &legal,
                        experience: None,
                        rng,
                        memory,
                    })
                    .collect();
                policy.act(&mut turns, 1.0).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, llm_policy);
criterion_main!(benches);
