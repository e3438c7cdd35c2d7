//! The recording, read back by an independent reader: the rerun Python SDK (pinned to the
//! same 0.36.3) checks the entity tree, archetypes and plausible content.
//!
//! `scripts/test-all` sets `AUTODIDACT_PYTHON` to a venv with `rerun-sdk[datafusion]==0.36.3`
//! and `AUTODIDACT_REQUIRE_PYTHON=1`, so CI cannot skip this; a plain `cargo test` without the
//! venv skips it with a printed reason.

mod common;

use std::path::Path;
use std::process::Command;

/// The interpreter with rerun-sdk, or `None` (printed) when the test is skipped.
fn rerun_python() -> Option<std::ffi::OsString> {
    let python = std::env::var_os("AUTODIDACT_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("AUTODIDACT_REQUIRE_PYTHON").is_none(),
            "AUTODIDACT_REQUIRE_PYTHON is set but AUTODIDACT_PYTHON is not"
        );
        println!(
            "skipped: set AUTODIDACT_PYTHON to a python with rerun-sdk[datafusion]==0.36.3 (scripts/test-all does)"
        );
    }
    python
}

/// Runs `tests/check_recording.py` on `rrd` with `args`; fails the test unless it passes.
/// Returns what it printed.
fn check_recording(python: std::ffi::OsString, rrd: &Path, args: &[&str]) -> String {
    run_checker(python, "check_recording.py", rrd, args)
}

/// Runs the checker `tests/{script}` on `rrd` with `args`; fails the test unless it passes.
/// Returns what it printed.
fn run_checker(python: std::ffi::OsString, script: &str, rrd: &Path, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let output = Command::new(python)
        .arg(script)
        .arg(rrd)
        .args(args)
        .output()
        .expect("run the python checker");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "recording check failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn the_recording_has_the_documented_entities_with_plausible_content() {
    let Some(python) = rerun_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("check.rrd");
    let report = common::run_small(400, &rrd);
    assert!(
        report.train_steps >= 20,
        "trained {} steps",
        report.train_steps
    );
    let stdout = check_recording(python, &rrd, &["32", "32"]);
    assert!(stdout.contains("recording OK"));
}

#[test]
fn a_fleet_recording_shows_each_robot_in_its_own_world() {
    let Some(python) = rerun_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("fleet.rrd");
    let mut config = common::small_graph(400, autodidact_nodes::viz::VizSink::File(rrd.clone()));
    config.robots = 2;
    let report =
        autodidact_nodes::run_graph(&config, &std::sync::atomic::AtomicBool::new(false), |_| {})
            .expect("graph runs");
    assert_eq!(report.robots.len(), 2);
    let stdout = check_recording(python, &rrd, &["32", "32", "2"]);
    assert!(stdout.contains("robot2_camera_rows") && stdout.contains("recording OK"));
}

#[test]
fn the_planner_memory_route_followed_path_and_goal_seen_are_drawn() {
    use autodidact_nodes::planner::MemoryMap;
    use autodidact_nodes::viz::{Layout, VizConfig, VizEvent, VizSink, open_recording, run_viz};
    let Some(python) = rerun_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let rrd = dir.path().join("planner.rrd");
    let config = VizConfig {
        sink: VizSink::File(rrd.clone()),
        ..VizConfig::default()
    };
    let layout = Layout {
        robots: 1,
        planner: true,
    };
    let (recording, destination) = open_recording(&config, layout).expect("recording");
    let (send, inbox) = std::sync::mpsc::sync_channel(8);
    let corner = vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]];
    let events = [
        VizEvent::PlannerMemory {
            stamp_ns: 1_000_000_000,
            map: Box::new(MemoryMap {
                nodes: corner.clone(),
                edges: vec![[0, 1], [1, 2], [0, 2]],
            }),
        },
        VizEvent::PlannerRoute {
            stamp_ns: 1_050_000_000,
            route: corner.clone(),
        },
        VizEvent::PlannerPath {
            stamp_ns: 1_100_000_000,
            path: vec![[0.0, 0.0], [0.3, 0.1], [0.5, 0.2], [0.5, 0.5]],
        },
        // Followed to its end: no path any more.
        VizEvent::PlannerPath {
            stamp_ns: 1_200_000_000,
            path: Vec::new(),
        },
        // The relative-pose head reads the goal 30° to the left: the robot turns; then 5°
        // to the right: the MPC drives.
        VizEvent::PlannerGoalSeen {
            stamp_ns: 1_250_000_000,
            heading_deg: 30.0,
            distance_m: 0.2,
            turning: true,
        },
        VizEvent::PlannerGoalSeen {
            stamp_ns: 1_300_000_000,
            heading_deg: -5.0,
            distance_m: 0.15,
            turning: false,
        },
    ];
    for event in events {
        send.send(event).expect("queued");
    }
    drop(send);
    let stats = run_viz(&config, recording, destination, inbox);
    assert_eq!(stats.logged, 6);
    let stdout = run_checker(
        python,
        "check_planner_recording.py",
        &rrd,
        &["3", "3", "3", "4", "30,-5", "0.2,0.15", "1,0"],
    );
    assert!(stdout.contains("planner recording OK"));
}
