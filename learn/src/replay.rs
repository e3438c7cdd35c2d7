//! The replay buffer: a bounded ring of transitions from which the trainer samples short
//! sequences that never cross an episode boundary or a gap in time.

use std::sync::Arc;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// Number of action components: `[linear_x m/s, angular_z rad/s]`, as a Twist carries them.
pub const ACTION_DIM: usize = 2;

/// One step of experience: what the robot saw and felt at `frame_stamp_ns`, and what it did next.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Episode (a run between resets; a new episode after any discontinuity).
    pub episode: u64,
    /// Stamp of the camera frame, nanoseconds.
    pub frame_stamp_ns: u64,
    /// Row-major `rgb8` image, `height × width × 3` bytes, shared to avoid copies.
    pub image: Arc<[u8]>,
    /// Proprioceptive features (normalised as the caller sees fit; fixed length).
    pub proprio: Vec<f32>,
    /// The command applied from this frame until the next one.
    pub action: [f32; ACTION_DIM],
}

/// Replay buffer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Most transitions kept; the oldest go first. Memory ≈ capacity × (3·W·H + 4·proprio + 48)
    /// bytes, ≈ 12.4 KB per transition at 64×64: 245 MB at the default 20 000.
    pub capacity: usize,
    /// Two consecutive transitions further apart than this (ns) are not one sequence.
    pub max_gap_ns: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            capacity: 20_000,
            max_gap_ns: 150_000_000,
        }
    }
}

/// A bounded ring of transitions, checked on the way in.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    config: ReplayConfig,
    image_len: usize,
    proprio_dim: usize,
    ring: Vec<Transition>,
    /// Index in `ring` of the oldest transition once full.
    head: usize,
    pushed: u64,
}

impl ReplayBuffer {
    /// An empty buffer for images of `width × height` RGB and `proprio_dim` proprio features.
    pub fn new(
        config: ReplayConfig,
        width: usize,
        height: usize,
        proprio_dim: usize,
    ) -> Result<Self, LearnError> {
        if config.capacity < 2 {
            return Err(LearnError::InvalidConfig(format!(
                "replay.capacity must be at least 2, got {}",
                config.capacity
            )));
        }
        Ok(Self {
            ring: Vec::with_capacity(config.capacity.min(1 << 16)),
            config,
            image_len: width * height * 3,
            proprio_dim,
            head: 0,
            pushed: 0,
        })
    }

    /// Transitions held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// Transitions ever accepted.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Bytes held by images and proprio (the bulk of the footprint).
    pub fn memory_bytes(&self) -> usize {
        self.ring.len()
            * (self.image_len + self.proprio_dim * 4 + std::mem::size_of::<Transition>())
    }

    /// Adds a transition after checking it; a bad one is refused with the reason.
    pub fn push(&mut self, transition: Transition) -> Result<(), LearnError> {
        if transition.image.len() != self.image_len {
            return Err(LearnError::BadTransition(format!(
                "image has {} bytes, expected {}",
                transition.image.len(),
                self.image_len
            )));
        }
        if transition.proprio.len() != self.proprio_dim {
            return Err(LearnError::BadTransition(format!(
                "proprio has {} values, expected {}",
                transition.proprio.len(),
                self.proprio_dim
            )));
        }
        if !transition
            .proprio
            .iter()
            .chain(&transition.action)
            .all(|v| v.is_finite())
        {
            return Err(LearnError::BadTransition(
                "non-finite proprio or action".into(),
            ));
        }
        if self.ring.len() < self.config.capacity {
            self.ring.push(transition);
        } else {
            self.ring[self.head] = transition;
            self.head = (self.head + 1) % self.config.capacity;
        }
        self.pushed += 1;
        Ok(())
    }

    /// The `index`-th oldest transition.
    pub fn get(&self, index: usize) -> Option<&Transition> {
        if index >= self.ring.len() {
            return None;
        }
        let physical = if self.ring.len() < self.config.capacity {
            index
        } else {
            (self.head + index) % self.config.capacity
        };
        self.ring.get(physical)
    }

    /// Whether `length` transitions starting at logical `start` form one unbroken sequence.
    fn is_sequence(&self, start: usize, length: usize) -> bool {
        let Some(first) = self.get(start) else {
            return false;
        };
        let mut previous = first;
        for offset in 1..length {
            let Some(next) = self.get(start + offset) else {
                return false;
            };
            if next.episode != previous.episode
                || next.frame_stamp_ns <= previous.frame_stamp_ns
                || next.frame_stamp_ns - previous.frame_stamp_ns > self.config.max_gap_ns
            {
                return false;
            }
            previous = next;
        }
        true
    }

    /// Samples `count` start indices of unbroken sequences of `length` transitions.
    ///
    /// Fails with [`LearnError::NotEnoughData`] when the buffer holds too few such sequences to
    /// find them in a bounded number of tries.
    pub fn sample_sequences(
        &self,
        count: usize,
        length: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<usize>, LearnError> {
        if length == 0 || self.ring.len() < length {
            return Err(LearnError::NotEnoughData {
                have: self.ring.len(),
                need: length.max(1),
            });
        }
        let starts = self.ring.len() - length + 1;
        let mut chosen = Vec::with_capacity(count);
        let mut tries = 0usize;
        while chosen.len() < count {
            tries += 1;
            if tries > count * 64 + 1024 {
                return Err(LearnError::NotEnoughData {
                    have: chosen.len(),
                    need: count,
                });
            }
            let start = rng.random_range(0..starts);
            if self.is_sequence(start, length) {
                chosen.push(start);
            }
        }
        Ok(chosen)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn transition(episode: u64, stamp_ms: u64) -> Transition {
        Transition {
            episode,
            frame_stamp_ns: stamp_ms * 1_000_000,
            image: Arc::from(vec![0u8; 2 * 2 * 3]),
            proprio: vec![0.0; 3],
            action: [0.0; 2],
        }
    }

    #[test]
    fn sequences_never_cross_episodes_or_gaps() {
        let mut buffer = ReplayBuffer::new(ReplayConfig::default(), 2, 2, 3).expect("buffer");
        for i in 0..10 {
            buffer.push(transition(0, i * 50)).expect("push");
        }
        // A gap of one second inside episode 0, then episode 1.
        for i in 0..10 {
            buffer.push(transition(0, 2000 + i * 50)).expect("push");
        }
        for i in 0..10 {
            buffer.push(transition(1, i * 50)).expect("push");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let starts = buffer.sample_sequences(500, 4, &mut rng).expect("sample");
        for start in starts {
            let first = buffer.get(start).expect("first");
            for offset in 1..4 {
                let next = buffer.get(start + offset).expect("next");
                assert_eq!(next.episode, first.episode);
                assert!(
                    next.frame_stamp_ns
                        - buffer.get(start + offset - 1).expect("prev").frame_stamp_ns
                        <= 50_000_000
                );
            }
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_bounds_memory() {
        let config = ReplayConfig {
            capacity: 5,
            ..ReplayConfig::default()
        };
        let mut buffer = ReplayBuffer::new(config, 2, 2, 3).expect("buffer");
        for i in 0..12 {
            buffer.push(transition(0, i * 50)).expect("push");
        }
        assert_eq!(buffer.len(), 5);
        assert_eq!(buffer.pushed(), 12);
        let stamps: Vec<u64> = (0..5)
            .map(|i| buffer.get(i).expect("t").frame_stamp_ns / 1_000_000)
            .collect();
        assert_eq!(stamps, vec![350, 400, 450, 500, 550]);
        assert!(buffer.memory_bytes() < 5 * 200);
    }

    #[test]
    fn bad_transitions_are_refused_with_a_reason() {
        let mut buffer = ReplayBuffer::new(ReplayConfig::default(), 2, 2, 3).expect("buffer");
        let mut wrong_size = transition(0, 0);
        wrong_size.image = Arc::from(vec![0u8; 5]);
        assert!(matches!(
            buffer.push(wrong_size),
            Err(LearnError::BadTransition(_))
        ));
        let mut nan = transition(0, 0);
        nan.proprio[1] = f32::NAN;
        assert!(matches!(
            buffer.push(nan),
            Err(LearnError::BadTransition(_))
        ));
        assert!(buffer.is_empty());
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(matches!(
            buffer.sample_sequences(4, 3, &mut rng),
            Err(LearnError::NotEnoughData { .. })
        ));
    }
}
