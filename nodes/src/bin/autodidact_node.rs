//! `autodidact_node`: the ROS 2 node `autodidact` (see `autodidact_nodes::ros`). Parameters and remaps come
//! from `--ros-args`; SIGINT stops it cleanly.

use anyhow::Context;
use autodidact_nodes::ros::{init_logging, learner, shutdown_flag};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    init_logging();
    let stop = shutdown_flag()?;
    learner::run_learner_node("autodidact", learner::Roles::COMPOSED, &stop)
        .context("autodidact_node")?;
    Ok(())
}
