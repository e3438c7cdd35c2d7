//! # autodidact-sim
//!
//! A deterministic world in which a robot can learn about itself, and which tells the tests the
//! truth.
//!
//! - rapier3d physics: a differential-drive robot (two motorised wheels on revolute joints and a
//!   frictionless caster) in a walled arena whose walls differ in colour and stripe pattern, on a
//!   checkered floor, with pushable coloured boxes and cylinders.
//! - An ego camera rendered by ray casting (RGB8 + depth in metres), with no GPU.
//! - Proprioception like a real robot's: wheel joint states, IMU, wheel odometry with noise and
//!   drift, all stamped with the sim clock.
//! - Ground truth for evaluation only.
//!
//! Frames: world and `odom` are z-up; the robot's body frame is x forward, y left, z up
//! (REP 103). The `odom` frame is the robot's start pose.
//!
//! ```
//! use autodidact_sim::{Action, Sim, SimConfig};
//! let mut sim = Sim::new(&SimConfig::default())?;
//! let first = sim.reset(7)?;
//! let next = sim.step(&Action::new(0.3, 0.0));
//! assert!(next.stamp > first.stamp);
//! assert_eq!(next.frame.rgb.len(), 64 * 64 * 3);
//! # Ok::<(), autodidact_sim::SimError>(())
//! ```

mod config;
mod digest;
mod policy;
mod render;
mod types;
mod world;

pub use config::{
    ArenaConfig, CameraConfig, LightingConfig, MAX_IMAGE_SIDE, MAX_OBJECTS, MAX_RAYS_PER_SIDE,
    NoiseConfig, ObjectsConfig, RandomizationConfig, RobotConfig, SimConfig,
};
pub use digest::ObservationDigest;
pub use policy::{ExplorationConfig, ExplorationPolicy};
pub use types::{
    Action, CameraFrame, CameraIntrinsics, GroundTruth, Imu, JointState, ObjectShape, ObjectTruth,
    Observation, Odometry, Pose2, SimTime, wrap_angle,
};
pub use world::{Sim, SimStats, WHEEL_JOINT_NAMES};

/// Why a world could not be built or changed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("invalid sim config: {field} {reason}")]
    InvalidConfig {
        /// The offending field (dotted path).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Something could not be placed with the configured clearances.
    #[error(
        "cannot place {what} in the arena after {attempts} attempts: make the arena larger, or \
         use fewer/smaller objects or a smaller clearance"
    )]
    Placement {
        /// What could not be placed.
        what: String,
        /// How many random placements were tried.
        attempts: u32,
    },
    /// A requested pose is unusable.
    #[error("invalid pose: {0}")]
    InvalidPose(String),
}
