//! The networks: an image encoder and a proprio encoder fused into the state embedding, the
//! heads the objectives need, and the action-conditioned latent dynamics.
//!
//! Every module comes with its `Config`; shapes are documented on each `forward`
//! (`B` batch, `C` channels, `H`×`W` image, `P` proprio features, `A` action components,
//! `D` state embedding).

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;
use burn::tensor::activation;

use crate::LearnError;
use crate::cpu::conv::{Activation, StridedConv, StridedConvConfig, UpConv, UpConvConfig};
use crate::cpu::direct::{DirectConvStack, PixelLayout};
use crate::cpu::{ConvLayout, Pixels};

mod dynamics;

pub use dynamics::{CarriedProprio, Dynamics, DynamicsConfig};

/// Small strided conv net from an RGB image to an image feature vector.
#[derive(Config, Debug)]
pub struct ImageEncoderConfig {
    /// Image width, pixels (a multiple of 2^layers).
    #[config(default = 64)]
    pub width: usize,
    /// Image height, pixels (a multiple of 2^layers).
    #[config(default = 64)]
    pub height: usize,
    /// Output channels of each stride-2 3×3 conv.
    #[config(default = "vec![32, 32, 64, 64]")]
    pub channels: Vec<usize>,
    /// Size of the image feature vector.
    #[config(default = 128)]
    pub feature_dim: usize,
}

/// Most strided convolutions an image encoder may stack (a 2^12 = 4096-pixel image side).
pub const MAX_CONV_LAYERS: usize = 12;

impl ImageEncoderConfig {
    /// Side shrink factor of the conv stack.
    ///
    /// Saturates for stacks deeper than [`MAX_CONV_LAYERS`] (which [`validate`](Self::validate)
    /// refuses): a config read from a file or a checkpoint never makes it overflow.
    pub fn downsample(&self) -> usize {
        u32::try_from(self.channels.len())
            .ok()
            .and_then(|layers| 1usize.checked_shl(layers))
            .unwrap_or(usize::MAX)
    }

    /// Checks that the image size fits the conv stack.
    pub fn validate(&self) -> Result<(), LearnError> {
        if self.channels.len() > MAX_CONV_LAYERS {
            return Err(LearnError::InvalidConfig(format!(
                "image encoder has {} conv layers, at most {MAX_CONV_LAYERS} (each halves the image)",
                self.channels.len()
            )));
        }
        let f = self.downsample();
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(LearnError::InvalidConfig(
                "image encoder needs at least one conv with >0 channels".into(),
            ));
        }
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(f)
            || !self.height.is_multiple_of(f)
        {
            return Err(LearnError::InvalidConfig(format!(
                "image {}x{} must be a non-zero multiple of {f} for {} stride-2 convs",
                self.width,
                self.height,
                self.channels.len()
            )));
        }
        if self.feature_dim == 0 {
            return Err(LearnError::InvalidConfig("feature_dim must be > 0".into()));
        }
        Ok(())
    }

    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> ImageEncoder {
        let mut convs = Vec::with_capacity(self.channels.len());
        let mut input = 3;
        for &output in &self.channels {
            convs.push(StridedConvConfig::new([input, output]).init(device));
            input = output;
        }
        let f = self.downsample();
        let flat = input * (self.width / f) * (self.height / f);
        ImageEncoder {
            convs,
            head: LinearConfig::new(flat, self.feature_dim).init(device),
            activation: Relu::new(),
        }
    }
}

/// See [`ImageEncoderConfig`].
#[derive(Module, Debug)]
pub struct ImageEncoder {
    convs: Vec<StridedConv>,
    head: Linear,
    activation: Relu,
}

impl ImageEncoder {
    /// # Shapes
    /// - `images`: `[B, 3, H, W]`, values centred on 0 (`byte / 255 - 0.5`)
    /// - output: `[B, feature_dim]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let [batch, _, height, width] = images.dims();
        self.features(Pixels::Nchw(images), [batch, height, width])
    }

    /// [`Self::forward`] from channels-last pixel rows, the layout of an `rgb8` image: no
    /// transposition on the way in on the CPU.
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, 3]`
    /// - output: `[B, feature_dim]`
    pub fn forward_rows(&self, rows: Tensor<2>, dims: [usize; 3]) -> Tensor<2> {
        self.features(Pixels::Rows(rows), dims)
    }

    /// The convolutions in the layout of the pixels' device (see [`crate::cpu`]): on the CPU as
    /// [`crate::cpu::row_conv`] operations on channels-last rows, on GPU backends as burn's
    /// convolutions on NCHW; then the head.
    fn features(&self, pixels: Pixels, [batch, height, width]: [usize; 3]) -> Tensor<2> {
        match ConvLayout::of(&pixels.device()) {
            ConvLayout::Rows => {
                let (mut rows, mut height, mut width) = (pixels.into_rows(), height, width);
                for conv in &self.convs {
                    rows = conv.forward_rows(rows, [batch, height, width], Activation::Relu);
                    (height, width) = (height / 2, width / 2);
                }
                self.head_from_rows(rows, batch)
            }
            ConvLayout::Nchw => {
                let mut x = pixels.into_nchw([batch, height, width]);
                for conv in &self.convs {
                    x = self.activation.forward(conv.forward(x));
                }
                let x: Tensor<2> = x.flatten(1, 3);
                self.head.forward(x)
            }
        }
    }

    /// The convolution stack as direct, forward-only CPU kernels with its current weights (see
    /// [`crate::cpu::direct`]); for the plain (non-autodiff) CPU device.
    pub fn direct_stack(&self) -> Result<DirectConvStack, LearnError> {
        let layers = self
            .convs
            .iter()
            .map(StridedConv::host_weights)
            .collect::<Result<Vec<_>, _>>()?;
        DirectConvStack::new(layers)
    }

    /// [`Self::forward`] with the convolutions run by `stack` (from [`Self::direct_stack`]) on
    /// host pixels; the head runs on `device`. No gradients flow.
    ///
    /// # Shapes
    /// - `parts`: the batch's images, each part `[B_i, 3, H, W]` or `[B_i, H, W, 3]` (see
    ///   `layout`), values centred on 0; `[height, width]` = `[H, W]`
    /// - output: `[ΣB_i, feature_dim]`
    pub fn forward_direct(
        &self,
        stack: &DirectConvStack,
        parts: &[&[f32]],
        layout: PixelLayout,
        [height, width]: [usize; 2],
        device: &Device,
    ) -> Result<Tensor<2>, LearnError> {
        let batch = stack.image_count(parts, [height, width])?;
        let maps = stack.forward(parts, layout, [height, width])?;
        let factor = stack.downsample();
        let cells = (height / factor) * (width / factor);
        let rows = Tensor::<2>::from_data(
            TensorData::new(maps, [batch * cells, stack.out_channels()]),
            device,
        );
        Ok(self.head_from_rows(rows, batch))
    }

    /// The head on the last feature map's channels-last rows, `[B·cells, C]` → `[B, feature_dim]`.
    fn head_from_rows(&self, rows: Tensor<2>, batch: usize) -> Tensor<2> {
        // The head takes the NCHW flattening, `(C, H, W)`.
        let [total, channels] = rows.dims();
        let cells = total / batch.max(1);
        let x = rows
            .reshape([batch, cells, channels])
            .swap_dims(1, 2)
            .reshape([batch, channels * cells]);
        self.head.forward(x)
    }
}

/// A perceptron: `input → hidden` (ReLU), as many `hidden → hidden` (ReLU) layers as
/// `extra_hidden_layers` says, then `hidden → output`. Two layers by default.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Input size.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Output size.
    pub output: usize,
    /// Hidden layers after the first. `0` adds no parameters, so a perceptron of two layers
    /// reads the records written before this option existed.
    #[config(default = 0)]
    pub extra_hidden_layers: usize,
}

impl MlpConfig {
    /// Builds the perceptron on `device`.
    pub fn init(&self, device: &Device) -> Mlp {
        Mlp {
            first: LinearConfig::new(self.input, self.hidden).init(device),
            middle: (0..self.extra_hidden_layers)
                .map(|_| LinearConfig::new(self.hidden, self.hidden).init(device))
                .collect(),
            second: LinearConfig::new(self.hidden, self.output).init(device),
            activation: Relu::new(),
        }
    }
}

/// See [`MlpConfig`].
#[derive(Module, Debug)]
pub struct Mlp {
    first: Linear,
    middle: Vec<Linear>,
    second: Linear,
    activation: Relu,
}

impl Mlp {
    /// # Shapes
    /// - `x`: `[B, input]`
    /// - output: `[B, output]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut hidden = self.activation.forward(self.first.forward(x));
        for layer in &self.middle {
            hidden = self.activation.forward(layer.forward(hidden));
        }
        self.second.forward(hidden)
    }
}

/// The state encoder: image features and proprio features fused into the state embedding `z`,
/// which is what the robot publishes.
#[derive(Config, Debug)]
pub struct StateEncoderConfig {
    /// The image branch.
    pub image: ImageEncoderConfig,
    /// Proprio features per sample (`0`: image only).
    pub proprio_dim: usize,
    /// Hidden and output size of the proprio MLP.
    #[config(default = 32)]
    pub proprio_features: usize,
    /// Size of the state embedding `D`.
    #[config(default = 128)]
    pub embed_dim: usize,
}

impl StateEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> StateEncoder {
        let proprio = (self.proprio_dim > 0).then(|| {
            MlpConfig::new(
                self.proprio_dim,
                self.proprio_features,
                self.proprio_features,
            )
            .init(device)
        });
        let fused_in = self.image.feature_dim
            + if proprio.is_some() {
                self.proprio_features
            } else {
                0
            };
        StateEncoder {
            image: self.image.init(device),
            proprio,
            fuse: LinearConfig::new(fused_in, self.embed_dim).init(device),
            norm: LayerNormConfig::new(self.embed_dim).init(device),
            activation: Relu::new(),
        }
    }
}

/// See [`StateEncoderConfig`].
#[derive(Module, Debug)]
pub struct StateEncoder {
    image: ImageEncoder,
    proprio: Option<Mlp>,
    fuse: Linear,
    norm: LayerNorm,
    activation: Relu,
}

impl StateEncoder {
    /// # Shapes
    /// - `images`: `[B, 3, H, W]`
    /// - `proprio`: `[B, P]` (ignored when the encoder has no proprio branch)
    /// - output: `[B, D]`
    pub fn forward(&self, images: Tensor<4>, proprio: Tensor<2>) -> Tensor<2> {
        self.fuse(self.image_features(images), proprio)
    }

    /// The image branch alone (before fusion).
    ///
    /// # Shapes
    /// - `images`: `[B, 3, H, W]`
    /// - output: `[B, feature_dim]`
    pub fn image_features(&self, images: Tensor<4>) -> Tensor<2> {
        self.activation.forward(self.image.forward(images))
    }

    /// [`Self::image_features`] from channels-last pixel rows (see [`ImageEncoder::forward_rows`]).
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, 3]`, `dims` = `[B, H, W]`
    /// - output: `[B, feature_dim]`
    pub fn image_features_rows(&self, rows: Tensor<2>, dims: [usize; 3]) -> Tensor<2> {
        self.activation.forward(self.image.forward_rows(rows, dims))
    }

    /// [`Self::image_features`] through direct CPU convolutions (see
    /// [`ImageEncoder::forward_direct`]).
    ///
    /// # Shapes
    /// - `parts`: each `[B_i, 3, H, W]` or `[B_i, H, W, 3]` (see `layout`), values centred on 0;
    ///   `dims` = `[H, W]`
    /// - output: `[ΣB_i, feature_dim]`
    pub fn image_features_direct(
        &self,
        stack: &DirectConvStack,
        parts: &[&[f32]],
        layout: PixelLayout,
        dims: [usize; 2],
        device: &Device,
    ) -> Result<Tensor<2>, LearnError> {
        let features = self
            .image
            .forward_direct(stack, parts, layout, dims, device)?;
        Ok(self.activation.forward(features))
    }

    /// [`Self::forward`] through direct CPU convolutions; the rest runs on `proprio`'s device.
    ///
    /// # Shapes
    /// - `pixels`: `[B, 3, H, W]` or `[B, H, W, 3]` (see `layout`), values centred on 0;
    ///   `dims` = `[H, W]`
    /// - `proprio`: `[B, P]`
    /// - output: `[B, D]`
    pub fn forward_direct(
        &self,
        stack: &DirectConvStack,
        pixels: &[f32],
        layout: PixelLayout,
        dims: [usize; 2],
        proprio: Tensor<2>,
    ) -> Result<Tensor<2>, LearnError> {
        let features =
            self.image_features_direct(stack, &[pixels], layout, dims, &proprio.device())?;
        Ok(self.fuse(features, proprio))
    }

    /// The image branch's convolutions as direct CPU kernels (see [`ImageEncoder::direct_stack`]).
    pub fn direct_stack(&self) -> Result<DirectConvStack, LearnError> {
        self.image.direct_stack()
    }

    /// [`Self::forward`] from channels-last pixel rows (see [`ImageEncoder::forward_rows`]).
    ///
    /// # Shapes
    /// - `rows`: `[B·H·W, 3]`
    /// - `proprio`: `[B, P]`
    /// - output: `[B, D]`
    pub fn forward_rows(
        &self,
        rows: Tensor<2>,
        [batch, height, width]: [usize; 3],
        proprio: Tensor<2>,
    ) -> Tensor<2> {
        let features = self
            .activation
            .forward(self.image.forward_rows(rows, [batch, height, width]));
        self.fuse(features, proprio)
    }

    /// Fuses image features with proprio into the state embedding.
    ///
    /// # Shapes
    /// - `image_features`: `[B, feature_dim]`
    /// - `proprio`: `[B, P]`
    /// - output: `[B, D]`
    pub fn fuse(&self, image_features: Tensor<2>, proprio: Tensor<2>) -> Tensor<2> {
        let fused = match &self.proprio {
            Some(mlp) => Tensor::cat(
                vec![
                    image_features,
                    self.activation.forward(mlp.forward(proprio)),
                ],
                1,
            ),
            None => image_features,
        };
        self.norm.forward(self.fuse.forward(fused))
    }
}

/// A small transposed-conv decoder from the state embedding back to the image.
#[derive(Config, Debug)]
pub struct DecoderConfig {
    /// Embedding size `D`.
    pub embed_dim: usize,
    /// The encoder it mirrors (image size and depth).
    pub image: ImageEncoderConfig,
    /// Channels of the first feature map; halved (to at least 16) at each upsampling.
    #[config(default = 64)]
    pub base_channels: usize,
}

impl DecoderConfig {
    /// Builds the decoder on `device`.
    pub fn init(&self, device: &Device) -> Decoder {
        let f = self.image.downsample();
        let (grid_w, grid_h) = (self.image.width / f, self.image.height / f);
        let mut ups = Vec::new();
        let mut channels = self.base_channels;
        for layer in 0..self.image.channels.len() {
            let last = layer + 1 == self.image.channels.len();
            let output = if last { 3 } else { (channels / 2).max(16) };
            ups.push(UpConvConfig::new([channels, output]).init(device));
            channels = output;
        }
        Decoder {
            project: LinearConfig::new(self.embed_dim, self.base_channels * grid_w * grid_h)
                .init(device),
            ups,
            activation: Relu::new(),
            base_channels: self.base_channels,
            grid: [grid_h, grid_w],
        }
    }
}

/// See [`DecoderConfig`].
#[derive(Module, Debug)]
pub struct Decoder {
    project: Linear,
    ups: Vec<UpConv>,
    activation: Relu,
    base_channels: usize,
    grid: [usize; 2],
}

impl Decoder {
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - output: `[B, 3, H, W]`, in `(-0.5, 0.5)` like the encoder's input
    pub fn forward(&self, state: Tensor<2>) -> Tensor<4> {
        let (pixels, dims) = self.decode(state);
        pixels.into_nchw(dims)
    }

    /// [`Self::forward`] as channels-last pixel rows, the layout the CPU path computes in.
    ///
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - output: `[B·H·W, 3]`, in `(-0.5, 0.5)`
    pub fn forward_rows(&self, state: Tensor<2>) -> Tensor<2> {
        self.decode(state).0.into_rows()
    }

    /// The decoded images in the layout of the state's device (see [`crate::cpu`]), with their
    /// `[B, H, W]`.
    fn decode(&self, state: Tensor<2>) -> (Pixels, [usize; 3]) {
        let [batch, _] = state.dims();
        let x = self.activation.forward(self.project.forward(state));
        match ConvLayout::of(&x.device()) {
            ConvLayout::Rows => {
                let (rows, [height, width]) = self.upsample_rows(x, batch);
                (Pixels::Rows(rows), [batch, height, width])
            }
            ConvLayout::Nchw => {
                let mut x: Tensor<4> =
                    x.reshape([batch, self.base_channels, self.grid[0], self.grid[1]]);
                let last = self.ups.len().saturating_sub(1);
                for (index, up) in self.ups.iter().enumerate() {
                    x = up.forward(x);
                    if index != last {
                        x = self.activation.forward(x);
                    }
                }
                let [_, _, height, width] = x.dims();
                (
                    Pixels::Nchw(activation::sigmoid(x) - 0.5),
                    [batch, height, width],
                )
            }
        }
    }

    /// The transposed convolutions of [`Self::forward`] as [`crate::cpu::row_conv`] operations on
    /// channels-last rows, from the projected `[B, C·h·w]` features; with the output's `[H, W]`.
    fn upsample_rows(&self, projected: Tensor<2>, batch: usize) -> (Tensor<2>, [usize; 2]) {
        let [mut height, mut width] = self.grid;
        let mut rows = projected
            .reshape([batch, self.base_channels, height * width])
            .swap_dims(1, 2)
            .reshape([batch * height * width, self.base_channels]);
        let last = self.ups.len().saturating_sub(1);
        for (index, up) in self.ups.iter().enumerate() {
            // The last layer's output is the image: sigmoid − 0.5, fused.
            let fused = if index == last {
                Activation::CenteredSigmoid
            } else {
                Activation::Relu
            };
            rows = up.forward_rows(rows, [batch, height, width], fused);
            (height, width) = (height * 2, width * 2);
        }
        (rows, [height, width])
    }
}

/// Shapes of the whole world model.
#[derive(Config, Debug)]
pub struct WorldModelConfig {
    /// The state encoder (image + proprio → `z`).
    pub encoder: StateEncoderConfig,
    /// Action components `A`.
    #[config(default = 2)]
    pub action_dim: usize,
    /// Output size of the contrastive projection head.
    #[config(default = 64)]
    pub projection_dim: usize,
    /// Hidden size of the projection head and the masked-prediction head.
    #[config(default = 128)]
    pub head_hidden: usize,
    /// Hidden size of the dynamics MLP.
    #[config(default = 256)]
    pub dynamics_hidden: usize,
    /// Hidden layers of the dynamics MLP, each of `dynamics_hidden` units. Measured with the
    /// ten-minute budget (docs/eval.md, "A deeper dynamics"): three of 256 predict one step at
    /// 0.26–0.41 of copy-last on four seeds (one of 512: 0.34–0.45), for longer training and
    /// planning and no more far goals.
    #[config(default = 1)]
    pub dynamics_layers: usize,
    /// The dynamics carry the proprio beside the state through a rollout (see
    /// [`DynamicsConfig::proprio_dim`]; nothing changes for a model without proprio). Half of
    /// one step's change of the embedding is the robot's speeds, which the base steps at its
    /// acceleration limit; the dynamics step them on their own and move the state with them.
    /// Measured with the ten-minute budget on four seeds (docs/eval.md, "The dynamics carry the
    /// proprio"): one step ahead at 0.33–0.51 of copy-last instead of 0.53–0.60, eight steps
    /// 0.23–0.26 instead of 0.26–0.29, and the new-world pose probe at 0.75–0.89 (0.80–0.85):
    /// below 0.8 on three seeds of four. Off by default.
    #[config(default = false)]
    pub dynamics_proprio: bool,
    /// Build the reconstruction decoder.
    #[config(default = true)]
    pub decoder: bool,
    /// Build the masked-prediction head.
    #[config(default = false)]
    pub masked_head: bool,
    /// Build the inverse-dynamics head (two image-only embeddings → the command between them).
    #[config(default = false)]
    pub inverse_head: bool,
    /// Build the relative-pose head (two image-only embeddings → where the second frame lies
    /// seen from the first, by wheel odometry). On by default: it turns the planner to the
    /// goal's heading (docs/eval.md).
    #[config(default = true)]
    pub odometry_head: bool,
}

impl WorldModelConfig {
    /// The default model for images of `width × height` and `proprio_dim` proprio features.
    pub fn for_inputs(width: usize, height: usize, proprio_dim: usize) -> Self {
        let image = ImageEncoderConfig::new()
            .with_width(width)
            .with_height(height);
        Self::new(StateEncoderConfig::new(image, proprio_dim))
    }

    /// Embedding size `D`.
    pub fn embed_dim(&self) -> usize {
        self.encoder.embed_dim
    }

    /// Checks the shapes fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        self.encoder.image.validate()?;
        if self.encoder.embed_dim == 0 || self.projection_dim == 0 || self.action_dim == 0 {
            return Err(LearnError::InvalidConfig(
                "embed_dim, projection_dim and action_dim must be > 0".into(),
            ));
        }
        if self.dynamics_hidden == 0 || self.dynamics_layers == 0 {
            return Err(LearnError::InvalidConfig(
                "dynamics_hidden and dynamics_layers must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// Shapes of the latent dynamics.
    pub fn dynamics(&self) -> DynamicsConfig {
        let carried = if self.dynamics_proprio {
            self.encoder.proprio_dim
        } else {
            0
        };
        DynamicsConfig::new(self.embed_dim(), self.action_dim)
            .with_hidden(self.dynamics_hidden)
            .with_hidden_layers(self.dynamics_layers)
            .with_proprio_dim(carried)
    }

    /// Shapes of the relative-pose head: `[z at a, z at b]` (`2 D`) → `[x, y, yaw]` of `b`
    /// seen from `a`.
    pub fn relative_pose_head(&self) -> MlpConfig {
        MlpConfig::new(2 * self.embed_dim(), self.head_hidden, RELATIVE_POSE_DIM)
    }

    /// Shapes of the proprio head: a state (`D`) → the proprio felt there (`P`).
    pub fn proprio_head(&self) -> LinearConfig {
        LinearConfig::new(self.embed_dim(), self.encoder.proprio_dim)
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> WorldModel {
        let d = self.encoder.embed_dim;
        WorldModel {
            encoder: self.encoder.init(device),
            projector: MlpConfig::new(d, self.head_hidden, self.projection_dim).init(device),
            dynamics: self.dynamics().init(device),
            proprio_head: (self.encoder.proprio_dim > 0).then(|| self.proprio_head().init(device)),
            decoder: self
                .decoder
                .then(|| DecoderConfig::new(d, self.encoder.image.clone()).init(device)),
            mask_predictor: self
                .masked_head
                .then(|| MlpConfig::new(d, self.head_hidden, d).init(device)),
            inverse_dynamics: self
                .inverse_head
                .then(|| MlpConfig::new(2 * d, self.head_hidden, self.action_dim).init(device)),
            relative_pose: self
                .odometry_head
                .then(|| self.relative_pose_head().init(device)),
        }
    }
}

/// The online world model: encoder, heads and dynamics.
#[derive(Module, Debug)]
pub struct WorldModel {
    /// Image + proprio → state embedding.
    pub encoder: StateEncoder,
    /// State → contrastive projection.
    pub projector: Mlp,
    /// Latent dynamics.
    pub dynamics: Dynamics,
    /// Predicted state → next proprio.
    pub proprio_head: Option<Linear>,
    /// State → image (reconstruction objective, and pictures of predicted futures).
    pub decoder: Option<Decoder>,
    /// Masked-image state → full-image target state.
    pub mask_predictor: Option<Mlp>,
    /// `[state at t, state at t+1]` (image only) → the scaled command at `t`.
    pub inverse_dynamics: Option<Mlp>,
    /// `[state at t, state at t+δ]` (image only) → `[x, y, yaw]` of `t+δ` in `t`'s frame
    /// (metres scaled, radians).
    pub relative_pose: Option<Mlp>,
}

/// Values of a relative pose: `[x, y, yaw]`.
pub const RELATIVE_POSE_DIM: usize = 3;

/// The slowly moving (EMA) copy of the parts that produce targets.
#[derive(Module, Debug)]
pub struct TargetNetwork {
    /// EMA of the online encoder.
    pub encoder: StateEncoder,
    /// EMA of the online projector.
    pub projector: Mlp,
}

/// L2-normalises the rows of `x`.
///
/// # Shapes
/// - `x`: `[B, N]` → `[B, N]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-6);
    x / norm
}
