//! The real SmolLM2-135M-Instruct model and llama.cpp's greedy continuations of it
//! (`shared/reference/smollm2-greedy.json`), shared by the CPU and GPU tests.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vellum_models::{Generation, GenerationParams, Generator, GgufGenerator};

#[derive(Deserialize)]
pub struct Reference {
    pub items: Vec<ReferenceItem>,
}

#[derive(Deserialize)]
pub struct ReferenceItem {
    pub prompt: String,
    pub greedy_continuation: String,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn smollm2_path() -> PathBuf {
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"));
    let path = models_dir.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run deploy/fetch-models.sh (or set VELLUM_MODELS_DIR)",
        path.display()
    );
    path
}

pub fn reference() -> Reference {
    let shared_dir = std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    let path = shared_dir.join("reference/smollm2-greedy.json");
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_json::from_str(&json).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

pub fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens,
        ..GenerationParams::default()
    }
}

pub fn generate_collecting(
    generator: &dyn Generator,
    prompt: &str,
    params: &GenerationParams,
) -> (Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let generation = generator
        .generate_raw(prompt, params, &mut |piece: &str| {
            pieces.push(piece.to_string())
        })
        .unwrap_or_else(|err| panic!("generate_raw: {err}"));
    (generation, pieces)
}

pub fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Checks our model against llama.cpp's greedy continuations by teacher forcing: at every token
/// of each reference continuation, the reference token's logit must be within
/// `MAX_LOGIT_GAP` of our best logit. Quantized kernels differ between engines (llama.cpp also
/// keeps its KV cache in f16, and we may run the Q4_1 tensors as Q8_0), so near-ties can flip and
/// free-running greedy text then drifts; a real error (tokenizer, rope, norm, template) shows as
/// gaps of several logits. The free-running common prefix is printed for information.
pub fn check_against_reference(generator: &GgufGenerator) {
    const MAX_LOGIT_GAP: f32 = 1.0;
    let mut failures = Vec::new();
    for item in reference().items {
        let expected = item.greedy_continuation.trim_end();
        let gaps = generator
            .continuation_logit_gaps(&item.prompt, expected)
            .unwrap_or_else(|err| panic!("continuation_logit_gaps: {err}"));
        let (worst_idx, worst_gap) =
            gaps.iter()
                .copied()
                .enumerate()
                .fold(
                    (0, 0.0f32),
                    |worst, (idx, gap)| if gap > worst.1 { (idx, gap) } else { worst },
                );
        let num_greedy = gaps.iter().filter(|&&gap| gap == 0.0).count();
        let (generation, pieces) = generate_collecting(generator, &item.prompt, &greedy(64));
        assert_eq!(
            pieces.concat(),
            generation.text,
            "streamed pieces differ from the text"
        );
        let matched = common_prefix_chars(&generation.text, expected);
        println!(
            "{} reference tokens, {num_greedy} our greedy choice, worst gap {worst_gap:.3} at token {worst_idx}; free run matched {matched} chars: {:?}",
            gaps.len(),
            generation.text
        );
        if gaps.is_empty() || worst_gap > MAX_LOGIT_GAP {
            failures.push(format!(
                "prompt {:?}\n  llama.cpp: {expected:?}\n  ours:      {:?}\n  reference token {worst_idx} is {worst_gap:.3} logits below our best",
                item.prompt, generation.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
