//! Matrix products with Q4_1 weights, read as the GGUF stores them, for the decoder.
//!
//! Why: candle 0.11 has only a scalar kernel for Q4_1 (the default model's format), so the
//! loader used to convert Q4_1 to Q8_0, which candle runs with AVX2. That made generation
//! memory-bound on twice the bytes: one token reads every weight once, 143 MB as Q8_0 against
//! 76 MB as Q4_1 for SmolLM2-135M. This is llama.cpp's scheme: each activation row is quantized
//! to 8 bits per block of 32 (a scale and the scaled sum of the block, "Q8_1"), and a block's
//! dot product is `d4·d8·Σ q4·q8 + m4·s8`, with the integer sum done by AVX2's
//! `vpmaddubsw`/`vpmaddwd`.
//!
//! The AVX2 path is chosen at run time (`is_x86_feature_detected!`); the scalar path gives the
//! same result up to float rounding and is what the tests compare against.

// SIMD intrinsics need `unsafe`; this is the only module of the workspace allowed to use it.
// Every unsafe call is a `#[target_feature]` function reached only after the runtime check,
// reading slices whose lengths are checked first.
#![allow(unsafe_code)]

use half::f16;
use rayon::prelude::*;

/// Values per block (both Q4_1 and the 8-bit activations).
const BLOCK: usize = 32;
/// Bytes per Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;
/// Weight rows per parallel task when one activation row is multiplied (generation).
const ROWS_PER_TASK: usize = 64;
/// Input rows that share each unpacked weight block when many rows are multiplied (prompts).
const TILE_ROWS: usize = 4;

/// A `[rows, columns]` matrix of Q4_1 blocks, row-major, exactly as in the GGUF file.
pub(crate) struct Q4_1Matrix {
    rows: usize,
    columns: usize,
    data: Vec<u8>,
    use_avx2: bool,
}

/// One activation row quantized to 8 bits per block.
struct QuantizedRow {
    /// Per block: `d`, with `value ≈ d · q`.
    scales: Vec<f32>,
    /// Per block: `d · Σ q`, which multiplies the weight block's minimum.
    sums: Vec<f32>,
    values: Vec<i8>,
}

/// Whether this CPU runs the fast path.
pub(crate) fn has_fast_path() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Q4_1Matrix {
    /// Wraps `data` (Q4_1 blocks of `rows` rows of `columns` values).
    pub(crate) fn new(data: Vec<u8>, rows: usize, columns: usize) -> Result<Q4_1Matrix, String> {
        Self::with_path(data, rows, columns, has_fast_path())
    }

    fn with_path(
        data: Vec<u8>,
        rows: usize,
        columns: usize,
        use_avx2: bool,
    ) -> Result<Q4_1Matrix, String> {
        if columns == 0 || !columns.is_multiple_of(BLOCK) {
            return Err(format!(
                "Q4_1 rows of {columns} values are not whole blocks"
            ));
        }
        let expected = rows * columns / BLOCK * BLOCK_BYTES;
        if data.len() != expected {
            return Err(format!(
                "Q4_1 matrix [{rows}, {columns}] needs {expected} bytes, got {}",
                data.len()
            ));
        }
        Ok(Q4_1Matrix {
            rows,
            columns,
            data,
            use_avx2,
        })
    }

    /// Multiplies `num_rows` input rows (`input`, row-major, `columns` wide) by the matrix's
    /// transpose: returns `[num_rows, rows]`.
    pub(crate) fn forward(&self, input: &[f32], num_rows: usize) -> Result<Vec<f32>, String> {
        if input.len() != num_rows * self.columns {
            return Err(format!(
                "input of {} values is not {num_rows} rows of {}",
                input.len(),
                self.columns
            ));
        }
        let quantized: Vec<QuantizedRow> =
            input.chunks_exact(self.columns).map(quantize_row).collect();
        let mut output = vec![0.0_f32; num_rows * self.rows];
        if let [single] = quantized.as_slice() {
            // Generation: one row, the weight rows split across threads.
            output
                .par_chunks_mut(ROWS_PER_TASK)
                .enumerate()
                .for_each(|(task, out)| {
                    let first_row = task * ROWS_PER_TASK;
                    let num_grouped = out.len() / TILE_ROWS * TILE_ROWS;
                    let (grouped, rest) = out.split_at_mut(num_grouped);
                    for (group, values) in grouped.chunks_exact_mut(TILE_ROWS).enumerate() {
                        let dots = self.dot_rows(first_row + group * TILE_ROWS, single);
                        values.copy_from_slice(&dots);
                    }
                    for (offset, value) in rest.iter_mut().enumerate() {
                        *value = self.dot(first_row + num_grouped + offset, single);
                    }
                });
        } else {
            // A prompt chunk: groups of 4 input rows across threads, each group against the
            // whole matrix (which stays in cache for the small models this serves); each
            // weight block is unpacked once per group, not once per row.
            output
                .par_chunks_mut(TILE_ROWS * self.rows)
                .zip(quantized.par_chunks(TILE_ROWS))
                .for_each(|(out, rows)| {
                    for weight_row in 0..self.rows {
                        let dots = self.dot_tile(weight_row, rows);
                        for (index, dot) in dots.iter().take(rows.len()).enumerate() {
                            out[index * self.rows + weight_row] = *dot;
                        }
                    }
                });
        }
        Ok(output)
    }

    /// Dot products of [`TILE_ROWS`] consecutive weight rows with one input row: four
    /// independent accumulation chains, and each activation block loaded once.
    fn dot_rows(&self, first_row: usize, input: &QuantizedRow) -> [f32; TILE_ROWS] {
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 && input.values.len() == self.columns {
            let row_bytes = self.columns / BLOCK * BLOCK_BYTES;
            let blocks = &self.data[first_row * row_bytes..][..TILE_ROWS * row_bytes];
            // SAFETY: as in `dot`; `blocks` holds exactly four rows.
            return unsafe { dot_rows_avx2(blocks, row_bytes, input) };
        }
        std::array::from_fn(|offset| self.dot(first_row + offset, input))
    }

    /// Dot products of one weight row with up to [`TILE_ROWS`] input rows.
    fn dot_tile(&self, weight_row: usize, inputs: &[QuantizedRow]) -> [f32; TILE_ROWS] {
        let mut dots = [0.0_f32; TILE_ROWS];
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2
            && inputs.len() == TILE_ROWS
            && inputs.iter().all(|row| row.values.len() == self.columns)
        {
            let row_bytes = self.columns / BLOCK * BLOCK_BYTES;
            let blocks = &self.data[weight_row * row_bytes..][..row_bytes];
            // SAFETY: as in `dot`, for each of the four rows.
            return unsafe { dot_tile_avx2(blocks, inputs) };
        }
        for (dot, input) in dots.iter_mut().zip(inputs) {
            *dot = self.dot(weight_row, input);
        }
        dots
    }

    fn dot(&self, weight_row: usize, input: &QuantizedRow) -> f32 {
        let row_bytes = self.columns / BLOCK * BLOCK_BYTES;
        let blocks = &self.data[weight_row * row_bytes..][..row_bytes];
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 && input.values.len() == self.columns {
            // SAFETY: `use_avx2` is only set after the runtime check for AVX2 and FMA, and
            // `blocks` and `input` hold exactly `columns / 32` blocks each (checked above and
            // by construction in `quantize_row`).
            return unsafe { dot_avx2(blocks, input) };
        }
        dot_scalar(blocks, input)
    }
}

/// Quantizes one row to 8 bits per block of 32, exactly as llama.cpp's `quantize_row_q8_1`.
fn quantize_row(row: &[f32]) -> QuantizedRow {
    let num_blocks = row.len() / BLOCK;
    let mut quantized = QuantizedRow {
        scales: Vec::with_capacity(num_blocks),
        sums: Vec::with_capacity(num_blocks),
        values: Vec::with_capacity(row.len()),
    };
    for block in row.chunks_exact(BLOCK) {
        let max_abs = block
            .iter()
            .fold(0.0_f32, |max, value| max.max(value.abs()));
        let scale = max_abs / 127.0;
        let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
        let mut sum = 0_i32;
        for &value in block {
            let q = (value * inverse).round() as i8;
            sum += i32::from(q);
            quantized.values.push(q);
        }
        // Stored rounded to f16, as ggml's Q8_1 blocks (and candle's) hold them, so that
        // results match llama.cpp's and candle's Q4_1 products, not just approximate them.
        let scale = f16::from_f32(scale);
        quantized.scales.push(scale.to_f32());
        quantized
            .sums
            .push((f16::from_f32(sum as f32) * scale).to_f32());
    }
    quantized
}

fn block_header(block: &[u8]) -> (f32, f32) {
    let scale = f16::from_le_bytes([block[0], block[1]]).to_f32();
    let minimum = f16::from_le_bytes([block[2], block[3]]).to_f32();
    (scale, minimum)
}

fn dot_scalar(blocks: &[u8], input: &QuantizedRow) -> f32 {
    let mut total = 0.0_f32;
    for (index, block) in blocks.chunks_exact(BLOCK_BYTES).enumerate() {
        let (scale, minimum) = block_header(block);
        let values = &input.values[index * BLOCK..][..BLOCK];
        let mut integer_sum = 0_i32;
        for (j, &byte) in block[4..].iter().enumerate() {
            integer_sum += i32::from(byte & 0x0F) * i32::from(values[j]);
            integer_sum += i32::from(byte >> 4) * i32::from(values[j + 16]);
        }
        total += scale * input.scales[index] * integer_sum as f32 + minimum * input.sums[index];
    }
    total
}

// The three helpers below are only called from the `#[target_feature(enable = "avx2,fma")]`
// functions after them, into which they are always inlined (so they run with those features).

/// The 32 weights of a block as unsigned bytes 0..16, in value order (low nibbles are values
/// 0..16, high nibbles values 16..32).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn unpack_weights(block: &[u8]) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let packed = _mm_loadu_si128(block[4..BLOCK_BYTES].as_ptr().cast());
    _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
        _mm256_set1_epi8(0x0F),
    )
}

/// Adds `scale · Σ weights·activations` of one block to `accumulator`, eight lanes wide.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn accumulate_block(
    accumulator: std::arch::x86_64::__m256,
    weights: std::arch::x86_64::__m256i,
    activations: &[i8],
    scale: f32,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    let activations = _mm256_loadu_si256(activations[..BLOCK].as_ptr().cast());
    // u8 × i8 pairs summed to i16 (at most 2·15·127), then pairs of those to i32.
    let products = _mm256_madd_epi16(
        _mm256_maddubs_epi16(weights, activations),
        _mm256_set1_epi16(1),
    );
    _mm256_fmadd_ps(
        _mm256_cvtepi32_ps(products),
        _mm256_set1_ps(scale),
        accumulator,
    )
}

/// Adds up the eight lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn horizontal_sum(accumulator: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let halves = _mm_add_ps(
        _mm256_castps256_ps128(accumulator),
        _mm256_extractf128_ps(accumulator, 1),
    );
    let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
    _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(blocks: &[u8], input: &QuantizedRow) -> f32 {
    let mut accumulator = std::arch::x86_64::_mm256_setzero_ps();
    let mut minimum_total = 0.0_f32;
    for (index, block) in blocks.chunks_exact(BLOCK_BYTES).enumerate() {
        let (scale, minimum) = block_header(block);
        accumulator = accumulate_block(
            accumulator,
            unpack_weights(block),
            &input.values[index * BLOCK..],
            scale * input.scales[index],
        );
        minimum_total += minimum * input.sums[index];
    }
    horizontal_sum(accumulator) + minimum_total
}

/// [`dot_avx2`] for four weight rows (`row_bytes` apart) and one input row: four independent
/// accumulation chains.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(blocks: &[u8], row_bytes: usize, input: &QuantizedRow) -> [f32; TILE_ROWS] {
    let mut accumulators = [std::arch::x86_64::_mm256_setzero_ps(); TILE_ROWS];
    let mut minimum_totals = [0.0_f32; TILE_ROWS];
    for index in 0..row_bytes / BLOCK_BYTES {
        let activations = &input.values[index * BLOCK..];
        for (row, (accumulator, minimum_total)) in accumulators
            .iter_mut()
            .zip(minimum_totals.iter_mut())
            .enumerate()
        {
            let block = &blocks[row * row_bytes + index * BLOCK_BYTES..][..BLOCK_BYTES];
            let (scale, minimum) = block_header(block);
            *accumulator = accumulate_block(
                *accumulator,
                unpack_weights(block),
                activations,
                scale * input.scales[index],
            );
            *minimum_total += minimum * input.sums[index];
        }
    }
    std::array::from_fn(|row| horizontal_sum(accumulators[row]) + minimum_totals[row])
}

/// [`dot_avx2`] for four input rows at once: each weight block is unpacked once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile_avx2(blocks: &[u8], inputs: &[QuantizedRow]) -> [f32; TILE_ROWS] {
    let mut accumulators = [std::arch::x86_64::_mm256_setzero_ps(); TILE_ROWS];
    let mut minimum_totals = [0.0_f32; TILE_ROWS];
    for (index, block) in blocks.chunks_exact(BLOCK_BYTES).enumerate() {
        let (scale, minimum) = block_header(block);
        let weights = unpack_weights(block);
        for ((accumulator, minimum_total), input) in accumulators
            .iter_mut()
            .zip(minimum_totals.iter_mut())
            .zip(inputs)
        {
            *accumulator = accumulate_block(
                *accumulator,
                weights,
                &input.values[index * BLOCK..],
                scale * input.scales[index],
            );
            *minimum_total += minimum * input.sums[index];
        }
    }
    std::array::from_fn(|row| horizontal_sum(accumulators[row]) + minimum_totals[row])
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;

    /// A random matrix quantized to Q4_1 by candle, and its dequantized values.
    fn random_q4_1(rows: usize, columns: usize) -> (Vec<u8>, Vec<f32>) {
        let weights = Tensor::randn(0f32, 1.0, (rows, columns), &Device::Cpu).expect("randn");
        let quantized = QTensor::quantize(&weights, GgmlDType::Q4_1).expect("quantize");
        let dequantized = quantized
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("dequantize");
        (quantized.data().expect("data").to_vec(), dequantized)
    }

    fn reference(weights: &[f32], input: &[f32], rows: usize, columns: usize) -> Vec<f32> {
        input
            .chunks_exact(columns)
            .flat_map(|x| {
                (0..rows).map(move |r| {
                    weights[r * columns..][..columns]
                        .iter()
                        .zip(x)
                        .map(|(w, x)| w * x)
                        .sum::<f32>()
                })
            })
            .collect()
    }

    #[test]
    fn products_match_the_dequantized_weights_on_both_paths() {
        let (rows, columns) = (70, 96);
        let (data, dequantized) = random_q4_1(rows, columns);
        for num_rows in [1, 5, 8] {
            let input: Vec<f32> = Tensor::randn(0f32, 1.0, num_rows * columns, &Device::Cpu)
                .and_then(|t| t.to_vec1())
                .expect("input");
            let expected = reference(&dequantized, &input, rows, columns);
            let mut paths = vec![false];
            if has_fast_path() {
                paths.push(true);
            }
            for use_avx2 in paths {
                let matrix =
                    Q4_1Matrix::with_path(data.clone(), rows, columns, use_avx2).expect("matrix");
                let actual = matrix.forward(&input, num_rows).expect("forward");
                assert_eq!(actual.len(), expected.len());
                // 8-bit activations: each term is off by up to half a step (1/254 of its
                // block's largest input), so the error of a row grows like √columns; a fault
                // (nibble order, scale, minimum) is off by the size of the result itself.
                let tolerance = 0.05 * (columns as f32).sqrt();
                for (a, e) in actual.iter().zip(&expected) {
                    assert!((a - e).abs() < tolerance, "{a} vs {e} (avx2 {use_avx2})");
                }
            }
        }
    }

    #[test]
    fn simd_and_scalar_paths_agree_closely() {
        if !has_fast_path() {
            return;
        }
        let (rows, columns) = (33, 576);
        let (data, _) = random_q4_1(rows, columns);
        let input: Vec<f32> = Tensor::randn(0f32, 1.0, columns, &Device::Cpu)
            .and_then(|t| t.to_vec1())
            .expect("input");
        let scalar = Q4_1Matrix::with_path(data.clone(), rows, columns, false)
            .and_then(|m| m.forward(&input, 1))
            .expect("scalar");
        let simd = Q4_1Matrix::with_path(data, rows, columns, true)
            .and_then(|m| m.forward(&input, 1))
            .expect("simd");
        for (s, v) in scalar.iter().zip(&simd) {
            assert!((s - v).abs() <= 1e-4 * (1.0 + s.abs()), "{s} vs {v}");
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(Q4_1Matrix::new(vec![0; 20], 1, 31).is_err());
        assert!(Q4_1Matrix::new(vec![0; 19], 1, 32).is_err());
        let matrix = Q4_1Matrix::new(vec![0; 20], 1, 32).expect("matrix");
        assert!(matrix.forward(&[0.0; 31], 1).is_err());
    }
}
