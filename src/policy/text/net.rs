//! The text policy's network: DRRN-style scoring of a context against each
//! legal action.
//!
//! Three bags of words make the context: the episode's first observation
//! (where a text world states the task), the recent steps (action and
//! feedback) and the current observation; each is a masked mean of word
//! embeddings, and the three go through a ReLU layer. Each legal action is a
//! bag of its words through another. The score of an action is a small MLP
//! over the context, the action and their elementwise product; the policy
//! is the softmax of the scores over the legal actions of its turn.

use burn::module::{Module, Param};
use burn::nn::{Linear, Relu};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use rand::{Rng, SeedableRng};

use super::vocab::PAD;
use crate::policy::neural::seeded_linear;

/// Shape and hyper-parameters of the text network.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextNetConfig {
    /// Words in the vocabulary (the special tokens included); set when the
    /// vocabulary is learned (a value in a config file is replaced).
    pub vocab: usize,
    /// Width of a word embedding.
    pub embed: usize,
    /// Width of the hidden layers.
    pub hidden: usize,
    /// Recent steps (action and feedback) in the context.
    pub history: usize,
    /// Words kept of each of the three context bags.
    pub max_words: usize,
    /// Words kept of an action.
    pub max_action_words: usize,
}

impl Default for TextNetConfig {
    fn default() -> Self {
        TextNetConfig {
            vocab: 0,
            embed: 64,
            hidden: 128,
            history: 4,
            max_words: 160,
            max_action_words: 12,
        }
    }
}

impl TextNetConfig {
    /// A freshly initialised network, seeded by `seed` alone.
    pub fn init(&self, device: &Device, seed: u64) -> TextNet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (d, h) = (self.embed, self.hidden);
        // Unit-variance word vectors (burn's default for embeddings is
        // N(0, 1)): a mean over a bag of words must still carry a signal.
        let bound = 3f32.sqrt();
        let weights: Vec<f32> = (0..self.vocab.max(2) * d)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        TextNet {
            embed: Param::from_tensor(Tensor::from_data(
                TensorData::new(weights, [self.vocab.max(2), d]),
                device,
            )),
            context: seeded_linear(3 * d, h, &mut rng, device),
            action: seeded_linear(d, h, &mut rng, device),
            joint: seeded_linear(3 * h, h, &mut rng, device),
            head: seeded_linear(h, 1, &mut rng, device),
            activation: Relu::new(),
        }
    }
}

/// One decision as the network reads it: word ids of the three context
/// bags and of each legal action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextInput {
    /// The episode's first observation.
    pub task: Vec<u32>,
    /// The recent steps, oldest first.
    pub recent: Vec<u32>,
    /// The current observation.
    pub observation: Vec<u32>,
    /// Each legal action.
    pub actions: Vec<Vec<u32>>,
}

/// Padded bags of word ids: `rows` rows of `width` ids, PAD after each
/// row's words.
struct Bags {
    ids: Vec<i32>,
    mask: Vec<f32>,
    lens: Vec<f32>,
    rows: usize,
    width: usize,
}

impl Bags {
    fn new<'a>(rows: impl ExactSizeIterator<Item = &'a [u32]> + Clone) -> Bags {
        let n = rows.len();
        let width = rows.clone().map(<[u32]>::len).max().unwrap_or(0).max(1);
        let mut ids = vec![PAD as i32; n * width];
        let mut mask = vec![0.0; n * width];
        let mut lens = Vec::with_capacity(n);
        for (r, words) in rows.enumerate() {
            for (i, &w) in words.iter().enumerate() {
                ids[r * width + i] = w as i32;
                mask[r * width + i] = 1.0;
            }
            lens.push(words.len().max(1) as f32);
        }
        Bags {
            ids,
            mask,
            lens,
            rows: n,
            width,
        }
    }
}

/// The network.
#[derive(Module, Debug)]
pub struct TextNet {
    embed: Param<Tensor<2>>,
    context: Linear,
    action: Linear,
    joint: Linear,
    head: Linear,
    activation: Relu,
}

/// A batch laid out for the network: which turn each action belongs to.
pub struct Layout {
    /// Turn of each action, in order.
    pub owner: Vec<usize>,
    /// Actions of each turn.
    pub counts: Vec<usize>,
}

impl Layout {
    /// The layout of `inputs`.
    pub fn of(inputs: &[&TextInput]) -> Layout {
        let counts: Vec<usize> = inputs.iter().map(|i| i.actions.len()).collect();
        let owner = counts
            .iter()
            .enumerate()
            .flat_map(|(t, &c)| std::iter::repeat_n(t, c))
            .collect();
        Layout { owner, counts }
    }
}

impl TextNet {
    /// Masked mean of the embeddings of each bag: `[rows, embed]`.
    fn pool(&self, bags: &Bags, device: &Device) -> Tensor<2> {
        let weight = self.embed.val();
        let d = weight.dims()[1];
        let (n, w) = (bags.rows, bags.width);
        let ids = Tensor::<1, Int>::from_data(TensorData::new(bags.ids.clone(), [n * w]), device);
        let mask = Tensor::<3>::from_data(TensorData::new(bags.mask.clone(), [n, w, 1]), device);
        let lens = Tensor::<2>::from_data(TensorData::new(bags.lens.clone(), [n, 1]), device);
        let rows = weight.select(0, ids).reshape([n, w, d]) * mask;
        rows.sum_dim(1).reshape([n, d]) / lens
    }

    /// The score of every legal action of every input, in order: `[actions]`.
    pub fn scores(&self, inputs: &[&TextInput], layout: &Layout, device: &Device) -> Tensor<1> {
        let b = inputs.len();
        let task = self.pool(&Bags::new(inputs.iter().map(|i| &i.task[..])), device);
        let recent = self.pool(&Bags::new(inputs.iter().map(|i| &i.recent[..])), device);
        let obs = self.pool(
            &Bags::new(inputs.iter().map(|i| &i.observation[..])),
            device,
        );
        let context = self.activation.forward(
            self.context
                .forward(Tensor::cat(vec![task, recent, obs], 1)),
        );
        let actions: Vec<&[u32]> = inputs
            .iter()
            .flat_map(|i| i.actions.iter().map(Vec::as_slice))
            .collect();
        let n = actions.len();
        let action = self.activation.forward(
            self.action
                .forward(self.pool(&Bags::new(actions.iter().copied()), device)),
        );
        let owner = Tensor::<1, Int>::from_data(
            TensorData::new(
                layout.owner.iter().map(|&o| o as i32).collect::<Vec<_>>(),
                [n],
            ),
            device,
        );
        debug_assert_eq!(layout.counts.len(), b);
        let context = context.select(0, owner);
        let joint = Tensor::cat(vec![context.clone(), action.clone(), context * action], 1);
        let hidden = self.activation.forward(self.joint.forward(joint));
        self.head.forward(hidden).reshape([n])
    }

    /// Log-probability of the chosen action of each input under the softmax
    /// over its legal actions: `[batch]`. Gradients reach only the chosen
    /// action's log-probability (and, through the softmax's normaliser, the
    /// other legal actions' scores).
    pub fn chosen_log_probs(
        &self,
        inputs: &[&TextInput],
        chosen: &[usize],
        device: &Device,
    ) -> Tensor<1> {
        let layout = Layout::of(inputs);
        let b = inputs.len();
        let n = layout.owner.len();
        let c = layout.counts.iter().copied().max().unwrap_or(1).max(1);
        let scores = self.scores(inputs, &layout, device);
        // [batch, c]: each turn's scores, padded with a score of -1e9 (index n).
        let mut index = Vec::with_capacity(b * c);
        let mut start = 0;
        for &k in &layout.counts {
            index.extend((start..start + k).map(|i| i as i32));
            index.extend(std::iter::repeat_n(n as i32, c - k));
            start += k;
        }
        let padded = Tensor::cat(
            vec![
                scores,
                Tensor::<1>::from_data(TensorData::new(vec![-1e9f32], [1]), device),
            ],
            0,
        )
        .select(
            0,
            Tensor::<1, Int>::from_data(TensorData::new(index, [b * c]), device),
        )
        .reshape([b, c]);
        let chosen = Tensor::<2, Int>::from_data(
            TensorData::new(chosen.iter().map(|&a| a as i32).collect::<Vec<_>>(), [b, 1]),
            device,
        );
        log_softmax(padded, 1).gather(1, chosen).reshape([b])
    }
}
