//! Held-out frames: exploration of unseen worlds through the same collector as `autodidact run`,
//! each frame kept with the ground truth the model never sees.

use std::sync::Arc;

use autodidact_learn::baseline::PixelBaseline;
use autodidact_learn::stats::median;
use autodidact_learn::{EncoderSnapshot, MemoryGraph, TrainerConfig, Transition};
use autodidact_nodes::sim::sensor_messages;
use autodidact_nodes::{Collector, CollectorConfig, Frame, ManualClock};
use autodidact_sim::{
    Action, ExplorationConfig, ExplorationPolicy, Observation, Pose2, Sim, SimConfig,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::EvalError;

/// Clearance a robot position keeps from the walls and from every object, metres.
const CLEARANCE_M: f64 = 0.45;

/// Whether a robot at `(x, y)` keeps clear of the walls and of every object.
pub(crate) fn free(sim: &Sim, x: f64, y: f64) -> bool {
    let arena = &sim.config().arena;
    let inside = x.abs() <= f64::from(arena.size_x_m) / 2.0 - CLEARANCE_M
        && y.abs() <= f64::from(arena.size_y_m) / 2.0 - CLEARANCE_M;
    inside
        && sim
            .ground_truth()
            .objects
            .iter()
            .all(|o| (o.position[0] - x).hypot(o.position[1] - y) >= CLEARANCE_M)
}

/// A free pose with any heading, drawn from `rng`.
pub(crate) fn random_free_pose(sim: &Sim, rng: &mut ChaCha8Rng) -> Result<Pose2, EvalError> {
    let arena = &sim.config().arena;
    let (half_x, half_y) = (
        f64::from(arena.size_x_m) / 2.0,
        f64::from(arena.size_y_m) / 2.0,
    );
    let pi = std::f64::consts::PI;
    for _ in 0..10_000 {
        let pose = Pose2 {
            x: rng.random_range(-half_x..half_x),
            y: rng.random_range(-half_y..half_y),
            yaw: rng.random_range(-pi..pi),
        };
        if free(sim, pose.x, pose.y) {
            return Ok(pose);
        }
    }
    Err(EvalError::Data(format!(
        "no free pose found in world {}",
        sim.seed()
    )))
}

/// One held-out frame with what the model does not see.
pub(crate) struct Record {
    pub(crate) transition: Transition,
    /// `[x, y, sin yaw, cos yaw]`.
    pub(crate) pose: [f32; 4],
    /// Nearest object in the robot frame, `[x ahead, y left]`, metres.
    pub(crate) nearest_object: [f32; 2],
}

impl Record {
    /// Where the frame truly was taken, as a planar pose.
    pub(crate) fn true_pose(&self) -> autodidact_learn::OdometryPose {
        autodidact_learn::OdometryPose::new(
            f64::from(self.pose[0]),
            f64::from(self.pose[1]),
            f64::from(self.pose[2]).atan2(f64::from(self.pose[3])),
        )
    }
}

/// The collector settings for `sim`'s camera and the model's proprio.
pub(crate) fn collector_config(
    sim: &SimConfig,
    trainer: &TrainerConfig,
) -> Result<CollectorConfig, EvalError> {
    let config = CollectorConfig {
        width: sim.camera.width,
        height: sim.camera.height,
        ..CollectorConfig::default()
    };
    let image = &trainer.model.encoder.image;
    if (image.width, image.height) != (config.width as usize, config.height as usize) {
        return Err(EvalError::Mismatch(format!(
            "the model takes {}x{} images, the sim camera is {}x{} (set [sim.camera] to match)",
            image.width, image.height, config.width, config.height
        )));
    }
    if config.proprio.dim() != trainer.model.encoder.proprio_dim {
        return Err(EvalError::Mismatch(format!(
            "the model takes {} proprio values, the collector makes {}",
            trainer.model.encoder.proprio_dim,
            config.proprio.dim()
        )));
    }
    Ok(config)
}

/// Turns sim observations into frames exactly as the graph's collector does.
pub(crate) struct Eyes {
    collector: Collector,
    clock: Arc<ManualClock>,
    stamp_ns: u64,
    period_ns: u64,
}

impl Eyes {
    pub(crate) fn new(config: &CollectorConfig, sim: &SimConfig) -> Self {
        let clock = Arc::new(ManualClock::new());
        Self {
            collector: Collector::new(config.clone(), clock.clone()),
            clock,
            stamp_ns: 0,
            period_ns: (sim.control_period_s * 1e9) as u64,
        }
    }

    /// The frame the collector makes of `observation`, stamped one period after the last.
    pub(crate) fn see(&mut self, observation: &Observation) -> Result<Frame, EvalError> {
        self.stamp_ns += self.period_ns;
        self.clock.set_ns(self.stamp_ns);
        let mut frame = None;
        for message in sensor_messages(observation, self.stamp_ns) {
            if let Some(made) = self.collector.on_message(&message).frame {
                frame = Some(made);
            }
        }
        frame.ok_or_else(|| EvalError::Data("the collector dropped a simulator frame".into()))
    }
}

/// Explores the world of `seed` for `steps` from its start pose by `policy` seeded by `seed`
/// (as training does), keeping each frame with its ground truth. The robot's own drives take
/// the default policy; held-out episodes [`ExplorationConfig::held_out`], which stays what the
/// benchmark's scores were measured on when the robot's own exploration changes.
pub(crate) fn explore(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    seed: u64,
    steps: usize,
    policy: ExplorationConfig,
) -> Result<Vec<Record>, EvalError> {
    drive(sim_config, collector, seed, None, steps, policy)
}

/// A drive through the world of `world` the robot never made, by
/// [`ExplorationConfig::held_out`]: it starts from a free pose drawn by `drive_seed` and the
/// policy is seeded by it.
pub(crate) fn explore_anew(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    world: u64,
    drive_seed: u64,
    steps: usize,
) -> Result<Vec<Record>, EvalError> {
    drive(
        sim_config,
        collector,
        world,
        Some(drive_seed),
        steps,
        ExplorationConfig::held_out(),
    )
}

fn drive(
    sim_config: &SimConfig,
    collector: &CollectorConfig,
    world: u64,
    drive_seed: Option<u64>,
    steps: usize,
    exploration: ExplorationConfig,
) -> Result<Vec<Record>, EvalError> {
    let mut sim = Sim::new(sim_config)?;
    let mut observation = sim.reset(world)?;
    let policy_seed = match drive_seed {
        Some(seed) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            sim.set_robot_pose(random_free_pose(&sim, &mut rng)?)?;
            observation = sim.step(&Action::STOP);
            seed
        }
        None => world,
    };
    let mut eyes = Eyes::new(collector, sim_config);
    let mut policy = ExplorationPolicy::new(exploration, policy_seed);
    let period = sim_config.control_period_s as f32;
    let mut records = Vec::with_capacity(steps);
    for _ in 0..steps {
        let frame = eyes.see(&observation)?;
        let truth = sim.ground_truth();
        let pose = truth.robot_pose;
        let nearest_object = truth
            .objects
            .iter()
            .map(|o| {
                pose.relative(&Pose2 {
                    x: o.position[0],
                    y: o.position[1],
                    yaw: 0.0,
                })
            })
            .min_by(|a, b| a.x.hypot(a.y).total_cmp(&b.x.hypot(b.y)))
            .map_or([0.0; 2], |p| [p.x as f32, p.y as f32]);
        let action = policy.act(&observation, period);
        records.push(Record {
            transition: Transition {
                source: 0,
                episode: world,
                frame_stamp_ns: frame.stamp_ns,
                image: frame.image,
                proprio: frame.proprio,
                action: [action.linear_x, action.angular_z],
                odometry: frame.odometry,
            },
            pose: [
                pose.x as f32,
                pose.y as f32,
                pose.yaw.sin() as f32,
                pose.yaw.cos() as f32,
            ],
            nearest_object,
        });
        observation = sim.step(&action);
    }
    Ok(records)
}

/// What turns a frame into features: a model's encoder, or raw pixels.
#[derive(Clone, Copy)]
pub(crate) enum Features<'a> {
    /// The embedding of a model.
    Model(&'a EncoderSnapshot),
    /// The image averaged and projected (`[width, height]` of the camera).
    Pixels(&'a PixelBaseline, [usize; 2]),
}

pub(crate) fn embed_records(
    features: Features<'_>,
    records: &[&Record],
) -> Result<Vec<Vec<f32>>, EvalError> {
    let transitions: Vec<&Transition> = records.iter().map(|r| &r.transition).collect();
    match features {
        Features::Model(encoder) => embed_transitions(encoder, &transitions),
        Features::Pixels(pixels, [width, height]) => Ok(transitions
            .iter()
            .map(|t| pixels.features(&t.image, width, height))
            .collect::<Result<_, _>>()?),
    }
}

/// What the robot remembers of a world: the frames of a drive through it, as the collector made
/// them, and (for the report only, never for the planner) where each was taken.
pub(crate) struct WorldMemory {
    pub(crate) frames: Vec<Frame>,
    /// `[x, y]`, metres.
    pub(crate) positions: Vec<[f64; 2]>,
    /// Heading of each frame, radians.
    pub(crate) headings: Vec<f64>,
    /// Median over the frames of how far the memory's odometry had drifted from the truth,
    /// metres ([`odometry_drift`]); `None` without odometry.
    pub(crate) odometry_drift_m: Option<f64>,
}

/// Distances between `b` and each `a` moved by the rigid motion (rotation and translation) that
/// best fits the `a`s to the `b`s in least squares; `None` for fewer than 2 pairs.
pub(crate) fn rigid_fit_errors(pairs: &[([f64; 2], [f64; 2])]) -> Option<Vec<f64>> {
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let mean = |pick: fn(&([f64; 2], [f64; 2])) -> f64| pairs.iter().map(pick).sum::<f64>() / n;
    let (ax, ay, bx, by) = (
        mean(|p| p.0[0]),
        mean(|p| p.0[1]),
        mean(|p| p.1[0]),
        mean(|p| p.1[1]),
    );
    let (mut dot, mut cross) = (0.0, 0.0);
    for ([x, y], [u, v]) in pairs {
        let (x, y, u, v) = (x - ax, y - ay, u - bx, v - by);
        dot += x * u + y * v;
        cross += x * v - y * u;
    }
    let (sin, cos) = cross.atan2(dot).sin_cos();
    Some(
        pairs
            .iter()
            .map(|([x, y], [u, v])| {
                let (x, y) = (x - ax, y - ay);
                let (fx, fy) = (cos * x - sin * y + bx, sin * x + cos * y + by);
                (fx - u).hypot(fy - v)
            })
            .collect(),
    )
}

/// A remembered view counts for a pose when it was taken facing within this of its heading:
/// the camera then sees much of what it sees there.
pub(crate) const COVERAGE_TURN_DEG: f64 = 30.0;

/// Metres between where the odometry puts each frame (aligned with the truth at the first
/// frame) and where the robot truly was: how far the memory's odometry has drifted.
pub(crate) fn odometry_drift(records: &[Record]) -> Vec<f64> {
    let Some((first, odometry)) = records
        .first()
        .and_then(|r| r.transition.odometry.map(|o| (r.true_pose(), o)))
    else {
        return Vec::new();
    };
    let align = first.compose(&odometry.inverse());
    records
        .iter()
        .filter_map(|r| {
            r.transition
                .odometry
                .map(|o| align.compose(&o).distance(&r.true_pose()))
        })
        .collect()
}

impl WorldMemory {
    pub(crate) fn of(records: &[Record]) -> Self {
        let frame_id: Arc<str> = Arc::from("camera");
        Self {
            frames: records
                .iter()
                .map(|r| Frame {
                    stamp_ns: r.transition.frame_stamp_ns,
                    episode: r.transition.episode,
                    image: r.transition.image.clone(),
                    proprio: r.transition.proprio.clone(),
                    frame_id: frame_id.clone(),
                    odometry: r.transition.odometry,
                })
                .collect(),
            positions: records
                .iter()
                .map(|r| [f64::from(r.pose[0]), f64::from(r.pose[1])])
                .collect(),
            headings: records
                .iter()
                .map(|r| f64::from(r.pose[2]).atan2(f64::from(r.pose[3])))
                .collect(),
            odometry_drift_m: median(&odometry_drift(records)),
        }
    }

    /// How far the places of `graph` (built over these frames) lie from where their frames were
    /// truly taken: the median distance, after the rigid motion that best fits the places to
    /// the truth (least squares). Places are where the optimised map puts them when the graph
    /// has one ([`MemoryGraph::map_pose`]; the places of the map's first part, each part has
    /// its own frame), else where the frames' odometry does (the first episode's). `None` for
    /// fewer than 2 places with a pose.
    pub(crate) fn map_error_m(&self, graph: &MemoryGraph) -> Option<f64> {
        let mapped = graph.config().pose_graph.enabled;
        let pose = |i: usize| match mapped {
            true => graph.place_pose(i),
            false => {
                let node = graph.nodes().get(i)?;
                Some((node.episode, self.frames.get(node.frame)?.odometry?))
            }
        };
        let first = (0..graph.nodes().len()).find_map(|i| pose(i).map(|(frame, _)| frame))?;
        let pairs: Vec<([f64; 2], [f64; 2])> = graph
            .nodes()
            .iter()
            .enumerate()
            .filter_map(|(i, node)| {
                let (_, pose) = pose(i).filter(|(frame, _)| *frame == first)?;
                Some(([pose.x, pose.y], *self.positions.get(node.frame)?))
            })
            .collect();
        rigid_fit_errors(&pairs).and_then(|errors| median(&errors))
    }

    /// Where frame `frame` of the drive was truly taken; `None` past its end.
    pub(crate) fn pose(&self, frame: usize) -> Option<Pose2> {
        let [x, y] = *self.positions.get(frame)?;
        Some(Pose2 {
            x,
            y,
            yaw: *self.headings.get(frame)?,
        })
    }

    /// How well the memory covers `pose`: metres to the nearest frame taken facing within
    /// [`COVERAGE_TURN_DEG`] of its heading. `None` when no frame faces that way.
    pub(crate) fn coverage_m(&self, pose: &Pose2) -> Option<f64> {
        let turn = COVERAGE_TURN_DEG.to_radians();
        self.positions
            .iter()
            .zip(&self.headings)
            .filter(|(_, heading)| autodidact_sim::wrap_angle(*heading - pose.yaw).abs() <= turn)
            .map(|([x, y], _)| (x - pose.x).hypot(y - pose.y))
            .min_by(f64::total_cmp)
    }
}

/// Embeddings of `transitions`' frames, in batches.
pub(crate) fn embed_transitions(
    encoder: &EncoderSnapshot,
    transitions: &[&Transition],
) -> Result<Vec<Vec<f32>>, EvalError> {
    let mut out = Vec::with_capacity(transitions.len());
    for chunk in transitions.chunks(128) {
        let images: Vec<&[u8]> = chunk.iter().map(|t| &*t.image).collect();
        let proprio: Vec<&[f32]> = chunk.iter().map(|t| t.proprio.as_slice()).collect();
        out.extend(encoder.embed_batch(&images, &proprio)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_the_distance_to_the_nearest_view_facing_the_same_way() {
        let memory = WorldMemory {
            frames: Vec::new(),
            // Facing +x at the origin, facing −x 0.5 m ahead of it, facing +x 2 m away.
            positions: vec![[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]],
            headings: vec![0.0, std::f64::consts::PI, 0.0],
            odometry_drift_m: None,
        };
        let at = |x, yaw: f64| Pose2 {
            x,
            y: 0.0,
            yaw: yaw.to_radians(),
        };
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        // At 0.6 m facing +x: the −x view 0.1 m away faces the other way.
        assert!(close(memory.coverage_m(&at(0.6, 0.0)), 0.6));
        // 25° off still counts; facing −x (through ±180°) finds the view that faces −x.
        assert!(close(memory.coverage_m(&at(1.8, 25.0)), 0.2));
        assert!(close(memory.coverage_m(&at(0.6, -175.0)), 0.1));
        // Nothing faces +y.
        assert_eq!(memory.coverage_m(&at(0.0, 90.0)), None);
    }

    #[test]
    fn a_map_is_scored_after_the_rigid_motion_that_fits_it_to_the_truth_best() {
        let truth: Vec<[f64; 2]> = (0..10)
            .map(|i| {
                let angle = f64::from(i) * 0.6;
                [1.5 * angle.cos() + 0.1 * f64::from(i), 1.5 * angle.sin()]
            })
            .collect();
        // The same places turned by 40° and moved: a perfect map in another frame.
        let (sin, cos) = 40f64.to_radians().sin_cos();
        let moved: Vec<([f64; 2], [f64; 2])> = truth
            .iter()
            .map(|&[x, y]| ([cos * x - sin * y + 3.0, sin * x + cos * y - 1.0], [x, y]))
            .collect();
        let errors = rigid_fit_errors(&moved).expect("errors");
        assert!(errors.iter().all(|e| *e < 1e-9), "{errors:?}");
        // One place off by 0.4 m: it is the worst, and the others stay near.
        let mut bent = moved.clone();
        bent[2].0[0] += 0.4;
        let errors = rigid_fit_errors(&bent).expect("errors");
        let worst = errors.iter().copied().fold(0.0, f64::max);
        assert_eq!(errors[2], worst);
        assert!(worst > 0.2 && worst <= 0.4 + 1e-9, "{errors:?}");
        assert_eq!(rigid_fit_errors(&moved[..1]), None);
    }
}
