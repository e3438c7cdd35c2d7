//! Weights that travel: one version of the served model (the published encoder and the latent
//! dynamics) as one safetensors blob, with the digest of the architecture it fits, so that a
//! node on another host (over `autodidact_msgs/ModelWeights`) takes it whole or not at all.
//!
//! Tensor names are burn's module paths under `encoder.` and `dynamics.` (as in
//! [`crate::Trainer::export_model_safetensors`]); the blob's safetensors metadata repeats the
//! format, version, step and architecture, so a blob saved to a file describes itself.

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use sha2::{Digest, Sha256};

use crate::LearnError;
use crate::inference::{DynamicsSnapshot, EncoderSnapshot};
use crate::model::{Dynamics, DynamicsConfig, StateEncoder, WorldModelConfig};
use crate::replay::ACTION_DIM;

/// Layout of the packed weights; part of the architecture digest, so a change of layout is a
/// change of architecture.
pub const WEIGHTS_FORMAT: &str = "autodidact-weights-1";

/// The two modules that serve: what a follower needs to embed and to roll out.
#[derive(Module, Debug)]
struct Served {
    encoder: StateEncoder,
    dynamics: Dynamics,
}

/// The architecture weights fit: `sha256:` and the hex digest of the packing format, the model
/// configuration (every shape of the encoder and dynamics) and the action scale (what the
/// dynamics' action inputs mean). Two nodes with the same digest can exchange weights.
pub fn architecture_digest(model: &WorldModelConfig, action_scale: [f32; ACTION_DIM]) -> String {
    let described = serde_json::json!({
        "format": WEIGHTS_FORMAT,
        "encoder": &model.encoder,
        "action_dim": model.action_dim,
        "dynamics_hidden": model.dynamics_hidden,
        "action_scale": action_scale,
    });
    let digest = Sha256::digest(described.to_string().as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// One version of the served weights, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedWeights {
    /// The encoder version (increases by one with every published snapshot).
    pub version: u64,
    /// Training step the weights come from.
    pub train_step: u64,
    /// [`architecture_digest`] of the model they fit.
    pub architecture: String,
    /// The encoder and dynamics tensors as safetensors.
    pub safetensors: Vec<u8>,
}

/// Packs a matching encoder and dynamics snapshot (same version) for `architecture`.
pub fn pack(
    encoder: &EncoderSnapshot,
    dynamics: &DynamicsSnapshot,
    architecture: &str,
) -> Result<PackedWeights, LearnError> {
    if encoder.version != dynamics.version {
        return Err(LearnError::Weights(format!(
            "encoder version {} and dynamics version {} are not one version",
            encoder.version, dynamics.version
        )));
    }
    let served = Served {
        encoder: encoder.module().clone(),
        dynamics: dynamics.module().clone(),
    };
    let mut store = SafetensorsStore::from_bytes(None)
        .metadata("format", WEIGHTS_FORMAT)
        .metadata("version", encoder.version.to_string())
        .metadata("train_step", encoder.train_step.to_string())
        .metadata("architecture", architecture);
    served
        .save_into(&mut store)
        .map_err(|e| LearnError::Weights(format!("packing: {e}")))?;
    let safetensors = store
        .get_bytes()
        .map_err(|e| LearnError::Weights(format!("packing: {e}")))?;
    Ok(PackedWeights {
        version: encoder.version,
        train_step: encoder.train_step,
        architecture: architecture.to_owned(),
        safetensors,
    })
}

/// Unpacks weights for one architecture onto one device.
#[derive(Debug, Clone)]
pub struct Unpacker {
    model: WorldModelConfig,
    action_scale: [f32; ACTION_DIM],
    architecture: String,
    device: Device,
}

impl Unpacker {
    /// Unpacks weights that fit `model` with `action_scale`, onto `device`.
    pub fn new(model: WorldModelConfig, action_scale: [f32; ACTION_DIM], device: Device) -> Self {
        let architecture = architecture_digest(&model, action_scale);
        Self {
            model,
            action_scale,
            architecture,
            device,
        }
    }

    /// The digest of the architecture this unpacker takes.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The snapshots in `packed`, whole: refused with [`LearnError::OtherArchitecture`] when
    /// they were packed for another architecture, with [`LearnError::Weights`] when any tensor
    /// is missing, extra, of another shape or unreadable. Nothing is served on a refusal.
    pub fn unpack(
        &self,
        packed: &PackedWeights,
    ) -> Result<(EncoderSnapshot, DynamicsSnapshot), LearnError> {
        if packed.architecture != self.architecture {
            return Err(LearnError::OtherArchitecture {
                expected: self.architecture.clone(),
                got: packed.architecture.clone(),
            });
        }
        let embed_dim = self.model.encoder.embed_dim;
        let mut served = Served {
            encoder: self.model.encoder.init(&self.device),
            dynamics: DynamicsConfig::new(embed_dim, self.model.action_dim)
                .with_hidden(self.model.dynamics_hidden)
                .init(&self.device),
        };
        let mut store = SafetensorsStore::from_bytes(Some(packed.safetensors.clone()))
            .validate(true)
            .allow_partial(false);
        let applied = served
            .load_from(&mut store)
            .map_err(|e| LearnError::Weights(format!("unpacking: {e}")))?;
        if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
            return Err(LearnError::Weights(format!(
                "unpacking: {} errors, {} tensors missing, {} not of this model",
                applied.errors.len(),
                applied.missing.len(),
                applied.unused.len()
            )));
        }
        let encoder = EncoderSnapshot::new(
            &served.encoder,
            self.model.encoder.clone(),
            packed.version,
            packed.train_step,
            &self.device,
        );
        let dynamics = DynamicsSnapshot::new(
            &served.dynamics,
            embed_dim,
            self.action_scale,
            packed.version,
            &self.device,
        );
        Ok((encoder, dynamics))
    }
}
