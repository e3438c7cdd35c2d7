//! The report: its JSON layout and the table `autodidact eval` prints.

use std::sync::Arc;

use autodidact_sim::Pose2;
use serde::{Deserialize, Serialize};

use crate::config::EvalConfig;

/// The report (`--json`); layout named by [`REPORT_SCHEMA`](crate::REPORT_SCHEMA).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// [`REPORT_SCHEMA`](crate::REPORT_SCHEMA).
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
