//! Where the robot is in a memory, from what it sees and how its wheels moved.
//!
//! One view is ambiguous: the nearest remembered embedding is often a look-alike place
//! elsewhere. But every frame's nearest remembered places each say where the robot's odometry
//! frame lies in the memory's (`memory pose ⊕ odometry now⁻¹`; the memory's pose is the
//! optimised map's where it has one, [`MemoryGraph::place_pose`]), and while the robot drives, the
//! right places keep saying the same thing and the look-alikes say something else each time.
//! [`Localiser`] keeps the votes of the latest frames and places the robot where most of them
//! agree, as a histogram filter would, with no map and no tuning of motion noise: odometry's
//! drift is bounded by keeping [`MemoryConfig::vote_frames`] frames only.

use std::collections::VecDeque;

use super::{MemoryConfig, MemoryGraph, OdometryPose};
use crate::LearnError;

/// Where the robot was placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// The node nearest to `pose`.
    pub node: usize,
    /// The robot's pose in the memory's frame `episode`: the `odom` frame of that episode, or
    /// that part of the optimised map ([`MemoryGraph::place_pose`]).
    pub pose: OdometryPose,
    /// The episode (or part of the optimised map) of the memory it was placed in.
    pub episode: u64,
    /// Votes that agree with it (of at most [`MemoryConfig::candidates`] ×
    /// [`MemoryConfig::vote_frames`]).
    pub support: usize,
}

/// One remembered place's word on where the robot's odometry frame lies in the memory.
#[derive(Debug, Clone, Copy)]
struct Vote {
    /// The frame (counted by [`Localiser::observe`]) it came from.
    frame: u64,
    /// Its rank among that frame's candidates, nearest first.
    rank: usize,
    episode: u64,
    /// `memory pose ⊕ robot odometry⁻¹`: the robot's odometry frame in the memory's.
    transform: OdometryPose,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Localiser {
    votes: VecDeque<Vote>,
    frames: u64,
}

impl Localiser {
    /// A localiser with no votes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every vote (the robot was moved by hand, or the memory is another one).
    pub fn reset(&mut self) {
        self.votes.clear();
    }

    /// Places the robot from the embedding of what it sees now and its odometry pose now.
    /// `None` when none of the nearest remembered places has an odometry pose.
    pub fn observe(
        &mut self,
        graph: &MemoryGraph,
        embedding: &[f32],
        odometry: &OdometryPose,
    ) -> Result<Option<Placement>, LearnError> {
        if !odometry.is_finite() {
            return Err(LearnError::BadInput(
                "memory: the robot's odometry pose is not finite".into(),
            ));
        }
        let candidates = graph.candidates(embedding)?;
        let config: &MemoryConfig = graph.config();
        self.frames += 1;
        let from_robot = odometry.inverse();
        for (rank, (node, _)) in candidates.iter().enumerate() {
            if let Some((episode, pose)) = graph.place_pose(*node) {
                self.votes.push_back(Vote {
                    frame: self.frames,
                    rank,
                    episode,
                    transform: pose.compose(&from_robot),
                });
            }
        }
        let keep = config.vote_frames as u64;
        while self
            .votes
            .front()
            .is_some_and(|v| v.frame + keep <= self.frames)
        {
            self.votes.pop_front();
        }
        // Each vote's placement of the robot now.
        let now: Vec<(u64, OdometryPose)> = self
            .votes
            .iter()
            .map(|v| (v.episode, v.transform.compose(odometry)))
            .collect();
        let (radius, turn) = (
            f64::from(config.vote_radius_m),
            f64::from(config.vote_turn_deg).to_radians(),
        );
        let agree = |a: &(u64, OdometryPose), b: &(u64, OdometryPose)| {
            a.0 == b.0 && a.1.distance(&b.1) <= radius && a.1.turn(&b.1) <= turn
        };
        // Most support wins; then the newest frame, then the nearer place of that frame.
        let Some((best, support)) = now
            .iter()
            .zip(&self.votes)
            .enumerate()
            .map(|(i, (placed, vote))| {
                let support = now.iter().filter(|other| agree(placed, other)).count();
                (i, support, vote.frame, std::cmp::Reverse(vote.rank))
            })
            .max_by_key(|&(_, support, frame, rank)| (support, frame, rank))
            .map(|(i, support, _, _)| (i, support))
        else {
            return Ok(None);
        };
        let (episode, _) = now[best];
        let agreeing: Vec<&OdometryPose> = now
            .iter()
            .filter(|other| agree(&now[best], other))
            .map(|(_, pose)| pose)
            .collect();
        let count = agreeing.len() as f64;
        let (sin, cos) = agreeing
            .iter()
            .fold((0.0, 0.0), |(s, c), p| (s + p.yaw.sin(), c + p.yaw.cos()));
        let pose = OdometryPose::new(
            agreeing.iter().map(|p| p.x).sum::<f64>() / count,
            agreeing.iter().map(|p| p.y).sum::<f64>() / count,
            sin.atan2(cos),
        );
        Ok(graph
            .nearest_by_odometry(episode, &pose)
            .map(|node| Placement {
                node,
                pose,
                episode,
                support,
            }))
    }
}
