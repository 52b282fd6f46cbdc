//! Loads a GGUF file's weights into one of candle's quantized transformer implementations, chosen
//! by `general.architecture`, re-quantizing the tensor types that candle runs slowly on CPU.

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek};

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::{quantized_llama, quantized_phi3, quantized_qwen2};

use std::sync::Arc;

use super::decoder::{Decoder, Sequence};
use super::panel_cache::PanelCache;

/// The architectures `general.architecture` may name.
pub(crate) const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "phi3"];

/// A loaded transformer with its KV cache.
pub(crate) enum ModelWeights {
    /// Dense llama and qwen2 models: Vellum's own decoder around candle's matmuls, with the
    /// sequence this handle runs (the weights are shared with the generation batcher).
    Decoder {
        decoder: Arc<Decoder>,
        sequence: Sequence,
    },
    /// Llama, Mistral, SmolLM2 and other `llama` GGUFs.
    Llama(quantized_llama::ModelWeights),
    /// Qwen 2 and 2.5.
    Qwen2(quantized_qwen2::ModelWeights),
    /// Phi-3 and 3.5 mini.
    Phi3(quantized_phi3::ModelWeights),
}

impl ModelWeights {
    /// Runs `input` (shape `(1, seq_len)`) at positions `index_pos..`, returning the logits of the
    /// last position, shape `(1, vocab)`. `index_pos == 0` starts a new sequence: every
    /// implementation then drops its KV cache (llama and qwen2 ignore the old cache at position 0,
    /// phi3 resets it), and [`Self::clear_kv_cache`] is called too, to free memory early.
    pub(crate) fn forward(
        &mut self,
        input: &Tensor,
        index_pos: usize,
    ) -> candle_core::Result<Tensor> {
        match self {
            ModelWeights::Decoder { decoder, sequence } => {
                let tokens: Vec<u32> = input.squeeze(0)?.to_vec1()?;
                decoder.forward(sequence, &tokens, index_pos)
            }
            ModelWeights::Llama(model) => model.forward(input, index_pos),
            ModelWeights::Qwen2(model) => model.forward(input, index_pos),
            ModelWeights::Phi3(model) => model.forward(input, index_pos),
        }
    }

    /// Whether the linear layers were read from a panel cache file.
    pub(crate) fn weights_mapped(&self) -> bool {
        matches!(self, ModelWeights::Decoder { decoder, .. } if decoder.weights_mapped())
    }

    /// Keeps the cached positions when they hold the first `prefix` tokens of `prompt`, and
    /// drops the rest; returns how many were kept. Only Vellum's own decoder keeps any: the
    /// others start again from position 0.
    pub(crate) fn keep_common_prefix(&mut self, prompt: &[u32], prefix: usize) -> usize {
        match self {
            ModelWeights::Decoder { sequence, .. } => sequence.keep_common_prefix(prompt, prefix),
            _ => {
                self.clear_kv_cache();
                0
            }
        }
    }

    /// Drops the cached positions from `positions` on (all of them for implementations that
    /// cannot keep a prefix).
    pub(crate) fn keep_kv_prefix(&mut self, positions: usize) {
        match self {
            ModelWeights::Decoder { sequence, .. } => sequence.truncate(positions),
            _ => self.clear_kv_cache(),
        }
    }

    /// Drops the KV cache where the implementation allows it (phi3 resets it on the next
    /// position-0 forward instead).
    pub(crate) fn clear_kv_cache(&mut self) {
        match self {
            ModelWeights::Decoder { sequence, .. } => sequence.clear(),
            ModelWeights::Llama(model) => model.clear_kv_cache(),
            ModelWeights::Qwen2(model) => model.clear_kv_cache(),
            ModelWeights::Phi3(_) => {}
        }
    }
}

/// Returns the number of positions the model can attend to, as this implementation supports it.
pub(crate) fn context_length(
    architecture: &str,
    metadata: &HashMap<String, gguf_file::Value>,
) -> std::result::Result<usize, String> {
    let key = format!("{architecture}.context_length");
    let declared = metadata
        .get(&key)
        .and_then(|value| {
            value
                .to_u32()
                .ok()
                .or_else(|| value.to_u64().ok().map(|v| v as u32))
        })
        .map(|value| value as usize);
    match architecture {
        // candle's quantized llama precomputes rotary embeddings for MAX_SEQ_LEN positions only.
        "llama" => Ok(declared
            .unwrap_or(quantized_llama::MAX_SEQ_LEN)
            .min(quantized_llama::MAX_SEQ_LEN)),
        _ => declared.ok_or_else(|| format!("no {key} in the metadata")),
    }
}

/// Tensor types for which candle 0.11 has only scalar CPU kernels.
pub(crate) fn is_slow_on_cpu(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1
    )
}

/// Loads the weights of `architecture` from `reader`, whose header is `content`.
///
/// With `requantize`, tensors of types that candle only runs with scalar kernels (Q4_1, Q5_0,
/// Q5_1) are converted to Q8_0, which has AVX2 kernels. For SmolLM2-135M Q4_1 this took prompt
/// processing from about 40 to about 200 tokens/s on a 2-core x86-64-v3 machine; Q8_0 holds every
/// Q4_1/Q5 value almost exactly (8 bits against 4-5), so outputs barely change. The converted file
/// is rebuilt in memory because candle's loaders read tensors from a GGUF reader; this costs
/// about twice the converted model's size in memory during loading, and nothing for files
/// (Q4_K, Q6_K, Q8_0...) that need no conversion.
pub(crate) fn load<R: Read + Seek>(
    architecture: &str,
    content: Content,
    reader: &mut R,
    options: &LoadOptions,
) -> candle_core::Result<ModelWeights> {
    let device = options.device.clone();
    let convert = |dtype| converts_to_q8_0(architecture, &content, options, dtype);
    let needs_conversion = content
        .tensor_infos
        .values()
        .any(|info| convert(info.ggml_dtype));
    if needs_conversion || has_stacked_experts(&content) {
        let keep_q4_1 = !convert(GgmlDType::Q4_1);
        let (converted_content, mut converted_reader) =
            rewrite_in_memory(&content, reader, options.requantize, keep_q4_1)?;
        drop(content);
        return build(
            architecture,
            converted_content,
            &mut converted_reader,
            &device,
            options,
        );
    }
    build(architecture, content, reader, &device, options)
}

/// Whether loading converts tensors of `dtype` to Q8_0: the slow types when `requantize` is
/// set, except Q4_1 for models that [`Decoder`] runs on a CPU with its Q4_1 kernel.
pub(crate) fn converts_to_q8_0(
    architecture: &str,
    content: &Content,
    options: &LoadOptions,
    dtype: GgmlDType,
) -> bool {
    let decoder_reads_q4_1 = dtype == GgmlDType::Q4_1
        && options.own_decoder
        && super::qmatmul::has_fast_path()
        && Decoder::supports(architecture, content);
    options.requantize && is_slow_on_cpu(dtype) && !decoder_reads_q4_1
}

/// Whether [`Decoder`] re-quantizes tensors of `dtype` to Q8_0 as it builds its matrices
/// (Q6_K, which no kernel of ours reads as stored), so that receipts can say so.
pub(crate) fn decoder_requantizes(
    architecture: &str,
    content: &Content,
    options: &LoadOptions,
    dtype: GgmlDType,
) -> bool {
    dtype == GgmlDType::Q6K
        && options.own_decoder
        && options.device.is_cpu()
        && super::qmatmul::has_fast_path()
        && Decoder::supports(architecture, content)
}

/// How to load a model.
#[derive(Debug, Clone)]
pub(crate) struct LoadOptions {
    /// Convert tensor types with only scalar kernels to Q8_0.
    pub(crate) requantize: bool,
    /// Run dense llama/qwen2 models with [`Decoder`] rather than candle's implementations.
    pub(crate) own_decoder: bool,
    /// Longest sequence (prompt plus answer) to support.
    pub(crate) max_positions: usize,
    /// Where the tensors go: the CPU, or a GPU (then candle's implementations run).
    pub(crate) device: Device,
    /// The panel cache file of this model and these options, for [`Decoder`]'s layers.
    pub(crate) panels: Option<PanelCache>,
}

/// Stacked expert tensors as llama.cpp writes Mixtral-style models today
/// (`blk.N.ffn_gate_exps.weight`, `[experts, rows, cols]`), and the per-expert names
/// (`blk.N.ffn_gate.E.weight`) that candle's quantized llama reads.
const STACKED_EXPERTS: &[(&str, &str)] = &[
    ("ffn_gate_exps", "ffn_gate"),
    ("ffn_up_exps", "ffn_up"),
    ("ffn_down_exps", "ffn_down"),
];

fn stacked_expert_parts(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".weight")?;
    STACKED_EXPERTS.iter().find_map(|(stacked, single)| {
        stem.strip_suffix(stacked)
            .and_then(|prefix| prefix.strip_suffix('.'))
            .map(|prefix| (prefix, *single))
    })
}

fn has_stacked_experts(content: &Content) -> bool {
    content
        .tensor_infos
        .keys()
        .any(|name| stacked_expert_parts(name).is_some())
}

/// Splits a stacked expert tensor into one tensor per expert. Experts are the outermost
/// dimension, so each expert's quantized blocks are a contiguous byte range: the split copies
/// bytes and changes no value.
fn split_experts(
    name: &str,
    tensor: &QTensor,
    num_experts: usize,
) -> candle_core::Result<Vec<(String, QTensor)>> {
    let Some((prefix, single)) = stacked_expert_parts(name) else {
        candle_core::bail!("{name} is not a stacked expert tensor")
    };
    let &[experts, rows, cols] = tensor.shape().dims() else {
        candle_core::bail!(
            "{name} has shape {:?}, expected [experts, rows, columns]",
            tensor.shape()
        )
    };
    if experts != num_experts {
        candle_core::bail!(
            "{name} holds {experts} experts but llama.expert_count says {num_experts}"
        )
    }
    let data = tensor.data()?;
    if experts == 0 || data.len() % experts != 0 {
        candle_core::bail!(
            "{name}: {} bytes do not split into {experts} experts",
            data.len()
        )
    }
    let bytes_per_expert = data.len() / experts;
    data.chunks_exact(bytes_per_expert)
        .enumerate()
        .map(|(expert, bytes)| {
            let part = gguf_file_tensor(tensor.dtype(), bytes, vec![rows, cols])?;
            Ok((format!("{prefix}.{single}.{expert}.weight"), part))
        })
        .collect()
}

fn gguf_file_tensor(
    dtype: GgmlDType,
    bytes: &[u8],
    dims: Vec<usize>,
) -> candle_core::Result<QTensor> {
    candle_core::quantized::ggml_file::qtensor_from_ggml(dtype, bytes, dims, &Device::Cpu)
}

fn build<R: Read + Seek>(
    architecture: &str,
    content: Content,
    reader: &mut R,
    device: &Device,
    options: &LoadOptions,
) -> candle_core::Result<ModelWeights> {
    if options.own_decoder && device.is_cpu() && Decoder::supports(architecture, &content) {
        let panels = options.panels.as_ref();
        return Decoder::load(
            architecture,
            &content,
            reader,
            options.max_positions,
            panels,
        )
        .map(|decoder| {
            let sequence = decoder.new_sequence();
            ModelWeights::Decoder {
                decoder: Arc::new(decoder),
                sequence,
            }
        });
    }
    match architecture {
        "llama" => quantized_llama::ModelWeights::from_gguf(content, reader, device)
            .map(ModelWeights::Llama),
        "qwen2" => quantized_qwen2::ModelWeights::from_gguf(content, reader, device)
            .map(ModelWeights::Qwen2),
        "phi3" => quantized_phi3::ModelWeights::from_gguf(false, content, reader, device)
            .map(ModelWeights::Phi3),
        other => candle_core::bail!("unsupported architecture {other}"),
    }
}

/// Writes an in-memory GGUF with the same metadata and tensors, stacked expert tensors split
/// per expert and, with `requantize`, the slow tensor types as Q8_0; returns its header and a
/// reader over it.
fn rewrite_in_memory<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    requantize: bool,
    keep_q4_1: bool,
) -> candle_core::Result<(Content, Cursor<Vec<u8>>)> {
    let device = Device::Cpu;
    let num_experts = content
        .metadata
        .get("llama.expert_count")
        .and_then(|value| value.to_u32().ok())
        .map_or(0, |count| count as usize);
    let mut tensor_names: Vec<&String> = content.tensor_infos.keys().collect();
    tensor_names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(tensor_names.len());
    let mut num_converted = 0usize;
    for name in tensor_names {
        let tensor = content.tensor(reader, name, &device)?;
        let parts = if stacked_expert_parts(name).is_some() {
            split_experts(name, &tensor, num_experts)?
        } else {
            vec![(name.clone(), tensor)]
        };
        for (part_name, part) in parts {
            // Q8_0 blocks hold 32 values of the last dimension; keep tensors that do not divide.
            let row_len = part.shape().dims().last().copied().unwrap_or(0);
            let keep = keep_q4_1 && part.dtype() == GgmlDType::Q4_1;
            let part = if requantize && !keep && is_slow_on_cpu(part.dtype()) && row_len % 32 == 0 {
                num_converted += 1;
                QTensor::quantize(&part.dequantize(&device)?, GgmlDType::Q8_0)?
            } else {
                part
            };
            tensors.push((part_name, part));
        }
    }
    tracing::debug!(num_converted, "re-quantized GGUF tensors to Q8_0");
    // The writer aligns tensor data to 32 bytes; a copied `general.alignment` would misplace it.
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(key, _)| key.as_str() != "general.alignment")
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        tensors.iter().map(|(name, t)| (name.as_str(), t)).collect();
    let mut buffer = Cursor::new(Vec::new());
    gguf_file::write(&mut buffer, &metadata, &tensor_refs)?;
    drop(tensor_refs);
    drop(tensors);
    buffer.set_position(0);
    let converted = Content::read(&mut buffer)?;
    Ok((converted, buffer))
}
