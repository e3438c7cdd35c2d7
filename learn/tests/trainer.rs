//! Trainer mechanics on a small model: determinism, checkpoints, the NaN guard, snapshot swaps,
//! rollouts, planning, weights that travel and the wgpu path.

#[path = "trainer/checkpoint.rs"]
mod checkpoint;
mod common;
#[path = "trainer/fuzz.rs"]
mod fuzz;
#[path = "trainer/goal.rs"]
mod goal;
#[path = "trainer/memory.rs"]
mod memory;
#[path = "trainer/weights.rs"]
mod weights;

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::model::ImageEncoderConfig;
use autodidact_learn::plan;
use autodidact_learn::{
    BackendChoice, BackendKind, LatentPlanner, LearnError, LearningRateDecay, OdometryPose,
    PlannerConfig, SearchMethod, Trainer, TrainerConfig, WorldModelConfig, embedding_health,
};
use common::{PROPRIO_DIM, explore, sim_config};

const SIDE: usize = 32;

/// The tests of this file run one at a time. Bit-identical training on flex holds for a trainer
/// that has the CPU backend to itself: trainers training concurrently in one process share the
/// backend's thread pool, and its parallel float reductions then split differently.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn small_config(seed: u64) -> TrainerConfig {
    let mut config = TrainerConfig::for_inputs(SIDE, SIDE, PROPRIO_DIM);
    config.model.encoder.image = ImageEncoderConfig::new()
        .with_width(SIDE)
        .with_height(SIDE)
        .with_channels(vec![8, 16, 16])
        .with_feature_dim(32);
    config.model.encoder.embed_dim = 32;
    config.model.dynamics_hidden = 64;
    config.model.head_hidden = 32;
    config.model.masked_head = true;
    config.objectives.masked.enabled = true;
    config.model.inverse_head = true;
    config.objectives.inverse.enabled = true;
    config.objectives.sigreg.enabled = true;
    config.model.odometry_head = true;
    config.objectives.odometry.enabled = true;
    // The tests explore 120 frames: pairs up to 30 steps apart leave 90 sequence starts.
    config.objectives.odometry.window = 30;
    // Served from the first step, so that tests of what travels with it need not train long
    // (`relative_pose_head_is_served_only_once_trained_on_serve_after_pairs` tests the wait).
    config.objectives.odometry.serve_after_pairs = 0;
    config.batch_size = 8;
    config.seed = seed;
    config.publish_every = 1;
    config
}

fn filled_trainer(config: TrainerConfig) -> Trainer {
    let mut trainer = Trainer::new(config).expect("trainer");
    for sample in explore(&sim_config(SIDE as u32), 3, 120) {
        trainer.push(sample.transition).expect("push");
    }
    trainer
}

fn probe_inputs() -> (Vec<Vec<u8>>, Vec<Vec<f32>>) {
    let samples = explore(&sim_config(SIDE as u32), 99, 6);
    (
        samples
            .iter()
            .map(|s| s.transition.image.to_vec())
            .collect(),
        samples
            .iter()
            .map(|s| s.transition.proprio.clone())
            .collect(),
    )
}

fn embed_all(trainer: &Trainer, images: &[Vec<u8>], proprio: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let snapshot = trainer.snapshot();
    let images: Vec<&[u8]> = images.iter().map(Vec::as_slice).collect();
    let proprio: Vec<&[f32]> = proprio.iter().map(Vec::as_slice).collect();
    snapshot.embed_batch(&images, &proprio).expect("embed")
}

/// The largest difference between two equally long lists of numbers (embeddings laid end to
/// end); lists of different lengths are a failure of the test that compares them.
fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared lists differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

#[test]
fn same_seed_gives_identical_losses_and_weights() {
    let _serial = serial();
    let run = || {
        let mut trainer = filled_trainer(small_config(7));
        let losses: Vec<u32> = (0..3)
            .map(|_| trainer.step().expect("step").losses.total.to_bits())
            .collect();
        let (images, proprio) = probe_inputs();
        (losses, embed_all(&trainer, &images, &proprio))
    };
    let (losses_a, embeddings_a) = run();
    let (losses_b, embeddings_b) = run();
    assert_eq!(losses_a, losses_b);
    assert_eq!(embeddings_a, embeddings_b);
    let mut other = filled_trainer(small_config(8));
    assert_ne!(
        other.step().expect("step").losses.total.to_bits(),
        losses_a[0]
    );
}

#[test]
fn every_objective_reports_a_finite_loss() {
    let _serial = serial();
    let mut every = small_config(1);
    every.model.dynamics_proprio = true;
    let mut trainer = filled_trainer(every);
    let report = trainer.step().expect("step");
    for (name, value) in report.losses.named() {
        assert!(value.is_finite() && value > 0.0, "{name} loss {value}");
    }
    assert!(report.grad_norm.is_finite() && report.grad_norm > 0.0);
    assert!(report.samples_per_second > 0.0);
    assert_eq!(report.step, 1);

    let mut config = small_config(1);
    config.objectives.contrastive.enabled = false;
    config.objectives.masked.enabled = false;
    config.objectives.odometry.enabled = false;
    let mut trainer = filled_trainer(config);
    let l = trainer.step().expect("step").losses;
    assert_eq!(
        (l.contrastive, l.temporal, l.masked, l.odometry),
        (0.0, 0.0, 0.0, 0.0),
        "switched off"
    );
    assert!(l.forward > 0.0 && l.reconstruction > 0.0);
    assert_eq!(l.carried_proprio, 0.0, "dynamics that carry no proprio");
}

/// The proprio the dynamics carry (`dynamics_proprio`) is learned: read from the start state
/// and stepped under the commands, its error against the proprio the robot felt falls below a
/// fifth of where it starts within a few dozen steps (measured: from 3.7 to 0.15).
#[test]
fn the_proprio_the_dynamics_carry_learns_what_the_robot_feels() {
    let _serial = serial();
    let mut config = small_config(3);
    config.model.dynamics_proprio = true;
    let mut trainer = filled_trainer(config);
    let losses: Vec<f32> = (0..60)
        .map(|_| trainer.step().expect("step").losses.carried_proprio)
        .collect();
    let first = losses[..5].iter().sum::<f32>() / 5.0;
    let last = losses[50..].iter().sum::<f32>() / 10.0;
    assert!(last.is_finite() && first > 0.0, "{losses:?}");
    assert!(last < 0.2 * first, "from {first} to {last}: {losses:?}");
}

#[test]
fn checkpoint_round_trip_is_bit_exact_and_resume_continues() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt");
    let mut trainer = filled_trainer(small_config(2));
    for _ in 0..3 {
        trainer.step().expect("step");
    }
    trainer.save_checkpoint(&path).expect("save");
    // Saving again over an existing checkpoint replaces it.
    trainer.save_checkpoint(&path).expect("save again");
    let (images, proprio) = probe_inputs();
    let before = embed_all(&trainer, &images, &proprio);

    let mut resumed = Trainer::resume(&path, Some(&trainer.config().model)).expect("resume");
    assert_eq!(resumed.step_count(), 3);
    assert_eq!(
        embed_all(&resumed, &images, &proprio),
        before,
        "bit for bit"
    );
    // Same data, same sampling state: the next step is the same on both.
    for sample in explore(&sim_config(SIDE as u32), 3, 120) {
        resumed.push(sample.transition).expect("push");
    }
    let next_original = trainer.step().expect("step");
    let next_resumed = resumed.step().expect("step");
    assert_eq!(next_resumed.step, 4);
    assert_eq!(
        next_original.losses.total.to_bits(),
        next_resumed.losses.total.to_bits()
    );

    let exported = trainer
        .export_encoder_safetensors(&dir.path().join("encoder.safetensors"))
        .expect("export");
    assert!(std::fs::metadata(exported).expect("file").len() > 1000);
}

/// A checkpoint written before the model had a field (here `inverse_head`, `dynamics_layers`
/// and `dynamics_proprio`, added later) still loads, with the field's default, and embeds as it
/// did.
#[test]
fn checkpoints_from_before_a_model_field_existed_still_load() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt");
    let mut config = small_config(4);
    config.model.inverse_head = false;
    config.objectives.inverse.enabled = false;
    let mut trainer = filled_trainer(config);
    trainer.step().expect("step");
    trainer.save_checkpoint(&path).expect("save");
    let meta_path = path.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta")).expect("json");
    let model = meta
        .pointer_mut("/config/model")
        .and_then(serde_json::Value::as_object_mut)
        .expect("config.model");
    assert!(model.remove("inverse_head").is_some());
    assert!(model.remove("dynamics_layers").is_some());
    assert!(model.remove("dynamics_proprio").is_some());
    // Written before the forward objective weighed a carried proprio.
    let forward = meta
        .pointer_mut("/config/objectives/forward")
        .and_then(serde_json::Value::as_object_mut)
        .expect("config.objectives.forward");
    assert!(forward.remove("carried_proprio_weight").is_some());
    // Written before the odometry objective counted its pairs and had serve_after_pairs.
    let odometry = meta
        .pointer_mut("/config/objectives/odometry")
        .and_then(serde_json::Value::as_object_mut)
        .expect("config.objectives.odometry");
    assert!(odometry.remove("serve_after_pairs").is_some());
    let root = meta.as_object_mut().expect("meta");
    assert!(root.remove("odometry_pairs").is_some());
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("json")).expect("write");

    let resumed = Trainer::resume(&path, None).expect("an older checkpoint loads");
    assert!(!resumed.config().model.inverse_head);
    assert_eq!(resumed.config().model.dynamics_layers, 1);
    assert!(!resumed.config().model.dynamics_proprio);
    // Its head is served as it was then, though how many pairs trained it is not known.
    assert_eq!(resumed.odometry_pairs(), None);
    assert!(resumed.dynamics_snapshot().relative_pose().is_some());
    let (images, proprio) = probe_inputs();
    assert_eq!(
        embed_all(&resumed, &images, &proprio),
        embed_all(&trainer, &images, &proprio)
    );
}

#[test]
fn foreign_and_truncated_checkpoints_are_clear_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt");
    let trainer = filled_trainer(small_config(2));
    trainer.save_checkpoint(&path).expect("save");

    let mut other_model: WorldModelConfig = trainer.config().model.clone();
    other_model.encoder.embed_dim = 48;
    let error = Trainer::resume(&path, Some(&other_model)).expect_err("different architecture");
    assert!(
        matches!(error, LearnError::Checkpoint(ref m) if m.contains("different architecture")),
        "{error}"
    );

    let model_file = path.join("model.bpk");
    let bytes = std::fs::read(&model_file).expect("read");
    std::fs::write(&model_file, &bytes[..bytes.len() / 2]).expect("truncate");
    let error = Trainer::resume(&path, None).expect_err("truncated");
    assert!(
        matches!(error, LearnError::Checkpoint(ref m) if m.contains("model.bpk")),
        "{error}"
    );

    std::fs::write(path.join("meta.json"), b"{\"not\": \"ours\"}").expect("write");
    assert!(matches!(
        Trainer::resume(&path, None),
        Err(LearnError::Checkpoint(_))
    ));
    assert!(matches!(
        Trainer::resume(&dir.path().join("missing"), None),
        Err(LearnError::Checkpoint(_))
    ));
}

#[test]
fn a_nan_batch_is_skipped_counted_and_leaves_weights_alone() {
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(4));
    trainer.step().expect("step");
    let (images, proprio) = probe_inputs();
    let before = embed_all(&trainer, &images, &proprio);
    let mut batch = trainer.sample_batch().expect("batch");
    batch.proprio[3] = f32::NAN;
    let report = trainer.train_on(&batch).expect("guarded step");
    assert!(report.skipped_non_finite);
    assert_eq!(trainer.non_finite_skips(), 1);
    assert_eq!(trainer.step_count(), 1, "a skipped batch is not a step");
    assert_eq!(embed_all(&trainer, &images, &proprio), before);
    let report = trainer.step().expect("training goes on");
    assert!(!report.skipped_non_finite && report.losses.total.is_finite());
}

#[test]
fn snapshots_swap_while_another_thread_embeds() {
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(5));
    let handle = trainer.encoder_handle();
    let (images, proprio) = probe_inputs();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let handle = handle.clone();
        let stop = stop.clone();
        let image = images[0].clone();
        let features = proprio[0].clone();
        std::thread::spawn(move || {
            let mut versions = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || versions.is_empty() {
                let snapshot = handle.current();
                let embedding = snapshot.embed(&image, &features).expect("embed");
                assert_eq!(embedding.len(), 32);
                versions.push(snapshot.version);
            }
            versions
        })
    };
    for _ in 0..4 {
        trainer.step().expect("step");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let versions = reader.join().expect("reader");
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "versions never go back"
    );
    assert_eq!(handle.current().version, 4, "one publish per step here");
}

#[test]
fn rollout_checks_its_input() {
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(6));
    trainer.step().expect("step");
    let dynamics = trainer.dynamics_snapshot();
    let start = vec![0.1f32; 32];
    let predicted = dynamics
        .rollout(&start, &[vec![[0.2, 0.0]; 4], vec![[0.0, 1.0]; 4]])
        .expect("rollout");
    assert_eq!(
        (predicted.len(), predicted[0].len(), predicted[0][0].len()),
        (2, 4, 32)
    );
    assert_ne!(
        predicted[0][3], predicted[1][3],
        "different actions, different futures"
    );
    assert!(matches!(
        dynamics.rollout(&start, &[]),
        Err(LearnError::BadInput(_))
    ));
    assert!(matches!(
        dynamics.rollout(&start, &[vec![]]),
        Err(LearnError::BadInput(_))
    ));
    assert!(matches!(
        dynamics.rollout(&[0.0; 5], &[vec![[0.0, 0.0]]]),
        Err(LearnError::BadInput(_))
    ));
    let snapshot = trainer.snapshot();
    assert!(matches!(
        snapshot.embed(&[0u8; 10], &[0.0; PROPRIO_DIM]),
        Err(LearnError::BadInput(_))
    ));
}

/// The optimiser steps with the scheduled rate: once a decay has brought the rate to almost
/// nothing, further steps leave the (online, published) encoder where it was, while the same
/// steps without the decay move it.
#[test]
fn a_decayed_learning_rate_holds_the_weights_where_the_decay_left_them() {
    let _serial = serial();
    let (images, proprio) = probe_inputs();
    let moved_by_later_steps = |decay: Option<LearningRateDecay>| {
        let mut config = small_config(3);
        config.publish_ema_encoder = false;
        config.learning_rate_decay = decay;
        let mut trainer = filled_trainer(config);
        trainer.step().expect("step");
        let before = embed_all(&trainer, &images, &proprio);
        for _ in 0..3 {
            trainer.step().expect("step");
        }
        let after = embed_all(&trainer, &images, &proprio);
        largest_difference(&before.concat(), &after.concat())
    };
    let constant = moved_by_later_steps(None);
    let decayed = moved_by_later_steps(Some(LearningRateDecay {
        steps: 1,
        final_fraction: 1e-9,
    }));
    assert!(
        constant > 1e-3,
        "constant rate: embeddings moved by {constant}"
    );
    assert!(
        decayed < 1e-5,
        "decayed rate: embeddings moved by {decayed} (constant: {constant})"
    );
}

#[test]
fn bad_configs_are_refused() {
    let _serial = serial();
    let mut config = small_config(0);
    config.model.encoder.image.width = 30;
    assert!(matches!(
        Trainer::new(config),
        Err(LearnError::InvalidConfig(_))
    ));
    let mut config = small_config(0);
    config.model.masked_head = false;
    assert!(matches!(
        Trainer::new(config),
        Err(LearnError::InvalidConfig(_))
    ));
    let mut config = small_config(0);
    config.model.inverse_head = false;
    assert!(
        matches!(Trainer::new(config), Err(LearnError::InvalidConfig(_))),
        "inverse dynamics without its head"
    );
    let mut config = small_config(0);
    config.objectives.forward.enabled = false;
    assert!(
        matches!(Trainer::new(config), Err(LearnError::InvalidConfig(_))),
        "inverse dynamics without the forward objective's next frame"
    );
    let mut config = small_config(0);
    config.model.odometry_head = false;
    assert!(
        matches!(Trainer::new(config), Err(LearnError::InvalidConfig(_))),
        "relative pose without its head"
    );
    type Break = fn(&mut TrainerConfig);
    let broken_settings: [(&str, Break); 22] = [
        ("dynamics without hidden layers", |c| {
            c.model.dynamics_layers = 0
        }),
        ("forward carried_proprio_weight below 0", |c| {
            c.objectives.forward.carried_proprio_weight = -1.0
        }),
        ("forward carried_proprio_weight NaN", |c| {
            c.objectives.forward.carried_proprio_weight = f32::NAN
        }),
        ("forward rest_share above 1", |c| {
            c.objectives.forward.rest_share = 1.5
        }),
        ("forward rest_share NaN", |c| {
            c.objectives.forward.rest_share = f32::NAN
        }),
        ("forward copy_last_power above 1", |c| {
            c.objectives.forward.copy_last_power = 1.5
        }),
        (
            "forward copy_last_dynamics_only without the target start",
            |c| {
                c.objectives.forward.copy_last_dynamics_only = true;
                c.objectives.forward.copy_last_power = 1.0;
                c.objectives.forward.target_start_weight = 0.0;
            },
        ),
        ("forward copy_last_dynamics_only without weights", |c| {
            c.objectives.forward.copy_last_dynamics_only = true;
            c.objectives.forward.copy_last_power = 0.0;
        }),
        (
            "forward target_start_plain without a start from the target",
            |c| {
                c.objectives.forward.target_start_plain = true;
                c.objectives.forward.target_start_weight = 0.0;
                c.objectives.forward.copy_last_power = 0.0;
            },
        ),
        ("learning_rate_decay steps", |c| {
            c.learning_rate_decay = Some(LearningRateDecay {
                steps: 0,
                final_fraction: 0.1,
            })
        }),
        ("odometry metres_scale", |c| {
            c.objectives.odometry.metres_scale = 0.0
        }),
        ("odometry window", |c| c.objectives.odometry.window = 0),
        ("odometry weight", |c| {
            c.objectives.odometry.weight = f32::NAN
        }),
        ("odometry max_m", |c| c.objectives.odometry.max_m = 0.0),
        ("odometry revisit_share", |c| {
            c.objectives.odometry.revisit_share = 1.5
        }),
        ("odometry revisit_within_steps", |c| {
            c.objectives.odometry.revisit_share = 0.5;
            c.objectives.odometry.revisit_within_steps = c.objectives.odometry.window;
        }),
        ("odometry revisit_max_m", |c| {
            c.objectives.odometry.revisit_share = 0.5;
            c.objectives.odometry.revisit_max_m = f32::NAN;
        }),
        ("odometry revisit_min_aside_m beyond revisit_max_m", |c| {
            c.objectives.odometry.revisit_share = 0.5;
            c.objectives.odometry.revisit_min_aside_m = c.objectives.odometry.revisit_max_m + 0.1;
        }),
        ("odometry revisit_max_m beyond max_m", |c| {
            c.objectives.odometry.revisit_share = 0.5;
            c.objectives.odometry.revisit_max_m = c.objectives.odometry.max_m + 1.0;
        }),
        ("sigreg directions", |c| c.objectives.sigreg.directions = 0),
        ("sigreg knots", |c| c.objectives.sigreg.knots = 1),
        ("sigreg t_max", |c| c.objectives.sigreg.t_max = f32::NAN),
    ];
    for (what, broken) in broken_settings {
        let mut config = small_config(0);
        broken(&mut config);
        assert!(
            matches!(Trainer::new(config), Err(LearnError::InvalidConfig(_))),
            "{what}"
        );
    }
    let mut config = small_config(0);
    config.batch_size = 1;
    assert!(Trainer::new(config).is_err());
}

/// The inverse-dynamics head learns the command from two frames' image-only embeddings: its
/// error ends below the commands' variance, the error of always answering their mean (measured:
/// 0.64 of it after 300 steps; the base is acceleration-limited, so two frames show the motion
/// the command causes only in part).
#[test]
fn inverse_dynamics_learns_the_command_between_two_frames() {
    let _serial = serial();
    let config = small_config(3);
    let scale = config.action_scale;
    let mut trainer = filled_trainer(config);
    let losses: Vec<f32> = (0..300)
        .map(|_| trainer.step().expect("step").losses.inverse)
        .collect();
    let mean = |values: &[f32]| values.iter().sum::<f32>() / values.len() as f32;
    // The data `filled_trainer` explored, each axis scaled as the trainer scales it.
    let samples = explore(&sim_config(SIDE as u32), 3, 120);
    let variance = (0..2)
        .map(|axis| {
            let values: Vec<f32> = samples
                .iter()
                .map(|s| s.transition.action[axis] / scale[axis])
                .collect();
            let m = mean(&values);
            mean(&values.iter().map(|v| (v - m).powi(2)).collect::<Vec<_>>())
        })
        .sum::<f32>()
        / 2.0;
    let (first, last) = (mean(&losses[..20]), mean(&losses[280..]));
    println!(
        "command variance {variance:.4}; inverse loss first 20 steps {first:.4}, last 20 {last:.4}"
    );
    assert!(
        last < 0.8 * variance,
        "{first} -> {last}, variance {variance}"
    );
}

/// Rest sequences (`objectives.forward.rest_share`) hold their first frame for the whole
/// horizon, at rest (proprio zeros) and commanded to stop; and dynamics trained with them
/// predict that a robot at rest which stands still keeps its view, where dynamics trained on the
/// exploration alone (which seldom stops) drift.
#[test]
fn rest_sequences_teach_the_dynamics_that_standing_still_keeps_the_view() {
    let _serial = serial();
    let mut config = small_config(4);
    config.objectives.forward.rest_share = 1.0;
    let mut trainer = filled_trainer(config);
    let batch = trainer.sample_batch().expect("batch");
    let horizon = trainer.config().forward_horizon();
    let image_len = 3 * SIDE * SIDE;
    for sequence in batch.future.chunks(horizon * image_len) {
        let first = &sequence[..image_len];
        assert!(sequence.chunks(image_len).all(|frame| frame == first));
    }
    assert!(batch.proprio.iter().all(|&p| p == 0.0));
    assert!(batch.actions.iter().all(|&a| a == 0.0));
    // Without them, the robot drives: its frames change and it is commanded.
    let driving = filled_trainer(small_config(4))
        .sample_batch()
        .expect("batch");
    assert!(driving.actions.iter().any(|&a| a != 0.0));
    assert!(
        driving
            .future
            .chunks(horizon * image_len)
            .any(|s| s.chunks(image_len).any(|frame| frame != &s[..image_len]))
    );

    // How far the dynamics, rolled out 24 steps of standing still from frames embedded at
    // rest, move away from where they started (mean goal distance).
    let samples = explore(&sim_config(SIDE as u32), 9, 60);
    let drift = |rest_share: f32| {
        let mut config = small_config(4);
        config.objectives.forward.rest_share = rest_share;
        let mut trainer = filled_trainer(config);
        for _ in 0..300 {
            trainer.step().expect("step");
        }
        let (encoder, dynamics) = (trainer.snapshot(), trainer.dynamics_snapshot());
        let zeros = vec![0.0; PROPRIO_DIM];
        let mut total = 0.0;
        for sample in samples.iter().step_by(6) {
            let start = encoder
                .embed(&sample.transition.image, &zeros)
                .expect("embed");
            let end = end_of(&dynamics, &start, [0.0, 0.0], 24);
            total += plan::goal_distance(&end, &start);
        }
        total / samples.iter().step_by(6).count() as f32
    };
    let (plain, with_rest) = (drift(0.0), drift(0.25));
    println!(
        "standing-still drift over 24 steps: exploration only {plain:.4}, with rest {with_rest:.4}"
    );
    assert!(with_rest < 0.5 * plain, "{with_rest} against {plain}");
}

/// Weighing each rollout step by how far its frame moved (`objectives.forward.
/// copy_last_power = 1`) trains what `autodidact eval` scores per step: on a drive the model
/// never saw, its one-step prediction beats copying the last embedding by more than the plain
/// mean over steps does, where copy-last is hardest to beat; and so it does with the weights on
/// the dynamics alone (`copy_last_dynamics_only`).
#[test]
fn copy_last_weighting_predicts_the_next_step_better() {
    let _serial = serial();
    let held_out: Vec<_> = explore(&sim_config(SIDE as u32), 11, 240)
        .into_iter()
        .map(|s| s.transition)
        .collect();
    let one_step = |power: f32, dynamics_only: bool| {
        let mut config = small_config(6);
        config.objectives.forward.copy_last_power = power;
        config.objectives.forward.copy_last_dynamics_only = dynamics_only;
        config.batch_size = 32;
        let mut trainer = Trainer::new(config).expect("trainer");
        for sample in explore(&sim_config(SIDE as u32), 3, 600) {
            trainer.push(sample.transition).expect("push");
        }
        for _ in 0..800 {
            trainer.step().expect("step");
        }
        let health = embedding_health(
            &trainer.snapshot(),
            &trainer.dynamics_snapshot(),
            &held_out,
            trainer.config().forward_horizon(),
            2,
        )
        .expect("health");
        health.prediction_vs_copy_last
    };
    // The weighing holds without the target-start term too (which also embeds frame `t`).
    let first_forward = |power: f32| {
        let mut config = small_config(6);
        config.objectives.forward.copy_last_power = power;
        config.objectives.forward.target_start_weight = 0.0;
        config.objectives.masked.enabled = false;
        let forward = filled_trainer(config).step().expect("step").losses.forward;
        assert!(forward.is_finite() && forward > 0.0, "{forward}");
        forward
    };
    assert_ne!(first_forward(0.0), first_forward(1.0));
    // With the target-start term, the switch weighs that rollout alone: its first loss is
    // neither the plain mean's nor that of weighing both rollouts.
    let first_with_target_start = |power: f32, dynamics_only: bool| {
        let mut config = small_config(6);
        config.objectives.forward.copy_last_power = power;
        config.objectives.forward.copy_last_dynamics_only = dynamics_only;
        config.objectives.masked.enabled = false;
        filled_trainer(config).step().expect("step").losses.forward
    };
    let dynamics_alone = first_with_target_start(1.0, true);
    assert_ne!(dynamics_alone, first_with_target_start(0.0, false));
    assert_ne!(dynamics_alone, first_with_target_start(1.0, false));
    let (plain, weighed) = (one_step(0.0, false), one_step(1.0, false));
    let dynamics_only = one_step(1.0, true);
    println!(
        "prediction ÷ copy-last, k = 1..8: plain mean {plain:.3?}, per step {weighed:.3?}, per \
         step on the dynamics alone {dynamics_only:.3?}"
    );
    assert!(weighed[0] < plain[0], "{weighed:?} against {plain:?}");
    assert!(
        dynamics_only[0] < plain[0],
        "{dynamics_only:?} against {plain:?}"
    );
}

/// `target_start_plain` starts the target's rollout, and measures the steps' copy-last errors,
/// from frame `t` as the camera saw it: the batch carries that frame only with the switch on (a
/// batch that does not match the switch is refused), and it is view A without augmentation (so
/// the first forward loss is the one from view A); with view A shifted the loss is another.
#[test]
fn a_plain_target_start_is_frame_t_as_the_camera_saw_it() {
    let _serial = serial();
    let first_forward = |plain: bool, shift_px: usize| {
        let mut config = small_config(6);
        config.objectives.forward.copy_last_power = 1.0;
        config.objectives.forward.copy_last_dynamics_only = true;
        config.objectives.forward.target_start_plain = plain;
        config.augment.max_shift_px = shift_px;
        let mut trainer = filled_trainer(config);
        let batch = trainer.sample_batch().expect("batch");
        assert_eq!(batch.plain.is_empty(), !plain);
        if plain && shift_px == 0 {
            let most = batch
                .plain
                .iter()
                .zip(&batch.view_a)
                .map(|(p, a)| (p - a).abs())
                .fold(0.0f32, f32::max);
            assert!(
                most < 1e-6,
                "plain frame and unaugmented view A differ by {most}"
            );
        }
        // A batch without the plain frame the switch needs is refused by name.
        let mut without = batch.clone();
        without.plain = if plain {
            Vec::new()
        } else {
            batch.view_a.clone()
        };
        match trainer.train_on(&without) {
            Err(LearnError::BadInput(message)) => assert!(message.contains("batch.plain")),
            other => panic!("a batch with the wrong plain frames trained: {other:?}"),
        }
        let forward = trainer.train_on(&batch).expect("step").losses.forward;
        assert!(forward.is_finite() && forward > 0.0, "{forward}");
        forward
    };
    let (from_view_a, from_plain) = (first_forward(false, 0), first_forward(true, 0));
    assert!(
        (from_plain - from_view_a).abs() <= 1e-5 * from_view_a,
        "{from_plain} against {from_view_a}"
    );
    assert_ne!(first_forward(true, 2), first_forward(false, 2));
}

/// A trainer holding 120 frames of a simulator drive whose odometry says the robot was at
/// `odometry(i)` at frame `i`.
fn trainer_driven_by(config: TrainerConfig, odometry: impl Fn(usize) -> OdometryPose) -> Trainer {
    let mut trainer = Trainer::new(config).expect("trainer");
    for (i, sample) in explore(&sim_config(SIDE as u32), 3, 120)
        .into_iter()
        .enumerate()
    {
        let mut transition = sample.transition;
        transition.odometry = Some(odometry(i));
        trainer.push(transition).expect("push");
    }
    trainer
}

/// With revisits on, the odometry objective pairs a frame with the same place passed again
/// later or earlier in the run (here a circle driven every 40 frames, beyond the window of 30),
/// and its relative pose is the odometry's between the two; with them off, every pair is two
/// frames of one drive within the window.
#[test]
fn odometry_pairs_a_place_with_its_revisit_when_revisits_are_on() {
    let _serial = serial();
    let lap = 40;
    let circle = |i: usize| {
        let turned = std::f64::consts::TAU * (i % lap) as f64 / lap as f64;
        OdometryPose::new(0.3 * turned.sin(), 0.3 * (1.0 - turned.cos()), turned)
    };
    let trainer_with = |revisit_share: f32| {
        let mut config = small_config(5);
        config.objectives.odometry.revisit_share = revisit_share;
        config.objectives.odometry.revisit_within_steps = 100;
        config.objectives.odometry.revisit_max_m = 0.1;
        config.objectives.odometry.revisit_max_deg = 20.0;
        trainer_driven_by(config, circle)
    };
    let mut trainer = trainer_with(1.0);
    let scale = trainer.config().objectives.odometry.metres_scale;
    let mut revisits = 0;
    for _ in 0..10 {
        let batch = trainer.sample_batch().expect("batch");
        revisits += batch.revisit_pairs;
        let far = batch.odometry_offsets.iter().filter(|&&d| d > 30).count();
        assert_eq!(far, batch.revisit_pairs, "{:?}", batch.odometry_offsets);
        for (offset, pose) in batch
            .odometry_offsets
            .iter()
            .zip(batch.relative_poses.chunks(3))
        {
            if *offset > 30 {
                // Every lap passes the same poses: a revisit lies a lap or two away, at most
                // 0.1 m and 20° off.
                let metres = f64::from(pose[0].hypot(pose[1]) * scale);
                assert!(
                    metres <= 0.1 && pose[2].abs().to_degrees() <= 20.0,
                    "{pose:?}"
                );
                assert!(offset.abs_diff(lap) <= 2 || offset.abs_diff(2 * lap) <= 2);
            }
        }
    }
    assert!(revisits > 40, "{revisits} of 80 pairs were revisits");
    assert_eq!(trainer.revisit_pairs(), revisits as u64);
    let mut trainer = trainer_with(0.0);
    let batch = trainer.sample_batch().expect("batch");
    assert_eq!(batch.revisit_pairs, 0);
    assert!(
        batch
            .odometry_offsets
            .iter()
            .all(|&d| (1..=30).contains(&d))
    );
}

/// With `revisit_min_aside_m`, a revisit lies at least that far to the first frame's side: here
/// laps of two circles about one centre, 0.1 m apart, driven in turn (every 40 frames), so the
/// same place on the other circle lies 0.1 m aside and on the same circle in line. Without it,
/// revisits come from both.
#[test]
fn revisits_lie_aside_when_asked_to() {
    let _serial = serial();
    let lap = 40;
    // Counter-clockwise about the origin: the centre lies to the robot's left.
    let laps = |i: usize| {
        let radius = if (i / lap).is_multiple_of(2) {
            0.5
        } else {
            0.6
        };
        let angle = std::f64::consts::TAU * (i % lap) as f64 / lap as f64;
        OdometryPose::new(
            radius * angle.cos(),
            radius * angle.sin(),
            angle + std::f64::consts::FRAC_PI_2,
        )
    };
    let asides = |min_aside_m: f32| {
        let mut config = small_config(5);
        config.objectives.odometry.revisit_share = 1.0;
        config.objectives.odometry.revisit_within_steps = 100;
        config.objectives.odometry.revisit_max_m = 0.2;
        config.objectives.odometry.revisit_max_deg = 20.0;
        config.objectives.odometry.revisit_min_aside_m = min_aside_m;
        let mut trainer = trainer_driven_by(config, laps);
        let scale = f64::from(trainer.config().objectives.odometry.metres_scale);
        let mut asides = Vec::new();
        for _ in 0..10 {
            let batch = trainer.sample_batch().expect("batch");
            for (offset, pose) in batch
                .odometry_offsets
                .iter()
                .zip(batch.relative_poses.chunks(3))
            {
                if *offset > 30 {
                    asides.push((*offset, f64::from(pose[1]).abs() * scale));
                }
            }
        }
        asides
    };
    let with = asides(0.05);
    assert!(with.len() > 40, "{} revisits of 80 pairs", with.len());
    // The other circle, a lap away: 0.1 m aside at the same angle, 0.07–0.125 m a frame or
    // two before or after it.
    assert!(
        with.iter()
            .all(|&(offset, m)| offset.abs_diff(lap) <= 2 && (0.05..=0.13).contains(&m)),
        "{with:?}"
    );
    let without = asides(0.0);
    assert!(without.iter().any(|&(_, m)| m < 0.02), "{without:?}");
    assert!(without.iter().any(|&(_, m)| m > 0.09), "{without:?}");
}

/// The relative-pose head learns from two frames' image-only embeddings where the second lies
/// seen from the first, by wheel odometry: its error ends below the relative poses' variance,
/// the error of always answering their mean; and asked the other way round, it does not place
/// the earlier frame ahead (trained on one order only, it did).
#[test]
fn odometry_head_places_a_later_frame_and_not_an_earlier_one_ahead() {
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(3));
    let mut truths: Vec<f32> = Vec::new();
    let mut losses: Vec<f32> = Vec::new();
    for _ in 0..300 {
        let batch = trainer.sample_batch().expect("batch");
        truths.extend(&batch.relative_poses);
        losses.push(trainer.train_on(&batch).expect("step").losses.odometry);
    }
    let mean = |values: &[f32]| values.iter().sum::<f32>() / values.len() as f32;
    let variance = (0..3)
        .map(|axis| {
            let values: Vec<f32> = truths.iter().skip(axis).step_by(3).copied().collect();
            let m = mean(&values);
            mean(&values.iter().map(|v| (v - m).powi(2)).collect::<Vec<_>>())
        })
        .sum::<f32>()
        / 3.0;
    let (first, last) = (mean(&losses[..20]), mean(&losses[280..]));
    println!(
        "relative pose variance {variance:.4}; odometry loss first 20 steps {first:.4}, last 20 \
         {last:.4}"
    );
    assert!(variance > 0.01, "the robot moved: {variance}");
    assert!(
        last < 0.8 * variance,
        "{first} -> {last}, variance {variance}"
    );

    // At inference, from the published encoder's image-only embeddings, the head places a frame
    // 10 steps on nearer to where odometry puts it than "where the first frame is" does.
    let samples = explore(&sim_config(SIDE as u32), 3, 120);
    let images: Vec<&[u8]> = samples.iter().map(|s| &*s.transition.image).collect();
    let zeros = vec![0.0; PROPRIO_DIM];
    let embeddings = trainer
        .snapshot()
        .embed_batch(&images, &vec![zeros.as_slice(); images.len()])
        .expect("embed");
    let pairs: Vec<(usize, usize)> = (0..samples.len() - 10).map(|i| (i, i + 10)).collect();
    let firsts: Vec<Vec<f32>> = pairs.iter().map(|&(i, _)| embeddings[i].clone()).collect();
    let seconds: Vec<Vec<f32>> = pairs.iter().map(|&(_, j)| embeddings[j].clone()).collect();
    let estimates = trainer
        .relative_poses(&firsts, &seconds)
        .expect("relative poses")
        .expect("the model has the head");
    let odometry = |i: usize| samples[i].transition.odometry.expect("odometry");
    let (mut head_error, mut staying_error) = (0.0, 0.0);
    for (&(i, j), estimate) in pairs.iter().zip(&estimates) {
        let truth = odometry(i).inverse().compose(&odometry(j));
        head_error += truth.distance(estimate);
        staying_error += truth.x.hypot(truth.y);
    }
    println!("head {head_error:.3} m, staying {staying_error:.3} m (summed)");
    assert!(
        head_error < 0.8 * staying_error,
        "head {head_error}, staying {staying_error}"
    );
    // And the other way round: the earlier frame seen from the later one, mostly behind it for
    // a robot that drives forward. A head trained on one order answered "ahead" here too.
    let backwards = trainer
        .relative_poses(&seconds, &firsts)
        .expect("relative poses")
        .expect("the model has the head");
    let mean_x = |poses: &[autodidact_learn::OdometryPose]| {
        poses.iter().map(|p| p.x).sum::<f64>() / poses.len() as f64
    };
    let true_ahead = pairs
        .iter()
        .map(|&(i, j)| odometry(i).inverse().compose(&odometry(j)).x)
        .sum::<f64>()
        / pairs.len() as f64;
    let (ahead, behind) = (mean_x(&estimates), mean_x(&backwards));
    println!("mean x: later frames {ahead:.3} (true {true_ahead:.3}), earlier frames {behind:.3}");
    assert!(true_ahead > 0.02, "the robot drove forward: {true_ahead}");
    // Measured (true mean 0.068 m ahead): trained on both orders, later frames 0.035 m and
    // earlier ones -0.004 m; on one order 0.073 m and 0.051 m (its answer was "ahead"
    // whichever way round).
    assert!(
        behind < 0.25 * true_ahead && behind < ahead,
        "earlier frames are not placed ahead: {behind} against {ahead}"
    );
    assert!(
        trainer.relative_poses(&firsts, &seconds[1..]).is_err(),
        "unpaired embeddings are refused"
    );
    let mut headless = small_config(3);
    headless.model.odometry_head = false;
    headless.objectives.odometry.enabled = false;
    let headless = Trainer::new(headless).expect("trainer");
    assert_eq!(
        headless
            .relative_poses(&firsts, &seconds)
            .expect("no error"),
        None
    );
}

/// A checkpoint written before the relative-pose head and its objective were the default
/// (without the keys, or with them off) resumes as it was written, also where the node is
/// configured with the head: the user's model is neither refused nor changed.
#[test]
fn checkpoints_from_before_the_head_was_default_resume_without_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = small_config(4);
    config.model.odometry_head = false;
    config.objectives.odometry.enabled = false;
    let mut trainer = filled_trainer(config);
    trainer.step().expect("step");
    let (images, proprio) = probe_inputs();
    let embedded = embed_all(&trainer, &images, &proprio);

    let with_keys = dir.path().join("with_keys");
    trainer.save_checkpoint(&with_keys).expect("save");
    let without_keys = dir.path().join("without_keys");
    trainer.save_checkpoint(&without_keys).expect("save");
    let meta_path = without_keys.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta")).expect("json");
    let removed_head = meta
        .pointer_mut("/config/model")
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|model| model.remove("odometry_head"));
    assert_eq!(removed_head, Some(serde_json::Value::Bool(false)));
    let removed_objective = meta
        .pointer_mut("/config/objectives")
        .and_then(serde_json::Value::as_object_mut)
        .and_then(|objectives| objectives.remove("odometry"));
    assert!(removed_objective.is_some());
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("json")).expect("write");

    let configured = small_config(4).model;
    assert!(configured.odometry_head, "the head is the default");
    for checkpoint in [&with_keys, &without_keys] {
        for expected in [None, Some(&configured)] {
            let mut resumed = Trainer::resume(checkpoint, expected).expect("an older checkpoint");
            assert!(!resumed.config().model.odometry_head);
            assert!(!resumed.config().objectives.odometry.enabled);
            assert!(resumed.model().relative_pose.is_none());
            assert_eq!(embed_all(&resumed, &images, &proprio), embedded);
            for sample in explore(&sim_config(SIDE as u32), 3, 40) {
                resumed.push(sample.transition).expect("push");
            }
            resumed.step().expect("it trains on as it was written");
        }
    }
    // Another architecture is still refused.
    let mut wider = small_config(4).model;
    wider.encoder.embed_dim = 48;
    assert!(Trainer::resume(&with_keys, Some(&wider)).is_err());
}

/// The relative-pose head reaches snapshots (and so the planner, checkpoints' followers and
/// packed weights) only once the odometry objective has trained on `serve_after_pairs` pairs;
/// data without odometry never train it, and it is never served. The count survives a
/// checkpoint.
#[test]
fn relative_pose_head_is_served_only_once_trained_on_serve_after_pairs() {
    let _serial = serial();
    let mut config = small_config(3);
    config.objectives.odometry.serve_after_pairs = 20;
    let mut trainer = filled_trainer(config.clone());
    assert_eq!(trainer.odometry_pairs(), Some(0));
    let mut steps = 0;
    while trainer.odometry_pairs() < Some(20) {
        assert!(trainer.relative_pose_head().is_none());
        assert!(trainer.dynamics_snapshot().relative_pose().is_none());
        let before = trainer.odometry_pairs().expect("counted");
        trainer.step().expect("step");
        let after = trainer.odometry_pairs().expect("counted");
        assert!(
            after > before && after - before <= 8,
            "{before} -> {after} of a batch of 8"
        );
        steps += 1;
        assert!(steps < 50, "the sim's odometry trains pairs");
    }
    assert!(trainer.relative_pose_head().is_some());
    assert!(trainer.dynamics_snapshot().relative_pose().is_some());

    let dir = tempfile::tempdir().expect("tempdir");
    let checkpoint = dir.path().join("ckpt");
    trainer.save_checkpoint(&checkpoint).expect("save");
    let resumed = Trainer::resume(&checkpoint, None).expect("resume");
    assert_eq!(resumed.odometry_pairs(), trainer.odometry_pairs());
    assert!(resumed.dynamics_snapshot().relative_pose().is_some());

    // A robot whose data carry no odometry: the head never trains, and is never served.
    let mut blind = Trainer::new(config).expect("trainer");
    for mut sample in explore(&sim_config(SIDE as u32), 3, 120) {
        sample.transition.odometry = None;
        blind.push(sample.transition).expect("push");
    }
    for _ in 0..10 {
        blind.step().expect("step");
    }
    assert_eq!(blind.odometry_pairs(), Some(0));
    assert!(blind.dynamics_snapshot().relative_pose().is_none());
}

/// The GPU path through wgpu (Mesa lavapipe on a CPU-only machine): a training step runs, and
/// for the same weights the embeddings match flex within 1e-3 (absolute, embeddings are
/// LayerNorm-scaled to about unit variance).
#[test]
fn batches_hold_their_sequences_and_do_not_depend_on_the_thread_count() {
    use autodidact_learn::augment::plain_into;
    let _serial = serial();
    let sample = |threads: usize| {
        let mut trainer = filled_trainer(small_config(5));
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| trainer.sample_batch())
            .expect("batch")
    };
    let (one, two) = (sample(1), sample(2));
    assert_eq!(one.view_a, two.view_a);
    assert_eq!(one.view_b, two.view_b);
    assert_eq!(one.positive, two.positive);
    assert_eq!(one.masked, two.masked);
    assert_eq!(one.future, two.future);
    assert_eq!(one.temporal_offsets, two.temporal_offsets);
    assert_eq!(one.odometry_offsets, two.odometry_offsets);
    assert_eq!(one.odometry_frames, two.odometry_frames);
    assert_eq!(one.relative_poses, two.relative_poses);
    assert_eq!(one.relative_pose_known, two.relative_pose_known);
    assert_eq!(
        (one.proprio.clone(), one.actions.clone()),
        (two.proprio, two.actions)
    );

    // Every sequence's future frames are the plain frames following one point of the
    // exploration run, with their proprio: the batch is made of real sequences.
    let config = small_config(5);
    let horizon = config.forward_horizon();
    let samples = explore(&sim_config(SIDE as u32), 3, 120);
    let image_len = 3 * SIDE * SIDE;
    let plain: Vec<Vec<f32>> = samples
        .iter()
        .map(|s| {
            let mut out = vec![0.0; image_len];
            plain_into(&s.transition.image, SIDE, SIDE, &mut out);
            out
        })
        .collect();
    assert_eq!(one.size, config.batch_size);
    for (b, future) in one.future.chunks(horizon * image_len).enumerate() {
        let proprio = &one.proprio[b * (horizon + 1) * PROPRIO_DIM..][..PROPRIO_DIM];
        // A start whose following frames and proprio are this sequence's (the robot may stand
        // still, so a frame can occur more than once).
        // … and whose odometry puts the pair's second frame where the batch says it lies.
        let delta = one.odometry_offsets[b];
        let relative = &one.relative_poses[b * 3..][..3];
        let found = (0..plain.len() - horizon).any(|start| {
            future
                .chunks(image_len)
                .enumerate()
                .all(|(step, frame)| frame == plain[start + 1 + step].as_slice())
                && proprio == samples[start].transition.proprio.as_slice()
                && samples.get(start + delta).is_some_and(|positive| {
                    let (Some(from), Some(to)) = (
                        samples[start].transition.odometry,
                        positive.transition.odometry,
                    ) else {
                        return false;
                    };
                    let truth = from.inverse().compose(&to);
                    let scale = f64::from(config.objectives.odometry.metres_scale);
                    [truth.x / scale, truth.y / scale, truth.yaw]
                        .iter()
                        .zip(relative)
                        .all(|(want, got)| (want - f64::from(*got)).abs() < 1e-5)
                })
        });
        assert!(found, "sequence {b} is not a recorded sequence");
        assert_eq!(one.relative_pose_known[b], 1.0, "sequence {b}");
    }
    // The two views are drawn apart (a shift of up to 2 px: some pairs coincide).
    assert_ne!(one.view_a, one.view_b);
}

#[test]
fn cpu_snapshot_embeds_what_the_published_encoder_computes_on_tensors() {
    use autodidact_learn::augment::plain_into;
    use burn::prelude::*;
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(4));
    trainer.step().expect("step");
    let (images, proprio) = probe_inputs();
    // The snapshot embeds through the direct CPU convolutions.
    let embedded = embed_all(&trainer, &images, &proprio);

    let device = Device::flex();
    let encoder = trainer.published_encoder().valid().to_device(&device);
    let image_len = 3 * SIDE * SIDE;
    let mut pixels = vec![0.0f32; images.len() * image_len];
    for (image, out) in images.iter().zip(pixels.chunks_mut(image_len)) {
        plain_into(image, SIDE, SIDE, out);
    }
    let pixels = Tensor::<4>::from_data(
        TensorData::new(pixels, [images.len(), 3, SIDE, SIDE]),
        &device,
    );
    let proprio = Tensor::<2>::from_data(
        TensorData::new(proprio.concat(), [images.len(), PROPRIO_DIM]),
        &device,
    );
    let on_tensors = encoder
        .forward(pixels, proprio)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let worst = largest_difference(&embedded.concat(), &on_tensors);
    assert!(worst < 1e-4, "direct and tensor paths differ by {worst}");
}

#[test]
fn wgpu_trains_and_matches_flex() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt");
    let mut flex = filled_trainer(small_config(9));
    flex.step().expect("flex step");
    flex.save_checkpoint(&path).expect("save");
    let (images, proprio) = probe_inputs();
    let on_flex = embed_all(&flex, &images, &proprio);

    // Same weights on the GPU: the flex checkpoint resumed on wgpu, inference there too.
    let config = small_config(9);
    let mut gpu = Trainer::resume_on(
        &path,
        Some(&config.model),
        BackendChoice::Wgpu,
        BackendChoice::Wgpu,
    )
    .expect("resume on wgpu");
    assert_eq!(gpu.placements().training.kind, BackendKind::Wgpu);
    assert_eq!(gpu.placements().inference.kind, BackendKind::Wgpu);
    let on_gpu = embed_all(&gpu, &images, &proprio);
    let worst = largest_difference(&on_flex.concat(), &on_gpu.concat());
    assert!(worst < 1e-3, "flex and wgpu differ by {worst}");

    for sample in explore(&sim_config(SIDE as u32), 3, 120) {
        gpu.push(sample.transition).expect("push");
    }
    let report = gpu.step().expect("wgpu step");
    assert!(report.losses.total.is_finite() && !report.skipped_non_finite);
    assert_eq!(report.step, 2);
    // The step returns once its losses are read; the optimiser and EMA updates may still be
    // queued. Let the GPU finish before the process exits: Mesa's lavapipe aborts when it is torn
    // down while compiling or running a kernel.
    BackendChoice::Wgpu
        .device()
        .expect("wgpu device")
        .sync()
        .expect("wgpu finishes its queued work");
}

// Planning on the latent dynamics.

#[test]
fn rollout_requests_with_wrong_dimensions_or_no_actions_are_refused() {
    let _serial = serial();
    let trainer = Trainer::new(small_config(4)).expect("trainer");
    let dynamics = trainer.dynamics_snapshot();
    let dim = trainer.config().model.embed_dim();
    let start = vec![0.1; dim];
    let actions = vec![vec![[0.2, 0.5]; 4]; 3];
    let answer = plan::rollout(&dynamics, &start, &actions, Some(&start)).expect("rollout");
    assert_eq!(answer.predicted.len(), 3);
    assert!(answer.predicted.iter().all(|steps| steps.len() == 4));
    assert!(answer.predicted[0].iter().all(|z| z.len() == dim));
    let distances = answer.goal_distances.expect("distances given a goal");
    assert_eq!((distances.len(), distances[0].len()), (3, 4));
    assert!(distances.iter().flatten().all(|d| (0.0..=4.0).contains(d)));

    let refused = |result: Result<plan::Rollout, LearnError>, needle: &str| match result {
        Err(LearnError::BadInput(message)) => {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}")
        }
        other => panic!("expected BadInput({needle}), got {other:?}"),
    };
    refused(
        plan::rollout(&dynamics, &start[1..], &actions, None),
        "start:",
    );
    refused(
        plan::rollout(&dynamics, &start, &actions, Some(&start[1..])),
        "goal embedding:",
    );
    refused(plan::rollout(&dynamics, &start, &[], None), "no action");
    // Finite but absurd actions make the dynamics overflow (found by the rollout fuzz
    // harness): every answer is finite, or a refusal that says why.
    let mut overflowed = 0;
    for magnitude in [1e30, 1.5e38, f32::MAX] {
        for horizon in [4, 64] {
            let absurd = [vec![[magnitude, -magnitude]; horizon]];
            match plan::rollout(&dynamics, &start, &absurd, None) {
                Ok(answer) => assert!(
                    answer
                        .predicted
                        .iter()
                        .flatten()
                        .flatten()
                        .all(|v| v.is_finite())
                ),
                Err(LearnError::BadInput(message)) if message.contains("not finite") => {
                    overflowed += 1
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    assert!(
        overflowed > 0,
        "no case overflowed: the check was not exercised"
    );
    refused(
        plan::rollout(&dynamics, &start, &[vec![]], None),
        "empty action",
    );
    refused(
        plan::rollout(
            &dynamics,
            &start,
            &[vec![[0.0; 2]; 2], vec![[0.0; 2]]],
            None,
        ),
        "actions",
    );
    refused(
        plan::rollout(&dynamics, &start, &[vec![[f32::NAN, 0.0]]], None),
        "non-finite",
    );
}

/// An untrained model's dynamics (seeded) and a fixed start embedding, for the planner tests:
/// the search is under test, not what the model learned.
fn planning_setup(seed: u64) -> (DynamicsSnapshot, Vec<f32>) {
    let trainer = Trainer::new(small_config(seed)).expect("trainer");
    let start = (0..trainer.config().model.embed_dim())
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    (trainer.dynamics_snapshot(), start)
}

/// Where `command`, held for `steps` periods, leads from `start` under `dynamics`.
fn end_of(dynamics: &DynamicsSnapshot, start: &[f32], command: [f32; 2], steps: usize) -> Vec<f32> {
    let mut rollout = dynamics
        .rollout(start, &[vec![command; steps]])
        .expect("rollout");
    rollout[0].pop().expect("a predicted step")
}

/// Commands stay in `[min_action, max_action]` even when only faster reversing leads to the
/// goal, and a planner whose previous plan moved can still choose to stand still: every CEM
/// iteration weighs the stand-still sequence.
#[test]
fn planner_stays_in_its_command_box_and_can_always_stand_still() {
    let _serial = serial();
    let (dynamics, start) = planning_setup(6);
    let config = PlannerConfig {
        effort_weight: 1.0,
        final_weight: 50.0,
        min_action: [-0.1, -1.0],
        ..PlannerConfig::default()
    };
    let steps = config.horizon * config.action_repeat;
    let mut planner = LatentPlanner::new(config.clone()).expect("planner");

    let behind = end_of(&dynamics, &start, [-0.5, 1.5], steps);
    let moving = planner.plan(&dynamics, &start, &behind).expect("plan");
    for action in &moving.decisions {
        for axis in 0..2 {
            assert!(
                (config.min_action[axis]..=config.max_action[axis]).contains(&action[axis]),
                "{action:?} outside [{:?}, {:?}]",
                config.min_action,
                config.max_action
            );
        }
    }
    assert!(
        moving.decisions.iter().any(|a| a != &[0.0, 0.0]),
        "the first plan moves: {:?}",
        moving.decisions
    );

    // Same planner, no reset: its warm start moves, yet the goal is where standing still ends.
    let here = end_of(&dynamics, &start, [0.0, 0.0], steps);
    let still = planner.plan(&dynamics, &start, &here).expect("plan");
    assert_eq!(still.action, [0.0, 0.0], "{:?}", still.decisions);
    assert!(still.predicted_final_distance < 1e-6);

    let mut broken = PlannerConfig::default();
    broken.min_action[0] = 0.1;
    assert!(LatentPlanner::new(broken).is_err(), "min_action above zero");
}

/// The goal is where a known command sequence leads under the model; both searches (CEM and
/// MPPI) must find a plan that the model predicts ends far closer to it than standing still, and
/// the same seed must give the same plan.
#[test]
fn planner_finds_the_commands_that_reach_a_predicted_goal_and_is_seeded() {
    let _serial = serial();
    let (dynamics, start) = planning_setup(5);
    for method in [SearchMethod::Cem, SearchMethod::Mppi] {
        // The search alone is under test: no effort term, and the cost is (almost only) the
        // final distance, which the commands that made the goal bring to zero.
        let config = PlannerConfig {
            method,
            effort_weight: 0.0,
            final_weight: 50.0,
            samples: 128,
            iterations: 4,
            ..PlannerConfig::default()
        };
        let steps = config.horizon * config.action_repeat;
        let goal = end_of(&dynamics, &start, [0.4, -1.5], steps);
        let standing = end_of(&dynamics, &start, [0.0, 0.0], steps);
        let standing_distance = plan::goal_distance(&standing, &goal);

        let mut planner = LatentPlanner::new(config.clone()).expect("planner");
        let first = planner.plan(&dynamics, &start, &goal).expect("plan");
        println!(
            "{method:?}: standing still {standing_distance:.4}, plan {:.4}, first action {:?}",
            first.predicted_final_distance, first.action
        );
        assert!(
            first.predicted_final_distance < 0.25 * standing_distance,
            "{method:?}"
        );
        assert_eq!(first.decisions.len(), config.horizon);
        let mean_command = |axis: usize| {
            first.decisions.iter().map(|a| a[axis]).sum::<f32>() / first.decisions.len() as f32
        };
        assert!(
            mean_command(0) > 0.0 && mean_command(1) < 0.0,
            "{method:?} planned {:?}, the goal came from [0.4, -1.5]",
            first.decisions
        );
        for action in &first.decisions {
            assert!(action[0] <= config.max_action[0] && action[1].abs() <= config.max_action[1]);
            assert!(action[0] >= config.min_action[0]);
        }
        let again = LatentPlanner::new(config)
            .expect("planner")
            .plan(&dynamics, &start, &goal)
            .expect("plan");
        assert_eq!(first, again, "{method:?}: same seed, same plan");
    }
    let mut planner = LatentPlanner::new(PlannerConfig::default()).expect("planner");
    let goal = end_of(&dynamics, &start, [0.4, -1.5], 24);
    assert!(planner.plan(&dynamics, &start, &goal[1..]).is_err());
    let mut broken = PlannerConfig::default();
    broken.elites = broken.samples + 1;
    assert!(LatentPlanner::new(broken).is_err());
    for temperature in [0.0, -1.0, f32::NAN] {
        let broken = PlannerConfig {
            method: SearchMethod::Mppi,
            temperature,
            ..PlannerConfig::default()
        };
        assert!(
            LatentPlanner::new(broken).is_err(),
            "temperature {temperature}"
        );
    }
}
