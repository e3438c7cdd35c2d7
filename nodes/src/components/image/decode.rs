//! sensor_msgs/Image encodings → tightly packed `rgb8` at the source resolution, honouring `step`
//! (row padding) and `is_bigendian`. The names are those of ROS's `sensor_msgs/image_encodings`.

use crate::components::stats::DropReason;
use crate::msg::ImageMsg;

/// Largest image taken, in pixels (8192 × 8192): a header claiming more is refused before
/// anything is allocated for it.
pub const MAX_SOURCE_PIXELS: u64 = 8192 * 8192;

/// Which corner of each 2×2 Bayer cell holds which colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bayer {
    /// R G / G B.
    Rggb,
    /// B G / G R.
    Bggr,
    /// G B / R G.
    Gbrg,
    /// G R / B G.
    Grbg,
}

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
    /// Grey, 16 bits (the high byte is kept).
    Mono16,
    /// R, G, B, 16 bits each.
    Rgb16,
    /// B, G, R, 16 bits each.
    Bgr16,
    /// R, G, B, A, 16 bits each.
    Rgba16,
    /// B, G, R, A, 16 bits each.
    Bgra16,
    /// YUV 4:2:2 as U Y0 V Y1 (`yuv422`, UYVY).
    Uyvy,
    /// YUV 4:2:2 as Y0 U Y1 V (`yuv422_yuy2`, YUYV).
    Yuyv,
    /// A raw Bayer mosaic, 8 bits.
    Bayer8(Bayer),
}

impl Encoding {
    /// Parses a ROS encoding name.
    pub fn from_ros(name: &str) -> Option<Self> {
        Some(match name {
            "rgb8" | "8UC3" => Self::Rgb8,
            "bgr8" => Self::Bgr8,
            "rgba8" | "8UC4" => Self::Rgba8,
            "bgra8" => Self::Bgra8,
            "mono8" | "8UC1" => Self::Mono8,
            "mono16" | "16UC1" => Self::Mono16,
            "rgb16" | "16UC3" => Self::Rgb16,
            "bgr16" => Self::Bgr16,
            "rgba16" | "16UC4" => Self::Rgba16,
            "bgra16" => Self::Bgra16,
            "yuv422" | "uyvy" | "UYVY" => Self::Uyvy,
            "yuv422_yuy2" | "yuyv" | "YUYV" => Self::Yuyv,
            "bayer_rggb8" => Self::Bayer8(Bayer::Rggb),
            "bayer_bggr8" => Self::Bayer8(Bayer::Bggr),
            "bayer_gbrg8" => Self::Bayer8(Bayer::Gbrg),
            "bayer_grbg8" => Self::Bayer8(Bayer::Grbg),
            _ => return None,
        })
    }

    /// Bytes per pixel.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Mono8 | Self::Bayer8(_) => 1,
            Self::Mono16 | Self::Uyvy | Self::Yuyv => 2,
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
            Self::Rgb16 | Self::Bgr16 => 6,
            Self::Rgba16 | Self::Bgra16 => 8,
        }
    }
}

/// An `rgb8` image at some resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `height × width × 3` bytes.
    pub data: Vec<u8>,
}

/// Decodes `msg` to `rgb8` at its own resolution (half of it for a Bayer mosaic: each 2×2 cell
/// becomes one pixel), or says why it cannot.
pub fn decode(msg: &ImageMsg) -> Result<Rgb, DropReason> {
    if msg.width == 0 || msg.height == 0 || msg.data.is_empty() {
        return Err(DropReason::EmptyImage);
    }
    let encoding = Encoding::from_ros(&msg.encoding).ok_or(DropReason::UnknownEncoding)?;
    if u64::from(msg.width) * u64::from(msg.height) > MAX_SOURCE_PIXELS {
        return Err(DropReason::WrongImageSize);
    }
    let (w, h) = (msg.width as usize, msg.height as usize);
    let row_bytes = w * encoding.bytes_per_pixel();
    let step = msg.step as usize;
    let needed = step
        .checked_mul(h - 1)
        .and_then(|rows| rows.checked_add(row_bytes));
    if step < row_bytes || needed.is_none_or(|needed| msg.data.len() < needed) {
        return Err(DropReason::BadImageStep);
    }
    let rows = || msg.data.chunks(step).take(h).map(|row| &row[..row_bytes]);
    // The byte of a 16-bit value that holds its high bits.
    let high = usize::from(!msg.is_bigendian);
    let mut rgb = Vec::with_capacity(w * h * 3);
    match encoding {
        Encoding::Rgb8 => rows().for_each(|row| rgb.extend_from_slice(row)),
        Encoding::Bgr8 => rows().for_each(|row| {
            row.chunks_exact(3)
                .for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]]))
        }),
        Encoding::Rgba8 => rows().for_each(|row| {
            row.chunks_exact(4)
                .for_each(|p| rgb.extend_from_slice(&p[..3]))
        }),
        Encoding::Bgra8 => rows().for_each(|row| {
            row.chunks_exact(4)
                .for_each(|p| rgb.extend_from_slice(&[p[2], p[1], p[0]]))
        }),
        Encoding::Mono8 => {
            rows().for_each(|row| row.iter().for_each(|v| rgb.extend_from_slice(&[*v; 3])))
        }
        Encoding::Mono16 => rows().for_each(|row| {
            row.chunks_exact(2)
                .for_each(|v| rgb.extend_from_slice(&[v[high]; 3]))
        }),
        Encoding::Rgb16 | Encoding::Rgba16 | Encoding::Bgr16 | Encoding::Bgra16 => {
            let channels = encoding.bytes_per_pixel() / 2;
            let bgr = matches!(encoding, Encoding::Bgr16 | Encoding::Bgra16);
            rows().for_each(|row| {
                row.chunks_exact(2 * channels).for_each(|p| {
                    let c = |i: usize| p[2 * i + high];
                    let pixel = if bgr {
                        [c(2), c(1), c(0)]
                    } else {
                        [c(0), c(1), c(2)]
                    };
                    rgb.extend_from_slice(&pixel);
                })
            })
        }
        Encoding::Uyvy | Encoding::Yuyv => {
            if w % 2 != 0 {
                // 4:2:2 shares chroma between two pixels: an odd width is not a 4:2:2 image.
                return Err(DropReason::BadImageStep);
            }
            let uyvy = encoding == Encoding::Uyvy;
            rows().for_each(|row| {
                row.chunks_exact(4).for_each(|q| {
                    let (y0, u, y1, v) = if uyvy {
                        (q[1], q[0], q[3], q[2])
                    } else {
                        (q[0], q[1], q[2], q[3])
                    };
                    rgb.extend_from_slice(&yuv_to_rgb(y0, u, v));
                    rgb.extend_from_slice(&yuv_to_rgb(y1, u, v));
                })
            })
        }
        Encoding::Bayer8(pattern) => {
            if w < 2 || h < 2 {
                // Not one whole 2×2 cell.
                return Err(DropReason::WrongImageSize);
            }
            return Ok(demosaic(rows().collect(), pattern));
        }
    }
    Ok(Rgb {
        width: msg.width,
        height: msg.height,
        data: rgb,
    })
}

/// ITU-R BT.601 (studio range, as camera drivers publish it) to RGB.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let y = (f32::from(y) - 16.0) * 1.164;
    let (u, v) = (f32::from(u) - 128.0, f32::from(v) - 128.0);
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.596 * v),
        clamp(y - 0.392 * u - 0.813 * v),
        clamp(y + 2.017 * u),
    ]
}

/// One RGB pixel per 2×2 Bayer cell (red, the mean of the two greens, blue); an odd last row
/// or column is left out. The model sees a downsampled image anyway, so the cheapest correct
/// demosaic is the right one here.
fn demosaic(rows: Vec<&[u8]>, pattern: Bayer) -> Rgb {
    let (w, h) = (rows.first().map_or(0, |r| r.len()) / 2, rows.len() / 2);
    // Offsets of red and blue within a cell, as (row, column).
    let (red, blue) = match pattern {
        Bayer::Rggb => ((0, 0), (1, 1)),
        Bayer::Bggr => ((1, 1), (0, 0)),
        Bayer::Gbrg => ((1, 0), (0, 1)),
        Bayer::Grbg => ((0, 1), (1, 0)),
    };
    let mut data = Vec::with_capacity(w * h * 3);
    for cell_row in 0..h {
        let pair = [rows[2 * cell_row], rows[2 * cell_row + 1]];
        for cell in 0..w {
            let at = |(r, c): (usize, usize)| pair[r][2 * cell + c];
            // The greens are the two corners that are neither red nor blue.
            let green_a = at((red.0, 1 - red.1));
            let green_b = at((1 - red.0, red.1));
            let green = (u16::from(green_a) + u16::from(green_b)).div_ceil(2) as u8;
            data.extend_from_slice(&[at(red), green, at(blue)]);
        }
    }
    Rgb {
        width: w as u32,
        height: h as u32,
        data,
    }
}
