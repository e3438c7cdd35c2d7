//! `autodidact eval`: how good a world model is, measured on held-out simulator worlds (seeds
//! never used for training) against ground truth the model never sees.
//!
//! - linear probes (ridge) from the embedding to the robot pose and to the nearest object's
//!   position in the robot frame, fitted on half of the held-out episodes and scored on the
//!   other half; k-NN retrieval pose error;
//! - k-step latent prediction error ÷ copy-last, and collapse monitors;
//! - goal reaching with the reference planner against a random policy and against the same
//!   planner on a random-init model.
//!
//! Every number is also given for a random-init model of the same architecture, so a report
//! says how much training bought. The report is deterministic for a given model and seed.
//! Frames reach the model through the same collector as in `autodidact run`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::metrics::LinearProbe;
use autodidact_learn::{
    EncoderSnapshot, PlannerConfig, Trainer, TrainerConfig, Transition, embedding_health,
};
use autodidact_nodes::planner::{PlannerNode, PlannerNodeConfig};
use autodidact_nodes::sim::sensor_messages;
use autodidact_nodes::{Collector, CollectorConfig, Frame, ManualClock};
use autodidact_sim::{
    Action, ExplorationConfig, ExplorationPolicy, Observation, Pose2, Sim, SimConfig, wrap_angle,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Version of the JSON report's layout; bumped when a field changes meaning or goes away.
pub const REPORT_SCHEMA: &str = "autodidact.eval/1";

/// First seed of the held-out worlds: far away from the seeds training uses (0, 1, 2, …).
pub const HELD_OUT_SEED_BASE: u64 = 1_000_000;

/// What to evaluate and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out exploration episodes (at least 2: probes fit on half, score on the rest).
    pub episodes: u64,
    /// Control steps per held-out episode.
    pub episode_steps: usize,
    /// Start/goal pairs per planning setting.
    pub pairs: usize,
    /// Control periods the planner (and the random policy) get per pair.
    pub plan_steps: usize,
    /// A goal counts as reached when the final position is within this, metres …
    pub success_position_m: f64,
    /// … and the final heading within this, degrees.
    pub success_yaw_deg: f64,
    /// Ridge of the linear probes.
    pub ridge: f64,
    /// Embed the goal image with the robot's current proprio at every step instead of the
    /// proprio at rest at the goal (see `PlannerNodeConfig`).
    pub goal_with_current_proprio: bool,
    /// The reference planner.
    pub planner: PlannerConfig,
    /// Seed of the held-out worlds, the pairs and the random baselines.
    pub seed: u64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 8,
            episode_steps: 500,
            pairs: 20,
            plan_steps: 60,
            success_position_m: 0.2,
            success_yaw_deg: 20.0,
            ridge: 1e-3,
            goal_with_current_proprio: false,
            planner: PlannerConfig::default(),
            seed: 0,
        }
    }
}

impl EvalConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<()> {
        if self.episodes < 2 || self.episode_steps < 20 {
            bail!("eval needs at least 2 held-out episodes of at least 20 steps");
        }
        if self.pairs == 0 || self.plan_steps == 0 {
            bail!("eval needs at least one planning pair and one planning step");
        }
        self.planner.validate()?;
        Ok(())
    }
}

/// The report (`--json`); layout named by [`REPORT_SCHEMA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// The model evaluated.
    pub model: ModelInfo,
    /// The held-out data.
    pub data: DataInfo,
    /// Linear probes and k-NN retrieval.
    pub representation: RepresentationScores,
    /// Same scores for a random-init model of the same architecture.
    pub random_init_representation: RepresentationScores,
    /// k-step prediction error ÷ copy-last, `k = 1..=H`.
    pub prediction_vs_copy_last: Vec<f64>,
    /// Collapse monitors on the held-out embeddings.
    pub collapse: autodidact_learn::metrics::CollapseReport,
    /// Goal reaching, one entry per setting.
    pub planning: Vec<PlanningSetting>,
    /// The configuration used.
    pub config: EvalConfig,
    /// Every planning attempt's path, for the recording (`--rrd`); not part of the JSON.
    #[serde(skip)]
    pub trajectories: Vec<PlanningTrajectory>,
}

/// One planning attempt: where the robot went.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanningTrajectory {
    /// `easy` or `far`.
    pub setting: String,
    /// Index of the start/goal pair.
    pub pair: usize,
    /// `planner`, `random_policy` or `random_init_planner`.
    pub agent: String,
    /// Where the robot started.
    pub start: Pose2,
    /// The goal pose.
    pub goal: Pose2,
    /// Robot position `[x, y]` (m) at the start and after every period.
    pub path: Vec<[f64; 2]>,
    /// Ended within the success thresholds.
    pub reached: bool,
    /// The goal image (`height × width × 3`, rgb8) the agent was given.
    pub goal_image: Arc<[u8]>,
}

/// Which model was evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Where it came from (a checkpoint path, or the training run eval did itself).
    pub source: String,
    /// Optimiser steps it was trained for.
    pub train_step: u64,
    /// Weight version.
    pub model_version: u64,
    /// Embedding size.
    pub embed_dim: usize,
    /// Camera image `[width, height]`.
    pub image: [usize; 2],
}

/// The held-out data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataInfo {
    /// World seeds of the exploration episodes.
    pub episode_seeds: Vec<u64>,
    /// Frames embedded.
    pub frames: usize,
}

/// How much of the world the embedding holds, linearly and by nearest neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepresentationScores {
    /// R² of the pose probe (x, y, sin yaw, cos yaw), mean over targets.
    pub pose_r2: f64,
    /// Per target: x, y, sin yaw, cos yaw.
    pub pose_r2_per_target: Vec<f64>,
    /// R² of the probe for the nearest object's position in the robot frame (x ahead, y left).
    pub nearest_object_r2: f64,
    /// Median position error of the pose of the nearest neighbour (cosine) among the fit
    /// frames, metres.
    pub knn_position_error_m: f64,
    /// Median heading error of that neighbour, degrees.
    pub knn_yaw_error_deg: f64,
}

/// Goal reaching in one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningSetting {
    /// `easy` (turn 30–90° and move up to 0.25 m) or `far` (anywhere at least 1 m away).
    pub setting: String,
    /// Start/goal pairs.
    pub pairs: usize,
    /// The reference planner with the evaluated model.
    pub planner: PlanningScore,
    /// Uniformly random commands.
    pub random_policy: PlanningScore,
    /// The reference planner with a random-init model.
    pub random_init_planner: PlanningScore,
}

/// Outcome of one agent over all pairs of a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningScore {
    /// Share of pairs that ended within the success tolerances.
    pub success_rate: f64,
    /// Mean final distance to the goal position, metres.
    pub final_position_error_m: f64,
    /// Mean final heading error, degrees.
    pub final_yaw_error_deg: f64,
    /// Mean distance to the goal position at the start, metres.
    pub start_position_error_m: f64,
    /// Mean heading error at the start, degrees.
    pub start_yaw_error_deg: f64,
}

/// A model to evaluate: its encoder and dynamics, with a random-init twin.
pub struct EvalModel {
    /// Description of the source, for the report.
    pub source: String,
    /// The trained model.
    pub trainer: Trainer,
}

impl EvalModel {
    /// Loads a checkpoint directory written by `autodidact run --checkpoint` or the trainer.
    pub fn from_checkpoint(path: &std::path::Path) -> Result<Self> {
        let trainer = Trainer::resume(path, None)
            .with_context(|| format!("loading checkpoint {}", path.display()))?;
        Ok(Self {
            source: format!("checkpoint {}", path.display()),
            trainer,
        })
    }
}

/// Progress: `(stage, done, total)`.
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

/// Trains a model on fresh exploration episodes of the training seeds `0..episodes`, for
/// `steps` optimiser steps, the way the learning tests do; for evaluating without a checkpoint.
pub fn train_model(
    sim: &SimConfig,
    trainer_config: TrainerConfig,
    episodes: u64,
    episode_steps: usize,
    steps: u64,
    progress: Progress<'_>,
) -> Result<EvalModel> {
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

/// Runs the whole evaluation of `model` in worlds of `sim` (its camera must match the model).
pub fn evaluate(
    model: &EvalModel,
    sim: &SimConfig,
    config: &EvalConfig,
    progress: Progress<'_>,
) -> Result<EvalReport> {
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

/// The table `autodidact eval` prints: `(metric, trained, baseline)`.
pub fn report_rows(report: &EvalReport) -> Vec<[String; 3]> {
    let r = &report.representation;
    let b = &report.random_init_representation;
    let mut rows = vec![
        [
            "pose probe R² (random init)".into(),
            format!("{:.3}", r.pose_r2),
            format!("{:.3}", b.pose_r2),
        ],
        [
            "nearest-object probe R² (random init)".into(),
            format!("{:.3}", r.nearest_object_r2),
            format!("{:.3}", b.nearest_object_r2),
        ],
        [
            "k-NN position error m (random init)".into(),
            format!("{:.3}", r.knn_position_error_m),
            format!("{:.3}", b.knn_position_error_m),
        ],
        [
            "k-NN heading error ° (random init)".into(),
            format!("{:.1}", r.knn_yaw_error_deg),
            format!("{:.1}", b.knn_yaw_error_deg),
        ],
    ];
    for (k, ratio) in report.prediction_vs_copy_last.iter().enumerate() {
        rows.push([
            format!("{}-step prediction ÷ copy-last", k + 1),
            format!("{ratio:.3}"),
            String::new(),
        ]);
    }
    rows.push([
        "effective rank / dim".into(),
        format!(
            "{:.1} / {}",
            report.collapse.effective_rank, report.collapse.dim
        ),
        String::new(),
    ]);
    rows.push([
        "mean per-dim std".into(),
        format!("{:.4}", report.collapse.mean_std),
        String::new(),
    ]);
    for setting in &report.planning {
        let row = |agent: &str, score: &PlanningScore| {
            [
                format!(
                    "planning {} ({} pairs): {agent}",
                    setting.setting, setting.pairs
                ),
                format!("{:.0} % reached", 100.0 * score.success_rate),
                format!(
                    "final {:.2} m / {:.0}° (start {:.2} m / {:.0}°)",
                    score.final_position_error_m,
                    score.final_yaw_error_deg,
                    score.start_position_error_m,
                    score.start_yaw_error_deg
                ),
            ]
        };
        rows.push(row("planner", &setting.planner));
        rows.push(row("random policy", &setting.random_policy));
        rows.push(row(
            "planner, random-init model",
            &setting.random_init_planner,
        ));
    }
    rows
}

/// One held-out frame with what the model does not see.
struct Record {
    transition: Transition,
    /// `[x, y, sin yaw, cos yaw]`.
    pose: [f32; 4],
    /// Nearest object in the robot frame, `[x ahead, y left]`, metres.
    nearest_object: [f32; 2],
}

/// The collector settings for `sim`'s camera and the model's proprio.
fn collector_config(sim: &SimConfig, trainer: &TrainerConfig) -> Result<CollectorConfig> {
    let config = CollectorConfig {
        width: sim.camera.width,
        height: sim.camera.height,
        ..CollectorConfig::default()
    };
    let image = &trainer.model.encoder.image;
    if (image.width, image.height) != (config.width as usize, config.height as usize) {
        bail!(
            "the model takes {}x{} images, the sim camera is {}x{} (set [sim.camera] to match)",
            image.width,
            image.height,
            config.width,
            config.height
        );
    }
    if config.proprio.dim() != trainer.model.encoder.proprio_dim {
        bail!(
            "the model takes {} proprio values, the collector makes {}",
            trainer.model.encoder.proprio_dim,
            config.proprio.dim()
        );
    }
    Ok(config)
}

/// Turns sim observations into frames exactly as the graph's collector does.
struct Eyes {
    collector: Collector,
    clock: Arc<ManualClock>,
    stamp_ns: u64,
    period_ns: u64,
}

impl Eyes {
    fn new(config: &CollectorConfig, sim: &SimConfig) -> Self {
        let clock = Arc::new(ManualClock::new());
        Self {
            collector: Collector::new(config.clone(), clock.clone()),
            clock,
            stamp_ns: 0,
            period_ns: (sim.control_period_s * 1e9) as u64,
        }
    }

    /// The frame the collector makes of `observation`, stamped one period after the last.
    fn see(&mut self, observation: &Observation) -> Result<Frame> {
        self.stamp_ns += self.period_ns;
        self.clock.set_ns(self.stamp_ns);
        let mut frame = None;
        for message in sensor_messages(observation, self.stamp_ns) {
            if let Some(made) = self.collector.on_message(&message).frame {
                frame = Some(made);
            }
        }
        frame.context("the collector dropped a simulator frame")
    }
}

/// Explores the world of `seed` for `steps`, keeping each frame with its ground truth.
fn explore(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    seed: u64,
    steps: usize,
) -> Result<Vec<Record>> {
    let mut sim = Sim::new(sim_config)?;
    let mut observation = sim.reset(seed)?;
    let mut eyes = Eyes::new(collector, sim_config);
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), seed);
    let period = sim_config.control_period_s as f32;
    let mut records = Vec::with_capacity(steps);
    for _ in 0..steps {
        let frame = eyes.see(&observation)?;
        let truth = sim.ground_truth();
        let pose = truth.robot_pose;
        let nearest_object = truth
            .objects
            .iter()
            .map(|o| {
                pose.relative(&Pose2 {
                    x: o.position[0],
                    y: o.position[1],
                    yaw: 0.0,
                })
            })
            .min_by(|a, b| a.x.hypot(a.y).total_cmp(&b.x.hypot(b.y)))
            .map_or([0.0; 2], |p| [p.x as f32, p.y as f32]);
        let action = policy.act(&observation, period);
        records.push(Record {
            transition: Transition {
                episode: seed,
                frame_stamp_ns: frame.stamp_ns,
                image: frame.image,
                proprio: frame.proprio,
                action: [action.linear_x, action.angular_z],
            },
            pose: [
                pose.x as f32,
                pose.y as f32,
                pose.yaw.sin() as f32,
                pose.yaw.cos() as f32,
            ],
            nearest_object,
        });
        observation = sim.step(&action);
    }
    Ok(records)
}

fn embed_records(encoder: &EncoderSnapshot, records: &[&Record]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(records.len());
    for chunk in records.chunks(128) {
        let images: Vec<&[u8]> = chunk.iter().map(|r| &*r.transition.image).collect();
        let proprio: Vec<&[f32]> = chunk
            .iter()
            .map(|r| r.transition.proprio.as_slice())
            .collect();
        out.extend(encoder.embed_batch(&images, &proprio)?);
    }
    Ok(out)
}

fn representation_scores(
    encoder: &EncoderSnapshot,
    fit: &[&Record],
    score: &[&Record],
    ridge: f64,
) -> Result<RepresentationScores> {
    let fit_z = embed_records(encoder, fit)?;
    let score_z = embed_records(encoder, score)?;
    let poses = |records: &[&Record]| -> Vec<Vec<f32>> {
        records.iter().map(|r| r.pose.to_vec()).collect()
    };
    let objects = |records: &[&Record]| -> Vec<Vec<f32>> {
        records.iter().map(|r| r.nearest_object.to_vec()).collect()
    };
    let pose_probe = LinearProbe::fit(&fit_z, &poses(fit), ridge)?;
    let pose_r2_per_target = pose_probe.r2_per_target(&score_z, &poses(score))?;
    let object_r2 =
        LinearProbe::fit(&fit_z, &objects(fit), ridge)?.r2_per_target(&score_z, &objects(score))?;
    let nearest_object_r2 = object_r2.iter().sum::<f64>() / object_r2.len() as f64;

    // k-NN by cosine similarity.
    let unit = |z: &Vec<f32>| autodidact_learn::health::normalise(z);
    let fit_unit: Vec<Vec<f32>> = fit_z.iter().map(unit).collect();
    let mut position_errors = Vec::with_capacity(score.len());
    let mut yaw_errors = Vec::with_capacity(score.len());
    for (query, record) in score_z.iter().map(unit).zip(score) {
        let nearest = fit_unit
            .iter()
            .map(|f| f.iter().zip(&query).map(|(a, b)| a * b).sum::<f32>())
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
            .context("no fit frames")?;
        let (a, b) = (record.pose, fit[nearest].pose);
        position_errors.push(f64::from((a[0] - b[0]).hypot(a[1] - b[1])));
        let yaw = |p: [f32; 4]| f64::from(p[2]).atan2(f64::from(p[3]));
        yaw_errors.push(wrap_angle(yaw(a) - yaw(b)).abs().to_degrees());
    }
    Ok(RepresentationScores {
        pose_r2: pose_r2_per_target.iter().sum::<f64>() / pose_r2_per_target.len() as f64,
        pose_r2_per_target,
        nearest_object_r2,
        knn_position_error_m: median(&mut position_errors),
        knn_yaw_error_deg: median(&mut yaw_errors),
    })
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// How far goals are from starts.
#[derive(Debug, Clone, Copy)]
enum GoalSetting {
    /// Turn 30–90° either way and move up to 0.25 m.
    Easy,
    /// Anywhere free, at least 1 m away, any heading.
    Far,
}

impl GoalSetting {
    fn name(self) -> &'static str {
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

fn planning_setting(
    setting: GoalSetting,
    sim: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    trained: (&EncoderSnapshot, &DynamicsSnapshot),
    random_init: (&EncoderSnapshot, &DynamicsSnapshot),
    progress: Progress<'_>,
) -> Result<(PlanningSetting, Vec<PlanningTrajectory>)> {
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
fn start_and_goal(sim: &Sim, setting: GoalSetting, seed: u64) -> Result<(Pose2, Pose2)> {
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
    bail!("no free start/goal pair found in world {seed}")
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
) -> Result<Attempt> {
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
                    .context("the planner has a goal")?;
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
