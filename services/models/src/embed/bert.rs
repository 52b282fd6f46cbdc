//! A BERT encoder for the CPU that runs a batch of sequences packed end to end, without padding.
//!
//! Why not `candle_transformers::models::bert::BertModel`: on a 2-core machine it embedded 1,000
//! SciFact abstracts at about 11 passages/s, less than half of ONNX Runtime. Three things cost:
//! padding (every sequence computed at the longest length of its batch), one memory pass per
//! elementwise op (bias, GELU, residual, mask, scale, softmax each read and write the whole
//! activation) and scalar `exp`/`erf` (a billion of each per thousand passages). Here the four
//! linear layers of each block run as single candle matmuls over all tokens of the batch
//! (padding never exists), attention runs per sequence (so no mask is needed), and each
//! elementwise stage is one fused, vectorisable pass in [`super::kernels`]. The arithmetic is the
//! same as BertModel's up to rounding: the tests compare with sentence-transformers' vectors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{Config as BertConfig, HiddenAct};
use rayon::prelude::*;

use super::int8::Int8Linear;
use super::kernels::{
    Activation, BiasActivation, BiasResidualLayerNorm, LayerNormParams, SoftmaxRows, SplitHeads,
};
use crate::error::{Error, Result};

/// Weights of a BERT encoder, ready for [`BertEncoder::forward`].
pub(crate) struct BertEncoder {
    /// `[vocab_size, hidden_size]`, row-major.
    word_embeddings: Vec<f32>,
    /// `[max_positions, hidden_size]`, row-major.
    position_embeddings: Vec<f32>,
    /// Token type 0: sentence embedding never uses a second segment.
    token_type_embedding: Vec<f32>,
    embeddings_norm: LayerNormParams,
    layers: Vec<EncoderLayer>,
    activation: Activation,
    hidden_size: usize,
    num_heads: usize,
    head_dim: usize,
}

/// How the linear layers' weights are held and multiplied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precision {
    /// f32, candle's matmul (gemm).
    F32,
    /// Weights quantized per column and inputs per block of 32 to 8 bits ([`Int8Linear`]).
    Int8,
}

/// A linear layer's weight; the bias is added by the fused op that follows.
enum Linear {
    /// Stored transposed (`[in, out]`) so the layer is a plain `x.matmul(w)`.
    F32(Tensor),
    Int8(Int8Linear),
}

impl Linear {
    /// From the weight as PyTorch stores it, `[out, in]`.
    fn new(weight: Tensor, precision: Precision, path: &Path) -> Result<Linear> {
        match precision {
            Precision::F32 => Ok(Linear::F32(weight.t()?.contiguous()?)),
            Precision::Int8 => {
                let (out_size, in_size) = weight.dims2()?;
                let values: Vec<f32> = weight.flatten_all()?.to_vec1()?;
                Int8Linear::new(&values, out_size, in_size)
                    .map(Linear::Int8)
                    .map_err(|reason| weights_error(path, reason))
            }
        }
    }

    fn forward(&self, input: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Linear::F32(weight) => input.matmul(weight)?,
            Linear::Int8(weight) => input.apply_op1_no_bwd(weight)?,
        })
    }
}

/// One transformer block.
struct EncoderLayer {
    /// Query, key and value side by side (`[hidden, 3 * hidden]`): one matmul instead of three.
    /// The query columns (and bias) are pre-multiplied by `1/sqrt(head_dim)`, which saves a pass
    /// over the attention scores (and is exact for the usual power-of-four head sizes).
    qkv_weight: Linear,
    qkv_bias: Vec<f32>,
    attention_output_weight: Linear,
    attention_output_bias: Vec<f32>,
    attention_norm: LayerNormParams,
    intermediate_weight: Linear,
    intermediate_bias: Vec<f32>,
    output_weight: Linear,
    output_bias: Vec<f32>,
    output_norm: LayerNormParams,
}

/// Tensors of a safetensors file by name, looked up with or without a `bert.` prefix.
struct Weights<'a> {
    tensors: HashMap<String, Tensor>,
    path: &'a Path,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| weights_error(self.path, format!("tensor {name} is missing")))?;
        if tensor.dims() != shape {
            return Err(weights_error(
                self.path,
                format!(
                    "tensor {name} has shape {:?}, config.json implies {shape:?}",
                    tensor.dims()
                ),
            ));
        }
        Ok(tensor.to_dtype(DType::F32)?)
    }

    fn vec(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.get(name, shape)?.flatten_all()?.to_vec1()?)
    }

    fn layer_norm(&self, prefix: &str, size: usize, eps: f32) -> Result<LayerNormParams> {
        Ok(LayerNormParams {
            gamma: self.vec(&format!("{prefix}.weight"), &[size])?,
            beta: self.vec(&format!("{prefix}.bias"), &[size])?,
            eps,
        })
    }

    /// Returns the weight of a linear layer in `precision`.
    fn linear_weight(
        &self,
        name: &str,
        in_size: usize,
        out_size: usize,
        precision: Precision,
    ) -> Result<Linear> {
        Linear::new(self.get(name, &[out_size, in_size])?, precision, self.path)
    }
}

fn weights_error(path: &Path, reason: String) -> Error {
    Error::ModelFile {
        path: path.to_path_buf(),
        reason,
    }
}

impl BertEncoder {
    /// Builds the encoder from the bytes of `model.safetensors` (read from `weights_path`, named
    /// in errors) and the parsed `config.json`, its linear layers in `precision`.
    pub(crate) fn load(
        safetensors: &[u8],
        weights_path: &Path,
        config: &BertConfig,
        precision: Precision,
    ) -> Result<BertEncoder> {
        let hidden_size = config.hidden_size;
        let num_heads = config.num_attention_heads;
        if hidden_size == 0 || num_heads == 0 || !hidden_size.is_multiple_of(num_heads) {
            return Err(weights_error(
                weights_path,
                format!("hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}"),
            ));
        }
        let head_dim = hidden_size / num_heads;
        let intermediate_size = config.intermediate_size;
        if intermediate_size == 0 {
            return Err(weights_error(
                weights_path,
                "intermediate_size is 0".to_owned(),
            ));
        }
        let eps = config.layer_norm_eps as f32;
        let weights = Weights {
            tensors: candle_core::safetensors::load_buffer(safetensors, &Device::Cpu)
                .map_err(|err| weights_error(weights_path, err.to_string()))?,
            path: weights_path,
        };

        let token_type_embeddings = weights.vec(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, hidden_size],
        )?;
        let token_type_embedding = token_type_embeddings
            .get(..hidden_size)
            .ok_or_else(|| weights_error(weights_path, "type_vocab_size is 0".to_owned()))?
            .to_vec();

        let query_scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for layer_idx in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{layer_idx}");
            let attention = format!("{prefix}.attention.self");
            let square = [hidden_size, hidden_size];
            let qkv_weight = Linear::new(
                Tensor::cat(
                    &[
                        (weights.get(&format!("{attention}.query.weight"), &square)?
                            * query_scale)?,
                        weights.get(&format!("{attention}.key.weight"), &square)?,
                        weights.get(&format!("{attention}.value.weight"), &square)?,
                    ],
                    0,
                )?,
                precision,
                weights_path,
            )?;
            let mut qkv_bias = Vec::with_capacity(3 * hidden_size);
            for (name, scale) in [("query", query_scale), ("key", 1.0), ("value", 1.0)] {
                let bias = weights.vec(&format!("{attention}.{name}.bias"), &[hidden_size])?;
                qkv_bias.extend(bias.iter().map(|value| value * scale as f32));
            }
            layers.push(EncoderLayer {
                qkv_weight,
                qkv_bias,
                attention_output_weight: weights.linear_weight(
                    &format!("{prefix}.attention.output.dense.weight"),
                    hidden_size,
                    hidden_size,
                    precision,
                )?,
                attention_output_bias: weights.vec(
                    &format!("{prefix}.attention.output.dense.bias"),
                    &[hidden_size],
                )?,
                attention_norm: weights.layer_norm(
                    &format!("{prefix}.attention.output.LayerNorm"),
                    hidden_size,
                    eps,
                )?,
                intermediate_weight: weights.linear_weight(
                    &format!("{prefix}.intermediate.dense.weight"),
                    hidden_size,
                    intermediate_size,
                    precision,
                )?,
                intermediate_bias: weights.vec(
                    &format!("{prefix}.intermediate.dense.bias"),
                    &[intermediate_size],
                )?,
                output_weight: weights.linear_weight(
                    &format!("{prefix}.output.dense.weight"),
                    intermediate_size,
                    hidden_size,
                    precision,
                )?,
                output_bias: weights.vec(&format!("{prefix}.output.dense.bias"), &[hidden_size])?,
                output_norm: weights.layer_norm(
                    &format!("{prefix}.output.LayerNorm"),
                    hidden_size,
                    eps,
                )?,
            });
        }

        Ok(BertEncoder {
            word_embeddings: weights.vec(
                "embeddings.word_embeddings.weight",
                &[config.vocab_size, hidden_size],
            )?,
            position_embeddings: weights.vec(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, hidden_size],
            )?,
            token_type_embedding,
            embeddings_norm: weights.layer_norm("embeddings.LayerNorm", hidden_size, eps)?,
            layers,
            activation: match config.hidden_act {
                HiddenAct::Gelu => Activation::GeluErf,
                HiddenAct::GeluApproximate => Activation::GeluTanh,
                HiddenAct::Relu => Activation::Relu,
            },
            hidden_size,
            num_heads,
            head_dim,
        })
    }

    /// Runs the encoder over sequences packed end to end: `token_ids` holds every sequence's
    /// ids (with `[CLS]`/`[SEP]`) one after another, `seq_lens` their lengths. Returns the last
    /// hidden state, `[sum(seq_lens), hidden_size]` row-major.
    pub(crate) fn forward(&self, token_ids: &[u32], seq_lens: &[usize]) -> Result<Vec<f32>> {
        let num_tokens = token_ids.len();
        debug_assert_eq!(seq_lens.iter().sum::<usize>(), num_tokens);
        if num_tokens == 0 {
            return Ok(Vec::new());
        }
        let hidden = self.embeddings(token_ids, seq_lens)?;
        let mut hidden = Tensor::from_vec(hidden, (num_tokens, self.hidden_size), &Device::Cpu)?;
        for layer in &self.layers {
            hidden = self.layer_forward(layer, &hidden, seq_lens)?;
        }
        Ok(hidden.flatten_all()?.to_vec1()?)
    }

    /// Word + position + token-type embeddings, layer-normalised, for the packed sequences.
    fn embeddings(&self, token_ids: &[u32], seq_lens: &[usize]) -> Result<Vec<f32>> {
        let hidden_size = self.hidden_size;
        let mut hidden = vec![0.0_f32; token_ids.len() * hidden_size];
        let mut rows = hidden.chunks_exact_mut(hidden_size);
        let mut ids = token_ids.iter();
        for &seq_len in seq_lens {
            for position in 0..seq_len {
                let (Some(row), Some(&token_id)) = (rows.next(), ids.next()) else {
                    return Err(Error::Runtime(
                        "sequence lengths exceed the token ids".into(),
                    ));
                };
                let token_start = token_id as usize * hidden_size;
                let word = self
                    .word_embeddings
                    .get(token_start..token_start + hidden_size)
                    .ok_or_else(|| {
                        Error::Runtime(format!("token id {token_id} is outside the vocabulary"))
                    })?;
                let position_start = position * hidden_size;
                let position_embedding = self
                    .position_embeddings
                    .get(position_start..position_start + hidden_size)
                    .ok_or_else(|| {
                        Error::InvalidRequest(format!(
                            "sequence of {seq_len} tokens is longer than the model's positions"
                        ))
                    })?;
                for (((out, word), position), token_type) in row
                    .iter_mut()
                    .zip(word)
                    .zip(position_embedding)
                    .zip(&self.token_type_embedding)
                {
                    *out = word + position + token_type;
                }
            }
        }
        hidden
            .par_chunks_mut(hidden_size * 16)
            .for_each(|rows| self.embeddings_norm.apply_rows(rows));
        Ok(hidden)
    }

    fn layer_forward(
        &self,
        layer: &EncoderLayer,
        hidden: &Tensor,
        seq_lens: &[usize],
    ) -> Result<Tensor> {
        let qkv = layer.qkv_weight.forward(hidden)?;
        let context = self.attention(&qkv, &layer.qkv_bias, seq_lens)?;

        let attention_output = layer.attention_output_weight.forward(&context)?;
        attention_output.inplace_op2(
            hidden,
            &BiasResidualLayerNorm {
                bias: &layer.attention_output_bias,
                norm: &layer.attention_norm,
            },
        )?;

        let intermediate = layer.intermediate_weight.forward(&attention_output)?;
        intermediate.inplace_op1(&BiasActivation {
            bias: &layer.intermediate_bias,
            activation: self.activation,
        })?;

        let output = layer.output_weight.forward(&intermediate)?;
        output.inplace_op2(
            &attention_output,
            &BiasResidualLayerNorm {
                bias: &layer.output_bias,
                norm: &layer.output_norm,
            },
        )?;
        Ok(output)
    }

    /// Self-attention of each sequence over itself only: the packed batch needs no mask.
    /// `qkv` is `[num_tokens, 3 * hidden]` without bias; returns `[num_tokens, hidden]`.
    fn attention(&self, qkv: &Tensor, qkv_bias: &[f32], seq_lens: &[usize]) -> Result<Tensor> {
        let mut seq_starts = Vec::with_capacity(seq_lens.len());
        let mut start = 0;
        for &seq_len in seq_lens {
            seq_starts.push(start);
            start += seq_len;
        }
        let split_heads = SplitHeads {
            bias: qkv_bias,
            num_heads: self.num_heads,
            head_dim: self.head_dim,
        };
        // Sequences in parallel; with fewer sequences than twice the threads (one query, a
        // batch of one) also groups of heads, so that every core has work.
        let head_groups = if seq_lens.len() >= 2 * rayon::current_num_threads() {
            1
        } else {
            self.num_heads.min(4)
        };
        let heads_per_group = self.num_heads.div_ceil(head_groups);
        let group_starts: Vec<usize> = (0..self.num_heads).step_by(heads_per_group).collect();
        let contexts = seq_starts
            .par_iter()
            .zip(seq_lens)
            .map(|(&seq_start, &seq_len)| -> candle_core::Result<Tensor> {
                let heads = qkv
                    .narrow(0, seq_start, seq_len)?
                    .apply_op1_no_bwd(&split_heads)?;
                let groups = group_starts
                    .par_iter()
                    .map(|&first| -> candle_core::Result<Tensor> {
                        let group =
                            heads.narrow(1, first, heads_per_group.min(self.num_heads - first))?;
                        let (query, key, value) = (group.get(0)?, group.get(1)?, group.get(2)?);
                        let scores = query.matmul(&key.t()?)?;
                        scores.inplace_op1(&SoftmaxRows)?;
                        scores.matmul(&value)
                    })
                    .collect::<candle_core::Result<Vec<Tensor>>>()?;
                Tensor::cat(&groups, 0)?
                    .transpose(0, 1)?
                    .contiguous()?
                    .reshape((seq_len, self.hidden_size))
            })
            .collect::<candle_core::Result<Vec<Tensor>>>()?;
        Ok(Tensor::cat(&contexts, 0)?)
    }
}
