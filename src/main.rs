//! `autodidact`: a robot teaches itself about its world.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use autodidact::FileConfig;
use autodidact::bench::{BenchRow, bench_learn, bench_sim};
use autodidact::demo::{DemoOptions, run_demo};
use clap::{Parser, Subcommand};
use comfy_table::Table;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(version, about = "A robot teaches itself about its world.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: the robot explores the simulator (the default command).
    Run(RunArgs),
    /// Benchmarks that print a table.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
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
}

impl Default for RunArgs {
    fn default() -> Self {
        Self {
            steps: 1200,
            seed: 0,
            out: PathBuf::from("out"),
            frames: 8,
            config: None,
            quiet: false,
        }
    }
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
    /// Learning core: train step samples/s and encode latency, per backend.
    Learn {
        /// Backends to measure.
        #[arg(long, value_delimiter = ',', default_value = "flex,wgpu")]
        backends: Vec<autodidact_learn::BackendChoice>,
        /// Timed training steps per backend (after one warm-up step).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Timed single-image encodes per backend.
        #[arg(long, default_value_t = 300)]
        encodes: usize,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(args),
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
                    steps,
                    encodes,
                    json,
                },
        } => {
            let mut rows = Vec::new();
            for backend in backends {
                rows.extend(bench_learn(backend, steps.max(1), encodes.max(1))?);
            }
            print_rows(&rows, json)
        }
    }
}

fn print_rows(rows: &[BenchRow], json: Option<PathBuf>) -> Result<()> {
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
    println!("{table}");
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(rows)?)?;
    }
    Ok(())
}

fn run(args: RunArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let options = DemoOptions {
        sim: file.sim,
        exploration: file.exploration,
        seed: args.seed,
        steps: args.steps,
        out_dir: args.out.clone(),
        frames_to_save: args.frames,
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
