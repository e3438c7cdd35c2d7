//! What says whether the learned representation is any good, computed on plain `f32` rows so it
//! works on embeddings from any device: collapse monitors (per-dimension std, effective rank),
//! prediction error against the copy-last baseline, and a ridge-regression linear probe.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::LearnError;

/// Row-major `rows × dim` matrix of embeddings (one embedding per row).
fn to_matrix(rows: &[Vec<f32>]) -> Result<DMatrix<f64>, LearnError> {
    let dim = rows.first().map_or(0, Vec::len);
    if rows.is_empty() || dim == 0 {
        return Err(LearnError::Metric("no embeddings".into()));
    }
    if let Some(bad) = rows.iter().position(|r| r.len() != dim) {
        return Err(LearnError::Metric(format!(
            "row {bad} has {} values, expected {dim}",
            rows[bad].len()
        )));
    }
    if rows.iter().flatten().any(|v| !v.is_finite()) {
        return Err(LearnError::Metric("non-finite embedding value".into()));
    }
    Ok(DMatrix::from_fn(rows.len(), dim, |r, c| rows[r][c] as f64))
}

/// Collapse monitors of a set of embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollapseReport {
    /// Mean over dimensions of the per-dimension standard deviation (of L2-normalised rows).
    pub mean_std: f64,
    /// Smallest per-dimension standard deviation.
    pub min_std: f64,
    /// Effective rank (RankMe: exp of the entropy of the normalised singular values), in
    /// `[1, dim]`.
    pub effective_rank: f64,
    /// Embedding dimension.
    pub dim: usize,
}

/// Per-dimension std and effective rank (RankMe, Garrido et al. 2023) of `embeddings`.
///
/// The std is taken over L2-normalised rows (so it is scale free: a collapsed representation
/// reads ~0, a uniform spread on the sphere reads ~`1/sqrt(dim)`).
pub fn collapse_report(embeddings: &[Vec<f32>]) -> Result<CollapseReport, LearnError> {
    let z = to_matrix(embeddings)?;
    let (n, dim) = z.shape();
    let mut normalised = z.clone();
    for mut row in normalised.row_iter_mut() {
        let norm = row.norm().max(1e-12);
        row /= norm;
    }
    let stds: Vec<f64> = (0..dim)
        .map(|c| {
            let column = normalised.column(c);
            let mean = column.mean();
            (column.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
        })
        .collect();
    // Singular values of Z are the square roots of the eigenvalues of ZᵀZ (dim × dim, cheap).
    let gram = z.transpose() * &z;
    let eigen = gram.symmetric_eigen();
    let singular: Vec<f64> = eigen
        .eigenvalues
        .iter()
        .map(|e| e.max(0.0).sqrt())
        .collect();
    let total: f64 = singular.iter().sum();
    let effective_rank = if total <= 0.0 {
        1.0
    } else {
        let entropy: f64 = singular
            .iter()
            .map(|s| s / total + 1e-12)
            .map(|p| -p * p.ln())
            .sum();
        entropy.exp().clamp(1.0, dim as f64)
    };
    Ok(CollapseReport {
        mean_std: stds.iter().sum::<f64>() / dim as f64,
        min_std: stds.iter().copied().fold(f64::INFINITY, f64::min),
        effective_rank,
        dim,
    })
}

/// Mean squared error between two sets of rows.
pub fn mean_squared_error(a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<f64, LearnError> {
    let (a, b) = (to_matrix(a)?, to_matrix(b)?);
    if a.shape() != b.shape() {
        return Err(LearnError::Metric(format!(
            "shapes differ: {:?} vs {:?}",
            a.shape(),
            b.shape()
        )));
    }
    Ok((a - b).map(|v| v * v).mean())
}

/// `error(predicted, actual) / error(current, actual)`: below 1 means the model predicts the
/// future better than assuming nothing changes.
pub fn prediction_vs_copy_last(
    current: &[Vec<f32>],
    predicted: &[Vec<f32>],
    actual: &[Vec<f32>],
) -> Result<f64, LearnError> {
    let model = mean_squared_error(predicted, actual)?;
    let copy_last = mean_squared_error(current, actual)?;
    if copy_last <= 0.0 {
        return Err(LearnError::Metric(
            "copy-last error is zero: the future equals the present".into(),
        ));
    }
    Ok(model / copy_last)
}

/// A fitted ridge-regression probe from features to targets.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    weights: DMatrix<f64>,
    feature_mean: DVector<f64>,
    feature_scale: DVector<f64>,
    target_mean: DVector<f64>,
}

impl LinearProbe {
    /// Fits `targets ≈ features · W + b` by ridge regression on standardised features.
    pub fn fit(
        features: &[Vec<f32>],
        targets: &[Vec<f32>],
        ridge: f64,
    ) -> Result<Self, LearnError> {
        let x = to_matrix(features)?;
        let y = to_matrix(targets)?;
        if x.nrows() != y.nrows() {
            return Err(LearnError::Metric(format!(
                "{} feature rows but {} target rows",
                x.nrows(),
                y.nrows()
            )));
        }
        let n = x.nrows() as f64;
        let feature_mean = DVector::from_fn(x.ncols(), |c, _| x.column(c).mean());
        let feature_scale = DVector::from_fn(x.ncols(), |c, _| {
            let m = feature_mean[c];
            let var = x.column(c).iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
            var.sqrt().max(1e-8)
        });
        let target_mean = DVector::from_fn(y.ncols(), |c, _| y.column(c).mean());
        let xs = standardise(&x, &feature_mean, &feature_scale);
        let yc = DMatrix::from_fn(y.nrows(), y.ncols(), |r, c| y[(r, c)] - target_mean[c]);
        let mut gram = xs.transpose() * &xs;
        for i in 0..gram.ncols() {
            gram[(i, i)] += ridge * n;
        }
        let rhs = xs.transpose() * yc;
        let weights = gram
            .cholesky()
            .ok_or_else(|| LearnError::Metric("ridge system is not positive definite".into()))?
            .solve(&rhs);
        Ok(Self {
            weights,
            feature_mean,
            feature_scale,
            target_mean,
        })
    }

    /// Predicts targets for `features`.
    pub fn predict(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, LearnError> {
        let x = to_matrix(features)?;
        if x.ncols() != self.feature_mean.len() {
            return Err(LearnError::Metric(format!(
                "probe expects {} features, got {}",
                self.feature_mean.len(),
                x.ncols()
            )));
        }
        let y = standardise(&x, &self.feature_mean, &self.feature_scale) * &self.weights;
        Ok(y.row_iter()
            .map(|row| {
                row.iter()
                    .zip(self.target_mean.iter())
                    .map(|(v, m)| (v + m) as f32)
                    .collect()
            })
            .collect())
    }

    /// Coefficient of determination per target column on `(features, targets)`.
    pub fn r2_per_target(
        &self,
        features: &[Vec<f32>],
        targets: &[Vec<f32>],
    ) -> Result<Vec<f64>, LearnError> {
        let predicted = to_matrix(&self.predict(features)?)?;
        let actual = to_matrix(targets)?;
        if predicted.shape() != actual.shape() {
            return Err(LearnError::Metric("targets do not match features".into()));
        }
        Ok((0..actual.ncols())
            .map(|c| {
                let column = actual.column(c);
                let mean = column.mean();
                let total: f64 = column.iter().map(|v| (v - mean).powi(2)).sum();
                let residual: f64 = column
                    .iter()
                    .zip(predicted.column(c).iter())
                    .map(|(a, p)| (a - p).powi(2))
                    .sum();
                if total <= 0.0 {
                    0.0
                } else {
                    1.0 - residual / total
                }
            })
            .collect())
    }
}

fn standardise(x: &DMatrix<f64>, mean: &DVector<f64>, scale: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(x.nrows(), x.ncols(), |r, c| {
        (x[(r, c)] - mean[c]) / scale[c]
    })
}

/// Fits a ridge probe on `train` and returns the mean R² over target columns on `test`.
pub fn probe_r2(
    train_features: &[Vec<f32>],
    train_targets: &[Vec<f32>],
    test_features: &[Vec<f32>],
    test_targets: &[Vec<f32>],
    ridge: f64,
) -> Result<(f64, Vec<f64>), LearnError> {
    let probe = LinearProbe::fit(train_features, train_targets, ridge)?;
    let per_target = probe.r2_per_target(test_features, test_targets)?;
    let mean = per_target.iter().sum::<f64>() / per_target.len().max(1) as f64;
    Ok((mean, per_target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    #[test]
    fn probe_recovers_a_linear_map_and_fails_on_noise() {
        let mut seed = 3;
        let features: Vec<Vec<f32>> = (0..400)
            .map(|_| (0..8).map(|_| lcg(&mut seed)).collect())
            .collect();
        let targets: Vec<Vec<f32>> = features
            .iter()
            .map(|f| vec![2.0 * f[0] - f[3], f[5] * 0.5 + 1.0])
            .collect();
        let (r2, _) = probe_r2(
            &features[..300],
            &targets[..300],
            &features[300..],
            &targets[300..],
            1e-6,
        )
        .expect("probe");
        assert!(r2 > 0.999, "exact linear map, r2 {r2}");
        let noise: Vec<Vec<f32>> = (0..400)
            .map(|_| vec![lcg(&mut seed), lcg(&mut seed)])
            .collect();
        let (r2, _) = probe_r2(
            &features[..300],
            &noise[..300],
            &features[300..],
            &noise[300..],
            1e-3,
        )
        .expect("probe");
        assert!(r2 < 0.1, "unrelated targets, r2 {r2}");
    }

    #[test]
    fn effective_rank_sees_collapse() {
        let mut seed = 9;
        let spread: Vec<Vec<f32>> = (0..500)
            .map(|_| (0..16).map(|_| lcg(&mut seed)).collect())
            .collect();
        let report = collapse_report(&spread).expect("report");
        assert!(report.effective_rank > 12.0, "isotropic: {report:?}");
        let collapsed: Vec<Vec<f32>> = (0..500)
            .map(|_| {
                let a = lcg(&mut seed);
                (0..16)
                    .map(|i| if i == 0 { 1.0 + 0.001 * a } else { 0.0 })
                    .collect()
            })
            .collect();
        let report = collapse_report(&collapsed).expect("report");
        assert!(
            report.effective_rank < 1.1 && report.mean_std < 1e-3,
            "collapsed: {report:?}"
        );
    }

    #[test]
    fn copy_last_ratio_is_one_for_copying_and_zero_for_perfect() {
        let current = vec![vec![0.0f32, 0.0], vec![1.0, 1.0]];
        let actual = vec![vec![1.0f32, 0.0], vec![1.0, 2.0]];
        let copy = prediction_vs_copy_last(&current, &current, &actual).expect("ratio");
        assert!((copy - 1.0).abs() < 1e-12);
        let perfect = prediction_vs_copy_last(&current, &actual, &actual).expect("ratio");
        assert!(perfect.abs() < 1e-12);
    }

    #[test]
    fn bad_rows_are_errors() {
        assert!(collapse_report(&[]).is_err());
        assert!(collapse_report(&[vec![1.0, 2.0], vec![1.0]]).is_err());
        assert!(collapse_report(&[vec![f32::NAN, 2.0]]).is_err());
    }
}
