//! Goal reaching: the reference planner against a random policy and against the same planner on
//! a random-init model, from the same starts to the same goal images.

use std::sync::Arc;

use autodidact_learn::EncoderSnapshot;
use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_nodes::CollectorConfig;
use autodidact_nodes::planner::{PlannerNode, PlannerNodeConfig};
use autodidact_sim::{Action, Pose2, Sim, SimConfig, wrap_angle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{EvalConfig, HELD_OUT_SEED_BASE};
use crate::data::Eyes;
use crate::report::{PlanningScore, PlanningSetting, PlanningTrajectory};
use crate::{EvalError, Progress};

/// How far goals are from starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GoalSetting {
    /// Turn 30–90° either way and move up to 0.25 m.
    Easy,
    /// Anywhere free, at least 1 m away, any heading.
    Far,
}

impl GoalSetting {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Far => "far",
        }
    }
}

/// Who drives during a planning attempt.
enum Agent<'a> {
    Planner(&'a EncoderSnapshot, &'a DynamicsSnapshot),
    Random,
}

struct Attempt {
    start: (f64, f64),
    end: (f64, f64),
    start_pose: Pose2,
    goal_pose: Pose2,
    path: Vec<[f64; 2]>,
    goal_image: Arc<[u8]>,
}

impl Attempt {
    fn reached(&self, config: &EvalConfig) -> bool {
        self.end.0 <= config.success_position_m && self.end.1 <= config.success_yaw_deg
    }
}

/// Names of the three agents, in the order `planning_setting` runs them.
const AGENTS: [&str; 3] = ["planner", "random_policy", "random_init_planner"];

pub(crate) fn planning_setting(
    setting: GoalSetting,
    sim: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    trained: (&EncoderSnapshot, &DynamicsSnapshot),
    random_init: (&EncoderSnapshot, &DynamicsSnapshot),
    progress: Progress<'_>,
) -> Result<(PlanningSetting, Vec<PlanningTrajectory>), EvalError> {
    let mut outcomes: [Vec<Attempt>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let stage = format!("planning ({})", setting.name());
    for pair in 0..config.pairs {
        let seed = HELD_OUT_SEED_BASE + 500_000 + config.seed * 1000 + pair as u64;
        let agents = [
            Agent::Planner(trained.0, trained.1),
            Agent::Random,
            Agent::Planner(random_init.0, random_init.1),
        ];
        for (slot, agent) in agents.iter().enumerate() {
            outcomes[slot].push(attempt(setting, sim, collector, config, seed, agent)?);
        }
        progress(&stage, pair as u64 + 1, config.pairs as u64);
    }
    let mut trajectories = Vec::with_capacity(AGENTS.len() * config.pairs);
    for (agent, attempts) in AGENTS.iter().zip(&outcomes) {
        for (pair, attempt) in attempts.iter().enumerate() {
            trajectories.push(PlanningTrajectory {
                setting: setting.name().to_owned(),
                pair,
                agent: (*agent).to_owned(),
                start: attempt.start_pose,
                goal: attempt.goal_pose,
                path: attempt.path.clone(),
                reached: attempt.reached(config),
                goal_image: attempt.goal_image.clone(),
            });
        }
    }
    let [planner, random_policy, random_init_planner] =
        outcomes.map(|attempts| planning_score(&attempts, config));
    let scores = PlanningSetting {
        setting: setting.name().to_owned(),
        pairs: config.pairs,
        planner,
        random_policy,
        random_init_planner,
    };
    Ok((scores, trajectories))
}

fn planning_score(attempts: &[Attempt], config: &EvalConfig) -> PlanningScore {
    let n = attempts.len().max(1) as f64;
    let reached = attempts.iter().filter(|a| a.reached(config)).count();
    PlanningScore {
        success_rate: reached as f64 / n,
        final_position_error_m: attempts.iter().map(|a| a.end.0).sum::<f64>() / n,
        final_yaw_error_deg: attempts.iter().map(|a| a.end.1).sum::<f64>() / n,
        start_position_error_m: attempts.iter().map(|a| a.start.0).sum::<f64>() / n,
        start_yaw_error_deg: attempts.iter().map(|a| a.start.1).sum::<f64>() / n,
    }
}

/// `(position error m, heading error °)` of `pose` against `goal`.
fn pose_error(pose: &Pose2, goal: &Pose2) -> (f64, f64) {
    (
        (pose.x - goal.x).hypot(pose.y - goal.y),
        wrap_angle(pose.yaw - goal.yaw).abs().to_degrees(),
    )
}

/// Whether a robot at `(x, y)` keeps clear of the walls and of every object.
fn free(sim: &Sim, x: f64, y: f64) -> bool {
    let arena = &sim.config().arena;
    let margin = 0.45;
    let inside = x.abs() <= f64::from(arena.size_x_m) / 2.0 - margin
        && y.abs() <= f64::from(arena.size_y_m) / 2.0 - margin;
    inside
        && sim
            .ground_truth()
            .objects
            .iter()
            .all(|o| (o.position[0] - x).hypot(o.position[1] - y) >= 0.45)
}

/// Draws a free start and a goal of the setting in the world of `seed`.
fn start_and_goal(sim: &Sim, setting: GoalSetting, seed: u64) -> Result<(Pose2, Pose2), EvalError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let arena = &sim.config().arena;
    let (half_x, half_y) = (
        f64::from(arena.size_x_m) / 2.0,
        f64::from(arena.size_y_m) / 2.0,
    );
    let pi = std::f64::consts::PI;
    for _ in 0..10_000 {
        let start = Pose2 {
            x: rng.random_range(-half_x..half_x),
            y: rng.random_range(-half_y..half_y),
            yaw: rng.random_range(-pi..pi),
        };
        if !free(sim, start.x, start.y) {
            continue;
        }
        let goal = match setting {
            GoalSetting::Easy => {
                let turn = rng.random_range(30f64..90.0).to_radians()
                    * if rng.random_range(0..2) == 0 {
                        1.0
                    } else {
                        -1.0
                    };
                let yaw = wrap_angle(start.yaw + turn);
                let forward = rng.random_range(0.0..0.25);
                Pose2 {
                    x: start.x + forward * yaw.cos(),
                    y: start.y + forward * yaw.sin(),
                    yaw,
                }
            }
            GoalSetting::Far => Pose2 {
                x: rng.random_range(-half_x..half_x),
                y: rng.random_range(-half_y..half_y),
                yaw: rng.random_range(-pi..pi),
            },
        };
        let far_enough = match setting {
            GoalSetting::Easy => true,
            GoalSetting::Far => (goal.x - start.x).hypot(goal.y - start.y) >= 1.0,
        };
        if far_enough && free(sim, goal.x, goal.y) {
            return Ok((start, goal));
        }
    }
    Err(EvalError::Data(format!(
        "no free start/goal pair found in world {seed}"
    )))
}

/// One start/goal pair for one agent: shows the goal image, puts the robot at the start and
/// lets the agent drive for `plan_steps` periods.
fn attempt(
    setting: GoalSetting,
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    seed: u64,
    agent: &Agent<'_>,
) -> Result<Attempt, EvalError> {
    let mut sim = Sim::new(sim_config)?;
    sim.reset(seed)?;
    let (start, goal) = start_and_goal(&sim, setting, seed)?;
    let mut eyes = Eyes::new(collector, sim_config);
    sim.set_robot_pose(goal)?;
    let goal_observation = sim.step(&Action::STOP);
    let goal_frame = eyes.see(&goal_observation)?;
    let goal_pose = sim.ground_truth().robot_pose;
    sim.set_robot_pose(start)?;
    let mut observation = sim.step(&Action::STOP);
    let start_pose = sim.ground_truth().robot_pose;
    let start_error = pose_error(&start_pose, &goal_pose);
    let mut path = Vec::with_capacity(config.plan_steps + 1);
    path.push([start_pose.x, start_pose.y]);
    let (min, max) = (config.planner.min_action, config.planner.max_action);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa5a5);
    let mut planner = PlannerNode::new(PlannerNodeConfig {
        planner: config.planner.clone(),
        goal_with_current_proprio: config.goal_with_current_proprio,
    })?;
    let goal_frame_image = goal_frame.image.clone();
    planner.set_goal(goal_frame);
    let mut latent_distances = (f32::NAN, f32::NAN);
    for period in 0..config.plan_steps {
        let frame = eyes.see(&observation)?;
        let command = match agent {
            Agent::Planner(encoder, dynamics) => {
                let output = planner
                    .on_frame(&frame, encoder, dynamics)?
                    .ok_or_else(|| EvalError::Data("the planner lost its goal".into()))?;
                if period == 0 {
                    latent_distances.0 = output.plan.start_distance;
                }
                latent_distances.1 = output.plan.start_distance;
                [output.command.linear_x, output.command.angular_z]
            }
            Agent::Random => [
                rng.random_range(min[0]..max[0]),
                rng.random_range(min[1]..max[1]),
            ],
        };
        observation = sim.step(&Action::new(command[0], command[1]));
        let pose = sim.ground_truth().robot_pose;
        path.push([pose.x, pose.y]);
    }
    let end = pose_error(&sim.ground_truth().robot_pose, &goal_pose);
    tracing::debug!(
        setting = setting.name(),
        seed,
        planner = matches!(agent, Agent::Planner(..)),
        start_m = start_error.0,
        start_deg = start_error.1,
        end_m = end.0,
        end_deg = end.1,
        latent_start = latent_distances.0,
        latent_end = latent_distances.1,
        "planning attempt"
    );
    Ok(Attempt {
        start: start_error,
        end,
        start_pose,
        goal_pose,
        path,
        goal_image: goal_frame_image,
    })
}
