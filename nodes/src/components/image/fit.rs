//! An `rgb8` image of any size → the model's input size, by area averaging (a box filter over
//! the source pixels each output pixel covers), after cropping to the model's aspect ratio,
//! stretching, or padding. The resampling is fast_image_resize's (SIMD where the CPU has it).

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};

use super::decode::Rgb;
use crate::components::stats::DropReason;

/// How an image of another aspect ratio is brought to the model's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Cut the centre to the model's aspect ratio, then resize (nothing is distorted; the
    /// edges of a wider image are left out).
    #[default]
    Crop,
    /// Resize to the model's size whatever the aspect ratio (everything is kept, distorted).
    Stretch,
    /// Resize to fit inside, keeping the aspect ratio, and fill the rest with black.
    Pad,
}

/// `image` as `width × height` rgb8 (the same bytes when it already has that size).
pub fn fit(image: Rgb, width: u32, height: u32, how: Fit) -> Result<Vec<u8>, DropReason> {
    if (image.width, image.height) == (width, height) {
        return Ok(image.data);
    }
    let source = ImageRef::new(image.width, image.height, &image.data, PixelType::U8x3)
        .map_err(|_| DropReason::BadImageStep)?;
    let area = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
    let mut resizer = Resizer::new();
    let resize = |resizer: &mut Resizer, options: &ResizeOptions, w: u32, h: u32| {
        let mut target = Image::new(w, h, PixelType::U8x3);
        resizer
            .resize(&source, &mut target, options)
            .map(|()| target.into_vec())
            .map_err(|_| DropReason::BadImageStep)
    };
    match how {
        Fit::Crop => resize(
            &mut resizer,
            &area.fit_into_destination(Some((0.5, 0.5))),
            width,
            height,
        ),
        Fit::Stretch => resize(&mut resizer, &area, width, height),
        Fit::Pad => {
            // The largest size of the image's aspect ratio inside width × height.
            let (iw, ih) = (u64::from(image.width), u64::from(image.height));
            let (w, h) = if iw * u64::from(height) >= ih * u64::from(width) {
                (
                    width,
                    ((ih * u64::from(width) + iw / 2) / iw).clamp(1, u64::from(height)) as u32,
                )
            } else {
                (
                    ((iw * u64::from(height) + ih / 2) / ih).clamp(1, u64::from(width)) as u32,
                    height,
                )
            };
            let inner = resize(&mut resizer, &area, w, h)?;
            let (left, top) = (((width - w) / 2) as usize, ((height - h) / 2) as usize);
            let mut padded = vec![0u8; width as usize * height as usize * 3];
            for (row, pixels) in inner.chunks_exact(w as usize * 3).enumerate() {
                let start = ((top + row) * width as usize + left) * 3;
                padded[start..start + pixels.len()].copy_from_slice(pixels);
            }
            Ok(padded)
        }
    }
}
