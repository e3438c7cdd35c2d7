//! What a score must beat to mean the model learned something: features a planner could have
//! for free. The raw-pixel baseline is the image area-averaged to a small grid and projected to
//! the embedding's size by a fixed random ±1 matrix (a Johnson–Lindenstrauss projection, so
//! distances between images survive it); the random-init baseline is the same network, untrained.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::LearnError;

/// Raw pixels as features of a chosen size.
#[derive(Debug, Clone)]
pub struct PixelBaseline {
    side: usize,
    dim: usize,
    /// `dim × (side · side · 3)`, row-major, entries ±1/√(side · side · 3).
    projection: Vec<f32>,
}

impl PixelBaseline {
    /// Images averaged to `side × side` RGB, projected to `dim` values; the projection is drawn
    /// from `seed`.
    pub fn new(side: usize, dim: usize, seed: u64) -> Result<Self, LearnError> {
        if side == 0 || dim == 0 {
            return Err(LearnError::InvalidConfig(format!(
                "pixel baseline needs side and dim ≥ 1, got {side} and {dim}"
            )));
        }
        let inputs = side * side * 3;
        let scale = 1.0 / (inputs as f32).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let projection = (0..dim * inputs)
            .map(|_| if rng.random::<bool>() { scale } else { -scale })
            .collect();
        Ok(Self {
            side,
            dim,
            projection,
        })
    }

    /// The features of one `rgb8` image.
    ///
    /// # Shapes
    /// - `image`: `height × width × 3` bytes, with `width, height ≥ side`
    /// - output: `dim` values
    pub fn features(
        &self,
        image: &[u8],
        width: usize,
        height: usize,
    ) -> Result<Vec<f32>, LearnError> {
        let side = self.side;
        if width < side || height < side || image.len() != width * height * 3 {
            return Err(LearnError::BadInput(format!(
                "pixel baseline: {} bytes for a {width}x{height} rgb8 image of at least {side}x{side}",
                image.len()
            )));
        }
        let mut cells = vec![0.0f32; side * side * 3];
        for cy in 0..side {
            let (y0, y1) = (cy * height / side, (cy + 1) * height / side);
            for cx in 0..side {
                let (x0, x1) = (cx * width / side, (cx + 1) * width / side);
                let count = ((y1 - y0) * (x1 - x0)) as f32 * 255.0;
                for y in y0..y1 {
                    for x in x0..x1 {
                        for c in 0..3 {
                            cells[(cy * side + cx) * 3 + c] +=
                                f32::from(image[(y * width + x) * 3 + c]);
                        }
                    }
                }
                for c in 0..3 {
                    cells[(cy * side + cx) * 3 + c] /= count;
                }
            }
        }
        Ok(self
            .projection
            .chunks(cells.len())
            .take(self.dim)
            .map(|row| row.iter().zip(&cells).map(|(w, v)| w * v).sum())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_features_have_the_asked_size_tell_images_apart_and_refuse_wrong_ones() {
        let baseline = PixelBaseline::new(4, 16, 7).expect("baseline");
        let dark = vec![10u8; 32 * 32 * 3];
        let mut half = dark.clone();
        for pixel in half.chunks_mut(3).take(32 * 16) {
            pixel.copy_from_slice(&[250, 200, 10]);
        }
        let a = baseline.features(&dark, 32, 32).expect("features");
        let b = baseline.features(&half, 32, 32).expect("features");
        assert_eq!(a.len(), 16);
        let distance: f32 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
        assert!(
            distance > 0.1,
            "different images, different features: {distance}"
        );
        assert_eq!(a, baseline.features(&dark, 32, 32).expect("again"));
        assert!(baseline.features(&dark, 16, 16).is_err());
        assert!(baseline.features(&dark[..30], 32, 32).is_err());
    }
}
