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
    let architecture = architecture_digest(&config.model, config.action_scale);
    let packed = pack(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &architecture,
    )
    .expect("pack");
    (trainer, packed)
}

fn unpacker(config: &TrainerConfig) -> Unpacker {
    Unpacker::new(
        config.model.clone(),
        config.action_scale,
        BackendKind::Flex.device(),
    )
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
}

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
    assert_ne!(
        architecture_digest(&faster.model, faster.action_scale),
        packed.architecture
    );
    assert_eq!(
        architecture_digest(&small_config(5).model, small_config(5).action_scale),
        packed.architecture,
        "the digest is stable for one configuration"
    );
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
