//! The simulator's streams as a rosbag2 MCAP directory (`autodidact run --bag-out`,
//! `autodidact sim --bag-out`): what the sim node publishes, under the same names and frames —
//! camera image and camera_info, joint_states, imu/data, odom, the commands it drove with,
//! /clock — and the ground truth on `ground_truth/odom` (pose in `world`).

use std::path::{Path, PathBuf};

use autodidact_bag::msgs::{CameraInfo, Clock, Time, types};
use autodidact_bag::{BagError, BagWriter};
use autodidact_sim::CameraConfig;

use super::convert::{odometry, sensor_out};
use crate::components::sim::SimTick;
use crate::msg::SensorMsg;

/// The simulated camera's frame (the sim node's default `camera_frame_id`).
pub const CAMERA_FRAME: &str = "camera";

/// Writes simulator ticks into a bag.
pub struct SimRecorder {
    writer: BagWriter,
    camera: CameraConfig,
    camera_frame: String,
    ticks: u64,
}

/// A pinhole sensor_msgs/CameraInfo for the simulated camera (square pixels, no distortion),
/// as the sim node publishes it.
pub fn camera_info(stamp_ns: u64, frame_id: &str, camera: &CameraConfig) -> CameraInfo {
    let (width, height) = (f64::from(camera.width), f64::from(camera.height));
    let fx = width / 2.0 / (f64::from(camera.horizontal_fov_deg).to_radians() / 2.0).tan();
    let (cx, cy) = (width / 2.0, height / 2.0);
    CameraInfo {
        header: autodidact_bag::msgs::Header {
            stamp: Time::from_ns(stamp_ns),
            frame_id: frame_id.to_owned(),
        },
        height: camera.height,
        width: camera.width,
        distortion_model: "plumb_bob".into(),
        d: vec![0.0; 5],
        k: [fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0],
        r: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: [fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        ..CameraInfo::default()
    }
}

impl SimRecorder {
    /// Starts a bag in `dir` (which must not exist or be empty) for a camera `camera` whose
    /// images are in frame `camera_frame`.
    pub fn create(dir: &Path, camera: CameraConfig, camera_frame: &str) -> Result<Self, BagError> {
        Ok(Self {
            writer: BagWriter::create(dir)?,
            camera,
            camera_frame: camera_frame.to_owned(),
            ticks: 0,
        })
    }

    /// Writes one tick, every message at the tick's sim time.
    pub fn record(&mut self, tick: &SimTick) -> Result<(), BagError> {
        let stamp_ns = tick.truth.stamp.nanos;
        self.writer.write(
            "/clock",
            types::CLOCK,
            stamp_ns,
            &Clock {
                clock: Time::from_ns(stamp_ns),
            },
        )?;
        for message in &tick.messages {
            let (topic, type_name, bytes) = sensor_out(message, &self.camera_frame);
            if let SensorMsg::Image(_) = message {
                self.writer.write(
                    "/camera/camera_info",
                    types::CAMERA_INFO,
                    stamp_ns,
                    &camera_info(stamp_ns, &self.camera_frame, &self.camera),
                )?;
            }
            self.writer
                .write_cdr(topic, type_name, message.stamp_ns(), &bytes)?;
        }
        let truth = &tick.truth;
        self.writer.write(
            "/ground_truth/odom",
            types::ODOMETRY,
            stamp_ns,
            &odometry(
                stamp_ns,
                "world",
                [truth.robot_pose.x, truth.robot_pose.y, truth.robot_pose.yaw],
                truth.robot_linear_x,
                truth.robot_angular_z,
            ),
        )?;
        self.ticks += 1;
        Ok(())
    }

    /// Ticks written.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Completes the bag (index, metadata.yaml); returns its directory.
    pub fn finish(self) -> Result<PathBuf, BagError> {
        self.writer.finish()
    }
}
