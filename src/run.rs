//! `autodidact run`: the node graph on the simulator, configured from the command line and an
//! optional TOML file, summarised as a table.

use std::path::PathBuf;

use anyhow::{Result, bail};
use autodidact_learn::{BackendChoice, TrainerConfig};
use autodidact_nodes::GraphConfig;
use autodidact_nodes::graph::GraphReport;
use autodidact_nodes::viz::VizSink;

use crate::FileConfig;

/// What the user asked `autodidact run` for.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Control steps (camera frames) to simulate.
    pub steps: u64,
    /// Stop after this many wall minutes even if steps remain.
    pub minutes: Option<f64>,
    /// Sim seconds per wall second (0: as fast as possible).
    pub realtime: f64,
    /// Seed of the worlds, the policy and the model.
    pub seed: u64,
    /// Steps per episode (a new world after each; 0: one episode).
    pub episode_steps: u64,
    /// Recording file.
    pub rrd: PathBuf,
    /// Spawn a viewer.
    pub viewer: bool,
    /// Stream to a running viewer at this URL.
    pub connect: Option<String>,
    /// No telemetry.
    pub no_viz: bool,
    /// Write a checkpoint here at the end.
    pub checkpoint: Option<PathBuf>,
    /// Where training runs (`None`: the configuration file's, `auto` by default).
    pub backend: Option<BackendChoice>,
    /// Where inference runs (`None`: the configuration file's, `auto` by default).
    pub inference_backend: Option<BackendChoice>,
    /// Simulated robots feeding the trainer.
    pub robots: usize,
}

/// Builds the graph's configuration: defaults, then the file's sections, then the flags.
pub fn graph_config(options: &RunOptions, file: &FileConfig) -> Result<GraphConfig> {
    if options.viewer && options.connect.is_some() {
        bail!("--viewer and --connect exclude each other");
    }
    let mut config = GraphConfig::new(options.steps);
    config.sim.sim = file.sim.clone();
    config.sim.exploration = file.exploration.clone();
    config.sim.seed = options.seed;
    config.sim.realtime_factor = options.realtime.max(0.0);
    config.sim.episode_steps = options.episode_steps;
    config.collector = file.collector.clone();
    config.collector.width = file.sim.camera.width;
    config.collector.height = file.sim.camera.height;
    config.trainer = match &file.trainer {
        Some(trainer) => trainer.clone(),
        None => TrainerConfig::for_inputs(
            config.collector.width as usize,
            config.collector.height as usize,
            config.collector.proprio.dim(),
        ),
    };
    config.trainer.seed = options.seed;
    if let Some(backend) = options.backend {
        config.trainer.backend = backend;
    }
    if let Some(backend) = options.inference_backend {
        config.trainer.inference_backend = backend;
    }
    config.trainer_node = file.trainer_node.clone();
    if options.checkpoint.is_some() {
        config.trainer_node.checkpoint_dir = options.checkpoint.clone();
    }
    config.encoder = file.encoder.clone();
    config.viz.sink = if options.no_viz {
        VizSink::Off
    } else if let Some(url) = &options.connect {
        VizSink::Connect(url.clone())
    } else if options.viewer {
        VizSink::Spawn(options.rrd.clone())
    } else {
        VizSink::File(options.rrd.clone())
    };
    if let Some(minutes) = options.minutes
        && !(minutes.is_finite() && minutes > 0.0 && minutes <= 60.0 * 24.0 * 365.0)
    {
        bail!("--minutes must be a number of minutes > 0 and at most a year, got {minutes}");
    }
    config.max_wall_s = options.minutes.map(|m| m * 60.0);
    config.robots = options.robots;
    config.validate()?;
    Ok(config)
}

/// The summary table's rows.
pub fn summary_rows(report: &GraphReport) -> Vec<(String, String)> {
    let mut rows = vec![
        ("sim steps".to_owned(), report.sim.steps.to_string()),
        ("wall time".into(), format!("{:.1} s", report.wall_s)),
        ("frames/s".into(), format!("{:.1}", report.frames_per_s())),
        ("train steps".into(), report.train_steps.to_string()),
        (
            "train steps/s".into(),
            format!("{:.2}", report.train_steps_per_s()),
        ),
        ("model version".into(), report.model_version.to_string()),
        ("training on".into(), report.placements.training.to_string()),
        (
            "inference on".into(),
            report.placements.inference.to_string(),
        ),
        ("embeddings".into(), report.embedding_count.to_string()),
        (
            "image→embedding p50 / p99".into(),
            format!(
                "{:.2} / {:.2} ms",
                report.latency_p50_s * 1e3,
                report.latency_p99_s * 1e3
            ),
        ),
    ];
    if let Some(l) = report.last_losses {
        rows.push((
            "final losses".into(),
            format!(
                "total {:.3} · contrastive {:.3} · temporal {:.3} · forward {:.4} · reconstruction {:.4}",
                l.total, l.contrastive, l.temporal, l.forward, l.reconstruction
            ),
        ));
    }
    rows.push((
        if report.robots.len() > 1 {
            "pose probe R², held-out stretches, robot1".into()
        } else {
            "pose probe R², held-out stretches".into()
        },
        match &report.probe {
            Some(p) => format!(
                "{:.2} (x {:.2}, y {:.2}, sin {:.2}, cos {:.2}) · random init {:.2} · raw pixels {:.2}",
                p.r2,
                p.per_target.first().copied().unwrap_or(f64::NAN),
                p.per_target.get(1).copied().unwrap_or(f64::NAN),
                p.per_target.get(2).copied().unwrap_or(f64::NAN),
                p.per_target.get(3).copied().unwrap_or(f64::NAN),
                p.random_init,
                p.raw_pixels
            ),
            None => "n/a (too few frames)".into(),
        },
    ));
    if report.robots.len() > 1 {
        for robot in &report.robots {
            let c = &robot.collector;
            let dropped: u64 = c.dropped.values().sum();
            rows.push((
                format!("{} (seed {})", robot.name, robot.seed),
                format!(
                    "{} frames · {} transitions · {} episodes · {dropped} dropped",
                    c.frames, c.transitions, c.episodes
                ),
            ));
        }
    }
    let dropped: u64 = report.collector.dropped.values().sum();
    rows.push((
        "dropped".into(),
        if dropped == 0 {
            "none".into()
        } else {
            report
                .collector
                .dropped
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    rows.push((
        "recording".into(),
        report
            .viz
            .destination
            .clone()
            .unwrap_or_else(|| "off".into()),
    ));
    if let Some(bag) = &report.bag_out {
        rows.push((
            "bag".into(),
            match &bag.error {
                None => format!("{} ({} ticks)", bag.path.display(), bag.ticks),
                Some(error) => format!(
                    "{}: stopped after {} ticks: {error}",
                    bag.path.display(),
                    bag.ticks
                ),
            },
        ));
    }
    rows
}
