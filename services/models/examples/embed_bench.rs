//! Measures embedding throughput: 1,000 SciFact abstracts of 100 to 200 words, embedded `BATCH`
//! texts per call (default 32, and 1), printed as passages per second.
//!
//! Run with `cargo run --release -p vellum-models --example embed_bench -- [BATCH...]`.
//! A batch written `onnx32` runs the ONNX Runtime backend (fastembed, the int8 ONNX export that
//! deploy/fetch-models.sh unpacks), the peer; `stock32` runs candle-transformers' `BertModel`
//! (32 texts per forward pass, padded to the longest), the baseline that [`Embedder`] replaced.
//! A batch written `int8_32` runs our own embedder with int8 linear layers (`Embedder::load_int8`).
//! Run them in one process so that they see the same machine load. Default: `32 1 onnx32 onnx1`.
//! Each backend's cosine to sentence-transformers' vectors (`reference/minilm-embeddings.json`)
//! is printed, and at the end `embed ratio R`: our best passages/s (f32 or int8) over ONNX
//! Runtime's best, then `embed ratio f32 R` and `embed ratio int8 R` for each precision run.
//! The model folder comes from `VELLUM_MODELS_DIR` (default `<workspace>/models`), the corpus from
//! `VELLUM_SHARED_DIR` (default `<workspace>/../shared`). `NUM_PASSAGES` overrides 1,000;
//! `PASSAGES_FILE` (one JSON string per line, e.g. the chunks of an ingest that
//! deploy/bench.sh dumped) replaces the SciFact abstracts, all of them.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};
use vellum_models::{Embedder, OnnxFiles};

#[derive(serde::Deserialize)]
struct CorpusRecord {
    text: String,
}

#[derive(serde::Deserialize)]
struct Reference {
    items: Vec<ReferenceItem>,
}

#[derive(serde::Deserialize)]
struct ReferenceItem {
    text: String,
    embedding: Vec<f32>,
}

/// The lowest and the mean cosine of `embedder`'s vectors to the reference ones.
fn reference_cosine(
    embedder: &Embedder,
    reference: &Reference,
) -> Result<(f32, f32), Box<dyn Error + Send + Sync>> {
    let texts: Vec<&str> = reference
        .items
        .iter()
        .map(|item| item.text.as_str())
        .collect();
    let mut cosines = Vec::new();
    for (ours, item) in embedder.embed(&texts)?.iter().zip(&reference.items) {
        let dot: f32 = ours.iter().zip(&item.embedding).map(|(a, b)| a * b).sum();
        let norm: f32 = item.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        cosines.push(dot / norm);
    }
    let min = cosines.iter().copied().fold(f32::INFINITY, f32::min);
    Ok((min, cosines.iter().sum::<f32>() / cosines.len() as f32))
}

fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("models"));
    let shared_dir = std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("../shared"));
    let num_passages: usize = match std::env::var("NUM_PASSAGES") {
        Ok(value) => value.parse()?,
        Err(_) => 1000,
    };
    let mut runs: Vec<String> = std::env::args().skip(1).collect();
    if runs.is_empty() {
        runs = ["32", "1", "onnx32", "onnx1"].map(str::to_owned).to_vec();
    }
    let reference: Reference = serde_json::from_slice(&std::fs::read(
        shared_dir.join("reference/minilm-embeddings.json"),
    )?)?;

    let mut passages = Vec::new();
    if let Some(path) = std::env::var_os("PASSAGES_FILE") {
        for line in std::fs::read_to_string(path)?.lines() {
            passages.push(serde_json::from_str::<String>(line)?);
        }
    } else {
        let corpus = std::fs::read_to_string(shared_dir.join("corpora/beir-scifact/corpus.jsonl"))?;
        for line in corpus.lines() {
            let record: CorpusRecord = serde_json::from_str(line)?;
            let num_words = record.text.split_whitespace().count();
            if (100..=200).contains(&num_words) {
                passages.push(record.text);
            }
            if passages.len() == num_passages {
                break;
            }
        }
    }
    let passage_refs: Vec<&str> = passages.iter().map(String::as_str).collect();

    let model_dir = models_dir.join("all-MiniLM-L6-v2");
    let started = Instant::now();
    let embedder = Embedder::load(&model_dir)?;
    eprintln!(
        "loaded {} in {:.2?}",
        embedder.model_name(),
        started.elapsed()
    );
    let mut num_tokens = 0;
    for passage in &passage_refs {
        num_tokens += (embedder.count_tokens(passage)? + 2).min(embedder.max_tokens());
    }
    eprintln!(
        "{} passages, {:.0} tokens each on average (after truncation)",
        passage_refs.len(),
        num_tokens as f64 / passage_refs.len() as f64
    );
    // Warm-up: thread pools, allocator.
    embedder.embed(&passage_refs[..passage_refs.len().min(8)])?;
    let (min, mean) = reference_cosine(&embedder, &reference)?;
    println!(
        "{}: cosine to the reference min {min:.4} mean {mean:.4}",
        embedder.model_name()
    );
    let mut onnx: Option<Embedder> = None;
    let mut int8: Option<Embedder> = None;
    let (mut best_native, mut best_onnx, mut best_int8) = (0.0_f64, 0.0_f64, 0.0_f64);

    for run in runs {
        if let Some(batch_size) = run.strip_prefix("int8_") {
            let batch_size: usize = batch_size.parse()?;
            if int8.is_none() {
                int8 = Some(load_reported(
                    || Embedder::load_int8(&model_dir),
                    &passage_refs,
                    &reference,
                )?);
            }
            let Some(int8) = int8.as_ref() else {
                continue;
            };
            let seconds = time_batches(int8, &passage_refs, batch_size)?;
            let rate = passage_refs.len() as f64 / seconds;
            best_int8 = best_int8.max(rate);
            println!("Embedder int8 batch {batch_size:>3}: {rate:.1} passages/s ({seconds:.1} s)");
            continue;
        }
        if let Some(batch_size) = run.strip_prefix("onnx") {
            let batch_size: usize = batch_size.parse()?;
            if onnx.is_none() {
                let files = OnnxFiles {
                    model: models_dir.join("all-MiniLM-L6-v2-onnx-int8/model.onnx"),
                    runtime: models_dir.join("onnxruntime"),
                };
                onnx = Some(load_reported(
                    || Embedder::load_onnx(&model_dir, &files),
                    &passage_refs,
                    &reference,
                )?);
            }
            let Some(onnx) = onnx.as_ref() else {
                continue;
            };
            let rate = passage_refs.len() as f64 / time_batches(onnx, &passage_refs, batch_size)?;
            best_onnx = best_onnx.max(rate);
            println!("ONNX Runtime (fastembed) batch {batch_size:>3}: {rate:.1} passages/s");
            continue;
        }
        if let Some(batch_size) = run.strip_prefix("stock") {
            let batch_size: usize = batch_size.parse()?;
            let seconds = run_stock_bert(&model_dir, &passage_refs, batch_size)?;
            println!(
                "stock BertModel batch {batch_size:>3}: {:.1} passages/s ({seconds:.1} s)",
                passage_refs.len() as f64 / seconds
            );
            continue;
        }
        let batch_size: usize = run.parse()?;
        let seconds = time_batches(&embedder, &passage_refs, batch_size)?;
        let rate = passage_refs.len() as f64 / seconds;
        best_native = best_native.max(rate);
        println!("Embedder batch {batch_size:>3}: {rate:.1} passages/s ({seconds:.1} s)");
    }
    if best_onnx > 0.0 {
        // The headline: our best, either precision, over ONNX Runtime's best; then each.
        if best_native.max(best_int8) > 0.0 {
            println!("embed ratio {:.2}", best_native.max(best_int8) / best_onnx);
        }
        if best_native > 0.0 {
            println!("embed ratio f32 {:.2}", best_native / best_onnx);
        }
        if best_int8 > 0.0 {
            println!("embed ratio int8 {:.2}", best_int8 / best_onnx);
        }
    }
    Ok(())
}

/// Loads an embedder with `load`, warms it up on a few passages and prints its load time and
/// its cosine to the reference vectors.
fn load_reported(
    load: impl FnOnce() -> vellum_models::Result<Embedder>,
    passages: &[&str],
    reference: &Reference,
) -> Result<Embedder, Box<dyn Error + Send + Sync>> {
    let started = Instant::now();
    let loaded = load()?;
    eprintln!(
        "loaded {} in {:.2?}",
        loaded.model_name(),
        started.elapsed()
    );
    loaded.embed(&passages[..passages.len().min(8)])?;
    let (min, mean) = reference_cosine(&loaded, reference)?;
    println!(
        "{}: cosine to the reference min {min:.4} mean {mean:.4}",
        loaded.model_name()
    );
    Ok(loaded)
}

/// Seconds `embedder` takes for `passages`, `batch_size` texts per call.
fn time_batches(
    embedder: &Embedder,
    passages: &[&str],
    batch_size: usize,
) -> Result<f64, Box<dyn Error + Send + Sync>> {
    let started = Instant::now();
    for batch in passages.chunks(batch_size.max(1)) {
        embedder.embed(batch)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Embeds `passages` with candle-transformers' `BertModel`, `batch_size` per forward pass padded
/// to the longest, mean-pooled; returns the seconds taken (loading excluded).
fn run_stock_bert(
    model_dir: &Path,
    passages: &[&str],
    batch_size: usize,
) -> Result<f64, Box<dyn Error + Send + Sync>> {
    let config: BertConfig =
        serde_json::from_slice(&std::fs::read(model_dir.join("config.json"))?)?;
    let weights = std::fs::read(model_dir.join("model.safetensors"))?;
    let var_builder = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?;
    let model = BertModel::load(var_builder, &config)?;
    let mut tokenizer = Tokenizer::from_file(model_dir.join("tokenizer.json"))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: 256,
            ..Default::default()
        }))?
        .with_padding(Some(PaddingParams::default()));

    let started = Instant::now();
    for batch in passages.chunks(batch_size.max(1)) {
        let encodings = tokenizer.encode_batch(batch.to_vec(), true)?;
        let ids: Vec<Tensor> = encodings
            .iter()
            .map(|encoding| Tensor::new(encoding.get_ids(), &Device::Cpu))
            .collect::<Result<_, _>>()?;
        let masks: Vec<Tensor> = encodings
            .iter()
            .map(|encoding| Tensor::new(encoding.get_attention_mask(), &Device::Cpu))
            .collect::<Result<_, _>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let hidden = model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let pooled = hidden
            .broadcast_mul(&mask)?
            .sum(1)?
            .broadcast_div(&mask.sum(1)?)?;
        let _vectors: Vec<Vec<f32>> = pooled.to_vec2()?;
    }
    Ok(started.elapsed().as_secs_f64())
}
