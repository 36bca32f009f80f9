//! `sqlite3_stmt`: one statement prepared on the server.
//!
//! Round trips: `prepare` is one (Parse + Describe + Sync: syntax errors
//! and result columns are known before the first step, as in SQLite). The
//! first `step` is one (Bind + Describe + Execute + Sync) and brings every
//! row back; the following steps read prefetched rows with no round trip.
//! Bound values travel in binary with their own type (int8, float8, text,
//! bytea), so a parameter keeps its storage class: when the bound types
//! differ from those the server statement was parsed with, a fresh Parse
//! rides in the same pipeline as the Bind.

use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::{Mutex, MutexGuard};

use bytes::{BufMut, BytesMut};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;

use crate::codes::*;
use crate::db::{sqlite3, Column, DbState};
use crate::scan::Scanned;
use crate::value::{SqliteValue, Value};

/// Postgres type OIDs for bound values (0: let the server decide).
const OID_INT8: u32 = 20;
const OID_FLOAT8: u32 = 701;
const OID_TEXT: u32 = 25;
const OID_BYTEA: u32 = 17;
const BINARY: i16 = 1;
/// Forces a new Parse at the next step (after a failed one).
const UNPARSED: u32 = u32::MAX;

#[allow(non_camel_case_types)]
pub struct sqlite3_stmt {
    pub db: *const sqlite3,
    state: Mutex<StmtState>,
}

// The connection outlives its statements (close refuses or defers while
// any is live) and every access goes through the mutexes.
unsafe impl Send for sqlite3_stmt {}
unsafe impl Sync for sqlite3_stmt {}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    /// Not run since prepare or reset.
    Ready,
    /// Run; rows may remain.
    Running,
    /// Ran to completion or failed: the next step re-runs it.
    Done,
}

pub struct StmtState {
    pub sql: CString,
    /// Parameter names by index - 1.
    pub params: Vec<Option<CString>>,
    /// For each parameter index, its 1-based slot in the Bind message: sqld
    /// binds `$N`/`?N` to its number N and others by index.
    slots: Vec<usize>,
    pub bound: Vec<Value>,
    server_name: String,
    server_types: Vec<u32>,
    pub columns: Vec<Column>,
    rows: VecDeque<Vec<SqliteValue>>,
    pub current: Option<Vec<SqliteValue>>,
    phase: Phase,
    /// The error of the last step, which reset reports once.
    last_error: i32,
    pub readonly: bool,
    pub explain: bool,
}

impl sqlite3_stmt {
    pub fn lock(&self) -> MutexGuard<'_, StmtState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn db(&self) -> &sqlite3 {
        // SAFETY: see the Send/Sync note above.
        unsafe { &*self.db }
    }
}

/// Prepares the statement `sql` (the first of a script, as scanned) on the
/// server. `Err` carries the SQLite code, already recorded on `db`.
pub fn prepare(
    db_handle: &sqlite3,
    db: &mut DbState,
    sql: &str,
    scanned: &Scanned,
) -> Result<Box<sqlite3_stmt>, i32> {
    let name = db.new_statement_name();
    let mut buf = BytesMut::new();
    let untyped = vec![0u32; scanned.params.len()];
    let encoded = frontend::parse(&name, sql, untyped.iter().copied(), &mut buf)
        .and_then(|_| frontend::describe(b'S', &name, &mut buf));
    if let Err(e) = encoded {
        db.set_error(SQLITE_TOOBIG, &e.to_string());
        return Err(SQLITE_TOOBIG);
    }
    let reply = db.exchange(&buf);
    if let Some(error) = reply.error {
        db.close_later(&name);
        return Err(db.fail(&error));
    }
    db.clear_error();
    let params: Vec<Option<CString>> = scanned
        .params
        .iter()
        .map(|p| p.as_ref().and_then(|n| CString::new(n.as_str()).ok()))
        .collect();
    let slots = scanned
        .params
        .iter()
        .enumerate()
        .map(|(i, name)| {
            name.as_deref()
                .and_then(|n| n.strip_prefix(['$', '?']))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(i + 1)
        })
        .collect();
    let state = StmtState {
        sql: CString::new(sql).unwrap_or_default(),
        bound: vec![Value::Null; params.len()],
        params,
        slots,
        server_name: name,
        server_types: untyped,
        columns: reply.columns.unwrap_or_default(),
        rows: VecDeque::new(),
        current: None,
        phase: Phase::Ready,
        last_error: SQLITE_OK,
        readonly: scanned.readonly(),
        explain: scanned.keywords.first().is_some_and(|k| k == "EXPLAIN"),
    };
    db_handle
        .live_statements
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Ok(Box::new(sqlite3_stmt {
        db: db_handle,
        state: Mutex::new(state),
    }))
}

impl StmtState {
    /// `sqlite3_step`.
    pub fn step(&mut self, db: &mut DbState) -> i32 {
        if self.phase == Phase::Running {
            return self.next_row(db);
        }
        // After SQLITE_DONE or an error, step starts over (SQLite's
        // automatic reset).
        self.rows.clear();
        self.current = None;
        let rc = self.run(db);
        if rc != SQLITE_OK {
            self.phase = Phase::Done;
            self.last_error = rc;
            return rc;
        }
        self.phase = Phase::Running;
        self.next_row(db)
    }

    fn next_row(&mut self, db: &mut DbState) -> i32 {
        db.clear_error();
        self.current = self.rows.pop_front();
        if self.current.is_some() {
            SQLITE_ROW
        } else {
            self.phase = Phase::Done;
            SQLITE_DONE
        }
    }

    /// Runs the statement with its bindings: one round trip.
    fn run(&mut self, db: &mut DbState) -> i32 {
        let width = self.slots.iter().copied().max().unwrap_or(0);
        let mut values: Vec<&Value> = vec![&Value::Null; width];
        for (i, slot) in self.slots.iter().enumerate() {
            values[slot - 1] = &self.bound[i];
        }
        let types: Vec<u32> = values.iter().map(|v| oid_for(v)).collect();
        let mut buf = BytesMut::new();
        if types != self.server_types {
            let _ = frontend::close(b'S', &self.server_name, &mut buf);
            self.server_name = db.new_statement_name();
            let sql = self.sql.to_str().unwrap_or_default();
            if let Err(e) = frontend::parse(&self.server_name, sql, types.iter().copied(), &mut buf)
            {
                db.set_error(SQLITE_TOOBIG, &e.to_string());
                return SQLITE_TOOBIG;
            }
            self.server_types = types;
        }
        let formats: &[i16] = if width > 0 { &[BINARY] } else { &[] };
        let bound = frontend::bind(
            "",
            &self.server_name,
            formats.iter().copied(),
            values,
            |v, buf| Ok(encode(v, buf)),
            [BINARY],
            &mut buf,
        );
        if bound.is_err() {
            db.set_error(SQLITE_TOOBIG, "a bound value is too big for one message");
            return SQLITE_TOOBIG;
        }
        let _ = frontend::describe(b'P', "", &mut buf);
        let _ = frontend::execute("", 0, &mut buf);
        let reply = db.exchange(&buf);
        if let Some(error) = reply.error {
            self.server_types = vec![UNPARSED];
            return db.fail(&error);
        }
        if let Some(columns) = reply.columns {
            self.columns = columns;
        }
        if let Some(tag) = &reply.tag {
            db.apply_tag(tag);
        }
        self.rows = reply.rows.into();
        SQLITE_OK
    }

    /// `sqlite3_reset`: back to the start; reports the last step's error.
    pub fn reset(&mut self) -> i32 {
        self.phase = Phase::Ready;
        self.rows.clear();
        self.current = None;
        std::mem::replace(&mut self.last_error, SQLITE_OK)
    }

    pub fn busy(&self) -> bool {
        self.phase == Phase::Running && self.current.is_some()
    }

    /// Stores a binding; only allowed while the statement is not running.
    pub fn bind(&mut self, index: i32, value: Value) -> i32 {
        if self.phase == Phase::Running {
            return SQLITE_MISUSE;
        }
        match usize::try_from(index)
            .ok()
            .filter(|i| (1..=self.bound.len()).contains(i))
        {
            Some(i) => {
                self.bound[i - 1] = value;
                SQLITE_OK
            }
            None => SQLITE_RANGE,
        }
    }

    /// `sqlite3_finalize`'s part: the server statement is closed with the
    /// connection's next exchange.
    pub fn release(&mut self, db: &mut DbState) {
        db.close_later(&self.server_name);
    }

    pub fn cell(&mut self, col: i32) -> Option<&mut SqliteValue> {
        let col = usize::try_from(col).ok()?;
        self.current.as_mut()?.get_mut(col)
    }

    /// `sqlite3_expanded_sql`: parameters replaced by their literals.
    pub fn expanded_sql(&self) -> String {
        let sql = self.sql.to_string_lossy();
        let mut out = String::with_capacity(sql.len());
        let mut rest: &str = &sql;
        let mut anonymous = 0usize;
        let mut seen_max = 0usize;
        while let Some(pos) = rest.find(['?', ':', '@', '$', '\'']) {
            out.push_str(&rest[..pos]);
            let tail = &rest[pos..];
            if let Some(literal) = tail.strip_prefix('\'') {
                // A string literal: copy it through its closing quote.
                let end = literal.find('\'').map_or(tail.len(), |e| e + 2);
                out.push_str(&tail[..end]);
                rest = &tail[end..];
                continue;
            }
            let len = 1 + tail[1..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(tail.len() - 1);
            let token = &tail[..len];
            let index = if token == "?" {
                anonymous = seen_max.max(anonymous) + 1;
                Some(anonymous)
            } else {
                self.params
                    .iter()
                    .position(|p| p.as_ref().is_some_and(|n| n.to_bytes() == token.as_bytes()))
                    .map(|i| i + 1)
            };
            match index {
                Some(i) if len > 1 || token == "?" => {
                    seen_max = seen_max.max(i);
                    out.push_str(&self.bound[i - 1].to_sql_literal());
                }
                _ => out.push_str(token),
            }
            rest = &tail[len..];
        }
        out.push_str(rest);
        out
    }
}

fn oid_for(v: &Value) -> u32 {
    match v {
        Value::Null => 0,
        Value::Integer(_) => OID_INT8,
        Value::Real(_) => OID_FLOAT8,
        Value::Text(_) => OID_TEXT,
        Value::Blob(_) => OID_BYTEA,
    }
}

fn encode(v: &Value, buf: &mut BytesMut) -> IsNull {
    match v {
        Value::Null => return IsNull::Yes,
        Value::Integer(i) => buf.put_i64(*i),
        Value::Real(f) => buf.put_f64(*f),
        Value::Text(b) | Value::Blob(b) => buf.put_slice(b),
    }
    IsNull::No
}
