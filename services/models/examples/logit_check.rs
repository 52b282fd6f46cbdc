//! Checks a GGUF model on Vellum's decoder against another engine's greedy continuations by
//! teacher forcing: at each token of each reference continuation, how far the reference token's
//! logit is below our best one (0 where it is our greedy choice). Quantized kernels differ
//! between engines, so near-ties may flip; a real fault (a kernel, rotary pairs, a norm, the
//! tokenizer) shows as gaps of several logits. Prints the worst gap per prompt and overall, and
//! exits with an error when it is above 1 logit (the bound `tests/generator.rs` holds the
//! default model to).
//!
//! Run with `cargo run --release -p vellum-models --example logit_check -- MODEL.gguf
//! REFERENCE.json`, the reference as `deploy/peer/llama_cpp_tool.py greedy` writes it (and as
//! `shared/reference/smollm2-greedy.json` is): `{"items": [{"prompt", "greedy_continuation"}]}`.

use std::error::Error;
use std::path::PathBuf;

use vellum_models::GgufGenerator;

const MAX_LOGIT_GAP: f32 = 1.0;

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    prompt: String,
    greedy_continuation: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let (Some(model), Some(reference)) = (args.next(), args.next()) else {
        return Err("usage: logit_check MODEL.gguf REFERENCE.json".into());
    };
    let generator = GgufGenerator::load(&PathBuf::from(&model))?;
    let reference: Reference = serde_json::from_str(&std::fs::read_to_string(&reference)?)?;
    let (mut worst, mut tokens, mut greedy) = (0.0_f32, 0, 0);
    for item in &reference.items {
        let expected = item.greedy_continuation.trim_end();
        if expected.is_empty() {
            continue;
        }
        let gaps = generator.continuation_logit_gaps(&item.prompt, expected)?;
        let prompt_worst = gaps.iter().copied().fold(0.0_f32, f32::max);
        let prompt_greedy = gaps.iter().filter(|&&gap| gap == 0.0).count();
        println!(
            "{:>3} reference tokens, {prompt_greedy:>3} our greedy choice, worst gap {prompt_worst:.3}: {:?}",
            gaps.len(),
            expected.chars().take(60).collect::<String>()
        );
        worst = worst.max(prompt_worst);
        tokens += gaps.len();
        greedy += prompt_greedy;
    }
    println!("worst logit gap {worst:.3} over {tokens} tokens ({greedy} our greedy choice)");
    if tokens == 0 || worst > MAX_LOGIT_GAP {
        return Err(format!(
            "the worst gap is above {MAX_LOGIT_GAP} logit (or nothing was compared)"
        )
        .into());
    }
    Ok(())
}
