//! Resolves the data folder and model paths and opens what a command needs. Only this binary
//! reads flags and environment variables; the libraries take plain paths and options.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use vellum_models::{
    Embedder, GenerationDevice, Generator, GgufGenerator, RemoteConfig, RemoteGenerator,
};
use vellum_store::{Store, StoreOptions};

use crate::cli::GlobalArgs;

const FETCH_HINT: &str =
    "run `deploy/fetch-models.sh` (or point --models-dir / VELLUM_MODELS_DIR at the models folder)";

/// Paths resolved from the global options.
pub struct Context {
    pub data_dir: PathBuf,
    pub models_dir: PathBuf,
    pub embedding_model: PathBuf,
    pub generation_model: PathBuf,
    /// Where the local GGUF model runs.
    pub device: GenerationDevice,
    /// Set when generation goes to an OpenAI-compatible server.
    pub remote: Option<RemoteConfig>,
    pub json: bool,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Self {
        let under_models = |p: &Path| {
            if p.is_absolute() || p.exists() && p.components().count() > 1 {
                p.to_path_buf()
            } else {
                global.models_dir.join(p)
            }
        };
        Context {
            data_dir: global.data_dir.clone(),
            models_dir: global.models_dir.clone(),
            embedding_model: under_models(&global.embedding_model),
            generation_model: under_models(&global.generation_model),
            device: global.device,
            remote: global.remote_url.as_ref().map(|url| {
                let mut config = RemoteConfig::new(url.clone(), global.remote_model.clone());
                config.api_key = global.remote_api_key.clone();
                config.context_length = global.remote_context;
                config
            }),
            json: global.json,
        }
    }

    pub fn embedder(&self) -> Result<Embedder> {
        if !self.embedding_model.join("model.safetensors").is_file() {
            anyhow::bail!(
                "no embedding model at {}: {FETCH_HINT}",
                self.embedding_model.display()
            );
        }
        Embedder::load(&self.embedding_model).with_context(|| {
            format!(
                "loading the embedding model {}",
                self.embedding_model.display()
            )
        })
    }

    /// The configured generator: the remote server if one is set, else the local GGUF.
    pub fn generator(&self) -> Result<Box<dyn Generator>> {
        if let Some(config) = &self.remote {
            let generator = RemoteGenerator::new(config.clone())
                .with_context(|| format!("configuring the remote engine {}", config.base_url))?;
            return Ok(Box::new(generator));
        }
        if !self.generation_model.is_file() {
            anyhow::bail!(
                "no generation model at {}: {FETCH_HINT}",
                self.generation_model.display()
            );
        }
        let generator =
            GgufGenerator::load_on(&self.generation_model, self.device).with_context(|| {
                format!(
                    "loading the generation model {} on {}",
                    self.generation_model.display(),
                    self.device
                )
            })?;
        Ok(Box::new(generator))
    }

    pub fn open_store(&self, embedder: &Embedder) -> Result<Store> {
        open_store_at(&self.data_dir, embedder)
    }
}

/// Opens (or creates) a store whose vectors match `embedder`.
pub fn open_store_at(data_dir: &Path, embedder: &Embedder) -> Result<Store> {
    Store::open(
        data_dir,
        StoreOptions {
            embedding_dim: embedder.dim(),
            embedding_model: embedder.model_name().to_string(),
        },
    )
    .with_context(|| format!("opening the data folder {}", data_dir.display()))
}
