//! The collector pairs, validates and counts: bad input is dropped with its reason and the
//! stream goes on.

use std::sync::Arc;

use autodidact_nodes::collector::{Collector, CollectorConfig};
use autodidact_nodes::msg::{ImageMsg, ImuMsg, JointStateMsg, OdometryMsg, SensorMsg, TwistMsg};
use autodidact_nodes::{DropReason, ManualClock};

const MS: u64 = 1_000_000;

fn config() -> CollectorConfig {
    CollectorConfig {
        width: 4,
        height: 2,
        ..CollectorConfig::default()
    }
}

fn collector() -> Collector {
    Collector::new(config(), Arc::new(ManualClock::new()))
}

fn image(stamp_ns: u64, value: u8) -> SensorMsg {
    SensorMsg::Image(ImageMsg::rgb8(stamp_ns, 4, 2, vec![value; 24].into()))
}

fn joints(stamp_ns: u64, left: f64) -> SensorMsg {
    SensorMsg::JointState(JointStateMsg {
        stamp_ns,
        name: vec!["left_wheel_joint".into(), "right_wheel_joint".into()],
        position: vec![0.0, 0.0],
        velocity: vec![left, 2.0],
        effort: vec![],
    })
}

fn imu(stamp_ns: u64) -> SensorMsg {
    SensorMsg::Imu(ImuMsg {
        stamp_ns,
        orientation: [0.0, 0.0, 0.0, 1.0],
        angular_velocity: [0.0, 0.0, 1.0],
        linear_acceleration: [0.5, 0.0, 9.8],
    })
}

fn odom(stamp_ns: u64) -> SensorMsg {
    SensorMsg::Odometry(OdometryMsg {
        stamp_ns,
        x: 0.0,
        y: 0.0,
        yaw: 0.0,
        linear_x: 0.25,
        angular_z: 0.5,
    })
}

fn command(stamp_ns: u64, linear_x: f32) -> SensorMsg {
    SensorMsg::Action(TwistMsg {
        stamp_ns,
        linear_x,
        angular_z: 0.1,
    })
}

/// Proprio at `stamp`, then the image.
fn feed_frame(c: &mut Collector, stamp: u64, value: u8) -> autodidact_nodes::collector::Collected {
    for msg in [joints(stamp, 1.0), imu(stamp), odom(stamp)] {
        c.on_message(&msg);
    }
    c.on_message(&image(stamp, value))
}

#[test]
fn frames_pair_with_proprio_and_transitions_with_the_command_until_the_next_frame() {
    let mut c = collector();
    let first = feed_frame(&mut c, 50 * MS, 10);
    let frame = first.frame.expect("a frame at once, for the encoder");
    assert_eq!(frame.stamp_ns, 50 * MS);
    assert_eq!(frame.image.len(), 24);
    // left 1.0 / 10, right 2.0 / 10, gyro 1/2, accel 0.5/5, 0, odom 0.25/0.5, 0.5/2
    assert_eq!(frame.proprio, vec![0.1, 0.2, 0.5, 0.1, 0.0, 0.5, 0.25]);
    assert!(first.transition.is_none(), "the action is not known yet");

    c.on_message(&command(50 * MS, 0.3));
    let second = feed_frame(&mut c, 100 * MS, 20);
    let transition = second.transition.expect("completed by the next frame");
    assert_eq!(transition.frame_stamp_ns, 50 * MS);
    assert_eq!(transition.action, [0.3, 0.1]);
    assert_eq!(&transition.image[..], &[10u8; 24][..]);
    let last = c.flush().expect("the pending frame at the end");
    assert_eq!(last.frame_stamp_ns, 100 * MS);
    assert_eq!(c.stats().transitions, 2);
}

#[test]
fn bad_input_is_counted_by_reason_and_the_stream_goes_on() {
    let mut c = collector();
    assert!(feed_frame(&mut c, 50 * MS, 1).frame.is_some());

    // Larger than any camera: a header claiming 1e10 pixels over a few bytes.
    let big = SensorMsg::Image(ImageMsg::rgb8(
        60 * MS,
        100_000,
        100_000,
        vec![0; 192].into(),
    ));
    assert!(c.on_message(&big).frame.is_none());
    // Unknown encoding (32-bit float depth).
    let mut depth = ImageMsg::rgb8(61 * MS, 4, 2, vec![0; 32].into());
    depth.encoding = "32FC1".into();
    depth.step = 16;
    assert!(c.on_message(&SensorMsg::Image(depth)).frame.is_none());
    // Row step shorter than a row.
    let mut short = ImageMsg::rgb8(62 * MS, 4, 2, vec![0; 24].into());
    short.step = 5;
    assert!(c.on_message(&SensorMsg::Image(short)).frame.is_none());
    // Empty image.
    let empty = SensorMsg::Image(ImageMsg::rgb8(63 * MS, 4, 2, Vec::new().into()));
    assert!(c.on_message(&empty).frame.is_none());
    // NaN joint velocity.
    c.on_message(&joints(70 * MS, f64::NAN));
    // A joint state without the configured joints.
    c.on_message(&SensorMsg::JointState(JointStateMsg {
        stamp_ns: 71 * MS,
        name: vec!["arm".into()],
        position: vec![],
        velocity: vec![1.0],
        effort: vec![],
    }));
    // NaN command.
    c.on_message(&command(72 * MS, f32::NAN));
    // A stamp going back (image and IMU).
    assert!(c.on_message(&image(40 * MS, 3)).frame.is_none());
    c.on_message(&imu(10 * MS));
    // An image with no proprio near its stamp.
    assert!(c.on_message(&image(900 * MS, 3)).frame.is_none());

    let expected = [
        (DropReason::WrongImageSize, 1),
        (DropReason::UnknownEncoding, 1),
        (DropReason::BadImageStep, 1),
        (DropReason::EmptyImage, 1),
        (DropReason::NonFinite, 2),
        (DropReason::MissingJoint, 1),
        (DropReason::StampNotIncreasing, 2),
        (DropReason::ProprioStale, 1),
    ];
    for (reason, count) in expected {
        assert_eq!(c.dropped(reason), count, "{reason}");
    }
    let stats = c.stats();
    assert_eq!(stats.dropped.values().sum::<u64>(), 10);

    // The collector still works.
    let next = feed_frame(&mut c, 1000 * MS, 7);
    assert!(
        next.frame.is_some(),
        "good input after bad input is accepted"
    );
    assert!(next.transition.is_some());
}

#[test]
fn a_gap_starts_a_new_episode_and_a_stale_command_counts_as_stopped() {
    let mut c = collector();
    c.on_message(&command(0, 0.4));
    feed_frame(&mut c, 50 * MS, 1);
    let gap = feed_frame(&mut c, 5000 * MS, 2);
    let transition = gap.transition.expect("completed");
    assert_eq!(transition.episode, 0);
    assert_eq!(
        transition.action,
        [0.0, 0.0],
        "a command 5 s old has timed out"
    );
    assert_eq!(c.stats().actions_defaulted, 1);
    assert_eq!(
        gap.frame.expect("frame").episode,
        1,
        "new episode after the gap"
    );
}

#[test]
fn images_in_every_encoding_give_the_same_frame() {
    let rgb: Vec<u8> = (0..24).collect();
    let mut frames = Vec::new();
    for (index, encoding) in ["rgb8", "bgr8", "rgba8", "bgra8"].iter().enumerate() {
        let channels = if encoding.len() == 5 { 4 } else { 3 };
        let mut data = Vec::new();
        for pixel in rgb.chunks(3) {
            let mut p = pixel.to_vec();
            if encoding.starts_with("bgr") {
                p.reverse();
            }
            if channels == 4 {
                p.push(255);
            }
            data.extend(p);
        }
        let mut c = collector();
        let stamp = (index as u64 + 1) * 50 * MS;
        for msg in [joints(stamp, 1.0), imu(stamp), odom(stamp)] {
            c.on_message(&msg);
        }
        let msg = ImageMsg {
            stamp_ns: stamp,
            width: 4,
            height: 2,
            encoding: (*encoding).into(),
            is_bigendian: false,
            step: 4 * channels,
            data: data.into(),
            frame_id: "camera".into(),
        };
        let frame = c.on_message(&SensorMsg::Image(msg)).frame.expect(encoding);
        frames.push(frame.image.to_vec());
    }
    assert!(frames.iter().all(|f| *f == rgb), "{frames:?}");
}

const S: u64 = 1_000_000_000;

#[test]
fn a_stamp_far_in_the_future_is_refused_and_the_stream_goes_on() {
    let clock = Arc::new(ManualClock::new());
    let mut c = Collector::new(config(), clock.clone());
    clock.set_ns(100 * S);
    assert!(feed_frame(&mut c, 100 * S, 1).frame.is_some());
    // One image stamped 2e9 s (a bad driver clock) is refused…
    assert!(c.on_message(&image(2_000_000_000 * S, 2)).frame.is_none());
    assert_eq!(c.dropped(DropReason::StampInFuture), 1);
    // …and did not become the stream's newest stamp: the next real frame is taken.
    clock.set_ns(100 * S + 50 * MS);
    let next = feed_frame(&mut c, 100 * S + 50 * MS, 3);
    assert!(next.frame.is_some(), "learning goes on");
    assert!(next.transition.is_some());
    assert_eq!(c.dropped(DropReason::StampNotIncreasing), 0);
}

#[test]
fn a_jump_back_starts_a_new_episode_instead_of_stopping_learning() {
    let mut c = collector();
    let mut transitions = Vec::new();
    let mut frames = Vec::new();
    let mut feed = |c: &mut Collector, stamp: u64| {
        for msg in [joints(stamp, 1.0), imu(stamp), odom(stamp), image(stamp, 1)] {
            let collected = c.on_message(&msg);
            transitions.extend(collected.transition);
            frames.extend(collected.frame);
        }
    };
    // A run from 100 s, then the source restarts at 0 (a bag played in a loop, a restarted
    // simulator): every later message would have been `stamp_not_increasing` for good.
    for i in 0..5 {
        feed(&mut c, 100 * S + i * 50 * MS);
    }
    for i in 1..6 {
        feed(&mut c, i * 50 * MS);
    }
    assert_eq!(frames.len(), 10, "every frame after the restart is taken");
    assert!(frames[5..].iter().all(|f| f.episode == 1), "a new episode");
    assert_eq!(c.stats().restarts, 1);
    assert_eq!(c.dropped(DropReason::StampNotIncreasing), 0);
    // The last frame of the first run was completed, not lost; no transition spans the jump.
    let episodes: Vec<u64> = transitions.iter().map(|t| t.episode).collect();
    assert_eq!(episodes, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    // A small step back is still a dropped message, not a restart.
    c.on_message(&image(5 * 50 * MS - 10 * MS, 3));
    assert_eq!(c.dropped(DropReason::StampNotIncreasing), 1);
    assert_eq!(c.stats().restarts, 1);
}

#[test]
fn a_frame_stamped_at_the_end_of_time_is_completed_without_overflow() {
    // Found by the collector fuzz harness: with no clock yet (sim time before the first /clock),
    // a frame stamped near u64::MAX ns was accepted and completing it overflowed.
    let mut c = collector();
    let stamp = u64::MAX - 10;
    let collected = feed_frame(&mut c, stamp, 9);
    assert!(collected.frame.is_some());
    let transition = c.flush().expect("the pending frame completes");
    assert_eq!(transition.frame_stamp_ns, stamp);
    assert!(transition.action.iter().all(|v| v.is_finite()));
}

#[test]
fn a_camera_resolution_image_becomes_a_frame_of_the_model_size() {
    // 640×480, the left half grey 40 and the right half grey 200; the model takes 4×2.
    let (width, height) = (640u32, 480u32);
    let mut data = Vec::with_capacity((width * height) as usize);
    for _ in 0..height {
        for x in 0..width {
            data.push(if x < width / 2 { 40u8 } else { 200 });
        }
    }
    let mut c = collector();
    for msg in [joints(50 * MS, 1.0), imu(50 * MS), odom(50 * MS)] {
        c.on_message(&msg);
    }
    let msg = ImageMsg {
        stamp_ns: 50 * MS,
        width,
        height,
        encoding: "mono8".into(),
        is_bigendian: false,
        step: width,
        data: data.into(),
        frame_id: "camera".into(),
    };
    let frame = c.on_message(&SensorMsg::Image(msg)).frame.expect("a frame");
    assert_eq!(frame.image.len(), 4 * 2 * 3);
    // Cropped to 2:1 (640×320 of the centre), then averaged: two dark columns, two bright ones.
    let row: Vec<u8> = frame.image[..12].to_vec();
    assert_eq!(row, [40, 40, 40, 40, 40, 40, 200, 200, 200, 200, 200, 200]);
    assert_eq!(frame.image[12..], row[..]);
}

/// A camera image arrives after the commands sent since it was captured (images travel
/// slower): the frame before it still gets the command in effect until its capture, not the
/// newer one that happened to arrive first.
#[test]
fn a_command_sent_after_the_next_capture_is_not_taken_for_the_frame_before_it() {
    let mut c = collector();
    let proprio = |c: &mut Collector, at: u64| {
        c.on_message(&joints(at, 1.0));
        c.on_message(&imu(at));
        c.on_message(&odom(at));
    };
    proprio(&mut c, 0);
    c.on_message(&command(0, 0.1));
    assert!(c.on_message(&image(0, 1)).frame.is_some());
    proprio(&mut c, 100 * MS);
    // Sent at 101 ms, arrives before the image captured at 100 ms.
    c.on_message(&command(101 * MS, 0.9));
    let collected = c.on_message(&image(100 * MS, 2));
    let transition = collected.transition.expect("frame 0 completed");
    assert_eq!(
        transition.action[0], 0.1,
        "the command in effect until 100 ms"
    );
    assert_eq!(c.stats().actions_defaulted, 0);
    // And the newer command is the next frame's.
    proprio(&mut c, 200 * MS);
    let next = c
        .on_message(&image(200 * MS, 3))
        .transition
        .expect("frame 1");
    assert_eq!(next.action[0], 0.9);
}

#[test]
fn a_frame_carries_the_odometry_pose_when_it_is_fresh_and_none_when_it_is_stale() {
    // Proprio without the odometry twist, so a stale odometry does not drop the frame.
    let mut c = Collector::new(
        CollectorConfig {
            proprio: autodidact_nodes::ProprioConfig {
                use_odometry: false,
                ..autodidact_nodes::ProprioConfig::default()
            },
            ..config()
        },
        Arc::new(ManualClock::new()),
    );
    let pose = SensorMsg::Odometry(OdometryMsg {
        stamp_ns: 50 * MS,
        x: 1.5,
        y: -0.25,
        yaw: 0.75,
        linear_x: 0.0,
        angular_z: 0.0,
    });
    c.on_message(&pose);
    for msg in [joints(60 * MS, 1.0), imu(60 * MS)] {
        c.on_message(&msg);
    }
    let fresh = c.on_message(&image(60 * MS, 1)).frame.expect("a frame");
    assert_eq!(
        fresh.odometry,
        Some(autodidact_learn::OdometryPose::new(1.5, -0.25, 0.75)),
        "the pose 10 ms before the image, within the 100 ms tolerance"
    );

    // 500 ms later the odometry has not moved on: the frame is kept, without a pose.
    for msg in [joints(550 * MS, 1.0), imu(550 * MS)] {
        c.on_message(&msg);
    }
    let stale = c.on_message(&image(550 * MS, 2)).frame.expect("a frame");
    assert_eq!(stale.odometry, None, "a pose 500 ms old is not the robot's");
}
