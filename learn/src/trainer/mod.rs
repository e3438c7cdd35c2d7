//! The trainer: samples sequences from the replay buffer, computes every enabled objective,
//! steps Adam, updates the EMA target, guards against NaN/Inf, and publishes encoder snapshots.
//!
//! The rooms: [`config`](TrainerConfig) (what shapes training), `batch` (sampling from the
//! replay buffer), `step` (one function per objective, then apply-or-skip), `losses` (the loss
//! terms as tensor functions), `ema` (the target network), `checkpoint` (crash-safe save and
//! resume, safetensors export) and `preview` (decoded pictures for the viewer).

mod batch;
mod checkpoint;
mod config;
mod ema;
mod losses;
mod placement;
mod preview;
mod relative;
mod step;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use batch::Batch;
pub use checkpoint::CHECKPOINT_FORMAT;
pub use config::{
    ContrastiveConfig, ForwardConfig, InverseConfig, LearningRateDecay, MaskedConfig,
    ObjectivesConfig, OdometryConfig, ReconstructionConfig, SigRegConfig, SpreadConfig,
    TrainerConfig,
};
pub use preview::Preview;
pub use step::{Losses, StepReport};

use crate::LearnError;
use crate::device::{BackendKind, Placements};
use crate::inference::{DynamicsSnapshot, EncoderHandle, EncoderSnapshot};
use crate::model::{StateEncoder, TargetNetwork, WorldModel};
use crate::replay::{ReplayBuffer, Transition};

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
    /// Pairs the odometry objective trained on; `None` for a model resumed from a checkpoint
    /// written before they were counted (its head is served as it was then).
    odometry_pairs: Option<u64>,
    /// Sampled odometry pairs that were revisits, since this trainer was made.
    revisit_pairs: u64,
    weights_version: u64,
    handle: Option<EncoderHandle>,
    placements: Placements,
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
    /// A freshly initialised trainer (weights from `config.seed`), on the backends
    /// `config.backend` and `config.inference_backend` decide on this machine.
    pub fn new(config: TrainerConfig) -> Result<Self, LearnError> {
        config.validate()?;
        let training = config.backend.resolve()?;
        let plain = training.device();
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
        let inference = placement::place_inference(
            config.inference_backend,
            &model.encoder,
            &config.model.encoder,
        )?;
        Ok(Self {
            optimizer: adam(&config),
            last_good: (model.clone(), target.clone()),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            inference_device: inference.device(),
            placements: Placements {
                training,
                inference,
            },
            config,
            device,
            model,
            target,
            replay,
            step: 0,
            non_finite_skips: 0,
            odometry_pairs: Some(0),
            revisit_pairs: 0,
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

    /// Pairs the odometry objective has trained on (both orders of a pair count once); `None`
    /// for a model resumed from a checkpoint written before they were counted.
    pub fn odometry_pairs(&self) -> Option<u64> {
        self.odometry_pairs
    }

    /// Odometry pairs sampled as revisits
    /// ([`OdometryConfig::revisit_share`](config::OdometryConfig::revisit_share)) since this
    /// trainer was made (not kept in checkpoints).
    pub fn revisit_pairs(&self) -> u64 {
        self.revisit_pairs
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

    /// Waits until the training and inference backends have run every operation queued so far
    /// (a GPU runs them after the call that queued them returns; the CPU at once).
    pub fn finish_queued_work(&self) -> Result<(), LearnError> {
        for device in [&self.device, &self.inference_device] {
            device
                .sync()
                .map_err(|e| LearnError::Backend(format!("finishing queued work: {e:?}")))?;
        }
        Ok(())
    }

    /// Where training and inference run, and why.
    pub fn placements(&self) -> &Placements {
        &self.placements
    }

    /// Moves inference (snapshots published from now on) to `kind`.
    pub fn set_inference_backend(&mut self, kind: BackendKind) {
        self.inference_device = kind.device();
        self.placements.inference = crate::device::Placement {
            kind,
            reason: "set".into(),
        };
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

    /// A snapshot of the current latent dynamics, for rollouts, with the proprio head where
    /// the forward objective trains it (a model with proprio, `forward.enabled` and
    /// `forward.proprio_weight > 0`) and the relative-pose head where the odometry objective
    /// has trained one enough to serve it ([`Trainer::relative_pose_head`]).
    pub fn dynamics_snapshot(&self) -> DynamicsSnapshot {
        let mut snapshot = DynamicsSnapshot::new(
            &self.model.dynamics,
            self.config.model.embed_dim(),
            self.config.action_scale,
            self.weights_version,
            &self.inference_device,
        );
        if let (Some(head), true) = (&self.model.proprio_head, self.config.serves_proprio_head()) {
            snapshot = snapshot.with_proprio_head(head);
        }
        match self.relative_pose_head() {
            Some(head) => snapshot.with_relative_pose(head),
            None => snapshot,
        }
    }

    /// Samples a batch and trains on it.
    pub fn step(&mut self) -> Result<StepReport, LearnError> {
        let batch = self.sample_batch()?;
        self.train_on(&batch)
    }

    /// Publishes the current encoder to the handle (if any) as a new version.
    pub fn publish(&mut self) {
        self.weights_version += 1;
        if let Some(handle) = &self.handle {
            handle.publish(self.snapshot());
        }
    }

    /// Trainable parameters of the online world model (the EMA target is not counted).
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }
}
