//! `autodidact bench sim|learn`: how fast the simulator renders and steps, and how fast the
//! learning core trains and encodes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use autodidact_sim::{Action, ExplorationConfig, ExplorationPolicy, Sim, SimConfig};
use serde::Serialize;

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub case: String,
    /// Repetitions timed.
    pub iterations: u64,
    /// Median time per repetition, microseconds.
    pub median_us: f64,
    /// 99th-percentile time per repetition, microseconds.
    pub p99_us: f64,
    /// Repetitions per second at the median.
    pub per_second: f64,
}

/// Times `f` repeatedly for about `budget` after a short warm-up.
fn measure(case: &str, budget: Duration, mut f: impl FnMut()) -> BenchRow {
    let warm_until = Instant::now() + budget / 10;
    while Instant::now() < warm_until {
        f();
    }
    let mut samples = Vec::new();
    let until = Instant::now() + budget;
    while Instant::now() < until || samples.len() < 10 {
        let started = Instant::now();
        f();
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let p99 = samples[((samples.len() as f64 * 0.99) as usize).min(samples.len() - 1)];
    BenchRow {
        case: case.to_owned(),
        iterations: samples.len() as u64,
        median_us: median,
        p99_us: p99,
        per_second: 1e6 / median,
    }
}

/// Measures RGB+depth rendering at 64² and 128² from poses along an exploration run, the physics
/// step alone, and a whole control step (physics + proprio + frame). Everything on this thread.
pub fn bench_sim(budget_per_case: Duration) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for side in [64u32, 128] {
        let mut config = SimConfig::default();
        config.camera.width = side;
        config.camera.height = side;
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
        rows.push(measure(
            &format!("render {side}x{side} rgb+depth"),
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
        rows.push(control_step_row(side, budget_per_case)?);
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

/// A trainer at the default configuration on `backend` (weights from `seed`) with `transitions`
/// steps of an exploration run in its replay buffer, and the run's last observation.
pub fn filled_trainer(
    backend: autodidact_learn::BackendChoice,
    seed: u64,
    transitions: usize,
) -> Result<(autodidact_learn::Trainer, autodidact_sim::Observation)> {
    use autodidact_learn::{Trainer, TrainerConfig, Transition};
    use std::sync::Arc;

    let sim_config = SimConfig::default();
    let (width, height) = (
        sim_config.camera.width as usize,
        sim_config.camera.height as usize,
    );
    let mut sim = Sim::new(&sim_config)?;
    let mut observation = sim.reset(seed + 1)?;
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), seed + 1);
    let mut config = TrainerConfig::for_inputs(width, height, 2);
    config.backend = backend;
    config.seed = seed;
    let mut trainer = Trainer::new(config).context("building the trainer")?;
    for _ in 0..transitions {
        let action = policy.act(&observation, 0.05);
        trainer.push(Transition {
            episode: 0,
            frame_stamp_ns: observation.stamp.nanos,
            image: Arc::from(observation.frame.rgb.clone()),
            proprio: observation
                .joints
                .velocity
                .iter()
                .map(|v| (*v / 10.0) as f32)
                .collect(),
            action: [action.linear_x, action.angular_z],
        })?;
        observation = sim.step(&action);
    }
    Ok((trainer, observation))
}

/// Measures the learning core on `backend`: a training step at the default configuration
/// (batch 64, two views, every default objective) and single-image encode latency.
pub fn bench_learn(
    backend: autodidact_learn::BackendChoice,
    train_steps: usize,
    encodes: usize,
) -> Result<Vec<BenchRow>> {
    let (mut trainer, observation) = filled_trainer(backend, 0, 600)?;
    let batch_size = trainer.config().batch_size;
    // Warm-up (kernel compilation and autotuning on wgpu) is excluded.
    trainer.step()?;
    let mut step_us = Vec::with_capacity(train_steps);
    for _ in 0..train_steps {
        let started = Instant::now();
        trainer.step()?;
        step_us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut snapshot_trainer = trainer;
    snapshot_trainer.set_inference_device(backend.device()?);
    let snapshot = snapshot_trainer.snapshot();
    let image = observation.frame.rgb.clone();
    let proprio = [0.0f32; 2];
    for _ in 0..5 {
        snapshot.embed(&image, &proprio)?;
    }
    let mut encode_us = Vec::with_capacity(encodes);
    for _ in 0..encodes {
        let started = Instant::now();
        snapshot.embed(&image, &proprio)?;
        encode_us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let row = |case: String, mut samples: Vec<f64>, per: f64| {
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        BenchRow {
            case,
            iterations: samples.len() as u64,
            median_us: median,
            p99_us: samples[((samples.len() as f64 * 0.99) as usize).min(samples.len() - 1)],
            per_second: per * 1e6 / median,
        }
    };
    Ok(vec![
        row(
            format!("{backend}: train step, batch {batch_size} (per second = samples)"),
            step_us,
            batch_size as f64,
        ),
        row(format!("{backend}: encode 1 image 64x64"), encode_us, 1.0),
    ])
}

/// The node graph: a run paced at `hz` camera frames per second for `seconds` with the trainer
/// training (image→embedding latency p50/p99 and the trainer's rate), then the same graph
/// unpaced for `unpaced_frames` frames (frames/s of the whole graph; 0 skips it). Telemetry off,
/// default model, flex; the trainer's threads at `trainer_nice`.
pub fn bench_graph(
    hz: f64,
    seconds: f64,
    trainer_nice: i32,
    unpaced_frames: u64,
) -> Result<GraphBench> {
    use autodidact_nodes::viz::VizSink;
    use autodidact_nodes::{GraphConfig, run_graph};
    use std::sync::atomic::AtomicBool;

    let hz = hz.clamp(1.0, 1000.0);
    let mut config = GraphConfig::new((hz * seconds.max(1.0)).ceil() as u64);
    config.sim.sim.control_period_s = 1.0 / hz;
    config.sim.realtime_factor = 1.0;
    config.viz.sink = VizSink::Off;
    config.trainer_node.preview_every = 0;
    config.trainer_node.nice = trainer_nice;
    let stop = AtomicBool::new(false);
    let paced = run_graph(&config, &stop, |_| {}).context("paced graph run")?;
    let latencies = &paced.encoder.latencies_s;
    let latency = (!latencies.is_empty()).then(|| BenchRow {
        case: format!(
            "image→embedding at {hz:.0} Hz while training ({} train steps)",
            paced.train_steps
        ),
        iterations: latencies.len() as u64,
        median_us: paced.latency_p50_s * 1e6,
        p99_us: paced.latency_p99_s * 1e6,
        per_second: paced.embedding_count as f64 / paced.wall_s.max(1e-9),
    });
    let step_s = paced.wall_s / paced.train_steps.max(1) as f64;
    let train = BenchRow {
        case: "train steps in the paced run (wall time incl. the replay warm-up)".into(),
        iterations: paced.train_steps,
        median_us: step_s * 1e6,
        p99_us: step_s * 1e6,
        per_second: paced.train_steps_per_s(),
    };
    let unpaced = if unpaced_frames > 0 {
        let mut unpaced = config.clone();
        unpaced.sim.realtime_factor = 0.0;
        unpaced.steps = unpaced_frames;
        let fast = run_graph(&unpaced, &stop, |_| {}).context("unpaced graph run")?;
        let per_frame_us = fast.wall_s * 1e6 / fast.sim.steps.max(1) as f64;
        Some(BenchRow {
            case: format!(
                "whole graph unpaced ({} frames, {} embedded, {} dropped at the encoder)",
                fast.sim.steps,
                fast.embedding_count,
                fast.queue_drops.get("encoder").copied().unwrap_or(0)
            ),
            iterations: fast.sim.steps,
            median_us: per_frame_us,
            p99_us: per_frame_us,
            per_second: fast.frames_per_s(),
        })
    } else {
        None
    };
    Ok(GraphBench {
        latency,
        train,
        unpaced,
    })
}

/// What [`bench_graph`] measured.
#[derive(Debug, Clone)]
pub struct GraphBench {
    /// Image→embedding latency in the paced run (none when nothing was embedded).
    pub latency: Option<BenchRow>,
    /// The trainer's rate in the paced run.
    pub train: BenchRow,
    /// The whole graph unpaced (when asked for).
    pub unpaced: Option<BenchRow>,
}

impl GraphBench {
    /// The rows to print.
    pub fn rows(&self) -> Vec<BenchRow> {
        self.latency
            .iter()
            .chain([&self.train])
            .chain(&self.unpaced)
            .cloned()
            .collect()
    }
}
