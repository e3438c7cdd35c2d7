//! `autodidact bench images`: what bringing a real camera's image to the model's input costs
//! per frame (decode the encoding, centre-crop, area-average down to 64×64), on one thread.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use autodidact_nodes::image::{Fit, compressed_to_rgb8, to_rgb8};
use autodidact_nodes::msg::{CompressedImageMsg, ImageMsg};

use crate::row::{BenchRow, measure};

/// One camera image: `width × height` in `encoding`, with varied pixel values.
fn camera_image(encoding: &str, bytes_per_pixel: u32, width: u32, height: u32) -> ImageMsg {
    let step = width * bytes_per_pixel;
    let data: Vec<u8> = (0..step as usize * height as usize)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    ImageMsg {
        stamp_ns: 1,
        width,
        height,
        encoding: encoding.to_owned(),
        is_bigendian: false,
        step,
        data: Arc::from(data),
        frame_id: "camera".to_owned(),
    }
}

/// A smooth scene (what a camera sees compresses like this, unlike noise) of `width × height`
/// as rgb8.
pub fn smooth_scene(width: u32, height: u32, shift: f32) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (x, y) = (x as f32 + shift, y as f32);
            rgb.extend([
                (128.0 + 100.0 * (x / 71.0).sin()) as u8,
                (128.0 + 100.0 * (y / 53.0).cos()) as u8,
                (128.0 + 90.0 * ((x + y) / 97.0).sin()) as u8,
            ]);
        }
    }
    rgb
}

/// The scene as a JPEG (quality 90, as image_transport's default is 95) or PNG
/// CompressedImage.
pub fn compressed_scene(
    format: &str,
    width: u32,
    height: u32,
    shift: f32,
) -> Result<CompressedImageMsg> {
    let rgb = smooth_scene(width, height, shift);
    let mut data = Vec::new();
    match format {
        "jpeg" => image::codecs::jpeg::JpegEncoder::new_with_quality(&mut data, 90).encode(
            &rgb,
            width,
            height,
            image::ExtendedColorType::Rgb8,
        )?,
        _ => image::RgbImage::from_raw(width, height, rgb)
            .ok_or_else(|| anyhow::anyhow!("scene size"))?
            .write_to(
                &mut std::io::Cursor::new(&mut data),
                image::ImageFormat::Png,
            )?,
    }
    Ok(CompressedImageMsg {
        stamp_ns: 1,
        format: format.to_owned(),
        data: Arc::from(data),
        frame_id: "camera".to_owned(),
    })
}

/// Per-frame cost of image → 64×64 model input for the resolutions and encodings cameras
/// publish, each case measured for `budget_per_case`.
pub fn bench_images(budget_per_case: Duration) -> Result<Vec<BenchRow>> {
    let cases = [
        ("rgb8", 3, 640, 480, Fit::Crop),
        ("rgb8", 3, 1280, 720, Fit::Crop),
        ("bgr8", 3, 1280, 720, Fit::Stretch),
        ("rgb8", 3, 1280, 720, Fit::Pad),
        ("yuv422_yuy2", 2, 640, 480, Fit::Crop),
        ("bayer_rggb8", 1, 1280, 720, Fit::Crop),
        ("mono16", 2, 640, 480, Fit::Crop),
        ("rgb8", 3, 64, 64, Fit::Crop),
    ];
    let mut rows = Vec::with_capacity(cases.len());
    for (encoding, bytes, width, height, fit) in cases {
        let image = camera_image(encoding, bytes, width, height);
        let how = match fit {
            Fit::Crop => "crop",
            Fit::Stretch => "stretch",
            Fit::Pad => "pad",
        };
        let mut failed = None;
        let row = measure(
            &format!("{encoding} {width}x{height} → 64x64 ({how})"),
            budget_per_case,
            || {
                if let Err(reason) = to_rgb8(&image, 64, 64, fit) {
                    failed = Some(reason);
                }
            },
        );
        if let Some(reason) = failed {
            anyhow::bail!("{}: refused as {reason:?}", row.case);
        }
        rows.push(row);
    }
    // Compressed: JPEG decoded at reduced scale (the default), and whole for comparison.
    let compressed = [
        ("jpeg", 640, 480, 64),
        ("jpeg", 640, 480, 0),
        ("jpeg", 1280, 720, 64),
        ("jpeg", 1280, 720, 0),
        ("png", 640, 480, 64),
    ];
    for (format, width, height, side) in compressed {
        let image = compressed_scene(format, width, height, 0.0)?;
        let (case, out_w, out_h) = if side == 0 {
            (
                format!("{format} {width}x{height} decoded whole (for comparison)"),
                width,
                height,
            )
        } else {
            (
                format!(
                    "{format} {width}x{height} → 64x64 (crop{})",
                    if format == "jpeg" {
                        ", scaled decode"
                    } else {
                        ""
                    }
                ),
                side,
                side,
            )
        };
        let mut failed = None;
        let row = measure(&case, budget_per_case, || {
            if let Err(reason) = compressed_to_rgb8(&image, out_w, out_h, Fit::Crop) {
                failed = Some(reason);
            }
        });
        if let Some(reason) = failed {
            anyhow::bail!("{}: refused as {reason:?}", row.case);
        }
        rows.push(row);
    }
    // The other JPEG decoder in the tree (zune-jpeg, through the image crate; no scaled
    // decoding): the whole frame, for comparison.
    for (width, height) in [(640, 480), (1280, 720)] {
        let image = compressed_scene("jpeg", width, height, 0.0)?;
        let mut failed = None;
        let row = measure(
            &format!("jpeg {width}x{height} decoded whole by zune-jpeg (for comparison)"),
            budget_per_case,
            || {
                if let Err(error) =
                    image::load_from_memory_with_format(&image.data, image::ImageFormat::Jpeg)
                {
                    failed = Some(error.to_string());
                }
            },
        );
        if let Some(error) = failed {
            anyhow::bail!("{}: {error}", row.case);
        }
        rows.push(row);
    }
    Ok(rows)
}
