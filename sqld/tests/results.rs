//! Results as clients receive them: every stored value gets an answer, a
//! client's row limit bounds work and never an allocation, and the rows a
//! session holds stay within `--max-result-size`, however they are asked
//! for.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{message, read_messages, startup_packet, Sqld};

/// A logged-in raw connection (the test server trusts loopback).
fn logged_in(sqld: &Sqld) -> TcpStream {
    let mut s = TcpStream::connect(sqld.pg_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&startup_packet("sqld")).unwrap();
    read_messages(&mut s, b'Z');
    s
}

fn parse(sql: &str) -> Vec<u8> {
    message(b'P', format!("\0{sql}\0\0\0").as_bytes())
}

fn bind(portal: &str) -> Vec<u8> {
    message(b'B', format!("{portal}\0\0\0\0\0\0\0\0").as_bytes())
}

fn execute(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = format!("{portal}\0").into_bytes();
    body.extend_from_slice(&max_rows.to_be_bytes());
    message(b'E', &body)
}

fn send(s: &mut TcpStream, messages: &[Vec<u8>]) {
    s.write_all(&messages.concat()).unwrap();
}

fn kinds(messages: &[(u8, Vec<u8>)]) -> String {
    messages.iter().map(|(k, _)| *k as char).collect()
}

/// The SQLSTATE of the first ErrorResponse, if any.
fn sqlstate(messages: &[(u8, Vec<u8>)]) -> Option<String> {
    let (_, body) = messages.iter().find(|(k, _)| *k == b'E')?;
    body.split(|b| *b == 0)
        .find(|field| field.first() == Some(&b'C'))
        .map(|field| String::from_utf8_lossy(&field[1..]).into_owned())
}

fn peak_rss_kib(sqld: &Sqld) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", sqld.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// SQLite stores TEXT that is not UTF-8 as readily as any other; reading
/// it once panicked the session and left the client waiting forever.
#[tokio::test]
async fn text_that_is_not_utf8_is_refused_with_22021_and_stays_readable_as_bytes() {
    let sqld = Sqld::start();
    let client = sqld.connect().await;
    let err = client
        .query("select cast(x'ff' as text)", &[])
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("an error from the server");
    assert_eq!(db.code().code(), "22021");
    assert!(db.message().contains("0xff"), "{}", db.message());

    client
        .batch_execute(
            "create table t(a text); insert into t values ('ok'), (cast(x'41ff42' as text))",
        )
        .await
        .unwrap();
    let err = client.query("select a from t", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22021");
    // The same connection goes on, and the value is there as bytes.
    let bytes: Vec<u8> = client
        .query_one("select cast(a as blob) from t where a <> 'ok'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bytes, [0x41, 0xff, 0x42]);
    let (_, metrics) = sqld.http_get("/metrics");
    assert!(
        metrics.contains("sqld_connection_panics_total 0"),
        "a thread panicked"
    );
}

/// An Execute asking for 2^31-1 rows once made the server allocate room
/// for that many and abort; a limit is a bound on rows sent, nothing more.
#[test]
fn an_execute_row_limit_bounds_rows_sent_never_an_allocation() {
    let sqld = Sqld::start();
    let mut s = logged_in(&sqld);
    send(
        &mut s,
        &[
            parse("select 1"),
            bind(""),
            execute("", i32::MAX),
            message(b'S', b""),
        ],
    );
    let answer = read_messages(&mut s, b'Z');
    assert_eq!(kinds(&answer), "12DCZ");
    assert_eq!(answer[3].1, b"SELECT 1\0");

    // A portal fetched a few rows at a time, then to its end.
    let five =
        "with recursive c(x) as (select 1 union all select x+1 from c limit 5) select x from c";
    send(
        &mut s,
        &[parse(five), bind(""), execute("", 2), message(b'H', b"")],
    );
    let mut answer = Vec::new();
    while answer.last().map(|(k, _)| *k) != Some(b's') {
        answer.extend(read_messages(&mut s, b's'));
    }
    assert_eq!(kinds(&answer), "12DDs");
    send(&mut s, &[execute("", i32::MAX), message(b'S', b"")]);
    let answer = read_messages(&mut s, b'Z');
    assert_eq!(kinds(&answer), "DDDCZ");
    assert_eq!(answer[3].1, b"SELECT 3\0");
}

/// Each statement once held several times what `--max-result-size` says
/// (4.2 GB for 30 million NULLs, counted as 240 MB): the accounting
/// counted 8 bytes a value, checked after copying, and every row was
/// encoded again before the first was sent.
#[tokio::test]
async fn one_statement_holds_no_more_than_the_result_limit() {
    const LIMIT_MIB: u64 = 32;
    let limit = (LIMIT_MIB * 1024 * 1024).to_string();
    let sqld = Sqld::start_with(&["--dev", "--max-result-size", &limit]);
    let client = sqld.connect().await;
    let series = |n: u64, select: &str| {
        format!("with recursive c(x) as (select 1 union all select x+1 from c limit {n}) select {select} from c")
    };
    for sql in [
        series(30_000_000, "null"),
        series(10_000_000, "x"),
        series(
            3_000_000,
            "null, null, null, null, null, null, null, null, null, null",
        ),
        "select zeroblob(200000000)".to_owned(),
    ] {
        let err = client.query(&sql, &[]).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "54000", "{sql}: {err}");
    }
    // A result within the limit is served whole.
    let rows = client.query(&series(100_000, "x"), &[]).await.unwrap();
    assert_eq!(rows.len(), 100_000);
    let peak_mib = peak_rss_kib(&sqld) / 1024;
    assert!(
        peak_mib < LIMIT_MIB + 64,
        "peak RSS {peak_mib} MiB with a {LIMIT_MIB} MiB result limit"
    );
}

/// Suspended portals keep their rows; they count against the one budget,
/// and closing a portal gives its share back.
#[test]
fn suspended_portals_share_the_sessions_result_budget() {
    let sqld = Sqld::start_with(&["--dev", "--max-result-size", &(8 * 1024 * 1024).to_string()]);
    let mut s = logged_in(&sqld);
    // About 6 MB held: 20,000 rows of a 200-byte blob.
    let rows = "with recursive c(x) as (select 1 union all select x+1 from c limit 20000) select randomblob(200) from c";
    send(
        &mut s,
        &[parse(rows), bind("a"), execute("a", 1), message(b'H', b"")],
    );
    let answer = read_messages(&mut s, b's');
    assert_eq!(kinds(&answer), "12Ds");

    send(&mut s, &[bind("b"), execute("b", 1), message(b'S', b"")]);
    let answer = read_messages(&mut s, b'Z');
    assert_eq!(
        sqlstate(&answer).as_deref(),
        Some("54000"),
        "{}",
        kinds(&answer)
    );

    send(
        &mut s,
        &[
            message(b'C', b"Pa\0"),
            bind("b"),
            execute("b", 1),
            message(b'S', b""),
        ],
    );
    let answer = read_messages(&mut s, b'Z');
    assert_eq!(
        kinds(&answer),
        "32DsZ",
        "the closed portal's budget was given back"
    );
}

/// A statement with parameters and no result columns is described as
/// ParameterDescription then NoData, as Postgres does. An empty
/// RowDescription made pgjdbc take every execution of a prepared INSERT
/// (from its fifth, when it starts describing) for one that returned
/// rows, and fail it after the row was committed.
#[test]
fn a_statement_without_result_columns_is_described_as_no_data() {
    let sqld = Sqld::start();
    let mut s = logged_in(&sqld);
    send(&mut s, &[message(b'Q', b"create table t(a int)\0")]);
    read_messages(&mut s, b'Z');
    let describe_statement = message(b'D', b"S\0");
    send(
        &mut s,
        &[
            message(b'P', b"\0insert into t values ($1)\0\0\0"),
            describe_statement.clone(),
            message(b'S', b""),
        ],
    );
    assert_eq!(kinds(&read_messages(&mut s, b'Z')), "1tnZ");
    // A statement that returns rows still gets its RowDescription, and a
    // portal without columns NoData.
    send(
        &mut s,
        &[
            parse("select a from t"),
            describe_statement,
            message(b'S', b""),
        ],
    );
    assert_eq!(kinds(&read_messages(&mut s, b'Z')), "1tTZ");
    send(
        &mut s,
        &[
            parse("delete from t"),
            bind(""),
            message(b'D', b"P\0"),
            execute("", 0),
            message(b'S', b""),
        ],
    );
    assert_eq!(kinds(&read_messages(&mut s, b'Z')), "12nCZ");
}
