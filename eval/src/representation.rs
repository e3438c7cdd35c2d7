//! How much of the world the embedding holds: linear probes and nearest-neighbour retrieval.

use autodidact_learn::metrics::LinearProbe;
use autodidact_learn::stats::median;
use autodidact_sim::wrap_angle;

use crate::EvalError;
use crate::data::{Features, Record, embed_records};
use crate::report::RepresentationScores;

/// Probes fitted on the features of `fit` and scored on those of `score`; k-NN of `score` among
/// `fit`.
pub(crate) fn representation_scores(
    features: Features<'_>,
    fit: &[&Record],
    score: &[&Record],
    ridge: f64,
) -> Result<RepresentationScores, EvalError> {
    let fit_z = embed_records(features, fit)?;
    let score_z = embed_records(features, score)?;
    let poses = |records: &[&Record]| -> Vec<Vec<f32>> {
        records.iter().map(|r| r.pose.to_vec()).collect()
    };
    let objects = |records: &[&Record]| -> Vec<Vec<f32>> {
        records.iter().map(|r| r.nearest_object.to_vec()).collect()
    };
    let pose_probe = LinearProbe::fit(&fit_z, &poses(fit), ridge)?;
    let pose_r2_per_target = pose_probe.r2_per_target(&score_z, &poses(score))?;
    let object_r2 =
        LinearProbe::fit(&fit_z, &objects(fit), ridge)?.r2_per_target(&score_z, &objects(score))?;
    let nearest_object_r2 = object_r2.iter().sum::<f64>() / object_r2.len() as f64;

    let (knn_position_error_m, knn_yaw_error_deg) = knn_pose_errors(
        &fit_z,
        &fit.iter().map(|r| r.pose).collect::<Vec<_>>(),
        &score_z,
        &score.iter().map(|r| r.pose).collect::<Vec<_>>(),
    );
    Ok(RepresentationScores {
        pose_r2: pose_r2_per_target.iter().sum::<f64>() / pose_r2_per_target.len() as f64,
        pose_r2_per_target,
        nearest_object_r2,
        knn_position_error_m,
        knn_yaw_error_deg,
    })
}

/// k-NN by cosine similarity: for each scored embedding, the pose (x, y, sin yaw, cos yaw) of
/// its nearest fit embedding; the median position error (m) and heading error (degrees).
pub(crate) fn knn_pose_errors(
    fit_z: &[Vec<f32>],
    fit_poses: &[[f32; 4]],
    score_z: &[Vec<f32>],
    score_poses: &[[f32; 4]],
) -> (f64, f64) {
    let unit = |z: &Vec<f32>| autodidact_learn::health::normalise(z);
    let fit_unit: Vec<Vec<f32>> = fit_z.iter().map(unit).collect();
    let mut position_errors = Vec::with_capacity(score_z.len());
    let mut yaw_errors = Vec::with_capacity(score_z.len());
    for (query, a) in score_z.iter().map(unit).zip(score_poses) {
        let Some(nearest) = fit_unit
            .iter()
            .map(|f| f.iter().zip(&query).map(|(x, y)| x * y).sum::<f32>())
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .map(|(i, _)| i)
        else {
            continue;
        };
        let b = fit_poses[nearest];
        position_errors.push(f64::from((a[0] - b[0]).hypot(a[1] - b[1])));
        let yaw = |p: [f32; 4]| f64::from(p[2]).atan2(f64::from(p[3]));
        yaw_errors.push(wrap_angle(yaw(*a) - yaw(b)).abs().to_degrees());
    }
    (
        median(&position_errors).unwrap_or(f64::NAN),
        median(&yaw_errors).unwrap_or(f64::NAN),
    )
}
