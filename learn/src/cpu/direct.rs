//! The image encoder's convolution stack as direct, forward-only CPU kernels: no graph, no
//! gradients, for the EMA target's encodes in training and for inference.
//!
//! The training convolutions ([`crate::cpu::row_conv`]) go through burn's tensors and autodiff
//! graph, one operation per layer, and check every tap against the map's edges. Here the whole
//! stack runs on host buffers, one slice of images at a time: each 3×3, stride-2, padding-1
//! convolution reads its input where it lies, every output pixel's accumulators start at the
//! bias, take one fused multiply-add per input value and kernel column, and are stored once,
//! through the ReLU, in register blocks of several pixels. The padding is a zero border (one
//! row above and one column left of each map) that every layer writes its output into, so no
//! tap tests bounds.
//!
//! SIMD comes from [`pulp`], chosen at run time (AVX-512, AVX2+FMA, or scalar); output rows are
//! spread over the current rayon pool. Each output value is summed by one thread in a fixed
//! order, so results do not depend on the thread count. Channels are padded to
//! [`CHANNEL_BLOCK`] inside the kernels (zero weights and bias: the padded channels stay zero).

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use crate::LearnError;

/// Output channels are stored in multiples of this many values: the widest SIMD vector.
pub const CHANNEL_BLOCK: usize = 16;

/// Images per slice of a batch: every layer's map of one slice stays a few MB, reused across
/// slices.
const IMAGES_PER_SLICE: usize = 32;

/// How the input pixels of [`DirectConvStack::forward`] are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    /// `[B, C, H, W]`, as the trainer's batches hold their images.
    ChannelsFirst,
    /// `[B, H, W, C]`, channels-last rows, as an `rgb8` image is.
    ChannelsLast,
}

/// One convolution's weights in host memory, as [`crate::cpu::conv::StridedConv`] keeps them.
#[derive(Debug, Clone)]
pub struct HostConvWeights {
    /// The GEMM matrix `[(ky, kx, C_in), C_out]`.
    pub kernel: Vec<f32>,
    /// `[C_out]`.
    pub bias: Vec<f32>,
    /// `[C_in, C_out]`.
    pub channels: [usize; 2],
}

/// One 3×3, stride-2, padding-1 convolution with bias and ReLU.
#[derive(Debug, Clone)]
struct DirectConv {
    /// Values per input pixel: the input channels, or the previous layer's `padded_out`.
    in_stride: usize,
    out_channels: usize,
    /// `out_channels` rounded up to [`CHANNEL_BLOCK`].
    padded_out: usize,
    /// `[(ky, kx, in_stride), padded_out]`: zero rows for padded input channels, zero columns
    /// for padded output channels. For one `ky`, the rows of the three `kx` taps follow each
    /// other as the three input pixels under them do in a map row.
    kernel: Vec<f32>,
    /// `[padded_out]`.
    bias: Vec<f32>,
}

/// A stack of 3×3, stride-2, padding-1 convolutions, each followed by a ReLU, with its weights
/// in host memory.
#[derive(Debug, Clone)]
pub struct DirectConvStack {
    layers: Vec<DirectConv>,
    input_channels: usize,
}

/// A map with a zero border above and left: `[B, H + 1, W + 1, stride]`, real pixel `(y, x)` at
/// `(y + 1, x + 1)`, `channels` of the `stride` values per pixel in use.
struct BorderedMap {
    values: Vec<f32>,
    height: usize,
    width: usize,
    stride: usize,
}

impl BorderedMap {
    fn zeroed(batch: usize, height: usize, width: usize, stride: usize) -> Self {
        Self {
            values: vec![0.0; batch * (height + 1) * (width + 1) * stride],
            height,
            width,
            stride,
        }
    }

    fn row_len(&self) -> usize {
        (self.width + 1) * self.stride
    }

    fn image_len(&self) -> usize {
        (self.height + 1) * self.row_len()
    }
}

impl DirectConvStack {
    /// A stack from its layers' weights, first layer first.
    pub fn new(layers: Vec<HostConvWeights>) -> Result<Self, LearnError> {
        let Some(&HostConvWeights {
            channels: [input_channels, _],
            ..
        }) = layers.first()
        else {
            return Err(LearnError::InvalidConfig(
                "a convolution stack needs at least one layer".into(),
            ));
        };
        let mut expected_in = input_channels;
        let mut in_stride = input_channels;
        let mut direct = Vec::with_capacity(layers.len());
        for (index, layer) in layers.into_iter().enumerate() {
            let HostConvWeights {
                kernel,
                bias,
                channels: [in_channels, out_channels],
            } = layer;
            if in_channels != expected_in
                || in_channels == 0
                || out_channels == 0
                || kernel.len() != 9 * in_channels * out_channels
                || bias.len() != out_channels
            {
                return Err(LearnError::InvalidConfig(format!(
                    "convolution {index}: kernel of {} and bias of {} values do not fit \
                     [{in_channels}, {out_channels}] channels after {expected_in}",
                    kernel.len(),
                    bias.len()
                )));
            }
            let padded_out = out_channels.div_ceil(CHANNEL_BLOCK) * CHANNEL_BLOCK;
            let mut padded_kernel = vec![0.0; 9 * in_stride * padded_out];
            for (from, to) in kernel
                .chunks_exact(in_channels * out_channels)
                .zip(padded_kernel.chunks_exact_mut(in_stride * padded_out))
            {
                for (from, to) in from
                    .chunks_exact(out_channels)
                    .zip(to.chunks_exact_mut(padded_out))
                {
                    to[..out_channels].copy_from_slice(from);
                }
            }
            let mut padded_bias = vec![0.0; padded_out];
            padded_bias[..out_channels].copy_from_slice(&bias);
            direct.push(DirectConv {
                in_stride,
                out_channels,
                padded_out,
                kernel: padded_kernel,
                bias: padded_bias,
            });
            expected_in = out_channels;
            in_stride = padded_out;
        }
        Ok(Self {
            layers: direct,
            input_channels,
        })
    }

    /// Output channels of the last layer.
    pub fn out_channels(&self) -> usize {
        self.layers.last().map_or(0, |layer| layer.out_channels)
    }

    /// Side shrink factor of the stack.
    pub fn downsample(&self) -> usize {
        // The stack comes from a validated encoder (at most `MAX_CONV_LAYERS` layers).
        1usize << self.layers.len().min(crate::model::MAX_CONV_LAYERS)
    }

    /// Runs the stack on the images of `parts`, one after the other: a batch held in several
    /// buffers is encoded in one pass, its feature maps allocated once.
    ///
    /// # Shapes
    /// - `parts`: each `[B_i, C, H, W]` or `[B_i, H, W, C]` (see `layout`), `[height, width]` =
    ///   `[H, W]`, multiples of [`Self::downsample`]
    /// - output: channels-last `[ΣB_i, H/f, W/f, C_out]` with `f` = [`Self::downsample`]
    pub fn forward(
        &self,
        parts: &[&[f32]],
        layout: PixelLayout,
        dims: [usize; 2],
    ) -> Result<Vec<f32>, LearnError> {
        self.forward_on(Arch::new(), parts, layout, dims)
    }

    /// Images in `parts` of `[height, width]` pixels, or the reason they do not fit the stack.
    pub fn image_count(
        &self,
        parts: &[&[f32]],
        [height, width]: [usize; 2],
    ) -> Result<usize, LearnError> {
        let factor = self.downsample();
        let channels = self.input_channels;
        if height == 0
            || width == 0
            || !height.is_multiple_of(factor)
            || !width.is_multiple_of(factor)
        {
            return Err(LearnError::BadInput(format!(
                "{width}x{height} images do not fit {} stride-2 convolutions",
                self.layers.len()
            )));
        }
        let image_len = channels * height * width;
        parts.iter().try_fold(0, |count, part| {
            if part.len().is_multiple_of(image_len) {
                Ok(count + part.len() / image_len)
            } else {
                Err(LearnError::BadInput(format!(
                    "{} pixel values are no whole number of {width}x{height}x{channels} images",
                    part.len()
                )))
            }
        })
    }

    /// [`Self::forward`] with the instruction set `arch`.
    fn forward_on(
        &self,
        arch: Arch,
        parts: &[&[f32]],
        layout: PixelLayout,
        [height, width]: [usize; 2],
    ) -> Result<Vec<f32>, LearnError> {
        let batch = self.image_count(parts, [height, width])?;
        let factor = self.downsample();
        let channels = self.input_channels;
        let image_len = channels * height * width;
        let (out_height, out_width) = (height / factor, width / factor);
        let out_channels = self.out_channels();
        let out_image = out_height * out_width * out_channels;
        let mut output = vec![0.0; batch * out_image];
        let slice = IMAGES_PER_SLICE.min(batch.max(1));
        // One bordered map per layer boundary, sized for a full slice and reused: only their
        // interiors are written, so the zero borders stay zero.
        let mut maps = Vec::with_capacity(self.layers.len() + 1);
        maps.push(BorderedMap::zeroed(slice, height, width, channels));
        let (mut map_height, mut map_width) = (height, width);
        for layer in &self.layers {
            (map_height, map_width) = (map_height / 2, map_width / 2);
            maps.push(BorderedMap::zeroed(
                slice,
                map_height,
                map_width,
                layer.padded_out,
            ));
        }
        let mut out_start = 0;
        for images in parts.iter().flat_map(|part| part.chunks(slice * image_len)) {
            let count = images.len() / image_len;
            let out = &mut output[out_start..out_start + count * out_image];
            out_start += count * out_image;
            fill_input(&mut maps[0], images, layout, count);
            for (index, layer) in self.layers.iter().enumerate() {
                let (before, after) = maps.split_at_mut(index + 1);
                layer.forward(arch, &before[index], &mut after[0], count);
            }
            let last = &maps[self.layers.len()];
            for (image, out_image_values) in out.chunks_mut(out_image).enumerate() {
                for (y, out_row) in out_image_values
                    .chunks_mut(out_width * out_channels)
                    .enumerate()
                {
                    let row_start = image * last.image_len() + (y + 1) * last.row_len();
                    for (x, pixel) in out_row.chunks_mut(out_channels).enumerate() {
                        let start = row_start + (x + 1) * last.stride;
                        pixel.copy_from_slice(&last.values[start..start + out_channels]);
                    }
                }
            }
        }
        Ok(output)
    }
}

/// Writes `count` images into the interior of `map` (stride = channels).
fn fill_input(map: &mut BorderedMap, images: &[f32], layout: PixelLayout, count: usize) {
    let (height, width, channels) = (map.height, map.width, map.stride);
    let (image_len, row_len) = (map.image_len(), map.row_len());
    let plane = height * width;
    map.values[..count * image_len]
        .par_chunks_mut(image_len)
        .zip(images.par_chunks(channels * plane))
        .for_each(|(bordered, image)| {
            for y in 0..height {
                let row = &mut bordered[(y + 1) * row_len + channels..(y + 2) * row_len];
                match layout {
                    PixelLayout::ChannelsLast => {
                        row.copy_from_slice(
                            &image[y * width * channels..(y + 1) * width * channels],
                        );
                    }
                    PixelLayout::ChannelsFirst => {
                        // One plane row at a time, read in order, written every `channels`.
                        for channel in 0..channels {
                            let plane_row = &image[channel * plane + y * width..][..width];
                            for (target, value) in row
                                .iter_mut()
                                .skip(channel)
                                .step_by(channels)
                                .zip(plane_row)
                            {
                                *target = *value;
                            }
                        }
                    }
                }
            }
        });
}

impl DirectConv {
    /// `input` (`count` images) → interior of `output`, through the ReLU.
    fn forward(&self, arch: Arch, input: &BorderedMap, output: &mut BorderedMap, count: usize) {
        debug_assert_eq!(input.stride, self.in_stride);
        let (image_len, row_len) = (output.image_len(), output.row_len());
        let (in_image, in_row) = (input.image_len(), input.row_len());
        let out_height = output.height;
        output.values[..count * image_len]
            .par_chunks_mut(row_len)
            .enumerate()
            .with_min_len(2)
            .for_each(|(row_index, row)| {
                let (image, bordered_y) =
                    (row_index / (out_height + 1), row_index % (out_height + 1));
                if bordered_y == 0 {
                    return;
                }
                let y = bordered_y - 1;
                // Output row y reads bordered input rows 2y, 2y + 1, 2y + 2.
                let first = image * in_image + 2 * y * in_row;
                arch.dispatch(RowKernel {
                    conv: self,
                    rows: [
                        &input.values[first..first + in_row],
                        &input.values[first + in_row..first + 2 * in_row],
                        &input.values[first + 2 * in_row..first + 3 * in_row],
                    ],
                    out: &mut row[output.stride..],
                });
            });
    }
}

/// One output row of one convolution.
struct RowKernel<'a> {
    conv: &'a DirectConv,
    /// The three bordered input rows under the output row.
    rows: [&'a [f32]; 3],
    /// The output row's pixels, `padded_out` values each.
    out: &'a mut [f32],
}

impl WithSimd for RowKernel<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        let vectors = self.conv.padded_out / lanes;
        let (kernel, _) = S::as_simd_f32s(&self.conv.kernel);
        let (bias, _) = S::as_simd_f32s(&self.conv.bias);
        let (out, _) = S::as_mut_simd_f32s(self.out);
        let rows = Rows {
            rows: self.rows,
            in_stride: self.conv.in_stride,
            kernel,
            bias,
            vectors,
        };
        // Accumulators per block: half the vector registers (32 with AVX-512, 16 otherwise).
        let wide = lanes >= 16;
        let mut group = 0;
        while group < vectors {
            let width = (vectors - group).min(4);
            match (width, wide) {
                (1, _) => rows.group::<S, 1, 8>(simd, group, out),
                (2, true) => rows.group::<S, 2, 8>(simd, group, out),
                (2, false) => rows.group::<S, 2, 4>(simd, group, out),
                (3, true) => rows.group::<S, 3, 4>(simd, group, out),
                (3, false) => rows.group::<S, 3, 2>(simd, group, out),
                (_, true) => rows.group::<S, 4, 4>(simd, group, out),
                (_, false) => rows.group::<S, 4, 2>(simd, group, out),
            }
            group += width;
        }
    }
}

struct Rows<'a, V> {
    rows: [&'a [f32]; 3],
    in_stride: usize,
    /// `[(ky, kx, in_stride), vectors]`.
    kernel: &'a [V],
    bias: &'a [V],
    vectors: usize,
}

impl<V: Copy> Rows<'_, V> {
    /// Output vectors `group..group + NV` of every pixel of the row, `PIXELS` pixels at a time
    /// (the rest one at a time). The model's input strides (RGB, 16, 32 and 64 channels) are
    /// compile-time constants in the kernel: every value of a block is then read at a fixed
    /// offset from one pointer.
    #[inline(always)]
    fn group<S: Simd<f32s = V>, const NV: usize, const PIXELS: usize>(
        &self,
        simd: S,
        group: usize,
        out: &mut [V],
    ) {
        match self.in_stride {
            3 => self.group_with::<S, NV, PIXELS, 3>(simd, group, out),
            16 => self.group_with::<S, NV, PIXELS, 16>(simd, group, out),
            32 => self.group_with::<S, NV, PIXELS, 32>(simd, group, out),
            64 => self.group_with::<S, NV, PIXELS, 64>(simd, group, out),
            _ => self.group_with::<S, NV, PIXELS, 0>(simd, group, out),
        }
    }

    /// [`Self::group`] with input stride `STRIDE` (`0`: read at run time).
    #[inline(always)]
    fn group_with<S: Simd<f32s = V>, const NV: usize, const PIXELS: usize, const STRIDE: usize>(
        &self,
        simd: S,
        group: usize,
        out: &mut [V],
    ) {
        let out_width = out.len() / self.vectors;
        let mut x = 0;
        while x + PIXELS <= out_width {
            self.block::<S, NV, PIXELS, STRIDE>(simd, group, x, out);
            x += PIXELS;
        }
        while x < out_width {
            self.block::<S, NV, 1, STRIDE>(simd, group, x, out);
            x += 1;
        }
    }

    /// Output pixels `x..x + PIXELS`, vectors `group..group + NV`.
    #[inline(always)]
    fn block<S: Simd<f32s = V>, const NV: usize, const PIXELS: usize, const STRIDE: usize>(
        &self,
        simd: S,
        group: usize,
        x: usize,
        out: &mut [V],
    ) {
        let bias: [V; NV] = std::array::from_fn(|v| self.bias[group + v]);
        let mut acc = [bias; PIXELS];
        let vectors = self.vectors;
        let stride = if STRIDE > 0 { STRIDE } else { self.in_stride };
        // Under one kernel row, output pixel x + p reads the three input pixels from bordered
        // column 2(x + p): `3 · stride` consecutive values, against `3 · stride` kernel rows.
        let taps_len = 3 * stride;
        for (ky, row) in self.rows.iter().enumerate() {
            let taps = &self.kernel[ky * taps_len * vectors..][..taps_len * vectors];
            // The block's input under this kernel row; pixel p's taps start at 2p · stride.
            let span = &row[2 * x * stride..][..2 * (PIXELS - 1) * stride + taps_len];
            for (tap, weights) in (0..taps_len).zip(taps.chunks_exact(vectors)) {
                let weights: [V; NV] = std::array::from_fn(|v| weights[group + v]);
                for (p, accumulators) in acc.iter_mut().enumerate() {
                    let value = simd.splat_f32s(span[2 * p * stride + tap]);
                    for v in 0..NV {
                        accumulators[v] = simd.mul_add_e_f32s(value, weights[v], accumulators[v]);
                    }
                }
            }
        }
        let zero = simd.splat_f32s(0.0);
        for (p, pixel) in acc.iter().enumerate() {
            for (v, value) in pixel.iter().enumerate() {
                out[(x + p) * vectors + group + v] = simd.max_f32s(*value, zero);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::conv::StridedConvConfig;
    use crate::cpu::to_rows;
    use crate::test_support::max_abs_difference;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// A stack of random convolutions with `channels` (input first), random NCHW images of
    /// `[batch, height, width]`, and what the training convolutions of `crate::cpu::conv` compute
    /// on them (with the ReLUs, channels-last out).
    struct Case {
        stack: DirectConvStack,
        images: Tensor<4>,
        expected: Vec<f32>,
    }

    fn random_case(channels: &[usize], [batch, height, width]: [usize; 3]) -> Case {
        let _generator = crate::trainer::generator_lock();
        let device = Device::flex();
        let convs: Vec<_> = channels
            .windows(2)
            .map(|pair| StridedConvConfig::new([pair[0], pair[1]]).init(&device))
            .collect();
        let layers = convs
            .iter()
            .map(|conv| conv.host_weights().expect("weights"))
            .collect();
        let images = Tensor::<4>::random(
            [batch, channels[0], height, width],
            Distribution::Uniform(-0.5, 0.5),
            &device,
        );
        let (mut rows, mut side) = (to_rows(images.clone()), [height, width]);
        for conv in &convs {
            rows = conv.forward_rows(
                rows,
                [batch, side[0], side[1]],
                crate::cpu::conv::Activation::Relu,
            );
            side = [side[0] / 2, side[1] / 2];
        }
        Case {
            stack: DirectConvStack::new(layers).expect("stack"),
            images,
            expected: rows.into_data().try_to_vec::<f32>().expect("f32"),
        }
    }

    fn values(tensor: Tensor<4>) -> Vec<f32> {
        tensor.into_data().try_to_vec::<f32>().expect("f32")
    }

    #[test]
    fn direct_stack_computes_what_the_training_convolutions_compute_in_both_layouts() {
        // Channel counts off the SIMD width (padding), one layer wider than four vectors of
        // AVX-512 (several channel groups), and more images than one slice.
        let [batch, height, width] = [IMAGES_PER_SLICE + 3, 32, 16];
        let case = random_case(&[3, 5, 20, 70, 16], [batch, height, width]);
        assert_eq!(
            case.expected.len(),
            batch * (height / 16) * (width / 16) * 16
        );

        let nchw = values(case.images.clone());
        let direct = case
            .stack
            .forward(&[&nchw], PixelLayout::ChannelsFirst, [height, width])
            .expect("forward");
        let difference = max_abs_difference(&case.expected, &direct);
        assert!(difference < 1e-5, "channels-first differs by {difference}");

        let rows = values(case.images.permute([0, 2, 3, 1]));
        let from_rows = case
            .stack
            .forward(&[&rows], PixelLayout::ChannelsLast, [height, width])
            .expect("forward");
        assert_eq!(direct, from_rows, "both layouts give the same values");

        // The same batch held in three buffers, split off the slice boundaries.
        let image_len = 3 * height * width;
        let (first, rest) = nchw.split_at(5 * image_len);
        let (second, third) = rest.split_at((IMAGES_PER_SLICE - 3) * image_len);
        let from_parts = case
            .stack
            .forward(
                &[first, second, third],
                PixelLayout::ChannelsFirst,
                [height, width],
            )
            .expect("forward");
        assert_eq!(direct, from_parts, "a batch in parts gives the same values");
        assert!(
            case.expected.iter().any(|v| *v > 0.0),
            "not all clipped by the ReLU"
        );
    }

    #[test]
    fn encoder_through_direct_convolutions_matches_its_tensor_forward() {
        let _generator = crate::trainer::generator_lock();
        let device = Device::flex();
        let encoder = crate::model::ImageEncoderConfig::new().init(&device);
        let images = Tensor::<4>::random([3, 3, 64, 64], Distribution::Uniform(-0.5, 0.5), &device);
        let expected = encoder
            .forward(images.clone())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let stack = encoder.direct_stack().expect("stack");
        let pixels = values(images);
        let direct = encoder
            .forward_direct(
                &stack,
                &[&pixels],
                PixelLayout::ChannelsFirst,
                [64, 64],
                &device,
            )
            .expect("forward")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let difference = max_abs_difference(&expected, &direct);
        assert!(difference < 1e-5, "features differ by {difference}");
    }

    /// Every instruction set the kernels can be dispatched to on this machine (AVX-512,
    /// AVX2+FMA, scalar) computes the same convolutions; each has its own block sizes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn direct_stack_computes_the_same_with_every_instruction_set() {
        let case = random_case(&[3, 5, 20, 70, 16], [3, 16, 32]);
        let pixels = values(case.images);
        let mut arches = vec![("scalar", Arch::Scalar)];
        if let Some(simd) = pulp::x86::V3::try_new() {
            arches.push(("AVX2+FMA", Arch::V3(simd)));
        }
        if let Some(simd) = pulp::x86::V4::try_new() {
            arches.push(("AVX-512", Arch::V4(simd)));
        }
        for (name, arch) in arches {
            let direct = case
                .stack
                .forward_on(arch, &[&pixels], PixelLayout::ChannelsFirst, [16, 32])
                .expect("forward");
            let difference = max_abs_difference(&case.expected, &direct);
            assert!(difference < 1e-5, "{name} differs by {difference}");
        }
    }

    #[test]
    fn direct_stack_gives_the_same_bits_on_one_thread_and_on_several() {
        let case = random_case(&[3, 32, 32, 64, 64], [5, 64, 64]);
        let pixels = values(case.images);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool")
                .install(|| {
                    case.stack
                        .forward(&[&pixels], PixelLayout::ChannelsFirst, [64, 64])
                })
                .expect("forward")
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn direct_stack_refuses_inputs_that_do_not_fit() {
        let case = random_case(&[3, 8, 8], [1, 8, 8]);
        let stack = case.stack;
        let too_short = vec![0.0; 3 * 8 * 8 - 1];
        assert!(matches!(
            stack.forward(&[&too_short], PixelLayout::ChannelsLast, [8, 8]),
            Err(LearnError::BadInput(_))
        ));
        let odd = vec![0.0; 3 * 6 * 6];
        assert!(matches!(
            stack.forward(&[&odd], PixelLayout::ChannelsLast, [6, 6]),
            Err(LearnError::BadInput(_))
        ));
        assert!(matches!(
            DirectConvStack::new(vec![HostConvWeights {
                kernel: vec![0.0; 9 * 3 * 4],
                bias: vec![0.0; 4],
                channels: [3, 5],
            }]),
            Err(LearnError::InvalidConfig(_))
        ));
        assert!(matches!(
            DirectConvStack::new(Vec::new()),
            Err(LearnError::InvalidConfig(_))
        ));
        let empty = stack
            .forward(&[], PixelLayout::ChannelsFirst, [8, 8])
            .expect("an empty batch");
        assert!(empty.is_empty());
    }
}
