//! `autodidact bench pytorch`: the same world model and training step in PyTorch (eager, CPU),
//! measured side by side with autodidact in one run.
//!
//! autodidact builds its default trainer, fills the replay buffer from the simulator, samples a
//! few batches and writes them, with the initial weights, to a temporary directory. The PyTorch
//! script (`bench/pytorch_world_model.py`) builds the identical network from those weights and
//! answers timing requests over a pipe. Before anything is timed, both sides embed the same frame
//! and take the first training step on the same batch: the embeddings, every loss term and the
//! gradient norm must agree, or the comparison stops — it would not be the same model.
//!
//! Then the two alternate, round by round: train steps (the same batches in the same order on
//! both sides, batch sampling excluded on both), then single-frame encodes. Each side times only
//! its own work; the medians of the rounds are compared.

mod exchange;
mod process;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use autodidact_learn::BackendChoice;
use autodidact_learn::stats::{median as median_of, percentile};
use autodidact_nodes::trainer::TrainerNodeConfig;
use serde::Serialize;

use crate::graph::bench_graph;
use crate::learn::filled_trainer;
use crate::sim::control_step_row;
use exchange::{
    Named, batch_tensors, check_mirrored, check_torch, meta, peak_rss_mb, relative_difference,
    write_safetensors,
};
use process::{EncodeReply, QuitReply, TorchProcess, TrainReply};

/// Schema name of the JSON report.
pub const PYTORCH_SCHEMA: &str = "autodidact.bench.pytorch/1";

/// Largest relative difference between a loss term (or the gradient norm) of the two sides on
/// the first batch before the models count as different.
pub const LOSS_TOLERANCE: f64 = 2e-3;
/// Largest absolute difference of an embedding component (LayerNorm output, values ~±3).
pub const EMBEDDING_TOLERANCE: f64 = 1e-3;

/// What to run and how long.
#[derive(Debug, Clone)]
pub struct PytorchOptions {
    /// Python interpreter with torch (see `bench/README.md`).
    pub python: PathBuf,
    /// The PyTorch side: `bench/pytorch_world_model.py`.
    pub script: PathBuf,
    /// Compute threads, the same on both sides.
    pub threads: usize,
    /// Alternating rounds.
    pub rounds: usize,
    /// Timed training steps per side and round.
    pub steps: usize,
    /// Timed single-frame encodes per side and round.
    pub encodes: usize,
    /// Distinct batches (cycled).
    pub batches: usize,
    /// Seed of the weights, the simulator run and the batches.
    pub seed: u64,
    /// Seconds of the 30 Hz graph run for image→embedding latency while training (0: skip).
    pub graph_seconds: f64,
    /// Seconds of timed simulator control steps at 64² (0: skip).
    pub sim_seconds: f64,
}

/// One side's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct SideNumbers {
    /// Training samples per second (batch ÷ median step time).
    pub train_samples_per_s: f64,
    /// Median training step, milliseconds.
    pub train_step_ms: f64,
    /// Median single-frame encode, microseconds.
    pub encode_p50_us: f64,
    /// 99th-percentile single-frame encode over all rounds, microseconds.
    pub encode_p99_us: f64,
    /// Peak resident memory of the process, MB.
    pub peak_rss_mb: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Compute threads.
    pub threads: usize,
}

/// One loss term on the first batch, both sides.
#[derive(Debug, Clone, Serialize)]
pub struct TermCheck {
    /// Term name (`total`, `contrastive`, …, `grad_norm`).
    pub name: String,
    /// autodidact's value.
    pub autodidact: f64,
    /// PyTorch's value.
    pub pytorch: f64,
    /// `|a - p| / max(|a|, |p|, 1e-3)`.
    pub relative_difference: f64,
}

/// The report (`--json`), schema [`PYTORCH_SCHEMA`].
#[derive(Debug, Clone, Serialize)]
pub struct PytorchComparison {
    /// [`PYTORCH_SCHEMA`].
    pub schema: String,
    /// `torch.__version__`.
    pub torch_version: String,
    /// Whether torch has oneDNN (MKL-DNN) for its CPU kernels.
    pub torch_mkldnn: bool,
    /// Batch size of a training step (two augmented views per sample).
    pub batch_size: usize,
    /// Image side, pixels.
    pub image_px: [usize; 2],
    /// Rounds, steps per round, encodes per round.
    pub rounds: usize,
    /// Timed training steps per side and round.
    pub steps_per_round: usize,
    /// Timed encodes per side and round.
    pub encodes_per_round: usize,
    /// autodidact (burn, flex backend).
    pub autodidact: SideNumbers,
    /// PyTorch eager on the CPU.
    pub pytorch: SideNumbers,
    /// autodidact samples/s ÷ PyTorch samples/s (the bar: ≥ 1).
    pub train_ratio_vs_pytorch: f64,
    /// autodidact encode p50 ÷ PyTorch encode p50 (the bar: ≤ 1).
    pub encode_ratio_vs_pytorch: f64,
    /// autodidact encode p99 ÷ PyTorch encode p99.
    pub encode_p99_ratio_vs_pytorch: f64,
    /// autodidact's batch sampling and augmentation per step (the PyTorch side is handed the
    /// batches), milliseconds.
    pub batch_sampling_ms: f64,
    /// Simulator control steps per second at 64² (physics + proprio + frame), when measured.
    pub sim_frames_per_s_64: Option<f64>,
    /// Image→embedding p99 in the node graph at 30 Hz while the trainer trains, ms, when
    /// measured.
    pub image_to_embedding_p99_ms_while_training: Option<f64>,
    /// The equivalence check on the first batch.
    pub loss_check: Vec<TermCheck>,
    /// Largest absolute difference between the two sides' embeddings of the same frame.
    pub embedding_max_abs_difference: f64,
}

/// The median of `samples` (NaN when there are none).
fn median(samples: &[f64]) -> f64 {
    median_of(samples).unwrap_or(f64::NAN)
}

/// Runs the comparison; `progress` hears what is happening.
pub fn compare_with_pytorch(
    options: &PytorchOptions,
    mut progress: impl FnMut(&str),
) -> Result<PytorchComparison> {
    ensure!(
        options.rounds > 0 && options.steps > 0 && options.encodes > 0 && options.batches > 0,
        "rounds, steps, encodes and batches must be > 0"
    );
    check_torch(options)?;
    let threads = options.threads.max(1);
    let pool = autodidact_nodes::pool::compute_pool("bench", threads, 0)?;
    progress("filling the replay buffer from the simulator");
    let (mut trainer, observation) =
        pool.install(|| filled_trainer(BackendChoice::Flex, options.seed, 600))?;
    let config = trainer.config().clone();
    check_mirrored(&config)?;
    let mut batches = Vec::with_capacity(options.batches);
    let mut sampling_s = Vec::with_capacity(options.batches);
    for _ in 0..options.batches {
        let started = Instant::now();
        batches.push(trainer.sample_batch()?);
        sampling_s.push(started.elapsed().as_secs_f64());
    }

    progress("writing the weights and batches for PyTorch");
    let data = tempfile::tempdir().context("creating a temporary directory")?;
    trainer.export_model_safetensors(&data.path().join("model.safetensors"))?;
    let image: Vec<f32> = observation
        .frame
        .rgb
        .iter()
        .map(|b| f32::from(*b))
        .collect();
    let proprio: Vec<f32> = vec![0.1; config.model.encoder.proprio_dim];
    let (width, height) = (
        config.model.encoder.image.width,
        config.model.encoder.image.height,
    );
    let mut tensors: Vec<Named<'_>> = batches
        .iter()
        .enumerate()
        .flat_map(|(index, batch)| batch_tensors(index, batch, &config))
        .collect();
    tensors.push(Named {
        name: "encode.image".into(),
        shape: vec![height, width, 3],
        data: &image,
    });
    tensors.push(Named {
        name: "encode.proprio".into(),
        shape: vec![proprio.len()],
        data: &proprio,
    });
    write_safetensors(&data.path().join("batches.safetensors"), &tensors)?;
    std::fs::write(
        data.path().join("meta.json"),
        serde_json::to_vec_pretty(&meta(&config, batches.len()))?,
    )?;

    progress("starting PyTorch");
    let (mut torch, setup) = TorchProcess::spawn(options, data.path())?;
    ensure!(
        setup.params == trainer.num_params(),
        "PyTorch builds {} parameters, autodidact {}: not the same model",
        setup.params,
        trainer.num_params()
    );

    // Equivalence: the same frame embeds the same, the first batch gives the same losses and
    // gradient norm. Also the warm-up of both sides.
    progress("checking both sides compute the same thing");
    trainer.set_inference_backend(autodidact_learn::BackendKind::Flex);
    let snapshot = trainer.snapshot();
    let ours = pool.install(|| snapshot.embed(&observation.frame.rgb, &proprio))?;
    let theirs: EncodeReply = torch.request(serde_json::json!({"cmd": "encode", "count": 5}))?;
    ensure!(
        theirs.embedding.len() == ours.len(),
        "embedding sizes differ: PyTorch {}, autodidact {}",
        theirs.embedding.len(),
        ours.len()
    );
    let embedding_max_abs_difference = ours
        .iter()
        .zip(&theirs.embedding)
        .map(|(a, b)| f64::from((a - b).abs()))
        .fold(0.0, f64::max);
    ensure!(
        embedding_max_abs_difference <= EMBEDDING_TOLERANCE,
        "the embeddings of the same frame differ by up to {embedding_max_abs_difference:.2e}: \
         not the same encoder"
    );
    let report = pool.install(|| trainer.train_on(&batches[0]))?;
    let theirs: TrainReply = torch.request(serde_json::json!({"cmd": "train", "steps": 1}))?;
    let their_losses = theirs
        .losses
        .first()
        .context("PyTorch returned no losses")?;
    let mut loss_check = Vec::new();
    let ours_named = report
        .losses
        .named()
        .into_iter()
        .map(|(name, value)| (name, f64::from(value)))
        .chain([("grad_norm", f64::from(report.grad_norm))]);
    for (name, autodidact) in ours_named {
        let Some(&pytorch) = their_losses.get(name) else {
            continue;
        };
        loss_check.push(TermCheck {
            name: name.to_owned(),
            autodidact,
            pytorch,
            relative_difference: relative_difference(autodidact, pytorch),
        });
    }
    // total, the 7 default terms and the gradient norm, and the odometry term where it is on.
    let expected_terms = 9 + usize::from(config.objectives.odometry.enabled);
    ensure!(
        loss_check.len() >= expected_terms,
        "PyTorch reported {} of the {expected_terms} loss terms",
        loss_check.len()
    );
    if let Some(worst) = loss_check
        .iter()
        .find(|term| term.relative_difference > LOSS_TOLERANCE)
    {
        bail!(
            "{} differs on the first batch: autodidact {}, PyTorch {}: not the same model",
            worst.name,
            worst.autodidact,
            worst.pytorch
        );
    }
    for _ in 0..5 {
        pool.install(|| snapshot.embed(&observation.frame.rgb, &proprio))?;
    }

    let mut ours_step = Vec::new();
    let mut theirs_step = Vec::new();
    let mut ours_encode = Vec::new();
    let mut theirs_encode = Vec::new();
    let mut next_batch = 1;
    for round in 0..options.rounds {
        progress(&format!(
            "round {}/{}: training, then encoding",
            round + 1,
            options.rounds
        ));
        let mut steps = Vec::with_capacity(options.steps);
        for _ in 0..options.steps {
            let batch = &batches[next_batch % batches.len()];
            next_batch += 1;
            let started = Instant::now();
            pool.install(|| trainer.train_on(batch))?;
            steps.push(started.elapsed().as_secs_f64());
        }
        ours_step.push(median(&steps));
        let theirs: TrainReply =
            torch.request(serde_json::json!({"cmd": "train", "steps": options.steps}))?;
        theirs_step.push(median(&theirs.step_s));
        let mut encodes = Vec::with_capacity(options.encodes);
        for _ in 0..options.encodes {
            let started = Instant::now();
            pool.install(|| snapshot.embed(&observation.frame.rgb, &proprio))?;
            encodes.push(started.elapsed().as_secs_f64());
        }
        ours_encode.push(encodes);
        let theirs: EncodeReply =
            torch.request(serde_json::json!({"cmd": "encode", "count": options.encodes}))?;
        theirs_encode.push(theirs.encode_s);
    }
    let our_peak = peak_rss_mb();
    let quit: QuitReply = torch.request(serde_json::json!({"cmd": "quit"}))?;
    drop(torch);

    let batch_size = config.batch_size as f64;
    let side = |steps: &[f64], encodes: &[Vec<f64>], peak: f64, params: usize, threads: usize| {
        let round_medians: Vec<f64> = encodes.iter().map(|round| median(round)).collect();
        let all: Vec<f64> = encodes.iter().flatten().copied().collect();
        let step = median(steps);
        SideNumbers {
            train_samples_per_s: batch_size / step,
            train_step_ms: step * 1e3,
            encode_p50_us: median(&round_medians) * 1e6,
            encode_p99_us: percentile(&all, 99.0).unwrap_or(f64::NAN) * 1e6,
            peak_rss_mb: peak,
            params,
            threads,
        }
    };
    let autodidact = side(
        &ours_step,
        &ours_encode,
        our_peak,
        trainer.num_params(),
        pool.current_num_threads(),
    );
    let pytorch = side(
        &theirs_step,
        &theirs_encode,
        quit.peak_rss_bytes as f64 / (1024.0 * 1024.0),
        setup.params,
        setup.threads,
    );
    drop(trainer);

    let sim_frames_per_s_64 = (options.sim_seconds > 0.0)
        .then(|| {
            progress("simulator control steps at 64x64");
            control_step_row(64, Duration::from_secs_f64(options.sim_seconds))
        })
        .transpose()?
        .map(|row| row.per_second);
    let image_to_embedding_p99_ms_while_training = if options.graph_seconds > 0.0 {
        progress("node graph at 30 Hz while training");
        bench_graph(
            BackendChoice::Flex,
            30.0,
            options.graph_seconds,
            TrainerNodeConfig::default().nice,
            0,
        )?
        .latency
        .map(|row| row.p99_us / 1e3)
    } else {
        None
    };
    Ok(PytorchComparison {
        schema: PYTORCH_SCHEMA.to_owned(),
        torch_version: setup.torch,
        torch_mkldnn: setup.mkldnn,
        batch_size: config.batch_size,
        image_px: [width, height],
        rounds: options.rounds,
        steps_per_round: options.steps,
        encodes_per_round: options.encodes,
        train_ratio_vs_pytorch: autodidact.train_samples_per_s / pytorch.train_samples_per_s,
        encode_ratio_vs_pytorch: autodidact.encode_p50_us / pytorch.encode_p50_us,
        encode_p99_ratio_vs_pytorch: autodidact.encode_p99_us / pytorch.encode_p99_us,
        autodidact,
        pytorch,
        batch_sampling_ms: median(&sampling_s) * 1e3,
        sim_frames_per_s_64,
        image_to_embedding_p99_ms_while_training,
        loss_check,
        embedding_max_abs_difference,
    })
}

/// The rows of the side-by-side table: measure, autodidact, PyTorch, ratio, bar.
pub fn comparison_rows(c: &PytorchComparison) -> Vec<[String; 5]> {
    let (a, p) = (&c.autodidact, &c.pytorch);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut rows = vec![
        [
            format!("train step, batch {} (samples/s)", c.batch_size),
            format!("{:.1}", a.train_samples_per_s),
            format!("{:.1}", p.train_samples_per_s),
            format!("{:.2}", c.train_ratio_vs_pytorch),
            format!("≥ 1.0: {}", verdict(c.train_ratio_vs_pytorch >= 1.0)),
        ],
        [
            "train step, median (ms)".to_owned(),
            format!("{:.0}", a.train_step_ms),
            format!("{:.0}", p.train_step_ms),
            String::new(),
            String::new(),
        ],
        [
            "encode 1 frame, p50 (µs)".to_owned(),
            format!("{:.0}", a.encode_p50_us),
            format!("{:.0}", p.encode_p50_us),
            format!("{:.2}", c.encode_ratio_vs_pytorch),
            format!("≤ 1.0: {}", verdict(c.encode_ratio_vs_pytorch <= 1.0)),
        ],
        [
            "encode 1 frame, p99 (µs)".to_owned(),
            format!("{:.0}", a.encode_p99_us),
            format!("{:.0}", p.encode_p99_us),
            format!("{:.2}", c.encode_p99_ratio_vs_pytorch),
            String::new(),
        ],
        [
            "peak RSS (MB)".to_owned(),
            format!("{:.0}", a.peak_rss_mb),
            format!("{:.0}", p.peak_rss_mb),
            String::new(),
            String::new(),
        ],
        [
            "parameters / threads".to_owned(),
            format!("{} / {}", a.params, a.threads),
            format!("{} / {}", p.params, p.threads),
            String::new(),
            "equal".to_owned(),
        ],
    ];
    let worst = c
        .loss_check
        .iter()
        .map(|term| term.relative_difference)
        .fold(0.0, f64::max);
    rows.push([
        format!(
            "same model: {} loss terms + grad norm on batch 1 (max rel. diff)",
            c.loss_check.len().saturating_sub(1)
        ),
        format!("{worst:.1e}"),
        format!(
            "embedding max |diff| {:.1e}",
            c.embedding_max_abs_difference
        ),
        String::new(),
        String::new(),
    ]);
    // autodidact-only measures: a name and a value.
    let mut ours = vec![(
        "batch sampling + augmentation (ms; PyTorch is handed the batches)",
        format!("{:.1}", c.batch_sampling_ms),
    )];
    if let Some(fps) = c.sim_frames_per_s_64 {
        ours.push(("sim control steps/s, 64x64", format!("{fps:.0}")));
    }
    if let Some(p99) = c.image_to_embedding_p99_ms_while_training {
        ours.push((
            "image→embedding p99 at 30 Hz while training (ms)",
            format!("{p99:.1}"),
        ));
    }
    for (name, value) in ours {
        rows.push([
            name.to_owned(),
            value,
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows
}
