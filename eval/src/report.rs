//! The report: its JSON layout and the table `autodidact eval` prints.

use std::sync::Arc;

use autodidact_sim::{ExplorationConfig, Pose2};
use serde::{Deserialize, Serialize};

use crate::config::EvalConfig;
use crate::representation::SCALE_WITHIN_M;

/// The report (`--json`); layout named by [`REPORT_SCHEMA`](crate::REPORT_SCHEMA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// [`REPORT_SCHEMA`](crate::REPORT_SCHEMA).
    pub schema: String,
    /// The model evaluated.
    pub model: ModelInfo,
    /// The new-worlds protocol's held-out data.
    pub data: DataInfo,
    /// New worlds: linear probes and k-NN retrieval.
    pub representation: RepresentationScores,
    /// Same scores for a random-init model of the same architecture.
    pub random_init_representation: RepresentationScores,
    /// Same scores for raw pixels projected to the embedding's size.
    pub raw_pixels_representation: RepresentationScores,
    /// New worlds: frames placed by the relative-pose head (models with the odometry
    /// objective's head only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_pose: Option<RelativePoseScores>,
    /// k-step prediction error ÷ copy-last, `k = 1..=H`, in the new worlds (`H`: the horizon
    /// the dynamics trained on).
    pub prediction_vs_copy_last: Vec<f64>,
    /// The same ratio as far as the planner looks, `k = 1..=horizon × action_repeat` of
    /// `config.planner` (24 by default), from the starts that have that many frames after them;
    /// empty when that is not longer than `H`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planner_rollout_vs_copy_last: Vec<f64>,
    /// Collapse monitors on the new worlds' embeddings.
    pub collapse: autodidact_learn::metrics::CollapseReport,
    /// New worlds: how the model ranks the planner's candidate commands against what they do
    /// (`config.ranking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_ranking: Option<CandidateRanking>,
    /// New worlds: goal reaching, one entry per setting.
    pub planning: Vec<PlanningSetting>,
    /// The home protocol: the worlds the model learned in.
    pub home: HomeReport,
    /// The configuration used.
    pub config: EvalConfig,
    /// Every planning attempt's path, for the recording (`--rrd`); not part of the JSON.
    #[serde(skip)]
    pub trajectories: Vec<PlanningTrajectory>,
}

/// The home protocol: the robot is evaluated in the worlds it learned in, on drives and
/// start/goal pairs it never made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HomeReport {
    /// The worlds.
    pub world_seeds: Vec<u64>,
    /// How the robot drove through them on its own (the file's `[exploration]`): the drive it
    /// remembers there, and learned from when `eval` trained it.
    pub exploration: ExplorationConfig,
    /// Frames of the robot's own drive through each world (its memory, and what the probes are
    /// fitted on).
    pub memory_frames: usize,
    /// Frames of the new drives the probes are scored on.
    pub scored_frames: usize,
    /// Probes fitted on the robot's drives, scored on new drives; k-NN of a new drive's frame
    /// among the remembered ones.
    pub representation: RepresentationScores,
    /// Same for a random-init model.
    pub random_init_representation: RepresentationScores,
    /// Same for raw pixels.
    pub raw_pixels_representation: RepresentationScores,
    /// Frames of the new drives placed by the relative-pose head among the remembered ones
    /// (models with the head only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_pose: Option<RelativePoseScores>,
    /// Goal reaching, one entry per setting.
    pub planning: Vec<PlanningSetting>,
    /// How the model ranks the planner's candidate commands at home (`config.ranking`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_ranking: Option<CandidateRanking>,
}

/// Does the model rank the planner's candidate commands as the world does? From the start of
/// each easy pair, `candidates` command sequences drawn as the planner's first search iteration
/// draws them (the first stands still) are rolled out `steps` periods by the dynamics and
/// driven as far in the simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRanking {
    /// Start/goal pairs (the easy setting's).
    pub pairs: usize,
    /// Candidates per pair.
    pub candidates: usize,
    /// Control periods each candidate is rolled out and driven.
    pub steps: usize,
    /// Where the candidate the model predicts nearest the goal image (embedded as the planner
    /// embeds it, `goal_proprio`) truly ended.
    pub chosen_by_model: CandidateEnding,
    /// Where the candidate whose true final frame the encoder finds nearest the goal image
    /// ended: the model's choice were its dynamics perfect (and, under `goal_proprio =
    /// "predicted"`, its proprio head: the goal fused with the proprio truly felt there).
    pub chosen_by_encoder: CandidateEnding,
    /// The same with the true final frames embedded at rest, as the goal is: the image's part
    /// of the encoder's choice.
    pub chosen_by_image: CandidateEnding,
    /// The choice of the random-init model.
    pub chosen_by_random_init: CandidateEnding,
    /// The candidate that truly ended nearest the goal (least share of the tolerances): the
    /// best the candidates allow.
    pub best: CandidateEnding,
    /// Every candidate: what one drawn at random gets.
    pub every_candidate: CandidateEnding,
    /// Spearman correlation, per pair and averaged, of the predicted final goal distance with
    /// the encoder's goal distance of the frame truly seen there: the dynamics' fidelity on
    /// the commands the planner tries.
    pub predicted_vs_seen_rank_correlation: f64,
    /// The same of the predicted distance with the true nearness to the goal.
    pub predicted_vs_truth_rank_correlation: f64,
    /// The same of the encoder's distance of the true final frame with the true nearness.
    pub seen_vs_truth_rank_correlation: f64,
    /// The same with the true final frame embedded at rest, as the goal is.
    pub image_vs_truth_rank_correlation: f64,
}

/// Where a choice of candidates ended, over the pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateEnding {
    /// Share that ended within the success tolerances.
    pub reached_rate: f64,
    /// Mean distance to the goal position, metres.
    pub position_error_m: f64,
    /// Mean heading error, degrees.
    pub yaw_error_deg: f64,
}

/// One planning attempt: where the robot went.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanningTrajectory {
    /// `new_worlds` or `home`.
    pub protocol: String,
    /// `easy`, `far`, `across` or `near`.
    pub setting: String,
    /// Index of the start/goal pair.
    pub pair: usize,
    /// Its world.
    pub world: u64,
    /// `planner`, `memory_planner`, `random_policy` or `random_init_planner`.
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
    /// Memory planner: its graph and the route it found at the start.
    pub memory: Option<MemoryDrawing>,
}

/// A memory graph drawn at the true positions of its frames (which the planner never sees).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryDrawing {
    /// Node positions `[x, y]`, metres.
    pub nodes: Vec<[f64; 2]>,
    /// Shortcut and odometry-link edges (node index pairs, each once); observed edges join
    /// consecutive nodes of one episode.
    pub shortcuts: Vec<[usize; 2]>,
    /// The route's node positions, from the robot's node to the goal's.
    pub route: Vec<[f64; 2]>,
}

impl MemoryDrawing {
    pub(crate) fn of(
        graph: &autodidact_learn::MemoryGraph,
        route: Option<&autodidact_learn::Route>,
        memory: &crate::data::WorldMemory,
    ) -> Self {
        let position = |node: usize| {
            graph.nodes()[node]
                .frame
                .min(memory.positions.len().saturating_sub(1))
        };
        let at = |node: usize| {
            memory
                .positions
                .get(position(node))
                .copied()
                .unwrap_or_default()
        };
        let shortcuts = (0..graph.nodes().len())
            .flat_map(|from| {
                graph
                    .edges(from)
                    .iter()
                    .filter(move |e| {
                        e.to > from && e.kind != autodidact_learn::memory::EdgeKind::Observed
                    })
                    .map(move |e| [from, e.to])
            })
            .collect();
        Self {
            nodes: (0..graph.nodes().len()).map(at).collect(),
            shortcuts,
            route: route.map_or_else(Vec::new, |r| r.nodes.iter().map(|&n| at(n)).collect()),
        }
    }
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
    /// Rays the simulator's camera averaged along each side of a pixel in every world the
    /// evaluation drew (`[sim.camera] rays_per_side`; 1 in reports written before it existed).
    #[serde(default = "one_ray")]
    pub rays_per_side: u32,
}

fn one_ray() -> u32 {
    1
}

/// How well the relative-pose head (the odometry objective's) tells where one view lies seen
/// from another, from their image-only embeddings; errors are medians against the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelativePoseScores {
    /// Frames `steps_apart` apart in one scored drive: how far apart they truly are, metres.
    pub pair_distance_m: f64,
    /// … the head's error of where the later one lies seen from the earlier, metres …
    pub pair_position_error_m: f64,
    /// … and of its heading, degrees.
    pub pair_yaw_error_deg: f64,
    /// The steps between the two frames of a pair.
    pub steps_apart: usize,
    /// Each scored frame placed at its nearest fit frame by image-only embedding (cosine):
    /// position error, metres …
    pub nearest_position_error_m: f64,
    /// … and heading error, degrees.
    pub nearest_yaw_error_deg: f64,
    /// The same frame placed where the head puts it seen from that nearest frame: position
    /// error, metres …
    pub corrected_position_error_m: f64,
    /// … and heading error, degrees.
    pub corrected_yaw_error_deg: f64,
    /// Rank correlation (Spearman) of where the head reads each scored frame seen from its
    /// nearest fit frame with where it truly lies: ahead …
    #[serde(default = "not_measured")]
    pub nearest_ahead_correlation: f64,
    /// … and to the side (a head taught only on pairs of one drive reads no sideways offset;
    /// `OdometryConfig::revisit_share`).
    #[serde(default = "not_measured")]
    pub nearest_side_correlation: f64,
    /// How much of an offset the head reads, per metre it truly is, at the nearest views within
    /// 0.5 m: the least-squares slope of the reading on the truth, ahead … (1 for a head that
    /// reads exactly; less for one that hedges towards "no offset", or a noisy one)
    #[serde(default = "not_measured")]
    pub nearest_ahead_scale: f64,
    /// … and to the side.
    #[serde(default = "not_measured")]
    pub nearest_side_scale: f64,
    /// How far the offset truly lies per metre the head reads there: the slope of the truth on
    /// the reading, ahead … (1 for a head to scale, whose reading can be driven by, however
    /// noisy; more for one that reads less than is there)
    #[serde(default = "not_measured")]
    pub nearest_ahead_calibration: f64,
    /// … and to the side.
    #[serde(default = "not_measured")]
    pub nearest_side_calibration: f64,
}

/// A score a report written before it existed does not have.
fn not_measured() -> f64 {
    f64::NAN
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
    /// The same k-NN by the image alone (embedded with proprio zero, the robot at rest, as the
    /// memory embeds its places): position error, metres (NaN in a report from before it was
    /// measured) …
    #[serde(default = "not_measured")]
    pub knn_image_only_position_error_m: f64,
    /// … and heading error, degrees.
    #[serde(default = "not_measured")]
    pub knn_image_only_yaw_error_deg: f64,
}

/// Goal reaching in one setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningSetting {
    /// `easy` (turn 30–90° and move up to 0.25 m), `far` (anywhere at least 1 m away),
    /// `across` (at least 2 m away, behind the robot) or `near` (0.1–0.35 m away in any
    /// direction, the heading turned by up to 90°).
    pub setting: String,
    /// Start/goal pairs.
    pub pairs: usize,
    /// Control periods each agent drove.
    pub plan_steps: usize,
    /// The reference planner with the evaluated model.
    pub planner: PlanningScore,
    /// The same planner driving to subgoals on its memory of the world.
    pub memory_planner: PlanningScore,
    /// How well the memory planner knew where it was.
    pub memory_localisation: MemoryLocalisation,
    /// Uniformly random commands.
    pub random_policy: PlanningScore,
    /// The reference planner with a random-init model.
    pub random_init_planner: PlanningScore,
}

/// How well the memory planner's retrieval placed the robot and the goal in its memory,
/// measured against the simulator's ground truth (which the planner never sees).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryLocalisation {
    /// Median over every period of every pair: metres between the robot and where the frame of
    /// the node it was retrieved as was taken. `null` when no route was ever found.
    pub median_error_m: Option<f64>,
    /// Median over pairs: the same for the goal image.
    pub goal_median_error_m: Option<f64>,
    /// Median over pairs: metres from the goal to the nearest frame of the memory taken facing
    /// within 30° of the goal's heading. A goal far from every remembered view can only be
    /// retrieved as a look-alike. `null` when no frame faces any goal's way.
    #[serde(default)]
    pub goal_coverage_m: Option<f64>,
    /// Share of the pairs whose goal the memory has a view of: a frame taken within the
    /// success tolerance (`success_position_m`, `success_yaw_deg`) of the goal's pose. A goal
    /// without one can only be placed at a look-alike or beside its place. `null` for no pairs.
    #[serde(default)]
    pub goals_shown: Option<f64>,
    /// Median over pairs of the median drift of the memory's wheel odometry from the truth
    /// (aligned at its first frame), metres. `null` when the memory has no odometry.
    #[serde(default)]
    pub odometry_drift_m: Option<f64>,
    /// Following by odometry (`[eval.memory.follow]`), median over pairs: metres between the
    /// goal and where the first path the robot laid out truly ends. `null` without following.
    #[serde(default)]
    pub path_end_m: Option<f64>,
    /// … and metres between where that path ends and where the goal's place of the route was
    /// taken, had the path started at its first place's true pose: the error of laying out the
    /// route from the odometry between its places, without placing robot and goal.
    #[serde(default)]
    pub path_layout_m: Option<f64>,
    /// Median over pairs: how far the memory's places lie from where they were truly taken
    /// (median over its places, after the best rigid fit of the whole memory to the truth):
    /// the optimised map's poses with `[eval.memory.pose_graph]`, else the raw odometry's.
    /// `null` when the memory has no odometry.
    #[serde(default)]
    pub map_error_m: Option<f64>,
    /// Median over pairs: shortcuts the optimised map rejected. `null` without a pose graph.
    #[serde(default)]
    pub rejected_shortcuts: Option<f64>,
}

/// Outcome of one agent over all pairs of a setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanningScore {
    /// Share of pairs that ended within the success tolerances.
    pub success_rate: f64,
    /// Share of pairs that came within the success tolerances at some control period, whether
    /// or not they ended there (at least `success_rate`): the rest of the attempts never got
    /// there; the difference reached the goal and drove off it again.
    #[serde(default)]
    pub passed_rate: f64,
    /// Mean final distance to the goal position, metres.
    pub final_position_error_m: f64,
    /// Mean final heading error, degrees.
    pub final_yaw_error_deg: f64,
    /// Mean distance to the goal position at the start, metres.
    pub start_position_error_m: f64,
    /// Mean heading error at the start, degrees.
    pub start_yaw_error_deg: f64,
}

/// The table `autodidact eval` prints: `(metric, trained, baselines)`.
pub fn report_rows(report: &EvalReport) -> Vec<[String; 3]> {
    let mut rows = Vec::new();
    for (protocol, trained, random_init, pixels) in [
        (
            "new worlds",
            &report.representation,
            &report.random_init_representation,
            &report.raw_pixels_representation,
        ),
        (
            "home",
            &report.home.representation,
            &report.home.random_init_representation,
            &report.home.raw_pixels_representation,
        ),
    ] {
        representation_rows(&mut rows, protocol, trained, random_init, pixels);
    }
    for (protocol, scores) in [
        ("new worlds", &report.relative_pose),
        ("home", &report.home.relative_pose),
    ] {
        if let Some(s) = scores {
            relative_pose_rows(&mut rows, protocol, s);
        }
    }
    for (k, ratio) in report.prediction_vs_copy_last.iter().enumerate() {
        rows.push([
            format!("{}-step prediction ÷ copy-last", k + 1),
            format!("{ratio:.3}"),
            String::new(),
        ]);
    }
    // Beyond the trained horizon, every fourth step as far as the planner looks.
    let trained = report.prediction_vs_copy_last.len();
    for (k, ratio) in report.planner_rollout_vs_copy_last.iter().enumerate() {
        let k = k + 1;
        if k > trained && (k % 4 == 0 || k == report.planner_rollout_vs_copy_last.len()) {
            rows.push([
                format!("{k}-step prediction ÷ copy-last (planner's rollout)"),
                format!("{ratio:.3}"),
                String::new(),
            ]);
        }
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
    for (protocol, ranking) in [
        ("new worlds", &report.candidate_ranking),
        ("home", &report.home.candidate_ranking),
    ] {
        if let Some(r) = ranking {
            ranking_rows(&mut rows, protocol, r);
        }
    }
    for (protocol, planning) in [
        ("new worlds", &report.planning),
        ("home", &report.home.planning),
    ] {
        for setting in planning {
            planning_rows(&mut rows, protocol, setting);
        }
    }
    rows
}

fn ranking_rows(rows: &mut Vec<[String; 3]>, protocol: &str, r: &CandidateRanking) {
    let ending = |e: &CandidateEnding| {
        format!(
            "{:.0} % ({:.2} m, {:.0}°)",
            100.0 * e.reached_rate,
            e.position_error_m,
            e.yaw_error_deg
        )
    };
    let title = format!(
        "{protocol}: candidates ({} pairs × {}, {} steps) reached",
        r.pairs, r.candidates, r.steps
    );
    rows.push([
        format!("{title}, the model's choice (random init / best / any)"),
        ending(&r.chosen_by_model),
        format!(
            "{:.0} % / {:.0} % / {:.0} %",
            100.0 * r.chosen_by_random_init.reached_rate,
            100.0 * r.best.reached_rate,
            100.0 * r.every_candidate.reached_rate
        ),
    ]);
    rows.push([
        format!("{title}, the encoder's choice from the frames truly seen (their image alone)"),
        ending(&r.chosen_by_encoder),
        ending(&r.chosen_by_image),
    ]);
    rows.push([
        format!(
            "{protocol}: candidates' rank correlation, predicted vs seen / vs truth (seen / image alone vs truth)"
        ),
        format!(
            "{:.2} / {:.2}",
            r.predicted_vs_seen_rank_correlation, r.predicted_vs_truth_rank_correlation
        ),
        format!(
            "{:.2} / {:.2}",
            r.seen_vs_truth_rank_correlation, r.image_vs_truth_rank_correlation
        ),
    ]);
}

fn representation_rows(
    rows: &mut Vec<[String; 3]>,
    protocol: &str,
    r: &RepresentationScores,
    b: &RepresentationScores,
    p: &RepresentationScores,
) {
    let row = |metric: &str, value: &dyn Fn(&RepresentationScores) -> f64, digits: usize| {
        [
            format!("{protocol}: {metric} (random init / raw pixels)"),
            format!("{:.digits$}", value(r)),
            format!("{:.digits$} / {:.digits$}", value(b), value(p)),
        ]
    };
    rows.push(row("pose probe R²", &|s| s.pose_r2, 3));
    rows.push(row("nearest-object probe R²", &|s| s.nearest_object_r2, 3));
    rows.push(row("k-NN position error m", &|s| s.knn_position_error_m, 3));
    rows.push(row("k-NN heading error °", &|s| s.knn_yaw_error_deg, 1));
    rows.push(row(
        "k-NN position error m, image only",
        &|s| s.knn_image_only_position_error_m,
        3,
    ));
    rows.push(row(
        "k-NN heading error °, image only",
        &|s| s.knn_image_only_yaw_error_deg,
        1,
    ));
}

fn relative_pose_rows(rows: &mut Vec<[String; 3]>, protocol: &str, s: &RelativePoseScores) {
    rows.push([
        format!(
            "{protocol}: relative-pose head, frames {} steps apart (true distance)",
            s.steps_apart
        ),
        format!(
            "{:.3} m / {:.1}°",
            s.pair_position_error_m, s.pair_yaw_error_deg
        ),
        format!("{:.3} m", s.pair_distance_m),
    ]);
    rows.push([
        format!("{protocol}: placed at the nearest view, moved by the head (not moved)"),
        format!(
            "{:.3} m / {:.1}°",
            s.corrected_position_error_m, s.corrected_yaw_error_deg
        ),
        format!(
            "{:.3} m / {:.1}°",
            s.nearest_position_error_m, s.nearest_yaw_error_deg
        ),
    ]);
    rows.push([
        format!("{protocol}: the head's reading at the nearest view, rank correlation with the truth, ahead / aside"),
        format!(
            "{:.2} / {:.2}",
            s.nearest_ahead_correlation, s.nearest_side_correlation
        ),
        String::new(),
    ]);
    rows.push([
        format!("{protocol}: the head's reading at the nearest view within {SCALE_WITHIN_M} m, metres read per metre true, ahead / aside"),
        format!(
            "{:.2} / {:.2}",
            s.nearest_ahead_scale, s.nearest_side_scale
        ),
        String::new(),
    ]);
    rows.push([
        format!("{protocol}: the head's reading at the nearest view within {SCALE_WITHIN_M} m, metres true per metre read, ahead / aside"),
        format!(
            "{:.2} / {:.2}",
            s.nearest_ahead_calibration, s.nearest_side_calibration
        ),
        String::new(),
    ]);
}

fn planning_rows(rows: &mut Vec<[String; 3]>, protocol: &str, setting: &PlanningSetting) {
    let row = |agent: &str, score: &PlanningScore| {
        [
            format!(
                "{protocol}: planning {} ({} pairs, {} steps): {agent}",
                setting.setting, setting.pairs, setting.plan_steps
            ),
            format!(
                "{:.0} % reached ({:.0} % on the way)",
                100.0 * score.success_rate,
                100.0 * score.passed_rate
            ),
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
    rows.push(row("memory planner", &setting.memory_planner));
    let metres = |m: Option<f64>| m.map_or_else(|| "–".to_owned(), |m| format!("{m:.2} m"));
    let memory = &setting.memory_localisation;
    for (what, pair) in [
        (
            "memory planner localised (median, robot / goal)",
            [memory.median_error_m, memory.goal_median_error_m],
        ),
        (
            "memory's cover of the goals / its odometry drift (median)",
            [memory.goal_coverage_m, memory.odometry_drift_m],
        ),
        (
            "followed path's end to the goal / its layout error (median)",
            [memory.path_end_m, memory.path_layout_m],
        ),
    ] {
        rows.push([
            format!("{protocol}: planning {}: {what}", setting.setting),
            metres(pair[0]),
            metres(pair[1]),
        ]);
    }
    rows.push([
        format!(
            "{protocol}: planning {}: memory's map error / shortcuts it rejected (median)",
            setting.setting
        ),
        metres(memory.map_error_m),
        memory
            .rejected_shortcuts
            .map_or_else(|| "–".to_owned(), |n| format!("{n:.0}")),
    ]);
    rows.push([
        format!(
            "{protocol}: planning {}: goals the memory has a view of (within the tolerance)",
            setting.setting
        ),
        memory
            .goals_shown
            .map_or_else(|| "–".to_owned(), |share| format!("{:.0} %", 100.0 * share)),
        String::new(),
    ]);
    rows.push(row("random policy", &setting.random_policy));
    rows.push(row(
        "planner, random-init model",
        &setting.random_init_planner,
    ));
}
