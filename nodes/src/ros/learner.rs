//! The learner nodes: collector + trainer and/or encoder + rollout service over ROS 2.
//!
//! Sensor topics feed one [`Collector`] (the same validation and pairing as the in-process
//! graph). Transitions go to the trainer thread through a bounded queue; camera frames go to
//! the encoder thread through a latest-value cell. Status is published at 2 Hz with the
//! collector's drop counts, embedding health whenever the trainer computes it, and every
//! embedding carries its source image's stamp and the encoder version.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{Trainer, Transition};
use futures::StreamExt;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use r2r::QosProfile;
use r2r::autodidact_msgs::srv::Rollout;
use r2r::geometry_msgs::msg::Twist;
use r2r::nav_msgs::msg::Odometry;
use r2r::sensor_msgs::msg::{Image, Imu, JointState};

use super::convert::{self, embedding_out, health_out, status_out};
use super::params::{LearnerParams, LearnerSetup};
use super::rollout::{RolloutWorker, rollout_error};
use super::unwind::OnUnwind;
use super::{Started, lock, ros_error, start_node};
use crate::NodeError;
use crate::clock::Clock;
use crate::collector::{Collector, Frame};
use crate::encoder::{EncodeRequest, run_encoder};
use crate::graph::proprio_names;
use crate::latest::{Drain, LatestCell};
use crate::msg::{SensorMsg, TrainerStatus};
use crate::planner::PlannerNode;
use crate::stats::DropReason;
use crate::trainer::{TrainerEvent, run_trainer};
use crate::viz::{VizEvent, VizSink, open_recording, run_viz};

/// How often the trainer status is published.
const STATUS_PERIOD: Duration = Duration::from_millis(500);
/// Transitions waiting for the trainer before new ones are dropped (counted).
const TRANSITION_QUEUE: usize = 8192;

/// Which components a learner node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Collector + trainer (status, health, checkpoints).
    pub train: bool,
    /// Encoder (embeddings) + rollout service.
    pub encode: bool,
    /// Reference planner: goal image in (`autodidact/goal_image`), `cmd_vel` out.
    pub plan: bool,
}

impl Roles {
    /// `autodidact_node`: collector, trainer and encoder in one process.
    pub const COMPOSED: Roles = Roles {
        train: true,
        encode: true,
        plan: false,
    };
    /// `trainer_node`.
    pub const TRAINER: Roles = Roles {
        train: true,
        encode: false,
        plan: false,
    };
    /// `encoder_node`.
    pub const ENCODER: Roles = Roles {
        train: false,
        encode: true,
        plan: false,
    };
    /// `planner_node`.
    pub const PLANNER: Roles = Roles {
        train: false,
        encode: false,
        plan: true,
    };
}

/// Counters of a learner node's run, logged at shutdown.
#[derive(Debug, Clone, Default)]
pub struct LearnerReport {
    /// Messages the collector received.
    pub received: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<String, u64>,
    /// Embeddings published.
    pub embedded: u64,
    /// Frames replaced by a newer one before the encoder took them.
    pub frames_superseded: u64,
    /// Training steps at the end.
    pub train_steps: u64,
    /// Rollout requests answered (successfully or with an error message).
    pub rollouts: u64,
    /// Commands the planner published.
    pub plans: u64,
    /// Events logged to rerun.
    pub viz_logged: u64,
    /// Events not logged because the viz queue was full.
    pub viz_dropped: u64,
    /// Parameter service replies the middleware could not send (the caller timed out).
    pub parameter_replies_unsent: u64,
}

/// Offers telemetry without ever blocking the sender; a full queue is counted.
#[derive(Clone)]
struct VizOut {
    queue: Option<SyncSender<VizEvent>>,
    dropped: Arc<AtomicU64>,
}

impl VizOut {
    fn offer(&self, event: impl FnOnce() -> VizEvent) {
        if let Some(queue) = &self.queue
            && let Err(TrySendError::Full(_)) = queue.try_send(event())
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Everything the subscription callbacks share (they all run on the spinning thread).
struct Intake {
    collector: Arc<Mutex<Collector>>,
    clock: Arc<dyn Clock>,
    frames: Option<Arc<LatestCell<EncodeRequest>>>,
    planner_frames: Option<Arc<LatestCell<Frame>>>,
    transitions: Option<SyncSender<Transition>>,
    recent: RefCell<VecDeque<Frame>>,
    keep_recent: usize,
    /// The `frame_id` of the newest image that became a frame (published with embeddings).
    camera_frame_id: Arc<Mutex<String>>,
    /// The `frame_id` of the image being taken, kept only if it becomes a frame.
    pending_frame_id: RefCell<String>,
    viz: VizOut,
    proprio_names: Vec<String>,
    width: u32,
    height: u32,
}

impl Intake {
    fn take(&self, message: Result<SensorMsg, DropReason>, what: &str) {
        let collected = {
            let mut collector = lock(&self.collector);
            match message {
                Ok(message) => collector.on_message(&message),
                Err(reason) => {
                    collector.record_drop(reason, what);
                    return;
                }
            }
        };
        if let Some(frame) = collected.frame {
            // Only an image that became a frame names the camera frame of the embeddings.
            let frame_id = self.pending_frame_id.borrow();
            if *lock(&self.camera_frame_id) != *frame_id {
                lock(&self.camera_frame_id).clone_from(&frame_id);
            }
            drop(frame_id);
            self.viz.offer(|| VizEvent::Camera {
                stamp_ns: frame.stamp_ns,
                width: self.width,
                height: self.height,
                rgb: frame.image.clone(),
                proprio: self
                    .proprio_names
                    .iter()
                    .cloned()
                    .zip(frame.proprio.iter().copied())
                    .collect(),
            });
            {
                let mut recent = self.recent.borrow_mut();
                if recent.len() == self.keep_recent {
                    recent.pop_front();
                }
                recent.push_back(frame.clone());
            }
            if let Some(cell) = &self.planner_frames {
                cell.put(frame.clone());
            }
            if let Some(cell) = &self.frames {
                cell.put(EncodeRequest {
                    frame,
                    queued_at: Instant::now(),
                });
            }
        }
        if let (Some(transition), Some(queue)) = (collected.transition, &self.transitions) {
            match queue.try_send(transition) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    lock(&self.collector).record_drop(DropReason::QueueFull, "transition")
                }
                // The trainer has stopped (shutdown): nothing to keep it for.
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// Runs a learner node until `stop` is set (SIGINT) or a component fails.
pub fn run_learner_node(
    node_name: &str,
    roles: Roles,
    stop: &AtomicBool,
) -> Result<LearnerReport, NodeError> {
    let Started {
        mut node,
        file,
        params,
        services,
        unsent_parameter_replies,
        clock,
    } = start_node(node_name, LearnerParams::from_file)?;
    let setup = params.apply(&file)?;
    let train = roles.train && setup.train;

    let following = !train && setup.reload_every_s > 0.0;
    let mut trainer = match &setup.checkpoint {
        // An encoder following a trainer that has not written its first checkpoint yet starts
        // from fresh weights and picks the checkpoint up when it appears.
        Some(dir) if following && modified(dir).is_none() => {
            tracing::info!(dir = %dir.display(), "no checkpoint yet; fresh weights until one appears");
            Trainer::new(setup.trainer.clone())?
        }
        Some(dir) => Trainer::resume(dir, Some(&setup.trainer.model))?,
        None => Trainer::new(setup.trainer.clone())?,
    };
    let handle = trainer.encoder_handle();
    let dynamics = Arc::new(Mutex::new(Arc::new(trainer.dynamics_snapshot())));
    let clock: Arc<dyn Clock> = Arc::new(clock);
    let collector = Arc::new(Mutex::new(Collector::new(
        setup.collector.clone(),
        Arc::clone(&clock),
    )));
    tracing::info!(
        node = node_name,
        train,
        encode = roles.encode,
        image = %format!("{}x{}", setup.collector.width, setup.collector.height),
        embed_dim = setup.trainer.model.embed_dim(),
        "learner node up"
    );

    let status = Arc::new(Mutex::new(TrainerStatus {
        stamp_ns: 0,
        train_step: trainer.step_count(),
        model_version: handle.current().version,
        losses: Default::default(),
        grad_norm: 0.0,
        samples_per_second: 0.0,
        replay_len: trainer.replay().len(),
        non_finite_skips: trainer.non_finite_skips(),
    }));
    let status_publisher = train
        .then(|| {
            node.create_publisher::<r2r::autodidact_msgs::msg::TrainerStatus>(
                "autodidact/trainer/status",
                QosProfile::default(),
            )
        })
        .transpose()
        .map_err(ros_error)?;
    let camera_frame_id = Arc::new(Mutex::new(String::new()));

    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let spawn_error = |e: futures::task::SpawnError| NodeError::Setup(format!("executor: {e}"));
    spawner.spawn_local(services).map_err(spawn_error)?;

    // rerun telemetry: optional, and a viewer that is not there does not stop the node.
    let recording = match setup.viz.sink {
        VizSink::Off => None,
        _ => match open_recording(&setup.viz) {
            Ok(opened) => Some(opened),
            Err(error) => {
                tracing::warn!(%error, "no rerun telemetry");
                None
            }
        },
    };
    let (viz_tx, viz_rx) = sync_channel::<VizEvent>(setup.viz.queue.max(1));
    let viz = VizOut {
        queue: recording.is_some().then_some(viz_tx),
        dropped: Arc::new(AtomicU64::new(0)),
    };

    let (transition_tx, transition_rx) = sync_channel::<Transition>(TRANSITION_QUEUE);
    let frames = roles.encode.then(|| Arc::new(LatestCell::new()));
    let planner_frames = roles.plan.then(|| Arc::new(LatestCell::new()));
    // A new goal for the planner thread: `Some(frame)`, taken at its next frame.
    let pending_goal: Arc<Mutex<Option<Frame>>> = Arc::new(Mutex::new(None));
    let intake = Rc::new(Intake {
        collector: Arc::clone(&collector),
        clock: Arc::clone(&clock),
        frames: frames.clone(),
        planner_frames: planner_frames.clone(),
        transitions: train.then_some(transition_tx),
        recent: RefCell::new(VecDeque::with_capacity(setup.rollout_frames)),
        keep_recent: setup.rollout_frames,
        camera_frame_id: Arc::clone(&camera_frame_id),
        pending_frame_id: RefCell::new(String::new()),
        viz: viz.clone(),
        proprio_names: proprio_names(&setup.collector),
        width: setup.collector.width,
        height: setup.collector.height,
    });
    subscribe_sensors(&mut node, &spawner, &intake)?;
    if roles.plan {
        let goals = node
            .subscribe::<Image>("autodidact/goal_image", QosProfile::default())
            .map_err(ros_error)?;
        let (collector, pending_goal) = (Arc::clone(&collector), Arc::clone(&pending_goal));
        let (width, height) = (setup.collector.width, setup.collector.height);
        let proprio_dim = setup.collector.proprio.dim();
        spawner
            .spawn_local(goals.for_each(move |image| {
                match goal_frame(image, width, height, proprio_dim) {
                    Ok(frame) => {
                        tracing::info!(stamp_ns = frame.stamp_ns, "new goal image");
                        *lock(&pending_goal) = Some(frame);
                    }
                    Err(reason) => lock(&collector).record_drop(reason, "goal image"),
                }
                futures::future::ready(())
            }))
            .map_err(spawn_error)?;
    }

    let rollouts_answered = Rc::new(RefCell::new(0u64));
    if roles.encode {
        let mut requests = node
            .create_service::<Rollout::Service>(
                "autodidact/rollout",
                QosProfile::services_default(),
            )
            .map_err(ros_error)?;
        // Rollouts run on their own thread behind a bounded queue; this task only checks a
        // request, queues it and sends the answer when it comes.
        let worker = RolloutWorker::start(handle.clone(), Arc::clone(&dynamics), setup.rollouts)?;
        let intake = Rc::clone(&intake);
        let answered = Rc::clone(&rollouts_answered);
        let answers = spawner.clone();
        spawner
            .spawn_local(async move {
                while let Some(request) = requests.next().await {
                    *answered.borrow_mut() += 1;
                    match worker.submit(request.message.clone(), &intake.recent.borrow()) {
                        Err(response) => respond_rollout(request, response),
                        Ok(answer) => {
                            let waiting = answers.spawn_local(async move {
                                let response = answer.await.unwrap_or_else(|_| {
                                    rollout_error("the rollout worker has stopped".into())
                                });
                                respond_rollout(request, response);
                            });
                            if let Err(error) = waiting {
                                tracing::warn!(%error, "rollout answer dropped: executor gone");
                            }
                        }
                    }
                }
            })
            .map_err(spawn_error)?;
    }

    // Without training, the weights stay as loaded (or follow the checkpoint); the snapshots
    // above are all the node needs.
    let trainer = train.then_some(trainer);
    let trainer_stop = AtomicBool::new(false);
    let mut report = LearnerReport::default();
    let result = std::thread::scope(|scope| -> Result<(), NodeError> {
        // If this thread panics, the scope joins the workers first: tell them to stop.
        let _stop_workers = OnUnwind::new(|| {
            trainer_stop.store(true, Ordering::Relaxed);
            if let Some(cell) = &frames {
                cell.close();
            }
            if let Some(cell) = &planner_frames {
                cell.close();
            }
        });
        let viz_thread = match recording {
            Some((recording, destination)) => {
                let config = &setup.viz;
                tracing::info!(to = ?destination, "logging to rerun");
                Some(
                    std::thread::Builder::new()
                        .name("viz".into())
                        .spawn_scoped(scope, move || {
                            run_viz(config, recording, destination, viz_rx)
                        })
                        .map_err(|e| NodeError::Setup(format!("viz thread: {e}")))?,
                )
            }
            None => {
                drop(viz_rx);
                None
            }
        };
        let trainer_thread = if let Some(trainer) = trainer {
            let health_publisher = node
                .create_publisher::<r2r::autodidact_msgs::msg::EmbeddingHealth>(
                    "autodidact/health",
                    QosProfile::default(),
                )
                .map_err(ros_error)?;
            let (status, dynamics, trainer_stop) = (&status, &dynamics, &trainer_stop);
            let viz = viz.clone();
            let config = setup.trainer_node.clone();
            Some(
                std::thread::Builder::new()
                    .name("trainer".into())
                    .spawn_scoped(scope, move || {
                        run_trainer(&config, trainer, transition_rx, trainer_stop, |event| {
                            match event {
                                TrainerEvent::Status(new) => {
                                    viz.offer(|| VizEvent::Status(new.clone()));
                                    *lock(status) = new;
                                }
                                TrainerEvent::Health(health) => {
                                    let stamp = lock(status).stamp_ns;
                                    if let Err(error) =
                                        health_publisher.publish(&health_out(&health, stamp))
                                    {
                                        tracing::warn!(%error, "health not published");
                                    }
                                    viz.offer(|| VizEvent::Health(health));
                                }
                                TrainerEvent::Dynamics(snapshot) => *lock(dynamics) = snapshot,
                                TrainerEvent::Preview(_) => {}
                            }
                        })
                    })
                    .map_err(|e| NodeError::Setup(format!("trainer thread: {e}")))?,
            )
        } else {
            drop(transition_rx);
            None
        };

        let encoder_thread = match &frames {
            Some(cell) => {
                let publisher = node
                    .create_publisher::<r2r::autodidact_msgs::msg::Embedding>(
                        "autodidact/embedding",
                        QosProfile::default().keep_last(10),
                    )
                    .map_err(ros_error)?;
                let (config, handle, frame_id) = (&setup.encoder, &handle, &camera_frame_id);
                let cell = Arc::clone(cell);
                let viz = viz.clone();
                Some(
                    std::thread::Builder::new()
                        .name("encoder".into())
                        .spawn_scoped(scope, move || {
                            run_encoder(config, handle, Drain(&cell), |embedding| {
                                let frame_id = lock(frame_id).clone();
                                if let Err(error) =
                                    publisher.publish(&embedding_out(&embedding, &frame_id))
                                {
                                    tracing::warn!(%error, "embedding not published");
                                }
                                viz.offer(|| VizEvent::Embedding(embedding));
                            })
                        })
                        .map_err(|e| NodeError::Setup(format!("encoder thread: {e}")))?,
                )
            }
            None => None,
        };

        let planner_thread = match &planner_frames {
            Some(cell) => {
                let publisher = node
                    .create_publisher::<Twist>("cmd_vel", QosProfile::default())
                    .map_err(ros_error)?;
                let mut planner = PlannerNode::new(file.planner.clone())?;
                let (handle, dynamics, pending_goal) = (&handle, &dynamics, &pending_goal);
                let cell = Arc::clone(cell);
                Some(
                    std::thread::Builder::new()
                        .name("planner".into())
                        .spawn_scoped(scope, move || -> Result<u64, NodeError> {
                            let mut published = 0u64;
                            while let Some(frame) = cell.take() {
                                if let Some(goal) = lock(pending_goal).take() {
                                    planner.set_goal(goal);
                                }
                                let snapshot = Arc::clone(&lock(dynamics));
                                match planner.on_frame(&frame, &handle.current(), &snapshot) {
                                    Ok(Some(output)) => {
                                        let command = convert::twist(
                                            output.command.linear_x,
                                            output.command.angular_z,
                                        );
                                        match publisher.publish(&command) {
                                            Ok(()) => published += 1,
                                            Err(error) => {
                                                tracing::warn!(%error, "command not published")
                                            }
                                        }
                                    }
                                    Ok(None) => {}
                                    Err(error) => tracing::warn!(%error, "no plan for this frame"),
                                }
                            }
                            Ok(published)
                        })
                        .map_err(|e| NodeError::Setup(format!("planner thread: {e}")))?,
                )
            }
            None => None,
        };

        let mut follower = Follower::new(&setup, train);
        let mut last_status = Instant::now();
        let mut ended_early = false;
        while !stop.load(Ordering::Relaxed) {
            node.spin_once(Duration::from_millis(5));
            pool.run_until_stalled();
            if last_status.elapsed() >= STATUS_PERIOD {
                last_status = Instant::now();
                if let Some(publisher) = &status_publisher {
                    let stats = lock(&collector).stats();
                    let message = status_out(&lock(&status), &stats);
                    if let Err(error) = publisher.publish(&message) {
                        tracing::warn!(%error, "status not published");
                    }
                }
                if let Some((encoder, snapshot)) = follower.poll() {
                    *lock(&dynamics) = Arc::new(snapshot);
                    handle.publish(encoder);
                }
            }
            // Neither ends on its own while the node runs: one that did has failed.
            if trainer_thread.as_ref().is_some_and(|t| t.is_finished())
                || encoder_thread.as_ref().is_some_and(|t| t.is_finished())
                || planner_thread.as_ref().is_some_and(|t| t.is_finished())
            {
                ended_early = true;
                break;
            }
        }
        // Shutdown: no new input, let the encoder finish its frame and the trainer drain its
        // queue into the replay buffer and write its checkpoint.
        drop(pool);
        drop(intake);
        trainer_stop.store(true, Ordering::Relaxed);
        if let Some(cell) = &frames {
            report.frames_superseded = cell.superseded();
            cell.close();
        }
        if let Some(cell) = &planner_frames {
            cell.close();
        }
        if let Some(thread) = planner_thread {
            match thread.join() {
                Ok(Ok(plans)) => report.plans = plans,
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(NodeError::Crashed("planner")),
            }
        }
        let mut outcome = Ok(());
        if let Some(thread) = encoder_thread {
            match thread.join() {
                Ok(Ok(stats)) => report.embedded = stats.embedded,
                Ok(Err(error)) => outcome = outcome.and(Err(error)),
                Err(_) => outcome = outcome.and(Err(NodeError::Crashed("encoder"))),
            }
        }
        if let Some(thread) = trainer_thread {
            match thread.join() {
                Ok(Ok(finished)) => report.train_steps = finished.trainer.step_count(),
                Ok(Err(error)) => outcome = outcome.and(Err(error)),
                Err(_) => outcome = outcome.and(Err(NodeError::Crashed("trainer"))),
            }
        }
        // Every sender is gone now; the viz thread logs what is queued and closes the recording.
        report.viz_dropped = viz.dropped.load(Ordering::Relaxed);
        drop(viz);
        if let Some(thread) = viz_thread {
            match thread.join() {
                Ok(stats) => report.viz_logged = stats.logged,
                Err(_) => tracing::warn!("the viz thread stopped unexpectedly"),
            }
        }
        if ended_early {
            outcome = outcome.and(Err(NodeError::Crashed("trainer, encoder or planner")));
        }
        outcome
    });
    let stats = lock(&collector).stats();
    report.received = stats.received;
    report.dropped = stats.dropped;
    report.rollouts = *rollouts_answered.borrow();
    report.parameter_replies_unsent = unsent_parameter_replies.get();
    tracing::info!(?report, "learner node stopped");
    result.map(|()| report)
}

/// Subscribes the sensor topics; each message goes through the collector on this thread.
fn subscribe_sensors(
    node: &mut r2r::Node,
    spawner: &futures::executor::LocalSpawner,
    intake: &Rc<Intake>,
) -> Result<(), NodeError> {
    let sensor = QosProfile::sensor_data();
    subscribe_into(
        node,
        spawner,
        intake,
        "camera/image_raw",
        sensor.clone(),
        "image",
        |image: Image, at| {
            *at.pending_frame_id.borrow_mut() = bounded_frame_id(&image.header.frame_id);
            convert::image_in(image)
        },
    )?;
    subscribe_into(
        node,
        spawner,
        intake,
        "joint_states",
        sensor.clone(),
        "joint state",
        |joints: JointState, _| convert::joint_state_in(joints),
    )?;
    subscribe_into(
        node,
        spawner,
        intake,
        "imu/data",
        sensor.clone(),
        "imu",
        |imu: Imu, _| convert::imu_in(&imu),
    )?;
    subscribe_into(
        node,
        spawner,
        intake,
        "odom",
        sensor,
        "odometry",
        |odom: Odometry, _| convert::odometry_in(&odom),
    )?;
    // Best effort matches reliable and best-effort command publishers alike. Twist has no
    // header: commands are stamped on arrival with the node's clock.
    subscribe_into(
        node,
        spawner,
        intake,
        "cmd_vel",
        QosProfile::default().best_effort(),
        "command",
        |twist: Twist, at| Ok(convert::twist_in(&twist, at.clock.now_ns())),
    )
}

/// Longest `frame_id` carried over from a camera image into embeddings, in bytes.
const MAX_FRAME_ID_BYTES: usize = 256;

/// `frame_id` cut to [`MAX_FRAME_ID_BYTES`] (at a character boundary).
fn bounded_frame_id(frame_id: &str) -> String {
    let mut end = frame_id.len().min(MAX_FRAME_ID_BYTES);
    while !frame_id.is_char_boundary(end) {
        end -= 1;
    }
    frame_id[..end].to_owned()
}

/// Subscribes `topic` and hands every message, converted by `convert`, to the collector.
#[allow(clippy::too_many_arguments)]
fn subscribe_into<T: r2r::WrappedTypesupport + 'static>(
    node: &mut r2r::Node,
    spawner: &futures::executor::LocalSpawner,
    intake: &Rc<Intake>,
    topic: &str,
    qos: QosProfile,
    what: &'static str,
    convert: impl Fn(T, &Intake) -> Result<SensorMsg, DropReason> + 'static,
) -> Result<(), NodeError> {
    let messages = node.subscribe::<T>(topic, qos).map_err(ros_error)?;
    let at = Rc::clone(intake);
    spawner
        .spawn_local(messages.for_each(move |message| {
            at.take(convert(message, &at), what);
            futures::future::ready(())
        }))
        .map_err(|e| NodeError::Setup(format!("executor: {e}")))
}

/// Reloads the start checkpoint when it changes (an encoder_node following a trainer_node).
/// Loading runs on its own thread, so spinning and rollout answers never wait for it.
struct Follower {
    dir: Option<std::path::PathBuf>,
    model: autodidact_learn::WorldModelConfig,
    every: Duration,
    last_check: Instant,
    seen: Option<SystemTime>,
    loading: Option<std::sync::mpsc::Receiver<Option<Loaded>>>,
}

type Loaded = (
    autodidact_learn::EncoderSnapshot,
    DynamicsSnapshot,
    SystemTime,
);

impl Follower {
    fn new(setup: &LearnerSetup, train: bool) -> Self {
        let dir = setup
            .checkpoint
            .clone()
            .filter(|_| !train && setup.reload_every_s > 0.0);
        let seen = dir.as_deref().and_then(modified);
        Self {
            dir,
            model: setup.trainer.model.clone(),
            every: Duration::from_secs_f64(setup.reload_every_s),
            last_check: Instant::now(),
            seen,
            loading: None,
        }
    }

    /// New weights when a reload of a changed checkpoint has finished.
    fn poll(&mut self) -> Option<(autodidact_learn::EncoderSnapshot, DynamicsSnapshot)> {
        if let Some(loading) = &self.loading {
            return match loading.try_recv() {
                Ok(Some((encoder, dynamics, stamp))) => {
                    self.loading = None;
                    self.seen = Some(stamp);
                    tracing::info!(
                        version = encoder.version,
                        step = encoder.train_step,
                        "weights reloaded"
                    );
                    Some((encoder, dynamics))
                }
                Ok(None) | Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.loading = None;
                    None
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
            };
        }
        let dir = self.dir.clone()?;
        if self.last_check.elapsed() < self.every {
            return None;
        }
        self.last_check = Instant::now();
        let stamp = modified(&dir)?;
        if Some(stamp) == self.seen {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let model = self.model.clone();
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let loaded = match Trainer::resume(&dir, Some(&model)) {
                    Ok(trainer) => Some((trainer.snapshot(), trainer.dynamics_snapshot(), stamp)),
                    // A checkpoint being replaced right now: the next look tries again.
                    Err(error) => {
                        tracing::debug!(%error, "checkpoint not readable yet");
                        None
                    }
                };
                let _ = tx.send(loaded);
            });
        match spawned {
            Ok(_) => self.loading = Some(rx),
            Err(error) => tracing::warn!(%error, "could not start a reload"),
        }
        None
    }
}

fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join("meta.json"))
        .and_then(|m| m.modified())
        .ok()
}

/// A goal image as the planner's goal frame: the view at the goal, with the proprio of a robot
/// at rest there (all zeros: no wheel speed, no turn rate, no acceleration).
fn goal_frame(
    image: Image,
    width: u32,
    height: u32,
    proprio_dim: usize,
) -> Result<Frame, DropReason> {
    let image = convert::image_msg_in(image)?;
    let rgb = crate::image::to_rgb8(&image, width, height)?;
    Ok(Frame {
        stamp_ns: image.stamp_ns,
        episode: 0,
        image: rgb.into(),
        proprio: vec![0.0; proprio_dim],
    })
}

fn respond_rollout(request: r2r::ServiceRequest<Rollout::Service>, response: Rollout::Response) {
    if let Err(error) = request.respond(response) {
        tracing::warn!(%error, "rollout response not sent");
    }
}
