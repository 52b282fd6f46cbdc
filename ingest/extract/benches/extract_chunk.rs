//! Extraction and chunking of a real contract: the CPU cost of ingest before embedding.
//!
//! Run with `cargo bench -p vellum-ingest --bench extract_chunk` (the shared corpora must sit
//! beside the repository, or `VELLUM_SHARED_DIR` must name them).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vellum_extract::chunk::{chunk_pages, ChunkOptions};
use vellum_extract::extract::extract;

/// A 3-page CUAD joint-venture agreement (the one the CLI test searches).
const CONTRACT: &str = "corpora/legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF";

fn shared_dir() -> PathBuf {
    std::env::var_os("VELLUM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

fn bench_extract_and_chunk(c: &mut Criterion) {
    let path = shared_dir().join(CONTRACT);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    let document = extract(&bytes, None).expect("the contract extracts");
    let num_pages = document.pages.len() as u64;

    let mut group = c.benchmark_group("cuad_joint_venture_pdf");
    group.sample_size(10);
    group.throughput(Throughput::Elements(num_pages));
    group.bench_function("extract_pages", |b| {
        b.iter(|| extract(std::hint::black_box(&bytes), None).expect("extracts"))
    });
    let options = ChunkOptions::default();
    group.bench_function("chunk_pages", |b| {
        b.iter(|| chunk_pages(std::hint::black_box(&document.pages), &options))
    });
    group.finish();
}

criterion_group!(benches, bench_extract_and_chunk);
criterion_main!(benches);
