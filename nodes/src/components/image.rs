//! sensor_msgs/Image → tightly packed `rgb8`, honouring `step` (row padding) and the channel
//! order of each encoding.

use crate::components::stats::DropReason;
use crate::msg::ImageMsg;

/// Pixel layouts the nodes accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// R, G, B.
    Rgb8,
    /// B, G, R.
    Bgr8,
    /// R, G, B, A.
    Rgba8,
    /// B, G, R, A.
    Bgra8,
    /// Grey.
    Mono8,
}

impl Encoding {
    /// Parses a ROS encoding name.
    pub fn from_ros(name: &str) -> Option<Self> {
        match name {
            "rgb8" => Some(Self::Rgb8),
            "bgr8" => Some(Self::Bgr8),
            "rgba8" => Some(Self::Rgba8),
            "bgra8" => Some(Self::Bgra8),
            "mono8" | "8UC1" => Some(Self::Mono8),
            _ => None,
        }
    }

    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
            Self::Mono8 => 1,
        }
    }
}

/// Converts `msg` to packed `rgb8` of exactly `width × height`, or says why it cannot.
pub fn to_rgb8(msg: &ImageMsg, width: u32, height: u32) -> Result<Vec<u8>, DropReason> {
    if msg.width == 0 || msg.height == 0 || msg.data.is_empty() {
        return Err(DropReason::EmptyImage);
    }
    let encoding = Encoding::from_ros(&msg.encoding).ok_or(DropReason::UnknownEncoding)?;
    if msg.width != width || msg.height != height {
        return Err(DropReason::WrongImageSize);
    }
    let (w, h) = (msg.width as usize, msg.height as usize);
    let row_bytes = w * encoding.channels();
    let step = msg.step as usize;
    if step < row_bytes || msg.data.len() < step * (h - 1) + row_bytes {
        return Err(DropReason::BadImageStep);
    }
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in msg.data.chunks(step).take(h) {
        let row = &row[..row_bytes];
        match encoding {
            Encoding::Rgb8 => rgb.extend_from_slice(row),
            Encoding::Bgr8 => row
                .chunks_exact(3)
                .for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]])),
            Encoding::Rgba8 => row
                .chunks_exact(4)
                .for_each(|p| rgb.extend_from_slice(&p[..3])),
            Encoding::Bgra8 => row
                .chunks_exact(4)
                .for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]])),
            Encoding::Mono8 => row.iter().for_each(|v| rgb.extend_from_slice(&[*v; 3])),
        }
    }
    Ok(rgb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(encoding: &str, width: u32, height: u32, step: u32, data: Vec<u8>) -> ImageMsg {
        ImageMsg {
            stamp_ns: 1,
            width,
            height,
            encoding: encoding.into(),
            is_bigendian: false,
            step,
            data: data.into(),
            frame_id: String::new(),
        }
    }

    #[test]
    fn every_encoding_with_row_padding_becomes_the_same_rgb() {
        // 2×2 image: red, green / blue, white; rows padded by 3 bytes.
        let rgb = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
        let expected: Vec<u8> = rgb.concat();
        let pad = [7u8; 3];
        let build = |channels: usize, pixel: &dyn Fn([u8; 3]) -> Vec<u8>| {
            let mut data = Vec::new();
            for row in rgb.chunks(2) {
                for p in row {
                    data.extend(pixel(*p));
                }
                data.extend_from_slice(&pad);
            }
            (data, (2 * channels + 3) as u32)
        };
        type Pixel = Box<dyn Fn([u8; 3]) -> Vec<u8>>;
        let cases: Vec<(&str, usize, Pixel)> = vec![
            ("rgb8", 3, Box::new(|p| p.to_vec())),
            ("bgr8", 3, Box::new(|p| vec![p[2], p[1], p[0]])),
            ("rgba8", 4, Box::new(|p| vec![p[0], p[1], p[2], 9])),
            ("bgra8", 4, Box::new(|p| vec![p[2], p[1], p[0], 9])),
        ];
        for (name, channels, pixel) in cases {
            let (data, step) = build(channels, &*pixel);
            assert_eq!(
                to_rgb8(&msg(name, 2, 2, step, data), 2, 2),
                Ok(expected.clone()),
                "{name}"
            );
        }
        let mono = to_rgb8(&msg("mono8", 2, 1, 4, vec![10, 20, 0, 0]), 2, 1);
        assert_eq!(mono, Ok(vec![10, 10, 10, 20, 20, 20]));
    }

    #[test]
    fn malformed_images_name_their_fault() {
        let ok = vec![0u8; 12];
        assert_eq!(
            to_rgb8(&msg("yuv422", 2, 2, 6, ok.clone()), 2, 2),
            Err(DropReason::UnknownEncoding)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 6, ok.clone()), 4, 4),
            Err(DropReason::WrongImageSize)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 5, ok.clone()), 2, 2),
            Err(DropReason::BadImageStep)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 6, vec![0; 11]), 2, 2),
            Err(DropReason::BadImageStep)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 6, Vec::new()), 2, 2),
            Err(DropReason::EmptyImage)
        );
    }
}
