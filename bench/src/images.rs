//! `autodidact bench images`: what bringing a real camera's image to the model's input costs
//! per frame (decode the encoding, centre-crop, area-average down to 64×64), on one thread.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use autodidact_nodes::image::{Fit, to_rgb8};
use autodidact_nodes::msg::ImageMsg;

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
    Ok(rows)
}
