//! Learning curve of the world model on simulator exploration data: every `EVAL_EVERY` steps,
//! the held-out pose probe R² (per target), k-step prediction ÷ copy-last and effective rank.
//!
//! A tool for tuning objectives; knobs come from environment variables (defaults in brackets):
//! `STEPS` [600], `EVAL_EVERY` [100], `EPISODES` [5], `EPISODE_STEPS` [1500], `BATCH` [64],
//! `LR` [1e-3], `WINDOW` [3], `TEMPORAL_WEIGHT` [0.5], `TEMPERATURE` [0.1], `RECON` [1],
//! `FORWARD` [1], `JITTER` [1], `SHIFT` [4], `SHIFT_Y` [0], `EMA` [0.99], `SEED` [0], `SIDE` [64],
//! `RECON_WEIGHT` [1], `FORWARD_WEIGHT` [1], `CONTRASTIVE_WEIGHT` [1], `PUBLISH_EMA` [1], `EMBED` [128].
//!
//! `cargo run --release -p autodidact-learn --example learning_curve`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use autodidact_learn::metrics::probe_r2;
use autodidact_learn::{Trainer, TrainerConfig, embedding_health};
use common::{PROPRIO_DIM, Sample, embed, explore, sim_config};

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn evaluate(trainer: &Trainer, probe_train: &[&Sample], held_out: &[Sample]) -> String {
    let probe_test: Vec<&Sample> = held_out.iter().collect();
    let targets = |s: &[&Sample]| -> Vec<Vec<f32>> { s.iter().map(|s| s.pose.to_vec()).collect() };
    let test_embeddings = embed(trainer, &probe_test);
    let (r2, per) = probe_r2(
        &embed(trainer, probe_train),
        &targets(probe_train),
        &test_embeddings,
        &targets(&probe_test),
        1e-3,
    )
    .expect("probe");
    let frames: Vec<_> = held_out.iter().map(|s| s.transition.clone()).collect();
    let health = embedding_health(
        &trainer.snapshot(),
        &trainer.dynamics_snapshot(),
        &frames,
        3,
        4,
    )
    .expect("health");
    let (ratios, collapse) = (health.prediction_vs_copy_last, health.collapse);
    // In-distribution: fit on every other kept training frame, score on the rest.
    let fit: Vec<&Sample> = probe_train.iter().step_by(2).copied().collect();
    let score: Vec<&Sample> = probe_train.iter().skip(1).step_by(2).copied().collect();
    let (in_dist, _) = probe_r2(
        &embed(trainer, &fit),
        &targets(&fit),
        &embed(trainer, &score),
        &targets(&score),
        1e-3,
    )
    .expect("probe");
    format!(
        "R² {r2:.3} {per:.3?} (in-dist {in_dist:.3})  pred/copy {ratios:.3?}  erank {:.1}",
        collapse.effective_rank
    )
}

fn main() {
    let steps: usize = knob("STEPS", 600);
    let eval_every: usize = knob("EVAL_EVERY", 100);
    let episodes: u64 = knob("EPISODES", 5);
    let episode_steps: usize = knob("EPISODE_STEPS", 1500);
    let side: usize = knob("SIDE", 64);
    let sim = sim_config(side as u32);
    let train: Vec<Sample> = (0..episodes)
        .flat_map(|s| explore(&sim, s, episode_steps))
        .collect();
    let held_out: Vec<Sample> = (100..103).flat_map(|s| explore(&sim, s, 500)).collect();
    let probe_train: Vec<&Sample> = train.iter().step_by(3).collect();

    let mut config = TrainerConfig::for_inputs(side, side, PROPRIO_DIM);
    config.seed = knob("SEED", 0);
    config.model.encoder.embed_dim = knob("EMBED", 128);
    config.batch_size = knob("BATCH", 64);
    config.learning_rate = knob("LR", 1e-3);
    config.ema_momentum = knob("EMA", 0.99);
    config.publish_ema_encoder = knob("PUBLISH_EMA", 1) == 1;
    let o = &mut config.objectives;
    o.contrastive.temporal_window = knob("WINDOW", 3);
    o.contrastive.temporal_weight = knob("TEMPORAL_WEIGHT", 0.5);
    o.contrastive.temperature = knob("TEMPERATURE", 0.1);
    o.reconstruction.enabled = knob("RECON", 1) == 1;
    o.reconstruction.weight = knob("RECON_WEIGHT", 1.0);
    o.forward.weight = knob("FORWARD_WEIGHT", 1.0);
    o.contrastive.weight = knob("CONTRASTIVE_WEIGHT", 1.0);
    o.forward.enabled = knob("FORWARD", 1) == 1;
    if knob("JITTER", 1) == 0 {
        config.augment.brightness = 0.0;
        config.augment.contrast = 0.0;
        config.augment.channel_gain = 0.0;
    }
    config.augment.max_shift_px = knob("SHIFT", 4);
    config.augment.max_shift_y_px = knob("SHIFT_Y", 0);
    println!("{config:?}");
    let mut trainer = Trainer::new(config).expect("trainer");
    for sample in &train {
        trainer.push(sample.transition.clone()).expect("push");
    }
    println!("step 0: {}", evaluate(&trainer, &probe_train, &held_out));
    let started = Instant::now();
    for step in 1..=steps {
        let report = trainer.step().expect("step");
        if step % eval_every == 0 {
            println!(
                "step {step} ({:.0} s) loss {:.3} {:?}: {}",
                started.elapsed().as_secs_f64(),
                report.losses.total,
                report.losses,
                evaluate(&trainer, &probe_train, &held_out)
            );
        }
    }
}
