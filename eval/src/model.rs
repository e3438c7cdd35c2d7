//! What is evaluated: a checkpoint, or a model trained here on fresh episodes.

use autodidact_learn::{Trainer, TrainerConfig};
use autodidact_sim::SimConfig;

use crate::data::{collector_config, explore};
use crate::{EvalError, Progress};

/// A model to evaluate: its encoder and dynamics, with a random-init twin.
pub struct EvalModel {
    /// Description of the source, for the report.
    pub source: String,
    /// The trained model.
    pub trainer: Trainer,
}

impl EvalModel {
    /// Loads a checkpoint directory written by `autodidact run --checkpoint` or the trainer,
    /// placed on this machine's backends (`auto`), whatever the writer's were.
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self, EvalError> {
        let auto = autodidact_learn::BackendChoice::Auto;
        let trainer =
            Trainer::resume_on(path, None, auto, auto).map_err(|source| EvalError::Checkpoint {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            source: format!("checkpoint {}", path.display()),
            trainer,
        })
    }
}

/// Trains a model on fresh exploration episodes of the training seeds `0..episodes`, for
/// `steps` optimiser steps, the way the learning tests do; for evaluating without a checkpoint.
pub fn train_model(
    sim: &SimConfig,
    trainer_config: TrainerConfig,
    episodes: u64,
    episode_steps: usize,
    steps: u64,
    progress: Progress<'_>,
) -> Result<EvalModel, EvalError> {
    let collector = collector_config(sim, &trainer_config)?;
    let mut trainer = Trainer::new(trainer_config)?;
    for seed in 0..episodes {
        for record in explore(sim, &collector, seed, episode_steps)? {
            trainer.push(record.transition)?;
        }
        progress("collect", seed + 1, episodes);
    }
    for step in 0..steps {
        trainer.step()?;
        progress("train", step + 1, steps);
    }
    Ok(EvalModel {
        source: format!("trained by eval: {steps} steps on {episodes} episodes"),
        trainer,
    })
}
