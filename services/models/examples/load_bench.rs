//! Measures loading a GGUF with the default CPU settings (Vellum's decoder where it applies):
//! the seconds to a usable generator, then a short answer to show it works (generated tokens/s).
//! Peak memory comes from outside: `/usr/bin/time -v target/release/examples/load_bench M.gguf`
//! ("Maximum resident set size"), as `deploy/bench.sh load-model` runs it.
//!
//! Run with `cargo run --release -p vellum-models --example load_bench -- MODEL.gguf [TOKENS]`
//! (default 8 tokens).

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use vellum_models::{ChatMessage, GenerationParams, Generator, GgufGenerator};

fn main() -> Result<(), Box<dyn Error>> {
    let Some(model_path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err("usage: load_bench MODEL.gguf [TOKENS]".into());
    };
    let tokens: usize = match std::env::args().nth(2) {
        Some(value) => value.parse()?,
        None => 8,
    };
    let file_bytes = std::fs::metadata(&model_path)?.len();
    let started = Instant::now();
    let generator = GgufGenerator::load(&model_path)?;
    println!(
        "{}: {:.2} GB file loaded in {:.2} s",
        generator.model_name(),
        file_bytes as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    let params = GenerationParams {
        max_tokens: tokens,
        stop: Vec::new(),
        ..GenerationParams::default()
    };
    let started = Instant::now();
    let generation = generator.generate(
        &[ChatMessage::user("Name three rivers.")],
        &params,
        &mut |_: &str| {},
    )?;
    println!(
        "prompt of {} tokens and {} generated tokens in {:.2} s",
        generation.num_prompt_tokens,
        generation.num_generated_tokens,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
