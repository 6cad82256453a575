//! The policy network's first layer on one-hot planes: as a matrix product
//! and as a gather of weight rows (the same numbers, added in another order).
//!
//! Run: `cargo bench --bench first_layer` (release), or with `--profile dev`
//! for the build README's commands use. Sokoban's default shape: 7 × 10 × 10
//! planes (one channel set per cell: 100 ones in 700 values), two hidden
//! layers of 256, 4 actions, batches of 256 (training's minibatch). Groups:
//! - `forward/<how>`: logits of a batch (evaluation and exploration);
//! - `train_step/<how>`: forward, cross-entropy, backward and an Adam step
//!   (training).
//!
//! Throughput in samples.

use std::time::Duration;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leafe::policy::neural::{PolicyNetConfig, default_device, one_hot_positions};
use rand::{Rng, SeedableRng};

const BATCH: usize = 256;

fn planes(config: &PolicyNetConfig, batch: usize) -> Vec<f32> {
    let cells = config.board * config.board;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut out = vec![0.0f32; batch * config.input_size()];
    for b in 0..batch {
        for c in 0..cells {
            let ch = rng.random_range(0..config.channels);
            out[b * config.input_size() + ch * cells + c] = 1.0;
        }
    }
    out
}

fn first_layer(c: &mut Criterion) {
    let config = PolicyNetConfig::new();
    let width = config.input_size();
    let xs = planes(&config, BATCH);
    let mut active = Vec::new();
    let k = one_hot_positions(&xs, BATCH, width, &mut active).expect("one-hot planes");

    let device = default_device();
    let net = config.init(&device, 0);
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(BATCH as u64))
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    g.bench_function("product", |b| {
        b.iter(|| {
            let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [BATCH, width]), &device);
            net.forward(x).into_data()
        })
    });
    g.bench_function("gather", |b| {
        b.iter(|| {
            let idx =
                Tensor::<2, Int>::from_data(TensorData::new(active.clone(), [BATCH, k]), &device);
            net.forward_one_hot(idx).into_data()
        })
    });
    g.finish();

    let ad = default_device().autodiff();
    let targets: Vec<i32> = (0..BATCH as i32).map(|i| i % 4).collect();
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(BATCH as u64))
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for gather in [false, true] {
        let mut net = Some(config.init(&ad, 0));
        let mut optim = AdamConfig::new().init();
        g.bench_function(if gather { "gather" } else { "product" }, |b| {
            b.iter(|| {
                let n = net.take().unwrap();
                let y =
                    Tensor::<2, Int>::from_data(TensorData::new(targets.clone(), [BATCH, 1]), &ad);
                let logits = if gather {
                    let idx = Tensor::<2, Int>::from_data(
                        TensorData::new(active.clone(), [BATCH, k]),
                        &ad,
                    );
                    n.forward_one_hot(idx)
                } else {
                    n.forward(Tensor::<2>::from_data(
                        TensorData::new(xs.clone(), [BATCH, width]),
                        &ad,
                    ))
                };
                let loss = log_softmax(logits, 1).gather(1, y).mean().neg();
                let grads = GradientsParams::from_grads(loss.backward(), &n);
                net = Some(optim.step(1e-3, n, grads));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, first_layer);
criterion_main!(benches);
