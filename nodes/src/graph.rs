//! The whole node graph in one process on the simulator: sim → collector → trainer + encoder
//! → viz, each on its own thread, joined by bounded queues. This is `autodidact run`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use autodidact_learn::metrics::probe_r2;
use autodidact_learn::{Losses, Trainer, TrainerConfig};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::clock::{Clock, ManualClock, WallClock};
use crate::collector::{Collector, CollectorConfig, CollectorStats, Frame};
use crate::encoder::{EncodeRequest, EncoderConfig, EncoderStats, run_encoder};
use crate::msg::{Embedding, SensorMsg};
use crate::sim::{SimNodeConfig, SimNodeStats, SimTick, run_sim};
use crate::stats::DropReason;
use crate::trainer::{TrainerEvent, TrainerNodeConfig, run_trainer};
use crate::viz::{VizConfig, VizEvent, VizStats, open_recording, run_viz};
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
    /// Keep every n-th frame for the end-of-run pose probe (the stride doubles whenever 4000
    /// frames are kept, so long runs stay bounded).
    #[serde(default = "default_probe_stride")]
    pub probe_stride: usize,
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
            probe_stride: default_probe_stride(),
        }
    }

    /// Checks that the parts fit together.
    pub fn validate(&self) -> Result<(), NodeError> {
        let camera = &self.sim.sim.camera;
        let image = &self.trainer.model.encoder.image;
        let mismatch = |what: String| Err(NodeError::Setup(what));
        if (camera.width, camera.height) != (self.collector.width, self.collector.height) {
            return mismatch(format!(
                "collector expects {}x{} images, the sim camera makes {}x{}",
                self.collector.width, self.collector.height, camera.width, camera.height
            ));
        }
        if (image.width, image.height) != (camera.width as usize, camera.height as usize) {
            return mismatch(format!(
                "the model takes {}x{} images, the camera makes {}x{}",
                image.width, image.height, camera.width, camera.height
            ));
        }
        if self.trainer.model.encoder.proprio_dim != self.collector.proprio.dim() {
            return mismatch(format!(
                "the model takes {} proprio values, the collector makes {}",
                self.trainer.model.encoder.proprio_dim,
                self.collector.proprio.dim()
            ));
        }
        self.trainer.validate()?;
        self.sim.sim.validate()?;
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
}

/// What a run did, measured.
#[derive(Debug, Serialize)]
pub struct GraphReport {
    /// Wall time of the run, seconds.
    pub wall_s: f64,
    /// Sim node counters.
    pub sim: SimNodeStats,
    /// Collector counters (frames, transitions, drops by reason).
    pub collector: CollectorStats,
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
    /// Pose probe (x, y, sin yaw, cos yaw) on the run's own frames with the final weights:
    /// fit on the first 70 %, scored on the last 30 %.
    pub probe_r2: Option<f64>,
    /// Per target.
    pub probe_r2_per_target: Option<Vec<f64>>,
    /// Telemetry.
    pub viz: VizStats,
    /// The trainer at the end (weights, replay buffer).
    #[serde(skip)]
    pub trainer: Option<Trainer>,
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

/// What the graph gathers from its components while it runs.
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
}

fn offer<T>(to: &SyncSender<T>, item: T, drops: &mut u64) {
    match to.try_send(item) {
        Ok(()) | Err(TrySendError::Disconnected(_)) => {}
        Err(TrySendError::Full(_)) => *drops += 1,
    }
}

/// Names of the proprio vector's entries, for display.
pub(crate) fn proprio_names(config: &CollectorConfig) -> Vec<String> {
    let p = &config.proprio;
    let mut names: Vec<String> = p
        .joints
        .iter()
        .map(|j| format!("joint_velocity/{j}"))
        .collect();
    if p.use_imu {
        names.extend(["imu/gyro_z", "imu/accel_x", "imu/accel_y"].map(String::from));
    }
    if p.use_odometry {
        names.extend(["odom/linear_x", "odom/angular_z"].map(String::from));
    }
    names
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
    let sim_clock = ManualClock::new();
    let mut trainer = Trainer::new(config.trainer.clone())?;
    let handle = trainer.encoder_handle();
    let (recording, destination) = open_recording(&config.viz)?;
    let viz_on = !matches!(config.viz.sink, crate::viz::VizSink::Off);

    let (sensor_tx, sensor_rx) = sync_channel::<SimTick>(256);
    let (frame_tx, frame_rx) = sync_channel::<EncodeRequest>(config.encoder.queue.max(1));
    let (transition_tx, transition_rx) = sync_channel(4096);
    let (viz_tx, viz_rx) = sync_channel::<VizEvent>(config.viz.queue.max(1));
    let (embedding_tx, embedding_rx) = sync_channel::<Embedding>(1024);
    let (event_tx, event_rx) = sync_channel::<TrainerEvent>(1024);
    let trainer_stop = AtomicBool::new(false);
    let sim_steps = std::sync::atomic::AtomicU64::new(0);

    std::thread::scope(|scope| -> Result<GraphReport, NodeError> {
        let sim_thread = std::thread::Builder::new()
            .name("sim".into())
            .spawn_scoped(scope, || {
                let deadline = config
                    .max_wall_s
                    .and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok());
                let stop_sim = AtomicBool::new(false);
                let result = run_sim(
                    &config.sim,
                    config.steps,
                    &stop_sim,
                    &sim_clock,
                    &wall,
                    |tick| {
                        sim_steps.fetch_add(1, Ordering::Relaxed);
                        if stop.load(Ordering::Relaxed)
                            || deadline.is_some_and(|d| started.elapsed() >= d)
                        {
                            stop_sim.store(true, Ordering::Relaxed);
                        }
                        // The collector is far faster than the sim: a full queue means it is
                        // catching up, and the sim (the data's source) waits rather than lose data.
                        if sensor_tx.send(tick).is_err() {
                            stop_sim.store(true, Ordering::Relaxed);
                        }
                    },
                );
                drop(sensor_tx);
                result
            })
            .map_err(|e| NodeError::Setup(format!("sim thread: {e}")))?;

        let trainer_config = config.trainer_node.clone();
        let trainer_stop = &trainer_stop;
        let trainer_thread = std::thread::Builder::new()
            .name("trainer".into())
            .spawn_scoped(scope, move || {
                run_trainer(
                    &trainer_config,
                    trainer,
                    transition_rx,
                    trainer_stop,
                    |event| {
                        // Status and health also feed the report; never block training for them.
                        let _ = event_tx.try_send(event);
                    },
                )
            })
            .map_err(|e| NodeError::Setup(format!("trainer thread: {e}")))?;

        let encoder_handle = handle.clone();
        let encoder_viz = viz_tx.clone();
        let encoder_thread = std::thread::Builder::new()
            .name("encoder".into())
            .spawn_scoped(scope, move || {
                let mut viz_drops = 0u64;
                let stats = run_encoder(&config.encoder, &encoder_handle, frame_rx, |embedding| {
                    if viz_on {
                        offer(
                            &encoder_viz,
                            VizEvent::Embedding(embedding.clone()),
                            &mut viz_drops,
                        );
                    }
                    let _ = embedding_tx.send(embedding);
                });
                (stats, viz_drops)
            })
            .map_err(|e| NodeError::Setup(format!("encoder thread: {e}")))?;

        let viz_config = config.viz.clone();
        let viz_thread = std::thread::Builder::new()
            .name("viz".into())
            .spawn_scoped(scope, move || {
                run_viz(&viz_config, recording, destination, viz_rx)
            })
            .map_err(|e| NodeError::Setup(format!("viz thread: {e}")))?;

        // The collector runs here, and gathers outputs for the report as they come.
        let clock: Arc<dyn Clock> = Arc::new(sim_clock.clone());
        let mut collector = Collector::new(config.collector.clone(), clock);
        let names = proprio_names(&config.collector);
        let mut queue_drops: BTreeMap<String, u64> = BTreeMap::new();
        let (mut encoder_drops, mut trainer_drops, mut viz_drops) = (0u64, 0u64, 0u64);
        // Frames for the end-of-run probe, each with the true pose of its tick.
        let mut kept_frames: Vec<(Frame, [f32; 4])> = Vec::new();
        let mut probe_stride = config.probe_stride.max(1);
        let mut outputs = Outputs::default();
        let mut frames_seen = 0usize;
        let mut last_progress = Instant::now();
        let collect_outputs = |outputs: &mut Outputs, viz_drops: &mut u64| {
            for embedding in embedding_rx.try_iter() {
                outputs.embedding_count += 1;
                if outputs.embeddings.len() == KEPT_EMBEDDINGS {
                    outputs.embeddings.pop_front();
                }
                outputs.embeddings.push_back(embedding);
            }
            for event in event_rx.try_iter() {
                let viz_event = match event {
                    TrainerEvent::Status(status) => {
                        outputs.loss_history.push(status.losses.total);
                        outputs.first_losses.get_or_insert(status.losses);
                        outputs.last_losses = Some(status.losses);
                        outputs.model_version = outputs.model_version.max(status.model_version);
                        VizEvent::Status(status)
                    }
                    TrainerEvent::Health(health) => {
                        outputs.health_reports += 1;
                        VizEvent::Health(health)
                    }
                    TrainerEvent::Preview(preview) => VizEvent::Preview(Box::new(preview)),
                    // Rollouts are not served in-process; the planner takes them from the trainer.
                    TrainerEvent::Dynamics(_) => continue,
                };
                if viz_on {
                    offer(&viz_tx, viz_event, viz_drops);
                }
            }
        };
        let mut handle_tick = |tick: SimTick,
                               collector: &mut Collector,
                               encoder_drops: &mut u64,
                               trainer_drops: &mut u64,
                               viz_drops: &mut u64| {
            let pose = tick.truth.robot_pose;
            let pose = [
                pose.x as f32,
                pose.y as f32,
                pose.yaw.sin() as f32,
                pose.yaw.cos() as f32,
            ];
            if viz_on {
                offer(&viz_tx, VizEvent::Truth(Box::new(tick.truth)), viz_drops);
            }
            for message in &tick.messages {
                let collected = collector.on_message(message);
                if let Some(frame) = collected.frame {
                    if viz_on && let SensorMsg::Image(image) = message {
                        let proprio = names
                            .iter()
                            .cloned()
                            .zip(frame.proprio.iter().copied())
                            .collect();
                        offer(
                            &viz_tx,
                            VizEvent::Camera {
                                stamp_ns: frame.stamp_ns,
                                width: image.width,
                                height: image.height,
                                rgb: frame.image.clone(),
                                proprio,
                            },
                            viz_drops,
                        );
                    }
                    if frames_seen.is_multiple_of(probe_stride) {
                        if kept_frames.len() >= MAX_PROBE_FRAMES {
                            // Bounded memory on long runs: thin out evenly, keep fewer from now.
                            let mut index = 0;
                            kept_frames.retain(|_| {
                                index += 1;
                                index % 2 == 1
                            });
                            probe_stride *= 2;
                        }
                        kept_frames.push((frame.clone(), pose));
                    }
                    frames_seen += 1;
                    let before = *encoder_drops;
                    offer(
                        &frame_tx,
                        EncodeRequest {
                            frame,
                            queued_at: Instant::now(),
                        },
                        encoder_drops,
                    );
                    if *encoder_drops > before {
                        collector.record_drop(DropReason::QueueFull, "frame for the encoder");
                    }
                }
                if let Some(transition) = collected.transition {
                    let before = *trainer_drops;
                    offer(&transition_tx, transition, trainer_drops);
                    if *trainer_drops > before {
                        collector.record_drop(DropReason::QueueFull, "transition for the trainer");
                    }
                }
            }
        };
        let total_steps = config.steps;
        let mut report_progress = |outputs: &Outputs| {
            progress(&Progress {
                sim_steps: sim_steps.load(Ordering::Relaxed),
                total_steps,
                train_steps: outputs.loss_history.len() as u64,
                embeddings: outputs.embedding_count,
                loss: outputs.last_losses.map(|l| l.total),
            });
        };
        for tick in sensor_rx {
            handle_tick(
                tick,
                &mut collector,
                &mut encoder_drops,
                &mut trainer_drops,
                &mut viz_drops,
            );
            if last_progress.elapsed() > Duration::from_millis(200) {
                last_progress = Instant::now();
                collect_outputs(&mut outputs, &mut viz_drops);
                report_progress(&outputs);
            }
        }
        if let Some(transition) = collector.flush() {
            offer(&transition_tx, transition, &mut trainer_drops);
        }
        drop(frame_tx);
        drop(transition_tx);
        let sim_stats = sim_thread.join().map_err(|_| NodeError::Crashed("sim"))??;
        let (encoder_stats, encoder_viz_drops) = encoder_thread
            .join()
            .map_err(|_| NodeError::Crashed("encoder"))?;
        let encoder_stats = encoder_stats?;
        trainer_stop.store(true, Ordering::Relaxed);
        let outcome = trainer_thread
            .join()
            .map_err(|_| NodeError::Crashed("trainer"))??;
        collect_outputs(&mut outputs, &mut viz_drops);
        report_progress(&outputs);
        drop(viz_tx);
        let viz_stats = viz_thread.join().map_err(|_| NodeError::Crashed("viz"))?;
        queue_drops.insert("encoder".into(), encoder_drops);
        queue_drops.insert("trainer".into(), trainer_drops);
        queue_drops.insert("viz".into(), viz_drops + encoder_viz_drops);

        let (probe, per_target) = pose_probe(&outcome.trainer, &kept_frames)
            .map_or((None, None), |(r2, per)| (Some(r2), Some(per)));
        Ok(GraphReport {
            wall_s: started.elapsed().as_secs_f64(),
            sim: sim_stats,
            collector: collector.stats(),
            queue_drops,
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
            probe_r2: probe,
            probe_r2_per_target: per_target,
            viz: viz_stats,
            trainer: Some(outcome.trainer),
        })
    })
}

/// Probe of the final weights: fit on the first 70 % of the kept frames, scored on the rest.
fn pose_probe(trainer: &Trainer, labelled: &[(Frame, [f32; 4])]) -> Option<(f64, Vec<f64>)> {
    if labelled.len() < 40 {
        return None;
    }
    let snapshot = trainer.snapshot();
    let mut embeddings = Vec::with_capacity(labelled.len());
    for chunk in labelled.chunks(128) {
        let images: Vec<&[u8]> = chunk.iter().map(|(f, _)| &*f.image).collect();
        let proprio: Vec<&[f32]> = chunk.iter().map(|(f, _)| f.proprio.as_slice()).collect();
        embeddings.extend(snapshot.embed_batch(&images, &proprio).ok()?);
    }
    let targets: Vec<Vec<f32>> = labelled.iter().map(|(_, p)| p.to_vec()).collect();
    let split = labelled.len() * 7 / 10;
    probe_r2(
        &embeddings[..split],
        &targets[..split],
        &embeddings[split..],
        &targets[split..],
        1e-3,
    )
    .ok()
}
