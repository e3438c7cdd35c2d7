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

/// An MCAP record: opcode, little-endian length, body.
fn record(opcode: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![opcode];
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn mcap_string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn a_record_inside_a_chunk_claiming_more_than_the_chunk_holds_skips_the_chunk() {
    // A zstd chunk without a CRC whose one record claims 2⁶³ bytes: mcap's own chunk reader
    // reserved that much and aborted the process (found by the fuzz harness).
    let inner = [&[0x05u8][..], &(1u64 << 63).to_le_bytes()].concat();
    let compressed = zstd::encode_all(inner.as_slice(), 3).expect("zstd");
    let mut chunk = Vec::new();
    chunk.extend_from_slice(&0u64.to_le_bytes()); // message_start_time
    chunk.extend_from_slice(&0u64.to_le_bytes()); // message_end_time
    chunk.extend_from_slice(&(inner.len() as u64).to_le_bytes()); // uncompressed_size
    chunk.extend_from_slice(&0u32.to_le_bytes()); // uncompressed_crc: none
    chunk.extend_from_slice(&mcap_string("zstd"));
    chunk.extend_from_slice(&(compressed.len() as u64).to_le_bytes());
    chunk.extend_from_slice(&compressed);
    let header = [mcap_string("ros2"), mcap_string("test")].concat();
    let mut file = b"\x89MCAP0\r\n".to_vec();
    file.extend(record(0x01, &header));
    file.extend(record(0x06, &chunk));
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("claims.mcap");
    std::fs::write(&path, file).expect("write");

    let bag = Bag::open(&path).expect("a readable file");
    let mut messages = bag.messages();
    assert_eq!(messages.by_ref().count(), 0);
    assert_eq!(
        messages.damage().skipped_chunks,
        1,
        "{:?}",
        messages.damage()
    );
}

/// The bag a child process of the tests below opens, and the messages it must find there.
const CLAIMING_BAG: &str = "AUTODIDACT_CLAIMING_BAG";
const CLAIMING_COUNT: &str = "AUTODIDACT_CLAIMING_COUNT";

/// Opens and reads the bag at `path` in a child process limited to `limit_mib` of address
/// space, where reserving what a damaged length claims aborts; it must find `messages`.
fn read_in_a_child_limited_to(path: &Path, limit_mib: u64, messages: u64) {
    let me = std::env::current_exe().expect("test binary");
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" --exact tests::open_the_claiming_bag --ignored",
            limit_mib * 1024
        ))
        .arg(me)
        .env(CLAIMING_BAG, path)
        .env(CLAIMING_COUNT, messages.to_string())
        .output()
        .expect("run the child");
    assert!(
        child.status.success() && String::from_utf8_lossy(&child.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
}

#[test]
#[ignore = "run by read_in_a_child_limited_to, under an address-space limit"]
fn open_the_claiming_bag() {
    let path = std::env::var_os(CLAIMING_BAG).expect("set by the parent test");
    let count: u64 = std::env::var(CLAIMING_COUNT)
        .expect("set by the parent test")
        .parse()
        .expect("a count");
    let bag = Bag::open(Path::new(&path)).expect("opens: the damage is counted, not fatal");
    assert_eq!(bag.topics().iter().map(|t| t.count).sum::<u64>(), count);
    assert_eq!(bag.messages().count() as u64, count);
}

#[test]
fn a_summary_string_claiming_gigabytes_is_refused_without_asking_for_them() {
    // The topic of the summary's first Channel record claims 4 GiB: mcap's parser reserved
    // that much before reading (found by the coverage-guided fuzz run).
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("bag");
    write_bag(&dir);
    let path = mcap_file(&dir);
    let mut bytes = std::fs::read(&path).expect("read");
    let end = &bytes[bytes.len() - crate::mcap_check::FOOTER_AND_MAGIC as usize..];
    let mut at = crate::mcap_check::summary_start(end).expect("a summary") as usize;
    while bytes[at] != 0x04 {
        let len = u64::from_le_bytes(bytes[at + 1..at + 9].try_into().expect("8 bytes"));
        at += 9 + len as usize;
    }
    // opcode, record length, channel id, schema id, then the topic's length.
    bytes[at + 13..at + 17].copy_from_slice(&0xff00_0003u32.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");
    // Counted by reading, since the summary is not trusted: every message is still there.
    read_in_a_child_limited_to(&dir, 1024, 80);
}

#[test]
fn a_record_claiming_more_than_the_rest_of_the_file_is_a_cut_not_an_allocation() {
    // After the header, a record whose length claims 1 000 000 000 bytes in a file of a few
    // dozen: the reader asked to be handed that much room, zeroed (a 6.8 s input of the
    // coverage-guided run). It is a file cut short.
    let header = [mcap_string("ros2"), mcap_string("test")].concat();
    let mut file = b"\x89MCAP0\r\n".to_vec();
    file.extend(record(0x01, &header));
    file.push(0x05);
    file.extend(1_000_000_000u64.to_le_bytes());
    file.extend([0u8; 16]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("claims.mcap");
    std::fs::write(&path, file).expect("write");
    read_in_a_child_limited_to(&path, 512, 0);
    let bag = Bag::open(&path).expect("readable");
    let mut messages = bag.messages();
    assert_eq!(messages.by_ref().count(), 0);
    assert_eq!(
        messages.damage().truncated_files,
        1,
        "{:?}",
        messages.damage()
    );
}
