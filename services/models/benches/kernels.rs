//! The decoder's quantized matrix products against candle's, on SmolLM2-135M's shapes with
//! random weights: the tied output projection (49,152 × 576, Q8_0) for one token (generation),
//! and a feed-forward projection (1,536 × 576) for one token and for a 64-token prompt chunk,
//! as Q8_0 and Q4_1. Correctness is tested in `generate/qmatmul.rs` (SIMD against scalar,
//! against the dequantized weights, and against candle).
//!
//! Run with `cargo bench -p vellum-models --bench kernels`.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vellum_models::kernels::{has_fast_path, Q4_1Matrix, Q8_0Matrix};

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
        match dtype {
            GgmlDType::Q8_0 => {
                let ours = Q8_0Matrix::new(data, rows, columns).expect("matrix");
                group.bench_function(format!("{name}/vellum"), |b| {
                    b.iter(|| ours.forward(std::hint::black_box(&input_values), tokens))
                });
            }
            _ => {
                let ours = Q4_1Matrix::new(data, rows, columns).expect("matrix");
                group.bench_function(format!("{name}/vellum"), |b| {
                    b.iter(|| ours.forward(std::hint::black_box(&input_values), tokens))
                });
            }
        }
        group.bench_function(format!("{name}/candle"), |b| {
            b.iter(|| candle.forward(std::hint::black_box(&input)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
