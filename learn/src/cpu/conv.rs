//! The encoder's and decoder's convolutions, with kernels kept as GEMM matrices for the CPU.
//!
//! burn's flex backend computes a convolution by converting to channels-last, unfolding tiles
//! and calling small GEMMs, and its weight gradient as a convolution whose kernel is the whole
//! output map. On the small, strided convolutions of this model that is most of a training
//! step. On the CPU these modules instead run [`crate::cpu::row_conv`]'s operations on
//! channels-last rows (`[B·H·W, C]`): one fused operation per layer (convolution, bias and
//! activation), computed by direct gathers and per-tap outer products with hand-written backward
//! passes, no unfolded patch matrix:
//!
//! - [`StridedConv`]: a 3×3, stride-2, padding-1 convolution;
//! - [`UpConv`]: a 4×4, stride-2, padding-1 transposed convolution.
//!
//! Both keep their kernels as those GEMM matrices, drawn exactly as burn's `Conv2d` /
//! `ConvTranspose2d` draw theirs (same initializer, same random stream, then rearranged), so
//! nothing is rearranged per step or per frame. The result is the same as burn's convolution up
//! to floating-point summation order (tests compare both, gradients included); on GPU backends
//! the modules run burn's own convolution kernels.

use burn::module::{Param, ParamId};
use burn::nn::Initializer;
use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
use burn::prelude::*;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use crate::LearnError;
use crate::cpu::direct::HostConvWeights;
pub use crate::cpu::row_conv::Activation;

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
    /// [`crate::cpu::direct::DirectConvStack`].
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

    /// On channels-last rows, as one CPU operation with a hand-written backward pass (see
    /// [`crate::cpu::row_conv`]), `activation` fused.
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]` (H, W even)
    /// - output: `[B·H/2·W/2, C_out]`
    pub fn forward_rows(
        &self,
        rows: Tensor<2>,
        dims: [usize; 3],
        activation: Activation,
    ) -> Tensor<2> {
        crate::cpu::row_conv::conv3x3_stride2_rows(
            rows,
            self.kernel.val(),
            self.bias.val(),
            dims,
            activation,
        )
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

    /// On channels-last rows, as one CPU operation with a hand-written backward pass (see
    /// [`crate::cpu::row_conv`]), `activation` fused.
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, C_in]`, `[batch, height, width]` = `[B, H, W]`
    /// - output: `[B·2H·2W, C_out]`
    pub fn forward_rows(
        &self,
        rows: Tensor<2>,
        dims: [usize; 3],
        activation: Activation,
    ) -> Tensor<2> {
        crate::cpu::row_conv::up_conv4x4_stride2_rows(
            rows,
            self.kernel.val(),
            self.bias.val(),
            dims,
            activation,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{from_rows, to_rows};
    use burn::tensor::{Distribution, activation};

    fn max_abs_difference<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        let host = |t: Tensor<D>| t.into_data().try_to_vec::<f32>().expect("f32");
        crate::test_support::max_abs_difference(&host(a), &host(b))
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
        let burns = reference.forward(input.clone());
        assert!(max_abs_difference(burns, conv.forward(input.clone())) < 1e-5);
        for (relu, fused) in [(false, Activation::Identity), (true, Activation::Relu)] {
            let nchw = conv.forward(input.clone());
            assert_eq!(nchw.dims(), [3, 7, 4, 3]);
            let nchw = if relu { activation::relu(nchw) } else { nchw };
            let rows = from_rows(
                conv.forward_rows(to_rows(input.clone()), [3, 8, 6], fused),
                [3, 4, 3],
            );
            assert_same_with_gradients((nchw, rows), &input, &conv.kernel, &conv.bias);
        }
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
        let burns = reference.forward(input.clone());
        assert!(max_abs_difference(burns, up.forward(input.clone())) < 1e-5);
        for (relu, fused) in [(false, Activation::Identity), (true, Activation::Relu)] {
            let nchw = up.forward(input.clone());
            assert_eq!(nchw.dims(), [2, 4, 6, 10]);
            let nchw = if relu { activation::relu(nchw) } else { nchw };
            let rows = from_rows(
                up.forward_rows(to_rows(input.clone()), [2, 3, 5], fused),
                [2, 6, 10],
            );
            assert_same_with_gradients((nchw, rows), &input, &up.kernel, &up.bias);
        }
    }
}
