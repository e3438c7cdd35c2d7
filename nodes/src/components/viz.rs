//! The viz node: everything the graph does, logged to rerun under one entity tree
//! (`camera/rgb`, `proprio/*`, `train/loss/*`, `train/health/*`, `embedding/*`,
//! `predict/*`, `robot/*`, `world/*`, `planner/*`) on the timelines `sim_time` and `train_step`, with a
//! blueprint so the viewer opens on a useful layout.
//!
//! The node only ever receives through a bounded queue that senders fill with `try_send`, so a
//! slow or vanished viewer costs dropped telemetry (counted), never a blocked graph. A live
//! viewer is probed before connecting and every few seconds after; when it goes away the node
//! stops sending to it, so memory stays bounded.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use autodidact_learn::Preview;
use autodidact_sim::GroundTruth;
use nalgebra::DMatrix;
use rerun::blueprint::components::PlayState;
use rerun::blueprint::{
    Blueprint, ContainerLike, Horizontal, Spatial2DView, Spatial3DView, Tabs, TimePanel,
    TimeSeriesView, Vertical,
};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::components::planner::MemoryMap;
use crate::msg::{Embedding, HealthMsg, TrainerStatus};

/// The log filter when `RUST_LOG` is not set: `info`, without rerun's warning on every run that
/// a recording file has no footer, which is this crate's default ([`VizConfig::rrd_footer`]).
pub const DEFAULT_LOG_FILTER: &str = "info,re_log_encoding::rrd::file_sink=error";

/// Where telemetry goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VizSink {
    /// An `.rrd` file (the default).
    File(PathBuf),
    /// Spawn a viewer; without a display, record to this file instead.
    Spawn(PathBuf),
    /// Stream to a running viewer (`rerun+http://host:port/proxy`).
    Connect(String),
    /// No telemetry.
    Off,
}

/// Viz settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VizConfig {
    /// Where telemetry goes.
    pub sink: VizSink,
    /// Recompute the embedding projection after this many new embeddings.
    pub projection_every: usize,
    /// Newest embeddings in the projection.
    pub projection_window: usize,
    /// Log every n-th camera frame.
    pub camera_every: u64,
    /// Events waiting for the viz node before new ones are dropped (counted).
    pub queue: usize,
    /// How long to wait when probing a live viewer.
    pub connect_timeout_s: f64,
    /// Address a spawned viewer listens on. Loopback by default: the recording holds camera
    /// frames and ground truth, which other hosts should not see unless asked for
    /// (`"0.0.0.0"` or `"::"` for every interface).
    pub viewer_bind: std::net::IpAddr,
    /// A recording file stops growing at about this many MiB: later events are not logged
    /// (counted in `skipped_file_full`, warned once). A 64×64 camera at 60 Hz writes about
    /// 2.5 GiB an hour; `camera_every` thins it.
    pub max_file_mib: u64,
    /// Write rerun's RRD footer (a manifest of every chunk, for random access) when a recording
    /// file is closed. Off by default: rerun keeps that manifest in memory for the whole run,
    /// which grows the node by about 11 MiB a minute at 60 Hz (`bench soak`). Viewers read the
    /// file without it; `rerun rrd optimize` adds one afterwards.
    pub rrd_footer: bool,
}

impl Default for VizConfig {
    fn default() -> Self {
        Self {
            sink: VizSink::File(PathBuf::from("autodidact.rrd")),
            projection_every: 100,
            projection_window: 600,
            camera_every: 1,
            queue: 1024,
            connect_timeout_s: 1.0,
            viewer_bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            max_file_mib: 4096,
            rrd_footer: false,
        }
    }
}

impl VizConfig {
    /// Checks the sizes and times, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        let sizes = [
            ("viz.queue", self.queue, 1, 1 << 20),
            ("viz.projection_window", self.projection_window, 4, 100_000),
            ("viz.projection_every", self.projection_every, 1, 1 << 30),
        ];
        for (name, value, min, max) in sizes {
            if !(min..=max).contains(&value) {
                return Err(NodeError::Setup(format!(
                    "{name} must be in {min}..={max}, got {value}"
                )));
            }
        }
        if self.max_file_mib == 0 {
            return Err(NodeError::Setup("viz.max_file_mib must be ≥ 1".into()));
        }
        if self.camera_every == 0 {
            return Err(NodeError::Setup("viz.camera_every must be ≥ 1".into()));
        }
        if !(self.connect_timeout_s.is_finite()
            && self.connect_timeout_s > 0.0
            && self.connect_timeout_s <= 60.0)
        {
            return Err(NodeError::Setup(format!(
                "viz.connect_timeout_s must be in (0, 60] s, got {}",
                self.connect_timeout_s
            )));
        }
        Ok(())
    }
}

/// How a viewer is spawned: listening on `config.viewer_bind` only.
fn spawn_options(config: &VizConfig) -> rerun::SpawnOptions {
    rerun::SpawnOptions {
        extra_args: vec![format!("--bind={}", config.viewer_bind)],
        ..rerun::SpawnOptions::default()
    }
}

/// Robot positions in the logged trajectory (100 s at 20 Hz): each re-log stays bounded.
pub const TRAJECTORY_POINTS: usize = 2000;

/// What the viz node logs.
#[derive(Debug, Clone)]
pub enum VizEvent {
    /// A camera frame with the proprio vector the model saw.
    Camera {
        /// The robot it came from (0 for a single robot; see [`robot_prefix`]).
        robot: usize,
        /// Image stamp, ns.
        stamp_ns: u64,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// rgb8 bytes.
        rgb: std::sync::Arc<[u8]>,
        /// Named proprio values.
        proprio: Vec<(String, f32)>,
    },
    /// Simulator ground truth (for display only; never reaches a model).
    Truth {
        /// The robot whose world it is.
        robot: usize,
        /// The truth.
        truth: Box<GroundTruth>,
    },
    /// Trainer status.
    Status(TrainerStatus),
    /// Embedding health.
    Health(HealthMsg),
    /// An embedding.
    Embedding(Embedding),
    /// Decoded prediction vs reality.
    Preview(Box<Preview>),
    /// The planner's memory graph at its places' odometry poses, each time it is built.
    PlannerMemory {
        /// Stamp of the frame it was built for, ns.
        stamp_ns: u64,
        /// The graph.
        map: Box<MemoryMap>,
    },
    /// The planner's route through its memory at its places' odometry poses, from the robot's
    /// place to the goal's.
    PlannerRoute {
        /// Stamp of the frame it was planned for, ns.
        stamp_ns: u64,
        /// `[x, y]` in the `odom` frame, metres.
        route: Vec<[f64; 2]>,
    },
    /// The path the planner follows along its route by odometry, when it lays one out anew
    /// or stops following one.
    PlannerPath {
        /// Stamp of the frame it was laid out (or given up) for, ns.
        stamp_ns: u64,
        /// `[x, y]` in the robot's `odom` frame, metres; empty: it follows none any more.
        path: Vec<[f64; 2]>,
    },
}

/// What the viz node did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VizStats {
    /// Events logged.
    pub logged: u64,
    /// Events not logged because the live viewer went away.
    pub skipped_viewer_gone: u64,
    /// Events not logged because the recording file reached `max_file_mib`.
    #[serde(default)]
    pub skipped_file_full: u64,
    /// Where the recording went (file path or URL), if anywhere.
    pub destination: Option<String>,
}

/// Where robot `robot`'s camera, proprio, pose and world are logged: at the root for the first
/// (or only) robot (`camera/rgb`, `robot/pose`, `world/…`), under `robots/robotN/` for the
/// others of a fleet (`robots/robot2/camera/rgb`, …).
pub fn robot_prefix(robot: usize) -> String {
    if robot == 0 {
        String::new()
    } else {
        format!("robots/robot{}/", robot + 1)
    }
}

/// One view per robot: the single view itself for one robot (named `name`), tabs named
/// `"{name} robotK"` for several; `view` makes robot k's view from its name and entity prefix
/// ([`robot_prefix`]).
fn per_robot(
    robots: usize,
    name: &str,
    view: impl Fn(String, String) -> ContainerLike,
) -> ContainerLike {
    if robots <= 1 {
        return view(name.to_owned(), String::new());
    }
    let views =
        (0..robots).map(|robot| view(format!("{name} robot{}", robot + 1), robot_prefix(robot)));
    Tabs::new(views).into()
}

/// The layout the viewer opens on, for `robots` robots: with several, the camera, proprio and
/// world views have one tab per robot.
pub fn blueprint(robots: usize) -> Blueprint {
    let camera = per_robot(robots, "camera", |name, prefix| {
        Spatial2DView::new(name)
            .with_origin(format!("/{prefix}camera"))
            .into()
    });
    let proprio = per_robot(robots, "proprio", |name, prefix| {
        TimeSeriesView::new(name)
            .with_origin(format!("/{prefix}proprio"))
            .into()
    });
    let world = per_robot(robots, "world", |name, prefix| {
        Spatial3DView::new(name)
            .with_origin("/")
            .with_contents([
                format!("/{prefix}world/**"),
                format!("/{prefix}robot/**"),
                format!("/{prefix}planner/**"),
            ])
            .into()
    });
    let predicted = Spatial2DView::new("predicted vs actual").with_origin("predict");
    let projection = Spatial3DView::new("embedding (PCA)").with_origin("embedding/projection");
    let losses = TimeSeriesView::new("losses").with_origin("train/loss");
    let health = TimeSeriesView::new("health").with_origin("train/health");
    Blueprint::new(Horizontal::new([
        Vertical::new([camera, predicted.into(), proprio]).into(),
        Vertical::new([losses.into(), health.into()]).into(),
        Vertical::new([world, projection.into()]).into(),
    ]))
    // A finished recording opens at its end, where the model is trained and every panel has
    // data, rather than at its first frame; a live one follows what arrives.
    .with_time_panel(
        TimePanel::new()
            .with_timeline("sim_time")
            .with_play_state(PlayState::Following),
    )
}

/// Socket address of a `rerun+http://host:port/...` URL.
pub fn viewer_address(url: &str) -> Result<SocketAddr, NodeError> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| NodeError::Viewer(format!("cannot read host:port from {url:?}")))
}

fn reachable(address: &SocketAddr, timeout: Duration) -> bool {
    TcpStream::connect_timeout(address, timeout).is_ok()
}

fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// Opens the recording for `config.sink`, laid out for `robots` robots. A `Connect` sink is
/// probed first: an unreachable viewer is an error here, not a silent, growing buffer.
pub fn open_recording(
    config: &VizConfig,
    robots: usize,
) -> Result<(rerun::RecordingStream, Option<String>), NodeError> {
    let builder =
        rerun::RecordingStreamBuilder::new("autodidact").with_blueprint(blueprint(robots));
    let rerun_error = |e: rerun::RecordingStreamError| NodeError::Viewer(e.to_string());
    match &config.sink {
        VizSink::File(path) => {
            let stream = save(builder, path, config)?;
            Ok((stream, Some(path.display().to_string())))
        }
        VizSink::Spawn(fallback) => {
            if has_display() {
                Ok((
                    builder
                        .spawn_opts(&spawn_options(config))
                        .map_err(rerun_error)?,
                    Some("spawned viewer".into()),
                ))
            } else {
                tracing::warn!(
                    path = %fallback.display(),
                    "no display for a viewer: recording to a file instead (open it with `rerun FILE`)"
                );
                let stream = save(builder, fallback, config)?;
                Ok((stream, Some(fallback.display().to_string())))
            }
        }
        VizSink::Connect(url) => {
            let address = viewer_address(url)?;
            let timeout = Duration::from_secs_f64(config.connect_timeout_s.max(0.01));
            if !reachable(&address, timeout) {
                return Err(NodeError::Viewer(format!(
                    "no rerun viewer reachable at {url} (start one with `rerun --bind 127.0.0.1`, or record to a file)"
                )));
            }
            let stream = builder
                .connect_grpc_opts(url.clone())
                .map_err(rerun_error)?;
            Ok((stream, Some(url.clone())))
        }
        VizSink::Off => Ok((rerun::RecordingStream::disabled(), None)),
    }
}

/// A recording to the file at `path`, with or without rerun's footer
/// ([`VizConfig::rrd_footer`]).
fn save(
    builder: rerun::RecordingStreamBuilder,
    path: &std::path::Path,
    config: &VizConfig,
) -> Result<rerun::RecordingStream, NodeError> {
    let options = rerun::sink::FileSinkOptions {
        write_footer: config.rrd_footer,
    };
    let sink = rerun::sink::FileSink::with_options(path, options)
        .map_err(|e| NodeError::Viewer(format!("recording to {}: {e}", path.display())))?;
    builder
        .set_sinks((sink,))
        .map_err(|e| NodeError::Viewer(e.to_string()))
}

/// Events logged between two looks at the recording file's size.
const FILE_CHECK_EVERY: u64 = 64;

/// Logs events from `inbox` until it closes (or, for a file, until it reaches
/// [`VizConfig::max_file_mib`]).
pub fn run_viz(
    config: &VizConfig,
    recording: rerun::RecordingStream,
    destination: Option<String>,
    inbox: Receiver<VizEvent>,
) -> VizStats {
    let live = match &config.sink {
        VizSink::Connect(url) => viewer_address(url).ok(),
        _ => None,
    };
    let mut logger = Logger::new(config, recording);
    let mut stats = VizStats {
        destination,
        ..VizStats::default()
    };
    let mut viewer_gone = false;
    // A recording that goes to a file: its size is looked at every FILE_CHECK_EVERY events.
    let file = match (&config.sink, &stats.destination) {
        (VizSink::File(path) | VizSink::Spawn(path), Some(to))
            if *to == path.display().to_string() =>
        {
            Some(path.clone())
        }
        _ => None,
    };
    let max_file_bytes = config.max_file_mib.saturating_mul(1 << 20);
    let mut file_full = false;
    let mut last_probe = Instant::now();
    let probe_timeout = Duration::from_secs_f64(config.connect_timeout_s.max(0.01));
    for event in inbox {
        if let Some(address) = &live
            && !viewer_gone
            && last_probe.elapsed() > Duration::from_secs(2)
        {
            last_probe = Instant::now();
            if !reachable(address, probe_timeout) {
                viewer_gone = true;
                tracing::warn!("the rerun viewer went away: telemetry is no longer sent");
            }
        }
        if viewer_gone {
            stats.skipped_viewer_gone += 1;
            continue;
        }
        if let Some(path) = &file
            && !file_full
            && stats.logged.is_multiple_of(FILE_CHECK_EVERY)
            && std::fs::metadata(path).is_ok_and(|m| m.len() >= max_file_bytes)
        {
            file_full = true;
            tracing::warn!(
                path = %path.display(),
                max_file_mib = config.max_file_mib,
                "the recording reached viz.max_file_mib: nothing more is logged to it"
            );
        }
        if file_full {
            stats.skipped_file_full += 1;
            continue;
        }
        match logger.log(event) {
            Ok(()) => stats.logged += 1,
            Err(error) => tracing::warn!(%error, "telemetry not logged"),
        }
    }
    let recording = logger.recording;
    if viewer_gone {
        // A gRPC sink with no peer can block forever on flush or drop: let it go on its own
        // thread so the graph can finish.
        std::thread::spawn(move || drop(recording));
    } else if recording.is_enabled()
        && let Err(error) = recording.flush_with_timeout(Duration::from_secs(10))
    {
        tracing::warn!(%error, "recording not fully flushed");
    }
    stats
}

struct Logger {
    recording: rerun::RecordingStream,
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

type LogResult = Result<(), rerun::RecordingStreamError>;

impl Logger {
    fn new(config: &VizConfig, recording: rerun::RecordingStream) -> Self {
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

    fn at_sim_time(&self, stamp_ns: u64) {
        self.recording
            .set_duration_secs("sim_time", stamp_ns as f64 * 1e-9);
    }

    fn log(&mut self, event: VizEvent) -> LogResult {
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
            VizEvent::PlannerMemory { stamp_ns, map } => {
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
                    &rerun::LineStrips3D::new(map.edges.iter().filter_map(|[a, b]| {
                        Some([at(*map.nodes.get(*a)?), at(*map.nodes.get(*b)?)])
                    }))
                    .with_colors([rerun::Color::from_rgb(90, 110, 150)]),
                )?;
            }
            VizEvent::PlannerRoute { stamp_ns, route } => {
                rec.reset_time();
                self.at_sim_time(stamp_ns);
                rec.log(
                    "planner/route",
                    &planar_strip(&route, 0.01, [80, 220, 120], 0.015),
                )?;
            }
            VizEvent::PlannerPath { stamp_ns, path } => {
                rec.reset_time();
                self.at_sim_time(stamp_ns);
                if path.is_empty() {
                    rec.log("planner/path", &rerun::Clear::flat())?;
                } else {
                    rec.log(
                        "planner/path",
                        &planar_strip(&path, 0.02, [240, 160, 40], 0.012),
                    )?;
                }
            }
        }
        Ok(())
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

/// Projects rows onto their first three principal components (nalgebra eigen-decomposition of
/// the covariance), scaled to about ±1.
pub fn pca3(rows: &[(u64, Vec<f32>)]) -> Option<Vec<[f32; 3]>> {
    let n = rows.len();
    let dim = rows.first()?.1.len();
    if n < 4 || dim < 3 || rows.iter().any(|(_, r)| r.len() != dim) {
        return None;
    }
    let x = DMatrix::from_fn(n, dim, |r, c| rows[r].1[c] as f64);
    let mean = x.row_mean();
    let centred = DMatrix::from_fn(n, dim, |r, c| x[(r, c)] - mean[c]);
    let covariance = centred.transpose() * &centred / (n as f64 - 1.0);
    let eigen = covariance.symmetric_eigen();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|a, b| eigen.eigenvalues[*b].total_cmp(&eigen.eigenvalues[*a]));
    let components: Vec<_> = order[..3]
        .iter()
        .map(|&i| eigen.eigenvectors.column(i).into_owned())
        .collect();
    let projected: Vec<[f64; 3]> = (0..n)
        .map(|r| {
            let row = centred.row(r);
            [0, 1, 2].map(|k| row.dot(&components[k].transpose()))
        })
        .collect();
    let scale = projected
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    Some(
        projected
            .iter()
            .map(|p| p.map(|v| (v / scale) as f32))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_viewer_listens_on_loopback_unless_asked() {
        let options = spawn_options(&VizConfig::default());
        assert_eq!(options.extra_args, ["--bind=127.0.0.1"]);
        let everywhere = VizConfig {
            viewer_bind: "::".parse().expect("an address"),
            ..VizConfig::default()
        };
        assert_eq!(spawn_options(&everywhere).extra_args, ["--bind=::"]);
    }
}
