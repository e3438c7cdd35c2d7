//! One training step: encode the targets, encode the online branch, one function per objective
//! ([`objectives`]), then apply the gradients or skip a non-finite batch.

mod objectives;

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::Trainer;
use super::batch::Batch;
use super::losses::{gradient_norm, scalar};
use crate::LearnError;
use crate::augment::channels_last;
use crate::cpu::direct::PixelLayout;
use crate::model::RELATIVE_POSE_DIM;
use crate::replay::ACTION_DIM;

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
    /// The proprio the dynamics carry: read from the start state and stepped along the
    /// rollout, against the proprio felt there (`0` when the dynamics carry none).
    #[serde(default)]
    pub carried_proprio: f32,
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
    pub fn named(&self) -> [(&'static str, f32); 13] {
        [
            ("total", self.total),
            ("contrastive", self.contrastive),
            ("temporal", self.temporal),
            ("forward", self.forward),
            ("proprio", self.proprio),
            ("carried_proprio", self.carried_proprio),
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
    /// View A (unmasked) with its proprio, `[B, D]`; for the masked objective, and for the
    /// forward objective's start unless it starts from the plain frame.
    now: Option<Tensor<2>>,
    /// Where the forward objective starts from the target, with its proprio, `[B, D]`: the
    /// target-start term and the steps' copy-last weights. Frame `t` not augmented where
    /// `target_start_plain`, else view A (`now`).
    start: Option<Tensor<2>>,
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
            "plain",
            batch.plain.len(),
            rows_if(self.config.plain_start_on()),
        )?;
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
        let start_on = self.target_start_on() || (horizon > 0 && o.forward.copy_last_power > 0.0);
        // Validation makes the plain frame imply a start from the target's state.
        let plain_on = self.config.plain_start_on();
        let now_on = o.masked.enabled || (start_on && !plain_on);
        if now_on {
            target_images.push(&batch.view_a);
        }
        let odometry_on = o.odometry.enabled;
        if odometry_on {
            target_images.push(&batch.odometry_frames);
        }
        if plain_on {
            target_images.push(&batch.plain);
        }
        let view_rows = if contrastive_on { 2 * b } else { 0 };
        let now_rows = if now_on { b } else { 0 };
        let odometry_rows = if odometry_on { b } else { 0 };
        let encoded =
            view_rows + horizon * b + now_rows + odometry_rows + if plain_on { b } else { 0 };
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
        let start = if plain_on {
            let first = view_rows + horizon * b + now_rows + odometry_rows;
            Some(encoder.fuse(take(first, b), proprio.now.clone()))
        } else {
            start_on.then(|| now.clone()).flatten()
        };
        Ok(Targets {
            views,
            future,
            now,
            start,
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
