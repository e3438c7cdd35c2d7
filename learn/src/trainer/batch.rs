//! Sampling a batch of sequences from the replay buffer, augmented, in parallel.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::Trainer;
use crate::LearnError;
use crate::augment::{augment_into, mask_patches, plain_into};
use crate::replay::{ACTION_DIM, Transition};

/// One sampled batch on the host, ready to become tensors (also the unit of NaN injection in
/// tests). `F` is the forward horizon ([`TrainerConfig::forward_horizon`]).
#[derive(Debug, Clone)]
pub struct Batch {
    /// Sequences.
    pub size: usize,
    /// First view of frame `t` (augmented), `[B, 3, H, W]`.
    pub view_a: Vec<f32>,
    /// Second view of frame `t` (augmented), `[B, 3, H, W]`.
    pub view_b: Vec<f32>,
    /// Per sequence, the step `δ` (1..=window) of its temporal positive.
    pub temporal_offsets: Vec<usize>,
    /// The temporal positive, frame `t + δ` (augmented), `[B, 3, H, W]`; empty when the
    /// contrastive objective is off.
    pub positive: Vec<f32>,
    /// Frames `t+1 ..= t+F`, not augmented, `[B, F, 3, H, W]`.
    pub future: Vec<f32>,
    /// `view_a` with masked patches (empty when masking is off), `[B, 3, H, W]`.
    pub masked: Vec<f32>,
    /// Proprio at `t ..= t+F`, `[B, F+1, P]`.
    pub proprio: Vec<f32>,
    /// Scaled actions at `t .. t+F`, `[B, F, A]`.
    pub actions: Vec<f32>,
}

/// One sequence's part of every [`Batch`] buffer, filled by one task of `sample_batch`.
struct SequenceSlots<'a> {
    view_a: &'a mut [f32],
    view_b: &'a mut [f32],
    positive: &'a mut [f32],
    masked: &'a mut [f32],
    future: &'a mut [f32],
    proprio: &'a mut [f32],
    actions: &'a mut [f32],
    offset: &'a mut usize,
}

/// `buffer` cut into `count` equal parts, one per sequence (empty parts for an empty buffer: an
/// objective that is off, or no forward horizon).
fn per_sequence(buffer: &mut [f32], count: usize) -> Vec<&mut [f32]> {
    let len = buffer.len() / count.max(1);
    if len == 0 {
        (0..count).map(|_| <&mut [f32]>::default()).collect()
    } else {
        buffer.chunks_mut(len).collect()
    }
}

impl Trainer {
    /// Samples a batch from the replay buffer.
    pub fn sample_batch(&mut self) -> Result<Batch, LearnError> {
        let c = &self.config;
        let length = c.sequence_length();
        let horizon = c.forward_horizon();
        let starts = self
            .replay
            .sample_sequences(c.batch_size, length, &mut self.rng)?;
        let (width, height) = (c.model.encoder.image.width, c.model.encoder.image.height);
        let proprio_dim = c.model.encoder.proprio_dim.max(1);
        let image_len = 3 * width * height;
        let batch = starts.len();
        let masked_on = c.objectives.masked.enabled;
        let contrastive_on = c.objectives.contrastive.enabled;
        let per_batch = |on: bool| {
            if on {
                vec![0.0; batch * image_len]
            } else {
                Vec::new()
            }
        };
        let mut out = Batch {
            size: batch,
            view_a: vec![0.0; batch * image_len],
            view_b: vec![0.0; batch * image_len],
            temporal_offsets: vec![1; batch],
            positive: per_batch(contrastive_on),
            future: vec![0.0; batch * horizon * image_len],
            masked: per_batch(masked_on),
            proprio: vec![0.0; batch * (horizon + 1) * proprio_dim],
            actions: vec![0.0; batch * horizon * ACTION_DIM],
        };
        let window = c.objectives.contrastive.temporal_window.max(1);
        // Sequences are filled in parallel, each from its own random stream seeded from the
        // trainer's: the batch depends on the seed, not on the thread count.
        let seeds: Vec<u64> = starts.iter().map(|_| self.rng.random()).collect();
        let slots: Vec<SequenceSlots<'_>> = per_sequence(&mut out.view_a, batch)
            .into_iter()
            .zip(per_sequence(&mut out.view_b, batch))
            .zip(per_sequence(&mut out.positive, batch))
            .zip(per_sequence(&mut out.masked, batch))
            .zip(per_sequence(&mut out.future, batch))
            .zip(per_sequence(&mut out.proprio, batch))
            .zip(per_sequence(&mut out.actions, batch))
            .zip(out.temporal_offsets.iter_mut())
            .map(
                |(
                    ((((((view_a, view_b), positive), masked), future), proprio), actions),
                    offset,
                )| {
                    SequenceSlots {
                        view_a,
                        view_b,
                        positive,
                        masked,
                        future,
                        proprio,
                        actions,
                        offset,
                    }
                },
            )
            .collect();
        let replay = &self.replay;
        slots
            .into_par_iter()
            .zip(starts.par_iter())
            .zip(seeds.par_iter())
            .try_for_each(|((slots, &start), &seed)| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let at = |offset: usize| -> Result<&Transition, LearnError> {
                    replay.get(start + offset).ok_or(LearnError::NotEnoughData {
                        have: replay.len(),
                        need: start + offset + 1,
                    })
                };
                let first = at(0)?;
                for view in [&mut *slots.view_a, &mut *slots.view_b] {
                    augment_into(&first.image, width, height, &c.augment, &mut rng, view);
                }
                if masked_on {
                    slots.masked.copy_from_slice(slots.view_a);
                    mask_patches(
                        slots.masked,
                        width,
                        height,
                        c.objectives.masked.patch_px,
                        c.objectives.masked.ratio,
                        &mut rng,
                    );
                }
                if contrastive_on {
                    let delta = rng.random_range(1..=window);
                    *slots.offset = delta;
                    augment_into(
                        &at(delta)?.image,
                        width,
                        height,
                        &c.augment,
                        &mut rng,
                        slots.positive,
                    );
                }
                for offset in 0..=horizon {
                    let t = at(offset)?;
                    if c.model.encoder.proprio_dim > 0 {
                        slots.proprio[offset * proprio_dim..(offset + 1) * proprio_dim]
                            .copy_from_slice(&t.proprio);
                    }
                    if offset < horizon {
                        for k in 0..ACTION_DIM {
                            slots.actions[offset * ACTION_DIM + k] =
                                t.action[k] / c.action_scale[k];
                        }
                    }
                    if offset >= 1 {
                        let frame = (offset - 1) * image_len;
                        plain_into(
                            &t.image,
                            width,
                            height,
                            &mut slots.future[frame..frame + image_len],
                        );
                    }
                }
                Ok::<(), LearnError>(())
            })?;
        Ok(out)
    }
}
