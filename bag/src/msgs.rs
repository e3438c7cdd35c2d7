//! The standard ROS 2 message types a robot's bag holds, field for field as their `.msg`
//! definitions (common_interfaces), so that [`crate::cdr`] reads and writes them exactly as rcl
//! does; and those definitions as text, for the `ros2msg` schemas of an MCAP bag.

use serde::{Deserialize, Serialize};

/// `builtin_interfaces/msg/Time`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    /// Seconds (may be negative on the wire; a stamp before 1970 is refused by the readers).
    pub sec: i32,
    /// Nanoseconds, `0..1e9`.
    pub nanosec: u32,
}

impl Time {
    /// The stamp in nanoseconds, or `None` when it is negative or its nanoseconds are out of
    /// range.
    pub fn to_ns(self) -> Option<u64> {
        let sec = u64::try_from(self.sec).ok()?;
        (self.nanosec < 1_000_000_000).then(|| sec * 1_000_000_000 + u64::from(self.nanosec))
    }

    /// `ns` as a Time (seconds saturate at `i32::MAX`, as in the year 2038).
    pub fn from_ns(ns: u64) -> Self {
        Self {
            sec: i32::try_from(ns / 1_000_000_000).unwrap_or(i32::MAX),
            nanosec: (ns % 1_000_000_000) as u32,
        }
    }
}

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Capture time.
    pub stamp: Time,
    /// Coordinate frame.
    pub frame_id: String,
}

/// `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Stamp and camera frame.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding (`rgb8`, `bgr8`, `mono16`, `yuv422`, `bayer_rggb8`, …).
    pub encoding: String,
    /// 1 when multi-byte channels are big-endian.
    pub is_bigendian: u8,
    /// Bytes per row.
    pub step: u32,
    /// `step × height` bytes.
    pub data: Vec<u8>,
}

/// `sensor_msgs/msg/CompressedImage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedImage {
    /// Stamp and camera frame.
    pub header: Header,
    /// `jpeg`, `png`, or image_transport's `rgb8; jpeg compressed bgr8`.
    pub format: String,
    /// The compressed file's bytes.
    pub data: Vec<u8>,
}

/// `sensor_msgs/msg/RegionOfInterest`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionOfInterest {
    /// Leftmost pixel.
    pub x_offset: u32,
    /// Topmost pixel.
    pub y_offset: u32,
    /// Rows (0: the full image).
    pub height: u32,
    /// Columns (0: the full image).
    pub width: u32,
    /// Whether the region is of the rectified image.
    pub do_rectify: bool,
}

/// `sensor_msgs/msg/CameraInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraInfo {
    /// Stamp and camera frame.
    pub header: Header,
    /// Rows of the calibrated image.
    pub height: u32,
    /// Columns of the calibrated image.
    pub width: u32,
    /// `plumb_bob`, `rational_polynomial`, …
    pub distortion_model: String,
    /// Distortion parameters.
    pub d: Vec<f64>,
    /// Intrinsics, row-major 3×3.
    pub k: [f64; 9],
    /// Rectification, row-major 3×3.
    pub r: [f64; 9],
    /// Projection, row-major 3×4.
    pub p: [f64; 12],
    /// Horizontal binning.
    pub binning_x: u32,
    /// Vertical binning.
    pub binning_y: u32,
    /// Region of interest.
    pub roi: RegionOfInterest,
}

/// `sensor_msgs/msg/JointState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JointState {
    /// Stamp.
    pub header: Header,
    /// Joint names.
    pub name: Vec<String>,
    /// Positions (rad or m); may be empty.
    pub position: Vec<f64>,
    /// Velocities (rad/s or m/s); may be empty.
    pub velocity: Vec<f64>,
    /// Efforts (N·m or N); may be empty.
    pub effort: Vec<f64>,
}

/// `geometry_msgs/msg/Vector3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Vector3 {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
}

/// `geometry_msgs/msg/Point`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// x, m.
    pub x: f64,
    /// y, m.
    pub y: f64,
    /// z, m.
    pub z: f64,
}

/// `geometry_msgs/msg/Quaternion` (the default is the identity, as in the `.msg`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    /// x.
    pub x: f64,
    /// y.
    pub y: f64,
    /// z.
    pub z: f64,
    /// w.
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Self {
            x: 0.0,
            y: 0.0,
            z: 0.0,
            w: 1.0,
        }
    }
}

impl Quaternion {
    /// Rotation about z (yaw), rad.
    pub fn yaw(&self) -> f64 {
        (2.0 * (self.w * self.z + self.x * self.y))
            .atan2(1.0 - 2.0 * (self.y * self.y + self.z * self.z))
    }

    /// A rotation of `yaw` rad about z.
    pub fn from_yaw(yaw: f64) -> Self {
        let half = yaw / 2.0;
        Self {
            x: 0.0,
            y: 0.0,
            z: half.sin(),
            w: half.cos(),
        }
    }
}

/// `sensor_msgs/msg/Imu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Imu {
    /// Stamp and IMU frame.
    pub header: Header,
    /// Orientation.
    pub orientation: Quaternion,
    /// Row-major 3×3.
    pub orientation_covariance: [f64; 9],
    /// rad/s.
    pub angular_velocity: Vector3,
    /// Row-major 3×3.
    pub angular_velocity_covariance: [f64; 9],
    /// m/s².
    pub linear_acceleration: Vector3,
    /// Row-major 3×3.
    pub linear_acceleration_covariance: [f64; 9],
}

/// `geometry_msgs/msg/Pose`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Position.
    pub position: Point,
    /// Orientation.
    pub orientation: Quaternion,
}

/// `geometry_msgs/msg/PoseWithCovariance`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    /// Pose.
    pub pose: Pose,
    /// Row-major 6×6.
    #[serde(with = "array36")]
    pub covariance: [f64; 36],
}

/// `geometry_msgs/msg/Twist`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Twist {
    /// m/s.
    pub linear: Vector3,
    /// rad/s.
    pub angular: Vector3,
}

/// `geometry_msgs/msg/TwistStamped`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwistStamped {
    /// Stamp and frame of the command.
    pub header: Header,
    /// The command.
    pub twist: Twist,
}

/// `geometry_msgs/msg/TwistWithCovariance`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TwistWithCovariance {
    /// Twist.
    pub twist: Twist,
    /// Row-major 6×6.
    #[serde(with = "array36")]
    pub covariance: [f64; 36],
}

impl Default for PoseWithCovariance {
    fn default() -> Self {
        Self {
            pose: Pose::default(),
            covariance: [0.0; 36],
        }
    }
}

impl Default for TwistWithCovariance {
    fn default() -> Self {
        Self {
            twist: Twist::default(),
            covariance: [0.0; 36],
        }
    }
}

/// `nav_msgs/msg/Odometry`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Odometry {
    /// Stamp and the pose's frame (`odom`).
    pub header: Header,
    /// The twist's frame (`base_link`).
    pub child_frame_id: String,
    /// Pose in `header.frame_id`.
    pub pose: PoseWithCovariance,
    /// Twist in `child_frame_id`.
    pub twist: TwistWithCovariance,
}

/// `rosgraph_msgs/msg/Clock`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Simulated time.
    pub clock: Time,
}

/// serde derives arrays up to 32 elements; covariances have 36. CDR writes a fixed array as
/// its elements with no count, which is what a tuple is.
mod array36 {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64; 36], serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(36)?;
        for value in values {
            tuple.serialize_element(value)?;
        }
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[f64; 36], D::Error> {
        struct Array;
        impl<'de> Visitor<'de> for Array {
            type Value = [f64; 36];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("36 float64")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = [0.0; 36];
                for (i, value) in values.iter_mut().enumerate() {
                    *value = seq
                        .next_element()?
                        .ok_or_else(|| Error::invalid_length(i, &self))?;
                }
                Ok(values)
            }
        }
        deserializer.deserialize_tuple(36, Array)
    }
}

/// The ROS 2 type names this crate reads and writes.
pub mod types {
    /// `sensor_msgs/msg/Image`.
    pub const IMAGE: &str = "sensor_msgs/msg/Image";
    /// `sensor_msgs/msg/CompressedImage`.
    pub const COMPRESSED_IMAGE: &str = "sensor_msgs/msg/CompressedImage";
    /// `sensor_msgs/msg/CameraInfo`.
    pub const CAMERA_INFO: &str = "sensor_msgs/msg/CameraInfo";
    /// `sensor_msgs/msg/JointState`.
    pub const JOINT_STATE: &str = "sensor_msgs/msg/JointState";
    /// `sensor_msgs/msg/Imu`.
    pub const IMU: &str = "sensor_msgs/msg/Imu";
    /// `nav_msgs/msg/Odometry`.
    pub const ODOMETRY: &str = "nav_msgs/msg/Odometry";
    /// `geometry_msgs/msg/Twist`.
    pub const TWIST: &str = "geometry_msgs/msg/Twist";
    /// `geometry_msgs/msg/TwistStamped`.
    pub const TWIST_STAMPED: &str = "geometry_msgs/msg/TwistStamped";
    /// `rosgraph_msgs/msg/Clock`.
    pub const CLOCK: &str = "rosgraph_msgs/msg/Clock";
}

const TIME: &str = "int32 sec\nuint32 nanosec\n";
const HEADER: &str = "builtin_interfaces/Time stamp\nstring frame_id\n";
const VECTOR3: &str = "float64 x\nfloat64 y\nfloat64 z\n";
const POINT: &str = "float64 x\nfloat64 y\nfloat64 z\n";
const QUATERNION: &str = "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n";
const TWIST: &str = "Vector3 linear\nVector3 angular\n";
const POSE: &str = "Point position\nQuaternion orientation\n";
const ROI: &str =
    "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify\n";

/// The `.msg` text of `type_name` with the definitions it depends on appended, each after a
/// line of 80 `=` and `MSG: pkg/Type` — the `ros2msg` schema encoding rosbag2 writes into MCAP.
/// `None` for a type this crate does not know.
pub fn definition(type_name: &str) -> Option<String> {
    let (main, deps): (&str, &[(&str, &str)]) = match type_name {
        types::IMAGE => (
            "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
            ],
        ),
        types::COMPRESSED_IMAGE => (
            "std_msgs/Header header\nstring format\nuint8[] data\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
            ],
        ),
        types::CAMERA_INFO => (
            "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\nRegionOfInterest roi\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
                ("sensor_msgs/RegionOfInterest", ROI),
            ],
        ),
        types::JOINT_STATE => (
            "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
            ],
        ),
        types::IMU => (
            "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\nfloat64[9] orientation_covariance\ngeometry_msgs/Vector3 angular_velocity\nfloat64[9] angular_velocity_covariance\ngeometry_msgs/Vector3 linear_acceleration\nfloat64[9] linear_acceleration_covariance\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
                ("geometry_msgs/Quaternion", QUATERNION),
                ("geometry_msgs/Vector3", VECTOR3),
            ],
        ),
        types::ODOMETRY => (
            "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/PoseWithCovariance pose\ngeometry_msgs/TwistWithCovariance twist\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
                (
                    "geometry_msgs/PoseWithCovariance",
                    "Pose pose\nfloat64[36] covariance\n",
                ),
                ("geometry_msgs/Pose", POSE),
                ("geometry_msgs/Point", POINT),
                ("geometry_msgs/Quaternion", QUATERNION),
                (
                    "geometry_msgs/TwistWithCovariance",
                    "Twist twist\nfloat64[36] covariance\n",
                ),
                ("geometry_msgs/Twist", TWIST),
                ("geometry_msgs/Vector3", VECTOR3),
            ],
        ),
        types::TWIST => (TWIST, &[("geometry_msgs/Vector3", VECTOR3)]),
        types::TWIST_STAMPED => (
            "std_msgs/Header header\nTwist twist\n",
            &[
                ("std_msgs/Header", HEADER),
                ("builtin_interfaces/Time", TIME),
                ("geometry_msgs/Twist", TWIST),
                ("geometry_msgs/Vector3", VECTOR3),
            ],
        ),
        types::CLOCK => (
            "builtin_interfaces/Time clock\n",
            &[("builtin_interfaces/Time", TIME)],
        ),
        _ => return None,
    };
    let mut text = main.to_owned();
    for (name, body) in deps {
        text.push_str(&"=".repeat(80));
        text.push_str("\nMSG: ");
        text.push_str(name);
        text.push('\n');
        text.push_str(body);
    }
    Some(text)
}
