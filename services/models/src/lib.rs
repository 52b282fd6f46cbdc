//! On-premise models for Vellum: the sentence embedder (all-MiniLM-L6-v2 style BERT, run with
//! candle from safetensors) and the text generator (any llama-family GGUF, run with candle's
//! quantized models, tokenizer and chat template read from the GGUF metadata).
//!
//! Main types: [`Embedder`], [`Generator`] (trait) and [`GgufGenerator`], [`list_models`].
//! This crate never opens a network connection and never downloads a model: models are files
//! that `deploy/fetch-models.sh` put in a folder.

mod embed;
mod error;
mod generate;
mod registry;
mod simd;

pub use embed::{Embedder, OnnxFiles};
pub use error::{Error, Result};
pub use generate::{
    CancelFlag, ChatMessage, Generation, GenerationDevice, GenerationParams, Generator,
    GgufGenerator, ModelIdentity, RemoteConfig, RemoteGenerator, StopReason,
};
pub use registry::{list_models, sha256_file, ModelInfo, ModelKind};

/// The decoder's quantized matrix products and attention helpers, and the embedder's int8
/// linear layer, for `benches/kernels.rs`; not an API.
#[doc(hidden)]
pub mod kernels {
    pub use crate::embed::int8::Int8Linear;
    pub use crate::generate::attention::{
        attention_scores, group_attention_scores, group_scores_fetching_values,
        group_weighted_rows, weighted_rows,
    };
    pub use crate::generate::qmatmul::{has_fast_path, Q4_1Matrix, Q8_0Matrix};
    pub use crate::simd::Kernel;
}
