//! # autodidact
//!
//! The command-line front of autodidact: it parses arguments, builds configurations and calls
//! into the crates (`autodidact-sim`, `autodidact-learn`, `autodidact-nodes`). The logic lives in functions that take their inputs, so tests call them
//! directly.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod eval_viz;
pub mod pytorch;
pub mod run;

use std::path::Path;

use anyhow::{Context, Result};
use autodidact_learn::TrainerConfig;
use autodidact_nodes::CollectorConfig;
use autodidact_nodes::encoder::EncoderConfig;
use autodidact_nodes::trainer::TrainerNodeConfig;
use autodidact_sim::{ExplorationConfig, SimConfig};
use serde::Deserialize;

/// A configuration file (TOML): every section optional, every field defaulted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The simulator.
    pub sim: SimConfig,
    /// The exploration policy.
    pub exploration: ExplorationConfig,
    /// The collector (image size follows `[sim.camera]`).
    pub collector: CollectorConfig,
    /// The world model and its training, in full (default: the standard model for the camera).
    pub trainer: Option<TrainerConfig>,
    /// The trainer node (replay warm-up, health, previews, checkpoints).
    pub trainer_node: TrainerNodeConfig,
    /// The encoder node.
    pub encoder: EncoderConfig,
    /// `autodidact eval`: held-out data, planning pairs and the reference planner.
    pub eval: eval::EvalConfig,
}

impl FileConfig {
    /// [`load`](Self::load)s `path` when one is given, else the defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }

    /// Reads and validates a TOML configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let config: FileConfig =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        config
            .sim
            .validate()
            .with_context(|| format!("checking config {}", path.display()))?;
        Ok(config)
    }
}
