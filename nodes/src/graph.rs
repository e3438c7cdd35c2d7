//! The whole node graph in one process on the simulator: sim → collector → trainer + encoder
//! → viz. This is `autodidact run`: the simulator is the transport, the workers are the ones
//! every ROS node runs ([`crate::runtime`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use autodidact_learn::baseline::PixelBaseline;
use autodidact_learn::metrics::probe_r2;
use autodidact_learn::{Losses, Trainer, TrainerConfig};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::bags::SimRecorder;
use crate::components::collector::{Collector, CollectorConfig, CollectorStats, Frame};
use crate::components::encoder::{EncoderConfig, EncoderStats};
use crate::components::sim::{SimNodeConfig, SimNodeStats, SimTick, run_sim};
use crate::components::trainer::{TrainerEvent, TrainerNodeConfig};
use crate::components::viz::{Layout, VizConfig, VizEvent, VizSink, VizStats, open_recording};
use crate::msg::Embedding;
use crate::runtime::clock::{ManualClock, WallClock};
use crate::runtime::{FrameQueue, Parts, Runtime, Sinks, lock};
use autodidact_learn::stats::percentile;

/// Everything the in-process graph needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphConfig {
    /// The sim node.
    #[serde(default)]
    pub sim: SimNodeConfig,
    /// The collector (its image size and proprio layout must match the trainer's model).
    #[serde(default)]
    pub collector: CollectorConfig,
    /// The world model and its training.
    pub trainer: TrainerConfig,
    /// The trainer node.
    #[serde(default)]
    pub trainer_node: TrainerNodeConfig,
    /// The encoder node.
    #[serde(default)]
    pub encoder: EncoderConfig,
    /// Telemetry.
    #[serde(default)]
    pub viz: VizConfig,
    /// Control steps to simulate.
    pub steps: u64,
    /// Stop after this many wall seconds even if steps remain.
    #[serde(default)]
    pub max_wall_s: Option<f64>,
    /// Also write the simulator's streams as a rosbag2 MCAP directory here (must not exist).
    #[serde(default)]
    pub bag_out: Option<std::path::PathBuf>,
    /// Keep every n-th frame for the end-of-run pose probe (the stride doubles whenever 4000
    /// frames are kept, so long runs stay bounded).
    #[serde(default = "default_probe_stride")]
    pub probe_stride: usize,
    /// Simulated robots feeding the one trainer, each in its own world (robot `k`'s seed is
    /// `sim.seed + 1000·(k − 1)`), with its own collector and episodes; each runs `steps`.
    #[serde(default = "default_robots")]
    pub robots: usize,
}

/// Most robots one run simulates.
pub const MAX_SIM_ROBOTS: usize = 16;

/// Seed offset between the worlds of two robots of a run.
pub const ROBOT_SEED_STRIDE: u64 = 1000;

fn default_robots() -> usize {
    1
}

/// Newest embeddings the report keeps (about 6 MB at 128 dimensions); all are counted.
pub const KEPT_EMBEDDINGS: usize = 10_000;

/// Most frames kept for the end-of-run probe (about 50 MB of 64² images).
const MAX_PROBE_FRAMES: usize = 4000;

fn default_probe_stride() -> usize {
    2
}

impl GraphConfig {
    /// The default graph for `steps` control steps: a 64×64 camera, the default model.
    pub fn new(steps: u64) -> Self {
        let sim = SimNodeConfig::default();
        let collector = CollectorConfig {
            width: sim.sim.camera.width,
            height: sim.sim.camera.height,
            ..CollectorConfig::default()
        };
        let trainer = TrainerConfig::for_inputs(
            collector.width as usize,
            collector.height as usize,
            collector.proprio.dim(),
        );
        Self {
            sim,
            collector,
            trainer,
            trainer_node: TrainerNodeConfig::default(),
            encoder: EncoderConfig::default(),
            viz: VizConfig::default(),
            steps,
            max_wall_s: None,
            bag_out: None,
            probe_stride: default_probe_stride(),
            robots: default_robots(),
        }
    }

    /// Checks that the parts fit together.
    pub fn validate(&self) -> Result<(), NodeError> {
        let camera = &self.sim.sim.camera;
        let mismatch = |what: String| Err(NodeError::Setup(what));
        if (camera.width, camera.height) != (self.collector.width, self.collector.height) {
            return mismatch(format!(
                "collector expects {}x{} images, the sim camera makes {}x{}",
                self.collector.width, self.collector.height, camera.width, camera.height
            ));
        }
        if !(1..=MAX_SIM_ROBOTS).contains(&self.robots) {
            return mismatch(format!(
                "robots must be 1..={MAX_SIM_ROBOTS}, got {}",
                self.robots
            ));
        }
        if self.robots > 1 && self.bag_out.is_some() {
            return mismatch("a bag is recorded from one robot: bag_out needs robots = 1".into());
        }
        self.collector.check_model(&self.trainer)?;
        self.trainer.validate()?;
        self.trainer_node.validate(self.trainer.replay.capacity)?;
        self.encoder.validate()?;
        self.collector.validate()?;
        self.viz.validate()?;
        self.sim.validate()?;
        Ok(())
    }
}

/// Where the run is, for a progress bar.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Control steps simulated.
    pub sim_steps: u64,
    /// Of this many.
    pub total_steps: u64,
    /// Training steps taken.
    pub train_steps: u64,
    /// Embeddings produced.
    pub embeddings: u64,
    /// Total loss of the newest step.
    pub loss: Option<f32>,
    /// Frames the collector made.
    pub frames: u64,
    /// Frames on their way to the encoder or in it (made, not yet embedded or dropped).
    pub encoder_backlog: u64,
    /// Messages the collector dropped, all reasons (queue_full included).
    pub dropped: u64,
    /// Telemetry events dropped because the viewer's queue was full.
    pub viz_dropped: u64,
    /// Replay buffer length at the newest training step.
    pub replay_len: usize,
}

/// What a run did, measured.
#[derive(Debug, Serialize)]
pub struct GraphReport {
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Sim node counters.
    pub sim: SimNodeStats,
    /// Collector counters (frames, transitions, drops by reason), summed over the robots.
    pub collector: CollectorStats,
    /// Each robot: its sim and its collector (one entry for a single robot).
    pub robots: Vec<RobotReport>,
    /// Frames not handed to a component because its queue was full, by component.
    pub queue_drops: BTreeMap<String, u64>,
    /// Encoder counters (latencies omitted from JSON).
    #[serde(skip)]
    pub encoder: EncoderStats,
    /// The newest [`KEPT_EMBEDDINGS`] embeddings, in order.
    #[serde(skip)]
    pub embeddings: Vec<Embedding>,
    /// Embeddings produced.
    pub embedding_count: u64,
    /// Image→embedding latency percentiles, seconds: p50, p99.
    pub latency_p50_s: f64,
    /// See `latency_p50_s`.
    pub latency_p99_s: f64,
    /// Training steps taken.
    pub train_steps: u64,
    /// Losses of the first and last training step.
    pub first_losses: Option<Losses>,
    /// See `first_losses`.
    pub last_losses: Option<Losses>,
    /// Total loss of every step, in order.
    #[serde(skip)]
    pub loss_history: Vec<f32>,
    /// Health reports published.
    pub health_reports: u64,
    /// Newest encoder version.
    pub model_version: u64,
    /// Where training and inference ran, and why.
    pub placements: autodidact_learn::Placements,
    /// Pose probe (x, y, sin yaw, cos yaw) of the final weights on held-out stretches of the
    /// run's own frames (robot 1's), with its baselines and split sizes; `None` when the run
    /// kept too few frames.
    pub probe: Option<PoseProbe>,
    /// Telemetry.
    pub viz: VizStats,
    /// The bag written with `bag_out`.
    pub bag_out: Option<BagOutReport>,
    /// The trainer at the end (weights, replay buffer).
    #[serde(skip)]
    pub trainer: Option<Trainer>,
}

/// One robot of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RobotReport {
    /// `robot1`, `robot2`, …
    pub name: String,
    /// Seed of its first world.
    pub seed: u64,
    /// Its sim.
    pub sim: SimNodeStats,
    /// Its collector (frames, transitions, episodes, drops).
    pub collector: CollectorStats,
}

/// The bag a run recorded.
#[derive(Debug, Clone, Serialize)]
pub struct BagOutReport {
    /// Its directory.
    pub path: std::path::PathBuf,
    /// Sim ticks in it.
    pub ticks: u64,
    /// Why recording stopped early, if it did (the run itself goes on).
    pub error: Option<String>,
}

impl GraphReport {
    /// Simulated frames per wall second.
    pub fn frames_per_s(&self) -> f64 {
        self.sim.steps as f64 / self.wall_s.max(1e-9)
    }

    /// Training steps per wall second.
    pub fn train_steps_per_s(&self) -> f64 {
        self.train_steps as f64 / self.wall_s.max(1e-9)
    }
}

/// What the graph gathers from the workers' outputs while it runs.
#[derive(Default)]
struct Outputs {
    /// The newest [`KEPT_EMBEDDINGS`].
    embeddings: VecDeque<Embedding>,
    /// Every embedding produced.
    embedding_count: u64,
    loss_history: Vec<f32>,
    first_losses: Option<Losses>,
    last_losses: Option<Losses>,
    health_reports: u64,
    model_version: u64,
    replay_len: usize,
}

impl Outputs {
    fn sinks(outputs: &Arc<Mutex<Outputs>>) -> Sinks {
        let embeddings = Arc::clone(outputs);
        let events = Arc::clone(outputs);
        Sinks {
            embedding: Box::new(move |embedding| {
                let mut outputs = lock(&embeddings);
                outputs.embedding_count += 1;
                if outputs.embeddings.len() == KEPT_EMBEDDINGS {
                    outputs.embeddings.pop_front();
                }
                outputs.embeddings.push_back(embedding.clone());
            }),
            trainer: Box::new(move |event| {
                let mut outputs = lock(&events);
                match event {
                    TrainerEvent::Status(status) => {
                        outputs.loss_history.push(status.losses.total);
                        outputs.first_losses.get_or_insert(status.losses);
                        outputs.last_losses = Some(status.losses);
                        outputs.model_version = outputs.model_version.max(status.model_version);
                        outputs.replay_len = status.replay_len;
                    }
                    TrainerEvent::Health(_) => outputs.health_reports += 1,
                    TrainerEvent::Preview(_) | TrainerEvent::Dynamics(_) => {}
                }
            }),
            command: Box::new(|_| {}),
        }
    }
}

/// Frames kept for the end-of-run probe, each with the true pose of its tick; thinned out
/// evenly whenever [`MAX_PROBE_FRAMES`] are kept, so long runs stay bounded.
struct ProbeFrames {
    kept: Vec<(Frame, [f32; 4])>,
    stride: usize,
    seen: usize,
}

impl ProbeFrames {
    fn keep(&mut self, frame: Frame, pose: [f32; 4]) {
        if self.seen.is_multiple_of(self.stride) {
            if self.kept.len() >= MAX_PROBE_FRAMES {
                let mut index = 0;
                self.kept.retain(|_| {
                    index += 1;
                    index % 2 == 1
                });
                self.stride *= 2;
            }
            self.kept.push((frame, pose));
        }
        self.seen += 1;
    }
}

/// Runs the graph until `config.steps` sim steps are done (or `max_wall_s`, or `stop`), then
/// lets every component finish its queue and reports. `progress` is called a few times a second.
pub fn run_graph(
    config: &GraphConfig,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> Result<GraphReport, NodeError> {
    config.validate()?;
    let started = Instant::now();
    let wall = WallClock::new();
    let mut trainer = Trainer::new(config.trainer.clone())?;
    let placements = trainer.placements().clone();
    tracing::info!(
        training_on = %placements.training,
        inference_on = %placements.inference,
        "backends"
    );
    let handle = trainer.encoder_handle();
    let viz = match config.viz.sink {
        VizSink::Off => None,
        _ => {
            let (recording, destination) =
                open_recording(&config.viz, Layout::robots(config.robots))?;
            Some((config.viz.clone(), recording, destination))
        }
    };
    let outputs = Arc::new(Mutex::new(Outputs::default()));
    // One sim clock per robot: each world keeps its own time.
    let sim_clocks: Vec<ManualClock> = (0..config.robots).map(|_| ManualClock::new()).collect();
    let runtime = Runtime::start(
        Parts {
            collectors: (0u32..)
                .zip(&sim_clocks)
                .map(|(index, clock)| {
                    Collector::new(config.collector.clone(), Arc::new(clock.clone()))
                        .for_source(index)
                })
                .collect(),
            dynamics: Arc::new(trainer.dynamics_snapshot()),
            weights: handle.clone(),
            trainer: Some((trainer, config.trainer_node.clone())),
            encoder: Some((
                config.encoder.clone(),
                FrameQueue::Bounded(config.encoder.queue),
            )),
            planner: None,
            viz,
        },
        Outputs::sinks(&outputs),
    )?;
    let ports = Arc::clone(runtime.ports());
    let mut recorder = match &config.bag_out {
        Some(dir) => Some(SimRecorder::create(
            dir,
            config.sim.sim.camera.clone(),
            crate::bags::record::CAMERA_FRAME,
        )?),
        None => None,
    };
    let mut bag_error = None;

    let (sensor_tx, sensor_rx) = sync_channel::<(usize, SimTick)>(256);
    let sim_steps = AtomicU64::new(0);
    let mut probe = ProbeFrames {
        kept: Vec::new(),
        stride: config.probe_stride.max(1),
        seen: 0,
    };
    let report_progress = |progress: &mut dyn FnMut(&Progress), runtime: &Runtime| {
        let collected = runtime.ports().collector_stats();
        let (encoder_drops, _) = runtime.ports().queue_drops();
        let outputs = lock(&outputs);
        progress(&Progress {
            sim_steps: sim_steps.load(Ordering::Relaxed),
            total_steps: config.steps * config.robots as u64,
            train_steps: outputs.loss_history.len() as u64,
            embeddings: outputs.embedding_count,
            loss: outputs.last_losses.map(|l| l.total),
            frames: collected.frames,
            encoder_backlog: collected
                .frames
                .saturating_sub(outputs.embedding_count + encoder_drops),
            dropped: collected.dropped.values().sum(),
            viz_dropped: runtime.viz_dropped(),
            replay_len: outputs.replay_len,
        });
    };
    let sim_stats = std::thread::scope(|scope| -> Result<Vec<SimNodeStats>, NodeError> {
        let mut sim_threads = Vec::with_capacity(config.robots);
        for (robot, sim_clock) in sim_clocks.iter().enumerate() {
            let sensor_tx = sensor_tx.clone();
            let (sim_steps, wall) = (&sim_steps, &wall);
            let mut sim = config.sim.clone();
            sim.seed = robot_seed(config.sim.seed, robot);
            let thread = std::thread::Builder::new()
                .name(format!("sim{}", robot + 1))
                .spawn_scoped(scope, move || {
                    let deadline = config
                        .max_wall_s
                        .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok());
                    let stop_sim = AtomicBool::new(false);
                    run_sim(&sim, config.steps, &stop_sim, sim_clock, wall, |tick| {
                        sim_steps.fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed)
                            || deadline.is_some_and(|d| started.elapsed() >= d)
                        {
                            stop_sim.store(true, Ordering::Relaxed);
                        }
                        // The collector is far faster than the sim: a full queue means it is
                        // catching up, and the sim (the data's source) waits rather than lose
                        // data.
                        if sensor_tx.send((robot, tick)).is_err() {
                            stop_sim.store(true, Ordering::Relaxed);
                        }
                    })
                })
                .map_err(|e| NodeError::Setup(format!("sim thread: {e}")))?;
            sim_threads.push(thread);
        }
        // Only the sims hold senders now: the loop below ends when every sim has.
        drop(sensor_tx);

        // The sim is the transport here: each tick's messages go through the runtime's ports.
        let mut last_progress = Instant::now();
        for (robot, tick) in sensor_rx {
            let pose = tick.truth.robot_pose;
            let pose = [
                pose.x as f32,
                pose.y as f32,
                pose.yaw.sin() as f32,
                pose.yaw.cos() as f32,
            ];
            if let Some(bag) = &mut recorder
                && let Err(error) = bag.record(&tick)
            {
                tracing::error!(%error, "recording the bag stopped; the run goes on");
                bag_error = Some(error.to_string());
                recorder = None;
            }
            ports.offer_viz(|| VizEvent::Truth {
                robot,
                truth: Box::new(tick.truth),
            });
            for message in &tick.messages {
                // The probe is robot 1's: poses of different worlds are not one space.
                if let Some(frame) = ports.take_from(robot, message)
                    && robot == 0
                {
                    probe.keep(frame, pose);
                }
            }
            if last_progress.elapsed() > Duration::from_millis(200) {
                last_progress = Instant::now();
                report_progress(&mut progress, &runtime);
            }
            if runtime.ended().is_some() {
                // A worker failed: stop the sim; shutdown returns the error.
                break;
            }
        }
        sim_threads
            .into_iter()
            .map(|thread| thread.join().map_err(|_| NodeError::Crashed("sim"))?)
            .collect()
    });
    report_progress(&mut progress, &runtime);
    let bag_out = config.bag_out.as_ref().map(|path| {
        let ticks = recorder.as_ref().map_or(0, SimRecorder::ticks);
        let error = match recorder.take() {
            Some(bag) => bag.finish().err().map(|e| e.to_string()),
            None => bag_error.take(),
        };
        BagOutReport {
            path: path.clone(),
            ticks,
            error,
        }
    });
    let finished = runtime.shutdown()?;
    let sim_stats = sim_stats?;
    let robots: Vec<RobotReport> = sim_stats
        .iter()
        .zip(&finished.robots)
        .enumerate()
        .map(|(robot, (sim, collector))| RobotReport {
            name: format!("robot{}", robot + 1),
            seed: robot_seed(config.sim.seed, robot),
            sim: sim.clone(),
            collector: collector.clone(),
        })
        .collect();
    let sim_total = SimNodeStats {
        steps: sim_stats.iter().map(|s| s.steps).sum(),
        episodes: sim_stats.iter().map(|s| s.episodes).sum(),
        paced_wait_s: sim_stats.iter().map(|s| s.paced_wait_s).sum(),
    };
    let outcome = finished.trainer.ok_or(NodeError::Crashed("trainer"))?;
    let encoder_stats = finished.encoder.unwrap_or_default();
    let outputs = std::mem::take(&mut *lock(&outputs));

    let probe = pose_probe(&outcome.trainer, config, &probe.kept);
    Ok(GraphReport {
        wall_s: started.elapsed().as_secs_f64(),
        sim: sim_total,
        collector: finished.collector,
        robots,
        queue_drops: finished.queue_drops,
        latency_p50_s: percentile(&encoder_stats.latencies_s, 50.0).unwrap_or(0.0),
        latency_p99_s: percentile(&encoder_stats.latencies_s, 99.0).unwrap_or(0.0),
        embedding_count: outputs.embedding_count,
        encoder: encoder_stats,
        embeddings: outputs.embeddings.into(),
        train_steps: outcome.trainer.step_count(),
        first_losses: outputs.first_losses,
        last_losses: outputs.last_losses,
        loss_history: outputs.loss_history,
        health_reports: outputs.health_reports,
        model_version: outputs.model_version.max(handle.current().version),
        placements,
        probe,
        viz: finished.viz.unwrap_or_default(),
        bag_out,
        trainer: Some(outcome.trainer),
    })
}

/// Seed of robot `robot`'s (0-based) first world.
pub fn robot_seed(seed: u64, robot: usize) -> u64 {
    seed.wrapping_add(ROBOT_SEED_STRIDE * robot as u64)
}

/// Kept frames per block of the probe's split (at the default stride of 2, 4 s of driving).
const PROBE_BLOCK: usize = 40;

/// Kept frames next to a scored block that are not fit on (they look like its first frames).
const PROBE_GUARD: usize = 5;

/// The pose probe's split into held-out stretches: of every ten blocks of [`PROBE_BLOCK`]
/// consecutive frames, blocks 2, 5 and 8 are scored and the others fit, less [`PROBE_GUARD`]
/// frames on each side of a scored block. Both parts cover the whole run (every world), and no
/// scored frame was driven next to a fitted one.
fn held_out_stretches(len: usize) -> (Vec<usize>, Vec<usize>) {
    let scored = |block: usize| matches!(block % 10, 2 | 5 | 8);
    let (mut fit, mut score) = (Vec::new(), Vec::new());
    for i in 0..len {
        let (block, at) = (i / PROBE_BLOCK, i % PROBE_BLOCK);
        let after_scored = at < PROBE_GUARD && block > 0 && scored(block - 1);
        let before_scored =
            at >= PROBE_BLOCK - PROBE_GUARD && (block + 1) * PROBE_BLOCK < len && scored(block + 1);
        if scored(block) {
            score.push(i);
        } else if !(after_scored || before_scored) {
            fit.push(i);
        }
    }
    (fit, score)
}

/// The end-of-run pose probe (x, y, sin yaw, cos yaw) on held-out stretches of the run's own
/// frames ([`held_out_stretches`]), for the final weights and for the two baselines a score must
/// beat: the same network untrained, and raw pixels projected to the embedding's size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoseProbe {
    /// Mean R² of the final weights.
    pub r2: f64,
    /// Per target.
    pub per_target: Vec<f64>,
    /// Mean R² of the untrained network.
    pub random_init: f64,
    /// Mean R² of raw pixels (8×8 RGB, projected to the embedding's size).
    pub raw_pixels: f64,
    /// Frames fit on and scored.
    pub frames: [usize; 2],
}

fn pose_probe(
    trainer: &Trainer,
    config: &GraphConfig,
    labelled: &[(Frame, [f32; 4])],
) -> Option<PoseProbe> {
    let (fit, score) = held_out_stretches(labelled.len());
    if fit.len() < 40 || score.len() < 20 {
        return None;
    }
    let embed_all = |snapshot: &autodidact_learn::EncoderSnapshot| -> Option<Vec<Vec<f32>>> {
        let mut embeddings = Vec::with_capacity(labelled.len());
        for chunk in labelled.chunks(128) {
            let images: Vec<&[u8]> = chunk.iter().map(|(f, _)| &*f.image).collect();
            let proprio: Vec<&[f32]> = chunk.iter().map(|(f, _)| f.proprio.as_slice()).collect();
            embeddings.extend(snapshot.embed_batch(&images, &proprio).ok()?);
        }
        Some(embeddings)
    };
    let targets: Vec<Vec<f32>> = labelled.iter().map(|(_, p)| p.to_vec()).collect();
    let probe = |features: &[Vec<f32>]| -> Option<(f64, Vec<f64>)> {
        let pick = |rows: &[usize], of: &[Vec<f32>]| -> Vec<Vec<f32>> {
            rows.iter().map(|&i| of[i].clone()).collect()
        };
        probe_r2(
            &pick(&fit, features),
            &pick(&fit, &targets),
            &pick(&score, features),
            &pick(&score, &targets),
            1e-3,
        )
        .ok()
    };
    let (r2, per_target) = probe(&embed_all(&trainer.snapshot())?)?;
    let untrained = Trainer::new(TrainerConfig {
        seed: config.trainer.seed.wrapping_add(0x5eed),
        ..config.trainer.clone()
    })
    .ok()?;
    let (random_init, _) = probe(&embed_all(&untrained.snapshot())?)?;
    let pixels = PixelBaseline::new(8, config.trainer.model.embed_dim(), 0x91e1).ok()?;
    let (width, height) = (
        config.collector.width as usize,
        config.collector.height as usize,
    );
    let pixel_features = labelled
        .iter()
        .map(|(f, _)| pixels.features(&f.image, width, height))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let (raw_pixels, _) = probe(&pixel_features)?;
    Some(PoseProbe {
        r2,
        per_target,
        random_init,
        raw_pixels,
        frames: [fit.len(), score.len()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_stretches_cover_the_run_and_keep_a_guard_around_each_scored_block() {
        let (fit, score) = held_out_stretches(1000);
        // 25 blocks of 40: blocks 2, 5, 8, 12, 15, 18 and 22 are scored.
        assert_eq!(score.len(), 7 * PROBE_BLOCK);
        // Scored frames are whole blocks, spread over the run.
        assert!(score.first() < Some(&200) && score.last() > Some(&800));
        assert!(fit.first() == Some(&0) && fit.last() == Some(&999));
        for &s in &score {
            for &f in &fit {
                assert!(f.abs_diff(s) > PROBE_GUARD, "fit {f} is next to scored {s}");
            }
        }
    }
}
