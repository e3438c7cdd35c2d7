//! Image preparation on the CPU, written straight into the batch buffer: `rgb8` HWC bytes become
//! CHW floats centred on zero, optionally with a random shift (edge-replicating pad + crop) and
//! colour jitter (brightness, contrast, per-channel gain), or with masked patches.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Augmentation strengths for the contrastive views.
///
/// The defaults are a 2-pixel horizontal shift and no colour jitter. In the simulator, views
/// that differ in colour or vertical position taught the encoder to forget where it is: the
/// walls' colours are its compass, and the row where the floor meets a wall is its distance.
/// Tuned with `learn/examples/learning_curve.rs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Largest horizontal shift in pixels (the "pad + random crop" of DrQ / RAD). A horizontal
    /// shift looks like a small turn.
    pub max_shift_px: usize,
    /// Largest vertical shift in pixels. Off by default: for a ground robot with a fixed camera,
    /// where the floor meets a wall in the image *is* the distance to it, and invariance to it
    /// would teach the encoder to forget where it is.
    pub max_shift_y_px: usize,
    /// Brightness factor drawn from `1 ± brightness`.
    pub brightness: f32,
    /// Contrast factor drawn from `1 ± contrast`.
    pub contrast: f32,
    /// Per-channel gain drawn from `1 ± channel_gain`.
    pub channel_gain: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            max_shift_px: 2,
            max_shift_y_px: 0,
            brightness: 0.0,
            contrast: 0.0,
            channel_gain: 0.0,
        }
    }
}

/// A pixel byte as the model sees it: `byte / 255 - 0.5`.
fn centred(byte: u8) -> f32 {
    byte as f32 / 255.0 - 0.5
}

/// Writes `image` (`height × width × 3` bytes) into `out` (`height × width × 3` floats, the
/// channels-last rows of `ImageEncoder::forward_rows`, the image's own layout) as
/// `byte / 255 - 0.5`, with no augmentation.
pub fn plain_rows_into(image: &[u8], out: &mut [f32]) {
    for (value, byte) in out.iter_mut().zip(image) {
        *value = centred(*byte);
    }
}

/// Writes `image` (`height × width × 3` bytes) into `out` (`3 × height × width` floats) as
/// `byte / 255 - 0.5`, with no augmentation.
pub fn plain_into(image: &[u8], width: usize, height: usize, out: &mut [f32]) {
    let plane = width * height;
    // One output plane per channel, walked in step with the pixels: no index arithmetic or
    // bounds checks in the loop, so it vectorises (it was 6 % of a single-frame encode).
    let (red, rest) = out.split_at_mut(plane.min(out.len()));
    let (green, blue) = rest.split_at_mut(plane.min(rest.len()));
    let pixels = image.chunks_exact(3).zip(red).zip(green).zip(blue);
    for (((rgb, r), g), b) in pixels {
        (*r, *g, *b) = (centred(rgb[0]), centred(rgb[1]), centred(rgb[2]));
    }
}

/// Images from `[B, 3, H, W]` to channels-last rows `[B·H·W, 3]` (`plane` = `H·W`), the layout
/// the CPU convolutions take.
pub fn channels_last(images: &[f32], plane: usize) -> Vec<f32> {
    let mut rows = vec![0.0; images.len()];
    let image_len = 3 * plane.max(1);
    rows.par_chunks_mut(image_len)
        .zip(images.par_chunks(image_len))
        .for_each(|(rows, image)| {
            let (red, rest) = image.split_at(plane);
            let (green, blue) = rest.split_at(plane);
            for (pixel, ((r, g), b)) in rows
                .chunks_exact_mut(3)
                .zip(red.iter().zip(green).zip(blue))
            {
                pixel.copy_from_slice(&[*r, *g, *b]);
            }
        });
    rows
}

/// Like [`plain_into`], with a random shift and colour jitter drawn from `rng`.
pub fn augment_into(
    image: &[u8],
    width: usize,
    height: usize,
    config: &AugmentConfig,
    rng: &mut ChaCha8Rng,
    out: &mut [f32],
) {
    let mut draw = |max: usize| {
        let max = max as i64;
        if max > 0 {
            rng.random_range(-max..=max)
        } else {
            0
        }
    };
    let dx = draw(config.max_shift_px);
    let dy = draw(config.max_shift_y_px);
    let jitter = |rng: &mut ChaCha8Rng, amount: f32| {
        if amount > 0.0 {
            1.0 + rng.random_range(-amount..amount)
        } else {
            1.0
        }
    };
    let brightness = jitter(rng, config.brightness);
    let contrast = jitter(rng, config.contrast);
    let gains = [
        jitter(rng, config.channel_gain),
        jitter(rng, config.channel_gain),
        jitter(rng, config.channel_gain),
    ];
    let plane = width * height;
    let mean = image.iter().map(|b| *b as f32).sum::<f32>() / (image.len().max(1) as f32 * 255.0);
    let (w, h) = (width as i64, height as i64);
    for v in 0..height {
        let source_v = (v as i64 + dy).clamp(0, h - 1) as usize;
        for u in 0..width {
            let source_u = (u as i64 + dx).clamp(0, w - 1) as usize;
            let source = (source_v * width + source_u) * 3;
            let pixel = v * width + u;
            for channel in 0..3 {
                let value = image[source + channel] as f32 / 255.0 * gains[channel] * brightness;
                let value = ((value - mean) * contrast + mean).clamp(0.0, 1.0);
                out[channel * plane + pixel] = value - 0.5;
            }
        }
    }
}

/// Sets a random `ratio` of the `patch × patch` tiles of a CHW image (already in `out`) to 0
/// (mid grey). Returns how many tiles were masked.
pub fn mask_patches(
    out: &mut [f32],
    width: usize,
    height: usize,
    patch: usize,
    ratio: f32,
    rng: &mut ChaCha8Rng,
) -> usize {
    let patch = patch.max(1);
    let plane = width * height;
    let mut masked = 0;
    for tile_v in (0..height).step_by(patch) {
        for tile_u in (0..width).step_by(patch) {
            if rng.random_range(0.0..1.0f32) >= ratio {
                continue;
            }
            masked += 1;
            for v in tile_v..(tile_v + patch).min(height) {
                for u in tile_u..(tile_u + patch).min(width) {
                    for channel in 0..3 {
                        out[channel * plane + v * width + u] = 0.0;
                    }
                }
            }
        }
    }
    masked
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn plain_is_chw_or_rows_and_centred() {
        // 2×1 image: red, blue.
        let image = [255u8, 0, 0, 0, 0, 255];
        let mut out = [9.0f32; 6];
        plain_into(&image, 2, 1, &mut out);
        assert_eq!(out, [0.5, -0.5, -0.5, -0.5, -0.5, 0.5]);
        plain_rows_into(&image, &mut out);
        assert_eq!(out, [0.5, -0.5, -0.5, -0.5, -0.5, 0.5]);
    }

    #[test]
    fn channels_last_turns_a_batch_of_chw_images_into_rows() {
        // Two 3×2 images with distinct bytes.
        let images: Vec<Vec<u8>> = (0..2u8)
            .map(|i| (0..18u8).map(|v| v * 13 + i * 7).collect())
            .collect();
        let mut chw = vec![0.0; 2 * 18];
        let mut rows = vec![0.0; 2 * 18];
        for (index, image) in images.iter().enumerate() {
            plain_into(image, 3, 2, &mut chw[index * 18..(index + 1) * 18]);
            plain_rows_into(image, &mut rows[index * 18..(index + 1) * 18]);
        }
        assert_eq!(channels_last(&chw, 6), rows);
    }

    #[test]
    fn shift_moves_content_and_jitter_stays_in_range() {
        let (w, h) = (8usize, 8usize);
        let mut image = vec![0u8; w * h * 3];
        image[(3 * w + 3) * 3] = 255; // one red pixel at (3, 3)
        let config = AugmentConfig {
            max_shift_px: 2,
            max_shift_y_px: 2,
            brightness: 0.0,
            contrast: 0.0,
            channel_gain: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut positions = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut out = vec![0.0f32; w * h * 3];
            augment_into(&image, w, h, &config, &mut rng, &mut out);
            let red = out[..w * h]
                .iter()
                .position(|v| *v > 0.0)
                .expect("red pixel survives");
            positions.insert(red);
        }
        assert!(positions.len() > 5, "shifts should vary: {positions:?}");
        let mut out = vec![0.0f32; w * h * 3];
        augment_into(&image, w, h, &AugmentConfig::default(), &mut rng, &mut out);
        assert!(out.iter().all(|v| (-0.5..=0.5).contains(v)));
    }

    #[test]
    fn masking_zeroes_whole_tiles() {
        let mut out = vec![0.25f32; 3 * 16 * 16];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let masked = mask_patches(&mut out, 16, 16, 8, 0.5, &mut rng);
        let zeros = out.iter().filter(|v| **v == 0.0).count();
        assert_eq!(zeros, masked * 8 * 8 * 3);
    }
}
