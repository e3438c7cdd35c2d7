//! # autodidact
//!
//! The command-line front of autodidact: it parses arguments, builds configurations and calls
//! into the crates (`autodidact-sim`, `autodidact-learn`, `autodidact-nodes`, `autodidact-eval`,
//! `autodidact-bench`). The logic lives in functions that take their inputs, so tests call them
//! directly.

pub mod bag;
pub mod bench;
pub mod run;
pub mod sim;

use anyhow::{Context, Result};
use autodidact_eval::EvalConfig;
pub use autodidact_nodes::FileConfig;

/// The `[eval]` section of `file`, checked field by field (the defaults when there is none).
pub fn eval_config(file: &FileConfig) -> Result<EvalConfig> {
    match &file.eval {
        None => Ok(EvalConfig::default()),
        Some(table) => table
            .clone()
            .try_into()
            .context("in the [eval] section of the configuration file"),
    }
}
