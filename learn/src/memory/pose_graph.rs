//! The memory's places laid out as one consistent map: a pose graph over its nodes, optimised.
//!
//! Wheel odometry between neighbouring places is precise over a few metres and drifts over a
//! long drive; a shortcut (two places that look alike) says the robot was at the same place
//! again, which corrects the drift where it is true and bends the map where it is not (a
//! look-alike place elsewhere). The optimiser weighs both:
//!
//! - constraints: the odometry between consecutive places of one episode, and every shortcut
//!   as "the same place" (within [`PoseGraphConfig::shortcut_sigma_m`] and `…_deg`);
//! - the solve alternates headings and positions, each a linear least-squares problem on the
//!   graph (as LAGO does for planar pose graphs): headings unwrapped against the current
//!   estimate, then positions with the headings fixed;
//! - robust weights (Cauchy, with a scale that shrinks round by round: graduated
//!   non-convexity) let the constraints that disagree with the rest go, whether a false
//!   shortcut or a wheel slip;
//! - a shortcut that still disagrees by more than [`PoseGraphConfig::reject_sigmas`] at the end
//!   is rejected: the memory drops it from its routes.
//!
//! Each linear problem is a weighted graph Laplacian, solved by conjugate gradients
//! preconditioned with the odometry chain (a tridiagonal system, solved in one sweep): every
//! iteration costs one pass over the constraints, and nothing fills in as a sparse Cholesky
//! factor would (nalgebra-sparse's has no fill-reducing order).

use serde::{Deserialize, Serialize};

use super::odometry::wrap;
use super::{OdometryPose, non_negative};
use crate::LearnError;

/// Laying the memory out as a pose graph (`[…memory.pose_graph]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoseGraphConfig {
    /// Optimise the places' poses where the frames carry odometry; paths are then laid out from
    /// them, and shortcuts the map rejects are not routed through.
    pub enabled: bool,
    /// Odometry between neighbouring places: standard deviation of the position, metres, at
    /// the least …
    pub odometry_sigma_m: f32,
    /// … plus this share of the distance driven between them …
    pub odometry_sigma_per_m: f32,
    /// … and of the heading, degrees.
    pub odometry_sigma_deg: f32,
    /// A shortcut's two places: standard deviation of their distance, metres …
    pub shortcut_sigma_m: f32,
    /// … and of their headings' difference, degrees.
    pub shortcut_sigma_deg: f32,
    /// A shortcut whose residual is more than this many standard deviations after the last
    /// round is rejected.
    pub reject_sigmas: f32,
    /// Rounds of robust weighting (the Cauchy scale, in standard deviations, halves in square
    /// every round until it reaches `reject_sigmas`, or 0.5 if that is smaller).
    pub rounds: usize,
}

impl Default for PoseGraphConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            odometry_sigma_m: 0.01,
            odometry_sigma_per_m: 0.05,
            odometry_sigma_deg: 2.0,
            shortcut_sigma_m: 0.3,
            shortcut_sigma_deg: 15.0,
            reject_sigmas: 3.0,
            rounds: 10,
        }
    }
}

impl PoseGraphConfig {
    /// Checks the numbers, naming the one that is unusable.
    pub fn validate(&self) -> Result<(), LearnError> {
        non_negative(
            "memory.pose_graph",
            &[(self.odometry_sigma_per_m, "odometry_sigma_per_m")],
        )?;
        for (value, name) in [
            (self.reject_sigmas, "reject_sigmas"),
            (self.odometry_sigma_m, "odometry_sigma_m"),
            (self.odometry_sigma_deg, "odometry_sigma_deg"),
            (self.shortcut_sigma_m, "shortcut_sigma_m"),
            (self.shortcut_sigma_deg, "shortcut_sigma_deg"),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(LearnError::InvalidConfig(format!(
                    "memory.pose_graph: {name} must be a finite number > 0, got {value}"
                )));
            }
        }
        if self.rounds == 0 {
            return Err(LearnError::InvalidConfig(
                "memory.pose_graph: rounds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One constraint: node `to` seen from node `from` is at `measured`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Constraint {
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) measured: OdometryPose,
    /// 1 / σ² of the position, per axis, 1/m².
    pub(crate) position_information: f64,
    /// 1 / σ² of the heading, 1/rad².
    pub(crate) heading_information: f64,
    /// A shortcut (may be rejected), not odometry.
    pub(crate) shortcut: bool,
}

impl Constraint {
    /// The odometry from pose `a` to pose `b` (of one episode), as a constraint between nodes
    /// `from` and `to`.
    pub(crate) fn odometry(
        (from, a): (usize, &OdometryPose),
        (to, b): (usize, &OdometryPose),
        config: &PoseGraphConfig,
    ) -> Self {
        let sigma = f64::from(config.odometry_sigma_m)
            + f64::from(config.odometry_sigma_per_m) * a.distance(b);
        Self {
            from,
            to,
            measured: a.inverse().compose(b),
            position_information: 1.0 / (sigma * sigma),
            heading_information: 1.0 / f64::from(config.odometry_sigma_deg).to_radians().powi(2),
            shortcut: false,
        }
    }

    /// Nodes `from` and `to` are the same place.
    pub(crate) fn same_place(from: usize, to: usize, config: &PoseGraphConfig) -> Self {
        Self {
            from,
            to,
            measured: OdometryPose::default(),
            position_information: 1.0 / f64::from(config.shortcut_sigma_m).powi(2),
            heading_information: 1.0 / f64::from(config.shortcut_sigma_deg).to_radians().powi(2),
            shortcut: true,
        }
    }
}

/// What the optimiser made of the constraints.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Each node's pose in the map (`None` for a node no constraint touches and without a
    /// starting pose).
    pub(crate) poses: Vec<Option<OdometryPose>>,
    /// Per constraint: whether it agrees with the map (odometry always does).
    pub(crate) kept: Vec<bool>,
    /// Per node: the first node of its part of the map (parts the constraints do not join lie
    /// in frames of their own).
    pub(crate) parts: Vec<usize>,
}

/// Lays out `nodes` nodes, starting from `initial` (each node's own odometry pose, or `None`),
/// under `constraints`.
pub(crate) fn optimise(
    initial: &[Option<OdometryPose>],
    constraints: &[Constraint],
    config: &PoseGraphConfig,
) -> Layout {
    let usable: Vec<&Constraint> = constraints
        .iter()
        .filter(|c| usable_in(c, initial))
        .collect();
    let mut estimate = spanning_tree(initial, &usable);
    let mut robust = vec![1.0f64; usable.len()];
    let last_scale = f64::from(config.reject_sigmas).max(0.5);
    for round in 0..config.rounds {
        estimate = solve_round(&usable, &robust, &estimate);
        // Cauchy weights at a scale that shrinks to `reject_sigmas` (in σ) by the last round.
        let rounds_left = (config.rounds - 1 - round) as f64;
        let scale = last_scale * 2f64.powf(rounds_left / 2.0);
        for (r, c) in robust.iter_mut().zip(&usable) {
            let residual = squared_residual(c, &estimate);
            *r = 1.0 / (1.0 + residual / (scale * scale));
        }
    }
    let limit = f64::from(config.reject_sigmas).powi(2);
    let verdict: Vec<bool> = usable
        .iter()
        .map(|c| !c.shortcut || squared_residual(c, &estimate) <= limit)
        .collect();
    // A rejected shortcut pulls no more: the map is solved once more without them.
    if verdict.contains(&false) {
        for (r, kept) in robust.iter_mut().zip(&verdict) {
            if !kept {
                *r = 0.0;
            }
        }
        estimate = solve_round(&usable, &robust, &estimate);
    }
    let parts = parts(
        initial.len(),
        usable
            .iter()
            .zip(&verdict)
            .filter(|(_, kept)| **kept)
            .map(|(c, _)| *c),
    );
    let mut verdict = verdict.into_iter();
    let kept = constraints
        .iter()
        .map(|c| {
            // A constraint on a node without a pose was not checked: it stays.
            !usable_in(c, initial) || verdict.next().unwrap_or(true)
        })
        .collect();
    let poses = initial
        .iter()
        .zip(&estimate)
        .map(|(start, pose)| {
            start.map(|_| OdometryPose {
                yaw: wrap(pose.yaw),
                ..*pose
            })
        })
        .collect();
    Layout { poses, kept, parts }
}

/// Whether `c` joins two different nodes that both have a starting pose.
fn usable_in(c: &Constraint, initial: &[Option<OdometryPose>]) -> bool {
    c.from != c.to
        && initial.get(c.from).is_some_and(Option::is_some)
        && initial.get(c.to).is_some_and(Option::is_some)
}

/// One solve of the map under `usable` weighed by `robust`, from `estimate`: the headings
/// (unwrapped against the estimate), then the positions with the headings fixed.
fn solve_round(
    usable: &[&Constraint],
    robust: &[f64],
    estimate: &[OdometryPose],
) -> Vec<OdometryPose> {
    let n = estimate.len();
    let weights = |information: fn(&Constraint) -> f64| -> Vec<f64> {
        usable
            .iter()
            .zip(robust)
            .map(|(c, r)| information(c) * r)
            .collect()
    };
    // Headings: θ_to − θ_from = measured, unwrapped against the estimate.
    let targets: Vec<f64> = usable
        .iter()
        .map(|c| {
            let off = estimate[c.to].yaw - estimate[c.from].yaw - c.measured.yaw;
            c.measured.yaw + (off / std::f64::consts::TAU).round() * std::f64::consts::TAU
        })
        .collect();
    let start: Vec<f64> = estimate.iter().map(|p| p.yaw).collect();
    let headings = solve_differences(
        n,
        usable,
        &weights(|c| c.heading_information),
        &targets,
        &start,
    );
    // Positions: p_to − p_from = R(θ_from) · measured.
    let position_weights = weights(|c| c.position_information);
    let rotated: Vec<(f64, f64)> = usable
        .iter()
        .map(|c| {
            let (sin, cos) = headings[c.from].sin_cos();
            let (x, y) = (c.measured.x, c.measured.y);
            (cos * x - sin * y, sin * x + cos * y)
        })
        .collect();
    let column = |pick: fn(&OdometryPose) -> f64, target: fn(&(f64, f64)) -> f64| {
        let start: Vec<f64> = estimate.iter().map(pick).collect();
        let targets: Vec<f64> = rotated.iter().map(target).collect();
        solve_differences(n, usable, &position_weights, &targets, &start)
    };
    let (xs, ys) = (column(|p| p.x, |t| t.0), column(|p| p.y, |t| t.1));
    (0..n)
        .map(|i| OdometryPose {
            x: xs[i],
            y: ys[i],
            yaw: headings[i],
        })
        .collect()
}

/// `c`'s residual in the map `estimate`, squared and in units of its standard deviations.
fn squared_residual(c: &Constraint, estimate: &[OdometryPose]) -> f64 {
    let (a, b) = (estimate[c.from], estimate[c.to]);
    let seen = OdometryPose {
        yaw: wrap(a.yaw),
        ..a
    }
    .inverse()
    .compose(&OdometryPose {
        yaw: wrap(b.yaw),
        ..b
    });
    let error = c.measured.inverse().compose(&seen);
    c.position_information * (error.x * error.x + error.y * error.y)
        + c.heading_information * error.yaw * error.yaw
}

/// A starting map: every node reached from a root by a search over all the constraints that
/// places a node by the first constraint to reach it, and goes on from a node reached by
/// odometry before one reached by a shortcut, headings unwrapped along it. Shortcuts thus take
/// out much of a long drive's drift from the start, which the headings' unwrapping needs; one
/// that is false is outweighed by the rest in the rounds that follow. (Measured in `autodidact
/// eval`: a start by odometry alone wherever it reaches, the whole drive's drift in it, ended
/// with a map twice as far off and ten times as many shortcuts rejected; a plain breadth-first
/// search fails the false-shortcut test below.)
/// Each root (the first node of a part the constraints do not join to an earlier one) keeps
/// its own odometry pose. Nodes without a pose stay at the origin.
fn spanning_tree(initial: &[Option<OdometryPose>], usable: &[&Constraint]) -> Vec<OdometryPose> {
    let n = initial.len();
    let mut touching: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, c) in usable.iter().enumerate() {
        touching[c.from].push(k);
        touching[c.to].push(k);
    }
    let mut estimate = vec![OdometryPose::default(); n];
    let mut seen = vec![false; n];
    for root in 0..n {
        let Some(start) = initial[root].filter(|_| !seen[root]) else {
            continue;
        };
        seen[root] = true;
        estimate[root] = start;
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(node) = queue.pop_front() {
            for &k in &touching[node] {
                let c = usable[k];
                let (next, step) = if c.from == node {
                    (c.to, c.measured)
                } else {
                    (c.from, c.measured.inverse())
                };
                if std::mem::replace(&mut seen[next], true) {
                    continue;
                }
                let here = estimate[node];
                let moved = here.compose(&step);
                estimate[next] = OdometryPose {
                    yaw: here.yaw + step.yaw,
                    ..moved
                };
                if c.shortcut {
                    queue.push_back(next);
                } else {
                    queue.push_front(next);
                }
            }
        }
    }
    estimate
}

/// The parts of the map: for each of `n` nodes, the first node of the part that `constraints`
/// join it to (union–find).
fn parts<'a>(n: usize, constraints: impl Iterator<Item = &'a Constraint>) -> Vec<usize> {
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..n).collect();
    for c in constraints {
        let (a, b) = (find(&mut parent, c.from), find(&mut parent, c.to));
        // The smaller index is the root: a part is named by its first node.
        let (low, high) = (a.min(b), a.max(b));
        parent[high] = low;
    }
    (0..n).map(|i| find(&mut parent, i)).collect()
}

/// Solves `min Σ_c w_c (v[to] − v[from] − target_c)²` for `v`, starting at `start`: a weighted
/// graph Laplacian, by conjugate gradients preconditioned with its chain (the diagonal and the
/// constraints between consecutive nodes, solved exactly in one sweep: odometry makes most of
/// the graph a chain, and a chain is what plain CG converges slowest on). A prior of a
/// billionth of a node's weight holds each node near `start`, so that parts the constraints do
/// not join (and the map as a whole) stay where they were.
fn solve_differences(
    n: usize,
    constraints: &[&Constraint],
    weights: &[f64],
    targets: &[f64],
    start: &[f64],
) -> Vec<f64> {
    const PRIOR: f64 = 1e-9;
    let mut degree = vec![0.0f64; n];
    let mut rhs = vec![0.0f64; n];
    for ((c, w), t) in constraints.iter().zip(weights).zip(targets) {
        degree[c.from] += w;
        degree[c.to] += w;
        rhs[c.from] -= w * t;
        rhs[c.to] += w * t;
    }
    let prior: Vec<f64> = degree.iter().map(|d| PRIOR * d.max(1.0)).collect();
    for i in 0..n {
        rhs[i] += prior[i] * start[i];
    }
    let apply = |v: &[f64], out: &mut [f64]| {
        for i in 0..n {
            out[i] = (degree[i] + prior[i]) * v[i];
        }
        for (c, w) in constraints.iter().zip(weights) {
            out[c.from] -= w * v[c.to];
            out[c.to] -= w * v[c.from];
        }
    };
    let diagonal: Vec<f64> = degree.iter().zip(&prior).map(|(d, p)| d + p).collect();
    let mut chain = vec![0.0f64; n];
    for (c, w) in constraints.iter().zip(weights) {
        if c.from.abs_diff(c.to) == 1 {
            chain[c.from.min(c.to)] -= w;
        }
    }
    let precondition = Tridiagonal::factor(&diagonal, &chain);
    let mut x = start.to_vec();
    let mut product = vec![0.0; n];
    apply(&x, &mut product);
    let mut residual: Vec<f64> = rhs.iter().zip(&product).map(|(b, a)| b - a).collect();
    let mut z = vec![0.0; n];
    precondition.solve(&residual, &mut z);
    let mut direction = z.clone();
    let mut rz: f64 = residual.iter().zip(&z).map(|(r, z)| r * z).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let tolerance = 1e-9 * norm(&rhs).max(1e-12);
    for _ in 0..(4 * n).max(100) {
        if norm(&residual) <= tolerance {
            break;
        }
        apply(&direction, &mut product);
        let curvature: f64 = direction.iter().zip(&product).map(|(d, p)| d * p).sum();
        if curvature <= 0.0 || !curvature.is_finite() {
            break;
        }
        let step = rz / curvature;
        for i in 0..n {
            x[i] += step * direction[i];
            residual[i] -= step * product[i];
        }
        precondition.solve(&residual, &mut z);
        let next: f64 = residual.iter().zip(&z).map(|(r, z)| r * z).sum();
        let beta = next / rz;
        rz = next;
        for i in 0..n {
            direction[i] = z[i] + beta * direction[i];
        }
    }
    x
}

/// A symmetric tridiagonal matrix, factored (`LDLᵀ`, L unit lower bidiagonal) to solve with
/// it in one sweep each way (the Thomas algorithm).
struct Tridiagonal {
    /// The factor's diagonal `D`.
    pivots: Vec<f64>,
    /// `L`'s entries below the diagonal (row `i + 1`, column `i`).
    lower: Vec<f64>,
}

impl Tridiagonal {
    /// Factors the matrix with `diagonal` and `off[i]` at `(i, i + 1)` and `(i + 1, i)`. It has
    /// to be positive definite (a Laplacian's diagonal with a prior dominates its chain).
    fn factor(diagonal: &[f64], off: &[f64]) -> Self {
        let n = diagonal.len();
        let mut pivots = vec![0.0; n];
        let mut lower = vec![0.0; n];
        for i in 0..n {
            pivots[i] = match i {
                0 => diagonal[0],
                _ => diagonal[i] - lower[i - 1] * off[i - 1],
            };
            lower[i] = off[i] / pivots[i];
        }
        Self { pivots, lower }
    }

    /// `out = A⁻¹ b`.
    fn solve(&self, b: &[f64], out: &mut [f64]) {
        let n = b.len();
        let mut previous = 0.0;
        for ((slot, value), lower) in out
            .iter_mut()
            .zip(b)
            .zip(std::iter::once(&0.0).chain(&self.lower))
        {
            *slot = value - lower * previous;
            previous = *slot;
        }
        for (slot, pivot) in out.iter_mut().zip(&self.pivots) {
            *slot /= pivot;
        }
        for i in (0..n.saturating_sub(1)).rev() {
            out[i] -= self.lower[i] * out[i + 1];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drive around a 2 m square, `laps` times, one node every 0.1 m, and its odometry, whose
    /// heading drifts by `drift_deg` per metre driven. Returns (true poses, odometry poses).
    fn square_drive(laps: usize, drift_deg: f64) -> (Vec<OdometryPose>, Vec<OdometryPose>) {
        let mut truth = Vec::new();
        let mut pose = OdometryPose::default();
        for _ in 0..laps {
            for _side in 0..4 {
                for _ in 0..20 {
                    truth.push(pose);
                    pose = pose.compose(&OdometryPose::new(0.1, 0.0, 0.0));
                }
                pose = pose.compose(&OdometryPose::new(0.0, 0.0, std::f64::consts::FRAC_PI_2));
            }
        }
        let mut odometry = vec![truth[0]];
        for pair in truth.windows(2) {
            let step = pair[0].inverse().compose(&pair[1]);
            let drifted = OdometryPose {
                yaw: step.yaw + (drift_deg * 0.1).to_radians(),
                ..step
            };
            let last = *odometry.last().expect("a pose");
            odometry.push(last.compose(&drifted));
        }
        (truth, odometry)
    }

    fn chain(odometry: &[OdometryPose], config: &PoseGraphConfig) -> Vec<Constraint> {
        (1..odometry.len())
            .map(|i| Constraint::odometry((i - 1, &odometry[i - 1]), (i, &odometry[i]), config))
            .collect()
    }

    /// Median metres between where `poses` put each node relative to node 0 and where it truly
    /// is relative to node 0.
    fn error_m(poses: &[OdometryPose], truth: &[OdometryPose]) -> f64 {
        let mut errors: Vec<f64> = poses
            .iter()
            .zip(truth)
            .map(|(p, t)| {
                let seen = poses[0].inverse().compose(p);
                truth[0].inverse().compose(t).distance(&seen)
            })
            .collect();
        errors.sort_by(f64::total_cmp);
        errors[errors.len() / 2]
    }

    #[test]
    fn same_place_constraints_undo_odometry_drift_around_loops() {
        let config = PoseGraphConfig::default();
        let (truth, odometry) = square_drive(3, 3.0);
        let mut constraints = chain(&odometry, &config);
        // Every place of laps 2 and 3 is recognised as the one of lap 1.
        let lap = 80;
        for i in lap..truth.len() {
            constraints.push(Constraint::same_place(i % lap, i, &config));
        }
        let initial: Vec<_> = odometry.iter().copied().map(Some).collect();
        let layout = optimise(&initial, &constraints, &config);
        let poses: Vec<OdometryPose> = layout.poses.iter().map(|p| p.expect("a pose")).collect();
        let before = error_m(&odometry, &truth);
        let after = error_m(&poses, &truth);
        assert!(before > 0.5, "the odometry drifts: {before} m");
        assert!(after < 0.1 * before, "{before} m → {after} m");
        assert!(layout.kept.iter().all(|k| *k), "every constraint is true");
    }

    #[test]
    fn a_false_shortcut_is_rejected_and_does_not_bend_the_map() {
        let config = PoseGraphConfig::default();
        let (truth, odometry) = square_drive(2, 1.0);
        let mut constraints = chain(&odometry, &config);
        let lap = 80;
        for i in (lap..truth.len()).step_by(4) {
            constraints.push(Constraint::same_place(i % lap, i, &config));
        }
        let initial: Vec<_> = odometry.iter().copied().map(Some).collect();
        let map = |layout: &Layout| -> Vec<OdometryPose> {
            layout.poses.iter().map(|p| p.expect("a pose")).collect()
        };
        let honest = error_m(&map(&optimise(&initial, &constraints, &config)), &truth);
        // Two corners 2 m apart taken for one place.
        let false_one = constraints.len();
        constraints.push(Constraint::same_place(20, lap + 60, &config));
        let layout = optimise(&initial, &constraints, &config);
        assert!(!layout.kept[false_one], "the look-alike corner is rejected");
        let kept = layout.kept.iter().filter(|k| **k).count();
        assert_eq!(kept, constraints.len() - 1, "and only it");
        let fooled = error_m(&map(&layout), &truth);
        assert!(
            fooled < honest + 0.01 && fooled < 0.5 * error_m(&odometry, &truth),
            "{honest} m without the false shortcut, {fooled} m with it"
        );
    }

    #[test]
    fn headings_are_unwrapped_over_many_turns_and_nodes_without_odometry_have_no_pose() {
        let config = PoseGraphConfig::default();
        // Ten laps: the heading turns by 20π; no drift.
        let (truth, odometry) = square_drive(10, 0.0);
        let mut constraints = chain(&odometry, &config);
        constraints.push(Constraint::same_place(5, 9 * 80 + 5, &config));
        let mut initial: Vec<_> = odometry.iter().copied().map(Some).collect();
        initial.push(None);
        constraints.push(Constraint::same_place(3, initial.len() - 1, &config));
        let layout = optimise(&initial, &constraints, &config);
        assert_eq!(layout.poses.last(), Some(&None));
        assert_eq!(layout.kept.last(), Some(&true), "not checked, not rejected");
        assert!(layout.parts[..initial.len() - 1].iter().all(|p| *p == 0));
        assert_eq!(
            layout.parts.last(),
            Some(&(initial.len() - 1)),
            "a part of its own"
        );
        let poses: Vec<OdometryPose> = layout.poses.iter().flatten().copied().collect();
        assert!(error_m(&poses, &truth) < 1e-6);
        assert!(poses.iter().all(|p| p.yaw.abs() <= std::f64::consts::PI));
    }

    #[test]
    fn the_chain_preconditioner_solves_its_tridiagonal_system_exactly() {
        // [[4, -1, 0], [-1, 4, -2], [0, -2, 5]] · [1, 2, 3] = [2, 1, 11].
        let matrix = Tridiagonal::factor(&[4.0, 4.0, 5.0], &[-1.0, -2.0, 0.0]);
        let mut x = [0.0; 3];
        matrix.solve(&[2.0, 1.0, 11.0], &mut x);
        for (got, want) in x.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-12, "{x:?}");
        }
    }

    #[test]
    fn unusable_settings_are_refused_by_name() {
        for (config, name) in [
            (
                PoseGraphConfig {
                    shortcut_sigma_m: 0.0,
                    ..PoseGraphConfig::default()
                },
                "shortcut_sigma_m",
            ),
            (
                PoseGraphConfig {
                    rounds: 0,
                    ..PoseGraphConfig::default()
                },
                "rounds",
            ),
            (
                PoseGraphConfig {
                    reject_sigmas: 0.0,
                    ..PoseGraphConfig::default()
                },
                "reject_sigmas",
            ),
        ] {
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
        }
        assert!(PoseGraphConfig::default().validate().is_ok());
    }
}
