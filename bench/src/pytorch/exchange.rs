//! What the two sides exchange on disk: the model's metadata, the batches as safetensors, and
//! the check that the PyTorch mirror builds this configuration.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};
use autodidact_learn::model::{DecoderConfig, RELATIVE_POSE_DIM};
use autodidact_learn::{Batch, TrainerConfig};

use super::PytorchOptions;

/// Refuses configurations the PyTorch mirror does not build: it covers the default objective
/// set (contrastive + temporal, spread, forward with both starts from view A and the proprio
/// head, reconstruction, steps of one weight, a dynamics of one hidden layer), with or without
/// the odometry objective and its relative-pose head.
pub(super) fn check_mirrored(config: &TrainerConfig) -> Result<()> {
    let o = &config.objectives;
    ensure!(
        o.contrastive.enabled
            && o.spread.enabled
            && o.forward.enabled
            && o.forward.horizon > 0
            && o.forward.target_start_weight > 0.0
            && o.reconstruction.enabled
            && !o.masked.enabled
            && !o.inverse.enabled
            && !o.sigreg.enabled
            && o.odometry.enabled == config.model.odometry_head
            && config.model.decoder
            && !config.model.masked_head
            && !config.model.inverse_head
            && config.model.encoder.proprio_dim > 0
            && o.forward.copy_last_power == 0.0
            && !o.forward.target_start_plain
            && config.model.dynamics_layers == 1
            && !config.model.dynamics_proprio,
        "the PyTorch mirror covers the default objectives only"
    );
    Ok(())
}

/// `meta.json` for the PyTorch side.
pub(super) fn meta(config: &TrainerConfig, batches: usize) -> serde_json::Value {
    let m = &config.model;
    let o = &config.objectives;
    let decoder = DecoderConfig::new(m.embed_dim(), m.encoder.image.clone());
    serde_json::json!({
        "batches": batches,
        "model": {
            "width": m.encoder.image.width,
            "height": m.encoder.image.height,
            "channels": m.encoder.image.channels,
            "feature_dim": m.encoder.image.feature_dim,
            "proprio_dim": m.encoder.proprio_dim,
            "proprio_features": m.encoder.proprio_features,
            "embed_dim": m.encoder.embed_dim,
            "action_dim": m.action_dim,
            "projection_dim": m.projection_dim,
            "head_hidden": m.head_hidden,
            "dynamics_hidden": m.dynamics_hidden,
            "decoder_base_channels": decoder.base_channels,
            "odometry_head": m.odometry_head,
        },
        "objectives": {
            "horizon": o.forward.horizon,
            "temperature": o.contrastive.temperature,
            "contrastive_weight": o.contrastive.weight,
            "temporal_weight": o.contrastive.temporal_weight,
            "variance_weight": o.spread.variance_weight,
            "covariance_weight": o.spread.covariance_weight,
            "target_std": o.spread.target_std,
            "forward_weight": o.forward.weight,
            "target_start_weight": o.forward.target_start_weight,
            "proprio_weight": o.forward.proprio_weight,
            "reconstruction_weight": o.reconstruction.weight,
            "odometry": o.odometry.enabled.then(|| serde_json::json!({
                "weight": o.odometry.weight,
            })),
        },
        "trainer": {
            "learning_rate": config.learning_rate,
            "ema_momentum": config.ema_momentum,
            "grad_clip_norm": config.grad_clip_norm,
            "batch_size": config.batch_size,
        },
    })
}

/// A named f32 tensor for [`write_safetensors`].
pub(super) struct Named<'a> {
    pub(super) name: String,
    pub(super) shape: Vec<usize>,
    pub(super) data: &'a [f32],
}

/// Writes f32 tensors as a safetensors file (the format PyTorch's side reads).
pub(super) fn write_safetensors(path: &Path, tensors: &[Named<'_>]) -> Result<()> {
    use safetensors::{Dtype, tensor::TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|tensor| tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(tensor, bytes)| {
            TensorView::new(Dtype::F32, tensor.shape.clone(), bytes)
                .map(|view| (tensor.name.clone(), view))
                .with_context(|| {
                    format!(
                        "{}: shape {:?} does not hold {} values",
                        tensor.name,
                        tensor.shape,
                        tensor.data.len()
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path)
        .with_context(|| format!("writing {}", path.display()))
}

pub(super) fn batch_tensors<'a>(
    index: usize,
    batch: &'a Batch,
    config: &TrainerConfig,
) -> Vec<Named<'a>> {
    let (b, h) = (batch.size, config.forward_horizon());
    let image = &config.model.encoder.image;
    let (height, width) = (image.height, image.width);
    let p = config.model.encoder.proprio_dim;
    let named = |name: &str, shape: Vec<usize>, data: &'a [f32]| Named {
        name: format!("{index}.{name}"),
        shape,
        data,
    };
    let mut tensors = vec![
        named("view_a", vec![b, 3, height, width], &batch.view_a),
        named("view_b", vec![b, 3, height, width], &batch.view_b),
        named("positive", vec![b, 3, height, width], &batch.positive),
        named("future", vec![b, h, 3, height, width], &batch.future),
        named("proprio", vec![b, h + 1, p], &batch.proprio),
        named(
            "actions",
            vec![b, h, autodidact_learn::ACTION_DIM],
            &batch.actions,
        ),
    ];
    if config.objectives.odometry.enabled {
        tensors.extend([
            named(
                "odometry_frames",
                vec![b, 3, height, width],
                &batch.odometry_frames,
            ),
            named(
                "relative_poses",
                vec![b, RELATIVE_POSE_DIM],
                &batch.relative_poses,
            ),
            named("relative_pose_known", vec![b], &batch.relative_pose_known),
        ]);
    }
    tensors
}

/// Peak resident set of this process (`VmHWM`), MB.
pub(super) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

pub(super) fn relative_difference(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-3)
}

/// Fails fast, before the simulator and trainer are set up, when the PyTorch side cannot run.
pub(super) fn check_torch(options: &PytorchOptions) -> Result<()> {
    ensure!(
        options.script.is_file(),
        "the PyTorch side {} does not exist (run from the repository root, or pass --script)",
        options.script.display()
    );
    let output = Command::new(&options.python)
        .args(["-c", "import numpy, torch"])
        .output()
        .with_context(|| {
            format!(
                "starting {} (install CPU torch with bench/setup-torch, see bench/README.md)",
                options.python.display()
            )
        })?;
    ensure!(
        output.status.success(),
        "{} cannot import torch and numpy (install CPU torch with bench/setup-torch, see \
         bench/README.md): {}",
        options.python.display(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_written_for_pytorch_read_back_with_names_shapes_and_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.safetensors");
        let values = [1.0f32, -2.5, 3.25, 0.0, 5.0, 6.0];
        write_safetensors(
            &path,
            &[
                Named {
                    name: "0.view_a".into(),
                    shape: vec![2, 3],
                    data: &values,
                },
                Named {
                    name: "encode.proprio".into(),
                    shape: vec![1],
                    data: &values[..1],
                },
            ],
        )
        .expect("written");
        let bytes = std::fs::read(&path).expect("read back");
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("a safetensors file");
        let view = file.tensor("0.view_a").expect("view_a");
        assert_eq!(view.shape(), &[2, 3]);
        let third = f32::from_le_bytes(view.data()[8..12].try_into().expect("4 bytes"));
        assert_eq!(third, 3.25);
        assert_eq!(
            file.tensor("encode.proprio").expect("proprio").shape(),
            &[1]
        );
        let wrong = write_safetensors(
            &path,
            &[Named {
                name: "c".into(),
                shape: vec![4],
                data: &values[..3],
            }],
        );
        assert!(
            wrong.is_err(),
            "a shape that does not fit the data is refused"
        );
    }

    #[test]
    fn relative_difference_is_symmetric_and_floored() {
        assert_eq!(relative_difference(2.0, 1.0), 0.5);
        assert_eq!(relative_difference(1.0, 2.0), 0.5);
        // Tiny values compare on an absolute floor, not as a huge relative error.
        assert!(relative_difference(1e-7, 2e-7) < 1e-3);
    }
}
