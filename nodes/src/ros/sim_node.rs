//! sim_node: the simulator as a ROS 2 robot. It publishes what a robot's drivers would —
//! `camera/image_raw` (rgb8), `camera/camera_info`, `joint_states`, `imu/data`, `odom` — and the
//! sim clock on `/clock`, so the other nodes can run with `use_sim_time`. It drives with its
//! exploration policy (publishing those commands on `cmd_vel`, as a teleop would) or with the
//! newest `cmd_vel` it receives (a planner's).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodidact_sim::Action;
use futures::StreamExt;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use r2r::QosProfile;
use r2r::geometry_msgs::msg::Twist;
use r2r::nav_msgs::msg::Odometry;
use r2r::rosgraph_msgs::msg::Clock as ClockMsg;
use r2r::sensor_msgs::msg::{CameraInfo, Image, Imu, JointState};

use super::convert::{SensorOut, camera_info, sensor_out, time};
use super::params::{Drive, SimParams};
use super::unwind::OnUnwind;
use super::{Started, lock, ros_error, start_node};
use crate::NodeError;
use crate::clock::{ManualClock, WallClock};
use crate::msg::SensorMsg;
use crate::sim::{SimNodeConfig, SimNodeStats, SimTick, run_sim_commanded};

/// Runs sim_node until `stop` (SIGINT), the configured number of steps, or a failure.
pub fn run_sim_node(node_name: &str, stop: &AtomicBool) -> Result<SimNodeStats, NodeError> {
    let Started {
        mut node,
        file,
        params,
        services,
        unsent_parameter_replies,
        // The sim publishes time; it does not follow it.
        clock: _,
    } = start_node(node_name, SimParams::from_file)?;
    let drive = params.drive()?;
    let config = SimNodeConfig {
        sim: file.sim.clone(),
        exploration: file.exploration.clone(),
        seed: u64::try_from(params.seed)
            .map_err(|_| NodeError::Setup(format!("seed must be ≥ 0, got {}", params.seed)))?,
        realtime_factor: params.realtime_factor.max(0.0),
        episode_steps: u64::try_from(params.episode_steps).unwrap_or(0),
    };
    config.sim.validate()?;
    let steps = match u64::try_from(params.steps) {
        Ok(0) | Err(_) => u64::MAX,
        Ok(steps) => steps,
    };

    let sensor = QosProfile::sensor_data();
    let image_pub = node
        .create_publisher::<Image>("camera/image_raw", sensor.clone())
        .map_err(ros_error)?;
    let info_pub = node
        .create_publisher::<CameraInfo>("camera/camera_info", sensor.clone())
        .map_err(ros_error)?;
    let joints_pub = node
        .create_publisher::<JointState>("joint_states", sensor.clone())
        .map_err(ros_error)?;
    let imu_pub = node
        .create_publisher::<Imu>("imu/data", sensor.clone())
        .map_err(ros_error)?;
    let odom_pub = node
        .create_publisher::<Odometry>("odom", sensor.clone())
        .map_err(ros_error)?;
    let clock_pub = params
        .publish_clock
        .then(|| node.create_publisher::<ClockMsg>("/clock", QosProfile::default().keep_last(1)))
        .transpose()
        .map_err(ros_error)?;
    let cmd_pub = match drive {
        Drive::Explore => Some(
            node.create_publisher::<Twist>("cmd_vel", QosProfile::default())
                .map_err(ros_error)?,
        ),
        Drive::CmdVel => None,
    };

    // The newest received command and when it arrived (wall time: a stalled planner stops
    // the robot whatever the sim clock does).
    let command: Arc<Mutex<Option<(Action, Instant)>>> = Arc::new(Mutex::new(None));
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let spawn_error = |e: futures::task::SpawnError| NodeError::Setup(format!("executor: {e}"));
    spawner.spawn_local(services).map_err(spawn_error)?;
    if drive == Drive::CmdVel {
        let commands = node
            .subscribe::<Twist>("cmd_vel", QosProfile::default())
            .map_err(ros_error)?;
        let latest = Arc::clone(&command);
        spawner
            .spawn_local(commands.for_each(move |twist| {
                let action = Action {
                    linear_x: twist.linear.x as f32,
                    angular_z: twist.angular.z as f32,
                };
                if action.linear_x.is_finite() && action.angular_z.is_finite() {
                    *lock(&latest) = Some((action, Instant::now()));
                } else {
                    tracing::warn!("non-finite cmd_vel ignored");
                }
                futures::future::ready(())
            }))
            .map_err(spawn_error)?;
    }

    let camera = config.sim.camera.clone();
    let frame_id = params.camera_frame_id.clone();
    let timeout = Duration::from_secs_f64(params.command_timeout_s.max(0.0));
    let sim_stop = AtomicBool::new(false);
    let (tick_tx, tick_rx) = sync_channel::<SimTick>(4);
    std::thread::scope(|scope| -> Result<SimNodeStats, NodeError> {
        // If this thread panics, the scope joins the sim thread first: stop it, and drop the
        // queue it may be blocked on (guard first, then the queue, as they unwind).
        let tick_rx = tick_rx;
        let _stop_sim = OnUnwind::new(|| sim_stop.store(true, Ordering::Relaxed));
        let sim_thread = std::thread::Builder::new()
            .name("sim".into())
            .spawn_scoped(scope, || {
                let (sim_clock, wall) = (ManualClock::new(), WallClock::new());
                let commanded = |_stamp_ns: u64| match drive {
                    Drive::Explore => None,
                    Drive::CmdVel => Some(match *lock(&command) {
                        Some((action, at)) if at.elapsed() <= timeout => action,
                        _ => Action {
                            linear_x: 0.0,
                            angular_z: 0.0,
                        },
                    }),
                };
                let result = run_sim_commanded(
                    &config,
                    steps,
                    &sim_stop,
                    &sim_clock,
                    &wall,
                    commanded,
                    |tick| {
                        if tick_tx.send(tick).is_err() {
                            sim_stop.store(true, Ordering::Relaxed);
                        }
                    },
                );
                drop(tick_tx);
                result
            })
            .map_err(|e| NodeError::Setup(format!("sim thread: {e}")))?;

        let mut published = 0u64;
        let publish_failed =
            |error: r2r::Error| tracing::warn!(%error, "sim message not published");
        loop {
            if stop.load(Ordering::Relaxed) {
                sim_stop.store(true, Ordering::Relaxed);
            }
            node.spin_once(Duration::from_millis(1));
            pool.run_until_stalled();
            let tick = match tick_rx.recv_timeout(Duration::from_millis(5)) {
                Ok(tick) => tick,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let stamp_ns = tick.truth.stamp.nanos;
            if let Some(clock_pub) = &clock_pub {
                clock_pub
                    .publish(&ClockMsg {
                        clock: time(stamp_ns),
                    })
                    .unwrap_or_else(publish_failed);
            }
            for message in &tick.messages {
                let result = match sensor_out(message, &frame_id) {
                    SensorOut::Image(image) => {
                        let info = camera_info(
                            stamp_ns,
                            &frame_id,
                            camera.width,
                            camera.height,
                            f64::from(camera.horizontal_fov_deg),
                        );
                        info_pub
                            .publish(&info)
                            .and_then(|()| image_pub.publish(&image))
                    }
                    SensorOut::JointState(joints) => joints_pub.publish(&joints),
                    SensorOut::Imu(imu) => imu_pub.publish(&imu),
                    SensorOut::Odometry(odom) => odom_pub.publish(&odom),
                    SensorOut::Twist(twist) => match (&cmd_pub, message) {
                        (Some(cmd_pub), SensorMsg::Action(_)) => cmd_pub.publish(&twist),
                        _ => Ok(()),
                    },
                };
                result.unwrap_or_else(publish_failed);
            }
            published += 1;
        }
        let stats = match sim_thread.join() {
            Ok(result) => result?,
            Err(_) => return Err(NodeError::Crashed("sim")),
        };
        tracing::info!(
            steps = stats.steps,
            published,
            episodes = stats.episodes,
            parameter_replies_unsent = unsent_parameter_replies.get(),
            "sim node stopped"
        );
        Ok(stats)
    })
}
