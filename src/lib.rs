//! # autodidact
//!
//! The command-line front of autodidact: it parses arguments, builds configurations and calls
//! into the crates (`autodidact-sim`, and with later issues `autodidact-learn` and
//! `autodidact-nodes`). The logic lives in functions that take their inputs, so tests call them
//! directly.

pub mod bench;
pub mod demo;

use std::path::Path;

use anyhow::{Context, Result};
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
}

impl FileConfig {
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
