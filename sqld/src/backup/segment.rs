//! The bytes of archived objects. A segment is a run of whole transactions
//! from the replication log, with each commit's time, zstd-compressed:
//!
//! ```text
//! "SQLDSEG1" | commits: u32 | commits × (commit frame_no: u64, time_ms: u64)
//!            | frame records (the log's own encoding, CRC32 each) | crc32: u32
//! ```
//!
//! The trailing CRC covers everything before it, each frame carries its
//! own, and the zstd frame has a content checksum: a corrupted object is
//! refused, never applied. Snapshots are the database file, compressed the
//! same way.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::replication::frame::{Frame, RECORD_SIZE};

const MAGIC: &[u8; 8] = b"SQLDSEG1";
/// zstd's default level: fast enough to keep up with the log on one core.
const ZSTD_LEVEL: i32 = 3;

/// Why an object's bytes are unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SegmentError {
    #[error("not a valid zstd stream: {0}")]
    Compression(String),
    #[error("not a sqld log segment")]
    Magic,
    #[error("truncated")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("frame checksum mismatch: {0}")]
    Frame(String),
    #[error("frames out of order: expected {expected}, found {found}")]
    Order { expected: u64, found: u64 },
}

/// One transaction's commit frame and when it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub frame_no: u64,
    pub time_ms: u64,
}

/// A decoded segment.
#[derive(Debug)]
pub struct Segment {
    pub commits: Vec<Commit>,
    pub frames: Vec<Frame>,
}

/// Compresses with a content checksum.
pub fn compress(data: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::with_capacity(data.len() / 3), ZSTD_LEVEL)
        .expect("zstd encoder into a Vec");
    encoder.include_checksum(true).expect("zstd checksum flag");
    std::io::Write::write_all(&mut encoder, data).expect("writing into a Vec");
    encoder.finish().expect("finishing into a Vec")
}

pub fn decompress(data: &[u8]) -> Result<Vec<u8>, SegmentError> {
    zstd::stream::decode_all(data).map_err(|e| SegmentError::Compression(e.to_string()))
}

/// `records` (encoded frames, whole transactions) and their commit times.
pub fn encode(commits: &[Commit], records: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::with_capacity(records.len() + 16 * commits.len() + 16);
    buf.put_slice(MAGIC);
    buf.put_u32(commits.len() as u32);
    for c in commits {
        buf.put_u64(c.frame_no);
        buf.put_u64(c.time_ms);
    }
    buf.put_slice(records);
    let crc = crc32fast::hash(&buf);
    buf.put_u32(crc);
    compress(&buf)
}

pub fn decode(object: &[u8]) -> Result<Segment, SegmentError> {
    let raw = decompress(object)?;
    if raw.len() < MAGIC.len() + 8 {
        return Err(SegmentError::Truncated);
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32fast::hash(body) != u32::from_be_bytes(crc.try_into().expect("4 bytes")) {
        return Err(SegmentError::Checksum);
    }
    let mut buf = Bytes::copy_from_slice(body);
    if &buf.split_to(MAGIC.len())[..] != MAGIC {
        return Err(SegmentError::Magic);
    }
    let n = buf.get_u32() as usize;
    if buf.len() < n * 16 || !(buf.len() - n * 16).is_multiple_of(RECORD_SIZE) {
        return Err(SegmentError::Truncated);
    }
    let commits = (0..n)
        .map(|_| Commit {
            frame_no: buf.get_u64(),
            time_ms: buf.get_u64(),
        })
        .collect();
    let frames = Frame::decode_all(buf).map_err(|e| SegmentError::Frame(e.to_string()))?;
    for pair in frames.windows(2) {
        if pair[1].frame_no != pair[0].frame_no + 1 {
            return Err(SegmentError::Order {
                expected: pair[0].frame_no + 1,
                found: pair[1].frame_no,
            });
        }
    }
    Ok(Segment { commits, frames })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::frame::PAGE_SIZE;

    fn records() -> Vec<u8> {
        let mut out = BytesMut::new();
        for n in 1..=3u64 {
            Frame {
                frame_no: n,
                page_no: 1,
                size_after: if n == 3 { 1 } else { 0 },
                page: Bytes::from(vec![n as u8; PAGE_SIZE]),
            }
            .encode(&mut out);
        }
        out.to_vec()
    }

    #[test]
    fn segments_round_trip_and_refuse_corruption() {
        let commits = [Commit {
            frame_no: 3,
            time_ms: 42,
        }];
        let object = encode(&commits, &records());
        let segment = decode(&object).unwrap();
        assert_eq!(segment.commits, commits);
        assert_eq!(segment.frames.len(), 3);

        let mut bad = object.clone();
        let at = bad.len() / 2;
        bad[at] ^= 0x40;
        assert!(decode(&bad).is_err());
        assert!(decode(&object[..object.len() - 3]).is_err());
    }
}
