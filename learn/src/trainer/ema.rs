//! The EMA target network: `target = m·target + (1-m)·online` after every optimiser step.

use std::collections::HashMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use super::Trainer;
use crate::model::TargetNetwork;

impl Trainer {
    pub(super) fn update_target(&mut self) {
        let momentum = self.config.ema_momentum;
        let mut grab = GrabParams::default();
        self.model.encoder.visit(&mut grab);
        self.model.projector.visit(&mut grab);
        let mut ema = Ema {
            source: grab.params,
            momentum,
        };
        let target = std::mem::replace(
            &mut self.target,
            TargetNetwork {
                encoder: self.last_good.1.encoder.clone(),
                projector: self.last_good.1.projector.clone(),
            },
        );
        self.target = TargetNetwork {
            encoder: target.encoder.map(&mut ema),
            projector: target.projector.map(&mut ema),
        };
    }
}

/// The online parameters the EMA moves the target towards, by id.
#[derive(Default)]
struct GrabParams {
    params: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for GrabParams {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().without_autodiff();
        let count = value.shape().num_elements();
        self.params.insert(param.id, value.reshape([count]));
    }
}

/// Moves each target parameter towards its online value.
struct Ema {
    source: HashMap<ParamId, Tensor<1>>,
    momentum: f32,
}

impl ModuleMapper for Ema {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.source.remove(&param.id) else {
            return param;
        };
        let momentum = self.momentum;
        param.map(|target| {
            let online: Tensor<D> = online.reshape(target.shape());
            target * momentum + online * (1.0 - momentum)
        })
    }
}
