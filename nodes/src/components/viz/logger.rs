//! The viz node's logger: each [`VizEvent`] to its entities on the recording, and what is kept
//! between events (each robot's trajectory, the embeddings of the projection window).

use super::{TRAJECTORY_POINTS, VizConfig, VizEvent, pca3, robot_prefix};

pub(super) struct Logger {
    pub(super) recording: rerun::RecordingStream,
    projection_every: usize,
    projection_window: usize,
    camera_every: u64,
    embeddings: Vec<(u64, Vec<f32>)>,
    since_projection: usize,
    /// What is kept of each robot, by robot.
    robots: std::collections::BTreeMap<usize, RobotTrack>,
}

/// What the viewer keeps of one robot.
#[derive(Default)]
struct RobotTrack {
    cameras: u64,
    /// The newest [`TRAJECTORY_POINTS`] robot positions, re-logged every 10 ticks.
    trajectory: Vec<[f32; 3]>,
    trajectory_ticks: u64,
    world_logged: bool,
}

pub(super) type LogResult = Result<(), rerun::RecordingStreamError>;

impl Logger {
    pub(super) fn new(config: &VizConfig, recording: rerun::RecordingStream) -> Self {
        Self {
            recording,
            projection_every: config.projection_every.max(1),
            projection_window: config.projection_window.max(4),
            camera_every: config.camera_every.max(1),
            embeddings: Vec::new(),
            since_projection: 0,
            robots: std::collections::BTreeMap::new(),
        }
    }

    pub(super) fn at_sim_time(&self, stamp_ns: u64) {
        self.recording
            .set_duration_secs("sim_time", stamp_ns as f64 * 1e-9);
    }

    pub(super) fn log(&mut self, event: VizEvent) -> LogResult {
        let rec = &self.recording;
        match event {
            VizEvent::Camera {
                robot,
                stamp_ns,
                width,
                height,
                rgb,
                proprio,
            } => {
                let prefix = robot_prefix(robot);
                let track = self.robots.entry(robot).or_default();
                track.cameras += 1;
                let due = (track.cameras - 1).is_multiple_of(self.camera_every);
                rec.reset_time();
                rec.set_duration_secs("sim_time", stamp_ns as f64 * 1e-9);
                if due {
                    rec.log(
                        format!("{prefix}camera/rgb"),
                        &rerun::Image::from_rgb24(rgb.to_vec(), [width, height]),
                    )?;
                }
                for (name, value) in proprio {
                    rec.log(
                        format!("{prefix}proprio/{name}"),
                        &rerun::Scalars::single(value as f64),
                    )?;
                }
            }
            VizEvent::Truth { robot, truth } => {
                let prefix = robot_prefix(robot);
                rec.reset_time();
                rec.set_duration_secs("sim_time", truth.stamp.nanos as f64 * 1e-9);
                let track = self.robots.entry(robot).or_default();
                if !track.world_logged {
                    track.world_logged = true;
                    log_world(rec, &prefix)?;
                }
                let pose = truth.robot_pose;
                let position = [pose.x as f32, pose.y as f32, 0.0];
                rec.log(
                    format!("{prefix}robot/pose"),
                    &rerun::Transform3D::from_translation_rotation(
                        position,
                        rerun::RotationAxisAngle::new(
                            [0.0, 0.0, 1.0],
                            rerun::Angle::from_radians(pose.yaw as f32),
                        ),
                    ),
                )?;
                if track.trajectory.len() == TRAJECTORY_POINTS {
                    track.trajectory.drain(..TRAJECTORY_POINTS / 10);
                }
                track.trajectory.push(position);
                track.trajectory_ticks += 1;
                if track.trajectory_ticks % 10 == 1 {
                    rec.log(
                        format!("{prefix}robot/trajectory"),
                        &rerun::LineStrips3D::new([track.trajectory.clone()])
                            .with_colors([rerun::Color::from_rgb(240, 200, 60)]),
                    )?;
                    let objects: Vec<[f32; 3]> = truth
                        .objects
                        .iter()
                        .map(|o| {
                            [
                                o.position[0] as f32,
                                o.position[1] as f32,
                                o.position[2] as f32,
                            ]
                        })
                        .collect();
                    let colours: Vec<rerun::Color> = truth
                        .objects
                        .iter()
                        .map(|o| {
                            rerun::Color::from_rgb(
                                byte(o.colour[0]),
                                byte(o.colour[1]),
                                byte(o.colour[2]),
                            )
                        })
                        .collect();
                    rec.log(
                        format!("{prefix}world/objects"),
                        &rerun::Points3D::new(objects)
                            .with_colors(colours)
                            .with_radii([0.12]),
                    )?;
                }
            }
            VizEvent::Status(status) => {
                rec.reset_time();
                rec.set_time_sequence("train_step", status.train_step as i64);
                self.at_sim_time(status.stamp_ns);
                for (name, value) in status.losses.named() {
                    rec.log(
                        format!("train/loss/{name}"),
                        &rerun::Scalars::single(value as f64),
                    )?;
                }
                rec.log(
                    "train/grad_norm",
                    &rerun::Scalars::single(status.grad_norm as f64),
                )?;
                rec.log(
                    "train/samples_per_second",
                    &rerun::Scalars::single(status.samples_per_second),
                )?;
                rec.log(
                    "train/replay_len",
                    &rerun::Scalars::single(status.replay_len as f64),
                )?;
            }
            VizEvent::Health(health) => {
                rec.reset_time();
                rec.set_time_sequence("train_step", health.train_step as i64);
                let c = &health.report.collapse;
                rec.log("train/health/mean_std", &rerun::Scalars::single(c.mean_std))?;
                rec.log("train/health/min_std", &rerun::Scalars::single(c.min_std))?;
                rec.log(
                    "train/health/effective_rank",
                    &rerun::Scalars::single(c.effective_rank),
                )?;
                for (k, ratio) in health.report.prediction_vs_copy_last.iter().enumerate() {
                    rec.log(
                        format!("train/health/prediction_vs_copy_last/k{}", k + 1),
                        &rerun::Scalars::single(*ratio),
                    )?;
                }
            }
            VizEvent::Embedding(embedding) => {
                rec.reset_time();
                self.at_sim_time(embedding.source_stamp_ns);
                rec.log(
                    "embedding/latency_ms",
                    &rerun::Scalars::single(embedding.latency_s * 1e3),
                )?;
                rec.log(
                    "embedding/model_version",
                    &rerun::Scalars::single(embedding.model_version as f64),
                )?;
                self.embeddings
                    .push((embedding.source_stamp_ns, embedding.data));
                if self.embeddings.len() > self.projection_window {
                    let excess = self.embeddings.len() - self.projection_window;
                    self.embeddings.drain(..excess);
                }
                self.since_projection += 1;
                if self.since_projection >= self.projection_every {
                    self.since_projection = 0;
                    if let Some(points) = pca3(&self.embeddings) {
                        let n = points.len().max(2) - 1;
                        let colours: Vec<rerun::Color> = (0..points.len())
                            .map(|i| time_colour(i as f32 / n as f32))
                            .collect();
                        rec.log(
                            "embedding/projection",
                            &rerun::Points3D::new(points)
                                .with_colors(colours)
                                .with_radii([0.02]),
                        )?;
                    }
                }
            }
            VizEvent::Preview(preview) => {
                rec.reset_time();
                rec.set_time_sequence("train_step", preview.train_step as i64);
                let (w, h) = (preview.width, preview.height);
                let strip = |images: &[Vec<u8>]| side_by_side(images, w, h);
                let count = preview.actual.len() as u32;
                rec.log(
                    "predict/actual",
                    &rerun::Image::from_rgb24(strip(&preview.actual), [w as u32 * count, h as u32]),
                )?;
                rec.log(
                    "predict/predicted",
                    &rerun::Image::from_rgb24(
                        strip(&preview.predicted),
                        [w as u32 * preview.predicted.len() as u32, h as u32],
                    ),
                )?;
                rec.log(
                    "predict/reconstruction",
                    &rerun::Image::from_rgb24(preview.reconstruction.clone(), [w as u32, h as u32]),
                )?;
            }
            VizEvent::PlannerMemory { stamp_ns, map } => self.planner_memory(stamp_ns, &map)?,
            VizEvent::PlannerRoute { stamp_ns, route } => self.planner_route(stamp_ns, &route)?,
            VizEvent::PlannerPath { stamp_ns, path } => self.planner_path(stamp_ns, &path)?,
            VizEvent::PlannerGoalSeen {
                stamp_ns,
                heading_deg,
                distance_m,
                turning,
            } => self.planner_goal_seen(stamp_ns, heading_deg, distance_m, turning)?,
        }
        Ok(())
    }
}

/// The arena's outline, under `prefix` (a robot's, see [`robot_prefix`]).
fn log_world(recording: &rerun::RecordingStream, prefix: &str) -> LogResult {
    let half = 2.0f32;
    recording.log_static(
        format!("{prefix}world/arena"),
        &rerun::LineStrips3D::new([[
            [-half, -half, 0.0],
            [half, -half, 0.0],
            [half, half, 0.0],
            [-half, half, 0.0],
            [-half, -half, 0.0],
        ]])
        .with_colors([rerun::Color::from_rgb(180, 180, 180)]),
    )
}

fn byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Early = blue, late = yellow.
fn time_colour(fraction: f32) -> rerun::Color {
    let f = fraction.clamp(0.0, 1.0);
    rerun::Color::from_rgb(
        byte(0.2 + 0.8 * f),
        byte(0.3 + 0.6 * f),
        byte(0.9 - 0.8 * f),
    )
}

/// Images of `w × h` rgb8 placed left to right.
fn side_by_side(images: &[Vec<u8>], w: usize, h: usize) -> Vec<u8> {
    let mut out = vec![0u8; images.len() * w * h * 3];
    let row = images.len() * w * 3;
    for (i, image) in images.iter().enumerate() {
        for y in 0..h {
            let from = &image[y * w * 3..(y + 1) * w * 3];
            out[y * row + i * w * 3..y * row + (i + 1) * w * 3].copy_from_slice(from);
        }
    }
    out
}
