//! Fuzz harnesses for what a peer or a user can send a node: images in every encoding, message
//! sequences through the collector, the configuration file, and (feature `ros`) rollout
//! requests. Each is an ordinary test that runs a bounded number of generated cases under
//! `cargo test` (bolero's random engine; `BOLERO_RANDOM_ITERATIONS` raises the count), and a
//! coverage-guided target for hours with `cargo bolero test` (see docs/fuzzing.md).
//!
//! The property everywhere: a clear refusal or a counted drop, never a panic, and what is
//! accepted is well formed.

use std::sync::Arc;

use bolero::TypeGenerator;

use crate::components::collector::{Collector, CollectorConfig};
use crate::components::image::{Fit, to_rgb8};
use crate::config::FileConfig;
use crate::msg::{ImageMsg, ImuMsg, JointStateMsg, OdometryMsg, SensorMsg, TwistMsg};
use crate::runtime::clock::ManualClock;

/// Encoding names: every one the nodes accept, and some they must refuse.
const ENCODINGS: [&str; 20] = [
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "8UC1",
    "mono16",
    "rgb16",
    "bgr16",
    "rgba16",
    "yuv422",
    "yuv422_yuy2",
    "bayer_rggb8",
    "bayer_gbrg8",
    "32FC1",
    "nv12",
    "",
    "RGB8",
    "rgb8\0",
    "16UC1",
];

/// A number as a sensor sends it: usually ordinary, sometimes anything (NaN, ±∞, 1e308).
#[derive(Debug, Clone, Copy, TypeGenerator)]
enum Value {
    Ordinary(i16),
    Any(f64),
}

impl Value {
    fn get(self) -> f64 {
        match self {
            Self::Ordinary(v) => f64::from(v) / 1000.0,
            Self::Any(v) => v,
        }
    }
}

/// An image with its geometry chosen around the model's input size.
#[derive(Debug, Clone, TypeGenerator)]
struct FuzzImage {
    encoding: u8,
    /// The model's size, or off by this much.
    width_off: i8,
    height_off: i8,
    /// Row padding in bytes (may be too small: a bad step).
    pad: i8,
    /// Bytes missing from (or added to) the data.
    data_off: i16,
    big_endian: bool,
    fill: u8,
    frame_id: String,
}

impl FuzzImage {
    fn message(&self, stamp_ns: u64, width: u32, height: u32) -> ImageMsg {
        let encoding = ENCODINGS[usize::from(self.encoding) % ENCODINGS.len()];
        // Around the model's size, or a camera's (640×480 scaled down to keep cases fast).
        let (w, h) = if self.big_endian && self.fill.is_multiple_of(2) {
            (80, 60)
        } else {
            (width, height)
        };
        let w = w.saturating_add_signed(i32::from(self.width_off % 3));
        let h = h.saturating_add_signed(i32::from(self.height_off % 3));
        let channels = crate::components::image::decode::Encoding::from_ros(encoding)
            .map_or(3, |e| e.bytes_per_pixel() as u32);
        let step = (w * channels).saturating_add_signed(i32::from(self.pad % 8));
        let len = (step as usize * h as usize).saturating_add_signed(isize::from(self.data_off));
        ImageMsg {
            stamp_ns,
            width: w,
            height: h,
            encoding: encoding.to_owned(),
            is_bigendian: self.big_endian,
            step,
            data: Arc::from(vec![self.fill; len.min(1 << 16)]),
            frame_id: self.frame_id.clone(),
        }
    }
}

/// One message of a sequence, with the time since the previous one (negative: a jump back).
#[derive(Debug, Clone, TypeGenerator)]
enum FuzzMessage {
    Image(FuzzImage),
    Joints { names: u8, velocity: [Value; 3] },
    Imu { gyro: Value, accel: [Value; 2] },
    Odometry { linear: Value, angular: Value },
    Twist { linear: Value, angular: Value },
}

#[derive(Debug, Clone, TypeGenerator)]
struct Step {
    /// Milliseconds since the previous message; sometimes far back or far ahead.
    dt_ms: i16,
    jump: Option<i64>,
    message: FuzzMessage,
}

const SIDE: u32 = 8;

/// Cases per harness in `cargo test` (`BOLERO_RANDOM_ITERATIONS` overrides it).
const CASES: usize = 5_000;

fn collector_config() -> CollectorConfig {
    CollectorConfig {
        width: SIDE,
        height: SIDE,
        ..CollectorConfig::default()
    }
}

fn sensor_message(step: &Step, stamp_ns: u64, config: &CollectorConfig) -> SensorMsg {
    let joint_names = &config.proprio.joints;
    match &step.message {
        FuzzMessage::Image(image) => SensorMsg::Image(image.message(stamp_ns, SIDE, SIDE)),
        FuzzMessage::Joints { names, velocity } => {
            // Each bit keeps one configured joint; bit 7 adds one nobody asked for.
            let mut name: Vec<String> = joint_names
                .iter()
                .enumerate()
                .filter(|(i, _)| names & (1 << i) != 0)
                .map(|(_, n)| n.clone())
                .collect();
            if names & 0x80 != 0 {
                name.push("caster_joint".into());
            }
            let velocity = velocity.iter().take(name.len()).map(|v| v.get()).collect();
            SensorMsg::JointState(JointStateMsg {
                stamp_ns,
                name,
                position: Vec::new(),
                velocity,
                effort: Vec::new(),
            })
        }
        FuzzMessage::Imu { gyro, accel } => SensorMsg::Imu(ImuMsg {
            stamp_ns,
            orientation: [0.0, 0.0, 0.0, 1.0],
            angular_velocity: [0.0, 0.0, gyro.get()],
            linear_acceleration: [accel[0].get(), accel[1].get(), 9.81],
        }),
        FuzzMessage::Odometry { linear, angular } => SensorMsg::Odometry(OdometryMsg {
            stamp_ns,
            x: 0.0,
            y: 0.0,
            yaw: 0.0,
            linear_x: linear.get(),
            angular_z: angular.get(),
        }),
        FuzzMessage::Twist { linear, angular } => SensorMsg::Action(TwistMsg {
            stamp_ns,
            linear_x: linear.get() as f32,
            angular_z: angular.get() as f32,
        }),
    }
}

#[test]
fn fuzz_images_in_any_encoding_and_geometry_convert_exactly_or_are_refused() {
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<FuzzImage>()
        .for_each(|image| {
            let message = image.message(1, SIDE, SIDE);
            for fit in [Fit::Crop, Fit::Stretch, Fit::Pad] {
                if let Ok(rgb) = to_rgb8(&message, SIDE, SIDE, fit) {
                    assert_eq!(rgb.len(), (SIDE * SIDE * 3) as usize, "{message:?}");
                }
            }
        });
}

#[test]
fn fuzz_message_sequences_through_the_collector_are_counted_and_frames_are_well_formed() {
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<Vec<Step>>()
        .for_each(|steps| {
            let config = collector_config();
            let clock = ManualClock::new();
            let mut collector = Collector::new(config.clone(), Arc::new(clock.clone()));
            let dim = config.proprio.dim();
            let mut stamp: u64 = 1_000_000_000_000;
            let mut frames = 0u64;
            for step in steps {
                stamp = match step.jump {
                    Some(jump) => stamp.saturating_add_signed(jump),
                    None => stamp.saturating_add_signed(i64::from(step.dt_ms) * 1_000_000),
                };
                clock.set_ns(stamp);
                let collected = collector.on_message(&sensor_message(step, stamp, &config));
                if let Some(frame) = &collected.frame {
                    frames += 1;
                    assert_eq!(frame.image.len(), (SIDE * SIDE * 3) as usize);
                    assert_eq!(frame.proprio.len(), dim);
                    assert!(frame.proprio.iter().all(|v| v.is_finite()), "{frame:?}");
                    assert!(frame.frame_id.len() <= crate::collector::MAX_FRAME_ID_BYTES);
                }
                if let Some(transition) = &collected.transition {
                    assert!(transition.action.iter().all(|v| v.is_finite()));
                    assert!(transition.proprio.iter().all(|v| v.is_finite()));
                }
            }
            let stats = collector.stats();
            assert_eq!(stats.received, steps.len() as u64);
            assert_eq!(stats.frames, frames);
        });
}

/// Section and key names of the configuration file, right and misspelt.
const KEYS: [&str; 16] = [
    "[sim]",
    "[sim.camera]",
    "[collector]",
    "[collector.proprio]",
    "[trainer]",
    "[trainer.model]",
    "[trainer_node]",
    "[encoder]",
    "[viz]",
    "[planner]",
    "[eval]",
    "[trainr]",
    "width",
    "restart_after_s",
    "batch_size",
    "temperature",
];

#[derive(Debug, Clone, TypeGenerator)]
enum TomlValue {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

#[test]
fn fuzz_configuration_files_are_read_or_refused_with_an_error() {
    // Raw text: anything at all.
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<String>()
        .for_each(|text| {
            let _ = FileConfig::parse(text);
        });
    // Shaped text: known sections and keys with any values.
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<Vec<(u8, TomlValue)>>()
        .for_each(|lines| {
            let mut text = String::new();
            for (key, value) in lines {
                let key = KEYS[usize::from(*key) % KEYS.len()];
                if key.starts_with('[') {
                    text.push_str(key);
                } else {
                    let value = match value {
                        TomlValue::Int(v) => v.to_string(),
                        TomlValue::Float(v) if v.is_nan() => "nan".into(),
                        TomlValue::Float(v) if v.is_infinite() => {
                            if *v > 0.0 { "inf" } else { "-inf" }.into()
                        }
                        TomlValue::Float(v) => format!("{v:?}"),
                        TomlValue::Text(v) => format!("{v:?}"),
                        TomlValue::Bool(v) => v.to_string(),
                    };
                    text.push_str(&format!("{key} = {value}"));
                }
                text.push('\n');
            }
            if let Err(error) = FileConfig::parse(&text) {
                assert!(!error.to_string().is_empty());
            }
        });
}
