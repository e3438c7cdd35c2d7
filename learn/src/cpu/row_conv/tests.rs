//! The row convolutions against burn's own, gradients included, and the kernels' invariants.

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

use crate::cpu::{from_rows, to_rows};

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
                Tensor::<4>::random(shape, Distribution::Uniform(-0.5, 0.5), &device).require_grad()
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
                let [input, conv_weight, up_weight] = weights4.clone().map(Tensor::require_grad);
                let [conv_bias, up_bias] = weights1.clone().map(Tensor::require_grad);
                let [_, conv] = conv_both_ways(&input, &conv_weight, &conv_bias, Activation::Relu);
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
