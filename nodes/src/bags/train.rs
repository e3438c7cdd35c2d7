//! `autodidact train --bag`: bags as the transport of the one runtime. Their messages go
//! through the same collector and trainer as a live node's, in file order, at the pace of the
//! trainer — a bag waits for training where a camera could not — so a bag larger than the
//! replay ring streams through it and every part of it is trained on. Each bag, and each gap in
//! time within one, is its own episode.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodidact_bag::{Bag, Damage, Inputs, Role, TopicChoice};
use autodidact_learn::{Losses, Trainer, TrainerConfig};
use serde::Serialize;

use super::convert::{BagInputError, sensor_in};
use crate::NodeError;
use crate::components::collector::{Collector, CollectorConfig, CollectorStats};
use crate::components::encoder::EncoderConfig;
use crate::components::trainer::{TrainerEvent, TrainerNodeConfig};
use crate::components::viz::{Layout, VizConfig, VizSink, open_recording};
use crate::runtime::clock::ManualClock;
use crate::runtime::{FrameQueue, Parts, Runtime, Sinks, lock};

/// What `train --bag` does.
#[derive(Debug, Clone)]
pub struct BagTrainConfig {
    /// The bags, in order.
    pub bags: Vec<PathBuf>,
    /// Topics named by the user (the rest are found by type).
    pub topics: TopicChoice,
    /// The collector (its image size and proprio layout must match the model).
    pub collector: CollectorConfig,
    /// The trainer node (its `checkpoint_dir` receives the checkpoints).
    pub trainer_node: TrainerNodeConfig,
    /// The encoder, when telemetry is on (it embeds the newest frame for the viewer).
    pub encoder: EncoderConfig,
    /// Telemetry (`--rrd`).
    pub viz: VizConfig,
    /// Optimiser steps to take (on top of a resumed model's); `None`: [`SAMPLES_PER_FRAME`]
    /// samples per frame and epoch.
    pub steps: Option<u64>,
    /// Passes over the bags.
    pub epochs: u32,
    /// Play the bags at this many times their recorded rate, as a live robot would deliver
    /// them (the encoder embeds the newest frame, the trainer trains as fast as it can, up to
    /// `steps`, and the run ends with the data); `None`: as fast as training takes them.
    pub realtime: Option<f64>,
}

/// Samples drawn per camera frame and epoch when no step count is given (each frame is seen
/// about this many times in training batches per pass).
pub const SAMPLES_PER_FRAME: u64 = 8;

/// Seconds without a training step after which the bag is read on regardless (the trainer
/// may be waiting for sequences the data has not completed yet).
const STALL_S: f64 = 5.0;

/// One bag as it was read.
#[derive(Debug, Clone, Serialize)]
pub struct BagReport {
    /// Where it is.
    pub path: PathBuf,
    /// Topic per input.
    pub inputs: Vec<(Role, String)>,
    /// Topics not used, with the reason.
    pub unused: Vec<(String, String)>,
    /// Messages read (all passes).
    pub messages: u64,
    /// Messages of the input topics handed to the collector.
    pub fed: u64,
    /// Input messages whose bytes are not their declared type.
    pub undecodable: u64,
    /// What the storage layer skipped (damaged chunks, a cut file).
    pub damage: Damage,
}

/// Where training on bags is, for a progress bar.
#[derive(Debug, Clone, Default)]
pub struct BagProgress {
    /// Current pass, from 1.
    pub epoch: u32,
    /// Camera messages read so far (all passes).
    pub images_read: u64,
    /// Camera messages in all passes.
    pub images_total: u64,
    /// Optimiser steps so far (this run).
    pub train_steps: u64,
    /// Steps this run will take.
    pub target_steps: u64,
    /// Total loss of the newest step.
    pub loss: Option<f32>,
}

/// What training on bags did.
#[derive(Debug, Serialize)]
pub struct BagTrainReport {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Per bag.
    pub bags: Vec<BagReport>,
    /// Passes made.
    pub epochs: u32,
    /// Collector counters (frames, transitions, drops by reason, episodes restarted).
    pub collector: CollectorStats,
    /// Optimiser steps the model has taken in all (a resumed model's included).
    pub train_step: u64,
    /// Steps taken in this run.
    pub steps_this_run: u64,
    /// Transitions taken into the replay buffer.
    pub transitions: u64,
    /// Losses of the first and last step of this run.
    pub first_losses: Option<Losses>,
    /// See `first_losses`.
    pub last_losses: Option<Losses>,
    /// Newest published encoder version.
    pub model_version: u64,
    /// Where the final checkpoint is.
    pub checkpoint: Option<PathBuf>,
    /// Periodic checkpoints that failed (the final one did not).
    pub checkpoint_failures: u64,
    /// Peak resident memory of the process, MiB (Linux: VmHWM; `None` elsewhere).
    pub peak_rss_mib: Option<f64>,
    /// Embeddings made (with telemetry or `realtime`).
    pub embeddings: u64,
    /// Image→embedding latency p50 and p99, seconds (with telemetry or `realtime`).
    pub latency_p50_s: Option<f64>,
    /// See `latency_p50_s`.
    pub latency_p99_s: Option<f64>,
    /// The trainer at the end.
    #[serde(skip)]
    pub trainer: Option<Trainer>,
}

/// An opened bag with its chosen inputs.
struct Source {
    bag: Bag,
    inputs: Inputs,
}

impl Source {
    fn open(path: &Path, topics: &TopicChoice) -> Result<Self, NodeError> {
        let bag = Bag::open(path).map_err(|e| NodeError::Setup(e.to_string()))?;
        let inputs = autodidact_bag::roles::choose(bag.topics(), topics)
            .map_err(|e| NodeError::Setup(format!("{}: {e}", path.display())))?;
        if inputs.topic(Role::Camera).is_none() {
            return Err(NodeError::Setup(format!(
                "{}: no camera topic (sensor_msgs/Image or CompressedImage) to learn from",
                path.display()
            )));
        }
        Ok(Self { bag, inputs })
    }

    fn images(&self) -> u64 {
        self.inputs
            .topic(Role::Camera)
            .map_or(0, |i| self.bag.topics()[i].count)
    }
}

/// Checks that the model, collector and trainer node fit together.
pub fn check_fit(
    trainer: &TrainerConfig,
    collector: &CollectorConfig,
    trainer_node: &TrainerNodeConfig,
) -> Result<(), NodeError> {
    collector.check_model(trainer)?;
    collector.validate()?;
    trainer_node.validate(trainer.replay.capacity)
}

/// What the trainer reports while it runs.
#[derive(Default)]
struct Seen {
    step: u64,
    first: Option<Losses>,
    last: Option<Losses>,
    model_version: u64,
}

/// Trains `trainer` (new or resumed) on the bags of `config`. `stop` ends it early (the
/// checkpoint is still written); `progress` is called a few times a second.
pub fn train_on_bags(
    config: &BagTrainConfig,
    mut trainer: Trainer,
    stop: &AtomicBool,
    mut progress: impl FnMut(&BagProgress),
) -> Result<BagTrainReport, NodeError> {
    let started = Instant::now();
    if config.bags.is_empty() {
        return Err(NodeError::Setup("no bag given".into()));
    }
    check_fit(trainer.config(), &config.collector, &config.trainer_node)?;
    let sources = config
        .bags
        .iter()
        .map(|path| Source::open(path, &config.topics))
        .collect::<Result<Vec<_>, _>>()?;
    // Each bag is its own episode: one shorter than the sequences training samples adds
    // nothing to learn from.
    let needed = trainer.config().sequence_length() as u64;
    for source in &sources {
        if source.images() < needed {
            tracing::warn!(
                bag = %source.bag.path().display(),
                frames = source.images(),
                needed,
                "this bag has fewer camera frames than one training sequence: it cannot be trained on alone"
            );
        }
    }
    if sources.iter().all(|s| s.images() < needed) {
        return Err(NodeError::Setup(format!(
            "every bag has fewer camera frames than one training sequence ({needed} frames: the \
             contrastive temporal window or the forward horizon, plus one); record longer bags \
             or shorten [trainer.objectives] contrastive.temporal_window / forward.horizon"
        )));
    }
    let epochs = config.epochs.max(1);
    let images_total: u64 = sources.iter().map(Source::images).sum::<u64>() * u64::from(epochs);
    let batch = trainer.config().batch_size.max(1) as u64;
    let target_steps = config
        .steps
        .unwrap_or_else(|| (images_total * SAMPLES_PER_FRAME).div_ceil(batch).max(1));
    let start_step = trainer.step_count();
    // Frames read ahead of training: the replay buffer's warm-up, then this many per step.
    let frames_per_step = images_total as f64 / target_steps.max(1) as f64;

    let mut node_config = config.trainer_node.clone();
    node_config.max_steps = Some(start_step + target_steps);
    // A bag shorter than the replay warm-up still trains: from half of its frames on.
    let frames_per_epoch = images_total / u64::from(epochs);
    if (node_config.min_replay as u64) > frames_per_epoch / 2 {
        node_config.min_replay = (frames_per_epoch / 2).max(1) as usize;
        tracing::info!(
            min_replay = node_config.min_replay,
            "the bags are short: training starts after half of their frames"
        );
    }
    let min_replay = node_config.min_replay as f64;
    let checkpoint = node_config.checkpoint_dir.clone();
    let handle = trainer.encoder_handle();
    let viz = match config.viz.sink {
        VizSink::Off => None,
        _ => {
            let (recording, destination) = open_recording(&config.viz, Layout::robots(1))?;
            Some((config.viz.clone(), recording, destination))
        }
    };
    let seen = Arc::new(Mutex::new(Seen {
        step: start_step,
        ..Seen::default()
    }));
    let steps_seen = Arc::new(AtomicU64::new(start_step));
    let sinks = {
        let seen = Arc::clone(&seen);
        let steps_seen = Arc::clone(&steps_seen);
        Sinks {
            embedding: Box::new(|_| {}),
            trainer: Box::new(move |event| {
                if let TrainerEvent::Status(status) = event {
                    let mut seen = lock(&seen);
                    seen.step = status.train_step;
                    seen.first.get_or_insert(status.losses);
                    seen.last = Some(status.losses);
                    seen.model_version = seen.model_version.max(status.model_version);
                    steps_seen.store(status.train_step, Ordering::Relaxed);
                }
            }),
            command: Box::new(|_| {}),
        }
    };
    let clock = ManualClock::new();
    if let Some(factor) = config.realtime
        && !(factor.is_finite() && factor > 0.0 && factor <= 1e6)
    {
        return Err(NodeError::Setup(format!(
            "the replay rate must be a factor in (0, 1e6], got {factor}"
        )));
    }
    let encode = viz.is_some() || config.realtime.is_some();
    let runtime = Runtime::start(
        Parts {
            collectors: vec![Collector::new(
                config.collector.clone(),
                Arc::new(clock.clone()),
            )],
            dynamics: Arc::new(trainer.dynamics_snapshot()),
            weights: handle.clone(),
            trainer: Some((trainer, node_config)),
            encoder: encode.then(|| (config.encoder.clone(), FrameQueue::Newest)),
            planner: None,
            viz,
        },
        sinks,
    )?;
    let ports = Arc::clone(runtime.ports());

    let mut reports: Vec<BagReport> = sources
        .iter()
        .map(|source| BagReport {
            path: source.bag.path().to_owned(),
            inputs: source
                .inputs
                .chosen
                .iter()
                .map(|&(role, i)| (role, source.bag.topics()[i].name.clone()))
                .collect(),
            unused: source
                .inputs
                .unused
                .iter()
                .map(|(i, why)| (source.bag.topics()[*i].name.clone(), why.clone()))
                .collect(),
            messages: 0,
            fed: 0,
            undecodable: 0,
            damage: Damage::default(),
        })
        .collect();
    let mut state = BagProgress {
        epoch: 1,
        images_total,
        target_steps,
        ..BagProgress::default()
    };
    let report_progress = |state: &mut BagProgress, progress: &mut dyn FnMut(&BagProgress)| {
        let seen = lock(&seen);
        state.train_steps = seen.step - start_step;
        state.loss = seen.last.map(|l| l.total);
        progress(state);
    };
    let mut last_progress = Instant::now();
    let mut epochs_done = 0;
    'passes: for epoch in 1..=epochs {
        state.epoch = epoch;
        for (source, report) in sources.iter().zip(&mut reports) {
            let camera = source.inputs.topic(Role::Camera);
            // Playing at the recorded rate: when this bag's first message was due.
            let mut replay_origin: Option<(Instant, u64)> = None;
            let mut messages = source.bag.messages();
            for message in messages.by_ref() {
                report.messages += 1;
                let Some(role) = source.inputs.role_of(message.topic) else {
                    continue;
                };
                let type_name = &source.bag.topics()[message.topic].type_name;
                if let Some(factor) = config.realtime {
                    let (wall, bag) =
                        *replay_origin.get_or_insert((Instant::now(), message.log_time_ns));
                    let due = Duration::from_secs_f64(
                        message.log_time_ns.saturating_sub(bag) as f64 * 1e-9 / factor,
                    );
                    if let Some(wait) = due.checked_sub(wall.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                clock.set_ns(message.log_time_ns);
                match sensor_in(type_name, &message.data, message.log_time_ns) {
                    Ok(sensor) => {
                        report.fed += 1;
                        ports.take_waiting(&sensor);
                    }
                    Err(BagInputError::Dropped(reason)) => ports.refuse(reason, role.name()),
                    Err(error) => {
                        report.undecodable += 1;
                        if report.undecodable <= 3 {
                            tracing::warn!(bag = %report.path.display(), topic = %source.bag.topics()[message.topic].name, %error, "message skipped");
                        }
                    }
                }
                if Some(message.topic) == camera && config.realtime.is_none() {
                    state.images_read += 1;
                    // The bag waits for the trainer: never more frames ahead of it than the
                    // replay warm-up plus this step's share.
                    let mut stalled_since = Instant::now();
                    let mut last_step = steps_seen.load(Ordering::Relaxed);
                    loop {
                        let step = steps_seen.load(Ordering::Relaxed);
                        let allowed = min_replay + (step - start_step + 1) as f64 * frames_per_step;
                        if (state.images_read as f64) <= allowed
                            || step >= start_step + target_steps
                            || stop.load(Ordering::Relaxed)
                            || runtime.ended().is_some()
                        {
                            break;
                        }
                        if step != last_step {
                            last_step = step;
                            stalled_since = Instant::now();
                        } else if stalled_since.elapsed().as_secs_f64() > STALL_S {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                if Some(message.topic) == camera && config.realtime.is_some() {
                    state.images_read += 1;
                }
                if last_progress.elapsed() > Duration::from_millis(200) {
                    last_progress = Instant::now();
                    report_progress(&mut state, &mut progress);
                }
                if stop.load(Ordering::Relaxed) || runtime.ended().is_some() {
                    report.damage = merge(&report.damage, messages.damage());
                    break 'passes;
                }
            }
            report.damage = merge(&report.damage, messages.damage());
            // The next bag (or pass) is a new episode even if its stamps continue this one's.
            ports.end_episode();
        }
        epochs_done = epoch;
    }
    // Every frame is in; let the trainer take the steps that remain (played live, the session
    // ends with the data, as a robot's does).
    let mut stalled_since = Instant::now();
    let mut last_step = steps_seen.load(Ordering::Relaxed);
    while config.realtime.is_none() && !stop.load(Ordering::Relaxed) && runtime.ended().is_none() {
        let step = steps_seen.load(Ordering::Relaxed);
        if step >= start_step + target_steps {
            break;
        }
        if step != last_step {
            last_step = step;
            stalled_since = Instant::now();
        } else if stalled_since.elapsed().as_secs_f64() > 4.0 * STALL_S {
            tracing::warn!(
                step,
                target = start_step + target_steps,
                "training stopped advancing (too little data for a batch of sequences?)"
            );
            break;
        }
        if last_progress.elapsed() > Duration::from_millis(200) {
            last_progress = Instant::now();
            report_progress(&mut state, &mut progress);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    report_progress(&mut state, &mut progress);
    let finished = runtime.shutdown()?;
    let outcome = finished.trainer.ok_or(NodeError::Crashed("trainer"))?;
    let seen = std::mem::take(&mut *lock(&seen));
    let encoder = finished.encoder.unwrap_or_default();
    let latency = |q: f64| autodidact_learn::stats::percentile(&encoder.latencies_s, q);
    Ok(BagTrainReport {
        wall_s: started.elapsed().as_secs_f64(),
        bags: reports,
        epochs: epochs_done,
        collector: finished.collector,
        train_step: outcome.trainer.step_count(),
        steps_this_run: outcome.trainer.step_count() - start_step,
        transitions: outcome.pushed,
        first_losses: seen.first,
        last_losses: seen.last,
        model_version: seen.model_version.max(handle.current().version),
        checkpoint,
        checkpoint_failures: outcome.checkpoint_failures,
        peak_rss_mib: peak_rss_mib(),
        embeddings: encoder.embedded,
        latency_p50_s: latency(50.0),
        latency_p99_s: latency(99.0),
        trainer: Some(outcome.trainer),
    })
}

/// The process's peak resident memory (`VmHWM` of /proc/self/status), MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?;
    let kb: f64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Damage of several passes over one bag: the counts of the newest pass (each pass meets the
/// same damage), the notes of the first.
fn merge(before: &Damage, now: &Damage) -> Damage {
    if before.is_clean() {
        now.clone()
    } else {
        before.clone()
    }
}
