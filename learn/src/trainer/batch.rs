//! Sampling a batch of sequences from the replay buffer, augmented, in parallel.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::Trainer;
use super::config::OdometryConfig;
use crate::LearnError;
use crate::augment::{augment_into, mask_patches, plain_into};
use crate::memory::OdometryPose;
use crate::model::RELATIVE_POSE_DIM;
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
    /// Frame `t`, not augmented, `[B, 3, H, W]`; empty unless the forward objective starts
    /// from it ([`ForwardConfig::target_start_plain`](super::ForwardConfig::target_start_plain)).
    pub plain: Vec<f32>,
    /// Proprio at `t ..= t+F`, `[B, F+1, P]`.
    pub proprio: Vec<f32>,
    /// Scaled actions at `t .. t+F`, `[B, F, A]`.
    pub actions: Vec<f32>,
    /// Per sequence, the steps `δ` between frame `t` and its odometry pair's second frame
    /// (1..=odometry window after it, or a revisit's steps before or after it); empty when the
    /// odometry objective is off.
    pub odometry_offsets: Vec<usize>,
    /// The odometry pair's second frame, `t + δ` (or a revisit's, `t ± δ`; augmented),
    /// `[B, 3, H, W]`; empty when the odometry objective is off.
    pub odometry_frames: Vec<f32>,
    /// Sequences whose odometry pair is a revisit
    /// ([`OdometryConfig::revisit_share`]).
    pub revisit_pairs: usize,
    /// Where the second frame lies seen from frame `t` by wheel odometry, `[x / metres_scale,
    /// y / metres_scale, yaw]`, `[B, 3]`; empty when the odometry objective is off.
    pub relative_poses: Vec<f32>,
    /// Per sequence, 1 when its relative pose is known (odometry at both frames, within
    /// `max_m`) and 0 when not, `[B]`; empty when the odometry objective is off.
    pub relative_pose_known: Vec<f32>,
}

/// One sequence's part of every [`Batch`] buffer, filled by one task of `sample_batch`.
struct SequenceSlots<'a> {
    view_a: &'a mut [f32],
    view_b: &'a mut [f32],
    positive: &'a mut [f32],
    masked: &'a mut [f32],
    plain: &'a mut [f32],
    future: &'a mut [f32],
    proprio: &'a mut [f32],
    actions: &'a mut [f32],
    offset: &'a mut usize,
    odometry_offset: Option<&'a mut usize>,
    odometry_frame: &'a mut [f32],
    relative_pose: &'a mut [f32],
    relative_pose_known: &'a mut [f32],
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
        let odometry_on = c.objectives.odometry.enabled;
        let plain_on = c.plain_start_on();
        // An objective that is off gets empty buffers.
        let sized = |on: bool, len: usize| if on { vec![0.0; len] } else { Vec::new() };
        let mut out = Batch {
            size: batch,
            view_a: vec![0.0; batch * image_len],
            view_b: vec![0.0; batch * image_len],
            temporal_offsets: vec![1; batch],
            positive: sized(contrastive_on, batch * image_len),
            future: vec![0.0; batch * horizon * image_len],
            masked: sized(masked_on, batch * image_len),
            plain: sized(plain_on, batch * image_len),
            proprio: vec![0.0; batch * (horizon + 1) * proprio_dim],
            actions: vec![0.0; batch * horizon * ACTION_DIM],
            odometry_offsets: if odometry_on {
                vec![1; batch]
            } else {
                Vec::new()
            },
            odometry_frames: sized(odometry_on, batch * image_len),
            revisit_pairs: 0,
            relative_poses: sized(odometry_on, batch * RELATIVE_POSE_DIM),
            relative_pose_known: sized(odometry_on, batch),
        };
        let window = c.objectives.contrastive.temporal_window.max(1);
        // Sequences are filled in parallel, each from its own random stream seeded from the
        // trainer's: the batch depends on the seed, not on the thread count.
        let seeds: Vec<u64> = starts.iter().map(|_| self.rng.random()).collect();
        let mut view_a = per_sequence(&mut out.view_a, batch).into_iter();
        let mut view_b = per_sequence(&mut out.view_b, batch).into_iter();
        let mut positive = per_sequence(&mut out.positive, batch).into_iter();
        let mut masked = per_sequence(&mut out.masked, batch).into_iter();
        let mut plain = per_sequence(&mut out.plain, batch).into_iter();
        let mut future = per_sequence(&mut out.future, batch).into_iter();
        let mut proprio = per_sequence(&mut out.proprio, batch).into_iter();
        let mut actions = per_sequence(&mut out.actions, batch).into_iter();
        let mut offset = out.temporal_offsets.iter_mut();
        let mut odometry_offset =
            optional_per_sequence(&mut out.odometry_offsets, batch).into_iter();
        let mut odometry_frame = per_sequence(&mut out.odometry_frames, batch).into_iter();
        let mut relative_pose = per_sequence(&mut out.relative_poses, batch).into_iter();
        let mut relative_pose_known = per_sequence(&mut out.relative_pose_known, batch).into_iter();
        // Every buffer has one part per sequence.
        let slots: Vec<SequenceSlots<'_>> = (0..batch)
            .map_while(|_| {
                Some(SequenceSlots {
                    view_a: view_a.next()?,
                    view_b: view_b.next()?,
                    positive: positive.next()?,
                    masked: masked.next()?,
                    plain: plain.next()?,
                    future: future.next()?,
                    proprio: proprio.next()?,
                    actions: actions.next()?,
                    offset: offset.next()?,
                    odometry_offset: odometry_offset.next()?,
                    odometry_frame: odometry_frame.next()?,
                    relative_pose: relative_pose.next()?,
                    relative_pose_known: relative_pose_known.next()?,
                })
            })
            .collect();
        let replay = &self.replay;
        let revisits = AtomicUsize::new(0);
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
                // Drawn only when rest sequences are on, so a batch without them is as it was
                // for its seed.
                let rest = c.objectives.forward.rest_share > 0.0
                    && rng.random::<f32>() < c.objectives.forward.rest_share;
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
                if plain_on {
                    plain_into(&first.image, width, height, slots.plain);
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
                if let Some(offset) = slots.odometry_offset {
                    let o = &c.objectives.odometry;
                    // Drawn only when revisits are on, so a batch without them is as it was
                    // for its seed.
                    let revisit = (o.revisit_share > 0.0 && rng.random::<f32>() < o.revisit_share)
                        .then(|| {
                            replay.draw_in_episode(
                                start,
                                o.window + 1..=o.revisit_within_steps,
                                REVISIT_TRIES,
                                &mut rng,
                                |candidate| is_revisit(first, candidate, o),
                            )
                        })
                        .flatten();
                    let second = match revisit {
                        Some(index) => {
                            revisits.fetch_add(1, Ordering::Relaxed);
                            *offset = index.abs_diff(start);
                            replay.get(index).ok_or(LearnError::NotEnoughData {
                                have: replay.len(),
                                need: index + 1,
                            })?
                        }
                        None => {
                            let delta = rng.random_range(1..=o.window.max(1));
                            *offset = delta;
                            at(delta)?
                        }
                    };
                    augment_into(
                        &second.image,
                        width,
                        height,
                        &c.augment,
                        &mut rng,
                        slots.odometry_frame,
                    );
                    relative_pose_into(
                        first,
                        second,
                        &c.objectives.odometry,
                        slots.relative_pose,
                        slots.relative_pose_known,
                    );
                }
                for offset in 0..=horizon {
                    // A rest sequence stays at its first frame; its proprio (at rest) and
                    // commands (stop) are the buffers' zeros.
                    let t = if rest { first } else { at(offset)? };
                    if !rest && c.model.encoder.proprio_dim > 0 {
                        slots.proprio[offset * proprio_dim..(offset + 1) * proprio_dim]
                            .copy_from_slice(&t.proprio);
                    }
                    if !rest && offset < horizon {
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
        out.revisit_pairs = revisits.into_inner();
        self.revisit_pairs = self.revisit_pairs.saturating_add(out.revisit_pairs as u64);
        Ok(out)
    }
}

/// One slot per sequence of `values`, or none each when it is empty (an objective that is
/// off).
fn optional_per_sequence(values: &mut [usize], count: usize) -> Vec<Option<&mut usize>> {
    if values.is_empty() {
        (0..count).map(|_| None).collect()
    } else {
        values.iter_mut().map(Some).collect()
    }
}

/// Frames drawn for a revisit before the pair falls back to one of the same drive.
const REVISIT_TRIES: usize = 64;

/// Whether `candidate` lies near enough `first` by their odometry, turned little enough and
/// far enough to its side to be its revisit.
fn is_revisit(first: &Transition, candidate: &Transition, config: &OdometryConfig) -> bool {
    odometry_between(first, candidate).is_some_and(|relative| {
        relative.x.hypot(relative.y) <= f64::from(config.revisit_max_m)
            && relative.yaw.abs().to_degrees() <= f64::from(config.revisit_max_deg)
            && relative.y.abs() >= f64::from(config.revisit_min_aside_m)
    })
}

/// Where `second` lies seen from `first` by their odometry; `None` where either has none or
/// the pose is not finite.
fn odometry_between(first: &Transition, second: &Transition) -> Option<OdometryPose> {
    let (from, to) = (first.odometry?, second.odometry?);
    Some(from.inverse().compose(&to)).filter(OdometryPose::is_finite)
}

/// Writes where `second` lies seen from `first` by their odometry, scaled as the odometry
/// objective compares it, and marks it known; leaves it unknown (zeros) when either frame has no
/// odometry or the two are further apart than `config.max_m`.
fn relative_pose_into(
    first: &Transition,
    second: &Transition,
    config: &OdometryConfig,
    pose: &mut [f32],
    known: &mut [f32],
) {
    let Some(relative) = odometry_between(first, second) else {
        return;
    };
    if relative.x.hypot(relative.y) > f64::from(config.max_m) {
        return;
    }
    let scale = f64::from(config.metres_scale);
    let values = [
        (relative.x / scale) as f32,
        (relative.y / scale) as f32,
        relative.yaw as f32,
    ];
    pose.iter_mut()
        .zip(values)
        .for_each(|(slot, value)| *slot = value);
    known.iter_mut().for_each(|flag| *flag = 1.0);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::OdometryPose;

    fn at(odometry: Option<OdometryPose>) -> Transition {
        Transition {
            source: 0,
            episode: 0,
            frame_stamp_ns: 0,
            image: Arc::from(vec![0u8; 3]),
            proprio: Vec::new(),
            action: [0.0; ACTION_DIM],
            odometry,
        }
    }

    fn relative(from: Option<OdometryPose>, to: Option<OdometryPose>) -> ([f32; 3], f32) {
        let (mut pose, mut known) = ([0.0; 3], [0.0]);
        let config = OdometryConfig {
            metres_scale: 0.5,
            max_m: 1.0,
            ..OdometryConfig::default()
        };
        relative_pose_into(&at(from), &at(to), &config, &mut pose, &mut known);
        (pose, known[0])
    }

    /// Facing +y, a frame 0.3 m further along y and turned 0.2 rad left lies 0.3 m ahead:
    /// the relative pose is in the first frame's own frame, metres scaled.
    #[test]
    fn the_relative_pose_is_seen_from_the_first_frame_and_left_out_without_odometry_or_on_a_jump() {
        let facing_y = OdometryPose::new(1.0, 2.0, std::f64::consts::FRAC_PI_2);
        let (pose, known) = relative(
            Some(facing_y),
            Some(OdometryPose::new(
                1.0,
                2.3,
                std::f64::consts::FRAC_PI_2 + 0.2,
            )),
        );
        assert_eq!(known, 1.0);
        for (got, want) in pose.iter().zip([0.6, 0.0, 0.2]) {
            assert!((got - want).abs() < 1e-6, "{pose:?}");
        }
        assert_eq!(relative(None, Some(facing_y)), ([0.0; 3], 0.0));
        assert_eq!(relative(Some(facing_y), None), ([0.0; 3], 0.0));
        let jumped = OdometryPose::new(3.0, 2.0, 0.0);
        assert_eq!(relative(Some(facing_y), Some(jumped)), ([0.0; 3], 0.0));
    }
}
