//! The two gathers: every small pixel from the large map under its taps ([`gather_small`]), every
//! large pixel from the small pixels whose taps reach it ([`gather_large`]).

use super::*;

/// Every small pixel sums, over its taps inside the large map, the large pixel under the tap
/// (`matrices.from` values) times the tap's matrix, into `small` (`[pixels, matrices.to]`,
/// zero).
pub(super) fn gather_small(
    large: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    small: &mut [f32],
) {
    for_channels!(
        matrices.to,
        gather_rows(
            large,
            matrices,
            geometry,
            epilogue,
            Direction::IntoSmall,
            small
        )
    );
}

/// Which map a [`GatherRow`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// [`gather_small`]: rows of the small map, from the large one.
    IntoSmall,
    /// [`gather_large`]: rows of the large map, from the small one.
    IntoLarge,
}

/// [`gather_small`] or [`gather_large`] with `N` output channels (`0`: read at run time): one
/// task per output row.
fn gather_rows<const N: usize>(
    source: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    direction: Direction,
    out: &mut [f32],
) {
    let (out_pixels, source_pixels, row_pixels) = match direction {
        Direction::IntoSmall => (
            geometry.small_pixels(),
            geometry.large_pixels(),
            geometry.small[1],
        ),
        Direction::IntoLarge => (
            geometry.large_pixels(),
            geometry.small_pixels(),
            2 * geometry.small[1],
        ),
    };
    debug_assert_eq!(out.len(), out_pixels * matrices.to);
    debug_assert_eq!(source.len(), source_pixels * matrices.from);
    out.par_chunks_mut(row_pixels * matrices.to)
        .enumerate()
        .for_each(|(row_index, row)| {
            geometry.arch.dispatch(GatherRow::<N> {
                source,
                matrices,
                geometry,
                epilogue,
                direction,
                row_index,
                row,
            })
        });
}

/// One output row of [`gather_rows`], compiled for the instruction set it is dispatched to.
struct GatherRow<'a, const N: usize> {
    source: &'a [f32],
    matrices: &'a TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'a>,
    direction: Direction,
    row_index: usize,
    row: &'a mut [f32],
}

impl<const N: usize> WithSimd for GatherRow<'_, N> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        match self.direction {
            Direction::IntoSmall => self.small_row(simd),
            Direction::IntoLarge => self.large_row(simd),
        }
    }
}

impl<const N: usize> GatherRow<'_, N> {
    /// Every small pixel of the row: its patch times all the taps' matrices.
    #[inline(always)]
    fn small_row<S: Simd>(self, simd: S) {
        let (source, matrices, geometry, epilogue) =
            (self.source, self.matrices, self.geometry, self.epilogue);
        let (row_index, row) = (self.row_index, self.row);
        let (from, to) = (matrices.from, fixed::<N>(matrices.to));
        let height = geometry.small[0];
        let (image, y) = (row_index / height, row_index % height);
        // Whole SIMD vectors of output channels: blocks of pixels first (the rest one by one).
        let lanes = size_of::<S::f32s>() / size_of::<f32>();
        macro_rules! blocks {
            ($vectors:literal, $pixels:literal) => {
                small_blocks::<S, $vectors, $pixels>(
                    simd,
                    matrices,
                    geometry,
                    epilogue,
                    [image, y],
                    source,
                    &mut *row,
                )
            };
        }
        let done = match (to.is_multiple_of(lanes), to / lanes) {
            (true, 1) => blocks!(1, 8),
            (true, 2) => blocks!(2, 8),
            (true, 3) => blocks!(3, 6),
            (true, 4) => blocks!(4, 4),
            _ => 0,
        };
        if done * to == row.len() {
            return;
        }
        // The pixel's patch: the large pixels under all its taps, zeros outside the map, so
        // the whole sum is one product with the `[(taps, from), to]` matrices.
        let mut patch = vec![0.0; geometry.taps() * from];
        for (x, pixel) in row.chunks_exact_mut(to).enumerate().skip(done) {
            epilogue.start(pixel);
            geometry.fill_patch(source, from, [image, y, x], &mut patch);
            multiply_accumulate::<S, N>(simd, pixel, &patch, &matrices.per_tap);
            epilogue.finish(pixel);
        }
    }

    /// Every large pixel of the row: the small pixels that reach it, times their taps' matrices.
    #[inline(always)]
    fn large_row<S: Simd>(self, simd: S) {
        let (source, matrices, geometry, epilogue) =
            (self.source, self.matrices, self.geometry, self.epilogue);
        let (row_index, row) = (self.row_index, self.row);
        let (from, to) = (matrices.from, fixed::<N>(matrices.to));
        let [height, width] = geometry.small;
        let kernel = geometry.kernel;
        let (image, large_y) = (row_index / (2 * height), row_index % (2 * height));
        let (row_readers, row_count) = tap_readers(large_y, kernel, height);
        for (large_x, pixel) in row.chunks_exact_mut(to).enumerate() {
            epilogue.start(pixel);
            let (readers, count) = tap_readers(large_x, kernel, width);
            for &(y, ky) in &row_readers[..row_count] {
                for &(x, kx) in &readers[..count] {
                    let values = &source[geometry.small_index(image, y, x) * from..][..from];
                    let tap = (ky * kernel + kx) * matrices.len();
                    multiply_accumulate::<S, N>(
                        simd,
                        pixel,
                        values,
                        &matrices.per_tap[tap..tap + matrices.len()],
                    );
                }
            }
            epilogue.finish(pixel);
        }
    }
}

/// The first whole blocks of `PIXELS` small pixels of a row of [`gather_small`], `V` SIMD
/// vectors of output channels each: every row of the tap matrices is loaded once for the
/// block, and the block's sums stay in registers. Returns the pixels done.
#[inline(always)]
fn small_blocks<S: Simd, const V: usize, const PIXELS: usize>(
    simd: S,
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    [image, y]: [usize; 2],
    large: &[f32],
    row: &mut [f32],
) -> usize {
    let from = matrices.from;
    let to = matrices.to;
    let patch_len = geometry.taps() * from;
    let width = geometry.small[1];
    let (matrix, _) = S::as_simd_f32s(&matrices.per_tap);
    let (matrix, _) = matrix.as_chunks::<V>();
    let matrix = &matrix[..patch_len.min(matrix.len())];
    let mut patches = vec![0.0; PIXELS * patch_len];
    let mut x = 0;
    while x + PIXELS <= width {
        for (p, patch) in patches.chunks_exact_mut(patch_len).enumerate() {
            geometry.fill_patch(large, from, [image, y, x + p], patch);
        }
        let block = &mut row[x * to..(x + PIXELS) * to];
        for pixel in block.chunks_exact_mut(to) {
            epilogue.start(pixel);
        }
        {
            let (sums, _) = S::as_mut_simd_f32s(block);
            let (sums, _) = sums.as_chunks_mut::<V>();
            let windows: [&[f32]; PIXELS] =
                std::array::from_fn(|p| &patches[p * patch_len..][..matrix.len()]);
            let mut accumulators: [[S::f32s; V]; PIXELS] = std::array::from_fn(|p| {
                if epilogue.bias.is_some() {
                    sums[p]
                } else {
                    [simd.splat_f32s(0.0); V]
                }
            });
            for (k, weights) in matrix.iter().enumerate() {
                for (p, window) in windows.iter().enumerate() {
                    let value = simd.splat_f32s(window[k]);
                    for v in 0..V {
                        accumulators[p][v] =
                            simd.mul_add_e_f32s(value, weights[v], accumulators[p][v]);
                    }
                }
            }
            for (sum, accumulator) in sums.iter_mut().zip(accumulators) {
                *sum = accumulator;
            }
        }
        for pixel in block.chunks_exact_mut(to) {
            epilogue.finish(pixel);
        }
        x += PIXELS;
    }
    x
}

/// Every large pixel sums, over the (at most four) small pixels whose taps reach it, the small
/// pixel (`matrices.from` values) times the tap's matrix, into `large` (`[pixels,
/// matrices.to]`, zero).
pub(super) fn gather_large(
    small: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    large: &mut [f32],
) {
    if matrices.to <= FEW_CHANNELS {
        gather_large_by_contributions(small, matrices, geometry, epilogue, large);
        return;
    }
    for_channels!(
        matrices.to,
        gather_rows(
            small,
            matrices,
            geometry,
            epilogue,
            Direction::IntoLarge,
            large
        )
    );
}

/// Every small pixel's contributions to all its taps, kept between calls so the buffer's pages
/// are not faulted in again on every training step.
static CONTRIBUTIONS: std::sync::Mutex<Vec<f32>> = std::sync::Mutex::new(Vec::new());

/// [`gather_large`] with few output channels: a pixel's sums would be a few lanes of a vector.
/// Instead every small pixel's contributions to all its taps, `[taps · to]` values, are one
/// product with the `[from, taps · to]` kernel (whole vectors), computed once. Every large
/// row then adds, for each of the (at most two) small rows that reach it, each small pixel's
/// contributions under that kernel row: one run of consecutive values onto consecutive large
/// pixels, no per-pixel search for the taps.
fn gather_large_by_contributions(
    small: &[f32],
    matrices: &TapMatrices,
    geometry: Stride2,
    epilogue: Epilogue<'_>,
    large: &mut [f32],
) {
    let (from, to, taps) = (matrices.from, matrices.to, geometry.taps());
    let stride = taps * to;
    let kernel = swap_outer(&matrices.per_tap, [taps, from, to]);
    let mut contributions = CONTRIBUTIONS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    contributions.resize(geometry.small_pixels() * stride, 0.0);
    let small_row = geometry.small[1];
    contributions
        .par_chunks_mut(small_row * stride)
        .zip(small.par_chunks(small_row * from))
        .for_each(|(contributions, pixels)| {
            geometry.arch.dispatch(Contributions {
                pixels,
                kernel: &kernel,
                from,
                contributions,
            })
        });
    let contributions = &contributions[..];
    let [height, width] = geometry.small;
    let kernel_side = geometry.kernel;
    large
        .par_chunks_mut(2 * width * to)
        .enumerate()
        .with_min_len(32)
        .for_each_init(Vec::new, |padded, (row_index, row)| {
            let (image, large_y) = (row_index / (2 * height), row_index % (2 * height));
            let (row_readers, row_count) = tap_readers(large_y, kernel_side, height);
            // The large row with one pixel of margin on each side: small pixel x's taps of
            // one kernel row reach large pixels 2x − 1 ..= 2x + side − 2, `side · to`
            // consecutive values, its contributions for that kernel row as they lie.
            padded.clear();
            padded.resize((2 * width + 2) * to, 0.0);
            for &(y, ky) in &row_readers[..row_count] {
                let first = geometry.small_index(image, y, 0) * stride + ky * kernel_side * to;
                for x in 0..width {
                    let from = &contributions[first + x * stride..][..kernel_side * to];
                    for (sum, value) in padded[2 * x * to..][..kernel_side * to]
                        .iter_mut()
                        .zip(from)
                    {
                        *sum += value;
                    }
                }
            }
            for (pixel, sums) in row.chunks_exact_mut(to).zip(padded[to..].chunks_exact(to)) {
                epilogue.start(pixel);
                for (value, sum) in pixel.iter_mut().zip(sums) {
                    *value += sum;
                }
                epilogue.finish(pixel);
            }
        });
}

/// One row of small pixels' contributions, compiled for the instruction set it is dispatched
/// to.
struct Contributions<'a> {
    pixels: &'a [f32],
    /// `[from, taps · to]`.
    kernel: &'a [f32],
    from: usize,
    contributions: &'a mut [f32],
}

impl WithSimd for Contributions<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let stride = self.kernel.len() / self.from.max(1);
        for (pixel, out) in self
            .pixels
            .chunks_exact(self.from)
            .zip(self.contributions.chunks_exact_mut(stride))
        {
            out.fill(0.0);
            multiply_accumulate::<S, 0>(simd, out, pixel, self.kernel);
        }
    }
}
