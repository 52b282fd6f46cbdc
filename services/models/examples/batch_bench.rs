//! Measures continuous batching: 1, 2, 4 and 8 generations started at once on one generator,
//! each up to 128 tokens from its own short prompt, and the aggregate generated tokens per
//! second (all tokens over the wall time until the last one ends), against one stream alone.
//! The prompts are short so that the figure is about generation, not prompt processing.
//!
//! Run with `cargo run --release -p vellum-models --example batch_bench -- [MODEL.gguf]` (the
//! default model as in `gen_bench`). `RUNS` sets the runs per concurrency (2; the best is
//! kept); `AT_ONCE` the concurrencies (`1,2,4,8`; the first is the peer, e.g. `1,4` to profile
//! one). Ends with one line per concurrency, `batch N ratio R`, R the aggregate rate over the
//! single-stream rate measured in the same run.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vellum_models::{ChatMessage, GenerationParams, Generator, GgufGenerator};

const GENERATED_TOKENS: usize = 128;
const TOPICS: [&str; 8] = [
    "a lighthouse keeper",
    "a court clerk who finds a lost will",
    "a night nurse in a small hospital",
    "a contract lawyer's first case",
    "a ship's doctor",
    "a village that forgets its name",
    "a librarian and a stolen map",
    "two rival surgeons",
];

fn main() -> Result<(), Box<dyn Error>> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("models"));
    let model_path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            models_dir.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let runs: usize = match std::env::var("RUNS") {
        Ok(value) => value.parse()?,
        Err(_) => 2,
    };
    let at_once: Vec<usize> = match std::env::var("AT_ONCE") {
        Ok(list) => list
            .split(',')
            .map(|value| value.trim().parse::<usize>())
            .collect::<Result<_, _>>()?,
        Err(_) => vec![1, 2, 4, 8],
    };
    if at_once.iter().any(|&n| n == 0 || n > TOPICS.len()) {
        return Err(format!("AT_ONCE takes 1 to {} generations", TOPICS.len()).into());
    }
    let generator = GgufGenerator::load(&model_path)?;
    println!(
        "{}: up to {} generations share a step",
        generator.model_name(),
        generator.max_concurrent_generations()
    );
    let params = GenerationParams {
        max_tokens: GENERATED_TOKENS,
        ..GenerationParams::default()
    };
    // Warm-up: page in the weights, start the thread pool.
    generate(&generator, &params, TOPICS[0])?;

    let mut rates = Vec::new();
    for concurrency in at_once {
        let mut best = (0.0_f64, 0, 0.0_f64);
        for _ in 0..runs {
            let start = Instant::now();
            let counts: Vec<usize> = std::thread::scope(|scope| {
                let handles: Vec<_> = TOPICS[..concurrency]
                    .iter()
                    .map(|topic| {
                        let (generator, params) = (&generator, &params);
                        scope.spawn(move || generate(generator, params, topic))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|handle| handle.join().map_err(|_| "a generation panicked")?)
                    .collect::<Result<Vec<_>, _>>()
            })?;
            let seconds = start.elapsed().as_secs_f64();
            let tokens: usize = counts.iter().sum();
            let rate = tokens as f64 / seconds;
            if rate > best.0 {
                best = (rate, tokens, seconds);
            }
        }
        let (rate, tokens, seconds) = best;
        println!(
            "{concurrency} at once: {tokens} tokens in {seconds:.2}s, {rate:.1} tokens/s \
             (largest step so far: {})",
            generator.largest_batch()
        );
        rates.push((concurrency, rate));
    }
    let single = rates.first().map_or(1.0, |&(_, rate)| rate);
    for (concurrency, rate) in rates {
        println!("batch {concurrency} ratio {:.2}", rate / single);
    }
    Ok(())
}

/// One story; returns the tokens generated.
fn generate(
    generator: &GgufGenerator,
    params: &GenerationParams,
    topic: &str,
) -> Result<usize, String> {
    let messages = [ChatMessage::user(format!(
        "Write a long story about {topic}."
    ))];
    generator
        .generate(&messages, params, &mut |_| {})
        .map(|generation| generation.num_generated_tokens)
        .map_err(|err| err.to_string())
}
