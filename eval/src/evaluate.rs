//! The whole evaluation, in order: held-out episodes, probes, prediction and collapse, planning.

use autodidact_learn::{Trainer, TrainerConfig, Transition, embedding_health};
use autodidact_sim::SimConfig;

use crate::config::{EvalConfig, HELD_OUT_SEED_BASE, REPORT_SCHEMA};
use crate::data::{Record, collector_config, explore};
use crate::model::EvalModel;
use crate::planning::{GoalSetting, planning_setting};
use crate::report::{DataInfo, EvalReport, ModelInfo};
use crate::representation::representation_scores;
use crate::{EvalError, Progress};

/// Runs the whole evaluation of `model` in worlds of `sim` (its camera must match the model).
pub fn evaluate(
    model: &EvalModel,
    sim: &SimConfig,
    config: &EvalConfig,
    progress: Progress<'_>,
) -> Result<EvalReport, EvalError> {
    config.validate()?;
    let trainer_config = model.trainer.config().clone();
    let collector = collector_config(sim, &trainer_config)?;
    let encoder = model.trainer.snapshot();
    let dynamics = model.trainer.dynamics_snapshot();
    let random_init = Trainer::new(TrainerConfig {
        seed: trainer_config.seed.wrapping_add(0x5eed),
        ..trainer_config.clone()
    })?;
    let random_encoder = random_init.snapshot();
    let random_dynamics = random_init.dynamics_snapshot();

    // Held-out exploration episodes.
    let episode_seeds: Vec<u64> = (0..config.episodes)
        .map(|i| HELD_OUT_SEED_BASE + config.seed * 1000 + i)
        .collect();
    let mut episodes = Vec::new();
    for (done, seed) in episode_seeds.iter().enumerate() {
        episodes.push(explore(sim, &collector, *seed, config.episode_steps)?);
        progress("held-out episodes", done as u64 + 1, config.episodes);
    }
    let split = episodes.len() / 2;
    let fit: Vec<&Record> = episodes[..split].iter().flatten().collect();
    let score: Vec<&Record> = episodes[split..].iter().flatten().collect();
    let representation = representation_scores(&encoder, &fit, &score, config.ridge)?;
    let random_init_representation =
        representation_scores(&random_encoder, &fit, &score, config.ridge)?;
    progress("probes", 1, 1);

    let transitions: Vec<Transition> = episodes
        .iter()
        .flatten()
        .map(|r| r.transition.clone())
        .collect();
    let horizon = trainer_config.forward_horizon().max(1);
    let health = embedding_health(&encoder, &dynamics, &transitions, horizon, 2)?;

    let mut planning = Vec::new();
    let mut trajectories = Vec::new();
    for setting in [GoalSetting::Easy, GoalSetting::Far] {
        let (scores, paths) = planning_setting(
            setting,
            sim,
            &collector,
            config,
            (&encoder, &dynamics),
            (&random_encoder, &random_dynamics),
            progress,
        )?;
        planning.push(scores);
        trajectories.extend(paths);
    }
    Ok(EvalReport {
        schema: REPORT_SCHEMA.to_owned(),
        model: ModelInfo {
            source: model.source.clone(),
            train_step: model.trainer.step_count(),
            model_version: encoder.version,
            embed_dim: trainer_config.model.embed_dim(),
            image: [
                trainer_config.model.encoder.image.width,
                trainer_config.model.encoder.image.height,
            ],
        },
        data: DataInfo {
            episode_seeds,
            frames: transitions.len(),
        },
        representation,
        random_init_representation,
        prediction_vs_copy_last: health.prediction_vs_copy_last,
        collapse: health.collapse,
        planning,
        config: config.clone(),
        trajectories,
    })
}
