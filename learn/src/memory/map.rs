//! The memory laid out as one map ([`PoseGraphConfig`]): its places' poses optimised over the
//! odometry and the shortcuts, the shortcuts the map rejects dropped, routes costed and places
//! linked in the map's metres, and where the memory places each node.

use std::collections::HashSet;

use super::{EdgeKind, MemoryEdge, MemoryGraph, OdometryPose, pose_graph};
#[cfg(doc)]
use super::{MemoryConfig, PoseGraphConfig};

impl MemoryGraph {
    /// Optimises the nodes' poses ([`PoseGraphConfig`]) from `odometry` (each node's frame's),
    /// keeps them as the map and drops the shortcuts it rejects from the edges.
    pub(super) fn lay_out(&mut self, odometry: &[Option<OdometryPose>]) {
        let config = self.config.pose_graph.clone();
        let pose = |i: usize| odometry.get(i).copied().flatten();
        let mut constraints = Vec::new();
        for (from, edges) in self.edges.iter().enumerate() {
            for edge in edges.iter().filter(|e| e.to > from) {
                let same_episode = self.nodes[from].episode == self.nodes[edge.to].episode;
                match (edge.kind, pose(from), pose(edge.to)) {
                    (EdgeKind::Observed, Some(a), Some(b)) if same_episode => constraints.push(
                        pose_graph::Constraint::odometry((from, &a), (edge.to, &b), &config),
                    ),
                    (EdgeKind::Shortcut, ..) => {
                        constraints.push(pose_graph::Constraint::same_place(from, edge.to, &config))
                    }
                    _ => {}
                }
            }
        }
        let started = std::time::Instant::now();
        let layout = pose_graph::optimise(odometry, &constraints, &config);
        let mut rejected = HashSet::new();
        for (constraint, kept) in constraints.iter().zip(&layout.kept) {
            if !kept {
                let (a, b) = (constraint.from, constraint.to);
                self.edges[a].retain(|e| e.to != b);
                self.edges[b].retain(|e| e.to != a);
                rejected.insert((a.min(b), a.max(b)));
            }
        }
        self.rejected_shortcuts = rejected.len();
        tracing::debug!(
            nodes = self.nodes.len(),
            constraints = constraints.len(),
            rejected = self.rejected_shortcuts,
            seconds = started.elapsed().as_secs_f64(),
            "memory laid out as a pose graph"
        );
        let map: Vec<Option<(u64, OdometryPose)>> = layout
            .poses
            .iter()
            .zip(&layout.parts)
            .map(|(pose, part)| pose.map(|p| (*part as u64, p)))
            .collect();
        self.link_by_map(&map, &rejected);
        self.map = Some(map);
        self.has_odometry |= self.map.iter().flatten().any(Option::is_some);
    }

    /// Routes through the map `poses` (each with its part of the map): every edge between two
    /// places of one part costs the metres and turns between them there, and places of one part
    /// that the map puts within [`MemoryConfig::odometry_link_m`] and `odometry_link_deg` of
    /// each other are linked (the same place, passed again on any drive: the map's loops
    /// agree), unless the map rejected a shortcut between them (`rejected`, lower index first).
    fn link_by_map(
        &mut self,
        poses: &[Option<(u64, OdometryPose)>],
        rejected: &HashSet<(usize, usize)>,
    ) {
        let turn_cost = f64::from(self.config.turn_cost_m);
        let cost = |p: &OdometryPose, q: &OdometryPose| {
            ((p.distance(q) + turn_cost * p.turn(q)) as f32).max(1e-3)
        };
        let pose = |i: usize| poses.get(i).copied().flatten();
        for (from, edges) in self.edges.iter_mut().enumerate() {
            for edge in edges.iter_mut() {
                if let (Some((a, p)), Some((b, q))) = (pose(from), pose(edge.to))
                    && a == b
                {
                    edge.cost = cost(&p, &q);
                }
            }
        }
        let (link_m, link_turn) = (
            f64::from(self.config.odometry_link_m),
            f64::from(self.config.odometry_link_deg).to_radians(),
        );
        for i in 0..self.nodes.len() {
            let Some((part, p)) = pose(i) else { continue };
            for j in i + 1..self.nodes.len() {
                let Some((other, q)) = pose(j) else { continue };
                if part == other
                    && p.distance(&q) <= link_m
                    && p.turn(&q) <= link_turn
                    && !rejected.contains(&(i, j))
                    && !self.edges[i].iter().any(|e| e.to == j)
                {
                    let c = cost(&p, &q);
                    self.edges[i].push(MemoryEdge {
                        to: j,
                        cost: c,
                        kind: EdgeKind::Odometry,
                    });
                    self.edges[j].push(MemoryEdge {
                        to: i,
                        cost: c,
                        kind: EdgeKind::Odometry,
                    });
                }
            }
        }
    }

    /// Node `i`'s pose in the optimised map, when the memory is laid out as one
    /// ([`PoseGraphConfig`]) and the node's frame carried odometry.
    pub fn map_pose(&self, i: usize) -> Option<OdometryPose> {
        Some(self.map.as_ref()?.get(i).copied().flatten()?.1)
    }

    /// Where node `i` lies and in which frame, as the memory places things by its poses: in
    /// the optimised map when there is one (the frame is its part of the map), else by its
    /// odometry in its episode's `odom` frame (with [`MemoryConfig::use_odometry`]).
    pub fn place_pose(&self, i: usize) -> Option<(u64, OdometryPose)> {
        match &self.map {
            Some(map) => map.get(i).copied().flatten(),
            None => {
                let node = self.nodes.get(i)?;
                Some((node.episode, node.odometry?))
            }
        }
    }

    /// Shortcuts the optimised map rejected (and routes do not take).
    pub fn rejected_shortcuts(&self) -> usize {
        self.rejected_shortcuts
    }
}
