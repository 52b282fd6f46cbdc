//! Matrix products with Q4_1 and Q8_0 weights, read as the GGUF stores them, for the decoder.
//!
//! Why: candle 0.11 has only a scalar kernel for Q4_1 (the default model's format), so the
//! loader used to convert Q4_1 to Q8_0, which candle runs with AVX2. That made generation
//! memory-bound on twice the bytes: one token reads every weight once, 143 MB as Q8_0 against
//! 76 MB as Q4_1 for SmolLM2-135M. This is llama.cpp's scheme: each activation row is quantized
//! to 8 bits per block of 32 (a scale and the scaled sum of the block, "Q8_1"), and a block's
//! dot product is `d4·d8·Σ q4·q8 + m4·s8`, with the integer sum done by AVX2's
//! `vpmaddubsw`/`vpmaddwd`. Q8_0 (the default model's tied output projection, Q8_0 files, and
//! the Q5_0/Q5_1 tensors the loader converts) uses the same products, `d·d8·Σ q·q8`, where
//! candle's kernel multiplies one activation row at a time: here a prompt's rows go four at a
//! time against each weight block and a token's product splits the weight rows four by four
//! across threads, as for Q4_1. Q4_K (Q4_K_M files) comes in as Q4_1 blocks, value for value
//! ([`q4_k_as_q4_1`]).
//!
//! The AVX2 path is chosen at run time (`is_x86_feature_detected!`); the scalar path gives the
//! same result up to float rounding and is what the tests compare against.

// SIMD intrinsics need `unsafe`; this module and the embedder's `embed/int8.rs` are the only
// ones of the workspace allowed to use it.
// Every unsafe call is a `#[target_feature]` function reached only after the runtime check,
// reading slices whose lengths are checked first.
#![allow(unsafe_code)]

use std::marker::PhantomData;

use half::f16;
use rayon::prelude::*;

/// Values per block (weights and the 8-bit activations).
const BLOCK: usize = 32;
/// Weight rows per parallel task when one activation row is multiplied (generation).
const ROWS_PER_TASK: usize = 64;
/// Input rows that share each unpacked weight block when many rows are multiplied (prompts).
const TILE_ROWS: usize = 4;
/// How far ahead of each weight row the generation kernel asks for its bytes (a page). One
/// token streams every weight once (~100 MB for SmolLM2-135M), and on these VMs the hardware
/// prefetcher alone left the kernel waiting on memory: generation went from ~75 to ~140
/// tokens/s on two Intel Xeon vCPUs (docs/benchmarks.md, "Prefetching the weights").
const PREFETCH_BYTES: usize = 4096;

/// A block format of 32 weights: how to read one, scalar and with AVX2.
pub trait BlockFormat: Send + Sync {
    /// The GGML type's name, for errors.
    const NAME: &'static str;
    /// Bytes per block in a GGUF file.
    const FILE_BLOCK_BYTES: usize;
    /// Bytes per block as held in memory ([`Self::repack`]).
    const BLOCK_BYTES: usize;
    /// A block's weights made ready for [`Self::accumulate`] (with AVX2).
    #[cfg(target_arch = "x86_64")]
    type Unpacked: Copy;

    /// Appends one block as read from the file in its in-memory form.
    fn repack(file_block: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(file_block);
    }

    /// `Σ weight·activation` of one block, from the activations' 8-bit `values`, `scale` and
    /// scaled `sum`.
    fn dot_block(block: &[u8], values: &[i8], scale: f32, sum: f32) -> f32;

    /// The block's 32 weights as f32 (in-memory form), with the arithmetic of candle's
    /// `dequantize`, so a row read here equals that row of the dequantized tensor.
    fn dequantize_block(block: &[u8], out: &mut [f32]);

    /// Unpacks a block. Only called from the `avx2,fma` functions below, into which it is
    /// inlined.
    #[cfg(target_arch = "x86_64")]
    unsafe fn unpack(block: &[u8]) -> Self::Unpacked;

    /// Adds one block's `Σ weight·activation` to `accumulator` (eight lanes) and, for formats
    /// with a minimum, its `minimum · sum` term to `extra`; `activations` are the block's 32
    /// signed 8-bit values. Inlined like [`Self::unpack`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn accumulate<P: Products>(
        accumulator: std::arch::x86_64::__m256,
        block: &[u8],
        weights: Self::Unpacked,
        activations: std::arch::x86_64::__m256i,
        scale: f32,
        sum: f32,
        extra: &mut f32,
    ) -> std::arch::x86_64::__m256;
}

/// Q4_1: f16 scale, f16 minimum, 16 bytes of nibbles (low nibbles are values 0..16).
pub struct Q4_1;
/// Q8_0: f16 scale, 32 signed bytes.
pub struct Q8_0;

/// A `[rows, columns]` matrix of `F` blocks, row-major, exactly as in the GGUF file.
pub struct QuantizedMatrix<F: BlockFormat> {
    rows: usize,
    columns: usize,
    data: Vec<u8>,
    use_avx2: bool,
    /// AVX-VNNI's products in the four-input kernel (prompts, batched steps); set with
    /// `use_avx2` where the CPU has it.
    use_vnni: bool,
    format: PhantomData<F>,
}

/// Q4_1 weights.
pub type Q4_1Matrix = QuantizedMatrix<Q4_1>;
/// Q8_0 weights.
pub type Q8_0Matrix = QuantizedMatrix<Q8_0>;

/// One activation row quantized to 8 bits per block.
struct QuantizedRow {
    /// Per block: `d`, with `value ≈ d · q`.
    scales: Vec<f32>,
    /// Per block: `d · Σ q`, which multiplies the weight block's minimum (Q4_1).
    sums: Vec<f32>,
    values: Vec<i8>,
}

/// Whether this CPU has AVX-VNNI (the 256-bit form; AMD's Zen 2 and 3 have not).
fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the fast path.
pub fn has_fast_path() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl<F: BlockFormat> QuantizedMatrix<F> {
    /// Wraps `data` (blocks of `rows` rows of `columns` values).
    pub fn new(data: Vec<u8>, rows: usize, columns: usize) -> Result<Self, String> {
        Self::with_path(data, rows, columns, has_fast_path())
    }

    fn with_path(
        data: Vec<u8>,
        rows: usize,
        columns: usize,
        use_avx2: bool,
    ) -> Result<Self, String> {
        check_shape::<F>(&data, rows, columns, F::FILE_BLOCK_BYTES)?;
        Self::from_repacked(Self::repacked(&data), rows, columns, use_avx2)
    }

    /// The file's blocks (`F::FILE_BLOCK_BYTES` each) in their in-memory form.
    pub fn repacked(file_blocks: &[u8]) -> Vec<u8> {
        if F::FILE_BLOCK_BYTES == F::BLOCK_BYTES {
            return file_blocks.to_vec();
        }
        let mut repacked =
            Vec::with_capacity(file_blocks.len() / F::FILE_BLOCK_BYTES * F::BLOCK_BYTES);
        for block in file_blocks.chunks_exact(F::FILE_BLOCK_BYTES) {
            F::repack(block, &mut repacked);
        }
        repacked
    }

    /// Wraps blocks already in their in-memory form ([`Self::repacked`], [`q4_k_as_q4_1`]).
    pub fn from_blocks(data: Vec<u8>, rows: usize, columns: usize) -> Result<Self, String> {
        Self::from_repacked(data, rows, columns, has_fast_path())
    }

    fn from_repacked(
        data: Vec<u8>,
        rows: usize,
        columns: usize,
        use_avx2: bool,
    ) -> Result<Self, String> {
        check_shape::<F>(&data, rows, columns, F::BLOCK_BYTES)?;
        Ok(QuantizedMatrix {
            rows,
            columns,
            data,
            use_avx2,
            use_vnni: use_avx2 && has_vnni(),
            format: PhantomData,
        })
    }

    fn row_bytes(&self) -> usize {
        self.columns / BLOCK * F::BLOCK_BYTES
    }

    /// Row `index` as f32 values (a token's embedding when this is the embedding table), or
    /// `None` past the last row.
    pub fn row(&self, index: usize) -> Option<Vec<f32>> {
        if index >= self.rows {
            return None;
        }
        let start = index * self.row_bytes();
        let blocks = self.data.get(start..start + self.row_bytes())?;
        let mut values = vec![0.0_f32; self.columns];
        for (block, out) in blocks
            .chunks_exact(F::BLOCK_BYTES)
            .zip(values.chunks_exact_mut(BLOCK))
        {
            F::dequantize_block(block, out);
        }
        Some(values)
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Checks that `input` is `num_rows` rows of `columns` and quantizes each row.
    fn quantize_rows(&self, input: &[f32], num_rows: usize) -> Result<Vec<QuantizedRow>, String> {
        if input.len() != num_rows * self.columns {
            return Err(format!(
                "input of {} values is not {num_rows} rows of {}",
                input.len(),
                self.columns
            ));
        }
        Ok(input.chunks_exact(self.columns).map(quantize_row).collect())
    }

    /// Multiplies `num_rows` input rows (`input`, row-major, `columns` wide) by the matrix's
    /// transpose: returns `[num_rows, rows]`.
    pub fn forward(&self, input: &[f32], num_rows: usize) -> Result<Vec<f32>, String> {
        let quantized = self.quantize_rows(input, num_rows)?;
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

    /// Multiplies `num_rows` input rows as [`Self::forward`] multiplies a single row, each row's
    /// result bit for bit what it would be alone: the rows of a batched generation step are
    /// separate answers, and an answer must not depend on what else ran beside it (a receipt's
    /// replay runs it alone). The weight rows split across threads as for one row, and each
    /// task's weights stay in cache while every input row passes over them, so a step of four
    /// answers reads the weights from memory once, not four times.
    pub fn forward_each(&self, input: &[f32], num_rows: usize) -> Result<Vec<f32>, String> {
        if num_rows <= 1 {
            return self.forward(input, num_rows);
        }
        let quantized = self.quantize_rows(input, num_rows)?;
        // Task-major: task t holds, for each input row, that row's outputs of weight rows
        // t·ROWS_PER_TASK.., put in place below.
        let num_tasks = self.rows.div_ceil(ROWS_PER_TASK);
        let partials: Vec<Vec<f32>> = (0..num_tasks)
            .into_par_iter()
            .map(|task| {
                let first_row = task * ROWS_PER_TASK;
                let task_rows = ROWS_PER_TASK.min(self.rows - first_row);
                let num_grouped = task_rows / TILE_ROWS * TILE_ROWS;
                let mut out = vec![0.0_f32; task_rows * quantized.len()];
                // Four answers at a time share each unpacked weight block (the prompt kernel,
                // whose products add up in the single-row order: same bits), then a pair;
                // a last single answer takes the single-row kernels.
                let mut first_input = 0;
                while first_input + 1 < quantized.len() {
                    let width = if quantized.len() - first_input >= TILE_ROWS {
                        TILE_ROWS
                    } else {
                        2
                    };
                    let inputs = &quantized[first_input..first_input + width];
                    for offset in 0..task_rows {
                        let dots = self.dot_tile(first_row + offset, inputs);
                        for (index, dot) in dots.iter().take(width).enumerate() {
                            out[(first_input + index) * task_rows + offset] = *dot;
                        }
                    }
                    first_input += width;
                }
                for (index, input_row) in quantized[first_input..].iter().enumerate() {
                    let out = &mut out[(first_input + index) * task_rows..][..task_rows];
                    let (grouped, remainder) = out.split_at_mut(num_grouped);
                    for (group, values) in grouped.chunks_exact_mut(TILE_ROWS).enumerate() {
                        values.copy_from_slice(
                            &self.dot_rows(first_row + group * TILE_ROWS, input_row),
                        );
                    }
                    for (offset, value) in remainder.iter_mut().enumerate() {
                        *value = self.dot(first_row + num_grouped + offset, input_row);
                    }
                }
                out
            })
            .collect();
        let mut output = vec![0.0_f32; num_rows * self.rows];
        for (task, values) in partials.iter().enumerate() {
            let first_row = task * ROWS_PER_TASK;
            let task_rows = ROWS_PER_TASK.min(self.rows - first_row);
            for (input_row, row_values) in values.chunks_exact(task_rows).enumerate() {
                output[input_row * self.rows + first_row..][..task_rows]
                    .copy_from_slice(row_values);
            }
        }
        Ok(output)
    }

    /// Dot products of [`TILE_ROWS`] consecutive weight rows with one input row: four
    /// independent accumulation chains, and each activation block loaded once.
    fn dot_rows(&self, first_row: usize, input: &QuantizedRow) -> [f32; TILE_ROWS] {
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 && input.values.len() == self.columns {
            let row_bytes = self.row_bytes();
            let blocks = &self.data[first_row * row_bytes..][..TILE_ROWS * row_bytes];
            // SAFETY: as in `dot`; `blocks` holds exactly four rows.
            return unsafe { dot_rows_avx2::<F>(blocks, row_bytes, input) };
        }
        std::array::from_fn(|offset| self.dot(first_row + offset, input))
    }

    /// Dot products of one weight row with up to [`TILE_ROWS`] input rows (the first
    /// `inputs.len()` values are set).
    fn dot_tile(&self, weight_row: usize, inputs: &[QuantizedRow]) -> [f32; TILE_ROWS] {
        let mut dots = [0.0_f32; TILE_ROWS];
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2
            && inputs.len() <= TILE_ROWS
            && inputs.iter().all(|row| row.values.len() == self.columns)
        {
            let row_bytes = self.row_bytes();
            let blocks = &self.data[weight_row * row_bytes..][..row_bytes];
            // SAFETY: as in `dot`, for each of the four rows.
            // (`use_vnni` is only set after the runtime check for AVX-VNNI as well.)
            return unsafe { dot_tile_avx2::<F>(blocks, inputs, self.use_vnni) };
        }
        for (dot, input) in dots.iter_mut().zip(inputs) {
            *dot = self.dot(weight_row, input);
        }
        dots
    }

    fn dot(&self, weight_row: usize, input: &QuantizedRow) -> f32 {
        let row_bytes = self.row_bytes();
        let blocks = &self.data[weight_row * row_bytes..][..row_bytes];
        #[cfg(target_arch = "x86_64")]
        if self.use_avx2 && input.values.len() == self.columns {
            // SAFETY: `use_avx2` is only set after the runtime check for AVX2 and FMA, and
            // `blocks` and `input` hold exactly `columns / 32` blocks each (checked above and
            // by construction in `quantize_row`).
            return unsafe { dot_avx2::<F>(blocks, input) };
        }
        dot_scalar::<F>(blocks, input)
    }
}

/// Checks that `data` holds `rows` rows of `columns` values as blocks of `block_bytes`.
fn check_shape<F: BlockFormat>(
    data: &[u8],
    rows: usize,
    columns: usize,
    block_bytes: usize,
) -> Result<(), String> {
    if columns == 0 || !columns.is_multiple_of(BLOCK) {
        return Err(format!(
            "{} rows of {columns} values are not whole blocks",
            F::NAME
        ));
    }
    let expected = rows * columns / BLOCK * block_bytes;
    if data.len() != expected {
        return Err(format!(
            "{} matrix [{rows}, {columns}] needs {expected} bytes, got {}",
            F::NAME,
            data.len()
        ));
    }
    Ok(())
}

/// Bytes of one Q4_K super-block: f16 `d` and `dmin`, twelve bytes of packed 6-bit scales and
/// minimums for its eight sub-blocks of 32, and 128 bytes of nibbles.
const Q4_K_BLOCK_BYTES: usize = 144;
/// Values per K-quant super-block.
const K_BLOCK: usize = 256;

/// Q4_K super-blocks (as in a GGUF file) as Q4_1 blocks in [`Q4_1`]'s in-memory form, value
/// for value: a Q4_K sub-block of 32 is `d·scale·q − dmin·min` with one 6-bit scale and
/// minimum, which is a Q4_1 block with scale `d·scale` and minimum `−dmin·min`, held as f32
/// there (the product of an f16 and a 6-bit integer is exact in f32). So Q4_K_M files run
/// through the same kernels as the default model, at 24 bytes per 32 weights instead of 18.
pub fn q4_k_as_q4_1(q4_k: &[u8]) -> Result<Vec<u8>, String> {
    if !q4_k.len().is_multiple_of(Q4_K_BLOCK_BYTES) {
        return Err(format!(
            "{} bytes are not whole Q4_K blocks of {Q4_K_BLOCK_BYTES}",
            q4_k.len()
        ));
    }
    let sub_blocks = K_BLOCK / BLOCK;
    let mut out =
        Vec::with_capacity(q4_k.len() / Q4_K_BLOCK_BYTES * sub_blocks * Q4_1::BLOCK_BYTES);
    for block in q4_k.chunks_exact(Q4_K_BLOCK_BYTES) {
        let d = f16_at(block, 0);
        let dmin = f16_at(block, 2);
        let scales = &block[4..16];
        let nibbles = &block[16..];
        for sub_block in 0..sub_blocks {
            // ggml's get_scale_min_k4: the first four in six low bits, the last four split.
            let (scale, minimum) = if sub_block < 4 {
                (scales[sub_block] & 63, scales[sub_block + 4] & 63)
            } else {
                (
                    (scales[sub_block + 4] & 0x0F) | ((scales[sub_block - 4] >> 6) << 4),
                    (scales[sub_block + 4] >> 4) | ((scales[sub_block] >> 6) << 4),
                )
            };
            out.extend_from_slice(&(d * f32::from(scale)).to_le_bytes());
            out.extend_from_slice(&(-(dmin * f32::from(minimum))).to_le_bytes());
            // Sub-blocks 2k and 2k+1 share 32 bytes: low nibbles, then high nibbles. Q4_1
            // holds value j in byte j's low nibble and value j+16 in its high nibble.
            let bytes = &nibbles[sub_block / 2 * BLOCK..][..BLOCK];
            let shift = if sub_block % 2 == 0 { 0 } else { 4 };
            for j in 0..BLOCK / 2 {
                let low = (bytes[j] >> shift) & 0x0F;
                let high = (bytes[j + BLOCK / 2] >> shift) & 0x0F;
                out.push(low | (high << 4));
            }
        }
    }
    Ok(out)
}

/// Quantizes one row to 8 bits per block of 32, exactly as llama.cpp's `quantize_row_q8_1`
/// (whose values and scale are those of `quantize_row_q8_0` too).
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
        // results match llama.cpp's and candle's products, not just approximate them.
        let scale = f16::from_f32(scale);
        quantized.scales.push(scale.to_f32());
        quantized
            .sums
            .push((f16::from_f32(sum as f32) * scale).to_f32());
    }
    quantized
}

fn f32_at(block: &[u8]) -> f32 {
    f32::from_le_bytes([block[0], block[1], block[2], block[3]])
}

fn f16_at(block: &[u8], offset: usize) -> f32 {
    f16::from_le_bytes([block[offset], block[offset + 1]]).to_f32()
}

fn dot_scalar<F: BlockFormat>(blocks: &[u8], input: &QuantizedRow) -> f32 {
    blocks
        .chunks_exact(F::BLOCK_BYTES)
        .enumerate()
        .map(|(index, block)| {
            F::dot_block(
                block,
                &input.values[index * BLOCK..][..BLOCK],
                input.scales[index],
                input.sums[index],
            )
        })
        .sum()
}

impl BlockFormat for Q4_1 {
    const NAME: &'static str = "Q4_1";
    const FILE_BLOCK_BYTES: usize = 20;
    /// Scale and minimum widened to f32 once, at load (24 bytes a block instead of 20):
    /// converting two f16 values on every read cost more than the extra bytes.
    const BLOCK_BYTES: usize = 24;
    #[cfg(target_arch = "x86_64")]
    type Unpacked = std::arch::x86_64::__m256i;

    fn repack(file_block: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&f16_at(file_block, 0).to_le_bytes());
        out.extend_from_slice(&f16_at(file_block, 2).to_le_bytes());
        out.extend_from_slice(&file_block[4..]);
    }

    fn dot_block(block: &[u8], values: &[i8], scale: f32, sum: f32) -> f32 {
        let mut integer_sum = 0_i32;
        for (j, &byte) in block[8..].iter().enumerate() {
            integer_sum += i32::from(byte & 0x0F) * i32::from(values[j]);
            integer_sum += i32::from(byte >> 4) * i32::from(values[j + 16]);
        }
        f32_at(block) * scale * integer_sum as f32 + f32_at(&block[4..]) * sum
    }

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let (scale, minimum) = (f32_at(block), f32_at(&block[4..]));
        for (j, &byte) in block[8..].iter().enumerate() {
            out[j] = f32::from(byte & 0x0F) * scale + minimum;
            out[j + BLOCK / 2] = f32::from(byte >> 4) * scale + minimum;
        }
    }

    /// The 32 weights as unsigned bytes 0..16, in value order.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn unpack(block: &[u8]) -> Self::Unpacked {
        use std::arch::x86_64::*;
        let packed = _mm_loadu_si128(block[8..Self::BLOCK_BYTES].as_ptr().cast());
        _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
            _mm256_set1_epi8(0x0F),
        )
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn accumulate<P: Products>(
        accumulator: std::arch::x86_64::__m256,
        block: &[u8],
        weights: Self::Unpacked,
        activations: std::arch::x86_64::__m256i,
        scale: f32,
        sum: f32,
        extra: &mut f32,
    ) -> std::arch::x86_64::__m256 {
        // u8 × i8 pairs summed to i16 (at most 2·15·127).
        *extra += f32_at(&block[4..]) * sum;
        P::add_scaled(accumulator, weights, activations, f32_at(block) * scale)
    }
}

impl BlockFormat for Q8_0 {
    const NAME: &'static str = "Q8_0";
    const FILE_BLOCK_BYTES: usize = 34;
    /// The f16 scale widened to f32 once, at load: with only one 32-byte product per block,
    /// converting it on every read cost more than the product.
    const BLOCK_BYTES: usize = 36;
    /// The weights, and their absolute values (`vpmaddubsw` multiplies unsigned by signed
    /// bytes, so the weights' signs move onto the activations, as ggml does).
    #[cfg(target_arch = "x86_64")]
    type Unpacked = (std::arch::x86_64::__m256i, std::arch::x86_64::__m256i);

    fn repack(file_block: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&f16_at(file_block, 0).to_le_bytes());
        out.extend_from_slice(&file_block[2..]);
    }

    fn dot_block(block: &[u8], values: &[i8], scale: f32, _sum: f32) -> f32 {
        let integer_sum: i32 = block[4..]
            .iter()
            .zip(values)
            .map(|(&weight, &value)| i32::from(weight as i8) * i32::from(value))
            .sum();
        f32_at(block) * scale * integer_sum as f32
    }

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let scale = f32_at(block);
        for (out, &weight) in out.iter_mut().zip(&block[4..]) {
            *out = f32::from(weight as i8) * scale;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn unpack(block: &[u8]) -> Self::Unpacked {
        use std::arch::x86_64::*;
        let weights = _mm256_loadu_si256(block[4..Self::BLOCK_BYTES].as_ptr().cast());
        (weights, _mm256_sign_epi8(weights, weights))
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn accumulate<P: Products>(
        accumulator: std::arch::x86_64::__m256,
        block: &[u8],
        (weights, magnitudes): Self::Unpacked,
        activations: std::arch::x86_64::__m256i,
        scale: f32,
        _sum: f32,
        _extra: &mut f32,
    ) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // |w| × sign(w)·a: pairs summed to i16 (at most 2·128·127 < 2¹⁵: a weight of -128
        // keeps its bits under `vpsignb` and reads as 128 unsigned, its magnitude; activations
        // stay within ±127).
        P::add_scaled(
            accumulator,
            magnitudes,
            _mm256_sign_epi8(activations, weights),
            f32_at(block) * scale,
        )
    }
}

/// How a kernel multiplies 32 unsigned by 32 signed bytes and adds the scaled sums:
/// `accumulator + scale · Σ unsigned·signed` per lane of four products. Every implementation
/// gives the same integers (the formats bound the products so that no step saturates), so the
/// same bits. Inlined into the `#[target_feature]` kernels below.
#[cfg(target_arch = "x86_64")]
pub trait Products {
    /// `Σ unsigned·signed` of each lane's four byte pairs, as i32.
    ///
    /// # Safety
    /// Only from a function compiled with the instructions this implementation uses.
    unsafe fn products(
        unsigned: std::arch::x86_64::__m256i,
        signed: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i;

    /// `accumulator + scale · products`.
    ///
    /// # Safety
    /// As [`Self::products`], in a function with AVX2 and FMA.
    #[inline(always)]
    unsafe fn add_scaled(
        accumulator: std::arch::x86_64::__m256,
        unsigned: std::arch::x86_64::__m256i,
        signed: std::arch::x86_64::__m256i,
        scale: f32,
    ) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(Self::products(unsigned, signed)),
            _mm256_set1_ps(scale),
            accumulator,
        )
    }
}

/// AVX2: byte products summed in pairs to i16 (`vpmaddubsw`; the caller bounds them), then
/// pairs of those to i32 (`vpmaddwd` by ones).
#[cfg(target_arch = "x86_64")]
pub struct PairSums;

/// AVX-VNNI: four byte products summed straight to i32 (`vpdpbusd`), one instruction for two.
#[cfg(target_arch = "x86_64")]
pub struct Vnni;

#[cfg(target_arch = "x86_64")]
impl Products for PairSums {
    #[inline(always)]
    unsafe fn products(
        unsigned: std::arch::x86_64::__m256i,
        signed: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i {
        use std::arch::x86_64::*;
        _mm256_madd_epi16(_mm256_maddubs_epi16(unsigned, signed), _mm256_set1_epi16(1))
    }
}

#[cfg(target_arch = "x86_64")]
impl Products for Vnni {
    #[inline(always)]
    unsafe fn products(
        unsigned: std::arch::x86_64::__m256i,
        signed: std::arch::x86_64::__m256i,
    ) -> std::arch::x86_64::__m256i {
        std::arch::x86_64::_mm256_dpbusd_avx_epi32(
            std::arch::x86_64::_mm256_setzero_si256(),
            unsigned,
            signed,
        )
    }
}

/// Adds up the eight lanes. Inlined into the `avx2,fma` functions below.
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

// The kernels below read blocks, activations, scales and sums through raw pointers: slice
// indexing in their inner loops cost a bounds check per block and row, and spilled registers,
// about as many instructions as the products themselves. Each checks every length once,
// before its loop, and then stays within it.

/// Checks that `input` holds `num_blocks` blocks (values, scales, sums).
#[cfg(target_arch = "x86_64")]
fn check_input(input: &QuantizedRow, num_blocks: usize) {
    assert!(
        input.values.len() >= num_blocks * BLOCK
            && input.scales.len() >= num_blocks
            && input.sums.len() >= num_blocks,
        "an input row shorter than the weight rows"
    );
}

/// The `index`-th block of `blocks` (a row's blocks from `base`), as a slice of exactly
/// `F::BLOCK_BYTES`, so that the format's fixed offsets need no checks.
///
/// SAFETY: the caller guarantees that `base` points at `index + 1` or more blocks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_at<'a, F: BlockFormat>(base: *const u8, index: usize) -> &'a [u8] {
    std::slice::from_raw_parts(base.add(index * F::BLOCK_BYTES), F::BLOCK_BYTES)
}

/// Loads the 32 activations of block `index`.
///
/// SAFETY: the caller checked the row with [`check_input`] for more than `index` blocks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn activations_at(input: &QuantizedRow, index: usize) -> std::arch::x86_64::__m256i {
    std::arch::x86_64::_mm256_loadu_si256(input.values.as_ptr().add(index * BLOCK).cast())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2<F: BlockFormat>(blocks: &[u8], input: &QuantizedRow) -> f32 {
    let num_blocks = blocks.len() / F::BLOCK_BYTES;
    check_input(input, num_blocks);
    let mut accumulator = std::arch::x86_64::_mm256_setzero_ps();
    let mut extra = 0.0_f32;
    for index in 0..num_blocks {
        let block = block_at::<F>(blocks.as_ptr(), index);
        accumulator = F::accumulate::<PairSums>(
            accumulator,
            block,
            F::unpack(block),
            activations_at(input, index),
            *input.scales.get_unchecked(index),
            *input.sums.get_unchecked(index),
            &mut extra,
        );
    }
    horizontal_sum(accumulator) + extra
}

/// [`dot_avx2`] for four weight rows (`row_bytes` apart) and one input row: four independent
/// accumulation chains, and each activation block loaded once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2<F: BlockFormat>(
    blocks: &[u8],
    row_bytes: usize,
    input: &QuantizedRow,
) -> [f32; TILE_ROWS] {
    let num_blocks = row_bytes / F::BLOCK_BYTES;
    assert!(
        blocks.len() >= TILE_ROWS * row_bytes,
        "fewer than four weight rows"
    );
    check_input(input, num_blocks);
    let rows: [*const u8; TILE_ROWS] =
        std::array::from_fn(|row| blocks.as_ptr().add(row * row_bytes));
    let mut accumulators = [std::arch::x86_64::_mm256_setzero_ps(); TILE_ROWS];
    let mut extras = [0.0_f32; TILE_ROWS];
    for index in 0..num_blocks {
        let activations = activations_at(input, index);
        let scale = *input.scales.get_unchecked(index);
        let sum = *input.sums.get_unchecked(index);
        for row in 0..TILE_ROWS {
            // A hint: it cannot fault, so addresses past the matrix's end are harmless.
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                rows[row]
                    .wrapping_add(index * F::BLOCK_BYTES + PREFETCH_BYTES)
                    .cast(),
            );
            let block = block_at::<F>(rows[row], index);
            accumulators[row] = F::accumulate::<PairSums>(
                accumulators[row],
                block,
                F::unpack(block),
                activations,
                scale,
                sum,
                &mut extras[row],
            );
        }
    }
    std::array::from_fn(|row| horizontal_sum(accumulators[row]) + extras[row])
}

/// [`dot_avx2`] for up to four input rows at once: each weight block is unpacked once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile_avx2<F: BlockFormat>(
    blocks: &[u8],
    inputs: &[QuantizedRow],
    use_vnni: bool,
) -> [f32; TILE_ROWS] {
    if let Ok(four) = <&[QuantizedRow; TILE_ROWS]>::try_from(inputs) {
        if use_vnni {
            return dot_four_inputs_vnni::<F, TILE_ROWS>(blocks, four);
        }
        return dot_four_inputs_avx2::<F, TILE_ROWS>(blocks, four);
    }
    if let Ok(two) = <&[QuantizedRow; 2]>::try_from(inputs) {
        let [first, second] = if use_vnni {
            dot_four_inputs_vnni::<F, 2>(blocks, two)
        } else {
            dot_four_inputs_avx2::<F, 2>(blocks, two)
        };
        return [first, second, 0.0, 0.0];
    }
    let num_blocks = blocks.len() / F::BLOCK_BYTES;
    for input in inputs {
        check_input(input, num_blocks);
    }
    let mut accumulators = [std::arch::x86_64::_mm256_setzero_ps(); TILE_ROWS];
    let mut extras = [0.0_f32; TILE_ROWS];
    for index in 0..num_blocks {
        let block = block_at::<F>(blocks.as_ptr(), index);
        let weights = F::unpack(block);
        for ((accumulator, extra), input) in
            accumulators.iter_mut().zip(extras.iter_mut()).zip(inputs)
        {
            *accumulator = F::accumulate::<PairSums>(
                *accumulator,
                block,
                weights,
                activations_at(input, index),
                *input.scales.get_unchecked(index),
                *input.sums.get_unchecked(index),
                extra,
            );
        }
    }
    std::array::from_fn(|row| horizontal_sum(accumulators[row]) + extras[row])
}

/// [`dot_tile_avx2`] for exactly `N` input rows (four, the common case of a prompt chunk, or
/// two): a fixed count lets the compiler keep the accumulators and the rows' pointers in
/// registers (the loop over a slice of up to four kept them on the stack, a store and a reload
/// per block and row). Each product adds up in the same order as in [`dot_avx2`], so the bits
/// are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_four_inputs_avx2<F: BlockFormat, const N: usize>(
    blocks: &[u8],
    inputs: &[QuantizedRow; N],
) -> [f32; N] {
    dot_four_inputs::<F, PairSums, N>(blocks, inputs)
}

/// [`dot_four_inputs_avx2`] with AVX-VNNI's products: the same bits, one instruction fewer per
/// block and input (the prompt and batched paths are bound by these instructions).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn dot_four_inputs_vnni<F: BlockFormat, const N: usize>(
    blocks: &[u8],
    inputs: &[QuantizedRow; N],
) -> [f32; N] {
    dot_four_inputs::<F, Vnni, N>(blocks, inputs)
}

/// The body of the two functions above, inlined into each with its instruction set; `N` is
/// four, or two for a pair of answers left over in a batched step.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_four_inputs<F: BlockFormat, P: Products, const N: usize>(
    blocks: &[u8],
    inputs: &[QuantizedRow; N],
) -> [f32; N] {
    let num_blocks = blocks.len() / F::BLOCK_BYTES;
    for input in inputs {
        check_input(input, num_blocks);
    }
    let values: [*const i8; N] = std::array::from_fn(|row| inputs[row].values.as_ptr());
    let scales: [*const f32; N] = std::array::from_fn(|row| inputs[row].scales.as_ptr());
    let sums: [*const f32; N] = std::array::from_fn(|row| inputs[row].sums.as_ptr());
    let mut accumulators = [std::arch::x86_64::_mm256_setzero_ps(); N];
    let mut extras = [0.0_f32; N];
    for index in 0..num_blocks {
        // Answers batched in a generation step stream the weights from memory, as one does.
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            blocks
                .as_ptr()
                .wrapping_add(index * F::BLOCK_BYTES + PREFETCH_BYTES)
                .cast(),
        );
        let block = block_at::<F>(blocks.as_ptr(), index);
        let weights = F::unpack(block);
        for row in 0..N {
            accumulators[row] = F::accumulate::<P>(
                accumulators[row],
                block,
                weights,
                std::arch::x86_64::_mm256_loadu_si256(values[row].add(index * BLOCK).cast()),
                *scales[row].add(index),
                *sums[row].add(index),
                &mut extras[row],
            );
        }
    }
    std::array::from_fn(|row| horizontal_sum(accumulators[row]) + extras[row])
}

/// `Σ a·b` of two f32 slices of equal length, with AVX2 and FMA where the CPU has them (the
/// decoder's attention scores: LLVM left the portable loop scalar there, a fifth of a token's
/// time at 500 cached positions).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        // SAFETY: AVX2 and FMA checked just above; both slices hold `len` values.
        return unsafe { dot_f32_avx2(&a[..len], &b[..len]) };
    }
    a[..len].iter().zip(&b[..len]).map(|(x, y)| x * y).sum()
}

/// `out += weight · values` (the attention's weighted sum of values), with AVX2 and FMA where
/// the CPU has them.
pub fn add_scaled(out: &mut [f32], weight: f32, values: &[f32]) {
    let len = out.len().min(values.len());
    #[cfg(target_arch = "x86_64")]
    if has_fast_path() {
        // SAFETY: as in `dot_f32`.
        return unsafe { add_scaled_avx2(&mut out[..len], weight, &values[..len]) };
    }
    for (out, &value) in out[..len].iter_mut().zip(&values[..len]) {
        *out += weight * value;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let len = a.len().min(b.len());
    let whole = len / 16 * 16;
    let (mut first, mut second) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut index = 0;
    while index < whole {
        first = _mm256_fmadd_ps(
            _mm256_loadu_ps(a.as_ptr().add(index)),
            _mm256_loadu_ps(b.as_ptr().add(index)),
            first,
        );
        second = _mm256_fmadd_ps(
            _mm256_loadu_ps(a.as_ptr().add(index + 8)),
            _mm256_loadu_ps(b.as_ptr().add(index + 8)),
            second,
        );
        index += 16;
    }
    let tail: f32 = a[whole..len]
        .iter()
        .zip(&b[whole..len])
        .map(|(x, y)| x * y)
        .sum();
    horizontal_sum(_mm256_add_ps(first, second)) + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_scaled_avx2(out: &mut [f32], weight: f32, values: &[f32]) {
    use std::arch::x86_64::*;
    let len = out.len().min(values.len());
    let whole = len / 8 * 8;
    let weights = _mm256_set1_ps(weight);
    let mut index = 0;
    while index < whole {
        let target = out.as_mut_ptr().add(index);
        let sum = _mm256_fmadd_ps(
            weights,
            _mm256_loadu_ps(values.as_ptr().add(index)),
            _mm256_loadu_ps(target),
        );
        _mm256_storeu_ps(target, sum);
        index += 8;
    }
    for (out, &value) in out[whole..len].iter_mut().zip(&values[whole..len]) {
        *out += weight * value;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::*;

    /// A random matrix quantized by candle, and its dequantized values.
    fn random_matrix(rows: usize, columns: usize, dtype: GgmlDType) -> (Vec<u8>, Vec<f32>) {
        let weights = Tensor::randn(0f32, 1.0, (rows, columns), &Device::Cpu).expect("randn");
        let quantized = QTensor::quantize(&weights, dtype).expect("quantize");
        let dequantized = quantized
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("dequantize");
        (quantized.data().expect("data").to_vec(), dequantized)
    }

    fn random_input(len: usize) -> Vec<f32> {
        Tensor::randn(0f32, 1.0, len, &Device::Cpu)
            .and_then(|t| t.to_vec1())
            .expect("input")
    }

    /// The AVX2 path where this CPU has it, and the scalar one always.
    fn paths() -> Vec<bool> {
        if has_fast_path() {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    fn random_q4_1(rows: usize, columns: usize) -> (Vec<u8>, Vec<f32>) {
        random_matrix(rows, columns, GgmlDType::Q4_1)
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
    fn f32_dot_and_scaled_add_match_plain_loops() {
        for len in [0, 5, 8, 16, 64, 67] {
            let a = random_input(len);
            let b = random_input(len);
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot_f32(&a, &b) - expected).abs() < 1e-4, "dot of {len}");
            let mut out = b.clone();
            add_scaled(&mut out, 0.75, &a);
            for ((out, x), y) in out.iter().zip(&a).zip(&b) {
                assert!((out - (y + 0.75 * x)).abs() < 1e-6, "scaled add of {len}");
            }
        }
    }

    #[test]
    fn products_match_the_dequantized_weights_on_both_paths() {
        let (rows, columns) = (70, 96);
        let (data, dequantized) = random_q4_1(rows, columns);
        for num_rows in [1, 5, 8] {
            let input = random_input(num_rows * columns);
            let expected = reference(&dequantized, &input, rows, columns);
            for use_avx2 in paths() {
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
    fn each_row_of_a_batch_is_bit_for_bit_its_product_alone() {
        // 150 weight rows: two full tasks and a partial one that ends in a row outside a tile.
        let (rows, columns) = (150, 96);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (data, _) = random_matrix(rows, columns, dtype);
            for use_avx2 in paths() {
                for num_rows in [2, 3, 4, 5, 6, 9] {
                    let input = random_input(num_rows * columns);
                    let batched = match dtype {
                        GgmlDType::Q4_1 => {
                            Q4_1Matrix::with_path(data.clone(), rows, columns, use_avx2)
                                .and_then(|m| m.forward_each(&input, num_rows))
                        }
                        _ => Q8_0Matrix::with_path(data.clone(), rows, columns, use_avx2)
                            .and_then(|m| m.forward_each(&input, num_rows)),
                    }
                    .expect("batched");
                    for (row, alone_input) in input.chunks_exact(columns).enumerate() {
                        let alone = match dtype {
                            GgmlDType::Q4_1 => {
                                Q4_1Matrix::with_path(data.clone(), rows, columns, use_avx2)
                                    .and_then(|m| m.forward(alone_input, 1))
                            }
                            _ => Q8_0Matrix::with_path(data.clone(), rows, columns, use_avx2)
                                .and_then(|m| m.forward(alone_input, 1)),
                        }
                        .expect("alone");
                        let bits =
                            |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&batched[row * rows..][..rows]),
                            bits(&alone),
                            "{dtype:?} row {row} of {num_rows} (avx2 {use_avx2})"
                        );
                    }
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
        let input = random_input(columns);
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
    fn q8_0_products_match_the_dequantized_weights_and_candle_on_both_paths() {
        let (rows, columns) = (70, 576);
        let (data, dequantized) = random_matrix(rows, columns, GgmlDType::Q8_0);
        let candle = candle_core::quantized::QMatMul::from_qtensor(
            candle_core::quantized::ggml_file::qtensor_from_ggml(
                GgmlDType::Q8_0,
                &data,
                vec![rows, columns],
                &Device::Cpu,
            )
            .expect("qtensor"),
        )
        .expect("qmatmul");
        for num_rows in [1, 5, 8] {
            let input = random_input(num_rows * columns);
            let expected = reference(&dequantized, &input, rows, columns);
            let from_candle: Vec<f32> = {
                use candle_core::Module;
                let x = Tensor::from_slice(&input, (num_rows, columns), &Device::Cpu).expect("x");
                candle
                    .forward(&x)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1())
                    .expect("candle")
            };
            for use_avx2 in paths() {
                let matrix =
                    Q8_0Matrix::with_path(data.clone(), rows, columns, use_avx2).expect("matrix");
                let actual = matrix.forward(&input, num_rows).expect("forward");
                assert_eq!(actual.len(), expected.len());
                let tolerance = 0.05 * (columns as f32).sqrt();
                for ((a, e), c) in actual.iter().zip(&expected).zip(&from_candle) {
                    assert!((a - e).abs() < tolerance, "{a} vs {e} (avx2 {use_avx2})");
                    // The same 8-bit activations and integer sums as candle's Q8_0 kernel:
                    // only the order of the float additions differs.
                    assert!((a - c).abs() <= 1e-3 * (1.0 + c.abs()), "{a} vs candle {c}");
                }
            }
        }
    }

    #[test]
    fn q8_0_weights_of_minus_128_are_read_as_such() {
        // One block: scale 1.0, weights -128 and 127 alternating; activations all 1.0, whose
        // 8-bit form is 127 with scale 1/127.
        let mut block = f16::from_f32(1.0).to_le_bytes().to_vec();
        block.extend((0..32).map(|i| if i % 2 == 0 { 0x80_u8 } else { 0x7F }));
        let expected = 16.0 * -128.0 + 16.0 * 127.0;
        for use_avx2 in paths() {
            let matrix = Q8_0Matrix::with_path(block.clone(), 1, 32, use_avx2).expect("matrix");
            let actual = matrix.forward(&[1.0; 32], 1).expect("forward")[0];
            assert!(
                (actual - expected).abs() < 0.1,
                "{actual} (avx2 {use_avx2})"
            );
        }
    }

    /// The embedding table is read one row at a time from the quantized matrix: each row must
    /// be exactly that row of candle's dequantized tensor (the values the f32 table held).
    #[test]
    fn a_row_is_bit_for_bit_that_row_of_the_dequantized_tensor() {
        let (rows, columns) = (9, 96);
        let (data, dequantized) = random_q4_1(rows, columns);
        let q4_1 = Q4_1Matrix::new(data, rows, columns).unwrap();
        let (data, q8_dequantized) = random_matrix(rows, columns, GgmlDType::Q8_0);
        let q8_0 = Q8_0Matrix::new(data, rows, columns).unwrap();
        for row in 0..rows {
            let expected = &dequantized[row * columns..(row + 1) * columns];
            assert_eq!(q4_1.row(row).unwrap(), expected, "Q4_1 row {row}");
            let expected = &q8_dequantized[row * columns..(row + 1) * columns];
            assert_eq!(q8_0.row(row).unwrap(), expected, "Q8_0 row {row}");
        }
        assert!(q4_1.row(rows).is_none() && q8_0.row(rows).is_none());
    }

    #[test]
    fn q4_k_blocks_become_q4_1_blocks_value_for_value() {
        // Three super-blocks a row, so that sub-blocks 4-7 (whose scales are split across
        // bytes) and the nibble halves of every pair are all read.
        let (rows, columns) = (9, 3 * K_BLOCK);
        let (data, dequantized) = random_matrix(rows, columns, GgmlDType::Q4K);
        let blocks = q4_k_as_q4_1(&data).expect("convert");
        let matrix = Q4_1Matrix::from_blocks(blocks, rows, columns).expect("matrix");
        for row in 0..rows {
            let ours = matrix.row(row).expect("row");
            let candles = &dequantized[row * columns..][..columns];
            assert_eq!(
                ours.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                candles.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "row {row}"
            );
        }
        // And the products, on both paths, against the dequantized weights.
        for num_rows in [1, 4, 6] {
            let input = random_input(num_rows * columns);
            let expected = reference(&dequantized, &input, rows, columns);
            for use_avx2 in paths() {
                let blocks = q4_k_as_q4_1(&data).expect("convert");
                let matrix =
                    Q4_1Matrix::from_repacked(blocks, rows, columns, use_avx2).expect("matrix");
                let actual = matrix.forward(&input, num_rows).expect("forward");
                let tolerance = 0.05 * (columns as f32).sqrt();
                for (a, e) in actual.iter().zip(&expected) {
                    assert!((a - e).abs() < tolerance, "{a} vs {e} (avx2 {use_avx2})");
                }
            }
        }
        assert!(q4_k_as_q4_1(&data[..100]).is_err());
    }

    #[test]
    fn vnni_and_avx2_products_give_the_same_bits() {
        if !has_fast_path() || !has_vnni() {
            eprintln!("NOT TESTED HERE: this CPU has no AVX-VNNI, so its kernel cannot run");
            return;
        }
        let (rows, columns) = (12, 96);
        let bits = |values: &[f32]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for num_rows in [2, 4, 6, 8, 9] {
            let input = random_input(num_rows * columns);
            let (q4_1, _) = random_matrix(rows, columns, GgmlDType::Q4_1);
            let (q8_0, _) = random_matrix(rows, columns, GgmlDType::Q8_0);
            let mut vnni = Q4_1Matrix::new(q4_1, rows, columns).expect("matrix");
            assert!(vnni.use_vnni);
            let with = (
                vnni.forward(&input, num_rows),
                vnni.forward_each(&input, num_rows),
            );
            vnni.use_vnni = false;
            let without = (
                vnni.forward(&input, num_rows),
                vnni.forward_each(&input, num_rows),
            );
            assert_eq!(bits(&with.0.expect("f")), bits(&without.0.expect("f")));
            assert_eq!(bits(&with.1.expect("f")), bits(&without.1.expect("f")));
            let mut vnni = Q8_0Matrix::new(q8_0, rows, columns).expect("matrix");
            let with = (
                vnni.forward(&input, num_rows),
                vnni.forward_each(&input, num_rows),
            );
            vnni.use_vnni = false;
            let without = (
                vnni.forward(&input, num_rows),
                vnni.forward_each(&input, num_rows),
            );
            assert_eq!(bits(&with.0.expect("f")), bits(&without.0.expect("f")));
            assert_eq!(bits(&with.1.expect("f")), bits(&without.1.expect("f")));
        }
    }

    #[test]
    fn wrong_sizes_are_errors() {
        assert!(Q8_0Matrix::new(vec![0; 34], 1, 31).is_err());
        assert!(Q8_0Matrix::new(vec![0; 33], 1, 32).is_err());
        assert!(Q4_1Matrix::new(vec![0; 20], 1, 31).is_err());
        assert!(Q4_1Matrix::new(vec![0; 19], 1, 32).is_err());
        let matrix = Q4_1Matrix::new(vec![0; 20], 1, 32).expect("matrix");
        assert!(matrix.forward(&[0.0; 31], 1).is_err());
    }
}
