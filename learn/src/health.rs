//! Embedding health, computed online on recent frames: collapse monitors (per-dimension std,
//! effective rank) and k-step latent prediction error ÷ copy-last.

use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::inference::{DynamicsSnapshot, EncoderSnapshot};
use crate::metrics::{CollapseReport, collapse_report, prediction_vs_copy_last};
use crate::replay::{ACTION_DIM, Transition};

/// How healthy the current embeddings are on a window of recent frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Per-dimension std and effective rank.
    pub collapse: CollapseReport,
    /// For `k = 1..=H`: k-step prediction error ÷ copy-last error (below 1: the model predicts
    /// better than "nothing changes"). Empty when no sequence of `H + 1` frames was available.
    pub prediction_vs_copy_last: Vec<f64>,
    /// Frames embedded.
    pub frames: usize,
    /// Encoder version the report is about.
    pub model_version: u64,
}

/// Embeds `frames` (consecutive, oldest first) and scores them. Rollouts start at every
/// `stride`-th frame that has `horizon` more frames of the same episode after it.
pub fn embedding_health(
    encoder: &EncoderSnapshot,
    dynamics: &DynamicsSnapshot,
    frames: &[Transition],
    horizon: usize,
    stride: usize,
) -> Result<HealthReport, LearnError> {
    let embeddings = embed_frames(encoder, frames)?;
    let collapse = collapse_report(&embeddings)?;
    let prediction_vs_copy_last =
        prediction_ratios(dynamics, frames, &embeddings, horizon, stride)?;
    Ok(HealthReport {
        collapse,
        prediction_vs_copy_last,
        frames: frames.len(),
        model_version: encoder.version,
    })
}

/// The encoder's embedding of every frame, in order; at least two frames.
pub fn embed_frames(
    encoder: &EncoderSnapshot,
    frames: &[Transition],
) -> Result<Vec<Vec<f32>>, LearnError> {
    if frames.len() < 2 {
        return Err(LearnError::NotEnoughData {
            have: frames.len(),
            need: 2,
        });
    }
    let mut embeddings = Vec::with_capacity(frames.len());
    for chunk in frames.chunks(64) {
        let images: Vec<&[u8]> = chunk.iter().map(|t| &*t.image).collect();
        let proprio: Vec<&[f32]> = chunk.iter().map(|t| t.proprio.as_slice()).collect();
        embeddings.extend(encoder.embed_batch(&images, &proprio)?);
    }
    Ok(embeddings)
}

/// For `k = 1..=horizon`: the dynamics' k-step prediction error ÷ copy-last error, rolled out
/// with the commands the robot sent from every `stride`-th frame that has `horizon` more frames
/// of the same episode after it. `embeddings` are the frames' own ([`embed_frames`]). Empty
/// when `horizon` is 0 or no frame has that many after it.
pub fn prediction_ratios(
    dynamics: &DynamicsSnapshot,
    frames: &[Transition],
    embeddings: &[Vec<f32>],
    horizon: usize,
    stride: usize,
) -> Result<Vec<f64>, LearnError> {
    if embeddings.len() != frames.len() {
        return Err(LearnError::BadInput(format!(
            "{} embeddings for {} frames",
            embeddings.len(),
            frames.len()
        )));
    }
    let starts: Vec<usize> = (0..frames.len().saturating_sub(horizon))
        .filter(|&i| {
            (1..=horizon).all(|k| {
                frames[i + k].source == frames[i].source
                    && frames[i + k].episode == frames[i].episode
                    && frames[i + k].frame_stamp_ns > frames[i + k - 1].frame_stamp_ns
            })
        })
        .step_by(stride.max(1))
        .collect();
    let mut ratios = Vec::new();
    if horizon == 0 || starts.is_empty() {
        return Ok(ratios);
    }
    let normalised: Vec<Vec<f32>> = embeddings.iter().map(|z| normalise(z)).collect();
    let start_embeddings: Vec<Vec<f32>> = starts.iter().map(|&i| embeddings[i].clone()).collect();
    let actions: Vec<Vec<[f32; ACTION_DIM]>> = starts
        .iter()
        .map(|&i| (0..horizon).map(|k| frames[i + k].action).collect())
        .collect();
    let predicted = dynamics.rollout_from(&start_embeddings, &actions)?;
    for k in 1..=horizon {
        let current: Vec<Vec<f32>> = starts.iter().map(|&i| normalised[i].clone()).collect();
        let actual: Vec<Vec<f32>> = starts.iter().map(|&i| normalised[i + k].clone()).collect();
        let guess: Vec<Vec<f32>> = predicted.iter().map(|p| normalise(&p[k - 1])).collect();
        ratios.push(prediction_vs_copy_last(&current, &guess, &actual)?);
    }
    Ok(ratios)
}

/// `z / |z|` (the objectives compare directions, not lengths).
pub fn normalise(z: &[f32]) -> Vec<f32> {
    let norm = z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
    z.iter().map(|v| v / norm).collect()
}
