//! Bags in and out, against an independent implementation: Python's `rosbags` writes bags in
//! every input kind a real robot records (tests/bags/write_bags.py) and reads what
//! `run --bag-out` writes (tests/bags/read_bag.py). `scripts/test-all` provides rosbags; a plain
//! `cargo test` without it skips these (and fails under AUTODIDACT_REQUIRE_PYTHON).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use autodidact_bag::{Bag, Role, TopicChoice};
use autodidact_learn::{Trainer, TrainerConfig};
use autodidact_nodes::bags::convert::sensor_in;
use autodidact_nodes::{Collector, CollectorConfig, ManualClock};

use super::{autodidact, python_from_env, run_ok};

fn python() -> Option<std::ffi::OsString> {
    python_from_env(
        "AUTODIDACT_PYTHON",
        "AUTODIDACT_REQUIRE_PYTHON",
        "bag interop not checked",
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bags")
        .join(name)
}

/// Runs the Python script `name` of tests/bags with `args`; it must succeed.
fn run_script(python: &std::ffi::OsStr, name: &str, args: &[&Path]) {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `autodidact run` of `steps` simulator steps from `seed`, as fast as it goes, without
/// telemetry, recorded into the bag directory `bag`; `more` adds flags.
fn record_run(bag: &Path, seed: u64, steps: u64, more: &[&std::ffi::OsStr]) {
    run_ok(
        autodidact()
            .args(["run", "--quiet", "--no-viz", "--realtime", "0", "--seed"])
            .arg(seed.to_string())
            .arg("--steps")
            .arg(steps.to_string())
            .args(more)
            .arg("--bag-out")
            .arg(bag),
    );
}

/// The model's input frames the collector makes of a bag's camera, in order.
fn frames_of(path: &Path) -> (Vec<Vec<u8>>, Vec<Vec<f32>>) {
    let bag = Bag::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let inputs = autodidact_bag::roles::choose(bag.topics(), &TopicChoice::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(inputs.topic(Role::Camera).is_some(), "{}", path.display());
    assert!(inputs.topic(Role::Commands).is_some(), "{}", path.display());
    let clock = ManualClock::new();
    let mut collector = Collector::new(CollectorConfig::default(), Arc::new(clock.clone()));
    let (mut images, mut proprio) = (Vec::new(), Vec::new());
    for message in bag.messages() {
        if inputs.role_of(message.topic).is_none() {
            continue;
        }
        clock.set_ns(message.log_time_ns);
        let type_name = &bag.topics()[message.topic].type_name;
        let sensor = sensor_in(type_name, &message.data, message.log_time_ns)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(frame) = collector.on_message(&sensor).frame {
            images.push(frame.image.to_vec());
            proprio.push(frame.proprio.clone());
        }
    }
    let stats = collector.stats();
    assert!(
        stats.dropped.is_empty(),
        "{}: {:?}",
        path.display(),
        stats.dropped
    );
    (images, proprio)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.len() as f64
}

/// Simulator ticks written as a bag (the same writer as `--bag-out`), `steps` of them.
fn sim_bag(dir: &Path, steps: u64, seed: u64) {
    let config = autodidact_nodes::sim::SimNodeConfig {
        seed,
        ..Default::default()
    };
    let mut recorder = autodidact_nodes::bags::SimRecorder::create(
        dir,
        config.sim.camera.clone(),
        autodidact_nodes::bags::record::CAMERA_FRAME,
    )
    .expect("bag");
    autodidact_nodes::sim::run_sim(
        &config,
        steps,
        &std::sync::atomic::AtomicBool::new(false),
        &ManualClock::new(),
        &autodidact_nodes::WallClock::new(),
        |tick| recorder.record(&tick).expect("record"),
    )
    .expect("sim");
    recorder.finish().expect("finish");
}

fn only_mcap(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "mcap"))
        .expect("mcap")
}

/// A JSON file a command wrote.
fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

mod damaged;
mod interop;
mod learning;
