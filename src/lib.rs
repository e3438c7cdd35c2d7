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

#[cfg(test)]
mod tests {
    use super::*;
    use autodidact_learn::TrainerConfig;

    /// `eval/ten-minutes.toml`, the longer budget docs/eval.md measures, is the standard 32²
    /// model with exactly the three changes it names.
    #[test]
    fn the_ten_minute_budget_is_the_standard_model_with_its_three_changes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/ten-minutes.toml");
        let file = FileConfig::load(&path).expect("eval/ten-minutes.toml loads");
        let budget = file.trainer.clone().expect("a [trainer] section");
        let proprio = autodidact_nodes::CollectorConfig::default().proprio.dim();
        let mut expected = TrainerConfig::for_inputs(32, 32, proprio);
        expected.learning_rate = 3e-4;
        expected.objectives.forward.weight = 30.0;
        expected.objectives.odometry.revisit_share = 0.5;
        assert_eq!(
            serde_json::to_value(&budget).expect("json"),
            serde_json::to_value(&expected).expect("json")
        );
        assert_eq!((file.sim.camera.width, file.sim.camera.height), (32, 32));
        eval_config(&file).expect("the [eval] defaults");
    }

    /// `eval/far-goals.toml`, the far goals docs/eval.md measures, is `eval`'s defaults with
    /// exactly the far protocol's changes: far goals only, 10 pairs, a 20-minute memory that
    /// the planner follows by odometry, laid out as one map.
    #[test]
    fn the_far_goals_file_is_the_default_evaluation_with_the_far_protocol() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/far-goals.toml");
        let file = FileConfig::load(&path).expect("eval/far-goals.toml loads");
        let far = eval_config(&file).expect("its [eval] section");
        let mut expected = EvalConfig {
            settings: vec![autodidact_eval::GoalSetting::Far],
            pairs: 10,
            memory_steps: 24_000,
            ranking: false,
            ..EvalConfig::default()
        };
        expected.memory.follow.enabled = true;
        expected.memory.pose_graph.enabled = true;
        assert_eq!(far, expected);
        far.validate().expect("a valid evaluation");
        assert!(
            file.trainer.is_none(),
            "the checkpoint's model is evaluated"
        );
    }
}
