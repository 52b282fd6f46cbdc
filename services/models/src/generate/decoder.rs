//! A llama-family decoder (llama, qwen2) for the CPU that keeps candle's quantized matmuls but
//! does everything around them itself, for generation speed.
//!
//! Why not candle's `quantized_llama` / `quantized_qwen2` for these: at 135M parameters the
//! work per generated token is small and candle's per-token overhead dominated (SmolLM2: 48
//! tokens/s against llama.cpp's 106). The profile showed three costs besides the matmuls:
//! the KV cache grows by `Tensor::cat` (a copy of the whole cache, every layer, every token),
//! grouped-query attention copies keys and values once per query head (`repeat_kv`: 3× the
//! cache, every layer, every token), and each small op allocates a fresh tensor. Here the KV
//! cache is appended in place, each query head reads its key/value head directly, the
//! projections that share an input run as one matmul (q|k|v, gate|up), and norms, rotary
//! embeddings, activations and single-token attention are plain loops over slices.
//!
//! The arithmetic is candle's (same quantized matmul kernels, f32 everywhere else, the same
//! rotary tables), so outputs match up to float rounding; `tests/generator.rs` holds both
//! implementations to llama.cpp's reference continuations.

use std::sync::Mutex;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{ggml_file, GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;

use super::attention::{group_scores, group_weighted_rows};
use super::panel_cache::{MappedPanels, PanelCache, PanelWriter};
use super::qmatmul::{has_fast_path, q4_k_as_q4_1, Q4_1Matrix, Q8_0Matrix};
use super::team::{self, Team};
use crate::embed::kernels::{exp, lane_sum, softmax_in_place};

type CandleResult<T> = candle_core::Result<T>;

/// Shapes and constants of the model.
struct Shape {
    dim: usize,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    feed_forward: usize,
    norm_eps: f32,
    /// Rotary embedding pairs: `true` = (i, i + d/2) (NEOX: qwen2), `false` = (2i, 2i+1)
    /// (llama).
    rope_neox: bool,
    max_positions: usize,
}

impl Shape {
    fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

/// Weight matrices that read the same input, run as one matmul when their storage types agree
/// (their rows are then simply concatenated), else one after the other. Where the CPU has
/// AVX2, Q4_1 and Q8_0 weights use [`Q4_1Matrix`] and [`Q8_0Matrix`], and so do the K-quants
/// of Q4_K_M files, converted at load (see [`own_form`]); everything else candle's quantized
/// matmul.
enum Linear {
    Candle(Vec<QMatMul>),
    Q4_1(Q4_1Matrix),
    Q8_0(Q8_0Matrix),
    /// Parts held in different forms (Q4_K_M keeps some value projections in Q6_K), each its
    /// own matrix; their outputs side by side.
    Split(Vec<Linear>),
}

/// The type whose kernel of ours runs a tensor of `dtype`: Q4_1 and Q8_0 as stored; Q4_K as
/// Q4_1, value for value ([`q4_k_as_q4_1`]); Q6_K re-quantized to Q8_0 (8 bits per value
/// against 6, one scale per 32 values against one per 16), as the loader converts Q5_0.
fn own_form(dtype: GgmlDType) -> Option<GgmlDType> {
    match dtype {
        GgmlDType::Q4_1 | GgmlDType::Q4K => Some(GgmlDType::Q4_1),
        GgmlDType::Q8_0 | GgmlDType::Q6K => Some(GgmlDType::Q8_0),
        _ => None,
    }
}

/// A tensor's blocks in the in-memory form of the kernel that runs it ([`own_form`]).
fn own_blocks(tensor: &QTensor) -> CandleResult<Vec<u8>> {
    match tensor.dtype() {
        GgmlDType::Q4_1 => Ok(Q4_1Matrix::repacked(&tensor.data()?)),
        GgmlDType::Q4K => q4_k_as_q4_1(&tensor.data()?).map_err(candle_core::Error::Msg),
        GgmlDType::Q8_0 => Ok(Q8_0Matrix::repacked(&tensor.data()?)),
        GgmlDType::Q6K => {
            let values = tensor.dequantize(&Device::Cpu)?;
            let requantized = QTensor::quantize(&values, GgmlDType::Q8_0)?;
            Ok(Q8_0Matrix::repacked(&requantized.data()?))
        }
        other => candle_core::bail!("no kernel of ours reads {other:?}"),
    }
}

impl Linear {
    fn new(tensors: Vec<QTensor>) -> CandleResult<Linear> {
        let same_type = tensors
            .windows(2)
            .all(|pair| pair[0].dtype() == pair[1].dtype());
        let forms: Vec<Option<GgmlDType>> = tensors
            .iter()
            .map(|tensor| own_form(tensor.dtype()))
            .collect();
        if has_fast_path() && !forms.is_empty() && forms.iter().all(Option::is_some) {
            if forms.windows(2).any(|pair| pair[0] != pair[1]) {
                return Ok(Linear::Split(
                    tensors
                        .into_iter()
                        .map(|tensor| Linear::new(vec![tensor]))
                        .collect::<CandleResult<_>>()?,
                ));
            }
            let (rows, columns) = fused_shape(tensors.iter().map(|tensor| tensor.shape()))?;
            let mut blocks = Vec::new();
            for tensor in &tensors {
                blocks.extend(own_blocks(tensor)?);
            }
            let matrix = if forms[0] == Some(GgmlDType::Q4_1) {
                Q4_1Matrix::from_blocks(blocks, rows, columns).map(Linear::Q4_1)
            } else {
                Q8_0Matrix::from_blocks(blocks, rows, columns).map(Linear::Q8_0)
            };
            return matrix.map_err(candle_core::Error::Msg);
        }
        if tensors.len() > 1 && same_type {
            let (bytes, rows, columns) = stacked(&tensors)?;
            let fused = ggml_file::qtensor_from_ggml(
                tensors[0].dtype(),
                &bytes,
                vec![rows, columns],
                &Device::Cpu,
            )?;
            return Ok(Linear::Candle(vec![QMatMul::from_qtensor(fused)?]));
        }
        Ok(Linear::Candle(
            tensors
                .into_iter()
                .map(QMatMul::from_qtensor)
                .collect::<CandleResult<_>>()?,
        ))
    }

    /// The linear layer of tensors `names` read from a panel cache file, without reading the
    /// tensors: the same structure [`Self::new`] gives them (one matrix of the fused tensors,
    /// or a split where their types differ). `None` where the file does not hold all of it or
    /// our kernels would not run it.
    fn from_cache(mapped: &MappedPanels, content: &Content, names: &[&str]) -> Option<Linear> {
        if !has_fast_path() || names.is_empty() {
            return None;
        }
        let infos: Vec<_> = names
            .iter()
            .map(|name| content.tensor_infos.get(*name))
            .collect::<Option<_>>()?;
        let forms: Vec<GgmlDType> = infos
            .iter()
            .map(|info| own_form(info.ggml_dtype))
            .collect::<Option<_>>()?;
        if forms.windows(2).any(|pair| pair[0] != pair[1]) {
            return names
                .iter()
                .map(|name| Linear::from_cache(mapped, content, &[name]))
                .collect::<Option<_>>()
                .map(Linear::Split);
        }
        let (rows, columns) = fused_shape(infos.iter().map(|info| &info.shape)).ok()?;
        let key = names.join("+");
        match forms[0] {
            GgmlDType::Q4_1 => mapped.matrix(&key, rows, columns).map(Linear::Q4_1),
            _ => mapped.matrix(&key, rows, columns).map(Linear::Q8_0),
        }
    }

    /// Appends this layer's matrices (those our kernels hold) to a panel cache file, under the
    /// names of the tensors they were made of.
    fn write_to(&self, writer: &mut PanelWriter, names: &[&str]) -> std::io::Result<()> {
        match self {
            Linear::Q4_1(matrix) => writer.add(&names.join("+"), matrix),
            Linear::Q8_0(matrix) => writer.add(&names.join("+"), matrix),
            Linear::Split(parts) if parts.len() == names.len() => parts
                .iter()
                .zip(names)
                .try_for_each(|(part, name)| part.write_to(writer, &[name])),
            Linear::Split(_) => Err(std::io::Error::other("a split layer of unnamed parts")),
            Linear::Candle(_) => Ok(()),
        }
    }

    /// `input` holds `rows` rows of `in_dim`; returns the rows of all parts side by side. Each
    /// row's result is bit for bit what it would be alone (the rows of a batched step are
    /// different answers): our products have one arithmetic per row whatever runs beside it,
    /// and candle's quantized matmul computes each row on its own anyway. Our products run on
    /// `team` when given (a generation step's), candle's on its own threads.
    fn apply(
        &self,
        team: Option<&Team>,
        input: &[f32],
        rows: usize,
        in_dim: usize,
    ) -> CandleResult<Vec<f32>> {
        let parts = match self {
            Linear::Q4_1(matrix) => {
                return matrix
                    .forward_on(team, input, rows)
                    .map_err(candle_core::Error::Msg)
            }
            Linear::Q8_0(matrix) => {
                return matrix
                    .forward_on(team, input, rows)
                    .map_err(candle_core::Error::Msg)
            }
            Linear::Split(parts) => {
                let outputs = parts
                    .iter()
                    .map(|part| part.apply(team, input, rows, in_dim))
                    .collect::<CandleResult<Vec<_>>>()?;
                let widths: Vec<usize> = outputs.iter().map(|out| out.len() / rows).collect();
                let mut joined = Vec::with_capacity(outputs.iter().map(Vec::len).sum());
                for row in 0..rows {
                    for (out, width) in outputs.iter().zip(&widths) {
                        joined.extend_from_slice(&out[row * width..][..*width]);
                    }
                }
                return Ok(joined);
            }
            Linear::Candle(parts) => parts,
        };
        let input = Tensor::from_slice(input, (rows, in_dim), &Device::Cpu)?;
        let output = match parts.as_slice() {
            [single] => single.forward(&input)?,
            parts => {
                let outputs = parts
                    .iter()
                    .map(|part| part.forward(&input))
                    .collect::<CandleResult<Vec<_>>>()?;
                Tensor::cat(&outputs, 1)?
            }
        };
        output.flatten_all()?.to_vec1()
    }
}

/// The blocks of `tensors` (all of one type and input width) one after the other, as one
/// `[rows, columns]` matrix: its bytes, rows and columns.
fn stacked(tensors: &[QTensor]) -> CandleResult<(Vec<u8>, usize, usize)> {
    let (rows, columns) = fused_shape(tensors.iter().map(|tensor| tensor.shape()))?;
    let mut bytes = Vec::new();
    for tensor in tensors {
        bytes.extend_from_slice(&tensor.data()?);
    }
    Ok((bytes, rows, columns))
}

/// The `[rows, columns]` of matrices of `shapes` fused side by side (their rows one after the
/// other): an error where they disagree on the input size (columns) or are not matrices.
fn fused_shape<'a>(
    shapes: impl Iterator<Item = &'a candle_core::Shape>,
) -> CandleResult<(usize, usize)> {
    let (mut rows, mut columns) = (0, None);
    for shape in shapes {
        let (shape_rows, shape_columns) = shape.dims2()?;
        if columns.is_some_and(|c| c != shape_columns) {
            candle_core::bail!("fused projections disagree on their input size");
        }
        columns = Some(shape_columns);
        rows += shape_rows;
    }
    Ok((rows, columns.unwrap_or(0)))
}

/// Reads a GGUF's tensors for [`Decoder::load`], and the linear layers from a panel cache file
/// where one checks out (the tensors then stay unread), or writes one as it builds them.
struct Loader<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
    device: Device,
    mapped: Option<MappedPanels>,
    writer: Option<PanelWriter>,
    /// Whether any linear layer was read from the panel cache file.
    any_mapped: bool,
}

impl<R: std::io::Read + std::io::Seek> Loader<'_, R> {
    fn tensor(&mut self, name: &str) -> CandleResult<QTensor> {
        self.content.tensor(self.reader, name, &self.device)
    }

    /// The linear layer of tensors `names` (fused side by side where several).
    fn linear(&mut self, names: &[&str]) -> CandleResult<Linear> {
        let cached = self
            .mapped
            .as_ref()
            .and_then(|mapped| Linear::from_cache(mapped, self.content, names));
        if let Some(linear) = cached {
            self.any_mapped = true;
            return Ok(linear);
        }
        let tensors = names
            .iter()
            .map(|name| self.tensor(name))
            .collect::<CandleResult<Vec<_>>>()?;
        let linear = Linear::new(tensors)?;
        if let Some(writer) = self.writer.as_mut() {
            if let Err(err) = linear.write_to(writer, names) {
                tracing::warn!(error = %err, "cannot write the panel cache file");
                self.writer = None;
            }
        }
        Ok(linear)
    }
}

struct Layer {
    attention_norm: Vec<f32>,
    /// Query, key and value projections, in that order.
    qkv: Linear,
    /// Qwen2's projection biases (query, key, value side by side).
    qkv_bias: Option<Vec<f32>>,
    attention_output: Linear,
    ffn_norm: Vec<f32>,
    /// Gate and up projections, in that order.
    gate_up: Linear,
    down: Linear,
}

/// Keys and values of the positions seen so far, one buffer per key/value head,
/// `[position][head_dim]`, appended in place. A head's attention reads its own buffer from
/// start to end: in one `[position][kv_dim]` buffer it read a head's 256 bytes out of every
/// 768 (SmolLM2), and on a CPU whose last-level cache does not hold the caches (AMD EPYC,
/// 32 MB) generation after a 480-token prompt ran 40 % slower than after 40 tokens.
#[derive(Clone)]
struct LayerCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl LayerCache {
    fn new(num_kv_heads: usize) -> Self {
        LayerCache {
            keys: vec![Vec::new(); num_kv_heads],
            values: vec![Vec::new(); num_kv_heads],
        }
    }

    fn heads_mut(&mut self) -> impl Iterator<Item = &mut Vec<f32>> {
        self.keys.iter_mut().chain(self.values.iter_mut())
    }

    /// Positions held, given the heads' width.
    fn positions(&self, head_dim: usize) -> usize {
        self.keys
            .first()
            .map_or(0, |keys| keys.len() / head_dim.max(1))
    }
}

/// One sequence's keys and values (a generation in progress, or a prompt prefix kept for the
/// next one): separate from the weights, so that one [`Decoder`] runs many sequences, and one
/// pass ([`Decoder::advance`]) advances several at once.
#[derive(Clone)]
pub(crate) struct Sequence {
    cache: Vec<LayerCache>,
    head_dim: usize,
    /// The tokens at the cached positions (one per position), so that a later prompt with the
    /// same beginning can keep their keys and values ([`Sequence::keep_common_prefix`]).
    tokens: Vec<u32>,
}

impl Sequence {
    /// Empties the KV cache (keeping its memory for the next sequence).
    pub(crate) fn clear(&mut self) {
        self.truncate(0);
    }

    /// Positions in the cache.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens whose keys and values are cached.
    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Keeps the cached positions when they hold exactly the first `prefix` tokens of `prompt`,
    /// else empties the cache; returns how many were kept, where the prompt's processing
    /// resumes. The caller runs those `prefix` tokens as a chunk of their own whenever they are
    /// not cached, so kept keys and values are the ones a fresh run computes, bit for bit (a
    /// partial match would have come from a chunk of another length, whose sums may round
    /// differently).
    pub(crate) fn keep_common_prefix(&mut self, prompt: &[u32], prefix: usize) -> usize {
        let kept = if prefix > 0
            && self.tokens.len() >= prefix
            && prompt.get(..prefix) == self.tokens.get(..prefix)
        {
            prefix
        } else {
            0
        };
        self.truncate(kept);
        kept
    }

    /// Makes room for `positions` more positions in every layer's keys and values at once:
    /// grown a token at a time, each layer's cache was reallocated and copied at every
    /// doubling, on the decoder's pool while its other thread waited.
    pub(crate) fn reserve(&mut self, positions: usize) {
        let values = positions.saturating_mul(self.head_dim);
        for head in self.cache.iter_mut().flat_map(LayerCache::heads_mut) {
            head.reserve(values);
        }
        self.tokens.reserve(positions);
    }

    /// Drops every cached position from `positions` on.
    pub(crate) fn truncate(&mut self, positions: usize) {
        let positions = positions.min(self.len());
        for head in self.cache.iter_mut().flat_map(LayerCache::heads_mut) {
            head.truncate(positions * self.head_dim);
        }
        self.tokens.truncate(positions);
    }
}

/// The token embedding table. Kept quantized as the file has it when our own kernel holds it
/// (a row is dequantized per token, with candle's arithmetic, so the values are the same): an
/// f32 copy of the table was most of the memory of small models (113 MB for SmolLM2-135M,
/// whose whole file is 100 MB) and 604 MB of a 3,072-wide model's.
enum Embeddings {
    /// Tied embeddings (SmolLM2, small Qwen2): the output projection's matrix, shared.
    Output,
    Own(Linear),
    /// Types our kernels do not hold: dequantized once, as candle does.
    Dense(Vec<f32>),
}

/// The decoder's weights; immutable once loaded, so shared between threads.
pub(crate) struct Decoder {
    shape: Shape,
    /// `[vocab, dim]`: where a token's embedding is read.
    embeddings: Embeddings,
    layers: Vec<Layer>,
    final_norm: Vec<f32>,
    output: Linear,
    /// Rotary tables, `[position][head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Whether the linear layers were read from a panel cache file.
    weights_mapped: bool,
}

/// The logits of a step's sequences, one row of `vocab_size` each, in one buffer (copied into
/// a vector per sequence, they were a serial copy of 196 KB an answer each step).
pub(crate) struct Logits {
    values: Vec<f32>,
    vocab_size: usize,
}

impl Logits {
    /// Each sequence's logits, in the order of the step's sequences.
    pub(crate) fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.vocab_size.max(1))
    }
}

/// Metadata reader for one architecture's keys.
struct Metadata<'a> {
    content: &'a Content,
    prefix: &'a str,
}

impl Metadata<'_> {
    fn get(&self, key: &str) -> CandleResult<&candle_core::quantized::gguf_file::Value> {
        let full = format!("{}.{key}", self.prefix);
        self.content
            .metadata
            .get(&full)
            .ok_or_else(|| candle_core::Error::Msg(format!("cannot find {full} in metadata")))
    }

    fn usize(&self, key: &str) -> CandleResult<usize> {
        Ok(self.get(key)?.to_u32()? as usize)
    }
}

impl Decoder {
    /// Whether this decoder handles `architecture` as written in `content`; other files go to
    /// candle's implementations (mixtures of experts, partial rotary embeddings, phi3).
    pub(crate) fn supports(architecture: &str, content: &Content) -> bool {
        let metadata = Metadata {
            content,
            prefix: architecture,
        };
        let is_dense = !matches!(
            metadata.get("expert_count").and_then(|value| value.to_u32()),
            Ok(count) if count > 1
        );
        let rope_covers_heads = match (
            metadata.usize("embedding_length"),
            metadata.usize("attention.head_count"),
        ) {
            (Ok(dim), Ok(heads)) if heads > 0 => match metadata.usize("rope.dimension_count") {
                Ok(rope_dim) => rope_dim == dim / heads,
                Err(_) => true,
            },
            _ => false,
        };
        matches!(architecture, "llama" | "qwen2") && is_dense && rope_covers_heads
    }

    /// Loads the weights; `max_positions` bounds the sequence length (prompt plus answer). With
    /// `panels`, the linear layers come from that panel cache file where it checks out, and
    /// are written to a new one where it does not.
    pub(crate) fn load<R: std::io::Read + std::io::Seek>(
        architecture: &str,
        content: &Content,
        reader: &mut R,
        max_positions: usize,
        panels: Option<&PanelCache>,
    ) -> CandleResult<Decoder> {
        let device = Device::Cpu;
        let metadata = Metadata {
            content,
            prefix: architecture,
        };
        let dim = metadata.usize("embedding_length")?;
        let num_heads = metadata.usize("attention.head_count")?;
        let num_kv_heads = metadata.usize("attention.head_count_kv")?;
        let num_layers = metadata.usize("block_count")?;
        let feed_forward = metadata.usize("feed_forward_length")?;
        if num_heads == 0 || num_kv_heads == 0 || dim % num_heads != 0 {
            candle_core::bail!("{dim} dimensions do not split into {num_heads} heads");
        }
        if num_heads % num_kv_heads != 0 {
            candle_core::bail!("{num_heads} query heads do not share {num_kv_heads} key heads");
        }
        let head_dim = dim / num_heads;
        if head_dim % 2 != 0 {
            candle_core::bail!("head size {head_dim} is odd: rotary embeddings need pairs");
        }
        let norm_eps = metadata.get("attention.layer_norm_rms_epsilon")?.to_f32()?;
        let rope_base = metadata
            .get("rope.freq_base")
            .and_then(|value| value.to_f32())
            .unwrap_or(10_000.0);
        let shape = Shape {
            dim,
            num_heads,
            num_kv_heads,
            head_dim,
            feed_forward,
            norm_eps,
            rope_neox: architecture == "qwen2",
            max_positions,
        };

        let mapped = panels.and_then(PanelCache::open);
        let writer = match (&mapped, panels) {
            (None, Some(panels)) if has_fast_path() => panels.writer(),
            _ => None,
        };
        let mut loader = Loader {
            content,
            reader,
            device: device.clone(),
            mapped,
            writer,
            any_mapped: false,
        };
        let vector = |tensor: QTensor| -> CandleResult<Vec<f32>> {
            tensor.dequantize(&device)?.flatten_all()?.to_vec1()
        };
        const EMBEDDINGS: &str = "token_embd.weight";
        let Some(embeddings_info) = content.tensor_infos.get(EMBEDDINGS) else {
            candle_core::bail!("no {EMBEDDINGS} tensor");
        };
        let (_, embedding_dim) = embeddings_info.shape.dims2()?;
        if embedding_dim != dim {
            candle_core::bail!("{EMBEDDINGS} has {embedding_dim} columns, not {dim}");
        }
        // Our own kernels hold Q4_1 and Q8_0 (see `Linear::new`); any other type is dequantized.
        let own_kernel = matches!(
            embeddings_info.ggml_dtype,
            GgmlDType::Q4_1 | GgmlDType::Q8_0
        ) && has_fast_path();
        let dense = |tensor: QTensor| -> CandleResult<Embeddings> {
            Ok(Embeddings::Dense(
                tensor.dequantize(&device)?.flatten_all()?.to_vec1()?,
            ))
        };
        let (embeddings, output) = if content.tensor_infos.contains_key("output.weight") {
            let embeddings = if own_kernel {
                Embeddings::Own(loader.linear(&[EMBEDDINGS])?)
            } else {
                dense(loader.tensor(EMBEDDINGS)?)?
            };
            (embeddings, loader.linear(&["output.weight"])?)
        } else {
            // Tied embeddings (SmolLM2, small Qwen2): the output matrix is the embedding table.
            let embeddings = if own_kernel {
                Embeddings::Output
            } else {
                dense(loader.tensor(EMBEDDINGS)?)?
            };
            (embeddings, loader.linear(&[EMBEDDINGS])?)
        };
        let final_norm = vector(loader.tensor("output_norm.weight")?)?;

        let mut layers = Vec::with_capacity(num_layers);
        for index in 0..num_layers {
            let name = |suffix: &str| format!("blk.{index}.{suffix}");
            let qkv_bias = if architecture == "qwen2" {
                let mut bias = vector(loader.tensor(&name("attn_q.bias"))?)?;
                bias.extend(vector(loader.tensor(&name("attn_k.bias"))?)?);
                bias.extend(vector(loader.tensor(&name("attn_v.bias"))?)?);
                Some(bias)
            } else {
                None
            };
            let names = |suffixes: &[&str]| -> Vec<String> {
                suffixes.iter().map(|suffix| name(suffix)).collect()
            };
            let mut linear = |suffixes: &[&str]| {
                let names = names(suffixes);
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                loader.linear(&names)
            };
            let qkv = linear(&["attn_q.weight", "attn_k.weight", "attn_v.weight"])?;
            let attention_output = linear(&["attn_output.weight"])?;
            let gate_up = linear(&["ffn_gate.weight", "ffn_up.weight"])?;
            let down = linear(&["ffn_down.weight"])?;
            layers.push(Layer {
                attention_norm: vector(loader.tensor(&name("attn_norm.weight"))?)?,
                qkv,
                qkv_bias,
                attention_output,
                ffn_norm: vector(loader.tensor(&name("ffn_norm.weight"))?)?,
                gate_up,
                down,
            });
        }
        let weights_mapped = loader.any_mapped;
        if let Some(writer) = loader.writer.take() {
            match writer.finish() {
                Ok(path) => tracing::info!(path = %path.display(), "panel cache file written"),
                Err(err) => tracing::warn!(error = %err, "cannot write the panel cache file"),
            }
        }

        // The same f32 arithmetic as candle's tables, so both implementations agree.
        let half = head_dim / 2;
        let frequencies: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1.0 / rope_base.powf(i as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for position in 0..max_positions {
            for &frequency in &frequencies {
                let angle = position as f32 * frequency;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }

        Ok(Decoder {
            shape,
            embeddings,
            layers,
            final_norm,
            output,
            cos,
            sin,
            weights_mapped,
        })
    }

    /// Whether the linear layers were read from a panel cache file (mapped), not rearranged.
    pub(crate) fn weights_mapped(&self) -> bool {
        self.weights_mapped
    }

    /// A new, empty sequence for this model.
    pub(crate) fn new_sequence(&self) -> Sequence {
        Sequence {
            cache: vec![LayerCache::new(self.shape.num_kv_heads); self.layers.len()],
            head_dim: self.shape.head_dim,
            tokens: Vec::new(),
        }
    }

    /// Runs `tokens` of `sequence` at positions `start..`, `start == 0` beginning it anew, and
    /// returns the logits of the last one, shape `(1, vocab)`.
    pub(crate) fn forward(
        &self,
        sequence: &mut Sequence,
        tokens: &[u32],
        start: usize,
    ) -> CandleResult<Tensor> {
        if start == 0 {
            sequence.clear();
        }
        if start != sequence.len() {
            candle_core::bail!(
                "position {start} does not follow the {} cached positions",
                sequence.len()
            );
        }
        let logits = self.advance(&mut [sequence], &[tokens])?;
        Tensor::from_vec(logits.values, (1, logits.vocab_size), &Device::Cpu)
    }

    /// Appends token `token`'s embedding to `hidden`.
    fn embed_token(&self, token: u32, hidden: &mut Vec<f32>) -> CandleResult<()> {
        let outside =
            || candle_core::Error::Msg(format!("token {token} is outside the vocabulary"));
        let table = match &self.embeddings {
            Embeddings::Dense(table) => {
                let dim = self.shape.dim;
                let row = token as usize * dim;
                hidden.extend_from_slice(table.get(row..row + dim).ok_or_else(outside)?);
                return Ok(());
            }
            Embeddings::Output => &self.output,
            Embeddings::Own(table) => table,
        };
        let row = match table {
            Linear::Q4_1(matrix) => matrix.row(token as usize),
            Linear::Q8_0(matrix) => matrix.row(token as usize),
            Linear::Candle(_) | Linear::Split(_) => None,
        };
        hidden.extend(row.ok_or_else(outside)?);
        Ok(())
    }

    /// Runs `tokens[i]` at the end of `sequences[i]` for every `i` in one pass (prompt chunks
    /// and generation steps alike) and returns each sequence's logits after its last token.
    /// The weights are read once for all of them, and each sequence's logits are bit for bit
    /// those it gets with the same tokens alone.
    pub(crate) fn advance(
        &self,
        sequences: &mut [&mut Sequence],
        tokens: &[&[u32]],
    ) -> CandleResult<Logits> {
        if sequences.len() != tokens.len() || sequences.is_empty() {
            candle_core::bail!(
                "{} sequences for {} token lists",
                sequences.len(),
                tokens.len()
            );
        }
        for (sequence, tokens) in sequences.iter().zip(tokens) {
            if tokens.is_empty() {
                candle_core::bail!("no tokens to run");
            }
            if sequence.cache.len() != self.layers.len()
                || sequence.head_dim != self.shape.head_dim
                || sequence
                    .cache
                    .iter()
                    .any(|cache| cache.keys.len() != self.shape.num_kv_heads)
            {
                candle_core::bail!("the sequence belongs to another model");
            }
            let end = sequence.len() + tokens.len();
            if end > self.shape.max_positions {
                candle_core::bail!(
                    "{end} positions exceed the model's {}",
                    self.shape.max_positions
                );
            }
        }
        if tokens.iter().all(|tokens| tokens.len() == 1) {
            // A generation step: its ~150 parallel operations on one team of threads.
            Team::with(|team| self.run_layers(Some(team), sequences, tokens))
        } else {
            self.run_layers(None, sequences, tokens)
        }
    }

    /// [`Self::advance`] after its checks; a generation step's operations on `team`.
    fn run_layers(
        &self,
        team: Option<&Team>,
        sequences: &mut [&mut Sequence],
        tokens: &[&[u32]],
    ) -> CandleResult<Logits> {
        let kv_dim = self.shape.kv_dim();
        let num_rows: usize = tokens.iter().map(|tokens| tokens.len()).sum();
        let dim = self.shape.dim;
        let mut hidden = Vec::with_capacity(num_rows * dim);
        for &token in tokens.iter().flat_map(|tokens| tokens.iter()) {
            self.embed_token(token, &mut hidden)?;
        }

        let qkv_width = self.shape.q_dim() + 2 * kv_dim;
        for (index, layer) in self.layers.iter().enumerate() {
            let normed = rms_norm_rows(&hidden, &layer.attention_norm, self.shape.norm_eps);
            let mut qkv = layer.qkv.apply(team, &normed, num_rows, dim)?;
            if qkv.len() != num_rows * qkv_width {
                candle_core::bail!(
                    "projection output has {} values, expected {}",
                    qkv.len(),
                    num_rows * qkv_width
                );
            }
            // Each sequence attends over its own cache.
            let mut parts = Vec::with_capacity(sequences.len());
            let mut rest = qkv.as_mut_slice();
            for (sequence, tokens) in sequences.iter_mut().zip(tokens) {
                let (part, tail) = rest.split_at_mut(tokens.len() * qkv_width);
                rest = tail;
                let start = sequence.len();
                parts.push((&mut sequence.cache[index], part, start, tokens.len()));
            }
            // A team only for a generation step: one new token each.
            let attention = if let Some(team) = team {
                // One new token each (a generation step): the heads of every sequence are
                // one set of tasks; a task per sequence, each forking over its heads, left
                // the threads waiting on one another for work this small. A task takes the
                // query heads of one key/value head, which then reads its keys and values
                // once for all of them, even where that leaves the threads uneven (one
                // answer: SmolLM2's three groups on two threads). Half a group per task
                // there read every key and value twice: on AMD EPYC, whose last-level cache
                // does not hold the caches, generation after a 480-token prompt ran 15-25 %
                // slower than with whole groups; splitting each group's positions and then
                // its value columns between the threads (same bits, three passes) was no
                // faster than whole groups. Each head's result is the same whatever its task.
                for (cache, part, start, _) in parts.iter_mut() {
                    self.append_positions(layer, cache, part, *start)?;
                }
                let (q_dim, head_dim) = (self.shape.q_dim(), self.shape.head_dim);
                let group = self.shape.num_heads / self.shape.num_kv_heads;
                let mut attention = vec![0.0_f32; num_rows * q_dim];
                let mut tasks = Vec::with_capacity(num_rows * self.shape.num_kv_heads);
                for (row, out) in attention.chunks_exact_mut(q_dim).enumerate() {
                    for (kv_head, out) in out.chunks_exact_mut(group * head_dim).enumerate() {
                        tasks.push((row, kv_head, out));
                    }
                }
                let attend = |row: usize, kv_head: usize, out: &mut [f32]| {
                    let (cache, part, start, _) = &parts[row];
                    let queries = &part[kv_head * out.len()..][..out.len()];
                    attend_heads(&self.shape, cache, queries, out, kv_head, start + 1, true);
                };
                // Contiguous runs of tasks (the answers' caches read in order; one task a run
                // where there are few), two a thread, each behind a lock of its own that one
                // thread takes once. Claimed one by one, the 12 tasks of four answers
                // interleaved over both threads cost 20 %.
                let (count, threads) = (tasks.len(), rayon::current_num_threads());
                let parts = if count <= 3 * threads {
                    count
                } else {
                    2 * threads
                };
                let mut tasks = tasks.into_iter();
                let runs: Vec<Mutex<Vec<_>>> = (0..parts)
                    .map(|part| {
                        let length = team::share(count, parts, part).len();
                        Mutex::new(tasks.by_ref().take(length).collect())
                    })
                    .collect();
                team.run(runs.len(), &|run| {
                    let mut run = runs[run]
                        .lock()
                        .unwrap_or_else(|poison| poison.into_inner());
                    for (row, head, out) in run.iter_mut() {
                        attend(*row, *head, out);
                    }
                });
                attention
            } else {
                let attended = parts
                    .par_iter_mut()
                    .map(|(cache, part, start, num_tokens)| {
                        self.append_positions(layer, cache, part, *start)?;
                        attend_chunk(&self.shape, cache, part, *start, *num_tokens)
                    })
                    .collect::<CandleResult<Vec<_>>>()?;
                attended.concat()
            };
            let projected =
                layer
                    .attention_output
                    .apply(team, &attention, num_rows, self.shape.q_dim())?;
            add_in_place(&mut hidden, &projected);

            let normed = rms_norm_rows(&hidden, &layer.ffn_norm, self.shape.norm_eps);
            let gate_up = layer.gate_up.apply(team, &normed, num_rows, dim)?;
            let activated = silu_gate(&gate_up, self.shape.feed_forward);
            let down = layer
                .down
                .apply(team, &activated, num_rows, self.shape.feed_forward)?;
            add_in_place(&mut hidden, &down);
        }

        let mut last_rows = Vec::with_capacity(sequences.len() * dim);
        let mut row_end = 0;
        for (sequence, tokens) in sequences.iter_mut().zip(tokens) {
            sequence.tokens.extend_from_slice(tokens);
            row_end += tokens.len();
            last_rows.extend_from_slice(&hidden[(row_end - 1) * dim..row_end * dim]);
        }
        let normed = rms_norm_rows(&last_rows, &self.final_norm, self.shape.norm_eps);
        let values = self.output.apply(team, &normed, sequences.len(), dim)?;
        Ok(Logits {
            vocab_size: values.len() / sequences.len(),
            values,
        })
    }
}

impl Decoder {
    /// Adds the biases to `qkv`'s rows (new positions `start..`), applies rotary embeddings
    /// to their queries and keys, and appends their keys and values to `cache`.
    fn append_positions(
        &self,
        layer: &Layer,
        cache: &mut LayerCache,
        qkv: &mut [f32],
        start: usize,
    ) -> CandleResult<()> {
        let shape = &self.shape;
        let (q_dim, kv_dim, head_dim) = (shape.q_dim(), shape.kv_dim(), shape.head_dim);
        let row_len = q_dim + 2 * kv_dim;
        if !qkv.len().is_multiple_of(row_len) {
            candle_core::bail!(
                "projection output has {} values, not rows of {row_len}",
                qkv.len()
            );
        }
        let half = head_dim / 2;
        for (offset, row) in qkv.chunks_exact_mut(row_len).enumerate() {
            if let Some(bias) = &layer.qkv_bias {
                add_in_place(row, bias);
            }
            let position = start + offset;
            let table = position * half..(position + 1) * half;
            let (cos, sin) = (&self.cos[table.clone()], &self.sin[table]);
            let (query_key, value) = row.split_at_mut(q_dim + kv_dim);
            for head in query_key.chunks_exact_mut(head_dim) {
                rotate(head, cos, sin, shape.rope_neox);
            }
            let heads = query_key[q_dim..].chunks_exact(head_dim);
            for (keys, key) in cache.keys.iter_mut().zip(heads) {
                keys.extend_from_slice(key);
            }
            for (values, head) in cache.values.iter_mut().zip(value.chunks_exact(head_dim)) {
                values.extend_from_slice(head);
            }
        }
        Ok(())
    }
}

/// One new token's attention for the query heads of key/value head `kv_head` (`queries` and
/// `out` hold `out.len() / head_dim` heads) over the first `num_positions`
/// positions of `cache` (its own included). `from_memory` for a generation step, whose
/// cache the kernel then asks for ahead of reading it (a prompt chunk's is in cache); the
/// same result either way.
fn attend_heads(
    shape: &Shape,
    cache: &LayerCache,
    queries: &[f32],
    out: &mut [f32],
    kv_head: usize,
    num_positions: usize,
    from_memory: bool,
) {
    let head_dim = shape.head_dim;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let heads = out.len() / head_dim;
    let mut scores = vec![0.0_f32; heads * num_positions];
    let keys = &cache.keys[kv_head];
    let values = &cache.values[kv_head];
    let fetch = from_memory.then_some(values.as_slice());
    group_scores(queries, head_dim, keys, fetch, head_dim, scale, &mut scores);
    for row in scores.chunks_exact_mut(num_positions) {
        softmax_in_place(row);
    }
    group_weighted_rows(&scores, values, head_dim, head_dim, out);
}

/// The attention output `[num_tokens, q_dim]` of positions `start..start + num_tokens`, whose
/// keys and values `cache` already holds ([`Decoder::append_positions`]): a prompt chunk (a
/// step's single new tokens go through [`attend_heads`] directly, see `Decoder::advance`). Each
/// token through the same grouped kernels as a generated token, over the positions up to its
/// own, so a prompt's attention is the same whether it runs in chunks or a token at a time.
/// Through candle's matrix products (a score matrix per key/value head, masked afterwards)
/// a 39-token chunk spent 6-7 ms of its ~30 in attention, mostly per-product overhead.
fn attend_chunk(
    shape: &Shape,
    cache: &LayerCache,
    qkv: &[f32],
    start: usize,
    num_tokens: usize,
) -> CandleResult<Vec<f32>> {
    let (q_dim, kv_dim, head_dim) = (shape.q_dim(), shape.kv_dim(), shape.head_dim);
    let row_len = q_dim + 2 * kv_dim;
    if qkv.len() != num_tokens * row_len {
        candle_core::bail!(
            "projection output has {} values, expected {}",
            qkv.len(),
            num_tokens * row_len
        );
    }
    if cache.positions(head_dim) < start + num_tokens {
        candle_core::bail!(
            "the cache holds {} positions, the chunk ends at {}",
            cache.positions(head_dim),
            start + num_tokens
        );
    }
    let group_width = shape.num_heads / shape.num_kv_heads * head_dim;
    let mut output = vec![0.0_f32; num_tokens * q_dim];
    output
        .par_chunks_exact_mut(q_dim)
        .zip(qkv.par_chunks_exact(row_len))
        .enumerate()
        .for_each(|(token, (out, row))| {
            let groups = out
                .chunks_exact_mut(group_width)
                .zip(row[..q_dim].chunks_exact(group_width));
            for (kv_head, (out, queries)) in groups.enumerate() {
                attend_heads(
                    shape,
                    cache,
                    queries,
                    out,
                    kv_head,
                    start + token + 1,
                    false,
                );
            }
        });
    Ok(output)
}

/// Rotates one head's vector by the position's angles.
fn rotate(head: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
    let half = head.len() / 2;
    if neox {
        let (first, second) = head.split_at_mut(half);
        for (((x0, x1), &c), &s) in first.iter_mut().zip(second).zip(cos).zip(sin) {
            let (a, b) = (*x0, *x1);
            *x0 = a * c - b * s;
            *x1 = a * s + b * c;
        }
    } else {
        for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * c - b * s;
            pair[1] = a * s + b * c;
        }
    }
}

/// RMS-normalises each row of `rows` (rows of `weight.len()`) and scales by `weight`.
fn rms_norm_rows(rows: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let mut output = vec![0.0_f32; rows.len()];
    let norm = |(out, row): (&mut [f32], &[f32])| {
        let mean_square = lane_sum(row, |x| x * x) / row.len() as f32;
        let inverse = 1.0 / (mean_square + eps).sqrt();
        for ((out, &x), &w) in out.iter_mut().zip(row).zip(weight) {
            *out = x * inverse * w;
        }
    };
    by_rows(&mut output, rows, weight.len(), weight.len(), norm);
    output
}

/// `silu(gate) * up` for rows laid out as `[gate (width) | up (width)]`.
fn silu_gate(gate_up: &[f32], width: usize) -> Vec<f32> {
    let mut output = vec![0.0_f32; gate_up.len() / 2];
    let gate = |(out, row): (&mut [f32], &[f32])| {
        let (gate, up) = row.split_at(width);
        for ((out, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            *out = g / (1.0 + exp(-g)) * u;
        }
    };
    by_rows(&mut output, gate_up, width, 2 * width, gate);
    output
}

/// Runs `f` on each (output row, input row) pair; on every thread for a prompt chunk's many
/// rows (one thread did a chunk's norms and gates in turn while the other waited), on this
/// one for a few. Each row's values are the same either way.
fn by_rows(
    output: &mut [f32],
    input: &[f32],
    out_width: usize,
    in_width: usize,
    f: impl Fn((&mut [f32], &[f32])) + Sync + Send,
) {
    const MANY_ROWS: usize = 8;
    if input.len() / in_width >= MANY_ROWS {
        output
            .par_chunks_exact_mut(out_width)
            .zip(input.par_chunks_exact(in_width))
            .for_each(f);
    } else {
        output
            .chunks_exact_mut(out_width)
            .zip(input.chunks_exact(in_width))
            .for_each(f);
    }
}

fn add_in_place(target: &mut [f32], addend: &[f32]) {
    for (target, &addend) in target.iter_mut().zip(addend) {
        *target += addend;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_and_half_split_rotations_rotate_the_right_pairs() {
        let angle = std::f32::consts::FRAC_PI_2;
        let (cos, sin) = ([angle.cos(), 1.0], [angle.sin(), 0.0]);
        let mut interleaved = [1.0, 0.0, 5.0, 7.0];
        rotate(&mut interleaved, &cos, &sin, false);
        assert!((interleaved[0] - 0.0).abs() < 1e-6 && (interleaved[1] - 1.0).abs() < 1e-6);
        assert_eq!(&interleaved[2..], &[5.0, 7.0]);
        let mut halves = [1.0, 5.0, 0.0, 7.0];
        rotate(&mut halves, &cos, &sin, true);
        assert!((halves[0] - 0.0).abs() < 1e-6 && (halves[2] - 1.0).abs() < 1e-6);
        assert_eq!((halves[1], halves[3]), (5.0, 7.0));
    }

    #[test]
    fn k_quant_projections_run_through_our_kernels_and_match_candles() {
        let device = Device::Cpu;
        let columns = 512;
        let weights = |rows: usize, dtype: GgmlDType| {
            let values = Tensor::randn(0f32, 1.0, (rows, columns), &device).expect("randn");
            QTensor::quantize(&values, dtype).expect("quantize")
        };
        // Q4_K_M's mix: a Q4_K part and a Q6_K part reading the same input.
        let parts = [weights(40, GgmlDType::Q4K), weights(24, GgmlDType::Q6K)];
        let copies = || {
            parts
                .iter()
                .map(|part| {
                    QTensor::quantize(&part.dequantize(&device).expect("values"), part.dtype())
                        .expect("quantize")
                })
                .collect::<Vec<_>>()
        };
        let mixed = Linear::new(copies()).expect("linear");
        let single = Linear::new(vec![copies().remove(0)]).expect("linear");
        if has_fast_path() {
            assert!(matches!(&mixed, Linear::Split(split) if matches!(
                split.as_slice(),
                [Linear::Q4_1(_), Linear::Q8_0(_)]
            )));
            assert!(matches!(single, Linear::Q4_1(_)));
        }
        for rows in [1, 5] {
            let input = Tensor::randn(0f32, 1.0, (rows, columns), &device).expect("randn");
            let values: Vec<f32> = input.flatten_all().and_then(|t| t.to_vec1()).expect("v");
            let expected: Vec<Vec<f32>> = parts
                .iter()
                .map(|part| {
                    let matmul = QMatMul::from_qtensor(
                        QTensor::quantize(&part.dequantize(&device).expect("v"), part.dtype())
                            .expect("quantize"),
                    )
                    .expect("matmul");
                    matmul
                        .forward(&input)
                        .and_then(|t| t.flatten_all())
                        .and_then(|t| t.to_vec1())
                        .expect("forward")
                })
                .collect();
            let actual = mixed.apply(None, &values, rows, columns).expect("apply");
            assert_eq!(actual.len(), rows * 64);
            for row in 0..rows {
                let mut offset = 0;
                for part in &expected {
                    let width = part.len() / rows;
                    for column in 0..width {
                        let (a, e) = (
                            actual[row * 64 + offset + column],
                            part[row * width + column],
                        );
                        // 8-bit activations per 32 (ours) against per 256 (candle's Q8_K),
                        // and Q6_K re-quantized to Q8_0: close, not equal.
                        assert!((a - e).abs() < 0.05 * (columns as f32).sqrt(), "{a} vs {e}");
                    }
                    offset += width;
                }
            }
        }
    }

    /// The shipped SmolLM2 on Vellum's decoder.
    fn shipped_decoder() -> Decoder {
        let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
            });
        let path = models_dir.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            path.is_file(),
            "{} is missing: run deploy/fetch-models.sh (or set VELLUM_MODELS_DIR)",
            path.display()
        );
        let mut file = std::fs::File::open(&path).expect("open");
        let content = Content::read(&mut file).expect("gguf");
        Decoder::load("llama", &content, &mut file, 256, None).expect("load")
    }

    #[test]
    fn a_prompt_gives_the_same_logits_in_chunks_as_a_token_at_a_time() {
        // A prompt chunk's attention and a generated token's are the same kernels over the
        // same positions, and every product's row is its own, so how a prompt is cut into
        // chunks changes no bit of its logits.
        let decoder = shipped_decoder();
        let tokens: Vec<u32> = (0..41_u32).map(|i| (i * 997 + 13) % 49_152).collect();
        let logits = |chunks: &[usize]| -> Vec<u32> {
            let mut sequence = decoder.new_sequence();
            let mut start = 0;
            let mut last = None;
            for &length in chunks {
                let chunk = &tokens[start..start + length];
                last = Some(
                    decoder
                        .forward(&mut sequence, chunk, start)
                        .expect("forward"),
                );
                start += length;
            }
            assert_eq!(start, tokens.len());
            let last = last.expect("a chunk").flatten_all().expect("flat");
            let values: Vec<f32> = last.to_vec1().expect("values");
            values.iter().map(|value| value.to_bits()).collect()
        };
        let whole = logits(&[41]);
        assert_eq!(logits(&[6, 13, 22]), whole);
        assert_eq!(logits(&[9, 1, 31]), whole);
        assert_eq!(logits(&[1; 41]), whole, "a token at a time, as generated");
    }

    #[test]
    fn one_pass_over_prompt_chunks_and_steps_gives_each_sequence_its_logits_alone() {
        // The batch worker's pass: two prompts' chunks (one from the start, one after a
        // prefix) and two generation steps, at different depths, together.
        let decoder = shipped_decoder();
        let tokens = |seed: u32, count: u32| -> Vec<u32> {
            (0..count).map(|i| (i * 997 + seed) % 49_152).collect()
        };
        let bits = |values: &[f32]| -> Vec<u32> { values.iter().map(|v| v.to_bits()).collect() };
        // (tokens already in the cache, tokens of this pass)
        let work = [
            (tokens(1, 0), tokens(2, 17)),
            (tokens(3, 9), tokens(4, 6)),
            (tokens(5, 23), tokens(6, 1)),
            (tokens(7, 4), tokens(8, 1)),
        ];
        let prefilled = || -> Vec<Sequence> {
            work.iter()
                .map(|(before, _)| {
                    let mut sequence = decoder.new_sequence();
                    if !before.is_empty() {
                        decoder.forward(&mut sequence, before, 0).expect("prefix");
                    }
                    sequence
                })
                .collect()
        };
        let alone: Vec<Vec<u32>> = prefilled()
            .iter_mut()
            .zip(&work)
            .map(|(sequence, (before, now))| {
                let logits = decoder
                    .forward(sequence, now, before.len())
                    .expect("alone")
                    .flatten_all()
                    .and_then(|logits| logits.to_vec1::<f32>())
                    .expect("values");
                bits(&logits)
            })
            .collect();
        let mut sequences = prefilled();
        let mut each: Vec<&mut Sequence> = sequences.iter_mut().collect();
        let now: Vec<&[u32]> = work.iter().map(|(_, now)| now.as_slice()).collect();
        let together = decoder.advance(&mut each, &now).expect("together");
        let together: Vec<Vec<u32>> = together.rows().map(bits).collect();
        assert_eq!(together.len(), work.len());
        for (index, (together, alone)) in together.iter().zip(&alone).enumerate() {
            assert!(together == alone, "sequence {index}'s logits differ");
        }
        for (sequence, (before, now)) in sequences.iter().zip(&work) {
            assert_eq!(sequence.len(), before.len() + now.len());
        }
    }

    #[test]
    fn rms_norm_and_silu_gate_match_their_formulas() {
        let normed = rms_norm_rows(&[3.0, 4.0], &[1.0, 2.0], 0.0);
        let rms = (12.5_f32).sqrt();
        assert!((normed[0] - 3.0 / rms).abs() < 1e-6);
        assert!((normed[1] - 8.0 / rms).abs() < 1e-6);
        let activated = silu_gate(&[1.0, -2.0, 3.0, 4.0], 2);
        let silu = |x: f32| x / (1.0 + (-x).exp());
        assert!((activated[0] - silu(1.0) * 3.0).abs() < 1e-5);
        assert!((activated[1] - silu(-2.0) * 4.0).abs() < 1e-5);
    }
}
