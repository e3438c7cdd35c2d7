//! What is evaluated: a checkpoint, or a model trained here on fresh episodes.

use autodidact_learn::{Trainer, TrainerConfig};
use autodidact_sim::{ExplorationConfig, SimConfig};

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

/// Trains a model on fresh exploration episodes of the training seeds `0..episodes` (the robot's
/// own drives, by `exploration`), for `steps` optimiser steps, the way the learning tests do; for
/// evaluating without a checkpoint.
///
/// The model learns from all of that experience: a replay buffer too small to hold every frame
/// (`replay.capacity`, 20 000 by default: 16.7 minutes at 20 frames/s) is enlarged to hold them,
/// and the model's config says so. (It once was not: a 30-minute run learned from its last 16.7
/// minutes only.)
pub fn train_model(
    sim: &SimConfig,
    exploration: &ExplorationConfig,
    mut trainer_config: TrainerConfig,
    episodes: u64,
    episode_steps: usize,
    steps: u64,
    progress: Progress<'_>,
) -> Result<EvalModel, EvalError> {
    let frames = usize::try_from(episodes)
        .unwrap_or(usize::MAX)
        .saturating_mul(episode_steps);
    if trainer_config.replay.capacity < frames {
        tracing::info!(
            capacity = trainer_config.replay.capacity,
            frames,
            "replay capacity raised to hold every frame of the experience"
        );
        trainer_config.replay.capacity = frames;
    }
    let collector = collector_config(sim, &trainer_config)?;
    let mut trainer = Trainer::new(trainer_config)?;
    for seed in 0..episodes {
        for record in explore(sim, &collector, seed, episode_steps, exploration.clone())? {
            trainer.push(record.transition)?;
        }
        progress("collect", seed + 1, episodes);
    }
    // The benchmark's budgets are stated in minutes of training on the machine it runs on.
    let training = std::time::Instant::now();
    for step in 0..steps {
        trainer.step()?;
        progress("train", step + 1, steps);
    }
    let training_s = training.elapsed().as_secs_f64();
    tracing::info!(steps, training_s, "trained");
    Ok(EvalModel {
        source: format!(
            "trained by eval: {steps} steps on {episodes} episodes in {training_s:.0} s of training"
        ),
        trainer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16² simulator and a model small enough to train in a unit test.
    fn tiny() -> (SimConfig, TrainerConfig) {
        let mut sim = SimConfig::default();
        sim.camera.width = 16;
        sim.camera.height = 16;
        let proprio = autodidact_nodes::CollectorConfig::default().proprio.dim();
        let mut config = TrainerConfig::for_inputs(16, 16, proprio);
        config.model.encoder.image.channels = vec![4, 4, 4, 4];
        (sim, config)
    }

    /// `steps` of training on 2 episodes of 40 steps, driven by the default exploration.
    fn train_tiny(sim: &SimConfig, config: TrainerConfig, steps: u64) -> EvalModel {
        train_model(
            sim,
            &ExplorationConfig::default(),
            config,
            2,
            40,
            steps,
            &|_, _, _| {},
        )
        .expect("trained")
    }

    /// More experience than the replay holds is all learned from: nothing is evicted before
    /// training starts.
    #[test]
    fn a_model_trained_here_keeps_every_frame_of_its_experience() {
        let (sim, mut config) = tiny();
        config.replay.capacity = 30;
        let model = train_tiny(&sim, config, 0);
        assert_eq!(model.trainer.replay().len(), 80);
        assert_eq!(model.trainer.config().replay.capacity, 80);
    }

    /// The report says how long the model trained: the benchmark's budgets are stated in
    /// minutes of training on the machine it runs on.
    #[test]
    fn a_model_trained_here_names_its_steps_experience_and_training_time() {
        let (sim, config) = tiny();
        let model = train_tiny(&sim, config, 3);
        assert!(
            model
                .source
                .starts_with("trained by eval: 3 steps on 2 episodes in ")
                && model.source.ends_with(" s of training"),
            "{}",
            model.source
        );
    }
}
