//! The loss terms and the gradient norm, as tensor functions.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation;

use crate::LearnError;
use crate::model::{WorldModel, l2_normalize};

pub(super) fn scalar(tensor: &Tensor<1>) -> Result<f32, LearnError> {
    tensor
        .clone()
        .try_into_scalar::<f32>()
        .map_err(|e| LearnError::Backend(format!("reading a loss: {e:?}")))
}

/// InfoNCE with the matching row as the positive and every other row as a negative.
///
/// # Shapes
/// - `query`, `key`: `[B, N]`, L2-normalised
/// - output: `[1]`
pub(crate) fn info_nce(query: Tensor<2>, key: Tensor<2>, temperature: f32) -> Tensor<1> {
    let [batch, _] = query.dims();
    let device = query.device();
    let logits = query.matmul(key.transpose()) / temperature;
    let log_probs = activation::log_softmax(logits, 1);
    let diagonal = Tensor::<1, Int>::arange(0..batch as i64, &device).reshape([batch, 1]);
    -log_probs.gather(1, diagonal).mean()
}

/// VICReg's variance hinge and covariance penalty of a batch of embeddings: the mean over
/// dimensions of `relu(target_std - std_d)`, and the sum of squared off-diagonal covariances
/// divided by `D`.
///
/// # Shapes
/// - `embeddings`: `[B, D]` with `B >= 2`
/// - output: (`[1]`, `[1]`)
pub(crate) fn spread_terms(embeddings: Tensor<2>, target_std: f32) -> (Tensor<1>, Tensor<1>) {
    let [batch, dim] = embeddings.dims();
    let denominator = (batch.max(2) - 1) as f32;
    let centred = embeddings.clone() - embeddings.mean_dim(0);
    let variance = centred.clone().square().sum_dim(0) / denominator;
    let std = (variance.clone() + 1e-4).sqrt();
    let hinge = activation::relu(std.neg() + target_std).mean();
    let covariance = centred.clone().transpose().matmul(centred) / denominator;
    let off_diagonal = (covariance.square().sum() - variance.square().sum()) / dim as f32;
    (hinge, off_diagonal)
}

/// SIGReg's mean Epps–Pulley statistic of `embeddings` projected on `directions`, against the
/// standard normal (see [`super::config::SigRegConfig`]): per direction, `B ·
/// ∫ |φ̂(t) − e^{−t²/2}|² e^{−t²/2} dt` over `[−t_max, t_max]`, with `φ̂` the projections'
/// empirical characteristic function, by the trapezoid rule on `knots` points of `[0, t_max]`
/// (the integrand is even).
///
/// # Shapes
/// - `embeddings`: `[B, D]`
/// - `directions`: `[D, M]`, unit columns
/// - output: `[1]`
pub(crate) fn sigreg(
    embeddings: Tensor<2>,
    directions: Tensor<2>,
    knots: usize,
    t_max: f32,
) -> Tensor<1> {
    let [batch, _] = embeddings.dims();
    let projected = embeddings.matmul(directions);
    let [_, count] = projected.dims();
    let device = projected.device();
    let knots = knots.max(2);
    let step = t_max / (knots - 1) as f32;
    let t: Vec<f32> = (0..knots).map(|k| k as f32 * step).collect();
    let normal: Vec<f32> = t.iter().map(|t| (-0.5 * t * t).exp()).collect();
    // Trapezoid weights on [0, t_max], doubled for the negative half, times the weight e^{−t²/2}.
    let weights: Vec<f32> = normal
        .iter()
        .enumerate()
        .map(|(k, w)| if k == 0 || k == knots - 1 { step } else { 2.0 * step } * w)
        .collect();
    let row = |values: Vec<f32>| {
        Tensor::<1>::from_data(TensorData::new(values, [knots]), &device).reshape([1, 1, knots])
    };
    let angles = projected.reshape([batch, count, 1]) * row(t);
    let real = angles.clone().cos().mean_dim(0);
    let imaginary = angles.sin().mean_dim(0);
    let error = (real - row(normal)).square() + imaginary.square();
    (error * row(weights)).sum_dim(2).mean() * batch as f32
}

/// Global L2 norm of all gradients of `model`.
pub(super) fn gradient_norm(
    model: &WorldModel,
    gradients: &GradientsParams,
) -> Result<f32, LearnError> {
    struct Norm<'a> {
        gradients: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(gradient) = self.gradients.get::<D>(param.id) {
                let squares = gradient.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(sum) => sum + squares,
                    None => squares,
                });
            }
        }
    }
    let mut visitor = Norm {
        gradients,
        sum: None,
    };
    model.visit(&mut visitor);
    match visitor.sum {
        Some(sum) => Ok(scalar(&sum.sqrt())?),
        None => Ok(0.0),
    }
}

/// Weights of the rollout's steps for [`ForwardConfig::copy_last_power`](
/// super::config::ForwardConfig::copy_last_power) `p`: `c̄^p / (F · c_k^p)`, where `c_k` is the
/// batch mean of `|n(z_t+k) - n(z_t)|²` on the target's embeddings and `c̄` the mean of the
/// `c_k`. Steps that moved alike weigh `1 / F` each, the plain mean.
///
/// # Shapes
/// - `now`: `[B, D]`, the target's embedding of frame `t`
/// - `future`: `[B·F, D]`, frames `t+1 ..= t+F` normalised (as the forward loss compares
///   them), batch-major; `[b, horizon]` = `[B, F]`
/// - output: `[1, F]`
pub(super) fn copy_last_weights(
    now: &Tensor<2>,
    future: &Tensor<2>,
    [b, horizon]: [usize; 2],
    power: f32,
) -> Tensor<2> {
    let [_, dim] = now.dims();
    let now = l2_normalize(now.clone())
        .reshape([b, 1, dim])
        .repeat_dim(1, horizon)
        .reshape([b * horizon, dim]);
    let moved = (future.clone() - now)
        .square()
        .sum_dim(1)
        .reshape([b, horizon])
        .mean_dim(0)
        .clamp_min(1e-6);
    let mean = moved.clone().mean().reshape([1, 1]).powf_scalar(power);
    mean / (moved.powf_scalar(power) * horizon as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// SIGReg of `batch × dim` values drawn by `draw`, on `dim` axis-aligned directions.
    fn statistic(batch: usize, dim: usize, mut draw: impl FnMut() -> f32) -> f32 {
        let device = Device::flex();
        let values: Vec<f32> = (0..batch * dim).map(|_| draw()).collect();
        let embeddings = Tensor::<2>::from_data(TensorData::new(values, [batch, dim]), &device);
        let mut identity = vec![0.0; dim * dim];
        (0..dim).for_each(|i| identity[i * dim + i] = 1.0);
        let directions = Tensor::<2>::from_data(TensorData::new(identity, [dim, dim]), &device);
        scalar(&sigreg(embeddings, directions, 17, 3.0)).expect("scalar")
    }

    /// The statistic is small for standard-normal embeddings and large for what SIGReg exists
    /// to prevent: a collapsed batch, a too narrow or too wide one, a shifted one.
    #[test]
    fn sigreg_is_small_for_a_standard_normal_and_large_for_collapse_scale_and_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut normal = move || -> f32 { StandardNormal.sample(&mut rng) };
        let gaussian = statistic(512, 16, &mut normal);
        let collapsed = statistic(512, 16, || 0.3);
        let narrow = statistic(512, 16, || 0.2 * normal());
        let wide = statistic(512, 16, || 3.0 * normal());
        let shifted = statistic(512, 16, || normal() + 1.0);
        println!(
            "gaussian {gaussian:.3}, collapsed {collapsed:.1}, narrow {narrow:.1}, wide \
             {wide:.1}, shifted {shifted:.1}"
        );
        // Its expectation for a standard normal is about √(2π) − √(2π/3) ≈ 1.06, whatever `B`.
        assert!(gaussian < 2.0, "{gaussian}");
        for (what, value) in [
            ("collapsed", collapsed),
            ("narrow", narrow),
            ("wide", wide),
            ("shifted", shifted),
        ] {
            assert!(value > 10.0 * gaussian.max(0.5), "{what}: {value}");
        }
    }

    /// A step whose frame moved further from frame `t` weighs less, by the power of how far
    /// it moved (at power 1 the loss is the ratio to copy-last per step), and steps that moved
    /// alike keep the plain mean.
    #[test]
    fn copy_last_weights_divide_each_step_by_how_far_its_frame_moved() {
        let device = Device::flex();
        // Two samples, three steps: `now` along x; the future turns away from it by 0.2, 0.4
        // and 0.8 rad (the same for both samples).
        let now = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 0.0, 2.0, 0.0], [2, 2]),
            &device,
        );
        let step = |angle: f32| [angle.cos(), angle.sin()];
        let rows: Vec<f32> = (0..2)
            .flat_map(|_| [0.2f32, 0.4, 0.8].into_iter().flat_map(step))
            .collect();
        let future = Tensor::<2>::from_data(TensorData::new(rows, [6, 2]), &device);
        let moved: Vec<f32> = [0.2f32, 0.4, 0.8]
            .iter()
            .map(|a| (a.cos() - 1.0).powi(2) + a.sin().powi(2))
            .collect();
        let mean = moved.iter().sum::<f32>() / 3.0;
        for power in [1.0f32, 0.5] {
            let weights: Vec<f32> = copy_last_weights(&now, &future, [2, 3], power)
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32");
            for (weight, moved) in weights.iter().zip(&moved) {
                let expected = (mean / moved).powf(power) / 3.0;
                assert!(
                    (weight - expected).abs() < 1e-4 * expected,
                    "{power}: {weights:?}"
                );
            }
            assert!(weights[0] > weights[1] && weights[1] > weights[2]);
        }
        // Steps that moved alike weigh 1/F each.
        let same =
            Tensor::<2>::from_data(TensorData::new([0.0f32, 1.0].repeat(6), [6, 2]), &device);
        let equal: Vec<f32> = copy_last_weights(&now, &same, [2, 3], 1.0)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert!(
            equal.iter().all(|w| (w - 1.0 / 3.0).abs() < 1e-5),
            "{equal:?}"
        );
    }
}
