//! `autodidact bench graph`: the in-process node graph, paced and unpaced.

use anyhow::{Context, Result};

use crate::row::BenchRow;

/// The node graph: a run paced at `hz` camera frames per second for `seconds` with the trainer
/// training (image→embedding latency p50/p99 and the trainer's rate), then the same graph
/// unpaced for `unpaced_frames` frames (frames/s of the whole graph; 0 skips it). Telemetry off,
/// default model, training on `backend` (inference `auto`); the trainer's threads at
/// `trainer_nice`.
pub fn bench_graph(
    backend: autodidact_learn::BackendChoice,
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
    config.trainer.backend = backend;
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
