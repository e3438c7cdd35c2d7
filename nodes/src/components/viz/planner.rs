//! The planner's drawing: its memory graph, its route through it and the path it follows, at
//! their places' odometry poses in the world view (`planner/memory/*`, `planner/route`,
//! `planner/path`); and, over time, where the relative-pose head reads the goal and whether the
//! robot turned to it (`planner/goal_seen/*`).

use super::logger::{LogResult, Logger};
use crate::components::planner::MemoryMap;

impl Logger {
    /// The memory graph: places as points, transitions and shortcuts as segments.
    pub(super) fn planner_memory(&self, stamp_ns: u64, map: &MemoryMap) -> LogResult {
        let rec = &self.recording;
        rec.reset_time();
        self.at_sim_time(stamp_ns);
        let at = |[x, y]: [f64; 2]| [x as f32, y as f32, 0.0];
        rec.log(
            "planner/memory/nodes",
            &rerun::Points3D::new(map.nodes.iter().map(|p| at(*p)))
                .with_colors([rerun::Color::from_rgb(120, 160, 220)])
                .with_radii([0.02]),
        )?;
        rec.log(
            "planner/memory/edges",
            &rerun::LineStrips3D::new(
                map.edges
                    .iter()
                    .filter_map(|[a, b]| Some([at(*map.nodes.get(*a)?), at(*map.nodes.get(*b)?)])),
            )
            .with_colors([rerun::Color::from_rgb(90, 110, 150)]),
        )
    }

    /// The route from the robot's place to the goal's.
    pub(super) fn planner_route(&self, stamp_ns: u64, route: &[[f64; 2]]) -> LogResult {
        self.recording.reset_time();
        self.at_sim_time(stamp_ns);
        self.recording.log(
            "planner/route",
            &planar_strip(route, 0.01, [80, 220, 120], 0.015),
        )
    }

    /// The goal as the relative-pose head reads it from the robot, and whether the robot
    /// turned in place to it (1) or the MPC drove (0).
    pub(super) fn planner_goal_seen(
        &self,
        stamp_ns: u64,
        heading_deg: f64,
        distance_m: f64,
        turning: bool,
    ) -> LogResult {
        let rec = &self.recording;
        rec.reset_time();
        self.at_sim_time(stamp_ns);
        rec.log(
            "planner/goal_seen/heading_deg",
            &rerun::Scalars::single(heading_deg),
        )?;
        rec.log(
            "planner/goal_seen/distance_m",
            &rerun::Scalars::single(distance_m),
        )?;
        rec.log(
            "planner/goal_seen/turning",
            &rerun::Scalars::single(if turning { 1.0 } else { 0.0 }),
        )
    }

    /// The path followed by odometry; empty: none is followed any more, and it is cleared.
    pub(super) fn planner_path(&self, stamp_ns: u64, path: &[[f64; 2]]) -> LogResult {
        self.recording.reset_time();
        self.at_sim_time(stamp_ns);
        if path.is_empty() {
            self.recording.log("planner/path", &rerun::Clear::flat())
        } else {
            self.recording.log(
                "planner/path",
                &planar_strip(path, 0.02, [240, 160, 40], 0.012),
            )
        }
    }
}

/// One line through planar points `[x, y]` (metres), drawn `height` metres above the ground.
fn planar_strip(
    points: &[[f64; 2]],
    height: f32,
    [r, g, b]: [u8; 3],
    radius: f32,
) -> rerun::LineStrips3D {
    rerun::LineStrips3D::new([points
        .iter()
        .map(|[x, y]| [*x as f32, *y as f32, height])
        .collect::<Vec<_>>()])
    .with_colors([rerun::Color::from_rgb(r, g, b)])
    .with_radii([radius])
}
