//! The relative-pose head at inference: where one frame lies seen from another.

use burn::prelude::*;

use super::Trainer;
use crate::LearnError;
use crate::memory::{OdometryPose, wrap};
use crate::model::RELATIVE_POSE_DIM;

impl Trainer {
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
        let (Some(head), true) = (
            &self.model.relative_pose,
            self.config.objectives.odometry.enabled,
        ) else {
            return Ok(None);
        };
        let d = self.config.model.embed_dim();
        if first.len() != second.len() || first.iter().chain(second).any(|z| z.len() != d) {
            return Err(LearnError::BadInput(format!(
                "relative poses need as many first as second embeddings ({} and {}), {d} values each",
                first.len(),
                second.len()
            )));
        }
        if first.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let n = first.len();
        let plain = self.device.clone().without_autodiff();
        let pairs: Vec<f32> = first
            .iter()
            .zip(second)
            .flat_map(|(a, b)| a.iter().chain(b).copied())
            .collect();
        let input = Tensor::<2>::from_data(TensorData::new(pairs, [n, 2 * d]), &plain);
        let output: Vec<f32> = head
            .valid()
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| LearnError::Backend(format!("reading relative poses: {e:?}")))?;
        let scale = f64::from(self.config.objectives.odometry.metres_scale);
        Ok(Some(
            output
                .chunks(RELATIVE_POSE_DIM)
                .map(|p| {
                    OdometryPose::new(
                        f64::from(p[0]) * scale,
                        f64::from(p[1]) * scale,
                        wrap(f64::from(p[2])),
                    )
                })
                .collect(),
        ))
    }
}
