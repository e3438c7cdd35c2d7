//! What the planner remembers: frames the robot drove through, given
//! ([`PlannerNode::set_memory`](super::PlannerNode::set_memory)) or kept while it drives
//! ([`RememberConfig`]); their place features for the encoder version in use; the graph over
//! them; and where the robot was placed in it last.
//!
//! Place features are computed once per frame and encoder version: a growing memory embeds only
//! its new frames before the graph is built again.

use std::sync::Arc;

use autodidact_learn::baseline::PixelBaseline;
use autodidact_learn::memory::PlaceFeatures;
use autodidact_learn::memory::{Follow, PathFollower, Placement};
use autodidact_learn::{
    EncoderSnapshot, LearnError, Localiser, MemoryConfig, MemoryGraph, OdometryPose, Route,
    goal_distance,
};
use serde::{Deserialize, Serialize};

use super::PlannerStats;
use crate::NodeError;
use crate::components::collector::Frame;

/// How the planner remembers what its camera shows (`[planner.remember]`): every frame it
/// plans for, at most one per `every_s`, goes into its memory, with or without a goal, and
/// goals are reached through the graph over them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RememberConfig {
    /// Remember and plan through the memory. Off by default: measured by `autodidact eval`, the
    /// memory planner reaches fewer easy goals than the planner without one (docs/eval.md).
    pub enabled: bool,
    /// At most one frame per this much source time, seconds.
    pub every_s: f64,
    /// Frames kept; the oldest are forgotten first (when the graph is built, and at
    /// `max_frames + rebuild_after` frames without a goal).
    pub max_frames: usize,
    /// New frames before the graph is built again.
    pub rebuild_after: usize,
    /// The graph over the frames.
    pub graph: MemoryConfig,
}

impl Default for RememberConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            every_s: 0.1,
            max_frames: 6000,
            rebuild_after: 50,
            graph: MemoryConfig::default(),
        }
    }
}

impl RememberConfig {
    /// Checks the numbers, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        if !(self.every_s.is_finite() && self.every_s >= 0.0) {
            return Err(NodeError::Setup(format!(
                "planner.remember.every_s must be ≥ 0 s, got {}",
                self.every_s
            )));
        }
        if self.max_frames < 2 * self.graph.stride {
            return Err(NodeError::Setup(format!(
                "planner.remember.max_frames must hold 2 nodes (2 × stride {}), got {}",
                self.graph.stride, self.max_frames
            )));
        }
        if self.rebuild_after == 0 {
            return Err(NodeError::Setup(
                "planner.remember.rebuild_after must be ≥ 1".into(),
            ));
        }
        self.graph.validate()?;
        Ok(())
    }
}

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

    /// The place features of `frames`, in order.
    fn of_frames(
        &self,
        encoder: &EncoderSnapshot,
        frames: &[Frame],
        place_proprio: &[f32],
    ) -> Result<Vec<Vec<f32>>, NodeError> {
        let mut features = Vec::with_capacity(frames.len());
        match self {
            Self::Embedding => {
                for chunk in frames.chunks(128) {
                    let images: Vec<&[u8]> = chunk.iter().map(|f| &*f.image).collect();
                    let proprio: Vec<&[f32]> = vec![place_proprio; chunk.len()];
                    features.extend(encoder.embed_batch(&images, &proprio)?);
                }
            }
            Self::RawPixels(pixels, [width, height]) => {
                for frame in frames {
                    features.push(pixels.features(&frame.image, *width, *height)?);
                }
            }
        }
        Ok(features)
    }
}

/// A remembered place, known across rebuilds of the graph by its frame.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place {
    stamp_ns: u64,
    episode: u64,
    odometry: Option<OdometryPose>,
}

impl Place {
    /// The same frame, or one that odometry puts within `within_m` of it in the same episode
    /// (a look-alike neighbour the goal may be placed at instead).
    fn same_as(&self, other: &Place, within_m: f64) -> bool {
        self.stamp_ns == other.stamp_ns
            || match (self.odometry, other.odometry) {
                (Some(p), Some(q)) => self.episode == other.episode && p.distance(&q) <= within_m,
                _ => false,
            }
    }
}

/// How a remembering memory keeps frames: its [`RememberConfig`] but the graph's settings, which
/// the memory holds as its own.
#[derive(Debug, Clone, Copy)]
struct Keeping {
    every_s: f64,
    max_frames: usize,
    rebuild_after: usize,
}

impl Keeping {
    fn of(remember: &RememberConfig) -> Self {
        Self {
            every_s: remember.every_s,
            max_frames: remember.max_frames,
            rebuild_after: remember.rebuild_after,
        }
    }
}

/// See the module documentation.
pub(super) struct Memory {
    frames: Vec<Frame>,
    config: MemoryConfig,
    /// How frames are kept while driving; `None` for a memory that only holds what it was given.
    remember: Option<Keeping>,
    /// Stamp of the newest remembered frame.
    last_kept_ns: Option<u64>,
    /// Encoder version and place proprio that `features` are for.
    features_for: Option<(u64, Vec<f32>)>,
    /// Place features of `frames[..features.len()]`.
    features: Vec<Vec<f32>>,
    /// The graph, over the first `built_over` frames.
    graph: Option<MemoryGraph>,
    built_over: usize,
    /// The node the robot was placed at by the last route (of the current graph).
    placed: Option<usize>,
    /// Places the robot by odometry where the frames carry it.
    localiser: Localiser,
    /// How its places are featurised, made at the first frame (it needs the encoder's sizes).
    places: Option<Places>,
    /// Following the route by odometry ([`FollowConfig`](autodidact_learn::memory::FollowConfig)):
    /// the path being followed and the place it leads to …
    follower: Option<(PathFollower, Place)>,
    /// … and the place whose path the robot followed to its end for this goal: while the goal
    /// is placed there, the MPC drives (a graph built again with the goal at the same place
    /// does not pull the robot back to it); placed elsewhere, a path is laid out to it.
    arrived: Option<Place>,
    /// A path was followed to its end since [`Memory::take_arrival`] last looked.
    arrival_unseen: bool,
    /// The last route found the goal where the robot followed a path to and follows none now.
    last_stretch: bool,
}

impl Memory {
    /// A memory of `frames` (each with its episode), to which what the camera shows is added
    /// when `remember` is given.
    pub(super) fn given(
        frames: Vec<Frame>,
        config: MemoryConfig,
        remember: Option<RememberConfig>,
    ) -> Result<Self, NodeError> {
        config.validate()?;
        if let Some(remember) = &remember {
            remember.validate()?;
        }
        if frames.len() < 2 * config.stride {
            return Err(LearnError::BadInput(format!(
                "a memory of {} frames makes fewer than 2 nodes at stride {}",
                frames.len(),
                config.stride
            ))
            .into());
        }
        Ok(Self::new(
            frames,
            config,
            remember.as_ref().map(Keeping::of),
        ))
    }

    /// An empty memory that keeps what the camera shows, as `remember` says.
    pub(super) fn remembering(remember: RememberConfig) -> Result<Self, NodeError> {
        remember.validate()?;
        let keeping = Keeping::of(&remember);
        Ok(Self::new(Vec::new(), remember.graph, Some(keeping)))
    }

    fn new(frames: Vec<Frame>, config: MemoryConfig, remember: Option<Keeping>) -> Self {
        Self {
            last_kept_ns: frames.last().map(|f| f.stamp_ns),
            frames,
            config,
            remember,
            features_for: None,
            features: Vec::new(),
            graph: None,
            built_over: 0,
            placed: None,
            localiser: Localiser::new(),
            places: None,
            follower: None,
            arrived: None,
            arrival_unseen: false,
            last_stretch: false,
        }
    }

    /// The place of remembered frame `index`.
    fn place_of(&self, index: usize) -> Option<Place> {
        let frame = self.frames.get(index)?;
        Some(Place {
            stamp_ns: frame.stamp_ns,
            episode: frame.episode,
            odometry: frame.odometry,
        })
    }

    /// The path being followed by odometry, in the robot's `odom` frame.
    pub(super) fn path(&self) -> Option<&[OdometryPose]> {
        self.follower.as_ref().map(|(follower, _)| follower.path())
    }

    /// A new goal: the path followed to the last one is dropped.
    pub(super) fn new_goal(&mut self) {
        self.follower = None;
        self.arrived = None;
        self.arrival_unseen = false;
        self.last_stretch = false;
    }

    /// Whether a path was followed to its end since the last call: the last stretch to the
    /// goal starts.
    pub(super) fn take_arrival(&mut self) -> bool {
        std::mem::take(&mut self.arrival_unseen)
    }

    /// Whether the robot is on the last stretch: the last route placed the goal where the
    /// robot followed a path to (that place, or one within `arrive_m` of it), and it follows
    /// none now.
    pub(super) fn on_last_stretch(&self) -> bool {
        self.last_stretch
    }

    /// Keeps `frame` when the memory remembers and `every_s` has passed since the last one kept
    /// (or the stream started again from an earlier stamp). Whether it was kept.
    pub(super) fn remember(&mut self, frame: &Frame) -> bool {
        let Some(remember) = &self.remember else {
            return false;
        };
        let every_ns = (remember.every_s * 1e9) as u64;
        let due = self
            .last_kept_ns
            .is_none_or(|last| frame.stamp_ns < last || frame.stamp_ns - last >= every_ns.max(1));
        let (max_frames, rebuild_after) = (remember.max_frames, remember.rebuild_after);
        if due {
            self.last_kept_ns = Some(frame.stamp_ns);
            self.frames.push(frame.clone());
        }
        // A graph would be built again now anyway: forget the oldest, so that a robot driving
        // without a goal (no graph is built) holds at most `max_frames + rebuild_after` frames.
        if self.frames.len() >= max_frames + rebuild_after {
            let forget = self.frames.len() - max_frames;
            self.frames.drain(..forget);
            self.features.drain(..forget.min(self.features.len()));
            self.graph = None;
            self.placed = None;
        }
        due
    }

    /// Frames held: at most `max_frames` after a build, and fewer than `max_frames +
    /// rebuild_after` at any time.
    pub(super) fn len(&self) -> usize {
        self.frames.len()
    }

    /// The graph, if one is built.
    pub(super) fn graph(&self) -> Option<&MemoryGraph> {
        self.graph.as_ref()
    }

    /// Where the wheel odometry put the frame of `node` of the graph (whether or not the graph
    /// uses odometry, [`MemoryConfig::use_odometry`]).
    pub(super) fn odometry_of(&self, node: usize) -> Option<OdometryPose> {
        let frame = self.graph.as_ref()?.nodes().get(node)?.frame;
        self.frames.get(frame)?.odometry
    }

    /// Routes `frame` through the memory to the goal: the goal's frame, and its embedding when
    /// that is its place feature. Places are told apart by what the camera sees: the memory's
    /// frames, the current frame and the goal are all featurised with the goal's proprio (at
    /// rest), so that speed does not make one place look like another.
    ///
    /// With following on, the command is the follower's while it is on its path: laid out
    /// again every `replan_frames` from the robot's place then.
    pub(super) fn route(
        &mut self,
        frame: &Frame,
        (goal, goal_embedding): (&Frame, Option<&[f32]>),
        encoder: &EncoderSnapshot,
        max_action: [f32; 2],
        stats: &mut PlannerStats,
    ) -> Result<Routed, NodeError> {
        let place_proprio = &goal.proprio;
        let Some(rebuilt) = self.ensure_graph(encoder, place_proprio, stats)? else {
            return Ok(Routed::default());
        };
        let (Some(graph), Some(places)) = (&self.graph, &self.places) else {
            return Ok(Routed::default());
        };
        let here = places.of(encoder, &frame.image, place_proprio)?;
        let there = match (places, goal_embedding) {
            (Places::Embedding, Some(embedding)) => embedding.to_vec(),
            _ => places.of(encoder, &goal.image, place_proprio)?,
        };
        let mut placement = None;
        let from = match (frame.odometry, graph.has_odometry()) {
            (Some(odometry), true) => match self.localiser.observe(graph, &here, &odometry)? {
                Some(placed) => {
                    stats.odometry_placements += 1;
                    placement = Some(placed);
                    let node = &graph.nodes()[placed.node];
                    (placed.node, goal_distance(&here, &node.embedding))
                }
                None => graph.track(&here, self.placed)?,
            },
            _ => graph.track(&here, self.placed)?,
        };
        let route = graph.route_between(from, graph.place(&there)?);
        if route.is_none() {
            stats.without_route += 1;
        }
        let goal_place = route
            .as_ref()
            .and_then(|r| r.nodes.last())
            .and_then(|&node| self.place_of(graph.nodes().get(node)?.frame));
        let arrive_m = f64::from(self.config.follow.arrive_m);
        let arrived_here = |arrived: &Option<Place>| match (arrived, &goal_place) {
            (Some(arrived), Some(goal)) => arrived.same_as(goal, arrive_m),
            _ => false,
        };
        let arrived = arrived_here(&self.arrived);
        let command = match frame.odometry {
            Some(robot) if self.config.follow.enabled && !arrived => {
                let follow = &self.config.follow;
                let stale = self.follower.as_ref().is_none_or(|(f, _)| {
                    follow.replan_frames > 0 && f.frames() >= follow.replan_frames
                });
                if let (true, Some(route), Some(to)) = (stale, &route, goal_place) {
                    let frames = &self.frames;
                    let odometry =
                        |node: usize| frames.get(graph.nodes().get(node)?.frame)?.odometry;
                    let anchor = robot.compose(&placement_offset(placement, &route.nodes, graph));
                    if let Some(follower) = graph
                        .route_path(route, odometry)
                        .and_then(|relative| PathFollower::new(&anchor, &relative))
                    {
                        self.follower = Some((follower, to));
                        stats.paths += 1;
                    }
                }
                match self
                    .follower
                    .as_mut()
                    .map(|(f, to)| (f.command(&robot, follow, max_action), *to))
                {
                    Some((Follow::Drive(command), _)) => Some(command),
                    Some((Follow::Arrived, to)) => {
                        self.arrived = Some(to);
                        self.arrival_unseen = true;
                        self.follower = None;
                        None
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let arrived = arrived_here(&self.arrived);
        self.last_stretch = arrived && self.follower.is_none();
        // A subgoal farther (in the embedding) than the goal itself is a detour.
        // After following the path to its end, the MPC drives to the goal itself.
        let subgoal_node = route
            .as_ref()
            .and_then(|r| r.subgoal)
            .filter(|_| !(arrived && self.config.follow.enabled))
            .filter(|&node| {
                goal_distance(&here, &graph.nodes()[node].embedding) < goal_distance(&here, &there)
            });
        let subgoal_image =
            subgoal_node.map(|node| Arc::clone(&self.frames[graph.nodes()[node].frame].image));
        let subgoal = match (subgoal_node, places) {
            (None, _) => None,
            (Some(node), Places::Embedding) => Some(graph.nodes()[node].embedding.clone()),
            (Some(node), Places::RawPixels(..)) => {
                // The MPC plans in the embedding: the subgoal's frame, embedded.
                let remembered = &self.frames[graph.nodes()[node].frame];
                Some(encoder.embed(&remembered.image, place_proprio)?)
            }
        };
        self.placed = route.as_ref().and_then(|r| r.nodes.first().copied());
        Ok(Routed {
            route,
            subgoal,
            subgoal_image,
            command,
            rebuilt,
        })
    }

    /// Builds the graph for `encoder`'s version when there is none for it yet, or when
    /// `rebuild_after` frames were remembered since the last build (forgetting the oldest beyond
    /// `max_frames` first). Whether it was built; `None` while the memory holds too few frames
    /// for 2 nodes.
    fn ensure_graph(
        &mut self,
        encoder: &EncoderSnapshot,
        place_proprio: &[f32],
        stats: &mut PlannerStats,
    ) -> Result<Option<bool>, NodeError> {
        let same_features = self
            .features_for
            .as_ref()
            .is_some_and(|(version, proprio)| {
                *version == encoder.version && proprio == place_proprio
            });
        if !same_features {
            self.features_for = Some((encoder.version, place_proprio.to_vec()));
            self.features.clear();
            self.graph = None;
        }
        let grown = self
            .remember
            .as_ref()
            .is_some_and(|r| self.frames.len() >= self.built_over + r.rebuild_after);
        if self.graph.is_some() && !grown {
            return Ok(Some(false));
        }
        if let Some(remember) = &self.remember {
            let forget = self.frames.len().saturating_sub(remember.max_frames);
            self.frames.drain(..forget);
            self.features.drain(..forget.min(self.features.len()));
        }
        if self.frames.len() < 2 * self.config.stride {
            return Ok(None);
        }
        let places = match &mut self.places {
            Some(places) => places,
            empty => empty.insert(Places::new(self.config.places, encoder)?),
        };
        let new = &self.frames[self.features.len()..];
        let features = places.of_frames(encoder, new, place_proprio)?;
        self.features.extend(features);
        let episodes: Vec<u64> = self.frames.iter().map(|f| f.episode).collect();
        let odometry: Vec<_> = self.frames.iter().map(|f| f.odometry).collect();
        self.graph = Some(MemoryGraph::build_with_odometry(
            &self.features,
            &episodes,
            &odometry,
            self.config.clone(),
        )?);
        self.built_over = self.frames.len();
        // Node indices are the new graph's, and an optimised map is laid out anew: votes cast
        // in the last one do not hold in it.
        self.placed = None;
        if self.config.pose_graph.enabled {
            self.localiser.reset();
        }
        stats.memory_builds += 1;
        Ok(Some(true))
    }
}

/// What the memory says for one frame.
#[derive(Debug, Default)]
pub(super) struct Routed {
    /// The route from the robot's node to the goal's, if the graph holds one.
    pub(super) route: Option<Route>,
    /// What the MPC drives to instead of the goal: the embedding of a node along the route.
    pub(super) subgoal: Option<Vec<f32>>,
    /// The image of that node's frame (for a subgoal at the predicted proprio).
    pub(super) subgoal_image: Option<Arc<[u8]>>,
    /// The command of the route follower, while it follows a path (the MPC is not asked).
    pub(super) command: Option<[f32; 2]>,
    /// The graph was built for this frame.
    pub(super) rebuilt: bool,
}

/// Where the first place of its route is seen from the robot: from where the localiser placed
/// it relative to that place's pose ([`MemoryGraph::place_pose`]), when it placed it at that
/// place; else at the place itself (placed by its view alone).
fn placement_offset(
    placement: Option<Placement>,
    route: &[usize],
    graph: &MemoryGraph,
) -> OdometryPose {
    let first = route.first().copied();
    match (placement, first.and_then(|node| graph.place_pose(node))) {
        (Some(placed), Some((frame, place)))
            if Some(placed.node) == first && placed.episode == frame =>
        {
            placed.pose.inverse().compose(&place)
        }
        _ => OdometryPose::default(),
    }
}
