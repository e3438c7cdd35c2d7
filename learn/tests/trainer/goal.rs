//! The planner's goal as an image fused with the proprio the model predicts
//! (`plan::Goal::ImageAtPredictedProprio`): what it scores, that the plan scores the same, and
//! that dynamics without the proprio head refuse it.

use autodidact_learn::plan::{Goal, goal_distance, goal_distances, hold_decisions};

use super::*;

/// The distance to a goal image at the predicted proprio is the goal image embedded by the
/// encoder's own path at the proprio the dynamics' head reads from each state, and a plan
/// towards it reports those distances at its start and its end.
#[test]
fn a_goal_image_at_the_predicted_proprio_is_scored_as_the_image_embedded_at_that_proprio() {
    let _serial = serial();
    let mut trainer = filled_trainer(small_config(5));
    for _ in 0..3 {
        trainer.step().expect("step");
    }
    let encoder = trainer.snapshot();
    let dynamics = trainer.dynamics_snapshot();
    assert!(
        dynamics.predicts_proprio(),
        "a model with proprio serves its head"
    );
    let (images, proprio) = probe_inputs();
    let start = encoder.embed(&images[0], &proprio[0]).expect("start");
    let goal_image = &images[5];
    let features = encoder.image_features(goal_image).expect("features");
    let goal = Goal::ImageAtPredictedProprio {
        encoder: &encoder,
        image_features: &features,
    };

    let mut states = vec![start.clone()];
    for command in [[0.4, -1.5], [0.0, 0.0], [0.2, 1.0]] {
        states.push(end_of(&dynamics, &start, command, 24));
    }
    let states: Vec<&[f32]> = states.iter().map(Vec::as_slice).collect();
    let distances = goal_distances(&dynamics, goal, &states).expect("distances");
    let read = dynamics.predicted_proprio(&states).expect("proprio");
    assert_eq!(read.len(), states.len());
    for ((state, distance), proprio) in states.iter().zip(&distances).zip(&read) {
        assert_eq!(proprio.len(), PROPRIO_DIM);
        let embedded = encoder.embed(goal_image, proprio).expect("embed");
        let expected = goal_distance(state, &embedded);
        assert!(
            (distance - expected).abs() < 1e-4,
            "{distance} against {expected}"
        );
    }
    assert!(
        distances.windows(2).any(|w| w[0] != w[1]),
        "the states are scored apart: {distances:?}"
    );

    let config = PlannerConfig::default();
    let mut planner = LatentPlanner::new(config.clone()).expect("planner");
    let plan = planner.plan_towards(&dynamics, &start, goal).expect("plan");
    assert!((plan.start_distance - distances[0]).abs() < 1e-4);
    let held: Vec<[f32; 2]> = hold_decisions(&plan.decisions, config.action_repeat).collect();
    let end = dynamics
        .rollout(&start, &[held])
        .expect("rollout")
        .remove(0)
        .pop()
        .expect("a step");
    let end_distance = goal_distances(&dynamics, goal, &[&end]).expect("distance")[0];
    assert!(
        (plan.predicted_final_distance - end_distance).abs() < 1e-4,
        "{} against {end_distance}",
        plan.predicted_final_distance
    );
    let again = LatentPlanner::new(config)
        .expect("planner")
        .plan_towards(&dynamics, &start, goal)
        .expect("plan");
    assert_eq!(plan, again, "same seed, same plan");
}

/// Dynamics without the proprio head (as weights packed without it are) refuse a goal at
/// the predicted proprio with a clear error instead of scoring something else.
#[test]
fn dynamics_without_the_proprio_head_refuse_a_goal_at_the_predicted_proprio() {
    let _serial = serial();
    let config = small_config(5);
    let trainer = Trainer::new(config.clone()).expect("trainer");
    let encoder = trainer.snapshot();
    let device = BackendKind::Flex.device();
    let headless = DynamicsSnapshot::new(
        &config.model.dynamics().init(&device),
        config.model.embed_dim(),
        config.action_scale,
        1,
        &device,
    );
    assert!(!headless.predicts_proprio());
    // A head the forward objective does not train is not served.
    let mut untrained = config.clone();
    untrained.objectives.forward.proprio_weight = 0.0;
    let untrained = Trainer::new(untrained).expect("trainer");
    assert!(!untrained.dynamics_snapshot().predicts_proprio());
    let (images, proprio) = probe_inputs();
    let start = encoder.embed(&images[0], &proprio[0]).expect("start");
    let features = encoder.image_features(&images[1]).expect("features");
    let goal = Goal::ImageAtPredictedProprio {
        encoder: &encoder,
        image_features: &features,
    };
    let error = goal_distances(&headless, goal, &[&start]).expect_err("no head");
    assert!(
        matches!(&error, LearnError::BadInput(m) if m.contains("no proprio head")),
        "{error}"
    );
    let mut planner = LatentPlanner::new(PlannerConfig::default()).expect("planner");
    assert!(planner.plan_towards(&headless, &start, goal).is_err());
    assert!(
        encoder.fuse(&features[1..], &[&proprio[0]]).is_err(),
        "features of another length"
    );
    let mut broken = features.clone();
    broken[0] = f32::NAN;
    let error = encoder
        .fuse(&broken, &[&proprio[0]])
        .expect_err("non-finite");
    assert!(error.to_string().contains("non-finite"), "{error}");
}
