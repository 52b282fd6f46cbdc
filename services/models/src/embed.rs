//! The sentence embedder: a BERT encoder (all-MiniLM-L6-v2 and its kin) on the CPU, mean-pooled
//! over the attention mask and L2-normalised, as sentence-transformers does. Two backends: our
//! own (candle tensors and fused kernels, from safetensors; the default, with f32 or int8 linear
//! layers) and ONNX Runtime through fastembed (an ONNX export of the same model,
//! `--embedder onnx`).

mod bert;
pub(crate) mod int8;
pub(crate) mod kernels;
mod onnx;

pub use self::onnx::OnnxFiles;

use std::path::{Path, PathBuf};

use candle_transformers::models::bert::Config as BertConfig;
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use self::bert::{BertEncoder, Precision};
use self::onnx::{OnnxEncoder, ONNX_BATCH};
use crate::error::{Error, Result};

/// Sequence length used when the folder has no `sentence_bert_config.json`: the value
/// sentence-transformers ships for all-MiniLM-L6-v2.
const DEFAULT_MAX_TOKENS: usize = 256;

/// Tokens per forward pass (sequences are packed end to end, so there is no padding). Enough
/// rows for the matmuls to run at full speed, few enough for the activations to stay in cache;
/// measured on all-MiniLM-L6-v2, see `examples/embed_bench.rs`.
const TOKENS_PER_FORWARD: usize = 2048;

/// A sentence embedder loaded from a sentence-transformers folder.
///
/// It is `Send + Sync`: one instance can serve many threads. Each call already spreads its work
/// over every core (rayon's global pool), so concurrent calls gain little.
pub struct Embedder {
    encoder: Encoder,
    /// Truncates to `max_tokens` including `[CLS]` and `[SEP]`, no padding.
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for [`Embedder::count_tokens`].
    counting_tokenizer: Tokenizer,
    dim: usize,
    max_tokens: usize,
    model_name: String,
}

/// What computes the vectors.
enum Encoder {
    Native(BertEncoder, Precision),
    Onnx(Box<OnnxEncoder>),
}

/// The part of `sentence_bert_config.json` we use.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl Embedder {
    /// Loads the model in `dir`: `config.json`, `model.safetensors` and `tokenizer.json`, plus
    /// `sentence_bert_config.json` when present (for the sequence length).
    pub fn load(dir: &Path) -> Result<Embedder> {
        Self::load_native(dir, Precision::F32)
    }

    /// Loads the model in `dir` as [`Embedder::load`] does, with the linear layers' weights
    /// quantized to 8 bits at load (per output column) and their inputs per block of 32 values:
    /// faster where the CPU has AVX-VNNI, and not the same vectors as the f32 embedder's:
    /// [`Embedder::model_name`] says `int8:` and the model's folder.
    pub fn load_int8(dir: &Path) -> Result<Embedder> {
        Self::load_native(dir, Precision::Int8)
    }

    fn load_native(dir: &Path, precision: Precision) -> Result<Embedder> {
        let config_path = dir.join("config.json");
        let config: BertConfig = parse_json(&config_path)?;
        let max_tokens = max_tokens_of(dir, &config)?;

        let weights_path = dir.join("model.safetensors");
        let weights = read_file(&weights_path)?;
        let encoder = BertEncoder::load(&weights, &weights_path, &config, precision)?;
        drop(weights);
        let model_name = match precision {
            Precision::F32 => folder_name(dir),
            Precision::Int8 => format!("int8:{}", folder_name(dir)),
        };
        Self::with_encoder(
            dir,
            Encoder::Native(encoder, precision),
            &config,
            max_tokens,
            model_name,
        )
    }

    /// Loads the ONNX export `onnx.model` of the sentence-transformers model in `dir` (whose
    /// tokenizer and config it uses) to run with ONNX Runtime. Its vectors are another model's:
    /// [`Embedder::model_name`] says `onnx:` and the ONNX file's folder.
    pub fn load_onnx(dir: &Path, onnx: &OnnxFiles) -> Result<Embedder> {
        let config: BertConfig = parse_json(&dir.join("config.json"))?;
        let max_tokens = max_tokens_of(dir, &config)?;
        let encoder = Encoder::Onnx(Box::new(OnnxEncoder::load(dir, onnx, max_tokens)?));
        let model_folder = onnx.model.parent().map(folder_name).unwrap_or_default();
        Self::with_encoder(
            dir,
            encoder,
            &config,
            max_tokens,
            format!("onnx:{model_folder}"),
        )
    }

    fn with_encoder(
        dir: &Path,
        encoder: Encoder,
        config: &BertConfig,
        max_tokens: usize,
        model_name: String,
    ) -> Result<Embedder> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer_json = read_file(&tokenizer_path)?;
        let mut counting_tokenizer = Tokenizer::from_bytes(&tokenizer_json)
            .map_err(|err| model_file_error(&tokenizer_path, err))?;
        // tokenizer.json of all-MiniLM-L6-v2 pads and truncates to 128; sentence-transformers
        // ignores that and truncates to max_seq_length, and our batches need no padding.
        counting_tokenizer
            .with_truncation(None)
            .map_err(|err| model_file_error(&tokenizer_path, err))?;
        counting_tokenizer.with_padding(None);
        let mut tokenizer = counting_tokenizer.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|err| model_file_error(&tokenizer_path, err))?;

        Ok(Embedder {
            encoder,
            tokenizer,
            counting_tokenizer,
            dim: config.hidden_size,
            max_tokens,
            model_name,
        })
    }

    /// Returns the length of the embedding vectors (384 for all-MiniLM-L6-v2).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Returns the most tokens, `[CLS]` and `[SEP]` included, that the model reads of a text;
    /// the rest is ignored.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Returns the number of wordpiece tokens of `text`, without `[CLS]`/`[SEP]` and without
    /// truncation: a chunker keeps this at most `max_tokens() - 2` so nothing is cut off.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        let encoding = self
            .counting_tokenizer
            .encode(text, false)
            .map_err(|err| Error::Tokenizer(err.to_string()))?;
        Ok(encoding.len())
    }

    /// Returns one L2-normalised embedding per text, in the order of `texts`. Texts longer than
    /// [`Embedder::max_tokens`] are truncated; the empty text embeds `[CLS] [SEP]`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut token_ids = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding = self
                .tokenizer
                .encode(*text, true)
                .map_err(|err| Error::Tokenizer(err.to_string()))?;
            token_ids.push(encoding.get_ids().to_vec());
        }
        // Longest first: each forward pass then holds sequences of similar length, which keeps
        // the per-sequence attention work even across threads (and ONNX Runtime's padding short).
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&text_idx| std::cmp::Reverse(token_ids[text_idx].len()));

        let mut embeddings = vec![Vec::new(); texts.len()];
        let encoder = match &self.encoder {
            Encoder::Native(encoder, _) => encoder,
            Encoder::Onnx(encoder) => {
                for batch in order.chunks(ONNX_BATCH) {
                    let batch_texts: Vec<&str> =
                        batch.iter().map(|&text_idx| texts[text_idx]).collect();
                    for (&text_idx, embedding) in batch.iter().zip(encoder.embed(&batch_texts)?) {
                        embeddings[text_idx] = embedding;
                    }
                }
                return Ok(embeddings);
            }
        };
        let mut remaining = order.as_slice();
        while !remaining.is_empty() {
            let mut num_seqs = 0;
            let mut num_tokens = 0;
            for &text_idx in remaining {
                let seq_len = token_ids[text_idx].len();
                if num_seqs > 0 && num_tokens + seq_len > TOKENS_PER_FORWARD {
                    break;
                }
                num_seqs += 1;
                num_tokens += seq_len;
            }
            let (batch, rest) = remaining.split_at(num_seqs);
            remaining = rest;
            let batch_ids: Vec<&[u32]> = batch
                .iter()
                .map(|&text_idx| token_ids[text_idx].as_slice())
                .collect();
            for (&text_idx, embedding) in batch.iter().zip(self.embed_packed(encoder, &batch_ids)?)
            {
                embeddings[text_idx] = embedding;
            }
        }
        Ok(embeddings)
    }

    /// Returns which vectors this embedder makes, as recorded with them in a store: the model's
    /// folder name for the native backend (e.g. `all-MiniLM-L6-v2`; `int8:all-MiniLM-L6-v2` with
    /// int8 layers), `onnx:` and the ONNX file's folder for ONNX Runtime (e.g.
    /// `onnx:all-MiniLM-L6-v2-onnx-int8`). Vectors of two different names are never compared.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// Which backend computes the vectors: `native`, `native-int8` or `onnx`.
    pub fn backend(&self) -> &'static str {
        match self.encoder {
            Encoder::Native(_, Precision::F32) => "native",
            Encoder::Native(_, Precision::Int8) => "native-int8",
            Encoder::Onnx(_) => "onnx",
        }
    }

    /// Embeds token sequences (with `[CLS]`/`[SEP]`) in one forward pass.
    fn embed_packed(&self, encoder: &BertEncoder, batch_ids: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        let seq_lens: Vec<usize> = batch_ids.iter().map(|ids| ids.len()).collect();
        let token_ids = batch_ids.concat();
        let hidden = encoder.forward(&token_ids, &seq_lens)?;
        let mut rows = hidden.chunks_exact(self.dim);
        let mut embeddings = Vec::with_capacity(seq_lens.len());
        for &seq_len in &seq_lens {
            // Mean over the sequence's tokens ([CLS] and [SEP] included, as sentence-transformers'
            // Pooling does), then unit length.
            let mut embedding = vec![0.0_f32; self.dim];
            for row in rows.by_ref().take(seq_len) {
                for (sum, value) in embedding.iter_mut().zip(row) {
                    *sum += value;
                }
            }
            let norm = embedding
                .iter()
                .map(|value| value * value)
                .sum::<f32>()
                .sqrt();
            let scale = if norm > 1e-12 { 1.0 / norm } else { 0.0 };
            for value in &mut embedding {
                *value *= scale;
            }
            embeddings.push(embedding);
        }
        Ok(embeddings)
    }
}

fn max_tokens_of(dir: &Path, config: &BertConfig) -> Result<usize> {
    let sentence_config_path = dir.join("sentence_bert_config.json");
    let max_tokens = if sentence_config_path.is_file() {
        parse_json::<SentenceBertConfig>(&sentence_config_path)?.max_seq_length
    } else {
        DEFAULT_MAX_TOKENS
    };
    if max_tokens < 2 || max_tokens > config.max_position_embeddings {
        return Err(Error::ModelFile {
            path: sentence_config_path,
            reason: format!(
                "max_seq_length {max_tokens} is outside 2..={}",
                config.max_position_embeddings
            ),
        });
    }
    Ok(max_tokens)
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    serde_json::from_slice(&read_file(path)?).map_err(|err| model_file_error(path, err))
}

fn model_file_error(path: &Path, err: impl std::fmt::Display) -> Error {
    Error::ModelFile {
        path: PathBuf::from(path),
        reason: err.to_string(),
    }
}
