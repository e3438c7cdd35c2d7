//! `autodidact bench learn`: how fast the learning core trains and encodes.

use std::time::Instant;

use anyhow::{Context, Result};
use autodidact_sim::{ExplorationConfig, ExplorationPolicy, Sim, SimConfig};

use crate::row::BenchRow;

/// A trainer at the default configuration on `backend` (weights from `seed`) with `transitions`
/// steps of an exploration run in its replay buffer, and the run's last observation.
pub fn filled_trainer(
    backend: autodidact_learn::BackendChoice,
    seed: u64,
    transitions: usize,
) -> Result<(autodidact_learn::Trainer, autodidact_sim::Observation)> {
    filled_trainer_configured(backend, seed, transitions, default_batch_size(), |_| {})
}

/// The batch (sequences per step) of the default configuration the learning benches train.
pub fn default_batch_size() -> usize {
    default_config().batch_size
}

/// The trainer's default configuration for the default simulator camera.
fn default_config() -> autodidact_learn::TrainerConfig {
    let camera = SimConfig::default().camera;
    autodidact_learn::TrainerConfig::for_inputs(camera.width as usize, camera.height as usize, 2)
}

/// [`filled_trainer`] with `batch_size` sequences per step and the default configuration
/// changed by `configure`.
fn filled_trainer_configured(
    backend: autodidact_learn::BackendChoice,
    seed: u64,
    transitions: usize,
    batch_size: usize,
    configure: impl FnOnce(&mut autodidact_learn::TrainerConfig),
) -> Result<(autodidact_learn::Trainer, autodidact_sim::Observation)> {
    let mut config = default_config();
    config.backend = backend;
    config.seed = seed;
    config.batch_size = batch_size;
    configure(&mut config);
    let mut trainer = autodidact_learn::Trainer::new(config).context("building the trainer")?;
    let (explored, observation) = exploration(seed, transitions)?;
    for transition in explored {
        trainer.push(transition)?;
    }
    Ok((trainer, observation))
}

/// `count` transitions of an exploration run in the default simulator world (seed `seed + 1`),
/// in the default model's inputs, and the run's last observation.
pub(crate) fn exploration(
    seed: u64,
    count: usize,
) -> Result<(
    Vec<autodidact_learn::Transition>,
    autodidact_sim::Observation,
)> {
    use autodidact_learn::Transition;
    use std::sync::Arc;

    let sim_config = SimConfig::default();
    let mut sim = Sim::new(&sim_config)?;
    let mut observation = sim.reset(seed + 1)?;
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), seed + 1);
    let mut transitions = Vec::with_capacity(count);
    for _ in 0..count {
        let action = policy.act(&observation, 0.05);
        transitions.push(Transition {
            source: 0,
            episode: 0,
            frame_stamp_ns: observation.stamp.nanos,
            image: Arc::from(observation.frame.rgb.clone()),
            proprio: observation
                .joints
                .velocity
                .iter()
                .map(|v| (*v / 10.0) as f32)
                .collect(),
            action: [action.linear_x, action.angular_z],
            odometry: Some(autodidact_learn::OdometryPose::new(
                observation.odom.x,
                observation.odom.y,
                observation.odom.yaw,
            )),
        });
        observation = sim.step(&action);
    }
    Ok((transitions, observation))
}

/// Measures the learning core on `backend`: a training step at the default configuration
/// with `batch_size` sequences (two views, every default objective), the same step without
/// the odometry objective (what its relative-pose head costs; the two alternate step by step),
/// single-image encode latency, and the reference planner's plan for one frame with the goal
/// embedded at rest and as an image at the predicted proprio (alternating, `plans` each).
pub fn bench_learn(
    backend: autodidact_learn::BackendChoice,
    batch_size: usize,
    train_steps: usize,
    encodes: usize,
    plans: usize,
) -> Result<Vec<BenchRow>> {
    let (mut trainer, observation) =
        filled_trainer_configured(backend, 0, 600, batch_size, |_| {})?;
    let (mut headless, _) = filled_trainer_configured(backend, 0, 600, batch_size, |config| {
        config.model.odometry_head = false;
        config.objectives.odometry.enabled = false;
    })?;
    // What the trainer was built with, so the rows say what was measured.
    let batch_size = trainer.config().batch_size;
    // Warm-up (kernel compilation and autotuning on wgpu) is excluded.
    trainer.step()?;
    headless.step()?;
    let mut step_us = Vec::with_capacity(train_steps);
    let mut headless_step_us = Vec::with_capacity(train_steps);
    for _ in 0..train_steps {
        for (which, times) in [
            (&mut trainer, &mut step_us),
            (&mut headless, &mut headless_step_us),
        ] {
            let started = Instant::now();
            which.step()?;
            times.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(headless);
    let mut snapshot_trainer = trainer;
    snapshot_trainer.set_inference_backend(backend.resolve()?.kind);
    let snapshot = snapshot_trainer.snapshot();
    let image = observation.frame.rgb.clone();
    let proprio = [0.0f32; 2];
    for _ in 0..5 {
        snapshot.embed(&image, &proprio)?;
    }
    let mut encode_us = Vec::with_capacity(encodes);
    for _ in 0..encodes {
        let started = Instant::now();
        snapshot.embed(&image, &proprio)?;
        encode_us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let (rest_us, predicted_us) = plan_times(&snapshot_trainer, &image, plans)?;
    let planner = autodidact_learn::PlannerConfig::default();
    let search = format!(
        "{} candidates x {} iterations, {} steps",
        planner.samples,
        planner.iterations,
        planner.horizon * planner.action_repeat
    );
    Ok(vec![
        BenchRow::from_samples(
            format!("train step, batch {batch_size} (per second = samples)"),
            &step_us,
            batch_size as f64,
        ),
        BenchRow::from_samples(
            format!("train step, batch {batch_size}, without the odometry objective"),
            &headless_step_us,
            batch_size as f64,
        ),
        BenchRow::from_samples("encode 1 image 64x64".to_string(), &encode_us, 1.0),
        BenchRow::from_samples(
            format!("plan 1 frame ({search}), goal at rest"),
            &rest_us,
            1.0,
        ),
        BenchRow::from_samples(
            format!("plan 1 frame ({search}), goal image at the predicted proprio"),
            &predicted_us,
            1.0,
        ),
    ])
}

/// Microseconds per plan of the default planner from `image`'s embedding towards the same
/// image, embedded at rest and as its features at the predicted proprio, `plans` of each
/// alternating after one warm-up of each.
fn plan_times(
    trainer: &autodidact_learn::Trainer,
    image: &[u8],
    plans: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    use autodidact_learn::{Goal, LatentPlanner, PlannerConfig};
    let encoder = trainer.snapshot();
    let dynamics = trainer.dynamics_snapshot();
    let rest = vec![0.0f32; encoder.config().proprio_dim];
    let current = encoder.embed(image, &rest)?;
    let features = encoder.image_features(image)?;
    let goals = [
        Goal::Embedding(&current),
        Goal::ImageAtPredictedProprio {
            encoder: &encoder,
            image_features: &features,
        },
    ];
    let mut planner = LatentPlanner::new(PlannerConfig::default())?;
    let mut times = [Vec::with_capacity(plans), Vec::with_capacity(plans)];
    for round in 0..=plans {
        for (goal, samples) in goals.iter().zip(&mut times) {
            planner.reset();
            let started = Instant::now();
            planner.plan_towards(&dynamics, &current, *goal)?;
            // The first round warms up.
            if round > 0 {
                samples.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let [rest_us, predicted_us] = times;
    Ok((rest_us, predicted_us))
}
