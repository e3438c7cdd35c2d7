//! Following a route through the memory by wheel odometry, as visual teach-and-repeat does: the
//! route's places become a path of poses relative to the robot's place, laid out from the
//! odometry the memory recorded between them, and a pursuit controller drives the robot along
//! it by its own odometry. The latent MPC takes over for the last stretch, from the end of the
//! path to the goal image.
//!
//! The memory's odometry is used only over short drives (drift over a few metres is small even
//! where it drifts by metres over the whole drive): between neighbouring places, and across a
//! shortcut (the same place seen on another pass) whose two places the robot drove between in
//! at most `shortcut_odometry_m`. Across a longer one the two places are taken as one.

use serde::{Deserialize, Serialize};

use super::odometry::wrap;
use super::{EdgeKind, MemoryGraph, OdometryPose, Route, non_negative};
use crate::LearnError;

/// How the robot follows its route (`[…memory.follow]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowConfig {
    /// Drive along the route by odometry where the robot's frames and the route's places carry
    /// it, instead of driving to a subgoal with the latent MPC.
    pub enabled: bool,
    /// The controller steers to the first pose of the path at least this far ahead, metres.
    pub lookahead_m: f32,
    /// The path is done when the robot is within this of its last pose, metres …
    pub arrive_m: f32,
    /// … and within this of its heading, degrees; the latent MPC drives on to the goal (after
    /// the relative-pose head's turn to its heading, where the planner has the head).
    pub arrive_deg: f32,
    /// Forward speed per metre to the target, 1/s (capped by the planner's `max_action`): 2.5
    /// drives at the cap towards a target `lookahead_m` ahead (measured in docs/eval.md, "The
    /// last stretch of a followed path": 1.5 left paths unfinished within a far goal's time).
    pub linear_gain: f32,
    /// Turn rate per radian of bearing to the target, 1/s (capped by `max_action`).
    pub angular_gain: f32,
    /// The robot drives forward only while the target is within this bearing, degrees; else
    /// it turns in place.
    pub drive_within_deg: f32,
    /// The path is laid out again from a fresh placement after this many frames (odometry
    /// drifts, placements improve as the robot drives); 0: once per goal.
    pub replan_frames: usize,
    /// A shortcut between places of one episode that the robot drove between in at most this
    /// many metres moves by the odometry between them; across a longer one (or between
    /// episodes) the two places are taken as one pose. Measured: the two views of a shortcut
    /// are ~0.3 m and 10° apart, and odometry over a longer drive drifts by more. 0: every
    /// shortcut joins its places as one pose (unless the robot stood still between them).
    pub shortcut_odometry_m: f32,
}

impl Default for FollowConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            lookahead_m: 0.25,
            arrive_m: 0.1,
            arrive_deg: 20.0,
            linear_gain: 2.5,
            angular_gain: 3.0,
            drive_within_deg: 45.0,
            replan_frames: 40,
            shortcut_odometry_m: 7.5,
        }
    }
}

impl FollowConfig {
    /// Checks the numbers, naming the one that is unusable.
    pub fn validate(&self) -> Result<(), LearnError> {
        non_negative(
            "memory.follow",
            &[
                (self.lookahead_m, "lookahead_m"),
                (self.arrive_m, "arrive_m"),
                (self.arrive_deg, "arrive_deg"),
                (self.linear_gain, "linear_gain"),
                (self.angular_gain, "angular_gain"),
                (self.drive_within_deg, "drive_within_deg"),
                (self.shortcut_odometry_m, "shortcut_odometry_m"),
            ],
        )
    }
}

impl MemoryGraph {
    /// The poses of `route`'s places relative to its first place (the identity first), laid
    /// out from `odometry` (the wheel-odometry pose of a node's frame): each step along an
    /// observed or odometry edge of one episode moves by what odometry recorded between the two
    /// places, and so does a shortcut of one episode over a drive of at most
    /// [`FollowConfig::shortcut_odometry_m`]; any other shortcut keeps the pose (the same
    /// place). `None` when a step needs a pose that is missing, or two consecutive places are
    /// not joined by an edge. Where the memory is laid out as one map ([`PoseGraphConfig`](
    /// super::PoseGraphConfig)), the path is the route's places in the map instead.
    pub fn route_path(
        &self,
        route: &Route,
        odometry: impl Fn(usize) -> Option<OdometryPose>,
    ) -> Option<Vec<OdometryPose>> {
        if let Some(first) = route.nodes.first().and_then(|&i| self.map_pose(i)) {
            let to_first = first.inverse();
            return route
                .nodes
                .iter()
                .map(|&i| Some(to_first.compose(&self.map_pose(i)?)))
                .collect();
        }
        let mut path = Vec::with_capacity(route.nodes.len());
        let mut pose = OdometryPose::default();
        path.push(pose);
        for pair in route.nodes.windows(2) {
            let (from, to) = (pair[0], pair[1]);
            let kind = self.edges(from).iter().find(|e| e.to == to)?.kind;
            let same_episode = self.nodes().get(from)?.episode == self.nodes().get(to)?.episode;
            let by_odometry = same_episode
                && (kind != EdgeKind::Shortcut || self.short_drive(from, to, &odometry));
            if by_odometry {
                let step = odometry(from)?.inverse().compose(&odometry(to)?);
                pose = pose.compose(&step);
            }
            path.push(pose);
        }
        Some(path)
    }

    /// Whether the robot drove from node `a` to node `b` (or back) in at most
    /// [`FollowConfig::shortcut_odometry_m`], by the odometry of the nodes between them (of one
    /// episode: nodes are in the order they were driven through; a change of episode between
    /// them is not a short drive).
    pub(super) fn short_drive(
        &self,
        a: usize,
        b: usize,
        odometry: impl Fn(usize) -> Option<OdometryPose>,
    ) -> bool {
        let limit = f64::from(self.config().follow.shortcut_odometry_m);
        let mut driven = 0.0;
        let nodes = self.nodes();
        for i in a.min(b)..a.max(b) {
            let same_episode =
                nodes.get(i).map(|n| n.episode) == nodes.get(i + 1).map(|n| n.episode);
            let (true, Some(p), Some(q)) = (same_episode, odometry(i), odometry(i + 1)) else {
                return false;
            };
            driven += p.distance(&q);
            if driven > limit {
                return false;
            }
        }
        true
    }
}

/// What the follower says for one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Follow {
    /// Send this command, `[m/s, rad/s]`.
    Drive([f32; 2]),
    /// The path is done: drive on to the goal with the latent MPC.
    Arrived,
}

/// A path in the robot's odometry frame and the pose along it steered to.
#[derive(Debug, Clone, PartialEq)]
pub struct PathFollower {
    path: Vec<OdometryPose>,
    target: usize,
    /// Frames commanded since the path was laid out.
    frames: usize,
}

impl PathFollower {
    /// The path `relative` (poses relative to the robot's place, [`MemoryGraph::route_path`]),
    /// laid out from the robot's odometry pose `robot`. `None` for an empty path.
    pub fn new(robot: &OdometryPose, relative: &[OdometryPose]) -> Option<Self> {
        (!relative.is_empty()).then(|| Self {
            path: relative.iter().map(|p| robot.compose(p)).collect(),
            target: 0,
            frames: 0,
        })
    }

    /// The path, in the robot's odometry frame.
    pub fn path(&self) -> &[OdometryPose] {
        &self.path
    }

    /// Frames commanded since the path was laid out.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// The command that takes the robot, at odometry pose `robot`, along the path: towards the
    /// first pose at least `lookahead_m` ahead (never back to one passed), then turning to the
    /// last pose's heading. Where the path comes back within `lookahead_m` of the robot later
    /// on (a loop in the drive it was laid out from), the loop is cut: the robot is there
    /// already. Speeds are capped by `max_action` (`[m/s, rad/s]`); the robot only
    /// drives forward.
    pub fn command(
        &mut self,
        robot: &OdometryPose,
        config: &FollowConfig,
        max_action: [f32; 2],
    ) -> Follow {
        self.frames += 1;
        let last = self.path.len() - 1;
        let lookahead = f64::from(config.lookahead_m);
        // By distance alone: at `lookahead_m` (0.25 m) no wall stands between the robot and
        // the loop's end.
        if let Some(back) = (self.target..=last)
            .rev()
            .find(|&i| self.path[i].distance(robot) < lookahead)
        {
            self.target = back;
        }
        while self.target < last && self.path[self.target].distance(robot) < lookahead {
            self.target += 1;
        }
        let target = self.path[self.target];
        let distance = target.distance(robot);
        let (max_linear, max_angular) = (f64::from(max_action[0]), f64::from(max_action[1]));
        // Turn rate towards `heading`, the short way round.
        let turn_to = |heading: f64| {
            let error = wrap(heading - robot.yaw);
            (f64::from(config.angular_gain) * error).clamp(-max_angular, max_angular)
        };
        if self.target == last && distance <= f64::from(config.arrive_m) {
            if target.turn(robot) <= f64::from(config.arrive_deg).to_radians() {
                return Follow::Arrived;
            }
            return Follow::Drive([0.0, turn_to(target.yaw) as f32]);
        }
        let bearing = (target.y - robot.y).atan2(target.x - robot.x);
        let off = wrap(bearing - robot.yaw).abs();
        let linear = if off <= f64::from(config.drive_within_deg).to_radians() {
            (f64::from(config.linear_gain) * distance * off.cos()).clamp(0.0, max_linear)
        } else {
            0.0
        };
        Follow::Drive([linear as f32, turn_to(bearing) as f32])
    }
}
