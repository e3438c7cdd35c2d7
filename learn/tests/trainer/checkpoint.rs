//! Checkpoints on disk: a save never deletes what is not a checkpoint, and a writer killed at any
//! point leaves the newest complete checkpoint readable.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn assert_refused(trainer: &Trainer, target: &Path) {
    let error = trainer.save_checkpoint(target).expect_err("refused");
    assert!(
        matches!(error, LearnError::Checkpoint(ref m) if m.contains("refusing")),
        "{error}"
    );
}

#[test]
fn saving_never_replaces_what_is_not_a_checkpoint() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let trainer = filled_trainer(small_config(2));

    // `--checkpoint ~/data`: a user's directory with their files.
    let home = root.path().join("home");
    std::fs::create_dir_all(home.join("photos")).expect("mkdir");
    std::fs::write(home.join("notes.txt"), b"mine").expect("write");
    assert_refused(&trainer, &home);
    assert_eq!(
        std::fs::read(home.join("notes.txt")).expect("kept"),
        b"mine"
    );
    assert!(home.join("photos").is_dir());

    // A file.
    let file = root.path().join("file");
    std::fs::write(&file, b"data").expect("write");
    assert_refused(&trainer, &file);
    assert_eq!(std::fs::read(&file).expect("kept"), b"data");

    // The checkpoint's file names without a readable checkpoint.
    let lookalike = root.path().join("lookalike");
    std::fs::create_dir_all(&lookalike).expect("mkdir");
    std::fs::write(lookalike.join("meta.json"), b"{\"mine\": true}").expect("write");
    assert_refused(&trainer, &lookalike);
    assert!(lookalike.join("meta.json").is_file());

    // A checkpoint someone put a file of their own into.
    let checkpoint = root.path().join("ckpt");
    trainer.save_checkpoint(&checkpoint).expect("save");
    std::fs::write(checkpoint.join("README"), b"keep").expect("write");
    assert_refused(&trainer, &checkpoint);
    assert_eq!(
        std::fs::read(checkpoint.join("README")).expect("kept"),
        b"keep"
    );

    // An empty directory is a place for a new checkpoint; a checkpoint is replaced.
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    trainer
        .save_checkpoint(&empty)
        .expect("save into an empty directory");
    trainer
        .save_checkpoint(&empty)
        .expect("replace a checkpoint");
    Trainer::resume(&empty, None).expect("resume");

    // Refused saves left nothing beside their targets; good ones only their lock.
    assert_eq!(
        entries(root.path()),
        [
            ".ckpt.lock",
            ".empty.lock",
            "ckpt",
            "empty",
            "file",
            "home",
            "lookalike"
        ]
    );
}

/// Saves `trainer` elsewhere and moves the checkpoint to `to`, as a killed save leaves it.
fn leave_as(trainer: &Trainer, to: &Path) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let saved = scratch.path().join("saved");
    trainer.save_checkpoint(&saved).expect("save");
    std::fs::rename(&saved, to).expect("move");
}

#[test]
fn a_save_killed_between_its_renames_is_read_and_then_put_back() {
    let _serial = serial();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ckpt");
    let mut trainer = filled_trainer(small_config(2));
    for _ in 0..3 {
        trainer.step().expect("step");
    }
    // Killed after the old checkpoint was renamed away, before the new one was in place: only
    // `.ckpt.old` (step 3, complete) and a half-written `.ckpt.tmp` are left.
    leave_as(&trainer, &root.path().join(".ckpt.old"));
    let half = root.path().join(".ckpt.tmp");
    std::fs::create_dir_all(&half).expect("mkdir");
    std::fs::write(half.join("model.bpk"), b"half").expect("write");
    assert!(!dir.exists());

    let resumed = Trainer::resume(&dir, None).expect("the old checkpoint is read");
    assert_eq!(resumed.step_count(), 3);

    // The next save puts the old one back first, then replaces it; no leftovers.
    trainer.step().expect("step");
    trainer.save_checkpoint(&dir).expect("save");
    assert_eq!(Trainer::resume(&dir, None).expect("resume").step_count(), 4);
    assert_eq!(entries(root.path()), [".ckpt.lock", "ckpt"]);

    // Killed with both complete: the new one (higher step) wins.
    leave_as(&trainer, &root.path().join(".ckpt.tmp"));
    std::fs::rename(&dir, root.path().join(".ckpt.old")).expect("move");
    trainer.step().expect("step");
    assert_eq!(Trainer::resume(&dir, None).expect("resume").step_count(), 4);
    let older = filled_trainer(small_config(2));
    older.save_checkpoint(&dir).expect("save");
    assert_eq!(Trainer::resume(&dir, None).expect("resume").step_count(), 0);
    assert_eq!(entries(root.path()), [".ckpt.lock", "ckpt"]);
}

/// When set, this test binary is the writer child of
/// [`a_writer_killed_at_random_points_never_loses_a_checkpoint`]: it saves to the directory
/// named here after every training step, for ever, and prints `saved STEP` after each save.
const WRITER_DIR: &str = "AUTODIDACT_CHECKPOINT_WRITER_DIR";
/// How many times the test kills the writer (default 5; set it for a longer run).
const KILLS: &str = "AUTODIDACT_CHECKPOINT_KILLS";

fn run_writer(dir: &Path) {
    let mut trainer = match Trainer::resume(dir, None) {
        Ok(mut trainer) => {
            for sample in explore(&sim_config(SIDE as u32), 3, 120) {
                trainer.push(sample.transition).expect("push");
            }
            trainer
        }
        Err(_) => filled_trainer(small_config(5)),
    };
    loop {
        trainer.step().expect("step");
        trainer.save_checkpoint(dir).expect("save");
        println!("saved {}", trainer.step_count());
    }
}

#[test]
fn a_writer_killed_at_random_points_never_loses_a_checkpoint() {
    if let Some(dir) = std::env::var_os(WRITER_DIR) {
        run_writer(&PathBuf::from(dir));
        return;
    }
    // The writers train at full speed in their own processes: no other test of this binary
    // runs meanwhile, so the bit-exact determinism tests never share the cores with them (the
    // backend's parallel reductions split by timing).
    let _serial = serial();
    let kills: u32 = std::env::var(KILLS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ckpt");
    let mut newest_saved = 0u64;
    // Deterministic kill points: a fixed sequence of delays after the writer's first save.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for kill in 0..kills {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "checkpoint::a_writer_killed_at_random_points_never_loses_a_checkpoint",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_DIR, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("writer");
        let stdout = child.stdout.take().expect("stdout");
        let (saves, heard) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(step) = line.strip_prefix("saved ").and_then(|s| s.parse().ok()) {
                    let _: Result<(), _> = saves.send(step);
                }
            }
        });
        let first: u64 = heard
            .recv_timeout(Duration::from_secs(120))
            .expect("the writer saved once");
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = Duration::from_micros((state >> 33) % 400_000);
        let until = Instant::now() + delay;
        let mut newest = first;
        while let Ok(step) = heard.recv_timeout(until.saturating_duration_since(Instant::now())) {
            newest = newest.max(step);
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        while let Ok(step) = heard.try_recv() {
            newest = newest.max(step);
        }
        newest_saved = newest_saved.max(newest);
        let resumed = Trainer::resume(&dir, None)
            .unwrap_or_else(|e| panic!("kill {kill} after {delay:?}: no checkpoint: {e}"));
        assert!(
            resumed.step_count() >= newest_saved,
            "kill {kill}: resumed step {} but step {newest_saved} was saved",
            resumed.step_count()
        );
    }
    eprintln!("{kills} kills survived; newest saved step {newest_saved}");
}
