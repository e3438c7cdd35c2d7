//! `autodidact_node`: the ROS 2 node `autodidact` (see `autodidact_nodes::ros`). Parameters and remaps come
//! from `--ros-args`; SIGINT stops it cleanly.

use anyhow::Context;
use autodidact_nodes::ros::{init_logging, learner};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    init_logging();
    learner::run_learner_node("autodidact", learner::Roles::COMPOSED).context("autodidact_node")?;
    Ok(())
}
