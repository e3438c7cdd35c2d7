//! The commands on robots' data: `autodidact train --bag`, `autodidact bag info`, and
//! `autodidact eval --bag` (its arguments are `eval`'s).

use std::path::PathBuf;

use anyhow::Result;
use autodidact::FileConfig;
use autodidact_eval::EvalModel;
use autodidact_learn::BackendChoice;
use clap::Subcommand;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};

use crate::eval_command::EvalArgs;
use crate::write_json;

/// Topics of a bag named by hand (found by type when unambiguous), as the nodes' remaps name
/// them.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TopicArgs {
    /// The camera topic (sensor_msgs/Image or CompressedImage).
    #[arg(long)]
    camera_topic: Option<String>,
    /// The joint states topic.
    #[arg(long)]
    joint_states_topic: Option<String>,
    /// The IMU topic.
    #[arg(long)]
    imu_topic: Option<String>,
    /// The odometry topic.
    #[arg(long)]
    odom_topic: Option<String>,
    /// The command topic (geometry_msgs/Twist or TwistStamped).
    #[arg(long)]
    cmd_vel_topic: Option<String>,
}

impl TopicArgs {
    pub(crate) fn choice(&self) -> autodidact_bag::TopicChoice {
        autodidact_bag::TopicChoice {
            camera: self.camera_topic.clone(),
            joint_states: self.joint_states_topic.clone(),
            imu: self.imu_topic.clone(),
            odometry: self.odom_topic.clone(),
            commands: self.cmd_vel_topic.clone(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TrainArgs {
    /// A bag to train on: a rosbag2 directory, a .mcap or a .db3 (repeat for several; each is
    /// its own episode).
    #[arg(long = "bag", required = true)]
    bags: Vec<PathBuf>,
    /// Checkpoint directory: written at the end (and every [trainer_node] checkpoint_every).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Continue the checkpoint in --checkpoint instead of starting a new model.
    #[arg(long)]
    resume: bool,
    /// Optimiser steps [default: 8 samples per camera frame and epoch].
    #[arg(long)]
    steps: Option<u64>,
    /// Passes over the bags.
    #[arg(long, default_value_t = 1)]
    epochs: u32,
    /// Record telemetry to this rerun file (the same tree as `run`).
    #[arg(long)]
    rrd: Option<PathBuf>,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// TOML configuration file: optional [collector], [trainer], [trainer_node], [encoder].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed of a new model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where training runs: auto (a hardware GPU if wgpu finds one, else the CPU), flex or
    /// wgpu. Default: the config file's, else auto.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Where frames are encoded: auto, flex or wgpu. Default: the config file's, else auto.
    #[arg(long)]
    inference_backend: Option<BackendChoice>,
    /// Play the bags at this factor of their recorded rate, as a live robot delivers them: the
    /// encoder embeds the newest frame, the report gives image→embedding latency, and the run
    /// ends with the data (default: as fast as training takes them, until --steps).
    #[arg(long)]
    realtime: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    topics: TopicArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BagWhat {
    /// Topics, types, counts, rates and duration; which topic feeds which input and why the
    /// others do not; what is damaged.
    Info {
        /// A rosbag2 directory, a .mcap or a .db3.
        path: PathBuf,
        /// Also write the report as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        #[command(flatten)]
        topics: TopicArgs,
    },
}

pub(crate) fn bag_info(
    path: &std::path::Path,
    json: Option<PathBuf>,
    topics: &TopicArgs,
) -> Result<()> {
    let info = autodidact_nodes::bags::bag_info(path, &topics.choice())?;
    println!(
        "{}: {} messages over {:.1} s in {} file(s)",
        info.path.display(),
        info.messages,
        info.duration_s,
        info.files.len()
    );
    let mut table = Table::new();
    table.set_header([
        "topic",
        "type",
        "messages",
        "Hz",
        "input",
        "not used because",
    ]);
    for row in autodidact::bag::info_rows(&info) {
        table.add_row(row);
    }
    println!("{table}");
    if let Some(error) = &info.inputs_error {
        println!("inputs: {error}");
    } else if !info
        .topics
        .iter()
        .any(|t| t.role == Some(autodidact_bag::Role::Camera))
    {
        println!("inputs: no camera topic: nothing to learn from");
    }
    for note in &info.damage.notes {
        println!("damage: {note}");
    }
    write_json(json.as_deref(), &info)
}

pub(crate) fn train(args: TrainArgs) -> Result<()> {
    let file = FileConfig::load_or_default(args.config.as_deref())?;
    let options = autodidact::bag::TrainOptions {
        bags: args.bags.clone(),
        checkpoint: args.checkpoint.clone(),
        resume: args.resume,
        steps: args.steps,
        epochs: args.epochs,
        rrd: args.rrd.clone(),
        topics: args.topics.choice(),
        seed: args.seed,
        backend: args.backend,
        inference_backend: args.inference_backend,
        realtime: args.realtime,
    };
    let (trainer, config) = autodidact::bag::bag_trainer(&options, &file)?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:32} {pos}/{len} train steps  {msg}  elapsed {elapsed}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = autodidact_nodes::bags::train_on_bags(&config, trainer, &stop, |p| {
        bar.set_length(p.target_steps);
        bar.set_position(p.train_steps);
        bar.set_message(format!(
            "epoch {}  frames {}/{}  loss {}",
            p.epoch,
            p.images_read,
            p.images_total,
            p.loss.map_or_else(|| "-".to_owned(), |l| format!("{l:.3}"))
        ));
    })?;
    bar.finish_and_clear();
    let mut table = Table::new();
    table.set_header(["", "value"]);
    for (name, value) in autodidact::bag::train_rows(&report) {
        table.add_row([name, value]);
    }
    println!("{table}");
    write_json(args.json.as_deref(), &report)
}

/// `eval --bag`: the checkpoint scored on bags, beside a random-init model.
pub(crate) fn eval_bags(
    args: &EvalArgs,
    file: &FileConfig,
    checkpoint: &std::path::Path,
) -> Result<()> {
    let model = EvalModel::from_checkpoint(checkpoint)?;
    let image = &model.trainer.config().model.encoder.image;
    let collector = autodidact_nodes::CollectorConfig {
        width: image.width as u32,
        height: image.height as u32,
        ..file.collector.clone()
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(3)
    };
    let progress = |stage: &str, done: u64, _: u64| {
        bar.set_message(stage.to_owned());
        bar.set_position(done);
    };
    let report = autodidact_eval::evaluate_bags(
        &model,
        &args.bags,
        &args.topics.choice(),
        &collector,
        &progress,
    )?;
    bar.finish_and_clear();
    let mut table = Table::new();
    table.set_header(["metric", "model", "random init"]);
    for row in autodidact_eval::bag_report_rows(&report) {
        table.add_row(row);
    }
    println!("{table}");
    println!(
        "{} (step {}): probes fitted on {} frames, scored on the next {}",
        report.model_source, report.train_step, report.fit_frames, report.score_frames
    );
    write_json(args.json.as_deref(), &report)
}
