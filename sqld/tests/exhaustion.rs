//! One client must not be able to stop the others: malformed
//! authentication, connections that never authenticate (or authenticate
//! one byte a second), a write lock held while idle, a statement whose
//! client has left or that never ends, huge distinct statements, and a
//! forwarded transaction its replica abandoned all end, and free what they
//! held.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{eventually, integers, message, metric_sample, startup_packet, Sqld};

use tokio_postgres::error::SqlState;

/// A statement that never ends by itself.
const ENDLESS: &str =
    "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c";

/// The `sqld_connections` gauge.
fn open_connections(sqld: &Sqld) -> i64 {
    metric_sample(sqld, "sqld_connections").expect("sqld_connections in /metrics") as i64
}

/// The `sqld_connections_authenticating` gauge.
fn authenticating(sqld: &Sqld) -> i64 {
    metric_sample(sqld, "sqld_connections_authenticating").expect("the gauge in /metrics") as i64
}

/// Reads what the server sends until it closes the connection.
fn read_to_close(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn malformed_sasl_responses_close_only_their_connection_and_leak_nothing() {
    let sqld = Sqld::start_with(&[
        "--auth",
        "password",
        "--password",
        "pw",
        "--max-connections",
        "8",
    ]);
    // More attempts than connection slots: a leaked slot per attempt would
    // lock everyone out.
    for round in 0..40 {
        let mut s = TcpStream::connect(sqld.pg_addr).unwrap();
        s.write_all(&startup_packet("sqld")).unwrap();
        // SASLInitialResponse whose inner length claims far more data than
        // the message holds (or, every other round, than is left).
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        let claimed: i32 = if round % 2 == 0 { 1_000_000 } else { -7 };
        body.extend_from_slice(&claimed.to_be_bytes());
        body.extend_from_slice(b"n,,n=,r=abc");
        s.write_all(&message(b'p', &body)).unwrap();
        let answer = read_to_close(s);
        assert!(
            answer.windows(5).any(|w| w == b"08P01"),
            "round {round}: expected a protocol violation, got {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let conn = format!(
        "host=127.0.0.1 port={} user=sqld password=pw dbname=sqld",
        sqld.port()
    );
    let c = sqld.connect_with(&conn).await;
    c.query_one("select 1", &[]).await.unwrap();
    eventually(
        "the gauge counts only the live connection",
        Duration::from_secs(5),
        || open_connections(&sqld) == 1,
    );
    let (_, metrics) = sqld.http_get("/metrics");
    assert!(
        metrics.contains("sqld_connection_panics_total 0"),
        "a connection thread panicked"
    );
}

#[tokio::test]
async fn one_address_cannot_fill_the_server_with_unauthenticated_connections() {
    let sqld = Sqld::start_with(&[
        "--dev",
        "--max-authenticating-per-address",
        "4",
        "--startup-timeout",
        "30s",
    ]);
    let keeper = sqld.connect().await;
    // Four connections that never send their startup packet.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(sqld.pg_addr).unwrap())
        .collect();
    eventually(
        "the idle connections hold their address's places",
        Duration::from_secs(5),
        || authenticating(&sqld) == 4,
    );
    // The fifth is told why, at once, without being read.
    let started = Instant::now();
    let refused = read_to_close(TcpStream::connect(sqld.pg_addr).unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(refused.first(), Some(&b'E'), "{refused:?}");
    assert!(refused.windows(5).any(|w| w == b"53300"));
    // Authenticated sessions are not affected, and the slots come back.
    keeper.query_one("select 1", &[]).await.unwrap();
    drop(idle);
    eventually("the slots come back", Duration::from_secs(5), || {
        open_connections(&sqld) == 1 && authenticating(&sqld) == 0
    });
    let again = sqld.connect().await;
    again.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_statement_stops_when_its_client_disconnects() {
    let sqld = Sqld::start();
    let (client, connection) = tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let endless = tokio::spawn(async move {
        let _ = client
            .query_one(
                "with recursive c(x) as (select 1 union all select x + 1 from c) \
                 select count(*) from c",
                &[],
            )
            .await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(open_connections(&sqld), 1);
    // The client vanishes (its connection task and socket are dropped).
    endless.abort();
    driver.abort();
    // Awaiting lets the runtime drop them, closing the socket.
    let _ = endless.await;
    let _ = driver.await;
    eventually(
        "the endless statement was stopped and its connection closed",
        Duration::from_secs(5),
        || open_connections(&sqld) == 0,
    );
}

#[tokio::test]
async fn a_write_lock_held_too_long_is_taken_back() {
    let sqld = Sqld::start_with(&["--dev", "--write-transaction-timeout", "1s"]);
    let holder = sqld.connect().await;
    holder
        .batch_execute("create table t(a integer); begin immediate; insert into t values (1)")
        .await
        .unwrap();
    // Idle with the lock: the connection is closed at the deadline (25P04),
    // and another writer gets the lock.
    let writer = sqld.connect().await;
    let started = Instant::now();
    writer
        .batch_execute("insert into t values (2)")
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    let err = holder.query_one("select 1", &[]).await.expect_err("closed");
    assert!(
        err.is_closed() || err.code() == Some(&SqlState::from_code("25P04")),
        "{err:?}"
    );

    // Busy with the lock: the statement running past the deadline is
    // interrupted, the transaction rolled back, and the session goes on.
    let busy = sqld.connect().await;
    busy.batch_execute("begin; insert into t values (3)")
        .await
        .unwrap();
    let err = busy
        .simple_query(
            "with recursive c(x) as (select 1 union all select x + 1 from c) \
             select count(*) from c",
        )
        .await
        .expect_err("interrupted");
    assert_eq!(err.code(), Some(&SqlState::from_code("25P04")), "{err:?}");
    busy.batch_execute("rollback").await.unwrap();
    let rows = integers(&busy, "select a from t order by a").await;
    assert_eq!(rows, vec![2], "only the write outside the held locks stays");
}

#[tokio::test]
async fn a_forwarded_transaction_abandoned_by_its_replica_is_rolled_back() {
    let primary = Sqld::start_with(&["--dev", "--idle-in-transaction-timeout", "1s"]);
    let p = primary.connect().await;
    p.batch_execute("create table t(a integer)").await.unwrap();
    let mut replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    // The write runs on the primary, in a transaction the primary keeps open
    // (holding its write lock) for the replica's next statement...
    r.batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    // ...which never comes.
    replica.kill9();
    let started = Instant::now();
    p.batch_execute("insert into t values (2)").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the primary's writers waited {:?}",
        started.elapsed()
    );
    let rows = integers(&p, "select a from t order by a").await;
    assert_eq!(rows, vec![2], "the abandoned write was rolled back");
}

#[tokio::test]
async fn a_forwarded_transaction_is_rolled_back_when_its_client_disconnects() {
    // The idle timeout would take a minute to reap it.
    let primary = Sqld::start();
    let p = primary.connect().await;
    p.batch_execute("create table t(a integer)").await.unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let (r, connection) = tokio_postgres::connect(&replica.conn_str(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    r.batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    // The client goes away in the middle of its transaction.
    drop(r);
    let _ = driver.await;
    let started = Instant::now();
    p.batch_execute("insert into t values (2)").await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the primary's writers waited {:?}",
        started.elapsed()
    );
    let rows = integers(&p, "select a from t order by a").await;
    assert_eq!(rows, vec![2], "the abandoned write was rolled back");
}

#[tokio::test]
async fn prepared_statements_per_connection_are_bounded_and_deallocate_frees_them() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    // tokio-postgres names each statement; keeping them keeps them prepared.
    let mut kept = Vec::new();
    for i in 0..10_000 {
        kept.push(c.prepare(&format!("select {i}")).await.unwrap());
    }
    let err = c
        .prepare("select 'one too many'")
        .await
        .expect_err("bounded");
    assert_eq!(
        err.code(),
        Some(&SqlState::CONFIGURATION_LIMIT_EXCEEDED),
        "{err:?}"
    );
    // The session goes on (the simple protocol prepares nothing).
    c.simple_query("select 1").await.unwrap();
    // Closing one (dropping it sends Close) makes room for one.
    kept.pop();
    c.prepare("select 'fits again'").await.unwrap();
    // DEALLOCATE ALL forgets every one of them, server side.
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    let err = c.query(&kept[0], &[]).await.expect_err("deallocated");
    assert!(err.as_db_error().is_some(), "{err:?}");
    for i in 0..100 {
        c.prepare(&format!("select 'after {i}'")).await.unwrap();
    }
}

/// Connects from `from` (any 127.x.y.z address reaches loopback), sends
/// the first 8 bytes of a startup packet, then one byte a second; returns
/// how long the connection lived before the server closed it.
fn trickle_startup(from: Ipv4Addr, to: SocketAddr) -> Duration {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let mut s: TcpStream = socket.into();
    let started = Instant::now();
    let packet = startup_packet("sqld");
    s.write_all(&packet[..8]).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut buf = [0u8; 256];
    for byte in &packet[8..] {
        match s.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Closed, reset, or refused with a message.
            _ => return started.elapsed(),
        }
        if s.write_all(&[*byte]).is_err() {
            return started.elapsed();
        }
    }
    panic!("the whole startup packet trickled in and the server kept the connection");
}

#[tokio::test]
async fn startups_trickling_in_byte_by_byte_end_at_the_startup_timeout_without_locking_others_out()
{
    let sqld = Sqld::start_with(&[
        "--dev",
        "--startup-timeout",
        "2s",
        "--max-connections",
        "4",
        "--max-authenticating",
        "16",
        "--max-authenticating-per-address",
        "4",
    ]);
    let pg = sqld.pg_addr;
    // Three addresses, each at its share: more connections than
    // --max-connections, all still authenticating.
    let tricklers: Vec<_> = (2..5)
        .flat_map(|host| std::iter::repeat_n(Ipv4Addr::new(127, 0, 0, host), 4))
        .map(|from| std::thread::spawn(move || trickle_startup(from, pg)))
        .collect();
    eventually(
        "the trickling connections hold their places",
        Duration::from_secs(5),
        || authenticating(&sqld) == 12,
    );
    // Authenticated sessions do not compete with them for places.
    let c = sqld.connect().await;
    c.query_one("select 1", &[]).await.unwrap();
    for t in tricklers {
        let lived = t.join().unwrap();
        assert!(
            lived < Duration::from_millis(3500),
            "a trickling startup lived {lived:?} with a 2 s startup timeout"
        );
    }
    eventually(
        "their places are free again",
        Duration::from_secs(5),
        || authenticating(&sqld) == 0,
    );
    c.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_message_trickling_in_inside_a_transaction_ends_at_the_idle_timeout() {
    let sqld = Sqld::start_with(&["--dev", "--idle-in-transaction-timeout", "1s"]);
    let mut s = TcpStream::connect(sqld.pg_addr).unwrap();
    s.write_all(&startup_packet("sqld")).unwrap();
    read_until_ready(&mut s);
    s.write_all(&message(b'Q', b"begin\0")).unwrap();
    read_until_ready(&mut s);
    // The next message arrives a byte every 200 ms: 8 s for all of it.
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    for byte in message(b'Q', b"select 1 as trickled\0") {
        if s.write_all(&[byte]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the connection lived {:?} past its idle timeout of 1 s",
        started.elapsed()
    );
    assert!(answer.windows(5).any(|w| w == b"25P03"), "{answer:?}");
}

#[tokio::test]
async fn connections_still_authenticating_are_bounded_in_total() {
    let sqld = Sqld::start_with(&[
        "--dev",
        "--max-authenticating",
        "4",
        "--startup-timeout",
        "30s",
    ]);
    let keeper = sqld.connect().await;
    let pg = sqld.pg_addr;
    // From four addresses: the per-address share does not bind, the total does.
    let idle: Vec<TcpStream> = (2..6)
        .map(|host| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket
                .bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0)).into())
                .unwrap();
            socket.connect(&pg.into()).unwrap();
            socket.into()
        })
        .collect();
    eventually(
        "the idle connections hold every place",
        Duration::from_secs(5),
        || authenticating(&sqld) == 4,
    );
    let refused = read_to_close(TcpStream::connect(pg).unwrap());
    assert!(refused.windows(5).any(|w| w == b"53300"), "{refused:?}");
    keeper.query_one("select 1", &[]).await.unwrap();
    drop(idle);
    eventually("the places come back", Duration::from_secs(5), || {
        authenticating(&sqld) == 0
    });
    sqld.connect()
        .await
        .query_one("select 1", &[])
        .await
        .unwrap();
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// Reads backend messages up to ReadyForQuery; returns the types seen.
fn read_until_ready(s: &mut TcpStream) -> Vec<u8> {
    let mut kinds = Vec::new();
    loop {
        let mut header = [0u8; 5];
        s.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).unwrap();
        kinds.push(header[0]);
        if header[0] == b'Z' {
            return kinds;
        }
    }
}

#[tokio::test]
async fn huge_distinct_statements_are_not_kept_for_the_session() {
    let sqld = Sqld::start();
    let mut s = TcpStream::connect(sqld.pg_addr).unwrap();
    s.write_all(&startup_packet("sqld")).unwrap();
    read_until_ready(&mut s);
    let before = rss_mib(sqld.child.id());
    let filler = "x".repeat(8 * 1024 * 1024);
    // 40 distinct 8 MiB statements, unnamed Parse, then as simple queries.
    for i in 0..40 {
        let mut parse = vec![0];
        parse.extend_from_slice(format!("select '{filler}' as c{i}").as_bytes());
        parse.extend_from_slice(&[0, 0, 0]);
        let mut batch = message(b'P', &parse);
        batch.extend(message(b'S', &[]));
        s.write_all(&batch).unwrap();
        let kinds = read_until_ready(&mut s);
        assert!(!kinds.contains(&b'E'), "Parse {i} failed: {kinds:?}");
    }
    for i in 0..40 {
        let mut query = format!("select '{filler}' as q{i}").into_bytes();
        query.push(0);
        s.write_all(&message(b'Q', &query)).unwrap();
        let kinds = read_until_ready(&mut s);
        assert!(!kinds.contains(&b'E'), "query {i} failed: {kinds:?}");
    }
    let grown = rss_mib(sqld.child.id()).saturating_sub(before);
    // Kept, they held 640 MiB and more; a few in flight are fine.
    assert!(grown < 256, "the server grew by {grown} MiB");
}

async fn show(c: &tokio_postgres::Client, setting: &str) -> String {
    let rows = c.simple_query(&format!("show {setting}")).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap().to_owned()),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test]
async fn a_sessions_statement_timeout_interrupts_its_statements() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    assert_eq!(show(&c, "statement_timeout").await, "0");
    for (value, shown) in [("'100ms'", "100ms"), ("250", "250ms")] {
        c.batch_execute(&format!("set statement_timeout = {value}"))
            .await
            .unwrap();
        assert_eq!(show(&c, "statement_timeout").await, shown);
        let started = Instant::now();
        let err = c.simple_query(ENDLESS).await.expect_err("interrupted");
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    c.batch_execute("set statement_timeout to '1min'")
        .await
        .unwrap();
    assert_eq!(show(&c, "statement_timeout").await, "1min");
    c.batch_execute("reset statement_timeout").await.unwrap();
    assert_eq!(show(&c, "statement_timeout").await, "0");
    c.batch_execute("set statement_timeout = '2s'")
        .await
        .unwrap();
    c.batch_execute("set statement_timeout = default")
        .await
        .unwrap();
    assert_eq!(show(&c, "statement_timeout").await, "0");
    let err = c
        .batch_execute("set statement_timeout = 'soon'")
        .await
        .expect_err("not a duration");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PARAMETER_VALUE),
        "{err:?}"
    );
    c.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn sigterm_interrupts_a_statement_that_never_ends() {
    let mut sqld = Sqld::start_with(&["--dev", "--shutdown-grace-period", "60s"]);
    let c = sqld.connect().await;
    let endless = tokio::spawn(async move { c.simple_query(ENDLESS).await.map(drop) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || sqld.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    let err = endless.await.unwrap().expect_err("interrupted");
    assert_eq!(err.code(), Some(&SqlState::ADMIN_SHUTDOWN), "{err:?}");
}

/// The server side of the connection from local port `client_port` to
/// `server_port`: its `tr:tm->when` field in /proc/net/tcp.
fn server_socket_timer(server_port: u16, client_port: u16) -> String {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next().unwrap(), 16).unwrap();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| port(f[1]) == server_port && port(f[2]) == client_port)
        .map(|f| f[5].to_owned())
        .expect("the server's socket in /proc/net/tcp")
}

#[tokio::test]
async fn accepted_connections_have_tcp_keepalive() {
    let sqld = Sqld::start();
    let mut s = TcpStream::connect(sqld.pg_addr).unwrap();
    s.write_all(&startup_packet("sqld")).unwrap();
    read_until_ready(&mut s);
    // An idle established socket has a timer pending only with keepalive
    // on (timer 2); its first probe is due within the 60 s idle time.
    let timer = server_socket_timer(sqld.port(), s.local_addr().unwrap().port());
    let (kind, when) = timer.split_once(':').unwrap();
    assert_eq!(kind, "02", "no keepalive timer: {timer}");
    let ticks = u64::from_str_radix(when, 16).unwrap();
    assert!(
        (3_000..=6_000).contains(&ticks),
        "first probe in {ticks} ticks"
    );
}

#[tokio::test]
async fn forwarded_transactions_open_on_the_primary_are_capped() {
    let primary = Sqld::start_with(&[
        "--dev",
        "--replication-token",
        "secret",
        "--max-connections",
        "4",
    ]);
    let pid = primary.child.id();
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let begin = || {
        let body = r#"{"session":null,"begin_after_frame":null,"sql":"BEGIN","params":[],"column_types":null}"#;
        let mut s = TcpStream::connect(primary.http_addr).unwrap();
        write!(
            s,
            "POST /v1/replication/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer secret\r\nx-sqld-replica-id: r1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out
    };
    for i in 0..4 {
        let answer = begin();
        assert!(answer.contains("\"session\":\""), "BEGIN {i}: {answer}");
    }
    let held = descriptors();
    for _ in 0..200 {
        let answer = begin();
        assert!(answer.contains("53300"), "{answer}");
        assert!(
            answer.contains("too many forwarded transactions"),
            "{answer}"
        );
    }
    let now = descriptors();
    assert!(now <= held + 8, "descriptors grew from {held} to {now}");
}

/// A query holding the write lock, then one whose result (about 40 MB)
/// cannot fit in any socket buffer.
fn lock_then_flood() -> Vec<u8> {
    let big = "with recursive c(x) as (select 1 union all select x + 1 from c limit 20000) \
               select randomblob(1000) from c\0";
    [
        startup_packet("sqld"),
        message(b'Q', b"begin immediate\0"),
        message(b'Q', big.as_bytes()),
    ]
    .concat()
}

/// Reads until the answer to `begin immediate` (ReadyForQuery, in a
/// transaction), then the caller stops reading.
fn read_until_in_transaction(r: &mut impl Read) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(6).any(|w| w == b"Z\0\0\0\x05T") {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "closed before BEGIN was answered");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// The stuck client holds the write lock: another writer gets it back
/// once the server has dropped the stuck connection.
async fn writer_gets_the_lock_back(sqld: &Sqld, writer: &tokio_postgres::Client) {
    let started = Instant::now();
    writer
        .batch_execute("insert into t values (1)")
        .await
        .expect("the write lock comes back once the stuck client is dropped");
    assert!(started.elapsed() < Duration::from_secs(10));
    eventually(
        "only the writer's connection is left",
        Duration::from_secs(5),
        || open_connections(sqld) == 1,
    );
}

/// A client that holds the write lock and then stops reading (a large
/// result fills its socket) once blocked its connection's thread in a send
/// for good, and every writer with it. Past `--client-write-timeout` the
/// connection is dropped and its transaction rolled back.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection_and_its_write_lock() {
    let sqld = Sqld::start_with(&["--dev", "--client-write-timeout", "1s"]);
    let writer = sqld.connect().await;
    writer.batch_execute("create table t(a)").await.unwrap();
    let mut stuck = TcpStream::connect(sqld.pg_addr).unwrap();
    socket2::SockRef::from(&stuck)
        .set_recv_buffer_size(4096)
        .unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stuck.write_all(&lock_then_flood()).unwrap();
    read_until_in_transaction(&mut stuck);
    writer_gets_the_lock_back(&sqld, &writer).await;
    drop(stuck);
}

/// The same over TLS, where the stream is the runtime's (openssl s_client
/// stops reading the socket once nobody reads what it prints).
#[tokio::test]
async fn a_tls_client_that_stops_reading_loses_its_connection_and_its_write_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed_cert(tmp.path());
    let sqld = Sqld::start_with(&[
        "--dev",
        "--client-write-timeout",
        "1s",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let writer = sqld.connect().await;
    writer.batch_execute("create table t(a)").await.unwrap();
    let mut stuck = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-ign_eof", "-alpn", "postgresql"])
        .arg("-connect")
        .arg(sqld.pg_addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl is needed for a TLS client");
    stuck
        .stdin
        .as_mut()
        .unwrap()
        .write_all(&lock_then_flood())
        .unwrap();
    read_until_in_transaction(stuck.stdout.as_mut().unwrap());
    writer_gets_the_lock_back(&sqld, &writer).await;
    let _ = stuck.kill();
    let _ = stuck.wait();
}
