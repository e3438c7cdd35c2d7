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
//! own convolutions (see [`crate::cpu::cpu_kernels_on`]).
//!
//! Kernel layouts are [`crate::cpu::conv::StridedConv`]'s and [`crate::cpu::conv::UpConv`]'s GEMM
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

mod gather;
mod ops;
mod outer;
#[cfg(test)]
mod tests;

use gather::{gather_large, gather_small};
use outer::tap_outer_products;
