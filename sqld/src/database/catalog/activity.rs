//! `pg_stat_activity` and `pg_stat_replication`: live server state, not
//! schema. Each is a view over `json_each` of a function that snapshots
//! that state as a JSON array, so the state is read only by a statement
//! naming the view, and ordinary statements pay nothing for it.

use std::sync::Arc;
use std::time::Duration;

use libsql_sys::rusqlite::functions::FunctionFlags;
use libsql_sys::rusqlite::{Connection, Result};
use serde_json::{json, Value as Json};

use crate::activity::{Sessions, Snapshot};
use crate::replication::log::ReplicationLog;

/// A replica shows in `pg_stat_replication` this long after its last poll
/// (a long-poll lasts at most 30 s, so a live replica is never missing).
pub const REPLICA_WINDOW: Duration = Duration::from_secs(30);

/// The views, built with the rest of the catalog.
pub const VIEWS: &str = "
     CREATE VIEW pg_catalog.pg_stat_activity AS SELECT
         json_extract(value, '$.datid') AS datid, json_extract(value, '$.datname') AS datname,
         json_extract(value, '$.pid') AS pid, NULL AS leader_pid, 10 AS usesysid,
         json_extract(value, '$.usename') AS usename,
         json_extract(value, '$.application_name') AS application_name,
         json_extract(value, '$.client_addr') AS client_addr, NULL AS client_hostname,
         json_extract(value, '$.client_port') AS client_port,
         json_extract(value, '$.backend_start') AS backend_start,
         json_extract(value, '$.xact_start') AS xact_start,
         json_extract(value, '$.query_start') AS query_start,
         json_extract(value, '$.state_change') AS state_change,
         NULL AS wait_event_type, NULL AS wait_event,
         json_extract(value, '$.state') AS state, NULL AS backend_xid, NULL AS backend_xmin,
         NULL AS query_id, json_extract(value, '$.query') AS query,
         'client backend' AS backend_type
         FROM json_each(sqld_stat_activity());
     CREATE VIEW pg_catalog.pg_stat_replication AS SELECT
         json_extract(value, '$.pid') AS pid, 10 AS usesysid, 'sqld' AS usename,
         json_extract(value, '$.application_name') AS application_name,
         NULL AS client_addr, NULL AS client_hostname, NULL AS client_port,
         NULL AS backend_start, NULL AS backend_xmin, 'streaming' AS state,
         json_extract(value, '$.lsn') AS sent_lsn, json_extract(value, '$.lsn') AS write_lsn,
         json_extract(value, '$.lsn') AS flush_lsn, json_extract(value, '$.lsn') AS replay_lsn,
         json_extract(value, '$.lag') AS write_lag, json_extract(value, '$.lag') AS flush_lag,
         json_extract(value, '$.lag') AS replay_lag, 0 AS sync_priority,
         json_extract(value, '$.sync_state') AS sync_state, NULL AS reply_time,
         json_extract(value, '$.applied_frame_no') AS applied_frame_no,
         json_extract(value, '$.primary_frame_no') AS primary_frame_no,
         json_extract(value, '$.lag_frames') AS lag_frames,
         json_extract(value, '$.lag_seconds') AS lag_seconds,
         json_extract(value, '$.last_poll_seconds') AS last_poll_seconds
         FROM json_each(sqld_stat_replication());
";

/// Registers the views' functions on `conn`: `sessions` are the server's
/// client sessions, `log` the primary's replication log (none on a
/// replica, whose view of replicas is then empty).
pub fn install(
    conn: &Connection,
    sessions: Arc<Sessions>,
    log: Option<Arc<ReplicationLog>>,
    database_name: &str,
) -> Result<()> {
    // Not deterministic: each call is a new snapshot.
    let flags = || FunctionFlags::SQLITE_UTF8;
    let name = database_name.to_owned();
    conn.create_scalar_function("sqld_stat_activity", 0, flags(), move |_| {
        let rows: Vec<Json> = sessions
            .snapshot()
            .iter()
            .map(|s| session_row(s, &name))
            .collect();
        Ok(Json::Array(rows).to_string())
    })?;
    // Only read, under locks that survive a panic.
    let log = std::panic::AssertUnwindSafe(log);
    conn.create_scalar_function("sqld_stat_replication", 0, flags(), move |_| {
        let rows = log.as_deref().map(replica_rows).unwrap_or_default();
        Ok(Json::Array(rows).to_string())
    })
}

/// A time as Postgres prints a `timestamptz` in UTC.
fn timestamp(micros: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
}

fn session_row(s: &Snapshot, database_name: &str) -> Json {
    let client = s.identity.client;
    json!({
        "datid": super::DATABASE_OID,
        "datname": database_name,
        "pid": s.identity.pid,
        "usename": s.identity.user,
        "application_name": s.identity.application_name.as_deref().unwrap_or(""),
        "client_addr": client.map(|a| a.ip().to_string()),
        "client_port": client.map(|a| a.port()),
        "backend_start": timestamp(s.backend_start),
        "xact_start": s.xact_start.and_then(timestamp),
        "query_start": s.query_start.and_then(timestamp),
        "state_change": s.state_change.and_then(timestamp),
        "state": s.state.name(),
        "query": s.query,
    })
}

/// An interval as Postgres prints one: `00:00:01.5`.
fn interval(d: Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_micros()
    )
}

fn replica_rows(log: &ReplicationLog) -> Vec<Json> {
    let durable = log.durable_frame_no();
    let sync = log.sync_replicas();
    let synchronous = sync.required() > 0;
    sync.replicas(REPLICA_WINDOW, durable)
        .into_iter()
        .map(|r| {
            json!({
                "pid": r.number,
                "application_name": r.id,
                "lsn": r.frame_no.to_string(),
                "lag": interval(r.lag),
                "sync_state": if synchronous { "quorum" } else { "async" },
                "applied_frame_no": r.frame_no,
                "primary_frame_no": durable,
                "lag_frames": durable.saturating_sub(r.frame_no),
                "lag_seconds": r.lag.as_secs_f64(),
                "last_poll_seconds": r.since_poll.as_secs_f64(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_timestamps_print_as_postgres_does() {
        assert_eq!(
            interval(Duration::from_millis(3_723_500)),
            "01:02:03.500000"
        );
        assert_eq!(
            timestamp(1_000_000).as_deref(),
            Some("1970-01-01 00:00:01.000000+00")
        );
    }
}
