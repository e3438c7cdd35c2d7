//! autodidact's nodes as ROS-free components, and the in-process graph that wires them.
//!
//! Each component (`sim`, `collector`, `trainer`, `encoder`, `planner`, `viz`) is a plain function or
//! struct with typed inputs and outputs, bounded queues and an injected [`clock::Clock`], so the
//! same code runs here over channels and as ROS 2 nodes (feature `ros`, `ros/`). [`graph::run_graph`] runs them
//! all in one process on the simulator: what `autodidact run` does.
//!
//! Data flow: sim → collector (pairs, validates, counts drops) → trainer (replay, objectives,
//! weight versions) and encoder (embeds every frame with the newest weights) → viz (rerun).

mod clock;
pub mod collector;
mod config;
mod encoder;
pub mod graph;
mod image;
mod latest;
pub mod msg;
pub mod planner;
pub mod pool;
#[cfg(feature = "ros")]
pub mod ros;
pub mod sim;
mod stats;
pub mod trainer;
pub mod viz;

pub use clock::{Clock, ManualClock, WallClock};
pub use collector::{Collector, CollectorConfig, Frame, ProprioConfig};
pub use config::FileConfig;
pub use encoder::{EncoderConfig, EncoderStats};
pub use graph::{GraphConfig, GraphReport, run_graph};
pub use stats::{DropCounter, DropReason};

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
    /// The ROS 2 middleware (rcl through r2r) refused something.
    #[error("ros: {0}")]
    Ros(String),
    /// A component thread panicked (a bug: reported, not propagated as a panic).
    #[error("the {0} component stopped unexpectedly")]
    Crashed(&'static str),
}
