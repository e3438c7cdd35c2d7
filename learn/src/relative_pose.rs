//! The relative-pose head at inference: where one frame lies seen from another, from the two
//! frames' image-only embeddings. It travels with the latent dynamics
//! ([`DynamicsSnapshot::relative_pose`](crate::inference::DynamicsSnapshot::relative_pose)), so
//! that a planner fed from a checkpoint or over DDS has it too.

use burn::prelude::*;

use crate::LearnError;
use crate::memory::{OdometryPose, wrap};
use crate::model::{Mlp, RELATIVE_POSE_DIM};

/// An immutable copy of a trained relative-pose head (the odometry objective's) on the
/// inference device.
#[derive(Debug, Clone)]
pub struct RelativePoseHead {
    head: Mlp,
    metres_scale: f32,
    embed_dim: usize,
    device: Device,
}

impl RelativePoseHead {
    /// Wraps a head (moved to `device`, autodiff dropped) trained with `metres_scale` metres to
    /// one unit of its output, on embeddings of `embed_dim` values.
    pub fn new(head: &Mlp, metres_scale: f32, embed_dim: usize, device: &Device) -> Self {
        Self {
            head: head.valid().to_device(device),
            metres_scale,
            embed_dim,
            device: device.clone(),
        }
    }

    /// The head module (for [`crate::weights`]).
    pub(crate) fn module(&self) -> &Mlp {
        &self.head
    }

    /// Where each frame of `second` lies seen from the frame of `first` at the same index (`x`
    /// ahead, `y` left, metres; heading, radians). The embeddings are image-only: the encoder's
    /// with proprio zero, as the head was trained.
    ///
    /// # Shapes
    /// - `first`, `second`: `N` embeddings of `D` values each
    /// - output: `N` poses
    pub fn poses(
        &self,
        first: &[Vec<f32>],
        second: &[Vec<f32>],
    ) -> Result<Vec<OdometryPose>, LearnError> {
        let d = self.embed_dim;
        if first.len() != second.len() || first.iter().chain(second).any(|z| z.len() != d) {
            return Err(LearnError::BadInput(format!(
                "relative poses need as many first as second embeddings ({} and {}), {d} values each",
                first.len(),
                second.len()
            )));
        }
        if first.iter().chain(second).flatten().any(|v| !v.is_finite()) {
            return Err(LearnError::BadInput(
                "non-finite embedding for a relative pose".into(),
            ));
        }
        if first.is_empty() {
            return Ok(Vec::new());
        }
        let n = first.len();
        let pairs: Vec<f32> = first
            .iter()
            .zip(second)
            .flat_map(|(a, b)| a.iter().chain(b).copied())
            .collect();
        let input = Tensor::<2>::from_data(TensorData::new(pairs, [n, 2 * d]), &self.device);
        let output: Vec<f32> = self
            .head
            .forward(input)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| LearnError::Backend(format!("reading relative poses: {e:?}")))?;
        let scale = f64::from(self.metres_scale);
        Ok(output
            .chunks(RELATIVE_POSE_DIM)
            .map(|p| {
                OdometryPose::new(
                    f64::from(p[0]) * scale,
                    f64::from(p[1]) * scale,
                    wrap(f64::from(p[2])),
                )
            })
            .collect())
    }

    /// Where the frame embedded as `to` lies seen from the frame embedded as `from`.
    pub fn pose(&self, from: &[f32], to: &[f32]) -> Result<OdometryPose, LearnError> {
        self.poses(&[from.to_vec()], &[to.to_vec()])?
            .pop()
            .ok_or_else(|| LearnError::Backend("empty relative pose batch".into()))
    }
}
