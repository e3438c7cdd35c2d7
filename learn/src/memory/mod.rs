//! A topological memory for reaching far goals: a graph over the robot's own past embeddings,
//! in the manner of ViNT / NoMaD's topological maps, built from nothing but what it saw and did.
//!
//! - nodes: every `stride`-th frame the robot drove through, by its embedding (and, where the
//!   frames carry it, the wheel odometry's pose);
//! - edges: the transitions it observed (consecutive nodes of one episode), odometry links
//!   between nodes of one episode that odometry puts at the same place (a place passed again),
//!   and shortcuts between nodes whose embeddings are as close as one observed step usually is
//!   (the same place seen again, on another pass or in another episode);
//! - a route: the current frame and the goal are placed at nodes, the shortest path between
//!   them is searched (Dijkstra; cost in metres and turns where odometry is known, ∝ embedding
//!   distance elsewhere) and the node a few hops along it is the **subgoal** the latent MPC
//!   drives to next.
//!
//! Without odometry the graph knows nothing of poses or maps, and how well it routes is exactly
//! how well the embedding tells places apart. With odometry, the robot is placed by
//! [`Localiser`]: every frame's nearest remembered places vote for where the robot's odometry
//! frame lies in the memory's, and the votes that agree win (a place recognised once is
//! ambiguous; a sequence of places consistent with the wheels' motion is not).
//!
//! With [`PoseGraphConfig`], the places are also laid out as one map: the odometry between
//! neighbours and the shortcuts, optimised with robust weights over the memory's loops. Its
//! rejected shortcuts are dropped, routes cost its metres, and the path to follow and the
//! robot's placement rest on its poses instead of one episode's drifting odometry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::health::normalise;

mod follow;
mod localise;
mod map;
mod odometry;
mod pose_graph;

pub use follow::{Follow, FollowConfig, PathFollower};
pub use localise::{Localiser, Placement};
pub use odometry::OdometryPose;
pub(crate) use odometry::wrap;
pub use pose_graph::PoseGraphConfig;

/// What a memory's places are told apart by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceFeatures {
    /// The model's embedding.
    #[default]
    Embedding,
    /// Raw pixels ([`PixelBaseline`](crate::baseline::PixelBaseline), 8×8 RGB): the baseline
    /// a learned embedding has to beat.
    RawPixels,
}

/// Settings of the memory graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// What places are told apart by (the graph's nodes and the retrieval of the robot and the
    /// goal). Subgoals are always driven to in the model's embedding.
    pub places: PlaceFeatures,
    /// Keep every `stride`-th frame of an episode as a node.
    pub stride: usize,
    /// Shortcut edges: each node links to at most this many nearest other nodes …
    pub neighbours: usize,
    /// … that are at most this many times the median distance of an observed step away …
    pub shortcut_factor: f32,
    /// … and whose neighbours agree (sequence matching, as SeqSLAM does): the `n` places
    /// before and after each end lie within twice that distance of the other end's, one place
    /// either way, passed in the same order or the reverse one. A single view that looks like
    /// another place (a striped wall seen from close by) makes no shortcut; a place passed
    /// again does, its neighbours with it. `0` (the default) checks nothing.
    pub shortcut_sequence: usize,
    /// The subgoal is this many nodes along the route (the goal itself when it is nearer).
    pub subgoal_hops: usize,
    /// Tracking: once placed, the robot is looked for within this many hops of where it was
    /// last (it cannot jump across the building between two frames); anywhere when the best
    /// node there is more than `shortcut_factor` steps farther than the best node anywhere.
    /// 0: every frame is placed anew. (Without odometry; with it, [`Localiser`] places it.)
    pub track_hops: usize,
    /// Use the frames' wheel odometry where they carry it: links between places of one episode,
    /// route costs in metres, and the robot placed by odometry-consistent votes. Off by
    /// default: measured in `autodidact eval`, the memories there cover too few of the goals'
    /// places for it to help (docs/eval.md).
    pub use_odometry: bool,
    /// Odometry links join nodes of one episode at most this many metres apart …
    pub odometry_link_m: f32,
    /// … and at most this many degrees apart in heading.
    pub odometry_link_deg: f32,
    /// Route cost of turning one radian, in metres of driving.
    pub turn_cost_m: f32,
    /// Places retrieved (nearest embeddings) per frame, each a vote for where the robot is.
    pub candidates: usize,
    /// Votes are kept from this many of the latest frames (odometry drifts: old votes age).
    pub vote_frames: usize,
    /// Two votes agree when they put the robot at most this many metres apart …
    pub vote_radius_m: f32,
    /// … and at most this many degrees apart in heading.
    pub vote_turn_deg: f32,
    /// Following the route by odometry instead of by subgoals of the latent MPC.
    pub follow: FollowConfig,
    /// Laying the places out as one map, optimised over the memory's loops.
    pub pose_graph: PoseGraphConfig,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            places: PlaceFeatures::Embedding,
            stride: 2,
            neighbours: 4,
            shortcut_factor: 1.0,
            shortcut_sequence: 0,
            subgoal_hops: 4,
            track_hops: 10,
            use_odometry: false,
            odometry_link_m: 0.2,
            odometry_link_deg: 45.0,
            turn_cost_m: 0.1,
            candidates: 4,
            vote_frames: 200,
            vote_radius_m: 0.25,
            vote_turn_deg: 20.0,
            follow: FollowConfig::default(),
            pose_graph: PoseGraphConfig::default(),
        }
    }
}

impl MemoryConfig {
    /// Checks that the numbers fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        if self.stride == 0
            || self.subgoal_hops == 0
            || self.candidates == 0
            || self.vote_frames == 0
        {
            return Err(LearnError::InvalidConfig(
                "memory: stride, subgoal_hops, candidates and vote_frames must be at least 1"
                    .into(),
            ));
        }
        non_negative(
            "memory",
            &[
                (self.odometry_link_m, "odometry_link_m"),
                (self.odometry_link_deg, "odometry_link_deg"),
                (self.turn_cost_m, "turn_cost_m"),
                (self.vote_radius_m, "vote_radius_m"),
                (self.vote_turn_deg, "vote_turn_deg"),
                (self.shortcut_factor, "shortcut_factor"),
            ],
        )?;
        self.follow.validate()?;
        self.pose_graph.validate()
    }
}

/// Refuses the first of `values` (each with its name) that is not a finite number ≥ 0, naming
/// it as a field of `section`.
pub(crate) fn non_negative(section: &str, values: &[(f32, &str)]) -> Result<(), LearnError> {
    match values
        .iter()
        .find(|(value, _)| !(value.is_finite() && *value >= 0.0))
    {
        Some((value, name)) => Err(LearnError::InvalidConfig(format!(
            "{section}: {name} must be a finite number ≥ 0, got {value}"
        ))),
        None => Ok(()),
    }
}

/// One remembered frame.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryNode {
    /// L2-normalised embedding.
    pub embedding: Vec<f32>,
    /// Index of the frame in the sequence the graph was built from.
    pub frame: usize,
    /// Its episode.
    pub episode: u64,
    /// Where wheel odometry put it, in its episode's `odom` frame, when the frame carried it
    /// (and [`MemoryConfig::use_odometry`] is on).
    pub odometry: Option<OdometryPose>,
}

/// An edge's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeKind {
    /// The robot drove from one node to the next.
    Observed,
    /// Two nodes whose embeddings are as close as an observed step.
    Shortcut,
    /// Two nodes of one episode that wheel odometry puts at the same place, or two nodes that
    /// the optimised map does ([`PoseGraphConfig`]).
    Odometry,
}

/// A directed edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEdge {
    /// Target node.
    pub to: usize,
    /// Search cost: metres driven plus [`MemoryConfig::turn_cost_m`] per radian turned where
    /// both nodes have odometry; else the embedding distance (at least one observed step's
    /// median), in metres of a median observed step when the graph has odometry.
    pub cost: f32,
    /// Where it came from.
    pub kind: EdgeKind,
}

/// Where the robot is and where it should head next.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The nodes from the current frame's node to the goal's, inclusive.
    pub nodes: Vec<usize>,
    /// Node the latent MPC drives to now; `None` when the goal is within `subgoal_hops` (drive
    /// to the goal itself).
    pub subgoal: Option<usize>,
    /// Distance (`|n(a) - n(b)|²`, as [`goal_distance`](crate::goal_distance)) of the current
    /// frame to its node.
    pub current_distance: f32,
    /// Distance of the goal to its node.
    pub goal_distance: f32,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct MemoryGraph {
    config: MemoryConfig,
    nodes: Vec<MemoryNode>,
    edges: Vec<Vec<MemoryEdge>>,
    step_distance: f32,
    /// Whether any node has an odometry pose (asked for every frame the planner places).
    has_odometry: bool,
    /// Each node's pose in the optimised map ([`PoseGraphConfig`]), when it is on, and the part
    /// of the map it lies in.
    map: Option<Vec<Option<(u64, OdometryPose)>>>,
    /// Shortcuts the map rejected (each direction counted once), no longer edges.
    rejected_shortcuts: usize,
}

impl MemoryGraph {
    /// Builds the graph from the embeddings of consecutive frames and their episodes (frames of
    /// one episode in the order they were seen), without odometry.
    pub fn build(
        embeddings: &[Vec<f32>],
        episodes: &[u64],
        config: MemoryConfig,
    ) -> Result<Self, LearnError> {
        Self::build_with_odometry(embeddings, episodes, &vec![None; embeddings.len()], config)
    }

    /// [`build`](Self::build), with each frame's wheel-odometry pose where it had one.
    pub fn build_with_odometry(
        embeddings: &[Vec<f32>],
        episodes: &[u64],
        odometry: &[Option<OdometryPose>],
        config: MemoryConfig,
    ) -> Result<Self, LearnError> {
        config.validate()?;
        if embeddings.len() != episodes.len() || embeddings.len() != odometry.len() {
            return Err(LearnError::BadInput(format!(
                "memory: {} embeddings for {} episodes and {} odometry poses",
                embeddings.len(),
                episodes.len(),
                odometry.len()
            )));
        }
        let dim = embeddings.first().map_or(0, Vec::len);
        if embeddings
            .iter()
            .any(|z| z.len() != dim || z.iter().any(|v| !v.is_finite()))
        {
            return Err(LearnError::BadInput(
                "memory: embeddings of unequal length or not finite".into(),
            ));
        }
        if odometry.iter().flatten().any(|p| !p.is_finite()) {
            return Err(LearnError::BadInput(
                "memory: an odometry pose is not finite".into(),
            ));
        }
        let mut nodes: Vec<MemoryNode> = Vec::new();
        let mut since_kept = 0usize;
        for (frame, ((z, episode), pose)) in
            embeddings.iter().zip(episodes).zip(odometry).enumerate()
        {
            let new_episode = nodes.last().is_none_or(|n| n.episode != *episode);
            if new_episode || since_kept + 1 >= config.stride {
                nodes.push(MemoryNode {
                    embedding: normalise(z),
                    frame,
                    episode: *episode,
                    odometry: pose.filter(|_| config.use_odometry),
                });
                since_kept = 0;
            } else {
                since_kept += 1;
            }
        }
        if nodes.len() < 2 {
            return Err(LearnError::BadInput(format!(
                "memory: {} frames make fewer than 2 nodes",
                embeddings.len()
            )));
        }
        let distance =
            |a: &MemoryNode, b: &MemoryNode| squared_distance(&a.embedding, &b.embedding);
        let turn_cost = f64::from(config.turn_cost_m);
        // Metres driven and turned between two nodes of one episode, where both have odometry.
        let metric = |a: &MemoryNode, b: &MemoryNode| match (a.odometry, b.odometry) {
            (Some(p), Some(q)) if a.episode == b.episode => {
                Some((p.distance(&q) + turn_cost * p.turn(&q)) as f32)
            }
            _ => None,
        };
        let mut observed = Vec::new();
        for (i, pair) in nodes.windows(2).enumerate() {
            if pair[0].episode == pair[1].episode {
                observed.push((i, distance(&pair[0], &pair[1]), metric(&pair[0], &pair[1])));
            }
        }
        let step_distance = median_of(observed.iter().map(|(_, d, _)| *d)).max(1e-6);
        let metric_steps: Vec<f32> = observed.iter().filter_map(|(_, _, m)| *m).collect();
        // Where the graph has odometry, every cost is in metres: embedding distances count as
        // many median observed steps as they are long.
        let (metric_step, scale) = if metric_steps.is_empty() {
            (0.0, 1.0)
        } else {
            let step = median_of(metric_steps.iter().copied()).max(1e-3);
            (step, step / step_distance)
        };
        let embedding_cost = |d: f32| d.max(step_distance) * scale;
        let metric_cost = |m: f32| m.max(metric_step * 0.1).max(1e-3);
        let mut edges: Vec<Vec<MemoryEdge>> = vec![Vec::new(); nodes.len()];
        let link = |edges: &mut Vec<Vec<MemoryEdge>>, i: usize, j: usize, cost, kind| {
            for (from, to) in [(i, j), (j, i)] {
                if !edges[from].iter().any(|e| e.to == to) {
                    edges[from].push(MemoryEdge { to, cost, kind });
                }
            }
        };
        for (i, d, m) in observed {
            let cost = m.map_or_else(|| embedding_cost(d), metric_cost);
            link(&mut edges, i, i + 1, cost, EdgeKind::Observed);
        }
        // Places of one episode that odometry puts together: a place passed again.
        let (link_m, link_turn) = (
            f64::from(config.odometry_link_m),
            f64::from(config.odometry_link_deg).to_radians(),
        );
        for i in 0..nodes.len() {
            let Some(p) = nodes[i].odometry else { continue };
            for j in i + 2..nodes.len() {
                match nodes[j].odometry {
                    Some(q)
                        if nodes[j].episode == nodes[i].episode
                            && p.distance(&q) <= link_m
                            && p.turn(&q) <= link_turn =>
                    {
                        let cost = metric(&nodes[i], &nodes[j]).map_or(metric_step, metric_cost);
                        link(&mut edges, i, j, cost, EdgeKind::Odometry);
                    }
                    _ => {}
                }
            }
        }
        // Places that look alike: the same place seen again. Within one episode with odometry,
        // odometry decides instead (looking alike is not being the same place).
        let limit = config.shortcut_factor * step_distance;
        if config.neighbours > 0 && limit > 0.0 {
            for i in 0..nodes.len() {
                let mut near: Vec<(usize, f32)> = (0..nodes.len())
                    .filter(|&j| j + 1 < i || j > i + 1)
                    .filter(|&j| metric(&nodes[i], &nodes[j]).is_none())
                    .map(|j| (j, distance(&nodes[i], &nodes[j])))
                    .filter(|(_, d)| *d <= limit)
                    .filter(|(j, _)| {
                        sequences_agree(&nodes, (i, *j), config.shortcut_sequence, 2.0 * limit)
                    })
                    .collect();
                near.sort_by(|a, b| a.1.total_cmp(&b.1));
                for (j, d) in near.into_iter().take(config.neighbours) {
                    link(&mut edges, i, j, embedding_cost(d), EdgeKind::Shortcut);
                }
            }
        }
        let has_odometry = nodes.iter().any(|n| n.odometry.is_some());
        let mut graph = Self {
            config,
            nodes,
            edges,
            step_distance,
            has_odometry,
            map: None,
            rejected_shortcuts: 0,
        };
        if graph.config.pose_graph.enabled {
            let frame_odometry: Vec<_> = graph
                .nodes
                .iter()
                .map(|n| odometry.get(n.frame).copied().flatten())
                .collect();
            graph.lay_out(&frame_odometry);
        }
        Ok(graph)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[MemoryNode] {
        &self.nodes
    }

    /// The edges leaving node `i`.
    pub fn edges(&self, i: usize) -> &[MemoryEdge] {
        self.edges.get(i).map_or(&[], Vec::as_slice)
    }

    /// Edges in the graph, each direction counted once, by kind: `(observed, shortcuts,
    /// odometry links)`.
    pub fn edge_counts(&self) -> (usize, usize, usize) {
        let mut counts = (0, 0, 0);
        for (from, edges) in self.edges.iter().enumerate() {
            for edge in edges.iter().filter(|e| e.to > from) {
                match edge.kind {
                    EdgeKind::Observed => counts.0 += 1,
                    EdgeKind::Shortcut => counts.1 += 1,
                    EdgeKind::Odometry => counts.2 += 1,
                }
            }
        }
        counts
    }

    /// The median embedding distance of one observed step between nodes.
    pub fn step_distance(&self) -> f32 {
        self.step_distance
    }

    /// The node nearest to `embedding` and its distance ([`goal_distance`]).
    pub fn localise(&self, embedding: &[f32]) -> Result<(usize, f32), LearnError> {
        self.check_query(embedding)?;
        let nearest = self.nearest(&normalise(embedding), 0..self.nodes.len());
        // `build` refuses graphs of fewer than 2 nodes.
        Ok(nearest.unwrap_or((0, f32::INFINITY)))
    }

    /// The node nearest to `embedding` among those within `track_hops` of `previous` (see
    /// [`MemoryConfig::track_hops`]), or anywhere when there is no previous node.
    pub fn track(
        &self,
        embedding: &[f32],
        previous: Option<usize>,
    ) -> Result<(usize, f32), LearnError> {
        let anywhere = self.localise(embedding)?;
        let Some(previous) =
            previous.filter(|&p| p < self.nodes.len() && self.config.track_hops > 0)
        else {
            return Ok(anywhere);
        };
        let near = self.nearest(
            &normalise(embedding),
            self.within_hops(previous, self.config.track_hops),
        );
        Ok(match near {
            Some(near)
                if near.1 <= anywhere.1 + self.config.shortcut_factor * self.step_distance =>
            {
                near
            }
            _ => anywhere,
        })
    }

    /// The node among `candidates` nearest to the normalised `query`, with its distance.
    fn nearest(
        &self,
        query: &[f32],
        candidates: impl IntoIterator<Item = usize>,
    ) -> Option<(usize, f32)> {
        candidates
            .into_iter()
            .map(|i| (i, squared_distance(&self.nodes[i].embedding, query)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// Nodes within `hops` edges of `start` (itself included).
    fn within_hops(&self, start: usize, hops: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        seen[start] = true;
        let mut frontier = vec![start];
        let mut all = vec![start];
        for _ in 0..hops {
            let mut next = Vec::new();
            for node in frontier {
                for edge in &self.edges[node] {
                    if !seen[edge.to] {
                        seen[edge.to] = true;
                        next.push(edge.to);
                    }
                }
            }
            all.extend(&next);
            frontier = next;
        }
        all
    }

    /// The route from `current` to `goal` (embeddings), or `None` when the goal's node cannot
    /// be reached from the current one in the graph. `previous`: the node the robot was placed
    /// at last (see [`MemoryConfig::track_hops`]).
    pub fn route(
        &self,
        current: &[f32],
        goal: &[f32],
        previous: Option<usize>,
    ) -> Result<Option<Route>, LearnError> {
        let (from, current_distance) = self.track(current, previous)?;
        let (to, goal_distance) = self.place(goal)?;
        Ok(self.route_between((from, current_distance), (to, goal_distance)))
    }

    /// The route from node `from` to node `to` (each with the distance of what was placed
    /// there, as [`Route`] reports it), or `None` when they are not connected.
    pub fn route_between(&self, from: (usize, f32), to: (usize, f32)) -> Option<Route> {
        let nodes = self.shortest_path(from.0, to.0)?;
        let subgoal =
            (nodes.len() > self.config.subgoal_hops + 1).then(|| nodes[self.config.subgoal_hops]);
        Some(Route {
            nodes,
            subgoal,
            current_distance: from.1,
            goal_distance: to.1,
        })
    }

    /// Whether any node has a pose to place things by ([`place_pose`](Self::place_pose)).
    pub fn has_odometry(&self) -> bool {
        self.has_odometry
    }

    /// The [`MemoryConfig::candidates`] nodes nearest to `embedding`, nearest first, with
    /// their distances.
    pub fn candidates(&self, embedding: &[f32]) -> Result<Vec<(usize, f32)>, LearnError> {
        let mut all = self.distances(embedding)?;
        let k = self.config.candidates.min(all.len());
        all.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
        all.truncate(k);
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(all)
    }

    /// Every node, nearest to `embedding` first, with its distance: the order whose first
    /// [`MemoryConfig::candidates`] are the [`candidates`](Self::candidates).
    pub fn ranked(&self, embedding: &[f32]) -> Result<Vec<(usize, f32)>, LearnError> {
        let mut all = self.distances(embedding)?;
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        Ok(all)
    }

    /// Each node with its squared distance to `embedding` (normalised as the nodes are), in
    /// node order.
    fn distances(&self, embedding: &[f32]) -> Result<Vec<(usize, f32)>, LearnError> {
        self.check_query(embedding)?;
        let query = normalise(embedding);
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i, squared_distance(&n.embedding, &query)))
            .collect())
    }

    /// The node a single view (the goal image) shows, with its distance: among the
    /// [`candidates`](Self::candidates), the one that most of the others agree with (odometry
    /// puts them within the vote radius and turn of it); the nearest on a tie and without
    /// odometry. One look-alike place elsewhere does not win over several views of one place.
    pub fn place(&self, embedding: &[f32]) -> Result<(usize, f32), LearnError> {
        let candidates = self.candidates(embedding)?;
        let (radius, turn) = self.vote_gate();
        let support = |i: usize| {
            candidates
                .iter()
                .filter(|(j, _)| match (self.place_pose(i), self.place_pose(*j)) {
                    (Some((a, p)), Some((b, q))) => {
                        a == b && p.distance(&q) <= radius && p.turn(&q) <= turn
                    }
                    _ => *j == i,
                })
                .count()
        };
        // `candidates` is nearest first and `max_by_key` keeps the last maximum: search it
        // backwards so that the nearest wins a tie.
        Ok(candidates
            .iter()
            .rev()
            .max_by_key(|(i, _)| support(*i))
            .copied()
            .unwrap_or((0, f32::INFINITY)))
    }

    /// The node in `frame` ([`place_pose`](Self::place_pose)) nearest to `pose` (metres plus
    /// [`MemoryConfig::turn_cost_m`] per radian), or `None` when no node lies in it.
    pub fn nearest_by_odometry(&self, frame: u64, pose: &OdometryPose) -> Option<usize> {
        let turn_cost = f64::from(self.config.turn_cost_m);
        (0..self.nodes.len())
            .filter_map(|i| match self.place_pose(i) {
                Some((f, p)) if f == frame => {
                    Some((i, p.distance(pose) + turn_cost * p.turn(pose)))
                }
                _ => None,
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// The settings.
    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// `(metres, radians)` within which two placements agree.
    fn vote_gate(&self) -> (f64, f64) {
        (
            f64::from(self.config.vote_radius_m),
            f64::from(self.config.vote_turn_deg).to_radians(),
        )
    }

    /// Refuses a query of the wrong length or with a non-finite value.
    fn check_query(&self, embedding: &[f32]) -> Result<(), LearnError> {
        let dim = self.nodes[0].embedding.len();
        if embedding.len() != dim || embedding.iter().any(|v| !v.is_finite()) {
            return Err(LearnError::BadInput(format!(
                "memory: a query of {} values for nodes of {dim}, or not finite",
                embedding.len()
            )));
        }
        Ok(())
    }

    /// Dijkstra from `from` to `to`: the nodes of the cheapest path, both ends included.
    pub fn shortest_path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let n = self.nodes.len();
        if from >= n || to >= n {
            return None;
        }
        let mut best = vec![f32::INFINITY; n];
        let mut previous = vec![usize::MAX; n];
        let mut queue = BinaryHeap::new();
        best[from] = 0.0;
        // Costs are finite and ≥ 0, so their bit patterns order like the numbers.
        queue.push(Reverse((0f32.to_bits(), from)));
        while let Some(Reverse((bits, node))) = queue.pop() {
            let cost = f32::from_bits(bits);
            if node == to {
                break;
            }
            if cost > best[node] {
                continue;
            }
            for edge in &self.edges[node] {
                let next = cost + edge.cost;
                if next < best[edge.to] {
                    best[edge.to] = next;
                    previous[edge.to] = node;
                    queue.push(Reverse((next.to_bits(), edge.to)));
                }
            }
        }
        if !best[to].is_finite() {
            return None;
        }
        let mut path = vec![to];
        let mut node = to;
        while node != from {
            node = previous[node];
            path.push(node);
        }
        path.reverse();
        Some(path)
    }
}

/// Whether the `n` places before and after `a` and `b` (of their own episodes) look alike
/// pairwise, within `limit` (squared embedding distance), in the same order or the reverse one:
/// for each offset `o` of `a`'s, one of the places `o - 1 ..= o + 1` from `b` the same way (or
/// the other way). Where `a` has fewer than `n` neighbours on a side, or `b` fewer than `n + 1`
/// (its match may lie one place beyond), that side is not asked. `n = 0` agrees always.
fn sequences_agree(nodes: &[MemoryNode], (a, b): (usize, usize), n: usize, limit: f32) -> bool {
    if n == 0 {
        return true;
    }
    // The node `steps` along from `i` (negative: before it), in `i`'s episode.
    let along = |i: usize, steps: isize| -> Option<&MemoryNode> {
        let j = i.checked_add_signed(steps)?;
        nodes.get(j).filter(|node| node.episode == nodes[i].episode)
    };
    let order_agrees = |order: isize| {
        [-1isize, 1].into_iter().all(|side| {
            let asked = (1..=n as isize).all(|o| {
                along(a, side * o).is_some() && along(b, side * order * (o + 1)).is_some()
            });
            !asked
                || (1..=n as isize).all(|o| {
                    let Some(from) = along(a, side * o) else {
                        return false;
                    };
                    (o - 1..=o + 1).any(|m| {
                        along(b, side * order * m).is_some_and(|to| {
                            squared_distance(&from.embedding, &to.embedding) <= limit
                        })
                    })
                })
        })
    };
    order_agrees(1) || order_agrees(-1)
}

/// The median of `values` (the upper one of an even count), 0 for none.
fn median_of(values: impl Iterator<Item = f32>) -> f32 {
    let mut values: Vec<f32> = values.collect();
    values.sort_by(f32::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// `|a - b|²` of two vectors of the same length.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
