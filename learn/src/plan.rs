//! Planning with the world model: rollouts scored against a goal embedding, and the reference
//! planner, goal-image latent MPC whose search is the cross-entropy method (CEM) or MPPI.
//!
//! Distances are between L2-normalised embeddings (`|n(a) - n(b)|²`, in `[0, 4]`): the objectives
//! train directions, not lengths.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::health::normalise;
use crate::inference::{DynamicsSnapshot, EncoderSnapshot, check_values};
use crate::replay::ACTION_DIM;

/// `|n(a) - n(b)|²` between two embeddings of the same length.
pub fn goal_distance(embedding: &[f32], goal: &[f32]) -> f32 {
    normalise(embedding)
        .iter()
        .zip(normalise(goal))
        .map(|(a, b)| (a - b) * (a - b))
        .sum()
}

/// What the planner steers towards.
#[derive(Debug, Clone, Copy)]
pub enum Goal<'a> {
    /// An embedding: the goal image embedded with the proprio recorded with it (at rest), or
    /// with the robot's current proprio.
    Embedding(&'a [f32]),
    /// The goal image's features ([`EncoderSnapshot::image_features`]), fused at every state
    /// with the proprio the model reads from that state ([`DynamicsSnapshot::predicted_proprio`]):
    /// how fast the robot moves there counts as the goal's, so the distance is the image's
    /// alone. Needs dynamics that carry the proprio head, and the encoder of their version.
    ImageAtPredictedProprio {
        /// The encoder whose image branch gave the features.
        encoder: &'a EncoderSnapshot,
        /// The goal image's features.
        image_features: &'a [f32],
    },
}

/// [`goal_distance`] of each state to `goal`; for [`Goal::ImageAtPredictedProprio`], to the
/// goal image fused with the proprio the dynamics' head reads from that state.
pub fn goal_distances(
    dynamics: &DynamicsSnapshot,
    goal: Goal<'_>,
    states: &[&[f32]],
) -> Result<Vec<f32>, LearnError> {
    let d = dynamics.embed_dim();
    if let Some(bad) = states.iter().position(|z| z.len() != d) {
        return Err(LearnError::BadInput(format!(
            "state {bad} has {} values, the model's embeddings have {d}",
            states[bad].len()
        )));
    }
    match goal {
        Goal::Embedding(goal) => {
            check_goal(goal, d)?;
            Ok(states.iter().map(|z| goal_distance(z, goal)).collect())
        }
        Goal::ImageAtPredictedProprio {
            encoder,
            image_features,
        } => {
            if encoder.config().embed_dim != d {
                return Err(LearnError::BadInput(format!(
                    "the encoder embeds in {} values, the dynamics work in {d}",
                    encoder.config().embed_dim
                )));
            }
            let proprio = dynamics.predicted_proprio(states)?;
            let proprio: Vec<&[f32]> = proprio.iter().map(Vec::as_slice).collect();
            let goals = encoder.fuse(image_features, &proprio)?;
            if goals.len() != states.len() {
                return Err(LearnError::Backend(format!(
                    "{} goals fused for {} states",
                    goals.len(),
                    states.len()
                )));
            }
            Ok(states
                .iter()
                .zip(&goals)
                .map(|(z, goal)| goal_distance(z, goal))
                .collect())
        }
    }
}

/// Refuses a goal embedding that is not `embed_dim` finite values.
fn check_goal(goal: &[f32], embed_dim: usize) -> Result<(), LearnError> {
    check_values("goal embedding", goal, embed_dim, "the model's embeddings")
}

/// What a rollout request returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// Per candidate, the predicted embedding after each action (`K × H × D`).
    pub predicted: Vec<Vec<Vec<f32>>>,
    /// Per candidate and step, [`goal_distance`] to the goal (`K × H`), when a goal was given.
    pub goal_distances: Option<Vec<Vec<f32>>>,
    /// Version of the dynamics weights that answered.
    pub model_version: u64,
}

/// Rolls out every candidate action sequence (robot units, `[m/s, rad/s]`) from `start` and,
/// given a goal embedding, scores every predicted step against it. Wrong dimensions, empty or
/// ragged action lists and non-finite values are refused with [`LearnError::BadInput`], and so
/// is a prediction that overflows (finite inputs far outside anything the model has seen, such
/// as an action of 1e38 m/s): no caller ever receives NaN or ∞.
pub fn rollout(
    dynamics: &DynamicsSnapshot,
    start: &[f32],
    candidates: &[Vec<[f32; ACTION_DIM]>],
    goal: Option<&[f32]>,
) -> Result<Rollout, LearnError> {
    if let Some(goal) = goal {
        check_goal(goal, dynamics.embed_dim())?;
    }
    let predicted = dynamics.rollout(start, candidates)?;
    if predicted.iter().flatten().flatten().any(|v| !v.is_finite()) {
        return Err(LearnError::BadInput(
            "the prediction is not finite: the start or the actions are far outside the range \
             the model was trained on"
                .into(),
        ));
    }
    let goal_distances = goal.map(|goal| {
        predicted
            .iter()
            .map(|steps| steps.iter().map(|z| goal_distance(z, goal)).collect())
            .collect()
    });
    Ok(Rollout {
        predicted,
        goal_distances,
        model_version: dynamics.version,
    })
}

/// How the planner refits its sampling distribution after scoring the candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// Cross-entropy method: mean and standard deviation of the `elites` cheapest candidates.
    #[default]
    Cem,
    /// Model-predictive path integral (as PLDM and TD-MPC plan): every candidate weighted by
    /// `exp(-(cost - cheapest) / temperature)`; mean and standard deviation of the weighted set.
    Mppi,
}

/// Settings of the latent MPC planner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    /// How each iteration refits the sampling distribution.
    pub method: SearchMethod,
    /// Decisions per plan.
    pub horizon: usize,
    /// Control periods each decision is held for (the rollout is `horizon × action_repeat`
    /// steps of the dynamics).
    pub action_repeat: usize,
    /// Candidate sequences per search iteration.
    pub samples: usize,
    /// Best candidates the sampling distribution is refitted to ([`SearchMethod::Cem`]).
    pub elites: usize,
    /// Temperature of the weights over candidates, in cost units ([`SearchMethod::Mppi`]):
    /// smaller follows the cheapest candidates more closely.
    pub temperature: f32,
    /// Search iterations per plan.
    pub iterations: usize,
    /// Largest command, `[m/s, rad/s]`; candidates are clipped to `[min_action, max_action]`.
    pub max_action: [f32; ACTION_DIM],
    /// Smallest command, `[m/s, rad/s]`. Keep it inside what the robot did while the model
    /// learned: the forward model's predictions for commands it never saw are guesses, and the
    /// search exploits them. The default allows slow reversing only, as in the simulator's
    /// exploration (measured: with `-max_action`, the planner drove backwards out of the goal's
    /// view in most failed attempts).
    pub min_action: [f32; ACTION_DIM],
    /// Initial standard deviation of the sampling distribution, as a share of `max_action`.
    pub initial_std: f32,
    /// Smallest standard deviation kept, as a share of `max_action`.
    pub min_std: f32,
    /// Weight of the last step's distance, on top of the mean distance over all steps.
    pub final_weight: f32,
    /// Weight of the control effort, the mean over decisions of `(a / max_action)²` summed over
    /// both axes: without it, any motion the model cannot tell from progress looks free.
    pub effort_weight: f32,
    /// Seed of the sampling.
    pub seed: u64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            method: SearchMethod::Cem,
            horizon: 8,
            action_repeat: 3,
            samples: 64,
            elites: 12,
            temperature: 0.02,
            iterations: 3,
            max_action: [0.5, 2.0],
            min_action: [-0.1, -2.0],
            initial_std: 0.6,
            min_std: 0.05,
            final_weight: 1.0,
            effort_weight: 0.02,
            seed: 0,
        }
    }
}

impl PlannerConfig {
    /// Checks that the numbers fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        let invalid = |m: &str| Err(LearnError::InvalidConfig(format!("planner: {m}")));
        if self.horizon == 0 || self.action_repeat == 0 || self.iterations == 0 {
            return invalid("horizon, action_repeat and iterations must be >= 1");
        }
        if self.elites == 0 || self.elites > self.samples {
            return invalid("elites must be in 1..=samples");
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid("temperature must be finite and > 0");
        }
        if self.max_action.iter().any(|m| !(m.is_finite() && *m > 0.0)) {
            return invalid("max_action must be finite and > 0");
        }
        if self
            .min_action
            .iter()
            .any(|m| !(m.is_finite() && *m <= 0.0))
        {
            return invalid("min_action must be finite and <= 0 (standing still is a command)");
        }
        let shares = [
            self.initial_std,
            self.min_std,
            self.final_weight,
            self.effort_weight,
        ];
        if shares.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return invalid(
                "initial_std, min_std, final_weight and effort_weight must be finite and >= 0",
            );
        }
        Ok(())
    }
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The command to send now, `[m/s, rad/s]`.
    pub action: [f32; ACTION_DIM],
    /// The planned decisions (each held for `action_repeat` periods).
    pub decisions: Vec<[f32; ACTION_DIM]>,
    /// Predicted distance to the goal after the whole plan.
    pub predicted_final_distance: f32,
    /// Distance of the start embedding to the goal.
    pub start_distance: f32,
    /// Version of the dynamics that planned.
    pub model_version: u64,
}

/// Goal-reaching latent MPC: searches action sequences with the forward model so that the
/// predicted embeddings approach the goal's, and returns the first action. Call
/// [`plan`](Self::plan) every frame; the previous plan, shifted by one decision, seeds the next
/// search.
#[derive(Debug, Clone)]
pub struct LatentPlanner {
    config: PlannerConfig,
    rng: ChaCha8Rng,
    /// Mean of the sampling distribution carried between calls, one entry per decision.
    warm_start: Option<Vec<[f32; ACTION_DIM]>>,
    /// Periods the first decision of `warm_start` has already been executed.
    executed: usize,
}

impl LatentPlanner {
    /// A planner with its own seeded random stream.
    pub fn new(config: PlannerConfig) -> Result<Self, LearnError> {
        config.validate()?;
        Ok(Self {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            warm_start: None,
            executed: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    /// Forgets the previous plan (call when the goal changes).
    pub fn reset(&mut self) {
        self.warm_start = None;
        self.executed = 0;
    }

    /// Plans from the current embedding towards the goal embedding and returns the action for
    /// this control period.
    pub fn plan(
        &mut self,
        dynamics: &DynamicsSnapshot,
        current: &[f32],
        goal: &[f32],
    ) -> Result<Plan, LearnError> {
        self.plan_towards(dynamics, current, Goal::Embedding(goal))
    }

    /// [`Self::plan`] towards any [`Goal`].
    pub fn plan_towards(
        &mut self,
        dynamics: &DynamicsSnapshot,
        current: &[f32],
        goal: Goal<'_>,
    ) -> Result<Plan, LearnError> {
        let c = self.config.clone();
        let (min, max) = (c.min_action, c.max_action);
        let mut mean = self.shifted_warm_start();
        let mut std = vec![[c.initial_std * max[0], c.initial_std * max[1]]; c.horizon];
        // (cost, predicted final distance, decisions) of the best candidate seen.
        let mut best: Option<(f32, f32, Vec<[f32; ACTION_DIM]>)> = None;
        for _ in 0..c.iterations {
            // Candidate 0 is the current mean, so a good warm start is never lost; candidate 1
            // stands still, so stopping at the goal is always on the table.
            let mut candidates = Vec::with_capacity(c.samples);
            candidates.push(mean.clone());
            if c.samples > 1 {
                candidates.push(vec![[0.0; ACTION_DIM]; c.horizon]);
            }
            while candidates.len() < c.samples {
                candidates.push(sample_decisions(&mean, &std, min, max, &mut self.rng));
            }
            let scores = self.costs(dynamics, current, goal, &candidates)?;
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|&a, &b| scores[a].0.total_cmp(&scores[b].0));
            let (cost, final_distance) = scores[order[0]];
            if best
                .as_ref()
                .is_none_or(|(best_cost, ..)| cost < *best_cost)
            {
                best = Some((cost, final_distance, candidates[order[0]].clone()));
            }
            let weights = self.candidate_weights(&scores, &order);
            refit(&candidates, &weights, &mut mean, &mut std, c.min_std, max);
        }
        let (_, mut predicted_final_distance, mut decisions) = best
            .ok_or_else(|| LearnError::InvalidConfig("planner: no search iteration ran".into()))?;
        if c.method == SearchMethod::Mppi {
            // MPPI executes the weighted mean, not the cheapest sample: scored once more.
            let scores = self.costs(dynamics, current, goal, std::slice::from_ref(&mean))?;
            predicted_final_distance = scores.first().map_or(predicted_final_distance, |s| s.1);
            decisions = mean;
        }
        self.warm_start = Some(decisions.clone());
        self.executed = 0;
        let start_distance = goal_distances(dynamics, goal, &[current])?
            .first()
            .copied()
            .unwrap_or(f32::NAN);
        Ok(Plan {
            action: decisions[0],
            decisions,
            predicted_final_distance,
            start_distance,
            model_version: dynamics.version,
        })
    }

    /// Per candidate, its weight in the refitted distribution (summing to 1): `1 / elites` for
    /// the `elites` cheapest under CEM, exponential in the cost under MPPI. `order` lists the
    /// candidates cheapest first.
    fn candidate_weights(&self, scores: &[(f32, f32)], order: &[usize]) -> Vec<f32> {
        let mut weights = vec![0.0; scores.len()];
        match self.config.method {
            SearchMethod::Cem => {
                let elites = self.config.elites.min(order.len()).max(1);
                for &i in &order[..elites] {
                    weights[i] = 1.0 / elites as f32;
                }
            }
            SearchMethod::Mppi => {
                let cheapest = order.first().map_or(0.0, |&i| scores[i].0);
                for (weight, (cost, _)) in weights.iter_mut().zip(scores) {
                    *weight = (-(cost - cheapest) / self.config.temperature).exp();
                }
                // The cheapest weighs exp(0) = 1, so the sum is at least 1.
                let sum: f32 = weights.iter().sum();
                weights.iter_mut().for_each(|w| *w /= sum);
            }
        }
        weights
    }

    /// The previous plan advanced by one control period, or zeros.
    fn shifted_warm_start(&mut self) -> Vec<[f32; ACTION_DIM]> {
        let horizon = self.config.horizon;
        let Some(previous) = self.warm_start.take() else {
            return vec![[0.0; ACTION_DIM]; horizon];
        };
        self.executed += 1;
        if self.executed < self.config.action_repeat {
            return previous;
        }
        self.executed = 0;
        let mut shifted: Vec<[f32; ACTION_DIM]> = previous.into_iter().skip(1).collect();
        let last = shifted.last().copied().unwrap_or([0.0; ACTION_DIM]);
        shifted.resize(horizon, last);
        shifted
    }

    /// Decisions repeated `action_repeat` times: the per-period actions the dynamics step through.
    fn expand(&self, candidates: &[Vec<[f32; ACTION_DIM]>]) -> Vec<Vec<[f32; ACTION_DIM]>> {
        candidates
            .iter()
            .map(|decisions| hold_decisions(decisions, self.config.action_repeat).collect())
            .collect()
    }

    /// Per candidate: the cost (mean distance over the rollout, plus `final_weight` × the last
    /// step's, plus `effort_weight` × the control effort) and the last step's distance.
    fn costs(
        &self,
        dynamics: &DynamicsSnapshot,
        current: &[f32],
        goal: Goal<'_>,
        candidates: &[Vec<[f32; ACTION_DIM]>],
    ) -> Result<Vec<(f32, f32)>, LearnError> {
        let predicted = rollout(dynamics, current, &self.expand(candidates), None)?.predicted;
        let steps = predicted.first().map_or(1, Vec::len).max(1);
        let states: Vec<&[f32]> = predicted.iter().flatten().map(Vec::as_slice).collect();
        let distances = goal_distances(dynamics, goal, &states)?;
        let max = self.config.max_action;
        Ok(distances
            .chunks(steps)
            .zip(candidates)
            .map(|(steps, decisions)| {
                let mean = steps.iter().sum::<f32>() / steps.len().max(1) as f32;
                let effort = decisions
                    .iter()
                    .map(|a| (a[0] / max[0]).powi(2) + (a[1] / max[1]).powi(2))
                    .sum::<f32>()
                    / decisions.len().max(1) as f32;
                let last = steps.last().copied().unwrap_or(0.0);
                let cost =
                    mean + self.config.final_weight * last + self.config.effort_weight * effort;
                (cost, last)
            })
            .collect())
    }
}

/// One candidate sequence as the search draws it: per decision and axis, `mean + std × N(0, 1)`
/// clipped to `[min, max]`.
pub fn sample_decisions(
    mean: &[[f32; ACTION_DIM]],
    std: &[[f32; ACTION_DIM]],
    min: [f32; ACTION_DIM],
    max: [f32; ACTION_DIM],
    rng: &mut ChaCha8Rng,
) -> Vec<[f32; ACTION_DIM]> {
    mean.iter()
        .zip(std)
        .map(|(m, s)| {
            std::array::from_fn(|axis| {
                let noise: f32 = StandardNormal.sample(rng);
                (m[axis] + s[axis] * noise).clamp(min[axis], max[axis])
            })
        })
        .collect()
}

/// The per-period actions of `decisions`, each held `repeat` control periods.
pub fn hold_decisions(
    decisions: &[[f32; ACTION_DIM]],
    repeat: usize,
) -> impl Iterator<Item = [f32; ACTION_DIM]> + '_ {
    decisions
        .iter()
        .flat_map(move |a| std::iter::repeat_n(*a, repeat))
}

/// Refits the per-decision mean and standard deviation (kept at least `min_std × max_action`)
/// to the candidates under `weights` (summing to 1).
fn refit(
    candidates: &[Vec<[f32; ACTION_DIM]>],
    weights: &[f32],
    mean: &mut [[f32; ACTION_DIM]],
    std: &mut [[f32; ACTION_DIM]],
    min_std: f32,
    max_action: [f32; ACTION_DIM],
) {
    for (step, (m, s)) in mean.iter_mut().zip(std.iter_mut()).enumerate() {
        for axis in 0..ACTION_DIM {
            let weighted = || {
                candidates
                    .iter()
                    .zip(weights)
                    .map(move |(candidate, &w)| (candidate[step][axis], w))
            };
            let centre: f32 = weighted().map(|(v, w)| w * v).sum();
            let variance: f32 = weighted().map(|(v, w)| w * (v - centre).powi(2)).sum();
            m[axis] = centre;
            s[axis] = variance.sqrt().max(min_std * max_action[axis]);
        }
    }
}
