//! `sqlite3`, the connection handle: a mutex around the protocol
//! connection and the per-connection state SQLite reports (error code and
//! message, changes, last rowid, autocommit), and the exchange that runs
//! one pipelined request and collects its reply. Every API call on a
//! connection (and on its statements) holds the mutex for its whole
//! exchange, so threads sharing a connection are serialized, as in
//! SQLite's serialized threading mode.

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend::Message, frontend};

use crate::codes::*;
use crate::value::{SqliteValue, Value};
use crate::wire::{server_error, CancelKey, Wire, WireError};

#[allow(non_camel_case_types)]
pub struct sqlite3 {
    state: Mutex<DbState>,
    /// Set once at open; `sqlite3_interrupt` uses it from any thread
    /// without waiting for the mutex a running statement holds.
    pub cancel: Option<CancelKey>,
    /// Statements not yet finalized: `sqlite3_close` refuses while any
    /// live, `sqlite3_close_v2` defers the close to the last finalize.
    pub live_statements: AtomicUsize,
    pub zombie: AtomicBool,
}

/// A result column as the server described it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: CString,
    pub decltype: Option<&'static CStr>,
}

/// What one exchange brought back.
#[derive(Default)]
pub struct Reply {
    pub params: Option<usize>,
    /// `Some` when the server described the result: empty for NoData.
    pub columns: Option<Vec<Column>>,
    pub rows: Vec<Vec<SqliteValue>>,
    pub tag: Option<String>,
    pub error: Option<WireError>,
}

pub struct DbState {
    wire: Option<Wire>,
    pub errcode: i32,
    errmsg: CString,
    pub changes: i64,
    pub total_changes: i64,
    pub last_rowid: i64,
    next_name: u64,
    /// Close messages of finalized statements, sent with the next exchange
    /// rather than costing a round trip of their own.
    pending_closes: BytesMut,
    pub filename: CString,
}

impl sqlite3 {
    pub fn open(filename: &str) -> sqlite3 {
        let mut state = DbState {
            wire: None,
            errcode: SQLITE_OK,
            errmsg: CString::default(),
            changes: 0,
            total_changes: 0,
            last_rowid: 0,
            next_name: 0,
            pending_closes: BytesMut::new(),
            filename: CString::new(filename).unwrap_or_default(),
        };
        let connected = crate::target::resolve(filename)
            .map_err(|e| (SQLITE_CANTOPEN, e.0))
            .and_then(|target| {
                Wire::connect(&target).map_err(|e| {
                    let code = match &e {
                        WireError::Server { sqlstate, message } => {
                            for_sqlstate(sqlstate, message).max(SQLITE_CANTOPEN)
                        }
                        WireError::Io(_) => SQLITE_CANTOPEN,
                    };
                    let what = match e {
                        WireError::Server { message, .. } => message,
                        WireError::Io(m) => m,
                    };
                    (
                        code,
                        format!(
                            "cannot connect to sqld at {}:{}: {what}",
                            target.host, target.port
                        ),
                    )
                })
            });
        let cancel = match connected {
            Ok(wire) => {
                let cancel = wire.cancel.clone();
                state.wire = Some(wire);
                cancel
            }
            Err((code, message)) => {
                state.set_error(code, &message);
                None
            }
        };
        sqlite3 {
            state: Mutex::new(state),
            cancel,
            live_statements: AtomicUsize::new(0),
            zombie: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, DbState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DbState {
    pub fn set_error(&mut self, code: i32, message: &str) {
        self.errcode = code;
        self.errmsg = CString::new(message.replace('\0', " ")).unwrap_or_default();
    }

    pub fn clear_error(&mut self) {
        self.errcode = SQLITE_OK;
        self.errmsg = CString::default();
    }

    /// Records a failed exchange and returns its SQLite code.
    pub fn fail(&mut self, error: &WireError) -> i32 {
        let code = match error {
            WireError::Server { sqlstate, message } => for_sqlstate(sqlstate, message),
            WireError::Io(_) => SQLITE_IOERR,
        };
        self.set_error(code, &error.message());
        code
    }

    pub fn errmsg_ptr(&self) -> *const libc::c_char {
        if self.errcode == SQLITE_OK || self.errmsg.as_bytes().is_empty() {
            errstr(self.errcode).as_ptr()
        } else {
            self.errmsg.as_ptr()
        }
    }

    pub fn autocommit(&self) -> bool {
        self.wire.as_ref().is_none_or(|w| w.status == b'I')
    }

    pub fn new_statement_name(&mut self) -> String {
        self.next_name += 1;
        format!("sqlite3_{}", self.next_name)
    }

    /// Queues the server-side statement's Close for the next exchange.
    pub fn close_later(&mut self, name: &str) {
        let _ = frontend::close(b'S', name, &mut self.pending_closes);
    }

    /// Sends `messages` (after any queued Closes) with a Sync, and reads
    /// the reply up to ReadyForQuery: one round trip.
    pub fn exchange(&mut self, messages: &[u8]) -> Reply {
        let mut reply = Reply::default();
        let Some(wire) = self.wire.as_mut() else {
            reply.error = Some(WireError::Io("the connection is closed".into()));
            return reply;
        };
        let mut buf = std::mem::take(&mut self.pending_closes);
        buf.extend_from_slice(messages);
        frontend::sync(&mut buf);
        if let Err(e) = read_reply(wire, &buf, &mut reply) {
            // The stream is out of step now: drop it.
            self.wire = None;
            reply.error = Some(WireError::Io(e.to_string()));
        }
        reply
    }

    /// Applies a CommandComplete tag to changes and the last rowid.
    pub fn apply_tag(&mut self, tag: &str) {
        let mut words = tag.split(' ');
        let verb = words.next().unwrap_or("");
        let numbers: Vec<i64> = words.filter_map(|w| w.parse().ok()).collect();
        match (verb, numbers.as_slice()) {
            ("INSERT", [rowid, count]) => {
                self.changes = *count;
                self.total_changes += *count;
                if *rowid != 0 {
                    self.last_rowid = *rowid;
                }
            }
            ("UPDATE" | "DELETE", [count]) => {
                self.changes = *count;
                self.total_changes += *count;
            }
            _ => {}
        }
    }

    /// Ends the session politely.
    pub fn terminate(&mut self) {
        if let Some(mut wire) = self.wire.take() {
            let mut buf = BytesMut::new();
            frontend::terminate(&mut buf);
            let _ = wire.send_quietly(&buf);
        }
    }
}

fn read_reply(wire: &mut Wire, request: &[u8], reply: &mut Reply) -> std::io::Result<()> {
    wire.send(request)?;
    loop {
        match wire.next()? {
            Message::ParameterDescription(body) => {
                reply.params = Some(body.parameters().count()?);
            }
            Message::RowDescription(body) => {
                let mut columns = Vec::new();
                let mut fields = body.fields();
                while let Some(field) = fields.next()? {
                    columns.push(Column {
                        name: CString::new(field.name()).unwrap_or_default(),
                        decltype: decltype_for_oid(field.type_oid()),
                    });
                }
                reply.columns = Some(columns);
            }
            Message::NoData => reply.columns = Some(Vec::new()),
            Message::DataRow(body) => {
                let buf = body.buffer();
                let mut row = Vec::new();
                let mut ranges = body.ranges();
                while let Some(range) = ranges.next()? {
                    let field = range.map(|r| &buf[r]);
                    row.push(SqliteValue::new(Value::from_tagged(field)));
                }
                reply.rows.push(row);
            }
            Message::CommandComplete(body) => reply.tag = Some(body.tag()?.to_owned()),
            Message::EmptyQueryResponse => reply.tag = Some(String::new()),
            Message::ErrorResponse(body) if reply.error.is_none() => {
                reply.error = Some(server_error(body.fields()));
            }
            Message::ReadyForQuery(body) => {
                wire.status = body.status();
                return Ok(());
            }
            _ => {}
        }
    }
}

/// `sqlite3_column_decltype` from the Postgres type sqld chose for the
/// column (from its declared type when it has one): the SQLite spelling
/// of that type. An expression column gets the name of its values' type
/// where SQLite would give NULL.
fn decltype_for_oid(oid: u32) -> Option<&'static CStr> {
    Some(match oid {
        20 | 21 | 23 => c"INTEGER",
        700 | 701 => c"REAL",
        25 => c"TEXT",
        1043 => c"VARCHAR",
        17 => c"BLOB",
        16 => c"BOOLEAN",
        1082 => c"DATE",
        1083 => c"TIME",
        1114 => c"TIMESTAMP",
        1184 => c"TIMESTAMPTZ",
        1700 => c"NUMERIC",
        114 => c"JSON",
        3802 => c"JSONB",
        _ => return None,
    })
}
