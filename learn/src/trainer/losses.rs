//! The loss terms and the gradient norm, as tensor functions.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation;

use crate::LearnError;
use crate::model::WorldModel;

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
