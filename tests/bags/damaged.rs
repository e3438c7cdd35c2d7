//! The bad-bag corpus: what is intact is trained on, what is not is counted and said.
use super::*;

/// The bad-bag corpus: a bag cut mid-chunk, one with a chunk whose CRC is wrong, one whose
/// camera topic holds bytes of another type, one with images claiming 1e10 pixels over a few
/// bytes, garbage JPEG and a JPEG decompression bomb, and stamps going backwards — trained on
/// together, what is intact is trained on and the report says per bag what was skipped and
/// why; an empty bag, a bag without a camera and a camera of an unknown type are clear errors
/// before anything is written.
#[test]
fn a_damaged_bag_trains_on_what_is_intact_and_the_report_says_what_was_skipped() {
    use autodidact_bag::msgs::{self, types};
    let tmp = tempfile::tempdir().expect("tempdir");
    let whole = tmp.path().join("whole");
    sim_bag(&whole, 600, 1);
    let bytes = std::fs::read(only_mcap(&whole)).expect("mcap");

    let cut = tmp.path().join("cut.mcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).expect("cut");

    let bad_crc = tmp.path().join("bad_crc.mcap");
    let mut flipped = bytes.clone();
    let summary = mcap::Summary::read(&bytes)
        .expect("summary")
        .expect("summary");
    assert!(
        summary.chunk_indexes.len() >= 3,
        "{} chunks",
        summary.chunk_indexes.len()
    );
    let chunk = &summary.chunk_indexes[1];
    flipped[(chunk.chunk_start_offset + chunk.chunk_length / 2) as usize] ^= 0x55;
    std::fs::write(&bad_crc, &flipped).expect("write");

    // Hand-made bags: 60 frames at 20 Hz, proprio and commands, and bad camera messages.
    let hand_made =
        |name: &str, camera: &dyn Fn(u64, u64) -> (&'static str, &'static str, Vec<u8>)| {
            let dir = tmp.path().join(name);
            let mut writer = autodidact_bag::BagWriter::create(&dir).expect("bag");
            for i in 0..60u64 {
                let ns = 1_000_000_000 + i * 50_000_000;
                let header = |frame: &str| msgs::Header {
                    stamp: msgs::Time::from_ns(ns),
                    frame_id: frame.into(),
                };
                let joints = msgs::JointState {
                    header: header(""),
                    name: vec!["left_wheel_joint".into(), "right_wheel_joint".into()],
                    position: vec![0.0; 2],
                    velocity: vec![1.0; 2],
                    effort: Vec::new(),
                };
                writer
                    .write("/joint_states", types::JOINT_STATE, ns, &joints)
                    .expect("w");
                let imu = msgs::Imu {
                    header: header("base_link"),
                    ..msgs::Imu::default()
                };
                writer.write("/imu/data", types::IMU, ns, &imu).expect("w");
                let odom = msgs::Odometry {
                    header: header("odom"),
                    ..msgs::Odometry::default()
                };
                writer
                    .write("/odom", types::ODOMETRY, ns, &odom)
                    .expect("w");
                let (topic, type_name, data) = camera(i, ns);
                writer
                    .write_cdr(topic, type_name, ns + 1, &data)
                    .expect("w");
                writer
                    .write("/cmd_vel", types::TWIST, ns + 2, &msgs::Twist::default())
                    .expect("w");
            }
            writer.finish().expect("finish");
            dir
        };
    let image = |ns: u64, width: u32, height: u32, data: Vec<u8>| msgs::Image {
        header: msgs::Header {
            stamp: msgs::Time::from_ns(ns),
            frame_id: "camera".into(),
        },
        height,
        width,
        encoding: "rgb8".into(),
        is_bigendian: 0,
        step: width * 3,
        data,
    };
    let good = |ns: u64| image(ns, 64, 64, vec![(ns / 1_000_000 % 251) as u8; 64 * 64 * 3]);
    // Every fifth camera message is a Clock's bytes on the Image topic.
    let mismatched = hand_made("mismatched", &|i, ns| {
        let data = if i % 5 == 4 {
            autodidact_bag::cdr::encode(&msgs::Clock {
                clock: msgs::Time::from_ns(ns),
            })
        } else {
            autodidact_bag::cdr::encode(&good(ns))
        };
        ("/camera/image_raw", types::IMAGE, data)
    });
    // Every fifth claims 100000 × 100000 pixels over 12 bytes.
    let huge = hand_made("huge", &|i, ns| {
        let message = if i % 5 == 4 {
            image(ns, 100_000, 100_000, vec![0; 12])
        } else {
            good(ns)
        };
        (
            "/camera/image_raw",
            types::IMAGE,
            autodidact_bag::cdr::encode(&message),
        )
    });
    // Compressed: PNGs, with garbage and a JPEG bomb (60000 × 60000 in its header) between.
    let png = |ns: u64| {
        let mut data = Vec::new();
        image::RgbImage::from_raw(64, 64, good(ns).data)
            .expect("image")
            .write_to(
                &mut std::io::Cursor::new(&mut data),
                image::ImageFormat::Png,
            )
            .expect("png");
        data
    };
    let bomb: Vec<u8> = [
        &[0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00][..],
        &[1u8; 64],
        &[
            0xff, 0xc0, 0x00, 0x0b, 0x08, 0xea, 0x60, 0xea, 0x60, 0x01, 0x01, 0x11, 0x00, 0xff,
            0xd9,
        ],
    ]
    .concat();
    let compressed = hand_made("compressed", &|i, ns| {
        let (format, data) = match i % 10 {
            4 => ("jpeg", vec![0xff, 0xd8, 0x12, 0x34, 0x56]),
            9 => ("jpeg", bomb.clone()),
            _ => ("png", png(ns)),
        };
        let message = msgs::CompressedImage {
            header: msgs::Header {
                stamp: msgs::Time::from_ns(ns),
                frame_id: "camera".into(),
            },
            format: format.into(),
            data,
        };
        (
            "/camera/image_raw/compressed",
            types::COMPRESSED_IMAGE,
            autodidact_bag::cdr::encode(&message),
        )
    });
    // Stamps step back by 20 ms every tenth frame (a driver's clock hiccup).
    let backwards = hand_made("backwards", &|i, ns| {
        let stamp = if i % 10 == 9 { ns - 70_000_000 } else { ns };
        (
            "/camera/image_raw",
            types::IMAGE,
            autodidact_bag::cdr::encode(&good(stamp)),
        )
    });

    let config = tmp.path().join("small.toml");
    std::fs::write(
        &config,
        "[trainer_node]\nmin_replay = 16\n\n[trainer.objectives.contrastive]\ntemporal_window = 8\n",
    )
    .expect("config");
    let report_path = tmp.path().join("report.json");
    let checkpoint = tmp.path().join("model");
    let mut command = autodidact();
    command
        .args(["train", "--quiet", "--steps", "3", "--config"])
        .arg(&config)
        .arg("--checkpoint")
        .arg(&checkpoint)
        .arg("--json")
        .arg(&report_path);
    for bag in [&cut, &bad_crc, &mismatched, &huge, &compressed, &backwards] {
        command.arg("--bag").arg(bag);
    }
    run_ok(&mut command);
    let report: serde_json::Value = read_json(&report_path);
    let bags = report["bags"].as_array().expect("bags");
    assert_eq!(bags[0]["damage"]["truncated_files"], 1, "cut: {}", bags[0]);
    assert!(
        bags[0]["fed"].as_u64().expect("fed") > 1000,
        "cut: intact part fed"
    );
    assert_eq!(
        bags[1]["damage"]["skipped_chunks"], 1,
        "bad CRC: {}",
        bags[1]
    );
    assert!(
        bags[1]["fed"].as_u64().expect("fed") > 1000,
        "bad CRC: other chunks fed"
    );
    assert_eq!(bags[2]["undecodable"], 12, "mismatched: {}", bags[2]);
    let dropped = &report["collector"]["dropped"];
    assert_eq!(dropped["wrong_image_size"], 12, "{dropped}");
    assert_eq!(
        dropped["undecodable_image"], 12,
        "garbage and bombs: {dropped}"
    );
    assert_eq!(dropped["stamp_not_increasing"], 6, "{dropped}");
    assert_eq!(report["train_step"], 3, "{report}");
    assert!(checkpoint.join("meta.json").exists());

    // Bags that cannot be trained on at all: a clear error, nothing written.
    let empty = tmp.path().join("empty");
    autodidact_bag::BagWriter::create(&empty)
        .expect("bag")
        .finish()
        .expect("finish");
    let no_camera = hand_made("no_camera", &|_, ns| {
        (
            "/odom_copy",
            types::ODOMETRY,
            autodidact_bag::cdr::encode(&msgs::Odometry {
                header: msgs::Header {
                    stamp: msgs::Time::from_ns(ns),
                    frame_id: "odom".into(),
                },
                ..msgs::Odometry::default()
            }),
        )
    });
    for bag in [&empty, &no_camera] {
        let target = tmp.path().join("never");
        let output = autodidact()
            .args(["train", "--quiet", "--steps", "1", "--bag"])
            .arg(bag)
            .arg("--checkpoint")
            .arg(&target)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", bag.display());
        assert!(stderr.contains("no camera topic"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!target.exists(), "nothing written for {}", bag.display());
    }
}
