//! A replicated frame: one database page as a committed transaction left
//! it, numbered by the log's global `frame_no`. The encoding is what the log
//! file holds and what `/v1/replication/frames` streams; every frame carries
//! a CRC32 so corruption is detected, never applied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Page size of every sqld database (libsql's WAL hooks assume it).
pub const PAGE_SIZE: usize = 4096;
/// frame_no (8) + page_no (4) + size_after (4) + crc32 (4).
pub const HEADER_SIZE: usize = 20;
pub const RECORD_SIZE: usize = HEADER_SIZE + PAGE_SIZE;
/// A WAL frame's header, as libsql's WAL insert API takes it.
pub const WAL_FRAME_HEADER: usize = 24;

#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub frame_no: u64,
    pub page_no: u32,
    /// The database size in pages after the transaction, on its last frame
    /// (the commit frame); 0 on the others.
    pub size_after: u32,
    pub page: Bytes,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("frame_no", &self.frame_no)
            .field("page_no", &self.page_no)
            .field("size_after", &self.size_after)
            .finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame record truncated")]
    Truncated,
    #[error("checksum mismatch in frame {0}")]
    Checksum(u64),
}

impl Frame {
    pub fn is_commit(&self) -> bool {
        self.size_after != 0
    }

    fn checksum(frame_no: u64, page_no: u32, size_after: u32, page: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&frame_no.to_be_bytes());
        h.update(&page_no.to_be_bytes());
        h.update(&size_after.to_be_bytes());
        h.update(page);
        h.finalize()
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(RECORD_SIZE);
        out.put_u64(self.frame_no);
        out.put_u32(self.page_no);
        out.put_u32(self.size_after);
        out.put_u32(Self::checksum(
            self.frame_no,
            self.page_no,
            self.size_after,
            &self.page,
        ));
        out.put_slice(&self.page);
    }

    /// Decodes one record from the front of `buf`, verifying its checksum.
    pub fn decode(buf: &mut Bytes) -> Result<Frame, FrameError> {
        if buf.len() < RECORD_SIZE {
            return Err(FrameError::Truncated);
        }
        let frame_no = buf.get_u64();
        let page_no = buf.get_u32();
        let size_after = buf.get_u32();
        let crc = buf.get_u32();
        let page = buf.split_to(PAGE_SIZE);
        if Self::checksum(frame_no, page_no, size_after, &page) != crc {
            return Err(FrameError::Checksum(frame_no));
        }
        Ok(Frame {
            frame_no,
            page_no,
            size_after,
            page,
        })
    }

    /// Decodes a run of records (a log batch), verifying every checksum.
    pub fn decode_all(mut buf: Bytes) -> Result<Vec<Frame>, FrameError> {
        let mut frames = Vec::with_capacity(buf.len() / RECORD_SIZE);
        while !buf.is_empty() {
            frames.push(Frame::decode(&mut buf)?);
        }
        Ok(frames)
    }

    /// The frame as libsql's WAL insert API takes it: a 24-byte WAL frame
    /// header (page number, commit size, both big-endian; salts and
    /// checksums are the receiver's own) followed by the page.
    pub fn to_wal_frame(&self) -> Vec<u8> {
        let mut buf = vec![0u8; WAL_FRAME_HEADER + PAGE_SIZE];
        buf[0..4].copy_from_slice(&self.page_no.to_be_bytes());
        buf[4..8].copy_from_slice(&self.size_after.to_be_bytes());
        buf[WAL_FRAME_HEADER..].copy_from_slice(&self.page);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Frame {
        Frame {
            frame_no: n,
            page_no: 3,
            size_after: 7,
            page: Bytes::from(vec![n as u8; PAGE_SIZE]),
        }
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let mut buf = BytesMut::new();
        frame(1).encode(&mut buf);
        frame(2).encode(&mut buf);
        let mut bytes = buf.freeze();
        assert_eq!(Frame::decode(&mut bytes).unwrap(), frame(1));
        assert_eq!(Frame::decode(&mut bytes).unwrap(), frame(2));
        assert_eq!(Frame::decode(&mut bytes), Err(FrameError::Truncated));

        let mut buf = BytesMut::new();
        frame(9).encode(&mut buf);
        buf[HEADER_SIZE + 100] ^= 1;
        assert_eq!(
            Frame::decode(&mut buf.freeze()),
            Err(FrameError::Checksum(9))
        );
    }
}
