//! Choosing a batched generation's next token from its logits.
//!
//! Why not candle's `LogitsProcessor` for every answer: its greedy choice goes through a
//! tensor and a scalar loop with a branch per logit (~0.08 ms over SmolLM2's 49,152 logits,
//! on the batch worker's thread while the decoder's pool waits), once per answer and step. A
//! greedy answer here takes the same token, found with a loop the compiler vectorizes; a
//! sampled one (a temperature) still goes through `LogitsProcessor`, seed for seed.

use candle_core::{Device, Tensor};
use candle_transformers::generation::LogitsProcessor;

/// How one answer picks its tokens.
pub(crate) enum Sampler {
    /// The most likely token ([`argmax`]): what `LogitsProcessor` does without a temperature.
    Greedy,
    /// Drawn with a temperature (and top-p) from the answer's own seeded generator.
    Random(Box<LogitsProcessor>),
}

impl Sampler {
    /// As `LogitsProcessor::new`: greedy without a temperature.
    pub(crate) fn new(seed: u64, temperature: Option<f64>, top_p: Option<f64>) -> Self {
        match temperature {
            None => Sampler::Greedy,
            Some(_) => Sampler::Random(Box::new(LogitsProcessor::new(seed, temperature, top_p))),
        }
    }

    pub(crate) fn sample(&mut self, logits: &[f32]) -> candle_core::Result<u32> {
        match self {
            Sampler::Greedy => argmax(logits),
            Sampler::Random(processor) => {
                processor.sample(&Tensor::from_slice(logits, logits.len(), &Device::Cpu)?)
            }
        }
    }
}

/// Lanes of the vectorized search (one 512-bit or two 256-bit vectors).
const LANES: usize = 16;

/// The index candle's `argmax` gives: the first position of the largest value, NaNs passed
/// over (and 0 when the first value is a NaN, which its loop then never replaces).
pub(crate) fn argmax(values: &[f32]) -> candle_core::Result<u32> {
    let Some(&first) = values.first() else {
        candle_core::bail!("no logits to choose from");
    };
    if first.is_nan() {
        return Ok(0);
    }
    // The largest value, per lane and then across lanes: `if v > m { m = v }` is a `vmaxps`
    // (a NaN never wins), and maxima of the same value compare equal whatever their order.
    let mut lanes = [first; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            if value > *lane {
                *lane = value;
            }
        }
    }
    let mut largest = first;
    for &value in lanes.iter().chain(tail) {
        if value > largest {
            largest = value;
        }
    }
    // Its first position: whole chunks checked without a branch per value.
    let mut start = 0;
    for chunk in values.chunks(LANES) {
        let found = chunk
            .iter()
            .fold(false, |found, &value| found | (value == largest));
        if found {
            let offset = chunk
                .iter()
                .position(|&value| value == largest)
                .unwrap_or(0);
            return u32::try_from(start + offset)
                .map_err(|_| candle_core::Error::Msg("too many logits".to_string()));
        }
        start += chunk.len();
    }
    // Unreachable: `largest` is one of the values.
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candles(values: &[f32]) -> u32 {
        let tensor = Tensor::from_slice(values, values.len(), &Device::Cpu).unwrap();
        LogitsProcessor::new(7, None, None).sample(&tensor).unwrap()
    }

    #[test]
    fn greedy_choice_is_candles_on_ties_nans_signed_zeros_and_real_sizes() {
        let mut state = 0x2545_f491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut cases: Vec<Vec<f32>> = vec![
            vec![1.0],
            vec![f32::NAN, 5.0, 7.0],
            vec![1.0, f32::NAN, 3.0, f32::NAN],
            vec![-0.0, 0.0, -0.0],
            vec![0.0, -0.0],
            vec![f32::NEG_INFINITY; 40],
            vec![2.0, f32::INFINITY, 3.0, f32::INFINITY],
        ];
        for len in [1, 15, 16, 17, 33, 1000, 49_152] {
            // Few distinct values, so the largest repeats (ties) at random places.
            let tied: Vec<f32> = (0..len).map(|_| (next() % 7) as f32 - 3.0).collect();
            let spread: Vec<f32> = (0..len)
                .map(|_| (next() as f32 / u32::MAX as f32 - 0.5) * 40.0)
                .collect();
            let mut with_nans = spread.clone();
            for _ in 0..len / 10 + 1 {
                let at = next() as usize % len;
                with_nans[at] = f32::NAN;
            }
            cases.extend([tied, spread, with_nans]);
        }
        // The largest value in the ragged tail and in the first lane.
        let mut tail = vec![0.5_f32; 37];
        tail[36] = 9.0;
        let mut head = vec![0.5_f32; 37];
        head[0] = 9.0;
        cases.extend([tail, head]);
        for values in &cases {
            assert_eq!(argmax(values).unwrap(), candles(values), "{values:?}");
        }
        assert!(argmax(&[]).is_err());
    }

    #[test]
    fn a_temperature_samples_as_logits_processor_does_seed_for_seed() {
        let logits: Vec<f32> = (0..500).map(|i| ((i * 37) % 101) as f32 / 25.0).collect();
        let mut ours = Sampler::new(42, Some(0.8), Some(0.9));
        let mut theirs = LogitsProcessor::new(42, Some(0.8), Some(0.9));
        let tensor = Tensor::from_slice(&logits, logits.len(), &Device::Cpu).unwrap();
        for _ in 0..20 {
            assert_eq!(
                ours.sample(&logits).unwrap(),
                theirs.sample(&tensor).unwrap()
            );
        }
        assert!(matches!(Sampler::new(42, None, Some(0.9)), Sampler::Greedy));
    }
}
