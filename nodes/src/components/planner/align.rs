//! Turning to the goal's heading before the latent MPC drives: where the model serves a
//! relative-pose head, the robot first turns in place until the head reads the goal's heading
//! within a few degrees, and only then does the MPC take over. While the MPC drives, the head
//! keeps reading the heading, and the robot turns again where the MPC drove it off.
//!
//! Measured (docs/eval.md, "Odometry as a teacher"): the MPC alone reaches 62 % of the easy
//! goals on the models with the head, turning first and then the MPC 78 %, better in all 8
//! cells of two seeds, two windows and both protocols.

use autodidact_learn::relative_pose::RelativePoseHead;
use autodidact_learn::{EncoderSnapshot, OdometryPose};
use serde::{Deserialize, Serialize};

use super::sidestep::SidestepConfig;
use crate::NodeError;
use crate::components::collector::Frame;

/// Turning to the goal's heading first (`[planner.align]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlignConfig {
    /// Turn first where the model serves a relative-pose head (the odometry objective's). On
    /// by default; a model without the head plans with the MPC from the first frame.
    pub enabled: bool,
    /// The MPC takes over once the head first reads the goal's heading within this many
    /// degrees (measured: 4° reached 240 of 320 easy goals, 8° 249, 15° 232).
    pub within_deg: f64,
    /// Turn rate per radian of the goal's heading, `rad/s` per `rad`, kept within the
    /// planner's `[min_action, max_action]` turn rates.
    pub gain: f64,
    /// The MPC takes over after this much source time of turning, seconds, however the head
    /// reads the heading. Measured in `autodidact eval`, trained heads handed over within
    /// 1.7 s in 313 of 320 easy goals, and this ended 2 turns; an untrained head may never
    /// read the heading within `within_deg`, and turns the robot in place until this runs out.
    pub max_s: f64,
    /// Once the MPC drives, keep reading the goal's heading and turn in place again whenever
    /// the head reads it further off than `realign_deg` (measured: 249 of 320 easy goals
    /// without, 256–260 with `realign_deg` 10–20°). Reading it costs an image-only embedding
    /// and the head on every frame the MPC drives.
    pub realign: bool,
    /// Degrees (more than `within_deg`) beyond which the robot turns again, until the head
    /// reads the heading within `within_deg` again or `max_s` runs out.
    pub realign_deg: f64,
    /// Stepping aside, by odometry, to a goal the head reads beside the robot while the MPC
    /// drives.
    pub sidestep: SidestepConfig,
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            within_deg: 8.0,
            gain: 2.5,
            max_s: 2.5,
            realign: true,
            realign_deg: 20.0,
            sidestep: SidestepConfig::default(),
        }
    }
}

impl AlignConfig {
    /// Checks the numbers, naming the field of the one that is unusable.
    pub fn validate(&self) -> Result<(), NodeError> {
        let positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(NodeError::Setup(format!(
                    "planner.align.{name} must be a number > 0, got {value}"
                )))
            }
        };
        positive("within_deg", self.within_deg)?;
        positive("gain", self.gain)?;
        positive("max_s", self.max_s)?;
        self.sidestep.validate()?;
        // Equal thresholds would leave no room between turning and driving.
        if !self.realign || (self.realign_deg.is_finite() && self.realign_deg > self.within_deg) {
            Ok(())
        } else {
            Err(NodeError::Setup(format!(
                "planner.align.realign_deg must be a number > within_deg ({}), got {}",
                self.within_deg, self.realign_deg
            )))
        }
    }
}

/// Where the turn for the current goal stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// No frame seen for this goal yet.
    Waiting,
    /// Turning since the frame stamped so (nanoseconds); `again` after the MPC drove.
    Turning { since_ns: u64, again: bool },
    /// The MPC drives, and the head watches the heading (`realign`).
    Watching,
    /// The MPC drives (timed out, unreadable, alignment off, or aligned without `realign`).
    HandedOver,
}

/// How one goal's turn ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Turn {
    /// Turn in place at this rate, `rad/s`.
    InPlace(f32),
    /// The MPC drove the goal's heading beyond `realign_deg`: turn in place again at this
    /// rate, `rad/s`.
    Again(f32),
    /// The head read the goal's heading within `within_deg`: the MPC drives.
    Aligned,
    /// `max_s` passed before the head read it so: the MPC drives.
    TimedOut,
    /// The head read no finite heading: the MPC drives.
    Unreadable,
    /// The MPC drives (already, or again after a turn again).
    HandedOver,
}

/// The turn towards one goal's heading.
pub(super) struct Aligner {
    config: AlignConfig,
    stage: Stage,
    /// The goal's image-only embedding, with the encoder version it came from.
    goal_place: Option<(u64, Vec<f32>)>,
}

impl Aligner {
    pub(super) fn new(config: AlignConfig) -> Self {
        Self {
            config,
            stage: Stage::Waiting,
            goal_place: None,
        }
    }

    /// Starts over for a new goal.
    pub(super) fn new_goal(&mut self) {
        self.stage = Stage::Waiting;
        self.goal_place = None;
    }

    /// The turn for `frame` towards `goal`, by `head` on the two image-only embeddings (the
    /// encoder's with proprio zero, as the head was trained), with the goal's pose in the
    /// robot's frame as the head read it (`None` once the head no longer watches).
    pub(super) fn turn(
        &mut self,
        frame: &Frame,
        goal: &Frame,
        encoder: &EncoderSnapshot,
        head: &RelativePoseHead,
        turn_rates: [f32; 2],
    ) -> Result<(Turn, Option<OdometryPose>), NodeError> {
        if !self.config.enabled || self.stage == Stage::HandedOver {
            self.stage = Stage::HandedOver;
            return Ok((Turn::HandedOver, None));
        }
        let zeros = vec![0.0; encoder.config().proprio_dim];
        let goal_place = match &self.goal_place {
            Some((version, place)) if *version == encoder.version => place.clone(),
            _ => {
                let place = encoder.embed(&goal.image, &zeros)?;
                self.goal_place = Some((encoder.version, place.clone()));
                place
            }
        };
        let here = encoder.embed(&frame.image, &zeros)?;
        let goal_seen = head.pose(&here, &goal_place)?;
        let turn = self.on_estimate(frame.stamp_ns, &goal_seen, turn_rates);
        Ok((turn, Some(goal_seen)))
    }

    /// The turn for a frame stamped `stamp_ns` from which the goal is estimated at
    /// `goal_seen`, within `turn_rates` (`[slowest, fastest]`, `rad/s`, the planner's
    /// `min_action` and `max_action`).
    pub(super) fn on_estimate(
        &mut self,
        stamp_ns: u64,
        goal_seen: &OdometryPose,
        turn_rates: [f32; 2],
    ) -> Turn {
        let (since_ns, again) = match self.stage {
            Stage::HandedOver => return Turn::HandedOver,
            Stage::Waiting => (stamp_ns, false),
            Stage::Watching => (stamp_ns, true),
            // Stamps that went back (a reset simulator, a bag played again) start the clock over.
            Stage::Turning { since_ns, again } => (since_ns.min(stamp_ns), again),
        };
        if !goal_seen.yaw.is_finite() {
            self.stage = Stage::HandedOver;
            tracing::warn!("the relative-pose head read no finite heading: the MPC drives");
            return Turn::Unreadable;
        }
        let watching = self.stage == Stage::Watching;
        if watching {
            if goal_seen.yaw.abs() <= self.config.realign_deg.to_radians() {
                return Turn::HandedOver;
            }
        } else if goal_seen.yaw.abs() <= self.config.within_deg.to_radians() {
            self.stage = if self.config.realign {
                Stage::Watching
            } else {
                Stage::HandedOver
            };
            return if again {
                Turn::HandedOver
            } else {
                Turn::Aligned
            };
        }
        let turned_s = stamp_ns.saturating_sub(since_ns) as f64 * 1e-9;
        if turned_s >= self.config.max_s {
            self.stage = Stage::HandedOver;
            tracing::warn!(
                turned_s,
                heading_deg = goal_seen.yaw.to_degrees(),
                "the relative-pose head did not read the goal's heading within planner.align.within_deg: the MPC drives"
            );
            return Turn::TimedOut;
        }
        self.stage = Stage::Turning { since_ns, again };
        let [slowest, fastest] = turn_rates.map(f64::from);
        let rate = (self.config.gain * goal_seen.yaw).min(fastest).max(slowest) as f32;
        if watching {
            Turn::Again(rate)
        } else {
            Turn::InPlace(rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn heading(deg: f64) -> OdometryPose {
        OdometryPose::new(0.05, 0.0, deg.to_radians())
    }

    #[test]
    fn without_realign_turns_towards_the_goals_heading_until_within_the_threshold_then_never_again()
    {
        let mut aligner = Aligner::new(AlignConfig {
            realign: false,
            ..AlignConfig::default()
        });
        let Turn::InPlace(left) = aligner.on_estimate(0, &heading(20.0), [-2.0, 2.0]) else {
            panic!("turns while the goal is 20° to the left");
        };
        assert!((left - 2.5 * 20f32.to_radians()).abs() < 1e-5, "{left}");
        let Turn::InPlace(right) = aligner.on_estimate(50 * MS, &heading(-12.0), [-2.0, 2.0])
        else {
            panic!("turns while the goal is 12° to the right");
        };
        assert!(right < 0.0, "{right}");
        assert_eq!(
            aligner.on_estimate(100 * MS, &heading(-7.0), [-2.0, 2.0]),
            Turn::Aligned
        );
        // Once handed over, a later misreading does not take the robot back to turning.
        assert_eq!(
            aligner.on_estimate(150 * MS, &heading(90.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
        // A new goal turns again.
        aligner.new_goal();
        assert!(matches!(
            aligner.on_estimate(200 * MS, &heading(90.0), [-2.0, 2.0]),
            Turn::InPlace(_)
        ));
    }

    #[test]
    fn with_realign_deg_the_robot_turns_again_when_the_mpc_drives_the_heading_off() {
        let mut aligner = Aligner::new(AlignConfig {
            realign_deg: 15.0,
            max_s: 1.0,
            ..AlignConfig::default()
        });
        assert!(matches!(
            aligner.on_estimate(0, &heading(40.0), [-2.0, 2.0]),
            Turn::InPlace(_)
        ));
        assert_eq!(
            aligner.on_estimate(50 * MS, &heading(5.0), [-2.0, 2.0]),
            Turn::Aligned
        );
        // Within realign_deg the MPC keeps driving.
        assert_eq!(
            aligner.on_estimate(100 * MS, &heading(-14.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
        let Turn::Again(rate) = aligner.on_estimate(5_000 * MS, &heading(-20.0), [-2.0, 2.0])
        else {
            panic!("turns again once the heading is 20° off");
        };
        assert!(rate < 0.0, "{rate}");
        // It turns until within_deg, not only back within realign_deg, and is not counted as
        // a second alignment.
        assert!(matches!(
            aligner.on_estimate(5_050 * MS, &heading(-10.0), [-2.0, 2.0]),
            Turn::InPlace(_)
        ));
        assert_eq!(
            aligner.on_estimate(5_100 * MS, &heading(-6.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
        assert!(matches!(
            aligner.on_estimate(9_000 * MS, &heading(30.0), [-2.0, 2.0]),
            Turn::Again(_)
        ));
        // A turn again that max_s ends hands over for good.
        assert_eq!(
            aligner.on_estimate(10_000 * MS, &heading(30.0), [-2.0, 2.0]),
            Turn::TimedOut
        );
        assert_eq!(
            aligner.on_estimate(10_050 * MS, &heading(90.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
    }

    #[test]
    fn the_turn_is_capped_by_the_planners_largest_turn_rate() {
        let mut aligner = Aligner::new(AlignConfig::default());
        assert_eq!(
            aligner.on_estimate(0, &heading(-170.0), [-1.5, 2.0]),
            Turn::InPlace(-1.5)
        );
        // A planner that may not turn right does not turn right to align either.
        assert_eq!(
            aligner.on_estimate(50 * MS, &heading(-20.0), [0.0, 2.0]),
            Turn::InPlace(0.0)
        );
    }

    #[test]
    fn a_heading_that_is_not_a_number_hands_over_to_the_mpc_and_is_never_sent() {
        let mut aligner = Aligner::new(AlignConfig::default());
        let unreadable = OdometryPose::new(0.05, 0.0, f64::NAN);
        assert_eq!(
            aligner.on_estimate(0, &unreadable, [-2.0, 2.0]),
            Turn::Unreadable
        );
        assert_eq!(
            aligner.on_estimate(50 * MS, &heading(45.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
    }

    #[test]
    fn stamps_that_go_back_start_the_turns_clock_over() {
        let mut aligner = Aligner::new(AlignConfig {
            max_s: 1.0,
            ..AlignConfig::default()
        });
        let turns = |turn: Turn| matches!(turn, Turn::InPlace(_));
        assert!(turns(aligner.on_estimate(
            10_000 * MS,
            &heading(45.0),
            [-2.0, 2.0]
        )));
        // The simulator was reset: its clock starts at zero again.
        assert!(turns(aligner.on_estimate(0, &heading(45.0), [-2.0, 2.0])));
        assert!(turns(aligner.on_estimate(
            900 * MS,
            &heading(45.0),
            [-2.0, 2.0]
        )));
        assert_eq!(
            aligner.on_estimate(1_000 * MS, &heading(45.0), [-2.0, 2.0]),
            Turn::TimedOut
        );
    }

    #[test]
    fn a_head_that_never_reads_the_heading_hands_over_after_max_s() {
        let mut aligner = Aligner::new(AlignConfig {
            max_s: 1.0,
            ..AlignConfig::default()
        });
        for stamp in [0, 500 * MS, 999 * MS] {
            assert!(matches!(
                aligner.on_estimate(10_000 * MS + stamp, &heading(45.0), [-2.0, 2.0]),
                Turn::InPlace(_)
            ));
        }
        assert_eq!(
            aligner.on_estimate(11_000 * MS, &heading(45.0), [-2.0, 2.0]),
            Turn::TimedOut
        );
        assert_eq!(
            aligner.on_estimate(11_050 * MS, &heading(45.0), [-2.0, 2.0]),
            Turn::HandedOver
        );
    }

    #[test]
    fn unusable_settings_are_refused_by_name() {
        for (config, name) in [
            (
                AlignConfig {
                    within_deg: 0.0,
                    ..AlignConfig::default()
                },
                "within_deg",
            ),
            (
                AlignConfig {
                    gain: f64::NAN,
                    ..AlignConfig::default()
                },
                "gain",
            ),
            (
                AlignConfig {
                    max_s: -1.0,
                    ..AlignConfig::default()
                },
                "max_s",
            ),
            (
                AlignConfig {
                    realign_deg: 4.0,
                    ..AlignConfig::default()
                },
                "realign_deg",
            ),
        ] {
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
        }
        assert!(AlignConfig::default().validate().is_ok());
        // Equal thresholds would leave no room between turning and driving; without turning
        // again, realign_deg does not matter.
        let equal = AlignConfig {
            realign_deg: 8.0,
            ..AlignConfig::default()
        };
        assert!(equal.validate().is_err());
        let once = AlignConfig {
            realign: false,
            ..equal
        };
        assert!(once.validate().is_ok());
    }
}
