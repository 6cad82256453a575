//! The encoding for networks: a grid's text as one-hot planes.

use super::*;
use crate::env::{ActionSpace, EnvError, Observation, Result};
use crate::policy::{self, Encoder, PolicyError};

/// Encodes an observation text into one-hot planes `[C, board, board]` with
/// `C = CHANNELS.len() = 5`, row major, channels in the order of
/// [`CHANNELS`]. Every cell has exactly one channel set; padding cells
/// (outside the text) are walls; the text sits in the top-left corner.
///
/// # Errors
/// [`EnvError::Encoding`] when `out.len() != 5 * board * board`, the text
/// is larger than the padding, or it holds an unknown symbol.
pub fn encode_text_planes(text: &str, board: usize, out: &mut [f32]) -> Result<()> {
    let symbol = |c| match c {
        '#' => Some(0),
        ' ' | '_' => Some(1),
        '^' => Some(2),
        'G' => Some(3),
        '@' => Some(4),
        _ => None,
    };
    policy::encode_symbol_planes(text, CHANNELS.len(), symbol, board, board, out)
        .map_err(|message| EnvError::Encoding { message })
}

/// The gridworld's encoding for networks: the one-hot planes of
/// [`encode_text_planes`], read from the observation text (so the store's
/// `observation` column trains the same network that acted).
#[derive(Debug, Clone, Copy, Default)]
pub struct GridPlanes;

impl GridPlanes {
    /// The encoder's name, recorded in model manifests.
    pub const NAME: &'static str = "gridworld-planes";
}

impl Encoder for GridPlanes {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn action_space(&self) -> &ActionSpace {
        action_space()
    }

    fn channels(&self) -> usize {
        CHANNELS.len()
    }

    fn encode(
        &self,
        observation: &Observation,
        board: usize,
        out: &mut [f32],
    ) -> policy::Result<()> {
        encode_text_planes(&observation.text, board, out).map_err(|e| PolicyError::Input {
            message: e.to_string(),
        })
    }
}
