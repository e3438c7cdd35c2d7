//! The viz node: everything the graph does, logged to rerun under one entity tree
//! (`camera/rgb`, `proprio/*`, `train/loss/*`, `train/health/*`, `embedding/*`,
//! `predict/*`, `robot/*`, `world/*`, `planner/*`) on the timelines `sim_time` and `train_step`, with a
//! blueprint so the viewer opens on a useful layout.
//!
//! The node only ever receives through a bounded queue that senders fill with `try_send`, so a
//! slow or vanished viewer costs dropped telemetry (counted), never a blocked graph. A live
//! viewer is probed before connecting and every few seconds after; when it goes away the node
//! stops sending to it, so memory stays bounded.

mod logger;
mod planner;
mod projection;

pub use projection::pca3;

use logger::Logger;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use autodidact_learn::Preview;
use autodidact_sim::GroundTruth;
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
    /// Where the relative-pose head reads the goal from the robot, while the planner turns to
    /// the goal's heading or watches it (`[planner.align]`).
    PlannerGoalSeen {
        /// Stamp of the frame it was read from, ns.
        stamp_ns: u64,
        /// The goal's heading relative to the robot's, degrees (left positive).
        heading_deg: f64,
        /// The goal's distance from the robot, metres, as the head reads it.
        distance_m: f64,
        /// The robot turned in place for this frame (the MPC did not drive).
        turning: bool,
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

/// What a recording's layout has views for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Robots whose camera, proprio and world are shown (a tab each when several).
    pub robots: usize,
    /// The recording's node plans: a view of where the relative-pose head reads the goal and
    /// when the robot turned to it (`planner/goal_seen/*`).
    pub planner: bool,
}

impl Layout {
    /// `robots` robots, no planner.
    pub fn robots(robots: usize) -> Self {
        Self {
            robots,
            planner: false,
        }
    }
}

/// The layout the viewer opens on: with several robots, the camera, proprio and world views
/// have one tab per robot; a planner's recording adds the view of what its relative-pose head
/// reads of the goal.
pub fn blueprint(layout: Layout) -> Blueprint {
    let robots = layout.robots;
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
                format!("/{prefix}planner/memory/**"),
                format!("/{prefix}planner/route"),
                format!("/{prefix}planner/path"),
            ])
            .into()
    });
    let predicted = Spatial2DView::new("predicted vs actual").with_origin("predict");
    let projection = Spatial3DView::new("embedding (PCA)").with_origin("embedding/projection");
    let losses = TimeSeriesView::new("losses").with_origin("train/loss");
    let health = TimeSeriesView::new("health").with_origin("train/health");
    let mut middle: Vec<ContainerLike> = vec![losses.into(), health.into()];
    if layout.planner {
        middle.push(
            TimeSeriesView::new("goal seen by the relative-pose head")
                .with_origin("planner/goal_seen")
                .into(),
        );
    }
    Blueprint::new(Horizontal::new([
        Vertical::new([camera, predicted.into(), proprio]).into(),
        Vertical::new(middle).into(),
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

/// Opens the recording for `config.sink`, laid out as `layout` says. A `Connect` sink is
/// probed first: an unreachable viewer is an error here, not a silent, growing buffer.
pub fn open_recording(
    config: &VizConfig,
    layout: Layout,
) -> Result<(rerun::RecordingStream, Option<String>), NodeError> {
    let builder =
        rerun::RecordingStreamBuilder::new("autodidact").with_blueprint(blueprint(layout));
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

/// The longest a look at the recording file's size waits for what was logged to be written.
const FLUSH_BEFORE_SIZE: Duration = Duration::from_secs(2);

/// The size of the recording file at `path` once what was logged to `recording` so far is
/// written (0 where it cannot be read). The stream batches and writes on threads of its own:
/// under load the file lagged what was logged by more than a megabyte.
fn written_size(recording: &rerun::RecordingStream, path: &std::path::Path) -> u64 {
    if let Err(error) = recording.flush_with_timeout(FLUSH_BEFORE_SIZE) {
        tracing::debug!(%error, "the recording was not flushed before its size was read");
    }
    std::fs::metadata(path).map_or(0, |m| m.len())
}

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
            && written_size(&logger.recording, path) >= max_file_bytes
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
