//! `autodidact bag info` and `autodidact train --bag`: configured from the command line and an
//! optional TOML file, summarised as tables.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use autodidact_bag::{Role, TopicChoice};
use autodidact_learn::{BackendChoice, Trainer, TrainerConfig};
use autodidact_nodes::bags::{BagInfo, BagTrainConfig, BagTrainReport};
use autodidact_nodes::viz::VizSink;

use crate::FileConfig;

/// What the user asked `autodidact train --bag` for.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The bags.
    pub bags: Vec<PathBuf>,
    /// Checkpoint directory (written at the end and every `[trainer_node] checkpoint_every`).
    pub checkpoint: PathBuf,
    /// Continue the checkpoint in `checkpoint` instead of starting a new model.
    pub resume: bool,
    /// Optimiser steps (default: 8 samples per frame and epoch).
    pub steps: Option<u64>,
    /// Passes over the bags.
    pub epochs: u32,
    /// Telemetry file.
    pub rrd: Option<PathBuf>,
    /// Topics named by the user.
    pub topics: TopicChoice,
    /// Model seed (a new model only).
    pub seed: u64,
    /// Where training runs (`None`: the configuration file's, `auto` by default).
    pub backend: Option<BackendChoice>,
    /// Where inference runs (`None`: the configuration file's, `auto` by default).
    pub inference_backend: Option<BackendChoice>,
    /// Play the bags at this factor of their recorded rate.
    pub realtime: Option<f64>,
}

/// The trainer `train --bag` starts from: the checkpoint's with `--resume`, otherwise a new
/// model of the file's (or the default) configuration. A checkpoint already in the directory
/// is never replaced by a new model without `--resume`.
pub fn bag_trainer(options: &TrainOptions, file: &FileConfig) -> Result<(Trainer, BagTrainConfig)> {
    let collector = file.collector.clone();
    let mut trainer_config = match &file.trainer {
        Some(trainer) => trainer.clone(),
        None => TrainerConfig::for_inputs(
            collector.width as usize,
            collector.height as usize,
            collector.proprio.dim(),
        ),
    };
    trainer_config.seed = options.seed;
    if let Some(backend) = options.backend {
        trainer_config.backend = backend;
    }
    if let Some(backend) = options.inference_backend {
        trainer_config.inference_backend = backend;
    }
    let has_checkpoint = options.checkpoint.join("meta.json").exists();
    let trainer = if options.resume {
        Trainer::resume_on(
            &options.checkpoint,
            Some(&trainer_config.model),
            trainer_config.backend,
            trainer_config.inference_backend,
        )
        .with_context(|| {
            format!(
                "resuming the checkpoint in {}",
                options.checkpoint.display()
            )
        })?
    } else {
        if has_checkpoint {
            bail!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another directory",
                options.checkpoint.display()
            );
        }
        Trainer::check_checkpoint_target(&options.checkpoint)?;
        Trainer::new(trainer_config)?
    };
    let mut trainer_node = file.trainer_node.clone();
    trainer_node.checkpoint_dir = Some(options.checkpoint.clone());
    let viz = autodidact_nodes::viz::VizConfig {
        sink: match &options.rrd {
            Some(path) => VizSink::File(path.clone()),
            None => VizSink::Off,
        },
        ..file.viz.clone()
    };
    if options.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if options.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    Ok((
        trainer,
        BagTrainConfig {
            bags: options.bags.clone(),
            topics: options.topics.clone(),
            collector,
            trainer_node,
            encoder: file.encoder.clone(),
            viz,
            steps: options.steps,
            epochs: options.epochs,
            realtime: options.realtime,
        },
    ))
}

/// The rows of `bag info`'s topic table.
pub fn info_rows(info: &BagInfo) -> Vec<[String; 6]> {
    info.topics
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.type_name.clone(),
                if t.undecodable > 0 {
                    format!("{} ({} undecodable)", t.count, t.undecodable)
                } else {
                    t.count.to_string()
                },
                t.rate_hz.map_or_else(|| "-".into(), |r| format!("{r:.1}")),
                t.role
                    .map_or_else(|| "-".to_owned(), |r: Role| r.name().to_owned()),
                t.unused_because.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// The summary table of `train --bag`.
pub fn train_rows(report: &BagTrainReport) -> Vec<(String, String)> {
    let mut rows = vec![
        ("wall time".to_owned(), format!("{:.1} s", report.wall_s)),
        ("epochs".into(), report.epochs.to_string()),
        (
            "train steps (this run / in all)".into(),
            format!("{} / {}", report.steps_this_run, report.train_step),
        ),
        ("model version".into(), report.model_version.to_string()),
        ("frames".into(), report.collector.frames.to_string()),
        ("transitions".into(), report.transitions.to_string()),
        (
            "episodes restarted (stamps back)".into(),
            report.collector.restarts.to_string(),
        ),
    ];
    if let (Some(first), Some(last)) = (report.first_losses, report.last_losses) {
        rows.push((
            "loss first → last".into(),
            format!("{:.3} → {:.3}", first.total, last.total),
        ));
    }
    for (reason, count) in &report.collector.dropped {
        rows.push((format!("dropped: {reason}"), count.to_string()));
    }
    for bag in &report.bags {
        let mut skipped = Vec::new();
        if bag.undecodable > 0 {
            skipped.push(format!("{} undecodable", bag.undecodable));
        }
        let d = &bag.damage;
        if d.skipped_chunks > 0 {
            skipped.push(format!("{} damaged chunks", d.skipped_chunks));
        }
        if d.truncated_files > 0 {
            skipped.push(format!("{} files cut short", d.truncated_files));
        }
        if d.unusable_messages + d.bad_records > 0 {
            skipped.push(format!(
                "{} unusable records",
                d.unusable_messages + d.bad_records
            ));
        }
        rows.push((
            format!("bag {}", bag.path.display()),
            format!(
                "{} messages, {} fed{}",
                bag.messages,
                bag.fed,
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped: {}", skipped.join(", "))
                }
            ),
        ));
    }
    if let (Some(p50), Some(p99)) = (report.latency_p50_s, report.latency_p99_s) {
        rows.push((
            "image→embedding p50 / p99".into(),
            format!(
                "{:.2} / {:.2} ms ({} embeddings)",
                p50 * 1e3,
                p99 * 1e3,
                report.embeddings
            ),
        ));
    }
    if let Some(mib) = report.peak_rss_mib {
        rows.push(("peak RSS".into(), format!("{mib:.0} MiB")));
    }
    if let Some(dir) = &report.checkpoint {
        rows.push(("checkpoint".into(), dir.display().to_string()));
    }
    rows
}
