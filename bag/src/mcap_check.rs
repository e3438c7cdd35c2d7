//! Length fields inside an MCAP record checked against the record before `mcap` parses it.
//!
//! `mcap` (through binrw) reserves a string's or byte array's claimed length before reading it:
//! a 20-byte Channel record whose topic claims 4 GiB asked the allocator for 4 GiB (found by
//! the coverage-guided fuzz run, docs/fuzzing.md). A record whose lengths do not fit inside it
//! is damaged; it is never handed to the parser.

/// One field of a record, as laid out in the MCAP specification.
#[derive(Clone, Copy)]
enum Field {
    /// Bytes of fixed size (integers).
    Fixed(usize),
    /// `uint32` length, then that many bytes (strings, schema data).
    Bytes32,
    /// `uint64` length, then that many bytes (attachment data).
    Bytes64,
    /// `uint32` byte length, then string → string pairs.
    StringMap,
    /// `uint32` byte length, then fixed-size pairs.
    FixedMap,
}

use Field::{Bytes32, Bytes64, Fixed, FixedMap, StringMap};

/// The fields of the records whose parsing allocates a claimed length; `None` for the others.
fn layout(opcode: u8) -> Option<&'static [Field]> {
    Some(match opcode {
        0x01 => &[Bytes32, Bytes32],                                  // Header
        0x03 => &[Fixed(2), Bytes32, Bytes32, Bytes32],               // Schema
        0x04 => &[Fixed(4), Bytes32, Bytes32, StringMap],             // Channel
        0x05 => &[Fixed(22)],                                         // Message (data: the rest)
        0x06 => &[Fixed(28), Bytes32, Bytes64],                       // Chunk
        0x07 => &[Fixed(2), FixedMap],                                // MessageIndex
        0x08 => &[Fixed(32), FixedMap, Fixed(8), Bytes32, Fixed(16)], // ChunkIndex
        0x09 => &[Fixed(16), Bytes32, Bytes32, Bytes64, Fixed(4)],    // Attachment
        0x0A => &[Fixed(40), Bytes32, Bytes32],                       // AttachmentIndex
        0x0B => &[Fixed(42), FixedMap],                               // Statistics
        0x0C => &[Bytes32, StringMap],                                // Metadata
        0x0D => &[Fixed(16), Bytes32],                                // MetadataIndex
        _ => return None,
    })
}

/// The footer record and the closing magic: the last bytes of a complete MCAP file.
pub(crate) const FOOTER_AND_MAGIC: u64 = 1 + 8 + 20 + 8;

/// Where the summary section starts, from the file's last [`FOOTER_AND_MAGIC`] bytes; `None`
/// when there is no footer (a cut file) or no summary.
pub(crate) fn summary_start(end: &[u8]) -> Option<u64> {
    let (&opcode, rest) = end.split_first()?;
    let (len, rest) = rest.split_first_chunk::<8>()?;
    let (start, _) = rest.split_first_chunk::<8>()?;
    (opcode == 0x02 && u64::from_le_bytes(*len) == 20)
        .then(|| u64::from_le_bytes(*start))
        .filter(|start| *start > 0)
}

/// Whether the summary section `section` is whole records whose lengths fit.
pub(crate) fn summary_fits(mut section: &[u8]) -> bool {
    while let Some((&opcode, rest)) = section.split_first() {
        let Some((len, rest)) = rest.split_first_chunk::<8>() else {
            return false;
        };
        let Some(len) = usize::try_from(u64::from_le_bytes(*len))
            .ok()
            .filter(|len| *len <= rest.len())
        else {
            return false;
        };
        if !lengths_fit(opcode, &rest[..len]) {
            return false;
        }
        section = &rest[len..];
    }
    true
}

/// Whether every length inside the record `body` of `opcode` fits inside it.
pub(crate) fn lengths_fit(opcode: u8, body: &[u8]) -> bool {
    let Some(fields) = layout(opcode) else {
        return true;
    };
    let mut rest = body;
    fields.iter().all(|field| match take(field, rest) {
        Some(after) => {
            rest = after;
            true
        }
        None => false,
    })
}

/// `bytes` after `field`, or `None` when the field does not fit.
fn take<'a>(field: &Field, bytes: &'a [u8]) -> Option<&'a [u8]> {
    match *field {
        Fixed(n) => bytes.get(n..),
        Bytes32 => {
            let (len, rest) = length32(bytes)?;
            rest.get(len..)
        }
        Bytes64 => {
            let (head, rest) = bytes.split_first_chunk::<8>()?;
            let len = usize::try_from(u64::from_le_bytes(*head)).ok()?;
            rest.get(len..)
        }
        FixedMap => {
            let (len, rest) = length32(bytes)?;
            rest.get(len..)
        }
        StringMap => {
            let (len, rest) = length32(bytes)?;
            let (mut map, after) = (rest.get(..len)?, rest.get(len..)?);
            while !map.is_empty() {
                map = take(&Bytes32, map)?;
                map = take(&Bytes32, map)?;
            }
            Some(after)
        }
    }
}

fn length32(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((usize::try_from(u32::from_le_bytes(*head)).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(text: &str) -> Vec<u8> {
        [&(text.len() as u32).to_le_bytes()[..], text.as_bytes()].concat()
    }

    #[test]
    fn a_channel_whose_strings_fit_passes_and_one_claiming_more_than_it_holds_does_not() {
        let mut channel = vec![1, 0, 1, 0];
        channel.extend(string("/camera/image_raw"));
        channel.extend(string("cdr"));
        let map = [string("offered_qos_profiles"), string("")].concat();
        channel.extend((map.len() as u32).to_le_bytes());
        channel.extend(&map);
        assert!(lengths_fit(0x04, &channel));

        let mut claims = vec![1, 0, 1, 0];
        claims.extend(0xff00_0003u32.to_le_bytes());
        claims.extend(b"abc");
        assert!(!lengths_fit(0x04, &claims));
        // A map whose inner string claims more than the map holds.
        let mut inner = vec![1, 0, 1, 0];
        inner.extend(string("/t"));
        inner.extend(string("cdr"));
        let bad_map = [&0xffff_fff0u32.to_le_bytes()[..], b"k"].concat();
        inner.extend((bad_map.len() as u32).to_le_bytes());
        inner.extend(&bad_map);
        assert!(!lengths_fit(0x04, &inner));
        // Records without claimed lengths pass untouched.
        assert!(lengths_fit(0x0F, &[]));
    }
}
