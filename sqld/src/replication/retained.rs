//! The frames a replica keeps after applying them, so that if it is
//! promoted, replicas that stopped a little before it can follow it on
//! without a bootstrap: the promoted log serves them these frames (its
//! snapshot covers everything older).
//!
//! Two files of at most `FILE_BYTES` each in the replica's directory: the
//! current one takes appends; when it is full it replaces the previous one.
//! Records are the log's own (checksummed), appended and synced before the
//! follower records the batch as applied, so after a crash they may run
//! past the applied frame, never stop short of it: `open` cuts them back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::frame::{Frame, RECORD_SIZE};

const CURRENT: &str = "retained.log";
const PREVIOUS: &str = "retained.prev.log";
/// Each file holds at most this much (8,192 frames); a promotion brings
/// between one and two files' worth.
/// Every file this module keeps in a replica's directory.
pub const FILES: [&str; 2] = [CURRENT, PREVIOUS];
const FILE_BYTES: u64 = 32 << 20;

pub struct RetainedFrames {
    dir: PathBuf,
    current: File,
    len: u64,
}

impl RetainedFrames {
    /// Opens the files in `dir`, dropping records after `applied` (and a
    /// torn one) left by a crash before the batch was recorded.
    pub fn open(dir: &Path, applied: u64) -> std::io::Result<Self> {
        let path = dir.join(CURRENT);
        let current = OpenOptions::new().create(true).append(true).open(&path)?;
        let records = records(&path)?;
        let keep = records.iter().take_while(|f| f.frame_no <= applied).count() as u64;
        let len = keep * RECORD_SIZE as u64;
        current.set_len(len)?;
        Ok(RetainedFrames {
            dir: dir.to_owned(),
            current,
            len,
        })
    }

    /// Keeps `records` (whole encoded frames, the next after those kept).
    pub fn append(&mut self, records: &[u8]) -> std::io::Result<()> {
        if self.len >= FILE_BYTES {
            self.current.sync_all()?;
            std::fs::rename(self.dir.join(CURRENT), self.dir.join(PREVIOUS))?;
            self.current = OpenOptions::new()
                .create(true)
                .append(true)
                .truncate(false)
                .open(self.dir.join(CURRENT))?;
            self.len = 0;
        }
        self.current.write_all(records)?;
        self.len += records.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.current.sync_data()
    }

    /// Forgets every frame kept: after a bootstrap the frames start again
    /// after the snapshot.
    pub fn clear(&mut self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(PREVIOUS)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.current.set_len(0)?;
        self.len = 0;
        self.current.sync_all()
    }
}

/// Frames kept in a replica's directory, as a promotion takes them.
pub struct Kept {
    /// The first of them (the one after the applied frame when none is).
    pub first_frame_no: u64,
    /// Their encoded records, contiguous.
    pub records: Vec<u8>,
}

/// The records kept in `dir`, encoded, contiguous and ending at `applied`:
/// the longest such run (none when the last kept frame is not `applied`).
pub fn read_upto(dir: &Path, applied: u64) -> std::io::Result<Kept> {
    let mut frames = records(&dir.join(PREVIOUS))?;
    frames.extend(records(&dir.join(CURRENT))?);
    frames.retain(|f| f.frame_no <= applied);
    if frames.last().is_none_or(|f| f.frame_no != applied) {
        return Ok(Kept {
            first_frame_no: applied + 1,
            records: Vec::new(),
        });
    }
    // Walk back while the numbers are consecutive.
    let mut start = frames.len() - 1;
    while start > 0 && frames[start - 1].frame_no + 1 == frames[start].frame_no {
        start -= 1;
    }
    let mut out = bytes::BytesMut::with_capacity((frames.len() - start) * RECORD_SIZE);
    for frame in &frames[start..] {
        frame.encode(&mut out);
    }
    Ok(Kept {
        first_frame_no: frames[start].frame_no,
        records: out.to_vec(),
    })
}

/// The intact records at the front of `path` (none if it does not exist).
fn records(path: &Path) -> std::io::Result<Vec<Frame>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_end(&mut bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut buf = Bytes::from(bytes);
    let mut frames = Vec::new();
    while let Ok(frame) = Frame::decode(&mut buf) {
        frames.push(frame);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(range: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        for frame_no in range {
            Frame {
                frame_no,
                page_no: 1,
                size_after: 1,
                page: Bytes::from(vec![frame_no as u8; super::super::frame::PAGE_SIZE]),
            }
            .encode(&mut out);
        }
        out.to_vec()
    }

    fn numbers(records: &[u8]) -> Vec<u64> {
        Frame::decode_all(Bytes::copy_from_slice(records))
            .unwrap()
            .iter()
            .map(|f| f.frame_no)
            .collect()
    }

    #[test]
    fn records_past_the_applied_frame_are_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = RetainedFrames::open(dir.path(), 0).unwrap();
        kept.append(&encoded(1..=5)).unwrap();
        drop(kept);
        // A crash after appending 4 and 5 but before recording them.
        let mut kept = RetainedFrames::open(dir.path(), 3).unwrap();
        kept.append(&encoded(4..=6)).unwrap();
        assert_eq!(
            numbers(&read_upto(dir.path(), 6).unwrap().records),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            numbers(&read_upto(dir.path(), 4).unwrap().records),
            vec![1, 2, 3, 4]
        );
    }

    #[test]
    fn a_torn_record_ends_what_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = RetainedFrames::open(dir.path(), 0).unwrap();
        let mut records = encoded(1..=3);
        records.truncate(records.len() - 100);
        kept.append(&records).unwrap();
        drop(kept);
        RetainedFrames::open(dir.path(), 3).unwrap();
        let torn = read_upto(dir.path(), 3).unwrap();
        assert!(torn.records.is_empty(), "3 is torn");
        assert_eq!(torn.first_frame_no, 4);
        let kept = read_upto(dir.path(), 2).unwrap();
        assert_eq!(numbers(&kept.records), vec![1, 2]);
        assert_eq!(kept.first_frame_no, 1);
    }

    #[test]
    fn a_cleared_replica_keeps_only_what_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut kept = RetainedFrames::open(dir.path(), 0).unwrap();
        kept.append(&encoded(1..=3)).unwrap();
        kept.clear().unwrap();
        kept.append(&encoded(10..=11)).unwrap();
        let kept = read_upto(dir.path(), 11).unwrap();
        assert_eq!(numbers(&kept.records), vec![10, 11]);
        assert_eq!(kept.first_frame_no, 10);
    }
}
