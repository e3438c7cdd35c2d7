//! `sim_node`: the simulator as a ROS 2 robot (see `autodidact_nodes::ros::sim_node`).
//! Parameters and remaps come from `--ros-args`; SIGINT stops it cleanly.

use anyhow::Context;
use autodidact_nodes::ros::{init_logging, sim_node};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    init_logging();
    sim_node::run_sim_node("sim").context("sim_node")?;
    Ok(())
}
