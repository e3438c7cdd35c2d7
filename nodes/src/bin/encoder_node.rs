//! `encoder_node`: the ROS 2 node `encoder` (see `autodidact_nodes::ros`). Parameters and remaps come
//! from `--ros-args`; SIGINT stops it cleanly.

use anyhow::Context;
use autodidact_nodes::ros::{init_logging, learner};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    init_logging();
    learner::run_learner_node("encoder", learner::Roles::ENCODER).context("encoder_node")?;
    Ok(())
}
