//! Matrix products with Q4_1 and Q8_0 weights for the decoder, in panels of 16 weight rows.
//!
//! Why: candle 0.11 has only a scalar kernel for Q4_1 (the default model's format) and
//! multiplies one activation row at a time. This is llama.cpp's arithmetic: each activation row
//! is quantized to 8 bits per block of 32 (a scale, and the scaled sum of the block, "Q8_1"),
//! and a block's dot product is `dw·dx·Σ qw·qx (+ mw·sx for Q4_1's minimum)`, the sum exact in
//! integers. The layout is ours: at load, each block of 32 columns of 16 consecutive weight
//! rows is interleaved so that one 64-byte vector holds four consecutive weights of each of the
//! 16 rows ([`Q4_1::pack`], [`Q8_0::pack`]). One `vpdpbusd` then adds four byte products to
//! each of 16 rows' sums, with the four activations broadcast, and no horizontal sums are
//! left to do: the same scheme as the embedder's int8 layers (`embed/int8.rs`). Prompts ran
//! 2.4x as fast as with the row-at-a-time kernels this replaced, and generation 1.5x
//! (docs/benchmarks.md, "Decoder products in panels of 16 rows").
//!
//! Every (weight row, activation row) result has the same arithmetic whatever else is computed
//! beside it: per block, the exact integer sum, then `acc = fma(sum, dw·dx, acc)` in block
//! order (and `extra = fma(mw, sx, extra)`; the result `acc + extra`). So every kernel (AVX-512
//! VNNI, AVX-VNNI, AVX2, scalar) gives the same bits, a row of a batched generation step is bit
//! for bit that row alone, and a prompt's rows do not depend on the chunk they came in.
//!
//! The kernel is chosen at run time ([`Kernel::detect`]); Q4_K (Q4_K_M files) comes in as
//! Q4_1 blocks, value for value ([`q4_k_as_q4_1`]).

// SIMD intrinsics need `unsafe`; this module, `attention.rs` and the embedder's `embed/int8.rs`
// are the only ones of the workspace allowed to use them (`panel_cache.rs` maps a file).
// Every unsafe call is a `#[target_feature]` function reached only after the runtime check
// (`Kernel::runs_here`), reading panels and rows whose lengths are checked first.
#![allow(unsafe_code)]

use std::marker::PhantomData;

use half::f16;
use rayon::prelude::*;

use super::team::{self, Team};

/// Values per block (weights and the 8-bit activations).
const BLOCK: usize = 32;
/// Weight rows per panel: one 512-bit vector of 32-bit sums.
const PANEL: usize = 16;
/// At most this many panels per parallel task when few activation rows are multiplied
/// (generation steps); see [`panels_per_task`].
const PANELS_PER_TASK: usize = 8;
/// Activation rows that share each panel block's weights in registers.
const GROUP: usize = 4;
/// More activation rows than this split across threads by rows (a prompt chunk), fewer by
/// panels (a generation step, one row per answer).
const FEW_ROWS: usize = 8;
/// From this many activation rows on, quantizing them runs on every thread: prompts ran ~20 %
/// faster so and eight answers at once ~13 % (with placing a batched step's results, which
/// tasks now write in place); with two or four answers the extra fork-joins cost as much as
/// they saved (`gen_bench`, `batch_bench`, docs/benchmarks.md).
const PARALLEL_ROWS: usize = 8;
/// How far ahead of its position a kernel asks for weight bytes (a page). One token streams
/// every weight once (~100 MB for SmolLM2-135M), and on these VMs the hardware prefetcher
/// alone left the kernel waiting on memory: generation went from ~75 to ~140 tokens/s on two
/// Intel Xeon vCPUs (docs/benchmarks.md, "Prefetching the weights").
const PREFETCH_BYTES: usize = 4096;

pub use crate::simd::Kernel;

/// Whether this CPU runs a SIMD kernel (the decoder uses candle's products where it does not).
pub fn has_fast_path() -> bool {
    Kernel::Avx2.runs_here()
}

/// A block format of 32 weights: its file and row-major in-memory forms, and its panel form.
pub trait BlockFormat: Send + Sync {
    /// The GGML type's name, for errors.
    const NAME: &'static str;
    /// Whether blocks carry a minimum (Q4_1), added as `minimum · Σ activations`.
    const HAS_MINIMUM: bool;
    /// Bytes per block in a GGUF file.
    const FILE_BLOCK_BYTES: usize;
    /// Bytes per block in the row-major in-memory form ([`Self::repack`]): the scale (and
    /// minimum) widened to f32.
    const BLOCK_BYTES: usize;
    /// Factors per block and row: the scale (and the minimum), the first f32 values of an
    /// in-memory block; a panel block starts with each factor of its 16 rows.
    const FACTORS: usize;
    /// Bytes of a panel block's weights (after the factors): 32 columns of 16 rows.
    const WEIGHT_BYTES: usize;

    /// Appends one block as read from the file in its in-memory form.
    fn repack(file_block: &[u8], out: &mut Vec<u8>);

    /// Writes row `row` (of 16) of a panel block's weights (`weights`, the bytes after the
    /// factors) from that row's in-memory block. Rows never written (past a matrix's last row)
    /// stay as the weights were filled ([`Self::EMPTY`]).
    fn pack(block: &[u8], row: usize, weights: &mut [u8]);

    /// The weight byte of a zero weight in a panel block.
    const EMPTY: u8;

    /// The quantized weight `k` (0..32) of `row` in a panel block's weights, as an integer.
    fn weight(weights: &[u8], row: usize, k: usize) -> i32;
}

/// Byte offset of the weights in a panel block of `F`: after the factors of its 16 rows, as
/// f16 (`half`) or f32.
const fn weights_at<F: BlockFormat>(half: bool) -> usize {
    F::FACTORS * PANEL * if half { 2 } else { 4 }
}

/// Bytes of one panel block of `F` (see [`weights_at`]).
const fn panel_block_bytes<F: BlockFormat>(half: bool) -> usize {
    weights_at::<F>(half) + F::WEIGHT_BYTES
}

/// Q4_1: f16 scale, f16 minimum, 16 bytes of nibbles (low nibbles are values 0..16).
pub struct Q4_1;
/// Q8_0: f16 scale, 32 signed bytes.
pub struct Q8_0;

/// A `[rows, columns]` matrix of `F` blocks, in panels of 16 rows.
pub struct QuantizedMatrix<F: BlockFormat> {
    rows: usize,
    columns: usize,
    /// Panel after panel; each panel its blocks in column order.
    panels: Panels,
    /// Whether the panels hold the factors as f16: where every one is an f16 value (a Q4_1 or
    /// Q8_0 file's own), so that nothing changes but the bytes read per token (Q4_1 20 per
    /// 32 weights instead of 24). Factors made from K-quants (`d·scale`) stay f32.
    half: bool,
    kernel: Kernel,
    format: PhantomData<F>,
}

/// A matrix's panels: rearranged at load, or mapped from a panel cache file written by an
/// earlier load of the same model (`generate/panel_cache.rs`), the kernels reading them as
/// stored there.
enum Panels {
    Built(Vec<u8>),
    Mapped {
        map: std::sync::Arc<memmap2::Mmap>,
        start: usize,
        len: usize,
    },
}

impl std::ops::Deref for Panels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Panels::Built(bytes) => bytes,
            Panels::Mapped { map, start, len } => &map[*start..][..*len],
        }
    }
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
    /// Per block: `−128 · Σ q`, which undoes the +128 of Q8_0's stored weights.
    offsets: Vec<i32>,
    values: Vec<i8>,
}

impl<F: BlockFormat> QuantizedMatrix<F> {
    /// Wraps `data` (blocks as in the file, `rows` rows of `columns` values).
    pub fn new(data: Vec<u8>, rows: usize, columns: usize) -> Result<Self, String> {
        Self::with_kernel(data, rows, columns, Kernel::detect())
    }

    /// [`Self::new`] with a given kernel (benchmarks and tests compare them); an error where
    /// this CPU cannot run it.
    pub fn with_kernel(
        data: Vec<u8>,
        rows: usize,
        columns: usize,
        kernel: Kernel,
    ) -> Result<Self, String> {
        check_shape::<F>(&data, rows, columns, F::FILE_BLOCK_BYTES)?;
        Self::from_repacked(Self::repacked(&data), rows, columns, kernel)
    }

    /// The file's blocks (`F::FILE_BLOCK_BYTES` each) in their row-major in-memory form.
    pub fn repacked(file_blocks: &[u8]) -> Vec<u8> {
        let mut repacked =
            Vec::with_capacity(file_blocks.len() / F::FILE_BLOCK_BYTES * F::BLOCK_BYTES);
        for block in file_blocks.chunks_exact(F::FILE_BLOCK_BYTES) {
            F::repack(block, &mut repacked);
        }
        repacked
    }

    /// Wraps blocks in their row-major in-memory form ([`Self::repacked`], [`q4_k_as_q4_1`]).
    pub fn from_blocks(data: Vec<u8>, rows: usize, columns: usize) -> Result<Self, String> {
        Self::from_repacked(data, rows, columns, Kernel::detect())
    }

    fn from_repacked(
        data: Vec<u8>,
        rows: usize,
        columns: usize,
        kernel: Kernel,
    ) -> Result<Self, String> {
        let half = data.chunks_exact(F::BLOCK_BYTES).all(|block| {
            (0..F::FACTORS).all(|factor| {
                let value = f32_at(&block[4 * factor..]);
                f16::from_f32(value).to_f32().to_bits() == value.to_bits()
            })
        });
        Self::packed(&data, rows, columns, kernel, half)
    }

    /// Rearranges in-memory blocks into panels, the factors as f16 where `half`.
    fn packed(
        data: &[u8],
        rows: usize,
        columns: usize,
        kernel: Kernel,
        half: bool,
    ) -> Result<Self, String> {
        check_shape::<F>(data, rows, columns, F::BLOCK_BYTES)?;
        if !kernel.runs_here() {
            return Err(format!("this CPU cannot run the {kernel:?} kernel"));
        }
        let (weights_at, block_bytes) = (weights_at::<F>(half), panel_block_bytes::<F>(half));
        let num_blocks = columns / BLOCK;
        let num_panels = rows.div_ceil(PANEL);
        let panel_bytes = num_blocks * block_bytes;
        let mut panels = vec![0_u8; num_panels * panel_bytes];
        for (panel_index, panel) in panels.chunks_exact_mut(panel_bytes).enumerate() {
            for panel_block in panel.chunks_exact_mut(block_bytes) {
                panel_block[weights_at..].fill(F::EMPTY);
            }
            for row in 0..PANEL.min(rows - panel_index * PANEL) {
                let row_start = (panel_index * PANEL + row) * num_blocks * F::BLOCK_BYTES;
                let blocks = &data[row_start..][..num_blocks * F::BLOCK_BYTES];
                for (block, panel_block) in blocks
                    .chunks_exact(F::BLOCK_BYTES)
                    .zip(panel.chunks_exact_mut(block_bytes))
                {
                    let (factors, weights) = panel_block.split_at_mut(weights_at);
                    for factor in 0..F::FACTORS {
                        let value = &block[4 * factor..][..4];
                        let slot = factor * PANEL + row;
                        if half {
                            let value = f16::from_f32(f32_at(value)).to_le_bytes();
                            factors[2 * slot..][..2].copy_from_slice(&value);
                        } else {
                            factors[4 * slot..][..4].copy_from_slice(value);
                        }
                    }
                    F::pack(block, row, weights);
                }
            }
        }
        Ok(QuantizedMatrix {
            rows,
            columns,
            panels: Panels::Built(panels),
            half,
            kernel,
            format: PhantomData,
        })
    }

    /// The panels of a `[rows, columns]` matrix as [`Self::panel_bytes_and_layout`] gave them,
    /// mapped from a panel cache file (`map[start..start + len]`): an error where the length is
    /// not that of such panels, or where the bytes lie outside the map.
    pub(crate) fn mapped(
        map: std::sync::Arc<memmap2::Mmap>,
        start: usize,
        len: usize,
        rows: usize,
        columns: usize,
        half: bool,
    ) -> Result<Self, String> {
        let kernel = Kernel::detect();
        if !columns.is_multiple_of(BLOCK) || rows == 0 {
            return Err(format!(
                "a {rows} x {columns} matrix does not split into blocks"
            ));
        }
        let expected = rows.div_ceil(PANEL) * (columns / BLOCK) * panel_block_bytes::<F>(half);
        if len != expected || start.checked_add(len).is_none_or(|end| end > map.len()) {
            return Err(format!(
                "{len} bytes at {start} are not the panels of a {rows} x {columns} {} matrix",
                F::NAME
            ));
        }
        Ok(QuantizedMatrix {
            rows,
            columns,
            panels: Panels::Mapped { map, start, len },
            half,
            kernel,
            format: PhantomData,
        })
    }

    /// The panels' bytes and whether their factors are f16: what a panel cache file keeps.
    pub(crate) fn panel_bytes_and_layout(&self) -> (&[u8], bool) {
        (&self.panels, self.half)
    }

    /// Columns of the matrix.
    pub(crate) fn columns(&self) -> usize {
        self.columns
    }

    /// Factor `factor` (0: scale, 1: minimum) of row `row` in a panel block.
    fn factor(&self, panel_block: &[u8], factor: usize, row: usize) -> f32 {
        let slot = factor * PANEL + row;
        if self.half {
            f16_at(panel_block, 2 * slot)
        } else {
            f32_at(&panel_block[4 * slot..])
        }
    }

    fn block_bytes(&self) -> usize {
        panel_block_bytes::<F>(self.half)
    }

    fn num_blocks(&self) -> usize {
        self.columns / BLOCK
    }

    fn panel_bytes(&self) -> usize {
        self.num_blocks() * self.block_bytes()
    }

    fn panel(&self, index: usize) -> &[u8] {
        &self.panels[index * self.panel_bytes()..][..self.panel_bytes()]
    }

    /// Row `index` as f32 values (a token's embedding when this is the embedding table), or
    /// `None` past the last row: `q · scale (+ minimum)`, candle's `dequantize` arithmetic, so a
    /// row read here equals that row of the dequantized tensor.
    pub fn row(&self, index: usize) -> Option<Vec<f32>> {
        if index >= self.rows {
            return None;
        }
        let (panel, row) = (index / PANEL, index % PANEL);
        let mut values = Vec::with_capacity(self.columns);
        let weights_at = weights_at::<F>(self.half);
        for block in self.panel(panel).chunks_exact(self.block_bytes()) {
            let scale = self.factor(block, 0, row);
            for k in 0..BLOCK {
                let q = F::weight(&block[weights_at..], row, k) as f32;
                values.push(if F::HAS_MINIMUM {
                    q * scale + self.factor(block, 1, row)
                } else {
                    q * scale
                });
            }
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
        if num_rows < PARALLEL_ROWS {
            return Ok(input.chunks_exact(self.columns).map(quantize_row).collect());
        }
        // Many rows (answers of a batched step, a prompt chunk) on every thread: on the
        // caller's thread alone this was a serial part of each product that grew with the rows.
        Ok(input
            .par_chunks_exact(self.columns)
            .map(quantize_row)
            .collect())
    }

    /// Multiplies `num_rows` input rows (`input`, row-major, `columns` wide) by the matrix's
    /// transpose: returns `[num_rows, rows]`. Each row's result is bit for bit what it would be
    /// alone (see the module's comment).
    pub fn forward(&self, input: &[f32], num_rows: usize) -> Result<Vec<f32>, String> {
        self.forward_on(None, input, num_rows)
    }

    /// [`Self::forward`]; a generation step's rows (a few) on `team`'s threads when given, else
    /// on rayon's.
    pub(crate) fn forward_on(
        &self,
        team: Option<&Team>,
        input: &[f32],
        num_rows: usize,
    ) -> Result<Vec<f32>, String> {
        let quantized = self.quantize_rows(input, num_rows)?;
        let mut output = vec![0.0_f32; num_rows * self.rows];
        let num_panels = self.rows.div_ceil(PANEL);
        if num_rows > FEW_ROWS {
            // A prompt chunk: the rows split across threads, each share against every panel
            // (a panel's weights stay in the first-level cache while its rows pass over it).
            let share = prompt_share(num_rows, rayon::current_num_threads());
            output
                .par_chunks_mut(share * self.rows)
                .zip(quantized.par_chunks(share))
                .for_each(|(out, inputs)| {
                    for panel in 0..num_panels {
                        self.panel_rows(panel, inputs, out);
                    }
                });
        } else if let Some(team) = team {
            // A generation step on its team: each thread takes contiguous runs of panels (the
            // weights streamed in order), two a thread so that one starting late evens out.
            // Each (input row, panel) pair is written by one task only; see `Target`.
            let tasks = 2 * rayon::current_num_threads();
            let columns = self.rows;
            let target = Target(output.as_mut_ptr(), output.len());
            team.run(tasks, &|task| {
                for panel in team::share(num_panels, tasks, task) {
                    self.panel_results(panel, &quantized, |input_row, values| {
                        target.write(input_row * columns + panel * PANEL, values);
                    });
                }
            });
        } else if num_rows == 1 {
            // Generation, one answer: the panels split across threads.
            let per_task = panels_per_task(num_panels, rayon::current_num_threads());
            output
                .par_chunks_mut(per_task * PANEL)
                .enumerate()
                .for_each(|(task, out)| {
                    let first = task * per_task;
                    for panel in first..(first + per_task).min(num_panels) {
                        let rows = &mut out[(panel - first) * PANEL..];
                        self.panel_rows_strided(panel, &quantized, rows, PANEL);
                    }
                });
        } else {
            // A batched generation step, one row per answer: the panels split across threads
            // and every answer passes over each panel, so the weights are read from memory
            // once a step, not once an answer. Each task writes its panels' columns of every
            // answer's row in place: through buffers of its own, put in place on one thread
            // afterwards, the copies and allocations were a twelfth of a four-answer step.
            let per_task = panels_per_task(num_panels, rayon::current_num_threads());
            let num_tasks = num_panels.div_ceil(per_task);
            let columns = self.rows;
            let target = Target(output.as_mut_ptr(), output.len());
            (0..num_tasks).into_par_iter().for_each(|task| {
                let first = task * per_task;
                for panel in first..(first + per_task).min(num_panels) {
                    // Each (input row, panel) pair is written by this task only, and pairs
                    // cover disjoint ranges.
                    self.panel_results(panel, &quantized, |input_row, values| {
                        target.write(input_row * columns + panel * PANEL, values);
                    });
                }
            });
        }
        Ok(output)
    }

    /// Panel `panel`'s results for each of `inputs`, into `out` (`[inputs.len(), rows]`).
    fn panel_rows(&self, panel: usize, inputs: &[QuantizedRow], out: &mut [f32]) {
        self.panel_rows_strided(panel, inputs, &mut out[panel * PANEL..], self.rows);
    }

    /// Panel `panel`'s results for each of `inputs`: input `i`'s 16 values (fewer in a last,
    /// partial panel) go to `out[i * stride..]`.
    fn panel_rows_strided(
        &self,
        panel: usize,
        inputs: &[QuantizedRow],
        out: &mut [f32],
        stride: usize,
    ) {
        self.panel_results(panel, inputs, |index, values| {
            out[index * stride..][..values.len()].copy_from_slice(values);
        });
    }

    /// Panel `panel`'s results for each of `inputs`: `write(i, values)` with input `i`'s 16
    /// values (fewer in a last, partial panel).
    fn panel_results(
        &self,
        panel: usize,
        inputs: &[QuantizedRow],
        mut write: impl FnMut(usize, &[f32]),
    ) {
        let valid = PANEL.min(self.rows - panel * PANEL);
        let weights = self.panel(panel);
        let mut first = 0;
        while first < inputs.len() {
            let width = match inputs.len() - first {
                n if n >= GROUP => GROUP,
                n if n >= 2 => 2,
                _ => 1,
            };
            let group = &inputs[first..first + width];
            let mut results = [[0.0_f32; PANEL]; GROUP];
            match width {
                GROUP => self.panel_group::<GROUP>(weights, group, &mut results),
                2 => self.panel_group::<2>(weights, group, &mut results),
                _ => self.panel_group::<1>(weights, group, &mut results),
            }
            for (index, values) in results.iter().take(width).enumerate() {
                write(first + index, &values[..valid]);
            }
            first += width;
        }
    }

    /// One panel against exactly `N` inputs, with this matrix's kernel.
    fn panel_group<const N: usize>(
        &self,
        weights: &[u8],
        inputs: &[QuantizedRow],
        results: &mut [[f32; PANEL]; GROUP],
    ) {
        let num_blocks = self.num_blocks();
        assert!(
            weights.len() >= num_blocks * self.block_bytes()
                && inputs.len() == N
                && N <= GROUP
                && inputs.iter().all(|input| input.fits(num_blocks)),
            "a panel or an input row of the wrong size"
        );
        let inputs: [&QuantizedRow; N] = std::array::from_fn(|index| &inputs[index]);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the matrix was only built with a kernel that `runs_here`, and the sizes
            // of the panel and of every input row were checked above.
            let simd: Option<[[f32; PANEL]; N]> = unsafe {
                match (self.kernel, self.half) {
                    (Kernel::Avx512Vnni, true) => Some(panel_avx512::<F, N, true>(weights, inputs)),
                    (Kernel::Avx512Vnni, false) => {
                        Some(panel_avx512::<F, N, false>(weights, inputs))
                    }
                    (Kernel::Vnni, true) => Some(panel_vnni::<F, N, true>(weights, inputs)),
                    (Kernel::Vnni, false) => Some(panel_vnni::<F, N, false>(weights, inputs)),
                    (Kernel::Avx2, true) => Some(panel_avx2::<F, N, true>(weights, inputs)),
                    (Kernel::Avx2, false) => Some(panel_avx2::<F, N, false>(weights, inputs)),
                    (Kernel::Scalar, _) => None,
                }
            };
            if let Some(simd) = simd {
                results[..N].copy_from_slice(&simd);
                return;
            }
        }
        for (result, input) in results.iter_mut().zip(inputs) {
            *result = self.panel_scalar(weights, num_blocks, input);
        }
    }
}

/// Rows per task of a prompt chunk's product: equal shares of at most `8 · GROUP` rows, as many
/// shares as a multiple of the threads. Shares rounded up to whole groups of four left 42-44
/// token prompts split 24 + 18-20 rows on two threads, the busier one a fifth longer.
fn prompt_share(num_rows: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let shares = num_rows.div_ceil(8 * GROUP).next_multiple_of(threads);
    num_rows.div_ceil(shares).max(1)
}

/// A batched step's output, written in place from every task ([`QuantizedMatrix::forward`]):
/// its start and length.
struct Target(*mut f32, usize);

// SAFETY: the tasks that share a `Target` write disjoint ranges of it, and the output it
// points into outlives them (they end before `forward` returns).
unsafe impl Send for Target {}
unsafe impl Sync for Target {}

impl Target {
    /// Copies `values` to the output from `start` on. Callers write disjoint ranges.
    fn write(&self, start: usize, values: &[f32]) {
        assert!(
            start <= self.1 && values.len() <= self.1 - start,
            "a result outside the output"
        );
        // SAFETY: inside the output (asserted); no other task writes this range, and nothing
        // reads the output until every task has ended.
        unsafe {
            self.0
                .add(start)
                .copy_from_nonoverlapping(values.as_ptr(), values.len());
        }
    }
}

/// Panels per task of a generation step's product: at most [`PANELS_PER_TASK`], the most
/// that leaves no thread with more panels than another would have in an even split (dealing
/// the tasks out in turn). A 576-row projection (36 panels) in tasks of four was nine tasks
/// for two threads, one of them doing five while the other waited; now six tasks of six.
fn panels_per_task(num_panels: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let busiest = |per_task: usize| num_panels.div_ceil(per_task).div_ceil(threads) * per_task;
    (1..=PANELS_PER_TASK)
        .rev()
        .min_by_key(|&per_task| busiest(per_task))
        .unwrap_or(1)
}

impl<F: BlockFormat> QuantizedMatrix<F> {
    /// The reference arithmetic, one panel against one input row: per block the exact integer
    /// sum, then `fma(sum, dw·dx, acc)` (and `fma(mw, sx, extra)`); `acc + extra`.
    fn panel_scalar(
        &self,
        weights: &[u8],
        num_blocks: usize,
        input: &QuantizedRow,
    ) -> [f32; PANEL] {
        let weights_at = weights_at::<F>(self.half);
        std::array::from_fn(|row| {
            let (mut acc, mut extra) = (0.0_f32, 0.0_f32);
            for (index, block) in weights
                .chunks_exact(self.block_bytes())
                .take(num_blocks)
                .enumerate()
            {
                let values = &input.values[index * BLOCK..][..BLOCK];
                let sum: i32 = values
                    .iter()
                    .enumerate()
                    .map(|(k, &value)| F::weight(&block[weights_at..], row, k) * i32::from(value))
                    .sum();
                let scale = self.factor(block, 0, row) * input.scales[index];
                acc = (sum as f32).mul_add(scale, acc);
                if F::HAS_MINIMUM {
                    extra = self.factor(block, 1, row).mul_add(input.sums[index], extra);
                }
            }
            if F::HAS_MINIMUM {
                acc + extra
            } else {
                acc
            }
        })
    }
}

impl QuantizedRow {
    /// Whether the row holds `num_blocks` blocks (values, scales, sums, offsets).
    fn fits(&self, num_blocks: usize) -> bool {
        self.values.len() >= num_blocks * BLOCK
            && self.scales.len() >= num_blocks
            && self.sums.len() >= num_blocks
            && self.offsets.len() >= num_blocks
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
    quantize_row_with(row, has_fast_path())
}

/// [`quantize_row`], the blocks through the AVX2 helper (`simd`) or the portable loop: the
/// same bytes either way (test `quantized_rows_are_the_same_bytes_on_both_paths`).
fn quantize_row_with(row: &[f32], simd: bool) -> QuantizedRow {
    let num_blocks = row.len() / BLOCK;
    let mut quantized = QuantizedRow {
        scales: vec![0.0; num_blocks],
        sums: vec![0.0; num_blocks],
        offsets: vec![0; num_blocks],
        values: vec![0; num_blocks * BLOCK],
    };
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` only where `has_fast_path` found AVX2, FMA and F16C.
        unsafe { quantize_blocks_avx2(row, &mut quantized) };
        return quantized;
    }
    let _ = simd;
    quantize_blocks(row, &mut quantized);
    quantized
}

/// [`quantize_row`] with AVX2 in three passes over the row's blocks: the scales, then the
/// values and their sums, then the f16 rounding of eight blocks' scales and sums at once.
/// Block by block, each block's chain (its maximum, two divisions, the values, their sum, four
/// f16 conversions) ran one after the other: ~90 cycles a block, on the calling thread while
/// the other waited (the serial part of every product). The same bytes as the portable loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_blocks_avx2(row: &[f32], quantized: &mut QuantizedRow) {
    use std::arch::x86_64::*;
    let QuantizedRow {
        scales,
        sums,
        offsets,
        values,
    } = quantized;
    for (block, scale) in row.chunks_exact(BLOCK).zip(scales.iter_mut()) {
        *scale = block_max_abs_avx2(block) / 127.0;
    }
    // The inverses, in `sums` until the last pass writes the sums there.
    for (scale, inverse) in scales.iter().zip(sums.iter_mut()) {
        *inverse = if *scale > 0.0 { 1.0 / *scale } else { 0.0 };
    }
    // The values; each block's Σ q in `offsets` until the last pass.
    let blocks = row
        .chunks_exact(BLOCK)
        .zip(values.chunks_exact_mut(BLOCK))
        .zip(sums.iter())
        .zip(offsets.iter_mut());
    for (((block, values), &inverse), sum) in blocks {
        *sum = block_values_avx2(block, inverse, values);
    }
    // Scales and sums rounded to f16 as `f16::from_f32` rounds (to nearest, ties to even),
    // `Σ q · scale` as f16 times f16 in f32 (`half`'s product), rounded to f16 again.
    let round_f16 = |x: __m256| _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x));
    let eights = scales
        .chunks_exact_mut(8)
        .zip(sums.chunks_exact_mut(8))
        .zip(offsets.chunks_exact_mut(8));
    for ((scale, sum_out), offset) in eights {
        let scale16 = round_f16(_mm256_loadu_ps(scale.as_ptr()));
        let sum = _mm256_loadu_si256(offset.as_ptr().cast());
        let product = round_f16(_mm256_mul_ps(round_f16(_mm256_cvtepi32_ps(sum)), scale16));
        _mm256_storeu_ps(scale.as_mut_ptr(), scale16);
        _mm256_storeu_ps(sum_out.as_mut_ptr(), product);
        // −128 · Σ q (|Σ q| <= 32 · 128: no overflow either way).
        let shifted = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32::<7>(sum));
        _mm256_storeu_si256(offset.as_mut_ptr().cast(), shifted);
    }
    let done = scales.len() / 8 * 8;
    let rest = scales[done..]
        .iter_mut()
        .zip(&mut sums[done..])
        .zip(&mut offsets[done..]);
    for ((scale, sum_out), offset) in rest {
        let sum = *offset;
        (*scale, *sum_out, *offset) = rounded_factors(*scale, sum);
    }
}

/// A block's scale as stored (f16), `Σ q · scale` (f16 times f16, rounded to f16) and the
/// offset `−128 · Σ q`.
fn rounded_factors(scale: f32, sum: i32) -> (f32, f32, i32) {
    // Stored rounded to f16, as ggml's Q8_1 blocks (and candle's) hold them, so that
    // results match llama.cpp's and candle's products, not just approximate them.
    let scale = f16::from_f32(scale);
    (
        scale.to_f32(),
        (f16::from_f32(sum as f32) * scale).to_f32(),
        -128 * sum,
    )
}

/// Fills `quantized` (sized for `row`) block by block with the portable loop.
fn quantize_blocks(row: &[f32], quantized: &mut QuantizedRow) {
    let blocks = row
        .chunks_exact(BLOCK)
        .zip(quantized.values.chunks_exact_mut(BLOCK))
        .zip(quantized.scales.iter_mut())
        .zip(quantized.sums.iter_mut())
        .zip(quantized.offsets.iter_mut());
    for ((((block, values), scale_out), sum_out), offset_out) in blocks {
        let (Ok(block), Ok(values)) = (
            <&[f32; BLOCK]>::try_from(block),
            <&mut [i8; BLOCK]>::try_from(values),
        ) else {
            continue;
        };
        let (scale, sum) = quantize_block(block, values);
        (*scale_out, *sum_out, *offset_out) = rounded_factors(scale, sum);
    }
}

/// Adding 1.5·2²³ to a whole number in -127..=127 puts it in the low bits of the sum's
/// mantissa, exactly (`as i8` from f32 compiled to a scalar conversion and clamp per value).
const MAGIC: f32 = 12_582_912.0;

/// One block's 8-bit values; returns its scale (before rounding to f16) and the sum of the
/// values. The largest magnitude with NaNs passed over; each value `round(v / scale)`, half
/// away from zero, a NaN taken as 0 (as `as i8` takes it).
fn quantize_block(block: &[f32; BLOCK], values: &mut [i8; BLOCK]) -> (f32, i32) {
    // Eight lanes, then across them: the largest magnitude whatever the order (written
    // without `f32::max`, whose NaN rule is a branch, so that LLVM vectorizes it).
    let mut lanes = [0.0_f32; 8];
    for eight in block.chunks_exact(8) {
        for (lane, value) in lanes.iter_mut().zip(eight) {
            let magnitude = value.abs();
            if magnitude > *lane {
                *lane = magnitude;
            }
        }
    }
    let max_abs = lanes
        .iter()
        .fold(0.0_f32, |max, &lane| if lane > max { lane } else { max });
    let scale = max_abs / 127.0;
    let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
    for (q, &value) in values.iter_mut().zip(block) {
        let rounded = (value * inverse).round();
        let rounded = if rounded.is_nan() { 0.0 } else { rounded };
        *q = ((rounded + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32) as i8;
    }
    (scale, values.iter().map(|&q| i32::from(q)).sum())
}

/// [`quantize_block`]'s largest magnitude in four 8-lane vectors: the same maximum (`vmaxps`
/// passes over a NaN as the portable comparison does).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_max_abs_avx2(block: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    assert!(block.len() == BLOCK, "a block of {} values", block.len());
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let mut lanes = _mm256_setzero_ps();
    for i in 0..4 {
        let vector = _mm256_loadu_ps(block.as_ptr().add(8 * i));
        // `max_ps(a, b)` is `a > b ? a : b`: a NaN magnitude never replaces the lane.
        lanes = _mm256_max_ps(_mm256_and_ps(vector, magnitude), lanes);
    }
    // Across the lanes: none is a NaN and all are at least +0, so the order does not matter.
    let half_lanes = _mm_max_ps(
        _mm256_castps256_ps128(lanes),
        _mm256_extractf128_ps::<1>(lanes),
    );
    let half_lanes = _mm_max_ps(half_lanes, _mm_movehl_ps(half_lanes, half_lanes));
    _mm_cvtss_f32(_mm_max_ss(half_lanes, _mm_movehdup_ps(half_lanes)))
}

/// [`quantize_block`]'s values for a block whose scale's inverse is `inverse`, in four 8-lane
/// vectors; returns their sum. The same products, rounding half away from zero as `trunc`
/// plus the sign where the remainder is at least one half, the same `MAGIC` bits truncated to
/// bytes, and the sum from those bytes. A quarter of the time of the portable loop, which
/// LLVM left scalar in its rounding and sum.
// `i` indexes the four vectors and the values at once.
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn block_values_avx2(block: &[f32], inverse: f32, values: &mut [i8]) -> i32 {
    use std::arch::x86_64::*;
    assert!(
        block.len() == BLOCK && values.len() == BLOCK,
        "a block of {} values into {}",
        block.len(),
        values.len()
    );
    let inverse = _mm256_set1_ps(inverse);
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let (half, one, magic) = (
        _mm256_set1_ps(0.5),
        _mm256_set1_ps(1.0),
        _mm256_set1_ps(MAGIC),
    );
    let sign = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
    let magic_bits = _mm256_set1_epi32(MAGIC.to_bits() as i32);
    let mut bytes = [_mm256_setzero_si256(); 4];
    for i in 0..4 {
        let x = _mm256_mul_ps(_mm256_loadu_ps(block.as_ptr().add(8 * i)), inverse);
        let whole = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(x);
        let rest = _mm256_and_ps(_mm256_sub_ps(x, whole), magnitude);
        let up = _mm256_and_ps(
            _mm256_cmp_ps::<_CMP_GE_OQ>(rest, half),
            _mm256_or_ps(one, _mm256_and_ps(x, sign)),
        );
        let rounded = _mm256_add_ps(whole, up);
        let rounded = _mm256_and_ps(rounded, _mm256_cmp_ps::<_CMP_ORD_Q>(rounded, rounded));
        let bits = _mm256_sub_epi32(
            _mm256_castps_si256(_mm256_add_ps(rounded, magic)),
            magic_bits,
        );
        // The low byte of each, sign-extended, so that packing below truncates as `as i8`.
        bytes[i] = _mm256_srai_epi32::<24>(_mm256_slli_epi32::<24>(bits));
    }
    let packed = _mm256_packs_epi16(
        _mm256_packs_epi32(bytes[0], bytes[1]),
        _mm256_packs_epi32(bytes[2], bytes[3]),
    );
    // The packs work within 128-bit halves: put the eight 4-byte groups back in order.
    let packed = _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(values.as_mut_ptr().cast(), packed);
    // Σ q from the bytes: as unsigned q + 128, summed against zero in four 64-bit lanes.
    let offset = _mm256_xor_si256(packed, _mm256_set1_epi8(i8::MIN));
    let lane_sums = _mm256_sad_epu8(offset, _mm256_setzero_si256());
    let pair = _mm_add_epi64(
        _mm256_castsi256_si128(lane_sums),
        _mm256_extracti128_si256::<1>(lane_sums),
    );
    (_mm_cvtsi128_si64(pair) + _mm_extract_epi64::<1>(pair) - 128 * BLOCK as i64) as i32
}

fn f32_at(bytes: &[u8]) -> f32 {
    f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn f16_at(block: &[u8], offset: usize) -> f32 {
    f16::from_le_bytes([block[offset], block[offset + 1]]).to_f32()
}

impl BlockFormat for Q4_1 {
    const NAME: &'static str = "Q4_1";
    const HAS_MINIMUM: bool = true;
    const FILE_BLOCK_BYTES: usize = 20;
    const BLOCK_BYTES: usize = 24;
    /// 16 scales, 16 minimums, then four 64-byte groups: byte `4·row + i` of group `g` holds
    /// the row's weight `4g + i` in its low nibble and `16 + 4g + i` in its high nibble (the
    /// in-memory block's byte `4g + i`, as it is).
    const FACTORS: usize = 2;
    const WEIGHT_BYTES: usize = 4 * 64;
    const EMPTY: u8 = 0;

    fn repack(file_block: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&f16_at(file_block, 0).to_le_bytes());
        out.extend_from_slice(&f16_at(file_block, 2).to_le_bytes());
        out.extend_from_slice(&file_block[4..]);
    }

    fn pack(block: &[u8], row: usize, weights: &mut [u8]) {
        for group in 0..4 {
            weights[64 * group + 4 * row..][..4].copy_from_slice(&block[8 + 4 * group..][..4]);
        }
    }

    fn weight(weights: &[u8], row: usize, k: usize) -> i32 {
        let j = k % 16;
        let byte = weights[64 * (j / 4) + 4 * row + j % 4];
        i32::from(if k < 16 { byte & 0x0F } else { byte >> 4 })
    }
}

impl BlockFormat for Q8_0 {
    const NAME: &'static str = "Q8_0";
    const HAS_MINIMUM: bool = false;
    const FILE_BLOCK_BYTES: usize = 34;
    const BLOCK_BYTES: usize = 36;
    /// 16 scales, then eight 64-byte groups: byte `4·row + i` of group `g` holds the row's
    /// weight `4g + i` plus 128, as an unsigned byte (`vpdpbusd` multiplies unsigned by signed
    /// bytes; the activation row's `−128 · Σ q` undoes the shift).
    const FACTORS: usize = 1;
    const WEIGHT_BYTES: usize = 8 * 64;
    const EMPTY: u8 = 0x80;

    fn repack(file_block: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&f16_at(file_block, 0).to_le_bytes());
        out.extend_from_slice(&file_block[2..]);
    }

    fn pack(block: &[u8], row: usize, weights: &mut [u8]) {
        for group in 0..8 {
            let target = &mut weights[64 * group + 4 * row..][..4];
            for (byte, &weight) in target.iter_mut().zip(&block[4 + 4 * group..][..4]) {
                *byte = weight ^ 0x80;
            }
        }
    }

    fn weight(weights: &[u8], row: usize, k: usize) -> i32 {
        let byte = weights[64 * (k / 4) + 4 * row + k % 4];
        i32::from((byte ^ 0x80) as i8)
    }
}

// The SIMD kernels below read the panel and the input rows through raw pointers: the caller
// (`panel_group`) has checked that the panel holds `num_blocks` blocks and that every input
// row holds as many, and each kernel stays within those.

/// The pointers of `N` input rows.
#[cfg(target_arch = "x86_64")]
struct Rows<const N: usize> {
    values: [*const i8; N],
    scales: [*const f32; N],
    sums: [*const f32; N],
    offsets: [*const i32; N],
}

#[cfg(target_arch = "x86_64")]
impl<const N: usize> Rows<N> {
    #[inline(always)]
    fn new(inputs: [&QuantizedRow; N]) -> Self {
        Rows {
            values: std::array::from_fn(|n| inputs[n].values.as_ptr()),
            scales: std::array::from_fn(|n| inputs[n].scales.as_ptr()),
            sums: std::array::from_fn(|n| inputs[n].sums.as_ptr()),
            offsets: std::array::from_fn(|n| inputs[n].offsets.as_ptr()),
        }
    }

    /// Activations `4·group..4·group + 4` of block `block` of row `n`, as one 32-bit value.
    ///
    /// SAFETY: the row holds more than `block` blocks.
    #[inline(always)]
    unsafe fn four(&self, n: usize, block: usize, group: usize) -> i32 {
        self.values[n]
            .add(block * BLOCK + 4 * group)
            .cast::<i32>()
            .read_unaligned()
    }
}

/// Asks for the panel block `PREFETCH_BYTES` ahead, line by line (a hint: it cannot fault).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefetch_ahead(block: *const u8, block_bytes: usize) {
    let mut line = 0;
    while line < block_bytes {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            block.wrapping_add(PREFETCH_BYTES + line).cast(),
        );
        line += 64;
    }
}

/// AVX-512 VNNI: the 16 rows in one vector, `vpdpbusd` on 64 bytes.
// `n` indexes several arrays at once (sums, accumulators, the rows' pointers).
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
unsafe fn panel_avx512<F: BlockFormat, const N: usize, const HALF: bool>(
    weights: &[u8],
    inputs: [&QuantizedRow; N],
) -> [[f32; PANEL]; N] {
    use std::arch::x86_64::*;
    let (weights_at, block_bytes) = (weights_at::<F>(HALF), panel_block_bytes::<F>(HALF));
    let num_blocks = weights.len() / block_bytes;
    let rows = Rows::new(inputs);
    let nibbles = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); N];
    let mut extra = [_mm512_setzero_ps(); N];
    for b in 0..num_blocks {
        let block = weights.as_ptr().add(b * block_bytes);
        prefetch_ahead(block, block_bytes);
        macro_rules! group_at {
            ($g:expr) => {
                _mm512_loadu_si512(block.add(weights_at + 64 * $g).cast())
            };
        }
        // Two sums per input row, added at the end (integers: the same total in any order):
        // one chain of eight dependent `vpdpbusd` per block and row kept the kernel waiting on
        // their latency.
        let mut sums = [_mm512_setzero_si512(); N];
        let mut others = [_mm512_setzero_si512(); N];
        if !F::HAS_MINIMUM {
            for n in 0..N {
                sums[n] = _mm512_set1_epi32(*rows.offsets[n].add(b));
            }
        }
        if F::HAS_MINIMUM {
            for g in 0..4 {
                let packed = group_at!(g);
                let low = _mm512_and_si512(packed, nibbles);
                let high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibbles);
                for n in 0..N {
                    let x = _mm512_set1_epi32(rows.four(n, b, g));
                    sums[n] = _mm512_dpbusd_epi32(sums[n], low, x);
                    let x = _mm512_set1_epi32(rows.four(n, b, g + 4));
                    others[n] = _mm512_dpbusd_epi32(others[n], high, x);
                }
            }
        } else {
            for g in 0..8 {
                let w = group_at!(g);
                for n in 0..N {
                    let x = _mm512_set1_epi32(rows.four(n, b, g));
                    if g % 2 == 0 {
                        sums[n] = _mm512_dpbusd_epi32(sums[n], w, x);
                    } else {
                        others[n] = _mm512_dpbusd_epi32(others[n], w, x);
                    }
                }
            }
        }
        for n in 0..N {
            sums[n] = _mm512_add_epi32(sums[n], others[n]);
        }
        // Factors as f16 widen exactly: the same f32 values either way.
        let factors = |factor: usize| {
            if HALF {
                _mm512_cvtph_ps(_mm256_loadu_si256(block.add(2 * PANEL * factor).cast()))
            } else {
                _mm512_loadu_ps(block.add(4 * PANEL * factor).cast())
            }
        };
        let scales = factors(0);
        let minimums = if F::HAS_MINIMUM {
            factors(1)
        } else {
            _mm512_setzero_ps()
        };
        for n in 0..N {
            let scale = _mm512_mul_ps(scales, _mm512_set1_ps(*rows.scales[n].add(b)));
            acc[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[n]), scale, acc[n]);
            if F::HAS_MINIMUM {
                let sum = _mm512_set1_ps(*rows.sums[n].add(b));
                extra[n] = _mm512_fmadd_ps(minimums, sum, extra[n]);
            }
        }
    }
    let mut out = [[0.0_f32; PANEL]; N];
    for n in 0..N {
        let result = if F::HAS_MINIMUM {
            _mm512_add_ps(acc[n], extra[n])
        } else {
            acc[n]
        };
        _mm512_storeu_ps(out[n].as_mut_ptr(), result);
    }
    out
}

/// 256-bit kernels: each half of the panel (8 rows) in turn.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn panel_vnni<F: BlockFormat, const N: usize, const HALF: bool>(
    weights: &[u8],
    inputs: [&QuantizedRow; N],
) -> [[f32; PANEL]; N] {
    panel_256::<F, true, N, HALF>(weights, inputs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_avx2<F: BlockFormat, const N: usize, const HALF: bool>(
    weights: &[u8],
    inputs: [&QuantizedRow; N],
) -> [[f32; PANEL]; N] {
    panel_256::<F, false, N, HALF>(weights, inputs)
}

/// The body of [`panel_vnni`] (`VNNI`: `vpdpbusd`) and [`panel_avx2`] (`vpmaddubsw` and
/// `vpmaddwd`, whose 16-bit pair sums must not saturate: Q4_1's unsigned nibbles times signed
/// activations, at most 2·15·127 a pair and eight pairs summed (30,480); Q8_0's weights
/// magnitudes times the activations with the weights' signs, at most 2·128·127). The same
/// integers either way.
// `n` indexes several arrays at once (sums, accumulators, the rows' pointers).
#[allow(clippy::needless_range_loop)]
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn panel_256<F: BlockFormat, const VNNI: bool, const N: usize, const HALF: bool>(
    weights: &[u8],
    inputs: [&QuantizedRow; N],
) -> [[f32; PANEL]; N] {
    use std::arch::x86_64::*;
    let (weights_at, block_bytes) = (weights_at::<F>(HALF), panel_block_bytes::<F>(HALF));
    let num_blocks = weights.len() / block_bytes;
    let rows = Rows::new(inputs);
    let nibbles = _mm256_set1_epi8(0x0F);
    let shift = _mm256_set1_epi8(-128);
    let ones = _mm256_set1_epi16(1);
    let mut out = [[0.0_f32; PANEL]; N];
    for half in 0..2 {
        let offset = 32 * half;
        let mut acc = [_mm256_setzero_ps(); N];
        let mut extra = [_mm256_setzero_ps(); N];
        for b in 0..num_blocks {
            let block = weights.as_ptr().add(b * block_bytes);
            if half == 0 {
                prefetch_ahead(block, block_bytes);
            }
            macro_rules! group_at {
                ($g:expr) => {
                    _mm256_loadu_si256(block.add(weights_at + 64 * $g + offset).cast())
                };
            }
            macro_rules! x {
                ($n:expr, $g:expr) => {
                    _mm256_set1_epi32(rows.four($n, b, $g))
                };
            }
            // With VNNI, two sums per input row as in `panel_avx512`.
            let mut sums = [_mm256_setzero_si256(); N];
            let mut others = [_mm256_setzero_si256(); N];
            if F::HAS_MINIMUM {
                let mut pairs = [_mm256_setzero_si256(); N];
                for g in 0..4 {
                    let packed = group_at!(g);
                    let low = _mm256_and_si256(packed, nibbles);
                    let high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibbles);
                    for n in 0..N {
                        if VNNI {
                            sums[n] = _mm256_dpbusd_avx_epi32(sums[n], low, x!(n, g));
                            others[n] = _mm256_dpbusd_avx_epi32(others[n], high, x!(n, g + 4));
                        } else {
                            pairs[n] = _mm256_add_epi16(
                                pairs[n],
                                _mm256_add_epi16(
                                    _mm256_maddubs_epi16(low, x!(n, g)),
                                    _mm256_maddubs_epi16(high, x!(n, g + 4)),
                                ),
                            );
                        }
                    }
                }
                if !VNNI {
                    for n in 0..N {
                        sums[n] = _mm256_madd_epi16(pairs[n], ones);
                    }
                }
            } else {
                if VNNI {
                    for n in 0..N {
                        sums[n] = _mm256_set1_epi32(*rows.offsets[n].add(b));
                    }
                }
                for g in 0..8 {
                    let stored = group_at!(g);
                    if VNNI {
                        for n in 0..N {
                            if g % 2 == 0 {
                                sums[n] = _mm256_dpbusd_avx_epi32(sums[n], stored, x!(n, g));
                            } else {
                                others[n] = _mm256_dpbusd_avx_epi32(others[n], stored, x!(n, g));
                            }
                        }
                    } else {
                        let signed = _mm256_xor_si256(stored, shift);
                        let magnitudes = _mm256_abs_epi8(signed);
                        for n in 0..N {
                            let pairs = _mm256_maddubs_epi16(
                                magnitudes,
                                _mm256_sign_epi8(x!(n, g), signed),
                            );
                            sums[n] = _mm256_add_epi32(sums[n], _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
            }
            if VNNI {
                for n in 0..N {
                    sums[n] = _mm256_add_epi32(sums[n], others[n]);
                }
            }
            // This half's eight factors (f16 ones widen exactly).
            let factors = |factor: usize| {
                let slot = factor * PANEL + 8 * half;
                if HALF {
                    _mm256_cvtph_ps(_mm_loadu_si128(block.add(2 * slot).cast()))
                } else {
                    _mm256_loadu_ps(block.add(4 * slot).cast())
                }
            };
            let scales = factors(0);
            let minimums = if F::HAS_MINIMUM {
                factors(1)
            } else {
                _mm256_setzero_ps()
            };
            for n in 0..N {
                let scale = _mm256_mul_ps(scales, _mm256_set1_ps(*rows.scales[n].add(b)));
                acc[n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[n]), scale, acc[n]);
                if F::HAS_MINIMUM {
                    let sum = _mm256_set1_ps(*rows.sums[n].add(b));
                    extra[n] = _mm256_fmadd_ps(minimums, sum, extra[n]);
                }
            }
        }
        for n in 0..N {
            let result = if F::HAS_MINIMUM {
                _mm256_add_ps(acc[n], extra[n])
            } else {
                acc[n]
            };
            _mm256_storeu_ps(out[n].as_mut_ptr().add(8 * half), result);
        }
    }
    out
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

    /// Every kernel this CPU runs (the scalar one always), saying loudly which it cannot.
    fn kernels() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|kernel| {
                let runs = kernel.runs_here();
                if !runs {
                    eprintln!("NOT TESTED HERE: this CPU cannot run the {kernel:?} kernel");
                }
                runs
            })
            .collect()
    }

    /// `forward` of a Q4_1 or Q8_0 matrix given as file blocks.
    fn product(
        dtype: GgmlDType,
        data: &[u8],
        (rows, columns): (usize, usize),
        kernel: Kernel,
        input: &[f32],
        num_rows: usize,
    ) -> Vec<f32> {
        match dtype {
            GgmlDType::Q4_1 => Q4_1Matrix::with_kernel(data.to_vec(), rows, columns, kernel)
                .and_then(|m| m.forward(input, num_rows)),
            _ => Q8_0Matrix::with_kernel(data.to_vec(), rows, columns, kernel)
                .and_then(|m| m.forward(input, num_rows)),
        }
        .expect("forward")
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
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
    fn products_match_the_dequantized_weights_on_every_kernel() {
        // 70 rows: four whole panels and a partial one.
        let (rows, columns) = (70, 96);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (data, dequantized) = random_matrix(rows, columns, dtype);
            // One row (generation), a few (a batched step), many (a prompt chunk).
            for num_rows in [1, 5, 8, 13] {
                let input = random_input(num_rows * columns);
                let expected = reference(&dequantized, &input, rows, columns);
                for kernel in kernels() {
                    let actual = product(dtype, &data, (rows, columns), kernel, &input, num_rows);
                    assert_eq!(actual.len(), expected.len());
                    // 8-bit activations: each term is off by up to half a step (1/254 of its
                    // block's largest input), so the error of a row grows like √columns; a
                    // fault (nibble order, scale, minimum) is off by the size of the result.
                    let tolerance = 0.05 * (columns as f32).sqrt();
                    for (a, e) in actual.iter().zip(&expected) {
                        assert!(
                            (a - e).abs() < tolerance,
                            "{dtype:?} {a} vs {e} ({kernel:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_kernel_gives_the_scalar_kernels_bits() {
        // 40 rows: two whole panels and half of one; 320 columns: ten blocks. Both panel
        // layouts (factors as f16, as a Q4_1 or Q8_0 file's are; as f32, as K-quants' are):
        // the same values, so the same bits.
        let (rows, columns) = (40, 320);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (data, _) = random_matrix(rows, columns, dtype);
            for num_rows in [1, 2, 3, 4, 7, 9, 13, 40] {
                let input = random_input(num_rows * columns);
                let shape = (rows, columns);
                let scalar =
                    product_in(dtype, &data, shape, Kernel::Scalar, true, &input, num_rows);
                for half in [true, false] {
                    for kernel in kernels() {
                        let simd = product_in(dtype, &data, shape, kernel, half, &input, num_rows);
                        assert_eq!(
                            bits(&simd),
                            bits(&scalar),
                            "{dtype:?}, {num_rows} rows, {kernel:?}, f16 factors {half}"
                        );
                    }
                }
            }
        }
    }

    /// `forward` of a Q4_1 or Q8_0 matrix (file blocks) packed with f16 factors (`half`) or
    /// f32 ones.
    fn product_in(
        dtype: GgmlDType,
        data: &[u8],
        (rows, columns): (usize, usize),
        kernel: Kernel,
        half: bool,
        input: &[f32],
        num_rows: usize,
    ) -> Vec<f32> {
        match dtype {
            GgmlDType::Q4_1 => {
                Q4_1Matrix::packed(&Q4_1Matrix::repacked(data), rows, columns, kernel, half)
                    .and_then(|m| m.forward(input, num_rows))
            }
            _ => Q8_0Matrix::packed(&Q8_0Matrix::repacked(data), rows, columns, kernel, half)
                .and_then(|m| m.forward(input, num_rows)),
        }
        .expect("forward")
    }

    #[test]
    fn file_factors_are_packed_as_f16_and_k_quant_factors_as_f32() {
        let (rows, columns) = (20, 64);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (data, _) = random_matrix(rows, columns, dtype);
            let half = match dtype {
                GgmlDType::Q4_1 => Q4_1Matrix::new(data, rows, columns).map(|m| m.half),
                _ => Q8_0Matrix::new(data, rows, columns).map(|m| m.half),
            };
            assert_eq!(half, Ok(true), "{dtype:?}");
        }
        let (data, _) = random_matrix(rows, 256, GgmlDType::Q4K);
        let blocks = q4_k_as_q4_1(&data).expect("q4_k");
        let matrix = Q4_1Matrix::from_blocks(blocks, rows, 256).expect("matrix");
        assert!(!matrix.half, "d·scale of a Q4_K block is not an f16 value");
    }

    #[test]
    fn each_row_of_a_batch_is_bit_for_bit_its_product_alone() {
        // 150 weight rows: two full tasks and a partial one that ends in a partial panel.
        let (rows, columns) = (150, 96);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let (data, _) = random_matrix(rows, columns, dtype);
            for kernel in kernels() {
                for num_rows in [2, 3, 4, 5, 6, 9, 13] {
                    let input = random_input(num_rows * columns);
                    let batched = product(dtype, &data, (rows, columns), kernel, &input, num_rows);
                    for (row, alone_input) in input.chunks_exact(columns).enumerate() {
                        let alone = product(dtype, &data, (rows, columns), kernel, alone_input, 1);
                        assert_eq!(
                            bits(&batched[row * rows..][..rows]),
                            bits(&alone),
                            "{dtype:?} row {row} of {num_rows} ({kernel:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn q8_0_products_match_the_dequantized_weights_and_candle_on_every_kernel() {
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
        for num_rows in [1, 5, 8, 12] {
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
            for kernel in kernels() {
                let actual = product(
                    GgmlDType::Q8_0,
                    &data,
                    (rows, columns),
                    kernel,
                    &input,
                    num_rows,
                );
                assert_eq!(actual.len(), expected.len());
                let tolerance = 0.05 * (columns as f32).sqrt();
                for ((a, e), c) in actual.iter().zip(&expected).zip(&from_candle) {
                    assert!((a - e).abs() < tolerance, "{a} vs {e} ({kernel:?})");
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
        for kernel in kernels() {
            for num_rows in [1, 2, 4, 9] {
                let input = vec![1.0; 32 * num_rows];
                let actual = product(GgmlDType::Q8_0, &block, (1, 32), kernel, &input, num_rows);
                for value in actual {
                    assert!((value - expected).abs() < 0.1, "{value} ({kernel:?})");
                }
            }
        }
    }

    /// The embedding table is read one row at a time from the quantized matrix: each row must
    /// be exactly that row of candle's dequantized tensor (the values the f32 table held).
    #[test]
    fn a_row_is_bit_for_bit_that_row_of_the_dequantized_tensor() {
        let (rows, columns) = (19, 96);
        let (data, dequantized) = random_matrix(rows, columns, GgmlDType::Q4_1);
        let q4_1 = Q4_1Matrix::new(data, rows, columns).unwrap();
        let (data, q8_dequantized) = random_matrix(rows, columns, GgmlDType::Q8_0);
        let q8_0 = Q8_0Matrix::new(data, rows, columns).unwrap();
        for row in 0..rows {
            let expected = &dequantized[row * columns..(row + 1) * columns];
            assert_eq!(
                bits(&q4_1.row(row).unwrap()),
                bits(expected),
                "Q4_1 row {row}"
            );
            let expected = &q8_dequantized[row * columns..(row + 1) * columns];
            assert_eq!(
                bits(&q8_0.row(row).unwrap()),
                bits(expected),
                "Q8_0 row {row}"
            );
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
            assert_eq!(bits(&ours), bits(candles), "row {row}");
        }
        // And the products, on every kernel, against the dequantized weights.
        for num_rows in [1, 4, 6, 10] {
            let input = random_input(num_rows * columns);
            let expected = reference(&dequantized, &input, rows, columns);
            for kernel in kernels() {
                let blocks = q4_k_as_q4_1(&data).expect("convert");
                let matrix =
                    Q4_1Matrix::from_repacked(blocks, rows, columns, kernel).expect("matrix");
                let actual = matrix.forward(&input, num_rows).expect("forward");
                let tolerance = 0.05 * (columns as f32).sqrt();
                for (a, e) in actual.iter().zip(&expected) {
                    assert!((a - e).abs() < tolerance, "{a} vs {e} ({kernel:?})");
                }
            }
        }
        assert!(q4_k_as_q4_1(&data[..100]).is_err());
    }

    #[test]
    fn quantized_rows_are_llama_cpps_q8_1_blocks() {
        // Random values, exact ties (±63.5 of a step: rounded away from zero, as `roundf`),
        // zeros, and a block of all zeros.
        let mut row = random_input(4 * BLOCK);
        // (The largest magnitude 127: a scale of exactly 1.)
        row[3] = 63.5;
        row[4] = -127.0;
        row[5] = -63.5;
        row[2 * BLOCK..3 * BLOCK].fill(0.0);
        let quantized = quantize_row(&row);
        for (index, block) in row.chunks_exact(BLOCK).enumerate() {
            let max_abs = block.iter().fold(0.0_f32, |max, v| max.max(v.abs()));
            let scale = max_abs / 127.0;
            let inverse = if scale > 0.0 { 1.0 / scale } else { 0.0 };
            let values: Vec<i8> = block.iter().map(|v| (v * inverse).round() as i8).collect();
            let sum: i32 = values.iter().map(|&q| i32::from(q)).sum();
            assert_eq!(
                &quantized.values[index * BLOCK..][..BLOCK],
                values.as_slice()
            );
            assert_eq!(quantized.scales[index], f16::from_f32(scale).to_f32());
            assert_eq!(quantized.offsets[index], -128 * sum);
        }
        assert_eq!(quantized.values[3], 64);
        assert_eq!(quantized.values[5], -64);

        // A broken activation (NaN, infinity) quantizes as `as i8` takes it, to zeros.
        let mut broken = vec![0.5_f32; 2 * BLOCK];
        broken[1] = f32::NAN;
        broken[BLOCK + 7] = f32::INFINITY;
        let quantized = quantize_row(&broken);
        assert_eq!(quantized.values[1], 0);
        assert!(quantized.values[BLOCK..].iter().all(|&q| q == 0));
    }

    #[test]
    fn quantized_rows_are_the_same_bytes_on_both_paths() {
        if !has_fast_path() {
            eprintln!("SKIPPED: no AVX2/FMA on this CPU, only the portable quantizer runs");
            return;
        }
        let mut row = random_input(64 * BLOCK);
        // Block by block: ties of half a step each way, a NaN, ±infinity, subnormals (whose
        // inverse scale overflows), the largest floats, zeros of both signs, values far apart.
        let ties = [63.5_f32, -63.5, 0.5, -0.5, 1.5, -2.5, 127.0, -127.0];
        row[..ties.len()].copy_from_slice(&ties);
        row[BLOCK + 3] = f32::NAN;
        // A NaN with a payload: its bits through `MAGIC` would not be a zero byte.
        row[BLOCK + 4] = f32::from_bits(0x7FC0_0005);
        row[2 * BLOCK + 9] = f32::INFINITY;
        row[3 * BLOCK + 30] = f32::NEG_INFINITY;
        for (index, value) in row[4 * BLOCK..5 * BLOCK].iter_mut().enumerate() {
            *value =
                f32::from_bits(index as u32 * 37 + 1) * if index % 2 == 0 { 1.0 } else { -1.0 };
        }
        row[5 * BLOCK..6 * BLOCK].fill(f32::MAX);
        row[5 * BLOCK + 1] = -f32::MAX;
        row[6 * BLOCK..7 * BLOCK].fill(-0.0);
        row[7 * BLOCK..8 * BLOCK].fill(f32::NAN);
        row[8 * BLOCK] = 1.0e30;
        row[8 * BLOCK + 1] = 1.0e-30;
        for (index, value) in row[9 * BLOCK..10 * BLOCK].iter_mut().enumerate() {
            // Exact multiples of half a step: every value a tie or a whole number.
            *value = (index as f32 - 16.0) * 127.0 / 31.0 / 2.0;
        }
        // The SIMD path rounds the factors of eight blocks at once and the rest one by one:
        // the special blocks in both parts, in rows of 64, 18 (SmolLM2's 576), 10 and 7 blocks.
        let specials = &row[..10 * BLOCK];
        let mut specials_last = row[10 * BLOCK..18 * BLOCK].to_vec();
        specials_last.extend_from_slice(specials);
        let rows = [
            row.clone(),
            row[..18 * BLOCK].to_vec(),
            specials_last,
            specials.to_vec(),
            specials[..7 * BLOCK].to_vec(),
            row[3 * BLOCK..10 * BLOCK].to_vec(),
        ];
        for row in &rows {
            let (simd, portable) = (quantize_row_with(row, true), quantize_row_with(row, false));
            assert_eq!(simd.values, portable.values);
            assert_eq!(bits(&simd.scales), bits(&portable.scales));
            assert_eq!(bits(&simd.sums), bits(&portable.sums));
            assert_eq!(simd.offsets, portable.offsets);
        }
        let portable = quantize_row_with(&row, false);
        assert_eq!(
            &portable.values[..ties.len()],
            &[64, -64, 1, -1, 2, -3, 127, -127]
        );
    }

    #[test]
    fn prompt_rows_split_evenly_in_shares_of_at_most_32() {
        // Two threads: 39-44 token chat prompts, SmolLM2's 512-token chunks, odd sizes.
        for (rows, expected) in [(39, 20), (42, 21), (44, 22), (9, 5), (100, 25), (512, 32)] {
            assert_eq!(prompt_share(rows, 2), expected, "{rows} rows");
        }
        for rows in 9..600 {
            for threads in 1..5 {
                let share = prompt_share(rows, threads);
                assert!(share <= 8 * GROUP, "{rows} rows, {threads} threads");
                // Tasks dealt out in turn: the busiest thread has at most an even split of
                // the rows plus one share.
                let busiest = rows.div_ceil(share).div_ceil(threads) * share;
                assert!(
                    busiest <= rows.div_ceil(threads) + share,
                    "{rows}, {threads}"
                );
            }
        }
    }

    #[test]
    fn generation_tasks_leave_no_thread_more_panels_than_an_even_split() {
        // SmolLM2's projections on two threads: 576 rows (36 panels), 960 (60), 3,072 (192),
        // the 49,152-row output (3,072); then shapes that do not divide.
        for (panels, threads, expected) in [(36, 2, 6), (60, 2, 6), (192, 2, 8), (3072, 2, 8)] {
            assert_eq!(
                panels_per_task(panels, threads),
                expected,
                "{panels} panels"
            );
        }
        // Never a busier thread than the fixed tasks of four panels it replaced.
        for panels in 1..200 {
            for threads in 1..9 {
                let per_task = panels_per_task(panels, threads);
                assert!((1..=PANELS_PER_TASK).contains(&per_task));
                let busiest = |per_task: usize| {
                    panels.div_ceil(per_task).div_ceil(threads) * per_task.min(panels)
                };
                assert!(
                    busiest(per_task) <= busiest(4),
                    "{panels} panels on {threads} threads"
                );
            }
        }
        assert_eq!(panels_per_task(5, 0), 5);
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
