//! Checkpoints on disk, written so that no crash, kill or full disk loses one.
//!
//! A checkpoint is a directory of four files: `model.bpk`, `target.bpk`, `optimizer.bin` and
//! `meta.json` (written last: a directory whose `meta.json` reads is complete). Saving
//! (under an exclusive lock on `.NAME.lock` beside it, so one writer at a time):
//!
//! 1. restores a checkpoint an earlier save left half-swapped, and sweeps its leftovers;
//! 2. refuses a target that exists and is not a checkpoint (never deletes a user's data);
//! 3. writes every file into `.NAME.tmp`, syncs each file, then the directory;
//! 4. renames the old checkpoint to `.NAME.old`, the new one into place, syncing the parent after
//!    each rename, and only then deletes `.NAME.old`.
//!
//! A kill between the two renames leaves no `NAME` but a complete `.NAME.old` (and perhaps a
//! complete `.NAME.tmp`): readers ([`Trainer::resume`]) then read the newest complete one, and
//! the next save puts it back in place.

use std::fs::File;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Trainer, TrainerConfig, adam};
use crate::LearnError;
use crate::device::BackendChoice;
use crate::model::WorldModelConfig;

/// Reads of a checkpoint that a save keeps replacing before `resume` gives up.
const RESUME_ATTEMPTS: u32 = 10;

/// What one read of a checkpoint gave.
enum Resumed {
    /// The trainer, every file from one version.
    Whole(Box<Trainer>),
    /// A save replaced the checkpoint while it was read.
    Replaced,
}

/// The files of a checkpoint, `meta.json` (the completion mark) last.
const CHECKPOINT_FILES: [&str; 4] = ["model.bpk", "target.bpk", "optimizer.bin", "meta.json"];

impl Trainer {
    /// Writes a checkpoint directory crash-safely (see the module docs): `dir` is always the old
    /// or the new complete checkpoint, or, after a kill at the one moment between two renames,
    /// recoverable from its sibling. Refuses a `dir` that exists and is not a checkpoint.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<(), LearnError> {
        let slot = CheckpointSlot::new(dir)?;
        // Refused before anything is made beside the target; checked again under the lock.
        slot.check_replaceable()?;
        std::fs::create_dir_all(&slot.parent).map_err(|e| io_error(&slot.parent, e))?;
        let _lock = slot.lock()?;
        slot.recover()?;
        slot.check_replaceable()?;
        let temp = slot.sibling("tmp");
        if temp.exists() {
            std::fs::remove_dir_all(&temp).map_err(|e| io_error(&temp, e))?;
        }
        std::fs::create_dir_all(&temp).map_err(|e| io_error(&temp, e))?;
        let record = |e: burn::store::RecordError| LearnError::Checkpoint(format!("{e}"));
        self.model
            .clone()
            .save_file(temp.join("model.bpk"))
            .map_err(record)?;
        self.target
            .clone()
            .save_file(temp.join("target.bpk"))
            .map_err(record)?;
        self.optimizer
            .save(temp.join("optimizer.bin"))
            .map_err(record)?;
        for name in ["model.bpk", "target.bpk", "optimizer.bin"] {
            sync_path(&temp.join(name))?;
        }
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.to_owned(),
            step: self.step,
            weights_version: self.weights_version,
            non_finite_skips: self.non_finite_skips,
            odometry_pairs: self.odometry_pairs,
            num_params: self.model.num_params(),
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            config: self.config.clone(),
        };
        let json =
            serde_json::to_vec_pretty(&meta).map_err(|e| LearnError::Checkpoint(e.to_string()))?;
        write_synced(&temp.join("meta.json"), &json)?;
        sync_path(&temp)?;
        slot.swap_in(&temp)
    }

    /// Whether [`save_checkpoint`](Self::save_checkpoint) may write to `dir`: it does not exist,
    /// is empty, or holds a checkpoint and nothing else. Nothing is created or changed.
    pub fn check_checkpoint_target(dir: &Path) -> Result<(), LearnError> {
        CheckpointSlot::new(dir)?.check_replaceable()
    }

    /// Restores a trainer from a checkpoint: weights, EMA target, optimiser state, step, sampling
    /// state and config. `expected` (if given) must describe the same architecture, or this is
    /// refused. The replay buffer starts empty. A checkpoint that a save replaces while it is
    /// read is read again (a follower reads while its trainer writes).
    pub fn resume(dir: &Path, expected: Option<&WorldModelConfig>) -> Result<Self, LearnError> {
        Self::resume_placed(dir, expected, None)
    }

    /// [`resume`](Self::resume), with training on `backend` and inference on
    /// `inference_backend` instead of the choices saved with the checkpoint: where a model runs
    /// is the machine's business (a checkpoint trained on a GPU resumes on a robot without
    /// one).
    pub fn resume_on(
        dir: &Path,
        expected: Option<&WorldModelConfig>,
        backend: BackendChoice,
        inference_backend: BackendChoice,
    ) -> Result<Self, LearnError> {
        Self::resume_placed(dir, expected, Some((backend, inference_backend)))
    }

    fn resume_placed(
        dir: &Path,
        expected: Option<&WorldModelConfig>,
        placed: Option<(BackendChoice, BackendChoice)>,
    ) -> Result<Self, LearnError> {
        for attempt in 1..=RESUME_ATTEMPTS {
            match Self::resume_once(dir, expected, placed)? {
                Resumed::Whole(trainer) => return Ok(*trainer),
                Resumed::Replaced => {
                    tracing::debug!(dir = %dir.display(), attempt, "checkpoint replaced while read");
                    std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)));
                }
            }
        }
        Err(LearnError::Checkpoint(format!(
            "{} was replaced while it was read, {RESUME_ATTEMPTS} times in a row",
            dir.display()
        )))
    }

    /// One read of the checkpoint at `dir`: the trainer, or `Replaced` when a save replaced
    /// the checkpoint while its files were read.
    fn resume_once(
        dir: &Path,
        expected: Option<&WorldModelConfig>,
        placed: Option<(BackendChoice, BackendChoice)>,
    ) -> Result<Resumed, LearnError> {
        let requested = dir;
        let dir = &readable_checkpoint(requested)?;
        let meta = match read_meta(dir) {
            Ok(meta) => meta,
            // Gone between finding it and reading it, with a save under way beside it.
            Err(_) if !dir.exists() && save_under_way(requested) => {
                return Ok(Resumed::Replaced);
            }
            Err(error) => return Err(error),
        };
        let version = |meta: &CheckpointMeta| (meta.step, meta.weights_version);
        let replaced = || read_meta(dir).map(|now| version(&now)).ok() != Some(version(&meta));
        if let Some(expected) = expected
            && !same_architecture(expected, &meta.config.model)
        {
            return Err(LearnError::Checkpoint(format!(
                "{} holds a different architecture: {} vs expected {}",
                dir.display(),
                meta.config.model,
                expected
            )));
        }
        if let Some(expected) = expected
            && expected.odometry_head != meta.config.model.odometry_head
        {
            tracing::warn!(
                dir = %dir.display(),
                configured = expected.odometry_head,
                written = meta.config.model.odometry_head,
                "the checkpoint's model and the configured one differ in the relative-pose head: \
                 it resumes as it was written (a new checkpoint directory trains the configured one)"
            );
        }
        let mut config = meta.config.clone();
        if let Some((backend, inference_backend)) = placed {
            config.backend = backend;
            config.inference_backend = inference_backend;
        }
        let mut trainer = Trainer::new(config)?;
        if trainer.model.num_params() != meta.num_params {
            return Err(LearnError::Checkpoint(format!(
                "{} was written for a model of {} parameters, this build makes {}",
                dir.display(),
                meta.num_params,
                trainer.model.num_params()
            )));
        }
        let record = |what: &str, e: burn::store::RecordError| {
            LearnError::Checkpoint(format!("{} {what}: {e}", dir.display()))
        };
        // Each file is read into memory whole: burn's file loading reads tensor data lazily,
        // from the path, at first use, and a save may have replaced the directory by then.
        let read = || -> Result<_, LearnError> {
            let bytes = |name: &str| -> Result<Bytes, LearnError> {
                let path = dir.join(name);
                let contents = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
                Ok(Bytes::from_bytes_vec(contents))
            };
            let model_record = ModuleRecord::from_bytes(bytes("model.bpk")?)
                .map_err(|e| record("model.bpk", e))?;
            let model = trainer
                .model
                .clone()
                .try_load_record(model_record)
                .map_err(|e| record("model.bpk", e))?;
            let target_record = ModuleRecord::from_bytes(bytes("target.bpk")?)
                .map_err(|e| record("target.bpk", e))?;
            let target = trainer
                .target
                .clone()
                .try_load_record(target_record)
                .map_err(|e| record("target.bpk", e))?;
            let optimizer = adam(&meta.config)
                .from_bytes(bytes("optimizer.bin")?)
                .map_err(|e| record("optimizer.bin", e))?;
            Ok((model, target, optimizer))
        };
        // A save that replaced the checkpoint while its files were read may have mixed two
        // versions, or removed them under the reader: read again.
        let (model, target, optimizer) = match read() {
            Ok(parts) if !replaced() => parts,
            Ok(_) => return Ok(Resumed::Replaced),
            Err(_) if replaced() => return Ok(Resumed::Replaced),
            Err(error) => return Err(error),
        };
        trainer.model = model;
        trainer.target = target;
        trainer.optimizer = optimizer;
        trainer.last_good = (trainer.model.clone(), trainer.target.clone());
        trainer.step = meta.step;
        trainer.weights_version = meta.weights_version;
        trainer.non_finite_skips = meta.non_finite_skips;
        trainer.odometry_pairs = meta.odometry_pairs;
        let mut rng = ChaCha8Rng::from_seed(meta.rng_seed);
        rng.set_stream(meta.rng_stream);
        rng.set_word_pos(meta.rng_word_pos);
        trainer.rng = rng;
        Ok(Resumed::Whole(Box::new(trainer)))
    }

    /// Exports the state encoder as safetensors (for use outside autodidact), atomically.
    pub fn export_encoder_safetensors(&self, path: &Path) -> Result<PathBuf, LearnError> {
        export_safetensors(&self.published_encoder().valid(), path)
    }

    /// Exports the whole online world model (encoder, heads, dynamics, decoder) as
    /// safetensors, atomically. Tensor names are burn's module paths (`encoder.fuse.weight`);
    /// `Linear` weights are stored `[in, out]`, LayerNorm's as `gamma`/`beta`.
    pub fn export_model_safetensors(&self, path: &Path) -> Result<PathBuf, LearnError> {
        export_safetensors(&self.model.valid(), path)
    }
}

/// Writes `module` as safetensors through a temporary sibling renamed into place.
fn export_safetensors<M: Module>(module: &M, path: &Path) -> Result<PathBuf, LearnError> {
    use burn::store::{ModuleSnapshot, SafetensorsStore};
    let temp = path.with_extension("safetensors.tmp");
    let mut store = SafetensorsStore::from_file(&temp).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| LearnError::Checkpoint(format!("safetensors export: {e}")))?;
    std::fs::rename(&temp, path).map_err(|e| io_error(path, e))?;
    Ok(path.to_path_buf())
}

/// Checkpoint layout version.
pub const CHECKPOINT_FORMAT: &str = "autodidact-checkpoint-1";

/// `meta.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointMeta {
    format: String,
    step: u64,
    weights_version: u64,
    non_finite_skips: u64,
    /// Pairs the odometry objective trained on; absent in checkpoints written before they
    /// were counted.
    #[serde(default)]
    odometry_pairs: Option<u64>,
    num_params: usize,
    rng_seed: [u8; 32],
    rng_stream: u64,
    rng_word_pos: u128,
    config: TrainerConfig,
}

fn read_meta(dir: &Path) -> Result<CheckpointMeta, LearnError> {
    let path = dir.join("meta.json");
    let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    let not_ours = |e: serde_json::Error| {
        LearnError::Checkpoint(format!(
            "{} is not an autodidact checkpoint: {e}",
            path.display()
        ))
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(not_ours)?;
    with_model_defaults(&mut value);
    let meta: CheckpointMeta = serde_json::from_value(value).map_err(not_ours)?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(LearnError::Checkpoint(format!(
            "{} has format {:?}, this build reads {CHECKPOINT_FORMAT:?}",
            path.display(),
            meta.format
        )));
    }
    Ok(meta)
}

/// Model fields added after a checkpoint was written (e.g. `inverse_head`) take their defaults:
/// burn's `Config` derive makes every field required when read back. Keys the checkpoint has
/// are kept; a meta without a readable `config.model.encoder` is left for the caller's error.
/// The relative-pose head and its objective became the default after they were added: a
/// checkpoint without their keys was written without them, and reads back so.
fn with_model_defaults(meta: &mut serde_json::Value) {
    if let Some(serde_json::Value::Object(objectives)) = meta.pointer_mut("/config/objectives") {
        objectives
            .entry("odometry")
            .or_insert_with(|| serde_json::json!({ "enabled": false }));
    }
    let Some(serde_json::Value::Object(model)) = meta.pointer_mut("/config/model") else {
        return;
    };
    model
        .entry("odometry_head")
        .or_insert(serde_json::Value::Bool(false));
    let Some(encoder) = model
        .get("encoder")
        .and_then(|encoder| serde_json::from_value(encoder.clone()).ok())
    else {
        return;
    };
    if let Ok(serde_json::Value::Object(defaults)) =
        serde_json::to_value(WorldModelConfig::new(encoder))
    {
        for (key, value) in defaults {
            model.entry(key).or_insert(value);
        }
    }
}

/// Whether a checkpoint's model is the one `expected` describes, but for the relative-pose
/// head: a checkpoint written without it (before it was the default) resumes as it was
/// written, and one with it serves a node configured without it.
fn same_architecture(expected: &WorldModelConfig, written: &WorldModelConfig) -> bool {
    let mut expected = expected.clone();
    expected.odometry_head = written.odometry_head;
    serde_json::to_value(&expected).ok() == serde_json::to_value(written).ok()
}

fn io_error(path: &Path, error: std::io::Error) -> LearnError {
    LearnError::Checkpoint(format!("{}: {error}", path.display()))
}

/// Where a checkpoint lives and the hidden siblings a save uses beside it.
struct CheckpointSlot {
    dir: PathBuf,
    parent: PathBuf,
    name: String,
}

impl CheckpointSlot {
    fn new(dir: &Path) -> Result<Self, LearnError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let name = dir
            .file_name()
            .ok_or_else(|| {
                LearnError::Checkpoint(format!("{} is not a directory name", dir.display()))
            })?
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            dir: dir.to_path_buf(),
            parent,
            name,
        })
    }

    /// `.NAME.<kind>` beside the checkpoint.
    fn sibling(&self, kind: &str) -> PathBuf {
        self.parent.join(format!(".{}.{kind}", self.name))
    }

    /// Holds the exclusive writer's lock until dropped (an OS lock: a killed writer's is freed).
    fn lock(&self) -> Result<File, LearnError> {
        let path = self.sibling("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        file.lock().map_err(|e| io_error(&path, e))?;
        Ok(file)
    }

    /// The temporary and old directories an earlier save left behind (only a save that died
    /// leaves any: a live one holds the lock), this version's names and the older `-PID` ones.
    fn leftovers(&self) -> Result<Vec<PathBuf>, LearnError> {
        let prefixes = [format!(".{}.tmp", self.name), format!(".{}.old", self.name)];
        let entries = std::fs::read_dir(&self.parent).map_err(|e| io_error(&self.parent, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&self.parent, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let ours = prefixes.iter().any(|prefix| {
                file_name
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
            });
            if ours {
                found.push(entry.path());
            }
        }
        found.sort();
        Ok(found)
    }

    /// Puts back a checkpoint that a killed save left between its two renames, then deletes
    /// every leftover.
    fn recover(&self) -> Result<(), LearnError> {
        let leftovers = self.leftovers()?;
        if !self.dir.exists()
            && let Some(newest) = newest_complete(&leftovers)
        {
            tracing::warn!(
                from = %newest.display(),
                to = %self.dir.display(),
                "restoring the checkpoint an interrupted save left beside its place"
            );
            std::fs::rename(&newest, &self.dir).map_err(|e| io_error(&self.dir, e))?;
            sync_path(&self.parent)?;
        }
        for leftover in leftovers.iter().filter(|path| path.exists()) {
            tracing::info!(path = %leftover.display(), "removing what an interrupted save left");
            std::fs::remove_dir_all(leftover).map_err(|e| io_error(leftover, e))?;
        }
        Ok(())
    }

    /// Refuses a target that exists and is not a checkpoint: saving replaces the whole
    /// directory, and a user's data there must never be deleted.
    fn check_replaceable(&self) -> Result<(), LearnError> {
        let dir = &self.dir;
        let Ok(metadata) = std::fs::symlink_metadata(dir) else {
            return Ok(());
        };
        let refuse = |why: String| {
            Err(LearnError::Checkpoint(format!(
                "refusing to save a checkpoint to {}: {why}; choose a new or empty directory",
                dir.display()
            )))
        };
        if !metadata.is_dir() {
            return refuse("it exists and is not a directory".into());
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        if names.is_empty() {
            return Ok(());
        }
        let foreign: Vec<&String> = names
            .iter()
            .filter(|name| !CHECKPOINT_FILES.contains(&name.as_str()))
            .collect();
        if !foreign.is_empty() {
            return refuse(format!(
                "it holds files that are not part of a checkpoint ({})",
                foreign
                    .iter()
                    .take(5)
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Err(error) = read_meta(dir) {
            return refuse(format!(
                "it is not a readable autodidact checkpoint ({error})"
            ));
        }
        Ok(())
    }

    /// Swaps the complete, synced `temp` into place: old out, new in, parent synced after each
    /// rename, old deleted last.
    fn swap_in(&self, temp: &Path) -> Result<(), LearnError> {
        let old = self.sibling("old");
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old).map_err(|e| io_error(&self.dir, e))?;
            sync_path(&self.parent)?;
        }
        std::fs::rename(temp, &self.dir).map_err(|e| io_error(&self.dir, e))?;
        sync_path(&self.parent)?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io_error(&old, e))?;
        }
        Ok(())
    }
}

/// `dir` when it holds a complete checkpoint; otherwise the newest complete one an interrupted
/// save left beside it (read where it is: only a writer moves it back). Errors name `dir`.
fn readable_checkpoint(dir: &Path) -> Result<PathBuf, LearnError> {
    if dir.join("meta.json").exists() {
        return Ok(dir.to_path_buf());
    }
    let fallback = CheckpointSlot::new(dir)
        .ok()
        .and_then(|slot| slot.leftovers().ok())
        .and_then(|leftovers| newest_complete(&leftovers));
    match fallback {
        Some(path) => {
            tracing::info!(
                dir = %dir.display(),
                from = %path.display(),
                "reading the checkpoint an interrupted save left beside its place"
            );
            Ok(path)
        }
        None => Ok(dir.to_path_buf()),
    }
}

/// Whether a save of the checkpoint at `dir` has left its temporary or old directory beside
/// it (a save under way, or one that was killed).
fn save_under_way(dir: &Path) -> bool {
    CheckpointSlot::new(dir)
        .and_then(|slot| slot.leftovers())
        .is_ok_and(|leftovers| !leftovers.is_empty())
}

/// The complete checkpoint (every file, a readable `meta.json`) of the highest step among
/// `candidates`.
fn newest_complete(candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .filter(|path| {
            CHECKPOINT_FILES
                .iter()
                .all(|name| path.join(name).is_file())
        })
        .filter_map(|path| {
            read_meta(path)
                .ok()
                .map(|meta| ((meta.step, meta.weights_version), path))
        })
        .max_by_key(|(order, _)| *order)
        .map(|(_, path)| path.clone())
}

/// Writes `bytes` to `path` and syncs them to the disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), LearnError> {
    use std::io::Write as _;
    let mut file = File::create(path).map_err(|e| io_error(path, e))?;
    file.write_all(bytes).map_err(|e| io_error(path, e))?;
    file.sync_all().map_err(|e| io_error(path, e))
}

/// Syncs a file's data, or a directory's entries, to the disk.
fn sync_path(path: &Path) -> Result<(), LearnError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|e| io_error(path, e))
}
