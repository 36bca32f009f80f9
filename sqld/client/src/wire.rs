//! One Postgres protocol connection, synchronous: a `TcpStream` (optionally
//! TLS through rustls), the startup exchange with authentication
//! (cleartext, MD5, SCRAM-SHA-256), and framed message I/O. Messages are
//! built and parsed with the `postgres-protocol` crate; the caller
//! pipelines a whole exchange into one write and reads until
//! ReadyForQuery.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::{backend::Message, frontend};

use crate::target::{Target, TlsMode};

/// The startup parameter that asks sqld for the SQLite API dialect (its
/// `pg::sqlite_api` module): storage-class-tagged values, SQLite's
/// transaction rule on errors, the rowid in INSERT tags.
pub const SQLITE_API_PARAMETER: &str = "sqld.sqlite_api";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Exchanges with the server that waited for a reply, process-wide: the
/// measure of how chatty the library is (`sqld_client_round_trips`).
pub static ROUND_TRIPS: AtomicI64 = AtomicI64::new(0);

/// An error the server reported, or a failure to talk to it.
#[derive(Debug, Clone)]
pub enum WireError {
    Server { sqlstate: String, message: String },
    Io(String),
}

impl From<io::Error> for WireError {
    fn from(e: io::Error) -> Self {
        WireError::Io(e.to_string())
    }
}

impl WireError {
    pub fn message(&self) -> String {
        match self {
            WireError::Server { message, .. } => message.clone(),
            WireError::Io(m) => format!("lost connection to the sqld server: {m}"),
        }
    }
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// What `sqlite3_interrupt` needs to send a CancelRequest from another
/// thread without touching the busy connection.
#[derive(Debug, Clone)]
pub struct CancelKey {
    pub addr: std::net::SocketAddr,
    pub process_id: i32,
    pub secret_key: i32,
}

impl CancelKey {
    pub fn cancel(&self) -> io::Result<()> {
        let mut s = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)?;
        let mut buf = BytesMut::new();
        frontend::cancel_request(self.process_id, self.secret_key, &mut buf);
        s.write_all(&buf)
    }
}

pub struct Wire {
    io: Transport,
    rbuf: BytesMut,
    /// ReadyForQuery's last transaction status: b'I', b'T' or b'E'.
    pub status: u8,
    pub cancel: Option<CancelKey>,
}

impl Wire {
    pub fn connect(target: &Target) -> Result<Wire, WireError> {
        let addrs: Vec<_> = (target.host.as_str(), target.port)
            .to_socket_addrs()?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address for the host");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or(last)?;
        tcp.set_nodelay(true)?;
        let addr = tcp.peer_addr()?;
        let io = match target.tls {
            TlsMode::Disable => Transport::Plain(tcp),
            TlsMode::Require => start_tls(tcp, &target.host)?,
        };
        let mut wire = Wire {
            io,
            rbuf: BytesMut::with_capacity(8192),
            status: b'I',
            cancel: None,
        };
        wire.startup(target, addr)?;
        Ok(wire)
    }

    fn startup(&mut self, target: &Target, addr: std::net::SocketAddr) -> Result<(), WireError> {
        let mut buf = BytesMut::new();
        let params = [
            ("user", target.user.as_str()),
            ("database", target.dbname.as_str()),
            ("client_encoding", "UTF8"),
            ("application_name", "sqld-libsqlite3"),
            (SQLITE_API_PARAMETER, "on"),
        ];
        frontend::startup_message(params, &mut buf)?;
        self.send(&buf)?;
        let password = || {
            target.password.clone().ok_or_else(|| WireError::Server {
                sqlstate: "28P01".into(),
                message: "the server asks for a password and the URL has none".into(),
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let mut out = BytesMut::new();
            match self.next()? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(password()?.as_bytes(), &mut out)?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash = postgres_protocol::authentication::md5_hash(
                        target.user.as_bytes(),
                        password()?.as_bytes(),
                        body.salt(),
                    );
                    frontend::password_message(hash.as_bytes(), &mut out)?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut has_scram = false;
                    while let Some(m) = mechanisms.next()? {
                        has_scram |= m == SCRAM_SHA_256;
                    }
                    if !has_scram {
                        return Err(WireError::Io(
                            "the server offers no supported SASL mechanism".into(),
                        ));
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        WireError::Io("SASL continue without a SASL exchange".into())
                    })?;
                    s.update(body.data())?;
                    frontend::sasl_response(s.message(), &mut out)?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    if let Some(s) = scram.as_mut() {
                        s.finish(body.data())?;
                    }
                }
                Message::BackendKeyData(body) => {
                    self.cancel = Some(CancelKey {
                        addr,
                        process_id: body.process_id(),
                        secret_key: body.secret_key(),
                    });
                }
                Message::ReadyForQuery(body) => {
                    self.status = body.status();
                    return Ok(());
                }
                Message::ErrorResponse(body) => return Err(server_error(body.fields())),
                _ => {}
            }
            if !out.is_empty() {
                self.send(&out)?;
            }
        }
    }

    /// Writes a pipelined exchange and counts it as one round trip.
    pub fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
        self.io.write_all(buf)?;
        self.io.flush()
    }

    /// Writes messages that need no reply of their own (Terminate).
    pub fn send_quietly(&mut self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf)?;
        self.io.flush()
    }

    /// The next backend message.
    pub fn next(&mut self) -> io::Result<Message> {
        loop {
            if let Some(message) = Message::parse(&mut self.rbuf)? {
                return Ok(message);
            }
            self.rbuf.reserve(8192);
            let mut chunk = [0u8; 16384];
            let n = self.io.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The SQLSTATE and message of an ErrorResponse.
pub fn server_error(mut fields: postgres_protocol::message::backend::ErrorFields<'_>) -> WireError {
    let mut sqlstate = String::from("XX000");
    let mut message = String::new();
    while let Ok(Some(field)) = fields.next() {
        match field.type_() {
            b'C' => sqlstate = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(field.value_bytes()).into_owned(),
            _ => {}
        }
    }
    WireError::Server { sqlstate, message }
}

/// SSLRequest, then TLS without certificate checks: libpq's
/// `sslmode=require` (encryption against passive eavesdropping only).
fn start_tls(mut tcp: TcpStream, host: &str) -> Result<Transport, WireError> {
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    tcp.write_all(&buf)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)?;
    if answer[0] != b'S' {
        return Err(WireError::Io(
            "sslmode=require but the server does not offer TLS".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| WireError::Io(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| WireError::Io(format!("invalid TLS server name {host}: {e}")))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| WireError::Io(e.to_string()))?;
    Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(
        conn, tcp,
    ))))
}

/// `sslmode=require` checks signatures (the handshake must be genuine) but
/// not who signed the certificate.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
