//! The operations themselves: forward passes with bias and activation, the flex backend's
//! implementation, and the autodiff backward pass.

use super::*;

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
