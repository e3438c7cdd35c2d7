//! sensor_msgs/CompressedImage → `rgb8`: JPEG and PNG, as image_transport's `compressed`
//! plugin writes them (`format` like `rgb8; jpeg compressed bgr8`, or just `jpeg` / `png`).
//!
//! A JPEG is decoded at 1/2, 1/4 or 1/8 of its size when that still covers the model's input
//! (the decoder's scaled IDCT: far less work than decoding everything and averaging it away).
//! Both decoders read the header first: an image claiming more than
//! [`MAX_SOURCE_PIXELS`](super::decode::MAX_SOURCE_PIXELS) is refused before anything is
//! allocated for it.

use std::io::Cursor;

use super::decode::{MAX_SOURCE_PIXELS, Rgb};
use crate::components::stats::DropReason;
use crate::msg::CompressedImageMsg;

/// Compressed formats the nodes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JPEG (baseline or progressive).
    Jpeg,
    /// PNG (any bit depth; 16 bits keep their high byte).
    Png,
}

impl Format {
    /// The format of a CompressedImage from its `format` string; an empty string is told by
    /// the data's magic bytes. Depth images (`compressedDepth`) are not camera images.
    pub fn of(format: &str, data: &[u8]) -> Option<Self> {
        let format = format.to_ascii_lowercase();
        if format.contains("compresseddepth") {
            return None;
        }
        if format.contains("jpeg") || format.contains("jpg") {
            return Some(Self::Jpeg);
        }
        if format.contains("png") {
            return Some(Self::Png);
        }
        if !format.trim().is_empty() {
            return None;
        }
        match data {
            [0xff, 0xd8, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', ..] => Some(Self::Png),
            _ => None,
        }
    }
}

/// Decodes `msg` to `rgb8`, at least `min_width × min_height` when the image is that large
/// (a JPEG is decoded at the smallest of 1, 1/2, 1/4, 1/8 of its size that covers it).
pub fn decode_compressed(
    msg: &CompressedImageMsg,
    min_width: u32,
    min_height: u32,
) -> Result<Rgb, DropReason> {
    if msg.data.is_empty() {
        return Err(DropReason::EmptyImage);
    }
    match Format::of(&msg.format, &msg.data).ok_or(DropReason::UnsupportedFormat)? {
        Format::Jpeg => jpeg(&msg.data, min_width, min_height),
        Format::Png => png(&msg.data),
    }
}

fn too_large(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) > MAX_SOURCE_PIXELS
}

fn jpeg(data: &[u8], min_width: u32, min_height: u32) -> Result<Rgb, DropReason> {
    let mut decoder = jpeg_decoder::Decoder::new(data);
    decoder
        .read_info()
        .map_err(|_| DropReason::UndecodableImage)?;
    let info = decoder.info().ok_or(DropReason::UndecodableImage)?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width == 0 || height == 0 {
        return Err(DropReason::EmptyImage);
    }
    if too_large(width, height) {
        return Err(DropReason::UndecodableImage);
    }
    decoder.set_max_decoding_buffer_size(MAX_SOURCE_PIXELS as usize * 4);
    // The decoder takes the smallest scale that reaches the request in *either* axis; asking
    // for a width that implies the height too makes it cover both.
    let covering_width = u64::from(min_width)
        .max((u64::from(min_height) * u64::from(width)).div_ceil(u64::from(height)));
    let requested_width = covering_width.clamp(1, u64::from(width)) as u16;
    let (out_width, out_height) = decoder
        .scale(requested_width, u16::MAX)
        .map_err(|_| DropReason::UndecodableImage)?;
    let pixels = decoder.decode().map_err(|_| DropReason::UndecodableImage)?;
    let (w, h) = (u32::from(out_width), u32::from(out_height));
    let count = w as usize * h as usize;
    let data = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&g| [g, g, g]).collect(),
        // Big-endian 16-bit grey: the high byte.
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|g| [g[0], g[0], g[0]])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => return Err(DropReason::UnsupportedFormat),
    };
    if data.len() != count * 3 {
        return Err(DropReason::UndecodableImage);
    }
    Ok(Rgb {
        width: w,
        height: h,
        data,
    })
}

fn png(data: &[u8]) -> Result<Rgb, DropReason> {
    let mut reader = image::ImageReader::with_format(Cursor::new(data), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(MAX_SOURCE_PIXELS * 8);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|_| DropReason::UndecodableImage)?;
    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(DropReason::EmptyImage);
    }
    if too_large(width, height) {
        return Err(DropReason::UndecodableImage);
    }
    Ok(Rgb {
        width,
        height,
        data: decoded.into_rgb8().into_raw(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn msg(format: &str, data: Vec<u8>) -> CompressedImageMsg {
        CompressedImageMsg {
            stamp_ns: 1,
            format: format.into(),
            data: Arc::from(data),
            frame_id: "camera".into(),
        }
    }

    fn png_bytes(width: u32, height: u32) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut out = Vec::new();
        image::RgbImage::from_raw(width, height, pixels)
            .expect("image")
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn formats_are_told_by_image_transport_s_strings_or_the_magic_bytes() {
        assert_eq!(
            Format::of("rgb8; jpeg compressed bgr8", &[]),
            Some(Format::Jpeg)
        );
        assert_eq!(
            Format::of("bgr8; png compressed bgr8", &[]),
            Some(Format::Png)
        );
        assert_eq!(Format::of("JPEG", &[]), Some(Format::Jpeg));
        assert_eq!(Format::of("", &[0xff, 0xd8, 0xff]), Some(Format::Jpeg));
        assert_eq!(Format::of("", b"\x89PNG\r\n"), Some(Format::Png));
        assert_eq!(Format::of("16UC1; compressedDepth png", &[]), None);
        assert_eq!(Format::of("tiff", &[]), None);
        assert_eq!(Format::of("", &[1, 2, 3]), None);
    }

    #[test]
    fn a_png_decodes_to_its_pixels() {
        let rgb = decode_compressed(&msg("png", png_bytes(5, 3)), 5, 3).expect("decodes");
        assert_eq!((rgb.width, rgb.height), (5, 3));
        assert_eq!(rgb.data[..6], [0, 7, 14, 21, 28, 35]);
    }

    #[test]
    fn garbage_cut_and_bomb_images_are_refused_by_reason_without_allocating() {
        let garbage = decode_compressed(&msg("jpeg", vec![0xff, 0xd8, 1, 2, 3, 4]), 64, 64);
        assert_eq!(garbage.err(), Some(DropReason::UndecodableImage));
        let mut png = png_bytes(16, 16);
        png.truncate(png.len() / 2);
        assert_eq!(
            decode_compressed(&msg("png", png), 64, 64).err(),
            Some(DropReason::UndecodableImage)
        );
        // A JPEG header claiming 60000 × 60000 pixels over a few bytes.
        let mut bomb = vec![0xff, 0xd8];
        bomb.extend([0xff, 0xdb, 0x00, 0x43, 0x00]);
        bomb.extend([1u8; 64]);
        bomb.extend([
            0xff, 0xc0, 0x00, 0x0b, 0x08, 0xea, 0x60, 0xea, 0x60, 0x01, 0x01, 0x11, 0x00,
        ]);
        bomb.extend([0xff, 0xd9]);
        assert_eq!(
            decode_compressed(&msg("jpeg", bomb), 64, 64).err(),
            Some(DropReason::UndecodableImage)
        );
        // A PNG header claiming 100000 × 100000 pixels.
        let mut png_bomb = png_bytes(1, 1);
        png_bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png_bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(
            decode_compressed(&msg("png", png_bomb), 64, 64).err(),
            Some(DropReason::UndecodableImage)
        );
        assert_eq!(
            decode_compressed(&msg("tiff", vec![1, 2]), 64, 64).err(),
            Some(DropReason::UnsupportedFormat)
        );
        assert_eq!(
            decode_compressed(&msg("jpeg", Vec::new()), 64, 64).err(),
            Some(DropReason::EmptyImage)
        );
    }
}
