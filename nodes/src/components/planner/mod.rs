//! The planner node: goal-image latent MPC. It is given a goal image, and for every camera frame
//! it embeds the frame, plans with the latent dynamics towards the goal's embedding and sends
//! the first command (`cmd_vel`).
//!
//! The goal is kept as an image, not as an embedding. The encoder keeps learning, and an
//! embedding from an older weight version lives in another space, so the goal is embedded
//! again whenever the encoder's version changes.
//!
//! With a **memory** (frames the robot drove through, [`PlannerNode::set_memory`]) it reaches
//! goals beyond the latent MPC's horizon: the frames become a [`MemoryGraph`] (rebuilt for each
//! encoder version, like the goal's embedding), every frame is routed through it and the MPC
//! drives to the subgoal a few hops along the route instead of to the goal itself. Where the
//! frames carry wheel odometry (the memory's and the robot's own), the robot is placed in the
//! memory by odometry-consistent votes of what it sees ([`Localiser`]) instead of by its view
//! alone.

use autodidact_learn::baseline::PixelBaseline;
use autodidact_learn::inference::DynamicsSnapshot;
use autodidact_learn::memory::PlaceFeatures;
use autodidact_learn::{
    EncoderSnapshot, LatentPlanner, Localiser, MemoryConfig, MemoryGraph, Plan, PlannerConfig,
    Route, goal_distance,
};
use serde::{Deserialize, Serialize};

use crate::NodeError;
use crate::components::collector::Frame;
use crate::msg::TwistMsg;

/// Planner node settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerNodeConfig {
    /// The CEM planner.
    pub planner: PlannerConfig,
    /// Embed the goal image with the robot's current proprio instead of the proprio recorded
    /// with the goal (at rest). Off by default: measured, the goal at rest makes the robot stop
    /// at the goal instead of keeping the speed it has.
    pub goal_with_current_proprio: bool,
}

/// What the planner decided for one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerOutput {
    /// The command to send, stamped with the frame's stamp.
    pub command: TwistMsg,
    /// The plan behind it.
    pub plan: Plan,
    /// The route through the memory, when the planner has one and found a route.
    pub route: Option<Route>,
}

/// Planner counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlannerStats {
    /// Frames planned for.
    pub plans: u64,
    /// Frames that arrived with no goal set.
    pub without_goal: u64,
    /// Times the goal was embedded (once per goal and encoder version).
    pub goal_embeddings: u64,
    /// Times the memory graph was built (once per memory and encoder version).
    pub memory_builds: u64,
    /// Frames planned towards a memory subgoal.
    pub subgoal_plans: u64,
    /// Frames with a memory whose node had no route to the goal's (planned straight to the
    /// goal).
    pub without_route: u64,
    /// Frames placed in the memory by odometry-consistent votes (the others by their view
    /// alone).
    pub odometry_placements: u64,
}

struct Goal {
    frame: Frame,
    /// Embedding with the encoder version it came from.
    embedding: Option<(u64, Vec<f32>)>,
}

struct Memory {
    frames: Vec<Frame>,
    config: MemoryConfig,
    /// The graph with the encoder version and the proprio its embeddings came from.
    graph: Option<(u64, Vec<f32>, MemoryGraph)>,
    /// The node the robot was placed at by the last route.
    placed: Option<usize>,
    /// Places the robot by odometry where the frames carry it.
    localiser: Localiser,
    /// How its places are featurised, made at the first frame (it needs the encoder's sizes).
    places: Option<Places>,
}

/// See the module documentation.
pub struct PlannerNode {
    config: PlannerNodeConfig,
    planner: LatentPlanner,
    goal: Option<Goal>,
    memory: Option<Memory>,
    stats: PlannerStats,
}

impl PlannerNode {
    /// A planner with no goal yet.
    pub fn new(config: PlannerNodeConfig) -> Result<Self, NodeError> {
        Ok(Self {
            planner: LatentPlanner::new(config.planner.clone())?,
            config,
            goal: None,
            memory: None,
            stats: PlannerStats::default(),
        })
    }

    /// Gives the planner a memory: frames the robot drove through, in the order it saw them
    /// (each with its episode). Refused when the settings are unusable or the frames make no
    /// graph (fewer than 2 nodes).
    pub fn set_memory(
        &mut self,
        frames: Vec<Frame>,
        config: MemoryConfig,
    ) -> Result<(), NodeError> {
        config.validate()?;
        if frames.len() < 2 * config.stride {
            return Err(autodidact_learn::LearnError::BadInput(format!(
                "a memory of {} frames makes fewer than 2 nodes at stride {}",
                frames.len(),
                config.stride
            ))
            .into());
        }
        self.memory = Some(Memory {
            frames,
            config,
            graph: None,
            placed: None,
            localiser: Localiser::new(),
            places: None,
        });
        self.planner.reset();
        Ok(())
    }

    /// The memory graph of the newest encoder version used, if there is a memory.
    pub fn memory_graph(&self) -> Option<&MemoryGraph> {
        self.memory
            .as_ref()
            .and_then(|m| m.graph.as_ref().map(|(_, _, graph)| graph))
    }

    /// Counters.
    pub fn stats(&self) -> &PlannerStats {
        &self.stats
    }

    /// Sets the goal: the frame the camera would see there (with its proprio, normally at
    /// rest). The previous plan is forgotten.
    pub fn set_goal(&mut self, goal: Frame) {
        self.goal = Some(Goal {
            frame: goal,
            embedding: None,
        });
        self.planner.reset();
    }

    /// Drops the goal; frames then produce no command.
    pub fn clear_goal(&mut self) {
        self.goal = None;
        self.planner.reset();
    }

    /// Plans for `frame` with the newest encoder and dynamics. `None` without a goal.
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        encoder: &EncoderSnapshot,
        dynamics: &DynamicsSnapshot,
    ) -> Result<Option<PlannerOutput>, NodeError> {
        let Some(goal) = &mut self.goal else {
            self.stats.without_goal += 1;
            return Ok(None);
        };
        let current = encoder.embed(&frame.image, &frame.proprio)?;
        let goal_embedding = if self.config.goal_with_current_proprio {
            self.stats.goal_embeddings += 1;
            encoder.embed(&goal.frame.image, &frame.proprio)?
        } else {
            match &goal.embedding {
                Some((version, embedding)) if *version == encoder.version => embedding.clone(),
                _ => {
                    self.stats.goal_embeddings += 1;
                    let embedding = encoder.embed(&goal.frame.image, &goal.frame.proprio)?;
                    goal.embedding = Some((encoder.version, embedding.clone()));
                    embedding
                }
            }
        };
        // Places are told apart by what the camera sees: the memory's frames, the current
        // frame and the goal are all embedded with the goal's proprio (at rest), so that speed
        // does not make one place look like another.
        let (route, subgoal) = match &mut self.memory {
            Some(memory) => {
                let place_proprio = &goal.frame.proprio;
                let placed = memory.placed;
                let features = memory.config.places;
                let places: &Places = match &mut memory.places {
                    Some(places) => places,
                    empty => empty.insert(Places::new(features, encoder)?),
                };
                let graph = memory_graph(
                    &memory.frames,
                    &memory.config,
                    &mut memory.graph,
                    (encoder, places, place_proprio),
                    &mut self.stats,
                )?;
                let here = places.of(encoder, &frame.image, place_proprio)?;
                let there = match places {
                    Places::Embedding if !self.config.goal_with_current_proprio => {
                        goal_embedding.clone()
                    }
                    _ => places.of(encoder, &goal.frame.image, place_proprio)?,
                };
                let from = match (frame.odometry, graph.has_odometry()) {
                    (Some(odometry), true) => {
                        match memory.localiser.observe(graph, &here, &odometry)? {
                            Some(placement) => {
                                self.stats.odometry_placements += 1;
                                let node = &graph.nodes()[placement.node];
                                (placement.node, goal_distance(&here, &node.embedding))
                            }
                            None => graph.track(&here, placed)?,
                        }
                    }
                    _ => graph.track(&here, placed)?,
                };
                let route = graph.route_between(from, graph.place(&there)?);
                if route.is_none() {
                    self.stats.without_route += 1;
                }
                // A subgoal farther (in the embedding) than the goal itself is a detour.
                let subgoal_node = route.as_ref().and_then(|r| r.subgoal).filter(|&node| {
                    goal_distance(&here, &graph.nodes()[node].embedding)
                        < goal_distance(&here, &there)
                });
                let subgoal = match (subgoal_node, places) {
                    (None, _) => None,
                    (Some(node), Places::Embedding) => Some(graph.nodes()[node].embedding.clone()),
                    (Some(node), Places::RawPixels(..)) => {
                        // The MPC plans in the embedding: the subgoal's frame, embedded.
                        let remembered = &memory.frames[graph.nodes()[node].frame];
                        Some(encoder.embed(&remembered.image, place_proprio)?)
                    }
                };
                memory.placed = route.as_ref().and_then(|r| r.nodes.first().copied());
                (route, subgoal)
            }
            None => (None, None),
        };
        if subgoal.is_some() {
            self.stats.subgoal_plans += 1;
        }
        let target = subgoal.as_ref().unwrap_or(&goal_embedding);
        let plan = self.planner.plan(dynamics, &current, target)?;
        self.stats.plans += 1;
        Ok(Some(PlannerOutput {
            command: TwistMsg {
                stamp_ns: frame.stamp_ns,
                linear_x: plan.action[0],
                angular_z: plan.action[1],
            },
            plan,
            route,
        }))
    }
}

/// The memory's graph for `encoder`'s version, built (all frames embedded) when it has none yet.
/// How places are featurised: the model's embedding or raw pixels.
enum Places {
    Embedding,
    /// Raw pixels of `[width, height]` images.
    RawPixels(PixelBaseline, [usize; 2]),
}

/// Side of the raw-pixel grid and the seed of its projection (as `autodidact eval`'s baseline).
const PIXEL_PLACES: (usize, u64) = (8, 0x91e1);

impl Places {
    fn new(features: PlaceFeatures, encoder: &EncoderSnapshot) -> Result<Self, NodeError> {
        Ok(match features {
            PlaceFeatures::Embedding => Self::Embedding,
            PlaceFeatures::RawPixels => {
                let config = encoder.config();
                Self::RawPixels(
                    PixelBaseline::new(PIXEL_PLACES.0, config.embed_dim, PIXEL_PLACES.1)?,
                    [config.image.width, config.image.height],
                )
            }
        })
    }

    /// The place features of one image.
    fn of(
        &self,
        encoder: &EncoderSnapshot,
        image: &[u8],
        place_proprio: &[f32],
    ) -> Result<Vec<f32>, NodeError> {
        Ok(match self {
            Self::Embedding => encoder.embed(image, place_proprio)?,
            Self::RawPixels(pixels, [width, height]) => pixels.features(image, *width, *height)?,
        })
    }
}

fn memory_graph<'a>(
    frames: &[Frame],
    config: &MemoryConfig,
    slot: &'a mut Option<(u64, Vec<f32>, MemoryGraph)>,
    (encoder, places, place_proprio): (&EncoderSnapshot, &Places, &[f32]),
    stats: &mut PlannerStats,
) -> Result<&'a MemoryGraph, NodeError> {
    let (_, _, graph) = match slot.take() {
        Some((version, proprio, graph))
            if version == encoder.version && proprio == place_proprio =>
        {
            slot.insert((version, proprio, graph))
        }
        _ => {
            let mut embeddings = Vec::with_capacity(frames.len());
            match places {
                Places::Embedding => {
                    for chunk in frames.chunks(128) {
                        let images: Vec<&[u8]> = chunk.iter().map(|f| &*f.image).collect();
                        let proprio: Vec<&[f32]> = vec![place_proprio; chunk.len()];
                        embeddings.extend(encoder.embed_batch(&images, &proprio)?);
                    }
                }
                Places::RawPixels(pixels, [width, height]) => {
                    for frame in frames {
                        embeddings.push(pixels.features(&frame.image, *width, *height)?);
                    }
                }
            }
            let episodes: Vec<u64> = frames.iter().map(|f| f.episode).collect();
            let odometry: Vec<_> = frames.iter().map(|f| f.odometry).collect();
            let graph = MemoryGraph::build_with_odometry(
                &embeddings,
                &episodes,
                &odometry,
                config.clone(),
            )?;
            stats.memory_builds += 1;
            slot.insert((encoder.version, place_proprio.to_vec(), graph))
        }
    };
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use autodidact_learn::model::ImageEncoderConfig;
    use autodidact_learn::{Trainer, TrainerConfig};

    use super::*;

    const SIDE: usize = 32;

    fn frame(stamp_ns: u64, grey: u8) -> Frame {
        Frame {
            stamp_ns,
            episode: 0,
            image: Arc::from(vec![grey; SIDE * SIDE * 3]),
            proprio: vec![0.0; 7],
            frame_id: Arc::from("camera"),
            odometry: None,
        }
    }

    /// An untrained model small enough for unit tests.
    fn small_trainer() -> Trainer {
        let mut config = TrainerConfig::for_inputs(SIDE, SIDE, 7);
        config.model.encoder.image = ImageEncoderConfig::new()
            .with_width(SIDE)
            .with_height(SIDE)
            .with_channels(vec![8, 16, 16])
            .with_feature_dim(32);
        config.model.encoder.embed_dim = 32;
        Trainer::new(config).expect("trainer")
    }

    #[test]
    fn plans_only_with_a_goal_and_re_embeds_the_goal_for_each_encoder_version() {
        let trainer = small_trainer();
        let encoder = trainer.snapshot();
        let dynamics = trainer.dynamics_snapshot();
        let mut node = PlannerNode::new(PlannerNodeConfig::default()).expect("planner");

        assert!(
            node.on_frame(&frame(1, 90), &encoder, &dynamics)
                .expect("plan")
                .is_none()
        );
        assert_eq!(node.stats().without_goal, 1);

        node.set_goal(frame(0, 30));
        let output = node
            .on_frame(&frame(2, 90), &encoder, &dynamics)
            .expect("plan")
            .expect("a command");
        assert_eq!(output.command.stamp_ns, 2, "stamped with its frame");
        let max = PlannerConfig::default().max_action;
        assert!(output.command.linear_x.abs() <= max[0]);
        assert!(output.command.angular_z.abs() <= max[1]);
        assert_eq!(
            output.plan.action,
            [output.command.linear_x, output.command.angular_z]
        );
        node.on_frame(&frame(3, 90), &encoder, &dynamics)
            .expect("plan");
        assert_eq!(
            node.stats().goal_embeddings,
            1,
            "same version, same goal embedding"
        );

        let newer = EncoderSnapshot::new(
            trainer.published_encoder(),
            trainer.config().model.encoder.clone(),
            encoder.version + 1,
            0,
            encoder.device(),
        );
        node.on_frame(&frame(4, 90), &newer, &dynamics)
            .expect("plan");
        assert_eq!(
            node.stats().goal_embeddings,
            2,
            "a new version re-embeds the goal"
        );
        assert_eq!(node.stats().plans, 3);

        // A frame of the wrong size is an error, not a panic.
        let mut bad = frame(5, 90);
        bad.image = Arc::from(vec![0u8; 10]);
        assert!(node.on_frame(&bad, &encoder, &dynamics).is_err());
    }

    #[test]
    fn with_a_memory_the_planner_routes_through_it_and_rebuilds_it_per_encoder_version() {
        let trainer = small_trainer();
        let encoder = trainer.snapshot();
        let dynamics = trainer.dynamics_snapshot();
        let mut node = PlannerNode::new(PlannerNodeConfig::default()).expect("planner");

        // Too little to remember is refused.
        assert!(
            node.set_memory(vec![frame(0, 0)], MemoryConfig::default())
                .is_err()
        );
        // A drive along which the scene brightens step by step.
        let drive: Vec<Frame> = (0..=100u8).map(|i| frame(u64::from(i), 2 * i)).collect();
        node.set_memory(drive, MemoryConfig::default())
            .expect("memory");
        node.set_goal(frame(1000, 200));
        let output = node
            .on_frame(&frame(1001, 0), &encoder, &dynamics)
            .expect("plan")
            .expect("a command");
        let graph = node.memory_graph().expect("graph built");
        let route = output.route.expect("a route through the memory");
        let frame_of = |n: usize| graph.nodes()[n].frame;
        let (first, last) = (route.nodes[0], route.nodes[route.nodes.len() - 1]);
        assert!(
            frame_of(first) <= 6,
            "starts at the dark end: {}",
            frame_of(first)
        );
        assert!(
            frame_of(last) >= 94,
            "ends at the bright end: {}",
            frame_of(last)
        );
        assert!(route.subgoal.is_some(), "the goal is far along the route");
        assert_eq!(node.stats().subgoal_plans, 1);
        assert_eq!(node.stats().memory_builds, 1);

        node.on_frame(&frame(1002, 4), &encoder, &dynamics)
            .expect("plan");
        assert_eq!(node.stats().memory_builds, 1, "same version, same graph");
        let newer = EncoderSnapshot::new(
            trainer.published_encoder(),
            trainer.config().model.encoder.clone(),
            encoder.version + 1,
            0,
            encoder.device(),
        );
        node.on_frame(&frame(1003, 8), &newer, &dynamics)
            .expect("plan");
        assert_eq!(
            node.stats().memory_builds,
            2,
            "a new version rebuilds the graph"
        );
    }

    #[test]
    fn with_raw_pixel_places_the_planner_routes_by_pixels_and_drives_to_embedded_subgoals() {
        let trainer = small_trainer();
        let (encoder, dynamics) = (trainer.snapshot(), trainer.dynamics_snapshot());
        // The top half brightens while the bottom half darkens along the drive.
        let two_tone = |stamp_ns: u64, level: u8| {
            let mut image = vec![level; SIDE * SIDE * 3];
            image[SIDE * SIDE * 3 / 2..].fill(255 - level);
            Frame {
                image: Arc::from(image),
                ..frame(stamp_ns, 0)
            }
        };
        let drive: Vec<Frame> = (0..=100u8).map(|i| two_tone(u64::from(i), 2 * i)).collect();
        let mut node = PlannerNode::new(PlannerNodeConfig::default()).expect("planner");
        let memory = MemoryConfig {
            places: PlaceFeatures::RawPixels,
            ..MemoryConfig::default()
        };
        node.set_memory(drive, memory).expect("memory");
        node.set_goal(two_tone(1000, 200));
        let output = node
            .on_frame(&two_tone(1001, 0), &encoder, &dynamics)
            .expect("plan")
            .expect("a command");
        let graph = node.memory_graph().expect("graph built");
        assert_eq!(graph.nodes()[0].embedding.len(), 32, "pixel features");
        let route = output.route.expect("a route");
        let frame_of = |n: usize| graph.nodes()[n].frame;
        assert!(frame_of(route.nodes[0]) <= 6);
        assert!(frame_of(route.nodes[route.nodes.len() - 1]) >= 94);
        assert_eq!(
            node.stats().subgoal_plans,
            1,
            "a subgoal, embedded by the model"
        );
    }
}
