//! The burn MLP policy: an [`Encoder`]'s planes → two hidden ReLU layers →
//! one logit per action of the environment's choice space.
//!
//! [`PolicyNetConfig`] holds the hyper-parameters; the encoder (which an
//! environment provides) fixes the input width and the action space, and an
//! optional [`Guide`] applies an experience to the output while a branch is
//! sampled. It runs on burn's pure-Rust CPU backend (flex) by default, on a
//! GPU through Vulkan with the `vulkan` feature, and on CUDA with `cuda`.
//! Checkpoints are byte buffers (burnpack) plus the JSON config; the store
//! keeps them, this module only encodes and decodes them.

use burn::module::Module;
use burn::module::Param;
use burn::nn::{Linear, Relu};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::activation::log_softmax;
use rand::{Rng, SeedableRng};

use std::sync::Arc;

use super::{Decision, Encoder, Guide, Policy, PolicyError, Result, Turn, sample};

/// The device burn computes on: CUDA GPU 0 with the `cuda` feature; else,
/// with the `vulkan` feature, the Vulkan adapter wgpu ranks first (a discrete
/// GPU before an integrated one, before a software rasteriser;
/// `CUBECL_WGPU_DEFAULT_DEVICE` picks another); else the pure-Rust CPU
/// backend.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(all(feature = "vulkan", not(feature = "cuda")))]
    {
        Device::vulkan(burn::tensor::DeviceKind::DefaultDevice)
    }
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    {
        Device::flex()
    }
}

/// Hyper-parameters and shape of the policy network.
///
/// `board` and `hidden` are the hyper-parameters a config file sets; the
/// input and output shape (`encoder`, `channels`, `actions`) come from the
/// environment's [`Encoder`] when a network is made
/// ([`PolicyNetConfig::for_encoder`]) and are recorded with its checkpoint.
/// Their defaults are Sokoban's, and they are left out of the serialized form
/// while they have them, so configs and checkpoints written before they
/// existed read as Sokoban's and Sokoban's read as before.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyNetConfig {
    /// Side of the square the encoder's planes are padded to (the largest
    /// board the policy can play; 1 for a flat encoding).
    #[serde(default = "default_board")]
    pub board: usize,
    /// Width of the two hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// The encoder's name ([`Encoder::name`]).
    #[serde(
        default = "default_encoder",
        skip_serializing_if = "is_default_encoder"
    )]
    pub encoder: String,
    /// Channels of the encoding ([`Encoder::channels`]).
    #[serde(
        default = "default_channels",
        skip_serializing_if = "is_default_channels"
    )]
    pub channels: usize,
    /// Actions of the output head (the environment's choice space).
    #[serde(
        default = "default_actions",
        skip_serializing_if = "is_default_actions"
    )]
    pub actions: usize,
}

fn default_board() -> usize {
    10
}
fn default_hidden() -> usize {
    256
}
fn default_encoder() -> String {
    "sokoban-planes".into()
}
fn default_channels() -> usize {
    7
}
fn default_actions() -> usize {
    4
}
fn is_default_encoder(v: &str) -> bool {
    v == default_encoder()
}
fn is_default_channels(v: &usize) -> bool {
    *v == default_channels()
}
fn is_default_actions(v: &usize) -> bool {
    *v == default_actions()
}

impl Default for PolicyNetConfig {
    fn default() -> Self {
        PolicyNetConfig::new()
    }
}

impl PolicyNetConfig {
    /// The default network (board 10, hidden 256, Sokoban's shape).
    pub fn new() -> PolicyNetConfig {
        PolicyNetConfig {
            board: default_board(),
            hidden: default_hidden(),
            encoder: default_encoder(),
            channels: default_channels(),
            actions: default_actions(),
        }
    }

    /// With this board size.
    pub fn with_board(mut self, board: usize) -> PolicyNetConfig {
        self.board = board;
        self
    }

    /// With this hidden width.
    pub fn with_hidden(mut self, hidden: usize) -> PolicyNetConfig {
        self.hidden = hidden;
        self
    }

    /// A config for `encoder` at this board size and width.
    pub fn for_encoder(encoder: &dyn Encoder, board: usize, hidden: usize) -> PolicyNetConfig {
        PolicyNetConfig {
            board,
            hidden,
            encoder: encoder.name().to_string(),
            channels: encoder.channels(),
            actions: encoder.action_space().len(),
        }
    }

    /// Inputs per sample: channels × board × board.
    pub fn input_size(&self) -> usize {
        self.channels * self.board * self.board
    }

    /// Checks that `encoder` produces this network's input and output.
    ///
    /// # Errors
    /// [`PolicyError::Mismatch`] naming what differs.
    pub fn check(&self, encoder: &dyn Encoder) -> Result<()> {
        let actions = encoder.action_space().len();
        if encoder.name() != self.encoder
            || encoder.channels() != self.channels
            || actions != self.actions
        {
            return Err(PolicyError::Mismatch {
                policy: self.encoder.clone(),
                message: format!(
                    "the network reads `{}` ({} channels, {} actions) but the environment's encoder is `{}` ({} channels, {} actions)",
                    self.encoder,
                    self.channels,
                    self.actions,
                    encoder.name(),
                    encoder.channels(),
                    actions
                ),
            });
        }
        Ok(())
    }

    /// A freshly initialised network (initialisation seeded by `seed`).
    ///
    /// The weights are drawn from our own seeded generator, not the backend's
    /// global one, so two initialisations with the same seed are identical
    /// whatever else runs in the process at the same time.
    pub fn init(&self, device: &Device, seed: u64) -> PolicyNet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        PolicyNet {
            hidden1: seeded_linear(self.input_size(), self.hidden, &mut rng, device),
            hidden2: seeded_linear(self.hidden, self.hidden, &mut rng, device),
            head: seeded_linear(self.hidden, self.actions, &mut rng, device),
            activation: Relu::new(),
        }
    }
}

/// A linear layer initialised like burn's default (Kaiming-uniform with gain
/// 1/sqrt(3), i.e. weights and bias uniform in ±1/sqrt(fan_in)), drawn from
/// `rng`.
pub(crate) fn seeded_linear(
    d_input: usize,
    d_output: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &Device,
) -> Linear {
    let bound = 1.0 / (d_input as f32).sqrt();
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
    let weight = draw(d_input * d_output);
    let bias = draw(d_output);
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(weight, [d_input, d_output]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(bias, [d_output]),
            device,
        ))),
    }
}

/// The network: input planes → 2 hidden ReLU layers → action logits.
#[derive(Module, Debug)]
pub struct PolicyNet {
    hidden1: Linear,
    hidden2: Linear,
    head: Linear,
    activation: Relu,
}

impl PolicyNet {
    /// Action logits, the first layer as a matrix product.
    ///
    /// # Shapes
    /// - `input`: `[batch, C * board * board]`
    /// - output: `[batch, actions]`
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        self.rest(self.hidden1.forward(input))
    }

    /// Action logits for one-hot inputs given by their active positions:
    /// the first layer's product with a 0/1 vector is the sum of the weight
    /// rows at its ones, so it is taken as a gather of those rows (and its
    /// gradient, through autodiff, as a scatter-add into them). The same
    /// numbers as [`PolicyNet::forward`] on the planes, added in another
    /// order.
    ///
    /// # Shapes
    /// - `active`: `[batch, k]`, the indices of each row's `k` ones
    /// - output: `[batch, actions]`
    pub fn forward_one_hot(&self, active: Tensor<2, Int>) -> Tensor<2> {
        let [batch, k] = active.dims();
        let weight = self.hidden1.weight.val();
        let hidden = weight.dims()[1];
        let rows = weight.select(0, active.reshape([batch * k]));
        let mut x = rows
            .reshape([batch, k, hidden])
            .sum_dim(1)
            .reshape([batch, hidden]);
        if let Some(bias) = &self.hidden1.bias {
            x = x + bias.val().unsqueeze::<2>();
        }
        self.rest(x)
    }

    /// Action logits for encoded planes (`[batch, width]` row-major), the
    /// first layer as a matrix product: what evaluation, exploration,
    /// distillation and GRPO run.
    ///
    /// The gather ([`PolicyNet::forward_one_hot`]) gives the same numbers
    /// added in another order, but on burn's CPU backend it is the slower
    /// one (`benches/first_layer.rs`, Sokoban's 700-wide planes with 100
    /// ones, batches of 256, dev build: a forward pass 2.9 ms against 1.7 ms
    /// as a product, a training step 13.7 ms against 5.4 ms), so it is not
    /// used.
    pub fn forward_planes(&self, planes: &[f32], batch: usize, device: &Device) -> Tensor<2> {
        let width = planes.len() / batch.max(1);
        self.forward(Tensor::<2>::from_data(
            TensorData::new(planes.to_vec(), [batch, width]),
            device,
        ))
    }

    /// Everything after the first layer's pre-activation.
    fn rest(&self, first: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(first);
        let x = self.activation.forward(self.hidden2.forward(x));
        self.head.forward(x)
    }
}

/// The positions of the ones of a batch of one-hot rows (`batch` rows of
/// `width` values), row after row, into `out`; returns how many each row
/// has. None (and the product is used) unless every value is 0 or 1 and
/// every row has the same number of ones, at most a quarter of its width
/// (beyond that a gather saves little). Sokoban's planes have one channel
/// set per cell: 100 ones in 700 values.
pub fn one_hot_positions(
    planes: &[f32],
    batch: usize,
    width: usize,
    out: &mut Vec<i32>,
) -> Option<usize> {
    out.clear();
    if batch == 0 || width == 0 || planes.len() != batch * width || width > i32::MAX as usize {
        return None;
    }
    let mut k = None;
    for row in planes.chunks_exact(width) {
        let start = out.len();
        for (i, &v) in row.iter().enumerate() {
            if v == 1.0 {
                out.push(i as i32);
            } else if v != 0.0 {
                return None;
            }
        }
        let n = out.len() - start;
        if n == 0 || n > width / 4 || k.is_some_and(|k| k != n) {
            return None;
        }
        k = Some(n);
    }
    k
}

/// The neural policy used for inference (no autodiff).
#[derive(Clone)]
pub struct NeuralPolicy {
    name: String,
    config: PolicyNetConfig,
    net: PolicyNet,
    device: Device,
    encoder: Arc<dyn Encoder>,
    guide: Option<Arc<dyn Guide>>,
}

impl std::fmt::Debug for NeuralPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeuralPolicy")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("guided", &self.guide.is_some())
            .finish()
    }
}

impl NeuralPolicy {
    /// Wraps a network (moved off autodiff for inference) that reads
    /// `encoder`'s observations.
    ///
    /// # Errors
    /// [`PolicyError::Mismatch`] when the encoder does not fit the config.
    pub fn new(
        name: impl Into<String>,
        config: PolicyNetConfig,
        net: PolicyNet,
        encoder: Arc<dyn Encoder>,
    ) -> Result<NeuralPolicy> {
        config.check(encoder.as_ref())?;
        let net = net.valid();
        let device = net
            .devices()
            .first()
            .cloned()
            .unwrap_or_else(default_device);
        Ok(NeuralPolicy {
            name: name.into(),
            config,
            net,
            device,
            encoder,
            guide: None,
        })
    }

    /// A fresh, untrained policy.
    ///
    /// # Errors
    /// As [`NeuralPolicy::new`].
    pub fn untrained(
        name: impl Into<String>,
        config: PolicyNetConfig,
        encoder: Arc<dyn Encoder>,
        seed: u64,
    ) -> Result<NeuralPolicy> {
        let device = default_device();
        let net = config.init(&device, seed);
        NeuralPolicy::new(name, config, net, encoder)
    }

    /// Applies `guide` to the action distribution of turns that have an
    /// experience in context.
    pub fn with_guide(mut self, guide: Arc<dyn Guide>) -> NeuralPolicy {
        self.guide = Some(guide);
        self
    }

    /// The encoder of observations.
    pub fn encoder(&self) -> &Arc<dyn Encoder> {
        &self.encoder
    }

    /// Encodes observations as `[batch, channels, board, board]` into `out`.
    ///
    /// # Errors
    /// [`PolicyError::Input`] when one does not fit.
    pub fn encode_batch<'a>(
        &self,
        observations: impl IntoIterator<Item = &'a crate::env::Observation>,
        out: &mut Vec<f32>,
    ) -> Result<usize> {
        let width = self.config.input_size();
        out.clear();
        let mut n = 0;
        for o in observations {
            let start = out.len();
            out.resize(start + width, 0.0);
            self.encoder
                .encode(o, self.config.board, &mut out[start..])?;
            n += 1;
        }
        Ok(n)
    }

    /// The network's hyper-parameters.
    pub fn config(&self) -> &PolicyNetConfig {
        &self.config
    }

    /// The network.
    pub fn net(&self) -> &PolicyNet {
        &self.net
    }

    /// Renames the policy (a checkpoint is named where it is saved).
    pub fn with_name(mut self, name: impl Into<String>) -> NeuralPolicy {
        self.name = name.into();
        self
    }

    /// Encodes the weights as a burnpack byte buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes =
            self.net
                .clone()
                .into_record()
                .into_bytes()
                .map_err(|e| PolicyError::Checkpoint {
                    name: self.name.clone(),
                    message: e.to_string(),
                })?;
        Ok(bytes.to_vec())
    }

    /// Decodes weights written by [`NeuralPolicy::to_bytes`] for a network of
    /// the given config.
    pub fn from_bytes(
        name: &str,
        config: PolicyNetConfig,
        encoder: Arc<dyn Encoder>,
        bytes: Vec<u8>,
    ) -> Result<NeuralPolicy> {
        let bad = |message: String| PolicyError::Checkpoint {
            name: name.to_string(),
            message,
        };
        let device = default_device();
        let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| bad(e.to_string()))?;
        let net = config.init(&device, 0).load_record(record);
        NeuralPolicy::new(name, config, net, encoder)
    }
}

impl NeuralPolicy {
    /// Log-probabilities of the actions, `[batch, actions]` row-major, for
    /// encoded observations laid out as `[batch, channels, board, board]`.
    ///
    /// # Errors
    /// [`PolicyError::Input`] when `planes` has the wrong length.
    pub fn log_probs(&self, planes: &[f32], batch: usize) -> Result<Vec<f32>> {
        let width = self.config.input_size();
        if planes.len() != batch * width {
            return Err(PolicyError::Input {
                message: format!("{} values for a batch of {batch} × {width}", planes.len()),
            });
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        let out = log_softmax(self.net.forward_planes(planes, batch, &self.device), 1);
        out.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| PolicyError::Input {
                message: format!("{e:?}"),
            })
    }
}

impl Policy for NeuralPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    /// The network sees the observation only; a guide reads the history.
    fn reads_history(&self) -> bool {
        self.guide.is_some()
    }

    /// One batched forward pass; then per turn: the guide (if the turn has
    /// an experience), illegal actions masked, a sample from the turn's
    /// stream.
    fn act(&self, turns: &mut [Turn<'_>], temperature: f32) -> Result<Vec<Decision>> {
        thread_local! {
            // The encoded batch, reused across calls: a fresh multi-MiB
            // buffer per step costs a page-faulting allocation each time.
            static PLANES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let lp = PLANES.with(|planes| {
            let mut planes = planes.borrow_mut();
            self.encode_batch(turns.iter().map(|t| t.observation), &mut planes)?;
            self.log_probs(&planes, turns.len())
        })?;
        let space = self.encoder.action_space();
        let names = space.names();
        let n = self.config.actions;
        let mut out = Vec::with_capacity(turns.len());
        for (i, turn) in turns.iter_mut().enumerate() {
            let mut logits = lp[i * n..(i + 1) * n].to_vec();
            if let (Some(guide), Some(exp)) = (&self.guide, turn.experience) {
                guide.adjust(turn, exp, space, &mut logits);
            }
            // Mask what the environment does not allow now (nothing, where
            // every action is always legal).
            if turn.legal.len() != n {
                for (a, l) in logits.iter_mut().enumerate() {
                    if !turn.legal.iter().any(|x| x == &names[a]) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let (a, log_prob) = sample(&logits, temperature, turn.rng);
            out.push(Decision {
                action: names[a].clone(),
                index: Some(a),
                log_prob,
                call: None,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
