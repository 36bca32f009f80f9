//! Where bytes become pg messages, guarded: `GuardedIo` wraps a client's
//! stream, follows the protocol's framing as bytes arrive, and fails the
//! read as soon as a length prefix is out of bounds, before the message is
//! buffered. It also counts bytes for metrics.
//!
//! Writes are held back while flushes are deferred (`set_deferred`): pgwire
//! flushes after each response message, so a pipelined Parse, Bind,
//! Describe, Execute, Sync would cost five writes (five TCP segments). The
//! connection driver instead flushes once, when it has no complete message
//! left to process, which is when the client may be waiting for answers.
//!
//! Framing: the first packet (startup or cancel request; the SSL request
//! has been consumed already) is `len:i32 body`; every later one is
//! `type:u8 len:i32 body`. `len` includes itself.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::Metrics;

/// Postgres itself refuses startup packets above this size.
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// The buffer that collects checked message bodies keeps at most this much
/// capacity between messages.
const RETAINED_BODY_BYTES: usize = 64 * 1024;

/// Held-back output is written through once it reaches this size.
const MAX_DEFERRED: usize = 64 * 1024;

pub struct GuardedIo<S> {
    inner: S,
    max_message: usize,
    framing: Framing,
    /// While true, writes collect in `pending` and flushes do nothing.
    deferred: bool,
    pending: Vec<u8>,
    /// How much of `pending` has reached `inner`.
    pending_written: usize,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
struct Framing {
    /// True until the first (untyped) packet has been read.
    startup: bool,
    /// Header bytes collected for the message being started.
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current message still to come.
    remaining: usize,
    /// The current message's type (`None` for the first packet).
    kind: Option<u8>,
    /// For the types whose shape is checked (`shape`), the body so far;
    /// one buffer reused message after message.
    checking: bool,
    body: Vec<u8>,
}

impl<S> GuardedIo<S> {
    pub fn new(inner: S, max_message: usize, metrics: Arc<Metrics>) -> Self {
        GuardedIo {
            inner,
            max_message,
            metrics,
            framing: Framing {
                startup: true,
                header: [0; 5],
                header_len: 0,
                remaining: 0,
                kind: None,
                checking: false,
                body: Vec::new(),
            },
            deferred: false,
            pending: Vec::new(),
            pending_written: 0,
        }
    }

    /// Defers flushes (true) until set back to false; a flush then writes
    /// everything held back.
    pub fn set_deferred(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Accounts for bytes that were read from the stream before it was
    /// wrapped.
    pub fn observe_buffered(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.framing.observe(bytes, self.max_message)
    }
}

impl Framing {
    /// Feeds bytes just read; errors on a length the server will not take.
    fn observe(&mut self, mut bytes: &[u8], max_message: usize) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(bytes.len());
                self.remaining -= n;
                if self.checking {
                    self.body.extend_from_slice(&bytes[..n]);
                }
                bytes = &bytes[n..];
                if self.remaining == 0 {
                    self.check_body()?;
                }
                continue;
            }
            let header_size = if self.startup { 4 } else { 5 };
            let n = (header_size - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len < header_size {
                continue;
            }
            let len_bytes = &self.header[header_size - 4..header_size];
            let len = i32::from_be_bytes(len_bytes.try_into().expect("four bytes"));
            let (limit, what) = if self.startup {
                (MAX_STARTUP_PACKET, "startup packet")
            } else {
                (max_message, "message")
            };
            if len < 4 || len as usize > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{what} length {len} is outside 4..={limit}"),
                ));
            }
            self.remaining = len as usize - 4;
            self.kind = (!self.startup).then_some(self.header[0]);
            self.checking = super::shape::is_checked(self.kind);
            self.body.clear();
            self.header_len = 0;
            self.startup = false;
            if self.remaining == 0 {
                self.check_body()?;
            }
        }
        Ok(())
    }

    /// The message just completed: refuses a body pgwire could not decode
    /// safely.
    fn check_body(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.checking) {
            return Ok(());
        }
        let checked = super::shape::check(self.kind, &self.body);
        // A large Bind's buffer is not kept for the connection's lifetime.
        if self.body.capacity() > RETAINED_BODY_BYTES {
            self.body = Vec::new();
        }
        checked.map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("malformed message {:?}: {why}", self.kind.map(char::from)),
            )
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                this.metrics.bytes_received.inc_by(new.len() as u64);
                this.framing.observe(new, this.max_message)?;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> GuardedIo<S> {
    /// Writes out what was held back.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_written < self.pending.len() {
            let rest = &self.pending[self.pending_written..];
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.metrics.bytes_sent.inc_by(n as u64);
            self.pending_written += n;
        }
        self.pending.clear();
        self.pending_written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.deferred && this.pending.len() + buf.len() <= MAX_DEFERRED {
            this.pending.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        ready!(this.poll_drain(cx))?;
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.metrics.bytes_sent.inc_by(n as u64);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.deferred {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// True when `buf` starts with a whole typed message (`type len body`):
/// the driver can process it without waiting for the client.
pub fn holds_complete_message(buf: &[u8]) -> bool {
    match buf.get(1..5) {
        Some(len) => {
            let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
            buf.len() > len
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing() -> Framing {
        Framing {
            startup: true,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            kind: None,
            checking: false,
            body: Vec::new(),
        }
    }

    #[test]
    fn accepts_well_formed_messages_split_anywhere() {
        let mut f = framing();
        let mut stream = Vec::new();
        stream.extend_from_slice(&9i32.to_be_bytes());
        stream.extend_from_slice(&[0, 3, 0, 0, 0]);
        stream.push(b'Q');
        stream.extend_from_slice(&9i32.to_be_bytes());
        stream.extend_from_slice(b"select");
        stream.push(0);
        for chunk in stream.chunks(3) {
            f.observe(chunk, 100).unwrap();
        }
        assert_eq!(f.remaining, 0);
    }

    #[test]
    fn rejects_oversized_and_negative_lengths() {
        let mut f = framing();
        assert!(f.observe(b"GET / HTTP/1.1\r\n", 100).is_err());
        let mut f = framing();
        f.observe(&9i32.to_be_bytes(), 100).unwrap();
        f.observe(&[0, 3, 0, 0, 0], 100).unwrap();
        let mut big = vec![b'Q'];
        big.extend_from_slice(&1000i32.to_be_bytes());
        assert!(f.observe(&big, 100).is_err());
        let mut f = framing();
        assert!(f.observe(&(-1i32).to_be_bytes(), 100).is_err());
    }

    #[test]
    fn rejects_bodies_pgwire_would_misread() {
        // A startup packet with bytes after its parameters.
        let mut f = framing();
        let mut startup = 14i32.to_be_bytes().to_vec();
        startup.extend_from_slice(&[0, 3, 0, 0, 0, b'p', 0, 0, 0, 0]);
        assert!(f.observe(&startup, 100).is_err());
        // A Bind whose parameter length points past its end, split anywhere.
        let mut f = framing();
        f.observe(&9i32.to_be_bytes(), 100).unwrap();
        f.observe(&[0, 3, 0, 0, 0], 100).unwrap();
        let mut bind = vec![b'B'];
        bind.extend_from_slice(&15i32.to_be_bytes());
        bind.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 16, b'x']);
        let failed = bind.chunks(2).any(|c| f.observe(c, 100).is_err());
        assert!(failed);
    }
}
