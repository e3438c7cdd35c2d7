//! A topological memory for reaching far goals: a graph over the robot's own past embeddings,
//! in the manner of ViNT / NoMaD's topological maps, built from nothing but what it saw and did.
//!
//! - nodes: every `stride`-th frame the robot drove through, by its embedding;
//! - edges: the transitions it observed (consecutive nodes of one episode) and shortcuts between
//!   nodes whose embeddings are as close as one observed step usually is (the same place seen
//!   again, on another pass or in another episode);
//! - a route: the current frame and the goal are retrieved as their nearest nodes, the shortest
//!   path between them is searched (Dijkstra, edge cost ∝ embedding distance) and the node a few
//!   hops along it is the **subgoal** the latent MPC drives to next.
//!
//! The graph knows nothing of poses or maps; how well it routes is exactly how well the
//! embedding tells places apart.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::LearnError;
use crate::health::normalise;

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
    /// … that are at most this many times the median distance of an observed step away.
    pub shortcut_factor: f32,
    /// The subgoal is this many nodes along the route (the goal itself when it is nearer).
    pub subgoal_hops: usize,
    /// Tracking: once placed, the robot is looked for within this many hops of where it was
    /// last (it cannot jump across the building between two frames); anywhere when the best
    /// node there is more than `shortcut_factor` steps farther than the best node anywhere.
    /// 0: every frame is placed anew.
    pub track_hops: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            places: PlaceFeatures::Embedding,
            stride: 2,
            neighbours: 4,
            shortcut_factor: 1.0,
            subgoal_hops: 4,
            track_hops: 10,
        }
    }
}

impl MemoryConfig {
    /// Checks that the numbers fit together.
    pub fn validate(&self) -> Result<(), LearnError> {
        if self.stride == 0 || self.subgoal_hops == 0 {
            return Err(LearnError::InvalidConfig(
                "memory: stride and subgoal_hops must be at least 1".into(),
            ));
        }
        if !(self.shortcut_factor.is_finite() && self.shortcut_factor >= 0.0) {
            return Err(LearnError::InvalidConfig(format!(
                "memory: shortcut_factor must be a finite number ≥ 0, got {}",
                self.shortcut_factor
            )));
        }
        Ok(())
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
}

/// An edge's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeKind {
    /// The robot drove from one node to the next.
    Observed,
    /// Two nodes whose embeddings are as close as an observed step.
    Shortcut,
}

/// A directed edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEdge {
    /// Target node.
    pub to: usize,
    /// Search cost: the embedding distance, at least one observed step's median.
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
}

impl MemoryGraph {
    /// Builds the graph from the embeddings of consecutive frames and their episodes (frames of
    /// one episode in the order they were seen).
    pub fn build(
        embeddings: &[Vec<f32>],
        episodes: &[u64],
        config: MemoryConfig,
    ) -> Result<Self, LearnError> {
        config.validate()?;
        if embeddings.len() != episodes.len() {
            return Err(LearnError::BadInput(format!(
                "memory: {} embeddings for {} episodes",
                embeddings.len(),
                episodes.len()
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
        let mut nodes: Vec<MemoryNode> = Vec::new();
        let mut since_kept = 0usize;
        for (frame, (z, episode)) in embeddings.iter().zip(episodes).enumerate() {
            let new_episode = nodes.last().is_none_or(|n| n.episode != *episode);
            if new_episode || since_kept + 1 >= config.stride {
                nodes.push(MemoryNode {
                    embedding: normalise(z),
                    frame,
                    episode: *episode,
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
        let mut observed = Vec::new();
        for (i, pair) in nodes.windows(2).enumerate() {
            if pair[0].episode == pair[1].episode {
                observed.push((i, distance(&pair[0], &pair[1])));
            }
        }
        let mut steps: Vec<f32> = observed.iter().map(|(_, d)| *d).collect();
        steps.sort_by(f32::total_cmp);
        let step_distance = steps.get(steps.len() / 2).copied().unwrap_or(0.0).max(1e-6);
        let mut edges: Vec<Vec<MemoryEdge>> = vec![Vec::new(); nodes.len()];
        let cost = |d: f32| d.max(step_distance);
        for (i, d) in observed {
            for (from, to) in [(i, i + 1), (i + 1, i)] {
                edges[from].push(MemoryEdge {
                    to,
                    cost: cost(d),
                    kind: EdgeKind::Observed,
                });
            }
        }
        let limit = config.shortcut_factor * step_distance;
        if config.neighbours > 0 && limit > 0.0 {
            for i in 0..nodes.len() {
                let mut near: Vec<(usize, f32)> = (0..nodes.len())
                    .filter(|&j| j + 1 < i || j > i + 1)
                    .map(|j| (j, distance(&nodes[i], &nodes[j])))
                    .filter(|(_, d)| *d <= limit)
                    .collect();
                near.sort_by(|a, b| a.1.total_cmp(&b.1));
                for (j, d) in near.into_iter().take(config.neighbours) {
                    for (from, to) in [(i, j), (j, i)] {
                        if !edges[from].iter().any(|e| e.to == to) {
                            edges[from].push(MemoryEdge {
                                to,
                                cost: cost(d),
                                kind: EdgeKind::Shortcut,
                            });
                        }
                    }
                }
            }
        }
        Ok(Self {
            config,
            nodes,
            edges,
            step_distance,
        })
    }

    /// The nodes.
    pub fn nodes(&self) -> &[MemoryNode] {
        &self.nodes
    }

    /// The edges leaving node `i`.
    pub fn edges(&self, i: usize) -> &[MemoryEdge] {
        self.edges.get(i).map_or(&[], Vec::as_slice)
    }

    /// Edges in the graph, each direction counted once: `(observed, shortcuts)`.
    pub fn edge_counts(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for (from, edges) in self.edges.iter().enumerate() {
            for edge in edges.iter().filter(|e| e.to > from) {
                match edge.kind {
                    EdgeKind::Observed => counts.0 += 1,
                    EdgeKind::Shortcut => counts.1 += 1,
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
        let dim = self.nodes[0].embedding.len();
        if embedding.len() != dim || embedding.iter().any(|v| !v.is_finite()) {
            return Err(LearnError::BadInput(format!(
                "memory: a query of {} values for nodes of {dim}, or not finite",
                embedding.len()
            )));
        }
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
        let (to, goal_node_distance) = self.localise(goal)?;
        let Some(nodes) = self.shortest_path(from, to) else {
            return Ok(None);
        };
        let subgoal =
            (nodes.len() > self.config.subgoal_hops + 1).then(|| nodes[self.config.subgoal_hops]);
        Ok(Some(Route {
            nodes,
            subgoal,
            current_distance,
            goal_distance: goal_node_distance,
        }))
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

/// `|a - b|²` of two vectors of the same length.
fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}
