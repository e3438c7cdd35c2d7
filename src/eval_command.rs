//! `autodidact eval`: the built-in benchmark's arguments, the model it scores (trained on the
//! simulator's exploration, or a checkpoint) and its table, JSON and rerun outputs.

use std::path::PathBuf;

use anyhow::Result;
use autodidact::FileConfig;
use autodidact_eval::{EvalConfig, EvalModel, evaluate, report_rows, train_model};
use autodidact_learn::TrainerConfig;
use autodidact_nodes::ProprioConfig;
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bag_commands::{TopicArgs, eval_bags};
use crate::write_json;

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EvalArgs {
    /// Checkpoint directory to evaluate (written by `autodidact run --checkpoint`). Without
    /// one, eval first trains a model on fresh exploration data (see --train-steps).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Score the --checkpoint on held-out bags of a robot instead of simulator worlds: probes
    /// and k-NN to the odometry pose and wheel velocities, prediction ÷ copy-last under the
    /// recorded commands, collapse, beside a random-init model (repeat for several bags).
    #[arg(long = "bag", requires = "checkpoint")]
    pub(crate) bags: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) topics: TopicArgs,
    /// Without --checkpoint: optimiser steps of the model eval trains.
    #[arg(long, default_value_t = 900)]
    train_steps: u64,
    /// Without --checkpoint: minutes of exploration experience the model learns from, in worlds
    /// 0, 1, 2, … of 1500 control periods (75 s) each; the home protocol's worlds are the first
    /// five of them, unless --home-worlds says otherwise.
    #[arg(long, default_value_t = 6.25)]
    experience_min: f64,
    /// Without --checkpoint: also save the model eval trained as a checkpoint here.
    #[arg(long)]
    save_checkpoint: Option<PathBuf>,
    /// Without --checkpoint: camera side (pixels) of the model eval trains [default: the
    /// config's [sim.camera], else 32].
    #[arg(long, conflicts_with = "checkpoint")]
    side: Option<u32>,
    /// Held-out exploration episodes (probes fit on half, score on the rest) [default: 8].
    #[arg(long)]
    episodes: Option<u64>,
    /// Start/goal pairs per planning setting [default: 20].
    #[arg(long)]
    pairs: Option<usize>,
    /// Planning settings to run, in both protocols: easy, far, across, near (0.1–0.35 m away in
    /// any direction: the last stretch of a far goal) [default: easy,far,across].
    #[arg(long, value_delimiter = ',')]
    settings: Option<Vec<autodidact_eval::GoalSetting>>,
    /// Control periods per planning attempt, easy goals [default: 60].
    #[arg(long)]
    plan_steps: Option<usize>,
    /// Control periods per planning attempt, far, across and near goals [default: 200].
    #[arg(long)]
    far_plan_steps: Option<usize>,
    /// Home protocol: the worlds the model learned in [default: 0,1,2,3,4, the worlds of the
    /// model eval trains; `autodidact run --seed S` learns in S, S+1, … (one per episode)].
    #[arg(long, value_delimiter = ',')]
    home_worlds: Option<Vec<u64>>,
    /// Control periods of the drive through a world the memory planner remembers [default: 1500].
    #[arg(long)]
    memory_steps: Option<usize>,
    /// Seed of the held-out worlds, pairs and baselines.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads for the worlds' drives, start/goal pairs, candidate rankings and k-NN searches
    /// to run on side by side [default: one per core]. The report is the same for any number.
    #[arg(long)]
    jobs: Option<usize>,
    /// Also write the report as JSON (schema `autodidact.eval/2`, see docs/eval.md).
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Also record the report to this rerun file: scores on the train_step timeline, planning
    /// paths in the arena, goal images (open it with `rerun FILE`).
    #[arg(long)]
    rrd: Option<PathBuf>,
    /// TOML configuration file: optional [sim] (its camera sets the model eval trains; with
    /// --checkpoint the camera follows the model), [trainer] (for the model eval trains) and
    /// [eval] (with [eval.planner]) sections.
    #[arg(long)]
    config: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Camera side (pixels) of the model `eval` trains where neither `--side` nor the config's
/// `[sim.camera]` sets it.
const DEFAULT_SIDE: u32 = 32;

/// Control periods per exploration episode of the model `eval` trains.
const EVAL_EPISODE_STEPS: usize = 1500;

/// `(episodes, steps per episode)` for `minutes` of exploration at `period_s` per control
/// period: episodes of [`EVAL_EPISODE_STEPS`] (rounded up to whole episodes), or one shorter
/// episode for less.
fn experience(minutes: f64, period_s: f64) -> Result<(u64, usize)> {
    let frames = minutes * 60.0 / period_s;
    if !(frames.is_finite() && frames >= 20.0) {
        anyhow::bail!("--experience-min {minutes} makes fewer than 20 frames");
    }
    let frames = frames.round() as usize;
    let episodes = frames.div_ceil(EVAL_EPISODE_STEPS);
    Ok((episodes as u64, frames.min(EVAL_EPISODE_STEPS)))
}

/// `autodidact eval`: scores a model (trained here, or a checkpoint) on simulator worlds, or on
/// held-out bags with `--bag`.
pub(crate) fn eval(args: EvalArgs) -> Result<()> {
    let file =
        FileConfig::load_with_camera(args.config.as_deref(), args.side.unwrap_or(DEFAULT_SIDE))?;
    let camera = (file.sim.camera.width, file.sim.camera.height);
    if let Some(side) = args.side
        && camera != (side, side)
    {
        anyhow::bail!(
            "--side {side} and the config's [sim.camera] ({}x{}) disagree: set one",
            camera.0,
            camera.1
        );
    }
    if let (false, Some(checkpoint)) = (args.bags.is_empty(), &args.checkpoint) {
        return eval_bags(&args, &file, checkpoint);
    }
    let file_eval = autodidact::eval_config(&file)?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(1)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:24} {bar:32} {pos}/{len}  elapsed {elapsed}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |stage: &str, done: u64, total: u64| {
        if bar.message() != stage {
            bar.set_message(stage.to_owned());
            bar.reset();
        }
        bar.set_length(total);
        bar.set_position(done);
    };
    let mut sim = file.sim.clone();
    let mut trained_worlds = None;
    let model = match &args.checkpoint {
        Some(path) => EvalModel::from_checkpoint(path)?,
        None => {
            let mut trainer = file.trainer.clone().unwrap_or_else(|| {
                TrainerConfig::for_inputs(
                    camera.0 as usize,
                    camera.1 as usize,
                    ProprioConfig::default().dim(),
                )
            });
            trainer.seed = args.seed;
            let (episodes, episode_steps) = experience(args.experience_min, sim.control_period_s)?;
            trained_worlds = Some((episodes, episode_steps));
            let model = train_model(
                &sim,
                &file.exploration,
                trainer,
                episodes,
                episode_steps,
                args.train_steps,
                &progress,
            )?;
            if let Some(path) = &args.save_checkpoint {
                model.trainer.save_checkpoint(path)?;
            }
            model
        }
    };
    let image = &model.trainer.config().model.encoder.image;
    sim.camera.width = image.width as u32;
    sim.camera.height = image.height as u32;
    let config = EvalConfig {
        episodes: args.episodes.unwrap_or(file_eval.episodes),
        pairs: args.pairs.unwrap_or(file_eval.pairs),
        plan_steps: args.plan_steps.unwrap_or(file_eval.plan_steps),
        far_plan_steps: args.far_plan_steps.unwrap_or(file_eval.far_plan_steps),
        settings: args
            .settings
            .clone()
            .unwrap_or_else(|| file_eval.settings.clone()),
        home_worlds: match (&args.home_worlds, trained_worlds) {
            (Some(worlds), _) => worlds.clone(),
            (None, Some((episodes, _))) => (0..episodes.min(5)).collect(),
            (None, None) => file_eval.home_worlds.clone(),
        },
        memory_steps: match (args.memory_steps, trained_worlds) {
            (Some(steps), _) => steps,
            (None, Some((_, episode_steps))) => episode_steps,
            (None, None) => file_eval.memory_steps,
        },
        seed: args.seed,
        jobs: args.jobs.unwrap_or(0),
        ..file_eval
    };
    let started = std::time::Instant::now();
    let report = evaluate(&model, &sim, &file.exploration, &config, &progress)?;
    bar.finish_and_clear();
    let mut table = Table::new();
    table.set_header(["metric", "model", "baseline"]);
    for row in report_rows(&report) {
        table.add_row(row);
    }
    println!("{table}");
    println!(
        "{} ({} frames held out, evaluated in {:.0} s)",
        report.model.source,
        report.data.frames,
        started.elapsed().as_secs_f64()
    );
    write_json(args.json.as_deref(), &report)?;
    if let Some(path) = &args.rrd {
        autodidact_eval::save_report(path, &report)?;
    }
    Ok(())
}
