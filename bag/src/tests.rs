//! Bags written, read back, and damaged on purpose: what comes out of each.

use std::path::Path;

use crate::msgs::{Header, Time, Twist, TwistStamped, types};
use crate::{Bag, BagWriter, cdr};

/// Bytes that zstd cannot shrink, so a bag of them spans several chunks.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn command(stamp_ns: u64) -> TwistStamped {
    TwistStamped {
        header: Header {
            stamp: Time::from_ns(stamp_ns),
            frame_id: "base_link".into(),
        },
        twist: Twist::default(),
    }
}

/// 40 images of 64 KiB noise and 40 commands, 100 ms apart.
fn write_bag(dir: &Path) {
    let mut writer = BagWriter::create(dir).expect("create");
    for i in 0..40u64 {
        let stamp = 1_000_000_000 + i * 100_000_000;
        let image = crate::msgs::Image {
            header: Header {
                stamp: Time::from_ns(stamp),
                frame_id: "camera".into(),
            },
            height: 128,
            width: 128,
            encoding: "rgba8".into(),
            is_bigendian: 0,
            step: 512,
            data: noise(i, 128 * 512),
        };
        writer
            .write("/camera/image_raw", types::IMAGE, stamp, &image)
            .expect("image");
        writer
            .write("/cmd_vel", types::TWIST_STAMPED, stamp + 1, &command(stamp))
            .expect("command");
    }
    writer.finish().expect("finish");
}

fn mcap_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "mcap"))
        .expect("an mcap file")
}

#[test]
fn a_written_bag_reads_back_message_for_message() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bag");
    write_bag(&dir);
    let bag = Bag::open(&dir).expect("open");
    let names: Vec<(&str, &str, u64)> = bag
        .topics()
        .iter()
        .map(|t| (t.name.as_str(), t.type_name.as_str(), t.count))
        .collect();
    assert_eq!(
        names,
        [
            ("/camera/image_raw", types::IMAGE, 40),
            ("/cmd_vel", types::TWIST_STAMPED, 40)
        ]
    );
    let mut messages = bag.messages();
    let read: Vec<_> = messages.by_ref().collect();
    assert!(messages.damage().is_clean(), "{:?}", messages.damage());
    assert_eq!(read.len(), 80);
    let image: crate::msgs::Image = cdr::decode(&read[2].data).expect("image");
    assert_eq!(image.data, noise(1, 128 * 512));
    assert_eq!(read[2].log_time_ns, 1_100_000_000);
    let twist: TwistStamped = cdr::decode(&read[3].data).expect("command");
    assert_eq!(twist, command(1_100_000_000));
    // The bare file opens as well, from its own summary.
    assert_eq!(
        Bag::open(&mcap_file(&dir)).expect("bare").topics(),
        bag.topics()
    );
    // A bag is never written over anything.
    assert!(BagWriter::create(&dir).is_err());
}

#[test]
fn a_bag_cut_mid_chunk_gives_its_intact_messages_and_says_it_was_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bag");
    write_bag(&dir);
    let file = mcap_file(&dir);
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() * 6 / 10]).expect("cut");
    let bare = Bag::open(&file).expect("a cut file still opens (its topics by reading)");
    assert_eq!(bare.topics().len(), 2);
    let mut messages = bare.messages();
    let read = messages.by_ref().count();
    assert!((11..80).contains(&read), "{read} of 80 messages");
    assert_eq!(messages.damage().truncated_files, 1);
    assert!(!messages.damage().notes.is_empty());
}

#[test]
fn a_chunk_with_a_bad_crc_is_skipped_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bag");
    write_bag(&dir);
    let file = mcap_file(&dir);
    let mut bytes = std::fs::read(&file).expect("read");
    let summary = mcap::Summary::read(&bytes)
        .expect("summary")
        .expect("has a summary");
    assert!(summary.chunk_indexes.len() >= 3, "several chunks");
    let second = &summary.chunk_indexes[1];
    let at = (second.chunk_start_offset + second.chunk_length / 2) as usize;
    bytes[at] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    let bag = Bag::open(&dir).expect("open");
    let mut messages = bag.messages();
    let read = messages.by_ref().count();
    assert_eq!(
        messages.damage().skipped_chunks,
        1,
        "{:?}",
        messages.damage()
    );
    assert!(
        (40..80).contains(&read),
        "the other chunks are read: {read}"
    );
}

#[test]
fn an_empty_bag_has_no_topics_and_no_messages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("empty");
    BagWriter::create(&dir)
        .expect("create")
        .finish()
        .expect("finish");
    let bag = Bag::open(&dir).expect("open");
    assert!(bag.topics().is_empty());
    assert_eq!(bag.messages().count(), 0);
}

#[test]
fn what_is_not_a_bag_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello").expect("write");
    let error = Bag::open(&text).expect_err("not a bag").to_string();
    assert!(error.contains("not a bag"), "{error}");
    let db3 = tmp.path().join("broken.db3");
    std::fs::write(&db3, noise(3, 4096)).expect("write");
    let error = Bag::open(&db3).expect_err("not sqlite").to_string();
    assert!(error.contains("sqlite3"), "{error}");
    let empty_dir = tmp.path().join("dir");
    std::fs::create_dir(&empty_dir).expect("dir");
    let error = Bag::open(&empty_dir).expect_err("no metadata").to_string();
    assert!(error.contains("metadata.yaml"), "{error}");
}

#[test]
fn a_sqlite3_bag_reads_in_time_order_by_column_name() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("humble.db3");
    let conn = rusqlite::Connection::open(&path).expect("create");
    // Humble's tables (no type_description_hash, no message_definitions): read by name.
    conn.execute_batch(
        "CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
         CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
             serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
         CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
             timestamp INTEGER NOT NULL, data BLOB NOT NULL);
         CREATE INDEX timestamp_idx ON messages (timestamp ASC);",
    )
    .expect("tables");
    conn.execute(
        "INSERT INTO topics VALUES (1, '/cmd_vel', 'geometry_msgs/msg/TwistStamped', 'cdr', '')",
        [],
    )
    .expect("topic");
    // Inserted out of order, 600 of them: more than one page.
    for i in (0..600u64).rev() {
        conn.execute(
            "INSERT INTO messages (topic_id, timestamp, data) VALUES (1, ?1, ?2)",
            rusqlite::params![i as i64 * 1000, cdr::encode(&command(i * 1000))],
        )
        .expect("message");
    }
    drop(conn);
    let bag = Bag::open(&path).expect("open");
    assert_eq!(bag.topics()[0].count, 600);
    let stamps: Vec<u64> = bag.messages().map(|m| m.log_time_ns).collect();
    assert_eq!(stamps, (0..600u64).map(|i| i * 1000).collect::<Vec<_>>());
}
