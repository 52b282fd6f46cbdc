//! Fused CPU kernels for the BERT encoder: each is one pass over an activation that candle would
//! run as three to five separate ops, written so that the compiler vectorises it (no float
//! reductions in a single accumulator, `exp` and `erf` as branch-free polynomials).
//!
//! The kernels are candle custom ops, so they work on candle's storage in place without copies
//! and without `unsafe`.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Shape};
use rayon::prelude::*;

/// Elements a rayon task handles at least: below this, splitting costs more than it saves.
const MIN_ELEMENTS_PER_TASK: usize = 16 * 1024;

/// Returns the rows-per-task count for rows of `row_len` elements.
fn rows_per_task(row_len: usize) -> usize {
    (MIN_ELEMENTS_PER_TASK / row_len.max(1)).max(1)
}

/// Layer normalisation parameters for rows of `gamma.len()` elements.
pub(crate) struct LayerNormParams {
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) eps: f32,
}

impl LayerNormParams {
    /// Normalises each row of `rows` (a whole number of rows) in place.
    pub(crate) fn apply_rows(&self, rows: &mut [f32]) {
        for row in rows.chunks_exact_mut(self.gamma.len()) {
            self.apply_row(row);
        }
    }

    fn apply_row(&self, row: &mut [f32]) {
        let len = row.len() as f32;
        let mean = lane_sum(row, |value| value) / len;
        let variance = lane_sum(row, |value| (value - mean) * (value - mean)) / len;
        let inverse_std = 1.0 / (variance + self.eps).sqrt();
        for ((value, gamma), beta) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *value = (*value - mean) * inverse_std * gamma + beta;
        }
    }
}

/// Sums `map(value)` over `values` in eight independent lanes, which the compiler turns into
/// one SIMD register (a single running sum would force strict left-to-right scalar adds).
#[inline(always)]
pub(crate) fn lane_sum(values: &[f32], map: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0_f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += map(value);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&value| map(value)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Returns e^x, relative error below 2e-7; inputs are clamped to [-87, 88] (results then stay
/// normal floats). Branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n * LN2_HI is exact for |n| < 2^10.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding it rounds to an integer kept in the low mantissa bits.
    const ROUNDING: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2_E + ROUNDING;
    let n = shifted - ROUNDING;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor series of e^r on |r| <= ln2/2; the first dropped term is below 1.2e-7.
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n built from its exponent bits: the low bits of `shifted` hold n (two's complement).
    let two_to_n = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * two_to_n
}

/// Returns erf(x), absolute error below 2e-7 (Abramowitz and Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_75;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let abs = x.abs();
    let t = 1.0 / (1.0 + P * abs);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    (1.0 - poly * exp(-abs * abs)).copysign(x)
}

/// The activation between the two feed-forward matmuls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    /// GELU with the exact erf, BERT's `gelu`.
    GeluErf,
    /// GELU's tanh approximation, `gelu_new`.
    GeluTanh,
    /// max(0, x).
    Relu,
}

impl Activation {
    /// Adds `bias` to each row of `rows` and applies the activation, in place.
    fn apply_with_bias(self, rows: &mut [f32], bias: &[f32]) {
        for row in rows.chunks_exact_mut(bias.len()) {
            match self {
                Activation::GeluErf => {
                    for (value, bias) in row.iter_mut().zip(bias) {
                        let x = *value + bias;
                        *value = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                    }
                }
                Activation::GeluTanh => {
                    // sqrt(2 / pi)
                    const SCALE: f32 = 0.797_884_6;
                    for (value, bias) in row.iter_mut().zip(bias) {
                        let x = *value + bias;
                        let inner = SCALE * (x + 0.044_715 * x * x * x);
                        let tanh = 1.0 - 2.0 / (exp(2.0 * inner) + 1.0);
                        *value = 0.5 * x * (1.0 + tanh);
                    }
                }
                Activation::Relu => {
                    for (value, bias) in row.iter_mut().zip(bias) {
                        *value = (*value + bias).max(0.0);
                    }
                }
            }
        }
    }
}

/// Returns the f32 elements of a contiguous tensor's storage, mutably.
fn contiguous_f32_mut<'s>(
    storage: &'s mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'s mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expects f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expects a contiguous tensor")
    };
    match data.get_mut(start..end) {
        Some(slice) => Ok(slice),
        None => candle_core::bail!("{op}: layout outside its storage"),
    }
}

/// Returns the f32 elements of a contiguous tensor's storage.
fn contiguous_f32<'s>(
    storage: &'s CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'s [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expects f32")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expects a contiguous tensor")
    };
    match data.get(start..end) {
        Some(slice) => Ok(slice),
        None => candle_core::bail!("{op}: layout outside its storage"),
    }
}

/// Checks that `layout` is `[rows, row_len]` for the given row length.
fn check_row_len(layout: &Layout, row_len: usize, op: &str) -> candle_core::Result<()> {
    match layout.dims().last() {
        Some(&last) if last == row_len && row_len > 0 => Ok(()),
        _ => candle_core::bail!("{op}: rows of {:?} are not {row_len} long", layout.dims()),
    }
}

/// `x = activation(x + bias)`, in place, for `x` of shape `[.., bias.len()]`.
pub(crate) struct BiasActivation<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) activation: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let row_len = self.bias.len();
        check_row_len(layout, row_len, self.name())?;
        let values = contiguous_f32_mut(storage, layout, self.name())?;
        values
            .par_chunks_mut(row_len * rows_per_task(row_len))
            .for_each(|rows| self.activation.apply_with_bias(rows, self.bias));
        Ok(())
    }
}

/// `x = layer_norm(x + bias + residual)`, in place, for `x` and `residual` of shape
/// `[rows, bias.len()]`: the end of each attention and feed-forward sub-block.
pub(crate) struct BiasResidualLayerNorm<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) norm: &'a LayerNormParams,
}

impl InplaceOp2 for BiasResidualLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &mut CpuStorage,
        layout: &Layout,
        residual_storage: &CpuStorage,
        residual_layout: &Layout,
    ) -> candle_core::Result<()> {
        let row_len = self.bias.len();
        check_row_len(layout, row_len, self.name())?;
        if layout.dims() != residual_layout.dims() {
            candle_core::bail!(
                "{}: residual {:?} differs from {:?}",
                self.name(),
                residual_layout.dims(),
                layout.dims()
            );
        }
        let residual = contiguous_f32(residual_storage, residual_layout, self.name())?;
        let values = contiguous_f32_mut(storage, layout, self.name())?;
        let chunk_len = row_len * rows_per_task(row_len);
        values
            .par_chunks_mut(chunk_len)
            .zip(residual.par_chunks(chunk_len))
            .for_each(|(rows, residual_rows)| {
                for (row, residual_row) in rows
                    .chunks_exact_mut(row_len)
                    .zip(residual_rows.chunks_exact(row_len))
                {
                    for ((value, bias), residual) in row.iter_mut().zip(self.bias).zip(residual_row)
                    {
                        *value += bias + residual;
                    }
                    self.norm.apply_row(row);
                }
            });
        Ok(())
    }
}

/// Softmax over the last dimension, in place.
pub(crate) struct SoftmaxRows;

impl InplaceOp1 for SoftmaxRows {
    fn name(&self) -> &'static str {
        "softmax-rows"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let row_len = layout.dims().last().copied().unwrap_or(1).max(1);
        let values = contiguous_f32_mut(storage, layout, self.name())?;
        values
            .par_chunks_mut(row_len * rows_per_task(row_len))
            .for_each(|rows| {
                for row in rows.chunks_exact_mut(row_len) {
                    softmax_in_place(row);
                }
            });
        Ok(())
    }
}

pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            // A comparison, not `f32::max`: its NaN rule kept this loop scalar (`vmaxss`),
            // a third of the softmax's time; this one becomes `vmaxps`.
            *lane = if value > *lane { value } else { *lane };
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |max, &value| max.max(value));
    for value in row.iter_mut() {
        *value = exp(*value - max);
    }
    let inverse_sum = 1.0 / lane_sum(row, |value| value);
    for value in row.iter_mut() {
        *value *= inverse_sum;
    }
}

/// Splits one sequence's `[seq_len, 3 * hidden]` query-key-value matmul output into
/// `[3, num_heads, seq_len, head_dim]` (query, key, value; each head contiguous) and adds the
/// bias on the way.
pub(crate) struct SplitHeads<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) num_heads: usize,
    pub(crate) head_dim: usize,
}

impl CustomOp1 for SplitHeads<'_> {
    fn name(&self) -> &'static str {
        "split-heads"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let row_len = 3 * self.num_heads * self.head_dim;
        check_row_len(layout, row_len, self.name())?;
        if self.bias.len() != row_len || self.head_dim == 0 {
            candle_core::bail!(
                "{}: bias of {} for rows of {row_len}",
                self.name(),
                self.bias.len()
            );
        }
        let input = contiguous_f32(storage, layout, self.name())?;
        let seq_len = input.len() / row_len;
        let mut output = vec![0.0_f32; input.len()];
        // Output block `block_idx` (query/key/value head, in that order) of position `position`
        // is input row `position`, columns `block_idx * head_dim ..`.
        for (chunk_idx, out) in output.chunks_exact_mut(self.head_dim).enumerate() {
            let block_idx = chunk_idx / seq_len;
            let position = chunk_idx % seq_len;
            let column = block_idx * self.head_dim;
            let start = position * row_len + column;
            let (Some(values), Some(bias)) = (
                input.get(start..start + self.head_dim),
                self.bias.get(column..column + self.head_dim),
            ) else {
                candle_core::bail!("{}: index outside the input", self.name())
            };
            for ((out, value), bias) in out.iter_mut().zip(values).zip(bias) {
                *out = value + bias;
            }
        }
        Ok((
            CpuStorage::F32(output),
            Shape::from_dims(&[3, self.num_heads, seq_len, self.head_dim]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_across_the_softmax_range() {
        let mut x = -87.0_f32;
        while x <= 10.0 {
            let expected = x.exp();
            let relative_error = ((exp(x) - expected) / expected).abs();
            assert!(relative_error < 5e-7, "exp({x}): {} vs {expected}", exp(x));
            x += 0.013;
        }
        assert_eq!(exp(0.0), 1.0);
        // Clamped, not overflowing to infinity or zero.
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn erf_matches_reference_values() {
        // erf values from the Abramowitz and Stegun tables.
        for (x, expected) in [
            (0.0_f32, 0.0_f32),
            (0.1, 0.112_462_9),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (3.0, 0.999_977_9),
            (-1.0, -0.842_700_8),
        ] {
            assert!((erf(x) - expected).abs() < 5e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut row = vec![1.0_f32, 2.0, 3.0, -50.0, 0.5, 0.25, 7.0, 1.0, 2.0, 9.0];
        let original = row.clone();
        softmax_in_place(&mut row);
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let max = original.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let denominator: f32 = original.iter().map(|v| (v - max).exp()).sum();
        for (value, original) in row.iter().zip(&original) {
            let expected = (original - max).exp() / denominator;
            assert!((value - expected).abs() < 1e-6, "{value} vs {expected}");
        }
    }

    #[test]
    fn layer_norm_gives_zero_mean_unit_variance() {
        let norm = LayerNormParams {
            gamma: vec![1.0; 20],
            beta: vec![0.0; 20],
            eps: 1e-12,
        };
        let mut rows: Vec<f32> = (0..40).map(|i| (i * i % 17) as f32).collect();
        norm.apply_rows(&mut rows);
        for row in rows.chunks_exact(20) {
            let mean: f32 = row.iter().sum::<f32>() / 20.0;
            let variance: f32 = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 20.0;
            assert!(mean.abs() < 1e-5, "mean {mean}");
            assert!((variance - 1.0).abs() < 1e-4, "variance {variance}");
        }
    }

    #[test]
    fn gelu_erf_matches_definition() {
        let bias = [0.5_f32, -0.5];
        let mut rows = vec![-3.0_f32, -1.0, 0.0, 0.3, 1.0, 2.5];
        let expected: Vec<f32> = rows
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let x = f64::from(x + bias[i % 2]);
                // erf by its Maclaurin series, converging fast for |x| < 3.
                let z = x / std::f64::consts::SQRT_2;
                let mut term = z;
                let mut sum = z;
                for n in 1..60 {
                    term *= -z * z / n as f64;
                    sum += term / (2 * n + 1) as f64;
                }
                let erf = 2.0 / std::f64::consts::PI.sqrt() * sum;
                (0.5 * x * (1.0 + erf)) as f32
            })
            .collect();
        Activation::GeluErf.apply_with_bias(&mut rows, &bias);
        for (value, expected) in rows.iter().zip(&expected) {
            assert!((value - expected).abs() < 2e-6, "{value} vs {expected}");
        }
    }
}
