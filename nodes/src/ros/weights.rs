//! Weights over DDS: the trainer publishes each new version on `autodidact/weights`
//! (`autodidact_msgs/ModelWeights`, reliable, transient local, depth 1), and a node that does not
//! train follows it ([`crate::runtime::follow::WeightsFollower`]). So the trainer can run on a
//! GPU workstation and the encoders and planners on the robots, with nothing shared but the
//! network.
//!
//! Packing and unpacking run on their own threads: the node's executor never waits for them,
//! and only the newest version waits for either (an older one that was not sent yet is
//! replaced).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use autodidact_learn::EncoderSnapshot;
use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::weights::{PackedWeights, WEIGHTS_FORMAT, pack};
use futures::StreamExt;
use r2r::QosProfile;
use r2r::autodidact_msgs::msg::ModelWeights;

use super::convert::header;
use super::executor::Executor;
use super::ros_error;
use crate::NodeError;
use crate::runtime::clock::Clock;
use crate::runtime::follow::{Offered, WeightsCounts, WeightsFollower};
use crate::runtime::latest::LatestCell;
use crate::runtime::{Ports, lock};

/// The topic, relative to the node's namespace (remap it to share one trainer's weights
/// across namespaces: `-r autodidact/weights:=/autodidact/weights`).
pub const WEIGHTS_TOPIC: &str = "autodidact/weights";

/// Reliable and transient local with depth 1: a subscriber that joins late (or whose link comes
/// back) gets the newest version at once; older ones are not kept for anybody.
fn weights_qos() -> QosProfile {
    QosProfile::default()
        .keep_last(1)
        .reliable()
        .transient_local()
}

/// One version to send.
type Version = (Arc<EncoderSnapshot>, Arc<DynamicsSnapshot>);

/// Publishes weight versions from a thread of its own.
pub(crate) struct WeightsPublisher {
    newest: Arc<LatestCell<Version>>,
    sent_version: Option<u64>,
    thread: Option<JoinHandle<()>>,
}

impl WeightsPublisher {
    /// Advertises `autodidact/weights` for weights of `architecture`, stamped with `clock`.
    pub(crate) fn start(
        node: &mut r2r::Node,
        architecture: String,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NodeError> {
        let publisher = node
            .create_publisher::<ModelWeights>(WEIGHTS_TOPIC, weights_qos())
            .map_err(ros_error)?;
        let newest = Arc::new(LatestCell::<Version>::new());
        let inbox = Arc::clone(&newest);
        let thread = std::thread::Builder::new()
            .name("weights-out".into())
            .spawn(move || {
                let mut sequence = 0u64;
                while let Some((encoder, dynamics)) = inbox.take() {
                    let packed = match pack(&encoder, &dynamics, &architecture) {
                        Ok(packed) => packed,
                        Err(error) => {
                            tracing::warn!(%error, "weights not packed");
                            continue;
                        }
                    };
                    sequence += 1;
                    let bytes = packed.safetensors.len();
                    let message = weights_out(packed, sequence, clock.now_ns());
                    match publisher.publish(&message) {
                        Ok(()) => tracing::debug!(
                            version = message.model_version,
                            sequence,
                            bytes,
                            "weights published"
                        ),
                        Err(error) => tracing::warn!(%error, "weights not published"),
                    }
                }
            })
            .map_err(|e| NodeError::Setup(format!("weights thread: {e}")))?;
        Ok(Self {
            newest,
            sent_version: None,
            thread: Some(thread),
        })
    }

    /// Sends the served weights if they are a version not sent yet (and trained: version 0 is
    /// the initial weights) and the encoder and dynamics are of one version; returns whether
    /// it did.
    pub(crate) fn offer(&mut self, ports: &Ports) -> bool {
        self.offer_snapshots(ports.encoder().current(), ports.dynamics())
    }

    /// As [`WeightsPublisher::offer`], for snapshots at hand (the trainer's last, at shutdown).
    pub(crate) fn offer_snapshots(
        &mut self,
        encoder: Arc<EncoderSnapshot>,
        dynamics: Arc<DynamicsSnapshot>,
    ) -> bool {
        if encoder.version == 0
            || encoder.version != dynamics.version
            || self.sent_version >= Some(encoder.version)
        {
            return false;
        }
        self.sent_version = Some(encoder.version);
        self.newest.put((encoder, dynamics));
        true
    }
}

impl Drop for WeightsPublisher {
    fn drop(&mut self) {
        self.newest.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the weights thread stopped unexpectedly");
        }
    }
}

/// Packed weights → autodidact_msgs/ModelWeights.
pub(crate) fn weights_out(packed: PackedWeights, sequence: u64, now_ns: u64) -> ModelWeights {
    ModelWeights {
        header: header(now_ns, ""),
        model_version: packed.version,
        train_step: packed.train_step,
        sequence,
        architecture: packed.architecture,
        format: WEIGHTS_FORMAT.to_owned(),
        weights: packed.safetensors,
    }
}

/// A received version: the weights, the publisher's sequence number and its stamp.
type Received = (PackedWeights, u64, u64);

/// autodidact_msgs/ModelWeights → packed weights (a format this build does not know is
/// refused as damaged by its architecture digest, which includes the format).
fn weights_in(message: ModelWeights) -> Received {
    let stamp_ns = super::convert::stamp_ns(&message.header.stamp).unwrap_or(0);
    let architecture = if message.format == WEIGHTS_FORMAT {
        message.architecture
    } else {
        format!("{} ({})", message.architecture, message.format)
    };
    (
        PackedWeights {
            version: message.model_version,
            train_step: message.train_step,
            architecture,
            safetensors: message.weights,
        },
        message.sequence,
        stamp_ns,
    )
}

/// What a following node did with the versions it was sent, with the time from publish to
/// applied (the publisher's stamp to this node's clock).
#[derive(Debug, Default)]
pub(crate) struct FollowReport {
    /// The counts.
    pub counts: WeightsCounts,
    /// Milliseconds from publish to applied, per applied version.
    pub applied_after_ms: Vec<f64>,
}

/// Follows `autodidact/weights`: each message goes to a thread that unpacks and applies it;
/// only the newest waits there.
pub(crate) struct TopicFollower {
    newest: Arc<LatestCell<Received>>,
    report: Arc<std::sync::Mutex<FollowReport>>,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl TopicFollower {
    /// Subscribes and starts applying versions to `ports`.
    pub(crate) fn start(
        node: &mut r2r::Node,
        executor: &Executor,
        follower: WeightsFollower,
        ports: Arc<Ports>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NodeError> {
        tracing::info!(
            topic = WEIGHTS_TOPIC,
            architecture = follower.architecture(),
            "following the trainer's weights"
        );
        let mut messages = node
            .subscribe::<ModelWeights>(WEIGHTS_TOPIC, weights_qos())
            .map_err(ros_error)?;
        let newest = Arc::new(LatestCell::<Received>::new());
        let received = Arc::new(AtomicU64::new(0));
        let (inbox, arrived) = (Arc::clone(&newest), Arc::clone(&received));
        executor.spawn(async move {
            while let Some(message) = messages.next().await {
                arrived.fetch_add(1, Ordering::Relaxed);
                inbox.put(weights_in(message));
            }
        });
        let report = Arc::new(std::sync::Mutex::new(FollowReport::default()));
        let (inbox, shared) = (Arc::clone(&newest), Arc::clone(&report));
        let mut follower = follower;
        let thread = std::thread::Builder::new()
            .name("weights-in".into())
            .spawn(move || {
                while let Some((packed, sequence, stamp_ns)) = inbox.take() {
                    let offered = follower.offer(&packed, sequence, &ports);
                    let mut report = lock(&shared);
                    report.counts = follower.counts().clone();
                    if offered == Offered::Applied {
                        let after_ms = clock.now_ns().saturating_sub(stamp_ns) as f64 * 1e-6;
                        report.applied_after_ms.push(after_ms);
                        tracing::info!(
                            version = packed.version,
                            step = packed.train_step,
                            sequence,
                            bytes = packed.safetensors.len(),
                            after_ms,
                            missed = report.counts.missed,
                            "weights applied"
                        );
                    }
                }
            })
            .map_err(|e| NodeError::Setup(format!("weights thread: {e}")))?;
        Ok(Self {
            newest,
            report,
            received,
            thread: Some(thread),
        })
    }

    /// Stops applying and returns what happened; a version that arrived but was replaced
    /// before the thread took it counts as received and missed.
    pub(crate) fn finish(mut self) -> FollowReport {
        self.stop();
        let mut report = std::mem::take(&mut *lock(&self.report));
        let arrived = self.received.load(Ordering::Relaxed);
        report.counts.received = arrived;
        report
    }
}

impl TopicFollower {
    /// Closes the inbox and joins the thread (it applies what is inside first).
    fn stop(&mut self) {
        self.newest.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the weights thread stopped unexpectedly");
        }
    }
}

impl Drop for TopicFollower {
    /// A follower dropped without [`TopicFollower::finish`] (its node failed) still stops
    /// its thread, which holds the node's ports.
    fn drop(&mut self) {
        self.stop();
    }
}
