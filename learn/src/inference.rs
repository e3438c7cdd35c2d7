//! Inference from a versioned weight snapshot that the trainer swaps in while the encoder keeps
//! serving: readers clone an `Arc` under a lock held for nanoseconds, never waiting for training.

use std::sync::{Arc, RwLock};

use burn::nn::Linear;
use burn::prelude::*;

use crate::LearnError;
use crate::augment::plain_rows_into;
use crate::cpu::direct::{DirectConvStack, PixelLayout};
use crate::model::{Dynamics, StateEncoder, StateEncoderConfig};
use crate::relative_pose::RelativePoseHead;
use crate::replay::ACTION_DIM;

/// An immutable, versioned copy of the encoder's weights on the inference device.
#[derive(Debug)]
pub struct EncoderSnapshot {
    /// Increases by one with every published snapshot.
    pub version: u64,
    /// Training step the weights come from.
    pub train_step: u64,
    encoder: StateEncoder,
    /// The encoder's convolutions as direct kernels, on the CPU backend.
    direct: Option<DirectConvStack>,
    config: StateEncoderConfig,
    device: Device,
}

impl EncoderSnapshot {
    /// Wraps an encoder (moved to `device`, autodiff dropped).
    pub fn new(
        encoder: &StateEncoder,
        config: StateEncoderConfig,
        version: u64,
        train_step: u64,
        device: &Device,
    ) -> Self {
        let encoder = encoder.valid().to_device(device);
        let direct = if crate::cpu::cpu_kernels_on(device) {
            encoder
                .direct_stack()
                .inspect_err(|error| {
                    tracing::warn!(%error, "direct convolutions unavailable: using the tensor path");
                })
                .ok()
        } else {
            None
        };
        Self {
            version,
            train_step,
            encoder,
            direct,
            config,
            device: device.clone(),
        }
    }

    /// The encoder's shapes.
    pub fn config(&self) -> &StateEncoderConfig {
        &self.config
    }

    /// The device inference runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The encoder module (for [`crate::weights`]).
    pub(crate) fn module(&self) -> &StateEncoder {
        &self.encoder
    }

    /// Embeds a batch of `rgb8` images with their proprio features.
    ///
    /// # Shapes
    /// - `images`: each `height × width × 3` bytes
    /// - `proprio`: each `proprio_dim` values
    /// - output: one `embed_dim` vector per image
    pub fn embed_batch(
        &self,
        images: &[&[u8]],
        proprio: &[&[f32]],
    ) -> Result<Vec<Vec<f32>>, LearnError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        if images.len() != proprio.len() {
            return Err(LearnError::BadInput(format!(
                "{} images but {} proprio vectors",
                images.len(),
                proprio.len()
            )));
        }
        let proprio = self.proprio_tensor(proprio)?;
        let features = self.image_feature_tensor(images)?;
        rows_of(self.encoder.fuse(features, proprio), "embeddings")
    }

    /// Embeds one image.
    pub fn embed(&self, image: &[u8], proprio: &[f32]) -> Result<Vec<f32>, LearnError> {
        self.embed_batch(&[image], &[proprio])?
            .pop()
            .ok_or_else(|| LearnError::Backend("empty embedding batch".into()))
    }

    /// The image branch's features of one `rgb8` image, before they are fused with any proprio:
    /// a goal image kept this way is embedded with whatever proprio [`Self::fuse`] is given.
    ///
    /// # Shapes
    /// - `image`: `height × width × 3` bytes
    /// - output: `feature_dim` values
    pub fn image_features(&self, image: &[u8]) -> Result<Vec<f32>, LearnError> {
        rows_of(self.image_feature_tensor(&[image])?, "image features")?
            .pop()
            .ok_or_else(|| LearnError::Backend("empty feature batch".into()))
    }

    /// One image's features ([`Self::image_features`]) fused with each of several proprio
    /// vectors: the embedding that image would have at each of them.
    ///
    /// # Shapes
    /// - `image_features`: `feature_dim` values
    /// - `proprio`: `N` vectors of `proprio_dim` values
    /// - output: `N` vectors of `embed_dim` values
    pub fn fuse(
        &self,
        image_features: &[f32],
        proprio: &[&[f32]],
    ) -> Result<Vec<Vec<f32>>, LearnError> {
        let feature_dim = self.config.image.feature_dim;
        check_values(
            "image features",
            image_features,
            feature_dim,
            "the encoder's image features",
        )?;
        if proprio.is_empty() {
            return Ok(Vec::new());
        }
        let n = proprio.len();
        let features = Tensor::<2>::from_data(
            TensorData::new(image_features.repeat(n), [n, feature_dim]),
            &self.device,
        );
        let proprio = self.proprio_tensor(proprio)?;
        rows_of(self.encoder.fuse(features, proprio), "embeddings")
    }

    /// Proprio vectors as one `[N, max(P, 1)]` tensor: with no proprio branch the encoder
    /// ignores it (one zero column keeps shapes valid).
    fn proprio_tensor(&self, proprio: &[&[f32]]) -> Result<Tensor<2>, LearnError> {
        let proprio_dim = self.config.proprio_dim;
        let mut values = vec![0.0f32; proprio.len() * proprio_dim.max(1)];
        for (index, vector) in proprio.iter().enumerate() {
            if vector.len() != proprio_dim || vector.iter().any(|v| !v.is_finite()) {
                return Err(LearnError::BadInput(format!(
                    "proprio {index} must be {proprio_dim} finite values"
                )));
            }
            values[index * proprio_dim..(index + 1) * proprio_dim].copy_from_slice(vector);
        }
        Ok(Tensor::<2>::from_data(
            TensorData::new(values, [proprio.len(), proprio_dim.max(1)]),
            &self.device,
        ))
    }

    /// The image branch's features of a batch of `rgb8` images, `[B, feature_dim]`.
    fn image_feature_tensor(&self, images: &[&[u8]]) -> Result<Tensor<2>, LearnError> {
        let (width, height) = (self.config.image.width, self.config.image.height);
        let image_len = width * height * 3;
        let batch = images.len();
        let mut pixels = vec![0.0f32; batch * image_len];
        for (index, image) in images.iter().enumerate() {
            if image.len() != image_len {
                return Err(LearnError::BadInput(format!(
                    "image {index} has {} bytes, expected {image_len} ({width}x{height} rgb8)",
                    image.len()
                )));
            }
            plain_rows_into(
                image,
                &mut pixels[index * image_len..(index + 1) * image_len],
            );
        }
        match &self.direct {
            Some(stack) => self.encoder.image_features_direct(
                stack,
                &[&pixels],
                PixelLayout::ChannelsLast,
                [height, width],
                &self.device,
            ),
            None => {
                let rows = Tensor::<2>::from_data(
                    TensorData::new(pixels, [batch * height * width, 3]),
                    &self.device,
                );
                Ok(self
                    .encoder
                    .image_features_rows(rows, [batch, height, width]))
            }
        }
    }
}

/// The rows of a `[N, C]` tensor as vectors; `what` names them in an error.
fn rows_of(tensor: Tensor<2>, what: &str) -> Result<Vec<Vec<f32>>, LearnError> {
    let width = tensor.dims()[1];
    let flat: Vec<f32> = tensor
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| LearnError::Backend(format!("reading {what}: {e:?}")))?;
    Ok(flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
}

/// Shared, swappable access to the newest encoder snapshot.
#[derive(Debug, Clone)]
pub struct EncoderHandle {
    current: Arc<RwLock<Arc<EncoderSnapshot>>>,
}

impl EncoderHandle {
    /// A handle serving `snapshot` until the next `publish`.
    pub fn new(snapshot: EncoderSnapshot) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(snapshot))),
        }
    }

    /// The newest snapshot (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<EncoderSnapshot> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            // A writer panicked mid-swap; the Arc inside is still a complete snapshot.
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Serves `snapshot` only if its version is newer than the one served now (weights that
    /// arrive from elsewhere never take a node back); returns whether it was served.
    pub fn publish_newer(&self, snapshot: EncoderSnapshot) -> bool {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if snapshot.version <= guard.version {
            return false;
        }
        *guard = Arc::new(snapshot);
        true
    }

    /// Replaces the served snapshot; readers holding the old one keep it until they drop it.
    pub fn publish(&self, snapshot: EncoderSnapshot) {
        let snapshot = Arc::new(snapshot);
        match self.current.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }
}

/// An immutable copy of the latent dynamics for rollouts (planning, evaluation), with the
/// relative-pose head where the model serves one (once the odometry objective has trained it)
/// and the proprio head where the model serves one (its forward objective trains it): what a
/// planner needs besides the encoder.
#[derive(Debug)]
pub struct DynamicsSnapshot {
    /// Version of the weights it was taken from.
    pub version: u64,
    dynamics: Dynamics,
    relative_pose: Option<RelativePoseHead>,
    proprio_head: Option<Linear>,
    action_scale: [f32; ACTION_DIM],
    embed_dim: usize,
    device: Device,
}

impl DynamicsSnapshot {
    /// Wraps dynamics (moved to `device`, autodiff dropped).
    pub fn new(
        dynamics: &Dynamics,
        embed_dim: usize,
        action_scale: [f32; ACTION_DIM],
        version: u64,
        device: &Device,
    ) -> Self {
        Self {
            version,
            dynamics: dynamics.valid().to_device(device),
            relative_pose: None,
            proprio_head: None,
            action_scale,
            embed_dim,
            device: device.clone(),
        }
    }

    /// The same snapshot with the relative-pose head of the same weights version.
    pub fn with_relative_pose(mut self, head: RelativePoseHead) -> Self {
        self.relative_pose = Some(head);
        self
    }

    /// The relative-pose head of this weights version; `None` for a model that trains none, or
    /// whose head has not trained on `serve_after_pairs` pairs yet.
    pub fn relative_pose(&self) -> Option<&RelativePoseHead> {
        self.relative_pose.as_ref()
    }

    /// The same snapshot with the proprio head of the same weights version: the forward
    /// objective trains it to read, from a predicted state, the proprio the robot will feel
    /// there.
    pub fn with_proprio_head(mut self, head: &Linear) -> Self {
        self.proprio_head = Some(head.valid().to_device(&self.device));
        self
    }

    /// Whether [`Self::predicted_proprio`] can answer (the snapshot carries the proprio head).
    pub fn predicts_proprio(&self) -> bool {
        self.proprio_head.is_some()
    }

    /// The proprio head's module, where the snapshot carries one (to pack it).
    pub fn proprio_head(&self) -> Option<&Linear> {
        self.proprio_head.as_ref()
    }

    /// The proprio the proprio head reads from each state (a predicted or an encoded
    /// embedding); refused with [`LearnError::BadInput`] without a head.
    ///
    /// # Shapes
    /// - `states`: `N` embeddings of `D` values
    /// - output: `N` vectors of `P` values
    pub fn predicted_proprio(&self, states: &[&[f32]]) -> Result<Vec<Vec<f32>>, LearnError> {
        let Some(head) = &self.proprio_head else {
            return Err(LearnError::BadInput(
                "these dynamics carry no proprio head (a model without proprio or whose forward \
                 objective does not train it, or weights packed without it)"
                    .into(),
            ));
        };
        let d = self.embed_dim;
        if let Some(bad) = states.iter().position(|s| s.len() != d) {
            return Err(LearnError::BadInput(format!(
                "state {bad} has {} values, the model's embeddings have {d}",
                states[bad].len()
            )));
        }
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let n = states.len();
        let states = Tensor::<2>::from_data(TensorData::new(states.concat(), [n, d]), &self.device);
        rows_of(head.forward(states), "predicted proprio")
    }

    /// Embedding size `D` the dynamics work in.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }

    /// The dynamics module (for [`crate::weights`]).
    pub(crate) fn module(&self) -> &Dynamics {
        &self.dynamics
    }

    /// Predicts the embedding after each action of each candidate sequence, all starting from
    /// `start`. Actions are in robot units (`[m/s, rad/s]`).
    ///
    /// # Shapes
    /// - `start`: `D` values
    /// - `candidates`: `K` sequences of `H` actions each (same `H` for all)
    /// - output: `K × H` embeddings of `D` values
    pub fn rollout(
        &self,
        start: &[f32],
        candidates: &[Vec<[f32; ACTION_DIM]>],
    ) -> Result<Vec<Vec<Vec<f32>>>, LearnError> {
        // Checked before anything is allocated for the request; the start then becomes one
        // `[K, D]` tensor (no vector per candidate).
        let d = self.embed_dim;
        check_values("start", start, d, "the model's embeddings")?;
        let horizon = check_candidates(candidates)?;
        let k = candidates.len();
        let start = Tensor::<2>::from_data(TensorData::new(start.repeat(k), [k, d]), &self.device);
        self.rollout_tensor(start, candidates, horizon)
    }

    /// Like [`rollout`](Self::rollout), with one start embedding per candidate.
    pub fn rollout_from(
        &self,
        starts: &[Vec<f32>],
        candidates: &[Vec<[f32; ACTION_DIM]>],
    ) -> Result<Vec<Vec<Vec<f32>>>, LearnError> {
        let d = self.embed_dim;
        if starts.len() != candidates.len() {
            return Err(LearnError::BadInput(format!(
                "{} starts for {} action sequences",
                starts.len(),
                candidates.len()
            )));
        }
        if let Some(bad) = starts.iter().position(|s| s.len() != d) {
            return Err(LearnError::BadInput(format!(
                "start {bad} has {} values, the model's embeddings have {d}",
                starts[bad].len()
            )));
        }
        if starts.iter().flatten().any(|v| !v.is_finite()) {
            return Err(LearnError::BadInput("non-finite action".into()));
        }
        let horizon = check_candidates(candidates)?;
        let k = candidates.len();
        let start = Tensor::<2>::from_data(TensorData::new(starts.concat(), [k, d]), &self.device);
        self.rollout_tensor(start, candidates, horizon)
    }

    /// The rollout of checked `candidates` (all `horizon` long) from `start`, `[K, D]`.
    fn rollout_tensor(
        &self,
        start: Tensor<2>,
        candidates: &[Vec<[f32; ACTION_DIM]>],
        horizon: usize,
    ) -> Result<Vec<Vec<Vec<f32>>>, LearnError> {
        let (k, d) = (candidates.len(), self.embed_dim);
        let actions: Vec<f32> = candidates
            .iter()
            .flatten()
            .flat_map(|a| [a[0] / self.action_scale[0], a[1] / self.action_scale[1]])
            .collect();
        let actions = Tensor::<3>::from_data(
            TensorData::new(actions, [k, horizon, ACTION_DIM]),
            &self.device,
        );
        let predicted = self.dynamics.rollout(start, actions);
        let flat: Vec<f32> = predicted
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| LearnError::Backend(format!("reading predictions: {e:?}")))?;
        Ok(flat
            .chunks(horizon * d)
            .map(|sequence| sequence.chunks(d).map(<[f32]>::to_vec).collect())
            .collect())
    }
}

/// Checks a rollout's action sequences: at least one, none empty, all as long as the first, all
/// finite. Returns their length.
/// Refuses `values` (named `what`) unless they are `expected` finite values, as `whose` are.
pub(crate) fn check_values(
    what: &str,
    values: &[f32],
    expected: usize,
    whose: &str,
) -> Result<(), LearnError> {
    if values.len() != expected {
        return Err(LearnError::BadInput(format!(
            "{what}: {} values, {whose} have {expected}",
            values.len()
        )));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(LearnError::BadInput(format!("non-finite {what}")));
    }
    Ok(())
}

fn check_candidates(candidates: &[Vec<[f32; ACTION_DIM]>]) -> Result<usize, LearnError> {
    let Some(first) = candidates.first() else {
        return Err(LearnError::BadInput("no action sequences".into()));
    };
    let horizon = first.len();
    if horizon == 0 {
        return Err(LearnError::BadInput("empty action sequence".into()));
    }
    if let Some(bad) = candidates.iter().position(|c| c.len() != horizon) {
        return Err(LearnError::BadInput(format!(
            "sequence {bad} has {} actions, the first has {horizon}",
            candidates[bad].len()
        )));
    }
    if candidates
        .iter()
        .flatten()
        .flatten()
        .any(|v| !v.is_finite())
    {
        return Err(LearnError::BadInput("non-finite action".into()));
    }
    Ok(horizon)
}
