//! `autodidact eval` as docs/eval.md documents it: the report's schema and its rerun recording
//! (read back with the rerun SDK by tests/eval/check_recording.py), the same report for the same
//! checkpoint, and what the model of the test's budget reaches.

use std::process::Command;

use super::{autodidact, python_from_env, run_ok, run_refused};

/// Reads an eval recording back with the rerun SDK and checks it against the report of the same
/// run (`tests/eval/check_recording.py`). `scripts/test-all` provides the SDK; a plain
/// `cargo test` without it only checks that the file was written.
fn check_recording(rrd: &std::path::Path, report: &std::path::Path) {
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/eval/check_recording.py");
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
/// checkpoint and seed, on any number of threads.
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
    check_recording(&dir.path().join("eval.rrd"), &dir.path().join("fresh.json"));
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
        "home: planning far: goals the memory has a view of (within the tolerance)",
        "planner, random-init model",
    ] {
        assert!(table.contains(row), "table lacks {row:?}:\n{table}");
    }

    // The file's `[exploration]` is how the robot drives through its home on its own: a look
    // around after every second of driving, within the 60 steps (3 s) of the quick drive.
    let looking = dir.path().join("looking.toml");
    std::fs::write(&looking, "[exploration]\nlook_around_every_s = 1.0\n").expect("config");
    let evaluate = |name: &str, seed: &str, config: &[&std::ffi::OsStr]| -> serde_json::Value {
        let path = dir.path().join(name);
        run_ok(
            autodidact()
                .args(quick)
                .args(["--seed", seed, "--checkpoint"])
                .arg(&checkpoint)
                .args(config)
                .arg("--json")
                .arg(&path),
        );
        serde_json::from_slice(&std::fs::read(path).expect("report")).expect("JSON")
    };
    // Pairs and worlds' drives run side by side on `--jobs` threads: the same report on one
    // thread as on three.
    let report = evaluate("a.json", "3", &["--jobs".as_ref(), "1".as_ref()]);
    assert_eq!(
        report,
        evaluate("b.json", "3", &["--jobs".as_ref(), "3".as_ref()]),
        "same checkpoint and seed, on one thread or three"
    );
    // Another seed, and a camera that averages 2 × 2 rays a pixel: the report says which.
    let averaging = dir.path().join("averaging.toml");
    std::fs::write(
        &averaging,
        "[sim.camera]\nwidth = 32\nheight = 32\nrays_per_side = 2\n",
    )
    .expect("config");
    let other = evaluate("c.json", "4", &["--config".as_ref(), averaging.as_os_str()]);
    assert_ne!(
        report["data"]["episode_seeds"], other["data"]["episode_seeds"],
        "another seed, other held-out worlds"
    );
    assert_eq!(report["data"]["rays_per_side"], 1);
    assert_eq!(other["data"]["rays_per_side"], 2);
    let looked = evaluate("d.json", "3", &["--config".as_ref(), looking.as_os_str()]);
    assert_eq!(report["home"]["exploration"]["look_around_every_s"], 0.0);
    assert_eq!(looked["home"]["exploration"]["look_around_every_s"], 1.0);
    assert_ne!(
        report["home"]["representation"], looked["home"]["representation"],
        "the home probes are fitted on the robot's own drive, which follows the file's \
         [exploration]"
    );
    assert_eq!(
        report["representation"], looked["representation"],
        "the held-out drives of new worlds keep their own policy"
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
            // Whether the memory has a view of each goal's place: a share of the pairs.
            let shown = number(&memory["goals_shown"], "goals shown");
            assert!([0.0, 0.5, 1.0].contains(&shown), "of 2 pairs: {shown}");
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
