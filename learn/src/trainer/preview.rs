//! Decoded pictures of what the model sees and expects, for the viewer.

use burn::prelude::*;

use super::Trainer;
use crate::LearnError;
use crate::augment::plain_into;
use crate::replay::{ACTION_DIM, Transition};

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

impl Trainer {
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
}
