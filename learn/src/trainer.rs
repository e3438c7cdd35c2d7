//! The trainer: samples sequences from the replay buffer, computes every enabled objective,
//! steps Adam, updates the EMA target, guards against NaN/Inf, and publishes encoder snapshots.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::augment::{AugmentConfig, augment_into, channels_last, mask_patches, plain_into};
use crate::device::BackendChoice;
use crate::direct::PixelLayout;
use crate::inference::{DynamicsSnapshot, EncoderHandle, EncoderSnapshot};
use crate::model::{StateEncoder, TargetNetwork, WorldModel, WorldModelConfig, l2_normalize};
use crate::replay::{ACTION_DIM, ReplayBuffer, ReplayConfig, Transition};

/// InfoNCE between two augmented views, plus temporal positives, against the EMA target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContrastiveConfig {
    /// Use this objective.
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
    /// Softmax temperature.
    pub temperature: f32,
    /// Weight of the temporal-positive term (a frame within `temporal_window` steps).
    pub temporal_weight: f32,
    /// Largest step distance of a temporal positive.
    pub temporal_window: usize,
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 1.0,
            temperature: 0.1,
            temporal_weight: 0.5,
            temporal_window: 30,
        }
    }
}

/// Action-conditioned latent dynamics rolled out over `horizon` steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Use this objective.
    pub enabled: bool,
    /// Weight of the latent prediction loss.
    pub weight: f32,
    /// Steps rolled out (`H`). Planners roll the dynamics out much further than this (the
    /// reference planner 24 steps), so it is not small: measured on the easy planning goals of
    /// `autodidact eval`, models trained with `H = 3` reached 37–43 %, with `H = 6` 47 %, with
    /// `H = 8` 67 % and with `H = 12` 70 % of the goals (a train step costs about 1.2× at 8 what it does at 3).
    pub horizon: usize,
    /// Weight of the next-proprio head.
    pub proprio_weight: f32,
    /// The rollout is also started from the EMA target's state of frame `t` (a constant: this
    /// term trains the dynamics only), with this weight relative to the rollout from the online
    /// state; `forward` reports their weighted mean. Published embeddings come from the EMA
    /// encoder, so this is the start a rollout at inference time has.
    pub target_start_weight: f32,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 10.0,
            horizon: 8,
            proprio_weight: 0.1,
            target_start_weight: 1.0,
        }
    }
}

/// Predict the target embedding of the full image from an image with masked patches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MaskedConfig {
    /// Use this objective (needs `model.masked_head`).
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
    /// Side of a square patch, pixels.
    pub patch_px: usize,
    /// Share of patches masked.
    pub ratio: f32,
}

impl Default for MaskedConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 0.5,
            patch_px: 8,
            ratio: 0.5,
        }
    }
}

/// Decode the image from the state embedding (MSE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconstructionConfig {
    /// Use this objective (needs `model.decoder`).
    pub enabled: bool,
    /// Weight in the total loss.
    pub weight: f32,
}

impl Default for ReconstructionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 20.0,
        }
    }
}

/// Keeps the state embedding spread out (VICReg's variance and covariance terms, Bardes et al.
/// 2022) so that it uses its dimensions: a hinge pulls every dimension's batch std up to
/// `target_std`, and a penalty on off-diagonal covariance decorrelates the dimensions. The
/// contrastive terms only see a normalised projection, the forward term normalised states:
/// nothing else stops the raw state from living in a few directions (low effective rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpreadConfig {
    /// Use this regulariser.
    pub enabled: bool,
    /// Weight of the std hinge `mean(relu(target_std - std_d))`.
    pub variance_weight: f32,
    /// Weight of `sum_{i≠j} cov_ij² / D`.
    pub covariance_weight: f32,
    /// Per-dimension batch std the hinge asks for.
    pub target_std: f32,
}

impl Default for SpreadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            variance_weight: 1.0,
            covariance_weight: 0.04,
            target_std: 1.0,
        }
    }
}

/// Which objectives train the model, and how much each counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectivesConfig {
    /// Contrastive (InfoNCE + temporal positives).
    pub contrastive: ContrastiveConfig,
    /// Forward prediction.
    pub forward: ForwardConfig,
    /// Masked-patch prediction.
    pub masked: MaskedConfig,
    /// Reconstruction.
    pub reconstruction: ReconstructionConfig,
    /// Variance/covariance regulariser of the state embedding.
    pub spread: SpreadConfig,
}

/// Everything that shapes training. The model's shapes are part of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Network shapes.
    pub model: WorldModelConfig,
    /// Objectives and weights.
    #[serde(default)]
    pub objectives: ObjectivesConfig,
    /// Augmentations of the contrastive views.
    #[serde(default)]
    pub augment: AugmentConfig,
    /// Replay buffer.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Sequences per batch.
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(default = "defaults::learning_rate")]
    pub learning_rate: f64,
    /// EMA momentum of the target network (`target = m·target + (1-m)·online`).
    #[serde(default = "defaults::ema_momentum")]
    pub ema_momentum: f32,
    /// Per-parameter gradient norm clip (`None`: no clipping).
    #[serde(default = "defaults::grad_clip")]
    pub grad_clip_norm: Option<f32>,
    /// Divide actions by this before they reach the model (`[m/s, rad/s]`).
    #[serde(default = "defaults::action_scale")]
    pub action_scale: [f32; ACTION_DIM],
    /// Seed of initialisation, sampling and augmentation.
    #[serde(default)]
    pub seed: u64,
    /// Where training runs.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Publish an encoder snapshot every this many steps.
    #[serde(default = "defaults::publish_every")]
    pub publish_every: u64,
    /// Publish (and export) the EMA target encoder rather than the online one: it moves
    /// smoothly, and it is the space the dynamics learn to predict, so rollouts and published
    /// embeddings agree.
    #[serde(default = "defaults::publish_ema_encoder")]
    pub publish_ema_encoder: bool,
    /// Images per forward pass of the EMA target encoder on GPU backends (0: all at once). The
    /// target encodes several frames per sequence (views, positive, future); in slices its
    /// intermediate feature maps stay small. The result is the same. (On the CPU the target's
    /// direct convolutions slice the batch themselves, see `crate::direct`.)
    #[serde(default = "defaults::target_chunk")]
    pub target_chunk: usize,
}

mod defaults {
    pub fn batch_size() -> usize {
        64
    }
    pub fn learning_rate() -> f64 {
        1e-3
    }
    pub fn ema_momentum() -> f32 {
        0.99
    }
    pub fn grad_clip() -> Option<f32> {
        Some(5.0)
    }
    pub fn action_scale() -> [f32; 2] {
        [0.5, 2.0]
    }
    pub fn publish_every() -> u64 {
        10
    }
    pub fn publish_ema_encoder() -> bool {
        true
    }
    pub fn target_chunk() -> usize {
        64
    }
}

impl TrainerConfig {
    /// Defaults for images of `width × height` and `proprio_dim` proprio features.
    pub fn for_inputs(width: usize, height: usize, proprio_dim: usize) -> Self {
        Self {
            model: WorldModelConfig::for_inputs(width, height, proprio_dim),
            objectives: ObjectivesConfig::default(),
            augment: AugmentConfig::default(),
            replay: ReplayConfig::default(),
            batch_size: defaults::batch_size(),
            learning_rate: defaults::learning_rate(),
            ema_momentum: defaults::ema_momentum(),
            grad_clip_norm: defaults::grad_clip(),
            action_scale: defaults::action_scale(),
            seed: 0,
            backend: BackendChoice::default(),
            publish_every: defaults::publish_every(),
            publish_ema_encoder: defaults::publish_ema_encoder(),
            target_chunk: defaults::target_chunk(),
        }
    }

    /// Steps of the forward rollout (0 when the forward objective is off).
    pub fn forward_horizon(&self) -> usize {
        if self.objectives.forward.enabled {
            self.objectives.forward.horizon
        } else {
            0
        }
    }

    /// Transitions per sampled sequence: enough for the rollout and the farthest temporal
    /// positive.
    pub fn sequence_length(&self) -> usize {
        let temporal = if self.objectives.contrastive.enabled {
            self.objectives.contrastive.temporal_window
        } else {
            0
        };
        self.forward_horizon().max(temporal) + 1
    }

    /// Checks that the objectives, model and numbers fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        self.model.validate()?;
        let o = &self.objectives;
        let invalid = |m: &str| Err(LearnError::InvalidConfig(m.to_owned()));
        if !(o.contrastive.enabled
            || o.forward.enabled
            || o.masked.enabled
            || o.reconstruction.enabled)
        {
            return invalid("enable at least one objective");
        }
        if o.masked.enabled && !self.model.masked_head {
            return invalid("objectives.masked needs model.masked_head = true");
        }
        if o.reconstruction.enabled && !self.model.decoder {
            return invalid("objectives.reconstruction needs model.decoder = true");
        }
        if o.forward.enabled
            && !(o.forward.target_start_weight.is_finite() && o.forward.target_start_weight >= 0.0)
        {
            return invalid("objectives.forward.target_start_weight must be >= 0");
        }
        if o.forward.enabled && o.forward.horizon == 0 {
            return invalid("objectives.forward.horizon must be >= 1");
        }
        if o.contrastive.enabled
            && (o.contrastive.temperature <= 0.0 || o.contrastive.temporal_window == 0)
        {
            return invalid("contrastive temperature must be > 0 and temporal_window >= 1");
        }
        if o.spread.enabled
            && !(o.spread.target_std.is_finite()
                && o.spread.target_std > 0.0
                && o.spread.variance_weight >= 0.0
                && o.spread.covariance_weight >= 0.0)
        {
            return invalid("spread: target_std must be > 0 and weights >= 0");
        }
        if self.batch_size < 2 {
            return invalid("batch_size must be >= 2 (InfoNCE needs negatives)");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return invalid("learning_rate must be a finite number > 0");
        }
        if !(0.0..1.0).contains(&self.ema_momentum) {
            return invalid("ema_momentum must be in [0, 1)");
        }
        if self
            .action_scale
            .iter()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return invalid("action_scale must be finite and > 0");
        }
        if self.model.action_dim != ACTION_DIM {
            return invalid("model.action_dim must be 2 (linear_x, angular_z)");
        }
        if self.publish_every == 0 {
            return invalid("publish_every must be >= 1");
        }
        Ok(())
    }
}

/// One sampled batch on the host, ready to become tensors (also the unit of NaN injection in
/// tests). `F` is the forward horizon ([`TrainerConfig::forward_horizon`]).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Sequences.
    pub size: usize,
    /// First view of frame `t` (augmented), `[B, 3, H, W]`.
    pub view_a: Vec<f32>,
    /// Second view of frame `t` (augmented), `[B, 3, H, W]`.
    pub view_b: Vec<f32>,
    /// Per sequence, the step `δ` (1..=window) of its temporal positive.
    pub temporal_offsets: Vec<usize>,
    /// The temporal positive, frame `t + δ` (augmented), `[B, 3, H, W]`; empty when the
    /// contrastive objective is off.
    pub positive: Vec<f32>,
    /// Frames `t+1 ..= t+F`, not augmented, `[B, F, 3, H, W]`.
    pub future: Vec<f32>,
    /// `view_a` with masked patches (empty when masking is off), `[B, 3, H, W]`.
    pub masked: Vec<f32>,
    /// Proprio at `t ..= t+F`, `[B, F+1, P]`.
    pub proprio: Vec<f32>,
    /// Scaled actions at `t .. t+F`, `[B, F, A]`.
    pub actions: Vec<f32>,
}

/// One sequence's part of every [`Batch`] buffer, filled by one task of `sample_batch`.
struct SequenceSlots<'a> {
    view_a: &'a mut [f32],
    view_b: &'a mut [f32],
    positive: &'a mut [f32],
    masked: &'a mut [f32],
    future: &'a mut [f32],
    proprio: &'a mut [f32],
    actions: &'a mut [f32],
    offset: &'a mut usize,
}

/// `buffer` cut into `count` equal parts, one per sequence (empty parts for an empty buffer: an
/// objective that is off, or no forward horizon).
fn per_sequence(buffer: &mut [f32], count: usize) -> Vec<&mut [f32]> {
    let len = buffer.len() / count.max(1);
    if len == 0 {
        (0..count).map(|_| <&mut [f32]>::default()).collect()
    } else {
        buffer.chunks_mut(len).collect()
    }
}

/// The losses of one step (0 for disabled objectives).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    /// Weighted sum that was minimised.
    pub total: f32,
    /// InfoNCE between views.
    pub contrastive: f32,
    /// InfoNCE against the temporal positive.
    pub temporal: f32,
    /// Latent prediction (mean over the horizon).
    pub forward: f32,
    /// Next-proprio prediction.
    pub proprio: f32,
    /// Masked-patch prediction.
    pub masked: f32,
    /// Image reconstruction.
    pub reconstruction: f32,
    /// Std hinge of the state embedding (spread regulariser).
    pub variance: f32,
    /// Off-diagonal covariance of the state embedding (spread regulariser).
    pub covariance: f32,
}

impl Losses {
    /// Every loss with its name, `total` first (for logs and telemetry).
    pub fn named(&self) -> [(&'static str, f32); 9] {
        [
            ("total", self.total),
            ("contrastive", self.contrastive),
            ("temporal", self.temporal),
            ("forward", self.forward),
            ("proprio", self.proprio),
            ("masked", self.masked),
            ("reconstruction", self.reconstruction),
            ("variance", self.variance),
            ("covariance", self.covariance),
        ]
    }
}

/// What one call to [`Trainer::step`] did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// Optimiser steps taken so far (a skipped batch does not count).
    pub step: u64,
    /// Losses of this batch.
    pub losses: Losses,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Images encoded (online and target) per second of this step's wall time.
    pub samples_per_second: f64,
    /// Sequences in the batch.
    pub batch_size: usize,
    /// This batch produced a NaN/Inf and was skipped.
    pub skipped_non_finite: bool,
    /// Version of the newest published encoder snapshot.
    pub weights_version: u64,
}

/// Decoded pictures of the model's view of a frame and of its predicted future
/// ([`Trainer::preview`]); all images `rgb8`, `height × width × 3` bytes.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
    /// Training step of the weights.
    pub train_step: u64,
    /// The first frame, encoded and decoded.
    pub reconstruction: Vec<u8>,
    /// Decoded predictions for steps `1..=H`.
    pub predicted: Vec<Vec<u8>>,
    /// The real frames of steps `1..=H`.
    pub actual: Vec<Vec<u8>>,
}

/// Trains a [`WorldModel`] online.
pub struct Trainer {
    config: TrainerConfig,
    device: Device,
    model: WorldModel,
    target: TargetNetwork,
    optimizer: ModuleOptimizer,
    last_good: (WorldModel, TargetNetwork),
    replay: ReplayBuffer,
    rng: ChaCha8Rng,
    step: u64,
    non_finite_skips: u64,
    weights_version: u64,
    handle: Option<EncoderHandle>,
    inference_device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("step", &self.step)
            .field("replay", &self.replay.len())
            .field("weights_version", &self.weights_version)
            .finish_non_exhaustive()
    }
}

/// Serialises seeding and weight initialisation (see [`Trainer::new`]).
pub(crate) static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`INIT_LOCK`] in a test that draws from the backend's global generator (random
/// tensors, module initialisation), so tests that seed it and compare draws see only their own.
#[cfg(test)]
pub(crate) fn generator_lock() -> std::sync::MutexGuard<'static, ()> {
    INIT_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn adam(config: &TrainerConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_grad_clipping(config.grad_clip_norm.map(GradientClippingConfig::Norm))
        .init()
}

impl Trainer {
    /// A freshly initialised trainer (weights from `config.seed`).
    pub fn new(config: TrainerConfig) -> Result<Self, LearnError> {
        config.validate()?;
        let plain = config.backend.device()?;
        let device = plain.clone().autodiff();
        // The backend's random generator is global to the process: seed and draw under one
        // lock, or a trainer built on another thread at the same time would change our weights.
        let model = {
            let _guard = INIT_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            plain.seed(config.seed);
            config.model.init(&device)
        };
        let target = TargetNetwork {
            encoder: model.encoder.valid(),
            projector: model.projector.valid(),
        };
        let encoder = &config.model.encoder;
        let replay = ReplayBuffer::new(
            config.replay.clone(),
            encoder.image.width,
            encoder.image.height,
            encoder.proprio_dim,
        )?;
        Ok(Self {
            optimizer: adam(&config),
            last_good: (model.clone(), target.clone()),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            inference_device: plain,
            config,
            device,
            model,
            target,
            replay,
            step: 0,
            non_finite_skips: 0,
            weights_version: 0,
            handle: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Batches skipped because of NaN/Inf.
    pub fn non_finite_skips(&self) -> u64 {
        self.non_finite_skips
    }

    /// The replay buffer.
    pub fn replay(&self) -> &ReplayBuffer {
        &self.replay
    }

    /// The online model (for evaluation: rollouts, decoding).
    pub fn model(&self) -> &WorldModel {
        &self.model
    }

    /// Adds a transition to the replay buffer (refused with the reason if malformed).
    pub fn push(&mut self, transition: Transition) -> Result<(), LearnError> {
        self.replay.push(transition)
    }

    /// Where snapshots for inference go (`flex` unless set).
    pub fn set_inference_device(&mut self, device: Device) {
        self.inference_device = device;
    }

    /// A handle whose snapshot follows training (published every `publish_every` steps).
    pub fn encoder_handle(&mut self) -> EncoderHandle {
        if let Some(handle) = &self.handle {
            return handle.clone();
        }
        let handle = EncoderHandle::new(self.snapshot());
        self.handle = Some(handle.clone());
        handle
    }

    /// The encoder that is published: the EMA target's or the online one
    /// (`publish_ema_encoder`).
    pub fn published_encoder(&self) -> &StateEncoder {
        if self.config.publish_ema_encoder {
            &self.target.encoder
        } else {
            &self.model.encoder
        }
    }

    /// A snapshot of the current published encoder weights.
    pub fn snapshot(&self) -> EncoderSnapshot {
        EncoderSnapshot::new(
            self.published_encoder(),
            self.config.model.encoder.clone(),
            self.weights_version,
            self.step,
            &self.inference_device,
        )
    }

    /// A snapshot of the current latent dynamics, for rollouts.
    pub fn dynamics_snapshot(&self) -> DynamicsSnapshot {
        DynamicsSnapshot::new(
            &self.model.dynamics,
            self.config.model.embed_dim(),
            self.config.action_scale,
            self.weights_version,
            &self.inference_device,
        )
    }

    /// Pictures of what the model expects, next to what happened: the decoded embedding of
    /// `sequence[0]` and the decoded rollout under the recorded actions of `sequence[0..H]`,
    /// with `H = sequence.len() - 1`. Needs the decoder (`model.decoder`).
    pub fn preview(&self, sequence: &[Transition]) -> Result<Preview, LearnError> {
        let decoder = self.model.decoder.as_ref().ok_or_else(|| {
            LearnError::InvalidConfig("preview needs the decoder (model.decoder = true)".into())
        })?;
        let Some((first, rest)) = sequence.split_first() else {
            return Err(LearnError::BadInput("preview of an empty sequence".into()));
        };
        let c = &self.config.model.encoder;
        let (width, height) = (c.image.width, c.image.height);
        let proprio_dim = c.proprio_dim;
        if sequence
            .iter()
            .any(|t| t.image.len() != width * height * 3 || t.proprio.len() != proprio_dim)
        {
            return Err(LearnError::BadInput(format!(
                "preview frames must be {width}x{height} rgb8 with {proprio_dim} proprio values"
            )));
        }
        let plain = self.device.clone().without_autodiff();
        let mut pixels = vec![0.0; 3 * width * height];
        plain_into(&first.image, width, height, &mut pixels);
        let image = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, height, width]), &plain);
        let proprio = Tensor::<2>::from_data(
            TensorData::new(
                if proprio_dim == 0 {
                    vec![0.0]
                } else {
                    first.proprio.clone()
                },
                [1, proprio_dim.max(1)],
            ),
            &plain,
        );
        let state = self.model.encoder.valid().forward(image, proprio);
        let horizon = rest.len();
        let states = if horizon == 0 {
            state
        } else {
            let actions: Vec<f32> = sequence[..horizon]
                .iter()
                .flat_map(|t| {
                    [
                        t.action[0] / self.config.action_scale[0],
                        t.action[1] / self.config.action_scale[1],
                    ]
                })
                .collect();
            let actions =
                Tensor::<3>::from_data(TensorData::new(actions, [1, horizon, ACTION_DIM]), &plain);
            let predicted = self.model.dynamics.valid().rollout(state.clone(), actions);
            let d = self.config.model.embed_dim();
            Tensor::cat(vec![state, predicted.reshape([horizon, d])], 0)
        };
        let decoded: Vec<f32> = decoder
            .valid()
            .forward(states)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| LearnError::Backend(format!("reading decoded images: {e:?}")))?;
        let plane = width * height;
        let mut images = decoded.chunks(3 * plane).map(|chw| {
            (0..plane)
                .flat_map(|pixel| {
                    (0..3).map(move |channel| {
                        ((chw[channel * plane + pixel] + 0.5) * 255.0)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    })
                })
                .collect::<Vec<u8>>()
        });
        let reconstruction = images.next().unwrap_or_default();
        Ok(Preview {
            width,
            height,
            train_step: self.step,
            reconstruction,
            predicted: images.collect(),
            actual: rest.iter().map(|t| t.image.to_vec()).collect(),
        })
    }

    /// Samples a batch from the replay buffer.
    pub fn sample_batch(&mut self) -> Result<Batch, LearnError> {
        let c = &self.config;
        let length = c.sequence_length();
        let horizon = c.forward_horizon();
        let starts = self
            .replay
            .sample_sequences(c.batch_size, length, &mut self.rng)?;
        let (width, height) = (c.model.encoder.image.width, c.model.encoder.image.height);
        let proprio_dim = c.model.encoder.proprio_dim.max(1);
        let image_len = 3 * width * height;
        let batch = starts.len();
        let masked_on = c.objectives.masked.enabled;
        let contrastive_on = c.objectives.contrastive.enabled;
        let per_batch = |on: bool| {
            if on {
                vec![0.0; batch * image_len]
            } else {
                Vec::new()
            }
        };
        let mut out = Batch {
            size: batch,
            view_a: vec![0.0; batch * image_len],
            view_b: vec![0.0; batch * image_len],
            temporal_offsets: vec![1; batch],
            positive: per_batch(contrastive_on),
            future: vec![0.0; batch * horizon * image_len],
            masked: per_batch(masked_on),
            proprio: vec![0.0; batch * (horizon + 1) * proprio_dim],
            actions: vec![0.0; batch * horizon * ACTION_DIM],
        };
        let window = c.objectives.contrastive.temporal_window.max(1);
        // Sequences are filled in parallel, each from its own random stream seeded from the
        // trainer's: the batch depends on the seed, not on the thread count.
        let seeds: Vec<u64> = starts.iter().map(|_| self.rng.random()).collect();
        let slots: Vec<SequenceSlots<'_>> = per_sequence(&mut out.view_a, batch)
            .into_iter()
            .zip(per_sequence(&mut out.view_b, batch))
            .zip(per_sequence(&mut out.positive, batch))
            .zip(per_sequence(&mut out.masked, batch))
            .zip(per_sequence(&mut out.future, batch))
            .zip(per_sequence(&mut out.proprio, batch))
            .zip(per_sequence(&mut out.actions, batch))
            .zip(out.temporal_offsets.iter_mut())
            .map(
                |(
                    ((((((view_a, view_b), positive), masked), future), proprio), actions),
                    offset,
                )| {
                    SequenceSlots {
                        view_a,
                        view_b,
                        positive,
                        masked,
                        future,
                        proprio,
                        actions,
                        offset,
                    }
                },
            )
            .collect();
        let replay = &self.replay;
        slots
            .into_par_iter()
            .zip(starts.par_iter())
            .zip(seeds.par_iter())
            .try_for_each(|((slots, &start), &seed)| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let at = |offset: usize| -> Result<&Transition, LearnError> {
                    replay.get(start + offset).ok_or(LearnError::NotEnoughData {
                        have: replay.len(),
                        need: start + offset + 1,
                    })
                };
                let first = at(0)?;
                for view in [&mut *slots.view_a, &mut *slots.view_b] {
                    augment_into(&first.image, width, height, &c.augment, &mut rng, view);
                }
                if masked_on {
                    slots.masked.copy_from_slice(slots.view_a);
                    mask_patches(
                        slots.masked,
                        width,
                        height,
                        c.objectives.masked.patch_px,
                        c.objectives.masked.ratio,
                        &mut rng,
                    );
                }
                if contrastive_on {
                    let delta = rng.random_range(1..=window);
                    *slots.offset = delta;
                    augment_into(
                        &at(delta)?.image,
                        width,
                        height,
                        &c.augment,
                        &mut rng,
                        slots.positive,
                    );
                }
                for offset in 0..=horizon {
                    let t = at(offset)?;
                    if c.model.encoder.proprio_dim > 0 {
                        slots.proprio[offset * proprio_dim..(offset + 1) * proprio_dim]
                            .copy_from_slice(&t.proprio);
                    }
                    if offset < horizon {
                        for k in 0..ACTION_DIM {
                            slots.actions[offset * ACTION_DIM + k] =
                                t.action[k] / c.action_scale[k];
                        }
                    }
                    if offset >= 1 {
                        let frame = (offset - 1) * image_len;
                        plain_into(
                            &t.image,
                            width,
                            height,
                            &mut slots.future[frame..frame + image_len],
                        );
                    }
                }
                Ok::<(), LearnError>(())
            })?;
        Ok(out)
    }

    /// Samples a batch and trains on it.
    pub fn step(&mut self) -> Result<StepReport, LearnError> {
        let batch = self.sample_batch()?;
        self.train_on(&batch)
    }

    /// Trains on one batch. A batch whose loss or gradients are not finite is skipped, the last
    /// good weights are restored, and the skip is counted.
    pub fn train_on(&mut self, batch: &Batch) -> Result<StepReport, LearnError> {
        let started = Instant::now();
        let c = self.config.clone();
        let o = &c.objectives;
        let (width, height) = (c.model.encoder.image.width, c.model.encoder.image.height);
        let proprio_dim = c.model.encoder.proprio_dim.max(1);
        let b = batch.size;
        let horizon = c.forward_horizon();
        let image_len = 3 * width * height;
        let contrastive_on = o.contrastive.enabled;
        let expect = |name: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(LearnError::BadInput(format!(
                    "batch.{name} has {got} values, expected {want}"
                )))
            }
        };
        let rows_if = |on: bool| if on { b * image_len } else { 0 };
        expect("view_a", batch.view_a.len(), b * image_len)?;
        expect("view_b", batch.view_b.len(), b * image_len)?;
        expect("temporal_offsets", batch.temporal_offsets.len(), b)?;
        expect("positive", batch.positive.len(), rows_if(contrastive_on))?;
        expect("future", batch.future.len(), b * horizon * image_len)?;
        expect("masked", batch.masked.len(), rows_if(o.masked.enabled))?;
        expect(
            "proprio",
            batch.proprio.len(),
            b * (horizon + 1) * proprio_dim,
        )?;
        expect("actions", batch.actions.len(), b * horizon * ACTION_DIM)?;

        let ad = &self.device;
        let plain = ad.clone().without_autodiff();
        let images = |data: Vec<f32>, n: usize, device: &Device| {
            Tensor::<4>::from_data(TensorData::new(data, [n, 3, height, width]), device)
        };
        let proprio_all = Tensor::<3>::from_data(
            TensorData::new(batch.proprio.clone(), [b, horizon + 1, proprio_dim]),
            &plain,
        );
        let proprio_now = proprio_all
            .clone()
            .slice([0..b, 0..1, 0..proprio_dim])
            .reshape([b, proprio_dim]);

        // Targets from the EMA network (plain device: no graph, constants for the loss), all
        // encoded in one batch: [view_b, positive] (contrastive), future (forward), view_a
        // (masked). The contrastive views see the image only: both views (and the temporal
        // positive) share their proprio, which would make matching them a shortcut that ignores
        // the image. Image features are fused with or without proprio as each objective needs.
        let no_proprio = proprio_now.zeros_like();
        let mut target_images: Vec<&[f32]> = Vec::new();
        if contrastive_on {
            target_images.push(&batch.view_b);
            target_images.push(&batch.positive);
        }
        target_images.push(&batch.future);
        let target_start_on = horizon > 0 && o.forward.target_start_weight > 0.0;
        let target_now_on = o.masked.enabled || target_start_on;
        if target_now_on {
            target_images.push(&batch.view_a);
        }
        let view_rows = if contrastive_on { 2 * b } else { 0 };
        let target_count: usize = view_rows + horizon * b + if target_now_on { b } else { 0 };
        let chunk = if c.target_chunk == 0 {
            target_count
        } else {
            c.target_chunk
        };
        let target_features = if crate::conv::cpu_kernels_on(&plain) {
            // On the CPU the target's convolutions run as direct kernels on the batch's own
            // buffers, in one pass over all of them (see `crate::direct`).
            let stack = self.target.encoder.direct_stack()?;
            self.target.encoder.image_features_direct(
                &stack,
                &target_images,
                PixelLayout::ChannelsFirst,
                [height, width],
                &plain,
            )?
        } else {
            let target_frames: Vec<&[f32]> = target_images
                .iter()
                .flat_map(|part| part.chunks(image_len))
                .collect();
            let chunk_features = target_frames
                .chunks(chunk.max(1))
                .map(|frames| {
                    let data = images(frames.concat(), frames.len(), &plain);
                    self.target.encoder.image_features(data)
                })
                .collect();
            Tensor::cat(chunk_features, 0)
        };
        let feature_dim = c.model.encoder.image.feature_dim;
        let take = |from: usize, n: usize| {
            target_features
                .clone()
                .slice([from..from + n, 0..feature_dim])
        };
        let target_views = contrastive_on.then(|| {
            (
                self.target.encoder.fuse(take(0, b), no_proprio.clone()),
                self.target.encoder.fuse(take(b, b), no_proprio.clone()),
            )
        });
        let target_future = (horizon > 0).then(|| {
            let future_proprio = proprio_all
                .clone()
                .slice([0..b, 1..horizon + 1, 0..proprio_dim])
                .reshape([b * horizon, proprio_dim]);
            self.target
                .encoder
                .fuse(take(view_rows, horizon * b), future_proprio)
        });
        let target_now = target_now_on.then(|| {
            self.target
                .encoder
                .fuse(take(view_rows + horizon * b, b), proprio_now.clone())
        });

        // Online branch.
        // The online branch takes view A as channels-last rows, the CPU convolutions' layout; the
        // reconstruction is compared in the same layout.
        let view_a = Tensor::<2>::from_data(
            TensorData::new(
                channels_last(&batch.view_a, width * height),
                [b * height * width, 3],
            ),
            ad,
        );
        let proprio_online = Tensor::from_inner(proprio_now.clone());
        let online_features = self
            .model
            .encoder
            .image_features_rows(view_a.clone(), [b, height, width]);
        let state = self
            .model
            .encoder
            .fuse(online_features.clone(), proprio_online.clone());
        let mut losses = Losses::default();
        let mut total: Option<Tensor<1>> = None;
        let mut add = |term: Tensor<1>, weight: f32, slot: &mut f32| -> Result<(), LearnError> {
            *slot = scalar(&term)?;
            let weighted = term * weight;
            total = Some(match total.take() {
                Some(sum) => sum + weighted,
                None => weighted,
            });
            Ok(())
        };

        if let Some((target_view_b, target_temporal)) = target_views {
            let image_only = self.model.encoder.fuse(
                online_features.clone(),
                Tensor::from_inner(no_proprio.clone()),
            );
            let query = l2_normalize(self.model.projector.forward(image_only));
            let key = l2_normalize(self.target.projector.forward(target_view_b));
            let key_temporal = l2_normalize(self.target.projector.forward(target_temporal));
            let views = info_nce(
                query.clone(),
                Tensor::from_inner(key),
                o.contrastive.temperature,
            );
            let temporal = info_nce(
                query,
                Tensor::from_inner(key_temporal),
                o.contrastive.temperature,
            );
            add(views, o.contrastive.weight, &mut losses.contrastive)?;
            add(
                temporal,
                o.contrastive.weight * o.contrastive.temporal_weight,
                &mut losses.temporal,
            )?;
        }
        if o.spread.enabled {
            let (variance, covariance) = spread_terms(state.clone(), o.spread.target_std);
            add(variance, o.spread.variance_weight, &mut losses.variance)?;
            add(
                covariance,
                o.spread.covariance_weight,
                &mut losses.covariance,
            )?;
        }
        if let (true, Some(target_future)) = (o.forward.enabled, target_future) {
            let actions = Tensor::<3>::from_data(
                TensorData::new(batch.actions.clone(), [b, horizon, ACTION_DIM]),
                ad,
            );
            let embed_dim = c.model.embed_dim();
            // With the target-start term, both rollouts (from the online state and from the
            // target's) run as one batch of 2B rows: the same products, half the calls.
            let start = target_start_on.then_some(target_now.clone()).flatten();
            let (predicted, from_target) = match start {
                Some(start) => {
                    let both = self.model.dynamics.rollout(
                        Tensor::cat(vec![state.clone(), Tensor::from_inner(start)], 0),
                        Tensor::cat(vec![actions.clone(), actions], 0),
                    );
                    let rows = |from: usize| {
                        both.clone()
                            .slice([from..from + b, 0..horizon, 0..embed_dim])
                            .reshape([b * horizon, embed_dim])
                    };
                    (rows(0), Some(rows(b)))
                }
                None => (
                    self.model
                        .dynamics
                        .rollout(state.clone(), actions)
                        .reshape([b * horizon, embed_dim]),
                    None,
                ),
            };
            // Row order of `future` is batch-major (b, then step), as is `predicted`.
            let target_future = Tensor::from_inner(l2_normalize(target_future));
            let mut forward = (l2_normalize(predicted.clone()) - target_future.clone())
                .square()
                .sum_dim(1)
                .mean();
            if let Some(from_target) = from_target {
                let weight = o.forward.target_start_weight;
                let from_target = (l2_normalize(from_target) - target_future)
                    .square()
                    .sum_dim(1)
                    .mean();
                forward = (forward + from_target * weight) / (1.0 + weight);
            }
            add(forward, o.forward.weight, &mut losses.forward)?;
            if let Some(head) = &self.model.proprio_head {
                let next = proprio_all
                    .clone()
                    .slice([0..b, 1..horizon + 1, 0..proprio_dim])
                    .reshape([b * horizon, proprio_dim]);
                let proprio_loss = (head.forward(predicted) - Tensor::from_inner(next))
                    .square()
                    .mean();
                add(proprio_loss, o.forward.proprio_weight, &mut losses.proprio)?;
            }
        }
        if o.reconstruction.enabled
            && let Some(decoder) = &self.model.decoder
        {
            let reconstruction = (decoder.forward_rows(state.clone()) - view_a.clone())
                .square()
                .mean();
            add(
                reconstruction,
                o.reconstruction.weight,
                &mut losses.reconstruction,
            )?;
        }
        if let (true, Some(predictor), Some(target_full)) =
            (o.masked.enabled, &self.model.mask_predictor, target_now)
        {
            let masked_state = self
                .model
                .encoder
                .forward(images(batch.masked.clone(), b, ad), proprio_online);
            let masked = (l2_normalize(predictor.forward(masked_state))
                - Tensor::from_inner(l2_normalize(target_full)))
            .square()
            .sum_dim(1)
            .mean();
            add(masked, o.masked.weight, &mut losses.masked)?;
        }
        let Some(total) = total else {
            return Err(LearnError::InvalidConfig(
                "no objective produced a loss".into(),
            ));
        };
        losses.total = scalar(&total)?;

        let gradients = GradientsParams::from_grads(total.backward(), &self.model);
        let grad_norm = gradient_norm(&self.model, &gradients)?;
        let encoded = b * (1 + usize::from(o.masked.enabled)) + target_count;
        if !losses.total.is_finite() || !grad_norm.is_finite() {
            self.non_finite_skips += 1;
            tracing::warn!(
                step = self.step,
                skips = self.non_finite_skips,
                "non-finite loss or gradient: batch skipped, last good weights restored"
            );
            self.model = self.last_good.0.clone();
            self.target = self.last_good.1.clone();
            return Ok(StepReport {
                step: self.step,
                losses,
                grad_norm,
                samples_per_second: encoded as f64 / started.elapsed().as_secs_f64().max(1e-9),
                batch_size: b,
                skipped_non_finite: true,
                weights_version: self.weights_version,
            });
        }
        let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
        self.model = self.optimizer.step(c.learning_rate, model, gradients);
        self.update_target();
        self.step += 1;
        self.last_good = (self.model.clone(), self.target.clone());
        if self.step.is_multiple_of(c.publish_every) {
            self.publish();
        }
        Ok(StepReport {
            step: self.step,
            losses,
            grad_norm,
            samples_per_second: encoded as f64 / started.elapsed().as_secs_f64().max(1e-9),
            batch_size: b,
            skipped_non_finite: false,
            weights_version: self.weights_version,
        })
    }

    /// Publishes the current encoder to the handle (if any) as a new version.
    pub fn publish(&mut self) {
        self.weights_version += 1;
        if let Some(handle) = &self.handle {
            handle.publish(self.snapshot());
        }
    }

    fn update_target(&mut self) {
        let momentum = self.config.ema_momentum;
        let mut grab = GrabParams::default();
        self.model.encoder.visit(&mut grab);
        self.model.projector.visit(&mut grab);
        let mut ema = Ema {
            source: grab.params,
            momentum,
        };
        let target = std::mem::replace(
            &mut self.target,
            TargetNetwork {
                encoder: self.last_good.1.encoder.clone(),
                projector: self.last_good.1.projector.clone(),
            },
        );
        self.target = TargetNetwork {
            encoder: target.encoder.map(&mut ema),
            projector: target.projector.map(&mut ema),
        };
    }

    /// Writes a checkpoint directory atomically: everything goes into a temporary sibling that
    /// is renamed into place, so `dir` is always either the old or the new complete checkpoint.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), LearnError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        let name = dir
            .file_name()
            .ok_or_else(|| {
                LearnError::Checkpoint(format!("{} is not a directory name", dir.display()))
            })?
            .to_string_lossy()
            .into_owned();
        let temp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(|e| io_error(&temp, e))?;
        }
        std::fs::create_dir_all(&temp).map_err(|e| io_error(&temp, e))?;
        let record = |e: burn::store::RecordError| LearnError::Checkpoint(format!("{e}"));
        self.model
            .clone()
            .save_file(temp.join("model.bpk"))
            .map_err(record)?;
        self.target
            .clone()
            .save_file(temp.join("target.bpk"))
            .map_err(record)?;
        self.optimizer
            .save(temp.join("optimizer.bin"))
            .map_err(record)?;
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.to_owned(),
            step: self.step,
            weights_version: self.weights_version,
            non_finite_skips: self.non_finite_skips,
            num_params: self.model.num_params(),
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            config: self.config.clone(),
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| LearnError::Checkpoint(e.to_string()))?;
        let meta_path = temp.join("meta.json");
        std::fs::write(&meta_path, json).map_err(|e| io_error(&meta_path, e))?;
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| io_error(dir, e))?;
        }
        std::fs::rename(&temp, dir).map_err(|e| io_error(dir, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, e))?;
        }
        Ok(())
    }

    /// Restores a trainer from a checkpoint: weights, EMA target, optimiser state, step, sampling
    /// state and config. `expected` (if given) must describe the same architecture, or this is
    /// refused. The replay buffer starts empty.
    pub fn resume(dir: &Path, expected: Option<&WorldModelConfig>) -> Result<Self, LearnError> {
        let meta = read_meta(dir)?;
        if let Some(expected) = expected
            && !same_architecture(expected, &meta.config.model)
        {
            return Err(LearnError::Checkpoint(format!(
                "{} holds a different architecture: {} vs expected {}",
                dir.display(),
                meta.config.model,
                expected
            )));
        }
        let mut trainer = Trainer::new(meta.config.clone())?;
        if trainer.model.num_params() != meta.num_params {
            return Err(LearnError::Checkpoint(format!(
                "{} was written for a model of {} parameters, this build makes {}",
                dir.display(),
                meta.num_params,
                trainer.model.num_params()
            )));
        }
        let record = |what: &str, e: burn::store::RecordError| {
            LearnError::Checkpoint(format!("{} {what}: {e}", dir.display()))
        };
        let model = trainer
            .model
            .clone()
            .try_load_file(dir.join("model.bpk"))
            .map_err(|e| record("model.bpk", e))?;
        let target = trainer
            .target
            .clone()
            .try_load_file(dir.join("target.bpk"))
            .map_err(|e| record("target.bpk", e))?;
        let optimizer = adam(&meta.config)
            .load(dir.join("optimizer.bin"))
            .map_err(|e| record("optimizer.bin", e))?;
        trainer.model = model;
        trainer.target = target;
        trainer.optimizer = optimizer;
        trainer.last_good = (trainer.model.clone(), trainer.target.clone());
        trainer.step = meta.step;
        trainer.weights_version = meta.weights_version;
        trainer.non_finite_skips = meta.non_finite_skips;
        let mut rng = ChaCha8Rng::from_seed(meta.rng_seed);
        rng.set_stream(meta.rng_stream);
        rng.set_word_pos(meta.rng_word_pos);
        trainer.rng = rng;
        Ok(trainer)
    }

    /// Exports the state encoder as safetensors (for use outside autodidact), atomically.
    pub fn export_encoder_safetensors(&self, path: &Path) -> Result<PathBuf, LearnError> {
        export_safetensors(&self.published_encoder().valid(), path)
    }

    /// Exports the whole online world model (encoder, heads, dynamics, decoder) as
    /// safetensors, atomically. Tensor names are burn's module paths (`encoder.fuse.weight`);
    /// `Linear` weights are stored `[in, out]`, LayerNorm's as `gamma`/`beta`.
    pub fn export_model_safetensors(&self, path: &Path) -> Result<PathBuf, LearnError> {
        export_safetensors(&self.model.valid(), path)
    }

    /// Trainable parameters of the online world model (the EMA target is not counted).
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }
}

/// Writes `module` as safetensors through a temporary sibling renamed into place.
fn export_safetensors<M: Module>(module: &M, path: &Path) -> Result<PathBuf, LearnError> {
    use burn::store::{ModuleSnapshot, SafetensorsStore};
    let temp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&temp).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| LearnError::Checkpoint(format!("safetensors export: {e}")))?;
    std::fs::rename(&temp, path).map_err(|e| io_error(path, e))?;
    Ok(path.to_path_buf())
}

/// Checkpoint layout version.
pub const CHECKPOINT_FORMAT: &str = "autodidact-checkpoint-1";

/// `meta.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    format: String,
    step: u64,
    weights_version: u64,
    non_finite_skips: u64,
    num_params: usize,
    rng_seed: [u8; 32],
    rng_stream: u64,
    rng_word_pos: u128,
    config: TrainerConfig,
}

fn read_meta(dir: &Path) -> Result<CheckpointMeta, LearnError> {
    let path = dir.join("meta.json");
    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    let meta: CheckpointMeta = serde_json::from_slice(&bytes).map_err(|e| {
        LearnError::Checkpoint(format!(
            "{} is not an autodidact checkpoint: {e}",
            path.display()
        ))
    })?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(LearnError::Checkpoint(format!(
            "{} has format {:?}, this build reads {CHECKPOINT_FORMAT:?}",
            path.display(),
            meta.format
        )));
    }
    Ok(meta)
}

fn same_architecture(a: &WorldModelConfig, b: &WorldModelConfig) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

fn io_error(path: &Path, error: std::io::Error) -> LearnError {
    LearnError::Checkpoint(format!("{}: {error}", path.display()))
}

fn scalar(tensor: &Tensor<1>) -> Result<f32, LearnError> {
    tensor
        .clone()
        .try_into_scalar::<f32>()
        .map_err(|e| LearnError::Backend(format!("reading a loss: {e:?}")))
}

/// InfoNCE with the matching row as the positive and every other row as a negative.
///
/// # Shapes
/// - `query`, `key`: `[B, N]`, L2-normalised
/// - output: `[1]`
pub fn info_nce(query: Tensor<2>, key: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [batch, _] = query.dims();
    let device = query.device();
    let logits = query.matmul(key.transpose()) / temperature;
    let log_probs = activation::log_softmax(logits, 1);
    let diagonal = Tensor::<1, Int>::arange(0..batch as i64, &device).reshape([batch, 1]);
    -log_probs.gather(1, diagonal).mean()
}

/// VICReg's variance hinge and covariance penalty of a batch of embeddings: the mean over
/// dimensions of `relu(target_std - std_d)`, and the sum of squared off-diagonal covariances
/// divided by `D`.
///
/// # Shapes
/// - `embeddings`: `[B, D]` with `B >= 2`
/// - output: (`[1]`, `[1]`)
pub fn spread_terms(embeddings: Tensor<2>, target_std: f32) -> (Tensor<1>, Tensor<1>) {
    let [batch, dim] = embeddings.dims();
    let denominator = (batch.max(2) - 1) as f32;
    let centred = embeddings.clone() - embeddings.mean_dim(0);
    let variance = centred.clone().square().sum_dim(0) / denominator;
    let std = (variance.clone() + 1e-4).sqrt();
    let hinge = activation::relu(std.neg() + target_std).mean();
    let covariance = centred.clone().transpose().matmul(centred) / denominator;
    let off_diagonal = (covariance.square().sum() - variance.square().sum()) / dim as f32;
    (hinge, off_diagonal)
}

/// Global L2 norm of all gradients of `model`.
fn gradient_norm(model: &WorldModel, gradients: &GradientsParams) -> Result<f32, LearnError> {
    struct Norm<'a> {
        gradients: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(gradient) = self.gradients.get::<D>(param.id) {
                let squares = gradient.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(sum) => sum + squares,
                    None => squares,
                });
            }
        }
    }
    let mut visitor = Norm {
        gradients,
        sum: None,
    };
    model.visit(&mut visitor);
    match visitor.sum {
        Some(sum) => Ok(scalar(&sum.sqrt())?),
        None => Ok(0.0),
    }
}

#[derive(Default)]
struct GrabParams {
    params: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for GrabParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().without_autodiff();
        let count = value.shape().num_elements();
        self.params.insert(param.id, value.reshape([count]));
    }
}

struct Ema {
    source: HashMap<ParamId, Tensor<1>>,
    momentum: f32,
}

impl ModuleMapper for Ema {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.source.remove(&param.id) else {
            return param;
        };
        let momentum = self.momentum;
        param.map(|target| {
            let online: Tensor<D> = online.reshape(target.shape());
            target * momentum + online * (1.0 - momentum)
        })
    }
}
