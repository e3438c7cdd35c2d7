//! Following a checkpoint directory: a node that does not train (an encoder or planner beside a
//! trainer on a shared disk) reloads the weights whenever the trainer writes a new checkpoint.
//! Loading runs on its own thread, so serving never waits for it.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant, SystemTime};

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{BackendChoice, BackendKind, EncoderSnapshot, Trainer, WorldModelConfig};

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
