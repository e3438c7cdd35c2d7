//! Conversions between r2r's ROS 2 messages and the components' messages. Incoming messages
//! are only translated here; validation (sizes, encodings, NaN, stamp order) is the collector's,
//! so the in-process graph and the ROS nodes refuse exactly the same inputs.

use std::sync::Arc;

use r2r::builtin_interfaces::msg::Time;
use r2r::geometry_msgs::msg::{
    Point, Pose, PoseWithCovariance, Quaternion, Twist, TwistStamped, Vector3,
};
use r2r::nav_msgs::msg::Odometry;
use r2r::sensor_msgs::msg::{CameraInfo, CompressedImage, Image, Imu, JointState};
use r2r::std_msgs::msg::Header;

use crate::components::collector::CollectorStats;
use crate::components::stats::DropReason;
use crate::msg::{
    CompressedImageMsg, Embedding, HealthMsg, ImageMsg, ImuMsg, JointStateMsg, OdometryMsg,
    SensorMsg, TrainerStatus, TwistMsg,
};

const NS_PER_S: u64 = 1_000_000_000;

/// builtin_interfaces/Time → nanoseconds; negative or denormal stamps are refused.
pub fn stamp_ns(time: &Time) -> Result<u64, DropReason> {
    if time.sec < 0 || u64::from(time.nanosec) >= NS_PER_S {
        return Err(DropReason::BadStamp);
    }
    Ok(time.sec as u64 * NS_PER_S + u64::from(time.nanosec))
}

/// Nanoseconds → builtin_interfaces/Time (saturating at the i32 seconds limit, year 2038).
pub fn time(stamp_ns: u64) -> Time {
    let sec = (stamp_ns / NS_PER_S).min(i32::MAX as u64) as i32;
    Time {
        sec,
        nanosec: (stamp_ns % NS_PER_S) as u32,
    }
}

/// A header with `stamp_ns` and `frame_id`.
pub fn header(stamp_ns: u64, frame_id: &str) -> Header {
    Header {
        stamp: time(stamp_ns),
        frame_id: frame_id.to_owned(),
    }
}

/// A pose in the plane (x, y in metres, heading in radians about z) as geometry_msgs/Pose.
pub fn planar_pose(x: f64, y: f64, yaw: f64) -> Pose {
    let half = yaw / 2.0;
    Pose {
        position: Point { x, y, z: 0.0 },
        orientation: Quaternion {
            x: 0.0,
            y: 0.0,
            z: half.sin(),
            w: half.cos(),
        },
    }
}

/// Planar poses as nav_msgs/Path in `frame_id` (the frame of the odometry they are in): the
/// planner's route through its memory (its places' odometry poses, from the robot's to the
/// goal's) or the path it follows along it.
pub fn path_out(
    route: &[autodidact_learn::OdometryPose],
    stamp_ns: u64,
    frame_id: &str,
) -> r2r::nav_msgs::msg::Path {
    r2r::nav_msgs::msg::Path {
        header: header(stamp_ns, frame_id),
        poses: route
            .iter()
            .map(|p| r2r::geometry_msgs::msg::PoseStamped {
                header: header(stamp_ns, frame_id),
                pose: planar_pose(p.x, p.y, p.yaw),
            })
            .collect(),
    }
}

/// sensor_msgs/Image → component message (the pixels are moved, not copied twice).
pub fn image_in(image: Image) -> Result<SensorMsg, DropReason> {
    image_msg_in(image).map(SensorMsg::Image)
}

/// sensor_msgs/Image → the components' image message.
pub fn image_msg_in(image: Image) -> Result<ImageMsg, DropReason> {
    Ok(ImageMsg {
        stamp_ns: stamp_ns(&image.header.stamp)?,
        width: image.width,
        height: image.height,
        encoding: image.encoding,
        is_bigendian: image.is_bigendian != 0,
        step: image.step,
        data: Arc::from(image.data),
        frame_id: image.header.frame_id,
    })
}

/// sensor_msgs/CompressedImage → component message (decoded by the collector).
pub fn compressed_image_in(image: CompressedImage) -> Result<SensorMsg, DropReason> {
    Ok(SensorMsg::CompressedImage(CompressedImageMsg {
        stamp_ns: stamp_ns(&image.header.stamp)?,
        format: image.format,
        data: Arc::from(image.data),
        frame_id: image.header.frame_id,
    }))
}

/// sensor_msgs/JointState → component message (joints are matched by name later).
pub fn joint_state_in(joints: JointState) -> Result<SensorMsg, DropReason> {
    Ok(SensorMsg::JointState(JointStateMsg {
        stamp_ns: stamp_ns(&joints.header.stamp)?,
        name: joints.name,
        position: joints.position,
        velocity: joints.velocity,
        effort: joints.effort,
    }))
}

/// sensor_msgs/Imu → component message (covariances are not used).
pub fn imu_in(imu: &Imu) -> Result<SensorMsg, DropReason> {
    let q = &imu.orientation;
    let w = &imu.angular_velocity;
    let a = &imu.linear_acceleration;
    Ok(SensorMsg::Imu(ImuMsg {
        stamp_ns: stamp_ns(&imu.header.stamp)?,
        orientation: [q.x, q.y, q.z, q.w],
        angular_velocity: [w.x, w.y, w.z],
        linear_acceleration: [a.x, a.y, a.z],
    }))
}

/// Heading (rotation about z) of a quaternion, rad.
pub fn yaw(q: &Quaternion) -> f64 {
    (2.0 * (q.w * q.z + q.x * q.y)).atan2(1.0 - 2.0 * (q.y * q.y + q.z * q.z))
}

/// nav_msgs/Odometry → planar component message.
pub fn odometry_in(odom: &Odometry) -> Result<SensorMsg, DropReason> {
    let pose = &odom.pose.pose;
    let twist = &odom.twist.twist;
    Ok(SensorMsg::Odometry(OdometryMsg {
        stamp_ns: stamp_ns(&odom.header.stamp)?,
        x: pose.position.x,
        y: pose.position.y,
        yaw: yaw(&pose.orientation),
        linear_x: twist.linear.x,
        angular_z: twist.angular.z,
    }))
}

/// geometry_msgs/Twist (no header) → drive command stamped with its arrival time.
pub fn twist_in(twist: &Twist, arrival_ns: u64) -> SensorMsg {
    SensorMsg::Action(TwistMsg {
        stamp_ns: arrival_ns,
        linear_x: twist.linear.x as f32,
        angular_z: twist.angular.z as f32,
    })
}

/// geometry_msgs/TwistStamped → a command at its own header stamp.
pub fn twist_stamped_in(twist: &TwistStamped) -> Result<SensorMsg, DropReason> {
    Ok(SensorMsg::Action(TwistMsg {
        stamp_ns: stamp_ns(&twist.header.stamp)?,
        linear_x: twist.twist.linear.x as f32,
        angular_z: twist.twist.angular.z as f32,
    }))
}

fn vector3([x, y, z]: [f64; 3]) -> Vector3 {
    Vector3 { x, y, z }
}

/// Component message → ROS message, for the sim node. `frame_id`s follow REP 105.
/// `None` for a message the sim node never publishes (a compressed image).
pub fn sensor_out(message: &SensorMsg, camera_frame: &str) -> Option<SensorOut> {
    Some(match message {
        SensorMsg::Image(image) => SensorOut::Image(Image {
            header: header(image.stamp_ns, camera_frame),
            height: image.height,
            width: image.width,
            encoding: image.encoding.clone(),
            is_bigendian: u8::from(image.is_bigendian),
            step: image.step,
            data: image.data.to_vec(),
        }),
        SensorMsg::CompressedImage(_) => return None,
        SensorMsg::JointState(joints) => SensorOut::JointState(JointState {
            header: header(joints.stamp_ns, ""),
            name: joints.name.clone(),
            position: joints.position.clone(),
            velocity: joints.velocity.clone(),
            effort: joints.effort.clone(),
        }),
        SensorMsg::Imu(imu) => {
            let [x, y, z, w] = imu.orientation;
            SensorOut::Imu(Imu {
                header: header(imu.stamp_ns, "base_link"),
                orientation: Quaternion { x, y, z, w },
                angular_velocity: vector3(imu.angular_velocity),
                linear_acceleration: vector3(imu.linear_acceleration),
                ..Imu::default()
            })
        }
        SensorMsg::Odometry(odom) => SensorOut::Odometry(Odometry {
            header: header(odom.stamp_ns, "odom"),
            child_frame_id: "base_link".to_owned(),
            pose: PoseWithCovariance {
                pose: planar_pose(odom.x, odom.y, odom.yaw),
                ..PoseWithCovariance::default()
            },
            twist: r2r::geometry_msgs::msg::TwistWithCovariance {
                twist: Twist {
                    linear: vector3([odom.linear_x, 0.0, 0.0]),
                    angular: vector3([0.0, 0.0, odom.angular_z]),
                },
                ..Default::default()
            },
        }),
        SensorMsg::Action(action) => SensorOut::Twist(twist(action.linear_x, action.angular_z)),
    })
}

/// A drive command as geometry_msgs/Twist.
pub fn twist(linear_x: f32, angular_z: f32) -> Twist {
    Twist {
        linear: vector3([f64::from(linear_x), 0.0, 0.0]),
        angular: vector3([0.0, 0.0, f64::from(angular_z)]),
    }
}

/// A planner command as geometry_msgs/TwistStamped at `stamp_ns`, in the robot's `base_link`.
pub fn twist_stamped(linear_x: f32, angular_z: f32, stamp_ns: u64) -> TwistStamped {
    TwistStamped {
        header: header(stamp_ns, "base_link"),
        twist: twist(linear_x, angular_z),
    }
}

/// One outgoing sensor message of the sim node.
#[derive(Debug, Clone)]
pub enum SensorOut {
    /// camera/image_raw
    Image(Image),
    /// joint_states
    JointState(JointState),
    /// imu/data
    Imu(Imu),
    /// odom
    Odometry(Odometry),
    /// cmd_vel
    Twist(Twist),
}

/// A pinhole sensor_msgs/CameraInfo for an image of `width × height` with a horizontal field of
/// view of `horizontal_fov_deg` (square pixels, no distortion).
pub fn camera_info(
    stamp_ns: u64,
    frame_id: &str,
    width: u32,
    height: u32,
    horizontal_fov_deg: f64,
) -> CameraInfo {
    let fx = f64::from(width) / 2.0 / (horizontal_fov_deg.to_radians() / 2.0).tan();
    let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    CameraInfo {
        header: header(stamp_ns, frame_id),
        height,
        width,
        distortion_model: "plumb_bob".to_owned(),
        d: vec![0.0; 5],
        k: vec![fx, 0.0, cx, 0.0, fx, cy, 0.0, 0.0, 1.0],
        r: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        p: vec![fx, 0.0, cx, 0.0, 0.0, fx, cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        ..CameraInfo::default()
    }
}

/// Embedding → autodidact_msgs/Embedding.
pub fn embedding_out(embedding: &Embedding) -> r2r::autodidact_msgs::msg::Embedding {
    r2r::autodidact_msgs::msg::Embedding {
        header: header(embedding.source_stamp_ns, &embedding.frame_id),
        model_version: embedding.model_version,
        train_step: embedding.train_step,
        data: embedding.data.clone(),
        latency_s: embedding.latency_s,
    }
}

/// Every drop reason by name with its count in `collected`, zeros included, so a subscriber can
/// index by name.
fn drop_counts(collected: &CollectorStats) -> (Vec<String>, Vec<u64>) {
    DropReason::ALL
        .iter()
        .map(|reason| {
            let name = reason.as_str();
            let count = collected.dropped.get(name).copied().unwrap_or(0);
            (name.to_owned(), count)
        })
        .unzip()
}

/// TrainerStatus + each robot's collector counts (its namespace, its counts; robot `i` is
/// source `i` of the replay buffer) → autodidact_msgs/TrainerStatus, with the totals.
pub fn status_out(
    status: &TrainerStatus,
    robots: &[(String, CollectorStats)],
) -> r2r::autodidact_msgs::msg::TrainerStatus {
    let mut collected = CollectorStats::default();
    for (_, stats) in robots {
        collected.add(stats);
    }
    let robots = robots
        .iter()
        .enumerate()
        .map(|(index, (name, stats))| {
            let (drop_reasons, drop_counts) = drop_counts(stats);
            let replay_len = status
                .replay_by_robot
                .iter()
                .find(|(source, _)| *source as usize == index)
                .map_or(0, |(_, len)| *len as u64);
            r2r::autodidact_msgs::msg::RobotInput {
                name: name.clone(),
                received: stats.received,
                frames: stats.frames,
                transitions: stats.transitions,
                episodes: stats.episodes,
                actions_defaulted: stats.actions_defaulted,
                replay_len,
                drop_reasons,
                drop_counts,
            }
        })
        .collect();
    let (loss_names, loss_values) = status
        .losses
        .named()
        .iter()
        .map(|(name, value)| ((*name).to_owned(), *value))
        .unzip();
    let (drop_reasons, drop_counts) = drop_counts(&collected);
    r2r::autodidact_msgs::msg::TrainerStatus {
        header: header(status.stamp_ns, ""),
        train_step: status.train_step,
        model_version: status.model_version,
        loss_names,
        loss_values,
        grad_norm: status.grad_norm,
        samples_per_second: status.samples_per_second,
        replay_len: status.replay_len as u64,
        non_finite_skips: status.non_finite_skips,
        drop_reasons,
        drop_counts,
        transitions: collected.transitions,
        actions_defaulted: collected.actions_defaulted,
        training_backend: status.placements.training.kind.to_string(),
        training_backend_reason: status.placements.training.reason.clone(),
        inference_backend: status.placements.inference.kind.to_string(),
        inference_backend_reason: status.placements.inference.reason.clone(),
        robots,
    }
}

/// Embedding health → autodidact_msgs/EmbeddingHealth.
pub fn health_out(
    health: &HealthMsg,
    newest_stamp_ns: u64,
) -> r2r::autodidact_msgs::msg::EmbeddingHealth {
    let report = &health.report;
    r2r::autodidact_msgs::msg::EmbeddingHealth {
        header: header(newest_stamp_ns, ""),
        train_step: health.train_step,
        model_version: report.model_version,
        frames: report.frames as u32,
        mean_std: report.collapse.mean_std,
        min_std: report.collapse.min_std,
        effective_rank: report.collapse.effective_rank,
        dimension: report.collapse.dim as u32,
        prediction_vs_copy_last: report.prediction_vs_copy_last.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_a_path_of_planar_poses_in_the_odometry_frame() {
        use autodidact_learn::OdometryPose;
        let route = [
            OdometryPose::new(0.0, 0.0, 0.0),
            OdometryPose::new(1.0, 2.0, std::f64::consts::FRAC_PI_2),
        ];
        let path = path_out(&route, 3_000_000_001, "robot1/odom");
        assert_eq!(path.header.frame_id, "robot1/odom");
        assert_eq!(path.header.stamp, time(3_000_000_001));
        assert_eq!(path.poses.len(), 2);
        let last = &path.poses[1];
        assert_eq!(last.header.frame_id, "robot1/odom");
        assert_eq!((last.pose.position.x, last.pose.position.y), (1.0, 2.0));
        // A quarter turn about z: (0, 0, sin 45°, cos 45°), a unit quaternion.
        let q = &last.pose.orientation;
        let half = std::f64::consts::FRAC_1_SQRT_2;
        assert!((q.z - half).abs() < 1e-12 && (q.w - half).abs() < 1e-12);
        assert_eq!((q.x, q.y), (0.0, 0.0));
    }

    #[test]
    fn a_stamped_command_keeps_its_own_stamp_and_a_bad_one_is_refused() {
        let command = twist_stamped(0.3, -0.5, 7_000_000_123);
        assert_eq!(command.header.frame_id, "base_link");
        assert_eq!(
            twist_stamped_in(&command),
            Ok(SensorMsg::Action(TwistMsg {
                stamp_ns: 7_000_000_123,
                linear_x: 0.3,
                angular_z: -0.5,
            }))
        );
        let mut bad = command;
        bad.header.stamp.sec = -3;
        assert_eq!(twist_stamped_in(&bad), Err(DropReason::BadStamp));
    }

    #[test]
    fn stamps_round_trip_and_bad_ones_are_refused() {
        let ns = 1_700_000_123_456_789u64;
        assert_eq!(stamp_ns(&time(ns)), Ok(ns));
        let negative = Time {
            sec: -1,
            nanosec: 0,
        };
        assert_eq!(stamp_ns(&negative), Err(DropReason::BadStamp));
        let denormal = Time {
            sec: 1,
            nanosec: 1_000_000_000,
        };
        assert_eq!(stamp_ns(&denormal), Err(DropReason::BadStamp));
    }

    #[test]
    fn sim_messages_survive_the_trip_through_ros_types() {
        let image = SensorMsg::Image(ImageMsg::rgb8(5, 2, 1, Arc::from(vec![1u8, 2, 3, 4, 5, 6])));
        let Some(SensorOut::Image(ros_image)) = sensor_out(&image, "camera") else {
            panic!("not an image")
        };
        assert_eq!(image_in(ros_image), Ok(image));
        let odom = SensorMsg::Odometry(OdometryMsg {
            stamp_ns: 9,
            x: 1.0,
            y: -2.0,
            yaw: 2.5,
            linear_x: 0.3,
            angular_z: -0.7,
        });
        let Some(SensorOut::Odometry(ros_odom)) = sensor_out(&odom, "camera") else {
            panic!("not odometry")
        };
        let SensorMsg::Odometry(back) = odometry_in(&ros_odom).expect("valid") else {
            panic!("not odometry")
        };
        assert!((back.yaw - 2.5).abs() < 1e-12 && back.x == 1.0 && back.angular_z == -0.7);
    }

    #[test]
    fn status_lists_every_drop_reason_by_name() {
        let status = TrainerStatus {
            stamp_ns: 1,
            train_step: 2,
            model_version: 3,
            losses: autodidact_learn::Losses::default(),
            grad_norm: 0.5,
            samples_per_second: 10.0,
            replay_len: 4,
            replay_by_robot: vec![(0, 1), (1, 3)],
            non_finite_skips: 0,
            placements: autodidact_learn::Placements {
                training: autodidact_learn::Placement {
                    kind: autodidact_learn::BackendKind::Wgpu,
                    reason: "auto: GPU".into(),
                },
                inference: autodidact_learn::Placement {
                    kind: autodidact_learn::BackendKind::Flex,
                    reason: "auto: faster".into(),
                },
            },
        };
        let collected = CollectorStats {
            transitions: 11,
            actions_defaulted: 2,
            dropped: [("bad_image_step".to_owned(), 7u64)].into_iter().collect(),
            ..Default::default()
        };
        let other = CollectorStats {
            transitions: 5,
            dropped: [("bad_image_step".to_owned(), 1u64)].into_iter().collect(),
            ..Default::default()
        };
        let out = status_out(
            &status,
            &[
                ("robot1".to_owned(), collected),
                ("robot2".to_owned(), other),
            ],
        );
        // Each robot's own counts, and the totals over them.
        assert_eq!((out.transitions, out.actions_defaulted), (16, 2));
        let names: Vec<&str> = out.robots.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["robot1", "robot2"]);
        assert_eq!(
            (out.robots[0].transitions, out.robots[1].transitions),
            (11, 5)
        );
        assert_eq!((out.robots[0].replay_len, out.robots[1].replay_len), (1, 3));
        for robot in &out.robots {
            assert_eq!(robot.drop_reasons.len(), DropReason::ALL.len());
        }
        assert_eq!(out.robots[1].drop_counts.iter().sum::<u64>(), 1);
        assert_eq!(
            (
                out.training_backend.as_str(),
                out.inference_backend.as_str()
            ),
            ("wgpu", "flex")
        );
        assert_eq!(out.training_backend_reason, "auto: GPU");
        assert_eq!(out.drop_reasons.len(), DropReason::ALL.len());
        let at = out
            .drop_reasons
            .iter()
            .position(|r| r == "bad_image_step")
            .expect("listed");
        assert_eq!(out.drop_counts[at], 8);
        assert_eq!(out.drop_counts.iter().sum::<u64>(), 8);
        assert_eq!(out.loss_names.len(), out.loss_values.len());
    }
}
