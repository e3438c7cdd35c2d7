//! How much of the world the embedding holds: linear probes, nearest-neighbour retrieval, and
//! where the relative-pose head places one view seen from another.

use autodidact_learn::metrics::LinearProbe;
use autodidact_learn::stats::median;
use autodidact_learn::{EncoderSnapshot, Trainer, Transition};
use autodidact_sim::wrap_angle;
use rayon::prelude::*;

use crate::EvalError;
use crate::data::{Features, Record, embed_records, embed_transitions};
use crate::ranking::rank_correlation;
use crate::report::{RelativePoseScores, RepresentationScores};

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
    // The memory places frames by their image (places are embedded with proprio at rest):
    // retrieval as it does.
    let (knn_image_only_position_error_m, knn_image_only_yaw_error_deg) = match features {
        Features::Model(encoder) => knn_pose_errors(
            &image_only_embeddings(encoder, fit)?,
            &fit.iter().map(|r| r.pose).collect::<Vec<_>>(),
            &image_only_embeddings(encoder, score)?,
            &score.iter().map(|r| r.pose).collect::<Vec<_>>(),
        ),
        Features::Pixels(..) => (knn_position_error_m, knn_yaw_error_deg),
    };
    Ok(RepresentationScores {
        pose_r2: pose_r2_per_target.iter().sum::<f64>() / pose_r2_per_target.len() as f64,
        pose_r2_per_target,
        nearest_object_r2,
        knn_position_error_m,
        knn_yaw_error_deg,
        knn_image_only_position_error_m,
        knn_image_only_yaw_error_deg,
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
    let mut position_errors = Vec::with_capacity(score_z.len());
    let mut yaw_errors = Vec::with_capacity(score_z.len());
    for (nearest, a) in nearest_of_each(fit_z, score_z).into_iter().zip(score_poses) {
        let Some(nearest) = nearest else {
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

/// For each of `queries`, the index of the embedding of `fit` most like it by cosine
/// similarity; `None` when `fit` is empty. The queries are searched side by side on the threads
/// of the pool it is called on (a home memory's probes search 120 000 frames for each of 4 000).
fn nearest_of_each(fit: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<Option<usize>> {
    let unit = |z: &Vec<f32>| autodidact_learn::health::normalise(z);
    let fit_unit: Vec<Vec<f32>> = fit.iter().map(unit).collect();
    queries
        .par_iter()
        .map(|query| nearest_by_cosine(&fit_unit, &unit(query)))
        .collect()
}

/// Index of the unit vector of `fit_unit` most like the unit vector `query` (largest dot
/// product); `None` when `fit_unit` is empty.
fn nearest_by_cosine(fit_unit: &[Vec<f32>], query: &[f32]) -> Option<usize> {
    fit_unit
        .iter()
        .map(|f| f.iter().zip(query).map(|(x, y)| x * y).sum::<f32>())
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(i, _)| i)
}

/// Frames this many steps apart make the relative-pose head's pairs (1 s at 20 frames/s).
pub(crate) const PAIR_STEPS: usize = 20;

/// How much of an offset the head reads is measured on nearest views at most this far from
/// the scored frame, metres: the range it is taught (a revisit lies within
/// `OdometryConfig::revisit_max_m`, 0.5 m by default; pairs of one drive within 20 steps).
/// Beyond it a head's reading levels off, and the few far views would decide the slope.
pub(crate) const SCALE_WITHIN_M: f64 = 0.5;

/// How well `trainer`'s relative-pose head places one view seen from another: on pairs of
/// `score` frames [`PAIR_STEPS`] apart in one drive, and for each `score` frame seen from its
/// nearest `fit` frame by image-only embedding (in the new-worlds protocol, a view of another
/// world: the arena's walls are the same, its objects and colours are not). `None` for a model
/// without a trained head, or without frames to place.
pub(crate) fn relative_pose_scores(
    trainer: &Trainer,
    encoder: &EncoderSnapshot,
    fit: &[&Record],
    score: &[&Record],
) -> Result<Option<RelativePoseScores>, EvalError> {
    let trained_head =
        trainer.model().relative_pose.is_some() && trainer.config().objectives.odometry.enabled;
    if !trained_head || fit.is_empty() || score.is_empty() {
        return Ok(None);
    }
    let fit_z = image_only_embeddings(encoder, fit)?;
    let score_z = image_only_embeddings(encoder, score)?;
    // One drive ends where the episode changes or time does not go on (drives of one world
    // share its episode).
    let mut drive = 0usize;
    let drives: Vec<usize> = score
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let new_drive = i.checked_sub(1).is_some_and(|p| {
                let previous = &score[p].transition;
                previous.episode != r.transition.episode
                    || previous.frame_stamp_ns >= r.transition.frame_stamp_ns
            });
            drive += usize::from(new_drive);
            drive
        })
        .collect();
    let pairs: Vec<(usize, usize)> = (0..score.len().saturating_sub(PAIR_STEPS))
        .map(|i| (i, i + PAIR_STEPS))
        .filter(|&(i, j)| drives[i] == drives[j])
        .collect();
    let (firsts, seconds): (Vec<Vec<f32>>, Vec<Vec<f32>>) = pairs
        .iter()
        .map(|&(i, j)| (score_z[i].clone(), score_z[j].clone()))
        .unzip();
    let Some(predicted) = trainer.relative_poses(&firsts, &seconds)? else {
        return Ok(None);
    };
    let mut pair_distance = Vec::with_capacity(pairs.len());
    let mut pair_position = Vec::with_capacity(pairs.len());
    let mut pair_yaw = Vec::with_capacity(pairs.len());
    for (&(i, j), estimate) in pairs.iter().zip(&predicted) {
        let relative = score[i]
            .true_pose()
            .inverse()
            .compose(&score[j].true_pose());
        pair_distance.push(relative.x.hypot(relative.y));
        pair_position.push(relative.distance(estimate));
        pair_yaw.push(relative.turn(estimate).to_degrees());
    }

    let nearest: Vec<usize> = nearest_of_each(&fit_z, &score_z)
        .into_iter()
        .map(|n| n.unwrap_or(0))
        .collect();
    let placed_from: Vec<Vec<f32>> = nearest.iter().map(|&n| fit_z[n].clone()).collect();
    let Some(moves) = trainer.relative_poses(&placed_from, &score_z)? else {
        return Ok(None);
    };
    let mut nearest_position = Vec::with_capacity(score.len());
    let mut nearest_yaw = Vec::with_capacity(score.len());
    let mut corrected_position = Vec::with_capacity(score.len());
    let mut corrected_yaw = Vec::with_capacity(score.len());
    // Where each scored frame lies seen from its nearest view: truly, and as the head reads it.
    let (mut ahead, mut side) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    // … and the same within SCALE_WITHIN_M, for how much of an offset the head reads there.
    let (mut ahead_near, mut side_near) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for ((record, &n), moved) in score.iter().zip(&nearest).zip(&moves) {
        let (at, from) = (record.true_pose(), fit[n].true_pose());
        let truth = from.inverse().compose(&at);
        if truth.is_finite() && moved.is_finite() {
            ahead.0.push(truth.x);
            ahead.1.push(moved.x);
            side.0.push(truth.y);
            side.1.push(moved.y);
            if truth.x.hypot(truth.y) <= SCALE_WITHIN_M {
                ahead_near.0.push(truth.x);
                ahead_near.1.push(moved.x);
                side_near.0.push(truth.y);
                side_near.1.push(moved.y);
            }
        }
        nearest_position.push(at.distance(&from));
        nearest_yaw.push(at.turn(&from).to_degrees());
        let corrected = from.compose(moved);
        corrected_position.push(at.distance(&corrected));
        corrected_yaw.push(at.turn(&corrected).to_degrees());
    }
    let m = |values: &[f64]| median(values).unwrap_or(f64::NAN);
    Ok(Some(RelativePoseScores {
        pair_distance_m: m(&pair_distance),
        pair_position_error_m: m(&pair_position),
        pair_yaw_error_deg: m(&pair_yaw),
        steps_apart: PAIR_STEPS,
        nearest_position_error_m: m(&nearest_position),
        nearest_yaw_error_deg: m(&nearest_yaw),
        corrected_position_error_m: m(&corrected_position),
        corrected_yaw_error_deg: m(&corrected_yaw),
        nearest_ahead_correlation: rank_correlation(&ahead.0, &ahead.1).unwrap_or(f64::NAN),
        nearest_side_correlation: rank_correlation(&side.0, &side.1).unwrap_or(f64::NAN),
        nearest_ahead_scale: slope(&ahead_near.0, &ahead_near.1).unwrap_or(f64::NAN),
        nearest_side_scale: slope(&side_near.0, &side_near.1).unwrap_or(f64::NAN),
        nearest_ahead_calibration: slope(&ahead_near.1, &ahead_near.0).unwrap_or(f64::NAN),
        nearest_side_calibration: slope(&side_near.1, &side_near.0).unwrap_or(f64::NAN),
    }))
}

/// The least-squares slope of `y` on `x` (with an intercept): of the reading on the truth, how
/// much of a unit of truth is read; of the truth on the reading, how much truth a unit of
/// reading means. `None` for slices of different lengths, fewer than two values or an `x` that
/// never varies.
fn slope(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut cov, mut var) = (0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        cov += (a - mx) * (b - my);
        var += (a - mx).powi(2);
    }
    (var > 0.0).then(|| cov / var)
}

/// The published encoder's embeddings of the records' images alone (proprio zero), as the
/// relative-pose head was trained on them.
fn image_only_embeddings(
    encoder: &EncoderSnapshot,
    records: &[&Record],
) -> Result<Vec<Vec<f32>>, EvalError> {
    let image_only: Vec<Transition> = records
        .iter()
        .map(|r| Transition {
            proprio: vec![0.0; r.transition.proprio.len()],
            ..r.transition.clone()
        })
        .collect();
    embed_transitions(encoder, &image_only.iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use autodidact_learn::{OdometryPose, TrainerConfig};

    use super::*;

    #[test]
    fn the_scale_is_how_much_of_the_truth_is_read() {
        let truth = [-0.3, -0.1, 0.0, 0.2, 0.4];
        // A head that reads a tenth of every offset, shifted by 1 cm.
        let tenth: Vec<f64> = truth.iter().map(|t| 0.1 * t + 0.01).collect();
        let scale = slope(&truth, &tenth).expect("a truth that varies");
        assert!((scale - 0.1).abs() < 1e-12, "{scale}");
        assert_eq!(slope(&truth, &truth), Some(1.0));
        assert_eq!(
            slope(&[0.2, 0.2], &[0.1, 0.3]),
            None,
            "the truth never varies"
        );
        assert_eq!(slope(&[0.2], &[0.1]), None);
        // A head that reads a tenth: ten metres true per metre read.
        let calibration = slope(&tenth, &truth).expect("a reading that varies");
        assert!((calibration - 10.0).abs() < 1e-9, "{calibration}");
        // A head to scale but noisy (the truth is the reading give or take 0.1 m, the error
        // unrelated to the reading): a metre read is a metre true, and less than a metre true
        // is read.
        let read = [-0.2, -0.2, 0.0, 0.0, 0.2, 0.2];
        let noisy: Vec<f64> = read
            .iter()
            .zip([0.1, -0.1, 0.1, -0.1, 0.1, -0.1])
            .map(|(r, e)| r + e)
            .collect();
        let to_scale = slope(&read, &noisy).expect("a reading that varies");
        assert!((to_scale - 1.0).abs() < 1e-12, "{to_scale}");
        let read_per_true = slope(&noisy, &read).expect("a truth that varies");
        assert!(read_per_true < 0.9, "{read_per_true}");
    }

    /// A drive of `count` 16×16 frames along x, each image its own pattern.
    fn drive(episode: u64, count: usize) -> Vec<Record> {
        (0..count)
            .map(|i| Record {
                transition: Transition {
                    source: 0,
                    episode,
                    frame_stamp_ns: (i as u64 + 1) * 50_000_000,
                    image: Arc::from(
                        (0..16 * 16 * 3)
                            .map(|p| ((p * 7 + i * 13 + episode as usize * 29) % 251) as u8)
                            .collect::<Vec<u8>>(),
                    ),
                    proprio: vec![0.3, -0.1],
                    action: [0.2, 0.0],
                    odometry: Some(OdometryPose::new(0.01 * i as f64, 0.0, 0.0)),
                },
                pose: [0.01 * i as f32, 0.5, 0.0, 1.0],
                nearest_object: [1.0, 0.0],
            })
            .collect()
    }

    /// A model with the relative-pose head is scored on pairs of one drive and on placements
    /// among the fit frames; one without it has no such scores.
    #[test]
    fn relative_pose_scores_exist_for_a_model_with_the_head_and_only_then() {
        let mut config = TrainerConfig::for_inputs(16, 16, 2);
        config.model.odometry_head = true;
        config.objectives.odometry.enabled = true;
        // Untrained, and scored all the same.
        config.objectives.odometry.serve_after_pairs = 0;
        let with_head = Trainer::new(config.clone()).expect("trainer");
        config.model.odometry_head = false;
        config.objectives.odometry.enabled = false;
        let without = Trainer::new(config).expect("trainer");

        // Two drives through one world share its episode; pairs never span them.
        let fit = drive(0, 40);
        let mut score = drive(1, 30);
        score.extend(drive(1, 30));
        let fit: Vec<&Record> = fit.iter().collect();
        let score: Vec<&Record> = score.iter().collect();
        let scores = relative_pose_scores(&with_head, &with_head.snapshot(), &fit, &score)
            .expect("scores")
            .expect("the model has the head");
        assert_eq!(scores.steps_apart, PAIR_STEPS);
        // Frames 20 steps of 1 cm apart along x, heading the same way (a pair spanning the two
        // drives would be 0.1 m apart).
        assert!((scores.pair_distance_m - 0.2).abs() < 1e-6, "{scores:?}");
        for value in [
            scores.pair_position_error_m,
            scores.pair_yaw_error_deg,
            scores.nearest_position_error_m,
            scores.nearest_yaw_error_deg,
            scores.corrected_position_error_m,
            scores.corrected_yaw_error_deg,
        ] {
            assert!(value.is_finite() && value >= 0.0, "{scores:?}");
        }
        assert!(
            scores.nearest_position_error_m < 0.46,
            "every fit frame lies within 0.45 m along the same line: {scores:?}"
        );
        // Every frame lies on one line: the reading ahead is ranked against the truth; aside,
        // the truth never varies, and there is no correlation to give.
        assert!(
            (-1.0..=1.0).contains(&scores.nearest_ahead_correlation),
            "{scores:?}"
        );
        assert!(scores.nearest_side_correlation.is_nan(), "{scores:?}");
        assert!(scores.nearest_ahead_scale.is_finite(), "{scores:?}");
        assert!(scores.nearest_side_scale.is_nan(), "{scores:?}");
        // What the head reads aside there means nothing aside: no truth varies with it.
        assert_eq!(scores.nearest_side_calibration, 0.0, "{scores:?}");
        assert!(scores.nearest_ahead_calibration.is_finite(), "{scores:?}");
        assert_eq!(
            relative_pose_scores(&without, &without.snapshot(), &fit, &score).expect("scores"),
            None
        );
        let mut untrained = with_head.config().clone();
        untrained.objectives.odometry.enabled = false;
        let untrained = Trainer::new(untrained).expect("trainer");
        assert_eq!(
            relative_pose_scores(&untrained, &untrained.snapshot(), &fit, &score).expect("scores"),
            None,
            "a head the objective does not train is not scored"
        );
    }
}
