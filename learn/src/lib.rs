//! # autodidact-learn
//!
//! Self-supervised world models for a robot, trained online from its own camera and
//! proprioception, with no labels:
//!
//! - a **state encoder** (small conv net on the image, MLP on proprio, fused) whose output `z` is
//!   the embedding the robot publishes;
//! - **objectives**, each with a weight and an on/off switch: contrastive (InfoNCE between two
//!   augmented views plus temporal positives, keys from an EMA target), forward prediction
//!   (action-conditioned latent dynamics rolled out `H` steps against the EMA target's embeddings
//!   of the real future, plus a next-proprio head), masked-patch prediction and reconstruction;
//! - a **replay buffer** and a **trainer** (Adam, seeded, NaN/Inf guard, EMA, atomic
//!   checkpoints, safetensors export) that publishes versioned encoder snapshots which inference
//!   swaps in without waiting;
//! - **weights that travel** ([`weights`]): one version of the served encoder and dynamics as
//!   safetensors with the digest of the architecture it fits;
//! - **metrics**: collapse monitors (per-dimension std, effective rank), prediction error against
//!   copy-last, and a ridge linear probe;
//! - **planning**: rollouts scored against a goal embedding and the reference planner,
//!   goal-image latent MPC with CEM;
//! - a **topological memory** ([`memory`]): a graph over the robot's own past embeddings, on
//!   which far goals are reached subgoal by subgoal.
//!
//! It knows nothing of ROS, tokio or rerun. The backend is chosen at run time
//! ([`BackendChoice`]): `auto` (the default) trains on a hardware GPU through `wgpu` where wgpu
//! finds one and on burn's CPU backend `flex` otherwise; inference is placed separately.

pub mod augment;
pub mod baseline;
mod cpu;
mod device;
pub mod health;
pub mod inference;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod relative_pose;
mod replay;
pub mod stats;
mod trainer;
pub mod weights;

pub use device::{BackendChoice, BackendKind, Placement, Placements};
pub use health::{HealthReport, embed_frames, embedding_health, prediction_ratios};
pub use inference::{EncoderHandle, EncoderSnapshot};
pub use memory::{Localiser, MemoryConfig, MemoryGraph, OdometryPose, Route};
pub use model::{WorldModel, WorldModelConfig};
pub use plan::{
    Goal, LatentPlanner, Plan, PlannerConfig, Rollout, SearchMethod, goal_distance, goal_distances,
    rollout,
};
pub use replay::{ACTION_DIM, ReplayBuffer, ReplayConfig, Transition};
pub use trainer::{
    Batch, CHECKPOINT_FORMAT, ContrastiveConfig, ForwardConfig, InverseConfig, LearningRateDecay,
    Losses, MaskedConfig, ObjectivesConfig, OdometryConfig, Preview, ReconstructionConfig,
    SigRegConfig, SpreadConfig, StepReport, Trainer, TrainerConfig,
};

/// What can go wrong in the learning core.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    /// A configuration value is unusable.
    #[error("invalid learn config: {0}")]
    InvalidConfig(String),
    /// A transition was refused by the replay buffer.
    #[error("bad transition: {0}")]
    BadTransition(String),
    /// Input to inference or training has the wrong shape or values.
    #[error("bad input: {0}")]
    BadInput(String),
    /// Too little data to sample a batch.
    #[error("not enough data: have {have}, need {need}")]
    NotEnoughData {
        /// What is there.
        have: usize,
        /// What is needed.
        need: usize,
    },
    /// A metric could not be computed from its input.
    #[error("metric: {0}")]
    Metric(String),
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The tensor backend reported an error.
    #[error("backend: {0}")]
    Backend(String),
    /// Packed weights could not be packed or unpacked (a tensor missing, of another shape,
    /// unreadable bytes).
    #[error("weights: {0}")]
    Weights(String),
    /// Packed weights fit another architecture than the model they were offered to.
    #[error("weights of another architecture ({got}); this model is {expected}")]
    OtherArchitecture {
        /// This model's architecture digest.
        expected: String,
        /// The weights' architecture digest.
        got: String,
    },
}

/// Helpers shared by the unit tests.
#[cfg(test)]
mod test_support {
    /// The largest absolute difference between two equally long slices.
    pub(crate) fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}
