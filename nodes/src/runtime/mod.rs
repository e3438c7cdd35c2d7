//! The one runtime both wirings use: `autodidact run` (the in-process graph over the simulator,
//! [`crate::graph`]) and the ROS nodes ([`crate::ros`]) start, feed and stop the components
//! here, so they behave the same by construction.
//!
//! A node's work runs on worker threads, each with its own compute pool where it computes:
//!
//! ```text
//!  transport ──► Ports::take_from ──► collector ──┬─ transitions (bounded) ──► trainer thread ──► TrainerEvent sink
//!  (sim loop,     (robot k)          (robot k's)  ├─ frames (FrameQueue) ────► encoder thread ──► Embedding sink
//!   ROS tasks)                                    ├─ newest frame ───────────► planner thread ──► command sink
//!                                                 └─ camera ─┐   trainer, encoder ─┐
//!                                                            └──────────────────────┴──► viz thread (rerun)
//! ```
//!
//! The transport keeps only what is its own: the simulator loop, or the ROS subscriptions,
//! publishers (the sinks), services and timers on tokio (`ros/executor.rs`). Stopping is
//! one order everywhere ([`Runtime::shutdown`]): inputs close, the encoder and planner finish
//! what they hold, the trainer drains its queue into the replay buffer and writes its checkpoint,
//! the viewer logs what is queued.

pub(crate) mod clock;
// Only the ROS nodes follow a trainer they do not run (and the module's own tests).
#[cfg(any(feature = "ros", test))]
pub(crate) mod follow;
pub(crate) mod latest;
pub mod pool;
mod ports;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::thread::JoinHandle;

use autodidact_learn::{OdometryPose, Trainer};
use serde::Serialize;

use crate::NodeError;
use crate::components::collector::{Collector, CollectorStats};
use crate::components::encoder::{EncoderConfig, EncoderStats, run_encoder};
use crate::components::planner::{PlannerNode, PlannerOutput, PlannerStats};
use crate::components::trainer::{TrainerEvent, TrainerNodeConfig, TrainerOutcome, run_trainer};
use crate::components::viz::{VizConfig, VizEvent, VizStats, run_viz};
use crate::msg::Embedding;
use latest::{Drain, LatestCell};
pub use ports::Ports;
pub(crate) use ports::lock;
use ports::{FrameSink, VizOut};

/// How camera frames reach the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameQueue {
    /// Up to this many frames wait; a frame that finds the queue full is dropped and counted
    /// (`queue_full`). The in-process graph: the simulator runs faster than real time and every
    /// frame is embedded unless the encoder falls behind.
    Bounded(usize),
    /// Only the newest frame waits; one not taken before the next arrives is replaced (counted
    /// as superseded). A live camera: the embedding of the newest frame is what a planner wants.
    Newest,
}

/// Transitions waiting for the trainer before new ones are dropped (counted as `queue_full`):
/// about 2 minutes of a 60 Hz camera, so a trainer busy saving a checkpoint loses none.
pub const TRANSITION_QUEUE: usize = 8192;

/// What a node runs: the collector always, the other workers when given.
pub(crate) struct Parts {
    /// The collectors on the node's clock: one per robot (a single robot is robot 0), each
    /// marking its transitions with its robot index ([`Collector::for_source`]).
    pub collectors: Vec<Collector>,
    /// The trainer and its node settings (checkpoints, threads, niceness).
    pub trainer: Option<(Trainer, TrainerNodeConfig)>,
    /// The encoder's settings and how frames reach it.
    pub encoder: Option<(EncoderConfig, FrameQueue)>,
    /// The reference planner.
    pub planner: Option<PlannerNode>,
    /// Telemetry: settings, the opened recording and where it goes.
    pub viz: Option<(VizConfig, rerun::RecordingStream, Option<String>)>,
    /// The weights served to the encoder, the planner and rollouts (the trainer's own handle
    /// when training).
    pub weights: autodidact_learn::EncoderHandle,
    /// The latent dynamics matching `weights`.
    pub dynamics: Arc<autodidact_learn::inference::DynamicsSnapshot>,
}

/// Where the workers' outputs go: the transport's publishers, or the graph's report. Each is
/// called on its worker's thread.
pub(crate) struct Sinks {
    /// Every embedding, in frame order.
    pub embedding: Box<dyn FnMut(&Embedding) + Send>,
    /// Every trainer event (status after each step, health, previews, new dynamics).
    pub trainer: Box<dyn FnMut(&TrainerEvent) + Send>,
    /// Every command the planner decides.
    pub command: Box<dyn FnMut(&PlannerOutput) + Send>,
}

impl Default for Sinks {
    fn default() -> Self {
        Self {
            embedding: Box::new(|_| {}),
            trainer: Box::new(|_| {}),
            command: Box::new(|_| {}),
        }
    }
}

/// What the workers did, at shutdown.
#[derive(Debug, Default, Serialize)]
pub struct RuntimeReport {
    /// Collector counters (frames, transitions, drops by reason), summed over the robots.
    pub collector: CollectorStats,
    /// Each robot's collector counters, in robot order.
    pub robots: Vec<CollectorStats>,
    /// Frames and transitions dropped because a queue was full, and telemetry dropped because
    /// the viewer's queue was full, by worker.
    pub queue_drops: BTreeMap<String, u64>,
    /// Frames replaced by a newer one before the encoder took them ([`FrameQueue::Newest`]).
    pub frames_superseded: u64,
    /// The encoder's counters.
    #[serde(skip)]
    pub encoder: Option<EncoderStats>,
    /// The trainer after the run.
    #[serde(skip)]
    pub trainer: Option<TrainerOutcome>,
    /// The planner's counters: the commands it decided (`plans`) and how they came about (the
    /// MPC, a route, a followed path, a turn to the goal's heading).
    pub planner: Option<PlannerStats>,
    /// Telemetry counters.
    pub viz: Option<VizStats>,
}

/// The planner's memory (when it was built again), its route, the path it follows (when it
/// is laid out anew, and once when it is no longer followed; `shown_path` is the last one
/// shown), and the goal as its relative-pose head reads it, for the viewer.
fn show_plan(
    ports: &Ports,
    planner: &PlannerNode,
    output: &PlannerOutput,
    shown_path: &mut Vec<OdometryPose>,
) {
    let stamp_ns = output.command.stamp_ns;
    if let Some(goal) = output.goal_seen {
        ports.offer_viz(|| VizEvent::PlannerGoalSeen {
            stamp_ns,
            heading_deg: goal.yaw.to_degrees(),
            distance_m: goal.x.hypot(goal.y),
            turning: output.aligning,
        });
    }
    if output.memory_rebuilt
        && let Some(map) = planner.memory_map()
    {
        ports.offer_viz(|| VizEvent::PlannerMemory {
            stamp_ns,
            map: Box::new(map),
        });
    }
    if !output.route_odometry.is_empty() {
        ports.offer_viz(|| VizEvent::PlannerRoute {
            stamp_ns,
            route: output.route_odometry.iter().map(|p| [p.x, p.y]).collect(),
        });
    }
    // Until the viewer has it: a dropped event would leave a stale path drawn.
    if output.path != *shown_path
        && ports.offer_viz(|| VizEvent::PlannerPath {
            stamp_ns,
            path: output.path.iter().map(|p| [p.x, p.y]).collect(),
        })
    {
        shown_path.clone_from(&output.path);
    }
}

/// The running workers of one node.
pub(crate) struct Runtime {
    ports: Arc<Ports>,
    trainer_stop: Arc<AtomicBool>,
    frames_newest: Option<Arc<LatestCell<crate::components::encoder::EncodeRequest>>>,
    trainer: Option<JoinHandle<Result<TrainerOutcome, NodeError>>>,
    encoder: Option<JoinHandle<Result<EncoderStats, NodeError>>>,
    planner: Option<JoinHandle<Result<PlannerStats, NodeError>>>,
    viz: Option<JoinHandle<VizStats>>,
    viz_out: VizOut,
}

fn done<T>(thread: &Option<JoinHandle<T>>) -> bool {
    thread.as_ref().is_some_and(|t| t.is_finished())
}

fn spawn<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, NodeError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(work)
        .map_err(|e| NodeError::Setup(format!("{name} thread: {e}")))
}

impl Runtime {
    /// Starts the workers `parts` names, each on its own thread.
    pub(crate) fn start(parts: Parts, sinks: Sinks) -> Result<Self, NodeError> {
        let Sinks {
            embedding: mut embedding_sink,
            trainer: mut trainer_sink,
            command: mut command_sink,
        } = sinks;
        let Some(first) = parts.collectors.first() else {
            return Err(NodeError::Setup(
                "a node needs at least one collector".into(),
            ));
        };
        let names = first.config().proprio_names();
        let ports = Arc::new(Ports::new(
            parts.collectors,
            names,
            parts.weights,
            parts.dynamics,
        ));
        let trainer_stop = Arc::new(AtomicBool::new(false));
        let mut runtime = Runtime {
            ports: Arc::clone(&ports),
            trainer_stop: Arc::clone(&trainer_stop),
            frames_newest: None,
            trainer: None,
            encoder: None,
            planner: None,
            viz: None,
            viz_out: VizOut::new(None),
        };

        if let Some((config, recording, destination)) = parts.viz {
            let (queue, inbox) = sync_channel::<VizEvent>(config.queue.max(1));
            runtime.viz_out = VizOut::new(Some(queue));
            runtime.viz = Some(spawn("viz", move || {
                run_viz(&config, recording, destination, inbox)
            })?);
        }

        let transitions = match parts.trainer {
            Some((trainer, config)) => {
                let (queue, inbox) = sync_channel(TRANSITION_QUEUE);
                let (viz, ports, stop) = (
                    runtime.viz_out.clone(),
                    Arc::clone(&ports),
                    Arc::clone(&trainer_stop),
                );
                runtime.trainer = Some(spawn("trainer", move || {
                    run_trainer(&config, trainer, inbox, &stop, |event| {
                        match &event {
                            TrainerEvent::Status(status) => {
                                viz.offer(|| VizEvent::Status(status.clone()));
                            }
                            TrainerEvent::Health(health) => {
                                viz.offer(|| VizEvent::Health(health.clone()));
                            }
                            TrainerEvent::Preview(preview) => {
                                viz.offer(|| VizEvent::Preview(Box::new(preview.clone())));
                            }
                            TrainerEvent::Dynamics(snapshot) => {
                                ports.set_dynamics(Arc::clone(snapshot))
                            }
                        }
                        trainer_sink(&event);
                    })
                })?);
                Some(queue)
            }
            None => None,
        };

        let frames = match parts.encoder {
            Some((config, queue)) => {
                let (viz, handle) = (runtime.viz_out.clone(), ports.encoder().clone());
                let mut publish = move |embedding: Embedding| {
                    embedding_sink(&embedding);
                    viz.offer(|| VizEvent::Embedding(embedding));
                };
                Some(match queue {
                    FrameQueue::Bounded(capacity) => {
                        let (queue, inbox) = sync_channel(capacity.max(1));
                        runtime.encoder = Some(spawn("encoder", move || {
                            run_encoder(&config, &handle, inbox, &mut publish)
                        })?);
                        FrameSink::Queue(queue)
                    }
                    FrameQueue::Newest => {
                        let cell = Arc::new(LatestCell::new());
                        let inbox = Arc::clone(&cell);
                        runtime.encoder = Some(spawn("encoder", move || {
                            run_encoder(&config, &handle, Drain(&inbox), &mut publish)
                        })?);
                        runtime.frames_newest = Some(Arc::clone(&cell));
                        FrameSink::Newest(cell)
                    }
                })
            }
            None => None,
        };

        let planner_frames = match parts.planner {
            Some(mut planner) => {
                let cell = Arc::new(LatestCell::new());
                let (inbox, ports) = (Arc::clone(&cell), Arc::clone(&ports));
                runtime.planner = Some(spawn("planner", move || {
                    let mut shown_path = Vec::new();
                    while let Some(frame) = inbox.take() {
                        if let Some(goal) = ports.take_goal() {
                            planner.set_goal(goal);
                        }
                        let encoder = ports.encoder().current();
                        match planner.on_frame(&frame, &encoder, &ports.dynamics()) {
                            Ok(Some(output)) => {
                                command_sink(&output);
                                show_plan(&ports, &planner, &output, &mut shown_path);
                            }
                            Ok(None) => {}
                            Err(error) => tracing::warn!(%error, "no plan for this frame"),
                        }
                    }
                    Ok(planner.stats().clone())
                })?);
                Some(cell)
            }
            None => None,
        };

        ports.connect(transitions, frames, planner_frames, runtime.viz_out.clone());
        Ok(runtime)
    }

    /// The node's inputs and shared state, for the transport's tasks.
    pub(crate) fn ports(&self) -> &Arc<Ports> {
        &self.ports
    }

    /// Telemetry events dropped so far because the viewer's queue was full.
    pub(crate) fn viz_dropped(&self) -> u64 {
        self.viz_out.dropped()
    }

    /// The first worker that has ended on its own. None does while the node runs, so one that
    /// has ended failed (its error comes from [`Runtime::shutdown`]).
    pub(crate) fn ended(&self) -> Option<&'static str> {
        if done(&self.trainer) {
            Some("trainer")
        } else if done(&self.encoder) {
            Some("encoder")
        } else if done(&self.planner) {
            Some("planner")
        } else {
            None
        }
    }

    /// Closes the inputs and stops the workers in order, each finishing what it holds; every
    /// worker is joined even when one failed, and the first failure is returned.
    pub(crate) fn shutdown(mut self) -> Result<RuntimeReport, NodeError> {
        self.ports.close();
        let mut report = RuntimeReport::default();
        let mut outcome = Ok(());
        let mut failed = |error: NodeError| {
            tracing::error!(%error, "a worker failed");
            if outcome.is_ok() {
                outcome = Err(error);
            }
        };
        if let Some(thread) = self.planner.take() {
            match thread.join() {
                Ok(Ok(stats)) => report.planner = Some(stats),
                Ok(Err(error)) => failed(error),
                Err(_) => failed(NodeError::Crashed("planner")),
            }
        }
        if let Some(thread) = self.encoder.take() {
            match thread.join() {
                Ok(Ok(stats)) => report.encoder = Some(stats),
                Ok(Err(error)) => failed(error),
                Err(_) => failed(NodeError::Crashed("encoder")),
            }
        }
        self.trainer_stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.trainer.take() {
            match thread.join() {
                Ok(Ok(finished)) => report.trainer = Some(finished),
                Ok(Err(error)) => failed(error),
                Err(_) => failed(NodeError::Crashed("trainer")),
            }
        }
        // Every other sender is gone now: the viewer logs what is queued and closes.
        let viz_dropped = self.viz_out.dropped();
        self.viz_out = VizOut::new(None);
        if let Some(thread) = self.viz.take() {
            match thread.join() {
                Ok(stats) => report.viz = Some(stats),
                Err(_) => tracing::warn!("the viz thread stopped unexpectedly"),
            }
        }
        let (encoder_drops, trainer_drops) = self.ports.queue_drops();
        report.queue_drops = BTreeMap::from([
            ("encoder".to_owned(), encoder_drops),
            ("trainer".to_owned(), trainer_drops),
            ("viz".to_owned(), viz_dropped),
        ]);
        report.frames_superseded = self
            .frames_newest
            .as_ref()
            .map_or(0, |cell| cell.superseded());
        report.collector = self.ports.collector_stats();
        report.robots = self.ports.robot_stats();
        outcome.map(|()| report)
    }
}

impl Drop for Runtime {
    /// A runtime dropped without [`Runtime::shutdown`] (its owner failed or panicked) still
    /// stops its workers: inputs close and the trainer is told to stop. They are not joined.
    fn drop(&mut self) {
        self.ports.close();
        self.trainer_stop.store(true, Ordering::Relaxed);
    }
}
