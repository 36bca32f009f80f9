//! COPY's binary format, as Postgres writes and reads it: a signature and
//! header, then per row a field count and each field as a length (-1 for
//! NULL) and the value in its type's binary encoding, then a trailer of
//! -1. The decoder cuts rows out of CopyData bytes as they come, holding
//! at most one unfinished row, and never allocates by a length it was
//! told, only by bytes that arrived.

use bytes::BufMut;

use super::format::FormatError;
use crate::error::sqlstate;

/// `PGCOPY\n\377\r\n\0`
pub const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// The signature, no flags, no header extension.
const HEADER_LEN: usize = SIGNATURE.len() + 8;

fn bad_format(message: impl Into<String>) -> FormatError {
    FormatError {
        code: sqlstate::BAD_COPY_FILE_FORMAT,
        message: message.into(),
    }
}

/// One row: each field's bytes, `None` for NULL.
pub type BinaryRow = Vec<Option<Vec<u8>>>;

/// Cuts rows out of the bytes of a binary COPY FROM STDIN.
#[derive(Default)]
pub struct BinaryDecoder {
    pending: Vec<u8>,
    /// Where the unread bytes start in `pending`.
    start: usize,
    header_read: bool,
    /// The trailer was read: the rest is ignored.
    ended: bool,
    /// Rows read so far, for error messages.
    pub line: u64,
}

impl BinaryDecoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.ended {
            return;
        }
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Bytes held of a row not yet complete.
    pub fn held(&self) -> usize {
        self.pending.len() - self.start
    }

    /// The next complete row, if one has arrived.
    pub fn next_row(&mut self) -> Result<Option<BinaryRow>, FormatError> {
        if self.ended {
            return Ok(None);
        }
        if !self.header_read && !self.read_header()? {
            return Ok(None);
        }
        let mut at = self.start;
        let Some(count) = read_i16(&self.pending, &mut at) else {
            return Ok(None);
        };
        if count == -1 {
            self.ended = true;
            self.start = at;
            return Ok(None);
        }
        let count = usize::try_from(count)
            .map_err(|_| bad_format(format!("invalid field count {count} in binary COPY row")))?;
        let mut row = Vec::with_capacity(count);
        for _ in 0..count {
            let Some(len) = read_i32(&self.pending, &mut at) else {
                return Ok(None);
            };
            if len == -1 {
                row.push(None);
                continue;
            }
            let len = usize::try_from(len)
                .map_err(|_| bad_format(format!("invalid field length {len} in binary COPY")))?;
            let Some(value) = self.pending.get(at..at + len) else {
                return Ok(None);
            };
            row.push(Some(value.to_vec()));
            at += len;
        }
        self.start = at;
        self.line += 1;
        Ok(Some(row))
    }

    /// At the end of input: anything left is a row cut short (Postgres
    /// accepts input without the trailer, but not half a row).
    pub fn finish(&mut self) -> Result<(), FormatError> {
        match self.ended || self.held() == 0 {
            true => Ok(()),
            false if !self.header_read => Err(bad_format("COPY file signature not recognized")),
            false => Err(bad_format("unexpected EOF in binary COPY data")),
        }
    }

    /// Reads the header once it has arrived; `false` until then.
    fn read_header(&mut self) -> Result<bool, FormatError> {
        let held = &self.pending[self.start..];
        let signature_part = held.len().min(SIGNATURE.len());
        if held[..signature_part] != SIGNATURE[..signature_part] {
            return Err(bad_format("COPY file signature not recognized"));
        }
        if held.len() < HEADER_LEN {
            return Ok(false);
        }
        let mut at = self.start + SIGNATURE.len();
        let flags = read_i32(&self.pending, &mut at).unwrap_or_default();
        // Bit 16 says OIDs are included, which no table here has; the low
        // bits are reserved for flags a reader must know.
        if flags & 0x0001_ffff != 0 {
            return Err(bad_format(
                "unrecognized critical flags in COPY file header",
            ));
        }
        let extension = read_i32(&self.pending, &mut at).unwrap_or_default();
        let extension = usize::try_from(extension)
            .map_err(|_| bad_format("invalid COPY file header extension length"))?;
        if self.pending.len() < at + extension {
            return Ok(false);
        }
        self.start = at + extension;
        self.header_read = true;
        Ok(true)
    }
}

fn read_i16(bytes: &[u8], at: &mut usize) -> Option<i16> {
    let raw = bytes.get(*at..*at + 2)?;
    *at += 2;
    Some(i16::from_be_bytes([raw[0], raw[1]]))
}

fn read_i32(bytes: &[u8], at: &mut usize) -> Option<i32> {
    let raw = bytes.get(*at..*at + 4)?;
    *at += 4;
    Some(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// The header COPY TO writes first.
pub fn header(out: &mut impl BufMut) {
    out.put_slice(SIGNATURE);
    out.put_i32(0);
    out.put_i32(0);
}

/// The trailer COPY TO writes last.
pub fn trailer(out: &mut impl BufMut) {
    out.put_i16(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = Vec::new();
        header(&mut out);
        for row in rows {
            out.put_i16(row.len() as i16);
            for field in row.iter() {
                match field {
                    None => out.put_i32(-1),
                    Some(v) => {
                        out.put_i32(v.len() as i32);
                        out.put_slice(v);
                    }
                }
            }
        }
        trailer(&mut out);
        out
    }

    #[test]
    fn rows_split_anywhere_across_chunks() {
        let bytes = input(&[
            &[Some(b"\x00\x00\x00\x01"), None],
            &[Some(b"ab"), Some(b"")],
        ]);
        for chunk in 1..bytes.len() {
            let mut decoder = BinaryDecoder::default();
            let mut rows = Vec::new();
            for piece in bytes.chunks(chunk) {
                decoder.feed(piece);
                while let Some(row) = decoder.next_row().unwrap() {
                    rows.push(row);
                }
            }
            decoder.finish().unwrap();
            assert_eq!(
                rows,
                vec![
                    vec![Some(vec![0, 0, 0, 1]), None],
                    vec![Some(b"ab".to_vec()), Some(Vec::new())]
                ],
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn malformed_input_is_an_error_not_an_allocation() {
        let mut decoder = BinaryDecoder::default();
        decoder.feed(b"PGCOPX\n");
        assert!(decoder.next_row().is_err());

        // A field that claims 2 GB waits for bytes; it holds none.
        let mut decoder = BinaryDecoder::default();
        let mut bytes = Vec::new();
        header(&mut bytes);
        bytes.put_i16(1);
        bytes.put_i32(i32::MAX);
        decoder.feed(&bytes);
        assert_eq!(decoder.next_row().unwrap(), None);
        assert!(decoder.finish().is_err());

        let mut decoder = BinaryDecoder::default();
        let mut bytes = Vec::new();
        header(&mut bytes);
        bytes.put_i16(1);
        bytes.put_i32(-7);
        decoder.feed(&bytes);
        assert!(decoder.next_row().is_err());
    }
}
