//! Tiny random-weight GGUF files that the tests write themselves, one per architecture, with
//! the real tensor names and metadata keys of that architecture (as llama.cpp's converter writes
//! them) and a real tokenizer vocabulary in the metadata.

#![allow(dead_code)] // each test binary uses a different part

pub mod smollm2;

/// The largest absolute difference between two logit vectors, and the largest absolute
/// expected logit (the scale a tolerance is relative to).
pub fn worst_logit_difference(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "logit vectors differ in length"
    );
    let scale = expected.iter().fold(0.0_f32, |max, x| max.max(x.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .fold(0.0_f32, |max, (a, e)| max.max((a - e).abs()));
    (worst, scale)
}

use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

pub const TINY_DIM: usize = 64;
pub const TINY_FEED_FORWARD: usize = 128;
pub const TINY_LAYERS: usize = 2;
pub const TINY_HEADS: usize = 2;
pub const TINY_KV_HEADS: usize = 1;
pub const TINY_EXPERTS: usize = 4;
pub const TINY_CONTEXT: u32 = 256;

/// The architecture (and layout) of a tiny model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyArch {
    /// `llama` (Llama 2/3, Mistral, SmolLM2): separate q/k/v, gated MLP, byte-level BPE.
    Llama,
    /// `llama` with 4 experts, 2 used per token, stacked `ffn_*_exps` tensors (llama.cpp's
    /// current Mixtral layout).
    MixtralStacked,
    /// `llama` with 4 experts as separate `ffn_*.{i}` tensors (older Mixtral GGUFs).
    MixtralPerExpert,
    /// `qwen2`: q/k/v with biases, Qwen's pre-tokenizer.
    Qwen2,
    /// `phi3`: fused `attn_qkv` and `ffn_up` (gate and up), SentencePiece vocabulary, Phi-3's
    /// `<|user|>`/`<|end|>` chat format.
    Phi3,
}

impl TinyArch {
    pub const ALL: [TinyArch; 5] = [
        TinyArch::Llama,
        TinyArch::MixtralStacked,
        TinyArch::MixtralPerExpert,
        TinyArch::Qwen2,
        TinyArch::Phi3,
    ];

    /// `general.architecture` as written in the file.
    pub fn gguf_name(self) -> &'static str {
        match self {
            TinyArch::Llama | TinyArch::MixtralStacked | TinyArch::MixtralPerExpert => "llama",
            TinyArch::Qwen2 => "qwen2",
            TinyArch::Phi3 => "phi3",
        }
    }

    /// What the chat template renders for one user message `hello`, generation prompt added.
    pub fn rendered_hello(self) -> &'static str {
        match self {
            TinyArch::Phi3 => "<|user|>\nhello<|end|>\n<|assistant|>\n",
            _ => "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
        }
    }
}

/// GPT-2's byte-level characters, in byte order.
pub fn byte_level_chars() -> Vec<char> {
    let is_printable = |byte: u32| matches!(byte, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 256;
    (0..256u32)
        .map(|byte| {
            if is_printable(byte) {
                char::from_u32(byte)
            } else {
                next += 1;
                char::from_u32(next - 1)
            }
            .unwrap_or(' ')
        })
        .collect()
}

fn string_array(values: &[String]) -> Value {
    Value::Array(values.iter().map(|v| Value::String(v.clone())).collect())
}

thread_local! {
    /// xorshift64* state: each writer reseeds it, so a model's weights depend only on its
    /// architecture, never on test order or threads (candle's CPU randn cannot be seeded).
    static RNG_STATE: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

fn reseed(label: &str) {
    // FNV-1a of the label.
    let seed = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    RNG_STATE.with(|state| state.set(seed | 1));
}

/// A uniform float in (0, 1).
fn next_uniform() -> f32 {
    RNG_STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        ((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    })
}

/// Normally distributed values (Box-Muller), reproducible after [`reseed`].
fn randn(shape: &[usize], std: f32) -> Tensor {
    let len: usize = shape.iter().product();
    let values: Vec<f32> = (0..len)
        .map(|_| {
            let (u, v) = (next_uniform(), next_uniform());
            std * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap_or_else(|err| panic!("randn: {err}"))
}

fn quantized(tensor: &Tensor, dtype: GgmlDType) -> QTensor {
    QTensor::quantize(tensor, dtype).unwrap_or_else(|err| panic!("quantize: {err}"))
}

thread_local! {
    /// Set while [`write_tiny_model_f32`] writes: every weight as F32.
    static ALL_F32: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn random(shape: &[usize], dtype: GgmlDType) -> QTensor {
    let dtype = if ALL_F32.with(|cell| cell.get()) {
        GgmlDType::F32
    } else {
        dtype
    };
    quantized(&randn(shape, 0.2), dtype)
}

/// Writes the same tiny model with every weight as F32 (same random values before
/// quantization): for comparing engines on the architecture alone, without the differences
/// of their quantized kernels.
pub fn write_tiny_model_f32(path: &Path, arch: TinyArch) {
    ALL_F32.with(|cell| cell.set(true));
    write_tiny_model(path, arch);
    ALL_F32.with(|cell| cell.set(false));
}

fn ones(len: usize) -> QTensor {
    let tensor =
        Tensor::ones(len, DType::F32, &Device::Cpu).unwrap_or_else(|err| panic!("ones: {err}"));
    quantized(&tensor, GgmlDType::F32)
}

/// A vocabulary and chat template in GGUF metadata form.
struct Vocabulary {
    metadata: Vec<(&'static str, Value)>,
    size: usize,
    /// Tokens that end or structure generation: their output rows are zero.
    control_ids: Vec<usize>,
    /// Two ordinary tokens whose output rows are opposite, so one of them always scores at
    /// least as high as every control token: greedy generation never ends early.
    winner_ids: [usize; 2],
}

/// Byte-level BPE (SmolLM2, Llama 3, Qwen2): 3 control tokens, 256 bytes, 2 merges.
fn byte_pair_vocabulary(pre: &str) -> Vocabulary {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    tokens.extend(byte_level_chars().iter().map(|c| c.to_string()));
    tokens.extend(["he", "hel"].map(String::from));
    let mut token_types = vec![Value::I32(3); 3];
    token_types.extend(std::iter::repeat_n(Value::I32(1), tokens.len() - 3));
    let template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    Vocabulary {
        size: tokens.len(),
        metadata: vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.pre", Value::String(pre.into())),
            ("tokenizer.ggml.tokens", string_array(&tokens)),
            ("tokenizer.ggml.token_type", Value::Array(token_types)),
            (
                "tokenizer.ggml.merges",
                string_array(&["h e".to_string(), "he l".to_string()]),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(2)),
            ("tokenizer.chat_template", Value::String(template.into())),
        ],
        control_ids: vec![0, 1, 2],
        winner_ids: [3 + usize::from(b'a'), 3 + usize::from(b'b')],
    }
}

/// SentencePiece (Llama 2, Mistral, Phi-3): `<unk>`, `<s>`, `</s>`, Phi-3's three chat
/// markers, 256 byte tokens, and a few scored pieces.
fn sentencepiece_vocabulary() -> Vocabulary {
    let mut tokens: Vec<String> = [
        "<unk>",
        "<s>",
        "</s>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
    ]
    .map(String::from)
    .to_vec();
    let mut token_types = vec![
        Value::I32(2),
        Value::I32(3),
        Value::I32(3),
        Value::I32(3),
        Value::I32(3),
        Value::I32(3),
    ];
    let mut scores = vec![Value::F32(0.0); tokens.len()];
    for byte in 0..=255u8 {
        tokens.push(format!("<0x{byte:02X}>"));
        token_types.push(Value::I32(6));
        scores.push(Value::F32(0.0));
    }
    for (piece, score) in [
        ("▁", -1.0),
        ("▁h", -2.0),
        ("▁he", -1.5),
        ("e", -3.0),
        ("l", -3.0),
    ] {
        tokens.push(piece.to_string());
        token_types.push(Value::I32(1));
        scores.push(Value::F32(score));
    }
    let first_piece = tokens.len() - 5;
    let template = "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + '<|end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}";
    Vocabulary {
        size: tokens.len(),
        metadata: vec![
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.tokens", string_array(&tokens)),
            ("tokenizer.ggml.token_type", Value::Array(token_types)),
            ("tokenizer.ggml.scores", Value::Array(scores)),
            ("tokenizer.ggml.bos_token_id", Value::U32(1)),
            ("tokenizer.ggml.eos_token_id", Value::U32(5)),
            ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
            ("tokenizer.chat_template", Value::String(template.into())),
        ],
        control_ids: vec![0, 1, 2, 3, 4, 5],
        winner_ids: [first_piece + 1, first_piece + 2],
    }
}

/// The output projection: random rows, control rows zero, the two winners opposite.
fn output_rows(vocab: &Vocabulary) -> QTensor {
    let mut rows = randn(&[vocab.size, TINY_DIM], 0.2)
        .to_vec2::<f32>()
        .unwrap_or_else(|err| panic!("to_vec2: {err}"));
    let direction: Vec<f32> = randn(&[TINY_DIM], 1.0)
        .to_vec1()
        .unwrap_or_else(|err| panic!("to_vec1: {err}"));
    for &id in &vocab.control_ids {
        rows[id] = vec![0.0; TINY_DIM];
    }
    rows[vocab.winner_ids[0]] = direction.clone();
    rows[vocab.winner_ids[1]] = direction.iter().map(|x| -x).collect();
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    let tensor = Tensor::from_vec(flat, (vocab.size, TINY_DIM), &Device::Cpu)
        .unwrap_or_else(|err| panic!("from_vec: {err}"));
    quantized(&tensor, GgmlDType::F32)
}

/// Writes a 2-layer model of `arch`, named by the file. Block weights are mostly Q4_1/Q5_0 so
/// that loading exercises the Q8_0 conversion.
pub fn write_tiny_model(path: &Path, arch: TinyArch) {
    write_tiny_model_named(path, arch, arch.gguf_name());
}

/// Like [`write_tiny_model`] but with `general.architecture` set to `architecture` (to test
/// unsupported ones with an otherwise valid file).
pub fn write_tiny_model_named(path: &Path, arch: TinyArch, architecture: &str) {
    reseed(&format!("{arch:?}/{architecture}"));
    let vocab = match arch {
        TinyArch::Phi3 => sentencepiece_vocabulary(),
        TinyArch::Qwen2 => byte_pair_vocabulary("qwen2"),
        _ => byte_pair_vocabulary("smollm"),
    };
    let key = |suffix: &str| format!("{}.{suffix}", arch.gguf_name());
    let head_dim = TINY_DIM / TINY_HEADS;
    let kv_dim = head_dim * TINY_KV_HEADS;
    let mut metadata: Vec<(String, Value)> = vec![
        (
            "general.architecture".into(),
            Value::String(architecture.into()),
        ),
        ("general.name".into(), Value::String("tiny".into())),
        (key("context_length"), Value::U32(TINY_CONTEXT)),
        (key("embedding_length"), Value::U32(TINY_DIM as u32)),
        (
            key("feed_forward_length"),
            Value::U32(TINY_FEED_FORWARD as u32),
        ),
        (key("block_count"), Value::U32(TINY_LAYERS as u32)),
        (key("attention.head_count"), Value::U32(TINY_HEADS as u32)),
        (
            key("attention.head_count_kv"),
            Value::U32(TINY_KV_HEADS as u32),
        ),
        (key("rope.dimension_count"), Value::U32(head_dim as u32)),
        (key("rope.freq_base"), Value::F32(10_000.0)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
    ];
    if matches!(arch, TinyArch::MixtralStacked | TinyArch::MixtralPerExpert) {
        metadata.push(("llama.expert_count".into(), Value::U32(TINY_EXPERTS as u32)));
        metadata.push(("llama.expert_used_count".into(), Value::U32(2)));
    }
    let output = output_rows(&vocab);
    metadata.extend(
        vocab
            .metadata
            .into_iter()
            .map(|(key, value)| (key.to_string(), value)),
    );

    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            random(&[vocab.size, TINY_DIM], GgmlDType::F32),
        ),
        ("output_norm.weight".into(), ones(TINY_DIM)),
        ("output.weight".into(), output),
    ];
    for layer in 0..TINY_LAYERS {
        let name = |suffix: &str| format!("blk.{layer}.{suffix}");
        tensors.push((name("attn_norm.weight"), ones(TINY_DIM)));
        tensors.push((name("ffn_norm.weight"), ones(TINY_DIM)));
        tensors.push((
            name("attn_output.weight"),
            random(&[TINY_DIM, TINY_DIM], GgmlDType::Q8_0),
        ));
        if arch == TinyArch::Phi3 {
            tensors.push((
                name("attn_qkv.weight"),
                random(&[TINY_DIM + 2 * kv_dim, TINY_DIM], GgmlDType::Q4_1),
            ));
            tensors.push((
                name("ffn_up.weight"),
                random(&[2 * TINY_FEED_FORWARD, TINY_DIM], GgmlDType::Q5_0),
            ));
            tensors.push((
                name("ffn_down.weight"),
                random(&[TINY_DIM, TINY_FEED_FORWARD], GgmlDType::Q4_1),
            ));
            continue;
        }
        tensors.push((
            name("attn_q.weight"),
            random(&[TINY_DIM, TINY_DIM], GgmlDType::Q4_1),
        ));
        tensors.push((
            name("attn_k.weight"),
            random(&[kv_dim, TINY_DIM], GgmlDType::Q4_1),
        ));
        tensors.push((
            name("attn_v.weight"),
            random(&[kv_dim, TINY_DIM], GgmlDType::Q4_1),
        ));
        if arch == TinyArch::Qwen2 {
            tensors.push((name("attn_q.bias"), random(&[TINY_DIM], GgmlDType::F32)));
            tensors.push((name("attn_k.bias"), random(&[kv_dim], GgmlDType::F32)));
            tensors.push((name("attn_v.bias"), random(&[kv_dim], GgmlDType::F32)));
        }
        let gate = [TINY_FEED_FORWARD, TINY_DIM];
        let down = [TINY_DIM, TINY_FEED_FORWARD];
        match arch {
            TinyArch::MixtralStacked => {
                tensors.push((
                    name("ffn_gate_inp.weight"),
                    random(&[TINY_EXPERTS, TINY_DIM], GgmlDType::F32),
                ));
                let stacked = |shape: [usize; 2]| [TINY_EXPERTS, shape[0], shape[1]];
                tensors.push((
                    name("ffn_gate_exps.weight"),
                    random(&stacked(gate), GgmlDType::Q4_1),
                ));
                tensors.push((
                    name("ffn_up_exps.weight"),
                    random(&stacked(gate), GgmlDType::Q8_0),
                ));
                tensors.push((
                    name("ffn_down_exps.weight"),
                    random(&stacked(down), GgmlDType::Q4_0),
                ));
            }
            TinyArch::MixtralPerExpert => {
                tensors.push((
                    name("ffn_gate_inp.weight"),
                    random(&[TINY_EXPERTS, TINY_DIM], GgmlDType::F32),
                ));
                for expert in 0..TINY_EXPERTS {
                    tensors.push((
                        name(&format!("ffn_gate.{expert}.weight")),
                        random(&gate, GgmlDType::Q4_1),
                    ));
                    tensors.push((
                        name(&format!("ffn_up.{expert}.weight")),
                        random(&gate, GgmlDType::Q8_0),
                    ));
                    tensors.push((
                        name(&format!("ffn_down.{expert}.weight")),
                        random(&down, GgmlDType::Q4_0),
                    ));
                }
            }
            _ => {
                tensors.push((name("ffn_gate.weight"), random(&gate, GgmlDType::Q4_1)));
                tensors.push((name("ffn_up.weight"), random(&gate, GgmlDType::Q5_0)));
                tensors.push((name("ffn_down.weight"), random(&down, GgmlDType::Q4_1)));
            }
        }
    }
    let metadata_refs: Vec<(&str, &Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap_or_else(|err| panic!("create: {err}"));
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs)
        .unwrap_or_else(|err| panic!("write gguf: {err}"));
}
