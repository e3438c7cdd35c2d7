//! Camera images → the model's input: every encoding a ROS camera driver publishes
//! ([`decode`]), at any resolution, brought to the model's size by area averaging after a
//! centre crop, a stretch or padding ([`fit`]).

mod compressed;
pub(crate) mod decode;
mod fit;

pub use compressed::Format;
use compressed::decode_compressed;
use decode::decode;
pub use fit::Fit;
use fit::fit;

use crate::components::stats::DropReason;
use crate::msg::{CompressedImageMsg, ImageMsg};

/// Converts `msg` to packed `rgb8` of exactly `width × height` (fitted as `how` says), or says
/// why it cannot.
pub fn to_rgb8(msg: &ImageMsg, width: u32, height: u32, how: Fit) -> Result<Vec<u8>, DropReason> {
    fit(decode(msg)?, width, height, how)
}

/// Decodes a compressed `msg` (JPEG or PNG) to packed `rgb8` of exactly `width × height`
/// (fitted as `how` says), or says why it cannot. A JPEG larger than the model's input is
/// decoded at reduced scale, as small as still covers `width × height`.
pub fn compressed_to_rgb8(
    msg: &CompressedImageMsg,
    width: u32,
    height: u32,
    how: Fit,
) -> Result<Vec<u8>, DropReason> {
    fit(decode_compressed(msg, width, height)?, width, height, how)
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
                to_rgb8(&msg(name, 2, 2, step, data), 2, 2, Fit::Crop),
                Ok(expected.clone()),
                "{name}"
            );
        }
        let mono = to_rgb8(&msg("mono8", 2, 1, 4, vec![10, 20, 0, 0]), 2, 1, Fit::Crop);
        assert_eq!(mono, Ok(vec![10, 10, 10, 20, 20, 20]));
    }

    #[test]
    fn malformed_images_name_their_fault() {
        let ok = vec![0u8; 12];
        assert_eq!(
            to_rgb8(&msg("32FC1", 2, 2, 8, vec![0; 16]), 2, 2, Fit::Crop),
            Err(DropReason::UnknownEncoding)
        );
        assert_eq!(
            to_rgb8(
                &msg("rgb8", 100_000, 100_000, 6, ok.clone()),
                4,
                4,
                Fit::Crop
            ),
            Err(DropReason::WrongImageSize),
            "a header claiming 1e10 pixels is refused before anything is allocated"
        );
        assert_eq!(
            to_rgb8(&msg("yuv422", 3, 1, 6, vec![0; 6]), 3, 1, Fit::Crop),
            Err(DropReason::BadImageStep),
            "4:2:2 needs an even width"
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 5, ok.clone()), 2, 2, Fit::Crop),
            Err(DropReason::BadImageStep)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 6, vec![0; 11]), 2, 2, Fit::Crop),
            Err(DropReason::BadImageStep)
        );
        assert_eq!(
            to_rgb8(&msg("rgb8", 2, 2, 6, Vec::new()), 2, 2, Fit::Crop),
            Err(DropReason::EmptyImage)
        );
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    fn msg(encoding: &str, width: u32, height: u32, data: Vec<u8>, big_endian: bool) -> ImageMsg {
        let step = (data.len() / height as usize) as u32;
        ImageMsg {
            stamp_ns: 1,
            width,
            height,
            encoding: encoding.into(),
            is_bigendian: big_endian,
            step,
            data: data.into(),
            frame_id: String::new(),
        }
    }

    #[test]
    fn sixteen_bit_encodings_keep_the_high_byte_in_either_byte_order() {
        let little = msg("mono16", 2, 1, vec![0x34, 0x12, 0xff, 0x80], false);
        assert_eq!(
            decode(&little).expect("mono16").data,
            [0x12, 0x12, 0x12, 0x80, 0x80, 0x80]
        );
        let big = msg("mono16", 2, 1, vec![0x12, 0x34, 0x80, 0xff], true);
        assert_eq!(
            decode(&big).expect("mono16 be").data,
            [0x12, 0x12, 0x12, 0x80, 0x80, 0x80]
        );
        // rgb16 and bgr16: one pixel (red 0xA0, green 0xB0, blue 0xC0), little-endian.
        let rgb16 = msg("rgb16", 1, 1, vec![0, 0xa0, 0, 0xb0, 0, 0xc0], false);
        assert_eq!(decode(&rgb16).expect("rgb16").data, [0xa0, 0xb0, 0xc0]);
        let bgr16 = msg("bgr16", 1, 1, vec![0xc0, 0, 0xb0, 0, 0xa0, 0], true);
        assert_eq!(decode(&bgr16).expect("bgr16").data, [0xa0, 0xb0, 0xc0]);
    }

    #[test]
    fn yuv422_in_both_byte_orders_gives_the_colours_it_encodes() {
        // Grey (Y 126, no chroma) and a saturated red (BT.601: Y 81, U 90, V 240).
        let uyvy = msg("yuv422", 2, 1, vec![128, 126, 128, 126], false);
        let grey = decode(&uyvy).expect("uyvy").data;
        assert!(grey.iter().all(|v| v.abs_diff(128) <= 1), "{grey:?}");
        let yuyv = msg("yuv422_yuy2", 2, 1, vec![81, 90, 81, 240], false);
        let red = decode(&yuyv).expect("yuyv").data;
        assert!(red[0] > 230 && red[1] < 20 && red[2] < 20, "{red:?}");
        assert_eq!(red[..3], red[3..]);
    }

    #[test]
    fn each_bayer_pattern_gives_the_colour_of_its_cell() {
        // One 2×2 cell: red 200, greens 100 and 110, blue 50, placed as each pattern says.
        let cells = [
            ("bayer_rggb8", [200, 100, 110, 50]),
            ("bayer_bggr8", [50, 100, 110, 200]),
            ("bayer_gbrg8", [100, 50, 200, 110]),
            ("bayer_grbg8", [100, 200, 50, 110]),
        ];
        for (name, cell) in cells {
            let image = decode(&msg(name, 2, 2, cell.to_vec(), false)).expect(name);
            assert_eq!((image.width, image.height), (1, 1), "{name}");
            assert_eq!(image.data, [200, 105, 50], "{name}");
        }
    }

    #[test]
    fn any_resolution_is_brought_to_the_model_size_by_crop_stretch_or_pad() {
        // 8×4: the left half red, the right half blue; to 2×2.
        let mut data = Vec::new();
        for _ in 0..4 {
            for x in 0..8 {
                data.extend_from_slice(if x < 4 { &[255, 0, 0] } else { &[0, 0, 255] });
            }
        }
        let wide = msg("rgb8", 8, 4, data, false);
        // Crop keeps the centre 4×4: one red and one blue column.
        let crop = to_rgb8(&wide, 2, 2, Fit::Crop).expect("crop");
        assert_eq!(crop, [255, 0, 0, 0, 0, 255, 255, 0, 0, 0, 0, 255]);
        let stretch = to_rgb8(&wide, 2, 2, Fit::Stretch).expect("stretch");
        assert_eq!(stretch, crop, "halves stay halves");
        // Pad: the 2:1 picture becomes 2×1 in a 2×2 (centred, rounding down: the top row) and
        // the other row is black.
        let pad = to_rgb8(&wide, 2, 2, Fit::Pad).expect("pad");
        assert_eq!(pad[..6], [255, 0, 0, 0, 0, 255]);
        assert_eq!(pad[6..], [0; 6]);
        // Area averaging: a 2×2 checkerboard of 0 and 200 becomes one grey 100.
        let checker = msg("mono8", 2, 2, vec![0, 200, 200, 0], false);
        assert_eq!(
            to_rgb8(&checker, 1, 1, Fit::Stretch).expect("area"),
            [100, 100, 100]
        );
        // The model's own size passes through untouched.
        let exact = msg("rgb8", 2, 1, vec![1, 2, 3, 4, 5, 6], false);
        assert_eq!(
            to_rgb8(&exact, 2, 1, Fit::Crop).expect("exact"),
            [1, 2, 3, 4, 5, 6]
        );
    }
}
