//! `autodidact bench soak`: the in-process graph for minutes or hours at a camera rate, with
//! training and telemetry on, sampled over time: resident memory, backlogs, drops, progress.
//! What a robot left running overnight would show, measured before it is.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use autodidact_nodes::graph::Progress;
use autodidact_nodes::viz::VizSink;
use autodidact_nodes::{GraphConfig, run_graph};

/// One look at the running graph.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakSample {
    /// Wall minutes since the start.
    pub minute: f64,
    /// Resident memory of the process, MiB.
    pub rss_mib: f64,
    /// Camera frames made so far.
    pub frames: u64,
    /// Embeddings published so far.
    pub embeddings: u64,
    /// Frames made and not yet embedded or dropped.
    pub encoder_backlog: u64,
    /// Training steps so far.
    pub train_steps: u64,
    /// Replay buffer length.
    pub replay_len: usize,
    /// Messages the collector dropped, all reasons.
    pub dropped: u64,
    /// Telemetry events dropped (viewer queue full).
    pub viz_dropped: u64,
}

/// What a soak run measured.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The samples, in order.
    pub samples: Vec<SoakSample>,
    /// Longest wall time in which no new embedding appeared, seconds (a stall of the encoder).
    pub longest_embedding_gap_s: f64,
    /// Longest wall time in which no training step finished once training had begun, seconds.
    pub longest_training_gap_s: f64,
    /// Image→embedding latency p50 and p99 over the newest embeddings, seconds.
    pub latency_p50_s: f64,
    /// See `latency_p50_s`.
    pub latency_p99_s: f64,
    /// The recording's size at the end, bytes.
    pub recording_bytes: u64,
    /// Where it went (none: telemetry was off).
    pub recording: Option<PathBuf>,
}

/// Resident memory of this process, MiB (Linux `/proc/self/status`; 0 elsewhere).
pub fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the default graph paced at `hz` camera frames per second for `minutes`, training, with
/// telemetry to `recording` (none: off); `on_sample` gets a sample every `every`.
pub fn soak(
    minutes: f64,
    hz: f64,
    recording: Option<PathBuf>,
    every: Duration,
    mut on_sample: impl FnMut(&SoakSample),
) -> Result<SoakReport> {
    anyhow::ensure!(
        minutes.is_finite() && minutes > 0.0 && minutes <= 7.0 * 24.0 * 60.0,
        "--minutes must be in (0, 10080], got {minutes}"
    );
    anyhow::ensure!(
        hz.is_finite() && (1.0..=1000.0).contains(&hz),
        "--hz must be in [1, 1000], got {hz}"
    );
    let mut config = GraphConfig::new((hz * minutes * 60.0).ceil() as u64);
    config.sim.sim.control_period_s = 1.0 / hz;
    config.sim.realtime_factor = 1.0;
    config.max_wall_s = Some(minutes * 60.0 + 5.0);
    config.viz.sink = recording.clone().map_or(VizSink::Off, VizSink::File);
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut last_sample: Option<Instant> = None;
    let (mut last_embeddings, mut last_embedding_at) = (0u64, Instant::now());
    let (mut last_steps, mut last_step_at) = (0u64, None::<Instant>);
    let (mut embedding_gap, mut training_gap) = (Duration::ZERO, Duration::ZERO);
    let stop = AtomicBool::new(false);
    let report = run_graph(&config, &stop, |progress: &Progress| {
        let now = Instant::now();
        if progress.embeddings > last_embeddings {
            last_embeddings = progress.embeddings;
            last_embedding_at = now;
        }
        embedding_gap = embedding_gap.max(now - last_embedding_at);
        if progress.train_steps > last_steps {
            last_steps = progress.train_steps;
            last_step_at = Some(now);
        }
        if let Some(at) = last_step_at {
            training_gap = training_gap.max(now - at);
        }
        if last_sample.is_none_or(|at| now - at >= every) {
            last_sample = Some(now);
            let sample = SoakSample {
                minute: started.elapsed().as_secs_f64() / 60.0,
                rss_mib: resident_mib(),
                frames: progress.frames,
                embeddings: progress.embeddings,
                encoder_backlog: progress.encoder_backlog,
                train_steps: progress.train_steps,
                replay_len: progress.replay_len,
                dropped: progress.dropped,
                viz_dropped: progress.viz_dropped,
            };
            on_sample(&sample);
            samples.push(sample);
        }
    })
    .context("soak run")?;
    let recording_bytes = recording
        .as_ref()
        .and_then(|path| std::fs::metadata(path).ok())
        .map_or(0, |m| m.len());
    Ok(SoakReport {
        samples,
        longest_embedding_gap_s: embedding_gap.as_secs_f64(),
        longest_training_gap_s: training_gap.as_secs_f64(),
        latency_p50_s: report.latency_p50_s,
        latency_p99_s: report.latency_p99_s,
        recording_bytes,
        recording,
    })
}
