//! The embedding's 3-d projection for the viewer.

use nalgebra::DMatrix;

/// Projects rows onto their first three principal components (nalgebra eigen-decomposition of
/// the covariance), scaled to about ±1.
pub fn pca3(rows: &[(u64, Vec<f32>)]) -> Option<Vec<[f32; 3]>> {
    let n = rows.len();
    let dim = rows.first()?.1.len();
    if n < 4 || dim < 3 || rows.iter().any(|(_, r)| r.len() != dim) {
        return None;
    }
    let x = DMatrix::from_fn(n, dim, |r, c| rows[r].1[c] as f64);
    let mean = x.row_mean();
    let centred = DMatrix::from_fn(n, dim, |r, c| x[(r, c)] - mean[c]);
    let covariance = centred.transpose() * &centred / (n as f64 - 1.0);
    let eigen = covariance.symmetric_eigen();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|a, b| eigen.eigenvalues[*b].total_cmp(&eigen.eigenvalues[*a]));
    let components: Vec<_> = order[..3]
        .iter()
        .map(|&i| eigen.eigenvectors.column(i).into_owned())
        .collect();
    let projected: Vec<[f64; 3]> = (0..n)
        .map(|r| {
            let row = centred.row(r);
            [0, 1, 2].map(|k| row.dot(&components[k].transpose()))
        })
        .collect();
    let scale = projected
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-12);
    Some(
        projected
            .iter()
            .map(|p| p.map(|v| (v / scale) as f32))
            .collect(),
    )
}
