//! The relative-pose head at inference: where one frame lies seen from another.

use super::Trainer;
use crate::LearnError;
use crate::memory::OdometryPose;
use crate::relative_pose::RelativePoseHead;

impl Trainer {
    /// A copy of the relative-pose head on the inference device; `None` for a model without
    /// the head, whose head the odometry objective does not train, or has trained on fewer
    /// than `serve_after_pairs` pairs so far.
    pub fn relative_pose_head(&self) -> Option<RelativePoseHead> {
        let scale = self.config.served_relative_pose_scale()?;
        if !self.relative_pose_trained() {
            return None;
        }
        let head = self.model.relative_pose.as_ref()?;
        Some(RelativePoseHead::new(
            head,
            scale,
            self.config.model.embed_dim(),
            &self.inference_device,
        ))
    }

    /// Whether the odometry objective has trained on `serve_after_pairs` pairs (or the model
    /// was resumed from a checkpoint written before pairs were counted).
    fn relative_pose_trained(&self) -> bool {
        self.odometry_pairs
            .is_none_or(|pairs| pairs >= self.config.objectives.odometry.serve_after_pairs)
    }

    /// Counts `pairs` more trained by the odometry objective, and says so once the head is
    /// trained enough to be served.
    pub(super) fn count_odometry_pairs(&mut self, pairs: u64) {
        let Some(trained) = self.odometry_pairs.as_mut() else {
            return;
        };
        let threshold = self.config.objectives.odometry.serve_after_pairs;
        let before = *trained;
        *trained = trained.saturating_add(pairs);
        if before < threshold
            && *trained >= threshold
            && self.config.served_relative_pose_scale().is_some()
        {
            tracing::info!(
                pairs = *trained,
                revisits = self.revisit_pairs,
                step = self.step,
                "the relative-pose head has trained on serve_after_pairs pairs: it is served from now"
            );
        }
    }

    /// Where each frame of `second` lies seen from the frame of `first` at the same index (`x`
    /// ahead, `y` left, metres; heading, radians), by the relative-pose head of the odometry
    /// objective, from the two frames' image-only embeddings (the published encoder's, proprio
    /// zero). `None` where [`Trainer::relative_pose_head`] is.
    ///
    /// # Shapes
    /// - `first`, `second`: `N` embeddings of `D` values each
    /// - output: `N` poses
    pub fn relative_poses(
        &self,
        first: &[Vec<f32>],
        second: &[Vec<f32>],
    ) -> Result<Option<Vec<OdometryPose>>, LearnError> {
        self.relative_pose_head()
            .map(|head| head.poses(first, second))
            .transpose()
    }
}
