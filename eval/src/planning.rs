//! Goal reaching: the reference planner against a random policy and against the same planner on
//! a random-init model, from the same starts to the same goal images.

use std::sync::Arc;

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::memory::PlaceFeatures;
use autodidact_learn::stats::median;
use autodidact_learn::{EncoderSnapshot, MemoryGraph, OdometryPose};
use autodidact_nodes::CollectorConfig;
use autodidact_nodes::planner::{PlannerNode, PlannerNodeConfig};
use autodidact_sim::{Action, Pose2, Sim, SimConfig, wrap_angle};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{EvalConfig, HELD_OUT_SEED_BASE};
use crate::data::{Eyes, WorldMemory, free, random_free_pose};
use crate::parallel::map_in_order;
use crate::report::{
    MemoryDrawing, MemoryLocalisation, PlanningScore, PlanningSetting, PlanningTrajectory,
};
use crate::{EvalError, Progress};

/// How far goals are from starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoalSetting {
    /// Turn 30–90° either way and move up to 0.25 m.
    Easy,
    /// Anywhere free, at least 1 m away, any heading.
    Far,
    /// The far side of the arena: at least 2 m away and behind the robot.
    Across,
    /// 0.1–0.35 m away in any direction, the heading turned by up to 90° either way: the last
    /// stretch a far goal leaves to the latent MPC where the memory's path ends beside it.
    Near,
}

impl GoalSetting {
    /// Every setting, in the order of the report.
    pub const ALL: [Self; 4] = [Self::Easy, Self::Far, Self::Across, Self::Near];

    /// The settings `autodidact eval` runs unless told which.
    pub const DEFAULT: [Self; 3] = [Self::Easy, Self::Far, Self::Across];

    /// `easy`, `far`, `across` or `near`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Easy => "easy",
            Self::Far => "far",
            Self::Across => "across",
            Self::Near => "near",
        }
    }

    /// Control periods an agent gets: a near goal gets a far goal's, as a turn away, a drive
    /// and a turn back take several seconds.
    pub(crate) fn steps(self, config: &EvalConfig) -> usize {
        match self {
            Self::Easy => config.plan_steps,
            Self::Far | Self::Across | Self::Near => config.far_plan_steps,
        }
    }
}

impl std::str::FromStr for GoalSetting {
    type Err = EvalError;

    fn from_str(name: &str) -> Result<Self, EvalError> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                EvalError::InvalidConfig(format!(
                    "no planning setting {name:?} (easy, far, across or near)"
                ))
            })
    }
}

/// Who drives during a planning attempt.
enum Agent<'a> {
    Planner(&'a EncoderSnapshot, &'a DynamicsSnapshot),
    /// The planner with a memory of the world: frames of a drive through it.
    MemoryPlanner(&'a EncoderSnapshot, &'a DynamicsSnapshot, &'a WorldMemory),
    Random,
}

struct Attempt {
    start: (f64, f64),
    end: (f64, f64),
    start_pose: Pose2,
    goal_pose: Pose2,
    path: Vec<[f64; 2]>,
    goal_image: Arc<[u8]>,
    /// Memory planner: its graph and first route, drawn at the true positions.
    memory: Option<MemoryDrawing>,
    /// Memory planner: per period, where the place of the node the current frame was retrieved
    /// as lay seen from the robot (`[ahead, left]`, metres; its length is the error).
    localisation: Vec<[f64; 2]>,
    /// Memory planner: where the place of the goal's node lay seen from the goal.
    goal_localisation: Option<[f64; 2]>,
    /// Memory planner following by odometry: its first path, checked against the truth.
    path_check: Option<PathCheck>,
    /// Memory planner: its memory's map error ([`WorldMemory::map_error_m`]).
    map_error_m: Option<f64>,
    /// Memory planner: shortcuts its optimised map rejected, when it made one.
    rejected_shortcuts: Option<f64>,
    /// The pose nearest to success on the way (least [`tolerance_share`]): its error as
    /// [`pose_error`] and the control period after which it was.
    closest: Option<((f64, f64), usize)>,
}

/// Whether `(metres, degrees)` from the goal is within the success tolerances.
pub(crate) fn within(error: (f64, f64), config: &EvalConfig) -> bool {
    error.0 <= config.success_position_m && error.1 <= config.success_yaw_deg
}

/// Whether `memory` has a view of `goal`'s place: a frame taken [`within`] the success
/// tolerances of its pose.
fn shows_goal(memory: &WorldMemory, goal: &Pose2, config: &EvalConfig) -> bool {
    (0..memory.positions.len())
        .filter_map(|frame| memory.pose(frame))
        .any(|pose| within(pose_error(&pose, goal), config))
}

/// The larger share of its tolerance that either part of `(metres, degrees)` takes: how near
/// a pose is to success, whichever part keeps it from it.
pub(crate) fn tolerance_share(error: (f64, f64), config: &EvalConfig) -> f64 {
    (error.0 / config.success_position_m).max(error.1 / config.success_yaw_deg)
}

impl Attempt {
    fn reached(&self, config: &EvalConfig) -> bool {
        within(self.end, config)
    }

    /// Whether the robot was within the tolerances at some period, the end included.
    fn passed(&self, config: &EvalConfig) -> bool {
        self.reached(config) || self.closest.is_some_and(|(error, _)| within(error, config))
    }
}

/// Names of the agents, in the order `planning_setting` runs them.
pub(crate) const AGENTS: [&str; 4] = [
    "planner",
    "memory_planner",
    "random_policy",
    "random_init_planner",
];

/// Where the pairs of a protocol are and what the robot remembers of each world.
pub(crate) struct Worlds<'a> {
    /// `new_worlds` or `home`.
    pub(crate) protocol: &'static str,
    /// The world of pair `p` is `worlds[p % len]`.
    pub(crate) worlds: Vec<u64>,
    /// The memory of each world (a drive through it), by world seed.
    pub(crate) memories: &'a std::collections::BTreeMap<u64, WorldMemory>,
}

impl Worlds<'_> {
    pub(crate) fn pair(&self, config: &EvalConfig, pair: usize) -> (u64, u64) {
        let seed = HELD_OUT_SEED_BASE + 500_000 + config.seed * 1000 + pair as u64;
        (self.worlds[pair % self.worlds.len()], seed)
    }
}

/// The evaluated model and its random-init twin: encoder and dynamics of each.
#[derive(Clone, Copy)]
pub(crate) struct Models<'a> {
    pub(crate) trained: (&'a EncoderSnapshot, &'a DynamicsSnapshot),
    pub(crate) random_init: (&'a EncoderSnapshot, &'a DynamicsSnapshot),
}

/// The seeds of the new worlds' pairs: one held-out world per pair.
pub(crate) fn new_world_seeds(config: &EvalConfig) -> Vec<u64> {
    (0..config.pairs)
        .map(|pair| HELD_OUT_SEED_BASE + 500_000 + config.seed * 1000 + pair as u64)
        .collect()
}

pub(crate) fn planning_setting(
    setting: GoalSetting,
    sim: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    worlds: &Worlds<'_>,
    models: &Models<'_>,
    progress: Progress<'_>,
) -> Result<(PlanningSetting, Vec<PlanningTrajectory>), EvalError> {
    let Models {
        trained,
        random_init,
    } = *models;
    let stage = format!("planning ({}, {})", worlds.protocol, setting.name());
    let pairs: Vec<usize> = (0..config.pairs).collect();
    // Each pair's four attempts, one pair at a time on each thread: every agent of a pair
    // shares its world's memory.
    let per_pair = map_in_order(&pairs, &stage, progress, |&pair| {
        let (world, seed) = worlds.pair(config, pair);
        let memory = worlds
            .memories
            .get(&world)
            .ok_or_else(|| EvalError::Data(format!("no memory of world {world}")))?;
        let agents = [
            Agent::Planner(trained.0, trained.1),
            Agent::MemoryPlanner(trained.0, trained.1, memory),
            Agent::Random,
            Agent::Planner(random_init.0, random_init.1),
        ];
        // Pairs run side by side: the trace says which pair a line is of.
        let _pair = tracing::debug_span!("pair", protocol = worlds.protocol, pair).entered();
        let mut attempts = Vec::with_capacity(agents.len());
        for agent in &agents {
            attempts.push(attempt(
                setting, sim, collector, config, world, seed, agent,
            )?);
        }
        Ok((memory, attempts))
    })?;
    let mut outcomes: [Vec<Attempt>; 4] = Default::default();
    // Per pair: how well its world's memory covers the goal, and how far its odometry drifted.
    let mut goal_coverage = Vec::with_capacity(config.pairs);
    let mut goals_shown = Vec::with_capacity(config.pairs);
    let mut drift = Vec::with_capacity(config.pairs);
    for (memory, attempts) in per_pair {
        if let Some(attempt) = attempts.first() {
            goal_coverage.extend(memory.coverage_m(&attempt.goal_pose));
            goals_shown.push(shows_goal(memory, &attempt.goal_pose, config));
        }
        drift.extend(memory.odometry_drift_m);
        for (slot, attempt) in attempts.into_iter().enumerate() {
            outcomes[slot].push(attempt);
        }
    }
    let mut trajectories = Vec::with_capacity(AGENTS.len() * config.pairs);
    for (agent, attempts) in AGENTS.iter().zip(&outcomes) {
        for (pair, attempt) in attempts.iter().enumerate() {
            trajectories.push(PlanningTrajectory {
                protocol: worlds.protocol.to_owned(),
                setting: setting.name().to_owned(),
                pair,
                world: worlds.pair(config, pair).0,
                agent: (*agent).to_owned(),
                start: attempt.start_pose,
                goal: attempt.goal_pose,
                path: attempt.path.clone(),
                reached: attempt.reached(config),
                goal_image: attempt.goal_image.clone(),
                memory: attempt.memory.clone(),
            });
        }
    }
    let memory_attempts = &outcomes[1];
    let localisation: Vec<f64> = memory_attempts
        .iter()
        .flat_map(|a| a.localisation.iter().map(|&p| metres(p)))
        .collect();
    let goal_localisation: Vec<f64> = memory_attempts
        .iter()
        .filter_map(|a| a.goal_localisation.map(metres))
        .collect();
    let checks: Vec<PathCheck> = memory_attempts
        .iter()
        .filter_map(|a| a.path_check)
        .collect();
    let memory_localisation = MemoryLocalisation {
        median_error_m: median(&localisation),
        goal_median_error_m: median(&goal_localisation),
        goal_coverage_m: median(&goal_coverage),
        goals_shown: (!goals_shown.is_empty()).then(|| {
            goals_shown.iter().filter(|&&shown| shown).count() as f64 / goals_shown.len() as f64
        }),
        odometry_drift_m: median(&drift),
        path_end_m: median(&checks.iter().map(|c| c.end_m).collect::<Vec<_>>()),
        path_layout_m: median(&checks.iter().map(|c| c.layout_m).collect::<Vec<_>>()),
        map_error_m: median(
            &memory_attempts
                .iter()
                .filter_map(|a| a.map_error_m)
                .collect::<Vec<_>>(),
        ),
        rejected_shortcuts: median(
            &memory_attempts
                .iter()
                .filter_map(|a| a.rejected_shortcuts)
                .collect::<Vec<_>>(),
        ),
    };
    let [planner, memory_planner, random_policy, random_init_planner] =
        outcomes.map(|attempts| planning_score(&attempts, config));
    let scores = PlanningSetting {
        setting: setting.name().to_owned(),
        pairs: config.pairs,
        plan_steps: setting.steps(config),
        planner,
        memory_planner,
        memory_localisation,
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
        passed_rate: attempts.iter().filter(|a| a.passed(config)).count() as f64 / n,
        final_position_error_m: attempts.iter().map(|a| a.end.0).sum::<f64>() / n,
        final_yaw_error_deg: attempts.iter().map(|a| a.end.1).sum::<f64>() / n,
        start_position_error_m: attempts.iter().map(|a| a.start.0).sum::<f64>() / n,
        start_yaw_error_deg: attempts.iter().map(|a| a.start.1).sum::<f64>() / n,
    }
}

/// The length of `[x, y]`, metres.
fn metres([x, y]: [f64; 2]) -> f64 {
    x.hypot(y)
}

/// The median of `part` of each of `vectors`; NaN for none.
fn median_of(vectors: &[[f64; 2]], part: impl Fn([f64; 2]) -> f64) -> f64 {
    median(&vectors.iter().map(|&v| part(v)).collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

/// `(position error m, heading error °)` of `pose` against `goal`.
pub(crate) fn pose_error(pose: &Pose2, goal: &Pose2) -> (f64, f64) {
    (
        (pose.x - goal.x).hypot(pose.y - goal.y),
        wrap_angle(pose.yaw - goal.yaw).abs().to_degrees(),
    )
}

/// Where `pose` lies in `goal`'s frame: metres ahead of the goal (along its heading) and to its
/// left. A robot that cannot drive sideways ends beside its goal, not ahead of or behind it,
/// where it faces the goal's way and cannot close the distance without turning away.
pub(crate) fn offset_in_goal_frame(pose: &Pose2, goal: &Pose2) -> (f64, f64) {
    let (dx, dy) = (pose.x - goal.x, pose.y - goal.y);
    let (sin, cos) = goal.yaw.sin_cos();
    (dx * cos + dy * sin, -dx * sin + dy * cos)
}

/// Draws a free start and a goal of the setting in `sim`'s world from `seed`.
pub(crate) fn start_and_goal(
    sim: &Sim,
    setting: GoalSetting,
    seed: u64,
) -> Result<(Pose2, Pose2), EvalError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..10_000 {
        let start = random_free_pose(sim, &mut rng)?;
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
            GoalSetting::Far | GoalSetting::Across => random_free_pose(sim, &mut rng)?,
            GoalSetting::Near => {
                let distance = rng.random_range(0.1..0.35);
                let bearing = rng.random_range(-std::f64::consts::PI..std::f64::consts::PI);
                let turn = rng.random_range(-90f64..90.0).to_radians();
                Pose2 {
                    x: start.x + distance * bearing.cos(),
                    y: start.y + distance * bearing.sin(),
                    yaw: wrap_angle(start.yaw + turn),
                }
            }
        };
        let (dx, dy) = (goal.x - start.x, goal.y - start.y);
        let fits = match setting {
            GoalSetting::Easy | GoalSetting::Near => free(sim, goal.x, goal.y),
            GoalSetting::Far => dx.hypot(dy) >= 1.0,
            GoalSetting::Across => {
                dx.hypot(dy) >= 2.0 && dx * start.yaw.cos() + dy * start.yaw.sin() < 0.0
            }
        };
        if fits {
            return Ok((start, goal));
        }
    }
    Err(EvalError::Data(format!(
        "no free {} start/goal pair found in world {}",
        setting.name(),
        sim.seed()
    )))
}

/// One start/goal pair for one agent: shows the goal image, puts the robot at the start and
/// lets the agent drive for `plan_steps` periods.
fn attempt(
    setting: GoalSetting,
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    world: u64,
    seed: u64,
    agent: &Agent<'_>,
) -> Result<Attempt, EvalError> {
    let mut sim = Sim::new(sim_config)?;
    sim.reset(world)?;
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
    let steps = setting.steps(config);
    let mut path = Vec::with_capacity(steps + 1);
    path.push([start_pose.x, start_pose.y]);
    let (min, max) = (config.planner.min_action, config.planner.max_action);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xa5a5);
    let mut planner = PlannerNode::new(PlannerNodeConfig {
        planner: config.planner.clone(),
        goal_proprio: config.goal_proprio,
        align: config.align.clone(),
        // The memory is the drive given below: what the planner sees on the way to the goal
        // is not added to it.
        ..PlannerNodeConfig::default()
    })?;
    let goal_frame_image = goal_frame.image.clone();
    let goal_frame_proprio = goal_frame.proprio.clone();
    planner.set_goal(goal_frame);
    if let Agent::MemoryPlanner(_, _, memory) = agent {
        planner.set_memory(memory.frames.clone(), config.memory.clone())?;
    }
    let mut latent_distances = (f32::NAN, f32::NAN);
    let mut drawing = None;
    let mut localisation = Vec::new();
    let mut goal_localisation = None;
    let mut path_check = None;
    let (mut map_error_m, mut rejected_shortcuts) = (None, None);
    let mut goal_views = None;
    // Memory planner following: where the robot was when it first came to the end of a path,
    // and the goal seen from there.
    let (mut following, mut path_done, mut goal_after_path) = (false, None, None);
    // The goal embedded at rest, for the per-period trace only.
    let goal_at_rest = match agent {
        Agent::Planner(encoder, _) | Agent::MemoryPlanner(encoder, ..)
            if tracing::enabled!(tracing::Level::TRACE) =>
        {
            Some(encoder.embed(&goal_frame_image, &goal_frame_proprio)?)
        }
        _ => None,
    };
    // The pose nearest to success on the way (see `Attempt::closest`).
    let mut closest: Option<((f64, f64), usize)> = None;
    for period in 0..steps {
        let frame = eyes.see(&observation)?;
        let command = match agent {
            Agent::Planner(encoder, dynamics) | Agent::MemoryPlanner(encoder, dynamics, _) => {
                let output = planner
                    .on_frame(&frame, encoder, dynamics)?
                    .ok_or_else(|| EvalError::Data("the planner lost its goal".into()))?;
                let latent = output.plan.as_ref().map_or(f32::NAN, |p| p.start_distance);
                if period == 0 {
                    latent_distances.0 = latent;
                    if let (Agent::MemoryPlanner(_, _, memory), Some(graph)) =
                        (agent, planner.memory_graph())
                    {
                        drawing = Some(MemoryDrawing::of(graph, output.route.as_ref(), memory));
                        if tracing::enabled!(tracing::Level::DEBUG) {
                            goal_views = GoalViews::of(
                                graph,
                                memory,
                                encoder,
                                (&goal_frame_image, &goal_frame_proprio),
                                &goal_pose,
                                config,
                            )?;
                        }
                        map_error_m = memory.map_error_m(graph);
                        rejected_shortcuts = graph
                            .config()
                            .pose_graph
                            .enabled
                            .then(|| graph.rejected_shortcuts() as f64);
                    }
                }
                latent_distances.1 = latent;
                if let Some(goal) = &goal_at_rest {
                    // Per period: the truth beside the planner's view of it. `at_rest` is the
                    // frame embedded at rest, as the goal is: the image's part of the distance.
                    let place = encoder.embed(&frame.image, &goal_frame_proprio)?;
                    let robot = sim.ground_truth().robot_pose;
                    let truth = pose_error(&robot, &goal_pose);
                    // The goal seen from the robot: truly, and as the relative-pose head read it.
                    let goal_in_robot = robot.relative(&goal_pose);
                    let seen =
                        output
                            .goal_seen
                            .unwrap_or(OdometryPose::new(f64::NAN, f64::NAN, f64::NAN));
                    tracing::trace!(
                        period,
                        error_m = truth.0,
                        error_deg = truth.1,
                        latent,
                        at_rest = autodidact_learn::plan::goal_distance(&place, goal),
                        predicted_final = output
                            .plan
                            .as_ref()
                            .map_or(f32::NAN, |p| p.predicted_final_distance),
                        linear = output.command.linear_x,
                        angular = output.command.angular_z,
                        goal_x = goal_in_robot.x,
                        goal_y = goal_in_robot.y,
                        goal_deg = goal_in_robot.yaw.to_degrees(),
                        seen_x = seen.x,
                        seen_y = seen.y,
                        seen_deg = seen.yaw.to_degrees(),
                        "planning period"
                    );
                }
                if let (None, Agent::MemoryPlanner(_, _, memory), Some(route)) =
                    (&path_check, agent, &output.route)
                {
                    let truth = sim.ground_truth().robot_pose;
                    path_check = check_path(&planner, &frame, route, memory, &truth, &goal_pose);
                }
                if let (Agent::MemoryPlanner(_, _, memory), Some(route), Some(graph)) =
                    (agent, &output.route, planner.memory_graph())
                {
                    let place = |node: usize| memory.positions.get(graph.nodes()[node].frame);
                    let pose = sim.ground_truth().robot_pose;
                    // Where a place lies seen from the truth: ahead or aside.
                    let seen_from = |from: &Pose2, [x, y]: [f64; 2]| {
                        let seen = from.relative(&Pose2 {
                            x,
                            y,
                            yaw: from.yaw,
                        });
                        [seen.x, seen.y]
                    };
                    if let Some(&[x, y]) = route.nodes.first().and_then(|&n| place(n)) {
                        localisation.push(seen_from(&pose, [x, y]));
                    }
                    if let (0, Some(&[x, y])) = (period, route.nodes.last().and_then(|&n| place(n)))
                    {
                        goal_localisation = Some(seen_from(&goal_pose, [x, y]));
                    }
                }
                let follows = planner.followed_path().is_some();
                if following && !follows && path_done.is_none() {
                    let robot = sim.ground_truth().robot_pose;
                    path_done = Some(pose_error(&robot, &goal_pose));
                    goal_after_path = Some(robot.relative(&goal_pose));
                }
                following = follows;
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
        let error = pose_error(&pose, &goal_pose);
        if closest
            .is_none_or(|(best, _)| tolerance_share(error, config) < tolerance_share(best, config))
        {
            closest = Some((error, period));
        }
    }
    let end = pose_error(&sim.ground_truth().robot_pose, &goal_pose);
    let start_offset = offset_in_goal_frame(&start_pose, &goal_pose);
    let end_offset = offset_in_goal_frame(&sim.ground_truth().robot_pose, &goal_pose);
    tracing::debug!(
        setting = setting.name(),
        seed,
        agent = match agent {
            Agent::Planner(..) => "planner",
            Agent::MemoryPlanner(..) => "memory_planner",
            Agent::Random => "random",
        },
        start_m = start_error.0,
        start_deg = start_error.1,
        start_ahead_m = start_offset.0,
        start_left_m = start_offset.1,
        end_m = end.0,
        end_deg = end.1,
        end_ahead_m = end_offset.0,
        end_left_m = end_offset.1,
        closest_m = closest.map_or(f64::NAN, |c| c.0.0),
        closest_deg = closest.map_or(f64::NAN, |c| c.0.1),
        closest_period = closest.map_or(0, |c| c.1),
        latent_start = latent_distances.0,
        latent_end = latent_distances.1,
        localisation_m = median_of(&localisation, metres),
        goal_localisation_m = goal_localisation.map_or(f64::NAN, metres),
        goal_placed_x = goal_localisation.map_or(f64::NAN, |p| p[0]),
        goal_placed_y = goal_localisation.map_or(f64::NAN, |p| p[1]),
        robot_placed_x = median_of(&localisation, |p| p[0]),
        robot_placed_y = median_of(&localisation, |p| p[1]),
        path_end_m = path_check.map_or(f64::NAN, |c| c.end_m),
        path_layout_m = path_check.map_or(f64::NAN, |c| c.layout_m),
        path_length_m = path_check.map_or(f64::NAN, |c| c.length_m),
        path_done_m = path_done.map_or(f64::NAN, |e| e.0),
        path_done_deg = path_done.map_or(f64::NAN, |e| e.1),
        goal_after_path_x = goal_after_path.map_or(f64::NAN, |g| g.x),
        goal_after_path_y = goal_after_path.map_or(f64::NAN, |g| g.y),
        goal_pixel_twin_m = goal_views.as_ref().map_or(f64::NAN, |v| v.pixel_twin_m),
        goal_view_rank = goal_views
            .as_ref()
            .and_then(|v| v.own_view_rank)
            .map_or(-1, |r| r as i64),
        driven_m = path
            .windows(2)
            .map(|w| (w[1][0] - w[0][0]).hypot(w[1][1] - w[0][1]))
            .sum::<f64>(),
        followed = planner.stats().followed,
        aligning = planner.stats().aligning,
        align_timeouts = planner.stats().align_timeouts,
        realigned = planner.stats().realigned,
        sidesteps = planner.stats().sidesteps,
        paths = planner.stats().paths,
        "planning attempt"
    );
    Ok(Attempt {
        start: start_error,
        end,
        start_pose,
        goal_pose,
        path,
        goal_image: goal_frame_image,
        memory: drawing,
        localisation,
        goal_localisation,
        path_check,
        map_error_m,
        rejected_shortcuts,
        closest,
    })
}

/// How a memory's remembered views stand to a goal's image, by the truth (the debug trace's
/// account of a goal placed at a look-alike): can any place be told from the goal's image,
/// and how far down the embedding's order does the goal's own place come?
struct GoalViews {
    /// Metres from the goal to where the remembered view was taken whose image is nearest the
    /// goal's in raw pixels (the sum of the bytes' absolute differences). More than the
    /// success tolerance where another place looks more like the goal than any view of its
    /// own: the simulator's walls are striped, and a wall seen from where its stripes repeat
    /// looks the same.
    pixel_twin_m: f64,
    /// The best rank, in the embedding's order of all the memory's places (0: the nearest), of
    /// a view taken within the success tolerance of the goal's pose; `None` where no view was.
    own_view_rank: Option<usize>,
}

impl GoalViews {
    /// Ranks the memory's places for the goal's image as the graph retrieves them (`None`
    /// where its places are not the model's embedding).
    fn of(
        graph: &MemoryGraph,
        memory: &WorldMemory,
        encoder: &EncoderSnapshot,
        (image, proprio): (&[u8], &[f32]),
        goal: &Pose2,
        config: &EvalConfig,
    ) -> Result<Option<Self>, EvalError> {
        if graph.config().places != PlaceFeatures::Embedding {
            return Ok(None);
        }
        let order = graph.ranked(&encoder.embed(image, proprio)?)?;
        let nodes = graph.nodes();
        let taken_at = |node: usize| memory.pose(nodes[node].frame);
        let own_view_rank = order.iter().position(|(node, _)| {
            taken_at(*node).is_some_and(|pose| within(pose_error(&pose, goal), config))
        });
        let images = nodes
            .iter()
            .map(|node| memory.frames.get(node.frame).map_or(&[][..], |f| &*f.image));
        let pixel_twin_m = nearest_in_pixels(image, images)
            .and_then(taken_at)
            .map_or(f64::NAN, |pose| pose_error(&pose, goal).0);
        Ok(Some(Self {
            pixel_twin_m,
            own_view_rank,
        }))
    }
}

/// The index of the image nearest `image` in raw pixels (the sum of the bytes' absolute
/// differences; the first on a tie), among those of its size.
fn nearest_in_pixels<'a>(image: &[u8], images: impl Iterator<Item = &'a [u8]>) -> Option<usize> {
    images
        .enumerate()
        .filter(|(_, other)| other.len() == image.len())
        .min_by_key(|(_, other)| {
            image
                .iter()
                .zip(other.iter())
                .map(|(a, b)| u64::from(a.abs_diff(*b)))
                .sum::<u64>()
        })
        .map(|(i, _)| i)
}

/// The first path the memory planner laid out to follow by odometry, against the truth.
#[derive(Debug, Clone, Copy)]
struct PathCheck {
    /// Metres from where the path truly ends to the goal.
    end_m: f64,
    /// Metres from where the path would end, started at its first place's true pose, to where
    /// the frame of its last place was taken.
    layout_m: f64,
    /// Metres along the path, pose to pose.
    length_m: f64,
}

/// Checks the path `planner` follows now, laid out along `route` from where the robot truly
/// is (`truth`); `None` while it follows none.
fn check_path(
    planner: &PlannerNode,
    frame: &autodidact_nodes::Frame,
    route: &autodidact_learn::Route,
    memory: &WorldMemory,
    truth: &Pose2,
    goal: &Pose2,
) -> Option<PathCheck> {
    let (path, odometry, graph) = (
        planner.followed_path()?,
        frame.odometry?,
        planner.memory_graph()?,
    );
    let pose = |p: &Pose2| OdometryPose::new(p.x, p.y, p.yaw);
    // The path's end relative to the robot, by its odometry.
    let relative = odometry.inverse().compose(path.last()?);
    let end = pose(truth).compose(&relative);
    let place = |node: &usize| {
        let frame = graph.nodes().get(*node)?.frame;
        let [x, y] = *memory.positions.get(frame)?;
        Some(OdometryPose::new(x, y, *memory.headings.get(frame)?))
    };
    let (first, last) = (place(route.nodes.first()?)?, place(route.nodes.last()?)?);
    Some(PathCheck {
        end_m: end.distance(&pose(goal)),
        layout_m: first.compose(&relative).distance(&last),
        length_m: path.windows(2).map(|w| w[0].distance(&w[1])).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory shows a goal's place where a frame was taken within both success tolerances of
    /// its pose (0.2 m and 20° by default), through ±180° too.
    #[test]
    fn a_view_within_the_success_tolerance_shows_the_goals_place() {
        let memory = WorldMemory {
            frames: Vec::new(),
            // Facing −x 0.5 m ahead of the origin, facing +x 2 m away.
            positions: vec![[0.5, 0.0], [2.0, 0.0]],
            headings: vec![std::f64::consts::PI, 0.0],
            odometry_drift_m: None,
        };
        let at = |x, yaw: f64| Pose2 {
            x,
            y: 0.0,
            yaw: yaw.to_radians(),
        };
        let config = EvalConfig::default();
        assert!(shows_goal(&memory, &at(1.85, 15.0), &config));
        assert!(
            !shows_goal(&memory, &at(1.85, 25.0), &config),
            "turned too far"
        );
        assert!(
            !shows_goal(&memory, &at(1.7, 0.0), &config),
            "too far along"
        );
        assert!(
            shows_goal(&memory, &at(0.5, 180.0), &config),
            "through ±180°"
        );
        assert_eq!(memory.pose(1), Some(at(2.0, 0.0)));
        assert_eq!(memory.pose(2), None, "past the drive's end");
    }

    /// The debug trace's pixel twin is the remembered image that looks most like the goal's,
    /// whatever the embedding says: the same image wins over a brighter or a shifted one, and
    /// an image of another size is never compared.
    #[test]
    fn the_pixel_twin_of_a_goal_is_the_remembered_image_that_looks_most_like_it() {
        let goal: Vec<u8> = (0..48u8).map(|v| v * 5).collect();
        let brighter: Vec<u8> = goal.iter().map(|v| v.saturating_add(20)).collect();
        let shifted: Vec<u8> = goal
            .iter()
            .cycle()
            .skip(3)
            .take(goal.len())
            .copied()
            .collect();
        let smaller = goal[..45].to_vec();
        let images = [&brighter[..], &smaller[..], &goal[..], &shifted[..]];
        assert_eq!(nearest_in_pixels(&goal, images.into_iter()), Some(2));
        let without_twin = [&shifted[..], &brighter[..], &smaller[..]];
        assert_eq!(nearest_in_pixels(&goal, without_twin.into_iter()), Some(1));
        assert_eq!(nearest_in_pixels(&goal, [&smaller[..]].into_iter()), None);
    }

    /// An attempt that ended `end` from its goal, nearest to it at `closest`.
    fn attempt_ending(end: (f64, f64), closest: (f64, f64)) -> Attempt {
        let pose = Pose2 {
            x: 0.0,
            y: 0.0,
            yaw: 0.0,
        };
        Attempt {
            start: (0.1, 60.0),
            end,
            start_pose: pose,
            goal_pose: pose,
            path: Vec::new(),
            goal_image: Arc::from(Vec::new()),
            memory: None,
            localisation: Vec::new(),
            goal_localisation: None,
            path_check: None,
            map_error_m: None,
            rejected_shortcuts: None,
            closest: Some((closest, 10)),
        }
    }

    /// The score tells an attempt that reached the goal and drove off it again from one that
    /// never got there; one that ended there passed it too.
    #[test]
    fn attempts_that_left_the_goal_count_as_passed_not_reached() {
        let config = EvalConfig::default();
        let attempts = [
            // Ended there.
            attempt_ending((0.1, 10.0), (0.05, 5.0)),
            // Was there (0.1 m, 5°), ended 0.3 m off.
            attempt_ending((0.3, 10.0), (0.1, 5.0)),
            // Never nearer than 25°.
            attempt_ending((0.1, 40.0), (0.1, 25.0)),
            // Never nearer than 0.25 m.
            attempt_ending((0.4, 10.0), (0.25, 2.0)),
        ];
        let score = planning_score(&attempts, &config);
        assert_eq!(score.success_rate, 0.25);
        assert_eq!(score.passed_rate, 0.5);
    }

    #[test]
    fn offsets_in_the_goal_frame_say_ahead_and_left_of_the_goal() {
        let goal = Pose2 {
            x: 1.0,
            y: 2.0,
            yaw: std::f64::consts::FRAC_PI_2,
        };
        // The goal faces +y: a pose at larger y is ahead of it, one at smaller x to its left.
        let ahead = offset_in_goal_frame(
            &Pose2 {
                x: 1.0,
                y: 2.3,
                yaw: 0.0,
            },
            &goal,
        );
        assert!(
            (ahead.0 - 0.3).abs() < 1e-12 && ahead.1.abs() < 1e-12,
            "{ahead:?}"
        );
        let left = offset_in_goal_frame(
            &Pose2 {
                x: 0.8,
                y: 2.0,
                yaw: 0.0,
            },
            &goal,
        );
        assert!(
            left.0.abs() < 1e-12 && (left.1 - 0.2).abs() < 1e-12,
            "{left:?}"
        );
    }

    #[test]
    fn goals_of_each_setting_are_free_as_far_as_it_says_and_across_goals_lie_behind() {
        let mut sim = Sim::new(&SimConfig::default()).expect("sim");
        for seed in 0..20 {
            sim.reset(seed).expect("reset");
            for setting in GoalSetting::ALL {
                let (start, goal) = start_and_goal(&sim, setting, seed).expect("pair");
                assert!(free(&sim, start.x, start.y) && free(&sim, goal.x, goal.y));
                let (dx, dy) = (goal.x - start.x, goal.y - start.y);
                let distance = dx.hypot(dy);
                match setting {
                    GoalSetting::Easy => {
                        assert!(distance < 0.25);
                        let turn = wrap_angle(goal.yaw - start.yaw).abs().to_degrees();
                        assert!((30.0..=90.0).contains(&turn), "turn {turn}");
                    }
                    GoalSetting::Far => assert!(distance >= 1.0),
                    GoalSetting::Near => {
                        assert!((0.1..0.35).contains(&distance), "distance {distance}");
                        let turn = wrap_angle(goal.yaw - start.yaw).abs().to_degrees();
                        assert!(turn <= 90.0, "turn {turn}");
                    }
                    GoalSetting::Across => {
                        assert!(distance >= 2.0);
                        let ahead = dx * start.yaw.cos() + dy * start.yaw.sin();
                        assert!(ahead < 0.0, "the goal is behind the robot");
                    }
                }
            }
        }
        assert_eq!(
            "across".parse::<GoalSetting>().ok(),
            Some(GoalSetting::Across)
        );
        assert_eq!("near".parse::<GoalSetting>().ok(), Some(GoalSetting::Near));
        assert!("sideways".parse::<GoalSetting>().is_err());
    }
}
