//! The client's byte stream. Plain TCP is read and written with blocking
//! system calls: the connection has a thread of its own, so waiting for the
//! next message is one recv the thread sleeps in, rather than an
//! epoll_wait, a wake-up and then the recv. TLS streams stay on the
//! thread's runtime.
//!
//! A blocking read cannot be raced against a timer or the shutdown signal,
//! so instead it waits at most the read timeout the driver sets before
//! each message (then fails with `TimedOut`), and the server ends reads at
//! shutdown by shutting the socket's read side (`server`).

use std::io::{self, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pgwire::tokio::server::MaybeTls;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub enum ClientStream {
    Blocking(BlockingTcp),
    Async(MaybeTls),
}

impl ClientStream {
    /// Plain TCP becomes blocking; anything else stays as it is.
    pub fn new(negotiated: MaybeTls) -> io::Result<Self> {
        Ok(match negotiated {
            MaybeTls::Plain(tcp) => {
                let tcp = tcp.into_std()?;
                tcp.set_nonblocking(false)?;
                ClientStream::Blocking(BlockingTcp {
                    tcp,
                    read_timeout: None,
                })
            }
            other => ClientStream::Async(other),
        })
    }

    /// How long the next read may wait (blocking streams; the driver's
    /// timers cover the others).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            ClientStream::Blocking(b) if b.read_timeout != timeout => {
                b.tcp.set_read_timeout(timeout)?;
                b.read_timeout = timeout;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

pub struct BlockingTcp {
    tcp: std::net::TcpStream,
    /// What SO_RCVTIMEO is set to, to set it only when it changes.
    read_timeout: Option<Duration>,
}

impl BlockingTcp {
    fn read(&mut self, buf: &mut ReadBuf<'_>) -> io::Result<()> {
        let socket = socket2::SockRef::from(&self.tcp);
        loop {
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
                // SO_RCVTIMEO expired.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no message within the read timeout",
                    ))
                }
                Err(e) => return Err(e),
            }
        }
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
            ClientStream::Async(s) => Pin::new(s).poll_read(cx, buf),
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
            ClientStream::Async(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Blocking(_) => Poll::Ready(Ok(())),
            ClientStream::Async(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Blocking(b) => match b.tcp.shutdown(Shutdown::Write) {
                Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
                _ => Poll::Ready(Ok(())),
            },
            ClientStream::Async(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
