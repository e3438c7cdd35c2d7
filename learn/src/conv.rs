//! The encoder's and decoder's convolutions as gather + GEMM on channels-last rows, for the CPU.
//!
//! burn's flex backend computes a convolution by converting to channels-last, unfolding tiles
//! and calling small GEMMs, and its weight gradient as a convolution whose kernel is the whole
//! output map. On the small, strided convolutions of this model that is most of a training
//! step. Here the same convolutions are written with tensor operations whose gradients are
//! large, well-shaped GEMMs and one gather or scatter:
//!
//! - a 3×3, stride-2, padding-1 convolution gathers each output pixel's 9 input pixels (a zero
//!   row stands in for the padding) into one row and multiplies by the weight matrix;
//! - a 4×4, stride-2, padding-1 transposed convolution multiplies each input pixel by the weight
//!   matrix and scatter-adds the 16 resulting rows onto the output pixels they land on.
//!
//! The parameters stay those of burn's `Conv2d` / `ConvTranspose2d` (same shapes, same
//! initialisation, same checkpoints); only the arithmetic is arranged differently, and the
//! result is the same up to floating-point summation order (a test compares both).
//!
//! Feature maps travel between layers as channels-last rows: `[B·H·W, C]`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// Whether the gather + GEMM formulation is used on `device`: on burn's CPU backend (flex).
/// GPU backends keep burn's own convolution kernels.
pub fn gather_gemm_on(device: &Device) -> bool {
    *device == Device::flex()
}

/// Which gather an index tensor serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IndexKind {
    /// 3×3, stride 2, padding 1 convolution (im2col).
    Conv3x3Stride2,
    /// 4×4, stride 2, padding 1 transposed convolution (col2im).
    Transpose4x4Stride2,
}

type IndexKey = (IndexKind, usize, usize, usize, bool);

/// Index tensors by shape: building them costs as much as a small convolution, and a training
/// run only ever sees a handful of shapes. Bounded: cleared when it grows past
/// [`INDEX_CACHE_LIMIT`] entries.
static INDEX_CACHE: LazyLock<Mutex<HashMap<IndexKey, Tensor<1, Int>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const INDEX_CACHE_LIMIT: usize = 64;

fn cached_index(
    kind: IndexKind,
    [batch, height, width]: [usize; 3],
    device: &Device,
) -> Tensor<1, Int> {
    let key = (kind, batch, height, width, device.is_autodiff());
    let mut cache = INDEX_CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(index) = cache.get(&key) {
        return index.clone();
    }
    let values = match kind {
        IndexKind::Conv3x3Stride2 => conv3x3_stride2_index(batch, height, width),
        IndexKind::Transpose4x4Stride2 => transpose4x4_stride2_index(batch, height, width),
    };
    let len = values.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(values, [len]), device);
    if cache.len() >= INDEX_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(key, index.clone());
    index
}

/// For every output pixel of a 3×3/2 convolution over `batch` images of `height × width`, in
/// `(b, oy, ox)` order, its 9 input rows in `(ky, kx)` order; taps in the padding point at row
/// `batch·height·width` (a zero row).
fn conv3x3_stride2_index(batch: usize, height: usize, width: usize) -> Vec<i64> {
    let (out_h, out_w) = (height / 2, width / 2);
    let zero_row = (batch * height * width) as i64;
    let mut index = Vec::with_capacity(batch * out_h * out_w * 9);
    for b in 0..batch {
        for oy in 0..out_h {
            for ox in 0..out_w {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (y, x) = ((2 * oy + ky) as i64 - 1, (2 * ox + kx) as i64 - 1);
                        index.push(
                            if y < 0 || x < 0 || y >= height as i64 || x >= width as i64 {
                                zero_row
                            } else {
                                ((b * height) as i64 + y) * width as i64 + x
                            },
                        );
                    }
                }
            }
        }
    }
    index
}

/// For every input pixel of a 4×4/2 transposed convolution over `batch` maps of
/// `height × width` (in `(b, iy, ix)` order) and each of its 16 taps in `(ky, kx)` order, the
/// output row it lands on; taps that fall in the cropped padding point at row
/// `batch·2height·2width` (discarded).
fn transpose4x4_stride2_index(batch: usize, height: usize, width: usize) -> Vec<i64> {
    let (out_h, out_w) = (2 * height, 2 * width);
    let dump_row = (batch * out_h * out_w) as i64;
    let mut index = Vec::with_capacity(batch * height * width * 16);
    for b in 0..batch {
        for iy in 0..height {
            for ix in 0..width {
                for ky in 0..4 {
                    for kx in 0..4 {
                        let (y, x) = ((2 * iy + ky) as i64 - 1, (2 * ix + kx) as i64 - 1);
                        index.push(
                            if y < 0 || x < 0 || y >= out_h as i64 || x >= out_w as i64 {
                                dump_row
                            } else {
                                ((b * out_h) as i64 + y) * out_w as i64 + x
                            },
                        );
                    }
                }
            }
        }
    }
    index
}

/// NCHW images to channels-last rows.
///
/// # Shapes
/// - `images`: `[B, C, H, W]`
/// - output: `[B·H·W, C]`
pub fn to_rows(images: Tensor<4>) -> Tensor<2> {
    let [batch, channels, height, width] = images.dims();
    images
        .permute([0, 2, 3, 1])
        .reshape([batch * height * width, channels])
}

/// Channels-last rows back to NCHW.
///
/// # Shapes
/// - `rows`: `[B·H·W, C]`
/// - output: `[B, C, H, W]`
pub fn from_rows(rows: Tensor<2>, [batch, height, width]: [usize; 3]) -> Tensor<4> {
    let [_, channels] = rows.dims();
    rows.reshape([batch, height, width, channels])
        .permute([0, 3, 1, 2])
}

/// `conv` (3×3, stride 2, padding 1, no dilation or groups) on channels-last rows.
///
/// # Shapes
/// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]` (H, W even)
/// - output: `[B·H/2·W/2, C_out]`
pub fn conv3x3_stride2(
    conv: &Conv2d,
    rows: Tensor<2>,
    [batch, height, width]: [usize; 3],
) -> Tensor<2> {
    let [_, channels] = rows.dims();
    let device = rows.device();
    let [out_channels, _, _, _] = conv.weight.dims();
    let index = cached_index(IndexKind::Conv3x3Stride2, [batch, height, width], &device);
    let padded = Tensor::cat(vec![rows, Tensor::zeros([1, channels], &device)], 0);
    let columns = padded
        .select(0, index)
        .reshape([batch * (height / 2) * (width / 2), 9 * channels]);
    // [C_out, C_in, 3, 3] → [(ky, kx, C_in), C_out], the gather's column order.
    let weight = conv
        .weight
        .val()
        .permute([2, 3, 1, 0])
        .reshape([9 * channels, out_channels]);
    let out = columns.matmul(weight);
    match &conv.bias {
        Some(bias) => out + bias.val().unsqueeze::<2>(),
        None => out,
    }
}

/// `up` (4×4, stride 2, padding 1, no output padding, dilation or groups) on channels-last rows.
///
/// # Shapes
/// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]`
/// - output: `[B·2H·2W, C_out]`
pub fn transpose4x4_stride2(
    up: &ConvTranspose2d,
    rows: Tensor<2>,
    [batch, height, width]: [usize; 3],
) -> Tensor<2> {
    let device = rows.device();
    let [in_channels, out_channels, _, _] = up.weight.dims();
    // [C_in, C_out, 4, 4] → [C_in, (ky, kx, C_out)], the scatter's row order.
    let weight = up
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([in_channels, 16 * out_channels]);
    let contributions = rows
        .matmul(weight)
        .reshape([batch * height * width * 16, out_channels]);
    let index = cached_index(
        IndexKind::Transpose4x4Stride2,
        [batch, height, width],
        &device,
    );
    let out_rows = batch * 4 * height * width;
    let out = Tensor::<2>::zeros([out_rows + 1, out_channels], &device)
        .select_assign(0, index, contributions, IndexingUpdateOp::Add)
        .slice([0..out_rows, 0..out_channels]);
    match &up.bias {
        Some(bias) => out + bias.val().unsqueeze::<2>(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::Distribution;

    fn max_abs_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().expect("f32");
        let b = b.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn gathered_conv_matches_burns_conv2d_with_gradients() {
        let device = Device::flex().autodiff();
        let conv = Conv2dConfig::new([5, 7], [3, 3])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let input =
            Tensor::<4>::random([3, 5, 8, 6], Distribution::Default, &device).require_grad();
        let reference = conv.forward(input.clone());
        let ours = from_rows(
            conv3x3_stride2(&conv, to_rows(input.clone()), [3, 8, 6]),
            [3, 4, 3],
        );
        assert!(max_abs_difference(reference.clone(), ours.clone()) < 1e-5);

        // The same loss through both gives the same gradients.
        let weights = Tensor::<4>::random([3, 7, 4, 3], Distribution::Default, &device);
        let grads_reference = (reference * weights.clone()).sum().backward();
        let grads_ours = (ours * weights).sum().backward();
        let pairs = [
            (
                conv.weight.grad(&grads_reference),
                conv.weight.grad(&grads_ours),
            ),
            (input.grad(&grads_reference), input.grad(&grads_ours)),
        ];
        for (reference, ours) in pairs {
            let (reference, ours) = (reference.expect("grad"), ours.expect("grad"));
            assert!(max_abs_difference(reference, ours) < 1e-4);
        }
        let bias = conv.bias.as_ref().expect("bias");
        let (reference, ours) = (
            bias.grad(&grads_reference).expect("grad"),
            bias.grad(&grads_ours).expect("grad"),
        );
        assert!(max_abs_difference(reference.unsqueeze(), ours.unsqueeze()) < 1e-4);
    }

    #[test]
    fn scattered_transpose_conv_matches_burns_conv_transpose2d_with_gradients() {
        let device = Device::flex().autodiff();
        let up = ConvTranspose2dConfig::new([6, 4], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init(&device);
        let input =
            Tensor::<4>::random([2, 6, 3, 5], Distribution::Default, &device).require_grad();
        let reference = up.forward(input.clone());
        assert_eq!(reference.dims(), [2, 4, 6, 10]);
        let ours = from_rows(
            transpose4x4_stride2(&up, to_rows(input.clone()), [2, 3, 5]),
            [2, 6, 10],
        );
        assert!(max_abs_difference(reference.clone(), ours.clone()) < 1e-5);

        let weights = Tensor::<4>::random([2, 4, 6, 10], Distribution::Default, &device);
        let grads_reference = (reference * weights.clone()).sum().backward();
        let grads_ours = (ours * weights).sum().backward();
        let pairs = [
            (
                up.weight.grad(&grads_reference),
                up.weight.grad(&grads_ours),
            ),
            (input.grad(&grads_reference), input.grad(&grads_ours)),
        ];
        for (reference, ours) in pairs {
            let (reference, ours) = (reference.expect("grad"), ours.expect("grad"));
            assert!(max_abs_difference(reference, ours) < 1e-4);
        }
    }

    #[test]
    fn index_cache_stays_bounded() {
        let device = Device::flex();
        for batch in 1..=(INDEX_CACHE_LIMIT + 5) {
            let index = cached_index(IndexKind::Conv3x3Stride2, [batch, 2, 2], &device);
            assert_eq!(index.dims(), [batch * 9]);
        }
        let size = INDEX_CACHE.lock().map(|cache| cache.len()).unwrap_or(0);
        assert!(size <= INDEX_CACHE_LIMIT, "{size} cached index tensors");
    }
}
