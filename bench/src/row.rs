//! One measured row of a `bench` table, and the timing loop that fills it.

use std::time::{Duration, Instant};

use autodidact_learn::stats::{median, percentile};
use serde::Serialize;

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub case: String,
    /// Repetitions timed.
    pub iterations: u64,
    /// Median time per repetition, microseconds.
    pub median_us: f64,
    /// 99th-percentile time per repetition, microseconds.
    pub p99_us: f64,
    /// Repetitions per second at the median.
    pub per_second: f64,
}

impl BenchRow {
    /// A row from per-repetition times in microseconds; `per_repetition` items are done each
    /// time (the rate is items per second at the median).
    pub fn from_samples(case: String, samples_us: &[f64], per_repetition: f64) -> Self {
        let median = median(samples_us).unwrap_or(f64::NAN);
        BenchRow {
            case,
            iterations: samples_us.len() as u64,
            median_us: median,
            p99_us: percentile(samples_us, 99.0).unwrap_or(f64::NAN),
            per_second: per_repetition * 1e6 / median,
        }
    }
}

/// Times `f` repeatedly for about `budget` after a short warm-up.
pub(crate) fn measure(case: &str, budget: Duration, mut f: impl FnMut()) -> BenchRow {
    let warm_until = Instant::now() + budget / 10;
    while Instant::now() < warm_until {
        f();
    }
    let mut samples = Vec::new();
    let until = Instant::now() + budget;
    while Instant::now() < until || samples.len() < 10 {
        let started = Instant::now();
        f();
        samples.push(started.elapsed().as_secs_f64() * 1e6);
    }
    BenchRow::from_samples(case.to_owned(), &samples, 1.0)
}
