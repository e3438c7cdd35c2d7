//! `autodidact bench sim`: how fast the simulator renders and steps.

use std::time::Duration;

use anyhow::{Context, Result};
use autodidact_sim::{Action, ExplorationConfig, ExplorationPolicy, Sim, SimConfig};

use crate::row::{BenchRow, measure};

/// Measures RGB+depth rendering at 64² and 128², and at 32² with 3 × 3 rays a pixel
/// (`rays_per_side`), from poses along an exploration run, the physics step alone, and a whole
/// control step (physics + proprio + frame). Everything on this thread.
pub fn bench_sim(budget_per_case: Duration) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for (side, rays_per_side) in [(64u32, 1u32), (128, 1), (32, 3)] {
        let mut config = SimConfig::default();
        config.camera.width = side;
        config.camera.height = side;
        config.camera.rays_per_side = rays_per_side;
        let mut sim = Sim::new(&config).context("building the simulator")?;
        let mut observation = sim.reset(1)?;
        let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), 1);
        // Render from varied poses: walk a little between timed renders.
        let mut poses = Vec::new();
        for _ in 0..200 {
            observation = sim.step(&policy.act(&observation, 0.05));
            poses.push(sim.ground_truth().robot_pose);
        }
        let mut frame = sim.render();
        let mut index = 0usize;
        let rays = match rays_per_side {
            1 => String::new(),
            n => format!(", {n}x{n} rays a pixel"),
        };
        rows.push(measure(
            &format!("render {side}x{side} rgb+depth{rays}"),
            budget_per_case,
            || {
                let pose = poses[index % poses.len()];
                index += 1;
                // Teleporting costs a few body writes; it keeps the view changing.
                if sim.set_robot_pose(pose).is_ok() {
                    sim.render_into(&mut frame);
                }
            },
        ));
        if rays_per_side == 1 {
            rows.push(control_step_row(side, budget_per_case)?);
        }
    }
    let mut config = SimConfig::default();
    config.camera.width = 1;
    config.camera.height = 1;
    config.physics_substeps = 1;
    let mut sim = Sim::new(&config)?;
    sim.reset(3)?;
    let mut turn = 0.0f32;
    rows.push(measure(
        "physics sub-step (1x1 camera)",
        budget_per_case,
        || {
            turn = (turn + 0.01) % 2.0;
            sim.step(&Action::new(0.3, turn - 1.0));
        },
    ));
    Ok(rows)
}

/// A whole simulator control step (physics sub-steps + proprio + a `side`² frame) under the
/// exploration policy.
pub fn control_step_row(side: u32, budget: Duration) -> Result<BenchRow> {
    let mut config = SimConfig::default();
    config.camera.width = side;
    config.camera.height = side;
    let mut sim = Sim::new(&config).context("building the simulator")?;
    let mut observation = sim.reset(2)?;
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), 2);
    Ok(measure(
        &format!(
            "control step {side}x{side} (physics x{} + proprio + frame)",
            config.physics_substeps
        ),
        budget,
        || {
            let action = policy.act(&observation, 0.05);
            observation = sim.step(&action);
        },
    ))
}
