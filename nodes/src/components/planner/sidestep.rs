//! Stepping aside to a goal that lies beside the robot: the latent MPC does not close a sideways
//! offset (a differential drive has to turn away, drive and turn back, and every step of that
//! first takes it further from the goal's view; docs/eval.md, "Near goals"). Where the
//! relative-pose head reads the goal (scaled by `side_gain`) further than `aside_m` to one side
//! on `readings` frames in a row while the MPC drives, the robot places the goal in its wheel
//! odometry's frame (the mean of those readings), turns to face that place, drives to it and
//! turns to the goal's heading, all by odometry; then the MPC, and the head's watch of the
//! heading, take over again.

use autodidact_learn::OdometryPose;
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Stepping aside to a goal beside the robot (`[planner.align.sidestep]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SidestepConfig {
    /// Step aside where the head reads the goal beside the robot. Needs the relative-pose
    /// head, wheel odometry on the frames and the head's watch of the heading while the MPC
    /// drives (`planner.align` `enabled` and `realign`, the defaults: the head is read only
    /// while it watches); off by default: measured (docs/eval.md, "Revisits") it reached 7
    /// more near goals of 80 and lost 19 easy goals of 80 on heads trained with revisits.
    pub enabled: bool,
    /// The goal lies beside when the head's reading, scaled by `side_gain`, puts it further
    /// than this to the side, metres. At gain 1 the heads trained with revisits read a side
    /// offset near a goal at a small part of its size (docs/eval.md, "Revisits"): 0.12 m never
    /// started a step there, 0.05 m did.
    pub aside_m: f64,
    /// Frames in a row that must read the goal beside, on one side; their readings, placed in
    /// the odometry's frame, are averaged into where the robot steps.
    pub readings: usize,
    /// Forward speed of the step, m/s (less within the last few centimetres).
    pub speed_mps: f64,
    /// The step has arrived within this distance of the goal's place, metres.
    pub arrive_m: f64,
    /// Facing the goal's place, and at the goal's heading, within this many degrees.
    pub within_deg: f64,
    /// Turn rate per radian off, `rad/s` per `rad`.
    pub gain: f64,
    /// A step that has not ended after this much source time, seconds, is given up.
    pub max_s: f64,
    /// Metres truly aside per metre the head reads aside: the reading is multiplied by it
    /// before `aside_m` is compared and the step placed. `autodidact eval` reports it for a
    /// model ("metres true per metre read", `nearest_side_calibration`): the heads trained
    /// with revisits read a side offset at a half to a quarter of its size (1.9–3.8).
    pub side_gain: f64,
    /// Most steps aside for one goal (with a memory, for each path's end). Measured on the near
    /// goals: a second step, started late or on a misreading, left the robot turned away from
    /// the goal's heading at the end (2: 29 of 40 reached; 1: 34 of 40).
    pub per_goal: u32,
}

impl Default for SidestepConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            aside_m: 0.05,
            readings: 5,
            speed_mps: 0.15,
            arrive_m: 0.03,
            within_deg: 8.0,
            gain: 2.5,
            max_s: 8.0,
            side_gain: 1.0,
            per_goal: 1,
        }
    }
}

impl SidestepConfig {
    /// Checks the numbers, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        let positive = [
            ("aside_m", self.aside_m),
            ("speed_mps", self.speed_mps),
            ("arrive_m", self.arrive_m),
            ("within_deg", self.within_deg),
            ("gain", self.gain),
            ("max_s", self.max_s),
            ("side_gain", self.side_gain),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(NodeError::Setup(format!(
                    "planner.align.sidestep.{name} must be a number > 0, got {value}"
                )));
            }
        }
        // Driving re-faces the goal's place beyond 4 × within_deg off its line: that must be
        // less than a half turn.
        if self.within_deg >= 45.0 {
            return Err(NodeError::Setup(format!(
                "planner.align.sidestep.within_deg must be less than 45, got {}",
                self.within_deg
            )));
        }
        if self.readings == 0 {
            return Err(NodeError::Setup(
                "planner.align.sidestep.readings must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The part of a step under way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Turning in place to face the goal's place.
    Face,
    /// Driving to it.
    Drive,
    /// Turning in place to the goal's heading.
    Turn,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// The MPC drives; the goal's places (odometry frame) of the frames in a row that read it
    /// beside.
    Watching(Vec<OdometryPose>),
    /// Stepping to `target` (odometry frame) since the frame stamped `since_ns`.
    Stepping {
        target: OdometryPose,
        phase: Phase,
        since_ns: u64,
    },
}

/// What a step did with one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stepped {
    /// No step under way, or none started: the MPC drives.
    Idle,
    /// Send this command, `[linear m/s, angular rad/s]`.
    Command([f32; 2]),
    /// The step ended with this frame (arrived, given up or without odometry): the MPC drives
    /// from here.
    Ended,
}

/// Steps aside to one goal at a time.
pub(super) struct Sidestep {
    config: SidestepConfig,
    state: State,
    /// Steps started for the current goal.
    steps: u32,
}

impl Sidestep {
    pub(super) fn new(config: SidestepConfig) -> Self {
        Self {
            config,
            state: State::Watching(Vec::new()),
            steps: 0,
        }
    }

    /// Starts over for a new goal.
    pub(super) fn new_goal(&mut self) {
        self.state = State::Watching(Vec::new());
        self.steps = 0;
    }

    /// Whether a step is under way (the head's watch of the heading waits for it).
    pub(super) fn stepping(&self) -> bool {
        matches!(self.state, State::Stepping { .. })
    }

    /// The next command of the step under way for a frame stamped `stamp_ns` at `odometry`,
    /// within `limits` (`[[slowest, fastest] forward, [slowest, fastest] turn]`, the planner's
    /// `min_action` and `max_action`).
    pub(super) fn step(
        &mut self,
        stamp_ns: u64,
        odometry: Option<OdometryPose>,
        limits: [[f32; 2]; 2],
    ) -> Stepped {
        let State::Stepping {
            target,
            phase,
            since_ns,
        } = self.state
        else {
            return Stepped::Idle;
        };
        let Some(odometry) = odometry.filter(OdometryPose::is_finite) else {
            tracing::warn!("a frame without wheel odometry: the step aside is given up");
            return self.end();
        };
        // Stamps that went back (a reset simulator, a bag played again) start the clock over.
        let since_ns = since_ns.min(stamp_ns);
        let stepped_s = stamp_ns.saturating_sub(since_ns) as f64 * 1e-9;
        if stepped_s > self.config.max_s {
            tracing::warn!(
                stepped_s,
                "the step aside did not end within planner.align.sidestep.max_s: given up"
            );
            return self.end();
        }
        // The goal's place seen from the robot, by odometry.
        let goal = odometry.inverse().compose(&target);
        let distance = goal.x.hypot(goal.y);
        let bearing = goal.y.atan2(goal.x);
        let within = self.config.within_deg.to_radians();
        let mut phase = phase;
        if phase != Phase::Turn && distance <= self.config.arrive_m {
            phase = Phase::Turn;
        }
        if phase == Phase::Face && bearing.abs() <= within {
            phase = Phase::Drive;
        }
        // Passed the place, or pushed well off the line to it: face it again.
        if phase == Phase::Drive && bearing.abs() > 4.0 * within {
            phase = if goal.x <= 0.0 && distance <= 2.0 * self.config.arrive_m {
                Phase::Turn
            } else {
                Phase::Face
            };
        }
        if phase == Phase::Turn && goal.yaw.abs() <= within {
            return self.end();
        }
        if let State::Stepping {
            phase: now,
            since_ns: since,
            ..
        } = &mut self.state
        {
            (*now, *since) = (phase, since_ns);
        }
        let [linear, angular] = limits.map(|[slowest, fastest]| {
            move |value: f64| value.min(f64::from(fastest)).max(f64::from(slowest)) as f32
        });
        let gain = self.config.gain;
        Stepped::Command(match phase {
            Phase::Face => [linear(0.0), angular(gain * bearing)],
            Phase::Drive => [
                linear(self.config.speed_mps.min(2.0 * distance)),
                angular(gain * bearing),
            ],
            Phase::Turn => [linear(0.0), angular(gain * goal.yaw)],
        })
    }

    /// Reads where the head places the goal (`goal_seen`, in the robot's frame) on a frame the
    /// MPC would drive from, and starts a step once `readings` frames in a row read it beside,
    /// on one side; then as [`Sidestep::step`].
    pub(super) fn consider(
        &mut self,
        stamp_ns: u64,
        odometry: Option<OdometryPose>,
        goal_seen: Option<&OdometryPose>,
        limits: [[f32; 2]; 2],
    ) -> Stepped {
        if !self.config.enabled || self.steps >= self.config.per_goal || self.stepping() {
            return Stepped::Idle;
        }
        let State::Watching(places) = &mut self.state else {
            return Stepped::Idle;
        };
        let (Some(odometry), Some(read)) = (
            odometry.filter(OdometryPose::is_finite),
            goal_seen.filter(|seen| seen.is_finite()),
        ) else {
            places.clear();
            return Stepped::Idle;
        };
        let seen = &OdometryPose::new(read.x, self.config.side_gain * read.y, read.yaw);
        if seen.y.abs() <= self.config.aside_m {
            places.clear();
            return Stepped::Idle;
        }
        // Readings on both sides are not one place beside the robot: their mean would lie
        // near the robot and the step would turn it away for nothing. The count starts over
        // from this reading.
        let side_of = |place: &OdometryPose| odometry.inverse().compose(place).y.signum();
        if places
            .last()
            .is_some_and(|last| side_of(last) != seen.y.signum())
        {
            places.clear();
        }
        places.push(odometry.compose(seen));
        if places.len() < self.config.readings {
            return Stepped::Idle;
        }
        let n = places.len() as f64;
        let target = OdometryPose::new(
            places.iter().map(|p| p.x).sum::<f64>() / n,
            places.iter().map(|p| p.y).sum::<f64>() / n,
            // The circular mean, in [-π, π].
            places
                .iter()
                .map(|p| p.yaw.sin())
                .sum::<f64>()
                .atan2(places.iter().map(|p| p.yaw.cos()).sum::<f64>()),
        );
        self.steps += 1;
        tracing::debug!(
            step = self.steps,
            aside_m = seen.y,
            ahead_m = seen.x,
            "the head reads the goal beside the robot: stepping aside to it by odometry"
        );
        self.state = State::Stepping {
            target,
            phase: Phase::Face,
            since_ns: stamp_ns,
        };
        self.step(stamp_ns, Some(odometry), limits)
    }

    /// Forgets the readings so far: the robot turned in place between them, and they are no
    /// longer frames in a row.
    pub(super) fn interrupt(&mut self) {
        if let State::Watching(places) = &mut self.state {
            places.clear();
        }
    }

    fn end(&mut self) -> Stepped {
        self.state = State::Watching(Vec::new());
        Stepped::Ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const LIMITS: [[f32; 2]; 2] = [[-0.3, 0.3], [-1.5, 1.5]];

    fn sidestep() -> Sidestep {
        Sidestep::new(SidestepConfig {
            enabled: true,
            readings: 3,
            ..SidestepConfig::default()
        })
    }

    /// Drives a unicycle by the commands for `seconds` at 20 frames/s, from `pose`.
    fn drive(
        sidestep: &mut Sidestep,
        mut pose: OdometryPose,
        from_ns: u64,
        seconds: f64,
    ) -> (OdometryPose, Stepped) {
        let mut last = Stepped::Idle;
        for i in 0..(seconds * 20.0) as u64 {
            last = sidestep.step(from_ns + i * 50 * MS, Some(pose), LIMITS);
            let Stepped::Command([v, w]) = last else {
                return (pose, last);
            };
            pose = pose.compose(&OdometryPose::new(
                0.05 * f64::from(v),
                0.0,
                0.05 * f64::from(w),
            ));
        }
        (pose, last)
    }

    #[test]
    fn a_goal_read_beside_the_robot_is_reached_by_turning_driving_and_turning_back() {
        let mut sidestep = sidestep();
        let start = OdometryPose::new(1.0, 2.0, 0.3);
        // The goal 0.25 m to the left, 0.02 m ahead, at the robot's heading: read on three
        // frames, a little noisily.
        let goal = start.compose(&OdometryPose::new(0.02, 0.25, 0.0));
        let mut result = Stepped::Idle;
        for (i, noise) in [-0.01, 0.01, 0.0].into_iter().enumerate() {
            let seen = OdometryPose::new(0.02 + noise, 0.25 - noise, noise);
            result = sidestep.consider(i as u64 * 50 * MS, Some(start), Some(&seen), LIMITS);
            if i < 2 {
                assert_eq!(result, Stepped::Idle, "starts only on the third reading");
            }
        }
        let Stepped::Command([v, w]) = result else {
            panic!("a step starts: {result:?}");
        };
        assert!(
            v.abs() < 1e-6 && w > 0.0,
            "turns left in place first: {v} {w}"
        );
        assert!(sidestep.stepping());
        let (end, last) = drive(&mut sidestep, start, 150 * MS, 7.5);
        assert_eq!(last, Stepped::Ended);
        assert!(!sidestep.stepping());
        let off = end.inverse().compose(&goal);
        assert!(
            off.x.hypot(off.y) < 0.04,
            "ends at the goal's place: {off:?}"
        );
        assert!(
            off.yaw.abs() < 10f64.to_radians(),
            "at its heading: {off:?}"
        );
    }

    #[test]
    fn a_goal_ahead_or_read_beside_on_too_few_frames_starts_no_step() {
        let mut sidestep = sidestep();
        let here = OdometryPose::new(0.0, 0.0, 0.0);
        let ahead = OdometryPose::new(0.3, 0.02, 0.0);
        let beside = OdometryPose::new(0.0, -0.3, 0.0);
        for stamp in 0..10 {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, Some(here), Some(&ahead), LIMITS),
                Stepped::Idle
            );
        }
        // Two frames beside, then one ahead: the count starts over.
        for (stamp, seen) in [(10, beside), (11, beside), (12, ahead), (13, beside)] {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, Some(here), Some(&seen), LIMITS),
                Stepped::Idle
            );
        }
        // Without odometry, no step either.
        for stamp in 14..20 {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, None, Some(&beside), LIMITS),
                Stepped::Idle
            );
        }
        // Off, never.
        let mut off = Sidestep::new(SidestepConfig {
            readings: 1,
            ..SidestepConfig::default()
        });
        assert_eq!(
            off.consider(0, Some(here), Some(&beside), LIMITS),
            Stepped::Idle
        );
    }

    #[test]
    fn the_side_gain_steps_as_far_aside_as_a_reading_means() {
        let mut sidestep = Sidestep::new(SidestepConfig {
            enabled: true,
            readings: 3,
            side_gain: 2.5,
            aside_m: 0.2,
            ..SidestepConfig::default()
        });
        let start = OdometryPose::new(-1.0, 0.5, -2.0);
        // A head that reads the goal at 0.1 m to the left where it lies 0.25 m: 0.1 × 2.5 is
        // over aside_m (0.2) and is where the robot steps.
        let read = OdometryPose::new(0.02, 0.1, 0.0);
        let goal = start.compose(&OdometryPose::new(0.02, 0.25, 0.0));
        for stamp in 0..3 {
            sidestep.consider(stamp * 50 * MS, Some(start), Some(&read), LIMITS);
        }
        assert!(sidestep.stepping());
        let (end, last) = drive(&mut sidestep, start, 150 * MS, 7.5);
        assert_eq!(last, Stepped::Ended);
        let off = end.inverse().compose(&goal);
        assert!(off.x.hypot(off.y) < 0.04, "ends at the place: {off:?}");
        // Without the gain the same readings are not aside enough.
        let mut plain = Sidestep::new(SidestepConfig {
            side_gain: 1.0,
            ..sidestep.config.clone()
        });
        for stamp in 0..5 {
            assert_eq!(
                plain.consider(stamp * 50 * MS, Some(start), Some(&read), LIMITS),
                Stepped::Idle
            );
        }
    }

    #[test]
    fn readings_on_both_sides_start_the_count_over() {
        let mut sidestep = sidestep();
        let here = OdometryPose::new(0.5, -0.2, 1.0);
        let left = OdometryPose::new(0.0, 0.3, 0.0);
        let right = OdometryPose::new(0.0, -0.3, 0.0);
        for (stamp, seen) in [(0, left), (1, left), (2, right), (3, right)] {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, Some(here), Some(&seen), LIMITS),
                Stepped::Idle,
                "reading {stamp}"
            );
        }
        // The third reading on the right in a row starts a step, turning right.
        let Stepped::Command([_, w]) =
            sidestep.consider(4 * 50 * MS, Some(here), Some(&right), LIMITS)
        else {
            panic!("three readings on one side start a step");
        };
        assert!(w < 0.0, "turns right, to the side read: {w}");
    }

    #[test]
    fn a_step_ends_without_odometry_or_after_max_s_and_at_most_per_goal_steps_start() {
        let mut sidestep = Sidestep::new(SidestepConfig {
            enabled: true,
            readings: 1,
            per_goal: 2,
            max_s: 1.0,
            ..SidestepConfig::default()
        });
        let here = OdometryPose::new(0.0, 0.0, 0.0);
        let beside = OdometryPose::new(0.0, 0.3, 0.0);
        assert!(matches!(
            sidestep.consider(0, Some(here), Some(&beside), LIMITS),
            Stepped::Command(_)
        ));
        assert_eq!(sidestep.step(50 * MS, None, LIMITS), Stepped::Ended);
        assert!(matches!(
            sidestep.consider(100 * MS, Some(here), Some(&beside), LIMITS),
            Stepped::Command(_)
        ));
        // Standing still (the robot does not move): given up once max_s has passed.
        assert!(matches!(
            sidestep.step(1_000 * MS, Some(here), LIMITS),
            Stepped::Command(_)
        ));
        assert_eq!(
            sidestep.step(1_200 * MS, Some(here), LIMITS),
            Stepped::Ended
        );
        // Two steps for this goal: no third.
        assert_eq!(
            sidestep.consider(1_250 * MS, Some(here), Some(&beside), LIMITS),
            Stepped::Idle
        );
        sidestep.new_goal();
        assert!(matches!(
            sidestep.consider(1_300 * MS, Some(here), Some(&beside), LIMITS),
            Stepped::Command(_)
        ));
    }

    #[test]
    fn a_turn_between_readings_starts_the_count_over_and_stamps_that_go_back_restart_the_clock() {
        let mut sidestep = sidestep();
        let here = OdometryPose::new(0.0, 0.0, 0.0);
        let beside = OdometryPose::new(0.0, 0.3, 0.0);
        for stamp in 0..2 {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, Some(here), Some(&beside), LIMITS),
                Stepped::Idle
            );
        }
        // The robot turned in place to the goal's heading: two readings more are needed.
        sidestep.interrupt();
        for stamp in 2..4 {
            assert_eq!(
                sidestep.consider(stamp * 50 * MS, Some(here), Some(&beside), LIMITS),
                Stepped::Idle
            );
        }
        assert!(matches!(
            sidestep.consider(10_000 * MS, Some(here), Some(&beside), LIMITS),
            Stepped::Command(_)
        ));
        // The simulator was reset: its clock starts at zero again, and max_s (8 s) counts from
        // there.
        for stamp_s in [0, 4, 7] {
            assert!(matches!(
                sidestep.step(stamp_s * 1_000 * MS, Some(here), LIMITS),
                Stepped::Command(_)
            ));
        }
        assert_eq!(
            sidestep.step(9_000 * MS, Some(here), LIMITS),
            Stepped::Ended
        );
    }

    #[test]
    fn the_commands_stay_within_the_planners_limits() {
        let mut sidestep = Sidestep::new(SidestepConfig {
            enabled: true,
            readings: 1,
            speed_mps: 5.0,
            ..SidestepConfig::default()
        });
        let here = OdometryPose::new(0.0, 0.0, 0.0);
        // Far behind and to the right: the turn is capped; a planner that may not turn right
        // does not.
        let behind = OdometryPose::new(-0.5, -0.4, 0.0);
        let limits = [[0.0, 0.2], [0.0, 1.0]];
        let Stepped::Command([v, w]) = sidestep.consider(0, Some(here), Some(&behind), limits)
        else {
            panic!("a step starts");
        };
        assert_eq!((v, w), (0.0, 0.0));
        // Facing it, the speed is capped.
        let facing = OdometryPose::new(0.0, 0.0, (-0.4f64).atan2(-0.5));
        let Stepped::Command([v, _]) = sidestep.step(50 * MS, Some(facing), limits) else {
            panic!("drives");
        };
        assert!((v - 0.2).abs() < 1e-6, "{v}");
    }

    #[test]
    fn unusable_settings_are_refused_by_name() {
        assert!(SidestepConfig::default().validate().is_ok());
        for (config, name) in [
            (
                SidestepConfig {
                    aside_m: 0.0,
                    ..SidestepConfig::default()
                },
                "aside_m",
            ),
            (
                SidestepConfig {
                    max_s: f64::NAN,
                    ..SidestepConfig::default()
                },
                "max_s",
            ),
            (
                SidestepConfig {
                    readings: 0,
                    ..SidestepConfig::default()
                },
                "readings",
            ),
            (
                SidestepConfig {
                    side_gain: -2.0,
                    ..SidestepConfig::default()
                },
                "side_gain",
            ),
            (
                SidestepConfig {
                    within_deg: 45.0,
                    ..SidestepConfig::default()
                },
                "within_deg",
            ),
        ] {
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
        }
    }
}
