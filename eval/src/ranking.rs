//! Does the model rank the planner's candidates as the world does? From the start of every easy
//! pair, command sequences drawn as the planner's first search iteration draws them are driven
//! in the simulator, each from the same start in the world as it was, and rolled out by the
//! dynamics. The candidate the model predicts nearest the goal image is compared with the one
//! whose true final frame the encoder finds nearest (the model's choice with perfect dynamics)
//! and with the one that truly ended nearest the goal (the best the candidates allow).

use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::plan::{hold_decisions, sample_decisions};
use autodidact_learn::{
    ACTION_DIM, EncoderSnapshot, Goal, PlannerConfig, goal_distance, goal_distances, rollout,
};
use autodidact_nodes::planner::GoalProprio;
use autodidact_nodes::{CollectorConfig, Frame};
use autodidact_sim::{Action, Pose2, Sim, SimConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::EvalConfig;
use crate::data::Eyes;
use crate::parallel::map_in_order;
use crate::planning::{
    GoalSetting, Models, Worlds, pose_error, start_and_goal, tolerance_share, within,
};
use crate::report::{CandidateEnding, CandidateRanking};
use crate::{EvalError, Progress};

/// A pair's start and goal, as the planner is given them.
struct Scene {
    world: u64,
    start: Pose2,
    goal: Pose2,
    start_frame: Frame,
    goal_frame: Frame,
}

/// Scores the ranking on the easy pairs of `worlds` (the same starts and goals as the easy
/// setting's).
pub(crate) fn candidate_ranking(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    worlds: &Worlds<'_>,
    models: &Models<'_>,
    progress: Progress<'_>,
) -> Result<CandidateRanking, EvalError> {
    let planner = &config.planner;
    let stage = format!("candidate ranking ({})", worlds.protocol);
    let pairs: Vec<usize> = (0..config.pairs).collect();
    let per_pair = map_in_order(&pairs, &stage, progress, |&pair| {
        rank_pair(sim_config, collector, config, worlds, models, pair)
    })?;
    // Per selection (by the model, by the encoder from the true frames, by their image alone,
    // by the random-init model, the truly best): the endings; then those of every candidate.
    let mut chosen: [Vec<(f64, f64)>; 5] = Default::default();
    let mut every = Vec::new();
    let mut correlations: [Vec<f64>; 4] = Default::default();
    for ranked in per_pair {
        for (slot, ending) in ranked.chosen.into_iter().enumerate() {
            chosen[slot].push(ending);
        }
        every.extend(ranked.endings);
        for (slot, correlation) in ranked.correlations.into_iter().enumerate() {
            correlations[slot].extend(correlation);
        }
    }
    let ending = |endings: &[(f64, f64)]| ending_of(endings, config);
    let mean = |values: &[f64]| {
        if values.is_empty() {
            f64::NAN
        } else {
            values.iter().sum::<f64>() / values.len() as f64
        }
    };
    let [by_model, by_encoder, by_image, by_random_init, best] = &chosen;
    Ok(CandidateRanking {
        pairs: config.pairs,
        candidates: planner.samples,
        steps: planner.horizon * planner.action_repeat,
        chosen_by_model: ending(by_model),
        chosen_by_encoder: ending(by_encoder),
        chosen_by_image: ending(by_image),
        chosen_by_random_init: ending(by_random_init),
        best: ending(best),
        every_candidate: ending(&every),
        predicted_vs_seen_rank_correlation: mean(&correlations[0]),
        predicted_vs_truth_rank_correlation: mean(&correlations[1]),
        seen_vs_truth_rank_correlation: mean(&correlations[2]),
        image_vs_truth_rank_correlation: mean(&correlations[3]),
    })
}

/// One pair's candidates: the ending of each selection's choice (in the order of
/// `candidate_ranking`'s), every candidate's ending, and the rank correlations.
struct RankedPair {
    chosen: [(f64, f64); 5],
    endings: Vec<(f64, f64)>,
    correlations: [Option<f64>; 4],
}

/// Drives every candidate of pair `pair` in its own simulator, rebuilt as the pair's world for
/// the scene and for every candidate.
fn rank_pair(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    config: &EvalConfig,
    worlds: &Worlds<'_>,
    models: &Models<'_>,
    pair: usize,
) -> Result<RankedPair, EvalError> {
    let planner = &config.planner;
    let mut sim = Sim::new(sim_config)?;
    let (world, seed) = worlds.pair(config, pair);
    let scene = scene(&mut sim, sim_config, collector, world, seed)?;
    let candidates = draw_candidates(planner, seed);
    let (encoder, dynamics) = models.trained;
    let goal = goal_embedding(encoder, &scene, config)?;
    let predicted = predicted_distances(encoder, dynamics, &scene, &candidates, config)?;
    let (random_encoder, random_dynamics) = models.random_init;
    let random_init =
        predicted_distances(random_encoder, random_dynamics, &scene, &candidates, config)?;
    let mut endings = Vec::with_capacity(candidates.len());
    let mut seen = Vec::with_capacity(candidates.len());
    let mut seen_image = Vec::with_capacity(candidates.len());
    let goal_frame_proprio = &scene.goal_frame.proprio;
    for decisions in &candidates {
        let (last, end) = drive(&mut sim, sim_config, collector, &scene, decisions, config)?;
        endings.push(pose_error(&end, &scene.goal));
        let there = encoder.embed(&last.image, &last.proprio)?;
        // With the predicted proprio, the goal as a perfect proprio head would make it:
        // at the proprio truly felt there.
        let goal_there = if at_predicted_proprio(config.goal_proprio, dynamics) {
            encoder.embed(&scene.goal_frame.image, &last.proprio)?
        } else {
            goal.clone()
        };
        seen.push(f64::from(goal_distance(&there, &goal_there)));
        // The image's part: the final frame embedded at rest, as the goal is.
        let at_rest = encoder.embed(&last.image, goal_frame_proprio)?;
        seen_image.push(f64::from(goal_distance(&at_rest, &goal)));
    }
    let truth: Vec<f64> = endings
        .iter()
        .map(|&e| tolerance_share(e, config))
        .collect();
    let chosen = [
        least(&predicted),
        least(&seen),
        least(&seen_image),
        least(&random_init),
        least(&truth),
    ]
    .map(|index| endings[index]);
    let correlations = [
        (&predicted, &seen),
        (&predicted, &truth),
        (&seen, &truth),
        (&seen_image, &truth),
    ]
    .map(|(a, b)| rank_correlation(a, b));
    Ok(RankedPair {
        chosen,
        endings,
        correlations,
    })
}

/// The easy pair's start and goal in `world`, and the frames the camera sees at each (at rest),
/// as an attempt sets them up.
fn scene(
    sim: &mut Sim,
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    world: u64,
    seed: u64,
) -> Result<Scene, EvalError> {
    sim.reset(world)?;
    let (start, goal) = start_and_goal(sim, GoalSetting::Easy, seed)?;
    let mut eyes = Eyes::new(collector, sim_config);
    sim.set_robot_pose(goal)?;
    let goal_frame = eyes.see(&sim.step(&Action::STOP))?;
    let goal = sim.ground_truth().robot_pose;
    sim.set_robot_pose(start)?;
    let start_frame = eyes.see(&sim.step(&Action::STOP))?;
    let start = sim.ground_truth().robot_pose;
    Ok(Scene {
        world,
        start,
        goal,
        start_frame,
        goal_frame,
    })
}

/// Drives `decisions` (each held `action_repeat` periods) from the scene's start in its world
/// as it was (`sim` rebuilt as that world): the last frame the camera saw and where the robot
/// ended.
fn drive(
    sim: &mut Sim,
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    scene: &Scene,
    decisions: &[[f32; ACTION_DIM]],
    config: &EvalConfig,
) -> Result<(Frame, Pose2), EvalError> {
    sim.reset(scene.world)?;
    sim.set_robot_pose(scene.start)?;
    let mut eyes = Eyes::new(collector, sim_config);
    let mut last = eyes.see(&sim.step(&Action::STOP))?;
    for action in hold_decisions(decisions, config.planner.action_repeat) {
        last = eyes.see(&sim.step(&Action::new(action[0], action[1])))?;
    }
    Ok((last, sim.ground_truth().robot_pose))
}

/// Whether the goal is compared at the predicted proprio: under `goal_proprio = "predicted"`
/// with dynamics that carry the proprio head. Without the head the planner plans to the goal at
/// rest, and so is it scored.
fn at_predicted_proprio(mode: GoalProprio, dynamics: &DynamicsSnapshot) -> bool {
    mode == GoalProprio::Predicted && dynamics.predicts_proprio()
}

/// The goal image embedded as the planner embeds it at the start: with the proprio at the
/// goal (at rest; also under `goal_proprio = "predicted"`, where it is the goal's place), or
/// the robot's current one under `"current"`.
fn goal_embedding(
    encoder: &EncoderSnapshot,
    scene: &Scene,
    config: &EvalConfig,
) -> Result<Vec<f32>, EvalError> {
    let proprio = match config.goal_proprio {
        GoalProprio::Current => &scene.start_frame.proprio,
        GoalProprio::Rest | GoalProprio::Predicted => &scene.goal_frame.proprio,
    };
    Ok(encoder.embed(&scene.goal_frame.image, proprio)?)
}

/// The model's predicted goal distance at the end of every candidate, rolled out from the
/// start frame embedded as the planner embeds it, to the goal as the planner sets it
/// (`goal_proprio`).
fn predicted_distances(
    encoder: &EncoderSnapshot,
    dynamics: &DynamicsSnapshot,
    scene: &Scene,
    candidates: &[Vec<[f32; ACTION_DIM]>],
    config: &EvalConfig,
) -> Result<Vec<f64>, EvalError> {
    let start = encoder.embed(&scene.start_frame.image, &scene.start_frame.proprio)?;
    let expanded: Vec<Vec<[f32; ACTION_DIM]>> = candidates
        .iter()
        .map(|decisions| hold_decisions(decisions, config.planner.action_repeat).collect())
        .collect();
    let predicted = rollout(dynamics, &start, &expanded, None)?.predicted;
    let finals: Vec<&[f32]> = predicted
        .iter()
        .map(|steps| steps.last().map_or(&[][..], Vec::as_slice))
        .collect();
    let embedding;
    let features;
    let goal = if at_predicted_proprio(config.goal_proprio, dynamics) {
        features = encoder.image_features(&scene.goal_frame.image)?;
        Goal::ImageAtPredictedProprio {
            encoder,
            image_features: &features,
        }
    } else {
        embedding = goal_embedding(encoder, scene, config)?;
        Goal::Embedding(&embedding)
    };
    Ok(goal_distances(dynamics, goal, &finals)?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// `samples` decision sequences as the planner's first iteration draws them around standing
/// still (the first stands still), seeded by the pair.
fn draw_candidates(planner: &PlannerConfig, seed: u64) -> Vec<Vec<[f32; ACTION_DIM]>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_cafe);
    let (min, max) = (planner.min_action, planner.max_action);
    let still = vec![[0.0; ACTION_DIM]; planner.horizon];
    let std = vec![max.map(|m| planner.initial_std * m); planner.horizon];
    let mut candidates = vec![still.clone()];
    while candidates.len() < planner.samples {
        candidates.push(sample_decisions(&still, &std, min, max, &mut rng));
    }
    candidates
}

/// Where a choice of candidates ended: the share within the tolerances and the mean errors; NaN
/// for none.
fn ending_of(endings: &[(f64, f64)], config: &EvalConfig) -> CandidateEnding {
    let n = endings.len() as f64;
    let reached = endings.iter().filter(|&&e| within(e, config)).count();
    CandidateEnding {
        reached_rate: reached as f64 / n,
        position_error_m: endings.iter().map(|e| e.0).sum::<f64>() / n,
        yaw_error_deg: endings.iter().map(|e| e.1).sum::<f64>() / n,
    }
}

/// The index of the least value (NaN last); 0 for none.
fn least(values: &[f64]) -> usize {
    (0..values.len())
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0)
}

/// Spearman's rank correlation of two equally long lists (ties share their mean rank); `None`
/// for fewer than two values or where either list does not vary.
pub(crate) fn rank_correlation(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// The rank of every value (0-based, ties the mean of their ranks).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use autodidact_learn::{BackendKind, TrainerConfig};

    use super::*;

    #[test]
    fn the_goal_is_scored_at_the_predicted_proprio_only_with_the_proprio_head() {
        let config = TrainerConfig::for_inputs(16, 16, 2);
        let device = BackendKind::Flex.device();
        let model = &config.model;
        let headless = DynamicsSnapshot::new(
            &model.dynamics().init(&device),
            model.embed_dim(),
            config.action_scale,
            1,
            &device,
        );
        let with_head = DynamicsSnapshot::new(
            &model.dynamics().init(&device),
            model.embed_dim(),
            config.action_scale,
            1,
            &device,
        )
        .with_proprio_head(&model.proprio_head().init(&device));
        assert!(at_predicted_proprio(GoalProprio::Predicted, &with_head));
        // Without the head the planner plans to the goal at rest: so is the ranking scored.
        assert!(!at_predicted_proprio(GoalProprio::Predicted, &headless));
        for mode in [GoalProprio::Rest, GoalProprio::Current] {
            assert!(!at_predicted_proprio(mode, &with_head));
        }
    }

    #[test]
    fn rank_correlation_is_one_for_any_rising_relation_and_minus_one_for_a_falling_one() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let squares: Vec<f64> = a.iter().map(|x| x * x).collect();
        let falling: Vec<f64> = a.iter().map(|x| -x.powi(3)).collect();
        assert!((rank_correlation(&a, &squares).expect("varies") - 1.0).abs() < 1e-12);
        assert!((rank_correlation(&a, &falling).expect("varies") + 1.0).abs() < 1e-12);
        assert_eq!(rank_correlation(&a, &[2.0; 5]), None, "b does not vary");
        assert_eq!(rank_correlation(&[1.0], &[1.0]), None);
    }

    #[test]
    fn tied_values_share_their_mean_rank() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![2.5, 0.0, 2.5, 1.0]);
    }

    #[test]
    fn candidates_are_drawn_in_the_planner_s_box_and_the_first_stands_still() {
        let planner = PlannerConfig::default();
        let candidates = draw_candidates(&planner, 7);
        assert_eq!(candidates.len(), planner.samples);
        assert!(candidates[0].iter().all(|a| *a == [0.0; ACTION_DIM]));
        for decisions in &candidates {
            assert_eq!(decisions.len(), planner.horizon);
            for a in decisions {
                for ((value, min), max) in a.iter().zip(planner.min_action).zip(planner.max_action)
                {
                    assert!((min..=max).contains(value), "{value} outside {min}..={max}");
                }
            }
        }
        assert_eq!(candidates, draw_candidates(&planner, 7), "seeded");
        assert_ne!(candidates, draw_candidates(&planner, 8));
    }
}
