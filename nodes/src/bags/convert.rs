//! Bag messages (CDR of the standard ROS 2 types) ⇄ the components' messages: the same
//! translation the ROS nodes make from r2r's types (`ros/convert.rs`), so a bag and a live
//! robot are taken alike. Validation stays the collector's.

use std::sync::Arc;

use autodidact_bag::cdr::{self, CdrError};
use autodidact_bag::msgs::{
    self, CompressedImage, Header, Image, Imu, JointState, Odometry, Time, Twist, TwistStamped,
    types,
};

use crate::components::stats::DropReason;
use crate::msg::{
    CompressedImageMsg, ImageMsg, ImuMsg, JointStateMsg, OdometryMsg, SensorMsg, TwistMsg,
};

/// Why a bag message is not an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BagInputError {
    /// The bytes are not the type the topic declares.
    #[error(transparent)]
    Cdr(#[from] CdrError),
    /// The message is its type but unusable (a bad stamp).
    #[error("{0}")]
    Dropped(DropReason),
    /// A type that is no input of the learner.
    #[error("{0} is not an input of the learner")]
    NotAnInput(String),
}

fn stamp(time: Time) -> Result<u64, BagInputError> {
    time.to_ns()
        .ok_or(BagInputError::Dropped(DropReason::BadStamp))
}

/// The component message of a bag message of type `type_name` received at `log_time_ns` (the
/// stamp of a plain Twist, which has no header, as a live node stamps it on arrival).
pub fn sensor_in(
    type_name: &str,
    data: &[u8],
    log_time_ns: u64,
) -> Result<SensorMsg, BagInputError> {
    Ok(match type_name {
        types::IMAGE => {
            let image: Image = cdr::decode(data)?;
            SensorMsg::Image(ImageMsg {
                stamp_ns: stamp(image.header.stamp)?,
                width: image.width,
                height: image.height,
                encoding: image.encoding,
                is_bigendian: image.is_bigendian != 0,
                step: image.step,
                data: Arc::from(image.data),
                frame_id: image.header.frame_id,
            })
        }
        types::COMPRESSED_IMAGE => {
            let image: CompressedImage = cdr::decode(data)?;
            SensorMsg::CompressedImage(CompressedImageMsg {
                stamp_ns: stamp(image.header.stamp)?,
                format: image.format,
                data: Arc::from(image.data),
                frame_id: image.header.frame_id,
            })
        }
        types::JOINT_STATE => {
            let joints: JointState = cdr::decode(data)?;
            SensorMsg::JointState(JointStateMsg {
                stamp_ns: stamp(joints.header.stamp)?,
                name: joints.name,
                position: joints.position,
                velocity: joints.velocity,
                effort: joints.effort,
            })
        }
        types::IMU => {
            let imu: Imu = cdr::decode(data)?;
            let q = imu.orientation;
            let (w, a) = (imu.angular_velocity, imu.linear_acceleration);
            SensorMsg::Imu(ImuMsg {
                stamp_ns: stamp(imu.header.stamp)?,
                orientation: [q.x, q.y, q.z, q.w],
                angular_velocity: [w.x, w.y, w.z],
                linear_acceleration: [a.x, a.y, a.z],
            })
        }
        types::ODOMETRY => {
            let odom: Odometry = cdr::decode(data)?;
            SensorMsg::Odometry(OdometryMsg {
                stamp_ns: stamp(odom.header.stamp)?,
                x: odom.pose.pose.position.x,
                y: odom.pose.pose.position.y,
                yaw: odom.pose.pose.orientation.yaw(),
                linear_x: odom.twist.twist.linear.x,
                angular_z: odom.twist.twist.angular.z,
            })
        }
        types::TWIST => {
            let twist: Twist = cdr::decode(data)?;
            SensorMsg::Action(TwistMsg {
                stamp_ns: log_time_ns,
                linear_x: twist.linear.x as f32,
                angular_z: twist.angular.z as f32,
            })
        }
        types::TWIST_STAMPED => {
            let command: TwistStamped = cdr::decode(data)?;
            SensorMsg::Action(TwistMsg {
                stamp_ns: stamp(command.header.stamp)?,
                linear_x: command.twist.linear.x as f32,
                angular_z: command.twist.angular.z as f32,
            })
        }
        other => return Err(BagInputError::NotAnInput(other.to_owned())),
    })
}

fn header(stamp_ns: u64, frame_id: &str) -> Header {
    Header {
        stamp: Time::from_ns(stamp_ns),
        frame_id: frame_id.to_owned(),
    }
}

fn vector3([x, y, z]: [f64; 3]) -> msgs::Vector3 {
    msgs::Vector3 { x, y, z }
}

/// A planar pose and twist as nav_msgs/Odometry in `frame_id` (REP 105: `odom`, or `world`
/// for ground truth), of `base_link`.
pub fn odometry(
    stamp_ns: u64,
    frame_id: &str,
    [x, y, yaw]: [f64; 3],
    linear_x: f64,
    angular_z: f64,
) -> Odometry {
    Odometry {
        header: header(stamp_ns, frame_id),
        child_frame_id: "base_link".into(),
        pose: msgs::PoseWithCovariance {
            pose: msgs::Pose {
                position: msgs::Point { x, y, z: 0.0 },
                orientation: msgs::Quaternion::from_yaw(yaw),
            },
            covariance: [0.0; 36],
        },
        twist: msgs::TwistWithCovariance {
            twist: Twist {
                linear: vector3([linear_x, 0.0, 0.0]),
                angular: vector3([0.0, 0.0, angular_z]),
            },
            covariance: [0.0; 36],
        },
    }
}

/// A component message as the topic, type and CDR bytes the sim node would publish it as
/// (`frame_id`s as the sim node sets them: REP 105).
pub fn sensor_out(
    message: &SensorMsg,
    camera_frame: &str,
) -> (&'static str, &'static str, Vec<u8>) {
    match message {
        SensorMsg::Image(image) => (
            "/camera/image_raw",
            types::IMAGE,
            cdr::encode(&Image {
                header: header(image.stamp_ns, camera_frame),
                height: image.height,
                width: image.width,
                encoding: image.encoding.clone(),
                is_bigendian: u8::from(image.is_bigendian),
                step: image.step,
                data: image.data.to_vec(),
            }),
        ),
        SensorMsg::CompressedImage(image) => (
            "/camera/image_raw/compressed",
            types::COMPRESSED_IMAGE,
            cdr::encode(&CompressedImage {
                header: header(image.stamp_ns, camera_frame),
                format: image.format.clone(),
                data: image.data.to_vec(),
            }),
        ),
        SensorMsg::JointState(joints) => (
            "/joint_states",
            types::JOINT_STATE,
            cdr::encode(&JointState {
                header: header(joints.stamp_ns, ""),
                name: joints.name.clone(),
                position: joints.position.clone(),
                velocity: joints.velocity.clone(),
                effort: joints.effort.clone(),
            }),
        ),
        SensorMsg::Imu(imu) => {
            let [x, y, z, w] = imu.orientation;
            (
                "/imu/data",
                types::IMU,
                cdr::encode(&Imu {
                    header: header(imu.stamp_ns, "base_link"),
                    orientation: msgs::Quaternion { x, y, z, w },
                    angular_velocity: vector3(imu.angular_velocity),
                    linear_acceleration: vector3(imu.linear_acceleration),
                    ..Imu::default()
                }),
            )
        }
        SensorMsg::Odometry(odom) => (
            "/odom",
            types::ODOMETRY,
            cdr::encode(&odometry(
                odom.stamp_ns,
                "odom",
                [odom.x, odom.y, odom.yaw],
                odom.linear_x,
                odom.angular_z,
            )),
        ),
        SensorMsg::Action(action) => (
            "/cmd_vel",
            types::TWIST,
            cdr::encode(&Twist {
                linear: vector3([f64::from(action.linear_x), 0.0, 0.0]),
                angular: vector3([0.0, 0.0, f64::from(action.angular_z)]),
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_messages_survive_the_trip_through_a_bag() {
        let messages = [
            SensorMsg::Image(ImageMsg::rgb8(5, 2, 1, Arc::from(vec![1u8, 2, 3, 4, 5, 6]))),
            SensorMsg::JointState(JointStateMsg {
                stamp_ns: 7,
                name: vec!["left".into(), "right".into()],
                position: vec![0.5, 1.5],
                velocity: vec![-1.0, 2.0],
                effort: Vec::new(),
            }),
            SensorMsg::Imu(ImuMsg {
                stamp_ns: 8,
                orientation: [0.0, 0.0, 0.0, 1.0],
                angular_velocity: [0.0, 0.0, 0.25],
                linear_acceleration: [1.0, -2.0, 9.81],
            }),
            SensorMsg::Odometry(OdometryMsg {
                stamp_ns: 9,
                x: 1.0,
                y: -2.0,
                yaw: 0.75,
                linear_x: 0.3,
                angular_z: -0.2,
            }),
            SensorMsg::Action(TwistMsg {
                stamp_ns: 10,
                linear_x: 0.25,
                angular_z: -0.5,
            }),
        ];
        for message in messages {
            let (_, type_name, bytes) = sensor_out(&message, "camera");
            let back = sensor_in(type_name, &bytes, 10).expect("decodes");
            match (&message, &back) {
                (SensorMsg::Odometry(a), SensorMsg::Odometry(b)) => {
                    assert!((a.yaw - b.yaw).abs() < 1e-12);
                    assert_eq!((a.x, a.y, a.linear_x), (b.x, b.y, b.linear_x));
                }
                (SensorMsg::Image(a), SensorMsg::Image(b)) => {
                    assert_eq!(
                        (a.width, &a.data, a.stamp_ns),
                        (b.width, &b.data, b.stamp_ns)
                    );
                }
                _ => assert_eq!(message, back),
            }
        }
    }

    #[test]
    fn a_stamped_command_keeps_its_own_stamp_and_a_plain_one_takes_the_receive_time() {
        let stamped = cdr::encode(&TwistStamped {
            header: header(1_500_000_000, "base_link"),
            twist: Twist::default(),
        });
        assert_eq!(
            sensor_in(types::TWIST_STAMPED, &stamped, 9).map(|m| m.stamp_ns()),
            Ok(1_500_000_000)
        );
        let plain = cdr::encode(&Twist::default());
        assert_eq!(
            sensor_in(types::TWIST, &plain, 9).map(|m| m.stamp_ns()),
            Ok(9)
        );
        let mut bad = TwistStamped::default();
        bad.header.stamp = Time {
            sec: -1,
            nanosec: 0,
        };
        assert_eq!(
            sensor_in(types::TWIST_STAMPED, &cdr::encode(&bad), 9),
            Err(BagInputError::Dropped(DropReason::BadStamp))
        );
    }
}
