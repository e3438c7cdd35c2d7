//! The `autodidact` command as a user runs it.

use std::process::Command;

mod bags;

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

/// Reads an eval recording back with the rerun SDK and checks it against the report of the same
/// run (`tests/check_eval_recording.py`). `scripts/test-all` provides the SDK; a plain
/// `cargo test` without it only checks that the file was written.
fn check_eval_recording(rrd: &std::path::Path, report: &std::path::Path) {
    assert!(
        std::fs::metadata(rrd).expect("eval recording").len() > 1000,
        "eval recording is empty"
    );
    let Some(python) = python_from_env(
        "AUTODIDACT_PYTHON",
        "AUTODIDACT_REQUIRE_PYTHON",
        "eval recording content not checked",
    ) else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_eval_recording.py");
    let output = Command::new(python)
        .arg(script)
        .arg(rrd)
        .arg(report)
        .output()
        .expect("run the python checker");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("eval recording OK"),
        "eval recording check failed:\n{stdout}\n{stderr}"
    );
}

/// `autodidact eval` as documented in docs/eval.md: it trains (or loads) a model, prints its
/// table, writes the `autodidact.eval/2` report, and gives the same report for the same
/// checkpoint and seed.
#[test]
fn eval_writes_the_documented_report_and_repeats_it_for_a_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join("model");
    let quick = [
        "eval",
        "--pairs",
        "2",
        "--episodes",
        "2",
        "--plan-steps",
        "8",
        "--far-plan-steps",
        "12",
        "--memory-steps",
        "60",
        "--home-worlds",
        "0,1",
        "--quiet",
    ];
    let table = run_ok(
        autodidact()
            .args(quick)
            .args(["--train-steps", "12", "--save-checkpoint"])
            .arg(&checkpoint)
            .arg("--json")
            .arg(dir.path().join("fresh.json"))
            .arg("--rrd")
            .arg(dir.path().join("eval.rrd")),
    );
    check_eval_recording(&dir.path().join("eval.rrd"), &dir.path().join("fresh.json"));
    for row in [
        "new worlds: pose probe R² (random init / raw pixels)",
        "home: pose probe R² (random init / raw pixels)",
        "home: k-NN position error",
        "3-step prediction ÷ copy-last",
        "24-step prediction ÷ copy-last (planner's rollout)",
        "home: candidates (2 pairs × 64, 24 steps) reached, the model's choice (random init / best / any)",
        "new worlds: candidates' rank correlation, predicted vs seen / vs truth (seen / image alone vs truth)",
        "effective rank",
        "new worlds: planning easy (2 pairs, 8 steps): planner",
        "new worlds: planning far (2 pairs, 12 steps): random policy",
        "home: planning across (2 pairs, 12 steps): memory planner",
        "planner, random-init model",
    ] {
        assert!(table.contains(row), "table lacks {row:?}:\n{table}");
    }

    let evaluate = |name: &str, seed: &str| -> serde_json::Value {
        let path = dir.path().join(name);
        run_ok(
            autodidact()
                .args(quick)
                .args(["--seed", seed, "--checkpoint"])
                .arg(&checkpoint)
                .arg("--json")
                .arg(&path),
        );
        serde_json::from_slice(&std::fs::read(path).expect("report")).expect("JSON")
    };
    let report = evaluate("a.json", "3");
    assert_eq!(report, evaluate("b.json", "3"), "same checkpoint and seed");
    let other = evaluate("c.json", "4");
    assert_ne!(
        report["data"]["episode_seeds"], other["data"]["episode_seeds"],
        "another seed, other held-out worlds"
    );

    // The documented schema.
    assert_eq!(report["schema"], "autodidact.eval/2");
    assert!(
        report.get("relative_pose").is_none() && report["home"].get("relative_pose").is_none(),
        "no relative-pose scores for a model without the odometry objective's head"
    );
    assert_eq!(report["model"]["train_step"], 12);
    assert_eq!(report["model"]["image"], serde_json::json!([32, 32]));
    let seeds = report["data"]["episode_seeds"].as_array().expect("seeds");
    assert_eq!(seeds.len(), 2);
    assert!(
        seeds.iter().all(|s| s.as_u64() >= Some(1_000_000)),
        "held out"
    );
    let number = |v: &serde_json::Value, what: &str| -> f64 {
        v.as_f64()
            .filter(|x| x.is_finite())
            .unwrap_or_else(|| panic!("{what} is not a finite number: {v}"))
    };
    let home = &report["home"];
    assert_eq!(home["world_seeds"], serde_json::json!([0, 1]));
    assert_eq!(
        home["memory_frames"], 120,
        "60 remembered steps in each home world"
    );
    assert_eq!(
        home["scored_frames"],
        2 * 500,
        "new drives of the default length"
    );
    let sides = [
        "representation",
        "random_init_representation",
        "raw_pixels_representation",
    ];
    for (protocol, side) in [&report, home]
        .into_iter()
        .flat_map(|p| sides.iter().map(move |side| (p, *side)))
    {
        let r = &protocol[side];
        for key in [
            "pose_r2",
            "nearest_object_r2",
            "knn_position_error_m",
            "knn_yaw_error_deg",
            "knn_image_only_position_error_m",
            "knn_image_only_yaw_error_deg",
        ] {
            number(&r[key], key);
        }
        if side == "raw_pixels_representation" {
            assert_eq!(
                r["knn_image_only_position_error_m"], r["knn_position_error_m"],
                "raw pixels are the image alone"
            );
        }
        assert_eq!(r["pose_r2_per_target"].as_array().map(Vec::len), Some(4));
    }
    let ratios = report["prediction_vs_copy_last"]
        .as_array()
        .expect("ratios");
    let horizon = autodidact_learn::ObjectivesConfig::default()
        .forward
        .horizon;
    assert_eq!(ratios.len(), horizon, "k = 1..H with the default H");
    let planner = autodidact_learn::PlannerConfig::default();
    let rollout = report["planner_rollout_vs_copy_last"]
        .as_array()
        .expect("the ratios as far as the planner looks");
    assert_eq!(
        rollout.len(),
        planner.horizon * planner.action_repeat,
        "k = 1..horizon × action_repeat of the planner"
    );
    for ratio in rollout {
        assert!(number(ratio, "ratio") > 0.0);
    }
    // The candidates the planner would weigh, ranked by the model and driven in the world.
    for protocol in [&report, home] {
        let ranking = &protocol["candidate_ranking"];
        assert_eq!(ranking["pairs"], 2);
        assert_eq!(ranking["candidates"], planner.samples);
        assert_eq!(ranking["steps"], planner.horizon * planner.action_repeat);
        let reached = |choice: &str| number(&ranking[choice]["reached_rate"], choice);
        for choice in [
            "chosen_by_model",
            "chosen_by_encoder",
            "chosen_by_image",
            "chosen_by_random_init",
            "every_candidate",
        ] {
            assert!(
                (0.0..=reached("best")).contains(&reached(choice)),
                "{choice} reached {} of the pairs, more than the best candidate",
                reached(choice)
            );
            number(&ranking[choice]["position_error_m"], choice);
        }
        for key in [
            "predicted_vs_seen_rank_correlation",
            "predicted_vs_truth_rank_correlation",
            "seen_vs_truth_rank_correlation",
            "image_vs_truth_rank_correlation",
        ] {
            assert!((-1.0..=1.0).contains(&number(&ranking[key], key)), "{key}");
        }
    }
    let rank = number(&report["collapse"]["effective_rank"], "effective rank");
    assert!((1.0..=128.0).contains(&rank));
    for settings in [&report["planning"], &home["planning"]] {
        let settings = settings.as_array().expect("planning");
        assert_eq!(settings.len(), 3);
        for ((setting, name), steps) in settings
            .iter()
            .zip(["easy", "far", "across"])
            .zip([8, 12, 12])
        {
            assert_eq!(setting["setting"], name);
            assert_eq!(setting["pairs"], 2);
            assert_eq!(setting["plan_steps"], steps);
            for agent in [
                "planner",
                "memory_planner",
                "random_policy",
                "random_init_planner",
            ] {
                let score = &setting[agent];
                let rate = number(&score["success_rate"], "success rate");
                assert!((0.0..=1.0).contains(&rate));
                // An attempt that ended at its goal was there on the way.
                let passed = number(&score["passed_rate"], "passed rate");
                assert!((rate..=1.0).contains(&passed), "{rate} {passed}");
                for key in [
                    "final_position_error_m",
                    "final_yaw_error_deg",
                    "start_position_error_m",
                    "start_yaw_error_deg",
                ] {
                    assert!(number(&score[key], key) >= 0.0);
                }
            }
            // The memory's poses are scored against the truth: its odometry's, without a
            // pose graph (off by default, so it rejected nothing).
            let memory = &setting["memory_localisation"];
            assert!(number(&memory["map_error_m"], "map error") >= 0.0);
            assert!(memory["rejected_shortcuts"].is_null());
            // Every agent starts from the same pose with the same goal.
            assert_eq!(
                setting["planner"]["start_yaw_error_deg"],
                setting["random_policy"]["start_yaw_error_deg"]
            );
            assert_eq!(
                setting["planner"]["start_position_error_m"],
                setting["memory_planner"]["start_position_error_m"]
            );
        }
    }
    assert_eq!(report["config"]["pairs"], 2);

    // A missing checkpoint is a clear error.
    let stderr = run_refused(
        autodidact()
            .args(["eval", "--quiet", "--checkpoint"])
            .arg(dir.path().join("nope")),
    );
    assert!(stderr.contains("checkpoint"), "{stderr}");
}

/// The bar docs/eval.md sets for the reference planner. With a model `autodidact eval` trains
/// in the test's budget (900 steps on 32² images, on drives that turn as the simulator's
/// exploration does), whose relative-pose head turns the robot to the goal's heading first, the
/// planner reaches seven tenths or more of the easy goals in held-out worlds, and at least 3×
/// as many as random commands and as the same planner on a random-init model. Measured on four
/// seeds (docs/eval.md, "Turning in the data"): 80–92.5 % in new worlds and at home, 92.5 % and
/// 87.5 % with this test's seed 7; 40 pairs measure a rate to ±6 points (one standard error),
/// so the check allows a standard error and some margin below the lowest, in new worlds and at
/// home. (The bar was 42 % when the latent MPC alone reached 42.5–62 %, and 60 % with the head
/// before the exploration turned harder: 67.5–90 %.) The model behind it beats the random-init
/// one and raw pixels on the pose probe in both protocols, predicts better than copy-last at
/// every horizon, has not collapsed, and chooses among the planner's candidate commands far
/// better than chance.
#[test]
fn eval_planner_reaches_seven_tenths_of_the_easy_goals_with_a_model_trained_in_the_test_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.json");
    run_ok(
        autodidact()
            .args(["eval", "--quiet", "--seed", "7", "--pairs", "40"])
            .args(["--settings", "easy", "--json"])
            .arg(&path),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("report")).expect("JSON");
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);

    let easy = &report["planning"][0];
    assert_eq!(easy["setting"], "easy");
    assert_eq!(easy["pairs"], 40);
    let planner = number(&easy["planner"]["success_rate"]);
    let random_policy = number(&easy["random_policy"]["success_rate"]);
    let random_init = number(&easy["random_init_planner"]["success_rate"]);
    println!(
        "easy goals reached: planner {planner:.2}, random policy {random_policy:.2}, \
         random-init planner {random_init:.2}"
    );
    assert!(
        planner >= 0.7,
        "planner reached {planner:.2} of the easy goals (0.8 at the lowest of four seeds, \
         minus the ±0.06 sampling error of 40 pairs)"
    );
    assert!(
        planner >= 3.0 * random_policy && planner >= 3.0 * random_init,
        "planner {planner:.2} is not 3x random commands ({random_policy:.2}) and the \
         random-init planner ({random_init:.2})"
    );

    let trained = &report["representation"];
    let untrained = &report["random_init_representation"];
    assert!(
        number(&trained["pose_r2"]) > number(&untrained["pose_r2"]),
        "pose probe: trained {} vs random init {}",
        trained["pose_r2"],
        untrained["pose_r2"]
    );
    for key in ["knn_position_error_m", "knn_yaw_error_deg"] {
        assert!(
            number(&trained[key]) < number(&untrained[key]),
            "{key}: trained {} vs random init {}",
            trained[key],
            untrained[key]
        );
    }
    // Home (the worlds it learned in): the pose is in the embedding well beyond what raw pixels
    // and an untrained network give (measured with the default model: 0.75 vs 0.58 and 0.42
    // with seed 7, 0.84 vs 0.52 and 0.32 with seed 0). In new worlds, above both too (0.41 vs
    // 0.25 and 0.12 with seed 7).
    let home = &report["home"];
    let r2 = |side: &serde_json::Value| number(&side["pose_r2"]);
    let (trained, pixels, untrained) = (
        r2(&home["representation"]),
        r2(&home["raw_pixels_representation"]),
        r2(&home["random_init_representation"]),
    );
    assert!(
        trained >= pixels + 0.1 && trained >= untrained + 0.2,
        "home pose probe: trained {trained:.3}, raw pixels {pixels:.3}, random init {untrained:.3}"
    );
    let (trained, pixels) = (
        r2(&report["representation"]),
        r2(&report["raw_pixels_representation"]),
    );
    assert!(
        trained > pixels,
        "new worlds pose probe: trained {trained:.3}, raw pixels {pixels:.3}"
    );
    let home_easy = &home["planning"][0];
    assert_eq!(home_easy["setting"], "easy");
    assert!(
        number(&home_easy["planner"]["success_rate"]) >= 0.7,
        "home easy goals: planner reached {}",
        home_easy["planner"]["success_rate"]
    );

    let ratios = report["prediction_vs_copy_last"]
        .as_array()
        .expect("ratios");
    assert!(!ratios.is_empty());
    for (k, ratio) in ratios.iter().enumerate() {
        assert!(
            number(ratio) <= 0.7,
            "{}-step prediction is {ratio} x copy-last",
            k + 1
        );
    }
    let rank = number(&report["collapse"]["effective_rank"]);
    let dim = number(&report["collapse"]["dim"]);
    assert!(rank >= 0.2 * dim, "effective rank {rank} of {dim}");

    // One open-loop choice among the planner's 64 candidates, driven in the simulator (measured
    // with this test's model, seed 7, new worlds / home: the model's choice ends within the
    // tolerances in 40 / 32 % of the pairs, one drawn at random in 10 / 9 %, the random-init
    // model's in 10 / 8 %; seed 0: 42 / 40 %, 10 / 11 %, 25 / 18 %). Its dynamics follow its
    // encoder (rank correlation 0.62-0.66), and the image part of the embedding ranks where the
    // candidates truly end (0.77-0.84).
    for protocol in [&report, home] {
        let ranking = &protocol["candidate_ranking"];
        let reached = |choice: &str| number(&ranking[choice]["reached_rate"]);
        let (model, any, random_init) = (
            reached("chosen_by_model"),
            reached("every_candidate"),
            reached("chosen_by_random_init"),
        );
        assert!(
            model >= 2.0 * any && model > random_init,
            "the model's choice reached {model:.2}, a random candidate {any:.2}, the random-init \
             model's choice {random_init:.2}"
        );
        let followed = number(&ranking["predicted_vs_seen_rank_correlation"]);
        let image = number(&ranking["image_vs_truth_rank_correlation"]);
        assert!(
            followed >= 0.4 && image >= 0.6,
            "rank correlation: predicted vs seen {followed:.2}, image vs truth {image:.2}"
        );
    }
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
