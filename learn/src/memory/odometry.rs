//! Planar poses as wheel odometry reports them (`nav_msgs/Odometry`'s pose in its `odom` frame,
//! reduced to x, y and heading), and the few operations the memory needs on them.

use serde::{Deserialize, Serialize};

/// A pose in the plane: position in metres, heading in radians (counter-clockwise, REP 103).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct OdometryPose {
    /// x, metres.
    pub x: f64,
    /// y, metres.
    pub y: f64,
    /// Heading, rad.
    pub yaw: f64,
}

impl OdometryPose {
    /// A pose.
    pub fn new(x: f64, y: f64, yaw: f64) -> Self {
        Self { x, y, yaw }
    }

    /// Whether every number is finite.
    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite() && self.yaw.is_finite()
    }

    /// `self ⊕ other`: `other`, given relative to `self`, in `self`'s frame.
    pub fn compose(&self, other: &Self) -> Self {
        let (sin, cos) = self.yaw.sin_cos();
        Self {
            x: self.x + cos * other.x - sin * other.y,
            y: self.y + sin * other.x + cos * other.y,
            yaw: wrap(self.yaw + other.yaw),
        }
    }

    /// `self⁻¹`: the frame `self` came from, seen from `self`.
    pub fn inverse(&self) -> Self {
        let (sin, cos) = self.yaw.sin_cos();
        Self {
            x: -(cos * self.x + sin * self.y),
            y: -(-sin * self.x + cos * self.y),
            yaw: wrap(-self.yaw),
        }
    }

    /// Metres between the two positions.
    pub fn distance(&self, other: &Self) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }

    /// Radians between the two headings, in `[0, π]`.
    pub fn turn(&self, other: &Self) -> f64 {
        wrap(self.yaw - other.yaw).abs()
    }
}

/// `angle` in `(-π, π]`.
pub(crate) fn wrap(angle: f64) -> f64 {
    let pi = std::f64::consts::PI;
    let wrapped = (angle + pi).rem_euclid(2.0 * pi) - pi;
    if wrapped <= -pi {
        wrapped + 2.0 * pi
    } else {
        wrapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &OdometryPose, b: &OdometryPose) -> bool {
        a.distance(b) < 1e-9 && a.turn(b) < 1e-9
    }

    #[test]
    fn composing_with_the_inverse_gives_the_identity_and_composition_moves_in_the_frame() {
        let pose = OdometryPose::new(1.0, -2.0, 2.5);
        assert!(close(
            &pose.compose(&pose.inverse()),
            &OdometryPose::default()
        ));
        assert!(close(
            &pose.inverse().compose(&pose),
            &OdometryPose::default()
        ));
        // One metre ahead of a robot at (1, 0) facing +y is (1, 1).
        let facing_y = OdometryPose::new(1.0, 0.0, std::f64::consts::FRAC_PI_2);
        let ahead = facing_y.compose(&OdometryPose::new(1.0, 0.0, 0.0));
        assert!(close(
            &ahead,
            &OdometryPose::new(1.0, 1.0, std::f64::consts::FRAC_PI_2)
        ));
        // Headings wrap: 170° turned by 20° is −170°, 20° away the short way round.
        let a = OdometryPose::new(0.0, 0.0, 170f64.to_radians());
        let b = a.compose(&OdometryPose::new(0.0, 0.0, 20f64.to_radians()));
        assert!((b.yaw - (-170f64).to_radians()).abs() < 1e-9);
        assert!((a.turn(&b) - 20f64.to_radians()).abs() < 1e-9);
    }
}
