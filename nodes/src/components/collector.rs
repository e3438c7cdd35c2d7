//! The collector: pairs each camera image with the latest proprio (by stamp, within a
//! tolerance) and, once the next image arrives, with the command that was in effect until then;
//! validates everything and drops bad input with a count per reason.
//!
//! Two outputs per good image: a [`Frame`] at once (for the encoder, which must not wait), and
//! one image later the [`Transition`] for the trainer (its action is the command in effect
//! between this frame and the next, which is what the dynamics model must learn from).

use std::sync::Arc;

use autodidact_learn::{OdometryPose, Transition};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::components::image::{Fit, compressed_to_rgb8, to_rgb8};
use crate::components::stats::{DropCounter, DropReason};
use crate::msg::{ImuMsg, JointStateMsg, OdometryMsg, SensorMsg, TwistMsg};
use crate::runtime::clock::{Clock, secs_to_ns};

/// Which proprio signals make up the model's proprio vector, and their scales (each value is
/// divided by its scale so that typical values are about ±1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProprioConfig {
    /// Joints whose velocity is used, matched by name in JointState.
    pub joints: Vec<String>,
    /// rad/s (or m/s) per unit.
    pub joint_velocity_scale: f64,
    /// Use the IMU (yaw rate, planar specific force).
    pub use_imu: bool,
    /// rad/s per unit.
    pub gyro_scale: f64,
    /// m/s² per unit.
    pub accel_scale: f64,
    /// Use the odometry twist (forward speed, yaw rate).
    pub use_odometry: bool,
    /// m/s per unit.
    pub linear_scale: f64,
    /// rad/s per unit.
    pub angular_scale: f64,
}

impl Default for ProprioConfig {
    fn default() -> Self {
        Self {
            joints: autodidact_sim::WHEEL_JOINT_NAMES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
            joint_velocity_scale: 10.0,
            use_imu: true,
            gyro_scale: 2.0,
            accel_scale: 5.0,
            use_odometry: true,
            linear_scale: 0.5,
            angular_scale: 2.0,
        }
    }
}

impl CollectorConfig {
    /// Names of the proprio vector's entries, in order, for display.
    pub fn proprio_names(&self) -> Vec<String> {
        let p = &self.proprio;
        let mut names: Vec<String> = p
            .joints
            .iter()
            .map(|j| format!("joint_velocity/{j}"))
            .collect();
        if p.use_imu {
            names.extend(["imu/gyro_z", "imu/accel_x", "imu/accel_y"].map(String::from));
        }
        if p.use_odometry {
            names.extend(["odom/linear_x", "odom/angular_z"].map(String::from));
        }
        names
    }

    /// Checks every number, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        let p = &self.proprio;
        let positive = [
            (
                "collector.proprio.joint_velocity_scale",
                p.joint_velocity_scale,
            ),
            ("collector.proprio.gyro_scale", p.gyro_scale),
            ("collector.proprio.accel_scale", p.accel_scale),
            ("collector.proprio.linear_scale", p.linear_scale),
            ("collector.proprio.angular_scale", p.angular_scale),
            ("collector.proprio_tolerance_s", self.proprio_tolerance_s),
            ("collector.action_timeout_s", self.action_timeout_s),
            ("collector.episode_gap_s", self.episode_gap_s),
            ("collector.restart_after_s", self.restart_after_s),
            ("collector.max_future_s", self.max_future_s),
            ("collector.log_every_s", self.log_every_s),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0 && value <= 1e9) {
                return Err(NodeError::Setup(format!(
                    "{name} must be a finite number > 0, got {value}"
                )));
            }
        }
        if self.width == 0 || self.height == 0 || self.width > 8192 || self.height > 8192 {
            return Err(NodeError::Setup(format!(
                "collector.width/height must be in 1..=8192, got {}x{}",
                self.width, self.height
            )));
        }
        Ok(())
    }
}

impl CollectorConfig {
    /// Checks that `trainer`'s model takes what this collector makes: its image size and its
    /// proprio vector.
    pub fn check_model(&self, trainer: &autodidact_learn::TrainerConfig) -> Result<(), NodeError> {
        let image = &trainer.model.encoder.image;
        if (image.width, image.height) != (self.width as usize, self.height as usize) {
            return Err(NodeError::Setup(format!(
                "the model takes {}x{} images, the collector makes {}x{}",
                image.width, image.height, self.width, self.height
            )));
        }
        if trainer.model.encoder.proprio_dim != self.proprio.dim() {
            return Err(NodeError::Setup(format!(
                "the model takes {} proprio values, the collector makes {}",
                trainer.model.encoder.proprio_dim,
                self.proprio.dim()
            )));
        }
        Ok(())
    }
}

impl ProprioConfig {
    /// Length of the proprio vector.
    pub fn dim(&self) -> usize {
        self.joints.len() + if self.use_imu { 3 } else { 0 } + if self.use_odometry { 2 } else { 0 }
    }
}

/// Collector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Image width the model expects; images of any other size are brought to it (`fit`).
    pub width: u32,
    /// Image height the model expects.
    pub height: u32,
    /// How an image of another aspect ratio is brought to `width × height`: `crop` (the
    /// centre, the default), `stretch` or `pad`.
    pub fit: Fit,
    /// The proprio vector.
    pub proprio: ProprioConfig,
    /// Largest |image stamp − proprio stamp| for a pair, seconds.
    pub proprio_tolerance_s: f64,
    /// A command older than this (relative to the next image) counts as "stopped", seconds.
    pub action_timeout_s: f64,
    /// A gap between images longer than this starts a new episode, seconds.
    pub episode_gap_s: f64,
    /// A stamp this much older than its stream's newest means the source restarted (a
    /// restarted simulator, a bag played in a loop): every stream starts afresh and a new
    /// episode begins, seconds. Smaller steps back are dropped as `stamp_not_increasing`.
    pub restart_after_s: f64,
    /// Stamps further ahead of the node's clock than this are dropped as `stamp_in_future`,
    /// seconds (not checked while the clock reads 0: a `/clock` that has not ticked yet).
    pub max_future_s: f64,
    /// At most one log line per drop reason per this many seconds.
    pub log_every_s: f64,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            width: 64,
            height: 64,
            fit: Fit::default(),
            proprio: ProprioConfig::default(),
            proprio_tolerance_s: 0.1,
            action_timeout_s: 0.5,
            episode_gap_s: 1.0,
            restart_after_s: 1.0,
            max_future_s: 30.0,
            log_every_s: 5.0,
        }
    }
}

/// A validated camera frame with its proprio, ready to embed.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Stamp of the source image, nanoseconds.
    pub stamp_ns: u64,
    /// Episode (increases after a gap in the stream).
    pub episode: u64,
    /// `height × width × 3` bytes, rgb8.
    pub image: Arc<[u8]>,
    /// The proprio vector ([`ProprioConfig`]).
    pub proprio: Vec<f32>,
    /// The source image's `frame_id`, cut to [`MAX_FRAME_ID_BYTES`].
    pub frame_id: Arc<str>,
    /// The wheel odometry's pose (in its `odom` frame) at the image, when an odometry message
    /// within the proprio tolerance of it arrived (whether or not the proprio uses odometry).
    pub odometry: Option<OdometryPose>,
}

/// Commands kept to find the one in effect until a frame's successor was captured (at 100 Hz
/// commands, the last 0.3 s).
pub const COMMAND_HISTORY: usize = 32;

/// Longest `frame_id` carried over from a camera image into frames and embeddings, in bytes.
pub const MAX_FRAME_ID_BYTES: usize = 256;

/// `frame_id` cut to [`MAX_FRAME_ID_BYTES`] (at a character boundary).
fn bounded_frame_id(frame_id: &str) -> &str {
    let mut end = frame_id.len().min(MAX_FRAME_ID_BYTES);
    while !frame_id.is_char_boundary(end) {
        end -= 1;
    }
    &frame_id[..end]
}

/// What one message produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// A new frame, for the encoder.
    pub frame: Option<Frame>,
    /// The previous frame, completed with its action, for the trainer.
    pub transition: Option<Transition>,
}

/// Collector counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CollectorStats {
    /// Messages received.
    pub received: u64,
    /// Frames accepted.
    pub frames: u64,
    /// Transitions completed.
    pub transitions: u64,
    /// Frames whose command had timed out, paired with a stop.
    pub actions_defaulted: u64,
    /// Drops by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// Times a stream jumped back and every stream started afresh.
    pub restarts: u64,
    /// Episodes begun (a new one after a gap, a restart or the end of a bag).
    pub episodes: u64,
}

impl CollectorStats {
    /// Adds `other`'s counts to these (the totals of several robots).
    pub fn add(&mut self, other: &CollectorStats) {
        self.received += other.received;
        self.frames += other.frames;
        self.transitions += other.transitions;
        self.actions_defaulted += other.actions_defaulted;
        self.restarts += other.restarts;
        self.episodes += other.episodes;
        for (reason, count) in &other.dropped {
            *self.dropped.entry(reason.clone()).or_default() += count;
        }
    }
}

/// Pairs, validates and counts. Single-threaded; feed it messages in arrival order.
#[derive(Debug)]
pub struct Collector {
    config: CollectorConfig,
    clock: Arc<dyn Clock>,
    /// The robot its transitions are marked with ([`Transition::source`]).
    source: u32,
    drops: DropCounter,
    joints: Option<(u64, Vec<f64>)>,
    imu: Option<ImuMsg>,
    odometry: Option<OdometryMsg>,
    /// The newest commands (up to [`COMMAND_HISTORY`]), oldest first: an image arrives after
    /// the commands sent since its capture, so the one in effect until it is found by stamp.
    actions: std::collections::VecDeque<TwistMsg>,
    last_stamp: [Option<u64>; 5],
    pending: Option<Frame>,
    episode: u64,
    /// Episodes that have had a frame.
    episodes: u64,
    /// The episode of the newest frame.
    last_frame_episode: Option<u64>,
    received: u64,
    frames: u64,
    transitions: u64,
    actions_defaulted: u64,
    restarts: u64,
    /// The newest frame's `frame_id`, shared by the frames that follow while it stays the same.
    frame_id: Arc<str>,
}

impl Collector {
    /// A collector on `clock` (used for log throttling only; pairing uses message stamps).
    pub fn new(config: CollectorConfig, clock: Arc<dyn Clock>) -> Self {
        let drops = DropCounter::new("collector", secs_to_ns(config.log_every_s));
        Self {
            config,
            clock,
            source: 0,
            drops,
            joints: None,
            imu: None,
            odometry: None,
            actions: std::collections::VecDeque::with_capacity(COMMAND_HISTORY),
            last_stamp: [None; 5],
            pending: None,
            episode: 0,
            episodes: 0,
            last_frame_episode: None,
            received: 0,
            frames: 0,
            transitions: 0,
            actions_defaulted: 0,
            restarts: 0,
            frame_id: Arc::from(""),
        }
    }

    /// The same collector for robot `source` of a fleet: its transitions carry that source,
    /// so the replay buffer keeps its episodes apart from every other robot's.
    pub fn for_source(mut self, source: u32) -> Self {
        self.source = source;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> CollectorStats {
        CollectorStats {
            received: self.received,
            frames: self.frames,
            transitions: self.transitions,
            actions_defaulted: self.actions_defaulted,
            dropped: self.drops.snapshot(),
            restarts: self.restarts,
            episodes: self.episodes,
        }
    }

    /// Drops of one reason so far.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.count(reason)
    }

    /// Counts a drop that happened downstream (e.g. a full queue).
    pub fn record_drop(&mut self, reason: DropReason, what: &str) {
        self.drops.record(reason, self.clock.now_ns(), what);
    }

    /// Handles one message.
    pub fn on_message(&mut self, msg: &SensorMsg) -> Collected {
        self.received += 1;
        let stream = match msg {
            SensorMsg::Image(_) | SensorMsg::CompressedImage(_) => 0,
            SensorMsg::JointState(_) => 1,
            SensorMsg::Imu(_) => 2,
            SensorMsg::Odometry(_) => 3,
            SensorMsg::Action(_) => 4,
        };
        let stamp = msg.stamp_ns();
        // Commands are stamped on arrival (Twist has no header), so two may share a tick of a
        // coarse clock; every other stream must move strictly forward.
        let repeats_allowed = matches!(msg, SensorMsg::Action(_));
        let now = self.clock.now_ns();
        if now > 0 && stamp > now.saturating_add(secs_to_ns(self.config.max_future_s)) {
            self.drop_msg(DropReason::StampInFuture, msg);
            return Collected::default();
        }
        // The newest frame of a run that ended, completed, when a stream jumped far back.
        let mut flushed = None;
        if let Some(last) = self.last_stamp[stream] {
            if last.saturating_sub(stamp) > secs_to_ns(self.config.restart_after_s) {
                flushed = self.restart(msg, last, stamp);
            } else if stamp < last || (stamp == last && !repeats_allowed) {
                self.drop_msg(DropReason::StampNotIncreasing, msg);
                return Collected::default();
            }
        }
        let result = match msg {
            SensorMsg::Image(_) | SensorMsg::CompressedImage(_) => {
                let (width, height, fit) = (self.config.width, self.config.height, self.config.fit);
                let (rgb, frame_id) = match msg {
                    SensorMsg::CompressedImage(image) => (
                        compressed_to_rgb8(image, width, height, fit),
                        image.frame_id.as_str(),
                    ),
                    SensorMsg::Image(image) => {
                        (to_rgb8(image, width, height, fit), image.frame_id.as_str())
                    }
                    _ => return Collected::default(),
                };
                rgb.and_then(|rgb| self.on_image(stamp, rgb, frame_id))
            }
            SensorMsg::JointState(joints) => self.on_joints(joints).map(|()| Collected::default()),
            SensorMsg::Imu(imu) => finite(
                imu.angular_velocity
                    .iter()
                    .chain(&imu.linear_acceleration)
                    .chain(&imu.orientation),
            )
            .map(|()| {
                self.imu = Some(*imu);
                Collected::default()
            }),
            SensorMsg::Odometry(odometry) => finite(
                [
                    odometry.x,
                    odometry.y,
                    odometry.yaw,
                    odometry.linear_x,
                    odometry.angular_z,
                ]
                .iter(),
            )
            .map(|()| {
                self.odometry = Some(*odometry);
                Collected::default()
            }),
            SensorMsg::Action(twist) => {
                if twist.linear_x.is_finite() && twist.angular_z.is_finite() {
                    if self.actions.len() == COMMAND_HISTORY {
                        self.actions.pop_front();
                    }
                    self.actions.push_back(*twist);
                    Ok(Collected::default())
                } else {
                    Err(DropReason::NonFinite)
                }
            }
        };
        match result {
            Ok(mut collected) => {
                self.last_stamp[stream] = Some(stamp);
                // After a restart there is no pending frame, so no other transition.
                collected.transition = collected.transition.or(flushed);
                collected
            }
            Err(reason) => {
                self.drop_msg(reason, msg);
                Collected {
                    frame: None,
                    transition: flushed,
                }
            }
        }
    }

    /// A stream jumped from `last` back to `stamp`: the source restarted. Every stream starts
    /// afresh, the pending frame is completed as at the end of a stream, and the next frame
    /// begins a new episode.
    fn restart(&mut self, msg: &SensorMsg, last: u64, stamp: u64) -> Option<Transition> {
        self.restarts += 1;
        tracing::warn!(
            stream = stream_name(msg),
            from_s = last as f64 * 1e-9,
            to_s = stamp as f64 * 1e-9,
            restarts = self.restarts,
            "stamps jumped back: the source restarted; a new episode begins"
        );
        self.end_episode()
    }

    /// Ends the episode on purpose (a bag ended, another begins): the pending frame is
    /// completed, every stream starts afresh and the next frame begins a new episode.
    pub fn end_episode(&mut self) -> Option<Transition> {
        let flushed = self.flush();
        self.last_stamp = [None; 5];
        self.joints = None;
        self.imu = None;
        self.odometry = None;
        self.actions.clear();
        self.episode += 1;
        flushed
    }

    /// Completes the pending frame (end of stream): its action is the latest command if it has
    /// not timed out.
    pub fn flush(&mut self) -> Option<Transition> {
        let pending = self.pending.take()?;
        let until = pending
            .stamp_ns
            .saturating_add(secs_to_ns(self.config.action_timeout_s));
        Some(self.complete(pending, until))
    }

    fn drop_msg(&mut self, reason: DropReason, msg: &SensorMsg) {
        self.drops
            .record(reason, self.clock.now_ns(), stream_name(msg));
    }

    fn on_joints(&mut self, msg: &JointStateMsg) -> Result<(), DropReason> {
        if msg.velocity.len() != msg.name.len() {
            return Err(DropReason::MissingJoint);
        }
        let mut velocities = Vec::with_capacity(self.config.proprio.joints.len());
        for joint in &self.config.proprio.joints {
            let index = msg
                .name
                .iter()
                .position(|n| n == joint)
                .ok_or(DropReason::MissingJoint)?;
            velocities.push(msg.velocity[index]);
        }
        finite(velocities.iter().chain(&msg.position).chain(&msg.effort))?;
        self.joints = Some((msg.stamp_ns, velocities));
        Ok(())
    }

    /// The odometry pose at `stamp`, when the latest odometry is within the proprio tolerance.
    fn odometry_at(&self, stamp: u64) -> Option<OdometryPose> {
        let tolerance = secs_to_ns(self.config.proprio_tolerance_s);
        self.odometry
            .filter(|o| o.stamp_ns.abs_diff(stamp) <= tolerance)
            .map(|o| OdometryPose::new(o.x, o.y, o.yaw))
    }

    fn proprio_at(&self, stamp: u64) -> Result<Vec<f32>, DropReason> {
        let p = &self.config.proprio;
        let tolerance = secs_to_ns(self.config.proprio_tolerance_s);
        let fresh = |source: u64| source.abs_diff(stamp) <= tolerance;
        let mut out = Vec::with_capacity(p.dim());
        if !p.joints.is_empty() {
            match &self.joints {
                Some((at, velocities)) if fresh(*at) => out.extend(
                    velocities
                        .iter()
                        .map(|v| (v / p.joint_velocity_scale) as f32),
                ),
                _ => return Err(DropReason::ProprioStale),
            }
        }
        if p.use_imu {
            match &self.imu {
                Some(imu) if fresh(imu.stamp_ns) => out.extend([
                    (imu.angular_velocity[2] / p.gyro_scale) as f32,
                    (imu.linear_acceleration[0] / p.accel_scale) as f32,
                    (imu.linear_acceleration[1] / p.accel_scale) as f32,
                ]),
                _ => return Err(DropReason::ProprioStale),
            }
        }
        if p.use_odometry {
            match &self.odometry {
                Some(odometry) if fresh(odometry.stamp_ns) => out.extend([
                    (odometry.linear_x / p.linear_scale) as f32,
                    (odometry.angular_z / p.angular_scale) as f32,
                ]),
                _ => return Err(DropReason::ProprioStale),
            }
        }
        if out.iter().all(|v| v.is_finite()) {
            Ok(out)
        } else {
            Err(DropReason::NonFinite)
        }
    }

    fn on_image(
        &mut self,
        stamp: u64,
        rgb: Vec<u8>,
        frame_id: &str,
    ) -> Result<Collected, DropReason> {
        let proprio = self.proprio_at(stamp)?;
        let frame_id = bounded_frame_id(frame_id);
        if *self.frame_id != *frame_id {
            self.frame_id = Arc::from(frame_id);
        }
        let gap = self
            .pending
            .as_ref()
            .is_some_and(|p| stamp - p.stamp_ns > secs_to_ns(self.config.episode_gap_s));
        let transition = self.pending.take().map(|previous| {
            // The previous frame's command is the one in effect until this image.
            self.complete(previous, stamp)
        });
        if gap {
            self.episode += 1;
        }
        // The first frame of an episode begins it (the episode number also moves on when an
        // episode is ended with no frame after it).
        if self.last_frame_episode != Some(self.episode) {
            self.episodes += 1;
            self.last_frame_episode = Some(self.episode);
        }
        let frame = Frame {
            stamp_ns: stamp,
            episode: self.episode,
            image: Arc::from(rgb),
            proprio,
            frame_id: Arc::clone(&self.frame_id),
            odometry: self.odometry_at(stamp),
        };
        self.frames += 1;
        self.pending = Some(frame.clone());
        Ok(Collected {
            frame: Some(frame),
            transition,
        })
    }

    fn complete(&mut self, frame: Frame, until_ns: u64) -> Transition {
        let timeout = secs_to_ns(self.config.action_timeout_s);
        // The newest command sent before the next frame was captured (a later one may already
        // be here: images travel slower than commands).
        let in_effect = self
            .actions
            .iter()
            .rev()
            .find(|twist| twist.stamp_ns <= until_ns)
            .copied();
        let action = match in_effect {
            Some(twist) if until_ns - twist.stamp_ns <= timeout => {
                [twist.linear_x, twist.angular_z]
            }
            _ => {
                self.actions_defaulted += 1;
                [0.0, 0.0]
            }
        };
        self.transitions += 1;
        Transition {
            source: self.source,
            episode: frame.episode,
            frame_stamp_ns: frame.stamp_ns,
            image: frame.image,
            proprio: frame.proprio,
            action,
            odometry: frame.odometry,
        }
    }
}

/// What a message is, for logs.
fn stream_name(msg: &SensorMsg) -> &'static str {
    match msg {
        SensorMsg::Image(_) | SensorMsg::CompressedImage(_) => "image",
        SensorMsg::JointState(_) => "joint state",
        SensorMsg::Imu(_) => "imu",
        SensorMsg::Odometry(_) => "odometry",
        SensorMsg::Action(_) => "command",
    }
}

fn finite<'a>(mut values: impl Iterator<Item = &'a f64>) -> Result<(), DropReason> {
    if values.all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(DropReason::NonFinite)
    }
}
