//! `autodidact bench bags`: what reading a robot's bag costs — ingest frames/s of 640×480 JPEG
//! camera frames through storage, CDR and the collector (decode, crop, area-average to 64×64),
//! and a bag of them written for `train --bag` to be measured on (its peak RSS is the CLI's to
//! measure, in a process of its own).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use autodidact_bag::msgs::{self, Header, Time, types};
use autodidact_bag::{Bag, BagWriter, TopicChoice};
use autodidact_nodes::bags::convert::sensor_in;
use autodidact_nodes::{Collector, CollectorConfig, ManualClock};

use crate::images::compressed_scene;
use crate::row::BenchRow;

/// Camera rate of the bags written here, Hz.
pub const BAG_HZ: u64 = 30;

/// Writes a bag of `frames` 640×480 JPEG frames at [`BAG_HZ`] (a scene that moves), with the
/// joint states, IMU, odometry and TwistStamped commands the collector pairs them with.
pub fn write_camera_bag(dir: &Path, frames: u64) -> Result<()> {
    let mut writer = BagWriter::create(dir)?;
    // A few distinct frames, cycled: encoding thousands of JPEGs is not what is measured.
    let scenes: Vec<_> = (0..8)
        .map(|i| compressed_scene("jpeg", 640, 480, i as f32 * 11.0))
        .collect::<Result<_>>()?;
    let period = 1_000_000_000 / BAG_HZ;
    let header = |ns: u64, frame: &str| Header {
        stamp: Time::from_ns(ns),
        frame_id: frame.to_owned(),
    };
    for i in 0..frames {
        let ns = 1_000_000_000 + i * period;
        let joints = msgs::JointState {
            header: header(ns - 2_000_000, ""),
            name: autodidact_sim::WHEEL_JOINT_NAMES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
            position: vec![0.0, 0.0],
            velocity: vec![1.0, 1.1],
            effort: Vec::new(),
        };
        writer.write("/joint_states", types::JOINT_STATE, ns - 2_000_000, &joints)?;
        let imu = msgs::Imu {
            header: header(ns - 2_000_000, "base_link"),
            ..msgs::Imu::default()
        };
        writer.write("/imu/data", types::IMU, ns - 2_000_000, &imu)?;
        let odom = msgs::Odometry {
            header: header(ns - 1_000_000, "odom"),
            child_frame_id: "base_link".into(),
            ..msgs::Odometry::default()
        };
        writer.write("/odom", types::ODOMETRY, ns - 1_000_000, &odom)?;
        let scene = &scenes[(i % scenes.len() as u64) as usize];
        let image = msgs::CompressedImage {
            header: header(ns, "camera"),
            format: "rgb8; jpeg compressed bgr8".into(),
            data: scene.data.to_vec(),
        };
        writer.write(
            "/camera/image_raw/compressed",
            types::COMPRESSED_IMAGE,
            ns + 3_000_000,
            &image,
        )?;
        let command = msgs::TwistStamped {
            header: header(ns + 1_000_000, "base_link"),
            twist: msgs::Twist {
                linear: msgs::Vector3 {
                    x: 0.3,
                    y: 0.0,
                    z: 0.0,
                },
                angular: msgs::Vector3::default(),
            },
        };
        writer.write("/cmd_vel", types::TWIST_STAMPED, ns + 1_000_000, &command)?;
    }
    writer.finish()?;
    Ok(())
}

/// Reads the bag once through storage, CDR and the collector (every camera frame decoded and
/// fitted to 64×64): frames made per second, on one thread.
pub fn bench_bag_ingest(dir: &Path) -> Result<BenchRow> {
    let bag = Bag::open(dir)?;
    let inputs = autodidact_bag::roles::choose(bag.topics(), &TopicChoice::default())
        .map_err(anyhow::Error::msg)?;
    let clock = ManualClock::new();
    let mut collector = Collector::new(CollectorConfig::default(), Arc::new(clock.clone()));
    let started = Instant::now();
    let mut frames = 0u64;
    let mut per_frame = Vec::new();
    let mut last = Instant::now();
    for message in bag.messages() {
        if inputs.role_of(message.topic).is_none() {
            continue;
        }
        clock.set_ns(message.log_time_ns);
        let sensor = sensor_in(
            &bag.topics()[message.topic].type_name,
            &message.data,
            message.log_time_ns,
        )
        .context("a message of the bench bag")?;
        if collector.on_message(&sensor).frame.is_some() {
            frames += 1;
            per_frame.push(last.elapsed().as_secs_f64() * 1e6);
            last = Instant::now();
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(frames > 0, "no frame came out of the bench bag");
    per_frame.sort_by(f64::total_cmp);
    let at = |q: f64| per_frame[((per_frame.len() - 1) as f64 * q) as usize];
    Ok(BenchRow {
        case: "bag ingest: 640x480 JPEG → 64x64 frame (storage, CDR, decode, fit)".into(),
        iterations: frames,
        median_us: at(0.5),
        p99_us: at(0.99),
        per_second: frames as f64 / seconds.max(1e-9),
    })
}
