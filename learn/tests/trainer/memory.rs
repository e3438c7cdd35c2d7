//! The topological memory: routes follow what the robot observed, shortcuts join places seen
//! twice, and bad input is refused.

use autodidact_learn::memory::{EdgeKind, Follow, FollowConfig, PathFollower};
use autodidact_learn::{LearnError, Localiser, MemoryConfig, MemoryGraph, OdometryPose};

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
    let (observed, _, _) = graph.edge_counts();
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
    let (observed, shortcuts, _) = graph.edge_counts();
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

/// Sequence matching: with `shortcut_sequence`, a place passed again (in the same order or the
/// reverse one) is joined, neighbours and all, and a single view that looks like a place
/// elsewhere (a striped wall seen from close by) is not; without it, the look-alike is joined.
#[test]
fn a_shortcut_asks_the_neighbours_of_both_places_when_sequence_matching_is_on() {
    let step = 0.02f32;
    // Episode 1 drives from angle 0 to 1; episode 2 back from 1 to 0 over the same places;
    // episode 3 drives elsewhere (angles 3 to 4), and one of its views looks like angle 0.5.
    let first: Vec<Vec<f32>> = (0..=50).map(|i| place(i as f32 * step)).collect();
    let second: Vec<Vec<f32>> = (0..=50).map(|i| place(1.0 - i as f32 * step)).collect();
    let mut third: Vec<Vec<f32>> = (0..=50).map(|i| place(3.0 + i as f32 * step)).collect();
    let look_alike = 25;
    third[look_alike] = place(0.5);
    let embeddings: Vec<Vec<f32>> = first.iter().chain(&second).chain(&third).cloned().collect();
    let episodes: Vec<u64> = (0..153).map(|i| 1 + i / 51).collect();
    let look_alike = 102 + look_alike;
    let shortcuts_of = |graph: &MemoryGraph, node: usize| {
        graph
            .edges(node)
            .iter()
            .filter(|e| e.kind == EdgeKind::Shortcut)
            .count()
    };
    let unchecked = MemoryGraph::build(&embeddings, &episodes, config(1, 2)).expect("graph");
    assert!(
        shortcuts_of(&unchecked, look_alike) > 0,
        "one view alone joins"
    );

    let checked = MemoryGraph::build(
        &embeddings,
        &episodes,
        MemoryConfig {
            shortcut_sequence: 2,
            ..config(1, 2)
        },
    )
    .expect("graph");
    assert_eq!(
        shortcuts_of(&checked, look_alike),
        0,
        "its neighbours disagree"
    );
    // The places passed again, in reverse order, are joined all along (the ends of a drive,
    // short of neighbours on one side, are asked on the other).
    for node in 0..=50 {
        assert!(
            checked
                .edges(node)
                .iter()
                .any(|e| e.kind == EdgeKind::Shortcut && (51..102).contains(&e.to)),
            "place {node} of the first drive is joined to the second"
        );
    }
    let route = checked
        .route(&place(0.0), &place(1.0 - 0.1), None)
        .expect("route")
        .expect("joined");
    assert!(route.nodes.len() <= 52, "{:?}", route.nodes);
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

/// The ranking of every place (the eval's account of where a goal's own place comes) is the
/// one whose first few are the candidates the goal is placed among, and refuses what they
/// refuse.
#[test]
fn memory_ranks_every_place_in_the_order_its_candidates_come_first() {
    let angles = [0.9_f32, 0.1, 0.5, 0.3, 1.4, 0.2];
    let embeddings: Vec<Vec<f32>> = angles.iter().map(|&a| place(a)).collect();
    let graph = MemoryGraph::build(&embeddings, &[0; 6], config(1, 2)).expect("graph");
    let ranked = graph.ranked(&place(0.27)).expect("ranked");
    let nodes: Vec<usize> = ranked.iter().map(|(node, _)| *node).collect();
    let by_frame: Vec<usize> = nodes.iter().map(|&n| graph.nodes()[n].frame).collect();
    assert_eq!(by_frame, [3, 5, 1, 2, 0, 4], "nearest angle first");
    assert!(ranked.windows(2).all(|w| w[0].1 <= w[1].1));
    let candidates = graph.candidates(&place(0.27)).expect("candidates");
    assert_eq!(candidates, ranked[..candidates.len()]);
    assert!(matches!(
        graph.ranked(&[1.0, f32::NAN, 0.0, 0.0]),
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

/// A drive along a straight corridor, one frame per 2 cm from x = 0 to 3 m, facing +x. What the
/// camera sees at `x` is `view(x)`; the last half metre looks exactly like the first (a
/// look-alike place 2.5 m away).
fn corridor() -> (Vec<Vec<f32>>, Vec<Option<OdometryPose>>) {
    let xs: Vec<f64> = (0..=150).map(|i| f64::from(i) * 0.02).collect();
    let embeddings = xs.iter().map(|&x| corridor_view(x)).collect();
    let odometry = xs
        .iter()
        .map(|&x| Some(OdometryPose::new(x, 0.0, 0.0)))
        .collect();
    (embeddings, odometry)
}

fn corridor_view(x: f64) -> Vec<f32> {
    let seen = if x >= 2.5 { x - 2.5 } else { x } as f32;
    place(seen)
}

#[test]
fn memory_with_odometry_places_the_robot_where_its_views_agree_with_its_wheels() {
    let (embeddings, odometry) = corridor();
    let config = MemoryConfig {
        stride: 1,
        candidates: 2,
        use_odometry: true,
        ..MemoryConfig::default()
    };
    let graph =
        MemoryGraph::build_with_odometry(&embeddings, &[3; 151], &odometry, config).expect("graph");
    assert!(graph.has_odometry());
    // The robot stands at x = 0.2 m of the corridor. Its own odometry frame is elsewhere:
    // its odometry reads (5, -1) facing -y there, and moves with it.
    let origin = OdometryPose::new(5.0, -1.0, -std::f64::consts::FRAC_PI_2);
    let robot_odometry = |x: f64| origin.compose(&OdometryPose::new(x - 0.2, 0.0, 0.0));
    let mut localiser = Localiser::new();
    // Standing at 0.2 m, the view is as near to 0.2 m as to 2.7 m: ambiguous.
    let first = localiser
        .observe(&graph, &corridor_view(0.2), &robot_odometry(0.2))
        .expect("observe")
        .expect("placed");
    assert_eq!(first.support, 1, "one vote for each look-alike");
    // Driving on to 0.9 m, every view past 0.5 m is unique and agrees with the true start.
    let mut placed = first;
    for i in 0..=35 {
        let x = 0.2 + f64::from(i) * 0.02;
        placed = localiser
            .observe(&graph, &corridor_view(x), &robot_odometry(x))
            .expect("observe")
            .expect("placed");
    }
    let truth = OdometryPose::new(0.9, 0.0, 0.0);
    assert!(
        placed.pose.distance(&truth) < 0.03 && placed.pose.turn(&truth) < 0.01,
        "placed at {:?}",
        placed.pose
    );
    assert_eq!(placed.node, 45, "the node at 0.9 m");
    assert_eq!(placed.episode, 3);
    assert!(placed.support > 30, "support {}", placed.support);

    // Odometry that is not a pose is refused, as is a query of the wrong size.
    let bad = OdometryPose::new(f64::NAN, 0.0, 0.0);
    assert!(matches!(
        localiser.observe(&graph, &corridor_view(1.0), &bad),
        Err(LearnError::BadInput(_))
    ));
    assert!(matches!(
        localiser.observe(&graph, &[1.0, 0.0], &truth),
        Err(LearnError::BadInput(_))
    ));
}

#[test]
fn memory_with_odometry_places_a_goal_view_where_several_remembered_views_agree() {
    // Four frames of one episode: one far away that looks most like the goal view, three at
    // one place (within a few centimetres) that look a little less like it.
    let goal = place(1.0);
    let near = |d: f32| place(1.0 + d);
    let embeddings = vec![
        near(0.001),
        near(0.01),
        near(0.012),
        near(0.014),
        place(2.0),
    ];
    let odometry = [
        (3.0, 0.0),
        (0.0, 0.0),
        (0.02, 0.0),
        (0.04, 0.01),
        (1.5, 1.5),
    ]
    .map(|(x, y)| Some(OdometryPose::new(x, y, 0.0)))
    .to_vec();
    let config = MemoryConfig {
        stride: 1,
        candidates: 4,
        use_odometry: true,
        ..MemoryConfig::default()
    };
    let with = MemoryGraph::build_with_odometry(&embeddings, &[0; 5], &odometry, config.clone())
        .expect("graph");
    assert_eq!(
        with.place(&goal).expect("place").0,
        1,
        "the agreeing three win"
    );
    // Without odometry, the nearest view wins.
    let without = MemoryGraph::build(&embeddings, &[0; 5], config).expect("graph");
    assert_eq!(without.place(&goal).expect("place").0, 0);
}

#[test]
fn memory_with_odometry_links_a_place_passed_twice_and_routes_in_metres() {
    // One episode drives a 1 m square loop (50 frames per side, 2 cm apart) and ends where it
    // began, facing the way it started. Every view is different.
    let mut poses = Vec::new();
    for side in 0..4 {
        let yaw = f64::from(side) * std::f64::consts::FRAC_PI_2;
        let corner = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)][side as usize];
        for i in 0..50 {
            let d = f64::from(i) * 0.02;
            poses.push(OdometryPose::new(
                corner.0 + d * yaw.cos(),
                corner.1 + d * yaw.sin(),
                yaw,
            ));
        }
    }
    poses.push(OdometryPose::new(0.0, 0.0, 0.0));
    let embeddings: Vec<Vec<f32>> = (0..poses.len()).map(|i| place(i as f32 * 0.03)).collect();
    let odometry: Vec<Option<OdometryPose>> = poses.iter().copied().map(Some).collect();
    let config = MemoryConfig {
        stride: 1,
        subgoal_hops: 3,
        use_odometry: true,
        ..MemoryConfig::default()
    };
    let graph =
        MemoryGraph::build_with_odometry(&embeddings, &[0; 201], &odometry, config).expect("graph");
    let (observed, shortcuts, links) = graph.edge_counts();
    assert_eq!(observed, 200);
    assert_eq!(
        shortcuts, 0,
        "within an episode with odometry, odometry decides"
    );
    assert!(links > 0);
    let edge = graph
        .edges(200)
        .iter()
        .find(|e| e.to == 0)
        .expect("end joined to start");
    assert_eq!(edge.kind, EdgeKind::Odometry);
    // From 0.2 m before the end (on the last side) to 0.2 m after the start: across the joined
    // place, 0.4 m, not 3.6 m back round the loop.
    let route = graph
        .route_between((190, 0.0), (10, 0.0))
        .expect("connected");
    assert!(route.nodes.len() <= 22, "route {:?}", route.nodes);
    assert_eq!(route.subgoal, Some(route.nodes[3]));
    // Observed steps cost their metres: 2 cm.
    let step = graph.edges(5).iter().find(|e| e.to == 6).expect("step");
    assert!((step.cost - 0.02).abs() < 1e-4, "cost {}", step.cost);
}

#[test]
fn a_route_is_laid_out_by_the_odometry_between_its_places_and_a_shortcut_joins_one_place() {
    // Episode 1 drives 1 m along +x (its odometry starts at the origin); episode 2, with its
    // own odometry frame (origin at (7, 7), facing +y), sees the end of it again and drives on
    // along a quarter circle to the left, 1 m long. They meet only by what they saw.
    let first: Vec<OdometryPose> = (0..=50)
        .map(|i| OdometryPose::new(f64::from(i) * 0.02, 0.0, 0.0))
        .collect();
    let other_origin = OdometryPose::new(7.0, 7.0, std::f64::consts::FRAC_PI_2);
    let radius = 2.0 / std::f64::consts::PI;
    let arc = |s: f64| {
        let turned = s / radius;
        OdometryPose::new(radius * turned.sin(), radius * (1.0 - turned.cos()), turned)
    };
    let second: Vec<OdometryPose> = (0..=50)
        .map(|i| other_origin.compose(&arc(f64::from(i) * 0.02)))
        .collect();
    let step = 0.02f32;
    let embeddings: Vec<Vec<f32>> = (0..=50)
        .map(|i| place(i as f32 * step))
        .chain((0..=50).map(|i| place(1.0 + i as f32 * step)))
        .collect();
    let episodes: Vec<u64> = [1u64; 51].iter().chain(&[2u64; 51]).copied().collect();
    let odometry: Vec<Option<OdometryPose>> =
        first.iter().chain(&second).copied().map(Some).collect();
    let graph = MemoryGraph::build(&embeddings, &episodes, config(1, 2)).expect("graph");
    let route = graph
        .route(&place(0.0), &place(2.0), None)
        .expect("route")
        .expect("connected");
    let path = graph
        .route_path(&route, |node| odometry[graph.nodes()[node].frame])
        .expect("every place has odometry");
    assert_eq!(path.len(), route.nodes.len());
    assert_eq!(
        path[0],
        OdometryPose::default(),
        "relative to the robot's place"
    );
    // 1 m ahead, then a quarter circle to the left: whatever the odometry frames of the two
    // drives, the end is where the arc ends after the straight, give or take a step skipped by
    // a shortcut (2 cm, 2°).
    let end = path[path.len() - 1];
    let truth = OdometryPose::new(1.0, 0.0, 0.0).compose(&arc(1.0));
    assert!(
        end.distance(&truth) < 0.05 && end.turn(&truth) < 0.05,
        "ends at {end:?}"
    );
    // Without the poses the path cannot be laid out.
    assert_eq!(graph.route_path(&route, |_| None), None);
}

#[test]
fn a_shortcut_over_a_short_drive_moves_by_the_odometry_between_its_places_and_a_long_one_joins_them()
 {
    // One episode: 1 m along +x (A), a loop back to 0.3 m left of A's middle (L, 0.58 m), and
    // 1 m along +x from there (B). B's first view looks like A's middle: a shortcut, between
    // places 0.3 m apart that the robot drove between in 1.1 m.
    let line = |from: (f64, f64), to: (f64, f64), n: u32| {
        (0..n).map(move |i| {
            let t = f64::from(i) / f64::from(n);
            OdometryPose::new(
                from.0 + t * (to.0 - from.0),
                from.1 + t * (to.1 - from.1),
                0.0,
            )
        })
    };
    let odometry: Vec<Option<OdometryPose>> = line((0.0, 0.0), (1.02, 0.0), 51)
        .chain(line((1.02, 0.0), (0.5, 0.3), 20))
        .chain(line((0.5, 0.3), (1.52, 0.3), 51))
        .map(Some)
        .collect();
    let step = 0.02f32;
    let embeddings: Vec<Vec<f32>> = (0..51)
        .map(|i| place(i as f32 * step))
        .chain((0..20).map(|i| place(4.0 + i as f32 * step)))
        .chain(std::iter::once(place(0.5)))
        .chain((1..51).map(|i| place(2.0 + i as f32 * step)))
        .collect();
    let end_of = |shortcut_odometry_m: f32| {
        let mut config = config(1, 2);
        config.follow.shortcut_odometry_m = shortcut_odometry_m;
        let graph = MemoryGraph::build(&embeddings, &[3; 122], config).expect("graph");
        let route = graph
            .route(&place(0.0), &place(3.0), None)
            .expect("route")
            .expect("connected");
        let kinds: Vec<EdgeKind> = route
            .nodes
            .windows(2)
            .filter_map(|p| graph.edges(p[0]).iter().find(|e| e.to == p[1]))
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == EdgeKind::Shortcut).count(),
            1,
            "through the shortcut, not the loop"
        );
        let path = graph
            .route_path(&route, |node| odometry[graph.nodes()[node].frame])
            .expect("every place has odometry");
        path[path.len() - 1]
    };
    // Over a short drive, the odometry says where B starts: the end is B's.
    let end = end_of(FollowConfig::default().shortcut_odometry_m);
    assert!(
        end.distance(&OdometryPose::new(1.5, 0.3, 0.0)) < 0.03,
        "ends at {end:?}"
    );
    // Over a drive longer than trusted, B starts where A's middle is.
    let end = end_of(1.0);
    assert!(
        end.distance(&OdometryPose::new(1.5, 0.0, 0.0)) < 0.03,
        "ends at {end:?}"
    );
}

/// Three laps around a 2 m square, a place every 0.1 m, and wheel odometry whose heading
/// drifts by 3° per metre driven: `(true poses, odometry poses)`.
fn drifting_laps() -> (Vec<OdometryPose>, Vec<OdometryPose>) {
    let mut truth = Vec::new();
    let mut pose = OdometryPose::default();
    for _ in 0..3 * 4 {
        for _ in 0..20 {
            truth.push(pose);
            pose = pose.compose(&OdometryPose::new(0.1, 0.0, 0.0));
        }
        pose = pose.compose(&OdometryPose::new(0.0, 0.0, std::f64::consts::FRAC_PI_2));
    }
    let mut odometry = vec![truth[0]];
    for pair in truth.windows(2) {
        let step = pair[0].inverse().compose(&pair[1]);
        let drifted = OdometryPose::new(step.x, step.y, step.yaw + 0.3f64.to_radians());
        let last = odometry[odometry.len() - 1];
        odometry.push(last.compose(&drifted));
    }
    (truth, odometry)
}

#[test]
fn a_memory_laid_out_as_a_pose_graph_closes_its_loops_and_rejects_a_look_alike() {
    let (truth, odometry) = drifting_laps();
    let lap = 80;
    // Each place looks like itself on every lap; the place at lap 3's far corner (frame 200,
    // at (2, 2)) looks like the start, 2.8 m away.
    let look_alike = 2 * lap + 40;
    let embeddings: Vec<Vec<f32>> = (0..truth.len())
        .map(|i| {
            let seen = if i == look_alike { 0 } else { i % lap };
            place(seen as f32 * std::f32::consts::TAU / lap as f32)
        })
        .collect();
    let odometry: Vec<Option<OdometryPose>> = odometry.into_iter().map(Some).collect();
    let build = |pose_graph: bool| {
        let mut config = config(1, 4);
        config.pose_graph.enabled = pose_graph;
        MemoryGraph::build_with_odometry(&embeddings, &[1; 240], &odometry, config).expect("graph")
    };
    // The way from lap 1 to the same place on lap 3, laid out from the route's places: it
    // truly ends where it started.
    let around = autodidact_learn::Route {
        nodes: (10..=2 * lap + 10).collect(),
        subgoal: None,
        current_distance: 0.0,
        goal_distance: 0.0,
    };
    let end = |graph: &MemoryGraph| {
        let path = graph
            .route_path(&around, |node| odometry[graph.nodes()[node].frame])
            .expect("laid out");
        path[path.len() - 1].distance(&OdometryPose::default())
    };
    let chained = build(false);
    assert_eq!(chained.map_pose(0), None, "no map unless asked for");
    let mapped = build(true);
    let (by_chain, by_map) = (end(&chained), end(&mapped));
    assert!(by_chain > 0.5, "two laps of drift: {by_chain} m");
    assert!(by_map < 0.1, "the map closes the loops: {by_map} m");
    // Every place of the map lies where it truly is (relative to the first).
    let first = mapped.map_pose(0).expect("a pose");
    for (i, truth) in truth.iter().enumerate() {
        let placed = first
            .inverse()
            .compose(&mapped.map_pose(i).expect("a pose"));
        assert!(
            placed.distance(truth) < 0.15,
            "place {i}: {placed:?} for {truth:?}"
        );
    }
    // The look-alike's shortcuts are rejected and routes do not take them.
    assert!(mapped.rejected_shortcuts() >= 1);
    let start = mapped.map_pose(0).expect("a pose");
    for edge in mapped.edges(look_alike) {
        let there = mapped.map_pose(edge.to).expect("a pose");
        assert!(
            mapped
                .map_pose(look_alike)
                .expect("a pose")
                .distance(&there)
                < 0.5,
            "an edge from the far corner to {:?} (the start is at {start:?})",
            there
        );
    }
}

/// Drives a unicycle at 20 Hz with the follower's commands; the poses it went through.
fn drive(
    follower: &mut PathFollower,
    start: OdometryPose,
    periods: usize,
) -> (Vec<OdometryPose>, bool) {
    let (dt, config, max_action) = (0.05, FollowConfig::default(), [0.5f32, 2.0]);
    let mut pose = start;
    let mut poses = vec![pose];
    for _ in 0..periods {
        match follower.command(&pose, &config, max_action) {
            Follow::Arrived => return (poses, true),
            Follow::Drive([linear, angular]) => {
                assert!(
                    (0.0..=0.5).contains(&linear),
                    "forward only, capped: {linear}"
                );
                assert!(angular.abs() <= 2.0, "turn capped: {angular}");
                pose = pose.compose(&OdometryPose::new(
                    f64::from(linear) * dt,
                    0.0,
                    f64::from(angular) * dt,
                ));
                poses.push(pose);
            }
        }
    }
    (poses, false)
}

#[test]
fn the_path_follower_cuts_a_loop_of_the_path_that_comes_back_where_the_robot_is() {
    use std::f64::consts::{FRAC_PI_2, PI};
    // The drive it was laid out from went 1 m out, came back 0.1 m beside the start and then
    // went 0.9 m to the left: the robot is at the loop's end already.
    let relative: Vec<OdometryPose> = (0..=20)
        .map(|i| OdometryPose::new(f64::from(i) * 0.05, 0.0, 0.0))
        .chain((0..=20).map(|i| OdometryPose::new(1.0 - f64::from(i) * 0.05, 0.1, PI)))
        .chain((1..=18).map(|i| OdometryPose::new(0.0, 0.1 + f64::from(i) * 0.05, FRAC_PI_2)))
        .collect();
    let start = OdometryPose::new(4.0, -1.0, 0.5);
    let mut follower = PathFollower::new(&start, &relative).expect("a path");
    let end = follower.path()[relative.len() - 1];
    let (poses, arrived) = drive(&mut follower, start, 400);
    assert!(arrived, "the path's end was reached");
    let last = poses[poses.len() - 1];
    assert!(
        last.distance(&end) <= 0.1,
        "stopped at {last:?}, end {end:?}"
    );
    let driven: f64 = poses.windows(2).map(|p| p[0].distance(&p[1])).sum();
    assert!(
        driven < 1.2,
        "{driven:.2} m driven: the 2 m loop was cut, the 0.9 m after it driven"
    );
}

#[test]
fn the_path_follower_drives_an_l_shaped_path_to_its_end_and_turns_to_its_heading() {
    // 1 m ahead, then 1 m to the left, ending facing back along -x: relative to the robot.
    let relative: Vec<OdometryPose> = (0..=20)
        .map(|i| OdometryPose::new(f64::from(i) * 0.05, 0.0, 0.0))
        .chain(
            (1..=20)
                .map(|i| OdometryPose::new(1.0, f64::from(i) * 0.05, std::f64::consts::FRAC_PI_2)),
        )
        .chain([OdometryPose::new(1.0, 1.0, std::f64::consts::PI)])
        .collect();
    // The robot's odometry frame is anywhere: the path is laid out from its pose.
    let start = OdometryPose::new(-3.0, 2.0, -2.0);
    let mut follower = PathFollower::new(&start, &relative).expect("a path");
    assert_eq!(follower.path().len(), relative.len());
    let (poses, arrived) = drive(&mut follower, start, 400);
    assert!(arrived, "arrived within 20 s");
    let end = poses[poses.len() - 1];
    let goal = start.compose(&OdometryPose::new(1.0, 1.0, std::f64::consts::PI));
    let config = FollowConfig::default();
    assert!(
        end.distance(&goal) <= f64::from(config.arrive_m),
        "ends at {end:?}"
    );
    assert!(end.turn(&goal) <= f64::from(config.arrive_deg).to_radians());
    // It kept to the path: never further than 0.2 m from it (it cuts the corner a little).
    let path = follower.path();
    for pose in &poses {
        let off = path
            .iter()
            .map(|p| p.distance(pose))
            .fold(f64::INFINITY, f64::min);
        assert!(off < 0.2, "{pose:?} is {off} m off the path");
    }
    // Nothing to follow without a path.
    assert!(PathFollower::new(&start, &[]).is_none());
    // Settings that cannot steer are refused, naming the field, also within the memory's.
    let bad = FollowConfig {
        lookahead_m: f32::NAN,
        ..FollowConfig::default()
    };
    let refused = bad.validate().expect_err("a NaN lookahead").to_string();
    assert!(refused.contains("memory.follow: lookahead_m"), "{refused}");
    let memory = MemoryConfig {
        follow: bad,
        ..MemoryConfig::default()
    };
    assert!(matches!(
        memory.validate(),
        Err(LearnError::InvalidConfig(_))
    ));
}
