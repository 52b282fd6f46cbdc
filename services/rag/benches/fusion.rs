//! Fusion of a BM25 and a vector result list, the step `hybrid` adds: the default convex
//! combination of scaled scores, and reciprocal rank fusion (the previous default).
//!
//! Run with `cargo bench -p vellum-rag --bench fusion`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vellum_rag::{convex_fusion, reciprocal_rank_fusion};

fn bench_rrf(c: &mut Criterion) {
    let mut group = c.benchmark_group("reciprocal_rank_fusion");
    for depth in [10_usize, 100, 1000] {
        // Two lists that share half their ids, as BM25 and vector results typically do.
        let bm25: Vec<String> = (0..depth).map(|i| format!("chunk-{i}")).collect();
        let vector: Vec<String> = (0..depth)
            .map(|i| format!("chunk-{}", i + depth / 2))
            .collect();
        let lists = vec![bm25, vector];
        group.bench_with_input(BenchmarkId::from_parameter(depth), &lists, |b, lists| {
            b.iter(|| reciprocal_rank_fusion(std::hint::black_box(lists), 60.0))
        });
    }
    group.finish();
}

fn bench_convex(c: &mut Criterion) {
    let mut group = c.benchmark_group("convex_fusion");
    for depth in [10_usize, 100, 1000] {
        let bm25: Vec<(String, f32)> = (0..depth)
            .map(|i| (format!("chunk-{i}"), 20.0 - i as f32 * 0.01))
            .collect();
        let vector: Vec<(String, f32)> = (0..depth)
            .map(|i| (format!("chunk-{}", i + depth / 2), 0.9 - i as f32 * 0.0005))
            .collect();
        group.bench_with_input(
            BenchmarkId::from_parameter(depth),
            &(bm25, vector),
            |b, (bm25, vector)| b.iter(|| convex_fusion(std::hint::black_box(bm25), vector, 0.6)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_rrf, bench_convex);
criterion_main!(benches);
