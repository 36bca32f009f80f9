//! Entry points for fuzzing: each takes arbitrary bytes, as an attacker
//! would send them, and feeds them to the code that decodes them on a real
//! connection. The `cargo fuzz` targets in `fuzz/` and the seed-corpus
//! replay in `tests/fuzz_corpus.rs` call these same functions, so what the
//! fuzzer explores is what the test suite keeps checking.
//!
//! A target passes when it returns, whatever the input: errors are the
//! expected answer to garbage. A panic (or an abort) is a finding. Where a
//! decoder's output can be re-encoded, the round trip is asserted too.
//!
//! - `pg_startup`: the start of a connection through sqld's own
//!   authentication (`pg::auth`, trust, cleartext or SCRAM-SHA-256) behind
//!   its framing guard (`pg::io`), driven by pgwire exactly as the
//!   connection driver does, over an in-memory stream.
//! - `pg_messages`: every frontend message, in every connection state, as
//!   the framing guard lets it through to pgwire's decoder; password
//!   messages coerced the three ways the mechanisms read them, Bind
//!   parameters decoded as the statement's Parse declared them.
//! - `bind_params`: one parameter value decoded as every type sqld maps,
//!   text and binary, and the decoded value encoded back.
//! - `replica_wire`: what a malicious primary can answer a replica: the
//!   info JSON, a frame batch (raw, or well-checksummed with hostile
//!   pages, which are then injected), a snapshot file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use pgwire::api::{
    ClientInfo, ConnectionManager, DefaultClient, NoopHandler, PgWireConnectionState, Type,
};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::PgWireMessageServerCodec;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Framed};

use crate::config::AuthMethod;
use crate::database::Database;
use crate::pg::auth::{Startup, Users};
use crate::pg::connection::{dispatch, Handlers, Next};
use crate::pg::io::GuardedIo;
use crate::replication::frame::{Frame, PAGE_SIZE};
use crate::replication::inject::{inject, inject_transactions, snapshot_frames};
use crate::replication::log::LogInfo;
use crate::types::{decode_param, encode_field, encode_tagged_field};

/// Message bound used by the targets: small, so the guard's limit is
/// reachable by the fuzzer.
const MAX_MESSAGE: usize = 64 * 1024;
/// The one user the password mechanisms know.
pub const USER: &str = "fuzz";
pub const PASSWORD: &str = "secret";
/// Bound on the messages one input may make a target process, so every
/// input ends quickly whatever it says.
const MAX_MESSAGES: usize = 4096;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime builds")
    })
}

/// The startup handler for `method`, made once: SCRAM's salted password is
/// costly to derive, and every connection of a server shares one handler.
fn startup_handler(method: AuthMethod) -> Arc<Startup> {
    static HANDLERS: OnceLock<[Arc<Startup>; 3]> = OnceLock::new();
    let handlers = HANDLERS.get_or_init(|| {
        let mut users = Users::default();
        users.add(USER, PASSWORD);
        let users = Arc::new(users);
        let make = |m| {
            Arc::new(Startup::new(
                m,
                users.clone(),
                Arc::new(ConnectionManager::new()),
                Arc::default(),
            ))
        };
        [
            make(AuthMethod::Password),
            make(AuthMethod::Cleartext),
            make(AuthMethod::Trust),
        ]
    });
    let index = match method {
        AuthMethod::Password => 0,
        AuthMethod::Cleartext => 1,
        AuthMethod::Trust => 2,
    };
    handlers[index].clone()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5432))
}

/// `data[0]` picks the authentication method (SCRAM, cleartext, trust);
/// the rest is what the client sends after the SSL negotiation.
pub fn pg_startup(data: &[u8]) {
    let Some((&mode, client_bytes)) = data.split_first() else {
        return;
    };
    let method = match mode % 3 {
        0 => AuthMethod::Password,
        1 => AuthMethod::Cleartext,
        _ => AuthMethod::Trust,
    };
    let startup = startup_handler(method);
    runtime().block_on(drive_in_memory(startup, client_bytes.to_vec()));
}

/// The connection driver's loop (`pg::connection::drive`) over an
/// in-memory stream: decode through the guard, hand each message to
/// pgwire's dispatcher with sqld's startup handler, stop on the errors
/// that stop a real connection. Queries, should the client get that far,
/// One registry for every fuzz iteration (making one registers every
/// metric, too slow to do per input).
fn fuzz_metrics() -> Arc<crate::metrics::Metrics> {
    static METRICS: OnceLock<Arc<crate::metrics::Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| Arc::new(crate::metrics::Metrics::new()))
        .clone()
}

/// go to pgwire's no-op handlers: this target is about the way in.
async fn drive_in_memory(startup: Arc<Startup>, client_bytes: Vec<u8>) {
    let (mut client, server) = tokio::io::duplex(MAX_MESSAGE);
    let io = GuardedIo::new(server, MAX_MESSAGE, fuzz_metrics());
    let mut socket = Framed::new(
        io,
        PgWireMessageServerCodec::new(DefaultClient::new(loopback(), false)),
    );
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    let noop = Arc::new(NoopHandler);
    let handlers = Handlers {
        startup,
        simple: noop.clone(),
        extended: noop.clone(),
        copy: noop.clone(),
        cancel: noop,
    };
    let server_side = async move {
        for _ in 0..MAX_MESSAGES {
            let msg = match socket.next().await {
                Some(Ok(msg)) => msg,
                _ => break,
            };
            if !matches!(
                dispatch(msg, &mut socket, &handlers).await,
                Ok(Next::Continue)
            ) {
                break;
            }
        }
        // Dropping the socket ends the client's read below.
    };
    let client_side = async move {
        // The server may stop reading early; a failed write is its answer.
        let _ = client.write_all(&client_bytes).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    };
    let bounded = async {
        tokio::join!(server_side, client_side);
    };
    // Every step above is bounded by the input; the timeout is a backstop
    // that turns a hang into a clear failure rather than a stuck run.
    if tokio::time::timeout(Duration::from_secs(10), bounded)
        .await
        .is_err()
    {
        panic!("the in-memory connection did not finish within 10 s");
    }
}

/// `data[0]`: bit 0 starts before the SSL negotiation (else after it), bit
/// 1 goes on after the startup packet as an authenticated session (else
/// as one still authenticating), bit 2 reads password messages as SCRAM
/// does (else as cleartext authentication does). The rest is the client's
/// byte stream.
pub fn pg_messages(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    // The guard sees every byte before the decoder; in the worst case the
    // bytes arrive one at a time, and what follows a refused header never
    // reaches pgwire.
    let mut guard = GuardedIo::new((), MAX_MESSAGE, fuzz_metrics());
    let mut accepted = stream.len();
    if mode & 1 == 0 {
        // Framing after the SSL negotiation starts with the startup packet.
        for (i, b) in stream.iter().enumerate() {
            if guard.observe_buffered(std::slice::from_ref(b)).is_err() {
                accepted = i;
                break;
            }
        }
    } else {
        // Before it the guard is not in place yet (the server peeks at the
        // first length itself): the negotiation packet is decoded raw.
        accepted = stream.len();
    }
    let mut codec: PgWireMessageServerCodec<()> =
        PgWireMessageServerCodec::new(DefaultClient::new(loopback(), false));
    codec.client_info.set_state(if mode & 1 == 0 {
        PgWireConnectionState::AwaitingStartup
    } else {
        PgWireConnectionState::AwaitingSslRequest
    });
    let after_startup = if mode & 2 == 0 {
        PgWireConnectionState::AuthenticationInProgress
    } else {
        PgWireConnectionState::ReadyForQuery
    };
    let mut buf = BytesMut::from(&stream[..accepted]);
    let mut param_types: Vec<Type> = Vec::new();
    let mut sasl_started = false;
    for _ in 0..MAX_MESSAGES {
        let before = buf.len();
        let msg = match codec.decode(&mut buf) {
            Ok(Some(msg)) => msg,
            Ok(None) | Err(_) => break,
        };
        match msg {
            PgWireFrontendMessage::SslNegotiation(_) => {
                codec
                    .client_info
                    .set_state(PgWireConnectionState::AwaitingStartup);
            }
            PgWireFrontendMessage::Startup(_) => codec.client_info.set_state(after_startup),
            PgWireFrontendMessage::PasswordMessageFamily(raw) => {
                // Read as the mechanism would at this step: SCRAM takes the
                // first as its initial response and the others as
                // responses; cleartext takes each as a password.
                if mode & 4 == 0 {
                    let _ = raw.into_password();
                } else if sasl_started {
                    let _ = raw.into_sasl_response();
                } else {
                    sasl_started = true;
                    let _ = raw.into_sasl_initial_response();
                }
            }
            PgWireFrontendMessage::Parse(parse) => {
                param_types = parse
                    .type_oids
                    .iter()
                    .map(|oid| Type::from_oid(*oid).unwrap_or(Type::UNKNOWN))
                    .collect();
            }
            PgWireFrontendMessage::Bind(bind) => {
                for (i, value) in bind.parameters.iter().enumerate() {
                    let ty = param_types.get(i).cloned().unwrap_or(Type::TEXT);
                    let binary = match bind.parameter_format_codes.as_slice() {
                        [] => false,
                        [one] => *one == 1,
                        codes => codes.get(i) == Some(&1),
                    };
                    let _ = decode_param(value.as_deref(), &ty, binary);
                }
            }
            _ => {}
        }
        if buf.len() >= before && !buf.is_empty() {
            // A decoder that consumed nothing would make no progress.
            break;
        }
    }
}

/// Every type sqld decodes parameters as or encodes results in, plus a
/// few it only passes through as text.
pub fn param_types() -> Vec<Type> {
    vec![
        Type::BOOL,
        Type::INT2,
        Type::INT4,
        Type::INT8,
        Type::OID,
        Type::FLOAT4,
        Type::FLOAT8,
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::BYTEA,
        Type::DATE,
        Type::TIME,
        Type::TIMESTAMP,
        Type::TIMESTAMPTZ,
        Type::JSON,
        Type::JSONB,
        Type::NUMERIC,
        Type::UUID,
        Type::UNKNOWN,
    ]
}

/// The bytes are one parameter value; each type and format decodes it,
/// and what decodes is encoded back as that type in both formats (the
/// path a value takes when a client reads back what it bound). For the
/// types whose binary form is the value itself, the round trip must give
/// the same bytes.
pub fn bind_params(data: &[u8]) {
    let mut out = BytesMut::new();
    for ty in param_types() {
        for binary in [false, true] {
            let Ok(value) = decode_param(Some(data), &ty, binary) else {
                continue;
            };
            for out_binary in [false, true] {
                out.clear();
                let _ = encode_field(&mut out, &value, &ty, out_binary);
            }
            out.clear();
            encode_tagged_field(&mut out, &value);
            let exact = matches!(ty, Type::INT8 | Type::BYTEA | Type::TEXT);
            if binary && exact {
                out.clear();
                encode_field(&mut out, &value, &ty, true)
                    .unwrap_or_else(|e| panic!("{ty} value decoded but does not encode: {e:?}"));
                assert_eq!(&out[4..], data, "{ty} binary round trip changed the bytes");
            }
        }
    }
    assert!(matches!(
        decode_param(None, &Type::INT8, true),
        Ok(libsql_sys::rusqlite::types::Value::Null)
    ));
}

/// Scratch databases for the injecting modes, on tmpfs when there is one.
fn scratch_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "sqld-fuzz-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Removes a scratch directory when dropped, panicking or not.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Frames a hostile batch describes, see `replica_wire`.
const MAX_HOSTILE_FRAMES: usize = 16;

/// `data[0] % 4` picks what the primary answers: 0 the info JSON, 1 a raw
/// frame batch, 2 a batch with valid checksums built from the input (a
/// header byte `k`, then `k` pairs of page number and commit size, then
/// the pages), 3 a snapshot file. Batches that decode and snapshots are
/// injected into a fresh replica database, which is then read: a hostile
/// page must give an error (SQLite's corruption checks), never a crash.
pub fn replica_wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok(info) = serde_json::from_slice::<LogInfo>(rest) {
                let again = serde_json::to_vec(&info).expect("LogInfo serializes");
                let back: LogInfo = serde_json::from_slice(&again).expect("LogInfo round trips");
                assert_eq!(back, info);
            }
        }
        1 => {
            if let Ok(frames) = Frame::decode_all(Bytes::copy_from_slice(rest)) {
                let mut again = BytesMut::new();
                for f in &frames {
                    f.encode(&mut again);
                }
                assert_eq!(&again[..], rest, "a decoded batch re-encodes to its bytes");
                apply_batch(&frames);
            }
        }
        2 => {
            let Some((&k, rest)) = rest.split_first() else {
                return;
            };
            let k = (k as usize % MAX_HOSTILE_FRAMES) + 1;
            let Some(headers) = rest.get(..2 * k) else {
                return;
            };
            let pages = &rest[2 * k..];
            let mut batch = BytesMut::new();
            for (i, pair) in headers.chunks(2).enumerate() {
                let mut page = vec![0u8; PAGE_SIZE];
                let from = (i * PAGE_SIZE).min(pages.len());
                let to = ((i + 1) * PAGE_SIZE).min(pages.len());
                page[..to - from].copy_from_slice(&pages[from..to]);
                Frame {
                    frame_no: i as u64 + 1,
                    page_no: u32::from(pair[0]),
                    size_after: u32::from(pair[1]),
                    page: Bytes::from(page),
                }
                .encode(&mut batch);
            }
            let frames = Frame::decode_all(batch.freeze()).expect("well-checksummed batch decodes");
            apply_batch(&frames);
        }
        _ => load_snapshot(rest),
    }
}

/// What a replica does with a decoded batch: whole transactions only, in
/// a fresh database, then reads it back.
fn apply_batch(frames: &[Frame]) {
    let end = frames
        .iter()
        .rposition(Frame::is_commit)
        .map_or(0, |i| i + 1);
    if end == 0 {
        return;
    }
    let scratch = Scratch(scratch_dir());
    let db = Database::open_replica(&scratch.0, Duration::from_millis(100))
        .expect("a scratch replica database opens");
    let conn = db.apply_connection().expect("the apply connection opens");
    let _ = inject_transactions(&conn, &frames[..end]);
    drop(conn);
    read_back(&db);
}

/// What a replica does with a snapshot file: its pages as one injected
/// transaction (the size padded to whole pages, as a file the replica
/// wrote would not be), then reads it back.
fn load_snapshot(bytes: &[u8]) {
    let mut file = bytes.to_vec();
    file.resize(bytes.len().div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE, 0);
    let pages = (file.len() / PAGE_SIZE) as u32;
    let scratch = Scratch(scratch_dir());
    let db = Database::open_replica(&scratch.0, Duration::from_millis(100))
        .expect("a scratch replica database opens");
    let conn = db.apply_connection().expect("the apply connection opens");
    let mut read_error = None;
    let _ = inject(
        &conn,
        snapshot_frames(std::io::Cursor::new(file), pages, &mut read_error),
    );
    drop(conn);
    read_back(&db);
}

/// Reads a database the way its first clients would: the schema, an
/// integrity check, every table's rows. Errors are fine; the point is that
/// SQLite meets the hostile pages without crashing.
fn read_back(db: &Database) {
    let Ok(conn) = db.connect() else {
        return;
    };
    let _ = conn.query_row("PRAGMA integrity_check", [], |_| Ok(()));
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 8")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
        })
        .unwrap_or_default();
    for table in tables {
        let sql = format!("SELECT * FROM \"{}\" LIMIT 100", table.replace('"', "\"\""));
        if let Ok(mut stmt) = conn.prepare(&sql) {
            let columns = stmt.column_count();
            if let Ok(mut rows) = stmt.query([]) {
                while let Ok(Some(row)) = rows.next() {
                    for c in 0..columns {
                        let _ = row.get_ref(c);
                    }
                }
            }
        }
    }
}
