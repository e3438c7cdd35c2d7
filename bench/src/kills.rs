//! `autodidact bench kills`: a trainer process that saves a checkpoint after every training step
//! is killed with SIGKILL at seeded random points, again and again; after each kill the
//! checkpoint must resume at or after the newest step the writer reported saved, and the next
//! writer continues from it, as a restarted node would.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autodidact_learn::{BackendChoice, Trainer};

use crate::learn::{exploration, filled_trainer};

/// What [`kill_writers`] saw.
#[derive(Debug, Clone, Default)]
pub struct KillReport {
    /// Kills done, each followed by a successful resume.
    pub kills: u32,
    /// Newest step a writer reported saved, over the whole run.
    pub newest_saved: u64,
    /// Step of the checkpoint after the last kill.
    pub newest_resumed: u64,
    /// Kills that landed while a save was under way (a temporary or old directory was left).
    pub during_a_save: u32,
    /// Time to resume after each kill, seconds: median and max.
    pub resume_median_s: f64,
    /// See `resume_median_s`.
    pub resume_max_s: f64,
    /// Wall time of the whole run, seconds.
    pub wall_s: f64,
}

/// The writer: resumes `dir` (or starts a default model) and, for ever, takes a training step,
/// saves, and prints `saved STEP`. It runs until it is killed.
pub fn checkpoint_writer(dir: &Path) -> Result<()> {
    let mut trainer = match Trainer::resume(dir, None) {
        Ok(mut trainer) => {
            let (transitions, _) = exploration(7, 120)?;
            for transition in transitions {
                trainer.push(transition)?;
            }
            trainer
        }
        Err(_) => filled_trainer(BackendChoice::Flex, 7, 120)?.0,
    };
    loop {
        trainer.step()?;
        trainer.save_checkpoint(dir)?;
        println!("saved {}", trainer.step_count());
    }
}

/// Starts `count` writers in turn (each by `writer`, given the checkpoint directory), kills
/// each with SIGKILL a seeded random time (up to `max_delay`) after its first save, and checks
/// that the checkpoint then resumes at or after the newest step reported saved.
pub fn kill_writers(
    count: u32,
    seed: u64,
    max_delay: Duration,
    dir: &Path,
    writer: impl Fn(&Path) -> Command,
    mut progress: impl FnMut(u32),
) -> Result<KillReport> {
    let started = Instant::now();
    let mut report = KillReport::default();
    let mut resume_times = Vec::with_capacity(count as usize);
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let parent = dir
        .parent()
        .context("the checkpoint directory needs a parent")?;
    let name = dir
        .file_name()
        .context("the checkpoint directory needs a name")?
        .to_string_lossy()
        .into_owned();
    for kill in 1..=count {
        let mut child = writer(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting a writer")?;
        let stdout = child.stdout.take().context("the writer's stdout")?;
        let (saves, heard) = mpsc::channel::<u64>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(step) = line.strip_prefix("saved ").and_then(|s| s.parse().ok()) {
                    let _ = saves.send(step);
                }
            }
        });
        let Ok(first) = heard.recv_timeout(Duration::from_secs(300)) else {
            let _ = child.kill();
            bail!("writer {kill} did not save within 300 s");
        };
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros((state >> 33) % max_delay.as_micros().max(1) as u64);
        let until = Instant::now() + delay;
        let mut newest = first;
        while let Ok(step) = heard.recv_timeout(until.saturating_duration_since(Instant::now())) {
            newest = newest.max(step);
        }
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping the writer")?;
        while let Ok(step) = heard.try_recv() {
            newest = newest.max(step);
        }
        report.newest_saved = report.newest_saved.max(newest);
        if [".tmp", ".old"]
            .iter()
            .any(|kind| parent.join(format!(".{name}{kind}")).exists())
        {
            report.during_a_save += 1;
        }
        let resuming = Instant::now();
        let resumed = Trainer::resume(dir, None)
            .with_context(|| format!("kill {kill} after {delay:?}: no checkpoint to resume"))?;
        resume_times.push(resuming.elapsed().as_secs_f64());
        if resumed.step_count() < report.newest_saved {
            bail!(
                "kill {kill}: the checkpoint resumed at step {} but step {} was saved",
                resumed.step_count(),
                report.newest_saved
            );
        }
        report.newest_resumed = resumed.step_count();
        report.kills = kill;
        progress(kill);
    }
    report.resume_median_s = autodidact_learn::stats::median(&resume_times).unwrap_or(0.0);
    report.resume_max_s = resume_times.iter().copied().fold(0.0, f64::max);
    report.wall_s = started.elapsed().as_secs_f64();
    Ok(report)
}
