//! `autodidact bench soak`, `bench kills` and `bench bags`: the benches that run processes or
//! minutes, printed as tables.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use autodidact_bench::{KillReport, SoakReport, SoakSample, kill_writers, soak};
use comfy_table::Table;

/// Runs the soak and prints a line per sample, then the table and the summary.
pub fn soak_command(
    minutes: f64,
    hz: f64,
    every_s: f64,
    rrd: Option<PathBuf>,
    no_viz: bool,
) -> Result<()> {
    let scratch = tempfile::tempdir().context("a scratch directory for the recording")?;
    let recording = (!no_viz).then(|| rrd.unwrap_or_else(|| scratch.path().join("soak.rrd")));
    let every = Duration::try_from_secs_f64(every_s.max(1.0)).context("--every-s")?;
    let telemetry = recording
        .as_ref()
        .map_or("off".to_owned(), |path| format!("to {}", path.display()));
    println!("soak: {minutes} min at {hz} Hz, training, telemetry {telemetry}");
    let report = soak(minutes, hz, recording, every, |sample| {
        println!(
            "  {:6.1} min  RSS {:7.1} MiB  frames {:8}  embeddings {:8}  backlog {:3}  steps {:6}  dropped {}",
            sample.minute,
            sample.rss_mib,
            sample.frames,
            sample.embeddings,
            sample.encoder_backlog,
            sample.train_steps,
            sample.dropped
        );
    })?;
    println!("{}", soak_table(&report.samples));
    print_soak_summary(&report);
    Ok(())
}

fn soak_table(samples: &[SoakSample]) -> Table {
    let mut table = Table::new();
    table.set_header([
        "minute",
        "RSS MiB",
        "frames",
        "embeddings",
        "encoder backlog",
        "train steps",
        "replay",
        "dropped",
        "viz dropped",
    ]);
    for s in samples {
        table.add_row([
            format!("{:.1}", s.minute),
            format!("{:.1}", s.rss_mib),
            s.frames.to_string(),
            s.embeddings.to_string(),
            s.encoder_backlog.to_string(),
            s.train_steps.to_string(),
            s.replay_len.to_string(),
            s.dropped.to_string(),
            s.viz_dropped.to_string(),
        ]);
    }
    table
}

fn print_soak_summary(report: &SoakReport) {
    // Growth after the replay buffer and the caches have filled: from the sample nearest the
    // half-way mark to the last.
    if let (Some(half), Some(last)) = (
        report.samples.get(report.samples.len() / 2),
        report.samples.last(),
    ) {
        let minutes = (last.minute - half.minute).max(1e-9);
        println!(
            "RSS {:.1} → {:.1} MiB over the second half ({:+.2} MiB/min)",
            half.rss_mib,
            last.rss_mib,
            (last.rss_mib - half.rss_mib) / minutes
        );
    }
    println!(
        "longest time without a new embedding {:.1} s, without a training step {:.1} s \
         (looked at every 0.2 s); image→embedding p50 {:.1} ms, p99 {:.1} ms; recording {:.1} MiB",
        report.longest_embedding_gap_s,
        report.longest_training_gap_s,
        report.latency_p50_s * 1e3,
        report.latency_p99_s * 1e3,
        report.recording_bytes as f64 / f64::from(1 << 20)
    );
}

/// Kills checkpoint writers `count` times and prints what was found.
pub fn kills_command(count: u32, seed: u64, max_delay_ms: u64) -> Result<()> {
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let dir = scratch.path().join("checkpoint");
    let exe = std::env::current_exe().context("this executable")?;
    let writer = |dir: &Path| {
        let mut command = Command::new(&exe);
        command.args(["bench", "kills", "--writer"]).arg(dir);
        command
    };
    let report = kill_writers(
        count,
        seed,
        Duration::from_millis(max_delay_ms.max(1)),
        &dir,
        writer,
        |kill| {
            if kill % 10 == 0 {
                println!("  {kill} kills");
            }
        },
    )?;
    println!("{}", kills_table(&report));
    Ok(())
}

fn kills_table(report: &KillReport) -> Table {
    let mut table = Table::new();
    table.set_header(["what", "value"]);
    let rows = [
        (
            "SIGKILLs, each followed by a resume at or after the newest step saved (a lost checkpoint ends the run with an error)",
            report.kills.to_string(),
        ),
        (
            "kills that left a save half-done (.tmp/.old beside it)",
            report.during_a_save.to_string(),
        ),
        (
            "newest step reported saved",
            report.newest_saved.to_string(),
        ),
        (
            "step of the checkpoint after the last kill",
            report.newest_resumed.to_string(),
        ),
        (
            "resume time median / max",
            format!(
                "{:.0} / {:.0} ms",
                report.resume_median_s * 1e3,
                report.resume_max_s * 1e3
            ),
        ),
        ("wall time", format!("{:.0} s", report.wall_s)),
    ];
    for (what, value) in rows {
        table.add_row([what.to_owned(), value]);
    }
    table
}

/// `bench bags`: writes a bag of `frames` 640×480 JPEG frames, measures ingest through storage,
/// CDR and the collector, then runs `autodidact train --bag` on it in a process of its own with
/// a replay ring of `ring` transitions (a bag larger than the ring when `frames > ring`) and
/// reports its wall time, steps and peak resident memory.
pub fn bags_command(frames: u64, ring: usize, steps: u64) -> Result<()> {
    let scratch = tempfile::tempdir().context("a scratch directory for the bag")?;
    let bag = scratch.path().join("camera_bag");
    autodidact_bench::write_camera_bag(&bag, frames)?;
    let bag_mib = std::fs::read_dir(&bag)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>() as f64
        / (1024.0 * 1024.0);
    let ingest = autodidact_bench::bench_bag_ingest(&bag)?;
    let config = scratch.path().join("ring.toml");
    std::fs::write(
        &config,
        format!(
            "[trainer.replay]\ncapacity = {ring}\n\n[trainer_node]\nmin_replay = {}\n",
            ring.min(256)
        ),
    )?;
    let report = train_child(
        &bag,
        &config,
        scratch.path(),
        "train",
        &["--steps", &steps.to_string()],
    )?;
    // The same camera played live (15 s at its recorded 30 Hz) while training: what a robot's
    // encoder answers in.
    let live_bag = scratch.path().join("live_bag");
    autodidact_bench::write_camera_bag(&live_bag, 15 * autodidact_bench::BAG_HZ)?;
    let live = train_child(
        &live_bag,
        &config,
        scratch.path(),
        "live",
        &["--realtime", "1", "--steps", "1000000"],
    )?;
    let ms = |v: &serde_json::Value| v.as_f64().map_or(f64::NAN, |s| s * 1e3);
    let mut table = Table::new();
    table.set_header(["measure", "value"]);
    let rows = [
        (
            "bag".to_owned(),
            format!(
                "{frames} frames of 640x480 JPEG at {} Hz, {bag_mib:.0} MiB",
                autodidact_bench::BAG_HZ
            ),
        ),
        (
            "ingest (one thread): frames/s".to_owned(),
            format!("{:.0}", ingest.per_second),
        ),
        (
            "ingest per frame p50 / p99".to_owned(),
            format!(
                "{:.2} / {:.2} ms",
                ingest.median_us / 1e3,
                ingest.p99_us / 1e3
            ),
        ),
        (
            format!("train --bag, replay ring {ring} transitions"),
            format!(
                "{} steps, {} transitions, {:.1} s",
                report["steps_this_run"],
                report["transitions"],
                report["wall_s"].as_f64().unwrap_or(0.0)
            ),
        ),
        (
            "640x480 JPEG at 30 Hz, training: image→embedding p50 / p99".to_owned(),
            format!(
                "{:.2} / {:.2} ms ({} embeddings, {} train steps meanwhile)",
                ms(&live["latency_p50_s"]),
                ms(&live["latency_p99_s"]),
                live["embeddings"],
                live["steps_this_run"]
            ),
        ),
        (
            "train --bag peak RSS".to_owned(),
            format!(
                "{:.0} MiB",
                report["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
            ),
        ),
    ];
    for (name, value) in rows {
        table.add_row([name, value]);
    }
    println!("{table}");
    Ok(())
}

/// Runs `autodidact train --bag BAG --config CONFIG` with `extra` flags in a process of its
/// own, its checkpoint and report in `scratch` under `name`; returns the report.
fn train_child(
    bag: &Path,
    config: &Path,
    scratch: &Path,
    name: &str,
    extra: &[&str],
) -> Result<serde_json::Value> {
    let report = scratch.join(format!("{name}.json"));
    let status = Command::new(std::env::current_exe().context("the autodidact executable")?)
        .args(["train", "--quiet", "--bag"])
        .arg(bag)
        .args(extra)
        .arg("--checkpoint")
        .arg(scratch.join(format!("{name}_model")))
        .arg("--config")
        .arg(config)
        .arg("--json")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running train --bag {}", extra.join(" ")))?;
    anyhow::ensure!(
        status.success(),
        "train --bag {} failed: {status}",
        extra.join(" ")
    );
    Ok(serde_json::from_slice(&std::fs::read(&report)?)?)
}
