//! Measures loading a GGUF with the default CPU settings (Vellum's decoder where it applies):
//! the seconds to a usable generator, then a short answer to show it works (generated tokens/s).
//! Peak memory comes from outside: `/usr/bin/time -v target/release/examples/load_bench M.gguf`
//! ("Maximum resident set size"), as `deploy/bench.sh load-model` runs it.
//!
//! Run with `cargo run --release -p vellum-models --example load_bench -- MODEL.gguf [TOKENS]`
//! (default 8 tokens). With `PANEL_CACHE=FOLDER` it loads as the service does with a panel
//! cache folder: the first run rearranges the weights and writes the file, later runs map it
//! (the line says which).
//!
//! Peak RSS counts mapped pages the process touched as well: with a mapped file the weights
//! are in the page cache (shared, and given back under memory pressure), not in memory of the
//! process's own.

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use vellum_models::{ChatMessage, GenerationDevice, GenerationParams, Generator, GgufGenerator};

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
    let panel_cache = std::env::var_os("PANEL_CACHE").map(PathBuf::from);
    let generator =
        GgufGenerator::load_cached(&model_path, GenerationDevice::Cpu, panel_cache.as_deref())?;
    let how = match (&panel_cache, generator.weights_mapped()) {
        (None, _) => "weights rearranged, no panel cache",
        (Some(_), false) => "weights rearranged, panel cache file written",
        (Some(_), true) => "weights mapped from the panel cache file",
    };
    println!(
        "{}: {:.2} GB file loaded in {:.2} s ({how})",
        generator.model_name(),
        file_bytes as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    // The process's own memory against the file pages it maps (Linux; absent elsewhere).
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .map(|line| line[name.len()..].trim().to_string())
                .unwrap_or_default()
        };
        println!(
            "after loading: RssAnon {}, RssFile {}",
            field("RssAnon:"),
            field("RssFile:")
        );
    }
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
