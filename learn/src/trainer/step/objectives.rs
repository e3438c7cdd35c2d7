//! The objectives of one training step, one function each: each adds its weighted term to the
//! step's total (see [`Terms`]).

use burn::prelude::*;
use rand_distr::{Distribution, StandardNormal};

use super::{Online, Proprio, Shape, Targets, Terms};
use crate::LearnError;
use crate::OdometryPose;
use crate::model::{RELATIVE_POSE_DIM, l2_normalize};
use crate::replay::ACTION_DIM;
use crate::trainer::Trainer;
use crate::trainer::batch::Batch;
use crate::trainer::losses::{copy_last_weights, info_nce, sigreg, spread_terms};

impl Trainer {
    /// InfoNCE of the online image-only embedding against the target's other view and against
    /// the temporal positive.
    pub(super) fn contrastive_loss(
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
    pub(super) fn spread_loss(&self, online: &Online, terms: &mut Terms) -> Result<(), LearnError> {
        let o = &self.config.objectives.spread;
        if !o.enabled {
            return Ok(());
        }
        let (variance, covariance) = spread_terms(online.state.clone(), o.target_std);
        terms.add(variance, o.variance_weight, |l| &mut l.variance)?;
        terms.add(covariance, o.covariance_weight, |l| &mut l.covariance)
    }

    /// SIGReg on the state embedding, on directions drawn from the trainer's seeded stream.
    pub(super) fn sigreg_loss(
        &mut self,
        online: &Online,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
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
    pub(super) fn forward_loss(
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
            targets.start.clone()
        } else {
            None
        };
        let starts = match &start {
            Some(start) => Tensor::cat(
                vec![online.state.clone(), Tensor::from_inner(start.clone())],
                0,
            ),
            None => online.state.clone(),
        };
        let rollouts = if start.is_some() { 2 } else { 1 };
        let (both, carried) =
            dynamics.rollout_carrying(starts, Tensor::cat(vec![actions; rollouts], 0));
        let rows = |from: usize| {
            both.clone()
                .slice([from..from + b, 0..horizon, 0..embed_dim])
                .reshape([b * horizon, embed_dim])
        };
        let (predicted, from_target) = (rows(0), (rollouts == 2).then(|| rows(b)));
        if let Some(carried) = carried {
            self.carried_proprio_loss(proprio, rollouts, carried, terms)?;
        }
        // Row order of `future` is batch-major (b, then step), as is `predicted`.
        let target_future = l2_normalize(target_future.clone());
        let power = o.copy_last_power;
        let step_weights = match (power > 0.0, &targets.start) {
            (true, Some(now)) => Some(copy_last_weights(now, &target_future, [b, horizon], power)),
            _ => None,
        };
        let target_future = Tensor::from_inner(target_future);
        // The rollout's squared error: the mean over rows, or over steps weighed.
        let error = |rollout: Tensor<2>, weighed: bool| {
            let rows = (l2_normalize(rollout) - target_future.clone())
                .square()
                .sum_dim(1);
            match (&step_weights, weighed) {
                (Some(weights), true) => (rows.reshape([b, horizon]).mean_dim(0)
                    * Tensor::from_inner(weights.clone()))
                .sum(),
                _ => rows.mean(),
            }
        };
        let mut forward = error(predicted.clone(), !o.copy_last_dynamics_only);
        if let Some(from_target) = from_target {
            let weight = o.target_start_weight;
            forward = (forward + error(from_target, true) * weight) / (1.0 + weight);
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

    /// The proprio the dynamics carry, against the proprio felt: read from each rollout's
    /// start state (the frame's) and carried to each step (the next frames'), the mean squared
    /// error over every rollout of the batch (`rollouts` × `B` rows, the online start first).
    ///
    /// # Shapes
    /// - `carried`: `[rollouts·B, H + 1, P]`
    fn carried_proprio_loss(
        &self,
        proprio: &Proprio,
        rollouts: usize,
        carried: Tensor<3>,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
        let felt = Tensor::<3>::from_inner(proprio.all.clone());
        let loss = (carried - Tensor::cat(vec![felt; rollouts], 0))
            .square()
            .mean();
        terms.add(
            loss,
            self.config.objectives.forward.carried_proprio_weight,
            |l| &mut l.carried_proprio,
        )
    }

    /// The decoded state against view A, pixel by pixel.
    pub(super) fn reconstruction_loss(
        &self,
        online: &Online,
        terms: &mut Terms,
    ) -> Result<(), LearnError> {
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
    pub(super) fn masked_loss(
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
    pub(super) fn inverse_loss(
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
    pub(super) fn odometry_loss(
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
}
