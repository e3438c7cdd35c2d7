//! The components: what each node does, with plain typed inputs and outputs and no transport.
//! Each is a function or struct that takes its configuration, its inputs and a clock, so the
//! in-process graph, the ROS nodes, the evaluation and the benchmarks run the same code.
//!
//! | component | role |
//! |---|---|
//! | [`sim`] | the simulator as a robot: sensor messages per control step |
//! | [`collector`] | validates and pairs sensor messages into frames and transitions (with [`image`] conversion and [`stats`] drop counting) |
//! | [`trainer`] | trains the world model on transitions; status, health, previews, checkpoints |
//! | [`encoder`] | embeds frames with the newest weights |
//! | [`planner`] | the reference planner: goal frame in, velocity command out |
//! | [`viz`] | rerun telemetry |
//!
//! How they are started, joined by queues and stopped is the runtime's job
//! ([`crate::runtime`]).

pub mod collector;
pub mod encoder;
pub mod image;
pub mod planner;
pub mod sim;
pub(crate) mod stats;
pub mod trainer;
pub mod viz;
