//! The shape of a frontend message's body, checked before pgwire decodes
//! it. pgwire's decoders trust the lengths and counts inside a message
//! (a Bind's parameter lengths, a Parse's type count, the end of a startup
//! packet) and panic on one that points past the body; `pg::io` runs these
//! checks on each such message as its last byte arrives, so a malformed one
//! closes the connection instead.

/// Why a body is refused.
pub type ShapeError = &'static str;

/// Protocol 3.0, and the special request codes of a first packet.
const PROTOCOL_3: i32 = 196_608;
const CANCEL_REQUEST: i32 = 80_877_102;

/// Whether a message of this type (`None`: the first, untyped packet) has
/// its body checked, and so must be collected whole.
pub fn is_checked(kind: Option<u8>) -> bool {
    matches!(kind, None | Some(b'B' | b'P' | b'E' | b'D' | b'C'))
}

/// Checks `body` (the bytes after the length) of a message of `kind`.
pub fn check(kind: Option<u8>, body: &[u8]) -> Result<(), ShapeError> {
    let mut r = Reader(body);
    match kind {
        None => first_packet(r),
        Some(b'B') => {
            r.cstring()?; // portal
            r.cstring()?; // statement
            let formats = r.count()?;
            r.skip(2 * formats)?;
            let params = r.count()?;
            for _ in 0..params {
                let len = r.i32()?;
                if len >= 0 {
                    r.skip(len as usize)?;
                } else if len != -1 {
                    return Err("a Bind parameter length below -1");
                }
            }
            let results = r.count()?;
            r.skip(2 * results)?;
            r.end()
        }
        Some(b'P') => {
            r.cstring()?; // statement
            r.cstring()?; // query
            let types = r.count()?;
            r.skip(4 * types)?;
            r.end()
        }
        Some(b'E') => {
            r.cstring()?;
            r.i32()?;
            r.end()
        }
        Some(b'D' | b'C') => {
            r.skip(1)?;
            r.cstring()?;
            r.end()
        }
        Some(_) => Ok(()),
    }
}

/// A startup packet's parameters end with an empty name that is its last
/// byte (pgwire stops reading there, so bytes after it would be taken for
/// the next message); a cancel request is exactly its two numbers.
fn first_packet(mut r: Reader<'_>) -> Result<(), ShapeError> {
    match r.i32()? {
        CANCEL_REQUEST => {
            r.skip(8)?;
            r.end()
        }
        code if code >> 16 == PROTOCOL_3 >> 16 => loop {
            if r.cstring()?.is_empty() {
                return r.end();
            }
            r.cstring()?;
        },
        // Other codes (SSL and GSS requests, other protocol versions) are
        // answered by pgwire without reading further.
        _ => Ok(()),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn skip(&mut self, n: usize) -> Result<(), ShapeError> {
        if n > self.0.len() {
            return Err("a length points past the end of the message");
        }
        self.0 = &self.0[n..];
        Ok(())
    }

    fn i32(&mut self) -> Result<i32, ShapeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<4>()
            .ok_or("the message ends inside a number")?;
        self.0 = rest;
        Ok(i32::from_be_bytes(*head))
    }

    /// An Int16 count of what follows; negative counts are refused.
    fn count(&mut self) -> Result<usize, ShapeError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<2>()
            .ok_or("the message ends inside a count")?;
        self.0 = rest;
        usize::try_from(i16::from_be_bytes(*head)).map_err(|_| "a negative count")
    }

    fn cstring(&mut self) -> Result<&'a [u8], ShapeError> {
        let nul = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or("a string without its terminator")?;
        let s = &self.0[..nul];
        self.0 = &self.0[nul + 1..];
        Ok(s)
    }

    fn end(&self) -> Result<(), ShapeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("bytes after the end of the message")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(params: &[i32], data: &[u8]) -> Vec<u8> {
        let mut b = b"\0\0".to_vec();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(params.len() as i16).to_be_bytes());
        for len in params {
            b.extend_from_slice(&len.to_be_bytes());
        }
        b.extend_from_slice(data);
        b.extend_from_slice(&0i16.to_be_bytes());
        b
    }

    #[test]
    fn well_formed_messages_pass_and_broken_ones_are_named() {
        let mut ok = b"\0\0".to_vec();
        ok.extend_from_slice(&0i16.to_be_bytes());
        ok.extend_from_slice(&1i16.to_be_bytes());
        ok.extend_from_slice(&1i32.to_be_bytes());
        ok.push(b'x');
        ok.extend_from_slice(&0i16.to_be_bytes());
        assert_eq!(check(Some(b'B'), &ok), Ok(()));
        assert_eq!(check(Some(b'B'), &bind(&[-1], &[])), Ok(()));
        assert!(
            check(Some(b'B'), &bind(&[16], b"x")).is_err(),
            "length past the end"
        );
        assert!(check(Some(b'B'), &bind(&[-2], &[])).is_err());
        assert!(check(Some(b'B'), b"\0\0\0").is_err(), "truncated");
        assert_eq!(check(Some(b'P'), b"\0select 1\0\0\0"), Ok(()));
        assert!(
            check(Some(b'P'), b"\0select 1\0\0\x01").is_err(),
            "missing type oids"
        );
        assert_eq!(check(Some(b'E'), b"\0\0\0\0\0"), Ok(()));
        assert!(check(Some(b'E'), b"\0\0").is_err());
        assert_eq!(check(Some(b'D'), b"Sname\0"), Ok(()));
        assert!(check(Some(b'C'), b"S").is_err());
        let mut startup = PROTOCOL_3.to_be_bytes().to_vec();
        startup.extend_from_slice(b"user\0u\0\0");
        assert_eq!(check(None, &startup), Ok(()));
        startup.extend_from_slice(b"p\0\0\0\0");
        assert!(check(None, &startup).is_err(), "bytes after the parameters");
        let mut cancel = CANCEL_REQUEST.to_be_bytes().to_vec();
        cancel.extend_from_slice(&[0; 8]);
        assert_eq!(check(None, &cancel), Ok(()));
        assert_eq!(
            check(None, &80_877_103i32.to_be_bytes()),
            Ok(()),
            "SSL request"
        );
    }
}
