//! The text policy's vocabulary: a word-level tokenizer (Hugging Face's
//! `tokenizers`) learned from the environment's own text, lower-cased and
//! split into words and punctuation, kept with the checkpoint as the
//! tokenizer's JSON.

use tokenizers::models::wordlevel::{WordLevel, WordLevelTrainer};
use tokenizers::normalizers::Lowercase;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, Tokenizer};

use super::super::{PolicyError, Result};

/// Id of the padding token (never a word).
pub const PAD: u32 = 0;
/// Id of words the vocabulary does not know.
pub const UNK: u32 = 1;
const SPECIAL: [&str; 2] = ["[PAD]", "[UNK]"];

/// A word-level vocabulary.
#[derive(Clone)]
pub struct Vocab {
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Vocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocab").field("size", &self.len()).finish()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Input {
        message: format!("vocabulary: {what}: {e}"),
    }
}

fn blank() -> Result<Tokenizer> {
    let model = WordLevel::builder()
        .unk_token(SPECIAL[1].into())
        .build()
        .map_err(|e| err("model", e))?;
    let mut t = Tokenizer::new(model);
    t.with_normalizer(Some(Lowercase));
    t.with_pre_tokenizer(Some(Whitespace {}));
    Ok(t)
}

impl Vocab {
    /// Learns the words of `texts` seen at least `min_count` times, the most
    /// frequent first, at most `max_size` entries (the two special tokens
    /// included).
    ///
    /// # Errors
    /// [`PolicyError::Input`] if the tokenizer cannot be trained.
    pub fn learn<'a>(
        texts: impl Iterator<Item = &'a str> + Send,
        max_size: usize,
        min_count: u64,
    ) -> Result<Vocab> {
        let mut tokenizer = blank()?;
        let trainer = WordLevelTrainer::builder()
            .vocab_size(max_size.max(SPECIAL.len()))
            .min_frequency(min_count)
            .show_progress(false)
            .special_tokens(
                SPECIAL
                    .iter()
                    .map(|s| AddedToken::from(s.to_string(), true))
                    .collect(),
            )
            .build()
            .map_err(|e| err("trainer", e))?;
        let mut trainer = tokenizers::models::TrainerWrapper::from(trainer);
        tokenizer
            .train(&mut trainer, texts)
            .map_err(|e| err("training", e))?;
        let vocab = Vocab { tokenizer };
        if vocab.tokenizer.token_to_id(SPECIAL[0]) != Some(PAD)
            || vocab.tokenizer.token_to_id(SPECIAL[1]) != Some(UNK)
        {
            return Err(err("training", "special tokens did not get ids 0 and 1"));
        }
        Ok(vocab)
    }

    /// Entries, the special tokens included.
    pub fn len(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Whether it holds only the special tokens.
    pub fn is_empty(&self) -> bool {
        self.len() <= SPECIAL.len()
    }

    /// Appends the ids of `text`'s words to `out`, at most `limit` of them
    /// (the first ones).
    ///
    /// # Errors
    /// [`PolicyError::Input`] if the tokenizer fails on the text.
    pub fn encode_into(&self, text: &str, limit: usize, out: &mut Vec<u32>) -> Result<()> {
        let enc = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(|e| err("encoding", e))?;
        let ids = enc.get_ids();
        out.extend_from_slice(&ids[..ids.len().min(limit)]);
        Ok(())
    }

    /// The ids of `text`'s words, at most `limit`.
    ///
    /// # Errors
    /// As [`Vocab::encode_into`].
    pub fn encode(&self, text: &str, limit: usize) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.encode_into(text, limit, &mut out)?;
        Ok(out)
    }

    /// The tokenizer as JSON (what a checkpoint keeps).
    pub fn to_json(&self) -> Result<String> {
        self.tokenizer
            .to_string(false)
            .map_err(|e| err("serialising", e))
    }

    /// Reads a vocabulary written by [`Vocab::to_json`].
    ///
    /// # Errors
    /// [`PolicyError::Checkpoint`] for JSON that is not one.
    pub fn from_json(json: &str) -> Result<Vocab> {
        let tokenizer: Tokenizer = json.parse().map_err(|e| PolicyError::Checkpoint {
            name: "vocab.json".into(),
            message: format!("{e}"),
        })?;
        Ok(Vocab { tokenizer })
    }
}
