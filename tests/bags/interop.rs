//! Bags against Python's rosbags: every input kind it writes, and what ours write read back.
use super::*;

/// The same scene (640×480) recorded by rosbags as raw rgb8, JPEG, PNG, row-padded bgr8, yuv422
/// (UYVY), bayer_rggb8, big-endian mono16, in a sqlite3 bag and as a bare .mcap, with
/// TwistStamped commands: every kind is read, fitted to the model's 64×64, and embedded by the
/// same model as the rgb8 reference within the stated tolerance (mean pixel difference ≤ 4 of
/// 255, embedding cosine ≥ 0.99; mono16 against the grey of the reference, looser); then
/// `train --bag` trains on a JPEG and a sqlite3 bag together.
#[test]
fn bags_from_an_independent_writer_in_every_input_kind_embed_alike_and_train() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    run_script(&python, "write_bags.py", &[tmp.path()]);
    let model = Trainer::new(TrainerConfig::for_inputs(64, 64, 7)).expect("model");
    let snapshot = model.snapshot();
    let embed = |images: &[Vec<u8>], proprio: &[Vec<f32>]| {
        let images: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
        let proprio: Vec<&[f32]> = proprio.iter().map(Vec::as_slice).collect();
        snapshot.embed_batch(&images, &proprio).expect("embed")
    };
    let (reference, proprio) = frames_of(&tmp.path().join("rgb8"));
    assert_eq!(reference.len(), 30, "every frame of the reference bag");
    let reference_embeddings = embed(&reference, &proprio);
    let grey: Vec<Vec<u8>> = reference
        .iter()
        .map(|rgb| {
            rgb.chunks_exact(3)
                .flat_map(|p| {
                    let g = (0.299 * f64::from(p[0])
                        + 0.587 * f64::from(p[1])
                        + 0.114 * f64::from(p[2]))
                    .round() as u8;
                    [g, g, g]
                })
                .collect()
        })
        .collect();
    let grey_embeddings = embed(&grey, &proprio);
    let cases: [(&str, f64, f64, bool); 8] = [
        ("jpeg", 4.0, 0.99, false),
        ("png", 0.0, 0.999_999, false),
        ("bgr8_padded", 0.0, 0.999_999, false),
        ("yuv422", 4.0, 0.99, false),
        ("bayer_rggb8", 4.0, 0.99, false),
        ("mono16", 4.0, 0.99, true),
        ("db3", 0.0, 0.999_999, false),
        ("bare.mcap", 0.0, 0.999_999, false),
    ];
    for (kind, max_pixel_diff, min_cosine, is_grey) in cases {
        let (images, kind_proprio) = frames_of(&tmp.path().join(kind));
        assert_eq!(images.len(), 30, "{kind}: every frame");
        assert_eq!(kind_proprio, proprio, "{kind}: the same proprio");
        let (want_images, want_embeddings) = if is_grey {
            (&grey, &grey_embeddings)
        } else {
            (&reference, &reference_embeddings)
        };
        let embeddings = embed(&images, &kind_proprio);
        for (i, image) in images.iter().enumerate() {
            let diff = mean_abs_diff(image, &want_images[i]);
            assert!(
                diff <= max_pixel_diff,
                "{kind} frame {i}: mean pixel difference {diff:.2} > {max_pixel_diff}"
            );
            let similarity = cosine(&embeddings[i], &want_embeddings[i]);
            assert!(
                similarity >= min_cosine,
                "{kind} frame {i}: embedding cosine {similarity:.5} < {min_cosine}"
            );
        }
    }

    // bag info names what each topic is for.
    let info = run_ok(
        autodidact()
            .args(["bag", "info"])
            .arg(tmp.path().join("jpeg")),
    );
    for expected in [
        "/camera/image_raw/compressed",
        "camera",
        "cmd_vel",
        "not needed: images are fitted",
        "tf2_msgs/msg/TFMessage is not an input",
    ] {
        assert!(
            info.contains(expected),
            "bag info lacks {expected:?}:\n{info}"
        );
    }

    // Training on two bags at once: each its own episode, every frame taken in.
    let checkpoint = tmp.path().join("model");
    let report_path = tmp.path().join("train.json");
    let config = tmp.path().join("small.toml");
    // 30-frame bags: sequences shorter than the default temporal window of 30.
    std::fs::write(
        &config,
        "[trainer_node]\nmin_replay = 16\n\n[trainer.objectives.contrastive]\ntemporal_window = 8\n",
    )
    .expect("config");
    let stdout = run_ok(
        autodidact()
            .args(["train", "--quiet", "--steps", "4", "--bag"])
            .arg(tmp.path().join("jpeg"))
            .arg("--bag")
            .arg(tmp.path().join("db3"))
            .arg("--checkpoint")
            .arg(&checkpoint)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .arg(&report_path),
    );
    assert!(stdout.contains("train steps"), "{stdout}");
    let report: serde_json::Value = read_json(&report_path);
    assert_eq!(report["collector"]["frames"], 60, "{report}");
    assert_eq!(report["train_step"], 4, "{report}");
    assert_eq!(report["transitions"], 60, "{report}");
    assert!(checkpoint.join("meta.json").exists(), "checkpoint written");
    // A second run refuses to replace the model unless asked to continue it.
    let again = autodidact()
        .args(["train", "--quiet", "--steps", "2", "--bag"])
        .arg(tmp.path().join("png"))
        .arg("--checkpoint")
        .arg(&checkpoint)
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    run_ok(
        autodidact()
            .args(["train", "--quiet", "--resume", "--steps", "2", "--bag"])
            .arg(tmp.path().join("png"))
            .arg("--checkpoint")
            .arg(&checkpoint)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .arg(&report_path),
    );
    let report: serde_json::Value = read_json(&report_path);
    assert_eq!(report["train_step"], 6, "resumed at 4, two more: {report}");
}

/// `run --bag-out` writes a rosbag2 MCAP directory that rosbags reads: the sim node's topics
/// with their standard types, one message per tick on each sensor topic, image stamps equal to
/// the receive times, REP 105 frames, and the simulator's own pixels.
#[test]
fn a_bag_written_by_run_is_read_by_rosbags_with_the_simulator_s_pixels() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let bag = tmp.path().join("sim_bag");
    let steps = 40u64;
    let run_report = tmp.path().join("run.json");
    record_run(&bag, 3, steps, &["--json".as_ref(), run_report.as_os_str()]);
    let out = tmp.path().join("read");
    run_script(&python, "read_bag.py", &[&bag, &out]);
    let report = read_json(&out.join("report.json"));
    let topics = &report["topics"];
    for (topic, type_name) in [
        ("/camera/image_raw", "sensor_msgs/msg/Image"),
        ("/camera/camera_info", "sensor_msgs/msg/CameraInfo"),
        ("/joint_states", "sensor_msgs/msg/JointState"),
        ("/imu/data", "sensor_msgs/msg/Imu"),
        ("/odom", "nav_msgs/msg/Odometry"),
        ("/cmd_vel", "geometry_msgs/msg/Twist"),
        ("/clock", "rosgraph_msgs/msg/Clock"),
        ("/ground_truth/odom", "nav_msgs/msg/Odometry"),
    ] {
        assert_eq!(topics[topic]["type"], type_name, "{topic}: {report}");
        assert_eq!(topics[topic]["count"], steps, "{topic}: one per tick");
    }
    assert_eq!(report["frames"]["camera"], "camera");
    assert_eq!(
        report["frames"]["odom"],
        serde_json::json!(["odom", "base_link"])
    );
    assert_eq!(
        report["frames"]["ground_truth"],
        serde_json::json!(["world", "base_link"])
    );
    assert_eq!(
        report["image_shapes"][0],
        serde_json::json!([64, 64, 192, "rgb8"])
    );
    let run: serde_json::Value = read_json(&run_report);
    assert_eq!(run["bag_out"]["ticks"], steps, "{run}");

    // The pixels are the simulator's: the same seed gives the same frames.
    let options = autodidact::run::RunOptions {
        steps,
        minutes: None,
        realtime: 0.0,
        seed: 3,
        episode_steps: 1200,
        rrd: tmp.path().join("unused.rrd"),
        viewer: false,
        connect: None,
        no_viz: true,
        checkpoint: None,
        backend: Some(autodidact_learn::BackendChoice::Flex),
        inference_backend: None,
        robots: 1,
    };
    let config =
        autodidact::run::graph_config(&options, &autodidact::FileConfig::default()).expect("cfg");
    let mut images = Vec::new();
    let clock = ManualClock::new();
    let wall = autodidact_nodes::WallClock::new();
    autodidact_nodes::sim::run_sim(
        &config.sim,
        steps,
        &std::sync::atomic::AtomicBool::new(false),
        &clock,
        &wall,
        |tick| {
            for message in tick.messages {
                if let autodidact_nodes::msg::SensorMsg::Image(image) = message {
                    images.push(image.data.to_vec());
                }
            }
        },
    )
    .expect("sim");
    assert_eq!(images.len() as u64, steps);
    for i in [0, steps as usize / 2, steps as usize - 1] {
        let from_bag = std::fs::read(out.join(format!("image_{i}.bin"))).expect("image");
        assert!(
            from_bag == images[i],
            "image {i} differs from the simulator's"
        );
    }
}

/// `sim --bag-out` records what the sim node would publish, tick for tick: the camera image it
/// saves as PNG is the image in the bag at the same tick.
#[test]
fn sim_records_its_run_as_a_bag_with_the_pixels_it_saves() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bag_dir = tmp.path().join("bag");
    run_ok(
        autodidact()
            .args([
                "sim", "--quiet", "--steps", "30", "--frames", "1", "--seed", "4", "--out",
            ])
            .arg(tmp.path().join("frames"))
            .arg("--bag-out")
            .arg(&bag_dir),
    );
    let bag = Bag::open(&bag_dir).expect("bag");
    let count = |name: &str| {
        bag.topics()
            .iter()
            .find(|t| t.name == name)
            .map_or(0, |t| t.count)
    };
    for topic in [
        "/camera/image_raw",
        "/camera/camera_info",
        "/joint_states",
        "/imu/data",
        "/odom",
        "/cmd_vel",
        "/clock",
        "/ground_truth/odom",
    ] {
        assert_eq!(count(topic), 30, "{topic}");
    }
    let camera = bag
        .topics()
        .iter()
        .position(|t| t.name == "/camera/image_raw")
        .expect("camera");
    let images: Vec<autodidact_bag::msgs::Image> = bag
        .messages()
        .filter(|m| m.topic == camera)
        .map(|m| autodidact_bag::cdr::decode(&m.data).expect("image"))
        .collect();
    // The PNG of frame 0 is the observation after the first step: the bag's second image.
    let png = image::open(tmp.path().join("frames/rgb_000.png"))
        .expect("png")
        .to_rgb8();
    assert!(
        images[1].data == png.into_raw(),
        "the bag holds the saved pixels"
    );
    assert!(
        images
            .windows(2)
            .all(|w| { w[0].header.stamp.to_ns() < w[1].header.stamp.to_ns() })
    );
}
