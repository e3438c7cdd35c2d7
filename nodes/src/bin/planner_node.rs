//! `planner_node`: the ROS 2 node `planner` (see `autodidact_nodes::ros`). Parameters and remaps come
//! from `--ros-args`; SIGINT stops it cleanly.

use anyhow::Context;
use autodidact_nodes::ros::{init_logging, learner};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    init_logging();
    learner::run_learner_node("planner", learner::Roles::PLANNER).context("planner_node")?;
    Ok(())
}
