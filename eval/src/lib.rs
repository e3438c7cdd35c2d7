//! # autodidact-eval
//!
//! `autodidact eval`: how good a world model is, against ground truth the model never sees, under
//! two protocols: **new worlds** (held-out simulator worlds, seeds never used for training) and
//! **home** (the worlds the model learned in, on drives and start/goal pairs it never made).
//!
//! - linear probes (ridge) from the embedding to the robot pose and to the nearest object's
//!   position in the robot frame, fitted on half of the held-out episodes and scored on the
//!   other half (new worlds) or fitted on the robot's own drives and scored on new drives
//!   (home); k-NN retrieval pose error;
//! - k-step latent prediction error ÷ copy-last, and collapse monitors;
//! - goal reaching (easy, far, across; near on request) with the reference planner, with the
//!   same planner driving through a memory of the world (`learn::memory`), against a random
//!   policy and the planner on a random-init model.
//!
//! Every representation score is also given for a random-init model of the same architecture
//! and for raw pixels, so a report says how much training bought. The report is deterministic
//! for a given model and seed.
//! Frames reach the model through the same collector as in `autodidact run`.
//!
//! The rooms: `config` (what to evaluate), `data` (held-out frames with ground truth),
//! `representation` (probes, retrieval), `planning` (goal reaching), `report` (the JSON layout
//! and the table), `recording` (the evaluation in rerun), `model` (what is evaluated: a
//! checkpoint or a model trained here) and `evaluate` (all of it in order).

mod bag;
mod config;
mod data;
mod evaluate;
mod model;
mod parallel;
mod planning;
mod ranking;
mod recording;
mod report;
mod representation;

use std::path::PathBuf;

pub use bag::{BAG_REPORT_SCHEMA, BagEvalReport, BagScores, bag_report_rows, evaluate_bags};
pub use config::{EvalConfig, HELD_OUT_SEED_BASE, REPORT_SCHEMA};
pub use evaluate::evaluate;
pub use model::{EvalModel, train_model};
pub use planning::GoalSetting;
pub use recording::{eval_blueprint, record_report, report_markdown, save_report};
pub use report::{
    CandidateEnding, CandidateRanking, DataInfo, EvalReport, HomeReport, MemoryDrawing,
    MemoryLocalisation, ModelInfo, PlanningScore, PlanningSetting, PlanningTrajectory,
    RelativePoseScores, RepresentationScores, report_rows,
};

/// Progress: `(stage, done, total)`; pieces that run side by side ([`EvalConfig::jobs`]) report
/// from their threads.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A number of the eval configuration is unusable.
    #[error("invalid eval config: {0}")]
    InvalidConfig(String),
    /// The model does not fit the simulator's camera or the collector's proprio.
    #[error("{0}")]
    Mismatch(String),
    /// A checkpoint could not be loaded.
    #[error("loading checkpoint {path}: {source}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// Why.
        source: autodidact_learn::LearnError,
    },
    /// The held-out data or a planning pair could not be made.
    #[error("{0}")]
    Data(String),
    /// The learning core refused something.
    #[error(transparent)]
    Learn(#[from] autodidact_learn::LearnError),
    /// The simulator refused something.
    #[error(transparent)]
    Sim(#[from] autodidact_sim::SimError),
    /// A node component (collector, planner) refused something.
    #[error(transparent)]
    Node(#[from] autodidact_nodes::NodeError),
    /// The threads [`EvalConfig::jobs`] asks for could not be started.
    #[error("starting {threads} eval threads: {source}")]
    Threads {
        /// How many were asked for.
        threads: usize,
        /// Why not.
        source: rayon::ThreadPoolBuildError,
    },
    /// The recording could not be written.
    #[error("recording {path}: {reason}")]
    Recording {
        /// The `.rrd` file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
