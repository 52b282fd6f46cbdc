//! Every supported architecture loads from a GGUF with its real tensor names and metadata,
//! renders its chat template, and generates the requested number of tokens: llama, Mixtral-style
//! mixture of experts inside a llama GGUF (both the stacked `ffn_*_exps` layout that llama.cpp
//! writes today and the older per-expert tensors), qwen2 and phi3 (SentencePiece vocabulary).
//! The weights are random; the real-model check is `generator.rs` with SmolLM2.

mod common;

use common::{worst_logit_difference, write_tiny_model, TinyArch, TINY_CONTEXT};
use vellum_models::{ChatMessage, GenerationParams, Generator, GgufGenerator, StopReason};

fn greedy(max_tokens: usize) -> GenerationParams {
    GenerationParams {
        max_tokens,
        ..GenerationParams::default()
    }
}

#[test]
fn every_architecture_loads_renders_and_generates() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    for arch in TinyArch::ALL {
        let path = dir.path().join(format!("tiny-{arch:?}.gguf"));
        write_tiny_model(&path, arch);
        for requantize in [true, false] {
            let generator = GgufGenerator::load_with_requantization(&path, requantize)
                .unwrap_or_else(|err| panic!("{arch:?} (requantize {requantize}): {err}"));
            assert_eq!(generator.architecture(), arch.gguf_name(), "{arch:?}");
            assert_eq!(generator.context_length(), TINY_CONTEXT as usize);
            let identity = generator.identity();
            assert_eq!(identity.architecture, arch.gguf_name());
            assert_eq!(identity.file_sha256.len(), 64);
            assert_eq!(identity.requantized_to_q8_0, requantize, "{arch:?}");

            let messages = [ChatMessage::user("hello")];
            let rendered = generator
                .render_chat(&messages)
                .unwrap_or_else(|err| panic!("{arch:?}: render: {err}"));
            assert_eq!(rendered, arch.rendered_hello(), "{arch:?}");

            let mut streamed = String::new();
            let generation = generator
                .generate(&messages, &greedy(10), &mut |piece: &str| {
                    streamed.push_str(piece)
                })
                .unwrap_or_else(|err| panic!("{arch:?}: generate: {err}"));
            assert_eq!(generation.stop_reason, StopReason::MaxTokens, "{arch:?}");
            assert_eq!(generation.num_generated_tokens, 10, "{arch:?}");
            assert_eq!(streamed, generation.text, "{arch:?}");
            // The chat markers are single tokens: far fewer prompt tokens than characters.
            assert!(
                generation.num_prompt_tokens >= 6
                    && generation.num_prompt_tokens < arch.rendered_hello().len(),
                "{arch:?}: {} prompt tokens",
                generation.num_prompt_tokens
            );

            // Greedy is repeatable on every architecture.
            let again = generator
                .generate(&messages, &greedy(10), &mut |_: &str| {})
                .unwrap_or_else(|err| panic!("{arch:?}: generate: {err}"));
            assert_eq!(again.text, generation.text, "{arch:?}");
        }
    }
}

#[test]
fn vellum_decoder_matches_candle_on_llama_and_qwen2() {
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    for arch in [TinyArch::Llama, TinyArch::Qwen2] {
        let path = dir.path().join(format!("tiny-{arch:?}.gguf"));
        write_tiny_model(&path, arch);
        // As written (no Q8_0 conversion): both then multiply the Q4_1 blocks by 8-bit
        // activations with the same formula (ours with AVX2, candle's scalar kernel).
        let ours = GgufGenerator::load_with(&path, false, true)
            .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
        let candle = GgufGenerator::load_with(&path, false, false)
            .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
        // Several tokens through the prompt path, the last through the single-token path.
        // Free-running greedy text is not compared: random weights make near-ties common, and
        // summing in another order may flip one.
        let prompt = ours
            .render_chat(&[ChatMessage::user("hello hello hello")])
            .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
        let expected = candle
            .next_token_logits(&prompt)
            .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
        let actual = ours
            .next_token_logits(&prompt)
            .unwrap_or_else(|err| panic!("{arch:?}: {err}"));
        let (worst, scale) = worst_logit_difference(&actual, &expected);
        assert!(
            scale > 0.0 && worst <= 1e-3 * scale,
            "{arch:?}: logits differ by {worst} (largest logit {scale})"
        );
    }
}

#[test]
fn mixture_of_experts_with_a_mismatched_expert_count_is_an_error() {
    // The stacked layout is split into per-expert tensors at load; a file whose stacked tensor
    // does not divide into the declared experts must be an error, not a panic.
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let path = dir.path().join("tiny-moe.gguf");
    write_tiny_model(&path, TinyArch::MixtralStacked);
    let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("read: {err}"));
    // Declare 3 experts instead of 4: the stacked tensors no longer match.
    let key = b"llama.expert_count";
    let at = bytes
        .windows(key.len())
        .position(|window| window == key)
        .expect("expert_count key in the file");
    // Layout after the key: value type (u32 = 4) then the u32 value.
    let value_at = at + key.len() + 4;
    let mut broken = bytes.clone();
    broken[value_at..value_at + 4].copy_from_slice(&3u32.to_le_bytes());
    let broken_path = dir.path().join("tiny-moe-broken.gguf");
    std::fs::write(&broken_path, broken).unwrap_or_else(|err| panic!("write: {err}"));
    match GgufGenerator::load(&broken_path) {
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains("tiny-moe-broken.gguf"), "{message}");
        }
        Ok(_) => panic!("a model with mismatched experts must not load"),
    }
}
