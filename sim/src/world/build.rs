//! Building a world from its configuration and seed: the arena, the robot with its wheels and
//! casters, the objects placed without overlap, and the randomised look.

use super::*;

impl Sim {
    pub(super) fn build(config: SimConfig, seed: u64) -> Result<Self, SimError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut world = PhysicsWorld::new();
        world.gravity = Vector::new(0.0, 0.0, -GRAVITY);
        world.integration_parameters.dt =
            (config.control_period_s / config.physics_substeps as f64) as f32;

        let arena = &config.arena;
        let (half_x, half_y) = (arena.size_x_m / 2.0, arena.size_y_m / 2.0);
        let (_, floor_collider) = world.insert(
            RigidBodyBuilder::fixed().translation(Vector::new(0.0, 0.0, -0.1)),
            ColliderBuilder::cuboid(half_x + 1.0, half_y + 1.0, 0.1).friction(1.0),
        );
        let wall_half_height = arena.wall_height_m / 2.0;
        let walls = [
            (
                Vector::new(half_x + WALL_THICKNESS, 0.0, wall_half_height),
                [WALL_THICKNESS, half_y + 2.0 * WALL_THICKNESS],
            ),
            (
                Vector::new(-half_x - WALL_THICKNESS, 0.0, wall_half_height),
                [WALL_THICKNESS, half_y + 2.0 * WALL_THICKNESS],
            ),
            (
                Vector::new(0.0, half_y + WALL_THICKNESS, wall_half_height),
                [half_x + 2.0 * WALL_THICKNESS, WALL_THICKNESS],
            ),
            (
                Vector::new(0.0, -half_y - WALL_THICKNESS, wall_half_height),
                [half_x + 2.0 * WALL_THICKNESS, WALL_THICKNESS],
            ),
        ];
        for (centre, [hx, hy]) in walls {
            world.insert(
                RigidBodyBuilder::fixed().translation(centre),
                ColliderBuilder::cuboid(hx, hy, wall_half_height).friction(0.3),
            );
        }

        let mut look = Look::from_config(arena, &config.lighting);
        randomize_look(&mut look, &config, &mut rng);

        // Robot start pose, then objects placed away from it and from each other.
        let robot = &config.robot;
        let robot_radius = 0.5
            * robot
                .chassis_length_m
                .hypot(robot.wheel_separation_m + 0.04);
        let margin = robot_radius + config.objects.clearance_m;
        if half_x <= margin || half_y <= margin {
            return Err(SimError::Placement {
                what: "robot".into(),
                attempts: 0,
            });
        }
        let start = Pose2 {
            x: rng.random_range(-(half_x - margin)..(half_x - margin)) as f64,
            y: rng.random_range(-(half_y - margin)..(half_y - margin)) as f64,
            yaw: rng.random_range(-std::f64::consts::PI..std::f64::consts::PI),
        };
        let object_count = if config.randomization.object_count {
            rng.random_range(config.objects.min_count..=config.objects.count)
        } else {
            config.objects.count
        };
        let object_half = config.objects.half_size_m;
        let object_radius = object_half * std::f32::consts::SQRT_2;
        let mut placed: Vec<(f32, f32)> = Vec::new();
        let mut objects = Vec::new();
        let mut visible = Vec::new();
        for id in 0..object_count {
            let edge = object_radius + config.objects.clearance_m;
            if half_x <= edge || half_y <= edge {
                return Err(SimError::Placement {
                    what: format!("object {id}"),
                    attempts: 0,
                });
            }
            let mut spot = None;
            for _ in 0..PLACEMENT_ATTEMPTS {
                let x = rng.random_range(-(half_x - edge)..(half_x - edge));
                let y = rng.random_range(-(half_y - edge)..(half_y - edge));
                let clear_of_robot = (x - start.x as f32).hypot(y - start.y as f32)
                    > robot_radius + object_radius + config.objects.clearance_m;
                let clear_of_objects = placed.iter().all(|(ox, oy)| {
                    (x - ox).hypot(y - oy) > 2.0 * object_radius + config.objects.clearance_m
                });
                if clear_of_robot && clear_of_objects {
                    spot = Some((x, y));
                    break;
                }
            }
            let Some((x, y)) = spot else {
                return Err(SimError::Placement {
                    what: format!("object {id} of {object_count}"),
                    attempts: PLACEMENT_ATTEMPTS,
                });
            };
            placed.push((x, y));
            let yaw: f32 = rng.random_range(-std::f32::consts::PI..std::f32::consts::PI);
            let shape = if rng.random_bool(0.5) {
                ObjectShape::Box
            } else {
                ObjectShape::Cylinder
            };
            let mut colour = OBJECT_PALETTE[id as usize % OBJECT_PALETTE.len()];
            if config.randomization.colours {
                jitter_colour(&mut colour, &mut rng);
            }
            let builder = match shape {
                ObjectShape::Box => ColliderBuilder::cuboid(object_half, object_half, object_half),
                // parry cylinders stand along their local y axis: rotate it onto world z.
                ObjectShape::Cylinder => ColliderBuilder::cylinder(object_half, object_half)
                    .rotation(Vector::new(std::f32::consts::FRAC_PI_2, 0.0, 0.0)),
            };
            let (body, collider) = world.insert(
                RigidBodyBuilder::dynamic()
                    .translation(Vector::new(x, y, object_half))
                    .rotation(Vector::new(0.0, 0.0, yaw))
                    .linear_damping(0.5)
                    .angular_damping(0.5),
                builder.mass(config.objects.mass_kg).friction(0.4),
            );
            objects.push(Object {
                body,
                shape,
                colour,
            });
            visible.push(VisibleObject {
                collider,
                colour,
                bounding_radius: object_half * 3.0_f32.sqrt() * 1.01,
            });
        }

        // The robot: chassis with a frictionless caster, two motorised wheels on revolute joints.
        let chassis_z = CHASSIS_CLEARANCE + CHASSIS_HALF_HEIGHT;
        let start_rotation = Rotation::from_rotation_z(start.yaw as f32);
        let start_translation = Vector::new(start.x as f32, start.y as f32, chassis_z);
        let chassis = world.insert_body(
            RigidBodyBuilder::dynamic()
                .pose(Pose::from_parts(start_translation, start_rotation))
                .can_sleep(false),
        );
        world.insert_collider(
            ColliderBuilder::cuboid(
                robot.chassis_length_m / 2.0,
                robot.chassis_width_m / 2.0,
                CHASSIS_HALF_HEIGHT,
            )
            .mass(robot.chassis_mass_kg)
            .friction(0.3),
            Some(chassis),
        );
        // Rear caster touches the floor; the front one rides a few millimetres above it and only
        // catches the chassis when it pitches forward (braking), like a base with a suspension.
        for (x, gap, mass) in [
            (-robot.chassis_length_m / 2.0 + CASTER_RADIUS, 0.0, 0.05),
            (
                robot.chassis_length_m / 2.0 - CASTER_RADIUS,
                FRONT_CASTER_GAP,
                0.02,
            ),
        ] {
            world.insert_collider(
                ColliderBuilder::ball(CASTER_RADIUS)
                    .translation(Vector::new(x, 0.0, CASTER_RADIUS + gap - chassis_z))
                    .friction(0.0)
                    .friction_combine_rule(CoefficientCombineRule::Min)
                    .mass(mass),
                Some(chassis),
            );
        }
        let wheel_z = robot.wheel_radius_m - chassis_z;
        let mut make_wheel = |side: f32| {
            let anchor = Vector::new(0.0, side * robot.wheel_separation_m / 2.0, wheel_z);
            let body = world.insert_body(
                RigidBodyBuilder::dynamic()
                    .pose(Pose::from_parts(
                        start_translation + start_rotation * anchor,
                        start_rotation,
                    ))
                    .can_sleep(false),
            );
            let collider = world.insert_collider(
                ColliderBuilder::ball(robot.wheel_radius_m)
                    .mass(WHEEL_MASS)
                    .friction(1.0),
                Some(body),
            );
            let joint = RevoluteJointBuilder::new(Vector::Y)
                .local_anchor1(anchor)
                .local_anchor2(Vector::ZERO)
                .contacts_enabled(false)
                .motor_model(MotorModel::ForceBased)
                .motor_velocity(0.0, MOTOR_GAIN)
                .motor_max_force(robot.max_wheel_torque_nm);
            let joint = world.insert_impulse_joint(chassis, body, joint);
            Wheel {
                body,
                collider,
                joint,
                last_wrapped_angle: 0.0,
                angle: 0.0,
                angle_at_last_odom: 0.0,
                torque_sum: 0.0,
            }
        };
        let wheels = [make_wheel(1.0), make_wheel(-1.0)];

        let camera = Camera::new(
            &config.camera,
            Vector::new(
                robot.chassis_length_m / 2.0,
                0.0,
                config.camera.height_m - chassis_z,
            ),
        );
        Ok(Self {
            config,
            world,
            camera,
            look,
            chassis,
            floor_collider,
            wheels,
            objects,
            visible,
            rng,
            stamp: SimTime::default(),
            steps: 0,
            start_pose: start,
            odom: Odometry {
                stamp: SimTime::default(),
                x: 0.0,
                y: 0.0,
                yaw: 0.0,
                linear_x: 0.0,
                angular_z: 0.0,
            },
            applied: Action::STOP,
            last_linvel: Vector::ZERO,
            last_effort: [0.0; 2],
            rejected_actions: 0,
            seed,
        })
    }
}

fn jitter_colour(colour: &mut [f32; 3], rng: &mut ChaCha8Rng) {
    for channel in colour.iter_mut() {
        *channel = (*channel + rng.random_range(-0.15..0.15)).clamp(0.0, 1.0);
    }
}

fn randomize_look(look: &mut Look, config: &SimConfig, rng: &mut ChaCha8Rng) {
    if config.randomization.colours {
        for colour in look
            .wall_colours
            .iter_mut()
            .chain(look.floor_colours.iter_mut())
        {
            jitter_colour(colour, rng);
        }
        for period in &mut look.wall_stripe_period_m {
            *period *= rng.random_range(0.8..1.25);
        }
    }
    if config.randomization.lighting {
        look.ambient = rng.random_range(0.3..0.6);
        look.diffuse = rng.random_range(0.3..0.7);
        let azimuth: f32 = rng.random_range(0.0..std::f32::consts::TAU);
        let elevation: f32 = rng.random_range(0.3..1.3);
        look.light_dir = Vector::new(
            azimuth.cos() * elevation.cos(),
            azimuth.sin() * elevation.cos(),
            elevation.sin(),
        );
    }
}
