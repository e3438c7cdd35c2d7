//! The ROS 2 skin (cargo feature `ros`): thin r2r nodes around the components, so a robot runs
//! the same collector, trainer, encoder and sim code as `autodidact run`.
//!
//! | executable | node name | role |
//! |---|---|---|
//! | `autodidact_node` | `autodidact` | collector + trainer + encoder + rollout service in one process (images never serialised between them) |
//! | `trainer_node` | `trainer` | collector + trainer; writes checkpoints |
//! | `encoder_node` | `encoder` | collector + encoder + rollout service; follows the trainer's weights (`autodidact/weights`, or a checkpoint) |
//! | `planner_node` | `planner` | collector + encoder + reference planner: takes a goal image, drives `cmd_vel`; follows the trainer's weights |
//! | `sim_node` | `sim` | the simulator as a robot: camera, joint states, IMU, odometry, /clock; takes cmd_vel |
//!
//! Topics, types and QoS are in docs/ros.md (the map of the crates is ARCHITECTURE.md); every
//! name is relative, so `--ros-args -r` remaps it. Each node spins rcl on its own thread and runs
//! its subscriptions, services, timers and signals as tasks on tokio ([`executor`]), so r2r's
//! small internal queues are drained at once; the work itself is the runtime's
//! ([`crate::runtime`]), the same as `autodidact run`.

mod convert;
mod executor;
pub mod learner;
mod param_services;
mod params;
mod rollout;
pub mod sim_node;
mod weights;

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};

use crate::NodeError;
use crate::config::FileConfig;
use crate::runtime::clock::{Clock, ManualClock};
use crate::runtime::lock;
use param_services::{ParameterTable, serve_parameters};

/// r2r errors as node errors.
pub(crate) fn ros_error(error: r2r::Error) -> NodeError {
    NodeError::Ros(error.to_string())
}

/// A node with its configuration file read and its parameters declared.
pub(crate) struct Started<P> {
    /// The r2r node.
    pub node: r2r::Node,
    /// The `config_file` it was given (or the defaults).
    pub file: FileConfig,
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
    defaults: impl FnOnce(&str, &FileConfig) -> P,
) -> Result<Started<P>, NodeError>
where
    P: r2r::RosParams,
{
    // rcl panics inside r2r on some malformed overrides (`-p rerun:=`): refuse them first.
    check_ros_arguments(std::env::args())?;
    let context = r2r::Context::create().map_err(ros_error)?;
    let mut node = r2r::Node::create(context, node_name, "").map_err(ros_error)?;
    let config_file: String = node.get_parameter("config_file").unwrap_or_default();
    let file =
        FileConfig::load_or_default((!config_file.is_empty()).then_some(Path::new(&config_file)))?;
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
            Ok(sec) => sim_time.follow_ns(sec * 1_000_000_000 + u64::from(message.clock.nanosec)),
            Err(_) => tracing::warn!(sec = message.clock.sec, "/clock before 1970 ignored"),
        }
        futures::future::ready(())
    });
    Ok(follow.boxed_local())
}

/// Logs to stderr, filtered by `RUST_LOG` (default [`crate::viz::DEFAULT_LOG_FILTER`]).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(crate::viz::DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Checks the parameter overrides and remaps of a command line's `--ros-args` before rcl parses
/// them: each `-p`/`--param` must be `NAME:=VALUE` and each `-r`/`--remap` `FROM:=TO`, with
/// neither side empty. An empty string is written `-p "NAME:=''"`.
pub fn check_ros_arguments(args: impl IntoIterator<Item = String>) -> Result<(), NodeError> {
    let mut in_ros_args = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--ros-args" => in_ros_args = true,
            "--" => in_ros_args = false,
            flag @ ("-p" | "--param" | "-r" | "--remap") if in_ros_args => {
                let Some(rule) = args.next() else {
                    return Err(NodeError::Setup(format!(
                        "{flag} at the end of --ros-args has no NAME:=VALUE after it"
                    )));
                };
                // A remap may name its node first: `node:from:=to`.
                let (name, value) = rule.split_once(":=").unwrap_or((rule.as_str(), ""));
                if name.is_empty() || value.is_empty() {
                    let hint = if flag.starts_with("-p") || flag == "--param" {
                        format!(" (an empty string is written -p \"{name}:=''\")")
                    } else {
                        String::new()
                    };
                    return Err(NodeError::Setup(format!(
                        "{flag} {rule:?} is not NAME:=VALUE with both sides given{hint}"
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn malformed_overrides_are_refused_before_rcl_sees_them() {
        for bad in [
            "node --ros-args -p rerun:=",
            "node --ros-args -p :=5",
            "node --ros-args --param seed",
            "node --ros-args -r camera/image_raw:=",
            "node --ros-args -p",
        ] {
            let error = check_ros_arguments(args(bad)).expect_err(bad).to_string();
            assert!(error.contains(":="), "{bad}: {error}");
        }
        let empty = check_ros_arguments(args("node --ros-args -p rerun:="))
            .expect_err("empty value")
            .to_string();
        assert!(empty.contains("rerun:=''"), "{empty}");
        for good in [
            "node",
            "node --ros-args -p seed:=7 -r camera/image_raw:=/cam/image -p rerun:=''",
            "node -p notours --ros-args -p seed:=7 -- -p notours",
        ] {
            check_ros_arguments(args(good)).expect(good);
        }
    }
}
