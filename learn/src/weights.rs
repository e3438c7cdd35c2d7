//! Weights that travel: one version of the served model (the published encoder, the latent
//! dynamics and, where the model serves them, the relative-pose head once trained and the
//! proprio head) as one safetensors blob, with the digest of the architecture it fits, so that
//! a node on another host (over `autodidact_msgs/ModelWeights`) takes it whole or not at all
//! (each head, too: all of its tensors or none).
//!
//! Tensor names are burn's module paths under `encoder.`, `dynamics.`, `relative_pose.` and
//! `proprio_head.` (as in [`crate::Trainer::export_model_safetensors`]); the blob's safetensors
//! metadata repeats the format, version, step and architecture, so a blob saved to a file
//! describes itself.

use burn::nn::Linear;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use sha2::{Digest, Sha256};

use crate::LearnError;
use crate::TrainerConfig;
use crate::inference::{DynamicsSnapshot, EncoderSnapshot};
use crate::model::{Dynamics, Mlp, StateEncoder, WorldModelConfig};
use crate::relative_pose::RelativePoseHead;
use crate::replay::ACTION_DIM;

/// Layout of the packed weights; part of the architecture digest, so a change of layout is a
/// change of architecture.
pub const WEIGHTS_FORMAT: &str = "autodidact-weights-1";

/// The modules that serve: what a follower needs to embed, to roll out, to place one frame
/// seen from another and to read the proprio of a predicted state.
#[derive(Module, Debug)]
struct Served {
    encoder: StateEncoder,
    dynamics: Dynamics,
    relative_pose: Option<Mlp>,
    proprio_head: Option<Linear>,
}

/// The architecture weights fit: `sha256:` and the hex digest of the packing format, the model
/// configuration (every shape of the encoder and dynamics), the action scale (what the
/// dynamics' action inputs mean), for a model that serves a relative-pose head its shapes and
/// metres scale, and for a model that serves its proprio head that head's shapes. Two nodes
/// with the same digest can exchange weights.
pub fn architecture_digest(config: &TrainerConfig) -> String {
    let model = &config.model;
    let mut described = serde_json::json!({
        "format": WEIGHTS_FORMAT,
        "encoder": &model.encoder,
        "action_dim": model.action_dim,
        "dynamics_hidden": model.dynamics_hidden,
        "action_scale": config.action_scale,
    });
    if let Some(fields) = described.as_object_mut() {
        // Only a deeper dynamics, dynamics that carry the proprio or a model with a head add
        // them: the digest of a model without any stays what it was.
        if model.dynamics_layers != 1 {
            fields.insert("dynamics_layers".into(), model.dynamics_layers.into());
        }
        let dynamics = model.dynamics();
        if dynamics.proprio_dim > 0 {
            fields.insert(
                "dynamics_proprio".into(),
                serde_json::json!({
                    "proprio_dim": dynamics.proprio_dim,
                    "hidden": dynamics.proprio_hidden,
                }),
            );
        }
        if let Some(scale) = config.served_relative_pose_scale() {
            fields.insert(
                "relative_pose".into(),
                serde_json::json!({ "hidden": model.head_hidden, "metres_scale": scale }),
            );
        }
        if config.serves_proprio_head() {
            fields.insert(
                "proprio_head".into(),
                serde_json::json!({
                    "inputs": model.embed_dim(),
                    "outputs": model.encoder.proprio_dim,
                }),
            );
        }
    }
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

/// Packs a matching encoder and dynamics snapshot (same version, with its relative-pose head
/// and its proprio head where it has them) for `architecture`.
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
        relative_pose: dynamics.relative_pose().map(|head| head.module().clone()),
        proprio_head: dynamics.proprio_head().cloned(),
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

/// The heads a blob of one digest carries.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Heads {
    /// The relative-pose head; a blob of a digest with it may still come without it, before
    /// the head has trained enough.
    relative_pose: bool,
    /// The proprio head.
    proprio: bool,
}

/// Unpacks weights for one architecture onto one device.
#[derive(Debug, Clone)]
pub struct Unpacker {
    model: WorldModelConfig,
    action_scale: [f32; ACTION_DIM],
    head_scale: Option<f32>,
    architecture: String,
    heads: Heads,
    /// The digests of the same model without one or both of the heads it serves, with the
    /// heads each carries.
    fewer_heads: Vec<(String, Heads)>,
    device: Device,
}

impl Unpacker {
    /// Unpacks weights that fit the model `config` trains, onto `device`.
    pub fn new(config: &TrainerConfig, device: Device) -> Self {
        let head_scale = config.served_relative_pose_scale();
        let heads = Heads {
            relative_pose: head_scale.is_some(),
            proprio: config.serves_proprio_head(),
        };
        let mut fewer_heads = Vec::new();
        for relative_pose in [true, false] {
            for proprio in [true, false] {
                let fewer = Heads {
                    relative_pose: relative_pose && heads.relative_pose,
                    proprio: proprio && heads.proprio,
                };
                if fewer == heads || fewer_heads.iter().any(|(_, taken)| *taken == fewer) {
                    continue;
                }
                let mut without = config.clone();
                without.model.odometry_head &= fewer.relative_pose;
                if !fewer.proprio {
                    without.objectives.forward.proprio_weight = 0.0;
                }
                fewer_heads.push((architecture_digest(&without), fewer));
            }
        }
        Self {
            model: config.model.clone(),
            action_scale: config.action_scale,
            head_scale,
            architecture: architecture_digest(config),
            heads,
            fewer_heads,
            device,
        }
    }

    /// The digest of the architecture this unpacker takes.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The snapshots in `packed`, whole: refused with [`LearnError::OtherArchitecture`] when
    /// they were packed for another architecture, with [`LearnError::Weights`] when any tensor
    /// is missing, extra, of another shape or unreadable. Nothing is served on a refusal. A
    /// model that serves the relative-pose head packs it once it has trained enough; before,
    /// its weights unpack without it (the whole head or none of it). An unpacker for a model
    /// with either head also takes the weights of the same model without one or both (from a
    /// node of a version that did not pack the proprio head, a node whose configuration does
    /// not train a head, or a trainer resumed from a checkpoint written before the relative-pose
    /// head was the default), without them.
    pub fn unpack(
        &self,
        packed: &PackedWeights,
    ) -> Result<(EncoderSnapshot, DynamicsSnapshot), LearnError> {
        let heads = if packed.architecture == self.architecture {
            self.heads
        } else if let Some((_, heads)) = self
            .fewer_heads
            .iter()
            .find(|(digest, _)| *digest == packed.architecture)
        {
            *heads
        } else {
            return Err(LearnError::OtherArchitecture {
                expected: self.architecture.clone(),
                got: packed.architecture.clone(),
            });
        };
        let embed_dim = self.model.encoder.embed_dim;
        let served = match self.load(packed, heads) {
            Ok(served) => served,
            // A model that serves the relative-pose head sends none until its head has trained
            // enough (`serve_after_pairs`): the whole head or none of it, never a part.
            Err(error) if heads.relative_pose => {
                let untrained = Heads {
                    relative_pose: false,
                    ..heads
                };
                self.load(packed, untrained).map_err(|_| error)?
            }
            Err(error) => return Err(error),
        };
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
        let dynamics = match (&served.relative_pose, self.head_scale) {
            (Some(head), Some(scale)) => dynamics.with_relative_pose(RelativePoseHead::new(
                head,
                scale,
                embed_dim,
                &self.device,
            )),
            _ => dynamics,
        };
        let dynamics = match &served.proprio_head {
            Some(head) => dynamics.with_proprio_head(head),
            None => dynamics,
        };
        Ok((encoder, dynamics))
    }

    /// The blob's tensors in this model's modules, each head's among them or not as `heads`
    /// says; refused unless every tensor is there, of its shape, and nothing else is.
    fn load(&self, packed: &PackedWeights, heads: Heads) -> Result<Served, LearnError> {
        let mut served = Served {
            encoder: self.model.encoder.init(&self.device),
            dynamics: self.model.dynamics().init(&self.device),
            relative_pose: heads
                .relative_pose
                .then(|| self.model.relative_pose_head().init(&self.device)),
            proprio_head: heads
                .proprio
                .then(|| self.model.proprio_head().init(&self.device)),
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
        Ok(served)
    }
}
