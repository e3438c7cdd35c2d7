//! The ego camera: one ray per pixel through the scene, with no GPU.
//!
//! The static arena (floor plane, four inner wall faces) is intersected analytically — it is exactly
//! the inner surface of the floor and wall colliders. Dynamic objects are intersected with their
//! own rapier/parry collider shapes, but only for pixels inside the screen rectangle that the
//! object's bounding sphere projects to. That culling is what makes a 64×64 frame cost tens of
//! microseconds instead of a millisecond (see `autodidact bench sim`).

use rapier3d::prelude::{ColliderHandle, ColliderSet, Pose, Ray, RigidBodySet, Vector};

use crate::config::{ArenaConfig, CameraConfig, LightingConfig};
use crate::types::{CameraFrame, CameraIntrinsics};

/// The look of one episode's world (after domain randomisation).
#[derive(Debug, Clone)]
pub(crate) struct Look {
    pub wall_colours: [[f32; 3]; 4],
    pub wall_stripe_period_m: [f32; 4],
    pub stripe_shade: f32,
    pub floor_colours: [[f32; 3]; 2],
    pub sky_colour: [f32; 3],
    pub ambient: f32,
    pub diffuse: f32,
    /// Unit vector towards the light.
    pub light_dir: Vector,
}

impl Look {
    pub fn from_config(arena: &ArenaConfig, lighting: &LightingConfig) -> Self {
        let (az, el) = (
            lighting.azimuth_deg.to_radians(),
            lighting.elevation_deg.to_radians(),
        );
        Self {
            wall_colours: arena.wall_colours,
            wall_stripe_period_m: arena.wall_stripe_period_m,
            stripe_shade: arena.stripe_shade,
            floor_colours: arena.floor_colours,
            sky_colour: arena.sky_colour,
            ambient: lighting.ambient,
            diffuse: lighting.diffuse,
            light_dir: Vector::new(az.cos() * el.cos(), az.sin() * el.cos(), el.sin()).normalize(),
        }
    }
}

/// Everything in the world a frame is rendered from.
pub(crate) struct SceneRef<'a> {
    pub arena: &'a ArenaConfig,
    pub look: &'a Look,
    pub objects: &'a [VisibleObject],
    pub bodies: &'a RigidBodySet,
    pub colliders: &'a ColliderSet,
}

/// An object the camera can see: its collider and colour.
#[derive(Debug, Clone)]
pub(crate) struct VisibleObject {
    pub collider: ColliderHandle,
    pub colour: [f32; 3],
    /// Radius of a sphere around the collider's origin that contains the whole shape.
    pub bounding_radius: f32,
}

/// A pinhole camera with its per-pixel rays precomputed in the mount frame.
#[derive(Debug, Clone)]
pub(crate) struct Camera {
    pub intrinsics: CameraIntrinsics,
    /// Pose of the camera mount (x along the optical axis, y left, z up) in the chassis frame.
    pub mount: Pose,
    /// Unit ray directions, mount frame: `rays_per_pixel` per pixel, pixel after pixel.
    ray_dirs: Vec<Vector>,
    /// Cosine between each ray and the optical axis (range → depth).
    axis_cos: Vec<f32>,
    /// Rays averaged into one pixel ([`CameraConfig::rays_per_side`] squared).
    rays_per_pixel: usize,
    max_depth_m: f32,
}

/// The rays of one pixel so far.
#[derive(Default)]
struct PixelSum {
    colour: [f32; 3],
    depth: f32,
    hits: u32,
}

/// A colour channel in `[0, 1]` as a byte, rounded.
fn to_byte(channel: f32) -> u8 {
    (channel.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// What a ray hit first.
struct Hit {
    distance: f32,
    normal: Vector,
    albedo: [f32; 3],
}

impl Camera {
    pub fn new(config: &CameraConfig, mount_translation: Vector) -> Self {
        let (width, height) = (config.width, config.height);
        let fx = (width as f32 / 2.0) / (config.horizontal_fov_deg.to_radians() / 2.0).tan();
        let intrinsics = CameraIntrinsics {
            width,
            height,
            fx,
            fy: fx,
            cx: width as f32 / 2.0,
            cy: height as f32 / 2.0,
        };
        // Positive pitch about +y tilts +x (forward) towards -z (down).
        let tilt =
            rapier3d::math::Rotation::from_axis_angle(Vector::Y, config.tilt_down_deg.to_radians());
        let mount = Pose::from_parts(mount_translation, tilt);
        let side = config.rays_per_side.max(1);
        let rays_per_pixel = (side * side) as usize;
        let mut ray_dirs = Vec::with_capacity((width * height) as usize * rays_per_pixel);
        let mut axis_cos = Vec::with_capacity(ray_dirs.capacity());
        // Each ray through the centre of one of the pixel's `side × side` equal cells.
        let cell = |i: u32| (i as f32 + 0.5) / side as f32;
        for v in 0..height {
            for u in 0..width {
                for (dv, du) in (0..side).flat_map(|dv| (0..side).map(move |du| (dv, du))) {
                    let local = Vector::new(
                        1.0,
                        -((u as f32 + cell(du)) - intrinsics.cx) / fx,
                        -((v as f32 + cell(dv)) - intrinsics.cy) / fx,
                    )
                    .normalize();
                    axis_cos.push(local.x);
                    ray_dirs.push(tilt * local);
                }
            }
        }
        Self {
            intrinsics,
            mount,
            ray_dirs,
            axis_cos,
            rays_per_pixel,
            max_depth_m: config.max_depth_m,
        }
    }

    /// Renders what the camera sees from a chassis at `chassis_pose` into `frame`.
    pub fn render(&self, chassis_pose: &Pose, scene: &SceneRef<'_>, frame: &mut CameraFrame) {
        let SceneRef {
            arena,
            look,
            objects,
            bodies,
            colliders,
        } = *scene;
        let width = self.intrinsics.width as usize;
        let camera_pose = *chassis_pose * self.mount;
        let origin = camera_pose.translation;
        // `ray_dirs` already include the mount's tilt: only the chassis rotation remains.
        let rotation = chassis_pose.rotation;

        // Cull: screen rectangle of each object's bounding sphere, and its current pose.
        let mut candidates: Vec<(usize, [i32; 4], Pose, Vector)> =
            Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            let Some(collider) = colliders.get(object.collider) else {
                continue;
            };
            let pose = match collider.parent().and_then(|h| bodies.get(h)) {
                Some(body) => {
                    *body.position()
                        * collider
                            .position_wrt_parent()
                            .copied()
                            .unwrap_or(Pose::IDENTITY)
                }
                None => *collider.position(),
            };
            if let Some(rect) =
                self.screen_rect(&camera_pose, pose.translation, object.bounding_radius)
            {
                candidates.push((index, rect, pose, pose.translation));
            }
        }

        let half_x = arena.size_x_m / 2.0;
        let half_y = arena.size_y_m / 2.0;
        let max_range = self.max_depth_m * 4.0;
        let mut pixel_sum = PixelSum::default();
        let rays = self.rays_per_pixel;
        for (ray, (dir_mount, axis_cos)) in self.ray_dirs.iter().zip(&self.axis_cos).enumerate() {
            let pixel = ray / rays;
            let dir = rotation * *dir_mount;
            let u = (pixel % width) as i32;
            let v = (pixel / width) as i32;
            let mut best = self.hit_arena(origin, dir, arena, look, half_x, half_y);
            for (index, rect, pose, centre) in &candidates {
                if u < rect[0] || u > rect[1] || v < rect[2] || v > rect[3] {
                    continue;
                }
                let object = &objects[*index];
                // Bounding-sphere reject before the exact shape test.
                let to_centre = *centre - origin;
                let along = to_centre.dot(dir);
                let miss2 = to_centre.length_squared() - along * along;
                let r2 = object.bounding_radius * object.bounding_radius;
                if miss2 > r2 {
                    continue;
                }
                let nearest = along - (r2 - miss2).sqrt();
                let limit = best.as_ref().map_or(max_range, |h| h.distance);
                if nearest > limit {
                    continue;
                }
                let Some(collider) = colliders.get(object.collider) else {
                    continue;
                };
                let ray = Ray::new(origin, dir);
                if let Some(hit) = collider
                    .shape()
                    .cast_ray_and_get_normal(pose, &ray, limit, true)
                    && hit.time_of_impact < limit
                {
                    best = Some(Hit {
                        distance: hit.time_of_impact,
                        normal: hit.normal,
                        albedo: object.colour,
                    });
                }
            }
            let (colour, depth) = match best {
                Some(hit) => {
                    let lambert = hit.normal.dot(look.light_dir).max(0.0);
                    let shade = look.ambient + look.diffuse * lambert;
                    let depth = hit.distance * axis_cos;
                    let depth = if depth <= self.max_depth_m {
                        depth
                    } else {
                        f32::INFINITY
                    };
                    (hit.albedo.map(|c| c * shade), depth)
                }
                None => (look.sky_colour, f32::INFINITY),
            };
            // A pixel's rays are summed here and averaged at its last ray (one ray a pixel:
            // its own colour and depth, exactly).
            if ray % rays == 0 {
                pixel_sum = PixelSum::default();
            }
            for (sum, channel) in pixel_sum.colour.iter_mut().zip(colour) {
                *sum += channel.clamp(0.0, 1.0);
            }
            if depth.is_finite() {
                pixel_sum.depth += depth;
                pixel_sum.hits += 1;
            }
            if ray % rays == rays - 1 {
                let rgb = &mut frame.rgb[pixel * 3..pixel * 3 + 3];
                for (byte, sum) in rgb.iter_mut().zip(pixel_sum.colour) {
                    *byte = to_byte(sum / rays as f32);
                }
                frame.depth[pixel] = if pixel_sum.hits > 0 {
                    pixel_sum.depth / pixel_sum.hits as f32
                } else {
                    f32::INFINITY
                };
            }
        }
    }

    /// The nearest hit on the floor or the inner face of a wall, if any.
    fn hit_arena(
        &self,
        origin: Vector,
        dir: Vector,
        arena: &ArenaConfig,
        look: &Look,
        half_x: f32,
        half_y: f32,
    ) -> Option<Hit> {
        let floor_t = if dir.z < 0.0 {
            -origin.z / dir.z
        } else {
            f32::INFINITY
        };
        let (wall_x_t, wall_x) = if dir.x > 0.0 {
            ((half_x - origin.x) / dir.x, 0)
        } else if dir.x < 0.0 {
            ((-half_x - origin.x) / dir.x, 1)
        } else {
            (f32::INFINITY, 0)
        };
        let (wall_y_t, wall_y) = if dir.y > 0.0 {
            ((half_y - origin.y) / dir.y, 2)
        } else if dir.y < 0.0 {
            ((-half_y - origin.y) / dir.y, 3)
        } else {
            (f32::INFINITY, 2)
        };
        let (wall_t, wall) = if wall_x_t <= wall_y_t {
            (wall_x_t, wall_x)
        } else {
            (wall_y_t, wall_y)
        };
        if floor_t <= wall_t {
            if !floor_t.is_finite() {
                return None;
            }
            let point = origin + dir * floor_t;
            let tile = ((point.x / arena.floor_tile_m).floor()
                + (point.y / arena.floor_tile_m).floor()) as i64;
            return Some(Hit {
                distance: floor_t,
                normal: Vector::Z,
                albedo: look.floor_colours[tile.rem_euclid(2) as usize],
            });
        }
        let point = origin + dir * wall_t;
        if !wall_t.is_finite() || point.z > arena.wall_height_m {
            return None;
        }
        let (normal, along) = match wall {
            0 => (Vector::NEG_X, point.y),
            1 => (Vector::X, point.y),
            2 => (Vector::NEG_Y, point.x),
            _ => (Vector::Y, point.x),
        };
        let stripe = (along / look.wall_stripe_period_m[wall]).floor() as i64;
        let shade = if stripe.rem_euclid(2) == 0 {
            1.0
        } else {
            look.stripe_shade
        };
        Some(Hit {
            distance: wall_t,
            normal,
            albedo: look.wall_colours[wall].map(|c| c * shade),
        })
    }

    /// Conservative pixel rectangle `[u_min, u_max, v_min, v_max]` covering a sphere, or `None`
    /// when the sphere is entirely behind the camera or off screen.
    fn screen_rect(&self, camera_pose: &Pose, centre: Vector, radius: f32) -> Option<[i32; 4]> {
        let local = camera_pose.inverse_transform_point(centre);
        if local.x < -radius {
            return None;
        }
        let (w, h) = (self.intrinsics.width as i32, self.intrinsics.height as i32);
        let full = [0, w - 1, 0, h - 1];
        let near = 1e-3;
        let (mut u_min, mut u_max, mut v_min, mut v_max) = (
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
        );
        // The sphere lies within the axis-aligned cube around it in camera coordinates; the cube's
        // corners bound the sphere's projection as long as every corner is in front.
        for corner in 0..8 {
            let offset = Vector::new(
                if corner & 1 == 0 { -radius } else { radius },
                if corner & 2 == 0 { -radius } else { radius },
                if corner & 4 == 0 { -radius } else { radius },
            );
            let p = local + offset;
            if p.x <= near {
                return Some(full);
            }
            let u = self.intrinsics.cx - self.intrinsics.fx * p.y / p.x;
            let v = self.intrinsics.cy - self.intrinsics.fy * p.z / p.x;
            u_min = u_min.min(u);
            u_max = u_max.max(u);
            v_min = v_min.min(v);
            v_max = v_max.max(v);
        }
        let rect = [
            (u_min.floor() as i32 - 1).max(0),
            (u_max.ceil() as i32 + 1).min(w - 1),
            (v_min.floor() as i32 - 1).max(0),
            (v_max.ceil() as i32 + 1).min(h - 1),
        ];
        (rect[0] <= rect[1] && rect[2] <= rect[3]).then_some(rect)
    }
}
