//! The `autodidact` command as a user runs it.

use std::process::Command;

mod bags;
mod eval;

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

/// Runs the command, asserts it failed without a panic, returns its stderr.
fn run_refused(command: &mut Command) -> String {
    let output = command.output().expect("run the binary");
    assert!(!output.status.success(), "succeeded: {command:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
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
    let stderr = run_refused(
        autodidact()
            .args(["sim", "--steps", "5", "--quiet", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(dir.path()),
    );
    assert!(
        stderr.contains("camera.width/height"),
        "names the field: {stderr}"
    );

    // A misspelt section or field is an error naming it, never silently ignored.
    for (text, name) in [
        ("[sim.camra]\nwidth = 32\n", "camra"),
        ("[trainer_node]\nmin_replai = 8\n", "min_replai"),
        ("[eval]\npairz = 3\n", "pairz"),
    ] {
        std::fs::write(&config, text).expect("write");
        let command = if name == "pairz" { "eval" } else { "sim" };
        let output = autodidact()
            .args([command, "--quiet", "--config"])
            .arg(&config)
            .output()
            .expect("run the binary");
        assert!(!output.status.success(), "{text:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{text:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

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
fn bench_learn_times_a_training_step_at_each_batch_size_it_is_given() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("learn.json");
    let stdout = run_ok(
        autodidact()
            .args([
                "bench",
                "learn",
                "--backends",
                "flex",
                "--batch-sizes",
                "4,8",
                "--steps",
                "1",
                "--encodes",
                "1",
                "--plans",
                "1",
                "--json",
            ])
            .arg(&json),
    );
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json");
    let rows = rows.as_array().expect("rows");
    for batch in [4.0, 8.0] {
        let row = rows
            .iter()
            .find(|row| {
                row["case"]
                    .as_str()
                    .is_some_and(|case| case.contains(&format!("train step, batch {batch}")))
            })
            .unwrap_or_else(|| panic!("no training row for batch {batch}: {stdout}"));
        let median_s = row["median_us"].as_f64().expect("median") * 1e-6;
        let per_second = row["per_second"].as_f64().expect("per second");
        // Samples per second: the batch over the median step.
        assert!(
            (per_second * median_s / batch - 1.0).abs() < 1e-6,
            "{row} for batch {batch}"
        );
        // What the relative-pose head costs: the same step without it, beside it.
        let without = format!("train step, batch {batch}, without the odometry objective");
        assert!(
            rows.iter().any(|row| row["case"]
                .as_str()
                .is_some_and(|case| case.ends_with(&without))),
            "no {without:?} row: {stdout}"
        );
    }
    assert!(
        stdout.contains("train step, batch 4") && stdout.contains("train step, batch 8"),
        "{stdout}"
    );
    // What the goal at the predicted proprio costs the planner: both plans, per table.
    for goal in ["goal at rest", "goal image at the predicted proprio"] {
        let plans = rows
            .iter()
            .filter(|row| {
                row["case"]
                    .as_str()
                    .is_some_and(|case| case.contains("plan 1 frame") && case.ends_with(goal))
            })
            .count();
        assert_eq!(plans, 2, "one {goal:?} row per batch size: {stdout}");
    }

    let stderr = run_refused(autodidact().args([
        "bench",
        "learn",
        "--backends",
        "flex",
        "--batch-sizes",
        "1",
    ]));
    assert!(stderr.contains("batch_size must be >= 2"), "{stderr}");
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
fn run_with_several_robots_shows_each_robot_in_the_summary_and_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("small.toml");
    std::fs::write(&config, "[sim.camera]\nwidth = 32\nheight = 32\n").expect("write");
    let json = dir.path().join("report.json");
    let stdout = run_ok(
        autodidact()
            .args([
                "run",
                "--robots",
                "2",
                "--steps",
                "120",
                "--realtime",
                "0",
                "--quiet",
                "--no-viz",
                "--seed",
                "7",
                "--config",
            ])
            .arg(&config)
            .arg("--json")
            .arg(&json),
    );
    for row in ["robot1 (seed 7)", "robot2 (seed 1007)", "120 frames"] {
        assert!(stdout.contains(row), "summary row {row}: {stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report")).expect("JSON");
    assert_eq!(report["sim"]["steps"], 240);
    assert_eq!(report["robots"][1]["name"], "robot2");
    assert_eq!(report["robots"][1]["collector"]["transitions"], 120);
    let stderr = run_refused(autodidact().args([
        "run", "--robots", "0", "--steps", "5", "--quiet", "--no-viz",
    ]));
    assert!(stderr.contains("robots must be"), "{stderr}");
}

#[test]
fn run_refuses_contradictory_viewer_flags_and_unreachable_viewers() {
    let stderr = run_refused(
        autodidact()
            .args(["run", "--steps", "5", "--quiet", "--viewer", "--connect"])
            .arg("rerun+http://127.0.0.1:9/proxy"),
    );
    assert!(stderr.contains("exclude each other"), "{stderr}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let stderr = run_refused(
        autodidact()
            .args(["run", "--steps", "5", "--quiet", "--connect"])
            .arg(format!("rerun+http://127.0.0.1:{port}/proxy")),
    );
    assert!(stderr.contains("no rerun viewer reachable"), "{stderr}");
}

/// The Python interpreter `var` names. Unset, the calling test is skipped with `skipped` printed,
/// unless `require` is set (as `scripts/test-all` does): then unset is a failure.
fn python_from_env(var: &str, require: &str, skipped: &str) -> Option<std::ffi::OsString> {
    let python = std::env::var_os(var);
    if python.is_none() {
        assert!(
            std::env::var_os(require).is_none(),
            "{require} is set but {var} is not"
        );
        println!("{skipped}: {var} is not set");
    }
    python
}

/// `autodidact bench pytorch` as bench/README.md documents it: PyTorch builds the same model
/// from autodidact's weights, both embed one frame and train on one batch to the same numbers
/// before anything is timed, and the report has one key per ratio. `scripts/test-all` installs
/// CPU PyTorch (`bench/setup-torch`); a plain `cargo test` without it skips this and says so.
#[test]
fn bench_pytorch_builds_the_same_model_and_reports_each_ratio() {
    let Some(python) = python_from_env(
        "AUTODIDACT_TORCH_PYTHON",
        "AUTODIDACT_REQUIRE_TORCH",
        "bench pytorch not run (bench/setup-torch sets it up)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("vs-pytorch.json");
    let stdout = run_ok(
        autodidact()
            .args(["bench", "pytorch", "--python"])
            .arg(python)
            .arg("--script")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/bench/pytorch_world_model.py"
            ))
            .args([
                "--threads",
                "2",
                "--rounds",
                "1",
                "--steps",
                "1",
                "--encodes",
                "5",
                "--batches",
                "2",
                "--graph-seconds",
                "0",
                "--sim-seconds",
                "0.2",
                "--json",
            ])
            .arg(&report_path),
    );
    for row in [
        "train step, batch 64",
        "encode 1 frame, p50",
        "peak RSS",
        "same model",
    ] {
        assert!(stdout.contains(row), "table row {row:?} missing:\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("JSON");
    assert_eq!(report["schema"], "autodidact.bench.pytorch/1");
    for key in [
        "train_ratio_vs_pytorch",
        "encode_ratio_vs_pytorch",
        "encode_p99_ratio_vs_pytorch",
        "sim_frames_per_s_64",
    ] {
        let value = report[key].as_f64().unwrap_or(f64::NAN);
        assert!(value.is_finite() && value > 0.0, "{key} = {}", report[key]);
    }
    assert!(report["image_to_embedding_p99_ms_while_training"].is_null());
    assert_eq!(report["autodidact"]["params"], report["pytorch"]["params"]);
    assert_eq!(report["batch_size"], 64);
    // Every loss term and the gradient norm agree on the first batch: the same model.
    let terms = report["loss_check"].as_array().expect("loss_check");
    assert!(terms.len() >= 9, "{terms:?}");
    for term in terms {
        let difference = term["relative_difference"].as_f64().unwrap_or(f64::NAN);
        assert!(difference <= 2e-3, "{term}");
    }
    let embedding = report["embedding_max_abs_difference"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!(embedding <= 1e-3, "embeddings differ by {embedding}");
}

/// A missing PyTorch, or a Python without torch, is a clear error at once, not a panic or a
/// hang.
#[test]
fn bench_pytorch_without_torch_says_what_is_missing() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/pytorch_world_model.py");
    for python in ["/nonexistent/python", "python3"] {
        let output = autodidact()
            .args(["bench", "pytorch", "--script", script, "--python", python])
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONPATH", "/nonexistent")
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if python == "python3" && output.status.success() {
            // The system python has torch: nothing to refuse here.
            continue;
        }
        assert!(!output.status.success());
        assert!(
            stderr.contains(python) && stderr.contains("bench/setup-torch"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
