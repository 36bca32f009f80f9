//! The client's byte stream. Plain TCP is read and written with blocking
//! system calls: the connection has a thread of its own, so waiting for the
//! next message is one recv the thread sleeps in, rather than an
//! epoll_wait, a wake-up and then the recv. TLS streams stay on the
//! thread's runtime.
//!
//! A blocking read cannot be raced against a timer or the shutdown signal,
//! so the driver gives the stream a deadline instead (startup, idle in a
//! transaction): every read fails with `TimedOut` once it has passed, however
//! slowly the bytes trickle in, and the server ends reads at shutdown by
//! shutting the socket's read side (`server`).

use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pgwire::tokio::server::MaybeTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub enum ClientStream {
    Blocking(BlockingTcp),
    Async(AsyncStream),
}

/// A TLS stream on the thread's runtime, with the same bound on sends as
/// SO_SNDTIMEO gives plain TCP: a write or flush that moves nothing for
/// `write_timeout` fails.
pub struct AsyncStream {
    stream: MaybeTls,
    write_timeout: Option<Duration>,
    /// Armed when a write or flush first waits; cleared when one proceeds.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncStream {
    /// `attempt`'s result, or TimedOut once it has waited `write_timeout`.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        attempt: impl FnOnce(Pin<&mut MaybeTls>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let polled = attempt(Pin::new(&mut self.stream), cx);
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let Some(timeout) = self.write_timeout else {
            return Poll::Pending;
        };
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match std::future::Future::poll(stalled.as_mut(), cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no bytes within the client write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl ClientStream {
    /// Plain TCP becomes blocking, anything else stays on the runtime;
    /// either way a send that moves no byte for `write_timeout` fails.
    pub fn new(negotiated: MaybeTls, write_timeout: Option<Duration>) -> io::Result<Self> {
        Ok(match negotiated {
            MaybeTls::Plain(tcp) => {
                let tcp = tcp.into_std()?;
                tcp.set_nonblocking(false)?;
                tcp.set_write_timeout(write_timeout)?;
                ClientStream::Blocking(BlockingTcp {
                    tcp,
                    deadline: None,
                    read_timeout: None,
                })
            }
            other => ClientStream::Async(AsyncStream {
                stream: other,
                write_timeout,
                stalled: None,
            }),
        })
    }

    /// When reads must stop waiting for the client (blocking streams; the
    /// driver's timers cover the others).
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        if let ClientStream::Blocking(b) = self {
            b.deadline = deadline;
        }
    }
}

/// A read may wait this much past its deadline before SO_RCVTIMEO is
/// lowered again: so a session that reads each message in one recv does
/// not pay a setsockopt per message for a deadline that keeps moving.
const DEADLINE_SLACK: Duration = Duration::from_millis(100);

pub struct BlockingTcp {
    tcp: std::net::TcpStream,
    /// No read waits past this. SO_RCVTIMEO bounds one recv, not a
    /// message, so it alone would let one byte a second hold a connection.
    deadline: Option<Instant>,
    /// What SO_RCVTIMEO is set to, to set it only when it changes.
    read_timeout: Option<Duration>,
}

impl BlockingTcp {
    fn read(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let mut woken = false;
        loop {
            self.arm_timeout(woken)?;
            let socket = socket2::SockRef::from(&self.tcp);
            // SAFETY: recv only writes into the unfilled part, and exactly
            // `n` bytes of it are then marked initialised and filled.
            let result = socket.recv(unsafe { buf.unfilled_mut() });
            match result {
                Ok(n) => {
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // SO_RCVTIMEO expired: only a wake-up, the deadline decides
                // (checked by `arm_timeout` on the next round).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => woken = true,
                Err(e) => return Err(e),
            }
        }
    }

    /// Fails once the deadline has passed; otherwise makes sure the next
    /// recv cannot wait (much) past it, touching SO_RCVTIMEO only when it
    /// would, or when it woke a recv before the deadline (it was set for
    /// an earlier one).
    fn arm_timeout(&mut self, woken: bool) -> io::Result<()> {
        let Some(deadline) = self.deadline else {
            return self.set_timeout(None);
        };
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no message before the read deadline",
            ));
        }
        let late = match self.read_timeout {
            Some(timeout) => now + timeout > deadline + DEADLINE_SLACK,
            None => true,
        };
        if late || woken {
            self.set_timeout(Some(left))?;
        }
        Ok(())
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.read_timeout != timeout {
            self.tcp.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Blocking(b) => Poll::Ready(b.read(buf)),
            ClientStream::Async(s) => Pin::new(&mut s.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Blocking(b) => Poll::Ready(b.tcp.write(buf)),
            ClientStream::Async(s) => s.bounded(cx, |stream, cx| stream.poll_write(cx, buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Blocking(_) => Poll::Ready(Ok(())),
            ClientStream::Async(s) => s.bounded(cx, |stream, cx| stream.poll_flush(cx)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Blocking(b) => match b.tcp.shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(())),
            },
            ClientStream::Async(s) => Pin::new(&mut s.stream).poll_shutdown(cx),
        }
    }
}
