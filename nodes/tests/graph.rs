//! The in-process graph on the simulator, end to end.

use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

mod common;

use autodidact_nodes::viz::VizSink;
use autodidact_nodes::{NodeError, run_graph};
use common::{run_small, small_graph};

#[test]
fn a_short_run_embeds_every_frame_with_newer_weights_while_the_loss_falls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("run.rrd");
    let report = run_small(600, &rrd);

    assert_eq!(report.sim.steps, 600);
    let frames = report.collector.frames;
    assert_eq!(
        frames, 600,
        "clean sim data: every frame accepted: {:?}",
        report.collector
    );
    assert_eq!(
        report.collector.transitions, 600,
        "every frame becomes a transition"
    );
    let encoder_drops = report.queue_drops["encoder"];
    assert_eq!(
        report.embedding_count + encoder_drops,
        frames,
        "one embedding per frame, minus counted drops"
    );
    assert!(encoder_drops * 10 <= frames, "few drops: {encoder_drops}");

    let stamps: Vec<u64> = report
        .embeddings
        .iter()
        .map(|e| e.source_stamp_ns)
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "source stamps strictly increase"
    );
    assert!(
        report
            .embeddings
            .iter()
            .all(|e| e.data.len() == 64 && e.data.iter().all(|v| v.is_finite()))
    );
    let versions: Vec<u64> = report.embeddings.iter().map(|e| e.model_version).collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "model versions never go back"
    );
    assert!(
        versions.last() > versions.first(),
        "newer weights reached the encoder while it served: {:?}..{:?}",
        versions.first(),
        versions.last()
    );

    let losses = &report.loss_history;
    assert!(
        losses.len() >= 40,
        "trained while data streamed: {} steps",
        losses.len()
    );
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (early, late) = (mean(&losses[..10]), mean(&losses[losses.len() - 10..]));
    assert!(late < early, "training loss falls: {early} -> {late}");
    assert!(report.health_reports > 0, "health was reported");
    let probe = report.probe.as_ref().expect("a probe of the run's frames");
    assert!(
        [probe.r2, probe.random_init, probe.raw_pixels]
            .iter()
            .all(|r| r.is_finite())
    );
    assert_eq!(probe.per_target.len(), 4);
    assert!(report.latency_p99_s > 0.0);
    let size = std::fs::metadata(&rrd).expect("recording written").len();
    assert!(size > 10_000, "recording has content: {size} bytes");
}

#[test]
fn connecting_to_a_closed_port_fails_fast_with_a_clear_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let config = small_graph(
        100,
        VizSink::Connect(format!("rerun+http://127.0.0.1:{port}/proxy")),
    );
    let started = Instant::now();
    let result = run_graph(&config, &AtomicBool::new(false), |_| {});
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded time: {:?}",
        started.elapsed()
    );
    match result {
        Err(NodeError::Viewer(message)) => {
            assert!(message.contains(&port.to_string()), "{message}")
        }
        other => panic!("expected a viewer error, got {other:?}"),
    }
}

#[test]
fn mismatched_parts_are_refused_before_anything_starts() {
    let mut config = small_graph(10, VizSink::Off);
    config.collector.width = 64;
    let error = run_graph(&config, &AtomicBool::new(false), |_| {}).expect_err("refused");
    assert!(
        error.to_string().contains("collector expects 64x32"),
        "{error}"
    );
}

#[test]
fn a_worker_that_fails_ends_the_run_with_its_error_instead_of_running_on() {
    // The trainer refuses a checkpoint target that is not a checkpoint, at its start; the run
    // (a million steps) must end then, with that error, and not simulate on without training.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let not_a_checkpoint = scratch.path().join("notes.txt");
    std::fs::write(&not_a_checkpoint, b"the user's notes").expect("write");
    let mut config = small_graph(1_000_000, VizSink::Off);
    config.sim.realtime_factor = 0.0;
    config.trainer_node.checkpoint_dir = Some(not_a_checkpoint.clone());
    let started = Instant::now();
    let error = run_graph(&config, &AtomicBool::new(false), |_| {}).expect_err("refused");
    assert!(
        error.to_string().contains("notes.txt"),
        "the error names the target: {error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the run ended when the trainer did: {:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read(&not_a_checkpoint).expect("still there"),
        b"the user's notes"
    );
}

#[test]
fn a_recording_file_stops_growing_at_its_size_bound() {
    let scratch = tempfile::tempdir().expect("scratch dir");
    let rrd = scratch.path().join("bounded.rrd");
    let mut config = small_graph(3000, VizSink::File(rrd.clone()));
    config.sim.realtime_factor = 0.0;
    config.viz.max_file_mib = 1;
    let report = run_graph(&config, &AtomicBool::new(false), |_| {}).expect("graph runs");
    let size = std::fs::metadata(&rrd).expect("recording").len();
    assert!(
        report.viz.skipped_file_full > 0,
        "3000 frames of 32x32 exceed 1 MiB: {:?}, {size} bytes",
        report.viz
    );
    // The size is looked at every 64 events, after what was logged is written: a few hundred
    // KiB past the bound at most, under load too (the file lagged by a megabyte when its size
    // was read without a flush, with two other runs beside the test).
    assert!(size < 2 << 20, "{size} bytes");
    assert!(
        size >= 1 << 20,
        "it filled up to the bound first: {size} bytes"
    );
}

#[test]
fn settings_a_run_could_not_start_with_are_refused_naming_the_field() {
    type Edit = fn(&mut autodidact_nodes::GraphConfig);
    let cases: [(&str, Edit); 5] = [
        ("realtime_factor", |c| c.sim.realtime_factor = 1e-12),
        ("trainer_node.threads", |c| {
            c.trainer_node.threads = 100_000_000
        }),
        ("trainer_node.health_window", |c| {
            c.trainer_node.health_window = 0
        }),
        ("encoder.threads", |c| c.encoder.threads = 0),
        ("encoder.queue", |c| c.encoder.queue = 0),
    ];
    for (field, edit) in cases {
        let mut config = small_graph(10, VizSink::Off);
        edit(&mut config);
        let error = run_graph(&config, &AtomicBool::new(false), |_| {}).expect_err(field);
        assert!(error.to_string().contains(field), "{field}: {error}");
    }
}

#[test]
fn training_on_wgpu_serves_embeddings_with_advancing_versions_and_reports_where_it_ran() {
    // Mesa's lavapipe here; a GPU where there is one. Inference stays `auto`: without a
    // hardware GPU it is the CPU's, training on wgpu no longer moves it.
    // Until a few steps are trained (a cold autotune on a software GPU takes a while), at most
    // ten minutes of sim time.
    let mut config = small_graph(36_000, VizSink::Off);
    config.trainer.backend = autodidact_learn::BackendChoice::Wgpu;
    config.trainer.publish_every = 1;
    config.sim.realtime_factor = 1.0;
    let stop = AtomicBool::new(false);
    let report = run_graph(&config, &stop, |progress| {
        if progress.train_steps >= 5 {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .expect("graph runs");

    let placements = &report.placements;
    assert_eq!(
        placements.training.kind,
        autodidact_learn::BackendKind::Wgpu,
        "{placements:?}"
    );
    // Inference stays where `auto` puts it: on a machine without a hardware GPU, the CPU.
    assert!(
        placements.inference.reason.starts_with("auto"),
        "{placements:?}"
    );
    let gpu_here = autodidact_learn::BackendChoice::Auto
        .resolve()
        .expect("auto")
        .kind;
    if gpu_here == autodidact_learn::BackendKind::Flex {
        assert_eq!(
            placements.inference.kind,
            autodidact_learn::BackendKind::Flex,
            "{placements:?}"
        );
    }
    assert!(
        report.train_steps >= 5,
        "trained on wgpu: {} steps",
        report.train_steps
    );
    assert!(report.sim.steps < 36_000, "stopped once trained");
    assert!(report.embedding_count > 100, "{}", report.embedding_count);
    let versions: Vec<u64> = report.embeddings.iter().map(|e| e.model_version).collect();
    assert!(
        versions.last() > versions.first(),
        "versions trained on wgpu reached the encoder: {:?}..{:?}",
        versions.first(),
        versions.last()
    );
    assert!(
        report
            .last_losses
            .is_some_and(|losses| losses.total.is_finite())
    );
}

#[test]
fn several_robots_feed_one_trainer_each_with_its_own_world_episodes_and_share_of_the_replay() {
    let mut config = small_graph(300, VizSink::Off);
    config.robots = 3;
    config.sim.realtime_factor = 0.0;
    let report = run_graph(&config, &AtomicBool::new(false), |_| {}).expect("graph runs");

    let names: Vec<&str> = report.robots.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["robot1", "robot2", "robot3"]);
    let seeds: Vec<u64> = report.robots.iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [0, 1000, 2000], "a world of its own for each robot");
    for robot in &report.robots {
        assert_eq!(robot.sim.steps, 300, "{}", robot.name);
        let c = &robot.collector;
        assert_eq!(
            (c.frames, c.transitions),
            (300, 300),
            "{}: every frame of its own sim, paired within its own streams: {c:?}",
            robot.name
        );
        assert_eq!(
            c.episodes, 1,
            "{}: one episode, not cut by the others' stamps",
            robot.name
        );
    }
    assert_eq!(report.sim.steps, 900);
    assert_eq!(
        report.collector.transitions, 900,
        "the totals sum the robots"
    );
    let trainer = report.trainer.as_ref().expect("trainer");
    let held: Vec<(u32, usize)> = trainer.replay().len_by_source();
    assert_eq!(
        held.len(),
        3,
        "every robot has its part of the replay buffer: {held:?}"
    );
    assert!(held.iter().all(|(_, len)| *len == 300), "{held:?}");
    assert!(report.train_steps > 0);
}
