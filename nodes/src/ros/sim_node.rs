//! sim_node: the simulator as a ROS 2 robot. It publishes what a robot's drivers would —
//! `camera/image_raw` (rgb8), `camera/camera_info`, `joint_states`, `imu/data`, `odom` — and the
//! sim clock on `/clock`, so the other nodes can run with `use_sim_time`. It drives with its
//! exploration policy (publishing those commands on `cmd_vel`, as a teleop would) or with the
//! newest `cmd_vel` it receives (a planner's).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodidact_sim::Action;
use futures::StreamExt;
use r2r::QosProfile;
use r2r::geometry_msgs::msg::Twist;
use r2r::nav_msgs::msg::Odometry;
use r2r::rosgraph_msgs::msg::Clock as ClockMsg;
use r2r::sensor_msgs::msg::{CameraInfo, Image, Imu, JointState};

use super::convert::{SensorOut, camera_info, sensor_out, time};
use super::executor::Executor;
use super::params::{Drive, SimParams};
use super::{RosClock, Started, ros_error, start_node};
use crate::NodeError;
use crate::components::sim::{SimNodeConfig, SimNodeStats, run_sim_commanded};
use crate::msg::SensorMsg;
use crate::runtime::clock::{Clock, ManualClock, WallClock};
use crate::runtime::lock;

/// Runs sim_node until SIGINT/SIGTERM, the configured number of steps, or a failure.
pub fn run_sim_node(node_name: &str) -> Result<SimNodeStats, NodeError> {
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
    let system_stamps = params.system_stamps()?;
    if system_stamps && params.realtime_factor != 1.0 {
        return Err(NodeError::Setup(format!(
            "stamps:=system needs realtime_factor:=1 (the stamps are the system clock, so sim \
             time must pass as wall time does), got {}",
            params.realtime_factor
        )));
    }
    let config = SimNodeConfig {
        sim: file.sim.clone(),
        exploration: file.exploration.clone(),
        seed: u64::try_from(params.seed)
            .map_err(|_| NodeError::Setup(format!("seed must be ≥ 0, got {}", params.seed)))?,
        realtime_factor: params.realtime_factor.max(0.0),
        episode_steps: u64::try_from(params.episode_steps).unwrap_or(0),
    };
    config.validate()?;
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
    let executor = Executor::new()?;
    executor.spawn(services);
    if drive == Drive::CmdVel {
        let commands = node
            .subscribe::<Twist>("cmd_vel", QosProfile::default())
            .map_err(ros_error)?;
        let latest = Arc::clone(&command);
        executor.spawn(commands.for_each(move |twist| {
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
        }));
    }

    let camera = config.sim.camera.clone();
    let frame_id = params.camera_frame_id.clone();
    let timeout = Duration::from_secs_f64(params.command_timeout_s.max(0.0));
    let sim_stop = Arc::new(AtomicBool::new(false));
    let (finished_tx, finished) = tokio::sync::oneshot::channel::<()>();
    // The simulator publishes from its own thread, tick by tick; the executor serves the
    // parameters and commands and ends the node at SIGINT or when the steps are done.
    let stop = Arc::clone(&sim_stop);
    let sim_thread = std::thread::Builder::new()
        .name("sim".into())
        .spawn(move || {
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
            let publish_failed =
                |error: r2r::Error| tracing::warn!(%error, "sim message not published");
            let mut published = 0u64;
            let result = run_sim_commanded(
                &config,
                steps,
                &stop,
                &sim_clock,
                &wall,
                commanded,
                |tick| {
                    // With system stamps, the step's messages move by the same offset: from
                    // the sim's time of the step to the system clock now.
                    let offset = system_stamps.then(|| {
                        i128::from(RosClock::System.now_ns()) - i128::from(tick.truth.stamp.nanos)
                    });
                    let stamp_ns =
                        u64::try_from(i128::from(tick.truth.stamp.nanos) + offset.unwrap_or(0))
                            .unwrap_or(0);
                    if let Some(clock_pub) = &clock_pub {
                        clock_pub
                            .publish(&ClockMsg {
                                clock: time(stamp_ns),
                            })
                            .unwrap_or_else(publish_failed);
                    }
                    for message in &tick.messages {
                        let message = restamped(message, offset);
                        let message = message.as_ref();
                        let Some(out) = sensor_out(message, &frame_id) else {
                            continue;
                        };
                        let result = match out {
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
                },
            );
            let _ = finished_tx.send(());
            result.map(|stats| (stats, published))
        })
        .map_err(|e| NodeError::Setup(format!("sim thread: {e}")))?;
    let (ended, node) = executor.run(node, async {
        let _ = finished.await;
    })?;
    sim_stop.store(true, Ordering::Relaxed);
    let (stats, published) = match sim_thread.join() {
        Ok(result) => result?,
        Err(_) => return Err(NodeError::Crashed("sim")),
    };
    drop(node);
    tracing::info!(
        steps = stats.steps,
        published,
        episodes = stats.episodes,
        ?ended,
        parameter_replies_unsent = unsent_parameter_replies.get(),
        "sim node stopped"
    );
    Ok(stats)
}

/// `message` with its stamp moved by `offset` nanoseconds (none: as it is).
fn restamped(message: &SensorMsg, offset: Option<i128>) -> std::borrow::Cow<'_, SensorMsg> {
    match offset {
        None => std::borrow::Cow::Borrowed(message),
        Some(offset) => {
            let mut moved = message.clone();
            let at = i128::from(message.stamp_ns()) + offset;
            moved.set_stamp_ns(u64::try_from(at.max(0)).unwrap_or(u64::MAX));
            std::borrow::Cow::Owned(moved)
        }
    }
}
