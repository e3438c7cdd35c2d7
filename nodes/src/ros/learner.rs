//! The learner nodes over ROS 2: what they subscribe, publish and serve. The work is the
//! runtime's ([`crate::runtime`], the same as `autodidact run`); this file only connects it to
//! topics and services, as tasks on the node's tokio executor ([`super::executor`]).
//!
//! Sensor topics feed the runtime's collector; camera frames reach the encoder newest-first.
//! Status is published at 2 Hz with the collector's drop counts, embedding health whenever the
//! trainer computes it, and every embedding carries its source image's stamp, `frame_id` and
//! the encoder version.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autodidact_learn::Trainer;
use autodidact_learn::weights::Unpacker;
use futures::StreamExt;
use r2r::QosProfile;
use r2r::autodidact_msgs::srv::Rollout;
use r2r::geometry_msgs::msg::{Twist, TwistStamped};
use r2r::nav_msgs::msg::Odometry;
use r2r::sensor_msgs::msg::{Image, Imu};

use super::convert::{self, embedding_out, health_out, status_out};
use super::executor::{Ended, Executor};
use super::params::{LearnerParams, WeightsSource};
use super::rollout::{RolloutWorker, rollout_error};
use super::weights::{TopicFollower, WeightsPublisher};
use super::{Started, ros_error, start_node};
use crate::NodeError;
use crate::components::collector::{Collector, Frame};
use crate::components::image::Fit;
use crate::components::planner::{PlannerNode, PlannerOutput, PlannerStats};
use crate::components::stats::DropReason;
use crate::components::trainer::TrainerEvent;
use crate::components::viz::{Layout, VizSink, open_recording};
use crate::msg::{SensorMsg, TrainerStatus};
use crate::runtime::clock::Clock;
use crate::runtime::follow::{CheckpointFollower, WeightsCounts, WeightsFollower, modified};
use crate::runtime::{FrameQueue, Parts, Ports, Runtime, Sinks, lock};

/// How often the trainer status is published (and the workers and the followed checkpoint
/// looked at).
const STATUS_PERIOD: Duration = Duration::from_millis(500);

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
    /// The planner's counters: the commands it published (`plans`) and how they came about
    /// (the MPC, a route, a followed path, a turn to the goal's heading, and turns the head
    /// ended without reading it).
    pub planner: Option<PlannerStats>,
    /// Events logged to rerun.
    pub viz_logged: u64,
    /// Events not logged because the viz queue was full.
    pub viz_dropped: u64,
    /// Parameter service replies the middleware could not send (the caller timed out).
    pub parameter_replies_unsent: u64,
    /// Weight versions received over `autodidact/weights` and what became of them (a node
    /// following the topic).
    pub weights: Option<WeightsCounts>,
    /// Milliseconds from a version's publication to its application here, p50 and p99.
    pub weights_applied_after_ms: [Option<f64>; 2],
}

/// Runs a learner node until SIGINT/SIGTERM or until a worker fails.
pub fn run_learner_node(node_name: &str, roles: Roles) -> Result<LearnerReport, NodeError> {
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
    if !setup.robots.is_empty() && (!train || roles.encode || roles.plan) {
        return Err(NodeError::Setup(
            "parameter robots is for trainer_node (training); run one encoder_node or \
             planner_node per robot, in the robot's namespace"
                .into(),
        ));
    }

    let follow_checkpoint =
        !train && setup.weights_source == WeightsSource::Checkpoint && setup.reload_every_s > 0.0;
    let follow_topic = !train && setup.weights_source == WeightsSource::Topic;
    let following = follow_checkpoint || follow_topic;
    let mut trainer = match &setup.checkpoint {
        // An encoder following a trainer that has not written its first checkpoint yet starts
        // from fresh weights and picks the checkpoint up when it appears.
        Some(dir) if following && modified(dir).is_none() => {
            tracing::info!(dir = %dir.display(), "no checkpoint yet; fresh weights until one appears");
            Trainer::new(setup.trainer.clone())?
        }
        Some(dir) => Trainer::resume_on(
            dir,
            Some(&setup.trainer.model),
            setup.trainer.backend,
            setup.trainer.inference_backend,
        )?,
        None => Trainer::new(setup.trainer.clone())?,
    };
    let inference_on = trainer.placements().inference.kind;
    let clock: Arc<dyn Clock> = Arc::new(clock);
    tracing::info!(
        node = node_name,
        train,
        encode = roles.encode,
        plan = roles.plan,
        image = %format!("{}x{}", setup.collector.width, setup.collector.height),
        embed_dim = setup.trainer.model.embed_dim(),
        training_on = %trainer.placements().training,
        inference_on = %trainer.placements().inference,
        "learner node up"
    );

    let status = Arc::new(Mutex::new(TrainerStatus {
        stamp_ns: 0,
        train_step: trainer.step_count(),
        model_version: trainer.encoder_handle().current().version,
        losses: Default::default(),
        grad_norm: 0.0,
        samples_per_second: 0.0,
        replay_len: trainer.replay().len(),
        replay_by_robot: trainer.replay().len_by_source(),
        non_finite_skips: trainer.non_finite_skips(),
        placements: trainer.placements().clone(),
    }));
    // One robot on the node's own topics, or one per namespace of `robots`.
    let robots: Vec<String> = if setup.robots.is_empty() {
        vec![String::new()]
    } else {
        setup.robots.clone()
    };
    let architecture = autodidact_learn::weights::architecture_digest(&setup.trainer);
    // The frame of the robot's odometry (its messages' frame_id), for the planner's route.
    let odom_frame = Arc::new(Mutex::new(String::from("odom")));
    let sinks = publishers(
        &mut node,
        roles,
        train,
        setup.cmd_vel_stamped,
        &clock,
        &status,
        &odom_frame,
    )?;
    // rerun telemetry: optional, and a viewer that is not there does not stop the node.
    let viz = match setup.viz.sink {
        VizSink::Off => None,
        _ => match open_recording(
            &setup.viz,
            Layout {
                robots: setup.robots.len().max(1),
                planner: roles.plan,
            },
        ) {
            Ok((recording, destination)) => {
                tracing::info!(to = ?destination, "logging to rerun");
                Some((setup.viz.clone(), recording, destination))
            }
            Err(error) => {
                tracing::warn!(%error, "no rerun telemetry");
                None
            }
        },
    };
    let runtime = Runtime::start(
        Parts {
            collectors: (0u32..)
                .zip(&robots)
                .map(|(index, _)| {
                    Collector::new(setup.collector.clone(), Arc::clone(&clock)).for_source(index)
                })
                .collect(),
            weights: trainer.encoder_handle(),
            dynamics: Arc::new(trainer.dynamics_snapshot()),
            // Without training, the weights stay as loaded (or follow the checkpoint).
            trainer: train.then(|| (trainer, setup.trainer_node.clone())),
            encoder: roles
                .encode
                .then(|| (setup.encoder.clone(), FrameQueue::Newest)),
            planner: roles
                .plan
                .then(|| PlannerNode::new(file.planner.clone()))
                .transpose()?,
            viz,
        },
        sinks,
    )?;
    let ports = Arc::clone(runtime.ports());

    let executor = Executor::new()?;
    executor.spawn(services);
    // The newest frames, for rollouts that start from the current view.
    let recent = Rc::new(RefCell::new(VecDeque::with_capacity(setup.rollout_frames)));
    let types = InputTypes {
        stamped_commands: setup.cmd_vel_stamped,
        compressed_images: setup.compressed_images,
    };
    for (index, namespace) in robots.iter().enumerate() {
        // Only a node of one robot keeps frames for rollouts (it serves them).
        let keep = if index == 0 { setup.rollout_frames } else { 0 };
        subscribe_sensors(
            &mut node,
            &executor,
            &ports,
            &clock,
            Robot { index, namespace },
            Rc::clone(&recent),
            keep,
            types,
            // Only the planner publishes in the odometry's frame.
            roles.plan.then(|| Arc::clone(&odom_frame)),
        )?;
    }
    if robots.len() > 1 {
        tracing::info!(?robots, "learning from a fleet");
    }
    if roles.plan {
        let goals = node
            .subscribe::<Image>("autodidact/goal_image", QosProfile::default())
            .map_err(ros_error)?;
        let ports = Arc::clone(&ports);
        let (width, height, fit) = (
            setup.collector.width,
            setup.collector.height,
            setup.collector.fit,
        );
        let proprio_dim = setup.collector.proprio.dim();
        executor.spawn(goals.for_each(move |image| {
            match goal_frame(image, width, height, fit, proprio_dim) {
                Ok(frame) => {
                    tracing::info!(stamp_ns = frame.stamp_ns, "new goal image");
                    ports.set_goal(frame);
                }
                Err(reason) => ports.refuse(reason, "goal image"),
            }
            futures::future::ready(())
        }));
    }
    let rollouts_answered = Rc::new(Cell::new(0u64));
    if roles.encode {
        serve_rollouts(
            &mut node,
            &executor,
            &ports,
            setup.rollouts,
            recent,
            Rc::clone(&rollouts_answered),
        )?;
    }

    let status_publisher = train
        .then(|| {
            node.create_publisher::<r2r::autodidact_msgs::msg::TrainerStatus>(
                "autodidact/trainer/status",
                QosProfile::default(),
            )
        })
        .transpose()
        .map_err(ros_error)?;
    let mut weights_out = (train && setup.weights_every_s > 0.0)
        .then(|| WeightsPublisher::start(&mut node, architecture.clone(), Arc::clone(&clock)))
        .transpose()?;
    let weights_every = Duration::from_secs_f64(setup.weights_every_s);
    let topic_follower = if follow_topic {
        let device = ports.encoder().current().device().clone();
        let unpacker = Unpacker::new(&setup.trainer, device);
        Some(TopicFollower::start(
            &mut node,
            &executor,
            WeightsFollower::new(unpacker),
            Arc::clone(&ports),
            Arc::clone(&clock),
        )?)
    } else {
        None
    };
    let mut follower = match &setup.checkpoint {
        Some(dir) if follow_checkpoint => Some(CheckpointFollower::new(
            dir.clone(),
            setup.trainer.model.clone(),
            inference_on,
            Duration::from_secs_f64(setup.reload_every_s),
        )),
        _ => None,
    };
    let failed_worker = Cell::new(None);
    // Every STATUS_PERIOD: publish the status, look at the followed checkpoint, and end the
    // node when a worker has ended (none does on its own while the node runs).
    let supervise = async {
        let mut period = tokio::time::interval(STATUS_PERIOD);
        period.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut weights_sent_at: Option<std::time::Instant> = None;
        loop {
            period.tick().await;
            if let Some(publisher) = &mut weights_out
                && weights_sent_at.is_none_or(|at| at.elapsed() >= weights_every)
                && publisher.offer(&ports)
            {
                weights_sent_at = Some(std::time::Instant::now());
            }
            if let Some(publisher) = &status_publisher {
                let inputs: Vec<_> = robots.iter().cloned().zip(ports.robot_stats()).collect();
                let message = status_out(&lock(&status), &inputs);
                if let Err(error) = publisher.publish(&message) {
                    tracing::warn!(%error, "status not published");
                }
            }
            if let Some((encoder, dynamics)) = follower.as_mut().and_then(|f| f.poll()) {
                let version = encoder.version;
                if !ports.publish_weights(encoder, dynamics) {
                    tracing::warn!(
                        version,
                        served = ports.encoder().current().version,
                        "the checkpoint holds weights older than those served: not applied"
                    );
                }
            }
            if let Some(worker) = runtime.ended() {
                failed_worker.set(Some(worker));
                return;
            }
        }
    };
    let (ended, node) = executor.run(node, supervise)?;
    // Shutdown: no new input; the encoder finishes its frame, the trainer drains its queue
    // into the replay buffer and writes its checkpoint, the viewer logs what is queued.
    let finished = runtime.shutdown();
    // The trainer published its last version while stopping: send it too, then close.
    if let (Some(publisher), Ok(finished)) = (&mut weights_out, &finished)
        && let Some(outcome) = &finished.trainer
    {
        publisher.offer_snapshots(
            Arc::new(outcome.trainer.snapshot()),
            Arc::new(outcome.trainer.dynamics_snapshot()),
        );
    }
    drop(weights_out);
    let followed = topic_follower.map(TopicFollower::finish);
    drop(node);
    let mut report = LearnerReport {
        rollouts: rollouts_answered.get(),
        parameter_replies_unsent: unsent_parameter_replies.get(),
        ..LearnerReport::default()
    };
    let stats = ports.collector_stats();
    report.received = stats.received;
    report.dropped = stats.dropped;
    let finished = finished?;
    report.embedded = finished.encoder.map_or(0, |e| e.embedded);
    report.frames_superseded = finished.frames_superseded;
    report.train_steps = finished.trainer.map_or(0, |t| t.trainer.step_count());
    report.planner = finished.planner;
    report.viz_logged = finished.viz.map_or(0, |v| v.logged);
    report.viz_dropped = finished.queue_drops.get("viz").copied().unwrap_or(0);
    if let Some(followed) = followed {
        report.weights_applied_after_ms = [50.0, 99.0]
            .map(|pct| autodidact_learn::stats::percentile(&followed.applied_after_ms, pct));
        report.weights = Some(followed.counts);
    }
    tracing::info!(?report, ?ended, "learner node stopped");
    match failed_worker.get() {
        Some(worker) if ended == Ended::Done => Err(NodeError::Crashed(worker)),
        _ => Ok(report),
    }
}

/// The workers' outputs as ROS topics: embeddings, health, status (kept for the 2 Hz
/// publication) and the planner's commands.
fn publishers(
    node: &mut r2r::Node,
    roles: Roles,
    train: bool,
    stamped: bool,
    clock: &Arc<dyn Clock>,
    status: &Arc<Mutex<TrainerStatus>>,
    odom_frame: &Arc<Mutex<String>>,
) -> Result<Sinks, NodeError> {
    let mut sinks = Sinks::default();
    if train {
        let health = node
            .create_publisher::<r2r::autodidact_msgs::msg::EmbeddingHealth>(
                "autodidact/health",
                QosProfile::default(),
            )
            .map_err(ros_error)?;
        let status = Arc::clone(status);
        sinks.trainer = Box::new(move |event| match event {
            TrainerEvent::Status(new) => *lock(&status) = new.clone(),
            TrainerEvent::Health(report) => {
                let stamp = lock(&status).stamp_ns;
                if let Err(error) = health.publish(&health_out(report, stamp)) {
                    tracing::warn!(%error, "health not published");
                }
            }
            TrainerEvent::Preview(_) | TrainerEvent::Dynamics(_) => {}
        });
    }
    if roles.encode {
        let embeddings = node
            .create_publisher::<r2r::autodidact_msgs::msg::Embedding>(
                "autodidact/embedding",
                QosProfile::default().keep_last(10),
            )
            .map_err(ros_error)?;
        sinks.embedding = Box::new(move |embedding| {
            if let Err(error) = embeddings.publish(&embedding_out(embedding)) {
                tracing::warn!(%error, "embedding not published");
            }
        });
    }
    if roles.plan {
        let mut send_command = command_publisher(node, stamped, clock)?;
        // The route through the memory, where its places have odometry poses.
        let routes = node
            .create_publisher::<r2r::nav_msgs::msg::Path>(
                "autodidact/planner/route",
                QosProfile::default(),
            )
            .map_err(ros_error)?;
        // The path followed along it by odometry: with each command it gave, and once empty
        // when it is no longer followed (the nav_msgs convention for "no path").
        let paths = node
            .create_publisher::<r2r::nav_msgs::msg::Path>(
                "autodidact/planner/path",
                QosProfile::default(),
            )
            .map_err(ros_error)?;
        let mut following = false;
        let odom_frame = Arc::clone(odom_frame);
        sinks.command = Box::new(move |output| {
            send_command(output);
            let stamp_ns = output.command.stamp_ns;
            if !output.route_odometry.is_empty() {
                let frame_id = lock(&odom_frame).clone();
                let route = convert::path_out(&output.route_odometry, stamp_ns, &frame_id);
                if let Err(error) = routes.publish(&route) {
                    tracing::warn!(%error, "route not published");
                }
            }
            if following || !output.path.is_empty() {
                following = !output.path.is_empty();
                let frame_id = lock(&odom_frame).clone();
                let path = convert::path_out(&output.path, stamp_ns, &frame_id);
                if let Err(error) = paths.publish(&path) {
                    tracing::warn!(%error, "followed path not published");
                }
            }
        });
    }
    Ok(sinks)
}

/// Sends one planner decision on.
type CommandSink = Box<dyn FnMut(&PlannerOutput) + Send>;

/// Publishes the planner's commands on `cmd_vel`: TwistStamped (stamped now) or Twist.
fn command_publisher(
    node: &mut r2r::Node,
    stamped: bool,
    clock: &Arc<dyn Clock>,
) -> Result<CommandSink, NodeError> {
    if stamped {
        let commands = node
            .create_publisher::<TwistStamped>("cmd_vel", QosProfile::default())
            .map_err(ros_error)?;
        let clock = Arc::clone(clock);
        Ok(Box::new(move |output| {
            let (v, w) = (output.command.linear_x, output.command.angular_z);
            let command = convert::twist_stamped(v, w, clock.now_ns());
            if let Err(error) = commands.publish(&command) {
                tracing::warn!(%error, "command not published");
            }
        }))
    } else {
        let commands = node
            .create_publisher::<Twist>("cmd_vel", QosProfile::default())
            .map_err(ros_error)?;
        Ok(Box::new(move |output| {
            let command = convert::twist(output.command.linear_x, output.command.angular_z);
            if let Err(error) = commands.publish(&command) {
                tracing::warn!(%error, "command not published");
            }
        }))
    }
}

/// The rollout service: a task checks each request and queues it for the rollout worker, and
/// answers when the worker has (or at once: a refusal, or "busy").
fn serve_rollouts(
    node: &mut r2r::Node,
    executor: &Executor,
    ports: &Arc<Ports>,
    limits: super::rollout::RolloutLimits,
    recent: Rc<RefCell<VecDeque<Frame>>>,
    answered: Rc<Cell<u64>>,
) -> Result<(), NodeError> {
    let mut requests = node
        .create_service::<Rollout::Service>("autodidact/rollout", QosProfile::services_default())
        .map_err(ros_error)?;
    let newest = Arc::clone(ports);
    let worker = RolloutWorker::start(ports.encoder().clone(), move || newest.dynamics(), limits)?;
    executor.spawn(async move {
        while let Some(request) = requests.next().await {
            answered.set(answered.get() + 1);
            match worker.submit(request.message.clone(), &recent.borrow()) {
                Err(response) => respond_rollout(request, response),
                Ok(answer) => {
                    // Answered from its own task, so the next request is taken meanwhile.
                    tokio::task::spawn_local(async move {
                        let response = answer.await.unwrap_or_else(|_| {
                            rollout_error("the rollout worker has stopped".into())
                        });
                        respond_rollout(request, response);
                    });
                }
            }
        }
    });
    Ok(())
}

/// One robot a node takes inputs from: its index (its collector, its replay source) and its
/// namespace (empty: the node's own topics).
#[derive(Debug, Clone, Copy)]
struct Robot<'a> {
    index: usize,
    namespace: &'a str,
}

impl Robot<'_> {
    /// `topic` in the robot's namespace.
    fn topic(&self, topic: &str) -> String {
        if self.namespace.is_empty() {
            topic.to_owned()
        } else {
            format!("{}/{topic}", self.namespace)
        }
    }
}

/// Subscribes one robot's sensor topics; each message goes through that robot's collector.
/// `odom_frame` (where the node plans) takes the `frame_id` of its odometry messages.
#[allow(clippy::too_many_arguments)]
fn subscribe_sensors(
    node: &mut r2r::Node,
    executor: &Executor,
    ports: &Arc<Ports>,
    clock: &Arc<dyn Clock>,
    robot: Robot<'_>,
    recent: Rc<RefCell<VecDeque<Frame>>>,
    keep_recent: usize,
    types: InputTypes,
    odom_frame: Option<Arc<Mutex<String>>>,
) -> Result<(), NodeError> {
    let sensor = QosProfile::sensor_data();
    let keep = move |frame: Frame| {
        let mut recent = recent.borrow_mut();
        if recent.len() == keep_recent {
            recent.pop_front();
        }
        if keep_recent > 0 {
            recent.push_back(frame);
        }
    };
    let ignore = |_: Frame| {};
    let mut at = Subscriber {
        executor,
        ports,
        node,
        robot,
    };
    if types.compressed_images {
        at.subscribe(
            "camera/image_raw/compressed",
            sensor.clone(),
            "image",
            convert::compressed_image_in,
            keep,
        )?;
    } else {
        at.subscribe(
            "camera/image_raw",
            sensor.clone(),
            "image",
            convert::image_in,
            keep,
        )?;
    }
    at.subscribe(
        "joint_states",
        sensor.clone(),
        "joint state",
        convert::joint_state_in,
        ignore,
    )?;
    at.subscribe(
        "imu/data",
        sensor.clone(),
        "imu",
        |imu: Imu| convert::imu_in(&imu),
        ignore,
    )?;
    at.subscribe(
        "odom",
        sensor,
        "odometry",
        move |odom: Odometry| {
            if let Some(odom_frame) = &odom_frame {
                let mut frame = lock(odom_frame);
                if *frame != odom.header.frame_id && !odom.header.frame_id.is_empty() {
                    frame.clone_from(&odom.header.frame_id);
                }
            }
            convert::odometry_in(&odom)
        },
        ignore,
    )?;
    // Best effort matches reliable and best-effort command publishers alike. Twist has no
    // header: commands are stamped on arrival with the node's clock; TwistStamped carries its
    // own stamp.
    let commands = QosProfile::default().best_effort();
    if types.stamped_commands {
        at.subscribe(
            "cmd_vel",
            commands,
            "command",
            |twist: TwistStamped| convert::twist_stamped_in(&twist),
            ignore,
        )
    } else {
        let clock = Arc::clone(clock);
        at.subscribe(
            "cmd_vel",
            commands,
            "command",
            move |twist: Twist| Ok(convert::twist_in(&twist, clock.now_ns())),
            ignore,
        )
    }
}

/// Which message types the inputs arrive as.
#[derive(Debug, Clone, Copy)]
struct InputTypes {
    /// cmd_vel is TwistStamped.
    stamped_commands: bool,
    /// Images are CompressedImage on camera/image_raw/compressed.
    compressed_images: bool,
}

/// Where subscriptions go: the node, its executor, the runtime's ports and the robot.
struct Subscriber<'a> {
    node: &'a mut r2r::Node,
    executor: &'a Executor,
    ports: &'a Arc<Ports>,
    robot: Robot<'a>,
}

impl Subscriber<'_> {
    /// Subscribes `topic` and hands every message, converted by `convert`, to the collector;
    /// each frame it makes goes to `on_frame` too.
    fn subscribe<T: r2r::WrappedTypesupport + 'static>(
        &mut self,
        topic: &str,
        qos: QosProfile,
        what: &'static str,
        convert: impl Fn(T) -> Result<SensorMsg, DropReason> + 'static,
        mut on_frame: impl FnMut(Frame) + 'static,
    ) -> Result<(), NodeError> {
        let mut messages = self
            .node
            .subscribe::<T>(&self.robot.topic(topic), qos)
            .map_err(ros_error)?;
        let ports = Arc::clone(self.ports);
        let robot = self.robot.index;
        self.executor.spawn(async move {
            while let Some(message) = messages.next().await {
                match convert(message) {
                    Ok(message) => {
                        if let Some(frame) = ports.take_from(robot, &message) {
                            on_frame(frame);
                        }
                    }
                    Err(reason) => ports.refuse_from(robot, reason, what),
                }
            }
        });
        Ok(())
    }
}

/// A goal image as the planner's goal frame: the view at the goal, with the proprio of a robot
/// at rest there (all zeros: no wheel speed, no turn rate, no acceleration).
fn goal_frame(
    image: Image,
    width: u32,
    height: u32,
    fit: Fit,
    proprio_dim: usize,
) -> Result<Frame, DropReason> {
    let image = convert::image_msg_in(image)?;
    let rgb = crate::components::image::to_rgb8(&image, width, height, fit)?;
    Ok(Frame {
        stamp_ns: image.stamp_ns,
        episode: 0,
        image: rgb.into(),
        proprio: vec![0.0; proprio_dim],
        frame_id: Arc::from(""),
        odometry: None,
    })
}

fn respond_rollout(request: r2r::ServiceRequest<Rollout::Service>, response: Rollout::Response) {
    if let Err(error) = request.respond(response) {
        tracing::warn!(%error, "rollout response not sent");
    }
}
