//! Where published snapshots run: `auto` measures rather than guesses when there is a GPU.

use std::time::Instant;

use crate::LearnError;
use crate::device::{BackendChoice, BackendKind, Placement};
use crate::inference::EncoderSnapshot;
use crate::model::{StateEncoder, StateEncoderConfig};

/// Frames encoded before timing (kernel compilation, caches) and timed, per backend.
const WARM_UP: usize = 3;
const TIMED: usize = 10;

/// The inference placement for `choice`.
///
/// `auto`: flex where there is no GPU (the same look for adapters as training's `auto`). With a
/// GPU, one frame (batch 1, as a camera delivers them) is encoded on both backends and the
/// faster one is taken: on a small robot the CPU's direct kernels can beat a round trip to the
/// GPU, on a workstation the GPU wins. Both medians go into the reason.
pub(super) fn place_inference(
    choice: BackendChoice,
    encoder: &StateEncoder,
    config: &StateEncoderConfig,
) -> Result<Placement, LearnError> {
    if choice != BackendChoice::Auto {
        return choice.resolve();
    }
    let gpu = BackendChoice::Auto.resolve()?;
    if gpu.kind == BackendKind::Flex {
        return Ok(gpu);
    }
    let flex = median_encode_ms(encoder, config, BackendKind::Flex)?;
    let wgpu = median_encode_ms(encoder, config, BackendKind::Wgpu)?;
    let kind = if wgpu < flex {
        BackendKind::Wgpu
    } else {
        BackendKind::Flex
    };
    Ok(Placement {
        kind,
        reason: format!(
            "auto: one frame encodes in {flex:.2} ms on flex, {wgpu:.2} ms on wgpu \
             (median of {TIMED}, measured at start)"
        ),
    })
}

/// Median time to encode one frame on `kind`, milliseconds.
fn median_encode_ms(
    encoder: &StateEncoder,
    config: &StateEncoderConfig,
    kind: BackendKind,
) -> Result<f64, LearnError> {
    let snapshot = EncoderSnapshot::new(encoder, config.clone(), 0, 0, &kind.device());
    let image = vec![128u8; config.image.width * config.image.height * 3];
    let proprio = vec![0.0f32; config.proprio_dim];
    for _ in 0..WARM_UP {
        snapshot.embed(&image, &proprio)?;
    }
    let mut times: Vec<f64> = (0..TIMED)
        .map(|_| {
            let start = Instant::now();
            snapshot
                .embed(&image, &proprio)
                .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[TIMED / 2])
}
