//! The action-conditioned latent dynamics: the state's step under a command, rolled out over
//! a horizon, and the proprio they carry beside the state where the model asks for it.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::{Mlp, MlpConfig};

/// Action-conditioned latent dynamics: `z' = z + f([z, a])`.
#[derive(Config, Debug)]
pub struct DynamicsConfig {
    /// Embedding size `D`.
    pub embed_dim: usize,
    /// Action size `A`.
    pub action_dim: usize,
    /// Hidden size of the residual MLP.
    #[config(default = 256)]
    pub hidden: usize,
    /// Hidden layers of the residual MLP, each of `hidden` units (`0` builds one, as `1` does;
    /// [`super::WorldModelConfig::validate`] refuses `0`).
    #[config(default = 1)]
    pub hidden_layers: usize,
    /// Proprio features `P` carried beside the state through a rollout (`0`: none). The
    /// dynamics then read the proprio from the start state, step it by a small MLP of its own
    /// (`[p, a]` → `p' − p`, the base's speeds under the command) and give the state's step the
    /// proprio before and after it: `z' = z + f([z, p, p', a])`. The state in and out is still
    /// the embedding `z`.
    #[config(default = 0)]
    pub proprio_dim: usize,
    /// Hidden size of the carried proprio's step.
    #[config(default = 64)]
    pub proprio_hidden: usize,
}

impl DynamicsConfig {
    /// Builds the dynamics on `device`.
    pub fn init(&self, device: &Device) -> Dynamics {
        let p = self.proprio_dim;
        Dynamics {
            residual: MlpConfig::new(
                self.embed_dim + 2 * p + self.action_dim,
                self.hidden,
                self.embed_dim,
            )
            .with_extra_hidden_layers(self.hidden_layers.saturating_sub(1))
            .init(device),
            proprio: (p > 0).then(|| CarriedProprio {
                read_out: LinearConfig::new(self.embed_dim, p).init(device),
                step: MlpConfig::new(p + self.action_dim, self.proprio_hidden, p).init(device),
            }),
        }
    }
}

/// The proprio the dynamics carry beside the state (see [`DynamicsConfig::proprio_dim`]).
#[derive(Module, Debug)]
pub struct CarriedProprio {
    /// A state → the proprio felt there: where a rollout's proprio starts.
    read_out: Linear,
    /// `[p, a]` → the proprio's change over one step.
    step: Mlp,
}

/// See [`DynamicsConfig`].
#[derive(Module, Debug)]
pub struct Dynamics {
    residual: Mlp,
    proprio: Option<CarriedProprio>,
}

impl Dynamics {
    /// One step from a state and, where the dynamics carry it, its proprio; returns the next
    /// state and the next proprio.
    ///
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - `proprio`: `[B, P]` (`None` when the dynamics carry no proprio; ignored then)
    /// - `action`: `[B, A]` (normalised to about ±1)
    /// - output: `[B, D]` and `[B, P]`
    pub fn step(
        &self,
        state: Tensor<2>,
        proprio: Option<Tensor<2>>,
        action: Tensor<2>,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        match (&self.proprio, proprio) {
            (Some(carried), Some(now)) => {
                let next = now.clone()
                    + carried
                        .step
                        .forward(Tensor::cat(vec![now.clone(), action.clone()], 1));
                let delta = self.residual.forward(Tensor::cat(
                    vec![state.clone(), now, next.clone(), action],
                    1,
                ));
                (state + delta, Some(next))
            }
            _ => {
                let delta = self
                    .residual
                    .forward(Tensor::cat(vec![state.clone(), action], 1));
                (state + delta, None)
            }
        }
    }

    /// The proprio the dynamics read from each state, where they carry one.
    ///
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - output: `[B, P]`
    fn read_proprio(&self, state: Tensor<2>) -> Option<Tensor<2>> {
        self.proprio
            .as_ref()
            .map(|carried| carried.read_out.forward(state))
    }

    /// Rolls out one step per action.
    ///
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - `actions`: `[B, H, A]`
    /// - output: `[B, H, D]`, the predicted state after each action
    pub fn rollout(&self, state: Tensor<2>, actions: Tensor<3>) -> Tensor<3> {
        self.rollout_carrying(state, actions).0
    }

    /// [`Self::rollout`], with the proprio carried beside it where the dynamics carry one: read
    /// from `state`, then stepped with each action.
    ///
    /// # Shapes
    /// - `state`: `[B, D]`
    /// - `actions`: `[B, H, A]`
    /// - output: `[B, H, D]`, and `[B, H + 1, P]` the proprio read at the start and carried to
    ///   each step
    pub fn rollout_carrying(
        &self,
        state: Tensor<2>,
        actions: Tensor<3>,
    ) -> (Tensor<3>, Option<Tensor<3>>) {
        let [batch, horizon, action_dim] = actions.dims();
        let mut proprio = self.read_proprio(state.clone());
        let mut current = state;
        let mut predicted = Vec::with_capacity(horizon);
        let mut carried: Vec<Tensor<2>> = proprio.iter().cloned().collect();
        for step in 0..horizon {
            let action: Tensor<2> = actions
                .clone()
                .slice([0..batch, step..step + 1, 0..action_dim])
                .reshape([batch, action_dim]);
            (current, proprio) = self.step(current, proprio, action);
            predicted.push(current.clone());
            carried.extend(proprio.clone());
        }
        let carried = (!carried.is_empty()).then(|| Tensor::stack(carried, 1));
        (Tensor::stack(predicted, 1), carried)
    }
}
