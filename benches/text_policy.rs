//! The text policy next to the MLP: decisions per second when acting and
//! samples per second when training, each at the batch size the jobs use.
//!
//! Run: `cargo bench --profile dev --bench text_policy` (the build README's
//! commands use), or without `--profile dev` for release. The text inputs
//! are shaped like TextWorld's (a 60-word observation, a 60-word first
//! observation, four recent steps, 12 legal actions of 3–5 words); the MLP's
//! are Sokoban's 7 × 10 × 10 one-hot planes. Groups:
//! - `act/<policy>`: one batched decision for 64 turns (what exploration
//!   and evaluation do per step), throughput in decisions;
//! - `train_step/<policy>`: forward, loss, backward and an Adam step on a
//!   minibatch (text 32, the MLP 256: each one's default), throughput in
//!   samples.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::policy::neural::PolicyNetConfig;
use leafe::policy::text::{TextInput, TextNetConfig, TextPolicy, Vocab, text_input};
use leafe::train::text::TextStepper;
use leafe::train::{FitConfig, Stepper};
use rand::{Rng, SeedableRng};

const WORDS: [&str; 40] = [
    "you", "are", "in", "a", "kitchen", "there", "is", "table", "on", "the", "key", "door",
    "north", "south", "east", "west", "take", "open", "close", "go", "put", "into", "chest", "red",
    "blue", "green", "apple", "knife", "box", "shelf", "lamp", "bed", "room", "small", "large",
    "wooden", "iron", "to", "from", "insert",
];

fn text(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn inputs(policy: &TextPolicy, n: usize) -> Vec<TextInput> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    (0..n)
        .map(|_| {
            let legal: Vec<String> = (0..12)
                .map(|_| {
                    let k = rng.random_range(3..6);
                    text(&mut rng, k)
                })
                .collect();
            let (first, recent, obs) = (text(&mut rng, 60), text(&mut rng, 40), text(&mut rng, 60));
            text_input(
                policy.vocab(),
                policy.config(),
                &first,
                &recent,
                &obs,
                &legal,
            )
            .unwrap()
        })
        .collect()
}

fn policies(c: &mut Criterion) {
    let vocab = Vocab::learn(WORDS.iter().copied().chain(WORDS.iter().copied()), 100, 1).unwrap();
    let text_policy =
        TextPolicy::untrained("text", TextNetConfig::default(), Arc::new(vocab), 0).unwrap();
    let acting = inputs(&text_policy, 64);
    let refs: Vec<&TextInput> = acting.iter().collect();

    let mlp = PolicyNetConfig::new();
    let width = mlp.input_size();
    let planes = |n: usize| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let cells = mlp.board * mlp.board;
        let mut out = vec![0.0f32; n * width];
        for b in 0..n {
            for cell in 0..cells {
                out[b * width + rng.random_range(0..mlp.channels) * cells + cell] = 1.0;
            }
        }
        out
    };
    let encoder: Arc<dyn leafe::policy::Encoder> = Arc::new(leafe::worlds::sokoban::SokobanPlanes);
    let neural = leafe::policy::NeuralPolicy::untrained("mlp", mlp.clone(), encoder, 0).unwrap();
    let acting_planes = planes(64);

    let mut g = c.benchmark_group("act");
    g.throughput(Throughput::Elements(64))
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    g.bench_function("text", |b| b.iter(|| text_policy.log_probs(&refs).unwrap()));
    g.bench_function("mlp", |b| {
        b.iter(|| neural.log_probs(&acting_planes, 64).unwrap())
    });
    g.finish();

    let fit = FitConfig::default();
    let training = inputs(&text_policy, 32);
    let trefs: Vec<&TextInput> = training.iter().collect();
    let chosen: Vec<usize> = (0..32).map(|i| i % 12).collect();
    let mut g = c.benchmark_group("train_step");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(32));
    let mut stepper = TextStepper::new(&text_policy, &fit);
    g.bench_function("text", |b| {
        b.iter(|| stepper.step(&trefs, &chosen, &[1.0; 32]).unwrap())
    });
    g.throughput(Throughput::Elements(256));
    let xs = planes(256);
    let ys: Vec<i32> = (0..256).map(|i| i % 4).collect();
    let mut stepper = Stepper::new(mlp.init(&leafe::policy::default_device(), 0), &mlp, &fit);
    g.bench_function("mlp", |b| {
        b.iter(|| stepper.step(&xs, &ys, &[1.0; 256]).unwrap())
    });
    g.finish();
}

criterion_group!(benches, policies);
criterion_main!(benches);
