//! The trainer node: fills the replay buffer from the collector while it trains, on its own
//! thread pool; publishes status every step, a new encoder version every `publish_every` steps
//! (through the learn crate's snapshot handle), embedding health and decoded predictions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::{HealthReport, LearnError, Preview, Trainer, Transition, embedding_health};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::msg::{HealthMsg, TrainerStatus};

/// Trainer node settings (the model and objectives are in `autodidact_learn::TrainerConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerNodeConfig {
    /// Transitions in the replay buffer before the first step.
    pub min_replay: usize,
    /// Threads of the trainer's compute pool (0: one per core).
    pub threads: usize,
    /// Niceness added to the compute threads (Linux; 0 leaves them as they are). Inference
    /// (encoder, planner, rollouts) then gets a core as soon as a frame arrives, while training
    /// still uses every core the rest of the time.
    pub nice: i32,
    /// Compute embedding health every this many steps (0: never).
    pub health_every: u64,
    /// Newest frames the health report looks at.
    pub health_window: usize,
    /// Decode a predicted future every this many steps (0: never; needs the decoder).
    pub preview_every: u64,
    /// Write a checkpoint here at the end (and every `checkpoint_every` steps).
    pub checkpoint_dir: Option<PathBuf>,
    /// Steps between checkpoints (0: only at the end).
    pub checkpoint_every: u64,
    /// Stop training after this many steps (data is still taken in).
    pub max_steps: Option<u64>,
}

impl Default for TrainerNodeConfig {
    fn default() -> Self {
        Self {
            min_replay: 256,
            threads: 0,
            nice: 10,
            health_every: 25,
            health_window: 256,
            preview_every: 50,
            checkpoint_dir: None,
            checkpoint_every: 0,
            max_steps: None,
        }
    }
}

/// Most threads a compute pool may be given (a setting beyond it is a typo, not a machine).
pub const MAX_THREADS: usize = 1024;

impl TrainerNodeConfig {
    /// Checks the settings, naming the field of the one that is unusable; a `min_replay` above
    /// the replay buffer's `replay_capacity` is warned about (training then never starts).
    pub fn validate(&self, replay_capacity: usize) -> Result<(), NodeError> {
        if self.threads > MAX_THREADS {
            return Err(NodeError::Setup(format!(
                "trainer_node.threads must be in 0..={MAX_THREADS} (0: one per core), got {}",
                self.threads
            )));
        }
        if !(0..=19).contains(&self.nice) {
            return Err(NodeError::Setup(format!(
                "trainer_node.nice must be in 0..=19, got {}",
                self.nice
            )));
        }
        if self.min_replay > replay_capacity {
            // Allowed (a node that collects and reports but does not train yet), but said.
            tracing::warn!(
                min_replay = self.min_replay,
                replay_capacity,
                "trainer_node.min_replay is more than the replay buffer holds: training will not start"
            );
        }
        if self.health_window == 0 || self.health_window > 1 << 20 {
            return Err(NodeError::Setup(format!(
                "trainer_node.health_window must be in 1..={}, got {}",
                1 << 20,
                self.health_window
            )));
        }
        Ok(())
    }
}

/// What the trainer publishes.
#[derive(Debug, Clone)]
pub enum TrainerEvent {
    /// After every step.
    Status(TrainerStatus),
    /// Every `health_every` steps.
    Health(HealthMsg),
    /// Every `preview_every` steps.
    Preview(Preview),
    /// Whenever the weights version changes (and once at the start): the latent dynamics for
    /// rollouts and planning, matching the published encoder.
    Dynamics(Arc<DynamicsSnapshot>),
}

/// The trainer after the run, with its counters.
#[derive(Debug)]
pub struct TrainerOutcome {
    /// The trained model (for evaluation and export).
    pub trainer: Trainer,
    /// Transitions taken into the replay buffer.
    pub pushed: u64,
    /// Transitions the replay buffer refused (logged).
    pub refused: u64,
    /// Periodic checkpoints that could not be written (logged; the next one tried again).
    pub checkpoint_failures: u64,
}

/// Trains until `stop` is set or the inbox closes; every transition that arrived is in the
/// replay buffer when it returns.
pub fn run_trainer(
    config: &TrainerNodeConfig,
    mut trainer: Trainer,
    inbox: Receiver<Transition>,
    stop: &AtomicBool,
    mut emit: impl FnMut(TrainerEvent),
) -> Result<TrainerOutcome, NodeError> {
    let threads = if config.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        config.threads
    };
    if let Some(dir) = &config.checkpoint_dir {
        // A target that is not a checkpoint is refused now, not after the training it would lose.
        Trainer::check_checkpoint_target(dir)?;
    }
    let pool = crate::runtime::pool::compute_pool("trainer", threads, config.nice)?;
    let mut checkpoint_failures = 0u64;
    let mut pushed = 0u64;
    let mut refused = 0u64;
    let mut take = |trainer: &mut Trainer, transition: Transition| match trainer.push(transition) {
        Ok(()) => pushed += 1,
        Err(error) => {
            refused += 1;
            tracing::warn!(%error, "transition refused by the replay buffer");
        }
    };
    let mut inbox_open = true;
    let first = trainer.dynamics_snapshot();
    let mut dynamics_version = first.version;
    emit(TrainerEvent::Dynamics(Arc::new(first)));
    {
        while inbox_open && !stop.load(Ordering::Relaxed) {
            loop {
                match inbox.try_recv() {
                    Ok(transition) => take(&mut trainer, transition),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        inbox_open = false;
                        break;
                    }
                }
            }
            let done = config
                .max_steps
                .is_some_and(|max| trainer.step_count() >= max);
            if done || trainer.replay().len() < config.min_replay.max(1) {
                match inbox.recv_timeout(Duration::from_millis(20)) {
                    Ok(transition) => take(&mut trainer, transition),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => inbox_open = false,
                }
                continue;
            }
            let report = match pool.install(|| trainer.step()) {
                Ok(report) => report,
                // Too few unbroken sequences yet: wait for more data.
                Err(LearnError::NotEnoughData { .. }) => {
                    if let Ok(transition) = inbox.recv_timeout(Duration::from_millis(20)) {
                        take(&mut trainer, transition);
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let step = trainer.step_count();
            let newest = trainer.replay().newest_stamp_ns().unwrap_or(0);
            emit(TrainerEvent::Status(TrainerStatus {
                stamp_ns: newest,
                train_step: step,
                model_version: report.weights_version,
                losses: report.losses,
                grad_norm: report.grad_norm,
                samples_per_second: report.samples_per_second,
                replay_len: trainer.replay().len(),
                replay_by_robot: trainer.replay().len_by_source(),
                non_finite_skips: trainer.non_finite_skips(),
                placements: trainer.placements().clone(),
            }));
            if report.skipped_non_finite {
                continue;
            }
            if report.weights_version != dynamics_version {
                dynamics_version = report.weights_version;
                emit(TrainerEvent::Dynamics(Arc::new(
                    trainer.dynamics_snapshot(),
                )));
            }
            if config.health_every > 0 && step.is_multiple_of(config.health_every) {
                match pool.install(|| health(&trainer, config.health_window)) {
                    Ok(report) => emit(TrainerEvent::Health(HealthMsg {
                        train_step: step,
                        report,
                    })),
                    Err(error) => tracing::debug!(%error, "no health report this time"),
                }
            }
            if config.preview_every > 0
                && step.is_multiple_of(config.preview_every)
                && trainer.model().decoder.is_some()
            {
                let horizon = trainer.config().forward_horizon().max(1);
                if let Some(sequence) = newest_sequence(&trainer, horizon + 1) {
                    match pool.install(|| trainer.preview(&sequence)) {
                        Ok(preview) => emit(TrainerEvent::Preview(preview)),
                        Err(error) => tracing::warn!(%error, "preview failed"),
                    }
                }
            }
            if let Some(dir) = &config.checkpoint_dir
                && config.checkpoint_every > 0
                && step.is_multiple_of(config.checkpoint_every)
                && let Err(error) = trainer.save_checkpoint(dir)
            {
                // A full disk for a moment must not end the training: the next one tries again.
                checkpoint_failures += 1;
                tracing::warn!(
                    %error,
                    step,
                    failures = checkpoint_failures,
                    "periodic checkpoint not written; training goes on"
                );
            }
        }
    }
    // Nothing that arrived is lost: drain what is left into the replay buffer.
    while let Ok(transition) = inbox.try_recv() {
        take(&mut trainer, transition);
    }
    trainer.publish();
    if let Some(dir) = &config.checkpoint_dir {
        // The final checkpoint holds everything learnt: if it cannot be written, the run fails
        // and says so.
        trainer.save_checkpoint(dir)?;
    }
    // A GPU may still be running the last step's updates: finish them before the node goes
    // on to shut down (a software Vulkan driver aborts when torn down mid-kernel).
    trainer.finish_queued_work()?;
    Ok(TrainerOutcome {
        trainer,
        pushed,
        refused,
        checkpoint_failures,
    })
}

/// Health of the current weights on the newest `window` frames of the replay buffer.
pub fn health(trainer: &Trainer, window: usize) -> Result<HealthReport, NodeError> {
    let replay = trainer.replay();
    let from = replay.len().saturating_sub(window);
    let frames: Vec<Transition> = (from..replay.len())
        .filter_map(|i| replay.get(i).cloned())
        .collect();
    let horizon = trainer.config().forward_horizon().max(1);
    Ok(embedding_health(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &frames,
        horizon,
        2,
    )?)
}

/// The newest `length` transitions if they are one unbroken episode.
fn newest_sequence(trainer: &Trainer, length: usize) -> Option<Vec<Transition>> {
    let replay = trainer.replay();
    let from = replay.len().checked_sub(length)?;
    let sequence: Vec<Transition> = (from..replay.len())
        .filter_map(|i| replay.get(i).cloned())
        .collect();
    let one_episode = sequence.windows(2).all(|pair| {
        pair[0].source == pair[1].source
            && pair[0].episode == pair[1].episode
            && pair[1].frame_stamp_ns > pair[0].frame_stamp_ns
    });
    (sequence.len() == length && one_episode).then_some(sequence)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use autodidact_learn::TrainerConfig;

    use super::*;

    /// A small model at 16×16 with 2 proprio values, and `count` frames of one episode.
    fn small_trainer_and_frames(count: u64) -> (Trainer, Vec<Transition>) {
        let mut config = TrainerConfig::for_inputs(16, 16, 2);
        config.batch_size = 4;
        let trainer = Trainer::new(config).expect("trainer");
        let frames = (0..count)
            .map(|i| Transition {
                source: 0,
                episode: 0,
                frame_stamp_ns: (i + 1) * 50_000_000,
                image: (0..16 * 16 * 3)
                    .map(|p| ((p as u64 * 7 + i * 13) % 251) as u8)
                    .collect(),
                proprio: vec![0.1 * (i % 5) as f32, -0.2],
                action: [0.2, 0.1 * (i % 3) as f32],
                odometry: None,
            })
            .collect();
        (trainer, frames)
    }

    #[test]
    fn a_failed_periodic_checkpoint_is_counted_and_training_goes_on() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("ckpt");
        let (trainer, frames) = small_trainer_and_frames(64);
        let config = TrainerNodeConfig {
            min_replay: 32,
            threads: 1,
            nice: 0,
            health_every: 0,
            preview_every: 0,
            checkpoint_dir: Some(dir.clone()),
            checkpoint_every: 1,
            ..TrainerNodeConfig::default()
        };
        let (tx, rx) = sync_channel(64);
        for frame in frames {
            tx.send(frame).expect("queued");
        }
        let stop = AtomicBool::new(false);
        let foreign = dir.join("someone-elses-file");
        let mut last_step = 0;
        let outcome = run_trainer(&config, trainer, rx, &stop, |event| {
            let TrainerEvent::Status(status) = event else {
                return;
            };
            last_step = status.train_step;
            match status.train_step {
                // The checkpoint of step 1 is on disk; from now on its directory holds a file
                // that is not part of it, so saving there is refused (as a full disk would fail).
                2 => std::fs::write(&foreign, b"keep").expect("write"),
                5 => {
                    std::fs::remove_file(&foreign).expect("remove");
                    stop.store(true, Ordering::Relaxed);
                }
                _ => {}
            }
        })
        .expect("the run survives failed periodic checkpoints");
        assert_eq!(last_step, 5, "training went on after the failures");
        assert_eq!(outcome.checkpoint_failures, 3, "steps 2, 3 and 4");
        drop(tx);
        let saved = Trainer::resume(&dir, None).expect("the final checkpoint");
        assert_eq!(saved.step_count(), 5);
    }

    #[test]
    fn a_checkpoint_target_that_is_not_a_checkpoint_is_refused_before_training() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("data.csv"), b"1,2,3").expect("write");
        let (trainer, _) = small_trainer_and_frames(0);
        let config = TrainerNodeConfig {
            checkpoint_dir: Some(root.path().to_path_buf()),
            ..TrainerNodeConfig::default()
        };
        let (_tx, rx) = sync_channel(1);
        let stop = AtomicBool::new(false);
        let error = run_trainer(&config, trainer, rx, &stop, |_| {}).expect_err("refused");
        assert!(error.to_string().contains("refusing"), "{error}");
        assert_eq!(
            std::fs::read(root.path().join("data.csv")).expect("kept"),
            b"1,2,3"
        );
    }
}
