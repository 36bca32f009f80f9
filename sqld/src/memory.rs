//! How much memory a session's result rows hold, against
//! `--max-result-size`. Rows are counted as they are copied out of SQLite,
//! before each copy, at what they really occupy (each value, its heap
//! bytes, per-row and per-allocation overhead), and released when they are
//! dropped: sent to the client, or their portal closed. One budget per
//! session covers every statement of a batch and every suspended portal,
//! so no sequence of messages holds more than the limit.

use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libsql_sys::rusqlite::types::{Value, ValueRef};

use crate::error::{sqlstate, SqlError};

/// What the allocator adds to each allocation, roughly (glibc: a 16-byte
/// header and 16-byte rounding).
const ALLOCATION_OVERHEAD: usize = 16;

/// One session's budget for result rows.
#[derive(Clone)]
pub struct ResultMemory {
    limit: usize,
    held: Arc<AtomicUsize>,
}

impl ResultMemory {
    pub fn new(limit: usize) -> Self {
        ResultMemory {
            limit,
            held: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A new, empty charge against this budget.
    pub fn charge(&self) -> Held {
        Held {
            bytes: 0,
            budget: Some(self.clone()),
        }
    }

    /// Bytes held by this session's rows now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// Bytes counted against a session's budget, given back when dropped. It
/// travels with the rows it counts.
#[derive(Default)]
pub struct Held {
    bytes: usize,
    /// `None`: rows that came from elsewhere, already bounded (a forwarded
    /// statement's reply).
    budget: Option<ResultMemory>,
}

impl Held {
    /// Counts `bytes` more, or refuses with 54000 if the session would then
    /// hold more than its limit.
    pub fn add(&mut self, bytes: usize) -> Result<(), SqlError> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let before = budget.held.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > budget.limit {
            budget.held.fetch_sub(bytes, Ordering::Relaxed);
            return Err(SqlError::new(
                sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "result rows would exceed the server's limit of {} bytes held per session (--max-result-size)",
                    budget.limit
                ),
            ));
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Takes over what `other` (of the same budget) counts: rows that move
    /// from one holder to another stay counted once.
    pub fn absorb(&mut self, mut other: Held) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.held.fetch_sub(self.bytes, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} bytes)", self.bytes)
    }
}

/// What a row of `columns` values costs before its values' own heap bytes:
/// its value slots, its Vec and its place in the result's Vec (counted
/// twice, as a growing Vec may hold up to twice what it uses).
pub fn row_cost(columns: usize) -> usize {
    columns * size_of::<Value>() + ALLOCATION_OVERHEAD + 2 * size_of::<Vec<Value>>()
}

/// The heap bytes a value will hold once copied out of SQLite.
pub fn value_cost(value: &ValueRef<'_>) -> usize {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) if !bytes.is_empty() => {
            bytes.len() + ALLOCATION_OVERHEAD
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_per_session_and_are_given_back_on_drop() {
        let memory = ResultMemory::new(100);
        let mut a = memory.charge();
        a.add(60).unwrap();
        let mut b = memory.charge();
        assert!(b.add(50).is_err(), "60 + 50 is over the limit of 100");
        assert_eq!(memory.held(), 60, "a refused charge holds nothing");
        b.add(40).unwrap();
        drop(a);
        assert_eq!(memory.held(), 40);
        drop(b);
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn rows_cost_more_than_their_values() {
        assert!(row_cost(1) > size_of::<Value>());
        assert_eq!(value_cost(&ValueRef::Null), 0);
        assert_eq!(
            value_cost(&ValueRef::Blob(&[0; 100])),
            100 + ALLOCATION_OVERHEAD
        );
    }
}
