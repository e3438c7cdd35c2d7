//! The whole evaluation, in order: held-out episodes, probes, prediction and collapse, planning.

use std::collections::BTreeMap;

use autodidact_learn::baseline::PixelBaseline;
use autodidact_learn::metrics::collapse_report;
use autodidact_learn::{Trainer, TrainerConfig, Transition, embed_frames, prediction_ratios};
use autodidact_sim::{ExplorationConfig, SimConfig};

use crate::config::{EvalConfig, HELD_OUT_SEED_BASE, REPORT_SCHEMA};
use crate::data::{Features, Record, WorldMemory, collector_config, explore, explore_anew};
use crate::model::EvalModel;
use crate::parallel::{map_in_order, on_threads};
use crate::planning::{Models, Worlds, new_world_seeds, planning_setting};
use crate::ranking;
use crate::report::{DataInfo, EvalReport, HomeReport, ModelInfo, RepresentationScores};
use crate::representation::{relative_pose_scores, representation_scores};
use crate::{EvalError, Progress};

/// Side of the grid the raw-pixel baseline averages images to (as the run summary's).
const PIXEL_BASELINE_SIDE: usize = 8;

/// Runs the whole evaluation of `model` in worlds of `sim` (its camera must match the model).
/// The robot's own drive through its home worlds (its memory there) explores by `exploration`;
/// the held-out drives keep [`ExplorationConfig::held_out`]. Worlds' drives, start/goal pairs
/// and k-NN searches run side by side on [`EvalConfig::jobs`] threads; the report is the same
/// for any number.
pub fn evaluate(
    model: &EvalModel,
    sim: &SimConfig,
    exploration: &ExplorationConfig,
    config: &EvalConfig,
    progress: Progress<'_>,
) -> Result<EvalReport, EvalError> {
    config.validate()?;
    on_threads(config.jobs, || {
        evaluate_here(model, sim, exploration, config, progress)
    })
}

/// [`evaluate`], on the threads of the pool it is called on.
fn evaluate_here(
    model: &EvalModel,
    sim: &SimConfig,
    exploration: &ExplorationConfig,
    config: &EvalConfig,
    progress: Progress<'_>,
) -> Result<EvalReport, EvalError> {
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

    let image = &trainer_config.model.encoder.image;
    let pixels = PixelBaseline::new(
        PIXEL_BASELINE_SIDE,
        trainer_config.model.embed_dim(),
        0x91e1,
    )?;
    let pixel_features = Features::Pixels(&pixels, [image.width, image.height]);
    let baselined =
        |fit: &[&Record], score: &[&Record]| -> Result<[RepresentationScores; 3], EvalError> {
            Ok([
                representation_scores(Features::Model(&encoder), fit, score, config.ridge)?,
                representation_scores(Features::Model(&random_encoder), fit, score, config.ridge)?,
                representation_scores(pixel_features, fit, score, config.ridge)?,
            ])
        };

    // New worlds: held-out exploration episodes.
    let episode_seeds: Vec<u64> = (0..config.episodes)
        .map(|i| HELD_OUT_SEED_BASE + config.seed * 1000 + i)
        .collect();
    let mut episodes = Vec::new();
    for (done, seed) in episode_seeds.iter().enumerate() {
        episodes.push(explore(
            sim,
            &collector,
            *seed,
            config.episode_steps,
            ExplorationConfig::held_out(),
        )?);
        progress("held-out episodes", done as u64 + 1, config.episodes);
    }
    let split = episodes.len() / 2;
    let fit: Vec<&Record> = episodes[..split].iter().flatten().collect();
    let score: Vec<&Record> = episodes[split..].iter().flatten().collect();
    let [
        representation,
        random_init_representation,
        raw_pixels_representation,
    ] = baselined(&fit, &score)?;
    let relative_pose = relative_pose_scores(&model.trainer, &encoder, &fit, &score)?;
    progress("probes", 1, 1);

    let transitions: Vec<Transition> = episodes
        .iter()
        .flatten()
        .map(|r| r.transition.clone())
        .collect();
    let horizon = trainer_config.forward_horizon().max(1);
    let embeddings = embed_frames(&encoder, &transitions)?;
    let collapse = collapse_report(&embeddings)?;
    let prediction_vs_copy_last =
        prediction_ratios(&dynamics, &transitions, &embeddings, horizon, 2)?;
    // The planner rolls the dynamics out further than they trained: scored there too.
    let planner_rollout = config.planner.horizon * config.planner.action_repeat;
    let planner_rollout_vs_copy_last = if planner_rollout > horizon {
        prediction_ratios(&dynamics, &transitions, &embeddings, planner_rollout, 2)?
    } else {
        Vec::new()
    };

    // The robot's own drive through a world, as it explores to learn: its memory there. (A model
    // `eval` trains learned from these very drives, by the same `exploration`.)
    let own_drive = |world: u64| {
        explore(
            sim,
            &collector,
            world,
            config.memory_steps,
            exploration.clone(),
        )
    };

    // Home: the robot's own drive through each world it learned in (its memory, and what the
    // probes are fitted on), and new drives there.
    let home_drives = map_in_order(&config.home_worlds, "home memories", progress, |world| {
        own_drive(*world)
    })?;
    let memories: BTreeMap<u64, WorldMemory> = config
        .home_worlds
        .iter()
        .zip(&home_drives)
        .map(|(world, drive)| (*world, WorldMemory::of(drive)))
        .collect();
    let mut new_drives = Vec::new();
    for i in 0..config.episodes {
        let world = config.home_worlds[i as usize % config.home_worlds.len()];
        let drive_seed = HELD_OUT_SEED_BASE + 200_000 + config.seed * 1000 + i;
        new_drives.push(explore_anew(
            sim,
            &collector,
            world,
            drive_seed,
            config.episode_steps,
        )?);
        progress("home drives", i + 1, config.episodes);
    }
    let remembered: Vec<&Record> = home_drives.iter().flatten().collect();
    let driven_anew: Vec<&Record> = new_drives.iter().flatten().collect();
    let [home_representation, home_random_init, home_pixels] =
        baselined(&remembered, &driven_anew)?;
    let home_relative_pose =
        relative_pose_scores(&model.trainer, &encoder, &remembered, &driven_anew)?;

    // New worlds: a drive through each pair's world before the goals are given.
    let new_worlds = new_world_seeds(config);
    let new_memories: BTreeMap<u64, WorldMemory> =
        map_in_order(&new_worlds, "new worlds' memories", progress, |world| {
            Ok((*world, WorldMemory::of(&own_drive(*world)?)))
        })?
        .into_iter()
        .collect();

    let mut planning = Vec::new();
    let mut home_planning = Vec::new();
    let mut trajectories = Vec::new();
    let mut new_world_ranking = None;
    let mut home_ranking = None;
    let protocols = [
        Worlds {
            protocol: "new_worlds",
            worlds: new_worlds,
            memories: &new_memories,
        },
        Worlds {
            protocol: "home",
            worlds: config.home_worlds.clone(),
            memories: &memories,
        },
    ];
    let models = Models {
        trained: (&encoder, &dynamics),
        random_init: (&random_encoder, &random_dynamics),
    };
    for worlds in &protocols {
        if config.ranking {
            let scores =
                ranking::candidate_ranking(sim, &collector, config, worlds, &models, progress)?;
            if worlds.protocol == "home" {
                home_ranking = Some(scores);
            } else {
                new_world_ranking = Some(scores);
            }
        }
        for &setting in &config.settings {
            let (scores, paths) =
                planning_setting(setting, sim, &collector, config, worlds, &models, progress)?;
            if worlds.protocol == "home" {
                home_planning.push(scores);
            } else {
                planning.push(scores);
            }
            trajectories.extend(paths);
        }
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
            rays_per_side: sim.camera.rays_per_side,
        },
        representation,
        random_init_representation,
        raw_pixels_representation,
        relative_pose,
        prediction_vs_copy_last,
        planner_rollout_vs_copy_last,
        collapse,
        candidate_ranking: new_world_ranking,
        planning,
        home: HomeReport {
            world_seeds: config.home_worlds.clone(),
            exploration: exploration.clone(),
            memory_frames: remembered.len(),
            scored_frames: driven_anew.len(),
            representation: home_representation,
            random_init_representation: home_random_init,
            raw_pixels_representation: home_pixels,
            relative_pose: home_relative_pose,
            planning: home_planning,
            candidate_ranking: home_ranking,
        },
        config: config.clone(),
        trajectories,
    })
}
