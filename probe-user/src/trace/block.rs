//! File header and block framing.
//!
//! ```text
//! file   := header block*
//! header := "TCPCHURN" major:u16le minor:u16le reserved:u32le          (16 bytes)
//! block  := "TCBK" kind:u8 flags:u8 reserved:u16le payload_len:u32le
//!           records:u32le first_ts_ns:u64le payload_crc32:u32le header_crc32:u32le
//!           payload                                                     (32 + payload_len)
//! ```
//!
//! The header CRC lets a reader trust `payload_len` before skipping a damaged payload,
//! and find the next block by scanning for a magic whose header checks out.

use crate::trace::varint::Cursor;

pub const FILE_MAGIC: &[u8; 8] = b"TCPCHURN";
pub const FORMAT_MAJOR: u16 = 1;
pub const FORMAT_MINOR: u16 = 1;
pub const FILE_HEADER_LEN: usize = 16;

pub const BLOCK_MAGIC: &[u8; 4] = b"TCBK";
pub const BLOCK_HEADER_LEN: usize = 32;
/// No writer produces blocks anywhere near this big; a larger length is corruption,
/// and refusing it keeps a hostile file from making the reader allocate gigabytes.
pub const MAX_PAYLOAD: u32 = 64 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockKind {
    /// JSON [`crate::trace::TraceMeta`]; always the first block.
    Meta = 1,
    /// Binary records (snapshot sockets, transitions, resets, errors, gaps).
    Records = 2,
    /// JSON [`crate::trace::TraceEnd`]; the last block of a cleanly stopped trace.
    End = 3,
    /// JSON [`crate::model::WorkloadTable`]: names for the keys of the records block
    /// that follows (format 1.1).
    Workloads = 4,
}

impl BlockKind {
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Meta),
            2 => Some(Self::Records),
            3 => Some(Self::End),
            4 => Some(Self::Workloads),
            _ => None,
        }
    }
}

pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(FILE_MAGIC);
    header[8..10].copy_from_slice(&FORMAT_MAJOR.to_le_bytes());
    header[10..12].copy_from_slice(&FORMAT_MINOR.to_le_bytes());
    header
}

/// The decoded fixed part of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Raw kind byte: unknown kinds are skipped, not rejected (minor-version additions).
    pub kind: u8,
    pub flags: u8,
    pub payload_len: u32,
    pub records: u32,
    pub first_ts_ns: u64,
    pub payload_crc: u32,
}

impl BlockHeader {
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut out = [0u8; BLOCK_HEADER_LEN];
        out[0..4].copy_from_slice(BLOCK_MAGIC);
        out[4] = self.kind;
        out[5] = self.flags;
        out[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        out[12..16].copy_from_slice(&self.records.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_ts_ns.to_le_bytes());
        out[24..28].copy_from_slice(&self.payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&out[..28]);
        out[28..32].copy_from_slice(&header_crc.to_le_bytes());
        out
    }

    /// Decodes a header, or says why these 32 bytes are not one.
    pub fn decode(bytes: &[u8; BLOCK_HEADER_LEN]) -> Result<Self, &'static str> {
        if &bytes[0..4] != BLOCK_MAGIC {
            return Err("no block magic");
        }
        let mut cursor = Cursor::new(&bytes[28..32]);
        let stored_crc = cursor.u32_le().ok_or("short header")?;
        if crc32fast::hash(&bytes[..28]) != stored_crc {
            return Err("block header checksum mismatch");
        }
        let mut cursor = Cursor::new(&bytes[8..28]);
        let header = Self {
            kind: bytes[4],
            flags: bytes[5],
            payload_len: cursor.u32_le().ok_or("short header")?,
            records: cursor.u32_le().ok_or("short header")?,
            first_ts_ns: cursor.u64_le().ok_or("short header")?,
            payload_crc: cursor.u32_le().ok_or("short header")?,
        };
        if header.payload_len > MAX_PAYLOAD {
            return Err("block length is implausibly large");
        }
        Ok(header)
    }
}

/// Writes the header of a block whose payload is already in place after
/// [`BLOCK_HEADER_LEN`] reserved bytes: encoders write payloads where they will stay.
pub fn seal(block: &mut [u8], kind: BlockKind, records: u32, first_ts_ns: u64) {
    let (head, payload) = block.split_at_mut(BLOCK_HEADER_LEN.min(block.len()));
    let header = BlockHeader {
        kind: kind as u8,
        flags: 0,
        payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
        records,
        first_ts_ns,
        payload_crc: crc32fast::hash(payload),
    };
    if head.len() == BLOCK_HEADER_LEN {
        head.copy_from_slice(&header.encode());
    }
}

/// Frames a payload as one complete block.
pub fn frame(kind: BlockKind, records: u32, first_ts_ns: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0; BLOCK_HEADER_LEN];
    out.extend_from_slice(payload);
    seal(&mut out, kind, records, first_ts_ns);
    out
}

/// The records held by whole framed blocks that follow each other (what the recorder
/// hands its writer), read from their headers; what cannot be read counts nothing.
pub fn records_in(mut blocks: &[u8]) -> u64 {
    let mut records = 0;
    while let Some((head, rest)) = blocks.split_first_chunk::<BLOCK_HEADER_LEN>() {
        let Ok(header) = BlockHeader::decode(head) else {
            break;
        };
        if header.kind == BlockKind::Records as u8 {
            records += u64::from(header.records);
        }
        blocks = rest.get(header.payload_len as usize..).unwrap_or_default();
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_from_the_headers() {
        let mut blocks = frame(BlockKind::Records, 3, 0, b"abc");
        blocks.extend(frame(BlockKind::End, 9, 0, b"{}"));
        blocks.extend(frame(BlockKind::Records, 4, 0, b""));
        assert_eq!(records_in(&blocks), 7);
        assert_eq!(records_in(&blocks[..40]), 3, "a cut block counts nothing");
    }

    #[test]
    fn header_round_trips_and_detects_bit_flips() {
        let header = BlockHeader {
            kind: 2,
            flags: 0,
            payload_len: 1234,
            records: 99,
            first_ts_ns: 42_000,
            payload_crc: 0xdead_beef,
        };
        let bytes = header.encode();
        assert_eq!(BlockHeader::decode(&bytes), Ok(header));
        for bit in 0..(28 * 8) {
            let mut damaged = bytes;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                BlockHeader::decode(&damaged).is_err(),
                "flip of bit {bit} went unnoticed"
            );
        }
    }

    #[test]
    fn refuses_huge_lengths_even_with_a_valid_checksum() {
        let header = BlockHeader {
            kind: 2,
            flags: 0,
            payload_len: MAX_PAYLOAD + 1,
            records: 0,
            first_ts_ns: 0,
            payload_crc: 0,
        };
        assert_eq!(
            BlockHeader::decode(&header.encode()),
            Err("block length is implausibly large")
        );
    }
}
