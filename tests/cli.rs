//! The `autodidact` command as a user runs it.

use std::process::Command;

fn autodidact() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autodidact"))
}

/// Runs the command, asserts it succeeded, returns its stdout.
fn run_ok(command: &mut Command) -> String {
    let output = command.output().expect("run the binary");
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn run_demo(dir: &std::path::Path, seed: &str) -> serde_json::Value {
    let stdout = run_ok(
        autodidact()
            .args([
                "sim", "--steps", "120", "--frames", "3", "--quiet", "--seed", seed, "--out",
            ])
            .arg(dir),
    );
    assert!(
        stdout.contains("frames/s") && stdout.contains("digest"),
        "summary table: {stdout}"
    );
    let summary = std::fs::read(dir.join("summary.json")).expect("summary.json");
    serde_json::from_slice(&summary).expect("summary is JSON")
}

#[test]
fn sim_writes_frames_and_a_reproducible_summary() {
    let first = tempfile::tempdir().expect("tempdir");
    let summary = run_demo(first.path(), "5");
    assert_eq!(summary["steps"], 120);
    assert!(
        summary["distance_m"].as_f64().expect("distance") > 0.5,
        "robot should move: {summary}"
    );
    for index in 0..3 {
        for kind in ["rgb", "depth"] {
            let path = first.path().join(format!("{kind}_{index:03}.png"));
            let image = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!((image.width(), image.height()), (64, 64));
        }
    }
    let second = tempfile::tempdir().expect("tempdir");
    let again = run_demo(second.path(), "5");
    assert_eq!(summary["digest"], again["digest"], "same seed, same data");
    let other = tempfile::tempdir().expect("tempdir");
    assert_ne!(summary["digest"], run_demo(other.path(), "6")["digest"]);
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[sim.camera]\nwidth = 0\n").expect("write");
    let output = autodidact()
        .args(["sim", "--steps", "5", "--quiet", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path())
        .output()
        .expect("run the binary");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("camera.width/height"),
        "names the field: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    std::fs::write(&config, "[sim.camera]\nwidth = 32\nheight = 24\n").expect("write");
    run_ok(
        autodidact()
            .args([
                "sim", "--steps", "5", "--frames", "1", "--quiet", "--config",
            ])
            .arg(&config)
            .arg("--out")
            .arg(dir.path()),
    );
    let image = image::open(dir.path().join("rgb_000.png")).expect("frame");
    assert_eq!((image.width(), image.height()), (32, 24));
}

#[test]
fn bench_sim_prints_its_table() {
    let stdout = run_ok(autodidact().args(["bench", "sim", "--seconds", "0.05"]));
    for case in ["render 64x64", "render 128x128", "physics sub-step"] {
        assert!(stdout.contains(case), "missing {case}: {stdout}");
    }
}

#[test]
fn run_records_the_node_graph_and_prints_its_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("small.toml");
    std::fs::write(&config, "[sim.camera]\nwidth = 32\nheight = 32\n").expect("write");
    let rrd = dir.path().join("run.rrd");
    let json = dir.path().join("report.json");
    let stdout = run_ok(
        autodidact()
            .args([
                "run",
                "--steps",
                "300",
                "--realtime",
                "0",
                "--quiet",
                "--config",
            ])
            .arg(&config)
            .arg("--rrd")
            .arg(&rrd)
            .arg("--json")
            .arg(&json),
    );
    for row in [
        "frames/s",
        "train steps",
        "image→embedding",
        "pose probe",
        "recording",
    ] {
        assert!(stdout.contains(row), "summary row {row}: {stdout}");
    }
    assert!(std::fs::metadata(&rrd).expect("recording").len() > 1000);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    assert_eq!(report["sim"]["steps"], 300);
    assert_eq!(report["collector"]["frames"], 300);
}

#[test]
fn run_refuses_contradictory_viewer_flags_and_unreachable_viewers() {
    let output = autodidact()
        .args(["run", "--steps", "5", "--quiet", "--viewer", "--connect"])
        .arg("rerun+http://127.0.0.1:9/proxy")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("exclude each other"));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let output = autodidact()
        .args(["run", "--steps", "5", "--quiet", "--connect"])
        .arg(format!("rerun+http://127.0.0.1:{port}/proxy"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no rerun viewer reachable"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
