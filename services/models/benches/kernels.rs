//! The decoder's quantized matrix products against candle's, on SmolLM2-135M's shapes with
//! random weights: the tied output projection (49,152 × 576, Q8_0) for one token (generation),
//! and a feed-forward projection (1,536 × 576) for one token and for a 64-token prompt chunk,
//! //! as Q8_0 and Q4_1, on the detected kernel and on each other one this CPU runs; and one head
//! of single-token attention over 550 cached positions (the scores' dot products and the
//! weighted sum of values), the AVX2 helpers against the portable loops they replaced, and
//! the three query heads of one SmolLM2 key/value head (keys and values `[position][64]`, one
//! buffer per key/value head as the cache holds them), one at a time against grouped; and a
//! four-answer step's attention (30 layers, three key/value heads, 104 positions), each layer's
//! caches followed by that layer's share of 85 MB of weights streamed through, with the scores
//! asking for keys and values ahead of reading them and without, beside the weights alone. And the embedder's int8 linear layer (MiniLM's feed-forward
//! input, 384 -> 1,536, over 256 tokens) on each kernel this CPU runs against candle's f32
//! matmul. Correctness is tested in `generate/qmatmul.rs` (SIMD against scalar, against the
//! dequantized weights, and against candle), `generate/attention.rs` (grouped heads bit for
//! bit against each head alone) and `embed/int8.rs` (every kernel against scalar,
//! bit for bit, and against the f32 product).
//!
//! Run with `cargo bench -p vellum-models --bench kernels`.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vellum_models::kernels::{
    attention_scores, group_attention_scores, group_scores_fetching_values, group_weighted_rows,
    has_fast_path, weighted_rows, Int8Linear, Kernel, Q4_1Matrix, Q8_0Matrix,
};

fn random(rows: usize, columns: usize) -> Tensor {
    Tensor::randn(0f32, 1.0, (rows, columns), &Device::Cpu).expect("randn")
}

fn bench_kernels(c: &mut Criterion) {
    if !has_fast_path() {
        eprintln!("no AVX2/FMA on this CPU: the kernels run their scalar path");
    }
    let cases = [
        ("output_projection_q8_0", GgmlDType::Q8_0, 49_152, 1),
        ("ffn_q8_0", GgmlDType::Q8_0, 1_536, 1),
        ("ffn_q8_0_prompt64", GgmlDType::Q8_0, 1_536, 64),
        ("ffn_q4_1", GgmlDType::Q4_1, 1_536, 1),
        ("ffn_q4_1_batch4", GgmlDType::Q4_1, 1_536, 4),
        ("ffn_q4_1_prompt64", GgmlDType::Q4_1, 1_536, 64),
    ];
    let columns = 576;
    let mut group = c.benchmark_group("qmatmul");
    group.sample_size(20);
    for (name, dtype, rows, tokens) in cases {
        let weights = QTensor::quantize(&random(rows, columns), dtype).expect("quantize");
        let data = weights.data().expect("data").to_vec();
        let input = random(tokens, columns);
        let input_values: Vec<f32> = input
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("input");
        let candle = QMatMul::from_qtensor(weights).expect("qmatmul");
        group.throughput(Throughput::Elements((rows * tokens) as u64));
        // The detected kernel as `vellum`; the feed-forward cases also on every other kernel
        // this CPU runs (the same bits, at their own speeds).
        let others: Vec<Kernel> = if name.starts_with("ffn") {
            Kernel::ALL
                .into_iter()
                .filter(|kernel| kernel.runs_here() && *kernel != Kernel::detect())
                .collect()
        } else {
            Vec::new()
        };
        let kernels = std::iter::once(("vellum".to_string(), Kernel::detect()))
            .chain(others.into_iter().map(|k| (format!("vellum_{k:?}"), k)));
        for (label, kernel) in kernels {
            match dtype {
                GgmlDType::Q8_0 => {
                    let ours = Q8_0Matrix::with_kernel(data.clone(), rows, columns, kernel)
                        .expect("matrix");
                    group.bench_function(format!("{name}/{label}"), |b| {
                        b.iter(|| ours.forward(std::hint::black_box(&input_values), tokens))
                    });
                }
                _ => {
                    let ours = Q4_1Matrix::with_kernel(data.clone(), rows, columns, kernel)
                        .expect("matrix");
                    group.bench_function(format!("{name}/{label}"), |b| {
                        b.iter(|| ours.forward(std::hint::black_box(&input_values), tokens))
                    });
                }
            }
        }
        group.bench_function(format!("{name}/candle"), |b| {
            b.iter(|| candle.forward(std::hint::black_box(&input)))
        });
    }
    group.finish();
}

/// One query head against `positions` cached keys and values of 64 (SmolLM2's head size):
/// scores, then their weighted sum of values (the softmax between them is left out: it is the
/// same code either way).
fn bench_attention(c: &mut Criterion) {
    let (positions, head_dim) = (550, 64);
    let values = |len: usize| -> Vec<f32> {
        random(1, len)
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("values")
    };
    let (query, keys, cached) = (
        values(head_dim),
        values(positions * head_dim),
        values(positions * head_dim),
    );
    let mut group = c.benchmark_group("attention_one_head");
    group.throughput(Throughput::Elements(positions as u64));
    group.bench_function("vellum", |b| {
        b.iter(|| {
            let mut scores = vec![0.0_f32; positions];
            attention_scores(
                std::hint::black_box(&query),
                &keys,
                head_dim,
                1.0,
                &mut scores,
            );
            let mut out = vec![0.0_f32; head_dim];
            weighted_rows(&scores, &cached, head_dim, &mut out);
            out
        })
    });
    group.bench_function("portable_loops", |b| {
        b.iter(|| {
            let scores: Vec<f32> = keys
                .chunks_exact(head_dim)
                .map(|key| {
                    let mut lanes = [0.0_f32; 8];
                    for (a, b) in std::hint::black_box(&query)
                        .chunks_exact(8)
                        .zip(key.chunks_exact(8))
                    {
                        for ((lane, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
                            *lane += x * y;
                        }
                    }
                    lanes.iter().sum::<f32>()
                })
                .collect();
            let mut out = vec![0.0_f32; head_dim];
            for (&weight, value) in scores.iter().zip(cached.chunks_exact(head_dim)) {
                for (out, &value) in out.iter_mut().zip(value) {
                    *out += weight * value;
                }
            }
            out
        })
    });
    group.finish();

    // Three query heads sharing one key/value head, as a generation step runs them: the head's
    // keys and values in buffers of their own, `[position][head_dim]`.
    let heads = 3;
    let queries = values(heads * head_dim);
    let (keys, cached) = (values(positions * head_dim), values(positions * head_dim));
    let mut group = c.benchmark_group("attention_kv_group");
    group.throughput(Throughput::Elements((heads * positions) as u64));
    group.bench_function("head_by_head", |b| {
        b.iter(|| {
            let mut out = vec![0.0_f32; heads * head_dim];
            for (query, out) in std::hint::black_box(&queries)
                .chunks_exact(head_dim)
                .zip(out.chunks_exact_mut(head_dim))
            {
                let mut scores = vec![0.0_f32; positions];
                attention_scores(query, &keys, head_dim, 1.0, &mut scores);
                weighted_rows(&scores, &cached, head_dim, out);
            }
            out
        })
    });
    group.bench_function("grouped", |b| {
        b.iter(|| {
            let mut scores = vec![0.0_f32; heads * positions];
            let queries = std::hint::black_box(&queries);
            group_attention_scores(queries, head_dim, &keys, head_dim, 1.0, &mut scores);
            let mut out = vec![0.0_f32; heads * head_dim];
            group_weighted_rows(&scores, &cached, head_dim, head_dim, &mut out);
            out
        })
    });
    group.finish();

    // A four-answer step's attention as a step meets it: per layer, each answer's three
    // key/value heads (~100 positions), then that layer's weights (2.8 MB of SmolLM2-135M's
    // 85) streamed through, which pushes the caches out before the next step reads them.
    let (answers, layers, kv_heads, positions) = (4, 30, 3, 104);
    let caches: Vec<(Vec<f32>, Vec<f32>)> = (0..answers * layers * kv_heads)
        .map(|_| (values(positions * head_dim), values(positions * head_dim)))
        .collect();
    let weights: Vec<u64> = (0..85_000_000 / 8).map(|value| value as u64).collect();
    let per_layer = weights.len() / layers;
    let mut group = c.benchmark_group("attention_step_between_weights");
    group.sample_size(10);
    group.throughput(Throughput::Elements(
        (caches.len() * heads * positions) as u64,
    ));
    // The weights alone, for the attention's share of the other two.
    group.bench_function("weights_alone", |b| {
        b.iter(|| {
            weights
                .chunks(per_layer)
                .map(|layer| layer.iter().fold(0_u64, |sum, &w| sum ^ w))
                .fold(0_u64, |all, layer| all ^ layer)
        })
    });
    for fetching in [false, true] {
        let name = if fetching { "asking_ahead" } else { "plain" };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut out = vec![0.0_f32; heads * head_dim];
                let mut scores = vec![0.0_f32; heads * positions];
                let mut streamed = 0_u64;
                for (layer, layer_caches) in caches.chunks(answers * kv_heads).enumerate() {
                    for (keys, cached) in layer_caches {
                        let queries = std::hint::black_box(&queries);
                        if fetching {
                            group_scores_fetching_values(
                                queries,
                                head_dim,
                                keys,
                                cached,
                                head_dim,
                                1.0,
                                &mut scores,
                            );
                        } else {
                            group_attention_scores(
                                queries,
                                head_dim,
                                keys,
                                head_dim,
                                1.0,
                                &mut scores,
                            );
                        }
                        group_weighted_rows(&scores, cached, head_dim, head_dim, &mut out);
                    }
                    let layer_weights = &weights[layer * per_layer..][..per_layer];
                    streamed = layer_weights.iter().fold(streamed, |sum, &w| sum ^ w);
                }
                (out, streamed)
            })
        });
    }
    group.finish();
}

/// The embedder's int8 linear layer against candle's f32 matmul (gemm), one MiniLM
/// feed-forward input layer over 256 tokens: 151 M multiply-adds.
fn bench_int8_linear(c: &mut Criterion) {
    let (tokens, in_size, out_size) = (256, 384, 1_536);
    let weights = random(out_size, in_size);
    let weight_values: Vec<f32> = weights
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("weights");
    let transposed = weights.t().and_then(|t| t.contiguous()).expect("transpose");
    let input = random(tokens, in_size);
    let input_values: Vec<f32> = input
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("input");
    let mut group = c.benchmark_group("embedder_linear_256x384x1536");
    group.sample_size(20);
    group.throughput(Throughput::Elements(tokens as u64));
    group.bench_function("f32_candle_matmul", |b| {
        b.iter(|| {
            std::hint::black_box(&input)
                .matmul(&transposed)
                .expect("matmul")
        })
    });
    for kernel in Kernel::ALL {
        if !kernel.runs_here() {
            eprintln!("{}: not on this CPU, not measured", kernel.name());
            continue;
        }
        let layer = Int8Linear::new(&weight_values, out_size, in_size)
            .expect("layer")
            .with_kernel(kernel);
        group.bench_function(
            format!("int8_{}", kernel.name().replace([' ', '-'], "_")),
            |b| b.iter(|| layer.forward(std::hint::black_box(&input_values))),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_kernels, bench_attention, bench_int8_linear);
criterion_main!(benches);
