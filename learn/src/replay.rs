//! The replay buffer: a bounded ring of transitions per robot from which the trainer samples
//! short sequences that never cross a robot, an episode boundary or a gap in time.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Arc;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::memory::OdometryPose;

/// Number of action components: `[linear_x m/s, angular_z rad/s]`, as a Twist carries them.
pub const ACTION_DIM: usize = 2;

/// One step of experience: what the robot saw and felt at `frame_stamp_ns`, and what it did next.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The robot (stream source) it came from: 0 for a single robot, the robot's index in a
    /// fleet. Sequences never cross sources, and the replay buffer samples sources fairly.
    pub source: u32,
    /// Episode of its source (a run between resets; a new episode after any discontinuity).
    pub episode: u64,
    /// Stamp of the camera frame, nanoseconds.
    pub frame_stamp_ns: u64,
    /// Row-major `rgb8` image, `height × width × 3` bytes, shared to avoid copies.
    pub image: Arc<[u8]>,
    /// Proprioceptive features (normalised as the caller sees fit; fixed length).
    pub proprio: Vec<f32>,
    /// The command applied from this frame until the next one.
    pub action: [f32; ACTION_DIM],
    /// The wheel odometry's pose at the frame, in its `odom` frame, when one arrived within the
    /// collector's proprio tolerance (the odometry objective's relative poses).
    pub odometry: Option<OdometryPose>,
}

/// Replay buffer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplayConfig {
    /// Most transitions kept; the oldest go first. Memory ≈ capacity × (3·W·H + 4·proprio + 104)
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

/// Starts tried in one source for one sample before another source is drawn.
const TRIES_PER_SOURCE: usize = 64;

/// One source's transitions, oldest first.
#[derive(Debug, Clone)]
struct SourceRing {
    source: u32,
    ring: VecDeque<Transition>,
}

/// A bounded ring of transitions per source (robot), checked on the way in. The capacity is
/// shared evenly by the sources seen so far; sequences never cross sources; sampling picks a
/// source uniformly, then a sequence in it, so a robot with a faster camera or a longer run
/// does not crowd out the others.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    config: ReplayConfig,
    image_len: usize,
    proprio_dim: usize,
    /// In order of first appearance.
    sources: Vec<SourceRing>,
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
            config,
            image_len: width * height * 3,
            proprio_dim,
            sources: Vec::new(),
            pushed: 0,
        })
    }

    /// Transitions held.
    pub fn len(&self) -> usize {
        self.sources.iter().map(|s| s.ring.len()).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transitions ever accepted.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Stamp of the newest transition of any source.
    pub fn newest_stamp_ns(&self) -> Option<u64> {
        self.sources
            .iter()
            .filter_map(|s| s.ring.back().map(|t| t.frame_stamp_ns))
            .max()
    }

    /// Transitions held per source, in order of first appearance.
    pub fn len_by_source(&self) -> Vec<(u32, usize)> {
        self.sources
            .iter()
            .map(|s| (s.source, s.ring.len()))
            .collect()
    }

    /// Bytes held by images and proprio (the bulk of the footprint).
    pub fn memory_bytes(&self) -> usize {
        self.len() * (self.image_len + self.proprio_dim * 4 + std::mem::size_of::<Transition>())
    }

    /// Most transitions each source keeps now: an even share of the capacity.
    fn share(&self) -> usize {
        (self.config.capacity / self.sources.len().max(1)).max(1)
    }

    /// Adds a transition after checking it; a bad one is refused with the reason. A source
    /// seen for the first time takes its share of the capacity from the others' oldest.
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
        let index = match self
            .sources
            .iter()
            .position(|s| s.source == transition.source)
        {
            Some(index) => index,
            None => {
                self.sources.push(SourceRing {
                    source: transition.source,
                    ring: VecDeque::new(),
                });
                let share = self.share();
                for other in &mut self.sources {
                    let excess = other.ring.len().saturating_sub(share);
                    other.ring.drain(..excess);
                }
                self.sources.len() - 1
            }
        };
        let share = self.share();
        let ring = &mut self.sources[index].ring;
        while ring.len() >= share {
            ring.pop_front();
        }
        ring.push_back(transition);
        self.pushed += 1;
        Ok(())
    }

    /// The `index`-th transition: sources in order of first appearance, each oldest first.
    pub fn get(&self, index: usize) -> Option<&Transition> {
        let (_, ring, at) = self.locate(index)?;
        ring.get(at)
    }

    /// Draws up to `tries` transitions of the same source and episode as the `index`-th, each
    /// `steps` transitions before or after it, and returns the index (for
    /// [`ReplayBuffer::get`]) of the first that `accept` takes; `None` when none did. The odometry
    /// objective's revisits: a place passed again within one run, where the odometry has not yet
    /// drifted far.
    pub fn draw_in_episode(
        &self,
        index: usize,
        steps: RangeInclusive<usize>,
        tries: usize,
        rng: &mut ChaCha8Rng,
        accept: impl Fn(&Transition) -> bool,
    ) -> Option<usize> {
        let (first, ring, at) = self.locate(index)?;
        let (episode, stamp_ns) = ring.get(at).map(|t| (t.episode, t.frame_stamp_ns))?;
        if steps.is_empty() {
            return None;
        }
        (0..tries).find_map(|_| {
            let step = rng.random_range(steps.clone());
            let candidate = if rng.random::<bool>() {
                at.checked_add(step)
            } else {
                at.checked_sub(step)
            }?;
            let transition = ring.get(candidate)?;
            // Of the same run: the same episode, and its stamp on the side of the first's that
            // its place in the ring is (an episode number used again would break that).
            let in_order = (candidate > at) == (transition.frame_stamp_ns > stamp_ns);
            (transition.episode == episode && in_order && accept(transition))
                .then_some(first + candidate)
        })
    }

    /// The source ring holding the `index`-th transition: its first index, the ring, and the
    /// transition's place in it.
    fn locate(&self, index: usize) -> Option<(usize, &VecDeque<Transition>, usize)> {
        let mut first = 0;
        for source in &self.sources {
            if index - first < source.ring.len() {
                return Some((first, &source.ring, index - first));
            }
            first += source.ring.len();
        }
        None
    }

    /// Whether `length` transitions of `ring` starting at `start` form one unbroken sequence.
    fn is_sequence(&self, ring: &VecDeque<Transition>, start: usize, length: usize) -> bool {
        let Some(first) = ring.get(start) else {
            return false;
        };
        let mut previous = first;
        for offset in 1..length {
            let Some(next) = ring.get(start + offset) else {
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

    /// Samples `count` start indices (for [`ReplayBuffer::get`]) of unbroken sequences of
    /// `length` transitions: each from a source chosen uniformly among those holding at least
    /// `length`, then a start chosen uniformly in that source.
    ///
    /// Fails with [`LearnError::NotEnoughData`] when the buffer holds too few such sequences to
    /// find them in a bounded number of tries.
    pub fn sample_sequences(
        &self,
        count: usize,
        length: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<usize>, LearnError> {
        // (offset of the source's first index, the source's ring) for every source that can hold
        // a sequence.
        let mut offset = 0;
        let mut eligible = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            if length > 0 && source.ring.len() >= length {
                eligible.push((offset, &source.ring));
            }
            offset += source.ring.len();
        }
        if eligible.is_empty() {
            return Err(LearnError::NotEnoughData {
                have: self.len(),
                need: length.max(1),
            });
        }
        let mut chosen = Vec::with_capacity(count);
        let mut tries = 0usize;
        // The source of the sample being drawn, kept until a sequence of it is found (so a
        // robot whose data has many gaps gets its share too), or redrawn after
        // TRIES_PER_SOURCE misses (a robot with no sequence at all cannot stall sampling).
        let mut source: Option<(usize, &VecDeque<Transition>)> = None;
        let mut misses = 0usize;
        while chosen.len() < count {
            tries += 1;
            if tries > count * 64 + 1024 {
                return Err(LearnError::NotEnoughData {
                    have: chosen.len(),
                    need: count,
                });
            }
            // One source draws no number: a single robot samples as it always has.
            let (first, ring) = match source {
                Some(drawn) => drawn,
                None if eligible.len() == 1 => eligible[0],
                None => eligible[rng.random_range(0..eligible.len())],
            };
            let start = rng.random_range(0..ring.len() - length + 1);
            if self.is_sequence(ring, start, length) {
                chosen.push(first + start);
                (source, misses) = (None, 0);
            } else {
                misses += 1;
                source = (misses < TRIES_PER_SOURCE).then_some((first, ring));
                if source.is_none() {
                    misses = 0;
                }
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
            source: 0,
            episode,
            frame_stamp_ns: stamp_ms * 1_000_000,
            image: Arc::from(vec![0u8; 2 * 2 * 3]),
            proprio: vec![0.0; 3],
            action: [0.0; 2],
            odometry: None,
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

    fn from(source: u32, episode: u64, stamp_ms: u64) -> Transition {
        Transition {
            source,
            ..transition(episode, stamp_ms)
        }
    }

    #[test]
    fn robots_share_the_capacity_and_are_sampled_fairly_whatever_their_rates() {
        let config = ReplayConfig {
            capacity: 300,
            ..ReplayConfig::default()
        };
        let mut buffer = ReplayBuffer::new(config, 2, 2, 3).expect("buffer");
        // Robot 0 alone fills the buffer, then robot 1 joins at a third of its rate: both
        // episodes are numbered 0, their stamps interleave.
        for i in 0..400 {
            buffer.push(from(0, 0, i * 10)).expect("push");
        }
        assert_eq!(buffer.len(), 300);
        for i in 0..300 {
            buffer.push(from(0, 0, 4000 + i * 10)).expect("push");
            if i % 3 == 0 {
                buffer.push(from(1, 0, 4000 + i * 10 + 5)).expect("push");
            }
        }
        assert_eq!(buffer.len_by_source(), vec![(0, 150), (1, 100)]);
        assert!(buffer.len() <= 300);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let starts = buffer.sample_sequences(2000, 4, &mut rng).expect("sample");
        let mut per_source = [0usize; 2];
        for start in starts {
            let first = buffer.get(start).expect("first");
            per_source[first.source as usize] += 1;
            for offset in 1..4 {
                let next = buffer.get(start + offset).expect("next");
                assert_eq!(next.source, first.source, "a sequence crossed robots");
                assert!(
                    next.frame_stamp_ns > buffer.get(start + offset - 1).expect("p").frame_stamp_ns
                );
            }
        }
        // Uniform over robots, not over transitions (which would give 60 % / 40 %).
        for count in per_source {
            assert!((900..=1100).contains(&count), "{per_source:?}");
        }
    }

    #[test]
    fn a_robot_whose_data_has_many_gaps_still_gets_its_share_of_the_batches() {
        let mut buffer = ReplayBuffer::new(ReplayConfig::default(), 2, 2, 3).expect("buffer");
        for i in 0..200 {
            buffer.push(from(0, 0, i * 10)).expect("push");
            // Robot 1: a gap after every fourth frame, so few starts make a sequence of 4.
            let stamp = i * 10 + (i / 4) * 1000;
            buffer.push(from(1, 0, stamp)).expect("push");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let starts = buffer.sample_sequences(2000, 4, &mut rng).expect("sample");
        let from_gappy = starts
            .iter()
            .filter(|&&s| buffer.get(s).expect("t").source == 1)
            .count();
        assert!((900..=1100).contains(&from_gappy), "{from_gappy} of 2000");
    }

    #[test]
    fn a_revisit_is_drawn_from_the_same_robot_and_episode_within_its_steps() {
        let mut buffer = ReplayBuffer::new(ReplayConfig::default(), 2, 2, 3).expect("buffer");
        // Robot 0: episode 0 (frames 0..100), then episode 1 (100..200); robot 1 between them
        // in the index space of `get`.
        for i in 0..200 {
            buffer.push(from(0, i / 100, i * 10)).expect("push");
            buffer.push(from(1, 0, i * 10)).expect("push");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let index = 90; // robot 0, episode 0, near its end
        let mut drawn = std::collections::HashSet::new();
        for _ in 0..500 {
            let Some(found) = buffer.draw_in_episode(index, 5..=20, 4, &mut rng, |_| true) else {
                continue;
            };
            let t = buffer.get(found).expect("drawn");
            assert_eq!((t.source, t.episode), (0, 0));
            assert!((5..=20).contains(&found.abs_diff(index)), "{found}");
            drawn.insert(found);
        }
        // Both sides within the episode: 70..=85 before, 95..=99 after.
        assert!(drawn.iter().any(|&i| i < index) && drawn.iter().any(|&i| i > index));
        // Only what `accept` takes, and nothing where it takes none.
        let late = |t: &Transition| t.frame_stamp_ns > 950_000_000;
        let found = buffer.draw_in_episode(index, 1..=20, 64, &mut rng, late);
        assert!(found.is_some_and(|i| i > 95), "{found:?}");
        assert_eq!(
            buffer.draw_in_episode(index, 1..=20, 64, &mut rng, |_| false),
            None
        );
        assert_eq!(
            buffer.draw_in_episode(buffer.len(), 1..=20, 64, &mut rng, |_| true),
            None
        );
    }
}
