//! What the simulator hands out: observations shaped like ROS 2 messages, actions, ground truth.

use serde::{Deserialize, Serialize};

/// Simulation time, counted in nanoseconds since `reset` (like a ROS `/clock`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct SimTime {
    /// Nanoseconds since the episode started.
    pub nanos: u64,
}

impl SimTime {
    /// Seconds since the episode started.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 * 1e-9
    }

    /// From seconds, rounded to the nearest nanosecond.
    pub fn from_secs_f64(seconds: f64) -> Self {
        Self {
            nanos: (seconds * 1e9).round().max(0.0) as u64,
        }
    }
}

/// A velocity command, as `geometry_msgs/Twist` carries it for a planar base.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Action {
    /// Forward speed, m/s (`twist.linear.x`).
    pub linear_x: f32,
    /// Turn rate, rad/s, counter-clockwise positive (`twist.angular.z`).
    pub angular_z: f32,
}

impl Action {
    /// A command to drive at `linear_x` m/s while turning at `angular_z` rad/s.
    pub fn new(linear_x: f32, angular_z: f32) -> Self {
        Self {
            linear_x,
            angular_z,
        }
    }

    /// Standing still.
    pub const STOP: Self = Self {
        linear_x: 0.0,
        angular_z: 0.0,
    };
}

/// One RGB + depth image from the ego camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraFrame {
    /// When the image was taken.
    pub stamp: SimTime,
    /// Width, pixels.
    pub width: u32,
    /// Height, pixels.
    pub height: u32,
    /// Row-major `rgb8` pixels, `3 * width * height` bytes, no row padding.
    pub rgb: Vec<u8>,
    /// Row-major depth along the optical axis, metres (`32FC1` convention: `+inf` = no return).
    pub depth: Vec<f32>,
}

impl CameraFrame {
    /// An all-black frame of the given size with every depth at `+inf`.
    pub fn blank(width: u32, height: u32) -> Self {
        let pixels = width as usize * height as usize;
        Self {
            stamp: SimTime::default(),
            width,
            height,
            rgb: vec![0; pixels * 3],
            depth: vec![f32::INFINITY; pixels],
        }
    }

    /// The RGB value at pixel column `u`, row `v`.
    pub fn rgb_at(&self, u: u32, v: u32) -> [u8; 3] {
        let i = (v as usize * self.width as usize + u as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The depth at pixel column `u`, row `v`, metres.
    pub fn depth_at(&self, u: u32, v: u32) -> f32 {
        self.depth[v as usize * self.width as usize + u as usize]
    }
}

/// Pinhole intrinsics of the camera (as `sensor_msgs/CameraInfo` K carries them), no distortion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CameraIntrinsics {
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Focal length along u, pixels.
    pub fx: f32,
    /// Focal length along v, pixels.
    pub fy: f32,
    /// Principal point u, pixels.
    pub cx: f32,
    /// Principal point v, pixels.
    pub cy: f32,
}

impl CameraIntrinsics {
    /// The row-major 3×3 camera matrix `K`.
    pub fn k(&self) -> [f64; 9] {
        [
            self.fx as f64,
            0.0,
            self.cx as f64,
            0.0,
            self.fy as f64,
            self.cy as f64,
            0.0,
            0.0,
            1.0,
        ]
    }
}

/// Wheel joint states, as `sensor_msgs/JointState` carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    /// When it was measured.
    pub stamp: SimTime,
    /// Joint names, `["left_wheel_joint", "right_wheel_joint"]`.
    pub name: Vec<String>,
    /// Accumulated wheel angle, rad (positive rolls the robot forward).
    pub position: Vec<f64>,
    /// Wheel angular velocity relative to the chassis, rad/s.
    pub velocity: Vec<f64>,
    /// Motor torque over the last control period, N·m.
    pub effort: Vec<f64>,
}

/// Inertial measurement, as `sensor_msgs/Imu` carries it (body frame: x forward, y left, z up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imu {
    /// When it was measured.
    pub stamp: SimTime,
    /// Orientation quaternion `[x, y, z, w]` in the world frame.
    pub orientation: [f64; 4],
    /// Angular velocity in the body frame, rad/s.
    pub angular_velocity: [f64; 3],
    /// Specific force in the body frame, m/s² (reads +9.81 on z at rest).
    pub linear_acceleration: [f64; 3],
}

/// Wheel odometry, as `nav_msgs/Odometry` carries it: pose in the `odom` frame (the start pose
/// is the origin), twist in the body frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Odometry {
    /// When it was computed.
    pub stamp: SimTime,
    /// Position x in `odom`, metres.
    pub x: f64,
    /// Position y in `odom`, metres.
    pub y: f64,
    /// Heading in `odom`, rad.
    pub yaw: f64,
    /// Forward speed, m/s.
    pub linear_x: f64,
    /// Turn rate, rad/s.
    pub angular_z: f64,
}

/// Everything the robot senses in one control period.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Sim time of this observation.
    pub stamp: SimTime,
    /// Ego camera image.
    pub frame: CameraFrame,
    /// Wheel joint states.
    pub joints: JointState,
    /// Inertial measurement.
    pub imu: Imu,
    /// Wheel odometry.
    pub odom: Odometry,
    /// The command in force during the period that ended here, after clamping and rate limits.
    pub applied_action: Action,
}

/// A planar pose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose2 {
    /// x, metres.
    pub x: f64,
    /// y, metres.
    pub y: f64,
    /// Heading, rad, in `(-pi, pi]`.
    pub yaw: f64,
}

impl Pose2 {
    /// `other` expressed in the frame of `self`.
    pub fn relative(&self, other: &Pose2) -> Pose2 {
        let (s, c) = self.yaw.sin_cos();
        let dx = other.x - self.x;
        let dy = other.y - self.y;
        Pose2 {
            x: c * dx + s * dy,
            y: -s * dx + c * dy,
            yaw: wrap_angle(other.yaw - self.yaw),
        }
    }
}

/// Wraps an angle into `(-pi, pi]`.
pub fn wrap_angle(angle: f64) -> f64 {
    let wrapped = angle.rem_euclid(std::f64::consts::TAU);
    if wrapped > std::f64::consts::PI {
        wrapped - std::f64::consts::TAU
    } else {
        wrapped
    }
}

/// Shape of a pushable object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectShape {
    /// An upright box.
    Box,
    /// An upright cylinder.
    Cylinder,
}

/// Ground truth about one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectTruth {
    /// Index of the object in this episode.
    pub id: u32,
    /// Its shape.
    pub shape: ObjectShape,
    /// Its colour, linear RGB in `[0, 1]`.
    pub colour: [f32; 3],
    /// Position of its centre in the world frame, metres.
    pub position: [f64; 3],
    /// Heading, rad.
    pub yaw: f64,
}

/// The truth about the world, for evaluation only: never feed this to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Sim time.
    pub stamp: SimTime,
    /// Robot base pose in the world frame.
    pub robot_pose: Pose2,
    /// Robot pose at `reset` (the origin of the `odom` frame).
    pub start_pose: Pose2,
    /// Robot forward speed in its own frame, m/s.
    pub robot_linear_x: f64,
    /// Robot turn rate, rad/s.
    pub robot_angular_z: f64,
    /// Whether each wheel `[left, right]` touches the floor.
    pub wheel_contacts: [bool; 2],
    /// The objects.
    pub objects: Vec<ObjectTruth>,
}
