//! The sim node: steps the simulator, publishes what a robot's drivers would (camera image,
//! joint states, IMU, odometry, the command it drove with) plus ground truth for display, and
//! drives the sim clock (like `/clock` with `use_sim_time`). Optionally paced to wall time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use autodidact_sim::{
    Action, ExplorationConfig, ExplorationPolicy, GroundTruth, Observation, Sim, SimConfig,
};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::msg::{ImageMsg, ImuMsg, JointStateMsg, OdometryMsg, SensorMsg, TwistMsg};
use crate::runtime::clock::{Clock, ManualClock, secs_to_ns};

/// Sim node settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimNodeConfig {
    /// The world.
    pub sim: SimConfig,
    /// The exploration policy that drives the robot.
    pub exploration: ExplorationConfig,
    /// Seed of the first episode (episode `k` uses `seed + k`, wrapping).
    pub seed: u64,
    /// Sim seconds per wall second (0: as fast as possible).
    pub realtime_factor: f64,
    /// Steps per episode before the world is reset (0: one episode).
    pub episode_steps: u64,
}

impl Default for SimNodeConfig {
    fn default() -> Self {
        Self {
            sim: SimConfig::default(),
            exploration: ExplorationConfig::default(),
            seed: 0,
            realtime_factor: 1.0,
            episode_steps: 0,
        }
    }
}

/// Slowest pacing the sim node takes (a thousand wall seconds per sim second).
pub const MIN_REALTIME_FACTOR: f64 = 1e-3;
/// Fastest pacing it takes (beyond it, 0 — unpaced — is what is meant).
pub const MAX_REALTIME_FACTOR: f64 = 1e6;

impl SimNodeConfig {
    /// Checks the world and the pacing, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.sim.validate()?;
        let factor = self.realtime_factor;
        if !(factor == 0.0 || (MIN_REALTIME_FACTOR..=MAX_REALTIME_FACTOR).contains(&factor)) {
            return Err(NodeError::Setup(format!(
                "realtime_factor must be 0 (as fast as possible) or in \
                 {MIN_REALTIME_FACTOR}..={MAX_REALTIME_FACTOR}, got {factor}"
            )));
        }
        Ok(())
    }
}

/// One control step's output.
#[derive(Debug, Clone)]
pub struct SimTick {
    /// Joint states, IMU, odometry, image, then the command chosen for this step (a camera
    /// frame arrives after the proprio of its time, as on most robots).
    pub messages: Vec<SensorMsg>,
    /// Ground truth at the image's time (display and evaluation only).
    pub truth: GroundTruth,
}

/// Sim node counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimNodeStats {
    /// Control steps run.
    pub steps: u64,
    /// Episodes started.
    pub episodes: u64,
    /// Seconds spent waiting to keep pace with wall time.
    pub paced_wait_s: f64,
}

/// Pause between episodes on the published clock, so the collector sees a gap.
const EPISODE_GAP_NS: u64 = 2_000_000_000;

/// The messages a robot's drivers would publish for `observation`, stamped `stamp_ns`: proprio
/// first, then the image.
pub fn sensor_messages(observation: &Observation, stamp_ns: u64) -> Vec<SensorMsg> {
    let frame = &observation.frame;
    let joints = &observation.joints;
    let imu = &observation.imu;
    let odom = &observation.odom;
    vec![
        SensorMsg::JointState(JointStateMsg {
            stamp_ns,
            name: joints.name.clone(),
            position: joints.position.clone(),
            velocity: joints.velocity.clone(),
            effort: joints.effort.clone(),
        }),
        SensorMsg::Imu(ImuMsg {
            stamp_ns,
            orientation: imu.orientation,
            angular_velocity: imu.angular_velocity,
            linear_acceleration: imu.linear_acceleration,
        }),
        SensorMsg::Odometry(OdometryMsg {
            stamp_ns,
            x: odom.x,
            y: odom.y,
            yaw: odom.yaw,
            linear_x: odom.linear_x,
            angular_z: odom.angular_z,
        }),
        SensorMsg::Image(ImageMsg::rgb8(
            stamp_ns,
            frame.width,
            frame.height,
            frame.rgb.clone().into(),
        )),
    ]
}

/// Runs `steps` control steps (or until `stop`), publishing every tick. `sim_clock` follows the
/// published stamps; `wall` paces the loop when `realtime_factor > 0`.
pub fn run_sim(
    config: &SimNodeConfig,
    steps: u64,
    stop: &AtomicBool,
    sim_clock: &ManualClock,
    wall: &dyn Clock,
    publish: impl FnMut(SimTick),
) -> Result<SimNodeStats, NodeError> {
    run_sim_commanded(config, steps, stop, sim_clock, wall, |_| None, publish)
}

/// Like [`run_sim`], but `command(stamp_ns)` is asked first at every step: `Some(action)` drives
/// the robot with it (an external controller, e.g. ROS `cmd_vel`), `None` lets the exploration
/// policy drive. The action driven with is what the tick reports as its command.
pub fn run_sim_commanded(
    config: &SimNodeConfig,
    steps: u64,
    stop: &AtomicBool,
    sim_clock: &ManualClock,
    wall: &dyn Clock,
    mut command: impl FnMut(u64) -> Option<Action>,
    mut publish: impl FnMut(SimTick),
) -> Result<SimNodeStats, NodeError> {
    let mut sim = Sim::new(&config.sim)?;
    let mut observation = sim.reset(config.seed)?;
    let mut policy = ExplorationPolicy::new(config.exploration.clone(), config.seed);
    let period = config.sim.control_period_s as f32;
    let mut stats = SimNodeStats {
        episodes: 1,
        ..SimNodeStats::default()
    };
    // Published stamps keep increasing across resets (the sim restarts its own clock).
    let mut offset_ns = 0u64;
    let mut episode_step = 0u64;
    let wall_start = wall.now_ns();
    let sim_start = observation.stamp.nanos;
    for _ in 0..steps {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if config.episode_steps > 0 && episode_step == config.episode_steps {
            let last = offset_ns + observation.stamp.nanos;
            let seed = config.seed.wrapping_add(stats.episodes);
            observation = sim.reset(seed)?;
            policy = ExplorationPolicy::new(config.exploration.clone(), seed);
            offset_ns = last + EPISODE_GAP_NS - observation.stamp.nanos.min(last);
            stats.episodes += 1;
            episode_step = 0;
        }
        let stamp_ns = offset_ns + observation.stamp.nanos;
        if config.realtime_factor > 0.0 {
            let due = wall_start.saturating_add(secs_to_ns(
                (stamp_ns - sim_start) as f64 * 1e-9 / config.realtime_factor,
            ));
            let now = wall.now_ns();
            if due > now {
                let wait = Duration::from_nanos(due - now);
                stats.paced_wait_s += wait.as_secs_f64();
                std::thread::sleep(wait);
            }
        }
        sim_clock.set_ns(stamp_ns);
        let explored = policy.act(&observation, period);
        let action = command(stamp_ns).unwrap_or(explored);
        let mut messages = sensor_messages(&observation, stamp_ns);
        messages.push(SensorMsg::Action(TwistMsg {
            stamp_ns,
            linear_x: action.linear_x,
            angular_z: action.angular_z,
        }));
        let mut truth = sim.ground_truth();
        truth.stamp.nanos = stamp_ns;
        publish(SimTick { messages, truth });
        observation = sim.step(&action);
        stats.steps += 1;
        episode_step += 1;
    }
    Ok(stats)
}
