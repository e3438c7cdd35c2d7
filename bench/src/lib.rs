//! # autodidact-bench
//!
//! The numbers behind `autodidact bench`: each function runs one benchmark and returns rows for
//! the CLI to print as a table (and as JSON). Speed is measured here, never asserted in tests.
//!
//! - `sim`: rendering, physics and whole control steps;
//! - `learn`: a training step at the default configuration and single-frame encode latency;
//! - `images`: a camera's image (640×480, 1280×720, each encoding, JPEG, PNG) → the model's
//!   64×64 input;
//! - `bags`: a bag of 640×480 JPEG frames read through storage, CDR and the collector;
//! - `graph`: the in-process node graph, paced (image→embedding latency while training) and
//!   unpaced (frames per second);
//! - `soak`: the graph for minutes or hours with training and telemetry: memory, backlogs,
//!   drops and stalls over time;
//! - `kills`: a checkpoint writer killed with SIGKILL again and again, resumed after each kill;
//! - `pytorch`: the same world model and training step in PyTorch (`pytorch_world_model.py`
//!   beside this crate), checked to compute the same losses, then timed side by side.
//!
//! Errors are `anyhow`: every one ends a benchmark run with its message, none is handled.

mod bags;
mod graph;
mod images;
mod kills;
mod learn;
mod pytorch;
mod row;
mod sim;
mod soak;

pub use bags::{BAG_HZ, bench_bag_ingest, write_camera_bag};
pub use graph::{GraphBench, bench_graph};
pub use images::{bench_images, compressed_scene, smooth_scene};
pub use kills::{KillReport, checkpoint_writer, kill_writers};
pub use learn::{bench_learn, default_batch_size, filled_trainer};
pub use pytorch::{
    EMBEDDING_TOLERANCE, LOSS_TOLERANCE, PYTORCH_SCHEMA, PytorchComparison, PytorchOptions,
    SideNumbers, TermCheck, compare_with_pytorch, comparison_rows,
};
pub use row::BenchRow;
pub use sim::{bench_sim, control_step_row};
pub use soak::{SoakReport, SoakSample, resident_mib, soak};
