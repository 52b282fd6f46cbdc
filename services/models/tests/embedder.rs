//! The embedder against sentence-transformers' own vectors for all-MiniLM-L6-v2
//! (`shared/reference/minilm-embeddings.json`), run on the real model files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use vellum_models::{Embedder, OnnxFiles};

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    items: Vec<ReferenceItem>,
}

#[derive(Deserialize)]
struct ReferenceItem {
    text: String,
    embedding: Vec<f32>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"));
    let dir = models_dir.join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} has no model.safetensors: run deploy/fetch-models.sh (or set VELLUM_MODELS_DIR)",
        dir.display()
    );
    dir
}

fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

/// The model loads once per test binary: the tests share it, as the server would.
fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = model_dir();
        Embedder::load(&dir).unwrap_or_else(|err| panic!("loading {}: {err}", dir.display()))
    })
}

impl Reference {
    fn texts(&self) -> Vec<&str> {
        self.items.iter().map(|item| item.text.as_str()).collect()
    }
}

fn reference() -> Reference {
    let path = shared_dir().join("reference/minilm-embeddings.json");
    let json = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_slice(&json).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norm_b: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm_a * norm_b)
}

fn short(text: &str) -> String {
    text.chars().take(60).collect()
}

#[test]
fn embeddings_match_sentence_transformers() {
    let reference = reference();
    let embedder = embedder();
    assert_eq!(embedder.max_tokens(), reference.max_seq_length);
    let texts = reference.texts();
    let embeddings = embedder.embed(&texts).unwrap();
    assert_eq!(embeddings.len(), texts.len());
    let mut failures = Vec::new();
    for (item, embedding) in reference.items.iter().zip(&embeddings) {
        assert_eq!(embedding.len(), item.embedding.len());
        let similarity = cosine(embedding, &item.embedding);
        if similarity.is_nan() || similarity < 0.999 {
            failures.push(format!("{:?}: cosine {similarity}", short(&item.text)));
        }
    }
    assert!(
        failures.is_empty(),
        "embeddings differ from the reference:\n{}",
        failures.join("\n")
    );
}

#[test]
fn reference_covers_the_empty_and_the_truncated_text() {
    // The comparison above only proves these cases if the reference still holds them.
    let reference = reference();
    let embedder = embedder();
    assert!(reference.items.iter().any(|item| item.text.is_empty()));
    let num_truncated = reference
        .items
        .iter()
        .filter(|item| embedder.count_tokens(&item.text).unwrap() + 2 > embedder.max_tokens())
        .count();
    assert!(num_truncated >= 1);
}

#[test]
fn embeddings_are_unit_length() {
    let embeddings = embedder()
        .embed(&["", "A man is eating food.", "ü"])
        .unwrap();
    for embedding in embeddings {
        assert_eq!(embedding.len(), 384);
        let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

#[test]
fn batch_membership_and_order_do_not_change_an_embedding() {
    let reference = reference();
    let embedder = embedder();
    // Texts of very different lengths, so the batch pads (or packs) a lot around short ones.
    let mut texts = reference.texts();
    texts.push("Short.");
    texts.reverse();
    let in_batch = embedder.embed(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&in_batch) {
        let alone = embedder.embed(&[*text]).unwrap();
        let similarity = cosine(&alone[0], batched);
        assert!(
            similarity > 0.9999,
            "{:?}: alone vs in batch cosine {similarity}",
            short(text)
        );
    }
}

#[test]
fn embed_of_no_texts_is_empty() {
    assert!(embedder().embed(&[]).unwrap().is_empty());
}

#[test]
fn many_texts_keep_their_order() {
    // More texts than one batch holds, with duplicates spread around: equal texts must get
    // equal vectors wherever they sit.
    let base = [
        "alpha beta",
        "",
        "the quick brown fox jumps over the lazy dog",
        "x",
    ];
    let texts: Vec<String> = (0..70)
        .map(|i| format!("{} {}", base[i % base.len()], "word ".repeat(i % 7)))
        .collect();
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embeddings = embedder().embed(&text_refs).unwrap();
    for (i, text) in texts.iter().enumerate() {
        for (j, other) in texts.iter().enumerate().skip(i + 1) {
            if text == other {
                let similarity = cosine(&embeddings[i], &embeddings[j]);
                assert!(similarity > 0.9999, "{i} and {j}: cosine {similarity}");
            }
        }
    }
    let alone = embedder().embed(&[text_refs[33]]).unwrap();
    assert!(cosine(&alone[0], &embeddings[33]) > 0.9999);
}

#[test]
fn metadata_of_minilm() {
    let embedder = embedder();
    assert_eq!(embedder.dim(), 384);
    assert_eq!(embedder.max_tokens(), 256);
    assert_eq!(embedder.model_name(), "all-MiniLM-L6-v2");
}

#[test]
fn count_tokens_excludes_special_tokens_and_does_not_truncate() {
    let embedder = embedder();
    assert_eq!(embedder.count_tokens("").unwrap(), 0);
    // "indemnification" is several wordpieces; 300 of them are far past 256.
    let one = embedder.count_tokens("indemnification").unwrap();
    assert!(one >= 1);
    let long_text = vec!["indemnification"; 300].join(" ");
    assert_eq!(embedder.count_tokens(&long_text).unwrap(), 300 * one);
}

#[test]
fn load_of_a_folder_without_model_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        model_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let result = Embedder::load(dir.path());
    let err = result
        .err()
        .expect("loading without model.safetensors must fail");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}

/// The ONNX Runtime backend (fastembed, the int8 ONNX export and ONNX Runtime's library that
/// deploy/fetch-models.sh unpacks). One per test binary: ONNX Runtime loads once per process.
fn onnx_embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = model_dir();
        let models_dir = dir.parent().unwrap().to_path_buf();
        let files = OnnxFiles {
            model: models_dir.join("all-MiniLM-L6-v2-onnx-int8/model.onnx"),
            runtime: models_dir.join("onnxruntime"),
        };
        assert!(
            files.model.is_file(),
            "{} missing: run deploy/fetch-models.sh",
            files.model.display()
        );
        Embedder::load_onnx(&dir, &files).unwrap_or_else(|err| panic!("loading {files:?}: {err}"))
    })
}

/// Embeds `texts` (the reference's, then any extra) with an int8 `embedder` and checks each
/// reference text's vector: unit length, cosine >= 0.99 to sentence-transformers', and not the
/// native f32 vector (close, but another embedder's: a collection records which made it).
fn embed_near_reference_not_native(
    embedder: &Embedder,
    reference: &Reference,
    texts: &[&str],
) -> Vec<Vec<f32>> {
    let embeddings = embedder.embed(texts).unwrap();
    let native = self::embedder().embed(texts).unwrap();
    let mut lowest: f32 = 1.0;
    for ((item, embedding), native) in reference.items.iter().zip(&embeddings).zip(&native) {
        let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        let similarity = cosine(embedding, &item.embedding);
        assert!(
            similarity >= 0.99,
            "{:?}: cosine {similarity} to the reference",
            short(&item.text)
        );
        assert!(
            cosine(embedding, native) < 0.99999,
            "{:?}",
            short(&item.text)
        );
        lowest = lowest.min(similarity);
    }
    eprintln!(
        "{}: lowest cosine to the reference {lowest:.4}",
        embedder.model_name()
    );
    embeddings
}

#[test]
fn onnx_backend_matches_sentence_transformers_within_int8_error() {
    let reference = reference();
    let embedder = onnx_embedder();
    assert_eq!(embedder.backend(), "onnx");
    assert_eq!(embedder.model_name(), "onnx:all-MiniLM-L6-v2-onnx-int8");
    assert_eq!((embedder.dim(), embedder.max_tokens()), (384, 256));
    let texts = reference.texts();
    let embeddings = embed_near_reference_not_native(embedder, &reference, &texts);
    // Batching (padding) does not change a text's vector beyond float noise.
    let alone = embedder.embed(&[texts[3]]).unwrap();
    assert!(cosine(&alone[0], &embeddings[3]) > 0.9999);
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn onnx_backend_without_its_runtime_says_what_to_do() {
    let dir = model_dir();
    let missing = tempfile::tempdir().unwrap();
    let files = OnnxFiles {
        model: dir.join("../all-MiniLM-L6-v2-onnx-int8/model.onnx"),
        runtime: missing.path().join("onnxruntime"),
    };
    let message = match Embedder::load_onnx(&dir, &files) {
        Ok(_) => panic!("loaded without an ONNX Runtime library"),
        Err(err) => err.to_string(),
    };
    assert!(message.contains("fetch-models.sh"), "{message}");
}

/// Our own encoder with int8 linear layers (AVX-VNNI where the CPU has it, else AVX2).
fn int8_embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| {
        let dir = model_dir();
        Embedder::load_int8(&dir).unwrap_or_else(|err| panic!("loading {}: {err}", dir.display()))
    })
}

#[test]
fn int8_layers_stay_within_a_hundredth_of_sentence_transformers() {
    let reference = reference();
    let embedder = int8_embedder();
    assert_eq!(embedder.backend(), "native-int8");
    assert_eq!(embedder.model_name(), "int8:all-MiniLM-L6-v2");
    assert_eq!((embedder.dim(), embedder.max_tokens()), (384, 256));
    let mut texts = reference.texts();
    texts.push("Short.");
    let embeddings = embed_near_reference_not_native(embedder, &reference, &texts);
    // Each row is quantized on its own: a text's vector does not depend on its batch.
    for (text, batched) in texts.iter().zip(&embeddings) {
        let alone = embedder.embed(&[*text]).unwrap();
        let similarity = cosine(&alone[0], batched);
        assert!(similarity > 0.9999, "{:?}: {similarity}", short(text));
    }
    assert!(embedder.embed(&[]).unwrap().is_empty());
}
