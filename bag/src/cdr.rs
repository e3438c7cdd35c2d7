//! CDR, the bytes of every message in a ROS 2 bag: a 4-byte encapsulation header (`00 01` plain
//! CDR little-endian, `00 00` big-endian, then two option bytes), then the fields in `.msg`
//! order, each aligned to its size counted from the end of the header.
//!
//! Through `cdr-encoding` (RustDDS's serde CDR): it reads from a slice and checks every length
//! against the bytes that are there before it takes them, so a length field claiming 4 GiB in a
//! 100-byte message is an error, not an allocation.

use byteorder::{BigEndian, LittleEndian};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a message's bytes are not the type they claim to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrError {
    /// Fewer than the 4 bytes of the encapsulation header.
    #[error("{0} bytes: shorter than the CDR encapsulation header")]
    TooShort(usize),
    /// An encapsulation other than plain CDR (e.g. XCDR2 or parameter lists).
    #[error("unsupported CDR encapsulation {0:#06x}")]
    Encapsulation(u16),
    /// The fields do not parse as the type.
    #[error("the bytes are not a {type_name}: {reason}")]
    Malformed {
        /// The type that was expected.
        type_name: &'static str,
        /// What the parser said.
        reason: String,
    },
}

/// Reads a message of type `T` from `bytes` (header included).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CdrError> {
    let (header, body) = bytes
        .split_first_chunk::<4>()
        .ok_or(CdrError::TooShort(bytes.len()))?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let result = match kind {
        0x0001 => cdr_encoding::from_bytes::<T, LittleEndian>(body),
        0x0000 => cdr_encoding::from_bytes::<T, BigEndian>(body),
        other => return Err(CdrError::Encapsulation(other)),
    };
    result
        .map(|(value, _)| value)
        .map_err(|error| CdrError::Malformed {
            type_name: std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("message"),
            reason: error.to_string(),
        })
}

/// Writes `value` as plain little-endian CDR, header included (what rcl writes on x86 and ARM).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![0x00, 0x01, 0x00, 0x00];
    // Serialising the message types of this crate into a Vec cannot fail: no maps, no
    // options, no strings over 4 GiB.
    if let Err(error) = cdr_encoding::to_writer::<T, LittleEndian, _>(&mut bytes, value) {
        tracing::error!(%error, "CDR serialisation failed");
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::{Header, Time, Twist, TwistStamped, Vector3};

    #[test]
    fn a_twist_stamped_has_the_layout_rcl_writes() {
        // The bytes of notes/bags.md: stamp 1 s 2 ns, frame "base_link", 76 bytes.
        let message = TwistStamped {
            header: Header {
                stamp: Time { sec: 1, nanosec: 2 },
                frame_id: "base_link".into(),
            },
            twist: Twist {
                linear: Vector3 {
                    x: 0.5,
                    y: 0.0,
                    z: 0.0,
                },
                angular: Vector3 {
                    x: 0.0,
                    y: 0.0,
                    z: -1.0,
                },
            },
        };
        let bytes = encode(&message);
        assert_eq!(bytes.len(), 76);
        assert_eq!(&bytes[..4], &[0, 1, 0, 0]);
        assert_eq!(&bytes[4..8], &1i32.to_le_bytes());
        assert_eq!(
            &bytes[12..16],
            &10u32.to_le_bytes(),
            "length counts the NUL"
        );
        assert_eq!(&bytes[16..26], b"base_link\0");
        // Padding to 8 after the string: the doubles start 8-aligned from the header's end.
        assert_eq!(&bytes[28..36], &0.5f64.to_le_bytes());
        assert_eq!(decode::<TwistStamped>(&bytes), Ok(message));
    }

    #[test]
    fn a_length_beyond_the_message_is_an_error_not_an_allocation() {
        let mut bytes = encode(&TwistStamped::default());
        // frame_id's length claims 4 GiB.
        bytes[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode::<TwistStamped>(&bytes),
            Err(CdrError::Malformed { .. })
        ));
        assert_eq!(decode::<TwistStamped>(&[0, 1]), Err(CdrError::TooShort(2)));
        assert_eq!(
            decode::<TwistStamped>(&[0, 0x0b, 0, 0, 1, 2, 3]),
            Err(CdrError::Encapsulation(0x000b))
        );
    }
}
