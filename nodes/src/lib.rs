//! autodidact's nodes: ROS-free components, the one runtime that runs them, and two wirings
//! of it — the in-process graph on the simulator and the ROS 2 nodes.
//!
//! - `components/`: what each node does (`sim`, `collector`, `trainer`, `encoder`, `planner`,
//!   `viz`), plain functions and structs with typed inputs and outputs and an injected
//!   [`Clock`].
//! - `runtime/`: the plumbing: worker threads, bounded queues, the ports a transport feeds,
//!   one shutdown order, compute pools, clocks.
//! - [`graph`]: `autodidact run`, the simulator as the transport.
//! - [`bags`]: rosbag2 bags as the transport (`autodidact train --bag`) and the simulator
//!   recorded into one (`--bag-out`).
//! - `ros/` (feature `ros`): the r2r nodes, whose subscriptions, services and timers run on
//!   tokio.
//!
//! Data flow: sim → collector (pairs, validates, counts drops) → trainer (replay, objectives,
//! weight versions) and encoder (embeds every frame with the newest weights) → viz (rerun).

pub mod bags;
mod components;
mod config;
#[cfg(test)]
mod fuzz;
pub mod graph;
pub mod msg;
#[cfg(feature = "ros")]
pub mod ros;
mod runtime;

pub use collector::{Collector, CollectorConfig, Frame, ProprioConfig};
pub use components::encoder::{EncoderConfig, EncoderStats};
pub use components::stats::{DropCounter, DropReason};
pub use components::{collector, image, planner, sim, trainer, viz};
pub use config::FileConfig;
pub use graph::{GraphConfig, GraphReport, run_graph};
pub use runtime::clock::{Clock, ManualClock, WallClock};
pub use runtime::pool;

/// What can go wrong in a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Setting a component up failed.
    #[error("setup: {0}")]
    Setup(String),
    /// The learning core refused something.
    #[error(transparent)]
    Learn(#[from] autodidact_learn::LearnError),
    /// The simulator refused something.
    #[error(transparent)]
    Sim(#[from] autodidact_sim::SimError),
    /// The rerun viewer or recording could not be used.
    #[error("viewer: {0}")]
    Viewer(String),
    /// A bag could not be read or written.
    #[error(transparent)]
    Bag(#[from] autodidact_bag::BagError),
    /// The ROS 2 middleware (rcl through r2r) refused something.
    #[error("ros: {0}")]
    Ros(String),
    /// A component thread panicked (a bug: reported, not propagated as a panic).
    #[error("the {0} component stopped unexpectedly")]
    Crashed(&'static str),
}
