//! Fuzz harnesses for what a bag can hold: a real bag of every standard type, in MCAP and in
//! sqlite3, damaged in any way (random bytes, flipped bits, cut short, grown, `metadata.yaml`
//! rewritten), and CDR bytes of any kind as each message type. Each is an ordinary test that runs
//! a bounded number of generated cases under `cargo test` (`BOLERO_RANDOM_ITERATIONS` raises the
//! count) and a coverage-guided target for hours with `cargo bolero test` (docs/fuzzing.md).
//!
//! The property: a bag opens or is refused with an error; what opens yields only messages of its
//! own topics, each decoding to its type or to an error, and damage is counted; never a panic,
//! and never more messages than were written.

use std::path::{Path, PathBuf};

use bolero::TypeGenerator;

use crate::msgs::{
    self, Header, Image, Imu, JointState, Odometry, Time, Twist, TwistStamped, types,
};
use crate::{Bag, BagWriter, cdr};

/// Cases per harness in `cargo test` (`BOLERO_RANDOM_ITERATIONS` overrides it).
const CASES: usize = 2_000;

/// One way to damage a file of a bag.
#[derive(Debug, Clone, TypeGenerator)]
enum Damage {
    /// Replace the file with these bytes.
    Replace(Vec<u8>),
    /// XOR the byte at this position (modulo the length) with a non-zero mask.
    Flip { at: u32, mask: u8 },
    /// Several flips at once.
    Flips(Vec<(u32, u8)>),
    /// Overwrite bytes from this position (modulo the length).
    Overwrite { at: u32, with: Vec<u8> },
    /// Keep this fraction (in 1/256ths) of the file.
    Cut(u8),
    /// Append these bytes.
    Grow(Vec<u8>),
}

fn damage(bytes: &mut Vec<u8>, how: &Damage) {
    let len = bytes.len();
    let position = |at: u32| at as usize % len.max(1);
    match how {
        Damage::Replace(new) => *bytes = new.clone(),
        Damage::Flip { at, mask } => flip(bytes, position(*at), *mask),
        Damage::Flips(flips) => {
            for &(at, mask) in flips {
                flip(bytes, position(at), mask);
            }
        }
        Damage::Overwrite { at, with } => {
            let start = position(*at);
            for (offset, &byte) in with.iter().enumerate() {
                match bytes.get_mut(start + offset) {
                    Some(slot) => *slot = byte,
                    None => bytes.push(byte),
                }
            }
        }
        Damage::Cut(keep) => bytes.truncate(bytes.len() * usize::from(*keep) / 256),
        Damage::Grow(more) => bytes.extend_from_slice(more),
    }
}

fn flip(bytes: &mut [u8], at: usize, mask: u8) {
    if let Some(byte) = bytes.get_mut(at) {
        *byte ^= mask.max(1);
    }
}

fn header(stamp_ns: u64, frame_id: &str) -> Header {
    Header {
        stamp: Time::from_ns(stamp_ns),
        frame_id: frame_id.into(),
    }
}

/// Every standard type a robot records, a few of each: what the harnesses damage.
const WRITTEN: u64 = 6;

fn messages() -> Vec<(&'static str, &'static str, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..WRITTEN {
        let stamp = 1_000_000_000 + i * 50_000_000;
        let image = Image {
            header: header(stamp, "camera"),
            height: 4,
            width: 4,
            encoding: "rgb8".into(),
            is_bigendian: 0,
            step: 12,
            data: (0..48).map(|b| (b as u64 * 7 + i) as u8).collect(),
        };
        let joints = JointState {
            header: header(stamp, "base_link"),
            name: vec!["left".into(), "right".into()],
            position: vec![0.1 * i as f64, -0.2],
            velocity: vec![1.0, 2.0],
            effort: vec![],
        };
        let imu = Imu {
            header: header(stamp, "imu_link"),
            ..Imu::default()
        };
        let odom = Odometry {
            header: header(stamp, "odom"),
            child_frame_id: "base_link".into(),
            ..Odometry::default()
        };
        let command = TwistStamped {
            header: header(stamp, "base_link"),
            twist: Twist::default(),
        };
        out.push((
            "/camera/image_raw",
            types::IMAGE,
            stamp,
            cdr::encode(&image),
        ));
        out.push((
            "/joint_states",
            types::JOINT_STATE,
            stamp + 1,
            cdr::encode(&joints),
        ));
        out.push(("/imu", types::IMU, stamp + 2, cdr::encode(&imu)));
        out.push(("/odom", types::ODOMETRY, stamp + 3, cdr::encode(&odom)));
        out.push((
            "/cmd_vel",
            types::TWIST_STAMPED,
            stamp + 4,
            cdr::encode(&command),
        ));
    }
    out
}

/// A bag directory of [`messages`] written by [`BagWriter`].
fn write_mcap_bag(dir: &Path) -> PathBuf {
    let mut writer = BagWriter::create(dir).expect("create");
    for (topic, type_name, stamp, bytes) in messages() {
        writer
            .write_cdr(topic, type_name, stamp, &bytes)
            .expect("write");
    }
    writer.finish().expect("finish")
}

/// A bare `.db3` of [`messages`], with Jazzy's tables.
fn write_sqlite_bag(path: &Path) {
    let conn = rusqlite::Connection::open(path).expect("create");
    conn.execute_batch(
        "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
         CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
             serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL,
             type_description_hash TEXT NOT NULL);
         CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
             timestamp INTEGER NOT NULL, data BLOB NOT NULL);
         CREATE INDEX timestamp_idx ON messages (timestamp ASC);",
    )
    .expect("tables");
    let mut ids: Vec<&str> = Vec::new();
    for (topic, type_name, stamp, bytes) in messages() {
        let id = match ids.iter().position(|t| *t == topic) {
            Some(i) => i + 1,
            None => {
                ids.push(topic);
                conn.execute(
                    "INSERT INTO topics VALUES (?1, ?2, ?3, 'cdr', '', '')",
                    rusqlite::params![ids.len() as i64, topic, type_name],
                )
                .expect("topic");
                ids.len()
            }
        };
        conn.execute(
            "INSERT INTO messages (topic_id, timestamp, data) VALUES (?1, ?2, ?3)",
            rusqlite::params![id as i64, stamp as i64, bytes],
        )
        .expect("message");
    }
}

/// Decodes a message as its topic's type: `Some(ok)` for the standard types, `None` for others.
fn decodes(type_name: &str, bytes: &[u8]) -> Option<bool> {
    Some(match type_name {
        types::IMAGE => cdr::decode::<Image>(bytes).is_ok(),
        types::COMPRESSED_IMAGE => cdr::decode::<msgs::CompressedImage>(bytes).is_ok(),
        types::CAMERA_INFO => cdr::decode::<msgs::CameraInfo>(bytes).is_ok(),
        types::JOINT_STATE => cdr::decode::<JointState>(bytes).is_ok(),
        types::IMU => cdr::decode::<Imu>(bytes).is_ok(),
        types::ODOMETRY => cdr::decode::<Odometry>(bytes).is_ok(),
        types::TWIST => cdr::decode::<Twist>(bytes).is_ok(),
        types::TWIST_STAMPED => cdr::decode::<TwistStamped>(bytes).is_ok(),
        types::CLOCK => cdr::decode::<msgs::Clock>(bytes).is_ok(),
        _ => return None,
    })
}

/// Opens and reads `path` to the end, checking the property; panics only on a violation.
fn read_all(path: &Path) {
    let Ok(bag) = Bag::open(path) else {
        return;
    };
    let mut messages = bag.messages();
    let mut count = 0u64;
    for message in messages.by_ref() {
        count += 1;
        assert!(
            count <= WRITTEN * 5,
            "more messages than were written: {count}"
        );
        let topic = &bag.topics()[message.topic];
        let _ = decodes(&topic.type_name, &message.data);
    }
    assert!(messages.damage().notes.len() <= crate::read::MAX_NOTES);
}

#[test]
fn fuzz_damaged_mcap_bags_are_read_as_far_as_they_are_intact_or_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let good = write_mcap_bag(&scratch.path().join("good"));
    let names = ["metadata.yaml", "good_0.mcap"];
    let originals: Vec<Vec<u8>> = names
        .iter()
        .map(|name| std::fs::read(good.join(name)).expect("read"))
        .collect();
    let work = scratch.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<(bool, Damage)>()
        .for_each(|(yaml, how)| {
            for (name, original) in names.iter().zip(&originals) {
                std::fs::write(work.join(name), original).expect("write");
            }
            let which = usize::from(!*yaml);
            let mut bytes = originals[which].clone();
            damage(&mut bytes, how);
            std::fs::write(work.join(names[which]), &bytes).expect("write");
            read_all(&work);
            // The same file bare, without metadata.yaml.
            read_all(&work.join(names[1]));
        });
}

#[test]
fn fuzz_damaged_sqlite_bags_are_read_or_refused() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let good = scratch.path().join("good.db3");
    write_sqlite_bag(&good);
    let original = std::fs::read(&good).expect("read");
    let work = scratch.path().join("work.db3");
    bolero::check!()
        .with_iterations(CASES)
        .with_type::<Damage>()
        .for_each(|how| {
            let mut bytes = original.clone();
            damage(&mut bytes, how);
            std::fs::write(&work, &bytes).expect("write");
            read_all(&work);
        });
}

#[test]
fn fuzz_any_bytes_decode_as_each_standard_type_or_are_refused() {
    bolero::check!()
        .with_iterations(CASES * 10)
        .with_type::<(u8, Vec<u8>)>()
        .for_each(|(kind, body)| {
            // A valid encapsulation header most of the time, so the body reaches the parser.
            let mut bytes = match kind % 4 {
                0 => Vec::new(),
                1 => vec![0x00, 0x00, 0x00, 0x00],
                _ => vec![0x00, 0x01, 0x00, 0x00],
            };
            bytes.extend_from_slice(body);
            for type_name in [
                types::IMAGE,
                types::COMPRESSED_IMAGE,
                types::CAMERA_INFO,
                types::JOINT_STATE,
                types::IMU,
                types::ODOMETRY,
                types::TWIST,
                types::TWIST_STAMPED,
                types::CLOCK,
            ] {
                assert!(decodes(type_name, &bytes).is_some(), "{type_name}");
            }
            // What decodes holds no more data than the bytes carried.
            if let Ok(image) = cdr::decode::<Image>(&bytes) {
                assert!(image.data.len() <= bytes.len());
                assert!(image.encoding.len() <= bytes.len());
            }
        });
}
