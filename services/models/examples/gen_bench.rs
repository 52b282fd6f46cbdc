//! Measures the GGUF generator: prompt processing of a RAG-style prompt of about 500 tokens
//! (SciFact abstracts as context) and generation of up to 128 tokens, printed as tokens per
//! second: Vellum's decoder (the default), and candle's quantized llama with the slow tensor
//! types re-quantized to Q8_0 and as written.
//!
//! Run with `cargo run --release -p vellum-models --example gen_bench -- [MODEL.gguf]`.
//! The default model is `<models>/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf`, with
//! `<models>` from `VELLUM_MODELS_DIR` (default `<workspace>/models`); the corpus comes from
//! `VELLUM_SHARED_DIR` (default `<workspace>/../shared`). `RUNS` sets the runs per mode (3).
//! `DEVICE=cuda` (a build with `--features cuda`) measures the GPU, then the CPU decoder.
//! `SHORT_PROMPT=1` asks for a story in one sentence instead (about 30 prompt tokens with the
//! chat template): generation from a nearly empty cache, as llama-bench's tg128 measures it.

use std::error::Error;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use vellum_models::{ChatMessage, GenerationDevice, GenerationParams, Generator, GgufGenerator};

#[derive(serde::Deserialize)]
struct CorpusRecord {
    text: String,
}

const PROMPT_TOKENS: usize = 500;
const GENERATED_TOKENS: usize = 128;

fn main() -> Result<(), Box<dyn Error>> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("models"));
    let shared_dir = std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("../shared"));
    let model_path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            models_dir.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let runs: usize = match std::env::var("RUNS") {
        Ok(value) => value.parse()?,
        Err(_) => 3,
    };
    let corpus_path = shared_dir.join("corpora/beir-scifact/corpus.jsonl");

    // Vellum's decoder with Q8_0 conversion (the default), then candle's reference
    // implementation with and without the conversion, in one process on the same machine load.
    // `ONLY_VELLUM=1` runs just the first (for profiling).
    // `DEVICE=cuda` runs the model on the GPU (a binary built with `--features cuda`), then on
    // the CPU for comparison.
    let device: GenerationDevice = match std::env::var("DEVICE") {
        Ok(value) => value.parse()?,
        Err(_) => GenerationDevice::Cpu,
    };
    let configurations: &[(bool, bool)] = if device != GenerationDevice::Cpu {
        &[(false, false), (true, true)]
    } else if std::env::var_os("ONLY_VELLUM").is_some() {
        &[(true, true)]
    } else {
        &[(true, true), (true, false), (false, false)]
    };
    for (index, &(requantize, own_decoder)) in configurations.iter().enumerate() {
        let load_start = Instant::now();
        let on_gpu = device != GenerationDevice::Cpu && index == 0;
        let generator = if on_gpu {
            GgufGenerator::load_on(&model_path, device)?
        } else {
            GgufGenerator::load_with(&model_path, requantize, own_decoder)?
        };
        let implementation = match (on_gpu, own_decoder) {
            (true, _) => "candle on the GPU",
            (false, true) => "vellum decoder",
            (false, false) => "candle",
        };
        println!(
            "{} ({}), {implementation}, requantize {requantize}: loaded in {:.2}s",
            generator.model_name(),
            generator.architecture(),
            load_start.elapsed().as_secs_f64()
        );
        let messages = if std::env::var_os("SHORT_PROMPT").is_some() {
            vec![ChatMessage::user(
                "Write a long story about a lighthouse keeper.",
            )]
        } else {
            // Whole abstracts until the context nears the target, then word by word up to it.
            let mut context = String::new();
            let lines = std::io::BufReader::new(std::fs::File::open(&corpus_path)?).lines();
            'fill: for line in lines {
                let record: CorpusRecord = serde_json::from_str(&line?)?;
                for word in record.text.split_whitespace() {
                    context.push_str(word);
                    context.push(' ');
                    if generator.count_tokens(&context)? >= PROMPT_TOKENS - 60 {
                        break 'fill;
                    }
                }
                context.push_str("\n\n");
            }
            vec![
                ChatMessage::system("Answer from the context. Write a detailed answer."),
                ChatMessage::user(format!(
                    "Context:\n{context}\nQuestion: Explain in detail what these studies found."
                )),
            ]
        };
        let params = GenerationParams {
            max_tokens: GENERATED_TOKENS,
            ..GenerationParams::default()
        };
        for run in 0..runs {
            let generation = generator.generate(&messages, &params, &mut |_: &str| {})?;
            // The rate counts the tokens computed: a prompt without a system message keeps
            // the template's own beginning from the run before.
            let computed = generation.num_prompt_tokens - generation.num_cached_prompt_tokens;
            println!(
                "  run {run}: prompt {} tokens ({} kept) in {:.2}s = {:.1} tok/s; generated {} tokens ({:?}) in {:.2}s = {:.1} tok/s",
                generation.num_prompt_tokens,
                generation.num_cached_prompt_tokens,
                generation.prompt_seconds,
                computed as f64 / generation.prompt_seconds,
                generation.num_generated_tokens,
                generation.stop_reason,
                generation.generation_seconds,
                generation.num_generated_tokens as f64 / generation.generation_seconds,
            );
        }
    }
    Ok(())
}
