//! The ROS 2 skin (cargo feature `ros`): thin r2r nodes around the components, so a robot runs
//! the same collector, trainer, encoder and sim code as `autodidact run`.
//!
//! | executable | node name | role |
//! |---|---|---|
//! | `autodidact_node` | `autodidact` | collector + trainer + encoder + rollout service in one process (images never serialised between them) |
//! | `trainer_node` | `trainer` | collector + trainer; writes checkpoints |
//! | `encoder_node` | `encoder` | collector + encoder + rollout service; follows a checkpoint |
//! | `sim_node` | `sim` | the simulator as a robot: camera, joint states, IMU, odometry, /clock; takes cmd_vel |
//!
//! Topics, types and QoS are in DESIGN.md and docs/ros.md; every name is relative, so
//! `--ros-args -r` remaps it. Each node spins r2r on its main thread with a local executor for
//! the subscription streams, so r2r's small internal queues are drained at once; camera frames
//! then go to the encoder through a [`LatestCell`](crate::latest::LatestCell).

pub mod convert;
pub mod learner;
pub mod param_services;
pub mod params;
pub mod sim_node;
pub mod unwind;

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};

use crate::NodeError;
use crate::clock::{Clock, ManualClock};
use param_services::{ParameterTable, serve_parameters};
use params::NodeFileConfig;

/// r2r errors as node errors.
pub(crate) fn ros_error(error: r2r::Error) -> NodeError {
    NodeError::Ros(error.to_string())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A node with its configuration file read and its parameters declared.
pub(crate) struct Started<P> {
    /// The r2r node.
    pub node: r2r::Node,
    /// The `config_file` it was given (or the defaults).
    pub file: NodeFileConfig,
    /// Its parameters after `--ros-args` and params files.
    pub params: P,
    /// Serves the parameter services and, with `use_sim_time`, follows `/clock`; spawn it on
    /// the node's executor.
    pub services: LocalBoxFuture<'static, ()>,
    /// Parameter replies that could not be sent (logged as they happen).
    pub unsent_parameter_replies: Rc<Cell<u64>>,
    /// The node's clock.
    pub clock: RosClock,
}

/// Creates the node, reads the TOML named by its `config_file` parameter, declares the
/// parameters with defaults taken from that file, and applies the command line to them.
/// Parameters are read once and served read-only (see [`param_services`]).
pub(crate) fn start_node<P>(
    node_name: &str,
    defaults: impl FnOnce(&str, &NodeFileConfig) -> P,
) -> Result<Started<P>, NodeError>
where
    P: r2r::RosParams,
{
    let context = r2r::Context::create().map_err(ros_error)?;
    let mut node = r2r::Node::create(context, node_name, "").map_err(ros_error)?;
    let config_file: String = node.get_parameter("config_file").unwrap_or_default();
    let file = NodeFileConfig::load_or_default(
        (!config_file.is_empty()).then_some(Path::new(&config_file)),
    )?;
    let mut params = defaults(&config_file, &file);
    let table: ParameterTable = {
        let mut declared = lock(&node.params);
        params
            .register_parameters("", None, &mut declared)
            .map_err(|e| NodeError::Setup(format!("parameters: {e}")))?;
        declared
            .iter()
            .map(|(name, parameter)| {
                let copy = r2r::Parameter {
                    value: parameter.value.clone(),
                    description: parameter.description,
                };
                (name.clone(), copy)
            })
            .collect()
    };
    let use_sim_time = match table.iter().find(|(name, _)| name == "use_sim_time") {
        None => false,
        Some((_, parameter)) => match parameter.value {
            r2r::ParameterValue::NotSet => false,
            r2r::ParameterValue::Bool(on) => on,
            ref other => {
                return Err(NodeError::Setup(format!(
                    "use_sim_time must be a bool, got {}",
                    other.type_name()
                )));
            }
        },
    };
    let (parameter_services, unsent_parameter_replies) = serve_parameters(&mut node, table)?;
    let (clock, services) = if use_sim_time {
        let sim_time = ManualClock::new();
        let follow = follow_clock_topic(&mut node, sim_time.clone())?;
        let services = futures::future::join(parameter_services, follow).map(|_| ());
        (RosClock::Sim(sim_time), services.boxed_local())
    } else {
        (RosClock::System, parameter_services)
    };
    Ok(Started {
        node,
        file,
        params,
        services,
        unsent_parameter_replies,
        clock,
    })
}

/// The node's ROS clock: system time (since the Unix epoch), or with `use_sim_time` the newest
/// `/clock` message (0 until the first arrives, as in rclcpp).
///
/// r2r has its own sim-time source, but it exists only when r2r's build script printed the
/// message cfgs, which it does not when it reuses cached bindings: the node would then run on
/// system time without a word. Following `/clock` here does not depend on how r2r was built.
#[derive(Debug, Clone)]
pub enum RosClock {
    /// The system clock.
    System,
    /// Simulated time from `/clock` (never goes backwards).
    Sim(ManualClock),
}

impl Clock for RosClock {
    fn now_ns(&self) -> u64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
                }),
            Self::Sim(clock) => clock.now_ns(),
        }
    }
}

/// Subscribes `/clock` (best effort, newest only, as rclcpp's time source does) and sets
/// `sim_time` from each message.
fn follow_clock_topic(
    node: &mut r2r::Node,
    sim_time: ManualClock,
) -> Result<LocalBoxFuture<'static, ()>, NodeError> {
    let qos = r2r::QosProfile::default().keep_last(1).best_effort();
    let messages = node
        .subscribe::<r2r::rosgraph_msgs::msg::Clock>("/clock", qos)
        .map_err(ros_error)?;
    let follow = messages.for_each(move |message| {
        match u64::try_from(message.clock.sec) {
            Ok(sec) => sim_time.set_ns(sec * 1_000_000_000 + u64::from(message.clock.nanosec)),
            Err(_) => tracing::warn!(sec = message.clock.sec, "/clock before 1970 ignored"),
        }
        futures::future::ready(())
    });
    Ok(follow.boxed_local())
}

/// A flag that the first SIGINT or SIGTERM sets (`ros2 launch` stops nodes with SIGINT), so a node shuts
/// down cleanly: queues drained, the last checkpoint written.
pub fn shutdown_flag() -> Result<Arc<AtomicBool>, NodeError> {
    let flag = Arc::new(AtomicBool::new(false));
    let failed = |e: std::io::Error| NodeError::Setup(format!("signal handler: {e}"));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while shutting down exits at once (exit code 1).
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&flag))
            .map_err(failed)?;
        signal_hook::flag::register(signal, Arc::clone(&flag)).map_err(failed)?;
    }
    Ok(flag)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
