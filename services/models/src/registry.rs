//! The model registry: which models sit in the models folder, of what kind, and their checksums.
//!
//! A model is a file layout, not a database entry: an embedding model is a sentence-transformers
//! folder (`config.json` beside `model.safetensors`) or a folder holding an ONNX export
//! (`model.onnx`, for `--embedder onnx`), a generation model is a `*.gguf` file.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A sentence embedder (BERT-style safetensors folder, or an ONNX export of one), run by
    /// [`crate::Embedder`].
    Embedding,
    /// A text generator (GGUF file), run by [`crate::GgufGenerator`].
    Generation,
}

/// One model found under the models folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelInfo {
    /// The folder name of an embedding model, the file stem of a GGUF model.
    pub name: String,
    /// What the model is used for.
    pub kind: ModelKind,
    /// The model folder (embedding), the `model.onnx` file (ONNX embedding) or the `.gguf`
    /// file (generation).
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the weights file (`model.safetensors` or the `.gguf` file).
    pub sha256: String,
    /// Size of the weights file in bytes.
    pub bytes: u64,
}

/// Weights file of an embedding model folder.
const SAFETENSORS_FILE: &str = "model.safetensors";
/// The ONNX export of an embedding model.
const ONNX_FILE: &str = "model.onnx";
/// Configuration file of an embedding model folder.
const CONFIG_FILE: &str = "config.json";

/// Returns the models under `models_dir`, sorted by name: each subfolder holding
/// `model.safetensors` and `config.json` (an embedding model, checksum of `model.safetensors`),
/// each subfolder holding `model.onnx` (an ONNX embedding model, checksum of that file)
/// and each `*.gguf` file directly in `models_dir` or one folder down (a generation model).
///
/// Entries whose name starts with a dot are skipped. Every weights file is read in full to
/// compute its checksum, so this costs about a second per gigabyte.
pub fn list_models(models_dir: &Path) -> Result<Vec<ModelInfo>> {
    let mut models = Vec::new();
    for entry_path in sorted_entries(models_dir)? {
        if is_gguf(&entry_path) && entry_path.is_file() {
            models.push(generation_model(&entry_path)?);
        } else if entry_path.is_dir() {
            let safetensors = entry_path.join(SAFETENSORS_FILE);
            if safetensors.is_file() && entry_path.join(CONFIG_FILE).is_file() {
                models.push(ModelInfo {
                    name: file_name(&entry_path),
                    kind: ModelKind::Embedding,
                    path: entry_path.clone(),
                    sha256: sha256_file(&safetensors)?,
                    bytes: file_len(&safetensors)?,
                });
            }
            let onnx = entry_path.join(ONNX_FILE);
            if onnx.is_file() {
                models.push(ModelInfo {
                    name: file_name(&entry_path),
                    kind: ModelKind::Embedding,
                    path: onnx.clone(),
                    sha256: sha256_file(&onnx)?,
                    bytes: file_len(&onnx)?,
                });
            }
            for inner_path in sorted_entries(&entry_path)? {
                if is_gguf(&inner_path) && inner_path.is_file() {
                    models.push(generation_model(&inner_path)?);
                }
            }
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
    Ok(models)
}

/// Returns the lowercase hex SHA-256 of the file at `path`, read in 1 MiB blocks so that a
/// multi-gigabyte model never sits in memory.
pub fn sha256_file(path: &Path) -> Result<String> {
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io_error)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0_u8; 1 << 20];
    loop {
        let num_read = match file.read(&mut block) {
            Ok(0) => break,
            Ok(num_read) => num_read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(io_error(err)),
        };
        hasher.update(block.get(..num_read).unwrap_or_default());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Returns the entries of `dir` (not starting with a dot), sorted by path.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_error = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

fn generation_model(gguf_path: &Path) -> Result<ModelInfo> {
    let name = gguf_path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(ModelInfo {
        name,
        kind: ModelKind::Generation,
        path: gguf_path.to_path_buf(),
        sha256: sha256_file(gguf_path)?,
        bytes: file_len(gguf_path)?,
    })
}

fn is_gguf(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("gguf"))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, contents: &[u8]) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
    }

    #[test]
    fn sha256_file_matches_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc.txt");
        write(&path, b"abc");
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256_file_streams_files_larger_than_one_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let contents: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        write(&path, &contents);
        assert_eq!(
            sha256_file(&path).unwrap(),
            hex::encode(Sha256::digest(&contents))
        );
    }

    #[test]
    fn sha256_file_of_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.safetensors");
        let err = sha256_file(&path).unwrap_err();
        assert!(err.to_string().contains("missing.safetensors"), "{err}");
    }

    #[test]
    fn list_models_finds_embedding_folders_and_gguf_files_sorted_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("minilm/model.safetensors"), b"weights");
        write(&root.join("minilm/config.json"), b"{}");
        write(&root.join("smol/Smol.Q4_1.gguf"), b"gguf one");
        write(&root.join("Alpha.gguf"), b"gguf two");
        // Not models: a folder without config.json, a gguf three levels down, other files,
        // hidden entries.
        write(&root.join("incomplete/model.safetensors"), b"weights");
        write(&root.join("deep/deeper/Deep.gguf"), b"too deep");
        write(&root.join("README.md"), b"readme");
        write(&root.join(".hidden/model.safetensors"), b"weights");
        write(&root.join(".hidden/config.json"), b"{}");

        let models = list_models(root).unwrap();
        let summary: Vec<(&str, ModelKind)> = models
            .iter()
            .map(|model| (model.name.as_str(), model.kind))
            .collect();
        assert_eq!(
            summary,
            [
                ("Alpha", ModelKind::Generation),
                ("Smol.Q4_1", ModelKind::Generation),
                ("minilm", ModelKind::Embedding),
            ]
        );
        let minilm = &models[2];
        assert_eq!(minilm.path, root.join("minilm"));
        assert_eq!(minilm.bytes, 7);
        assert_eq!(minilm.sha256, hex::encode(Sha256::digest(b"weights")));
        assert_eq!(models[1].path, root.join("smol/Smol.Q4_1.gguf"));
        assert_eq!(models[1].bytes, 8);
    }

    #[test]
    fn model_info_serialises_kind_in_lowercase() {
        let info = ModelInfo {
            name: "m".to_owned(),
            kind: ModelKind::Embedding,
            path: PathBuf::from("/models/m"),
            sha256: "00".to_owned(),
            bytes: 1,
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["kind"], "embedding");
        assert_eq!(
            serde_json::to_value(ModelKind::Generation).unwrap(),
            "generation"
        );
    }

    #[test]
    fn list_models_of_missing_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list_models(&dir.path().join("nope")).is_err());
    }
}
