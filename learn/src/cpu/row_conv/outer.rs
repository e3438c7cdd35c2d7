//! The kernel gradients: per tap, the sum over pixel pairs of their outer products.

use super::*;

/// For every tap, the sum over small pixels (and the large pixel under the tap) of the outer
/// product of their values: `[taps, small_channels, large_channels]`. The batch is split into
/// [`IMAGE_PARTS`] image ranges (a fixed number, summed in order); each range is read once,
/// row by row, for all taps.
pub(super) fn tap_outer_products(
    small: &[f32],
    large: &[f32],
    geometry: Stride2,
    [small_channels, large_channels]: [usize; 2],
) -> Vec<f32> {
    if large_channels <= FEW_CHANNELS {
        return patch_outer_products(small, large, geometry, [small_channels, large_channels]);
    }
    let parts = IMAGE_PARTS.min(geometry.batch.max(1));
    let block = small_channels * large_channels;
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let images = geometry.batch * part / parts..geometry.batch * (part + 1) / parts;
            let mut sums = vec![0.0; geometry.taps() * block];
            geometry.arch.dispatch(TapOuterProducts {
                small,
                large,
                geometry,
                channels: [small_channels, large_channels],
                images,
                sums: &mut sums,
            });
            sums
        })
        .collect();
    let mut products = vec![0.0; geometry.taps() * block];
    for sums in &partial {
        for (total, value) in products.iter_mut().zip(sums) {
            *total += value;
        }
    }
    products
}

/// Patches are padded to a multiple of this many values: the widest SIMD vector.
const PATCH_ALIGN: usize = 16;

/// [`tap_outer_products`] with few large channels, where a tap's outer products would be a few
/// lanes wide: every small pixel's patch (the large pixels under all its taps, zeros outside,
/// padded to whole vectors) is one row, so each pixel adds one outer product `[small, patch]`.
/// Same fixed image ranges, summed in order.
fn patch_outer_products(
    small: &[f32],
    large: &[f32],
    geometry: Stride2,
    [small_channels, large_channels]: [usize; 2],
) -> Vec<f32> {
    let taps = geometry.taps();
    let patch_len = (taps * large_channels).div_ceil(PATCH_ALIGN) * PATCH_ALIGN;
    let parts = IMAGE_PARTS.min(geometry.batch.max(1));
    let partial: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let images = geometry.batch * part / parts..geometry.batch * (part + 1) / parts;
            let mut sums = vec![0.0; small_channels * patch_len];
            geometry.arch.dispatch(PatchOuterProducts {
                small,
                large,
                geometry,
                channels: [small_channels, large_channels],
                patch_len,
                images,
                sums: &mut sums,
            });
            sums
        })
        .collect();
    let mut totals = vec![0.0; small_channels * patch_len];
    for sums in &partial {
        for (total, value) in totals.iter_mut().zip(sums) {
            *total += value;
        }
    }
    // [small, (taps, large) + padding] → [taps, small, large].
    let unpadded: Vec<f32> = totals
        .chunks_exact(patch_len)
        .flat_map(|row| &row[..taps * large_channels])
        .copied()
        .collect();
    swap_outer(&unpadded, [small_channels, taps, large_channels])
}

/// One image range of [`patch_outer_products`], compiled for the instruction set it is
/// dispatched to.
struct PatchOuterProducts<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    patch_len: usize,
    images: std::ops::Range<usize>,
    /// `[small_channels, patch_len]`.
    sums: &'a mut [f32],
}

impl WithSimd for PatchOuterProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        match (self.patch_len.is_multiple_of(lanes), self.patch_len / lanes) {
            (true, 1) => self.run::<S, 1>(simd),
            (true, 2) => self.run::<S, 2>(simd),
            (true, 3) => self.run::<S, 3>(simd),
            (true, 4) => self.run::<S, 4>(simd),
            (true, 6) => self.run::<S, 6>(simd),
            _ => self.run::<S, 0>(simd),
        }
    }
}

impl PatchOuterProducts<'_> {
    #[inline(always)]
    fn run<S: Simd, const RV: usize>(self, simd: S) {
        let Self {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            patch_len,
            images,
            sums,
        } = self;
        let [height, width] = geometry.small;
        let mut patches = vec![0.0; TILE_PIXELS * patch_len];
        for image in images {
            for y in 0..height {
                let mut x = 0;
                while x < width {
                    let count = TILE_PIXELS.min(width - x);
                    for (p, patch) in patches.chunks_exact_mut(patch_len).take(count).enumerate() {
                        let taps_len = geometry.taps() * large_channels;
                        geometry.fill_patch(
                            large,
                            large_channels,
                            [image, y, x + p],
                            &mut patch[..taps_len],
                        );
                    }
                    let small_at = geometry.small_index(image, y, x) * small_channels;
                    let pixel = |p: usize| {
                        (
                            &small[small_at + p * small_channels..][..small_channels],
                            &patches[p * patch_len..(p + 1) * patch_len],
                        )
                    };
                    if count == TILE_PIXELS {
                        let tile: [(&[f32], &[f32]); TILE_PIXELS] = std::array::from_fn(pixel);
                        outer_tile::<S, RV, TILE_PIXELS>(simd, sums, &tile, small_channels);
                    } else {
                        for p in 0..count {
                            outer_tile::<S, RV, 1>(simd, sums, &[pixel(p)], small_channels);
                        }
                    }
                    x += count;
                }
            }
        }
    }
}

/// One image range of [`tap_outer_products`], compiled for the instruction set it is
/// dispatched to.
struct TapOuterProducts<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    images: std::ops::Range<usize>,
    /// `[taps, small_channels, large_channels]`.
    sums: &'a mut [f32],
}

/// Pixels whose vectors [`outer_tile`] keeps in registers at once.
const TILE_PIXELS: usize = 4;

impl WithSimd for TapOuterProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            images,
            sums,
        } = self;
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        // One side is taken in SIMD vectors (the "row"), the other value by value (the
        // "column"): the large channels if they fill vectors, else the small ones, in which
        // case each tap's `[large, small]` sums are transposed at the end.
        let transposed =
            !large_channels.is_multiple_of(lanes) && small_channels.is_multiple_of(lanes);
        let (column_channels, row_channels) = if transposed {
            (large_channels, small_channels)
        } else {
            (small_channels, large_channels)
        };
        let block = small_channels * large_channels;
        let pass = OuterPass {
            small,
            large,
            geometry,
            channels: [small_channels, large_channels],
            transposed,
        };
        match (row_channels.is_multiple_of(lanes), row_channels / lanes) {
            (true, 1) => pass.run::<S, 1>(simd, images, sums, column_channels),
            (true, 2) => pass.run::<S, 2>(simd, images, sums, column_channels),
            (true, 4) => pass.run::<S, 4>(simd, images, sums, column_channels),
            _ => pass.run::<S, 0>(simd, images, sums, column_channels),
        }
        if transposed {
            for tap_sums in sums.chunks_exact_mut(block) {
                let untransposed = transpose_blocks(tap_sums, [large_channels, small_channels]);
                tap_sums.copy_from_slice(&untransposed);
            }
        }
    }
}

/// The loops of [`TapOuterProducts`].
struct OuterPass<'a> {
    small: &'a [f32],
    large: &'a [f32],
    geometry: Stride2,
    channels: [usize; 2],
    transposed: bool,
}

impl OuterPass<'_> {
    /// Every small row of `images`, every tap; `RV` vectors per row-side pixel (`0`: scalar).
    #[inline(always)]
    fn run<S: Simd, const RV: usize>(
        &self,
        simd: S,
        images: std::ops::Range<usize>,
        sums: &mut [f32],
        column_channels: usize,
    ) {
        let [height, width] = self.geometry.small;
        let kernel = self.geometry.kernel;
        let [small_channels, large_channels] = self.channels;
        let block = small_channels * large_channels;
        for image in images {
            for y in 0..height {
                for ky in 0..kernel {
                    let Some(large_y) = tap_source(y, ky, 2 * height) else {
                        continue;
                    };
                    for kx in 0..kernel {
                        // The small pixels whose tap stays inside the large row: a run of x.
                        let first = usize::from(kx == 0);
                        let end = (0..width)
                            .rev()
                            .find(|&x| tap_source(x, kx, 2 * width).is_some())
                            .map_or(0, |x| x + 1);
                        let tap = ky * kernel + kx;
                        let tap_sums = &mut sums[tap * block..(tap + 1) * block];
                        let pixel = |x: usize| {
                            let small_at = self.geometry.small_index(image, y, x) * small_channels;
                            let large_x = 2 * x + kx - 1;
                            let large_at =
                                self.geometry.large_index(image, large_y, large_x) * large_channels;
                            let small_values = &self.small[small_at..small_at + small_channels];
                            let large_values = &self.large[large_at..large_at + large_channels];
                            if self.transposed {
                                (large_values, small_values)
                            } else {
                                (small_values, large_values)
                            }
                        };
                        let mut x = first;
                        while x + TILE_PIXELS <= end {
                            let pixels: [(&[f32], &[f32]); TILE_PIXELS] =
                                std::array::from_fn(|p| pixel(x + p));
                            outer_tile::<S, RV, TILE_PIXELS>(
                                simd,
                                tap_sums,
                                &pixels,
                                column_channels,
                            );
                            x += TILE_PIXELS;
                        }
                        while x < end {
                            outer_tile::<S, RV, 1>(simd, tap_sums, &[pixel(x)], column_channels);
                            x += 1;
                        }
                    }
                }
            }
        }
    }
}

/// `sums[c, ..] += Σ_p column_p[c] · row_p` over `P` pixels `(column_p, row_p)`, for a
/// `[column_channels, row.len()]` `sums`: the rows' `RV` vectors each stay in registers for
/// all `c`, so each row of `sums` is loaded and stored once per tile (`RV = 0`: scalar).
#[inline(always)]
fn outer_tile<S: Simd, const RV: usize, const P: usize>(
    simd: S,
    sums: &mut [f32],
    pixels: &[(&[f32], &[f32]); P],
    column_channels: usize,
) {
    if RV == 0 {
        for (column, row) in pixels {
            for (value, sums) in column.iter().zip(sums.chunks_exact_mut(row.len())) {
                for (sum, g) in sums.iter_mut().zip(row.iter()) {
                    *sum += value * g;
                }
            }
        }
        return;
    }
    let zero = simd.splat_f32s(0.0);
    let mut rows = [[zero; RV]; P];
    for (vectors, (_, row)) in rows.iter_mut().zip(pixels) {
        let (row, _) = S::as_simd_f32s(row);
        if let Some(row) = row.first_chunk::<RV>() {
            *vectors = *row;
        }
    }
    let (sums, _) = S::as_mut_simd_f32s(sums);
    let (sums, _) = sums.as_chunks_mut::<RV>();
    for (c, sum) in sums.iter_mut().enumerate().take(column_channels) {
        let mut accumulators = *sum;
        for p in 0..P {
            let value = simd.splat_f32s(pixels[p].0[c]);
            for v in 0..RV {
                accumulators[v] = simd.mul_add_e_f32s(value, rows[p][v], accumulators[v]);
            }
        }
        *sum = accumulators;
    }
}
