//! The topological memory: routes follow what the robot observed, shortcuts join places seen
//! twice, and bad input is refused.

use autodidact_learn::memory::EdgeKind;
use autodidact_learn::{LearnError, MemoryConfig, MemoryGraph};

/// A unit embedding for a place on a circle: nearby places have nearby embeddings.
fn place(angle: f32) -> Vec<f32> {
    vec![angle.cos(), angle.sin(), 0.0, 0.0]
}

fn config(stride: usize, hops: usize) -> MemoryConfig {
    MemoryConfig {
        stride,
        subgoal_hops: hops,
        ..MemoryConfig::default()
    }
}

#[test]
fn memory_routes_along_the_observed_drive_with_a_subgoal_a_few_hops_ahead() {
    // One episode driving a half circle in 60 steps.
    let step = std::f32::consts::PI / 60.0;
    let drive: Vec<Vec<f32>> = (0..=60).map(|i| place(i as f32 * step)).collect();
    let graph = MemoryGraph::build(&drive, &[7; 61], config(2, 3)).expect("graph");
    assert_eq!(graph.nodes().len(), 31, "every second frame");
    assert!(graph.nodes().iter().all(|n| n.episode == 7));
    let (observed, _) = graph.edge_counts();
    assert_eq!(observed, 30);

    let route = graph
        .route(&place(0.01), &place(60.0 * step), None)
        .expect("route")
        .expect("connected");
    assert_eq!(route.nodes.first(), Some(&0));
    assert_eq!(route.nodes.last(), Some(&30));
    assert!(
        route.nodes.windows(2).all(|w| w[1] == w[0] + 1),
        "follows the drive: {:?}",
        route.nodes
    );
    assert_eq!(route.subgoal, Some(3), "three hops along");

    // Near the goal, the goal itself is the target.
    let near = graph
        .route(&place(58.0 * step), &place(60.0 * step), None)
        .expect("route")
        .expect("connected");
    assert_eq!(near.subgoal, None);
}

#[test]
fn memory_joins_a_place_seen_in_two_episodes_and_routes_across() {
    // Episode 1 drives from angle 0 to 1, episode 2 from 1 on to 2: they meet only at angle 1,
    // where both saw the same place.
    let step = 0.02f32;
    let first: Vec<Vec<f32>> = (0..=50).map(|i| place(i as f32 * step)).collect();
    let second: Vec<Vec<f32>> = (0..=50).map(|i| place(1.0 + i as f32 * step)).collect();
    let embeddings: Vec<Vec<f32>> = first.iter().chain(&second).cloned().collect();
    let episodes: Vec<u64> = [1u64; 51].iter().chain(&[2u64; 51]).copied().collect();
    let graph = MemoryGraph::build(&embeddings, &episodes, config(1, 2)).expect("graph");
    let (observed, shortcuts) = graph.edge_counts();
    assert_eq!(observed, 100, "no observed edge between episodes");
    assert!(shortcuts > 0, "the shared place is joined");
    let route = graph
        .route(&place(0.0), &place(2.0), None)
        .expect("route")
        .expect("the two episodes are joined");
    let episodes_on_route: Vec<u64> = route
        .nodes
        .iter()
        .map(|&n| graph.nodes()[n].episode)
        .collect();
    assert_eq!(episodes_on_route.first(), Some(&1));
    assert_eq!(episodes_on_route.last(), Some(&2));
    assert!(
        route.nodes.len() <= 103,
        "no detour: {} nodes",
        route.nodes.len()
    );
    let crossing = route
        .nodes
        .windows(2)
        .find(|w| graph.nodes()[w[0]].episode != graph.nodes()[w[1]].episode)
        .expect("a crossing");
    let edge = graph
        .edges(crossing[0])
        .iter()
        .find(|e| e.to == crossing[1])
        .expect("edge");
    assert_eq!(edge.kind, EdgeKind::Shortcut);
}

#[test]
fn memory_without_a_link_between_places_has_no_route() {
    // Two drives far apart on the circle, never meeting.
    let a: Vec<Vec<f32>> = (0..20).map(|i| place(i as f32 * 0.01)).collect();
    let b: Vec<Vec<f32>> = (0..20).map(|i| place(3.0 + i as f32 * 0.01)).collect();
    let embeddings: Vec<Vec<f32>> = a.iter().chain(&b).cloned().collect();
    let episodes: Vec<u64> = (0..40).map(|i| i / 20).collect();
    let graph = MemoryGraph::build(&embeddings, &episodes, config(1, 2)).expect("graph");
    assert_eq!(
        graph.route(&place(0.0), &place(3.1), None).expect("route"),
        None
    );
}

#[test]
fn memory_refuses_bad_input_with_an_error() {
    let good = vec![place(0.0), place(0.1), place(0.2)];
    for (embeddings, episodes, what) in [
        (good.clone(), vec![0, 0], "fewer episodes than embeddings"),
        (
            vec![place(0.0), vec![1.0, f32::NAN, 0.0, 0.0]],
            vec![0, 0],
            "NaN",
        ),
        (vec![place(0.0), vec![1.0, 0.0]], vec![0, 0], "ragged"),
        (vec![place(0.0)], vec![0], "one frame"),
    ] {
        assert!(
            matches!(
                MemoryGraph::build(&embeddings, &episodes, MemoryConfig::default()),
                Err(LearnError::BadInput(_))
            ),
            "{what}"
        );
    }
    assert!(matches!(
        MemoryGraph::build(&good, &[0, 0, 0], config(0, 1)),
        Err(LearnError::InvalidConfig(_))
    ));
    let graph = MemoryGraph::build(&good, &[0, 0, 0], MemoryConfig::default()).expect("graph");
    assert!(matches!(
        graph.route(&[1.0, 0.0], &place(0.2), None),
        Err(LearnError::BadInput(_))
    ));
}

#[test]
fn memory_tracking_keeps_the_robot_near_where_it_was_unless_elsewhere_is_clearly_better() {
    // Two laps over the same angles that look slightly different (third component), driven in
    // one episode: lap 1 is nodes 0..100, lap 2 nodes 100..200.
    let lap = |angle: f32, look: f32| vec![angle.cos(), angle.sin(), look, 0.0];
    let drive: Vec<Vec<f32>> = (0..200)
        .map(|i| lap((i % 100) as f32 * 0.01, if i < 100 { 0.0 } else { 0.05 }))
        .collect();
    let config = MemoryConfig {
        stride: 1,
        track_hops: 10,
        ..MemoryConfig::default()
    };
    let graph = MemoryGraph::build(&drive, &[0; 200], config).expect("graph");
    assert_eq!(graph.edge_counts().1, 0, "the laps are not joined");

    // A frame a little nearer to lap 2 than to lap 1: placed anew, it is on lap 2; tracked from
    // lap 1, where the robot was a moment ago, it stays on lap 1.
    let ambiguous = lap(0.5, 0.0255);
    assert_eq!(graph.track(&ambiguous, None).expect("track").0, 150);
    assert_eq!(graph.track(&ambiguous, Some(48)).expect("track").0, 50);
    // A frame that is clearly elsewhere is placed there, tracking or not.
    let elsewhere = lap(0.9, 0.05);
    assert_eq!(graph.track(&elsewhere, Some(48)).expect("track").0, 190);
    // The route starts where tracking placed the robot.
    let route = graph
        .route(&ambiguous, &lap(0.7, 0.0), Some(48))
        .expect("route")
        .expect("connected");
    assert_eq!(route.nodes.first(), Some(&50));
    assert_eq!(route.nodes.last(), Some(&70));
}
