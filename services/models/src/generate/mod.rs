//! Text generation with a local GGUF model: [`GgufGenerator`] reads the weights, tokenizer and
//! chat template from one GGUF file and runs candle's quantized transformers on the CPU.
//!
//! Threading: with Vellum's own decoder (dense llama and qwen2 on the CPU), concurrent
//! generations share decode steps ([`batch`]: continuous batching), each with its own KV cache.
//! candle's implementations (phi3, mixtures of experts, GPUs) run one generation at a time
//! behind a mutex. Every generation starts from an empty KV cache, or from the shared system
//! prompt's (see [`GenerationParams::share_system_prompt`]).

pub(crate) mod attention;
mod batch;
mod decoder;
mod panel_cache;
pub(crate) mod qmatmul;
mod remote;
mod sampler;
mod stream;
mod team;
mod template;
mod tokenizer;
mod weights;

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use remote::{RemoteConfig, RemoteGenerator};
use stream::{StreamStep, TextStream};
use template::{ChatTemplate, FALLBACK_CHAT_TEMPLATE};
use tokenizer::GgufTokenizer;
use weights::ModelWeights;

/// Prompt tokens run through the model per forward pass. Bounds the attention matrix of prompt
/// processing (heads x chunk x context floats) while keeping matrix products large enough to be
/// efficient.
const PROMPT_CHUNK_TOKENS: usize = 512;

/// Where an in-process GGUF model runs.
///
/// `Cuda` needs a binary built with the `cuda` feature and an NVIDIA driver; the default build
/// answers it with an error that says so. On a GPU the model runs with candle's quantized
/// implementations and CUDA kernels (every GGUF tensor type as written, no Q8_0 conversion);
/// on the CPU with Vellum's decoder where it applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GenerationDevice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// The NVIDIA GPU with this ordinal.
    Cuda(usize),
}

impl std::fmt::Display for GenerationDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GenerationDevice::Cpu => f.write_str("cpu"),
            GenerationDevice::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl std::str::FromStr for GenerationDevice {
    type Err = String;

    /// Parses `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "cpu" => Ok(GenerationDevice::Cpu),
            "cuda" | "gpu" => Ok(GenerationDevice::Cuda(0)),
            _ => text
                .strip_prefix("cuda:")
                .and_then(|ordinal| ordinal.parse().ok())
                .map(GenerationDevice::Cuda)
                .ok_or_else(|| format!("unknown device {text:?}: expected cpu, cuda or cuda:N")),
        }
    }
}

impl GenerationDevice {
    /// Opens the candle device; `Cuda` fails with advice when the binary has no CUDA support or
    /// no GPU answers.
    fn open(self) -> Result<Device> {
        match self {
            GenerationDevice::Cpu => Ok(Device::Cpu),
            GenerationDevice::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(Error::InvalidRequest(
                        "this vellum was built without CUDA support: rebuild with \
                         `cargo build --release --features cuda` (needs the CUDA toolkit's nvcc), \
                         or use --device cpu"
                            .into(),
                    ));
                }
                Device::new_cuda(ordinal).map_err(|err| {
                    Error::Runtime(format!(
                        "cannot open CUDA device {ordinal} ({err}): check `nvidia-smi` and the \
                         driver, or use --device cpu"
                    ))
                })
            }
        }
    }
}

/// One message of a conversation, as chat templates expect it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// Returns a message with the given role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// Returns a `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// Returns a `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// Returns an `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    /// Generates at most this many tokens (fewer if the context fills up).
    pub max_tokens: usize,
    /// Sampling temperature; 0 means greedy (always the most likely token).
    pub temperature: f64,
    /// Nucleus sampling: sample among the most likely tokens whose probabilities sum to this.
    pub top_p: Option<f64>,
    /// Seed of the sampler; the same seed, prompt and parameters give the same text.
    pub seed: u64,
    /// Generation stops before the first occurrence of any of these texts.
    pub stop: Vec<String>,
    /// Set by the caller to stop generating (the client went away); not part of a receipt.
    #[serde(skip)]
    pub cancel: CancelFlag,
    /// The first message is a system prompt fixed by Vellum (not text from a user or a
    /// document): its keys and values may be kept for the next request that begins with it, so
    /// that request skips it. Off for anything else, since a shared prefix is one that any
    /// caller can detect by timing. Not part of a receipt: the output is the same either way.
    #[serde(skip)]
    pub share_system_prompt: bool,
}

/// A flag a caller raises to stop a generation between two tokens (a client that disconnected
/// must not keep the model busy for everyone else). Two flags always compare equal: it is not
/// part of what a generation means.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Option<std::sync::Arc<std::sync::atomic::AtomicBool>>);

impl CancelFlag {
    /// A flag that can be raised.
    pub fn new() -> CancelFlag {
        CancelFlag(Some(std::sync::Arc::new(
            std::sync::atomic::AtomicBool::new(false),
        )))
    }

    /// Asks the generation to stop at the next token.
    pub fn cancel(&self) {
        if let Some(flag) = &self.0 {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|flag| flag.load(std::sync::atomic::Ordering::Acquire))
    }
}

impl PartialEq for CancelFlag {
    fn eq(&self, _: &CancelFlag) -> bool {
        true
    }
}

impl Default for GenerationParams {
    fn default() -> Self {
        GenerationParams {
            max_tokens: 256,
            temperature: 0.0,
            top_p: None,
            seed: 42,
            stop: Vec::new(),
            cancel: CancelFlag::default(),
            share_system_prompt: false,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-text token (EOS, `<|im_end|>`, `<|eot_id|>`...).
    EndOfText,
    /// One of [`GenerationParams::stop`] appeared.
    StopSequence,
    /// [`GenerationParams::max_tokens`] were generated, or the context is full.
    MaxTokens,
    /// The caller raised [`GenerationParams::cancel`].
    Cancelled,
}

/// The result of one generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    /// The generated text, without end-of-text tokens and cut before any stop sequence.
    pub text: String,
    /// Tokens in the prompt (including BOS when the model adds one).
    pub num_prompt_tokens: usize,
    /// Tokens sampled, including the end-of-text token if that ended generation.
    pub num_generated_tokens: usize,
    /// Why generation ended.
    pub stop_reason: StopReason,
    /// Time spent processing the prompt.
    pub prompt_seconds: f64,
    /// Prompt tokens whose keys and values were kept from an earlier request (the shared system
    /// prompt, see [`GenerationParams::share_system_prompt`]) instead of computed again.
    #[serde(default)]
    pub num_cached_prompt_tokens: usize,
    /// Time spent generating after the prompt was processed.
    pub generation_seconds: f64,
}

impl Generation {
    /// A generation that ended before its first token.
    fn nothing(num_prompt_tokens: usize, stop_reason: StopReason) -> Generation {
        Generation {
            text: String::new(),
            num_prompt_tokens,
            num_generated_tokens: 0,
            stop_reason,
            prompt_seconds: 0.0,
            generation_seconds: 0.0,
            num_cached_prompt_tokens: 0,
        }
    }
}

/// What exactly produced a text: recorded in answer receipts so that an answer can be traced
/// to the model file and prompt format, and replayed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelIdentity {
    /// The model's name (its file name without `.gguf`, or the remote engine's model name).
    pub name: String,
    /// Where it ran: `gguf` (in-process) or `remote` (an OpenAI-compatible server).
    pub engine: String,
    /// `general.architecture` of a GGUF (`llama`, `qwen2`, `phi3`); empty for remote models.
    pub architecture: String,
    /// Hex SHA-256 of the model file as loaded; empty where the file is not ours to read.
    pub file_sha256: String,
    /// Hex SHA-256 of the chat template source in use.
    pub template_sha256: String,
    /// True when tensor types were converted to Q8_0 at load (the slow ones when asked; Q6_K
    /// in Vellum's decoder): changes the arithmetic.
    pub requantized_to_q8_0: bool,
    /// Where it ran (`cpu`, `cuda:0`); GPU kernels sum in another order than CPU ones, so a
    /// replay on another device may differ. Empty in receipts written before this field.
    #[serde(default)]
    pub device: String,
}

/// A text generator.
pub trait Generator: Send + Sync {
    /// Renders the chat template and generates; calls on_token with each new piece of text as it is decoded (valid UTF-8 pieces only).
    fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation>;
    /// Generates from an already-templated prompt (used by tests against llama.cpp references).
    fn generate_raw(
        &self,
        prompt: &str,
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation>;
    /// Returns the chat template rendered for `messages`, ending where the assistant's answer
    /// begins (`add_generation_prompt = true`).
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
    /// Returns the number of tokens `text` takes as message content.
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// Returns the number of tokens (prompt plus answer) the model can handle.
    fn context_length(&self) -> usize;
    /// Returns the model's name: its GGUF file name without the `.gguf` extension.
    fn model_name(&self) -> &str;
    /// Returns what identifies this model exactly (file hash, template hash), for receipts.
    fn identity(&self) -> ModelIdentity;
    /// How many generations may run at once to any benefit: more callers than this should
    /// wait their turn before calling [`Self::generate`].
    fn max_concurrent_generations(&self) -> usize {
        1
    }
}

/// A generator running a GGUF model (llama, qwen2 or phi3 architecture) on the CPU with candle.
///
/// The tokenizer comes from the GGUF metadata (`tokenizer.ggml.*`), the chat template from
/// `tokenizer.chat_template` (or [`FALLBACK_CHAT_TEMPLATE`], ChatML, when there is none).
pub struct GgufGenerator {
    identity: ModelIdentity,
    model_name: String,
    architecture: String,
    context_length: usize,
    tokenizer: GgufTokenizer,
    template: ChatTemplate,
    /// Where the model's tensors live; prompts go there and logits come back to the CPU.
    device: Device,
    /// One sequence at a time: candle's implementations, and diagnostics (logits, gaps).
    model: Mutex<ModelWeights>,
    /// Generations, batched, where the model runs on Vellum's own decoder.
    batcher: Option<batch::Batcher>,
    /// The tokens that every prompt opening with a user's message begins with, whatever the
    /// user wrote ([`template_prefix`]).
    template_prefix: Vec<u32>,
}

impl std::fmt::Debug for GgufGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufGenerator")
            .field("model_name", &self.model_name)
            .field("architecture", &self.architecture)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl GgufGenerator {
    /// Loads a GGUF model file. Tensor types that candle runs only with scalar kernels (Q4_1,
    /// Q5_0, Q5_1) are converted to Q8_0 on load, for speed (see `weights::load`).
    pub fn load(path: &Path) -> Result<GgufGenerator> {
        Self::load_with_requantization(path, true)
    }

    /// Loads a GGUF model file, converting slow tensor types to Q8_0 only if `requantize`.
    /// For comparing the converted model with the file as written (tests, benchmarks).
    #[doc(hidden)]
    pub fn load_with_requantization(path: &Path, requantize: bool) -> Result<GgufGenerator> {
        Self::load_with(path, requantize, true)
    }

    /// Loads a GGUF file choosing both the Q8_0 conversion and, for dense llama and qwen2
    /// models, Vellum's decoder (`own_decoder`) or candle's reference implementation. For
    /// comparing the two (tests, benchmarks).
    #[doc(hidden)]
    pub fn load_with(path: &Path, requantize: bool, own_decoder: bool) -> Result<GgufGenerator> {
        Self::load_full(path, requantize, own_decoder, GenerationDevice::Cpu, None)
    }

    /// Loads a GGUF model file to run on `device`: on the CPU as [`Self::load`] does; on a
    /// GPU with candle's CUDA kernels, tensors as written.
    pub fn load_on(path: &Path, device: GenerationDevice) -> Result<GgufGenerator> {
        Self::load_cached(path, device, None)
    }

    /// [`Self::load_on`], and on the CPU with Vellum's decoder, its weights from a panel cache
    /// file in `panel_cache` (a folder): memory-mapped from the file an earlier load of the
    /// same model wrote there, or rearranged from the GGUF and written there for the next load
    /// (`generate/panel_cache.rs`). A folder that cannot take the file only costs the speed-up.
    pub fn load_cached(
        path: &Path,
        device: GenerationDevice,
        panel_cache: Option<&Path>,
    ) -> Result<GgufGenerator> {
        match device {
            GenerationDevice::Cpu => Self::load_full(path, true, true, device, panel_cache),
            GenerationDevice::Cuda(_) => Self::load_full(path, false, false, device, None),
        }
    }

    /// Whether the decoder's weights were memory-mapped from a panel cache file at load.
    pub fn weights_mapped(&self) -> bool {
        self.model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .weights_mapped()
    }

    fn load_full(
        path: &Path,
        requantize: bool,
        own_decoder: bool,
        device: GenerationDevice,
        panel_cache: Option<&Path>,
    ) -> Result<GgufGenerator> {
        // Before reading a byte of the model: a missing GPU is a configuration error.
        let candle_device = device.open()?;
        let model_file_error = |reason: String| Error::ModelFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content = Content::read(&mut file)
            .map_err(|err| model_file_error(format!("not a readable GGUF file: {err}")))?;
        let architecture = content
            .metadata
            .get("general.architecture")
            .and_then(|value| value.to_string().ok())
            .cloned()
            .ok_or_else(|| model_file_error("no general.architecture in the metadata".into()))?;
        if !weights::SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(model_file_error(format!(
                "unsupported architecture {architecture:?} (supported: {})",
                weights::SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let context_length =
            weights::context_length(&architecture, &content.metadata).map_err(model_file_error)?;
        let tokenizer = GgufTokenizer::from_metadata(&content.metadata)
            .map_err(|reason| model_file_error(format!("tokenizer: {reason}")))?;
        let num_embedding_rows = content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|info| info.shape.dims().first().copied())
            .ok_or_else(|| model_file_error("no token_embd.weight tensor".into()))?;
        if tokenizer.vocab_size() > num_embedding_rows {
            return Err(model_file_error(format!(
                "the tokenizer has {} tokens but the model only {num_embedding_rows} embeddings",
                tokenizer.vocab_size()
            )));
        }
        let template_source = content
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|value| value.to_string().ok())
            .map_or(FALLBACK_CHAT_TEMPLATE, String::as_str)
            .to_string();
        let template =
            ChatTemplate::new(&template_source, tokenizer.bos_text(), tokenizer.eos_text())
                .map_err(|err| model_file_error(format!("tokenizer.chat_template: {err}")))?;

        // The hash of the file's bytes: it makes every answer traceable to this file, and it
        // names the file's panel cache.
        let file_sha256 = crate::registry::sha256_file(path)?;
        let load_options = weights::LoadOptions {
            requantize,
            own_decoder,
            max_positions: context_length,
            device: candle_device.clone(),
            panels: panel_cache.map(|folder| {
                let options = if requantize { "q8-0" } else { "as-stored" };
                panel_cache::PanelCache::new(folder, &file_sha256, options)
            }),
        };
        let requantized_to_q8_0 = content.tensor_infos.values().any(|info| {
            weights::converts_to_q8_0(&architecture, &content, &load_options, info.ggml_dtype)
                || weights::decoder_requantizes(
                    &architecture,
                    &content,
                    &load_options,
                    info.ggml_dtype,
                )
        });

        // candle's loaders bail on missing tensors and metadata, but a corrupt file could still
        // hit a panic inside them; a model file must never bring the service down.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            weights::load(&architecture, content, &mut file, &load_options)
        }));
        let model = match loaded {
            Ok(Ok(model)) => model,
            Ok(Err(err)) => {
                return Err(model_file_error(format!("cannot load the weights: {err}")))
            }
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Err(model_file_error(format!(
                    "the weights loader failed on this file: {detail}"
                )));
            }
        };

        let model_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .map(|name| match name.strip_suffix(".gguf") {
                Some(stem) => stem.to_string(),
                None => name,
            })
            .unwrap_or_default();
        tracing::info!(
            model = %model_name,
            architecture = %architecture,
            context_length,
            "loaded GGUF generator"
        );
        let identity = ModelIdentity {
            name: model_name.clone(),
            engine: "gguf".to_string(),
            architecture: architecture.clone(),
            file_sha256,
            template_sha256: template.sha256(),
            requantized_to_q8_0,
            device: device.to_string(),
        };
        let batcher = match &model {
            ModelWeights::Decoder { decoder, .. } => Some(
                batch::Batcher::start(decoder.clone(), tokenizer.end_of_generation_ids()).map_err(
                    |source| {
                        Error::Runtime(format!("cannot start the generation worker: {source}"))
                    },
                )?,
            ),
            _ => None,
        };
        let template_prefix = template_prefix(&template, &tokenizer);
        Ok(GgufGenerator {
            identity,
            model_name,
            architecture,
            context_length,
            tokenizer,
            template,
            device: candle_device,
            model: Mutex::new(model),
            batcher,
            template_prefix,
        })
    }

    /// The most generations one batched decode step has run so far (0 before any, and
    /// always for models that run one generation at a time). For tests and diagnostics.
    #[doc(hidden)]
    pub fn largest_batch(&self) -> usize {
        self.batcher
            .as_ref()
            .map_or(0, batch::Batcher::largest_batch)
    }

    /// The most generations whose prompts one pass of the model has read together (0 before
    /// any, always for models that run one generation at a time). For tests and diagnostics.
    #[doc(hidden)]
    pub fn most_prompts_at_once(&self) -> usize {
        self.batcher
            .as_ref()
            .map_or(0, batch::Batcher::most_prompts_at_once)
    }

    /// Returns the model's `general.architecture` (`llama`, `qwen2` or `phi3`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// Returns the hex SHA-256 of the chat template in use (the file's, or the fallback), so a
    /// change of prompt format can be detected and recorded.
    pub fn template_sha256(&self) -> String {
        self.template.sha256()
    }

    /// Returns the logits for the token after `prompt`: all but its last token run as a
    /// prompt chunk, the last one as a single generation step, so both code paths take part.
    /// For comparing implementations (tests).
    #[doc(hidden)]
    pub fn next_token_logits(&self, prompt: &str) -> Result<Vec<f32>> {
        let tokens = self
            .tokenizer
            .encode_prompt(prompt)
            .map_err(Error::Tokenizer)?;
        let Some((&last, head)) = tokens.split_last() else {
            return Err(Error::InvalidRequest("the prompt is empty".into()));
        };
        if head.is_empty() {
            return Err(Error::InvalidRequest("the prompt needs two tokens".into()));
        }
        let mut model = self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        model.clear_kv_cache();
        prefill(&mut model, head, &self.device)?;
        let logits = forward(&mut model, &[last], head.len(), &self.device)?;
        model.clear_kv_cache();
        Ok(logits.to_vec1()?)
    }

    /// Runs `prompt` followed by `continuation` (teacher forcing) and returns, for each token of
    /// the continuation, how far its logit is below the best logit at that position (0 where it
    /// is the greedy choice). For comparing with another engine's greedy output: near-ties flip
    /// between engines with different quantized kernels, real errors show as large gaps.
    #[doc(hidden)]
    pub fn continuation_logit_gaps(&self, prompt: &str, continuation: &str) -> Result<Vec<f32>> {
        let prompt_tokens = self
            .tokenizer
            .encode_prompt(prompt)
            .map_err(Error::Tokenizer)?;
        let continuation_tokens = self
            .tokenizer
            .encode_plain(continuation)
            .map_err(Error::Tokenizer)?;
        if prompt_tokens.is_empty()
            || prompt_tokens.len() + continuation_tokens.len() > self.context_length
        {
            return Err(Error::InvalidRequest(
                "the prompt is empty or does not fit the context".into(),
            ));
        }
        let mut model = self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        model.clear_kv_cache();
        let mut logits = prefill(&mut model, &prompt_tokens, &self.device)?;
        let mut gaps = Vec::with_capacity(continuation_tokens.len());
        for (position, &token) in (prompt_tokens.len()..).zip(&continuation_tokens) {
            let values: Vec<f32> = logits.to_vec1()?;
            let best = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let value = values
                .get(token as usize)
                .copied()
                .ok_or_else(|| Error::Runtime(format!("token {token} has no logit")))?;
            gaps.push(best - value);
            logits = forward(&mut model, &[token], position, &self.device)?;
        }
        model.clear_kv_cache();
        Ok(gaps)
    }

    /// How many of `tokens` (the prompt of `messages`) are its system turn, and whether their
    /// keys and values may be kept for other requests. A system message's turn is shared only
    /// with `share_system_prompt` (the caller vouches that it is Vellum's own text, not a
    /// user's). Without a system message, the template's own beginning ([`template_prefix`]:
    /// SmolLM2's and Qwen2's default system turn and the user turn's opening) is always shared:
    /// it holds nothing a caller wrote, so that another request's timing can show nothing
    /// but that such requests are made.
    fn system_prefix(
        &self,
        messages: &[ChatMessage],
        tokens: &[u32],
        share_system_prompt: bool,
    ) -> (usize, bool) {
        // Shorter than the prompt, so the prompt's last token still runs and gives logits.
        let leads = |prefix: &[u32]| prefix.len() < tokens.len() && tokens.starts_with(prefix);
        let Some(system) = messages.first().filter(|first| first.role == "system") else {
            let prefix = &self.template_prefix;
            return if !prefix.is_empty() && !messages.is_empty() && leads(prefix) {
                (prefix.len(), true)
            } else {
                (0, false)
            };
        };
        if messages.len() < 2 {
            return (0, false);
        }
        let Ok(prefix) = self.template.render(std::slice::from_ref(system), false) else {
            return (0, false);
        };
        match self.tokenizer.encode_prompt(&prefix) {
            Ok(prefix_tokens) if leads(&prefix_tokens) => {
                (prefix_tokens.len(), share_system_prompt)
            }
            _ => (0, false),
        }
    }

    /// Generates after `prompt_tokens`, whose first `system_prefix` tokens are the system turn
    /// (0 if none, [`Self::system_prefix`]): they run as a chunk of their own, and with
    /// `share` their keys and values are kept for the next request that begins with them.
    fn run(
        &self,
        prompt_tokens: Vec<u32>,
        system_prefix: usize,
        share: bool,
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let shared_prefix = if share { system_prefix } else { 0 };
        validate(params)?;
        if prompt_tokens.is_empty() {
            return Err(Error::InvalidRequest("the prompt is empty".into()));
        }
        let num_prompt_tokens = prompt_tokens.len();
        if num_prompt_tokens >= self.context_length {
            return Err(Error::InvalidRequest(format!(
                "the prompt has {num_prompt_tokens} tokens; the model's context holds {}",
                self.context_length
            )));
        }
        let max_new_tokens = params
            .max_tokens
            .min(self.context_length - num_prompt_tokens);
        if max_new_tokens == 0 {
            return Ok(Generation::nothing(
                num_prompt_tokens,
                StopReason::MaxTokens,
            ));
        }
        let temperature = (params.temperature > 0.0).then_some(params.temperature);
        let top_p = temperature.and(params.top_p);
        let mut stream = TextStream::new(&params.stop, self.tokenizer.strips_leading_space());
        if let Some(batcher) = &self.batcher {
            let sampler = sampler::Sampler::new(params.seed, temperature, top_p);
            let (events, received) = std::sync::mpsc::channel();
            batcher
                .submit(batch::Job {
                    prompt: prompt_tokens,
                    system_prefix,
                    share_system_prompt: share,
                    max_new_tokens,
                    sampler,
                    cancel: params.cancel.clone(),
                    events,
                })
                .map_err(Error::Runtime)?;
            return self.follow(received, stream, num_prompt_tokens, on_token);
        }

        // Each generation starts a new sequence at position 0, or after a cached prefix whose
        // tokens are checked against this prompt's; state left by an earlier (even panicked)
        // generation is otherwise never read, so a poisoned lock is safe to take over.
        let mut model = self
            .model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let num_cached_prompt_tokens = model.keep_common_prefix(&prompt_tokens, shared_prefix);

        let prompt_start = Instant::now();
        // The system turn always runs as a chunk of its own, cached, shared or not, so the rest
        // of the prompt meets the same chunk boundaries either way and the output depends neither
        // on the setting nor on what ran before.
        if num_cached_prompt_tokens < system_prefix {
            prefill_from(
                &mut model,
                &prompt_tokens[num_cached_prompt_tokens..system_prefix],
                num_cached_prompt_tokens,
                &self.device,
            )?;
        }
        let mut logits = prefill_from(
            &mut model,
            &prompt_tokens[system_prefix..],
            system_prefix,
            &self.device,
        )?;
        let mut position = num_prompt_tokens;
        let prompt_seconds = prompt_start.elapsed().as_secs_f64();

        let generation_start = Instant::now();
        let mut sampler = LogitsProcessor::new(params.seed, temperature, top_p);
        let mut num_generated_tokens = 0;
        let stop_reason = loop {
            let token = sampler.sample(&logits)?;
            num_generated_tokens += 1;
            if self.tokenizer.is_end_of_generation(token) {
                break StopReason::EndOfText;
            }
            if stream.push(self.tokenizer.token_bytes(token), on_token) == StreamStep::Stopped {
                break StopReason::StopSequence;
            }
            if num_generated_tokens >= max_new_tokens {
                break StopReason::MaxTokens;
            }
            if params.cancel.is_cancelled() {
                break StopReason::Cancelled;
            }
            logits = forward(&mut model, &[token], position, &self.device)?;
            position += 1;
        };
        // Only the shared prefix stays: no document or question outlives its request here.
        model.keep_kv_prefix(shared_prefix);
        drop(model);
        let text = stream.finish(on_token);
        Ok(Generation {
            text,
            num_prompt_tokens,
            num_generated_tokens,
            stop_reason,
            prompt_seconds,
            generation_seconds: generation_start.elapsed().as_secs_f64(),
            num_cached_prompt_tokens,
        })
    }
}

impl GgufGenerator {
    /// Turns a batched job's events into text for `on_token` and the [`Generation`]. Returning
    /// drops the receiver, which ends the job at its next token (a stop sequence, an error).
    fn follow(
        &self,
        received: std::sync::mpsc::Receiver<batch::Event>,
        mut stream: TextStream,
        num_prompt_tokens: usize,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let stopped = || Error::Runtime("the generation worker stopped".into());
        let (prompt_seconds, num_cached_prompt_tokens) =
            match received.recv().map_err(|_| stopped())? {
                batch::Event::Prefilled {
                    prompt_seconds,
                    num_cached_prompt_tokens,
                } => (prompt_seconds, num_cached_prompt_tokens),
                batch::Event::Failed(message) => return Err(Error::Runtime(message)),
                // A job cancelled before its prompt ran.
                batch::Event::Finished { reason, .. } => {
                    return Ok(Generation::nothing(num_prompt_tokens, reason));
                }
                batch::Event::Token(_) => return Err(stopped()),
            };
        let generation_start = Instant::now();
        let mut num_shown = 0;
        let (stop_reason, num_generated_tokens) = loop {
            match received.recv().map_err(|_| stopped())? {
                batch::Event::Token(token) => {
                    num_shown += 1;
                    if stream.push(self.tokenizer.token_bytes(token), on_token)
                        == StreamStep::Stopped
                    {
                        break (StopReason::StopSequence, num_shown);
                    }
                }
                batch::Event::Finished {
                    reason,
                    num_generated_tokens,
                } => break (reason, num_generated_tokens),
                batch::Event::Failed(message) => return Err(Error::Runtime(message)),
                batch::Event::Prefilled { .. } => return Err(stopped()),
            }
        };
        drop(received);
        let text = stream.finish(on_token);
        Ok(Generation {
            text,
            num_prompt_tokens,
            num_generated_tokens,
            stop_reason,
            prompt_seconds,
            generation_seconds: generation_start.elapsed().as_secs_f64(),
            num_cached_prompt_tokens,
        })
    }
}

/// The tokens every prompt opening with a user's message begins with, whatever the user
/// wrote: the common beginning of the template rendered for two different messages (for
/// SmolLM2, its default system turn and `<|im_start|>user\n`, 24 tokens of a 39-token
/// question). Empty where the template cannot render them or they share nothing. A prompt
/// uses it only where its own tokens begin with exactly these ([`GgufGenerator::run`]'s
/// caller checks), so a tokenizer that joins the boundary differently shares nothing.
fn template_prefix(template: &ChatTemplate, tokenizer: &GgufTokenizer) -> Vec<u32> {
    let render = |content: &str| template.render(&[ChatMessage::user(content)], true).ok();
    let (Some(first), Some(second)) = (render("A"), render("B")) else {
        return Vec::new();
    };
    let common = first
        .char_indices()
        .zip(second.chars())
        .find(|((_, one), other)| one != other)
        .map_or(first.len().min(second.len()), |((at, _), _)| at);
    first
        .get(..common)
        .filter(|text| !text.is_empty())
        .and_then(|text| tokenizer.encode_prompt(text).ok())
        .unwrap_or_default()
}

/// Runs a prompt from position 0, `PROMPT_CHUNK_TOKENS` at a time, and returns the logits of its
/// last token.
fn prefill(model: &mut ModelWeights, prompt_tokens: &[u32], device: &Device) -> Result<Tensor> {
    prefill_from(model, prompt_tokens, 0, device)
}

/// [`prefill`] from `start`, after that many cached positions.
fn prefill_from(
    model: &mut ModelWeights,
    prompt_tokens: &[u32],
    start: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut logits = None;
    let mut position = start;
    for chunk in prompt_tokens.chunks(PROMPT_CHUNK_TOKENS) {
        logits = Some(forward(model, chunk, position, device)?);
        position += chunk.len();
    }
    logits.ok_or_else(|| Error::InvalidRequest("the prompt is empty".into()))
}

/// Runs `tokens` at `position` on `device` and returns the last position's logits as a vector
/// on the CPU, where sampling happens.
fn forward(
    model: &mut ModelWeights,
    tokens: &[u32],
    position: usize,
    device: &Device,
) -> Result<Tensor> {
    let input = Tensor::new(tokens, device)?.unsqueeze(0)?;
    let logits = model.forward(&input, position)?;
    Ok(logits
        .squeeze(0)?
        .to_dtype(candle_core::DType::F32)?
        .to_device(&Device::Cpu)?)
}

fn validate(params: &GenerationParams) -> Result<()> {
    if !params.temperature.is_finite() || params.temperature < 0.0 {
        return Err(Error::InvalidRequest(format!(
            "temperature must be a number >= 0, not {}",
            params.temperature
        )));
    }
    if let Some(top_p) = params.top_p {
        let is_valid = top_p > 0.0 && top_p <= 1.0;
        if !is_valid {
            return Err(Error::InvalidRequest(format!(
                "top_p must be in (0, 1], not {top_p}"
            )));
        }
    }
    Ok(())
}

impl Generator for GgufGenerator {
    fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        // Contents come from users and documents: special-token text in them stays text.
        let escaped: Vec<ChatMessage> = messages
            .iter()
            .map(|message| ChatMessage {
                role: message.role.clone(),
                content: self.tokenizer.escape_special_text(&message.content),
            })
            .collect();
        let prompt = self.template.render(&escaped, true)?;
        let tokens = self
            .tokenizer
            .encode_prompt(&prompt)
            .map_err(Error::Tokenizer)?;
        let (system_prefix, share) =
            self.system_prefix(&escaped, &tokens, params.share_system_prompt);
        self.run(tokens, system_prefix, share, params, on_token)
    }

    fn generate_raw(
        &self,
        prompt: &str,
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let tokens = self
            .tokenizer
            .encode_prompt(prompt)
            .map_err(Error::Tokenizer)?;
        self.run(tokens, 0, false, params, on_token)
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.template.render(messages, true)
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        self.tokenizer
            .encode_plain(text)
            .map(|ids| ids.len())
            .map_err(Error::Tokenizer)
    }

    fn context_length(&self) -> usize {
        self.context_length
    }

    fn model_name(&self) -> &str {
        &self.model_name
    }

    fn max_concurrent_generations(&self) -> usize {
        if self.batcher.is_some() {
            batch::MAX_BATCH
        } else {
            1
        }
    }

    fn identity(&self) -> ModelIdentity {
        self.identity.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_params_are_greedy_with_256_tokens() {
        let params = GenerationParams::default();
        assert_eq!(params.max_tokens, 256);
        assert_eq!(params.temperature, 0.0);
        assert_eq!(params.top_p, None);
        assert_eq!(params.seed, 42);
        assert!(params.stop.is_empty());
    }

    #[test]
    fn invalid_sampling_params_are_rejected() {
        let bad_temperature = GenerationParams {
            temperature: f64::NAN,
            ..GenerationParams::default()
        };
        assert!(matches!(
            validate(&bad_temperature),
            Err(Error::InvalidRequest(_))
        ));
        let bad_top_p = GenerationParams {
            temperature: 0.7,
            top_p: Some(1.5),
            ..GenerationParams::default()
        };
        assert!(matches!(
            validate(&bad_top_p),
            Err(Error::InvalidRequest(_))
        ));
        let good = GenerationParams {
            temperature: 0.7,
            top_p: Some(0.9),
            ..GenerationParams::default()
        };
        assert!(validate(&good).is_ok());
    }

    #[test]
    fn chat_message_helpers_set_roles() {
        assert_eq!(ChatMessage::system("a").role, "system");
        assert_eq!(ChatMessage::user("b").role, "user");
        assert_eq!(ChatMessage::assistant("c").role, "assistant");
        assert_eq!(ChatMessage::user("b").content, "b");
    }
}
