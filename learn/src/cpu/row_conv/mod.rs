//! The encoder's and decoder's training convolutions as custom burn operations on the CPU
//! backend (flex), computed directly, with hand-written backward passes.
//!
//! Written with burn's tensor operations, a strided convolution on channels-last rows is a
//! gather (im2col), a GEMM and a bias add, and its transposed twin a GEMM and a scatter-add:
//! every one of them is a node of the autodiff graph and a large intermediate matrix (the
//! gathered patches, the per-tap contributions), the scatter-add runs on one thread, and the
//! gradient of the gather is another scatter-add. Here each convolution, with its bias and its
//! activation, is one operation, and apart from one buffer kept between calls (the per-pixel
//! contributions of a layer with few output channels) no pass allocates more than its output:
//!
//! - [`conv3x3_stride2_rows`]: a 3×3, stride-2, padding-1 convolution;
//! - [`up_conv4x4_stride2_rows`]: a 4×4, stride-2, padding-1 transposed convolution.
//!
//! Both relate a small map to one twice as high and wide: tap `(ky, kx)` joins small pixel
//! `(y, x)` and large pixel `(2y + ky − 1, 2x + kx − 1)` (see [`Stride2`]). The convolution
//! reads the large map into the small one, the transposed convolution the small map into the
//! large one, and each one's input gradient is the other direction. So three kernels do all
//! the work:
//!
//! - [`gather_small`]: every small pixel sums, over its taps, the large pixel under the tap
//!   times the tap's matrix (the convolution's forward pass, the transposed convolution's
//!   input gradient);
//! - [`gather_large`]: every large pixel sums over the (at most four) small pixels whose taps
//!   reach it (the transposed convolution's forward pass, the convolution's input gradient);
//! - [`tap_outer_products`]: per tap, the sum over pixel pairs of their outer products (both
//!   kernel gradients).
//!
//! Each output value is summed by one task in a fixed order, so results do not depend on the
//! thread count; rows are spread over the rayon pool. SIMD comes from [`pulp`] (AVX-512,
//! AVX2+FMA or scalar, chosen at run time): the sums over channels are fused multiply-adds on
//! whole vectors, held in registers. The operations are a burn backend extension: the
//! `Dispatch` front end routes them to flex or to autodiff over flex. GPU backends keep burn's
//! own convolutions (see [`crate::conv::cpu_kernels_on`]).
//!
//! Kernel layouts are [`crate::conv::StridedConv`]'s and [`crate::conv::UpConv`]'s GEMM
//! matrices.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// Rows per task when summing columns: fixed, so the summation order (and the result) does not
/// depend on the thread count.
const ROWS_PER_PARTIAL_SUM: usize = 1024;

/// Image ranges of [`tap_outer_products`]: a fixed number, summed in order, so the result does
/// not depend on the thread count.
const IMAGE_PARTS: usize = 4;

/// Output channels few enough for [`gather_large`] to go through every small pixel's
/// contributions.
const FEW_CHANNELS: usize = 4;

/// Most SIMD vectors an accumulator of [`multiply_accumulate`] holds in registers.
const MAX_VECTORS: usize = 8;

/// What follows a convolution's bias, fused into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Nothing.
    Identity,
    /// `max(x, 0)`.
    Relu,
    /// `sigmoid(x) − 0.5`: an image in `(−0.5, 0.5)`, as the decoder outputs it.
    CenteredSigmoid,
}

impl Activation {
    #[inline(always)]
    fn apply(self, value: f32) -> f32 {
        match self {
            Self::Identity => value,
            Self::Relu => value.max(0.0),
            Self::CenteredSigmoid => 1.0 / (1.0 + (-value).exp()) - 0.5,
        }
    }

    /// The derivative at the point whose output is `output`.
    #[inline(always)]
    fn slope(self, output: f32) -> f32 {
        match self {
            Self::Identity => 1.0,
            Self::Relu => {
                if output > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::CenteredSigmoid => {
                let sigmoid = output + 0.5;
                sigmoid * (1.0 - sigmoid)
            }
        }
    }
}

/// Convolutions on channels-last rows, with bias and activation fused (see the module docs).
#[backend_extension(Flex, Autodiff)]
pub trait RowConvOps: Backend {
    /// A 3×3, stride-2, padding-1 convolution, or (`transposed`) a 4×4, stride-2, padding-1
    /// transposed convolution; [`conv3x3_stride2_rows`] and [`up_conv4x4_stride2_rows`] call it.
    ///
    /// # Shapes
    /// - `input`: `[B·H·W, C_in]` (H, W even unless `transposed`)
    /// - `kernel`: `[(ky, kx, C_in), C_out]` = `[9·C_in, C_out]`, or (`transposed`)
    ///   `[C_in, (ky, kx, C_out)]` = `[C_in, 16·C_out]`
    /// - `bias`: `[C_out]`
    /// - output: `[B·H/2·W/2, C_out]`, or (`transposed`) `[B·2H·2W, C_out]`
    #[allow(clippy::too_many_arguments)]
    fn stride2_conv_rows(
        input: FloatTensor<Self>,
        kernel: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        batch: usize,
        height: usize,
        width: usize,
        activation: Activation,
        transposed: bool,
    ) -> FloatTensor<Self>;
}

/// A 3×3, stride-2, padding-1 convolution on tensors of the CPU backend (plain or autodiff).
///
/// # Shapes
/// - `input`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]` (H, W even)
/// - `kernel`: `[(ky, kx, C_in), C_out]` = `[9·C_in, C_out]`, `bias`: `[C_out]`
/// - output: `[B·H/2·W/2, C_out]`
pub fn conv3x3_stride2_rows(
    input: Tensor<2>,
    kernel: Tensor<2>,
    bias: Tensor<1>,
    dims: [usize; 3],
    activation: Activation,
) -> Tensor<2> {
    stride2_conv_rows([input, kernel], bias, dims, activation, false)
}

/// A 4×4, stride-2, padding-1 transposed convolution on tensors of the CPU backend (plain or
/// autodiff).
///
/// # Shapes
/// - `input`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]`
/// - `kernel`: `[C_in, (ky, kx, C_out)]` = `[C_in, 16·C_out]`, `bias`: `[C_out]`
/// - output: `[B·2H·2W, C_out]`
pub fn up_conv4x4_stride2_rows(
    input: Tensor<2>,
    kernel: Tensor<2>,
    bias: Tensor<1>,
    dims: [usize; 3],
    activation: Activation,
) -> Tensor<2> {
    stride2_conv_rows([input, kernel], bias, dims, activation, true)
}

fn stride2_conv_rows(
    [input, kernel]: [Tensor<2>; 2],
    bias: Tensor<1>,
    [batch, height, width]: [usize; 3],
    activation: Activation,
    transposed: bool,
) -> Tensor<2> {
    Tensor::from_dispatch(<Dispatch as RowConvOps>::stride2_conv_rows(
        input.into_dispatch(),
        kernel.into_dispatch(),
        bias.into_dispatch(),
        batch,
        height,
        width,
        activation,
        transposed,
    ))
}

/// A tensor's values, contiguous (copied only if the tensor is a strided view).
fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(values) => std::borrow::Cow::Borrowed(values),
        None => std::borrow::Cow::Owned(tensor.to_contiguous().storage::<f32>().to_vec()),
    }
}

/// A new `shape` tensor, zero-filled, then written by `fill`. Built from a `Vec<f32>`, which
/// burn takes over as it is (`FlexTensor::empty` would allocate bytes and copy them to a new,
/// aligned allocation).
fn new_tensor<const D: usize>(shape: [usize; D], fill: impl FnOnce(&mut [f32])) -> FlexTensor {
    let mut values = vec![0.0; shape.iter().product()];
    fill(&mut values);
    from_values(values, shape)
}

fn from_values<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Columns of a `[rows, columns]` tensor.
fn columns(tensor: &FlexTensor) -> usize {
    tensor.layout().shape()[1]
}

/// A small map and a large one twice as high and wide, related by a stride-2, padding-1 kernel
/// of `kernel × kernel` taps: tap `(ky, kx)` joins small pixel `(y, x)` and large pixel
/// `(2y + ky − 1, 2x + kx − 1)` (when inside the large map).
#[derive(Debug, Clone, Copy)]
struct Stride2 {
    batch: usize,
    /// The small map's `[height, width]`.
    small: [usize; 2],
    /// Taps a side: 3 (the convolution) or 4 (the transposed convolution).
    kernel: usize,
    /// The instruction set the kernels run with.
    arch: Arch,
}

impl Stride2 {
    fn taps(&self) -> usize {
        self.kernel * self.kernel
    }

    fn small_pixels(&self) -> usize {
        self.batch * self.small[0] * self.small[1]
    }

    fn large_pixels(&self) -> usize {
        4 * self.small_pixels()
    }

    /// Index of small pixel `(y, x)` of `image`.
    fn small_index(&self, image: usize, y: usize, x: usize) -> usize {
        (image * self.small[0] + y) * self.small[1] + x
    }

    /// Index of large pixel `(y, x)` of `image`.
    fn large_index(&self, image: usize, y: usize, x: usize) -> usize {
        (image * 2 * self.small[0] + y) * 2 * self.small[1] + x
    }

    /// The patch of small pixel `(y, x)` of `image`: the `channels` values of the large pixel
    /// under each of its taps, in tap order, zeros where a tap falls outside the large map.
    #[inline(always)]
    fn fill_patch(
        &self,
        large: &[f32],
        channels: usize,
        [image, y, x]: [usize; 3],
        patch: &mut [f32],
    ) {
        let [height, width] = self.small;
        let run = self.kernel * channels;
        // Under one kernel row the taps read large columns 2x − 1 ..= 2x + kernel − 2: one
        // run of consecutive values when all are inside the map.
        let inside = x >= 1 && 2 * x + self.kernel - 2 < 2 * width;
        for (ky, row) in patch.chunks_exact_mut(run).enumerate() {
            match tap_source(y, ky, 2 * height) {
                None => row.fill(0.0),
                Some(large_y) if inside => {
                    let at = self.large_index(image, large_y, 2 * x - 1) * channels;
                    row.copy_from_slice(&large[at..at + run]);
                }
                Some(large_y) => {
                    for (kx, values) in row.chunks_exact_mut(channels).enumerate() {
                        match tap_source(x, kx, 2 * width) {
                            Some(large_x) => {
                                let at = self.large_index(image, large_y, large_x) * channels;
                                values.copy_from_slice(&large[at..at + channels]);
                            }
                            None => values.fill(0.0),
                        }
                    }
                }
            }
        }
    }
}

/// Large row (or column) joined to small row `small` by tap `k`, if inside the `len` rows of
/// the large map.
fn tap_source(small: usize, k: usize, len: usize) -> Option<usize> {
    (2 * small + k).checked_sub(1).filter(|&large| large < len)
}

/// Small rows (or columns) joined to large row `large` by a tap of a `kernel`-tap side (3 or
/// 4), with the tap: the `(small, k)` with `2·small + k − 1 = large` inside the `len` small
/// rows; at most two, the first `count` of the array.
fn tap_readers(large: usize, kernel: usize, len: usize) -> ([(usize, usize); 2], usize) {
    let mut readers = [(0, 0); 2];
    let mut count = 0;
    // k ≡ large + 1 (mod 2), k ≤ large + 1.
    let mut k = (large + 1) % 2;
    while k < kernel && k <= large + 1 {
        let small = (large + 1 - k) / 2;
        if small < len {
            readers[count] = (small, k);
            count += 1;
        }
        k += 2;
    }
    (readers, count)
}

/// One `[from, to]` matrix per tap, and the same matrices transposed, `[to, from]`.
#[derive(Debug, Clone)]
struct TapMatrices {
    per_tap: Vec<f32>,
    transposed: Vec<f32>,
    from: usize,
    to: usize,
}

impl TapMatrices {
    /// From `per_tap`, `[taps, from, to]`.
    fn new(per_tap: Vec<f32>, [from, to]: [usize; 2]) -> Self {
        let transposed = transpose_blocks(&per_tap, [from, to]);
        Self {
            per_tap,
            transposed,
            from,
            to,
        }
    }

    /// The matrices the other way round: `[to, from]` per tap.
    fn reversed(self) -> Self {
        Self {
            per_tap: self.transposed,
            transposed: self.per_tap,
            from: self.to,
            to: self.from,
        }
    }

    fn len(&self) -> usize {
        self.from * self.to
    }
}

/// Every `[rows, columns]` block of `blocks` transposed.
fn transpose_blocks(blocks: &[f32], [rows, columns]: [usize; 2]) -> Vec<f32> {
    let mut transposed = vec![0.0; blocks.len()];
    for (block, out) in blocks
        .chunks_exact(rows * columns)
        .zip(transposed.chunks_exact_mut(rows * columns))
    {
        for (r, row) in block.chunks_exact(columns).enumerate() {
            for (c, value) in row.iter().enumerate() {
                out[c * rows + r] = *value;
            }
        }
    }
    transposed
}

/// `[a, b, c]` → `[b, a, c]`.
fn swap_outer(values: &[f32], [a, b, c]: [usize; 3]) -> Vec<f32> {
    let mut swapped = vec![0.0; values.len()];
    for i in 0..a {
        for j in 0..b {
            swapped[(j * a + i) * c..][..c].copy_from_slice(&values[(i * b + j) * c..][..c]);
        }
    }
    swapped
}

/// Calls `function::<N>(args)` with `N` the channel count when it is one the model uses, so the
/// per-pixel loops are unrolled for it; `N = 0` (the count read at run time) otherwise.
macro_rules! for_channels {
    ($channels:expr, $function:ident($($arg:expr),* $(,)?)) => {
        match $channels {
            3 => $function::<3>($($arg),*),
            16 => $function::<16>($($arg),*),
            32 => $function::<32>($($arg),*),
            64 => $function::<64>($($arg),*),
            _ => $function::<0>($($arg),*),
        }
    };
}

/// `N` if the channel count is known at compile time, else `channels`.
#[inline(always)]
fn fixed<const N: usize>(channels: usize) -> usize {
    if N == 0 { channels } else { N }
}

/// `sum += Σ_k source[k] · matrix[k, ..]` for a `[source.len(), sum.len()]` `matrix`. When the
/// length of `sum` (`N`, if known at compile time) is a whole number of SIMD vectors, the sum is
/// held in registers and every row of the matrix is one fused multiply-add per vector.
#[inline(always)]
fn multiply_accumulate<S: Simd, const N: usize>(
    simd: S,
    sum: &mut [f32],
    source: &[f32],
    matrix: &[f32],
) {
    let lanes = size_of::<S::f32s>() / size_of::<f32>();
    let n = fixed::<N>(sum.len());
    if !n.is_multiple_of(lanes) || n / lanes > MAX_VECTORS {
        for (value, row) in source.iter().zip(matrix.chunks_exact(n)) {
            for (sum, weight) in sum.iter_mut().zip(row) {
                *sum += value * weight;
            }
        }
        return;
    }
    let (sum, _) = S::as_mut_simd_f32s(&mut sum[..n]);
    let (matrix, _) = S::as_simd_f32s(matrix);
    // The vector count as a constant (folded when `N` is), so the accumulators are an array
    // the compiler keeps in registers; with few vectors, several partial sums over interleaved
    // rows keep enough fused multiply-adds in flight.
    match n / lanes {
        1 => multiply_accumulate_vectors::<S, 1, 4>(simd, sum, source, matrix),
        2 => multiply_accumulate_vectors::<S, 2, 4>(simd, sum, source, matrix),
        3 => multiply_accumulate_vectors::<S, 3, 2>(simd, sum, source, matrix),
        4 => multiply_accumulate_vectors::<S, 4, 2>(simd, sum, source, matrix),
        5 => multiply_accumulate_vectors::<S, 5, 1>(simd, sum, source, matrix),
        6 => multiply_accumulate_vectors::<S, 6, 1>(simd, sum, source, matrix),
        7 => multiply_accumulate_vectors::<S, 7, 1>(simd, sum, source, matrix),
        _ => multiply_accumulate_vectors::<S, MAX_VECTORS, 1>(simd, sum, source, matrix),
    }
}

/// [`multiply_accumulate`] on `V` vectors, rows taken `P` at a time into `P` partial sums,
/// added in order at the end.
#[inline(always)]
fn multiply_accumulate_vectors<S: Simd, const V: usize, const P: usize>(
    simd: S,
    sum: &mut [S::f32s],
    source: &[f32],
    matrix: &[S::f32s],
) {
    let Some(sum) = sum.first_chunk_mut::<V>() else {
        return;
    };
    let (rows, _) = matrix.as_chunks::<V>();
    let rows = &rows[..source.len().min(rows.len())];
    let mut partials = [[simd.splat_f32s(0.0); V]; P];
    partials[0] = *sum;
    let (row_groups, rest_rows) = rows.as_chunks::<P>();
    let (value_groups, rest_values) = source[..rows.len()].as_chunks::<P>();
    for (values, rows) in value_groups.iter().zip(row_groups) {
        for p in 0..P {
            let value = simd.splat_f32s(values[p]);
            for v in 0..V {
                partials[p][v] = simd.mul_add_e_f32s(value, rows[p][v], partials[p][v]);
            }
        }
    }
    for (value, row) in rest_values.iter().zip(rest_rows) {
        let value = simd.splat_f32s(*value);
        for v in 0..V {
            partials[0][v] = simd.mul_add_e_f32s(value, row[v], partials[0][v]);
        }
    }
    let (total, rest) = partials.split_at_mut(1);
    for partial in rest {
        for (total, value) in total[0].iter_mut().zip(partial) {
            *total = simd.add_f32s(*total, *value);
        }
    }
    *sum = total[0];
}

/// How an output map starts and ends: with `bias` (else zero), through `activation`.
#[derive(Debug, Clone, Copy)]
struct Epilogue<'a> {
    bias: Option<&'a [f32]>,
    activation: Activation,
}

impl Epilogue<'_> {
    const NONE: Epilogue<'static> = Epilogue {
        bias: None,
        activation: Activation::Identity,
    };

    #[inline(always)]
    fn start(&self, pixel: &mut [f32]) {
        if let Some(bias) = self.bias {
            pixel.copy_from_slice(bias);
        }
    }

    #[inline(always)]
    fn finish(&self, pixel: &mut [f32]) {
        if self.activation != Activation::Identity {
            for value in pixel.iter_mut() {
                *value = self.activation.apply(*value);
            }
        }
    }
}

/// Every small pixel sums, over its taps inside the large map, the large pixel under the tap
/// (`matrices.from` values) times the tap's matrix, into `small` (`[pixels, matrices.to]`,
/// zero).
fn gather_small(
    large: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    small: &mut [f32],
) {
    for_channels!(
        matrices.to,
        gather_rows(
            large,
            matrices,
            geometry,
            epilogue,
            Direction::IntoSmall,
            small
        )
    );
}

/// Which map a [`GatherRow`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// [`gather_small`]: rows of the small map, from the large one.
    IntoSmall,
    /// [`gather_large`]: rows of the large map, from the small one.
    IntoLarge,
}

/// [`gather_small`] or [`gather_large`] with `N` output channels (`0`: read at run time): one
/// task per output row.
fn gather_rows<const N: usize>(
    source: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    direction: Direction,
    out: &mut [f32],
) {
    let (out_pixels, source_pixels, row_pixels) = match direction {
        Direction::IntoSmall => (
            geometry.small_pixels(),
            geometry.large_pixels(),
            geometry.small[1],
        ),
        Direction::IntoLarge => (
            geometry.large_pixels(),
            geometry.small_pixels(),
            2 * geometry.small[1],
        ),
    };
    debug_assert_eq!(out.len(), out_pixels * matrices.to);
    debug_assert_eq!(source.len(), source_pixels * matrices.from);
    out.par_chunks_mut(row_pixels * matrices.to)
        .enumerate()
        .for_each(|(row_index, row)| {
            geometry.arch.dispatch(GatherRow::<N> {
                source,
                matrices,
                geometry,
                epilogue,
                direction,
                row_index,
                row,
            })
        });
}

/// One output row of [`gather_rows`], compiled for the instruction set it is dispatched to.
struct GatherRow<'a, const N: usize> {
    source: &'a [f32],
    matrices: &'a TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'a>,
    direction: Direction,
    row_index: usize,
    row: &'a mut [f32],
}

impl<const N: usize> WithSimd for GatherRow<'_, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match self.direction {
            Direction::IntoSmall => self.small_row(simd),
            Direction::IntoLarge => self.large_row(simd),
        }
    }
}

impl<const N: usize> GatherRow<'_, N> {
    /// Every small pixel of the row: its patch times all the taps' matrices.
    #[inline(always)]
    fn small_row<S: Simd>(self, simd: S) {
        let (source, matrices, geometry, epilogue) =
            (self.source, self.matrices, self.geometry, self.epilogue);
        let (row_index, row) = (self.row_index, self.row);
        let (from, to) = (matrices.from, fixed::<N>(matrices.to));
        let height = geometry.small[0];
        let (image, y) = (row_index / height, row_index % height);
        // Whole SIMD vectors of output channels: blocks of pixels first (the rest one by one).
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        macro_rules! blocks {
            ($vectors:literal, $pixels:literal) => {
                small_blocks::<S, $vectors, $pixels>(
                    simd,
                    matrices,
                    geometry,
                    epilogue,
                    [image, y],
                    source,
                    &mut *row,
                )
            };
        }
        let done = match (to.is_multiple_of(lanes), to / lanes) {
            (true, 1) => blocks!(1, 8),
            (true, 2) => blocks!(2, 8),
            (true, 3) => blocks!(3, 6),
            (true, 4) => blocks!(4, 4),
            _ => 0,
        };
        if done * to == row.len() {
            return;
        }
        // The pixel's patch: the large pixels under all its taps, zeros outside the map, so
        // the whole sum is one product with the `[(taps, from), to]` matrices.
        let mut patch = vec![0.0; geometry.taps() * from];
        for (x, pixel) in row.chunks_exact_mut(to).enumerate().skip(done) {
            epilogue.start(pixel);
            geometry.fill_patch(source, from, [image, y, x], &mut patch);
            multiply_accumulate::<S, N>(simd, pixel, &patch, &matrices.per_tap);
            epilogue.finish(pixel);
        }
    }

    /// Every large pixel of the row: the small pixels that reach it, times their taps' matrices.
    #[inline(always)]
    fn large_row<S: Simd>(self, simd: S) {
        let (source, matrices, geometry, epilogue) =
            (self.source, self.matrices, self.geometry, self.epilogue);
        let (row_index, row) = (self.row_index, self.row);
        let (from, to) = (matrices.from, fixed::<N>(matrices.to));
        let [height, width] = geometry.small;
        let kernel = geometry.kernel;
        let (image, large_y) = (row_index / (2 * height), row_index % (2 * height));
        let (row_readers, row_count) = tap_readers(large_y, kernel, height);
        for (large_x, pixel) in row.chunks_exact_mut(to).enumerate() {
            epilogue.start(pixel);
            let (readers, count) = tap_readers(large_x, kernel, width);
            for &(y, ky) in &row_readers[..row_count] {
                for &(x, kx) in &readers[..count] {
                    let values = &source[geometry.small_index(image, y, x) * from..][..from];
                    let tap = (ky * kernel + kx) * matrices.len();
                    multiply_accumulate::<S, N>(
                        simd,
                        pixel,
                        values,
                        &matrices.per_tap[tap..tap + matrices.len()],
                    );
                }
            }
            epilogue.finish(pixel);
        }
    }
}

/// The first whole blocks of `PIXELS` small pixels of a row of [`gather_small`], `V` SIMD
/// vectors of output channels each: every row of the tap matrices is loaded once for the
/// block, and the block's sums stay in registers. Returns the pixels done.
#[inline(always)]
fn small_blocks<S: Simd, const V: usize, const PIXELS: usize>(
    simd: S,
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    [image, y]: [usize; 2],
    large: &[f32],
    row: &mut [f32],
) -> usize {
    let from = matrices.from;
    let to = matrices.to;
    let patch_len = geometry.taps() * from;
    let width = geometry.small[1];
    let (matrix, _) = S::as_simd_f32s(&matrices.per_tap);
    let (matrix, _) = matrix.as_chunks::<V>();
    let matrix = &matrix[..patch_len.min(matrix.len())];
    let mut patches = vec![0.0; PIXELS * patch_len];
    let mut x = 0;
    while x + PIXELS <= width {
        for (p, patch) in patches.chunks_exact_mut(patch_len).enumerate() {
            geometry.fill_patch(large, from, [image, y, x + p], patch);
        }
        let block = &mut row[x * to..(x + PIXELS) * to];
        for pixel in block.chunks_exact_mut(to) {
            epilogue.start(pixel);
        }
        {
            let (sums, _) = S::as_mut_simd_f32s(block);
            let (sums, _) = sums.as_chunks_mut::<V>();
            let windows: [&[f32]; PIXELS] =
                std::array::from_fn(|p| &patches[p * patch_len..][..matrix.len()]);
            let mut accumulators: [[S::f32s; V]; PIXELS] = std::array::from_fn(|p| {
                if epilogue.bias.is_some() {
                    sums[p]
                } else {
                    [simd.splat_f32s(0.0); V]
                }
            });
            for (k, weights) in matrix.iter().enumerate() {
                for (p, window) in windows.iter().enumerate() {
                    let value = simd.splat_f32s(window[k]);
                    for v in 0..V {
                        accumulators[p][v] =
                            simd.mul_add_e_f32s(value, weights[v], accumulators[p][v]);
                    }
                }
            }
            for (sum, accumulator) in sums.iter_mut().zip(accumulators) {
                *sum = accumulator;
            }
        }
        for pixel in block.chunks_exact_mut(to) {
            epilogue.finish(pixel);
        }
        x += PIXELS;
    }
    x
}

/// Every large pixel sums, over the (at most four) small pixels whose taps reach it, the small
/// pixel (`matrices.from` values) times the tap's matrix, into `large` (`[pixels,
/// matrices.to]`, zero).
fn gather_large(
    small: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    large: &mut [f32],
) {
    if matrices.to <= FEW_CHANNELS {
        gather_large_by_contributions(small, matrices, geometry, epilogue, large);
        return;
    }
    for_channels!(
        matrices.to,
        gather_rows(
            small,
            matrices,
            geometry,
            epilogue,
            Direction::IntoLarge,
            large
        )
    );
}

/// Every small pixel's contributions to all its taps, kept between calls so the buffer's pages
/// are not faulted in again on every training step.
static CONTRIBUTIONS: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// [`gather_large`] with few output channels: a pixel's sums would be a few lanes of a vector.
/// Instead every small pixel's contributions to all its taps, `[taps · to]` values, are one
/// product with the `[from, taps · to]` kernel (whole vectors), computed once. Every large
/// row then adds, for each of the (at most two) small rows that reach it, each small pixel's
/// contributions under that kernel row: one run of consecutive values onto consecutive large
/// pixels, no per-pixel search for the taps.
fn gather_large_by_contributions(
    small: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    large: &mut [f32],
) {
    let (from, to, taps) = (matrices.from, matrices.to, geometry.taps());
    let stride = taps * to;
    let kernel = swap_outer(&matrices.per_tap, [taps, from, to]);
    let mut contributions = CONTRIBUTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    contributions.resize(geometry.small_pixels() * stride, 0.0);
    let small_row = geometry.small[1];
    contributions
        .par_chunks_mut(small_row * stride)
        .zip(small.par_chunks(small_row * from))
        .for_each(|(contributions, pixels)| {
            geometry.arch.dispatch(Contributions {
                pixels,
                kernel: &kernel,
                from,
                contributions,
            })
        });
    let contributions = &contributions[..];
    let [height, width] = geometry.small;
    let kernel_side = geometry.kernel;
    large
        .par_chunks_mut(2 * width * to)
        .enumerate()
        .with_min_len(32)
        .for_each_init(Vec::new, |padded, (row_index, row)| {
            let (image, large_y) = (row_index / (2 * height), row_index % (2 * height));
            let (row_readers, row_count) = tap_readers(large_y, kernel_side, height);
            // The large row with one pixel of margin on each side: small pixel x's taps of
            // one kernel row reach large pixels 2x − 1 ..= 2x + side − 2, `side · to`
            // consecutive values, its contributions for that kernel row as they lie.
            padded.clear();
            padded.resize((2 * width + 2) * to, 0.0);
            for &(y, ky) in &row_readers[..row_count] {
                let first = geometry.small_index(image, y, 0) * stride + ky * kernel_side * to;
                for x in 0..width {
                    let from = &contributions[first + x * stride..][..kernel_side * to];
                    for (sum, value) in padded[2 * x * to..][..kernel_side * to]
                        .iter_mut()
                        .zip(from)
                    {
                        *sum += value;
                    }
                }
            }
            for (pixel, sums) in row.chunks_exact_mut(to).zip(padded[to..].chunks_exact(to)) {
                epilogue.start(pixel);
                for (value, sum) in pixel.iter_mut().zip(sums) {
                    *value += sum;
                }
                epilogue.finish(pixel);
            }
        });
}

/// One row of small pixels' contributions, compiled for the instruction set it is dispatched
/// to.
struct Contributions<'a> {
    pixels: &'a [f32],
    /// `[from, taps · to]`.
    kernel: &'a [f32],
    from: usize,
    contributions: &'a mut [f32],
}

impl WithSimd for Contributions<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let stride = self.kernel.len() / self.from.max(1);
        for (pixel, out) in self
            .pixels
            .chunks_exact(self.from)
            .zip(self.contributions.chunks_exact_mut(stride))
        {
            out.fill(0.0);
            multiply_accumulate::<S, 0>(simd, out, pixel, self.kernel);
        }
    }
}

/// For every tap, the sum over small pixels (and the large pixel under the tap) of the outer
/// product of their values: `[taps, small_channels, large_channels]`. The batch is split into
/// [`IMAGE_PARTS`] image ranges (a fixed number, summed in order); each range is read once,
/// row by row, for all taps.
fn tap_outer_products(
    small: &[f32],
    large: &[f32],
    geometry: Stride2,
    [small_channels, large_channels]: [usize; 2],
) -> Vec<f32> {
    if large_channels <= FEW_CHANNELS {
        return patch_outer_products(small, large, geometry, [small_channels, large_channels]);
    }
    let parts = IMAGE_PARTS.min(geometry.batch.max(1));
    let block = small_channels * large_channels;
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let images = geometry.batch * part / parts..geometry.batch * (part + 1) / parts;
            let mut sums = vec![0.0; geometry.taps() * block];
            geometry.arch.dispatch(TapOuterProducts {
                small,
                large,
                geometry,
                channels: [small_channels, large_channels],
                images,
                sums: &mut sums,
            });
            sums
        })
        .collect();
    let mut products = vec![0.0; geometry.taps() * block];
    for sums in &partial {
        for (total, value) in products.iter_mut().zip(sums) {
            *total += value;
        }
    }
    products
}

/// Patches are padded to a multiple of this many values: the widest SIMD vector.
const PATCH_ALIGN: usize = 16;

/// [`tap_outer_products`] with few large channels, where a tap's outer products would be a few
/// lanes wide: every small pixel's patch (the large pixels under all its taps, zeros outside,
/// padded to whole vectors) is one row, so each pixel adds one outer product `[small, patch]`.
/// Same fixed image ranges, summed in order.
fn patch_outer_products(
    small: &[f32],
    large: &[f32],
    geometry: Stride2,
    [small_channels, large_channels]: [usize; 2],
) -> Vec<f32> {
    let taps = geometry.taps();
    let patch_len = (taps * large_channels).div_ceil(PATCH_ALIGN) * PATCH_ALIGN;
    let parts = IMAGE_PARTS.min(geometry.batch.max(1));
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let images = geometry.batch * part / parts..geometry.batch * (part + 1) / parts;
            let mut sums = vec![0.0; small_channels * patch_len];
            geometry.arch.dispatch(PatchOuterProducts {
                small,
                large,
                geometry,
                channels: [small_channels, large_channels],
                patch_len,
                images,
                sums: &mut sums,
            });
            sums
        })
        .collect();
    let mut totals = vec![0.0; small_channels * patch_len];
    for sums in &partial {
        for (total, value) in totals.iter_mut().zip(sums) {
            *total += value;
        }
    }
    // [small, (taps, large) + padding] → [taps, small, large].
    let unpadded: Vec<f32> = totals
        .chunks_exact(patch_len)
        .flat_map(|row| &row[..taps * large_channels])
        .copied()
        .collect();
    swap_outer(&unpadded, [small_channels, taps, large_channels])
}

/// One image range of [`patch_outer_products`], compiled for the instruction set it is
/// dispatched to.
struct PatchOuterProducts<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    patch_len: usize,
    images: std::ops::Range<usize>,
    /// `[small_channels, patch_len]`.
    sums: &'a mut [f32],
}

impl WithSimd for PatchOuterProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        match (self.patch_len.is_multiple_of(lanes), self.patch_len / lanes) {
            (true, 1) => self.run::<S, 1>(simd),
            (true, 2) => self.run::<S, 2>(simd),
            (true, 3) => self.run::<S, 3>(simd),
            (true, 4) => self.run::<S, 4>(simd),
            (true, 6) => self.run::<S, 6>(simd),
            _ => self.run::<S, 0>(simd),
        }
    }
}

impl PatchOuterProducts<'_> {
    #[inline(always)]
    fn run<S: Simd, const RV: usize>(self, simd: S) {
        let Self {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            patch_len,
            images,
            sums,
        } = self;
        let [height, width] = geometry.small;
        let mut patches = vec![0.0; TILE_PIXELS * patch_len];
        for image in images {
            for y in 0..height {
                let mut x = 0;
                while x < width {
                    let count = TILE_PIXELS.min(width - x);
                    for (p, patch) in patches.chunks_exact_mut(patch_len).take(count).enumerate() {
                        let taps_len = geometry.taps() * large_channels;
                        geometry.fill_patch(
                            large,
                            large_channels,
                            [image, y, x + p],
                            &mut patch[..taps_len],
                        );
                    }
                    let small_at = geometry.small_index(image, y, x) * small_channels;
                    let pixel = |p: usize| {
                        (
                            &small[small_at + p * small_channels..][..small_channels],
                            &patches[p * patch_len..(p + 1) * patch_len],
                        )
                    };
                    if count == TILE_PIXELS {
                        let tile: [(&[f32], &[f32]); TILE_PIXELS] = std::array::from_fn(pixel);
                        outer_tile::<S, RV, TILE_PIXELS>(simd, sums, &tile, small_channels);
                    } else {
                        for p in 0..count {
                            outer_tile::<S, RV, 1>(simd, sums, &[pixel(p)], small_channels);
                        }
                    }
                    x += count;
                }
            }
        }
    }
}

/// One image range of [`tap_outer_products`], compiled for the instruction set it is
/// dispatched to.
struct TapOuterProducts<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    images: std::ops::Range<usize>,
    /// `[taps, small_channels, large_channels]`.
    sums: &'a mut [f32],
}

/// Pixels whose vectors [`outer_tile`] keeps in registers at once.
const TILE_PIXELS: usize = 4;

impl WithSimd for TapOuterProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            images,
            sums,
        } = self;
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        // One side is taken in SIMD vectors (the "row"), the other value by value (the
        // "column"): the large channels if they fill vectors, else the small ones, in which
        // case each tap's `[large, small]` sums are transposed at the end.
        let transposed =
            !large_channels.is_multiple_of(lanes) && small_channels.is_multiple_of(lanes);
        let (column_channels, row_channels) = if transposed {
            (large_channels, small_channels)
        } else {
            (small_channels, large_channels)
        };
        let block = small_channels * large_channels;
        let pass = OuterPass {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            transposed,
        };
        match (row_channels.is_multiple_of(lanes), row_channels / lanes) {
            (true, 1) => pass.run::<S, 1>(simd, images, sums, column_channels),
            (true, 2) => pass.run::<S, 2>(simd, images, sums, column_channels),
            (true, 4) => pass.run::<S, 4>(simd, images, sums, column_channels),
            _ => pass.run::<S, 0>(simd, images, sums, column_channels),
        }
        if transposed {
            for tap_sums in sums.chunks_exact_mut(block) {
                let untransposed = transpose_blocks(tap_sums, [large_channels, small_channels]);
                tap_sums.copy_from_slice(&untransposed);
            }
        }
    }
}

/// The loops of [`TapOuterProducts`].
struct OuterPass<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    transposed: bool,
}

impl OuterPass<'_> {
    /// Every small row of `images`, every tap; `RV` vectors per row-side pixel (`0`: scalar).
    #[inline(always)]
    fn run<S: Simd, const RV: usize>(
        &self,
        simd: S,
        images: std::ops::Range<usize>,
        sums: &mut [f32],
        column_channels: usize,
    ) {
        let [height, width] = self.geometry.small;
        let kernel = self.geometry.kernel;
        let [small_channels, large_channels] = self.channels;
        let block = small_channels * large_channels;
        for image in images {
            for y in 0..height {
                for ky in 0..kernel {
                    let Some(large_y) = tap_source(y, ky, 2 * height) else {
                        continue;
                    };
                    for kx in 0..kernel {
                        // The small pixels whose tap stays inside the large row: a run of x.
                        let first = usize::from(kx == 0);
                        let end = (0..width)
                            .rev()
                            .find(|&x| tap_source(x, kx, 2 * width).is_some())
                            .map_or(0, |x| x + 1);
                        let tap = ky * kernel + kx;
                        let tap_sums = &mut sums[tap * block..(tap + 1) * block];
                        let pixel = |x: usize| {
                            let small_at = self.geometry.small_index(image, y, x) * small_channels;
                            let large_x = 2 * x + kx - 1;
                            let large_at =
                                self.geometry.large_index(image, large_y, large_x) * large_channels;
                            let small_values = &self.small[small_at..small_at + small_channels];
                            let large_values = &self.large[large_at..large_at + large_channels];
                            if self.transposed {
                                (large_values, small_values)
                            } else {
                                (small_values, large_values)
                            }
                        };
                        let mut x = first;
                        while x + TILE_PIXELS <= end {
                            let pixels: [(&[f32], &[f32]); TILE_PIXELS] =
                                std::array::from_fn(|p| pixel(x + p));
                            outer_tile::<S, RV, TILE_PIXELS>(
                                simd,
                                tap_sums,
                                &pixels,
                                column_channels,
                            );
                            x += TILE_PIXELS;
                        }
                        while x < end {
                            outer_tile::<S, RV, 1>(simd, tap_sums, &[pixel(x)], column_channels);
                            x += 1;
                        }
                    }
                }
            }
        }
    }
}

/// `sums[c, ..] += Σ_p column_p[c] · row_p` over `P` pixels `(column_p, row_p)`, for a
/// `[column_channels, row.len()]` `sums`: the rows' `RV` vectors each stay in registers for
/// all `c`, so each row of `sums` is loaded and stored once per tile (`RV = 0`: scalar).
#[inline(always)]
fn outer_tile<S: Simd, const RV: usize, const P: usize>(
    simd: S,
    sums: &mut [f32],
    pixels: &[(&[f32], &[f32]); P],
    column_channels: usize,
) {
    if RV == 0 {
        for (column, row) in pixels {
            for (value, sums) in column.iter().zip(sums.chunks_exact_mut(row.len())) {
                for (sum, g) in sums.iter_mut().zip(row.iter()) {
                    *sum += value * g;
                }
            }
        }
        return;
    }
    let zero = simd.splat_f32s(0.0);
    let mut rows = [[zero; RV]; P];
    for (vectors, (_, row)) in rows.iter_mut().zip(pixels) {
        let (row, _) = S::as_simd_f32s(row);
        if let Some(row) = row.first_chunk::<RV>() {
            *vectors = *row;
        }
    }
    let (sums, _) = S::as_mut_simd_f32s(sums);
    let (sums, _) = sums.as_chunks_mut::<RV>();
    for (c, sum) in sums.iter_mut().enumerate().take(column_channels) {
        let mut accumulators = *sum;
        for p in 0..P {
            let value = simd.splat_f32s(pixels[p].0[c]);
            for v in 0..RV {
                accumulators[v] = simd.mul_add_e_f32s(value, rows[p][v], accumulators[v]);
            }
        }
        *sum = accumulators;
    }
}

/// The output gradient through the activation, from the output: `grad` if there is none. In
/// place when the gradient is not shared.
fn through_activation(
    mut grad: FlexTensor,
    output: Option<&FlexTensor>,
    activation: Activation,
) -> FlexTensor {
    let Some(output) = output else {
        return grad;
    };
    let output = values(output);
    // One loop per activation, the slope a constant expression in it: loops that vectorize.
    fn scale_by(grad: &mut [f32], output: &[f32], slope: impl Fn(f32) -> f32 + Sync) {
        grad.par_chunks_mut(8192)
            .zip(output.par_chunks(8192))
            .for_each(|(grad, output)| {
                for (grad, output) in grad.iter_mut().zip(output) {
                    *grad *= slope(*output);
                }
            });
    }
    let scale = |grad: &mut [f32]| match activation {
        Activation::Identity => {}
        Activation::Relu => scale_by(grad, &output, |output| Activation::Relu.slope(output)),
        Activation::CenteredSigmoid => scale_by(grad, &output, |output| {
            Activation::CenteredSigmoid.slope(output)
        }),
    };
    if grad.is_contiguous()
        && let Some(values) = grad.try_storage_mut::<f32>()
        && values.len() == output.len()
    {
        scale(values);
        return grad;
    }
    let shape = [grad.layout().shape()[0], columns(&grad)];
    let mut scaled = values(&grad).into_owned();
    scale(&mut scaled);
    from_values(scaled, shape)
}

/// Sums of the columns of `[rows, channels]` `values`: the bias gradient. Partial sums over
/// fixed runs of rows, added in order. Within a run, rows are summed a block at a time: the
/// fewest rows whose values are a whole number of 16-value vectors, so the sums vectorize
/// whatever the channel count; the block's columns are folded into the channels at the end.
fn column_sums(values: &[f32], channels: usize) -> Vec<f32> {
    if channels == 0 {
        return Vec::new();
    }
    let block = channels * (16 / gcd(channels, 16));
    let partials: Vec<Vec<f32>> = values
        .par_chunks(ROWS_PER_PARTIAL_SUM * channels)
        .map(|rows| {
            let mut sums = vec![0.0; block];
            let (blocks, rest) = rows.split_at(rows.len() - rows.len() % block);
            for values in blocks.chunks_exact(block) {
                for (sum, value) in sums.iter_mut().zip(values) {
                    *sum += value;
                }
            }
            for (sum, value) in sums.iter_mut().zip(rest) {
                *sum += value;
            }
            sums
        })
        .collect();
    let mut sums = vec![0.0; channels];
    for partial in partials {
        for (index, value) in partial.into_iter().enumerate() {
            sums[index % channels] += value;
        }
    }
    sums
}

/// Greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A convolution's geometry, its tap matrices and its output, from the operation's arguments.
struct Prepared {
    geometry: Stride2,
    /// Read in the forward direction: `[taps, C_in, C_out]`.
    matrices: TapMatrices,
    output: FlexTensor,
}

/// The 3×3 convolution: the input is the large map. Kernel `[(ky, kx, C_in), C_out]` is
/// already one `[C_in, C_out]` matrix per tap.
fn conv_forward(
    input: &FlexTensor,
    kernel: &FlexTensor,
    bias: &FlexTensor,
    [batch, height, width]: [usize; 3],
    activation: Activation,
) -> Prepared {
    let geometry = Stride2 {
        batch,
        small: [height / 2, width / 2],
        kernel: 3,
        arch: Arch::new(),
    };
    let out_channels = columns(kernel);
    let in_channels = kernel.layout().shape()[0] / geometry.taps();
    let matrices = TapMatrices::new(values(kernel).into_owned(), [in_channels, out_channels]);
    let (input, bias) = (values(input), values(bias));
    let epilogue = Epilogue {
        bias: Some(&bias),
        activation,
    };
    let output = new_tensor([geometry.small_pixels(), out_channels], |output| {
        gather_small(&input, &matrices, geometry, epilogue, output)
    });
    Prepared {
        geometry,
        matrices,
        output,
    }
}

/// The 4×4 transposed convolution: the input is the small map. Kernel `[C_in, (ky, kx, C_out)]`
/// → one `[C_in, C_out]` matrix per tap.
fn up_forward(
    input: &FlexTensor,
    kernel: &FlexTensor,
    bias: &FlexTensor,
    [batch, height, width]: [usize; 3],
    activation: Activation,
) -> Prepared {
    let geometry = Stride2 {
        batch,
        small: [height, width],
        kernel: 4,
        arch: Arch::new(),
    };
    let in_channels = kernel.layout().shape()[0];
    let out_channels = columns(kernel) / geometry.taps();
    let matrices = TapMatrices::new(
        swap_outer(
            &values(kernel),
            [in_channels, geometry.taps(), out_channels],
        ),
        [in_channels, out_channels],
    );
    let (input, bias) = (values(input), values(bias));
    let epilogue = Epilogue {
        bias: Some(&bias),
        activation,
    };
    let output = new_tensor([geometry.large_pixels(), out_channels], |output| {
        gather_large(&input, &matrices, geometry, epilogue, output)
    });
    Prepared {
        geometry,
        matrices,
        output,
    }
}

/// The forward pass of [`RowConvOps::stride2_conv_rows`].
fn forward(
    [input, kernel, bias]: [&FlexTensor; 3],
    dims: [usize; 3],
    activation: Activation,
    transposed: bool,
) -> Prepared {
    if transposed {
        up_forward(input, kernel, bias, dims, activation)
    } else {
        conv_forward(input, kernel, bias, dims, activation)
    }
}

impl RowConvOps for Flex {
    fn stride2_conv_rows(
        input: FloatTensor<Self>,
        kernel: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        batch: usize,
        height: usize,
        width: usize,
        activation: Activation,
        transposed: bool,
    ) -> FloatTensor<Self> {
        let dims = [batch, height, width];
        forward([&input, &kernel, &bias], dims, activation, transposed).output
    }
}

/// What a convolution's backward pass needs.
#[derive(Debug, Clone)]
struct ConvState {
    input: FlexTensor,
    geometry: Stride2,
    /// `[taps, C_in, C_out]`, with their transposes.
    matrices: TapMatrices,
    /// The output, for the activation's derivative (`None`: no activation).
    output: Option<FlexTensor>,
    activation: Activation,
    /// The transposed convolution (input = small map), else the convolution (input = large).
    transposed: bool,
}

/// The bias gradient, registered if the bias is tracked.
fn register_bias_grad(grads: &mut Gradients, node: Option<NodeId>, grad: &[f32], channels: usize) {
    if let Some(node) = node {
        grads.register::<Flex>(node, from_values(column_sums(grad, channels), [channels]));
    }
}

/// The backward pass of both operations: [`ConvState::transposed`] says which.
#[derive(Debug)]
struct Stride2ConvBackward;

impl Backward<Flex, 3> for Stride2ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, kernel_node, bias_node] = ops.parents;
        let ConvState {
            input,
            geometry,
            matrices,
            output,
            activation,
            transposed,
        } = ops.state;
        let grad = through_activation(
            grads.consume::<Flex>(&ops.node),
            output.as_ref(),
            activation,
        );
        let (in_channels, out_channels) = (matrices.from, matrices.to);
        let grad = values(&grad);
        register_bias_grad(grads, bias_node.map(|node| node.id), &grad, out_channels);
        let input = values(&input);
        if let Some(node) = kernel_node {
            let taps = geometry.taps();
            let kernel = if transposed {
                // [taps, C_in, C_out] (small = input, large = output) → [C_in, taps, C_out].
                let products =
                    tap_outer_products(&input, &grad, geometry, [in_channels, out_channels]);
                from_values(
                    swap_outer(&products, [taps, in_channels, out_channels]),
                    [in_channels, taps * out_channels],
                )
            } else {
                // [taps, C_out, C_in] (small = output, large = input) → [taps, C_in, C_out].
                let products =
                    tap_outer_products(&grad, &input, geometry, [out_channels, in_channels]);
                from_values(
                    transpose_blocks(&products, [out_channels, in_channels]),
                    [taps * in_channels, out_channels],
                )
            };
            grads.register::<Flex>(node.id, kernel);
        }
        if let Some(node) = input_node {
            let matrices = matrices.reversed();
            let grad_input = if transposed {
                new_tensor([geometry.small_pixels(), in_channels], |grad_input| {
                    gather_small(&grad, &matrices, geometry, Epilogue::NONE, grad_input)
                })
            } else {
                new_tensor([geometry.large_pixels(), in_channels], |grad_input| {
                    gather_large(&grad, &matrices, geometry, Epilogue::NONE, grad_input)
                })
            };
            grads.register::<Flex>(node.id, grad_input);
        }
    }
}

impl<C: CheckpointStrategy> RowConvOps for Autodiff<Flex, C> {
    fn stride2_conv_rows(
        input: FloatTensor<Self>,
        kernel: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        batch: usize,
        height: usize,
        width: usize,
        activation: Activation,
        transposed: bool,
    ) -> FloatTensor<Self> {
        let nodes = [input.node(), kernel.node(), bias.node()];
        let input = input.into_primitive();
        let Prepared {
            geometry,
            matrices,
            output,
        } = forward(
            [&input, &kernel.into_primitive(), &bias.into_primitive()],
            [batch, height, width],
            activation,
            transposed,
        );
        match Stride2ConvBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = ConvState {
                    input,
                    geometry,
                    matrices,
                    output: (activation != Activation::Identity).then(|| output.clone()),
                    activation,
                    transposed,
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::max_abs_difference;

    #[test]
    fn tap_readers_invert_tap_source() {
        for kernel in [3, 4] {
            for out_len in 1..6 {
                let in_len = if kernel == 3 { 2 * out_len } else { out_len };
                let target_len = if kernel == 3 { out_len } else { 2 * out_len };
                // kernel 3: conv reads input rows; kernel 4: transposed conv's taps write rows.
                let (readers_len, sources_len) = if kernel == 3 {
                    (target_len, in_len)
                } else {
                    (in_len, target_len)
                };
                let mut forward = Vec::new();
                for out in 0..readers_len {
                    for k in 0..kernel {
                        if let Some(source) = tap_source(out, k, sources_len) {
                            forward.push((source, out, k));
                        }
                    }
                }
                let mut inverse = Vec::new();
                for source in 0..sources_len {
                    let (readers, count) = tap_readers(source, kernel, readers_len);
                    for &(out, k) in &readers[..count] {
                        inverse.push((source, out, k));
                    }
                }
                forward.sort_unstable();
                inverse.sort_unstable();
                assert_eq!(forward, inverse, "kernel {kernel}, {out_len} rows");
            }
        }
    }

    use burn::tensor::Distribution;
    use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

    use crate::conv::{from_rows, to_rows};

    fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().expect("f32")
    }

    /// The output and the gradients of the input, the weight and the bias under a random
    /// linear loss.
    struct Run {
        output: Vec<f32>,
        grads: [Vec<f32>; 3],
    }

    fn run(
        output: Tensor<4>,
        loss_weights: &Tensor<4>,
        input: &Tensor<4>,
        weight: &Tensor<4>,
        bias: &Tensor<1>,
    ) -> Run {
        let grads = (output.clone() * loss_weights.clone()).sum().backward();
        let grad = |tensor: Option<Tensor<4>>| host(tensor.expect("gradient"));
        Run {
            output: host(output),
            grads: [
                grad(input.grad(&grads)),
                grad(weight.grad(&grads)),
                host(bias.grad(&grads).expect("gradient")),
            ],
        }
    }

    fn assert_runs_match(reference: &Run, ours: &Run, what: &str) {
        let difference = max_abs_difference(&reference.output, &ours.output);
        assert!(difference < 1e-4, "{what}: output differs by {difference}");
        for (name, (a, b)) in ["input", "weight", "bias"]
            .iter()
            .zip(reference.grads.iter().zip(&ours.grads))
        {
            let difference = max_abs_difference(a, b);
            assert!(
                difference < 1e-3,
                "{what}: {name} gradient differs by {difference}"
            );
        }
    }

    /// The convolution, input `[B, C_in, H, W]` and weight `[C_out, C_in, 3, 3]`, through
    /// burn's `conv2d` and through [`conv3x3_stride2_rows`].
    fn conv_both_ways(
        input: &Tensor<4>,
        weight: &Tensor<4>,
        bias: &Tensor<1>,
        activation: Activation,
    ) -> [Tensor<4>; 2] {
        let [batch, _, height, width] = input.dims();
        let [out_channels, in_channels, _, _] = weight.dims();
        let reference = burn::tensor::module::conv2d(
            input.clone(),
            weight.clone(),
            Some(bias.clone()),
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        );
        let kernel = weight
            .clone()
            .permute([2, 3, 1, 0])
            .reshape([9 * in_channels, out_channels]);
        let ours = conv3x3_stride2_rows(
            to_rows(input.clone()),
            kernel,
            bias.clone(),
            [batch, height, width],
            activation,
        );
        let ours = from_rows(ours, [batch, height / 2, width / 2]);
        let reference = activate(reference, activation);
        [reference, ours]
    }

    /// The transposed convolution, input `[B, C_in, H, W]` and weight `[C_in, C_out, 4, 4]`,
    /// through burn's `conv_transpose2d` and through [`up_conv4x4_stride2_rows`].
    fn up_both_ways(
        input: &Tensor<4>,
        weight: &Tensor<4>,
        bias: &Tensor<1>,
        activation: Activation,
    ) -> [Tensor<4>; 2] {
        let [batch, _, height, width] = input.dims();
        let [in_channels, out_channels, _, _] = weight.dims();
        let reference = burn::tensor::module::conv_transpose2d(
            input.clone(),
            weight.clone(),
            Some(bias.clone()),
            ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
        );
        let kernel = weight
            .clone()
            .permute([0, 2, 3, 1])
            .reshape([in_channels, 16 * out_channels]);
        let ours = up_conv4x4_stride2_rows(
            to_rows(input.clone()),
            kernel,
            bias.clone(),
            [batch, height, width],
            activation,
        );
        let ours = from_rows(ours, [batch, 2 * height, 2 * width]);
        let reference = activate(reference, activation);
        [reference, ours]
    }

    type BothWays = fn(&Tensor<4>, &Tensor<4>, &Tensor<1>, Activation) -> [Tensor<4>; 2];

    /// `activation` written with burn's tensor operations.
    fn activate(x: Tensor<4>, activation: Activation) -> Tensor<4> {
        match activation {
            Activation::Identity => x,
            Activation::Relu => burn::tensor::activation::relu(x),
            Activation::CenteredSigmoid => burn::tensor::activation::sigmoid(x) - 0.5,
        }
    }

    /// Every channel count the model uses (and odd ones, for the scalar paths): the SIMD paths
    /// with sums in registers, with few output channels, and the transposed kernel gradients.
    #[test]
    fn convolutions_match_burns_at_the_models_channel_counts_with_gradients() {
        let _generator = crate::trainer::generator_lock();
        let device = Device::flex().autodiff();
        let conv_cases = [(3, 32), (32, 32), (32, 64), (64, 64), (5, 7)];
        let up_cases = [(64, 32), (32, 16), (16, 16), (16, 3), (6, 5)];
        let cases = conv_cases
            .iter()
            .map(|&(i, o)| {
                (
                    "conv",
                    i,
                    o,
                    [o, i, 3, 3],
                    [2, i, 8, 6],
                    conv_both_ways as BothWays,
                )
            })
            .chain(up_cases.iter().map(|&(i, o)| {
                (
                    "up",
                    i,
                    o,
                    [i, o, 4, 4],
                    [2, i, 3, 5],
                    up_both_ways as BothWays,
                )
            }));
        for (name, in_channels, out_channels, weight_shape, input_shape, both_ways) in cases {
            for activation in [
                Activation::Identity,
                Activation::Relu,
                Activation::CenteredSigmoid,
            ] {
                let what = format!("{name} {in_channels}->{out_channels}, {activation:?}");
                let random = |shape: [usize; 4]| {
                    Tensor::<4>::random(shape, Distribution::Uniform(-0.5, 0.5), &device)
                        .require_grad()
                };
                let (input, weight) = (random(input_shape), random(weight_shape));
                let bias =
                    Tensor::<1>::random([out_channels], Distribution::Uniform(-0.5, 0.5), &device)
                        .require_grad();
                let [reference, ours] = both_ways(&input, &weight, &bias, activation);
                let loss_weights =
                    Tensor::<4>::random(reference.dims(), Distribution::Default, &device);
                let reference = run(reference, &loss_weights, &input, &weight, &bias);
                let ours = run(ours, &loss_weights, &input, &weight, &bias);
                assert_runs_match(&reference, &ours, &what);
            }
        }
    }

    /// Deterministic pseudo-random values in [-0.5, 0.5).
    fn pseudo_random(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The three kernels on every instruction set the machine offers (scalar, AVX2+FMA,
    /// AVX-512) compute what the scalar code computes, at the model's channel counts.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn kernels_compute_the_same_with_every_instruction_set() {
        let mut arches = vec![("AVX2+FMA", pulp::x86::V3::try_new().map(Arch::V3))];
        arches.push(("AVX-512", pulp::x86::V4::try_new().map(Arch::V4)));
        let bias = pseudo_random(64, 9);
        for (kernel, from, to) in [
            (3, 32, 64),
            (3, 3, 32),
            (4, 64, 32),
            (4, 16, 3),
            (4, 16, 16),
        ] {
            let geometry = |arch| Stride2 {
                batch: 3,
                small: [4, 6],
                kernel,
                arch,
            };
            let reference = geometry(Arch::Scalar);
            let taps = kernel * kernel;
            let matrices = TapMatrices::new(pseudo_random(taps * from * to, 1), [from, to]);
            let large = pseudo_random(reference.large_pixels() * from, 2);
            let small = pseudo_random(reference.small_pixels() * from, 3);
            let large_to = pseudo_random(reference.large_pixels() * to, 4);
            let epilogue = Epilogue {
                bias: Some(&bias[..to]),
                activation: Activation::Relu,
            };
            let compute = |geometry: Stride2| {
                let mut gathered_small = vec![0.0; geometry.small_pixels() * to];
                gather_small(&large, &matrices, geometry, epilogue, &mut gathered_small);
                let mut gathered_large = vec![0.0; geometry.large_pixels() * to];
                gather_large(&small, &matrices, geometry, epilogue, &mut gathered_large);
                let products = tap_outer_products(&small, &large_to, geometry, [from, to]);
                [gathered_small, gathered_large, products]
            };
            let expected = compute(reference);
            for (name, arch) in &arches {
                let Some(arch) = arch else { continue };
                for (what, (want, got)) in ["gather_small", "gather_large", "tap_outer_products"]
                    .iter()
                    .zip(expected.iter().zip(compute(geometry(*arch))))
                {
                    let difference = max_abs_difference(want, &got);
                    assert!(
                        difference < 1e-4,
                        "{name} {what} ({kernel}x{kernel}, {from}->{to}) differs by {difference}"
                    );
                }
            }
        }
    }

    #[test]
    fn convolutions_give_the_same_bits_on_one_thread_and_on_several() {
        let _generator = crate::trainer::generator_lock();
        let device = Device::flex().autodiff();
        let random4 = |shape| Tensor::<4>::random(shape, Distribution::Default, &device);
        let random1 = |shape| Tensor::<1>::random(shape, Distribution::Default, &device);
        let weights4 = [
            random4([4, 16, 8, 8]),
            random4([32, 16, 3, 3]),
            random4([16, 3, 4, 4]),
        ];
        let weights1 = [random1([32]), random1([3])];
        let compute = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| {
                    let [input, conv_weight, up_weight] =
                        weights4.clone().map(Tensor::require_grad);
                    let [conv_bias, up_bias] = weights1.clone().map(Tensor::require_grad);
                    let [_, conv] =
                        conv_both_ways(&input, &conv_weight, &conv_bias, Activation::Relu);
                    let [_, up] =
                        up_both_ways(&input, &up_weight, &up_bias, Activation::CenteredSigmoid);
                    let grads = (conv.clone().sum() + up.clone().powi_scalar(2).sum()).backward();
                    let mut values = vec![host(conv), host(up)];
                    for tensor in [&input, &conv_weight, &up_weight] {
                        values.push(host(tensor.grad(&grads).expect("gradient")));
                    }
                    for tensor in [&conv_bias, &up_bias] {
                        values.push(host(tensor.grad(&grads).expect("gradient")));
                    }
                    values
                })
        };
        assert_eq!(compute(1), compute(3));
    }
}
