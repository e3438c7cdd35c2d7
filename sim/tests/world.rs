//! Behaviour of the simulated world that the learning code and the evaluation rely on.
#![allow(clippy::field_reassign_with_default)]

use autodidact_sim::{
    Action, ExplorationConfig, ExplorationPolicy, NoiseConfig, ObservationDigest, Pose2,
    RandomizationConfig, Sim, SimConfig, SimError, WHEEL_JOINT_NAMES,
};

fn quiet_config() -> SimConfig {
    let mut config = SimConfig::default();
    config.noise = NoiseConfig::none();
    config
}

/// Runs the exploration policy for `steps` and returns the digest of every observation.
fn explore_digest(config: &SimConfig, seed: u64, steps: usize) -> u64 {
    let mut sim = Sim::new(config).expect("valid config");
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), seed);
    let mut digest = ObservationDigest::new();
    let mut observation = sim.reset(seed).expect("reset");
    digest.add(&observation);
    for _ in 0..steps {
        let action = policy.act(&observation, config.control_period_s as f32);
        observation = sim.step(&action);
        digest.add(&observation);
    }
    assert_eq!(digest.count(), steps as u64 + 1);
    digest.value()
}

#[test]
fn same_seed_gives_identical_digest_and_other_seed_differs() {
    let config = SimConfig::default();
    let first = explore_digest(&config, 11, 500);
    let second = explore_digest(&config, 11, 500);
    let other = explore_digest(&config, 12, 500);
    assert_eq!(
        first, second,
        "same seed, same build must replay bit for bit"
    );
    assert_ne!(first, other, "a different seed must give a different world");
}

#[test]
fn reset_on_a_used_sim_equals_a_fresh_sim() {
    let config = SimConfig::default();
    let mut used = Sim::new(&config).expect("sim");
    used.reset(5).expect("reset");
    for _ in 0..50 {
        used.step(&Action::new(0.4, 0.7));
    }
    let again = used.reset(9).expect("reset");
    let mut fresh = Sim::new(&config).expect("sim");
    let first = fresh.reset(9).expect("reset");
    assert_eq!(again, first);
    assert_eq!(
        used.step(&Action::new(0.2, 0.1)),
        fresh.step(&Action::new(0.2, 0.1))
    );
}

/// Flat lighting so that a pixel shows exactly its surface's albedo.
fn flat_lit_config(objects: u32) -> SimConfig {
    let mut config = quiet_config();
    config.lighting.ambient = 1.0;
    config.lighting.diffuse = 0.0;
    config.camera.tilt_down_deg = 0.0;
    config.objects.count = objects;
    config
}

fn settle_at(sim: &mut Sim, pose: Pose2) {
    sim.set_robot_pose(pose).expect("pose");
    for _ in 0..10 {
        sim.step(&Action::STOP);
    }
}

fn to_byte(channel: f32) -> i32 {
    (channel * 255.0 + 0.5) as i32
}

fn assert_colour_is_albedo(got: [u8; 3], albedo: [f32; 3], stripe_shade: f32, what: &str) {
    let matches = |shade: f32| {
        got.iter()
            .zip(albedo)
            .all(|(g, a)| (*g as i32 - to_byte(a * shade)).abs() <= 1)
    };
    assert!(
        matches(1.0) || matches(stripe_shade),
        "{what}: pixel {got:?} is neither albedo {albedo:?} nor its darker stripe"
    );
}

#[test]
fn facing_each_wall_shows_its_colour_at_its_distance() {
    let config = flat_lit_config(0);
    let mut sim = Sim::new(&config).expect("sim");
    sim.reset(1).expect("reset");
    let (robot_x, robot_y) = (0.3, -0.2);
    let camera_ahead = (config.robot.chassis_length_m / 2.0) as f64;
    let half = (config.arena.size_x_m / 2.0) as f64;
    // (heading, wall index in ArenaConfig::wall_colours, distance from the camera)
    let walls = [
        (0.0, 0, half - robot_x - camera_ahead),
        (std::f64::consts::PI, 1, half + robot_x - camera_ahead),
        (
            std::f64::consts::FRAC_PI_2,
            2,
            half - robot_y - camera_ahead,
        ),
        (
            -std::f64::consts::FRAC_PI_2,
            3,
            half + robot_y - camera_ahead,
        ),
    ];
    for (yaw, wall, distance) in walls {
        settle_at(
            &mut sim,
            Pose2 {
                x: robot_x,
                y: robot_y,
                yaw,
            },
        );
        let frame = sim.render();
        let (cu, cv) = (frame.width / 2, frame.height / 2 - 1);
        let depth = frame.depth_at(cu, cv) as f64;
        assert!(
            (depth - distance).abs() < 0.01,
            "wall {wall}: depth {depth} m, expected {distance} m"
        );
        assert_colour_is_albedo(
            frame.rgb_at(cu, cv),
            config.arena.wall_colours[wall],
            config.arena.stripe_shade,
            &format!("wall {wall}"),
        );
        // Looking down, the bottom row sees the floor, close by.
        let floor_depth = frame.depth_at(cu, frame.height - 1);
        assert!(
            floor_depth < 0.5,
            "bottom row should see the floor, depth {floor_depth}"
        );
    }
}

#[test]
fn an_object_occludes_the_wall_behind_it() {
    let config = flat_lit_config(2);
    let mut sim = Sim::new(&config).expect("sim");
    sim.reset(4).expect("reset");
    settle_at(
        &mut sim,
        Pose2 {
            x: 0.0,
            y: 0.0,
            yaw: 0.0,
        },
    );
    // Object 0 one metre ahead, object 1 out of the way behind the robot.
    sim.set_object_pose(0, 1.0, 0.0, 0.0).expect("object 0");
    sim.set_object_pose(1, -1.5, -1.5, 0.0).expect("object 1");
    for _ in 0..5 {
        sim.step(&Action::STOP);
    }
    let truth = sim.ground_truth();
    let frame = sim.render();
    let (cu, cv) = (frame.width / 2, frame.height / 2 - 1);
    let camera_x = (config.robot.chassis_length_m / 2.0) as f64;
    let expected = 1.0 - config.objects.half_size_m as f64 - camera_x;
    let depth = frame.depth_at(cu, cv) as f64;
    assert!(
        (depth - expected).abs() < 0.01,
        "object depth {depth}, expected {expected}"
    );
    let got = frame.rgb_at(cu, cv);
    let albedo = truth.objects[0].colour;
    assert!(
        got.iter()
            .zip(albedo)
            .all(|(g, a)| (*g as i32 - to_byte(a)).abs() <= 1),
        "object pixel {got:?} should be its colour {albedo:?}"
    );
    // The image edge still sees the wall, farther away.
    let edge_depth = frame.depth_at(0, cv) as f64;
    assert!(
        edge_depth > 1.5,
        "wall at the image edge, got depth {edge_depth}"
    );
    // Moving the object away uncovers the wall.
    sim.set_object_pose(0, -1.5, 1.5, 0.0).expect("object 0");
    sim.step(&Action::STOP);
    let uncovered = sim.render().depth_at(cu, cv) as f64;
    assert!(uncovered > 1.5, "wall visible again, got depth {uncovered}");
}

#[test]
fn fast_renderer_agrees_with_rapier_ray_casts() {
    let mut config = SimConfig::default();
    config.objects.count = 6;
    let mut sim = Sim::new(&config).expect("sim");
    let mut observation = sim.reset(21).expect("reset");
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), 21);
    let (mut compared, mut agreeing) = (0usize, 0usize);
    for step in 0..200 {
        observation = sim.step(&policy.act(&observation, 0.05));
        if step % 20 != 0 {
            continue;
        }
        let reference = sim.reference_depth();
        for (fast, slow) in observation.frame.depth.iter().zip(&reference) {
            compared += 1;
            if (fast.is_infinite() && slow.is_infinite()) || (fast - slow).abs() < 1e-3 {
                agreeing += 1;
            }
        }
    }
    let share = agreeing as f64 / compared as f64;
    assert!(
        share > 0.999,
        "only {:.4} of {compared} pixels agree with rapier",
        share
    );
}

#[test]
fn forward_command_moves_the_robot_forward_and_turns_are_counter_clockwise() {
    let mut sim = Sim::new(&quiet_config()).expect("sim");
    sim.reset(3).expect("reset");
    settle_at(
        &mut sim,
        Pose2 {
            x: -1.0,
            y: 0.0,
            yaw: 0.0,
        },
    );
    let before = sim.ground_truth().robot_pose;
    for _ in 0..40 {
        sim.step(&Action::new(0.3, 0.0));
    }
    let moved = before.relative(&sim.ground_truth().robot_pose);
    assert!(
        moved.x > 0.5 && moved.x < 0.62,
        "2 s at 0.3 m/s went {} m",
        moved.x
    );
    assert!(
        moved.y.abs() < 0.02 && moved.yaw.abs() < 0.02,
        "drifted: {moved:?}"
    );
    let before = sim.ground_truth().robot_pose;
    for _ in 0..20 {
        sim.step(&Action::new(0.0, 1.0));
    }
    let turned = before.relative(&sim.ground_truth().robot_pose);
    assert!(
        turned.yaw > 0.85 && turned.yaw < 1.05,
        "1 s at 1 rad/s turned {}",
        turned.yaw
    );
}

/// Drives the exploration policy and returns (odometry, truth relative to the start, true path length, odometry path length).
fn odometry_run(noise: NoiseConfig, seed: u64) -> (Pose2, Pose2, f64, f64) {
    let mut config = SimConfig::default();
    config.noise = noise;
    config.objects.count = 0;
    let mut sim = Sim::new(&config).expect("sim");
    let mut observation = sim.reset(seed).expect("reset");
    let mut policy = ExplorationPolicy::new(ExplorationConfig::default(), seed);
    let (mut true_path, mut odom_path) = (0.0, 0.0);
    let mut last_truth = sim.ground_truth().robot_pose;
    let mut last_odom = (observation.odom.x, observation.odom.y);
    for _ in 0..300 {
        observation = sim.step(&policy.act(&observation, 0.05));
        let truth = sim.ground_truth().robot_pose;
        true_path += (truth.x - last_truth.x).hypot(truth.y - last_truth.y);
        odom_path += (observation.odom.x - last_odom.0).hypot(observation.odom.y - last_odom.1);
        last_truth = truth;
        last_odom = (observation.odom.x, observation.odom.y);
    }
    let truth = sim.ground_truth();
    let odom = Pose2 {
        x: observation.odom.x,
        y: observation.odom.y,
        yaw: observation.odom.yaw,
    };
    (
        odom,
        truth.start_pose.relative(&truth.robot_pose),
        true_path,
        odom_path,
    )
}

#[test]
fn odometry_tracks_ground_truth_within_the_configured_noise() {
    let (odom, truth, true_path, _) = odometry_run(NoiseConfig::none(), 8);
    assert!(
        true_path > 2.0,
        "the robot should have explored, went {true_path} m"
    );
    let error = (odom.x - truth.x).hypot(odom.y - truth.y);
    assert!(
        error < 0.02 * true_path,
        "noise-free odometry off by {error} m over {true_path} m"
    );

    let mut noisy = NoiseConfig::none();
    noisy.wheel_odometry_fraction = 0.02;
    let (odom, truth, true_path, _) = odometry_run(noisy, 8);
    let error = (odom.x - truth.x).hypot(odom.y - truth.y);
    assert!(
        error < 0.1 * true_path,
        "2 % wheel noise, off by {error} m over {true_path} m"
    );

    let mut drifting = NoiseConfig::none();
    drifting.wheel_radius_error = 0.05;
    let (_, _, true_path, odom_path) = odometry_run(drifting, 8);
    let ratio = odom_path / true_path;
    assert!(
        (ratio - 1.05).abs() < 0.015,
        "a 5 % radius error should read 5 % long, got {ratio}"
    );
}

#[test]
fn the_robot_cannot_leave_the_arena() {
    let mut config = SimConfig::default();
    config.objects.count = 3;
    let mut sim = Sim::new(&config).expect("sim");
    let mut observation = sim.reset(2).expect("reset");
    // No wall avoidance, fast and mostly straight: it will hit the walls hard and often.
    let mut reckless = ExplorationConfig::default();
    reckless.avoid_distance_m = 0.0;
    reckless.mean_linear_mps = 0.5;
    reckless.angular_noise = 0.8;
    let mut policy = ExplorationPolicy::new(reckless, 2);
    let half_x = (config.arena.size_x_m / 2.0) as f64;
    let half_y = (config.arena.size_y_m / 2.0) as f64;
    let mut wall_hits = 0;
    for _ in 0..1500 {
        observation = sim.step(&policy.act(&observation, 0.05));
        let truth = sim.ground_truth();
        let pose = truth.robot_pose;
        assert!(
            pose.x.abs() < half_x && pose.y.abs() < half_y,
            "robot left: {pose:?}"
        );
        for object in &truth.objects {
            assert!(object.position[0].abs() < half_x && object.position[1].abs() < half_y);
            assert!(object.position[2] > -0.01, "object fell through the floor");
        }
        if pose.x.abs() > half_x - 0.25 || pose.y.abs() > half_y - 0.25 {
            wall_hits += 1;
        }
    }
    assert!(
        wall_hits > 20,
        "the test should actually push against walls ({wall_hits})"
    );
}

/// A robot mapping its building looks around now and then: with `look_around_every_s` the
/// exploration stops after that many seconds of driving and turns once around in place, so that
/// the places it passes are seen facing every way; without it, it never stands turning.
#[test]
fn looking_around_turns_the_robot_once_around_in_place_every_few_seconds() {
    let config = quiet_config();
    let period = config.control_period_s as f32;
    let drive = |look_around_every_s: f32| {
        let mut sim = Sim::new(&config).expect("sim");
        let mut observation = sim.reset(4).expect("reset");
        let exploration = ExplorationConfig {
            look_around_every_s,
            ..ExplorationConfig::default()
        };
        let max_turn = exploration.max_angular_radps;
        let mut policy = ExplorationPolicy::new(exploration, 4);
        // Each look: (yaw turned, metres moved), from the truth.
        let mut looks: Vec<(f64, f64)> = Vec::new();
        let mut looking = false;
        let mut last = sim.ground_truth().robot_pose;
        for _ in 0..1200 {
            let action = policy.act(&observation, period);
            let in_place = action.linear_x == 0.0 && action.angular_z.abs() == max_turn;
            if in_place && !looking {
                looks.push((0.0, 0.0));
            }
            looking = in_place;
            observation = sim.step(&action);
            let pose = sim.ground_truth().robot_pose;
            if let (true, Some(look)) = (in_place, looks.last_mut()) {
                look.0 += autodidact_sim::wrap_angle(pose.yaw - last.yaw);
                look.1 += (pose.x - last.x).hypot(pose.y - last.y);
            }
            last = pose;
        }
        looks
    };
    // 60 s of driving, a look every 10 s of it (each about 3.5 s at 1.8 rad/s).
    let looks = drive(10.0);
    assert!(
        (4..=6).contains(&looks.len()),
        "a look about every 13.5 s: {looks:?}"
    );
    for (turned, moved) in &looks[..looks.len() - 1] {
        assert!(
            turned.abs() > 0.9 * std::f64::consts::TAU
                && turned.abs() < 1.1 * std::f64::consts::TAU,
            "once around: {turned} rad"
        );
        assert!(*moved < 0.15, "in place: {moved} m");
    }
    assert!(drive(0.0).is_empty(), "off by default: never a look");
}

#[test]
fn bad_actions_are_counted_and_stop_the_robot() {
    let mut sim = Sim::new(&quiet_config()).expect("sim");
    sim.reset(6).expect("reset");
    for _ in 0..10 {
        sim.step(&Action::new(0.4, 0.0));
    }
    for _ in 0..20 {
        let observation = sim.step(&Action::new(f32::NAN, f32::INFINITY));
        assert!(observation.frame.depth.iter().all(|d| !d.is_nan()));
    }
    assert_eq!(sim.stats().rejected_actions, 20);
    assert!(sim.ground_truth().robot_linear_x.abs() < 0.02);
    // Over-limit commands are clamped, not rejected.
    let observation = sim.step(&Action::new(100.0, -100.0));
    assert_eq!(sim.stats().rejected_actions, 20);
    assert!(observation.applied_action.linear_x <= sim.config().robot.max_linear_mps);
}

#[test]
fn proprio_looks_like_a_real_robot() {
    let mut sim = Sim::new(&quiet_config()).expect("sim");
    let first = sim.reset(13).expect("reset");
    assert_eq!(first.stamp.nanos, 0);
    assert_eq!(first.joints.name, WHEEL_JOINT_NAMES);
    // At rest the accelerometer reads gravity as +z specific force.
    let at_rest = sim.step(&Action::STOP);
    assert_eq!(at_rest.stamp.nanos, 50_000_000);
    assert!((at_rest.imu.linear_acceleration[2] - 9.81).abs() < 0.1);
    let mut last = at_rest;
    for _ in 0..30 {
        let next = sim.step(&Action::new(0.25, 0.5));
        assert!(next.stamp > last.stamp);
        assert_eq!(next.joints.stamp, next.stamp);
        last = next;
    }
    // Turning left: the right wheel spins faster; both roll forward.
    let [left, right] = [last.joints.velocity[0], last.joints.velocity[1]];
    assert!(right > left && left > 0.0, "wheel speeds {left} {right}");
    assert!((last.imu.angular_velocity[2] - 0.5).abs() < 0.05);
    assert!((last.odom.linear_x - 0.25).abs() < 0.03 && (last.odom.angular_z - 0.5).abs() < 0.05);
    assert!(
        last.joints.position.iter().all(|p| *p > 1.0),
        "wheels turned {:?}",
        last.joints.position
    );
    let truth = sim.ground_truth();
    assert_eq!(truth.wheel_contacts, [true, true]);
}

#[test]
fn domain_randomisation_varies_looks_and_object_counts_by_seed() {
    let mut config = SimConfig::default();
    config.randomization = RandomizationConfig::all();
    config.objects.min_count = 1;
    config.objects.count = 6;
    let mut sim = Sim::new(&config).expect("sim");
    let mut counts = std::collections::BTreeSet::new();
    let mut mean_colours = Vec::new();
    for seed in 0..12 {
        let observation = sim.reset(seed).expect("reset");
        let count = sim.ground_truth().objects.len();
        assert!((1..=6).contains(&count));
        counts.insert(count);
        let sum: u64 = observation.frame.rgb.iter().map(|b| *b as u64).sum();
        mean_colours.push(sum);
    }
    assert!(
        counts.len() >= 3,
        "object counts should vary, got {counts:?}"
    );
    mean_colours.sort_unstable();
    mean_colours.dedup();
    assert_eq!(mean_colours.len(), 12, "every seed should look different");

    // Without randomisation a wall keeps its configured colour whatever the seed.
    let config = flat_lit_config(0);
    let mut sim = Sim::new(&config).expect("sim");
    for seed in [3, 4] {
        sim.reset(seed).expect("reset");
        settle_at(
            &mut sim,
            Pose2 {
                x: 0.0,
                y: 0.0,
                yaw: 0.0,
            },
        );
        let frame = sim.render();
        assert_colour_is_albedo(
            frame.rgb_at(frame.width / 2, frame.height / 2 - 1),
            config.arena.wall_colours[0],
            config.arena.stripe_shade,
            "fixed wall",
        );
    }
}

#[test]
fn impossible_layouts_are_errors_not_panics() {
    let mut config = SimConfig::default();
    config.objects.count = 60;
    config.objects.half_size_m = 0.3;
    match Sim::new(&config) {
        Err(SimError::Placement { .. }) => {}
        other => panic!("expected a placement error, got {:?}", other.map(|_| ())),
    }
    let mut config = SimConfig::default();
    config.camera.width = 0;
    assert!(matches!(
        Sim::new(&config),
        Err(SimError::InvalidConfig { .. })
    ));
    let mut sim = Sim::new(&SimConfig::default()).expect("sim");
    assert!(sim.set_object_pose(99, 0.0, 0.0, 0.0).is_err());
    assert!(
        sim.set_robot_pose(Pose2 {
            x: f64::NAN,
            y: 0.0,
            yaw: 0.0
        })
        .is_err()
    );
}

#[test]
fn non_square_and_large_images_render() {
    let mut config = SimConfig::default();
    config.camera.width = 160;
    config.camera.height = 90;
    let mut sim = Sim::new(&config).expect("sim");
    let observation = sim.reset(1).expect("reset");
    assert_eq!(observation.frame.rgb.len(), 160 * 90 * 3);
    assert_eq!(observation.frame.depth.len(), 160 * 90);
    let intrinsics = sim.camera_intrinsics();
    assert_eq!((intrinsics.cx, intrinsics.cy), (80.0, 45.0));
    assert!(
        (intrinsics.fx - 80.0).abs() < 1e-3,
        "90° FOV over 160 px gives fx = 80"
    );
}

/// With `rays_per_side = n`, a pixel is the box average of the `n × n` pixels the same camera
/// sees at `n` times the size (its rays are theirs): the colour within rounding, the depth the
/// mean of the rays that hit (one ray a pixel is checked against rapier's ray casts in
/// `fast_renderer_agrees_with_rapier_ray_casts`). A refused count is a clear error.
#[test]
fn several_rays_a_pixel_average_the_pixels_of_a_larger_image() {
    let (side, n) = (16u32, 3u32);
    let render = |width: u32, rays_per_side: u32| {
        let mut config = SimConfig::default();
        config.camera.width = width;
        config.camera.height = width;
        config.camera.rays_per_side = rays_per_side;
        let mut sim = Sim::new(&config).expect("sim");
        sim.reset(4).expect("reset");
        // A wall's stripes from afar, finer than a pixel of the small image.
        sim.set_robot_pose(Pose2 {
            x: -1.5,
            y: 0.3,
            yaw: 0.4,
        })
        .expect("pose");
        sim.step(&Action::STOP).frame
    };
    let averaged = render(side, n);
    let large = render(side * n, 1);
    let (mut off_by_one, mut differ_from_centre) = (0, 0);
    let centre = render(side, 1);
    for v in 0..side as usize {
        for u in 0..side as usize {
            let rays: Vec<usize> = (0..n as usize)
                .flat_map(|dv| {
                    (0..n as usize).map(move |du| {
                        (v * n as usize + dv) * (side * n) as usize + u * n as usize + du
                    })
                })
                .collect();
            let pixel = v * side as usize + u;
            for channel in 0..3 {
                let mean = rays
                    .iter()
                    .map(|&r| f64::from(large.rgb[r * 3 + channel]))
                    .sum::<f64>()
                    / rays.len() as f64;
                let got = f64::from(averaged.rgb[pixel * 3 + channel]);
                assert!(
                    (got - mean).abs() <= 1.0,
                    "pixel ({u}, {v}) channel {channel}: {got} against the mean {mean}"
                );
                off_by_one += usize::from((got - mean).abs() > 0.5);
                differ_from_centre += usize::from(
                    averaged.rgb[pixel * 3 + channel] != centre.rgb[pixel * 3 + channel],
                );
            }
            let hits: Vec<f32> = rays
                .iter()
                .map(|&r| large.depth[r])
                .filter(|d| d.is_finite())
                .collect();
            let depth = averaged.depth[pixel];
            if hits.is_empty() {
                assert_eq!(depth, f32::INFINITY, "pixel ({u}, {v})");
            } else {
                let mean = hits.iter().sum::<f32>() / hits.len() as f32;
                assert!(
                    (depth - mean).abs() < 1e-4,
                    "pixel ({u}, {v}): {depth} against {mean}"
                );
            }
        }
    }
    assert!(
        off_by_one < (side * side) as usize,
        "rounding apart, the colours are the larger image's mean ({off_by_one} off)"
    );
    assert!(
        differ_from_centre > (side * side) as usize / 4,
        "the stripes average out: {differ_from_centre} channels differ from one ray's"
    );
    let mut config = SimConfig::default();
    config.camera.rays_per_side = 0;
    assert!(matches!(
        Sim::new(&config),
        Err(SimError::InvalidConfig { .. })
    ));
    config.camera.rays_per_side = autodidact_sim::MAX_RAYS_PER_SIDE + 1;
    assert!(matches!(
        Sim::new(&config),
        Err(SimError::InvalidConfig { .. })
    ));
}
