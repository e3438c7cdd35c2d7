//! Time, injected: components never read the system clock themselves, so the same code runs on
//! wall time, on the simulator's clock (like ROS `use_sim_time`) and in tests on a manual clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A source of "now" in nanoseconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Nanoseconds since this clock's epoch.
    fn now_ns(&self) -> u64;
}

/// Monotonic wall time since the clock was made.
#[derive(Debug, Clone)]
pub struct WallClock {
    start: Instant,
}

impl WallClock {
    /// A clock that reads 0 now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told: the simulator's `/clock`, or a test's.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the time (the clock never goes backwards: earlier values are ignored).
    pub fn set_ns(&self, now_ns: u64) {
        self.now.fetch_max(now_ns, Ordering::Relaxed);
    }

    /// Follows a time source that may jump back (ROS `/clock` when a bag loops or a simulator
    /// restarts), as rclcpp's time source does.
    pub fn follow_ns(&self, now_ns: u64) {
        self.now.store(now_ns, Ordering::Relaxed);
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.now.fetch_add(by, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

/// Seconds to nanoseconds (negative and non-finite become 0).
pub fn secs_to_ns(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1e9) as u64
    } else {
        0
    }
}
