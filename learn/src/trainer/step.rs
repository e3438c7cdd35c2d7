//! One training step: encode the targets, encode the online branch, one function per objective,
//! then apply the gradients or skip a non-finite batch.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::Trainer;
use super::batch::Batch;
use super::losses::{gradient_norm, info_nce, scalar, sigreg, spread_terms};
use crate::augment::channels_last;
use crate::cpu::direct::PixelLayout;
use crate::model::{RELATIVE_POSE_DIM, l2_normalize};
use crate::replay::ACTION_DIM;
use crate::{LearnError, OdometryPose};

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
    /// Inverse dynamics (the command from two frames).
    pub inverse: f32,
    /// SIGReg statistic of the state embedding.
    pub sigreg: f32,
    /// Relative pose between two frames, from wheel odometry.
    pub odometry: f32,
}

impl Losses {
    /// Every loss with its name, `total` first (for logs and telemetry).
    pub fn named(&self) -> [(&'static str, f32); 12] {
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
            ("inverse", self.inverse),
            ("sigreg", self.sigreg),
            ("odometry", self.odometry),
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

/// The sizes of one batch.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Sequences.
    b: usize,
    width: usize,
    height: usize,
    /// Proprio values per frame (at least 1: a model without proprio gets a zero column).
    proprio_dim: usize,
    /// Forward horizon `F`.
    horizon: usize,
    /// Values of one `3 × H × W` image.
    image_len: usize,
}

/// The batch's proprio on the plain device (constants for every branch).
struct Proprio {
    /// `[B, F+1, P]`.
    all: Tensor<3>,
    /// Proprio at `t`, `[B, P]`.
    now: Tensor<2>,
    /// Zeros like `now`: the contrastive views see the image only.
    none: Tensor<2>,
}

/// The EMA target's embeddings (plain device: constants for the losses).
struct Targets {
    /// `(view_b, temporal positive)`, `[B, D]` each, without proprio; when contrastive is on.
    views: Option<(Tensor<2>, Tensor<2>)>,
    /// Frames `t+1 ..= t+F`, batch-major, `[B·F, D]`; when `F > 0`.
    future: Option<Tensor<2>>,
    /// View A (unmasked) with its proprio, `[B, D]`; for the masked objective, the
    /// target-start forward term and the steps' copy-last weights.
    now: Option<Tensor<2>>,
    /// Frame `t+1` without proprio, `[B, D]`; for the inverse objective.
    next_image_only: Option<Tensor<2>>,
    /// The odometry pair's second frame without proprio, `[B, D]`; for the odometry objective.
    odometry_second: Option<Tensor<2>>,
    /// Images the target encoded.
    encoded: usize,
}

/// The online branch on view A (autodiff device).
struct Online {
    /// View A as channels-last rows, `[B·H·W, 3]` (the CPU convolutions' layout).
    view_a: Tensor<2>,
    /// Proprio at `t`, `[B, P]`.
    proprio: Tensor<2>,
    /// The state embedding, `[B, D]`.
    state: Tensor<2>,
    /// The state embedding without proprio, `[B, D]`; for the contrastive, inverse and
    /// odometry objectives.
    image_only: Option<Tensor<2>>,
}

/// The weighted sum being built and each term's value.
#[derive(Default)]
struct Terms {
    losses: Losses,
    total: Option<Tensor<1>>,
}

impl Terms {
    /// Adds `term × weight` to the total and records the unweighted value in `slot`.
    fn add(
        &mut self,
        term: Tensor<1>,
        weight: f32,
        slot: fn(&mut Losses) -> &mut f32,
    ) -> Result<(), LearnError> {
        *slot(&mut self.losses) = scalar(&term)?;
        let weighted = term * weight;
        self.total = Some(match self.total.take() {
            Some(sum) => sum + weighted,
            None => weighted,
        });
        Ok(())
    }
}

/// The input of a head on two frames: the online image-only embedding of the first beside the
/// target's of the second.
///
/// # Shapes
/// - `online`, `target`: `[B, D]`
/// - output: `[B, 2·D]`
fn image_pair(online: &Tensor<2>, target: &Tensor<2>) -> Tensor<2> {
    Tensor::cat(vec![online.clone(), Tensor::from_inner(target.clone())], 1)
}

impl Trainer {
    /// Trains on one batch. A batch whose loss or gradients are not finite is skipped, the last
    /// good weights are restored, and the skip is counted.
    pub fn train_on(&mut self, batch: &Batch) -> Result<StepReport, LearnError> {
        let started = Instant::now();
        let shape = self.check_batch(batch)?;
        let proprio = self.proprio(batch, shape);
        let targets = self.encode_targets(batch, shape, &proprio)?;
        let online = self.encode_online(batch, shape, &proprio);
        let mut terms = Terms::default();
        self.contrastive_loss(&online, &targets, &mut terms)?;
        self.spread_loss(&online, &mut terms)?;
        self.sigreg_loss(&online, &mut terms)?;
        self.forward_loss(batch, shape, &online, &proprio, &targets, &mut terms)?;
        self.reconstruction_loss(&online, &mut terms)?;
        self.masked_loss(batch, shape, &online, &targets, &mut terms)?;
        self.inverse_loss(batch, shape, &online, &targets, &mut terms)?;
        let odometry_pairs = self.odometry_loss(batch, shape, &online, &targets, &mut terms)?;
        let encoded =
            shape.b * (1 + usize::from(self.config.objectives.masked.enabled)) + targets.encoded;
        self.apply_or_skip(terms, shape.b, encoded, odometry_pairs, started)
    }

    /// The batch's sizes, after checking every buffer against them.
    fn check_batch(&self, batch: &Batch) -> Result<Shape, LearnError> {
        let c = &self.config;
        let (width, height) = (c.model.encoder.image.width, c.model.encoder.image.height);
        let shape = Shape {
            b: batch.size,
            width,
            height,
            proprio_dim: c.model.encoder.proprio_dim.max(1),
            horizon: c.forward_horizon(),
            image_len: 3 * width * height,
        };
        let Shape {
            b,
            horizon,
            image_len,
            proprio_dim,
            ..
        } = shape;
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
        let o = &c.objectives;
        expect("view_a", batch.view_a.len(), b * image_len)?;
        expect("view_b", batch.view_b.len(), b * image_len)?;
        expect("temporal_offsets", batch.temporal_offsets.len(), b)?;
        expect(
            "positive",
            batch.positive.len(),
            rows_if(o.contrastive.enabled),
        )?;
        expect("future", batch.future.len(), b * horizon * image_len)?;
        expect("masked", batch.masked.len(), rows_if(o.masked.enabled))?;
        expect(
            "proprio",
            batch.proprio.len(),
            b * (horizon + 1) * proprio_dim,
        )?;
        expect("actions", batch.actions.len(), b * horizon * ACTION_DIM)?;
        let odometry_on = o.odometry.enabled;
        expect(
            "odometry_offsets",
            batch.odometry_offsets.len(),
            if odometry_on { b } else { 0 },
        )?;
        expect(
            "odometry_frames",
            batch.odometry_frames.len(),
            rows_if(odometry_on),
        )?;
        expect(
            "relative_poses",
            batch.relative_poses.len(),
            if odometry_on {
                b * RELATIVE_POSE_DIM
            } else {
                0
            },
        )?;
        expect(
            "relative_pose_known",
            batch.relative_pose_known.len(),
            if odometry_on { b } else { 0 },
        )?;
        Ok(shape)
    }

    fn proprio(&self, batch: &Batch, shape: Shape) -> Proprio {
        let Shape {
            b,
            horizon,
            proprio_dim,
            ..
        } = shape;
        let plain = self.device.clone().without_autodiff();
        let all = Tensor::<3>::from_data(
            TensorData::new(batch.proprio.clone(), [b, horizon + 1, proprio_dim]),
            &plain,
        );
        let now = all
            .clone()
            .slice([0..b, 0..1, 0..proprio_dim])
            .reshape([b, proprio_dim]);
        let none = now.zeros_like();
        Proprio { all, now, none }
    }

    /// The EMA target's embeddings, all images encoded in one batch: `[view_b, positive]`
    /// (contrastive), `future` (forward), `view_a` (masked, target start), the odometry pair's
    /// second frame (odometry). The contrastive views
    /// see the image only: both views (and the temporal positive) share their proprio, which
    /// would make matching them a shortcut that ignores the image.
    fn encode_targets(
        &self,
        batch: &Batch,
        shape: Shape,
        proprio: &Proprio,
    ) -> Result<Targets, LearnError> {
        let Shape {
            b,
            width,
            height,
            proprio_dim,
            horizon,
            image_len,
        } = shape;
        let c = &self.config;
        let o = &c.objectives;
        let plain = self.device.clone().without_autodiff();
        let contrastive_on = o.contrastive.enabled;
        let mut target_images: Vec<&[f32]> = Vec::new();
        if contrastive_on {
            target_images.push(&batch.view_b);
            target_images.push(&batch.positive);
        }
        target_images.push(&batch.future);
        let now_on = o.masked.enabled
            || self.target_start_on()
            || (horizon > 0 && o.forward.copy_last_power > 0.0);
        if now_on {
            target_images.push(&batch.view_a);
        }
        let odometry_on = o.odometry.enabled;
        if odometry_on {
            target_images.push(&batch.odometry_frames);
        }
        let view_rows = if contrastive_on { 2 * b } else { 0 };
        let now_rows = if now_on { b } else { 0 };
        let encoded = view_rows + horizon * b + now_rows + if odometry_on { b } else { 0 };
        let features = if crate::cpu::cpu_kernels_on(&plain) {
            // On the CPU the target's convolutions run as direct kernels on the batch's own
            // buffers, in one pass over all of them (see `crate::cpu::direct`).
            let stack = self.target.encoder.direct_stack()?;
            self.target.encoder.image_features_direct(
                &stack,
                &target_images,
                PixelLayout::ChannelsFirst,
                [height, width],
                &plain,
            )?
        } else {
            let chunk = if c.target_chunk == 0 {
                encoded
            } else {
                c.target_chunk
            };
            let frames: Vec<&[f32]> = target_images
                .iter()
                .flat_map(|part| part.chunks(image_len))
                .collect();
            let chunk_features = frames
                .chunks(chunk.max(1))
                .map(|frames| {
                    let data = Tensor::<4>::from_data(
                        TensorData::new(frames.concat(), [frames.len(), 3, height, width]),
                        &plain,
                    );
                    self.target.encoder.image_features(data)
                })
                .collect();
            Tensor::cat(chunk_features, 0)
        };
        let feature_dim = c.model.encoder.image.feature_dim;
        let take = |from: usize, n: usize| features.clone().slice([from..from + n, 0..feature_dim]);
        let encoder = &self.target.encoder;
        let views = contrastive_on.then(|| {
            (
                encoder.fuse(take(0, b), proprio.none.clone()),
                encoder.fuse(take(b, b), proprio.none.clone()),
            )
        });
        let future = (horizon > 0).then(|| {
            let future_proprio = proprio
                .all
                .clone()
                .slice([0..b, 1..horizon + 1, 0..proprio_dim])
                .reshape([b * horizon, proprio_dim]);
            encoder.fuse(take(view_rows, horizon * b), future_proprio)
        });
        let now =
            now_on.then(|| encoder.fuse(take(view_rows + horizon * b, b), proprio.now.clone()));
        // `future` is batch-major: frame t+1 of sequence i is row i·F.
        let next_image_only = (o.inverse.enabled && horizon > 0).then(|| {
            let next = take(view_rows, horizon * b)
                .reshape([b, horizon, feature_dim])
                .slice([0..b, 0..1, 0..feature_dim])
                .reshape([b, feature_dim]);
            encoder.fuse(next, proprio.none.clone())
        });
        let odometry_second = odometry_on.then(|| {
            encoder.fuse(
                take(view_rows + horizon * b + now_rows, b),
                proprio.none.clone(),
            )
        });
        Ok(Targets {
            views,
            future,
            now,
            next_image_only,
            odometry_second,
            encoded,
        })
    }

    /// The forward objective's second term: the rollout from the target's embedding of `t`.
    fn target_start_on(&self) -> bool {
        self.config.forward_horizon() > 0
            && self.config.objectives.forward.target_start_weight > 0.0
    }

    /// The online branch takes view A as channels-last rows, the CPU convolutions' layout; the
    /// reconstruction is compared in the same layout.
    fn encode_online(&self, batch: &Batch, shape: Shape, proprio: &Proprio) -> Online {
        let Shape {
            b, width, height, ..
        } = shape;
        let view_a = Tensor::<2>::from_data(
            TensorData::new(
                channels_last(&batch.view_a, width * height),
                [b * height * width, 3],
            ),
            &self.device,
        );
        let encoder = &self.model.encoder;
        let features = encoder.image_features_rows(view_a.clone(), [b, height, width]);
        let o = &self.config.objectives;
        let image_only = (o.contrastive.enabled || o.inverse.enabled || o.odometry.enabled)
            .then(|| encoder.fuse(features.clone(), Tensor::from_inner(proprio.none.clone())));
        let proprio = Tensor::from_inner(proprio.now.clone());
        let state = encoder.fuse(features, proprio.clone());
        Online {
            view_a,
            proprio,
            state,
            image_only,
        }
    }

    /// InfoNCE of the online image-only embedding against the target's other view and against
    /// the temporal positive.
    fn contrastive_loss(
        &self,
        online: &Online,
        targets: &Targets,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
        let (Some((view_b, temporal)), Some(image_only)) = (&targets.views, &online.image_only)
        else {
            return Ok(());
        };
        let o = &self.config.objectives.contrastive;
        let query = l2_normalize(self.model.projector.forward(image_only.clone()));
        let key = l2_normalize(self.target.projector.forward(view_b.clone()));
        let key_temporal = l2_normalize(self.target.projector.forward(temporal.clone()));
        let views = info_nce(query.clone(), Tensor::from_inner(key), o.temperature);
        let temporal = info_nce(query, Tensor::from_inner(key_temporal), o.temperature);
        terms.add(views, o.weight, |l| &mut l.contrastive)?;
        terms.add(temporal, o.weight * o.temporal_weight, |l| &mut l.temporal)
    }

    /// The variance hinge and covariance penalty of the state embedding.
    fn spread_loss(&self, online: &Online, terms: &mut Terms) -> Result<(), LearnError> {
        let o = &self.config.objectives.spread;
        if !o.enabled {
            return Ok(());
        }
        let (variance, covariance) = spread_terms(online.state.clone(), o.target_std);
        terms.add(variance, o.variance_weight, |l| &mut l.variance)?;
        terms.add(covariance, o.covariance_weight, |l| &mut l.covariance)
    }

    /// SIGReg on the state embedding, on directions drawn from the trainer's seeded stream.
    fn sigreg_loss(&mut self, online: &Online, terms: &mut Terms) -> Result<(), LearnError> {
        let o = self.config.objectives.sigreg.clone();
        if !o.enabled {
            return Ok(());
        }
        let dim = self.config.model.embed_dim();
        // One direction per row of `[M, D]`, each scaled to unit length.
        let mut directions: Vec<f32> = (0..o.directions * dim)
            .map(|_| StandardNormal.sample(&mut self.rng))
            .collect();
        for direction in directions.chunks_mut(dim) {
            let norm = direction
                .iter()
                .map(|v| v * v)
                .sum::<f32>()
                .sqrt()
                .max(1e-12);
            direction.iter_mut().for_each(|v| *v /= norm);
        }
        let directions = Tensor::<2>::from_data(
            TensorData::new(directions, [o.directions, dim]),
            &self.device,
        )
        .transpose();
        let statistic = sigreg(online.state.clone(), directions, o.knots, o.t_max);
        terms.add(statistic, o.weight, |l| &mut l.sigreg)
    }

    /// The latent rollout under the recorded actions against the target's embeddings of the
    /// real future (from the online state and, weighted, from the target's), and the
    /// next-proprio head on the predictions.
    fn forward_loss(
        &self,
        batch: &Batch,
        shape: Shape,
        online: &Online,
        proprio: &Proprio,
        targets: &Targets,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
        let o = &self.config.objectives.forward;
        let (true, Some(target_future)) = (o.enabled, &targets.future) else {
            return Ok(());
        };
        let Shape {
            b,
            horizon,
            proprio_dim,
            ..
        } = shape;
        let actions = Tensor::<3>::from_data(
            TensorData::new(batch.actions.clone(), [b, horizon, ACTION_DIM]),
            &self.device,
        );
        let embed_dim = self.config.model.embed_dim();
        let dynamics = &self.model.dynamics;
        // With the target-start term, both rollouts (from the online state and from the
        // target's) run as one batch of 2B rows: the same products, half the calls.
        let start = if self.target_start_on() {
            targets.now.clone()
        } else {
            None
        };
        let (predicted, from_target) = match start {
            Some(start) => {
                let both = dynamics.rollout(
                    Tensor::cat(vec![online.state.clone(), Tensor::from_inner(start)], 0),
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
                dynamics
                    .rollout(online.state.clone(), actions)
                    .reshape([b * horizon, embed_dim]),
                None,
            ),
        };
        // Row order of `future` is batch-major (b, then step), as is `predicted`.
        let power = o.copy_last_power;
        let step_weights = match (power > 0.0, &targets.now) {
            (true, Some(now)) => Some(copy_last_weights(now, target_future, [b, horizon], power)),
            _ => None,
        };
        let target_future = Tensor::from_inner(l2_normalize(target_future.clone()));
        // The rollout's squared error: the mean over rows, or over steps weighed.
        let error = |rollout: Tensor<2>| {
            let rows = (l2_normalize(rollout) - target_future.clone())
                .square()
                .sum_dim(1);
            match &step_weights {
                Some(weights) => (rows.reshape([b, horizon]).mean_dim(0)
                    * Tensor::from_inner(weights.clone()))
                .sum(),
                None => rows.mean(),
            }
        };
        let mut forward = error(predicted.clone());
        if let Some(from_target) = from_target {
            let weight = o.target_start_weight;
            forward = (forward + error(from_target) * weight) / (1.0 + weight);
        }
        terms.add(forward, o.weight, |l| &mut l.forward)?;
        if let Some(head) = &self.model.proprio_head {
            let next = proprio
                .all
                .clone()
                .slice([0..b, 1..horizon + 1, 0..proprio_dim])
                .reshape([b * horizon, proprio_dim]);
            let proprio_loss = (head.forward(predicted) - Tensor::from_inner(next))
                .square()
                .mean();
            terms.add(proprio_loss, o.proprio_weight, |l| &mut l.proprio)?;
        }
        Ok(())
    }

    /// The decoded state against view A, pixel by pixel.
    fn reconstruction_loss(&self, online: &Online, terms: &mut Terms) -> Result<(), LearnError> {
        let o = &self.config.objectives.reconstruction;
        let (true, Some(decoder)) = (o.enabled, &self.model.decoder) else {
            return Ok(());
        };
        let reconstruction = (decoder.forward_rows(online.state.clone()) - online.view_a.clone())
            .square()
            .mean();
        terms.add(reconstruction, o.weight, |l| &mut l.reconstruction)
    }

    /// The embedding of view A with masked patches, through the mask predictor, against the
    /// target's embedding of the whole view.
    fn masked_loss(
        &self,
        batch: &Batch,
        shape: Shape,
        online: &Online,
        targets: &Targets,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
        let o = &self.config.objectives.masked;
        let (true, Some(predictor), Some(target_full)) =
            (o.enabled, &self.model.mask_predictor, &targets.now)
        else {
            return Ok(());
        };
        let Shape {
            b, width, height, ..
        } = shape;
        let masked_images = Tensor::<4>::from_data(
            TensorData::new(batch.masked.clone(), [b, 3, height, width]),
            &self.device,
        );
        let masked_state = self
            .model
            .encoder
            .forward(masked_images, online.proprio.clone());
        let masked = (l2_normalize(predictor.forward(masked_state))
            - Tensor::from_inner(l2_normalize(target_full.clone())))
        .square()
        .sum_dim(1)
        .mean();
        terms.add(masked, o.weight, |l| &mut l.masked)
    }

    /// The command at `t` from the image-only online embedding of `t` and the target's of
    /// `t+1`.
    fn inverse_loss(
        &self,
        batch: &Batch,
        shape: Shape,
        online: &Online,
        targets: &Targets,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
        let o = &self.config.objectives.inverse;
        let (true, Some(head), Some(now), Some(next)) = (
            o.enabled,
            &self.model.inverse_dynamics,
            &online.image_only,
            &targets.next_image_only,
        ) else {
            return Ok(());
        };
        let Shape { b, horizon, .. } = shape;
        let first_actions: Vec<f32> = batch
            .actions
            .chunks(horizon * ACTION_DIM)
            .flat_map(|sequence| sequence[..ACTION_DIM].iter().copied())
            .collect();
        let actions = Tensor::<2>::from_data(
            TensorData::new(first_actions, [b, ACTION_DIM]),
            &self.device,
        );
        let inverse = (head.forward(image_pair(now, next)) - actions)
            .square()
            .mean();
        terms.add(inverse, o.weight, |l| &mut l.inverse)
    }

    /// Where frame `t + δ` lies seen from frame `t`, and `t` seen from `t + δ`, from the
    /// image-only online embedding of `t` and the target's of `t + δ` (the error as
    /// [`super::config::OdometryConfig::weight`] says), averaged over both orders of the
    /// sequences whose odometry gave it (none: no term this step). Returns the pairs it
    /// trained on.
    fn odometry_loss(
        &self,
        batch: &Batch,
        shape: Shape,
        online: &Online,
        targets: &Targets,
        terms: &mut Terms,
    ) -> Result<u64, LearnError> {
        let o = &self.config.objectives.odometry;
        let (true, Some(head), Some(now), Some(second)) = (
            o.enabled,
            &self.model.relative_pose,
            &online.image_only,
            &targets.odometry_second,
        ) else {
            return Ok(0);
        };
        let known_count: f32 = batch.relative_pose_known.iter().sum();
        if known_count < 1.0 {
            return Ok(0);
        }
        let b = shape.b;
        let truth = Tensor::<2>::from_data(
            TensorData::new(batch.relative_poses.clone(), [b, RELATIVE_POSE_DIM]),
            &self.device,
        );
        let known = Tensor::<2>::from_data(
            TensorData::new(batch.relative_pose_known.clone(), [b, 1]),
            &self.device,
        );
        // Both orders of every pair: the second frame seen from the first, and the first from
        // the second (the inverse pose). A robot that mostly drives forward sees later frames
        // ahead; trained on one order only, the head learned "ahead" as its answer for any pair.
        let inverse = Tensor::<2>::from_data(
            TensorData::new(inverse_poses(&batch.relative_poses), [b, RELATIVE_POSE_DIM]),
            &self.device,
        );
        let second_now = Tensor::cat(vec![Tensor::from_inner(second.clone()), now.clone()], 1);
        let inputs = Tensor::cat(vec![image_pair(now, second), second_now], 0);
        let residual = head.forward(inputs) - Tensor::cat(vec![truth, inverse], 0);
        let position = residual.clone().slice([0..2 * b, 0..2]).square();
        // 2 (1 − cos Δ): Δ² for small errors, and no jump where a turn wraps past ±π.
        let turn = (residual.slice([0..2 * b, 2..3]).cos().neg() + 1.0) * 2.0;
        let known = Tensor::cat(vec![known.clone(), known], 0);
        let error = Tensor::cat(vec![position, turn], 1) * known;
        let odometry = error.sum() / (2.0 * known_count * RELATIVE_POSE_DIM as f32);
        terms.add(odometry, o.weight, |l| &mut l.odometry)?;
        Ok(known_count.round() as u64)
    }

    /// Backward and an Adam step, or, when the loss or the gradients are not finite, the last
    /// good weights restored and the skip counted. A step taken counts the `odometry_pairs`
    /// its odometry term trained on.
    fn apply_or_skip(
        &mut self,
        terms: Terms,
        batch_size: usize,
        encoded: usize,
        odometry_pairs: u64,
        started: Instant,
    ) -> Result<StepReport, LearnError> {
        let Terms { mut losses, total } = terms;
        let Some(total) = total else {
            return Err(LearnError::InvalidConfig(
                "no objective produced a loss".into(),
            ));
        };
        losses.total = scalar(&total)?;
        let gradients = GradientsParams::from_grads(total.backward(), &self.model);
        let grad_norm = gradient_norm(&self.model, &gradients)?;
        let skipped_non_finite = !losses.total.is_finite() || !grad_norm.is_finite();
        if skipped_non_finite {
            self.non_finite_skips += 1;
            tracing::warn!(
                step = self.step,
                skips = self.non_finite_skips,
                "non-finite loss or gradient: batch skipped, last good weights restored"
            );
            self.model = self.last_good.0.clone();
            self.target = self.last_good.1.clone();
        } else {
            let model = std::mem::replace(&mut self.model, self.last_good.0.clone());
            self.model =
                self.optimizer
                    .step(self.config.learning_rate_at(self.step), model, gradients);
            self.update_target();
            self.step += 1;
            self.count_odometry_pairs(odometry_pairs);
            self.last_good = (self.model.clone(), self.target.clone());
            if self.step.is_multiple_of(self.config.publish_every) {
                self.publish();
            }
        }
        Ok(StepReport {
            step: self.step,
            losses,
            grad_norm,
            samples_per_second: encoded as f64 / started.elapsed().as_secs_f64().max(1e-9),
            batch_size,
            skipped_non_finite,
            weights_version: self.weights_version,
        })
    }
}

/// The inverse of each `[x, y, yaw]` relative pose (metres scaled or not: the inverse is
/// linear in the position): where the first frame lies seen from the second.
fn inverse_poses(poses: &[f32]) -> Vec<f32> {
    poses
        .chunks(RELATIVE_POSE_DIM)
        .flat_map(|p| {
            let pose = OdometryPose::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            let inverse = pose.inverse();
            [inverse.x as f32, inverse.y as f32, inverse.yaw as f32]
        })
        .collect()
}

/// Weights of the rollout's steps for [`ForwardConfig::copy_last_power`](
/// super::config::ForwardConfig::copy_last_power) `p`: `c̄^p / (F · c_k^p)`, where `c_k` is the
/// batch mean of `|n(z_t+k) - n(z_t)|²` on the target's embeddings and `c̄` the mean of the
/// `c_k`. Steps that moved alike weigh `1 / F` each, the plain mean.
///
/// # Shapes
/// - `now`: `[B, D]`, the target's embedding of frame `t`
/// - `future`: `[B·F, D]`, frames `t+1 ..= t+F`, batch-major; `[b, horizon]` = `[B, F]`
/// - output: `[1, F]`
fn copy_last_weights(
    now: &Tensor<2>,
    future: &Tensor<2>,
    [b, horizon]: [usize; 2],
    power: f32,
) -> Tensor<2> {
    let [_, dim] = now.dims();
    let now = l2_normalize(now.clone())
        .reshape([b, 1, dim])
        .repeat_dim(1, horizon)
        .reshape([b * horizon, dim]);
    let moved = (l2_normalize(future.clone()) - now)
        .square()
        .sum_dim(1)
        .reshape([b, horizon])
        .mean_dim(0)
        .clamp_min(1e-6);
    let mean = moved.clone().mean().reshape([1, 1]).powf_scalar(power);
    mean / (moved.powf_scalar(power) * horizon as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reversed pair's target, composed with the pair's pose, gives back the first frame.
    #[test]
    fn inverse_poses_compose_with_the_pose_to_the_identity() {
        let poses = [0.4f32, -0.2, 0.9, -0.1, 0.3, -2.5, 0.0, 0.0, 0.0];
        let inverse = inverse_poses(&poses);
        for (p, q) in poses.chunks(3).zip(inverse.chunks(3)) {
            let pose = OdometryPose::new(f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            let back = OdometryPose::new(f64::from(q[0]), f64::from(q[1]), f64::from(q[2]));
            let identity = pose.compose(&back);
            assert!(
                identity.x.abs() < 1e-6 && identity.y.abs() < 1e-6,
                "{identity:?}"
            );
            assert!(identity.yaw.abs() < 1e-6, "{identity:?}");
        }
        // A pose ahead and turned left has the first frame behind and turned right of it.
        assert!(inverse[0] < 0.0 && inverse[2] < 0.0);
    }

    /// A step whose frame moved further from frame `t` weighs less, by the power of how far
    /// it moved (at power 1 the loss is the ratio to copy-last per step), and steps that moved
    /// alike keep the plain mean.
    #[test]
    fn copy_last_weights_divide_each_step_by_how_far_its_frame_moved() {
        let device = Device::flex();
        // Two samples, three steps: `now` along x; the future turns away from it by 0.2, 0.4
        // and 0.8 rad (the same for both samples).
        let now = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 2.0, 0.0], [2, 2]),
            &device,
        );
        let step = |angle: f32| [angle.cos(), angle.sin()];
        let rows: Vec<f32> = (0..2)
            .flat_map(|_| [0.2f32, 0.4, 0.8].into_iter().flat_map(step))
            .collect();
        let future = Tensor::<2>::from_data(TensorData::new(rows, [6, 2]), &device);
        let moved: Vec<f32> = [0.2f32, 0.4, 0.8]
            .iter()
            .map(|a| (a.cos() - 1.0).powi(2) + a.sin().powi(2))
            .collect();
        let mean = moved.iter().sum::<f32>() / 3.0;
        for power in [1.0f32, 0.5] {
            let weights: Vec<f32> = copy_last_weights(&now, &future, [2, 3], power)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            for (weight, moved) in weights.iter().zip(&moved) {
                let expected = (mean / moved).powf(power) / 3.0;
                assert!(
                    (weight - expected).abs() < 1e-4 * expected,
                    "{power}: {weights:?}"
                );
            }
            assert!(weights[0] > weights[1] && weights[1] > weights[2]);
        }
        // Steps that moved alike weigh 1/F each.
        let same =
            Tensor::<2>::from_data(TensorData::new([0.0f32, 1.0].repeat(6), [6, 2]), &device);
        let equal: Vec<f32> = copy_last_weights(&now, &same, [2, 3], 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(
            equal.iter().all(|w| (w - 1.0 / 3.0).abs() < 1e-5),
            "{equal:?}"
        );
    }
}
