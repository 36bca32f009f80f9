//! The protocol driver for one client connection: TLS negotiation, then a
//! loop that reads frontend messages and hands them to pgwire's dispatcher
//! with sqld's handlers, enforcing the startup/authentication timeout, the
//! idle-in-transaction timeout and graceful shutdown between messages.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{
    negotiate_tls, process_error, process_message, PgWireMessageServerCodec,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::admission::{Place, Refusal};
use super::io::{holds_complete_message, GuardedIo};
use super::stream::ClientStream;
use super::PgShared;
use crate::error::sqlstate;
use crate::scheduler::Session;
use crate::shutdown::Shutdown;

/// The client's TCP socket, kept in the connection's session extensions so
/// its session can notice a hang-up while a statement runs.
pub struct ClientSocket(pub std::os::fd::RawFd);

/// Why the driver stopped waiting for the next message.
#[derive(Clone, Copy)]
enum Stop {
    Shutdown,
    IdleInTransaction,
    /// Idle in a transaction that has held the write lock too long.
    WriteTransactionTimeout,
    /// The client left, timed out authenticating, or sent garbage: nothing
    /// to tell a peer that may not be speaking pg.
    Quietly,
}

impl Stop {
    /// The FATAL the client is sent before the connection closes.
    fn notice(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Stop::Shutdown => Some((
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection due to administrator command",
            )),
            Stop::IdleInTransaction => Some((
                sqlstate::IDLE_IN_TRANSACTION_TIMEOUT,
                "terminating connection due to idle-in-transaction timeout",
            )),
            Stop::WriteTransactionTimeout => Some((
                sqlstate::TRANSACTION_TIMEOUT,
                "terminating connection: the transaction held the write lock longer than the write transaction timeout",
            )),
            Stop::Quietly => None,
        }
    }
}

/// Drives one connection until the client leaves, a fatal error, a timeout
/// or server shutdown.
pub async fn drive(
    tcp: TcpStream,
    shared: Arc<PgShared>,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    let limits = &shared.limits;
    let address = tcp.peer_addr()?.ip();
    // Traded for an authenticated place when authentication succeeds
    // (see `auth`), freed with the connection.
    let admitted = match shared.admission.enter(address) {
        Ok(admitted) => admitted,
        Err(refusal) => {
            shared.metrics.connections_rejected.inc();
            refuse_at_once(&tcp, address, refusal);
            return Ok(());
        }
    };
    let startup_deadline = tokio::time::Instant::now() + limits.startup_timeout;
    match tokio::time::timeout_at(startup_deadline, plausible_first_packet(&tcp)).await {
        Ok(Ok(true)) => {}
        _ => return Ok(()),
    }
    let client_socket = ClientSocket(std::os::fd::AsRawFd::as_raw_fd(&tcp));
    let negotiated =
        tokio::time::timeout_at(startup_deadline, negotiate_tls(tcp, shared.tls.clone())).await;
    let Ok(Some(socket)) = negotiated.unwrap_or(Ok(None)) else {
        return Ok(());
    };
    // Re-frame over the guarded stream; bytes already buffered by the
    // negotiation are fed to the guard so it stays in step.
    let parts = socket.into_parts();
    let stream = ClientStream::new(parts.io, limits.client_write_timeout)?;
    let mut io = GuardedIo::new(stream, limits.max_message_size, shared.metrics.clone());
    io.observe_buffered(&parts.read_buf)?;
    let mut new_parts = FramedParts::new(io, parts.codec);
    new_parts.read_buf = parts.read_buf;
    new_parts.write_buf = parts.write_buf;
    let mut socket: Framed<_, PgWireMessageServerCodec<_>> = Framed::from_parts(new_parts);
    socket.session_extensions().insert(client_socket);
    socket.session_extensions().insert(Place::new(admitted));

    let handlers = Handlers {
        startup: shared.startup.clone(),
        simple: shared.simple.clone(),
        extended: shared.extended.clone(),
        copy: shared.copy.clone(),
        cancel: shared.cancel.clone(),
    };
    socket.get_mut().set_deferred(true);
    // Made once and polled across messages: a fresh future per message
    // would register (and drop) a shutdown waiter or a timer every time.
    let shut_down = shutdown.clone();
    let stopping = shutdown.recv();
    tokio::pin!(stopping);
    let startup_expired = tokio::time::sleep_until(startup_deadline);
    tokio::pin!(startup_expired);
    let idle_expired = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(idle_expired);
    loop {
        let authenticating = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        // Answer once nothing more is pipelined: the client may be waiting.
        if (authenticating || !holds_complete_message(socket.read_buffer()))
            && flush_now(&mut socket).await.is_err()
        {
            break;
        }
        let in_transaction = socket.transaction_status() != TransactionStatus::Idle;
        let now = tokio::time::Instant::now();
        // Idle in a transaction: closed at the idle timeout, or sooner if
        // the transaction's write lock must be given up before it.
        let write_left = socket
            .session_extensions()
            .get::<Arc<Session>>()
            .and_then(|s| s.write_deadline())
            .filter(|_| in_transaction)
            .map(|d| d.saturating_duration_since(now.into_std()));
        let idle_timeout = limits
            .idle_in_transaction_timeout
            .filter(|_| in_transaction);
        let (idle_limit, idle_stop) = match (idle_timeout, write_left) {
            (Some(idle), Some(left)) if idle <= left => (Some(idle), Stop::IdleInTransaction),
            (_, Some(left)) => (Some(left), Stop::WriteTransactionTimeout),
            (idle, None) => (idle, Stop::IdleInTransaction),
        };
        if let Some(limit) = idle_limit {
            idle_expired.as_mut().reset(now + limit);
        }
        // The whole startup has one deadline, however its bytes arrive.
        let read_deadline = if authenticating {
            Some(startup_deadline)
        } else {
            idle_limit.map(|limit| now + limit)
        };
        socket
            .get_mut()
            .stream_mut()
            .set_read_deadline(read_deadline.map(tokio::time::Instant::into_std));
        let next = tokio::select! {
            _ = &mut stopping, if !authenticating => Err(Stop::Shutdown),
            _ = &mut startup_expired, if authenticating => Err(Stop::Quietly),
            _ = &mut idle_expired, if idle_limit.is_some() => Err(idle_stop),
            next = socket.next() => Ok(next),
        };
        let next = match next {
            Ok(Some(Ok(msg))) => Ok(msg),
            // A blocking read's deadline: the startup or idle one.
            Ok(Some(Err(PgWireError::IoError(e)))) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(match idle_limit {
                    Some(_) if !authenticating => idle_stop,
                    _ => Stop::Quietly,
                })
            }
            // Garbage, an oversized message or a closed socket.
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "closing connection after a protocol error");
                Err(Stop::Quietly)
            }
            // The server shut the read side down to end a blocking read.
            Ok(None) if shut_down.is_shutdown() && !authenticating => Err(Stop::Shutdown),
            Ok(None) => Err(Stop::Quietly),
            Err(stop) => Err(stop),
        };
        let msg = match next {
            Ok(msg) => msg,
            Err(stop) => {
                if let Some((code, message)) = stop.notice() {
                    send_fatal(&mut socket, code, message).await;
                }
                break;
            }
        };
        if dispatch(msg, &mut socket, &handlers).await? == Next::Close {
            break;
        }
    }
    let _ = flush_now(&mut socket).await;
    Ok(())
}

/// sqld's handlers, as pgwire's dispatcher takes them.
pub struct Handlers<A, Q, EQ, C, CR> {
    pub startup: Arc<A>,
    pub simple: Arc<Q>,
    pub extended: Arc<EQ>,
    pub copy: Arc<C>,
    pub cancel: Arc<CR>,
}

/// Whether a connection goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Close,
}

/// Hands one message to pgwire's dispatcher and answers the error it may
/// return, as Postgres does: Terminate, a fatal error, an I/O error and a
/// CancelRequest (which comes on a connection of its own) end the
/// connection; other errors are reported and it goes on. The fuzz targets
/// drive connections through this same function.
pub async fn dispatch<S, A, Q, EQ, C, CR>(
    msg: PgWireFrontendMessage,
    socket: &mut Framed<S, PgWireMessageServerCodec<EQ::Statement>>,
    handlers: &Handlers<A, Q, EQ, C, CR>,
) -> std::io::Result<Next>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
    A: StartupHandler,
    Q: SimpleQueryHandler,
    EQ: ExtendedQueryHandler,
    C: CopyHandler,
    CR: CancelHandler,
{
    if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
        return Ok(Next::Close);
    }
    // A COPY started by an Execute ends, on error, by waiting for Sync.
    let is_extended = match socket.state() {
        PgWireConnectionState::CopyInProgress(extended) => extended,
        _ => msg.is_extended_query(),
    };
    let is_cancel = matches!(msg, PgWireFrontendMessage::CancelRequest(_));
    let result = process_message(
        msg,
        socket,
        handlers.startup.clone(),
        handlers.simple.clone(),
        handlers.extended.clone(),
        handlers.copy.clone(),
        handlers.cancel.clone(),
    )
    .await;
    if let Err(e) = result {
        if matches!(e, PgWireError::IoError(_)) {
            return Ok(Next::Close);
        }
        let fatal = e.is_fatal();
        process_error(socket, e, is_extended).await?;
        if fatal {
            return Ok(Next::Close);
        }
    }
    Ok(if is_cancel {
        Next::Close
    } else {
        Next::Continue
    })
}

/// Writes out every response held back so far.
async fn flush_now<S, C>(socket: &mut Framed<GuardedIo<S>, C>) -> std::io::Result<()>
where
    Framed<GuardedIo<S>, C>: futures::Sink<PgWireBackendMessage, Error = std::io::Error> + Unpin,
{
    socket.get_mut().set_deferred(false);
    let flushed = socket.flush().await;
    socket.get_mut().set_deferred(true);
    flushed
}

/// Checks the length prefix of the first packet before pgwire reads it:
/// SSL, GSS, cancel and startup packets are 8 to 10000 bytes long. Direct
/// TLS (a ClientHello, first byte 0x16) is let through to the TLS layer.
async fn plausible_first_packet(tcp: &TcpStream) -> std::io::Result<bool> {
    const TLS_HANDSHAKE: u8 = 0x16;
    const POLL: Duration = Duration::from_millis(5);
    let mut prefix = [0u8; 4];
    loop {
        let n = tcp.peek(&mut prefix).await?;
        if n == 0 {
            return Ok(false);
        }
        if prefix[0] == TLS_HANDSHAKE {
            return Ok(true);
        }
        if n == 4 {
            let len = i32::from_be_bytes(prefix);
            return Ok((8..=super::io::MAX_STARTUP_PACKET as i32).contains(&len));
        }
        // Fewer than four bytes so far: wait for the rest.
        tokio::time::sleep(POLL).await;
    }
}

/// Tells a client refused a place to authenticate in why, without reading
/// from it (the point is not to hold its slot): a FATAL ErrorResponse, which libpq shows whether it sent a
/// startup packet or an SSLRequest first.
fn refuse_at_once(tcp: &TcpStream, address: std::net::IpAddr, refusal: Refusal) {
    tracing::debug!(%address, reason = refusal.message(), "refused a connection");
    let mut fields = Vec::new();
    for (kind, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', sqlstate::TOO_MANY_CONNECTIONS),
        (b'M', refusal.message()),
    ] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    // A plain non-blocking send: the runtime has not polled this socket
    // for writability yet, so its own try_write would refuse.
    let _ = socket2::SockRef::from(tcp).send(&message);
}

async fn send_fatal<S>(socket: &mut S, code: &str, message: &str)
where
    S: futures::Sink<PgWireBackendMessage> + Unpin,
{
    let info = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message.to_owned());
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
}
