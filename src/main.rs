//! `autodidact`: a robot teaches itself about its world.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use autodidact::FileConfig;
use autodidact::run::{RunOptions, graph_config, summary_rows};
use autodidact::sim::{DemoOptions, run_demo};
use autodidact_bench::{BenchRow, bench_graph, bench_learn, bench_sim};
use autodidact_bench::{PytorchComparison, PytorchOptions, compare_with_pytorch, comparison_rows};
use autodidact_learn::BackendChoice;
use bag_commands::{BagWhat, TrainArgs, bag_info, train};
use clap::{Parser, Subcommand};
use comfy_table::Table;
use eval_command::{EvalArgs, eval};
use indicatif::{ProgressBar, ProgressStyle};

/// mimalloc keeps freed memory for the next allocation of its size: the training step's large
/// buffers are not faulted in from the kernel again on every step, as they are with glibc's
/// malloc (see bench/README.md).
mod bag_commands;
mod eval_command;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(version, about = "A robot teaches itself about its world.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job (the default command): the node graph in one process on the simulator —
    /// sim → collector → trainer + encoder → viz — recorded for rerun.
    Run(RunArgs),
    /// The simulator alone: the robot explores; frames are written as PNG with a summary.
    Sim(SimArgs),
    /// How good a world model is, on held-out simulator worlds: probes, k-NN, prediction vs
    /// copy-last, collapse monitors and goal reaching with the reference planner.
    Eval(EvalArgs),
    /// Trains a world model offline on rosbag2 bags (MCAP directories, bare .mcap, sqlite3
    /// .db3) through the same collector and trainer as the live nodes; no ROS install needed.
    Train(TrainArgs),
    /// rosbag2 bags: what they hold and what the learner would take from them.
    Bag {
        #[command(subcommand)]
        what: BagWhat,
    },
    /// Benchmarks that print a table.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Control steps to simulate (one camera frame each; 20 Hz sim time by default).
    #[arg(long, default_value_t = 2400)]
    steps: u64,
    /// Stop after this many wall-clock minutes even if steps remain.
    #[arg(long)]
    minutes: Option<f64>,
    /// Sim seconds per wall second, like a robot (0: as fast as the machine goes).
    #[arg(long, default_value_t = 1.0)]
    realtime: f64,
    /// Seed of the worlds, the exploration and the model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps per episode; each episode is a new world (0: one episode).
    #[arg(long, default_value_t = 1200)]
    episode_steps: u64,
    /// Recording file (open it with `rerun FILE`).
    #[arg(long, default_value = "autodidact.rrd")]
    rrd: PathBuf,
    /// Spawn a rerun viewer (records to --rrd instead when there is no display).
    #[arg(long)]
    viewer: bool,
    /// Stream to a running viewer, e.g. rerun+http://127.0.0.1:9876/proxy (checked first).
    #[arg(long)]
    connect: Option<String>,
    /// No telemetry at all.
    #[arg(long)]
    no_viz: bool,
    /// Write a checkpoint directory here at the end.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Where training runs: auto (a hardware GPU if wgpu finds one, else the CPU), flex (the
    /// CPU) or wgpu (any adapter, lavapipe too). Default: the config file's, else auto.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Where frames are encoded: auto (the CPU without a GPU; with one, whichever encodes a
    /// frame faster, timed at start), flex or wgpu. Default: the config file's, else auto.
    #[arg(long)]
    inference_backend: Option<BackendChoice>,
    /// Also write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// TOML configuration file: optional [sim], [exploration], [collector], [trainer],
    /// [trainer_node], [encoder] sections.
    #[arg(long)]
    config: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also record the simulator's streams as a rosbag2 MCAP directory here (a new directory):
    /// camera, camera_info, joint_states, imu/data, odom, cmd_vel, /clock, ground_truth/odom.
    #[arg(long)]
    bag_out: Option<PathBuf>,
    /// Simulated robots feeding the one trainer, each in its own world (robot k's seed is
    /// seed + 1000·(k−1)) with its own collector and episodes; each runs --steps.
    #[arg(long, default_value_t = 1)]
    robots: usize,
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            steps: 2400,
            minutes: None,
            realtime: 1.0,
            seed: 0,
            episode_steps: 1200,
            rrd: PathBuf::from("autodidact.rrd"),
            viewer: false,
            connect: None,
            no_viz: false,
            checkpoint: None,
            backend: None,
            inference_backend: None,
            json: None,
            config: None,
            quiet: false,
            bag_out: None,
            robots: 1,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
struct SimArgs {
    /// Control steps to run (one camera frame each, 20 Hz sim time by default).
    #[arg(long, default_value_t = 1200)]
    steps: u64,
    /// Episode seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory for frames and summary.json.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Number of frames to save as PNG.
    #[arg(long, default_value_t = 8)]
    frames: u32,
    /// TOML configuration file with optional [sim] and [exploration] sections.
    #[arg(long)]
    config: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also record the run as a rosbag2 MCAP directory here (a new directory), as
    /// `run --bag-out` does.
    #[arg(long)]
    bag_out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Simulator: render and physics speed on one thread.
    Sim {
        /// Seconds to measure each case.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Camera images: decoding and fitting 640×480 and 1280×720 frames to the model's input.
    Images {
        /// Seconds to measure each case.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Learning core: train step samples/s and encode latency, per backend.
    Learn {
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "flex,wgpu")]
        backends: Vec<autodidact_learn::BackendChoice>,
        /// Sequences per training step, one table each.
        #[arg(long, value_delimiter = ',', default_values_t = [autodidact_bench::default_batch_size()])]
        batch_sizes: Vec<usize>,
        /// Timed training steps per backend (after one warm-up step).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Timed single-image encodes per backend.
        #[arg(long, default_value_t = 300)]
        encodes: usize,
        /// Timed plans for one frame per table (backend and batch size) and goal kind (at
        /// rest, at the predicted proprio).
        #[arg(long, default_value_t = 20)]
        plans: usize,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Side by side with PyTorch: the same model, weights, batches and objectives built in
    /// PyTorch (eager, CPU) by `bench/pytorch_world_model.py`; train samples/s and encode
    /// latency measured alternately in one run, plus sim frames/s, image→embedding p99 while
    /// training and peak RSS. Set up torch with `bench/setup-torch` (see bench/README.md).
    Pytorch {
        /// Python with torch [default: $AUTODIDACT_TORCH_PYTHON, else the venv of
        /// bench/setup-torch (~/.cache/autodidact/torch-venv), else python3].
        #[arg(long)]
        python: Option<PathBuf>,
        /// The PyTorch side.
        #[arg(long, default_value = "bench/pytorch_world_model.py")]
        script: PathBuf,
        /// Compute threads on each side (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Alternating rounds (medians over rounds are compared).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Timed training steps per side and round.
        #[arg(long, default_value_t = 4)]
        steps: usize,
        /// Timed single-frame encodes per side and round.
        #[arg(long, default_value_t = 200)]
        encodes: usize,
        /// Distinct batches, cycled in the same order on both sides.
        #[arg(long, default_value_t = 4)]
        batches: usize,
        /// Seed of the weights, the simulator run and the batches.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Seconds of the 30 Hz graph run (image→embedding p99 while training; 0 skips it).
        #[arg(long, default_value_t = 20.0)]
        graph_seconds: f64,
        /// Seconds of simulator control steps at 64² (0 skips it).
        #[arg(long, default_value_t = 2.0)]
        sim_seconds: f64,
        /// Also write the report as JSON (schema autodidact.bench.pytorch/1) to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The node graph: image→embedding latency at a camera rate while the trainer runs, and
    /// frames/s of the whole graph unpaced.
    Graph {
        /// Training backends to measure, one table each (inference: auto).
        #[arg(long, value_delimiter = ',', default_value = "flex")]
        backends: Vec<autodidact_learn::BackendChoice>,
        /// Camera rate of the paced run, Hz.
        #[arg(long, default_value_t = 30.0)]
        hz: f64,
        /// Wall seconds of the paced run.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// Niceness of the trainer's compute threads (`[trainer_node] nice`; 0: same priority
        /// as inference).
        #[arg(long, default_value_t = autodidact_nodes::trainer::TrainerNodeConfig::default().nice)]
        trainer_nice: i32,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The graph for a long time at a camera rate with training and telemetry: resident
    /// memory, encoder backlog, drops and stalls over time.
    Soak {
        /// Wall minutes to run.
        #[arg(long, default_value_t = 30.0)]
        minutes: f64,
        /// Camera rate, Hz.
        #[arg(long, default_value_t = 60.0)]
        hz: f64,
        /// Seconds between two samples.
        #[arg(long, default_value_t = 60.0)]
        every_s: f64,
        /// Keep the recording here (default: a temporary file, removed at the end).
        #[arg(long, conflicts_with = "no_viz")]
        rrd: Option<PathBuf>,
        /// No telemetry (to tell the graph's memory from the recording's).
        #[arg(long)]
        no_viz: bool,
    },
    /// Bags: ingest of 640×480 JPEG frames through storage, CDR and the collector, and
    /// `train --bag` on a bag larger than its replay ring (wall time, peak RSS).
    Bags {
        /// Camera frames in the bag.
        #[arg(long, default_value_t = 3000)]
        frames: u64,
        /// Replay ring of the training run, transitions.
        #[arg(long, default_value_t = 1000)]
        ring: usize,
        /// Optimiser steps of the training run.
        #[arg(long, default_value_t = 100)]
        steps: u64,
    },
    /// Crash safety: a checkpoint writer killed with SIGKILL at random points, resumed after
    /// every kill.
    Kills {
        /// Kills.
        #[arg(long, default_value_t = 100)]
        count: u32,
        /// Seed of the kill points.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Longest wait after a writer's first save before it is killed, milliseconds.
        #[arg(long, default_value_t = 1500)]
        max_delay_ms: u64,
        /// Be the writer (the bench starts itself with this; not for people).
        #[arg(long, hide = true)]
        writer: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(autodidact_nodes::viz::DEFAULT_LOG_FILTER)
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(args),
        Command::Sim(args) => sim(args),
        Command::Eval(args) => eval(args),
        Command::Train(args) => train(args),
        Command::Bag {
            what: BagWhat::Info { path, json, topics },
        } => bag_info(&path, json, &topics),
        Command::Bench {
            what:
                BenchWhat::Graph {
                    backends,
                    hz,
                    seconds,
                    trainer_nice,
                    json,
                },
        } => {
            let mut tables = Vec::new();
            for backend in backends {
                let rows = bench_graph(backend, hz, seconds, trainer_nice, 3000)?.rows();
                tables.push((format!("training on {backend}"), rows));
            }
            print_tables(&tables, json)
        }
        Command::Bench {
            what:
                BenchWhat::Pytorch {
                    python,
                    script,
                    threads,
                    rounds,
                    steps,
                    encodes,
                    batches,
                    seed,
                    graph_seconds,
                    sim_seconds,
                    json,
                },
        } => {
            let options = PytorchOptions {
                python: python.unwrap_or_else(torch_python),
                script,
                threads: threads.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
                }),
                rounds,
                steps,
                encodes,
                batches,
                seed,
                graph_seconds,
                sim_seconds,
            };
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            let comparison = compare_with_pytorch(&options, |stage| {
                bar.set_message(stage.to_owned());
            });
            bar.finish_and_clear();
            let comparison = comparison?;
            print_comparison(&comparison);
            write_json(json.as_deref(), &comparison)
        }
        Command::Bench {
            what:
                BenchWhat::Soak {
                    minutes,
                    hz,
                    every_s,
                    rrd,
                    no_viz,
                },
        } => autodidact::bench::soak_command(minutes, hz, every_s, rrd, no_viz),
        Command::Bench {
            what: BenchWhat::Kills {
                writer: Some(dir), ..
            },
        } => autodidact_bench::checkpoint_writer(&dir),
        Command::Bench {
            what:
                BenchWhat::Kills {
                    count,
                    seed,
                    max_delay_ms,
                    writer: None,
                },
        } => autodidact::bench::kills_command(count, seed, max_delay_ms),
        Command::Bench {
            what:
                BenchWhat::Bags {
                    frames,
                    ring,
                    steps,
                },
        } => autodidact::bench::bags_command(frames, ring, steps),
        Command::Bench {
            what: BenchWhat::Images { seconds, json },
        } => {
            let rows = autodidact_bench::bench_images(Duration::from_secs_f64(seconds.max(0.05)))?;
            print_rows(&rows, json)
        }
        Command::Bench {
            what: BenchWhat::Sim { seconds, json },
        } => {
            let rows = bench_sim(Duration::from_secs_f64(seconds.max(0.05)))?;
            print_rows(&rows, json)
        }
        Command::Bench {
            what:
                BenchWhat::Learn {
                    backends,
                    batch_sizes,
                    steps,
                    encodes,
                    plans,
                    json,
                },
        } => {
            let mut tables = Vec::new();
            for backend in backends {
                for &batch_size in &batch_sizes {
                    let rows = bench_learn(
                        backend,
                        batch_size,
                        steps.max(1),
                        encodes.max(1),
                        plans.max(1),
                    )?;
                    tables.push((backend.to_string(), rows));
                }
            }
            print_tables(&tables, json)
        }
    }
}

/// Writes `value` as pretty JSON when a path was given.
pub(crate) fn write_json(
    path: Option<&std::path::Path>,
    value: &impl serde::Serialize,
) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The Python `bench pytorch` uses when none is given.
fn torch_python() -> PathBuf {
    if let Some(python) = std::env::var_os("AUTODIDACT_TORCH_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = std::env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/autodidact/torch-venv/bin/python"));
    venv.filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The side-by-side table of `bench pytorch`.
fn print_comparison(c: &PytorchComparison) {
    let mut table = Table::new();
    table.set_header(["measure", "autodidact", "PyTorch", "ratio", "bar"]);
    for row in comparison_rows(c) {
        table.add_row(row);
    }
    println!(
        "torch {} (oneDNN {}), {} rounds x {} steps / {} encodes per side, images {}x{}",
        c.torch_version,
        c.torch_mkldnn,
        c.rounds,
        c.steps_per_round,
        c.encodes_per_round,
        c.image_px[0],
        c.image_px[1]
    );
    println!("{table}");
}

fn print_rows(rows: &[BenchRow], json: Option<PathBuf>) -> Result<()> {
    println!("{}", table_of(rows));
    write_json(json.as_deref(), &rows)?;
    Ok(())
}

/// One titled table per backend; the JSON holds every row, each named with its backend.
fn print_tables(tables: &[(String, Vec<BenchRow>)], json: Option<PathBuf>) -> Result<()> {
    let mut all = Vec::new();
    for (title, rows) in tables {
        println!("{title}\n{}", table_of(rows));
        all.extend(rows.iter().map(|row| BenchRow {
            case: format!("{title}: {}", row.case),
            ..row.clone()
        }));
    }
    write_json(json.as_deref(), &all)?;
    Ok(())
}

fn table_of(rows: &[BenchRow]) -> Table {
    let mut table = Table::new();
    table.set_header(["case", "iterations", "median µs", "p99 µs", "per second"]);
    for row in rows {
        table.add_row([
            row.case.clone(),
            row.iterations.to_string(),
            format!("{:.1}", row.median_us),
            format!("{:.1}", row.p99_us),
            format!("{:.0}", row.per_second),
        ]);
    }
    table
}

fn run(args: RunArgs) -> Result<()> {
    let file = FileConfig::load_or_default(args.config.as_deref())?;
    let options = RunOptions {
        steps: args.steps,
        minutes: args.minutes,
        realtime: args.realtime,
        seed: args.seed,
        episode_steps: args.episode_steps,
        rrd: args.rrd.clone(),
        viewer: args.viewer,
        connect: args.connect.clone(),
        no_viz: args.no_viz,
        checkpoint: args.checkpoint.clone(),
        backend: args.backend,
        inference_backend: args.inference_backend,
        robots: args.robots,
    };
    let mut config = graph_config(&options, &file)?;
    config.bag_out = args.bag_out.clone();
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps * args.robots as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:32} {pos}/{len} frames  {msg}  elapsed {elapsed}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = autodidact_nodes::run_graph(&config, &stop, |progress| {
        bar.set_position(progress.sim_steps);
        bar.set_message(format!(
            "train step {}  loss {}  embeddings {}",
            progress.train_steps,
            progress
                .loss
                .map_or_else(|| "-".to_owned(), |l| format!("{l:.3}")),
            progress.embeddings
        ));
    })?;
    bar.finish_and_clear();
    let mut table = Table::new();
    table.set_header(["", "value"]);
    for (name, value) in summary_rows(&report) {
        table.add_row([name, value]);
    }
    println!("{table}");
    write_json(args.json.as_deref(), &report)?;
    Ok(())
}

fn sim(args: SimArgs) -> Result<()> {
    let file = FileConfig::load_or_default(args.config.as_deref())?;
    let options = DemoOptions {
        sim: file.sim,
        exploration: file.exploration,
        seed: args.seed,
        steps: args.steps,
        out_dir: args.out.clone(),
        frames_to_save: args.frames,
        bag_out: args.bag_out.clone(),
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let summary = run_demo(&options, |step| bar.set_position(step))?;
    bar.finish_and_clear();
    let mut table = Table::new();
    table.set_header(["", "value"]);
    let rows = [
        ("seed", summary.seed.to_string()),
        ("steps", summary.steps.to_string()),
        ("sim time", format!("{:.1} s", summary.sim_seconds)),
        ("wall time", format!("{:.2} s", summary.wall_seconds)),
        ("frames/s", format!("{:.0}", summary.frames_per_second)),
        ("distance driven", format!("{:.2} m", summary.distance_m)),
        (
            "arena coverage",
            format!("{:.0} %", summary.coverage * 100.0),
        ),
        (
            "odometry error",
            format!("{:.3} m", summary.odometry_error_m),
        ),
        (
            "objects pushed",
            format!("{:.2} m", summary.objects_pushed_m),
        ),
        ("rejected actions", summary.rejected_actions.to_string()),
        ("digest", summary.digest.clone()),
    ];
    for (name, value) in rows {
        table.add_row([name.to_owned(), value]);
    }
    println!("{table}");
    println!(
        "wrote {} frames (rgb_*.png, depth_*.png) and summary.json to {}",
        summary.frames.len(),
        args.out.display()
    );
    Ok(())
}
