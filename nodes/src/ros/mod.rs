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
pub mod params;
pub mod sim_node;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt, StreamExt};

use crate::NodeError;
use crate::clock::Clock;
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
    /// Serves the parameter services; spawn it on the node's executor.
    pub parameter_services: futures::future::LocalBoxFuture<'static, ()>,
}

/// Creates the node, reads the TOML named by its `config_file` parameter, declares the
/// parameters with defaults taken from that file, and applies the command line to them.
/// Parameters are read once; a change at run time is logged as not applied.
pub(crate) fn start_node<P>(
    node_name: &str,
    defaults: impl FnOnce(&str, &NodeFileConfig) -> P,
) -> Result<Started<P>, NodeError>
where
    P: r2r::RosParams + Clone + Send + 'static,
{
    let context = r2r::Context::create().map_err(ros_error)?;
    let mut node = r2r::Node::create(context, node_name, "").map_err(ros_error)?;
    let config_file: String = node.get_parameter("config_file").unwrap_or_default();
    let file = NodeFileConfig::load_or_default(
        (!config_file.is_empty()).then_some(Path::new(&config_file)),
    )?;
    let declared = Arc::new(Mutex::new(defaults(&config_file, &file)));
    let (services, changes) = node
        .make_derived_parameter_handler(declared.clone())
        .map_err(ros_error)?;
    let params = lock(&declared).clone();
    let node_name = node_name.to_owned();
    let changes = changes.for_each(move |(parameter, _value)| {
        tracing::warn!(
            node = %node_name,
            %parameter,
            "parameter changed at run time: stored, but applied only when the node restarts"
        );
        futures::future::ready(())
    });
    Ok(Started {
        node,
        file,
        params,
        parameter_services: futures::future::join(services, changes)
            .map(|_| ())
            .boxed_local(),
    })
}

/// The node's ROS clock: system time, or /clock when `use_sim_time` is true.
pub struct RosClock(pub Arc<Mutex<r2r::Clock>>);

impl std::fmt::Debug for RosClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RosClock")
    }
}

impl Clock for RosClock {
    fn now_ns(&self) -> u64 {
        match lock(&self.0).get_now() {
            Ok(now) => u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
            Err(error) => {
                tracing::warn!(%error, "ROS clock unreadable");
                0
            }
        }
    }
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
