//! The CPU's own convolution kernels, private to the crate. On burn's CPU backend (flex) the
//! encoder's and decoder's convolutions do not run burn's convolution; they run these:
//!
//! - [`conv`]: the convolution modules ([`conv::StridedConv`], [`conv::UpConv`]), whose kernels
//!   are kept as GEMM matrices, drawn as burn's modules draw theirs;
//! - [`row_conv`]: the training convolutions as burn backend operations on channels-last rows,
//!   with hand-written backward passes;
//! - [`direct`]: the whole encoder stack as forward-only kernels on host buffers (the EMA
//!   target's encodes and inference).
//!
//! Which path a device takes is decided here, by [`ConvLayout::of`], and nowhere else; GPU
//! backends keep burn's own convolution kernels.

pub(crate) mod conv;
pub(crate) mod direct;
pub(crate) mod row_conv;

use burn::prelude::*;

/// The layout a device's convolutions compute in. [`ConvLayout::of`] is the one place that
/// decides which path a device takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConvLayout {
    /// burn's CPU backend (flex): channels-last rows `[B·H·W, C]`, through [`row_conv`]'s
    /// operations (with gradients) and [`direct`]'s kernels (without).
    Rows,
    /// GPU backends: NCHW, through burn's own convolution kernels.
    Nchw,
}

impl ConvLayout {
    /// The layout of `device`'s convolutions.
    pub(crate) fn of(device: &Device) -> Self {
        if *device == Device::flex() {
            Self::Rows
        } else {
            Self::Nchw
        }
    }
}

/// Whether `device` runs this crate's CPU kernels ([`ConvLayout::Rows`]).
pub(crate) fn cpu_kernels_on(device: &Device) -> bool {
    ConvLayout::of(device) == ConvLayout::Rows
}

/// Images in either layout, turned into the one a path needs.
pub(crate) enum Pixels {
    /// `[B, C, H, W]`.
    Nchw(Tensor<4>),
    /// Channels-last rows, `[B·H·W, C]`.
    Rows(Tensor<2>),
}

impl Pixels {
    /// The device the pixels are on.
    pub(crate) fn device(&self) -> Device {
        match self {
            Self::Nchw(images) => images.device(),
            Self::Rows(rows) => rows.device(),
        }
    }

    /// As channels-last rows.
    pub(crate) fn into_rows(self) -> Tensor<2> {
        match self {
            Self::Nchw(images) => to_rows(images),
            Self::Rows(rows) => rows,
        }
    }

    /// As NCHW images of `[batch, height, width]`.
    pub(crate) fn into_nchw(self, dims: [usize; 3]) -> Tensor<4> {
        match self {
            Self::Nchw(images) => images,
            Self::Rows(rows) => from_rows(rows, dims),
        }
    }
}

/// NCHW images to channels-last rows.
///
/// # Shapes
/// - `images`: `[B, C, H, W]`
/// - output: `[B·H·W, C]`
pub(crate) fn to_rows(images: Tensor<4>) -> Tensor<2> {
    let [batch, channels, height, width] = images.dims();
    images
        .permute([0, 2, 3, 1])
        .reshape([batch * height * width, channels])
}

/// Channels-last rows back to NCHW.
///
/// # Shapes
/// - `rows`: `[B·H·W, C]`
/// - output: `[B, C, H, W]`
pub(crate) fn from_rows(rows: Tensor<2>, [batch, height, width]: [usize; 3]) -> Tensor<4> {
    let [_, channels] = rows.dims();
    rows.reshape([batch, height, width, channels])
        .permute([0, 3, 1, 2])
}
