//! The runtime's ports: where a transport (the simulator's loop, ROS subscriptions and services)
//! hands inputs in and reads the shared state out. One [`Ports`] is shared by every task and
//! thread of a node; everything in it is safe to call from any of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{EncoderHandle, EncoderSnapshot, Transition};

use crate::components::collector::{Collector, CollectorStats, Frame};
use crate::components::encoder::EncodeRequest;
use crate::components::stats::DropReason;
use crate::components::viz::VizEvent;
use crate::msg::SensorMsg;
use crate::runtime::latest::LatestCell;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Offers telemetry without ever blocking the sender; a full queue is counted.
#[derive(Clone)]
pub(crate) struct VizOut {
    queue: Option<SyncSender<VizEvent>>,
    dropped: Arc<AtomicU64>,
}

impl VizOut {
    /// Telemetry into `queue`, or nowhere.
    pub(crate) fn new(queue: Option<SyncSender<VizEvent>>) -> Self {
        Self {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues the event `event` builds, if there is room; counts it when there is not.
    /// Whether it was queued.
    pub(crate) fn offer(&self, event: impl FnOnce() -> VizEvent) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        match queue.try_send(event()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Events dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where frames for the encoder go.
pub(crate) enum FrameSink {
    /// A bounded queue: a frame that finds it full is dropped and counted (`queue_full`).
    Queue(SyncSender<EncodeRequest>),
    /// Only the newest frame waits; an untaken one is replaced (counted as superseded).
    Newest(Arc<LatestCell<EncodeRequest>>),
}

/// What the collector's outputs reach; `None` once closed or when the node has no such worker.
struct Outlets {
    transitions: Option<SyncSender<Transition>>,
    frames: Option<FrameSink>,
    planner: Option<Arc<LatestCell<Frame>>>,
    viz: VizOut,
}

/// The shared state of a running node.
pub struct Ports {
    /// One per robot; a single robot is robot 0.
    collectors: Vec<Mutex<Collector>>,
    outlets: Mutex<Outlets>,
    proprio_names: Vec<String>,
    encoder: EncoderHandle,
    dynamics: Mutex<Arc<DynamicsSnapshot>>,
    goal: Mutex<Option<Frame>>,
    encoder_queue_drops: AtomicU64,
    trainer_queue_drops: AtomicU64,
}

impl Ports {
    pub(crate) fn new(
        collectors: Vec<Collector>,
        proprio_names: Vec<String>,
        encoder: EncoderHandle,
        dynamics: Arc<DynamicsSnapshot>,
    ) -> Self {
        Self {
            collectors: collectors.into_iter().map(Mutex::new).collect(),
            outlets: Mutex::new(Outlets {
                transitions: None,
                frames: None,
                planner: None,
                viz: VizOut::new(None),
            }),
            proprio_names,
            encoder,
            dynamics: Mutex::new(dynamics),
            goal: Mutex::new(None),
            encoder_queue_drops: AtomicU64::new(0),
            trainer_queue_drops: AtomicU64::new(0),
        }
    }

    pub(crate) fn connect(
        &self,
        transitions: Option<SyncSender<Transition>>,
        frames: Option<FrameSink>,
        planner: Option<Arc<LatestCell<Frame>>>,
        viz: VizOut,
    ) {
        *lock(&self.outlets) = Outlets {
            transitions,
            frames,
            planner,
            viz,
        };
    }

    /// Takes one sensor message of robot `robot` (0 for a single robot) through that robot's
    /// collector (its own pairing, episodes and drop counts) and hands what it makes to the
    /// workers: the frame to the encoder, the planner and the viewer, the transition to the
    /// trainer (dropped and counted when the trainer's queue is full: a live source cannot
    /// wait). Returns the frame, if the message made one. A robot the node does not have takes
    /// nothing.
    pub fn take_from(&self, robot: usize, message: &SensorMsg) -> Option<Frame> {
        self.take_as(robot, message, false)
    }

    /// As [`Ports::take_from`] for robot 0, but waits for room in the trainer's queue instead of dropping the
    /// transition: for a source that can wait, such as a bag.
    pub fn take_waiting(&self, message: &SensorMsg) -> Option<Frame> {
        self.take_as(0, message, true)
    }

    /// Ends the current episode of every stream (a bag ended): the pending frame becomes a
    /// transition (waiting for room in the trainer's queue) and the next frame starts afresh.
    pub fn end_episode(&self) {
        for collector in &self.collectors {
            let last = lock(collector).end_episode();
            if let (Some(transition), Some(queue)) = (last, &lock(&self.outlets).transitions) {
                // An error is a trainer that stopped: nothing to keep it for.
                let _ = queue.send(transition);
            }
        }
    }

    fn take_as(&self, robot: usize, message: &SensorMsg, wait: bool) -> Option<Frame> {
        let mut collector = lock(self.collectors.get(robot)?);
        let collected = collector.on_message(message);
        let outlets = lock(&self.outlets);
        if let Some(frame) = &collected.frame {
            let (width, height) = (collector.config().width, collector.config().height);
            outlets.viz.offer(|| VizEvent::Camera {
                robot,
                stamp_ns: frame.stamp_ns,
                width,
                height,
                rgb: frame.image.clone(),
                proprio: self
                    .proprio_names
                    .iter()
                    .cloned()
                    .zip(frame.proprio.iter().copied())
                    .collect(),
            });
            if let Some(cell) = &outlets.planner {
                cell.put(frame.clone());
            }
            let request = || EncodeRequest {
                frame: frame.clone(),
                queued_at: Instant::now(),
            };
            match &outlets.frames {
                Some(FrameSink::Queue(queue)) => {
                    if let Err(TrySendError::Full(_)) = queue.try_send(request()) {
                        self.encoder_queue_drops.fetch_add(1, Ordering::Relaxed);
                        collector.record_drop(DropReason::QueueFull, "frame for the encoder");
                    }
                }
                Some(FrameSink::Newest(cell)) => {
                    cell.put(request());
                }
                None => {}
            }
        }
        if let (Some(transition), Some(queue)) = (collected.transition, &outlets.transitions) {
            // A disconnected queue is a trainer that has stopped: nothing to keep it for. The
            // trainer never takes these locks, so waiting here cannot deadlock.
            if wait {
                let _ = queue.send(transition);
            } else if let Err(TrySendError::Full(_)) = queue.try_send(transition) {
                self.trainer_queue_drops.fetch_add(1, Ordering::Relaxed);
                collector.record_drop(DropReason::QueueFull, "transition for the trainer");
            }
        }
        collected.frame
    }

    /// Counts a message refused before it reached the collector (undecodable, bad stamp).
    pub fn refuse(&self, reason: DropReason, what: &str) {
        self.refuse_from(0, reason, what);
    }

    /// As [`Ports::refuse`], for robot `robot` of a fleet.
    pub fn refuse_from(&self, robot: usize, reason: DropReason, what: &str) {
        if let Some(collector) = self.collectors.get(robot) {
            lock(collector).record_drop(reason, what);
        }
    }

    /// The collectors' counters, summed over the robots.
    pub fn collector_stats(&self) -> CollectorStats {
        let mut total = CollectorStats::default();
        for stats in self.robot_stats() {
            total.add(&stats);
        }
        total
    }

    /// Each robot's collector counters, in robot order.
    pub fn robot_stats(&self) -> Vec<CollectorStats> {
        self.collectors.iter().map(|c| lock(c).stats()).collect()
    }

    /// Frames and transitions dropped because the encoder's or the trainer's queue was full.
    pub fn queue_drops(&self) -> (u64, u64) {
        (
            self.encoder_queue_drops.load(Ordering::Relaxed),
            self.trainer_queue_drops.load(Ordering::Relaxed),
        )
    }

    /// Offers an event to the viewer (dropped and counted when its queue is full).
    pub fn offer_viz(&self, event: impl FnOnce() -> VizEvent) -> bool {
        lock(&self.outlets).viz.offer(event)
    }

    /// A new goal for the planner, used from its next frame.
    #[cfg_attr(not(feature = "ros"), allow(dead_code))]
    pub fn set_goal(&self, goal: Frame) {
        *lock(&self.goal) = Some(goal);
    }

    pub(crate) fn take_goal(&self) -> Option<Frame> {
        lock(&self.goal).take()
    }

    /// The newest encoder weights.
    pub fn encoder(&self) -> &EncoderHandle {
        &self.encoder
    }

    /// The latent dynamics matching the newest encoder.
    pub fn dynamics(&self) -> Arc<DynamicsSnapshot> {
        Arc::clone(&lock(&self.dynamics))
    }

    pub(crate) fn set_dynamics(&self, dynamics: Arc<DynamicsSnapshot>) {
        *lock(&self.dynamics) = dynamics;
    }

    /// Serves new weights (loaded from a checkpoint or received from the trainer) to the
    /// encoder, the planner and rollouts, if they are newer than those served: a version never
    /// goes back. Returns whether they were served. (Only nodes that follow a trainer they do
    /// not run serve weights this way.)
    #[cfg_attr(not(feature = "ros"), allow(dead_code))]
    pub fn publish_weights(&self, encoder: EncoderSnapshot, dynamics: DynamicsSnapshot) -> bool {
        // The dynamics lock is held across the swap so that two deliveries cannot interleave
        // into an encoder of one version and dynamics of another.
        let mut served_dynamics = lock(&self.dynamics);
        if !self.encoder.publish_newer(encoder) {
            return false;
        }
        *served_dynamics = Arc::new(dynamics);
        true
    }

    /// No more input: the collector's last frame becomes a transition, and every queue closes
    /// so the workers finish what they hold and end.
    pub(crate) fn close(&self) {
        // Collectors first, then the outlets (the order `take_from` locks them in).
        let last: Vec<_> = self.collectors.iter().map(|c| lock(c).flush()).collect();
        let mut outlets = lock(&self.outlets);
        let mut full = Vec::new();
        for (robot, transition) in last.into_iter().enumerate() {
            if let (Some(transition), Some(queue)) = (transition, &outlets.transitions)
                && let Err(TrySendError::Full(_)) = queue.try_send(transition)
            {
                full.push(robot);
            }
        }
        outlets.transitions = None;
        if let Some(FrameSink::Newest(cell)) = outlets.frames.take() {
            cell.close();
        }
        if let Some(cell) = outlets.planner.take() {
            cell.close();
        }
        outlets.viz = VizOut::new(None);
        drop(outlets);
        for robot in full {
            self.trainer_queue_drops.fetch_add(1, Ordering::Relaxed);
            self.refuse_from(robot, DropReason::QueueFull, "transition for the trainer");
        }
    }
}
