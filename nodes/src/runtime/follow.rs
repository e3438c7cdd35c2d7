//! How a node that does not train follows a trainer's weights:
//!
//! - [`WeightsFollower`]: versions that arrive packed (over `autodidact/weights` from a trainer
//!   on any host) are checked and applied whole: another architecture is refused, a damaged
//!   version is refused, an older one is ignored, and a gap in the publisher's sequence is
//!   counted as versions missed;
//! - [`CheckpointFollower`]: a checkpoint directory on a shared disk, reloaded whenever the
//!   trainer writes a new checkpoint. Loading runs on its own thread, so serving never waits.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::weights::{PackedWeights, Unpacker};
use autodidact_learn::{
    BackendChoice, BackendKind, EncoderSnapshot, LearnError, Trainer, WorldModelConfig,
};
use serde::Serialize;

use crate::runtime::Ports;

/// What became of the weight versions a node was sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WeightsCounts {
    /// Versions received.
    pub received: u64,
    /// Versions applied (served to the encoder, the planner and rollouts).
    pub applied: u64,
    /// Versions refused: packed for another architecture.
    pub other_architecture: u64,
    /// Versions refused: a tensor missing, of another shape or unreadable.
    pub damaged: u64,
    /// Versions not newer than the one served (ignored: a version never goes back).
    pub stale: u64,
    /// Versions the publisher sent that were never applied here (gaps in its sequence: a link
    /// was down, or a newer one arrived before this node had unpacked the previous one).
    pub missed: u64,
    /// The newest version applied.
    pub version: u64,
}

/// What one offered version came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// Served from now on.
    Applied,
    /// Not newer than the version served.
    Stale,
    /// Packed for another architecture.
    OtherArchitecture,
    /// Not unpackable whole (the reason).
    Damaged(String),
}

/// Applies packed weight versions from a trainer to a node's [`Ports`].
#[derive(Debug)]
pub struct WeightsFollower {
    unpacker: Unpacker,
    last_sequence: Option<u64>,
    counts: WeightsCounts,
}

impl WeightsFollower {
    /// Follows versions that `unpacker` can unpack (this node's architecture and device).
    pub fn new(unpacker: Unpacker) -> Self {
        Self {
            unpacker,
            last_sequence: None,
            counts: WeightsCounts::default(),
        }
    }

    /// The architecture digest this node takes.
    pub fn architecture(&self) -> &str {
        self.unpacker.architecture()
    }

    /// Offers version `packed`, the publisher's message number `sequence`, to `ports`: applied
    /// whole if it fits and is newer than what is served; otherwise counted and logged.
    pub fn offer(&mut self, packed: &PackedWeights, sequence: u64, ports: &Ports) -> Offered {
        self.counts.received += 1;
        match self.last_sequence {
            Some(last) if sequence > last.saturating_add(1) => {
                let missed = sequence.saturating_sub(last).saturating_sub(1);
                self.counts.missed = self.counts.missed.saturating_add(missed);
                tracing::warn!(
                    missed,
                    total_missed = self.counts.missed,
                    "weight versions published but not received"
                );
            }
            // A lower number is a publisher that restarted: it counts from 1 again.
            _ => {}
        }
        self.last_sequence = Some(sequence);
        let served = ports.encoder().current().version;
        if packed.version <= served {
            self.counts.stale += 1;
            // The first and then every hundredth is a warning: a trainer that restarted without
            // its checkpoint counts from version 1 again, and this node keeps its newer weights.
            if self.counts.stale % 100 == 1 {
                tracing::warn!(
                    version = packed.version,
                    served,
                    ignored = self.counts.stale,
                    "weights older than those served are ignored (a version never goes back); \
                     resume the trainer from its checkpoint, or restart this node to take them"
                );
            }
            return Offered::Stale;
        }
        let (encoder, dynamics) = match self.unpacker.unpack(packed) {
            Ok(unpacked) => unpacked,
            Err(LearnError::OtherArchitecture { expected, got }) => {
                self.counts.other_architecture += 1;
                // Every one is refused; the first and then every hundredth is logged.
                if self.counts.other_architecture % 100 == 1 {
                    tracing::error!(
                        %expected,
                        %got,
                        refused = self.counts.other_architecture,
                        "weights of another architecture refused: the trainer's model \
                         (config_file, image size, proprio) differs from this node's"
                    );
                }
                return Offered::OtherArchitecture;
            }
            Err(error) => {
                self.counts.damaged += 1;
                tracing::warn!(%error, version = packed.version, "damaged weights refused");
                return Offered::Damaged(error.to_string());
            }
        };
        if !ports.publish_weights(encoder, dynamics) {
            self.counts.stale += 1;
            return Offered::Stale;
        }
        self.counts.applied += 1;
        self.counts.version = packed.version;
        Offered::Applied
    }

    /// The counts so far.
    pub fn counts(&self) -> &WeightsCounts {
        &self.counts
    }
}

/// Weights loaded from a checkpoint, with the time its `meta.json` was written.
type Loaded = (EncoderSnapshot, DynamicsSnapshot, SystemTime);

/// Watches one checkpoint directory and loads it when it changes.
pub(crate) struct CheckpointFollower {
    dir: PathBuf,
    model: WorldModelConfig,
    inference: BackendKind,
    every: Duration,
    last_check: Instant,
    seen: Option<SystemTime>,
    loading: Option<Receiver<Option<Loaded>>>,
}

impl CheckpointFollower {
    /// Follows `dir`, looking every `every` for a checkpoint newer than the one there now,
    /// loaded for `model` (a checkpoint of another shape is refused by the load) onto the
    /// `inference` backend the node decided at start (a reload never times backends again).
    pub(crate) fn new(
        dir: PathBuf,
        model: WorldModelConfig,
        inference: BackendKind,
        every: Duration,
    ) -> Self {
        let seen = modified(&dir);
        Self {
            dir,
            model,
            inference,
            every,
            last_check: Instant::now(),
            seen,
            loading: None,
        }
    }

    /// New weights when a reload of a changed checkpoint has finished; otherwise starts one
    /// when it is time to look and the checkpoint has changed.
    pub(crate) fn poll(&mut self) -> Option<(EncoderSnapshot, DynamicsSnapshot)> {
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
                Ok(None) | Err(TryRecvError::Disconnected) => {
                    self.loading = None;
                    None
                }
                Err(TryRecvError::Empty) => None,
            };
        }
        if self.last_check.elapsed() < self.every {
            return None;
        }
        self.last_check = Instant::now();
        let stamp = modified(&self.dir)?;
        if Some(stamp) == self.seen {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (dir, model) = (self.dir.clone(), self.model.clone());
        let inference = BackendChoice::from(self.inference);
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                // Only the weights are used: the model that loads them stays on the CPU.
                let loaded =
                    match Trainer::resume_on(&dir, Some(&model), BackendChoice::Flex, inference) {
                        Ok(trainer) => {
                            Some((trainer.snapshot(), trainer.dynamics_snapshot(), stamp))
                        }
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

/// When the checkpoint in `dir` was last written (`None` when there is none yet).
pub(crate) fn modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join("meta.json"))
        .and_then(|m| m.modified())
        .ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use autodidact_learn::weights::{architecture_digest, pack};
    use autodidact_learn::{BackendKind, TrainerConfig};

    use super::*;
    use crate::components::collector::{Collector, CollectorConfig};
    use crate::runtime::clock::ManualClock;

    fn config() -> TrainerConfig {
        TrainerConfig::for_inputs(16, 16, 2)
    }

    /// Weights of `config`'s shapes as version `version`, labelled `architecture`.
    fn packed(config: &TrainerConfig, version: u64, architecture: &str) -> PackedWeights {
        let device = BackendKind::Flex.device();
        let model = &config.model;
        let encoder = model.encoder.init(&device);
        let dynamics = model.dynamics().init(&device);
        let encoder = EncoderSnapshot::new(&encoder, model.encoder.clone(), version, 10, &device);
        let mut dynamics = DynamicsSnapshot::new(
            &dynamics,
            model.embed_dim(),
            config.action_scale,
            version,
            &device,
        );
        // The proprio head travels where the model serves it (a trainer's relative-pose head
        // only once trained: these weights come without it).
        if config.serves_proprio_head() {
            dynamics = dynamics.with_proprio_head(&model.proprio_head().init(&device));
        }
        pack(&encoder, &dynamics, architecture).expect("pack")
    }

    fn ports(trainer: &mut Trainer) -> Ports {
        let collector = Collector::new(CollectorConfig::default(), Arc::new(ManualClock::new()));
        Ports::new(
            vec![collector],
            Vec::new(),
            trainer.encoder_handle(),
            Arc::new(trainer.dynamics_snapshot()),
        )
    }

    #[test]
    fn versions_are_applied_whole_never_backwards_and_gaps_are_counted_as_missed() {
        let config = config();
        let mut trainer = Trainer::new(config.clone()).expect("trainer");
        let ports = ports(&mut trainer);
        let ours = architecture_digest(&config);
        let mut follower = WeightsFollower::new(Unpacker::new(&config, BackendKind::Flex.device()));
        let served = || (ports.encoder().current().version, ports.dynamics().version);

        assert_eq!(
            follower.offer(&packed(&config, 2, &ours), 1, &ports),
            Offered::Applied
        );
        assert_eq!(served(), (2, 2));
        // An older version (a restarted trainer, a late duplicate) never takes the node back.
        assert_eq!(
            follower.offer(&packed(&config, 1, &ours), 2, &ports),
            Offered::Stale
        );
        assert_eq!(served(), (2, 2));
        // Messages 3 to 5 never arrived: counted, and the newest is applied.
        assert_eq!(
            follower.offer(&packed(&config, 7, &ours), 6, &ports),
            Offered::Applied
        );
        assert_eq!(served(), (7, 7));

        let mut wider = config.clone();
        wider.model.encoder.embed_dim = 48;
        let theirs = architecture_digest(&wider);
        assert_eq!(
            follower.offer(&packed(&wider, 9, &theirs), 7, &ports),
            Offered::OtherArchitecture
        );
        let mut damaged = packed(&config, 9, &ours);
        damaged
            .safetensors
            .truncate(damaged.safetensors.len() - 100);
        assert!(matches!(
            follower.offer(&damaged, 8, &ports),
            Offered::Damaged(_)
        ));
        // Nothing of a refused version is served.
        assert_eq!(served(), (7, 7));
        assert_eq!(
            *follower.counts(),
            WeightsCounts {
                received: 5,
                applied: 2,
                other_architecture: 1,
                damaged: 1,
                stale: 1,
                missed: 3,
                version: 7,
            }
        );
        // A sequence number off the wire at the end of its range counts, it does not overflow.
        assert_eq!(
            follower.offer(&packed(&config, 8, &ours), u64::MAX, &ports),
            Offered::Applied
        );
        assert_eq!(follower.counts().missed, u64::MAX - 9 + 3);
    }
}
