//! The simulated world: rapier3d physics for the arena, the robot and the objects, plus the
//! robot's sensors.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use rapier3d::prelude::*;

mod build;

use crate::SimError;
use crate::config::SimConfig;
use crate::render::{Camera, Look, SceneRef, VisibleObject};
use crate::types::{
    Action, CameraFrame, CameraIntrinsics, GroundTruth, Imu, JointState, ObjectShape, ObjectTruth,
    Observation, Odometry, Pose2, SimTime, wrap_angle,
};

/// Names of the wheel joints, in the order [`JointState`] reports them.
pub const WHEEL_JOINT_NAMES: [&str; 2] = ["left_wheel_joint", "right_wheel_joint"];

const GRAVITY: f32 = 9.81;
const WALL_THICKNESS: f32 = 0.1;
const CHASSIS_HALF_HEIGHT: f32 = 0.04;
const CHASSIS_CLEARANCE: f32 = 0.03;
const WHEEL_MASS: f32 = 0.2;
const CASTER_RADIUS: f32 = 0.03;
const FRONT_CASTER_GAP: f32 = 0.003;
/// Largest forward acceleration the base controller commands, m/s².
const MAX_LINEAR_ACCEL: f32 = 1.5;
/// Largest angular acceleration the base controller commands, rad/s².
const MAX_ANGULAR_ACCEL: f32 = 6.0;
/// Motor velocity-loop gain (rapier force-based motor damping), N·m·s/rad.
const MOTOR_GAIN: f32 = 5.0;
/// How often placement is retried before an object count is declared impossible.
const PLACEMENT_ATTEMPTS: u32 = 2000;

/// Palette objects take their colours from (linear RGB).
const OBJECT_PALETTE: [[f32; 3]; 8] = [
    [0.90, 0.20, 0.75],
    [0.10, 0.80, 0.85],
    [0.95, 0.55, 0.10],
    [0.95, 0.95, 0.95],
    [0.50, 0.20, 0.80],
    [0.15, 0.15, 0.15],
    [0.60, 0.90, 0.20],
    [0.95, 0.40, 0.40],
];

struct Wheel {
    body: RigidBodyHandle,
    collider: ColliderHandle,
    joint: ImpulseJointHandle,
    /// Wheel angle relative to the chassis at the last measurement, wrapped.
    last_wrapped_angle: f64,
    /// Accumulated (unwrapped) wheel angle, rad.
    angle: f64,
    /// Accumulated angle at the last odometry update.
    angle_at_last_odom: f64,
    /// Sum of motor torque over the current control period, for the average.
    torque_sum: f64,
}

struct Object {
    body: RigidBodyHandle,
    shape: ObjectShape,
    colour: [f32; 3],
}

/// A differential-drive robot in a walled arena with pushable objects.
///
/// Deterministic: the same configuration, seed and actions give bit-identical observations on
/// one build.
pub struct Sim {
    config: SimConfig,
    world: PhysicsWorld,
    camera: Camera,
    look: Look,
    chassis: RigidBodyHandle,
    floor_collider: ColliderHandle,
    wheels: [Wheel; 2],
    objects: Vec<Object>,
    visible: Vec<VisibleObject>,
    rng: ChaCha8Rng,
    stamp: SimTime,
    steps: u64,
    start_pose: Pose2,
    odom: Odometry,
    /// Command after clamping and acceleration limits.
    applied: Action,
    last_linvel: Vector,
    last_effort: [f64; 2],
    rejected_actions: u64,
    seed: u64,
}

/// Counters of what the simulator had to correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Control periods stepped since `reset`.
    pub steps: u64,
    /// Actions with a NaN or infinite component, replaced by a stop.
    pub rejected_actions: u64,
}

impl Sim {
    /// Builds a world from a validated configuration and resets it with seed 0.
    pub fn new(config: &SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let mut sim = Self::build(config.clone(), 0)?;
        sim.settle();
        Ok(sim)
    }

    /// Starts a new episode: a fresh world laid out (and, per config, randomised) by `seed`.
    ///
    /// The robot starts at a random pose with clearance from walls and objects; odometry restarts
    /// at the origin of its `odom` frame.
    pub fn reset(&mut self, seed: u64) -> Result<Observation, SimError> {
        *self = Self::build(self.config.clone(), seed)?;
        Ok(self.settle())
    }

    /// The configuration this world was built from.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The seed of the current episode.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Pinhole intrinsics of the camera.
    pub fn camera_intrinsics(&self) -> CameraIntrinsics {
        self.camera.intrinsics
    }

    /// Counters of corrected input.
    pub fn stats(&self) -> SimStats {
        SimStats {
            steps: self.steps,
            rejected_actions: self.rejected_actions,
        }
    }

    /// Current sim time.
    pub fn time(&self) -> SimTime {
        self.stamp
    }

    /// Lets the world come to rest for a quarter of a second before time zero, so the first
    /// observation shows a robot standing on its wheels (and rapier's query pipeline has seen the
    /// scene, which it does only after a step).
    fn settle(&mut self) -> Observation {
        let substeps = (0.25 / self.world.integration_parameters.dt)
            .ceil()
            .max(1.0) as u32;
        for _ in 0..substeps {
            self.world.step();
            self.measure_wheels();
        }
        for wheel in &mut self.wheels {
            wheel.angle = 0.0;
            wheel.angle_at_last_odom = 0.0;
            wheel.torque_sum = 0.0;
        }
        self.last_linvel = self.world.bodies[self.chassis].linvel();
        self.observe()
    }

    /// Advances one control period under `action` (clamped to the robot's limits and
    /// acceleration-limited like a base controller) and returns what the robot senses after it.
    ///
    /// An action with a NaN or infinite component is replaced by a stop and counted in
    /// [`SimStats::rejected_actions`].
    pub fn step(&mut self, action: &Action) -> Observation {
        let robot = &self.config.robot;
        let target = if action.linear_x.is_finite() && action.angular_z.is_finite() {
            Action::new(
                action
                    .linear_x
                    .clamp(-robot.max_linear_mps, robot.max_linear_mps),
                action
                    .angular_z
                    .clamp(-robot.max_angular_radps, robot.max_angular_radps),
            )
        } else {
            self.rejected_actions += 1;
            Action::STOP
        };
        let period = self.config.control_period_s as f32;
        let step_toward = |from: f32, to: f32, max: f32| from + (to - from).clamp(-max, max);
        self.applied = Action::new(
            step_toward(
                self.applied.linear_x,
                target.linear_x,
                MAX_LINEAR_ACCEL * period,
            ),
            step_toward(
                self.applied.angular_z,
                target.angular_z,
                MAX_ANGULAR_ACCEL * period,
            ),
        );
        let half_track = robot.wheel_separation_m / 2.0;
        let wheel_targets = [
            (self.applied.linear_x - self.applied.angular_z * half_track) / robot.wheel_radius_m,
            (self.applied.linear_x + self.applied.angular_z * half_track) / robot.wheel_radius_m,
        ];
        for (wheel, target) in self.wheels.iter_mut().zip(wheel_targets) {
            wheel.torque_sum = 0.0;
            if let Some(joint) = self.world.impulse_joints.get_mut(wheel.joint, true) {
                joint
                    .data
                    .set_motor_velocity(JointAxis::AngX, target, MOTOR_GAIN);
            }
        }
        let dt = self.world.integration_parameters.dt as f64;
        for _ in 0..self.config.physics_substeps {
            self.world.step();
            self.measure_wheels();
            for wheel in &mut self.wheels {
                if let Some(joint) = self.world.impulse_joints.get(wheel.joint) {
                    wheel.torque_sum +=
                        joint.data.motors[JointAxis::AngX as usize].impulse as f64 / dt;
                }
            }
        }
        for (effort, wheel) in self.last_effort.iter_mut().zip(&self.wheels) {
            *effort = wheel.torque_sum / self.config.physics_substeps as f64;
        }
        self.steps += 1;
        self.stamp = SimTime::from_secs_f64(self.steps as f64 * self.config.control_period_s);
        self.observe()
    }

    /// Updates each wheel's unwrapped angle from the chassis–wheel relative rotation.
    fn measure_wheels(&mut self) {
        let chassis_rotation = self.world.bodies[self.chassis].rotation().to_owned();
        for wheel in &mut self.wheels {
            let wheel_rotation = *self.world.bodies[wheel.body].rotation();
            let relative = chassis_rotation.inverse() * wheel_rotation;
            let wrapped = 2.0 * (relative.y as f64).atan2(relative.w as f64);
            wheel.angle += wrap_angle(wrapped - wheel.last_wrapped_angle);
            wheel.last_wrapped_angle = wrapped;
        }
    }

    fn observe(&mut self) -> Observation {
        let period_s = self.config.control_period_s;
        let chassis = &self.world.bodies[self.chassis];
        let pose = *chassis.position();
        let rotation = pose.rotation;
        let linvel = chassis.linvel();
        let angvel = chassis.angvel();
        let noise = self.config.noise.clone();

        let mut frame =
            CameraFrame::blank(self.camera.intrinsics.width, self.camera.intrinsics.height);
        frame.stamp = self.stamp;
        self.camera.render(&pose, &self.scene(), &mut frame);

        // Joint states: relative wheel spin about the axle.
        let axle = rotation * Vector::Y;
        let mut velocity = [0.0f64; 2];
        for (out, wheel) in velocity.iter_mut().zip(&self.wheels) {
            let relative = self.world.bodies[wheel.body].angvel() - angvel;
            *out = relative.dot(axle) as f64 + gaussian(&mut self.rng, noise.joint_velocity_radps);
        }
        let joints = JointState {
            stamp: self.stamp,
            name: WHEEL_JOINT_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            position: self.wheels.iter().map(|w| w.angle).collect(),
            velocity: velocity.to_vec(),
            effort: self.last_effort.to_vec(),
        };

        // IMU: specific force and angular rate in the body frame.
        let accel_world =
            (linvel - self.last_linvel) / period_s as f32 + Vector::new(0.0, 0.0, GRAVITY);
        self.last_linvel = linvel;
        let accel_body = rotation.inverse() * accel_world;
        let gyro_body = rotation.inverse() * angvel;
        let imu = Imu {
            stamp: self.stamp,
            orientation: [
                rotation.x as f64,
                rotation.y as f64,
                rotation.z as f64,
                rotation.w as f64,
            ],
            angular_velocity: [0, 1, 2]
                .map(|i| gyro_body[i] as f64 + gaussian(&mut self.rng, noise.gyro_radps)),
            linear_acceleration: [0, 1, 2]
                .map(|i| accel_body[i] as f64 + gaussian(&mut self.rng, noise.accel_mps2)),
        };

        // Odometry from the measured wheel rotation, with noise and a mis-calibrated radius.
        let radius =
            self.config.robot.wheel_radius_m as f64 * (1.0 + noise.wheel_radius_error as f64);
        let separation = self.config.robot.wheel_separation_m as f64;
        let mut travelled = [0.0f64; 2];
        for (out, wheel) in travelled.iter_mut().zip(&mut self.wheels) {
            let turned = wheel.angle - wheel.angle_at_last_odom;
            wheel.angle_at_last_odom = wheel.angle;
            let noisy = turned * (1.0 + gaussian(&mut self.rng, noise.wheel_odometry_fraction));
            *out = noisy * radius;
        }
        let distance = (travelled[0] + travelled[1]) / 2.0;
        let turn = (travelled[1] - travelled[0]) / separation;
        let mid_yaw = self.odom.yaw + turn / 2.0;
        self.odom.x += distance * mid_yaw.cos();
        self.odom.y += distance * mid_yaw.sin();
        self.odom.yaw = wrap_angle(self.odom.yaw + turn);
        self.odom.linear_x = distance / period_s;
        self.odom.angular_z = turn / period_s;
        self.odom.stamp = self.stamp;

        Observation {
            stamp: self.stamp,
            frame,
            joints,
            imu,
            odom: self.odom.clone(),
            applied_action: self.applied,
        }
    }

    fn scene(&self) -> SceneRef<'_> {
        SceneRef {
            arena: &self.config.arena,
            look: &self.look,
            objects: &self.visible,
            bodies: &self.world.bodies,
            colliders: &self.world.colliders,
        }
    }

    /// The truth about the world, for evaluation and tests only.
    pub fn ground_truth(&self) -> GroundTruth {
        let chassis = &self.world.bodies[self.chassis];
        let robot_pose = pose2_of(chassis.position());
        let forward = chassis.rotation() * Vector::X;
        let wheel_contacts = [0, 1].map(|i| {
            self.world
                .narrow_phase
                .contact_pair(self.wheels[i].collider, self.floor_collider)
                .is_some_and(|pair| pair.has_any_active_contact())
        });
        let objects = self
            .objects
            .iter()
            .enumerate()
            .map(|(id, object)| {
                let body = &self.world.bodies[object.body];
                let t = body.translation();
                ObjectTruth {
                    id: id as u32,
                    shape: object.shape,
                    colour: object.colour,
                    position: [t.x as f64, t.y as f64, t.z as f64],
                    yaw: pose2_of(body.position()).yaw,
                }
            })
            .collect();
        GroundTruth {
            stamp: self.stamp,
            robot_pose,
            start_pose: self.start_pose,
            robot_linear_x: chassis.linvel().dot(forward) as f64,
            robot_angular_z: chassis.angvel().z as f64,
            wheel_contacts,
            objects,
        }
    }

    /// Teleports the robot (at rest) to `pose`, for tests and evaluation set-ups; the odometry
    /// frame is left alone. The next observation renders from there.
    pub fn set_robot_pose(&mut self, pose: Pose2) -> Result<(), SimError> {
        if !(pose.x.is_finite() && pose.y.is_finite() && pose.yaw.is_finite()) {
            return Err(SimError::InvalidPose("robot pose must be finite".into()));
        }
        let chassis_z = CHASSIS_CLEARANCE + CHASSIS_HALF_HEIGHT;
        let rotation = Rotation::from_rotation_z(pose.yaw as f32);
        let translation = Vector::new(pose.x as f32, pose.y as f32, chassis_z);
        let robot = &self.config.robot;
        let wheel_z = robot.wheel_radius_m - chassis_z;
        let mut moves = vec![(self.chassis, Pose::from_parts(translation, rotation))];
        for (wheel, side) in self.wheels.iter().zip([1.0f32, -1.0]) {
            let anchor = Vector::new(0.0, side * robot.wheel_separation_m / 2.0, wheel_z);
            moves.push((
                wheel.body,
                Pose::from_parts(translation + rotation * anchor, rotation),
            ));
        }
        for (handle, target) in moves {
            let body = &mut self.world.bodies[handle];
            body.set_position(target, true);
            body.set_linvel(Vector::ZERO, true);
            body.set_angvel(Vector::ZERO, true);
        }
        self.applied = Action::STOP;
        for wheel in &mut self.wheels {
            wheel.last_wrapped_angle = 0.0;
        }
        Ok(())
    }

    /// Moves object `id` (at rest) to `(x, y)` on the floor with heading `yaw`.
    pub fn set_object_pose(&mut self, id: usize, x: f64, y: f64, yaw: f64) -> Result<(), SimError> {
        if !(x.is_finite() && y.is_finite() && yaw.is_finite()) {
            return Err(SimError::InvalidPose("object pose must be finite".into()));
        }
        let Some(object) = self.objects.get(id) else {
            return Err(SimError::InvalidPose(format!(
                "no object {id}; this episode has {}",
                self.objects.len()
            )));
        };
        let half = self.config.objects.half_size_m;
        let body = &mut self.world.bodies[object.body];
        body.set_position(
            Pose::from_parts(
                Vector::new(x as f32, y as f32, half),
                Rotation::from_rotation_z(yaw as f32),
            ),
            true,
        );
        body.set_linvel(Vector::ZERO, true);
        body.set_angvel(Vector::ZERO, true);
        Ok(())
    }

    /// Renders the camera from the current state without advancing time.
    pub fn render(&self) -> CameraFrame {
        let mut frame =
            CameraFrame::blank(self.camera.intrinsics.width, self.camera.intrinsics.height);
        frame.stamp = self.stamp;
        self.render_into(&mut frame);
        frame
    }

    /// Renders the camera from the current state into an existing frame of the right size.
    pub fn render_into(&self, frame: &mut CameraFrame) {
        let chassis = &self.world.bodies[self.chassis];
        self.camera.render(chassis.position(), &self.scene(), frame);
    }

    /// Casts the camera's rays through rapier's own query pipeline (every collider except the
    /// robot's) and returns each pixel's depth. Slow; it exists to check the fast renderer.
    pub fn reference_depth(&self) -> Vec<f32> {
        let chassis = &self.world.bodies[self.chassis];
        let camera_pose = *chassis.position() * self.camera.mount;
        let robot_bodies = [self.chassis, self.wheels[0].body, self.wheels[1].body];
        let predicate = |_: ColliderHandle, collider: &Collider| {
            collider.parent().is_none_or(|p| !robot_bodies.contains(&p))
        };
        let filter = QueryFilter::default().predicate(&predicate);
        let query = self.world.query_pipeline_with_filter(filter);
        let intrinsics = self.camera.intrinsics;
        let mut depth = Vec::with_capacity((intrinsics.width * intrinsics.height) as usize);
        for v in 0..intrinsics.height {
            for u in 0..intrinsics.width {
                let local = Vector::new(
                    1.0,
                    -((u as f32 + 0.5) - intrinsics.cx) / intrinsics.fx,
                    -((v as f32 + 0.5) - intrinsics.cy) / intrinsics.fy,
                )
                .normalize();
                let dir = camera_pose.rotation * local;
                let ray = Ray::new(camera_pose.translation, dir);
                let max = self.config.camera.max_depth_m * 4.0;
                depth.push(match query.cast_ray(&ray, max, true) {
                    Some((_, toi)) if toi * local.x <= self.config.camera.max_depth_m => {
                        toi * local.x
                    }
                    _ => f32::INFINITY,
                });
            }
        }
        depth
    }
}

fn pose2_of(pose: &Pose) -> Pose2 {
    let q = pose.rotation;
    let yaw = (2.0 * (q.w * q.z + q.x * q.y)).atan2(1.0 - 2.0 * (q.y * q.y + q.z * q.z));
    Pose2 {
        x: pose.translation.x as f64,
        y: pose.translation.y as f64,
        yaw: yaw as f64,
    }
}

fn gaussian(rng: &mut ChaCha8Rng, std: f32) -> f64 {
    if std <= 0.0 {
        return 0.0;
    }
    Normal::new(0.0, std as f64).map_or(0.0, |n| n.sample(rng))
}
