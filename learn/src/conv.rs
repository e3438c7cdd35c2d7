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
//! [`StridedConv`] and [`UpConv`] keep their kernels as those GEMM matrices, drawn exactly as
//! burn's `Conv2d` / `ConvTranspose2d` draw theirs (same initializer, same random stream, then
//! rearranged), so nothing is rearranged per step or per frame. The result is the same as burn's
//! convolution up to floating-point summation order (tests compare both, gradients included);
//! on GPU backends the modules run burn's own convolution kernels.
//!
//! Feature maps travel between layers as channels-last rows: `[B·H·W, C]`.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use burn::module::{Param, ParamId};
use burn::nn::Initializer;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use crate::LearnError;
use crate::direct::HostConvWeights;

/// Whether `device` is burn's CPU backend (flex), where the convolutions run as this module's
/// gather + GEMM (with gradients) and as [`crate::direct`]'s kernels (without). GPU backends keep
/// burn's own convolution kernels.
pub fn cpu_kernels_on(device: &Device) -> bool {
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
        // Each output pixel's 9 input rows; padding taps read the zero row past the input.
        IndexKind::Conv3x3Stride2 => {
            stride2_tap_index(batch, [height / 2, width / 2], 3, [height, width])
        }
        // Each input pixel's 16 output rows; taps in the cropped border land past the output.
        IndexKind::Transpose4x4Stride2 => {
            stride2_tap_index(batch, [height, width], 4, [2 * height, 2 * width])
        }
    };
    let len = values.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(values, [len]), device);
    if cache.len() >= INDEX_CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(key, index.clone());
    index
}

/// For every pixel of a `grid` of `batch` maps (in `(b, y, x)` order) and each of the
/// `kernel × kernel` taps of a stride-2, padding-1 (transposed) convolution (in `(ky, kx)`
/// order), the row of the `target` map the tap touches: pixel `(2y + ky − 1, 2x + kx − 1)`. Taps
/// outside the target point at row `batch·target_h·target_w`, one past the map.
fn stride2_tap_index(
    batch: usize,
    [grid_h, grid_w]: [usize; 2],
    kernel: usize,
    [target_h, target_w]: [usize; 2],
) -> Vec<i64> {
    let outside = (batch * target_h * target_w) as i64;
    let (target_h, target_w) = (target_h as i64, target_w as i64);
    let mut index = Vec::with_capacity(batch * grid_h * grid_w * kernel * kernel);
    for b in 0..batch as i64 {
        for gy in 0..grid_h as i64 {
            for gx in 0..grid_w as i64 {
                for ky in 0..kernel as i64 {
                    for kx in 0..kernel as i64 {
                        let (y, x) = (2 * gy + ky - 1, 2 * gx + kx - 1);
                        let inside = (0..target_h).contains(&y) && (0..target_w).contains(&x);
                        index.push(if inside {
                            (b * target_h + y) * target_w + x
                        } else {
                            outside
                        });
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

/// A kernel parameter drawn as burn's convolution modules draw theirs — `initializer` over
/// `drawn = (shape, fan_in, fan_out)`, lazily, from the same random stream — then permuted by
/// `permutation` and reshaped to the GEMM matrix `kernel`, a leaf on the device it is
/// initialised on. The values do not depend on the device they are drawn on.
fn gemm_kernel(
    initializer: &Initializer,
    (shape, fan_in, fan_out): ([usize; 4], Option<usize>, Option<usize>),
    permutation: [usize; 4],
    kernel: [usize; 2],
    device: &Device,
) -> Param<Tensor<2>> {
    let initializer = initializer.clone();
    Param::uninitialized(
        ParamId::new(),
        move |device, require_grad| {
            let plain = device.clone().without_autodiff();
            let drawn: Tensor<4> = initializer.init_with(shape, fan_in, fan_out, &plain).val();
            let matrix = drawn.permute(permutation).reshape(kernel);
            let matrix = if device.is_autodiff() {
                Tensor::from_inner(matrix)
            } else {
                matrix
            };
            if require_grad {
                matrix.require_grad()
            } else {
                matrix
            }
        },
        device.clone(),
        true,
        kernel.into(),
    )
}

/// A 3×3, stride-2, padding-1 convolution with bias.
#[derive(Config, Debug)]
pub struct StridedConvConfig {
    /// `[C_in, C_out]`.
    pub channels: [usize; 2],
}

impl StridedConvConfig {
    /// Builds the convolution on `device`, its parameters drawn as burn's `Conv2d` draws them.
    pub fn init(&self, device: &Device) -> StridedConv {
        let [in_channels, out_channels] = self.channels;
        let reference = Conv2dConfig::new(self.channels, [3, 3]);
        let (fan_in, fan_out) = (in_channels * 9, out_channels * 9);
        // [C_out, C_in, 3, 3] → [(ky, kx, C_in), C_out], the gather's column order.
        let kernel = gemm_kernel(
            &reference.initializer,
            (
                [out_channels, in_channels, 3, 3],
                Some(fan_in),
                Some(fan_out),
            ),
            [2, 3, 1, 0],
            [9 * in_channels, out_channels],
            device,
        );
        StridedConv {
            kernel,
            bias: reference.initializer.init_with(
                [out_channels],
                Some(fan_in),
                Some(fan_out),
                device,
            ),
        }
    }
}

/// See [`StridedConvConfig`].
#[derive(Module, Debug)]
pub struct StridedConv {
    /// The kernel as a GEMM matrix, `[(ky, kx, C_in), C_out]` = `[9·C_in, C_out]`.
    pub kernel: Param<Tensor<2>>,
    /// `[C_out]`.
    pub bias: Param<Tensor<1>>,
}

impl StridedConv {
    /// `[C_in, C_out]`.
    pub fn channels(&self) -> [usize; 2] {
        let [rows, out_channels] = self.kernel.dims();
        [rows / 9, out_channels]
    }

    /// The kernel matrix and the bias read to the host: a layer of a
    /// [`crate::direct::DirectConvStack`].
    pub fn host_weights(&self) -> Result<HostConvWeights, LearnError> {
        let read = |data: TensorData, what: &str| {
            data.try_to_vec::<f32>()
                .map_err(|e| LearnError::Backend(format!("reading the {what}: {e:?}")))
        };
        Ok(HostConvWeights {
            kernel: read(self.kernel.val().into_data(), "convolution kernel")?,
            bias: read(self.bias.val().into_data(), "convolution bias")?,
            channels: self.channels(),
        })
    }

    /// The kernel in burn's convolution layout, `[C_out, C_in, 3, 3]`.
    pub fn weight(&self) -> Tensor<4> {
        let [in_channels, out_channels] = self.channels();
        self.kernel
            .val()
            .reshape([3, 3, in_channels, out_channels])
            .permute([3, 2, 0, 1])
    }

    /// On NCHW images, with burn's convolution kernel (the GPU path).
    ///
    /// # Shapes
    /// - `images`: `[B, C_in, H, W]` (H, W even)
    /// - output: `[B, C_out, H/2, W/2]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        burn::tensor::module::conv2d(
            images,
            self.weight(),
            Some(self.bias.val()),
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        )
    }

    /// On channels-last rows, as gather + GEMM (the CPU path).
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]` (H, W even)
    /// - output: `[B·H/2·W/2, C_out]`
    pub fn forward_rows(&self, rows: Tensor<2>, [batch, height, width]: [usize; 3]) -> Tensor<2> {
        let [_, channels] = rows.dims();
        let device = rows.device();
        let index = cached_index(IndexKind::Conv3x3Stride2, [batch, height, width], &device);
        let padded = Tensor::cat(vec![rows, Tensor::zeros([1, channels], &device)], 0);
        let columns = padded
            .select(0, index)
            .reshape([batch * (height / 2) * (width / 2), 9 * channels]);
        columns.matmul(self.kernel.val()) + self.bias.val().unsqueeze::<2>()
    }
}

/// A 4×4, stride-2, padding-1 transposed convolution with bias: doubles the map's sides.
#[derive(Config, Debug)]
pub struct UpConvConfig {
    /// `[C_in, C_out]`.
    pub channels: [usize; 2],
}

impl UpConvConfig {
    /// Builds the transposed convolution on `device`, its parameters drawn as burn's
    /// `ConvTranspose2d` draws them.
    pub fn init(&self, device: &Device) -> UpConv {
        let [in_channels, out_channels] = self.channels;
        let reference = ConvTranspose2dConfig::new(self.channels, [4, 4]);
        let fan_in = out_channels * 16;
        // [C_in, C_out, 4, 4] → [C_in, (ky, kx, C_out)], the scatter's row order.
        let kernel = gemm_kernel(
            &reference.initializer,
            ([in_channels, out_channels, 4, 4], Some(fan_in), None),
            [0, 2, 3, 1],
            [in_channels, 16 * out_channels],
            device,
        );
        UpConv {
            kernel,
            bias: reference
                .initializer
                .init_with([out_channels], Some(fan_in), None, device),
        }
    }
}

/// See [`UpConvConfig`].
#[derive(Module, Debug)]
pub struct UpConv {
    /// The kernel as a GEMM matrix, `[C_in, (ky, kx, C_out)]` = `[C_in, 16·C_out]`.
    pub kernel: Param<Tensor<2>>,
    /// `[C_out]`.
    pub bias: Param<Tensor<1>>,
}

impl UpConv {
    /// `[C_in, C_out]`.
    pub fn channels(&self) -> [usize; 2] {
        let [in_channels, columns] = self.kernel.dims();
        [in_channels, columns / 16]
    }

    /// The kernel in burn's transposed-convolution layout, `[C_in, C_out, 4, 4]`.
    pub fn weight(&self) -> Tensor<4> {
        let [in_channels, out_channels] = self.channels();
        self.kernel
            .val()
            .reshape([in_channels, 4, 4, out_channels])
            .permute([0, 3, 1, 2])
    }

    /// On NCHW maps, with burn's transposed-convolution kernel (the GPU path).
    ///
    /// # Shapes
    /// - `maps`: `[B, C_in, H, W]`
    /// - output: `[B, C_out, 2H, 2W]`
    pub fn forward(&self, maps: Tensor<4>) -> Tensor<4> {
        burn::tensor::module::conv_transpose2d(
            maps,
            self.weight(),
            Some(self.bias.val()),
            ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
        )
    }

    /// On channels-last rows, as GEMM + scatter-add (the CPU path).
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]`
    /// - output: `[B·2H·2W, C_out]`
    pub fn forward_rows(&self, rows: Tensor<2>, [batch, height, width]: [usize; 3]) -> Tensor<2> {
        let device = rows.device();
        let [_, out_channels] = self.channels();
        let contributions = rows
            .matmul(self.kernel.val())
            .reshape([batch * height * width * 16, out_channels]);
        let index = cached_index(
            IndexKind::Transpose4x4Stride2,
            [batch, height, width],
            &device,
        );
        let out_rows = batch * 4 * height * width;
        Tensor::<2>::zeros([out_rows + 1, out_channels], &device)
            .select_assign(0, index, contributions, IndexingUpdateOp::Add)
            .slice([0..out_rows, 0..out_channels])
            + self.bias.val().unsqueeze::<2>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn max_abs_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().expect("f32");
        let b = b.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn assert_close<const D: usize>(
        reference: Option<Tensor<D>>,
        ours: Option<Tensor<D>>,
        what: &str,
    ) {
        let (reference, ours) = (reference.expect("gradient"), ours.expect("gradient"));
        let difference = max_abs_difference(reference, ours);
        assert!(difference < 1e-4, "{what}: differs by {difference}");
    }

    /// Bit-identical initial parameters: `(weight, bias)` of burn's module against ours.
    fn assert_same_initial(reference: (Tensor<4>, Tensor<1>), ours: (Tensor<4>, Tensor<1>)) {
        assert_eq!(
            max_abs_difference(reference.0, ours.0),
            0.0,
            "same initial weights"
        );
        assert_eq!(
            max_abs_difference(reference.1, ours.1),
            0.0,
            "same initial bias"
        );
    }

    /// The NCHW and the rows formulation give the same output, and the same loss through both
    /// gives the same gradients for the kernel, the bias and the input.
    fn assert_same_with_gradients(
        (nchw, rows): (Tensor<4>, Tensor<4>),
        input: &Tensor<4>,
        kernel: &Tensor<2>,
        bias: &Tensor<1>,
    ) {
        assert!(max_abs_difference(nchw.clone(), rows.clone()) < 1e-5);
        let weights = Tensor::<4>::random(nchw.dims(), Distribution::Default, &nchw.device());
        let grads_nchw = (nchw * weights.clone()).sum().backward();
        let grads_rows = (rows * weights).sum().backward();
        assert_close(kernel.grad(&grads_nchw), kernel.grad(&grads_rows), "kernel");
        assert_close(input.grad(&grads_nchw), input.grad(&grads_rows), "input");
        assert_close(bias.grad(&grads_nchw), bias.grad(&grads_rows), "bias");
    }

    #[test]
    fn strided_conv_draws_burns_conv2d_weights_and_computes_the_same_with_gradients() {
        let device = Device::flex().autodiff();
        // The backend's generator is global: hold the lock for every draw of the test.
        let _seed_lock = crate::trainer::INIT_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(7);
        let reference = Conv2dConfig::new([5, 7], [3, 3])
            .with_stride([2, 2])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        // Parameters are drawn lazily, weight then bias, as a module traversal reads them.
        let reference_weight = reference.weight.val();
        let reference_bias = reference.bias.as_ref().expect("bias").val();
        device.seed(7);
        let conv = StridedConvConfig::new([5, 7]).init(&device);
        assert_same_initial(
            (reference_weight, reference_bias),
            (conv.weight(), conv.bias.val()),
        );

        let input =
            Tensor::<4>::random([3, 5, 8, 6], Distribution::Default, &device).require_grad();
        let nchw = conv.forward(input.clone());
        let burns = reference.forward(input.clone());
        assert!(max_abs_difference(burns, nchw.clone()) < 1e-5);
        let rows = from_rows(
            conv.forward_rows(to_rows(input.clone()), [3, 8, 6]),
            [3, 4, 3],
        );
        assert_eq!(nchw.dims(), [3, 7, 4, 3]);
        assert_same_with_gradients((nchw, rows), &input, &conv.kernel, &conv.bias);
    }

    #[test]
    fn up_conv_draws_burns_conv_transpose2d_weights_and_computes_the_same_with_gradients() {
        let device = Device::flex().autodiff();
        // The backend's generator is global: hold the lock for every draw of the test.
        let _seed_lock = crate::trainer::INIT_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(11);
        let reference = ConvTranspose2dConfig::new([6, 4], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init(&device);
        let reference_weight = reference.weight.val();
        let reference_bias = reference.bias.as_ref().expect("bias").val();
        device.seed(11);
        let up = UpConvConfig::new([6, 4]).init(&device);
        assert_same_initial(
            (reference_weight, reference_bias),
            (up.weight(), up.bias.val()),
        );

        let input =
            Tensor::<4>::random([2, 6, 3, 5], Distribution::Default, &device).require_grad();
        let nchw = up.forward(input.clone());
        assert_eq!(nchw.dims(), [2, 4, 6, 10]);
        assert!(max_abs_difference(reference.forward(input.clone()), nchw.clone()) < 1e-5);
        let rows = from_rows(
            up.forward_rows(to_rows(input.clone()), [2, 3, 5]),
            [2, 6, 10],
        );
        assert_same_with_gradients((nchw, rows), &input, &up.kernel, &up.bias);
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
