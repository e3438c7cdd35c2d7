//! Order statistics for reports and benchmarks: one convention everywhere.
//!
//! The `p`-th percentile is the nearest-rank element of the sorted values at index
//! `round(p / 100 · (n − 1))`; the median is the 50th percentile (for an even count, the upper of
//! the two middle values). NaN sorts last (`f64::total_cmp`). An empty input has none.

/// The `pct`-th percentile (0..=100, clamped) of `values`; `None` when there are none.
pub fn percentile(values: &[f64], pct: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let fraction = if pct.is_nan() {
        0.5
    } else {
        pct.clamp(0.0, 100.0) / 100.0
    };
    let rank = (fraction * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank.min(sorted.len() - 1)).copied()
}

/// The median of `values` (see the module docs); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    percentile(values, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_even_count_is_the_upper_middle_value() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentiles_are_nearest_rank_and_clamped() {
        let values: Vec<f64> = (1..=101).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&values, 99.0), Some(100.0));
        assert_eq!(percentile(&values, 100.0), Some(101.0));
        assert_eq!(percentile(&values, 250.0), Some(101.0));
        assert_eq!(percentile(&values, -3.0), Some(1.0));
        assert_eq!(
            percentile(&[2.0, f64::NAN, 1.0], 100.0).map(f64::is_nan),
            Some(true)
        );
    }
}
