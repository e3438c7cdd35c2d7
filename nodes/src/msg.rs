//! The messages between components. They mirror the ROS 2 types the nodes speak
//! (sensor_msgs Image / JointState / Imu, nav_msgs Odometry, geometry_msgs Twist, and the
//! autodidact_msgs types) without depending on a transport. Stamps are nanoseconds of the
//! source clock (sim time or ROS time).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// sensor_msgs/Image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageMsg {
    /// Capture time of the image (header stamp), nanoseconds.
    pub stamp_ns: u64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// ROS encoding name (`rgb8`, `bgr8`, `rgba8`, `bgra8`, `mono8` are understood).
    pub encoding: String,
    /// Big-endian pixel data (irrelevant for 8-bit encodings, which is all we accept).
    pub is_bigendian: bool,
    /// Bytes per row, including padding.
    pub step: u32,
    /// `step × height` bytes.
    pub data: Arc<[u8]>,
    /// The camera's coordinate frame (header `frame_id`); embeddings carry it on.
    pub frame_id: String,
}

impl ImageMsg {
    /// A tightly packed `rgb8` image in frame `camera`.
    pub fn rgb8(stamp_ns: u64, width: u32, height: u32, data: Arc<[u8]>) -> Self {
        Self {
            frame_id: "camera".to_owned(),
            stamp_ns,
            width,
            height,
            encoding: "rgb8".to_owned(),
            is_bigendian: false,
            step: width * 3,
            data,
        }
    }
}

/// sensor_msgs/CompressedImage (what image_transport's `compressed` plugin publishes).
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedImageMsg {
    /// Capture time of the image (header stamp), nanoseconds.
    pub stamp_ns: u64,
    /// `jpeg`, `png`, or image_transport's `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// The compressed file's bytes.
    pub data: Arc<[u8]>,
    /// The camera's coordinate frame (header `frame_id`).
    pub frame_id: String,
}

/// sensor_msgs/JointState.
#[derive(Debug, Clone, PartialEq)]
pub struct JointStateMsg {
    /// Header stamp, nanoseconds.
    pub stamp_ns: u64,
    /// Joint names; values are matched by name.
    pub name: Vec<String>,
    /// Positions (rad or m), may be empty.
    pub position: Vec<f64>,
    /// Velocities (rad/s or m/s).
    pub velocity: Vec<f64>,
    /// Efforts (N·m or N), may be empty.
    pub effort: Vec<f64>,
}

/// sensor_msgs/Imu (covariances omitted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImuMsg {
    /// Header stamp, nanoseconds.
    pub stamp_ns: u64,
    /// Orientation quaternion `[x, y, z, w]`.
    pub orientation: [f64; 4],
    /// rad/s, body frame.
    pub angular_velocity: [f64; 3],
    /// m/s², body frame (specific force).
    pub linear_acceleration: [f64; 3],
}

/// nav_msgs/Odometry, planar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OdometryMsg {
    /// Header stamp, nanoseconds.
    pub stamp_ns: u64,
    /// Position x, m (odom frame).
    pub x: f64,
    /// Position y, m.
    pub y: f64,
    /// Heading, rad.
    pub yaw: f64,
    /// Forward speed, m/s (body frame).
    pub linear_x: f64,
    /// Yaw rate, rad/s.
    pub angular_z: f64,
}

/// geometry_msgs/Twist as a drive command, stamped on arrival (Twist has no header).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwistMsg {
    /// When the command was sent or received, nanoseconds.
    pub stamp_ns: u64,
    /// Forward speed, m/s.
    pub linear_x: f32,
    /// Yaw rate, rad/s.
    pub angular_z: f32,
}

/// Everything the collector listens to.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorMsg {
    /// camera/image_raw
    Image(ImageMsg),
    /// camera/image_raw/compressed
    CompressedImage(CompressedImageMsg),
    /// joint_states
    JointState(JointStateMsg),
    /// imu/data
    Imu(ImuMsg),
    /// odom
    Odometry(OdometryMsg),
    /// cmd_vel
    Action(TwistMsg),
}

impl SensorMsg {
    /// The message's stamp, nanoseconds.
    pub fn stamp_ns(&self) -> u64 {
        match self {
            Self::Image(m) => m.stamp_ns,
            Self::CompressedImage(m) => m.stamp_ns,
            Self::JointState(m) => m.stamp_ns,
            Self::Imu(m) => m.stamp_ns,
            Self::Odometry(m) => m.stamp_ns,
            Self::Action(m) => m.stamp_ns,
        }
    }

    /// Moves the message's stamp to `stamp_ns`.
    pub fn set_stamp_ns(&mut self, stamp_ns: u64) {
        match self {
            Self::Image(m) => m.stamp_ns = stamp_ns,
            Self::CompressedImage(m) => m.stamp_ns = stamp_ns,
            Self::JointState(m) => m.stamp_ns = stamp_ns,
            Self::Imu(m) => m.stamp_ns = stamp_ns,
            Self::Odometry(m) => m.stamp_ns = stamp_ns,
            Self::Action(m) => m.stamp_ns = stamp_ns,
        }
    }
}

/// autodidact_msgs/Embedding: one per camera frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// Stamp of the image it was computed from, nanoseconds.
    pub source_stamp_ns: u64,
    /// Version of the encoder weights that produced it.
    pub model_version: u64,
    /// Training step of those weights.
    pub train_step: u64,
    /// The state embedding `z`.
    pub data: Vec<f32>,
    /// From the frame entering the encoder to the embedding leaving it, seconds.
    pub latency_s: f64,
    /// The source image's `frame_id` (bounded: [`crate::collector::MAX_FRAME_ID_BYTES`]).
    pub frame_id: Arc<str>,
}

/// autodidact_msgs/TrainerStatus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerStatus {
    /// Source-clock time of the newest frame in the replay buffer, nanoseconds.
    pub stamp_ns: u64,
    /// Optimiser steps taken.
    pub train_step: u64,
    /// Newest published encoder version.
    pub model_version: u64,
    /// Losses of the last step.
    pub losses: autodidact_learn::Losses,
    /// Global gradient norm of the last step.
    pub grad_norm: f32,
    /// Images encoded per second in the last step.
    pub samples_per_second: f64,
    /// Transitions in the replay buffer.
    pub replay_len: usize,
    /// Transitions in the replay buffer per robot (its index, its count).
    pub replay_by_robot: Vec<(u32, usize)>,
    /// Batches skipped because of NaN/Inf.
    pub non_finite_skips: u64,
    /// Where training and inference run, and why.
    pub placements: autodidact_learn::Placements,
}

/// autodidact_msgs/EmbeddingHealth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMsg {
    /// Training step the report belongs to.
    pub train_step: u64,
    /// The report.
    pub report: autodidact_learn::HealthReport,
}
