//! Int8 matrix products for the encoder's linear layers (`Embedder::load_int8`).
//!
//! Why: 73 % of an f32 embedding is gemm's FMA kernel, and an FMA does 8 multiply-adds per
//! instruction; AVX-VNNI's `vpdpbusd` does 32 (8 lanes of four byte products summed to i32),
//! AVX-512 VNNI's 64 (docs/benchmarks.md, "Our own int8 layers": 4x candle's f32 matmul).
//!
//! How the numbers are kept: each weight column (an output feature) is quantized to `i8` with
//! its own scale; each input row is quantized per block of [`BLOCK`] values with its own scale,
//! because one outlier in a row (GELU outputs have them) would otherwise flatten the row's small
//! features. The products of a block are exact `i32` sums; they are scaled and added in `f32`.
//! `vpdpbusd` multiplies unsigned by signed bytes, so inputs are stored as `q + 128` and the
//! weights' share of that offset (`128 · Σ w` per block and column) is taken off each block's
//! sum. The fastest kernel the CPU has runs: AVX-512 VNNI (a 16-column panel per vector),
//! AVX-VNNI (8 columns), or on a CPU with neither AVX2, which computes the same sums exactly
//! (byte pairs widened to i16, `vpmaddwd`; no faster than f32). All follow the scalar
//! reference's order of operations per column, so all four give the same bits (tests below).

// The SIMD kernels are `unsafe` (intrinsics behind a runtime feature check, raw pointers inside
// asserted bounds); the rest of the crate stays under the workspace's `unsafe_code = "deny"`.
#![allow(unsafe_code)]

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

/// Input values per quantization scale (along the inner dimension).
pub(crate) const BLOCK: usize = 32;
/// Output columns per packed panel: two 256-bit vectors of eight `i32` lanes.
const PANEL: usize = 16;
/// Input rows per register tile.
const TILE_ROWS: usize = 4;
/// Input rows per parallel task: the weight panel stays in L1 across this many rows.
const ROWS_PER_TASK: usize = 64;
/// Offset that makes a signed quantized input an unsigned byte.
const OFFSET: i32 = 128;

pub use crate::simd::Kernel;

/// A linear layer's weight (`y = x · Wᵀ`, bias left to the fused op that follows), quantized.
pub struct Int8Linear {
    in_size: usize,
    out_size: usize,
    /// Per panel of [`PANEL`] columns, per group of four inputs, per column: four weights
    /// (the operand layout of `vpdpbusd`). Columns past `out_size` are zero.
    weights: Vec<i8>,
    /// Per column (padded to whole panels): the weight scale.
    column_scales: Vec<f32>,
    /// Per panel, per input block, per column: `128 · Σ w` over the block.
    corrections: Vec<i32>,
    kernel: Kernel,
}

impl Int8Linear {
    /// Quantizes `weights`, `[out_size, in_size]` row-major (a PyTorch `Linear`'s layout).
    /// `in_size` must be a multiple of [`BLOCK`].
    pub fn new(weights: &[f32], out_size: usize, in_size: usize) -> Result<Self, String> {
        if in_size == 0 || !in_size.is_multiple_of(BLOCK) || out_size == 0 {
            return Err(format!(
                "int8 needs layers whose input width is a multiple of {BLOCK}, not {in_size} \
                 (use the f32 embedder)"
            ));
        }
        if weights.len() != out_size * in_size {
            return Err(format!(
                "weight of {} values for a {out_size} x {in_size} layer",
                weights.len()
            ));
        }
        let panels = out_size.div_ceil(PANEL);
        let blocks = in_size / BLOCK;
        let mut packed = vec![0_i8; panels * PANEL * in_size];
        let mut column_scales = vec![0.0_f32; panels * PANEL];
        let mut corrections = vec![0_i32; panels * blocks * PANEL];
        for (column, row) in weights.chunks_exact(in_size).enumerate() {
            let (panel, lane) = (column / PANEL, column % PANEL);
            let max = row.iter().fold(0.0_f32, |max, value| max.max(value.abs()));
            let (scale, inverse) = scales_of(max);
            column_scales[column] = scale;
            let panel_weights = &mut packed[panel * PANEL * in_size..][..PANEL * in_size];
            for (k, value) in row.iter().enumerate() {
                let quantized = quantize(*value, inverse);
                panel_weights[(k / 4) * PANEL * 4 + lane * 4 + k % 4] = quantized as i8;
                corrections[(panel * blocks + k / BLOCK) * PANEL + lane] += OFFSET * quantized;
            }
        }
        Ok(Int8Linear {
            in_size,
            out_size,
            weights: packed,
            column_scales,
            corrections,
            kernel: Kernel::detect(),
        })
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Runs on `kernel` instead of the detected one (tests and benchmarks); a kernel the CPU
    /// lacks falls back to the scalar one.
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = if kernel.runs_here() {
            kernel
        } else {
            Kernel::Scalar
        };
        self
    }

    /// `input · Wᵀ` for `input` of `rows` rows of `in_size`: `[rows, out_size]`.
    pub fn forward(&self, input: &[f32]) -> Vec<f32> {
        let rows = input.len() / self.in_size;
        let mut output = vec![0.0_f32; rows * self.out_size];
        output
            .par_chunks_mut(ROWS_PER_TASK * self.out_size)
            .zip(input.par_chunks(ROWS_PER_TASK * self.in_size))
            .for_each(|(output, input)| self.forward_rows(input, output));
        output
    }

    fn forward_rows(&self, input: &[f32], output: &mut [f32]) {
        let rows = QuantizedRows::new(input, self.in_size, self.kernel);
        let blocks = self.in_size / BLOCK;
        let panels: Vec<Panel> = self
            .weights
            .chunks_exact(PANEL * self.in_size)
            .zip(self.corrections.chunks_exact(blocks * PANEL))
            .zip(self.column_scales.chunks_exact(PANEL))
            .map(|((weights, corrections), scales)| Panel {
                weights,
                corrections,
                scales,
            })
            .collect();
        // The 512-bit kernel takes two panels at a time (its loads then keep up with it).
        let group_size = if self.kernel == Kernel::Avx512Vnni {
            2
        } else {
            1
        };
        for (group_idx, group) in panels.chunks(group_size).enumerate() {
            let mut row = 0;
            while row < rows.count {
                let tile_rows = TILE_ROWS.min(rows.count - row);
                let mut sums = [[[0.0_f32; PANEL]; TILE_ROWS]; 2];
                match tile_rows {
                    4 => self.tile::<4>(&rows, row, group, &mut sums),
                    3 => self.tile::<3>(&rows, row, group, &mut sums),
                    2 => self.tile::<2>(&rows, row, group, &mut sums),
                    _ => self.tile::<1>(&rows, row, group, &mut sums),
                }
                for (panel_idx, sums) in sums.iter().take(group.len()).enumerate() {
                    let first_column = (group_idx * group_size + panel_idx) * PANEL;
                    let columns = PANEL.min(self.out_size - first_column);
                    for (offset, sums) in sums.iter().take(tile_rows).enumerate() {
                        let start = (row + offset) * self.out_size + first_column;
                        output[start..start + columns].copy_from_slice(&sums[..columns]);
                    }
                }
                row += tile_rows;
            }
        }
    }

    /// Rows `first..first + R` of `rows` times one or two panels, into `sums[panel][..R]`.
    fn tile<const R: usize>(
        &self,
        rows: &QuantizedRows,
        first: usize,
        group: &[Panel],
        sums: &mut [[[f32; PANEL]; TILE_ROWS]; 2],
    ) {
        let blocks = self.in_size / BLOCK;
        let values: [&[u8]; R] =
            std::array::from_fn(|r| &rows.values[(first + r) * self.in_size..][..self.in_size]);
        let scales: [&[f32]; R] =
            std::array::from_fn(|r| &rows.scales[(first + r) * blocks..][..blocks]);
        #[cfg(target_arch = "x86_64")]
        if self.kernel == Kernel::Avx512Vnni {
            // SAFETY: `Kernel::Avx512Vnni` is only set after the runtime check for AVX2, FMA,
            // AVX-512F and AVX-512 VNNI (`Kernel::detect`, `with_kernel`); the slices have the
            // lengths asserted by `tile_avx512`.
            match group {
                [one, two] => unsafe { tile_avx512::<R, 2>(&values, &scales, [one, two], sums) },
                [one] => unsafe { tile_avx512::<R, 1>(&values, &scales, [one], sums) },
                _ => {}
            }
            return;
        }
        for (panel, sums) in group.iter().zip(sums.iter_mut()) {
            match self.kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Kernel::Vnni` is only set after the runtime check for AVX2, FMA and
                // AVX-VNNI (`Kernel::detect`, `with_kernel`); the slices have the lengths
                // asserted by `tile_simd`.
                Kernel::Vnni => unsafe { tile_vnni::<R>(&values, &scales, panel, sums) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as above, for AVX2 and FMA.
                Kernel::Avx2 => unsafe { tile_avx2::<R>(&values, &scales, panel, sums) },
                _ => tile_scalar::<R>(&values, &scales, panel, sums),
            }
        }
    }
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: expects f32", self.name())
        };
        let (Some((start, end)), Some(&last)) = (layout.contiguous_offsets(), layout.dims().last())
        else {
            candle_core::bail!("{}: expects a contiguous tensor", self.name())
        };
        if last != self.in_size {
            candle_core::bail!("{}: rows of {last}, not {}", self.name(), self.in_size);
        }
        let Some(input) = data.get(start..end) else {
            candle_core::bail!("{}: layout outside its storage", self.name())
        };
        let rows = input.len() / self.in_size;
        Ok((
            CpuStorage::F32(self.forward(input)),
            Shape::from_dims(&[rows, self.out_size]),
        ))
    }
}

/// One panel's weights, corrections and column scales.
struct Panel<'a> {
    weights: &'a [i8],
    corrections: &'a [i32],
    scales: &'a [f32],
}

/// Input rows quantized per block: `values` hold `q + 128`, `scales` the block scales.
struct QuantizedRows {
    values: Vec<u8>,
    scales: Vec<f32>,
    count: usize,
}

impl QuantizedRows {
    fn new(input: &[f32], row_len: usize, kernel: Kernel) -> Self {
        let mut values = vec![0_u8; input.len()];
        let mut scales = vec![0.0_f32; input.len() / BLOCK];
        for ((block, values), scale) in input
            .chunks_exact(BLOCK)
            .zip(values.chunks_exact_mut(BLOCK))
            .zip(&mut scales)
        {
            let (Ok(block), Ok(values)) = (block.try_into(), values.try_into()) else {
                continue;
            };
            *scale = match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: both SIMD kernels are only chosen after the runtime check for AVX2.
                Kernel::Avx2 | Kernel::Vnni | Kernel::Avx512Vnni => unsafe {
                    quantize_block_avx2(block, values)
                },
                _ => quantize_block(block, values),
            };
        }
        QuantizedRows {
            values,
            scales,
            count: input.len() / row_len,
        }
    }
}

/// Quantizes one block of inputs to `q + 128`; returns its scale.
fn quantize_block(block: &[f32; BLOCK], values: &mut [u8; BLOCK]) -> f32 {
    let max = block
        .iter()
        .fold(0.0_f32, |max, value| max.max(value.abs()));
    let (scale, inverse) = scales_of(max);
    for (out, value) in values.iter_mut().zip(block) {
        *out = (quantize(*value, inverse) + OFFSET) as u8;
    }
    scale
}

/// [`quantize_block`] in AVX2: the same maximum, scale and rounding (to nearest, ties to even),
/// so the same bytes for finite inputs (tests).
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(block: &[f32; BLOCK], values: &mut [u8; BLOCK]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: four loads of eight floats from 32, one store of 32 bytes into 32.
    unsafe {
        let input: [__m256; 4] =
            std::array::from_fn(|i| _mm256_loadu_ps(block.as_ptr().add(8 * i)));
        let sign = _mm256_set1_ps(-0.0);
        let magnitudes = input.map(|v| _mm256_andnot_ps(sign, v));
        let max8 = _mm256_max_ps(
            _mm256_max_ps(magnitudes[0], magnitudes[1]),
            _mm256_max_ps(magnitudes[2], magnitudes[3]),
        );
        let max4 = _mm_max_ps(
            _mm256_castps256_ps128(max8),
            _mm256_extractf128_ps::<1>(max8),
        );
        let max2 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
        let max = _mm_cvtss_f32(_mm_max_ss(max2, _mm_shuffle_ps::<1>(max2, max2)));
        let (scale, inverse) = scales_of(max);
        let inverse = _mm256_set1_ps(inverse);
        // Rounded to nearest, ties to even (the default rounding mode), within -127..=127.
        let q = input.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, inverse)));
        let offset = _mm256_set1_epi16(OFFSET as i16);
        // Packing works within 128-bit lanes: the bytes come out in the order 0-3, 8-11, 16-19,
        // 24-27, 4-7, ...; the permutation of 32-bit groups puts them back.
        let low = _mm256_add_epi16(_mm256_packs_epi32(q[0], q[1]), offset);
        let high = _mm256_add_epi16(_mm256_packs_epi32(q[2], q[3]), offset);
        let bytes = _mm256_permutevar8x32_epi32(
            _mm256_packus_epi16(low, high),
            _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
        );
        _mm256_storeu_si256(values.as_mut_ptr().cast(), bytes);
        scale
    }
}

/// The scale of values whose largest magnitude is `max`, and its inverse (0 for all-zero).
fn scales_of(max: f32) -> (f32, f32) {
    if max > 0.0 && max.is_finite() {
        (max / 127.0, 127.0 / max)
    } else {
        (0.0, 0.0)
    }
}

/// `value / scale` rounded to the nearest integer in `-127..=127`.
fn quantize(value: f32, inverse: f32) -> i32 {
    ((value * inverse).round_ties_even() as i32).clamp(-127, 127)
}

/// The reference: per block, the exact integer sum, then `sum · row scale` added in `f32` with
/// one rounding (the SIMD kernels' FMA); at the end times the column scale.
fn tile_scalar<const R: usize>(
    values: &[&[u8]; R],
    scales: &[&[f32]; R],
    panel: &Panel,
    sums: &mut [[f32; PANEL]; TILE_ROWS],
) {
    for ((values, scales), sums) in values.iter().zip(scales).zip(sums.iter_mut()) {
        for (lane, (out, column_scale)) in sums.iter_mut().zip(panel.scales).enumerate() {
            let mut sum = 0.0_f32;
            for (block, (inputs, &row_scale)) in values.chunks_exact(BLOCK).zip(*scales).enumerate()
            {
                let mut products = 0_i32;
                for (offset, &input) in inputs.iter().enumerate() {
                    let k = block * BLOCK + offset;
                    let weight = panel.weights[(k / 4) * PANEL * 4 + lane * 4 + k % 4];
                    products += i32::from(input) * i32::from(weight);
                }
                let exact = products - panel.corrections[block * PANEL + lane];
                sum = (exact as f32).mul_add(row_scale, sum);
            }
            *out = sum * column_scale;
        }
    }
}

/// Sums of four byte products per `i32` lane, added to an accumulator.
#[cfg(target_arch = "x86_64")]
trait BytePairs {
    /// The broadcast input bytes, prepared once for both halves of the panel.
    type Input: Copy;
    /// A vector of weights, prepared once for every row of the tile.
    type Weights: Copy;

    /// # Safety
    /// Only from a function compiled with the instructions the implementation uses.
    unsafe fn input(four_bytes: i32) -> Self::Input;
    /// # Safety
    /// As [`Self::input`]; `weights` points to 32 readable bytes.
    unsafe fn weights(weights: *const i8) -> Self::Weights;
    /// # Safety
    /// As [`Self::input`].
    unsafe fn add(
        accumulator: std::arch::x86_64::__m256i,
        input: Self::Input,
        weights: Self::Weights,
    ) -> std::arch::x86_64::__m256i;
}

/// AVX-VNNI: `vpdpbusd`, four unsigned-by-signed byte products summed into each `i32` lane.
#[cfg(target_arch = "x86_64")]
struct DotBytes;

#[cfg(target_arch = "x86_64")]
impl BytePairs for DotBytes {
    type Input = std::arch::x86_64::__m256i;
    type Weights = std::arch::x86_64::__m256i;

    #[inline(always)]
    unsafe fn input(four_bytes: i32) -> Self::Input {
        std::arch::x86_64::_mm256_set1_epi32(four_bytes)
    }

    #[inline(always)]
    unsafe fn weights(weights: *const i8) -> Self::Weights {
        // SAFETY: the caller guarantees 32 readable bytes; unaligned load.
        unsafe { std::arch::x86_64::_mm256_loadu_si256(weights.cast()) }
    }

    #[inline(always)]
    unsafe fn add(
        accumulator: std::arch::x86_64::__m256i,
        input: Self::Input,
        weights: Self::Weights,
    ) -> std::arch::x86_64::__m256i {
        std::arch::x86_64::_mm256_dpbusd_avx_epi32(accumulator, input, weights)
    }
}

/// AVX2: the even and odd bytes widened to `i16` (inputs zero-extended, weights sign-extended)
/// and multiplied in pairs by `vpmaddwd`: the same exact sums as `vpdpbusd`, in five
/// instructions instead of one (`vpmaddubsw` would saturate at `255 · 127 · 2`).
#[cfg(target_arch = "x86_64")]
struct WidenedPairs;

#[cfg(target_arch = "x86_64")]
impl BytePairs for WidenedPairs {
    type Input = (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i);
    type Weights = (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i);

    #[inline(always)]
    unsafe fn input(four_bytes: i32) -> Self::Input {
        use std::arch::x86_64::*;
        let bytes = _mm256_set1_epi32(four_bytes);
        (
            _mm256_and_si256(bytes, _mm256_set1_epi16(0x00ff)),
            _mm256_srli_epi16::<8>(bytes),
        )
    }

    #[inline(always)]
    unsafe fn weights(weights: *const i8) -> Self::Weights {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees 32 readable bytes; unaligned load.
        let bytes = unsafe { _mm256_loadu_si256(weights.cast()) };
        (
            _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(bytes)),
            _mm256_srai_epi16::<8>(bytes),
        )
    }

    #[inline(always)]
    unsafe fn add(
        accumulator: std::arch::x86_64::__m256i,
        (even_input, odd_input): Self::Input,
        (even_weights, odd_weights): Self::Weights,
    ) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        _mm256_add_epi32(
            accumulator,
            _mm256_add_epi32(
                _mm256_madd_epi16(even_input, even_weights),
                _mm256_madd_epi16(odd_input, odd_weights),
            ),
        )
    }
}

/// # Safety
/// The CPU has AVX2, FMA and AVX-VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn tile_vnni<const R: usize>(
    values: &[&[u8]; R],
    scales: &[&[f32]; R],
    panel: &Panel,
    sums: &mut [[f32; PANEL]; TILE_ROWS],
) {
    // SAFETY: same features as this function's.
    unsafe { tile_simd::<DotBytes, R>(values, scales, panel, sums) }
}

/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    values: &[&[u8]; R],
    scales: &[&[f32]; R],
    panel: &Panel,
    sums: &mut [[f32; PANEL]; TILE_ROWS],
) {
    // SAFETY: same features as this function's.
    unsafe { tile_simd::<WidenedPairs, R>(values, scales, panel, sums) }
}

/// The tile with `R` rows' accumulators in registers: per block of 32 inputs, eight steps of
/// four inputs (one weight load per half panel, one broadcast per row), then each row's exact
/// sums corrected, converted and added with the block's scale.
///
/// # Safety
/// Only from a function with AVX2, FMA and what `P` uses.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_simd<P: BytePairs, const R: usize>(
    values: &[&[u8]; R],
    scales: &[&[f32]; R],
    panel: &Panel,
    sums: &mut [[f32; PANEL]; TILE_ROWS],
) {
    use std::arch::x86_64::*;
    let blocks = scales.first().map_or(0, |scales| scales.len());
    let in_size = blocks * BLOCK;
    assert!(values.iter().all(|row| row.len() == in_size));
    assert!(scales.iter().all(|row| row.len() == blocks));
    assert!(panel.weights.len() == PANEL * in_size);
    assert!(panel.corrections.len() == PANEL * blocks);
    assert!(panel.scales.len() == PANEL);
    // SAFETY: every pointer below stays inside the slices whose lengths were asserted above:
    // weights `(block · 8 + step) · 64 + 32 < PANEL · in_size`, inputs `block · 32 + step · 4
    // + 3 < in_size`, corrections `block · 16 + 8 + 7 < PANEL · blocks`.
    unsafe {
        let weights = panel.weights.as_ptr();
        let mut totals = [[_mm256_setzero_ps(); 2]; R];
        for block in 0..blocks {
            let mut exact = [[_mm256_setzero_si256(); 2]; R];
            for step in 0..BLOCK / 4 {
                let offset = (block * BLOCK / 4 + step) * PANEL * 4;
                let low = P::weights(weights.add(offset));
                let high = P::weights(weights.add(offset + 32));
                let k = block * BLOCK + step * 4;
                for r in 0..R {
                    let input = P::input(values[r].as_ptr().add(k).cast::<i32>().read_unaligned());
                    exact[r][0] = P::add(exact[r][0], input, low);
                    exact[r][1] = P::add(exact[r][1], input, high);
                }
            }
            let corrections = panel.corrections.as_ptr().add(block * PANEL);
            let correction = [
                _mm256_loadu_si256(corrections.cast()),
                _mm256_loadu_si256(corrections.add(8).cast()),
            ];
            for r in 0..R {
                let row_scale = _mm256_set1_ps(*scales[r].get_unchecked(block));
                for half in 0..2 {
                    let corrected = _mm256_sub_epi32(exact[r][half], correction[half]);
                    totals[r][half] =
                        _mm256_fmadd_ps(_mm256_cvtepi32_ps(corrected), row_scale, totals[r][half]);
                }
            }
        }
        let column_scales = [
            _mm256_loadu_ps(panel.scales.as_ptr()),
            _mm256_loadu_ps(panel.scales.as_ptr().add(8)),
        ];
        for r in 0..R {
            for half in 0..2 {
                _mm256_storeu_ps(
                    sums[r].as_mut_ptr().add(half * 8),
                    _mm256_mul_ps(totals[r][half], column_scales[half]),
                );
            }
        }
    }
}

/// The 512-bit tile: one vector holds a panel's 16 columns, `P` panels share each row's
/// broadcast input. Per lane the same integer sums and the same f32 steps as [`tile_simd`].
///
/// # Safety
/// The CPU has AVX-512F and AVX-512 VNNI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vnni")]
unsafe fn tile_avx512<const R: usize, const P: usize>(
    values: &[&[u8]; R],
    scales: &[&[f32]; R],
    panels: [&Panel; P],
    sums: &mut [[[f32; PANEL]; TILE_ROWS]; 2],
) {
    use std::arch::x86_64::*;
    let blocks = scales.first().map_or(0, |scales| scales.len());
    let in_size = blocks * BLOCK;
    assert!(P <= 2);
    assert!(values.iter().all(|row| row.len() == in_size));
    assert!(scales.iter().all(|row| row.len() == blocks));
    for panel in panels {
        assert!(panel.weights.len() == PANEL * in_size);
        assert!(panel.corrections.len() == PANEL * blocks);
        assert!(panel.scales.len() == PANEL);
    }
    // SAFETY: every pointer below stays inside the slices whose lengths were asserted above:
    // weights `(block · 8 + step) · 64 + 63 < PANEL · in_size`, inputs `block · 32 + step · 4
    // + 3 < in_size`, corrections `block · 16 + 15 < PANEL · blocks`.
    unsafe {
        let mut totals = [[_mm512_setzero_ps(); P]; R];
        for block in 0..blocks {
            let mut exact = [[_mm512_setzero_si512(); P]; R];
            for step in 0..BLOCK / 4 {
                let offset = (block * BLOCK / 4 + step) * PANEL * 4;
                let mut weights = [_mm512_setzero_si512(); P];
                for (weights, panel) in weights.iter_mut().zip(panels) {
                    *weights = _mm512_loadu_si512(panel.weights.as_ptr().add(offset).cast());
                }
                let k = block * BLOCK + step * 4;
                for r in 0..R {
                    let input =
                        _mm512_set1_epi32(values[r].as_ptr().add(k).cast::<i32>().read_unaligned());
                    for p in 0..P {
                        exact[r][p] = _mm512_dpbusd_epi32(exact[r][p], input, weights[p]);
                    }
                }
            }
            let mut corrections = [_mm512_setzero_si512(); P];
            for (corrections, panel) in corrections.iter_mut().zip(panels) {
                *corrections =
                    _mm512_loadu_si512(panel.corrections.as_ptr().add(block * PANEL).cast());
            }
            for r in 0..R {
                let row_scale = _mm512_set1_ps(*scales[r].get_unchecked(block));
                for p in 0..P {
                    let corrected = _mm512_sub_epi32(exact[r][p], corrections[p]);
                    totals[r][p] =
                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(corrected), row_scale, totals[r][p]);
                }
            }
        }
        for (p, panel) in panels.iter().enumerate() {
            let column_scales = _mm512_loadu_ps(panel.scales.as_ptr());
            for r in 0..R {
                _mm512_storeu_ps(
                    sums[p][r].as_mut_ptr(),
                    _mm512_mul_ps(totals[r][p], column_scales),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in -0.5..0.5; with `seed` odd, one in 97 is 40 times larger, as
    /// outliers are in real activations (weights have none that large).
    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..count)
            .map(|i| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 40) as f32 / (1_u64 << 24) as f32 - 0.5;
                if seed % 2 == 1 && i % 97 == 13 {
                    unit * 40.0
                } else {
                    unit
                }
            })
            .collect()
    }

    fn reference(weights: &[f32], input: &[f32], in_size: usize) -> Vec<f32> {
        input
            .chunks_exact(in_size)
            .flat_map(|row| {
                weights.chunks_exact(in_size).map(move |column| {
                    column
                        .iter()
                        .zip(row)
                        .map(|(w, x)| f64::from(*w) * f64::from(*x))
                        .sum::<f64>() as f32
                })
            })
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_scalar_bits_and_stays_near_f32() {
        for kernel in [Kernel::Avx2, Kernel::Vnni, Kernel::Avx512Vnni] {
            if !kernel.runs_here() {
                eprintln!(
                    "NOTE: this CPU lacks {}: that kernel is not run here",
                    kernel.name()
                );
            }
        }
        // Widths: 40 columns = two whole panels and a partial one; rows: whole tiles, a
        // partial tile, and more than one task.
        for (out_size, in_size, rows) in [(40, 64, 7), (16, 384, 1), (48, 96, 130)] {
            let weights = values(out_size * in_size, 2);
            let input = values(rows * in_size, 1);
            let scalar = Int8Linear::new(&weights, out_size, in_size)
                .expect("layer")
                .with_kernel(Kernel::Scalar);
            assert_eq!(scalar.kernel(), Kernel::Scalar);
            let expected = scalar.forward(&input);
            assert_eq!(expected.len(), rows * out_size);
            for kernel in [Kernel::Avx2, Kernel::Vnni, Kernel::Avx512Vnni] {
                let layer = Int8Linear::new(&weights, out_size, in_size)
                    .expect("layer")
                    .with_kernel(kernel);
                if layer.kernel() != kernel {
                    continue;
                }
                let got = layer.forward(&input);
                for (index, (got, expected)) in got.iter().zip(&expected).enumerate() {
                    assert_eq!(
                        got.to_bits(),
                        expected.to_bits(),
                        "{} at {index} ({out_size} x {in_size}, {rows} rows): {got} vs {expected}",
                        kernel.name()
                    );
                }
            }
            // Against the f32 product: the error stays small relative to the output's size
            // (about 1.2 % here: a block holding an outlier quantizes its other values coarsely;
            // about 0.5 % without outliers).
            let exact = reference(&weights, &input, in_size);
            let norm = exact.iter().map(|v| v * v).sum::<f32>().sqrt();
            let error = exact
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt();
            assert!(
                error / norm < 0.02,
                "relative error {} ({out_size} x {in_size})",
                error / norm
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_quantization_gives_the_scalar_bytes() {
        if Kernel::detect() == Kernel::Scalar {
            eprintln!("NOTE: no AVX2 on this CPU: its quantization is not run here");
            return;
        }
        // Ties (127 makes the inverse scale 1: x.5 must go to the even neighbour), zeros,
        // outliers, and every byte position.
        let mut blocks: Vec<[f32; BLOCK]> = vec![
            std::array::from_fn(|i| if i == 5 { -127.0 } else { i as f32 - 15.5 }),
            [0.0; BLOCK],
            std::array::from_fn(|i| if i == 31 { 127.0 } else { 0.5 + i as f32 }),
        ];
        for chunk in values(BLOCK * 40, 7).chunks_exact(BLOCK) {
            blocks.push(chunk.try_into().expect("block"));
        }
        for block in &blocks {
            let (mut scalar, mut simd) = ([0_u8; BLOCK], [0_u8; BLOCK]);
            let scale = quantize_block(block, &mut scalar);
            // SAFETY: AVX2 was detected above.
            let simd_scale = unsafe { quantize_block_avx2(block, &mut simd) };
            assert_eq!(scalar, simd, "{block:?}");
            assert_eq!(scale.to_bits(), simd_scale.to_bits());
        }
        let mut ties = [0_u8; BLOCK];
        quantize_block(&blocks[2], &mut ties);
        assert_eq!(&ties[..3], &[128, 130, 130], "0.5 -> 0, 1.5 -> 2, 2.5 -> 2");
    }

    #[test]
    fn zero_rows_and_widths_that_do_not_fit_are_handled() {
        let layer = Int8Linear::new(&values(16 * 32, 3), 16, 32).expect("layer");
        let output = layer.forward(&[0.0; 64]);
        assert_eq!(output, vec![0.0; 32]);
        assert!(layer.forward(&[]).is_empty());
        let err = Int8Linear::new(&values(16 * 40, 3), 16, 40)
            .err()
            .expect("40 is not a multiple of 32");
        assert!(err.contains("multiple of 32"), "{err}");
        assert!(Int8Linear::new(&values(10, 3), 16, 32).is_err());
    }
}
