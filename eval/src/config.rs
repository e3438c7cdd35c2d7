//! What to evaluate and how much.

use autodidact_learn::{MemoryConfig, PlannerConfig};
use autodidact_nodes::planner::{AlignConfig, GoalProprio};
use serde::{Deserialize, Serialize};

use crate::EvalError;
use crate::planning::GoalSetting;

/// Version of the JSON report's layout; bumped when a field changes meaning or goes away.
pub const REPORT_SCHEMA: &str = "autodidact.eval/2";

/// First seed of the held-out worlds: far away from the seeds training uses (0, 1, 2, …).
pub const HELD_OUT_SEED_BASE: u64 = 1_000_000;

/// What to evaluate and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out exploration episodes (at least 2: probes fit on half, score on the rest).
    pub episodes: u64,
    /// Control steps per held-out episode.
    pub episode_steps: usize,
    /// Start/goal pairs per planning setting.
    pub pairs: usize,
    /// The planning settings, in both protocols.
    pub settings: Vec<GoalSetting>,
    /// Control periods every agent gets per pair of the `easy` setting.
    pub plan_steps: usize,
    /// Control periods every agent gets per pair of the `far`, `across` and `near` settings.
    pub far_plan_steps: usize,
    /// The home protocol's worlds: those the model learned in (a model `eval` trains learns in
    /// worlds 0–4; `autodidact run --seed S` in world S).
    pub home_worlds: Vec<u64>,
    /// Control periods of the drive through a world the memory planner remembers: in the home
    /// protocol the robot's own drive there (the very data of a model `eval` trains), in new
    /// worlds a drive before the goals are given.
    pub memory_steps: usize,
    /// A goal counts as reached when the final position is within this, metres …
    pub success_position_m: f64,
    /// … and the final heading within this, degrees.
    pub success_yaw_deg: f64,
    /// Ridge of the linear probes.
    pub ridge: f64,
    /// The proprio the planner embeds the goal image with (see `PlannerNodeConfig`); the
    /// candidate ranking's model scores its candidates the same way.
    #[serde(alias = "goal_with_current_proprio")]
    pub goal_proprio: GoalProprio,
    /// Score how the model ranks the planner's candidate commands on the easy pairs of both
    /// protocols against what the simulator makes of them (`candidate_ranking`).
    pub ranking: bool,
    /// The reference planner.
    pub planner: PlannerConfig,
    /// The reference planner's turn to the goal's heading first, where the model serves a
    /// relative-pose head (see `PlannerNodeConfig`).
    pub align: AlignConfig,
    /// The memory planner's graph (the reference planner drives between its subgoals).
    pub memory: MemoryConfig,
    /// Seed of the held-out worlds, the pairs and the random baselines.
    pub seed: u64,
    /// Threads the independent pieces of the evaluation run on side by side (worlds' drives,
    /// start/goal pairs, candidate rankings, k-NN searches; `0`: one per core). Not part of
    /// what is evaluated: the report is the same for any number, so it is neither read from a
    /// file nor written to the report (`autodidact eval --jobs`).
    #[serde(skip)]
    pub jobs: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            episodes: 8,
            episode_steps: 500,
            pairs: 20,
            settings: GoalSetting::DEFAULT.to_vec(),
            plan_steps: 60,
            far_plan_steps: 200,
            home_worlds: (0..5).collect(),
            memory_steps: 1500,
            success_position_m: 0.2,
            success_yaw_deg: 20.0,
            ridge: 1e-3,
            goal_proprio: GoalProprio::Rest,
            ranking: true,
            planner: PlannerConfig::default(),
            align: AlignConfig::default(),
            memory: MemoryConfig::default(),
            seed: 0,
            jobs: 0,
        }
    }
}

impl EvalConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.episodes < 2 || self.episode_steps < 20 {
            return Err(EvalError::InvalidConfig(
                "eval needs at least 2 held-out episodes of at least 20 steps".into(),
            ));
        }
        if self.pairs == 0 || self.plan_steps == 0 || self.far_plan_steps == 0 {
            return Err(EvalError::InvalidConfig(
                "eval needs at least one planning pair and one planning step".into(),
            ));
        }
        if self.home_worlds.is_empty() {
            return Err(EvalError::InvalidConfig(
                "eval needs at least one home world".into(),
            ));
        }
        if self.memory_steps < 2 * self.memory.stride {
            return Err(EvalError::InvalidConfig(format!(
                "a memory of {} steps makes fewer than 2 nodes at stride {}",
                self.memory_steps, self.memory.stride
            )));
        }
        self.planner.validate()?;
        self.align.validate()?;
        self.memory.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports and configurations written before `goal_proprio` existed still read: the older
    /// key is the same setting, and both at once are refused.
    #[test]
    fn the_older_goal_with_current_proprio_key_still_reads() {
        let read = |text: &str| serde_json::from_str::<EvalConfig>(text);
        let older = read(r#"{"goal_with_current_proprio": true}"#).expect("older key");
        assert_eq!(older.goal_proprio, GoalProprio::Current);
        let older = read(r#"{"goal_with_current_proprio": false}"#).expect("older key");
        assert_eq!(older.goal_proprio, GoalProprio::Rest);
        let newer = read(r#"{"goal_proprio": "predicted"}"#).expect("new key");
        assert_eq!(newer.goal_proprio, GoalProprio::Predicted);
        assert!(
            read(r#"{"goal_proprio": "predicted", "goal_with_current_proprio": true}"#).is_err(),
            "both keys"
        );
    }
}
