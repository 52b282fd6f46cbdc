//! The embedder on real passages: one query (the search path) and a batch of 32 SciFact
//! abstracts (the ingest path). `examples/embed_bench` measures 1,000 passages end to end.
//!
//! Run with `cargo bench -p vellum-models --bench embedder` after `deploy/fetch-models.sh`
//! (models from `VELLUM_MODELS_DIR`, corpus from `VELLUM_SHARED_DIR`; defaults beside the
//! repository).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vellum_models::Embedder;

#[derive(serde::Deserialize)]
struct CorpusRecord {
    text: String,
}

fn dir_from_env(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(default))
}

fn bench_embedder(c: &mut Criterion) {
    let model_dir = dir_from_env("VELLUM_MODELS_DIR", "../../models").join("all-MiniLM-L6-v2");
    let embedder = Embedder::load(&model_dir).unwrap_or_else(|err| {
        panic!("{err} (run deploy/fetch-models.sh or set VELLUM_MODELS_DIR)")
    });
    let corpus_path = dir_from_env("VELLUM_SHARED_DIR", "../../../shared")
        .join("corpora/beir-scifact/corpus.jsonl");
    let corpus = std::fs::read_to_string(&corpus_path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", corpus_path.display()));
    let passages: Vec<String> = corpus
        .lines()
        .filter_map(|line| serde_json::from_str::<CorpusRecord>(line).ok())
        .map(|record| record.text)
        .filter(|text| (100..=200).contains(&text.split_whitespace().count()))
        .take(32)
        .collect();
    let passage_refs: Vec<&str> = passages.iter().map(String::as_str).collect();

    let mut group = c.benchmark_group("all_minilm_l6_v2");
    group.sample_size(10);
    group.bench_function("query", |b| {
        b.iter(|| embedder.embed(&["which contracts may be assigned without consent"]))
    });
    group.throughput(Throughput::Elements(passage_refs.len() as u64));
    group.bench_function("batch_of_32_abstracts", |b| {
        b.iter(|| embedder.embed(std::hint::black_box(&passage_refs)))
    });
    group.finish();
}

criterion_group!(benches, bench_embedder);
criterion_main!(benches);
