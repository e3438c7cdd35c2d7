//! Simulator data for the learning tests: exploration episodes as transitions plus the ground
//! truth the probes are scored against (never shown to the model).

#![allow(dead_code)]

use std::sync::Arc;

use autodidact_learn::{HealthReport, OdometryPose, Trainer, Transition, embedding_health};
use autodidact_sim::{ExplorationConfig, ExplorationPolicy, Observation, Sim, SimConfig};

/// Proprio features the tests feed the model: wheel speeds, gyro z, planar specific force, and
/// odometry twist, scaled to about ±1. No pose (odometry position would give the probe away).
pub const PROPRIO_DIM: usize = 7;

pub fn proprio_features(observation: &Observation) -> Vec<f32> {
    let j = &observation.joints;
    let imu = &observation.imu;
    let odom = &observation.odom;
    vec![
        (j.velocity[0] / 10.0) as f32,
        (j.velocity[1] / 10.0) as f32,
        (imu.angular_velocity[2] / 2.0) as f32,
        (imu.linear_acceleration[0] / 5.0) as f32,
        (imu.linear_acceleration[1] / 5.0) as f32,
        (odom.linear_x / 0.5) as f32,
        (odom.angular_z / 2.0) as f32,
    ]
}

/// One recorded step: the transition and the true pose `[x, y, sin yaw, cos yaw]`.
pub struct Sample {
    pub transition: Transition,
    pub pose: [f32; 4],
}

/// Runs the exploration policy for `steps` in a world of `seed`.
pub fn explore(config: &SimConfig, seed: u64, steps: usize) -> Vec<Sample> {
    explore_with(config, seed, steps, ExplorationConfig::default())
}

/// [`explore`] by `policy` (held-out drives keep [`ExplorationConfig::held_out`]).
pub fn explore_with(
    config: &SimConfig,
    seed: u64,
    steps: usize,
    policy: ExplorationConfig,
) -> Vec<Sample> {
    let mut sim = Sim::new(config).expect("sim config");
    let mut observation = sim.reset(seed).expect("reset");
    let mut policy = ExplorationPolicy::new(policy, seed);
    let period = config.control_period_s as f32;
    let mut samples = Vec::with_capacity(steps);
    for _ in 0..steps {
        let action = policy.act(&observation, period);
        let pose = sim.ground_truth().robot_pose;
        samples.push(Sample {
            transition: Transition {
                source: 0,
                episode: seed,
                frame_stamp_ns: observation.stamp.nanos,
                image: Arc::from(observation.frame.rgb.clone()),
                proprio: proprio_features(&observation),
                action: [action.linear_x, action.angular_z],
                odometry: Some(OdometryPose::new(
                    observation.odom.x,
                    observation.odom.y,
                    observation.odom.yaw,
                )),
            },
            pose: [
                pose.x as f32,
                pose.y as f32,
                pose.yaw.sin() as f32,
                pose.yaw.cos() as f32,
            ],
        });
        observation = sim.step(&action);
    }
    samples
}

/// A sim configured for images of `side × side`.
pub fn sim_config(side: u32) -> SimConfig {
    let mut config = SimConfig::default();
    config.camera.width = side;
    config.camera.height = side;
    config
}

/// Embeds samples with the trainer's published encoder, in batches.
pub fn embed(trainer: &Trainer, samples: &[&Sample]) -> Vec<Vec<f32>> {
    let snapshot = trainer.snapshot();
    samples
        .chunks(128)
        .flat_map(|chunk| {
            let images: Vec<&[u8]> = chunk.iter().map(|s| &*s.transition.image).collect();
            let proprio: Vec<&[f32]> = chunk
                .iter()
                .map(|s| s.transition.proprio.as_slice())
                .collect();
            snapshot.embed_batch(&images, &proprio).expect("embed")
        })
        .collect()
}

/// The trainer's embedding health on `samples` (consecutive, oldest first): collapse monitors
/// and k = 1..3-step prediction ÷ copy-last from every 4th frame, as the trainer node reports it.
pub fn health(trainer: &Trainer, samples: &[Sample]) -> HealthReport {
    let frames: Vec<Transition> = samples.iter().map(|s| s.transition.clone()).collect();
    embedding_health(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &frames,
        3,
        4,
    )
    .expect("health")
}
