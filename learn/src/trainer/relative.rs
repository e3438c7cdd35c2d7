//! The relative-pose head at inference: where one frame lies seen from another.

use super::Trainer;
use crate::LearnError;
use crate::memory::OdometryPose;
use crate::relative_pose::RelativePoseHead;

impl Trainer {
    /// A copy of the relative-pose head on the inference device; `None` for a model without
    /// the head, or whose head the odometry objective does not train.
    pub fn relative_pose_head(&self) -> Option<RelativePoseHead> {
        let scale = self.config.served_relative_pose_scale()?;
        let head = self.model.relative_pose.as_ref()?;
        Some(RelativePoseHead::new(
            head,
            scale,
            self.config.model.embed_dim(),
            &self.inference_device,
        ))
    }

    /// Where each frame of `second` lies seen from the frame of `first` at the same index (`x`
    /// ahead, `y` left, metres; heading, radians), by the relative-pose head of the odometry
    /// objective, from the two frames' image-only embeddings (the published encoder's, proprio
    /// zero). `None` for a model without the head, or whose head the objective does not train.
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
