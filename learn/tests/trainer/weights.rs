//! Weights that travel (`autodidact_learn::weights`): a version packed on one host serves the
//! same embeddings and rollouts on another; another architecture or damaged bytes are refused
//! whole.

use autodidact_learn::weights::{PackedWeights, Unpacker, architecture_digest, pack};

use super::*;

/// A trained trainer's served weights, packed.
fn trained_and_packed() -> (Trainer, PackedWeights) {
    let mut trainer = filled_trainer(small_config(5));
    for _ in 0..3 {
        trainer.step().expect("step");
    }
    let config = small_config(5);
    let architecture = architecture_digest(&config);
    let packed = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture,
    )
    .expect("pack");
    (trainer, packed)
}

fn unpacker(config: &TrainerConfig) -> Unpacker {
    Unpacker::new(config, BackendKind::Flex.device())
}

#[test]
fn packed_weights_serve_the_same_embeddings_and_rollouts_elsewhere() {
    let _serial = serial();
    let (trainer, packed) = trained_and_packed();
    assert_eq!(packed.version, trainer.snapshot().version);
    assert!(packed.version > 0 && packed.train_step == 3);
    // A node with fresh weights of the same architecture (another seed) takes them.
    let (encoder, dynamics) = unpacker(&small_config(99)).unpack(&packed).expect("unpack");
    assert_eq!(
        (encoder.version, encoder.train_step, dynamics.version),
        (packed.version, 3, packed.version)
    );
    let (images, proprio) = probe_inputs();
    let here = embed_all(&trainer, &images, &proprio);
    for (index, (image, values)) in images.iter().zip(&proprio).enumerate() {
        let there = encoder.embed(image, values).expect("embed");
        assert_eq!(there, here[index], "frame {index} embeds differently");
    }
    let actions = vec![vec![[0.2f32, 0.5]; 4], vec![[-0.1f32, 0.0]; 4]];
    let start = &here[0];
    let local = trainer
        .dynamics_snapshot()
        .rollout(start, &actions)
        .expect("rollout");
    assert_eq!(dynamics.rollout(start, &actions).expect("rollout"), local);
    // The relative-pose head travels with them: a planner there places frames as here.
    let zeros = vec![0.0; PROPRIO_DIM];
    let image_only: Vec<Vec<f32>> = images
        .iter()
        .map(|image| encoder.embed(image, &zeros).expect("embed"))
        .collect();
    let (firsts, seconds) = (image_only[..3].to_vec(), image_only[3..6].to_vec());
    let head = dynamics.relative_pose().expect("the head travels");
    assert_eq!(
        Some(head.poses(&firsts, &seconds).expect("poses")),
        trainer
            .relative_poses(&firsts, &seconds)
            .expect("relative poses"),
    );
    // So does the proprio head: a planner there steers to a goal at the predicted proprio.
    let predicted = rollout_ends(&local);
    assert!(dynamics.predicts_proprio(), "the proprio head travels");
    assert_eq!(
        dynamics.predicted_proprio(&predicted).expect("proprio"),
        trainer
            .dynamics_snapshot()
            .predicted_proprio(&predicted)
            .expect("proprio"),
    );
}

/// The last predicted state of each rollout.
fn rollout_ends(rollouts: &[Vec<Vec<f32>>]) -> Vec<&[f32]> {
    rollouts
        .iter()
        .filter_map(|states| states.last().map(Vec::as_slice))
        .collect()
}

/// Weights of `fewer` (the model of [`small_config`] with fewer heads), packed under its
/// digest and taken by a node of [`small_config`], which serves both heads: they embed as
/// their trainer does. A blob that claims `fewer`'s digest but carries both heads is refused.
/// Returns the dynamics the node took, to say which heads came.
fn taken_with_fewer_heads(fewer: TrainerConfig) -> DynamicsSnapshot {
    let mut trainer = filled_trainer(fewer.clone());
    trainer.step().expect("step");
    let packed = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture_digest(&fewer),
    )
    .expect("pack");
    let with_heads = small_config(5);
    assert_ne!(architecture_digest(&with_heads), packed.architecture);
    let (encoder, dynamics) = unpacker(&with_heads).unpack(&packed).expect("taken");
    let (images, proprio) = probe_inputs();
    assert_eq!(
        encoder.embed(&images[0], &proprio[0]).expect("embed"),
        embed_all(&trainer, &images, &proprio)[0]
    );
    let (_, with_both) = trained_and_packed();
    let claiming = PackedWeights {
        architecture: packed.architecture.clone(),
        ..with_both
    };
    let error = unpacker(&with_heads)
        .unpack(&claiming)
        .expect_err("refused");
    assert!(matches!(error, LearnError::Weights(_)), "{error}");
    dynamics
}

/// A node of a version that packed no proprio head sends the weights of the same model under
/// the digest without it: a node that serves the head takes them, without it (its planner
/// steers to the goal at rest). A node whose model does not train the head refuses weights
/// that carry it as another architecture.
#[test]
fn weights_packed_without_the_proprio_head_are_taken_without_it() {
    let _serial = serial();
    let mut without = small_config(5);
    without.objectives.forward.proprio_weight = 0.0;
    // The digest the version before this one gave the same model (the relative-pose head, no
    // proprio head): what its nodes send.
    assert_eq!(architecture_digest(&without), RELATIVE_POSE_ONLY_DIGEST);
    let dynamics = taken_with_fewer_heads(without.clone());
    assert!(!dynamics.predicts_proprio(), "no proprio head was sent");
    assert!(dynamics.relative_pose().is_some(), "the other head was");
    let (_, with_a_head) = trained_and_packed();
    let error = unpacker(&without)
        .unpack(&with_a_head)
        .expect_err("refused");
    assert!(
        matches!(error, LearnError::OtherArchitecture { .. }),
        "{error}"
    );
}

/// [`small_config`] without either head: no relative-pose head, and a forward objective that
/// does not train the proprio head.
fn small_config_without_heads() -> TrainerConfig {
    let mut config = small_config(5);
    config.model.odometry_head = false;
    config.objectives.odometry.enabled = false;
    config.objectives.forward.proprio_weight = 0.0;
    config
}

#[test]
fn weights_of_a_model_without_the_heads_carry_none_and_keep_their_digest() {
    let _serial = serial();
    let config = small_config_without_heads();
    let trainer = filled_trainer(config.clone());
    assert!(trainer.dynamics_snapshot().relative_pose().is_none());
    assert!(!trainer.dynamics_snapshot().predicts_proprio());
    let packed = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture_digest(&config),
    )
    .expect("pack");
    let (_, dynamics) = unpacker(&config).unpack(&packed).expect("unpack");
    assert!(dynamics.relative_pose().is_none());
    assert!(!dynamics.predicts_proprio());
    // The digest of a model without heads is the one it had before heads travelled, so
    // nodes of both versions still exchange weights.
    assert_eq!(architecture_digest(&config), HEADLESS_DIGEST);
    // A model with the relative-pose head whose head has not trained enough sends none: it
    // unpacks there without that head.
    let mut with_head = small_config(5);
    with_head.objectives.forward.proprio_weight = 0.0;
    let before_trained = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture_digest(&with_head),
    )
    .expect("pack");
    let (_, dynamics) = unpacker(&with_head)
        .unpack(&before_trained)
        .expect("unpack");
    assert!(dynamics.relative_pose().is_none());
}

#[test]
fn a_blob_with_part_of_a_head_is_refused() {
    let _serial = serial();
    let (_, packed) = trained_and_packed();
    for head in ["relative_pose.", "proprio_head."] {
        // Every tensor of the blob, one of the head's left out.
        let mut tensors = safetensors::SafeTensors::deserialize(&packed.safetensors)
            .expect("safetensors")
            .tensors();
        let head_tensors = tensors
            .iter()
            .filter(|(name, _)| name.starts_with(head))
            .count();
        assert!(head_tensors >= 2, "{head} travels in several tensors");
        let dropped = tensors
            .iter()
            .position(|(name, _)| name.starts_with(head))
            .expect("a head tensor");
        tensors.remove(dropped);
        let partial = PackedWeights {
            safetensors: safetensors::serialize(tensors, None).expect("serialize"),
            ..packed.clone()
        };
        let error = unpacker(&small_config(5))
            .unpack(&partial)
            .expect_err("refused");
        assert!(matches!(error, LearnError::Weights(_)), "{head}: {error}");
    }
}

/// `architecture_digest` of [`small_config`] without either head: the digest of
/// `autodidact-weights-1`'s five fields (format, encoder, action size, dynamics' hidden size,
/// action scale), which a model without heads kept when the heads began to travel.
const HEADLESS_DIGEST: &str =
    "sha256:af617fcfeefda4fb2a06f9b6d79e75067968670a12d89dc05dffaec7e7d20c66";

#[test]
fn weights_of_another_architecture_are_refused_by_their_digest() {
    let _serial = serial();
    let (_, packed) = trained_and_packed();
    let mut wider = small_config(5);
    wider.model.encoder.embed_dim = 48;
    let error = unpacker(&wider).unpack(&packed).expect_err("refused");
    assert!(
        matches!(error, LearnError::OtherArchitecture { .. }),
        "{error}"
    );
    // The action scale is part of what the dynamics mean.
    let mut faster = small_config(5);
    faster.action_scale = [2.0, 4.0];
    assert_ne!(architecture_digest(&faster), packed.architecture);
    assert_eq!(
        architecture_digest(&small_config(5)),
        packed.architecture,
        "the digest is stable for one configuration"
    );
    // So are the heads: whether the relative-pose head is served and what its metres are,
    // whether the proprio head is served.
    let mut headless = small_config(5);
    headless.objectives.odometry.enabled = false;
    let mut coarser = small_config(5);
    coarser.objectives.odometry.metres_scale = 1.0;
    let mut without_proprio = small_config(5);
    without_proprio.objectives.forward.proprio_weight = 0.0;
    for other in [headless, coarser, without_proprio] {
        assert_ne!(architecture_digest(&other), packed.architecture);
        let error = unpacker(&other).unpack(&packed).expect_err("refused");
        assert!(
            matches!(error, LearnError::OtherArchitecture { .. }),
            "{error}"
        );
    }
}

/// A dynamics of two hidden layers (`dynamics_layers = 2`) has one more `hidden × hidden`
/// layer; it trains, resumes from its checkpoint, and its weights travel under a digest of their
/// own: a node of the same shapes rolls out as its trainer does, a node with one hidden layer
/// refuses them, even when they claim its architecture.
#[test]
fn a_deeper_dynamics_resumes_and_travels_under_its_own_digest() {
    let mut deeper = small_config(5);
    deeper.model.dynamics_layers = 2;
    let hidden = deeper.model.dynamics_hidden;
    let resumed = resumes_and_travels_under_its_own_digest(&deeper, hidden * (hidden + 1));
    assert_eq!(resumed.config().model.dynamics_layers, 2);
}

/// Dynamics that carry the proprio (`dynamics_proprio`) read it from the state and step it by
/// an MLP of their own, and give the state's step the proprio before and after: they train,
/// resume from their checkpoint, and their weights travel under a digest of their own, as a
/// deeper dynamics' do.
#[test]
fn dynamics_that_carry_the_proprio_resume_and_travel_under_their_own_digest() {
    let mut carrying = small_config(5);
    carrying.model.dynamics_proprio = true;
    let (embed_dim, hidden) = (carrying.model.embed_dim(), carrying.model.dynamics_hidden);
    let step_hidden = carrying.model.dynamics().proprio_hidden;
    let (p, a) = (PROPRIO_DIM, carrying.model.action_dim);
    let extra = 2 * p * hidden // the state's step hears the proprio before and after
        + (embed_dim + 1) * p // the read-out
        + (p + a + 1) * step_hidden + (step_hidden + 1) * p; // the proprio's step
    let resumed = resumes_and_travels_under_its_own_digest(&carrying, extra);
    assert!(resumed.config().model.dynamics_proprio);
}

/// `variant` of [`small_config`] with `extra_params` more parameters, all in the dynamics:
/// trains, resumes bit for bit from its checkpoint (returned), and its weights travel under a
/// digest of their own that the plain model's node refuses.
fn resumes_and_travels_under_its_own_digest(
    variant: &TrainerConfig,
    extra_params: usize,
) -> Trainer {
    let _serial = serial();
    let plain = small_config(5);
    let mut trainer = filled_trainer(variant.clone());
    assert_eq!(
        trainer.num_params(),
        Trainer::new(plain.clone()).expect("trainer").num_params() + extra_params,
        "the variant's weights and biases"
    );
    let untrained = trainer.dynamics_snapshot();
    for _ in 0..2 {
        trainer.step().expect("step");
    }
    let (images, proprio) = probe_inputs();
    let start = &embed_all(&trainer, &images, &proprio)[0];
    let actions = vec![vec![[0.2f32, 0.5]; 4], vec![[-0.1f32, 0.0]; 4]];
    let local = trainer
        .dynamics_snapshot()
        .rollout(start, &actions)
        .expect("rollout");
    assert_ne!(
        untrained.rollout(start, &actions).expect("rollout"),
        local,
        "training moves the dynamics"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt");
    trainer.save_checkpoint(&path).expect("save");
    let resumed = Trainer::resume(&path, Some(&variant.model)).expect("resume");
    assert_eq!(
        resumed
            .dynamics_snapshot()
            .rollout(start, &actions)
            .expect("rollout"),
        local,
        "resumed bit for bit"
    );

    let packed = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture_digest(variant),
    )
    .expect("pack");
    assert_ne!(packed.architecture, architecture_digest(&plain));
    assert_eq!(
        architecture_digest(&plain),
        architecture_digest(&small_config(5)),
        "the plain model keeps the digest it had before the option"
    );
    let (_, dynamics) = unpacker(variant).unpack(&packed).expect("unpack");
    assert_eq!(dynamics.rollout(start, &actions).expect("rollout"), local);
    let error = unpacker(&plain).unpack(&packed).expect_err("refused");
    assert!(
        matches!(error, LearnError::OtherArchitecture { .. }),
        "{error}"
    );
    let claiming = PackedWeights {
        architecture: architecture_digest(&plain),
        ..packed
    };
    let error = unpacker(&plain).unpack(&claiming).expect_err("refused");
    assert!(matches!(error, LearnError::Weights(_)), "{error}");
    resumed
}

/// A trainer resumed from a checkpoint written before the relative-pose head was the default
/// packs its weights without it: a node configured with the head takes them, and serves no
/// such head.
#[test]
fn weights_of_the_same_model_without_the_relative_pose_head_are_taken_without_it() {
    let _serial = serial();
    let mut headless = small_config(5);
    headless.model.odometry_head = false;
    headless.objectives.odometry.enabled = false;
    let dynamics = taken_with_fewer_heads(headless);
    assert!(dynamics.relative_pose().is_none(), "no head was sent");
    assert!(dynamics.predicts_proprio(), "the proprio head was");
}

/// `architecture_digest` of [`small_config`] whose forward objective does not train the
/// proprio head: the digest every version before the proprio head travelled gave the model
/// with the relative-pose head.
const RELATIVE_POSE_ONLY_DIGEST: &str =
    "sha256:6c303f6f0c2382b2fa86b1f3a7727aff4a399f9514662b497b1a08a5c4e4b3a1";

/// Weights of a model that serves neither head, taken by a node whose model serves both: they
/// serve there without either.
#[test]
fn weights_without_either_head_are_taken_by_a_node_that_serves_both() {
    let _serial = serial();
    let dynamics = taken_with_fewer_heads(small_config_without_heads());
    assert!(
        dynamics.relative_pose().is_none(),
        "no relative-pose head was sent"
    );
    assert!(!dynamics.predicts_proprio(), "no proprio head was sent");
}

#[test]
fn damaged_or_mislabelled_weights_are_refused_whole() {
    let _serial = serial();
    let (_, packed) = trained_and_packed();
    let take = unpacker(&small_config(5));
    let cut = PackedWeights {
        safetensors: packed.safetensors[..packed.safetensors.len() / 2].to_vec(),
        ..packed.clone()
    };
    let garbage = PackedWeights {
        safetensors: vec![0xff; 64],
        ..packed.clone()
    };
    // Weights of another shape that claim this architecture: every tensor is checked.
    let mut other = small_config(5);
    other.model.dynamics_hidden = 32;
    let other_trainer = Trainer::new(other).expect("trainer");
    let mislabelled = pack(
        &other_trainer.snapshot(),
        &other_trainer.dynamics_snapshot(),
        &packed.architecture,
    )
    .expect("pack");
    for (what, bad) in [
        ("cut", cut),
        ("garbage", garbage),
        ("mislabelled", mislabelled),
    ] {
        let error = take.unpack(&bad).expect_err(what);
        assert!(matches!(error, LearnError::Weights(_)), "{what}: {error}");
    }
}
