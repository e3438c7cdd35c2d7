//! Learning curve of the world model on simulator exploration data: every `EVAL_EVERY` steps,
//! the held-out pose probe R² (per target), k-step prediction ÷ copy-last and effective rank.
//!
//! A tool for tuning objectives. Knobs come from environment variables; an unset knob keeps the
//! library default. Run shape: `STEPS` [600], `EVAL_EVERY` [100], `EPISODES` [5],
//! `EPISODE_STEPS` [1500], `SIDE` [32]. Config: `SEED`, `EMBED`, `BATCH`, `LR`, `EMA`,
//! `PUBLISH_EMA` (0/1), `WINDOW`, `TEMPORAL_WEIGHT`, `TEMPERATURE`, `CONTRASTIVE_WEIGHT`,
//! `RECON` (0/1), `RECON_WEIGHT`, `FORWARD` (0/1), `FORWARD_WEIGHT`,
//! `TARGET_START_WEIGHT`, `SPREAD` (0/1),
//! `VARIANCE_WEIGHT`, `COVARIANCE_WEIGHT`, `TARGET_STD`, `SHIFT`, `SHIFT_Y`, `BRIGHTNESS`,
//! `CONTRAST`, `CHANNEL_GAIN`.
//!
//! `cargo run --release -p autodidact-learn --example learning_curve`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use autodidact_learn::metrics::probe_r2;
use autodidact_learn::{Trainer, TrainerConfig};
use common::{PROPRIO_DIM, Sample, embed, explore, sim_config};

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    let mut value = default;
    set(name, &mut value);
    value
}

/// Overrides `slot` when the environment variable `name` is set (and parses).
fn set<T: std::str::FromStr>(name: &str, slot: &mut T) {
    if let Ok(text) = std::env::var(name) {
        match text.parse() {
            Ok(value) => *slot = value,
            Err(_) => panic!("{name}={text} does not parse"),
        }
    }
}

fn switch(name: &str, slot: &mut bool) {
    let mut on = u8::from(*slot);
    set(name, &mut on);
    *slot = on == 1;
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
    let health = common::health(trainer, held_out);
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
    let side: usize = knob("SIDE", 32);
    let sim = sim_config(side as u32);
    let train: Vec<Sample> = (0..episodes)
        .flat_map(|s| explore(&sim, s, episode_steps))
        .collect();
    let held_out: Vec<Sample> = (100..103).flat_map(|s| explore(&sim, s, 500)).collect();
    let probe_train: Vec<&Sample> = train.iter().step_by(3).collect();

    let mut config = TrainerConfig::for_inputs(side, side, PROPRIO_DIM);
    set("SEED", &mut config.seed);
    set("EMBED", &mut config.model.encoder.embed_dim);
    set("BATCH", &mut config.batch_size);
    set("LR", &mut config.learning_rate);
    set("EMA", &mut config.ema_momentum);
    switch("PUBLISH_EMA", &mut config.publish_ema_encoder);
    let o = &mut config.objectives;
    set("WINDOW", &mut o.contrastive.temporal_window);
    set("TEMPORAL_WEIGHT", &mut o.contrastive.temporal_weight);
    set("TEMPERATURE", &mut o.contrastive.temperature);
    set("CONTRASTIVE_WEIGHT", &mut o.contrastive.weight);
    switch("RECON", &mut o.reconstruction.enabled);
    set("RECON_WEIGHT", &mut o.reconstruction.weight);
    switch("FORWARD", &mut o.forward.enabled);
    set("FORWARD_WEIGHT", &mut o.forward.weight);
    set("TARGET_START_WEIGHT", &mut o.forward.target_start_weight);
    switch("SPREAD", &mut o.spread.enabled);
    set("VARIANCE_WEIGHT", &mut o.spread.variance_weight);
    set("COVARIANCE_WEIGHT", &mut o.spread.covariance_weight);
    set("TARGET_STD", &mut o.spread.target_std);
    set("BRIGHTNESS", &mut config.augment.brightness);
    set("CONTRAST", &mut config.augment.contrast);
    set("CHANNEL_GAIN", &mut config.augment.channel_gain);
    set("SHIFT", &mut config.augment.max_shift_px);
    set("SHIFT_Y", &mut config.augment.max_shift_y_px);
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
