//! Simulator configuration: serde with defaults, validated before a world is built.

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Everything that shapes a simulated world. Every field has a default, so `{}` is a valid
/// configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Length of one `step()` in seconds of sim time: one camera frame and one proprio sample.
    pub control_period_s: f64,
    /// Physics sub-steps per control period (rapier `dt = control_period_s / substeps`).
    pub physics_substeps: u32,
    /// The walled arena.
    pub arena: ArenaConfig,
    /// The differential-drive robot.
    pub robot: RobotConfig,
    /// The forward-facing camera.
    pub camera: CameraConfig,
    /// Pushable objects.
    pub objects: ObjectsConfig,
    /// Light.
    pub lighting: LightingConfig,
    /// Sensor noise and odometry drift.
    pub noise: NoiseConfig,
    /// What a seed varies besides object placement and start pose.
    pub randomization: RandomizationConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            control_period_s: 0.05,
            physics_substeps: 5,
            arena: ArenaConfig::default(),
            robot: RobotConfig::default(),
            camera: CameraConfig::default(),
            objects: ObjectsConfig::default(),
            lighting: LightingConfig::default(),
            noise: NoiseConfig::default(),
            randomization: RandomizationConfig::default(),
        }
    }
}

/// The arena: a rectangle of four walls on a patterned floor, centred on the world origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArenaConfig {
    /// Inner size along world x, metres.
    pub size_x_m: f32,
    /// Inner size along world y, metres.
    pub size_y_m: f32,
    /// Wall height, metres.
    pub wall_height_m: f32,
    /// Side of one floor checker tile, metres.
    pub floor_tile_m: f32,
    /// Albedo (linear RGB in `[0, 1]`) of the walls facing `-x`, `+x`, `-y`, `+y`, i.e. the walls
    /// at `x = +size_x/2`, `x = -size_x/2`, `y = +size_y/2`, `y = -size_y/2`.
    pub wall_colours: [[f32; 3]; 4],
    /// Period of the vertical stripes on each wall (same order), metres; stripes alternate
    /// between full albedo and `stripe_shade` × albedo.
    pub wall_stripe_period_m: [f32; 4],
    /// Brightness of the darker stripes, `(0, 1]`.
    pub stripe_shade: f32,
    /// Albedo of the two kinds of floor tile.
    pub floor_colours: [[f32; 3]; 2],
    /// Colour of the sky (what rays above the walls see).
    pub sky_colour: [f32; 3],
}

impl Default for ArenaConfig {
    fn default() -> Self {
        Self {
            size_x_m: 4.0,
            size_y_m: 4.0,
            wall_height_m: 0.6,
            floor_tile_m: 0.5,
            wall_colours: [
                [0.85, 0.25, 0.20],
                [0.20, 0.35, 0.85],
                [0.25, 0.70, 0.30],
                [0.85, 0.75, 0.20],
            ],
            wall_stripe_period_m: [0.25, 0.4, 0.6, 0.9],
            stripe_shade: 0.7,
            floor_colours: [[0.55, 0.55, 0.55], [0.35, 0.35, 0.38]],
            sky_colour: [0.75, 0.85, 0.95],
        }
    }
}

/// Geometry and limits of the differential-drive robot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RobotConfig {
    /// Wheel radius, metres.
    pub wheel_radius_m: f32,
    /// Distance between the two wheel contact points, metres.
    pub wheel_separation_m: f32,
    /// Chassis length (x), metres.
    pub chassis_length_m: f32,
    /// Chassis width (y), metres.
    pub chassis_width_m: f32,
    /// Chassis mass, kilograms.
    pub chassis_mass_kg: f32,
    /// Largest commanded forward speed, m/s (larger commands are clamped).
    pub max_linear_mps: f32,
    /// Largest commanded turn rate, rad/s (larger commands are clamped).
    pub max_angular_radps: f32,
    /// Largest wheel motor torque, N·m.
    pub max_wheel_torque_nm: f32,
}

impl Default for RobotConfig {
    fn default() -> Self {
        Self {
            wheel_radius_m: 0.05,
            wheel_separation_m: 0.26,
            chassis_length_m: 0.30,
            chassis_width_m: 0.20,
            chassis_mass_kg: 2.0,
            max_linear_mps: 0.5,
            max_angular_radps: 2.0,
            max_wheel_torque_nm: 2.0,
        }
    }
}

/// Most rays per pixel side ([`CameraConfig::rays_per_side`]): 8 × 8 = 64 rays a pixel.
pub const MAX_RAYS_PER_SIDE: u32 = 8;

/// Pinhole camera mounted on the front of the chassis, looking along the robot's x axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Horizontal field of view, degrees (square pixels; the vertical one follows).
    pub horizontal_fov_deg: f32,
    /// Height of the optical centre above the floor, metres.
    pub height_m: f32,
    /// Downward tilt of the optical axis, degrees.
    pub tilt_down_deg: f32,
    /// Farthest depth reported, metres; farther (or open sky) reads `+inf`.
    pub max_depth_m: f32,
    /// Rays per pixel along each side: `n × n` rays spread evenly over the pixel, their
    /// colours averaged, as a real sensor's pixel integrates the light over its area (depth:
    /// the mean of the rays that hit within `max_depth_m`, `+inf` where none does). 1 (the
    /// default) casts one ray through each pixel's centre, which aliases fine patterns (a
    /// striped wall seen from afar) at small image sizes.
    pub rays_per_side: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            width: 64,
            height: 64,
            horizontal_fov_deg: 90.0,
            height_m: 0.15,
            tilt_down_deg: 5.0,
            max_depth_m: 20.0,
            rays_per_side: 1,
        }
    }
}

/// The pushable objects scattered in the arena.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectsConfig {
    /// Number of objects (with `randomization.object_count`, the maximum).
    pub count: u32,
    /// With `randomization.object_count`, the minimum number of objects.
    pub min_count: u32,
    /// Half the side of an object's footprint, metres.
    pub half_size_m: f32,
    /// Object mass, kilograms.
    pub mass_kg: f32,
    /// Clearance kept between objects, walls and the robot's start pose when placing, metres.
    pub clearance_m: f32,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        Self {
            count: 4,
            min_count: 2,
            half_size_m: 0.1,
            mass_kg: 0.5,
            clearance_m: 0.25,
        }
    }
}

/// One directional light plus ambient light; shading is `albedo × (ambient + diffuse × max(0, n·l))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LightingConfig {
    /// Ambient level, `[0, 1]`.
    pub ambient: f32,
    /// Directional light strength, `[0, 1]`.
    pub diffuse: f32,
    /// Direction towards the light: azimuth from world +x, degrees.
    pub azimuth_deg: f32,
    /// Direction towards the light: elevation above the floor, degrees.
    pub elevation_deg: f32,
}

impl Default for LightingConfig {
    fn default() -> Self {
        Self {
            ambient: 0.55,
            diffuse: 0.45,
            azimuth_deg: 30.0,
            elevation_deg: 50.0,
        }
    }
}

/// Sensor noise (standard deviations, Gaussian) and odometry calibration error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoiseConfig {
    /// Noise on each wheel's measured rotation per control period, as a fraction of it.
    pub wheel_odometry_fraction: f32,
    /// Relative error of the wheel radius the odometry believes in (systematic drift).
    pub wheel_radius_error: f32,
    /// Gyro noise, rad/s.
    pub gyro_radps: f32,
    /// Accelerometer noise, m/s².
    pub accel_mps2: f32,
    /// Wheel joint velocity noise, rad/s.
    pub joint_velocity_radps: f32,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            wheel_odometry_fraction: 0.01,
            wheel_radius_error: 0.0,
            gyro_radps: 0.005,
            accel_mps2: 0.05,
            joint_velocity_radps: 0.01,
        }
    }
}

impl NoiseConfig {
    /// No noise and no drift at all.
    pub fn none() -> Self {
        Self {
            wheel_odometry_fraction: 0.0,
            wheel_radius_error: 0.0,
            gyro_radps: 0.0,
            accel_mps2: 0.0,
            joint_velocity_radps: 0.0,
        }
    }
}

/// Domain randomisation: what `reset(seed)` varies besides object placement and start pose.
/// Off by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomizationConfig {
    /// Jitter wall, floor and object colours.
    pub colours: bool,
    /// Vary light direction, intensity and ambient level.
    pub lighting: bool,
    /// Draw the object count uniformly from `[objects.min_count, objects.count]`.
    pub object_count: bool,
}

impl RandomizationConfig {
    /// Everything randomised, for held-out evaluation worlds.
    pub fn all() -> Self {
        Self {
            colours: true,
            lighting: true,
            object_count: true,
        }
    }
}

fn check(ok: bool, field: &'static str, reason: &str) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::InvalidConfig {
            field,
            reason: reason.to_owned(),
        })
    }
}

fn positive(value: f32, field: &'static str) -> Result<(), SimError> {
    check(
        value.is_finite() && value > 0.0,
        field,
        &format!("must be a finite number > 0, got {value}"),
    )
}

fn non_negative(value: f32, field: &'static str) -> Result<(), SimError> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        &format!("must be a finite number >= 0, got {value}"),
    )
}

/// Objects beyond this count cannot be placed with the default clearance in any sane arena and
/// would only slow the renderer down.
pub const MAX_OBJECTS: u32 = 64;
/// Largest image side accepted.
pub const MAX_IMAGE_SIDE: u32 = 4096;

impl SimConfig {
    /// Checks every field; the first problem found is returned as [`SimError::InvalidConfig`].
    pub fn validate(&self) -> Result<(), SimError> {
        check(
            self.control_period_s.is_finite() && self.control_period_s > 0.0,
            "control_period_s",
            &format!("must be a finite number > 0, got {}", self.control_period_s),
        )?;
        check(
            (1..=1000).contains(&self.physics_substeps),
            "physics_substeps",
            &format!("must be in 1..=1000, got {}", self.physics_substeps),
        )?;
        let a = &self.arena;
        positive(a.size_x_m, "arena.size_x_m")?;
        positive(a.size_y_m, "arena.size_y_m")?;
        positive(a.wall_height_m, "arena.wall_height_m")?;
        positive(a.floor_tile_m, "arena.floor_tile_m")?;
        let colours = a.wall_colours.iter().chain(a.floor_colours.iter());
        check(
            colours
                .chain(std::iter::once(&a.sky_colour))
                .flatten()
                .all(|c| (0.0..=1.0).contains(c)),
            "arena colours",
            "every colour channel must be in [0, 1]",
        )?;
        for period in a.wall_stripe_period_m {
            positive(period, "arena.wall_stripe_period_m")?;
        }
        check(
            a.stripe_shade > 0.0 && a.stripe_shade <= 1.0,
            "arena.stripe_shade",
            &format!("must be in (0, 1], got {}", a.stripe_shade),
        )?;
        let l = &self.lighting;
        check(
            (0.0..=1.0).contains(&l.ambient) && (0.0..=1.0).contains(&l.diffuse),
            "lighting",
            "ambient and diffuse must be in [0, 1]",
        )?;
        check(
            l.azimuth_deg.is_finite() && l.elevation_deg.is_finite(),
            "lighting",
            "light direction must be finite",
        )?;
        let r = &self.robot;
        positive(r.wheel_radius_m, "robot.wheel_radius_m")?;
        positive(r.wheel_separation_m, "robot.wheel_separation_m")?;
        positive(r.chassis_length_m, "robot.chassis_length_m")?;
        positive(r.chassis_width_m, "robot.chassis_width_m")?;
        positive(r.chassis_mass_kg, "robot.chassis_mass_kg")?;
        positive(r.max_linear_mps, "robot.max_linear_mps")?;
        positive(r.max_angular_radps, "robot.max_angular_radps")?;
        positive(r.max_wheel_torque_nm, "robot.max_wheel_torque_nm")?;
        let footprint = r.chassis_length_m.max(r.wheel_separation_m) + 0.1;
        check(
            a.size_x_m > footprint && a.size_y_m > footprint,
            "arena",
            &format!("must be larger than the robot ({footprint} m) in both directions"),
        )?;
        let c = &self.camera;
        check(
            (1..=MAX_IMAGE_SIDE).contains(&c.width) && (1..=MAX_IMAGE_SIDE).contains(&c.height),
            "camera.width/height",
            &format!(
                "must be in 1..={MAX_IMAGE_SIDE} pixels, got {}x{}",
                c.width, c.height
            ),
        )?;
        check(
            c.horizontal_fov_deg.is_finite()
                && c.horizontal_fov_deg > 1.0
                && c.horizontal_fov_deg < 170.0,
            "camera.horizontal_fov_deg",
            &format!("must be in (1, 170) degrees, got {}", c.horizontal_fov_deg),
        )?;
        check(
            c.height_m.is_finite() && c.height_m > 0.0 && c.height_m < a.wall_height_m,
            "camera.height_m",
            &format!(
                "must be > 0 and below the walls ({} m), got {}",
                a.wall_height_m, c.height_m
            ),
        )?;
        check(
            c.tilt_down_deg.is_finite() && c.tilt_down_deg.abs() < 80.0,
            "camera.tilt_down_deg",
            &format!("must be in (-80, 80) degrees, got {}", c.tilt_down_deg),
        )?;
        positive(c.max_depth_m, "camera.max_depth_m")?;
        check(
            (1..=MAX_RAYS_PER_SIDE).contains(&c.rays_per_side),
            "camera.rays_per_side",
            &format!(
                "must be in 1..={MAX_RAYS_PER_SIDE}, got {}",
                c.rays_per_side
            ),
        )?;
        let o = &self.objects;
        check(
            o.count <= MAX_OBJECTS,
            "objects.count",
            &format!("at most {MAX_OBJECTS} objects, got {}", o.count),
        )?;
        check(
            !self.randomization.object_count || o.min_count <= o.count,
            "objects.min_count",
            &format!(
                "must not exceed objects.count ({}), got {}",
                o.count, o.min_count
            ),
        )?;
        positive(o.half_size_m, "objects.half_size_m")?;
        positive(o.mass_kg, "objects.mass_kg")?;
        non_negative(o.clearance_m, "objects.clearance_m")?;
        let n = &self.noise;
        non_negative(n.wheel_odometry_fraction, "noise.wheel_odometry_fraction")?;
        check(
            n.wheel_radius_error.is_finite() && n.wheel_radius_error.abs() < 0.5,
            "noise.wheel_radius_error",
            &format!("must be in (-0.5, 0.5), got {}", n.wheel_radius_error),
        )?;
        non_negative(n.gyro_radps, "noise.gyro_radps")?;
        non_negative(n.accel_mps2, "noise.accel_mps2")?;
        non_negative(n.joint_velocity_radps, "noise.joint_velocity_radps")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_the_defaults() {
        let parsed: SimConfig = serde_json::from_str("{}").expect("parse");
        assert_eq!(parsed, SimConfig::default());
        assert!(parsed.validate().is_ok());
    }

    #[test]
    fn unknown_field_is_rejected() {
        let parsed: Result<SimConfig, _> = serde_json::from_str(r#"{"camera": {"widht": 3}}"#);
        assert!(parsed.is_err());
    }

    #[test]
    fn invalid_values_name_the_field() {
        type Mutation = Box<dyn Fn(&mut SimConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("camera.width/height", Box::new(|c| c.camera.width = 0)),
            ("camera.width/height", Box::new(|c| c.camera.height = 0)),
            ("control_period_s", Box::new(|c| c.control_period_s = -0.1)),
            (
                "control_period_s",
                Box::new(|c| c.control_period_s = f64::NAN),
            ),
            ("physics_substeps", Box::new(|c| c.physics_substeps = 0)),
            ("arena.size_x_m", Box::new(|c| c.arena.size_x_m = f32::NAN)),
            (
                "robot.wheel_radius_m",
                Box::new(|c| c.robot.wheel_radius_m = -1.0),
            ),
            (
                "camera.horizontal_fov_deg",
                Box::new(|c| c.camera.horizontal_fov_deg = 180.0),
            ),
            (
                "objects.count",
                Box::new(|c| c.objects.count = MAX_OBJECTS + 1),
            ),
            (
                "noise.gyro_radps",
                Box::new(|c| c.noise.gyro_radps = f32::INFINITY),
            ),
            ("arena", Box::new(|c| c.arena.size_x_m = 0.2)),
        ];
        for (field, mutate) in cases {
            let mut config = SimConfig::default();
            mutate(&mut config);
            match config.validate() {
                Err(SimError::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("expected an error on {field}, got {other:?}"),
            }
        }
    }
}
