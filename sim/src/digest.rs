//! A running digest of observations, to prove that two runs produced the same data.

use std::hash::Hasher;

use crate::types::Observation;

/// Folds every byte an observation carries (image, depth, proprio, stamps) into a 64-bit digest.
///
/// Floats are hashed by their bit patterns, so the digest changes with any difference at all.
/// The hasher is `std`'s SipHash with fixed keys: stable within one build, which is all the
/// determinism tests need (they compare two runs, not a hard-coded value).
#[derive(Debug, Clone, Default)]
pub struct ObservationDigest {
    hasher: std::collections::hash_map::DefaultHasher,
    observations: u64,
}

impl ObservationDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one observation.
    pub fn add(&mut self, observation: &Observation) {
        let h = &mut self.hasher;
        h.write_u64(observation.stamp.nanos);
        h.write_u32(observation.frame.width);
        h.write_u32(observation.frame.height);
        h.write(&observation.frame.rgb);
        for depth in &observation.frame.depth {
            h.write_u32(depth.to_bits());
        }
        let j = &observation.joints;
        for value in j.position.iter().chain(&j.velocity).chain(&j.effort) {
            h.write_u64(value.to_bits());
        }
        let imu = &observation.imu;
        for value in imu
            .orientation
            .iter()
            .chain(&imu.angular_velocity)
            .chain(&imu.linear_acceleration)
        {
            h.write_u64(value.to_bits());
        }
        let o = &observation.odom;
        for value in [o.x, o.y, o.yaw, o.linear_x, o.angular_z] {
            h.write_u64(value.to_bits());
        }
        h.write_u32(observation.applied_action.linear_x.to_bits());
        h.write_u32(observation.applied_action.angular_z.to_bits());
        self.observations += 1;
    }

    /// The digest so far.
    pub fn value(&self) -> u64 {
        self.hasher.finish()
    }

    /// How many observations went in.
    pub fn count(&self) -> u64 {
        self.observations
    }
}
