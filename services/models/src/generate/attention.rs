//! Single-token attention over a sequence's cached keys and values (a generation step): the
//! scores of a query against every cached key, and the weighted sum of the values.
//!
//! [`group_attention_scores`] and [`group_weighted_rows`] do the same for the query heads that
//! share one key/value head (grouped-query attention: SmolLM2's nine query heads read three
//! key/value heads): each key and value is loaded once for the whole group instead of once per
//! head, and every head's result is bit for bit what [`attention_scores`] and
//! [`weighted_rows`] give it alone (same products, same order of sums), so a step's answer does
//! not depend on how its heads were grouped into tasks.

// SIMD intrinsics need `unsafe`: every unsafe call is a `#[target_feature]` function reached
// only after the runtime check (`has_fast_path`), reading keys and values whose lengths are
// asserted first.
#![allow(unsafe_code)]

use super::qmatmul::has_fast_path;

/// Query heads whose sums share registers in [`group_attention_scores`] and
/// [`group_weighted_rows`]: four positions (or 32 values) for three heads are 12 of AVX2's 16
/// vector registers.
const HEADS_AT_ONCE: usize = 3;

/// How many positions ahead of the four it multiplies the scores' kernel asks for keys (and
/// values, see [`group_scores_fetching_values`]). Measured on the AMD EPYC at four answers:
/// 4 and 8 alike, 16 slightly slower, 32 to 128 slower still (docs/benchmarks.md).
const AHEAD: usize = 8;

/// One new token's attention scores over a cache: `scores[p] = scale · Σ query·key_p`, key `p`
/// the `query.len()` values at `keys[p · stride..]`. Four positions at a time where the CPU
/// has AVX2 and FMA (a dot product per position with its own horizontal sum spent more on
/// the sum than on the products: with `weighted_rows`, half the attention's time). Every
/// position's score has the same arithmetic wherever it falls.
pub fn attention_scores(
    query: &[f32],
    keys: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let dim = query.len();
    if let Some(last) = scores.len().checked_sub(1) {
        assert!(
            dim <= stride && last * stride + dim <= keys.len(),
            "attention keys shorter than their positions"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        // SAFETY: AVX2 and FMA checked just above; every key lies inside `keys` (asserted).
        return unsafe { group_scores_avx2::<1>(query, keys, None, stride, scale, scores) };
    }
    for (position, score) in scores.iter_mut().enumerate() {
        let key = &keys[position * stride..][..dim];
        *score = scale * query.iter().zip(key).map(|(q, k)| q * k).sum::<f32>();
    }
}

/// `out = Σ_p weights[p] · value_p`, value `p` the `out.len()` values at `values[p · stride..]`
/// (the attention's weighted sum), positions in order; the sums stay in registers where the
/// CPU has AVX2 and FMA.
pub fn weighted_rows(weights: &[f32], values: &[f32], stride: usize, out: &mut [f32]) {
    let dim = out.len();
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(
            dim <= stride && last * stride + dim <= values.len(),
            "attention values shorter than their positions"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        // SAFETY: as in `attention_scores`.
        return unsafe { group_weighted_avx2::<1>(weights, values, stride, out) };
    }
    out.fill(0.0);
    for (position, &weight) in weights.iter().enumerate() {
        let value = &values[position * stride..][..dim];
        for (out, &value) in out.iter_mut().zip(value) {
            *out += weight * value;
        }
    }
}

/// [`attention_scores`] for several query heads over the same keys: `queries` holds the heads'
/// queries one after another (`queries.len() / dim` heads), `scores` their scores the same
/// way (`scores.len() / heads` positions each). Each head's scores are bit for bit those of
/// [`attention_scores`] for that head alone.
pub fn group_attention_scores(
    queries: &[f32],
    dim: usize,
    keys: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    group_scores(queries, dim, keys, None, stride, scale, scores);
}

/// [`group_attention_scores`] that asks for the keys ahead of reading them, and for the
/// `values` (laid out as the keys) that the weighted sum reads next: the same scores. For a
/// generation step, whose caches come from memory (the weights it streamed through since the
/// last step pushed them out of the processor's caches; a hundred positions of one head are
/// too short a stream for the hardware prefetcher to get ahead of). A prompt's tokens find
/// them in cache, where the extra instructions only cost (480-token prompts ~7 % slower).
pub fn group_scores_fetching_values(
    queries: &[f32],
    dim: usize,
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    group_scores(queries, dim, keys, Some(values), stride, scale, scores);
}

/// [`group_attention_scores`], asking for the keys and `values` ahead where `values` are given
/// ([`group_scores_fetching_values`]).
pub(crate) fn group_scores(
    queries: &[f32],
    dim: usize,
    keys: &[f32],
    values: Option<&[f32]>,
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    assert!(
        dim > 0 && queries.len().is_multiple_of(dim),
        "queries are not whole heads"
    );
    let heads = queries.len() / dim;
    if heads == 0 {
        return;
    }
    assert!(
        scores.len().is_multiple_of(heads),
        "scores are not one row per head"
    );
    let num_positions = scores.len() / heads;
    if let Some(last) = num_positions.checked_sub(1) {
        assert!(
            dim <= stride && last * stride + dim <= keys.len(),
            "attention keys shorter than their positions"
        );
        assert!(
            values.is_none_or(|values| last * stride + dim <= values.len()),
            "attention values shorter than their positions"
        );
    }
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        // The values are asked for by the first register block only (they are the same rows
        // for all of the heads).
        let mut values = values;
        for (first, count) in head_blocks(heads) {
            let values = values.take();
            let queries = &queries[first * dim..(first + count) * dim];
            let scores = &mut scores[first * num_positions..(first + count) * num_positions];
            // SAFETY: AVX2 and FMA checked just above; every key lies inside `keys`, and
            // `queries` and `scores` hold `count` heads (asserted and sliced above).
            unsafe {
                match count {
                    3 => group_scores_avx2::<3>(queries, keys, values, stride, scale, scores),
                    2 => group_scores_avx2::<2>(queries, keys, values, stride, scale, scores),
                    _ => group_scores_avx2::<1>(queries, keys, values, stride, scale, scores),
                }
            }
        }
        return;
    }
    for (query, scores) in queries
        .chunks_exact(dim)
        .zip(scores.chunks_exact_mut(num_positions))
    {
        attention_scores(query, keys, stride, scale, scores);
    }
}

/// [`weighted_rows`] for several heads over the same values: `weights` holds each head's
/// weights (one row of positions per head), `out` each head's `dim` results one after another.
/// Each head's results are bit for bit those of [`weighted_rows`] for that head alone.
pub fn group_weighted_rows(
    weights: &[f32],
    values: &[f32],
    stride: usize,
    dim: usize,
    out: &mut [f32],
) {
    assert!(
        dim > 0 && out.len().is_multiple_of(dim),
        "outputs are not whole heads"
    );
    let heads = out.len() / dim;
    if heads == 0 {
        return;
    }
    assert!(
        weights.len().is_multiple_of(heads),
        "weights are not one row per head"
    );
    let num_positions = weights.len() / heads;
    let Some(last) = num_positions.checked_sub(1) else {
        out.fill(0.0);
        return;
    };
    assert!(
        dim <= stride && last * stride + dim <= values.len(),
        "attention values shorter than their positions"
    );
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        for (first, count) in head_blocks(heads) {
            let weights = &weights[first * num_positions..(first + count) * num_positions];
            let out = &mut out[first * dim..(first + count) * dim];
            // SAFETY: as in `group_attention_scores`.
            unsafe {
                match count {
                    3 => group_weighted_avx2::<3>(weights, values, stride, out),
                    2 => group_weighted_avx2::<2>(weights, values, stride, out),
                    _ => group_weighted_avx2::<1>(weights, values, stride, out),
                }
            }
        }
        return;
    }
    for (weights, out) in weights
        .chunks_exact(num_positions)
        .zip(out.chunks_exact_mut(dim))
    {
        weighted_rows(weights, values, stride, out);
    }
}

/// The first head and the number of heads of each register block of `heads` heads (three,
/// then the two or one left).
fn head_blocks(heads: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..heads)
        .step_by(HEADS_AT_ONCE)
        .map(move |first| (first, (heads - first).min(HEADS_AT_ONCE)))
}

/// `H` heads' scores, four positions at a time: each key vector is loaded once for the `H`
/// heads (a dot product per position with its own horizontal sum spent more on the sum than
/// on the products). Each head's sums do not depend on `H`: the same fused products in the
/// same order, the same horizontal sum, tail and scaling. Where `values` are given, the keys
/// and values are asked for [`AHEAD`] positions before they are read.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_scores_avx2<const H: usize>(
    queries: &[f32],
    keys: &[f32],
    values: Option<&[f32]>,
    stride: usize,
    scale: f32,
    scores: &mut [f32],
) {
    use std::arch::x86_64::*;
    let dim = queries.len() / H;
    let num_positions = scores.len() / H;
    // Every line of position `position`'s key (and value) row: a hint, which cannot fault,
    // for positions inside the cache only.
    let fetch = |position: usize| {
        let Some(values) = values else {
            return;
        };
        for rows in [keys, values] {
            let row = rows.as_ptr().add(position * stride);
            let mut offset = 0;
            while offset < dim {
                _mm_prefetch::<_MM_HINT_T0>(row.add(offset).cast());
                offset += 16;
            }
        }
    };
    for position in 0..AHEAD.min(num_positions) {
        fetch(position);
    }
    let whole = dim / 8 * 8;
    let scale = _mm_set1_ps(scale);
    let query: [*const f32; H] = std::array::from_fn(|head| queries.as_ptr().add(head * dim));
    let mut first = 0;
    while first < num_positions {
        let key: [*const f32; 4] = std::array::from_fn(|lane| {
            keys.as_ptr()
                .add((first + lane).min(num_positions - 1) * stride)
        });
        for position in (first + AHEAD..first + AHEAD + 4).take_while(|&p| p < num_positions) {
            fetch(position);
        }
        let mut acc = [[_mm256_setzero_ps(); 4]; H];
        let mut d = 0;
        while d < whole {
            let k: [__m256; 4] = std::array::from_fn(|lane| _mm256_loadu_ps(key[lane].add(d)));
            for head in 0..H {
                let q = _mm256_loadu_ps(query[head].add(d));
                for lane in 0..4 {
                    acc[head][lane] = _mm256_fmadd_ps(q, k[lane], acc[head][lane]);
                }
            }
            d += 8;
        }
        let count = (num_positions - first).min(4);
        for head in 0..H {
            let acc = &acc[head];
            let pairs = _mm256_hadd_ps(
                _mm256_hadd_ps(acc[0], acc[1]),
                _mm256_hadd_ps(acc[2], acc[3]),
            );
            let mut sums = [0.0_f32; 4];
            _mm_storeu_ps(
                sums.as_mut_ptr(),
                _mm_add_ps(
                    _mm256_castps256_ps128(pairs),
                    _mm256_extractf128_ps(pairs, 1),
                ),
            );
            for (lane, sum) in sums.iter_mut().enumerate() {
                for d in whole..dim {
                    *sum += *query[head].add(d) * *key[lane].add(d);
                }
            }
            let mut scaled = [0.0_f32; 4];
            _mm_storeu_ps(
                scaled.as_mut_ptr(),
                _mm_mul_ps(_mm_loadu_ps(sums.as_ptr()), scale),
            );
            scores[head * num_positions + first..][..count].copy_from_slice(&scaled[..count]);
        }
        first += 4;
    }
}

/// `H` heads' weighted sums, 32 values at a time: each value vector is loaded once for the
/// `H` heads. Each value's sum (fused, positions in order, from zero) does not depend on `H`
/// or on how many values share a pass.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_weighted_avx2<const H: usize>(
    weights: &[f32],
    values: &[f32],
    stride: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    /// Values summed per pass over the positions, per head.
    const SLAB: usize = 32;
    let dim = out.len() / H;
    let num_positions = weights.len() / H;
    let weight: [*const f32; H] =
        std::array::from_fn(|head| weights.as_ptr().add(head * num_positions));
    let mut start = 0;
    while start + SLAB <= dim {
        let mut acc = [[_mm256_setzero_ps(); SLAB / 8]; H];
        for position in 0..num_positions {
            let value = values.as_ptr().add(position * stride + start);
            let v: [__m256; SLAB / 8] =
                std::array::from_fn(|index| _mm256_loadu_ps(value.add(8 * index)));
            for head in 0..H {
                let w = _mm256_set1_ps(*weight[head].add(position));
                for index in 0..SLAB / 8 {
                    acc[head][index] = _mm256_fmadd_ps(w, v[index], acc[head][index]);
                }
            }
        }
        for (head, acc) in acc.iter().enumerate() {
            for (index, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(head * dim + start + 8 * index), *acc);
            }
        }
        start += SLAB;
    }
    while start + 8 <= dim {
        let mut acc = [_mm256_setzero_ps(); H];
        for position in 0..num_positions {
            let v = _mm256_loadu_ps(values.as_ptr().add(position * stride + start));
            for head in 0..H {
                let w = _mm256_set1_ps(*weight[head].add(position));
                acc[head] = _mm256_fmadd_ps(w, v, acc[head]);
            }
        }
        for (head, acc) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(head * dim + start), *acc);
        }
        start += 8;
    }
    for offset in start..dim {
        for head in 0..H {
            let mut sum = 0.0_f32;
            for position in 0..num_positions {
                sum = (*weight[head].add(position))
                    .mul_add(*values.as_ptr().add(position * stride + offset), sum);
            }
            out[head * dim + offset] = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    fn random_input(len: usize) -> Vec<f32> {
        Tensor::randn(0f32, 1.0, len, &Device::Cpu)
            .and_then(|t| t.to_vec1())
            .expect("input")
    }

    #[test]
    fn attention_scores_and_weighted_rows_match_plain_loops() {
        // Head widths with and without a whole 64-value slab and an 8-value tail; position
        // counts around the groups of four.
        for dim in [5, 8, 64, 80, 67] {
            let stride = dim + 24;
            for num_positions in [0, 1, 3, 4, 5, 9] {
                let keys = random_input(num_positions.max(1) * stride);
                let query = random_input(dim);
                let mut scores = vec![f32::NAN; num_positions];
                attention_scores(&query, &keys, stride, 0.125, &mut scores);
                for (position, score) in scores.iter().enumerate() {
                    let key = &keys[position * stride..][..dim];
                    let expected: f32 = query.iter().zip(key).map(|(q, k)| q * k).sum();
                    assert!(
                        (score - 0.125 * expected).abs() < 1e-5,
                        "score {position} of {num_positions}, width {dim}"
                    );
                }
                let weights = random_input(num_positions);
                let mut out = vec![f32::NAN; dim];
                weighted_rows(&weights, &keys, stride, &mut out);
                for (index, out) in out.iter().enumerate() {
                    let expected: f32 = (0..num_positions)
                        .map(|position| weights[position] * keys[position * stride + index])
                        .sum();
                    assert!(
                        (out - expected).abs() < 1e-4,
                        "value {index} of {num_positions}, width {dim}"
                    );
                }
            }
        }
    }

    #[test]
    fn grouped_heads_get_the_bits_of_each_head_alone() {
        // Group sizes through the register blocks (3, then 2 or 1 left), head widths with and
        // without whole 32- and 8-value slabs, position counts around the groups of four.
        for heads in 1..=7 {
            for dim in [5, 8, 40, 64, 67] {
                let stride = dim + 24;
                for num_positions in [0, 1, 3, 4, 5, 9] {
                    let keys = random_input(num_positions.max(1) * stride);
                    let values = random_input(num_positions.max(1) * stride);
                    let queries = random_input(heads * dim);
                    let mut scores = vec![f32::NAN; heads * num_positions];
                    group_attention_scores(&queries, dim, &keys, stride, 0.125, &mut scores);
                    // Asking for the values too changes nothing in the scores.
                    let mut fetching = vec![f32::NAN; heads * num_positions];
                    group_scores_fetching_values(
                        &queries,
                        dim,
                        &keys,
                        &values,
                        stride,
                        0.125,
                        &mut fetching,
                    );
                    assert_eq!(bits(&fetching), bits(&scores));
                    let weights = random_input(heads * num_positions);
                    let mut out = vec![f32::NAN; heads * dim];
                    group_weighted_rows(&weights, &values, stride, dim, &mut out);
                    for head in 0..heads {
                        let mut alone = vec![f32::NAN; num_positions];
                        let query = &queries[head * dim..][..dim];
                        attention_scores(query, &keys, stride, 0.125, &mut alone);
                        let grouped = &scores[head * num_positions..][..num_positions];
                        assert_eq!(
                            bits(grouped),
                            bits(&alone),
                            "scores of head {head} of {heads}, width {dim}, {num_positions} positions"
                        );
                        let mut alone = vec![f32::NAN; dim];
                        let head_weights = &weights[head * num_positions..][..num_positions];
                        weighted_rows(head_weights, &values, stride, &mut alone);
                        assert_eq!(
                            bits(&out[head * dim..][..dim]),
                            bits(&alone),
                            "sums of head {head} of {heads}, width {dim}, {num_positions} positions"
                        );
                    }
                }
            }
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|value| value.to_bits()).collect()
    }
}
