//! Hostile and broken input: the server closes the offending connection
//! quietly and keeps serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{message, startup_packet, Sqld};

fn raw(sqld: &Sqld) -> TcpStream {
    let s = TcpStream::connect(sqld.pg_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the server closes the socket; true if it did.
fn closed_by_server(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            // Closing with unread input makes the kernel send a reset.
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[tokio::test]
async fn garbage_on_the_port_is_closed_and_others_keep_working() {
    let sqld = Sqld::start();
    let client = sqld.connect().await;

    let mut http = raw(&sqld);
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_by_server(http));

    let mut negative = raw(&sqld);
    negative.write_all(&(-1i32).to_be_bytes()).unwrap();
    assert!(closed_by_server(negative));

    let mut huge_startup = raw(&sqld);
    huge_startup
        .write_all(&(1_000_000i32).to_be_bytes())
        .unwrap();
    assert!(closed_by_server(huge_startup));

    // A truncated message, then the client vanishes.
    let mut truncated = raw(&sqld);
    truncated.write_all(&startup_packet("sqld")[..6]).unwrap();
    drop(truncated);

    // A bare TCP probe.
    drop(raw(&sqld));

    client.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let sqld = Sqld::start_with(&["--dev", "--max-message-size", "65536"]);
    let client = sqld.connect().await;
    let big = "x".repeat(100_000);
    assert!(client.query_one("select $1", &[&big]).await.is_err());
    // The server is fine; a new connection works.
    let again = sqld.connect().await;
    again.query_one("select 1", &[]).await.unwrap();

    // A message whose length prefix alone is too big is refused before
    // its body is read.
    let mut s = raw(&sqld);
    s.write_all(&startup_packet("sqld")).unwrap();
    let mut q = vec![b'Q'];
    q.extend_from_slice(&(500_000_000i32).to_be_bytes());
    s.write_all(&q).unwrap();
    assert!(closed_by_server(s));
}

#[tokio::test]
async fn thousands_of_connections_opened_and_dropped() {
    let sqld = Sqld::start();
    let keeper = sqld.connect().await;
    for i in 0..2000 {
        let s = TcpStream::connect(sqld.pg_addr).unwrap();
        if i % 2 == 0 {
            let mut s = s;
            let _ = s.write_all(&startup_packet("sqld"));
        }
    }
    // The burst may briefly fill --max-connections (excess clients are
    // refused with 53300, as Postgres does); the server catches up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut served = 0;
    while served < 50 {
        match tokio_postgres::connect(&sqld.conn_str(), tokio_postgres::NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                c.query_one("select 1", &[]).await.unwrap();
                served += 1;
            }
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "still refused: {e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    keeper.query_one("select 1", &[]).await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_authenticates_is_dropped_after_the_startup_timeout() {
    let sqld = Sqld::start_with(&["--dev", "--startup-timeout", "300ms"]);
    let s = raw(&sqld);
    let started = std::time::Instant::now();
    assert!(closed_by_server(s));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn deeply_nested_sql_is_answered_not_a_crash() {
    let sqld = Sqld::start();
    let client = sqld.connect().await;
    let depth = 100_000;
    let answered = |r: Result<(), tokio_postgres::Error>| match r {
        Ok(()) => true,
        Err(e) => e.as_db_error().is_some(),
    };
    // Redundant parentheses: answered (SQLite folds them) either way.
    let parens = format!("select {}1{}", "(".repeat(depth), ")".repeat(depth));
    assert!(answered(client.simple_query(&parens).await.map(drop)));
    // Through the extended protocol too, whose parameter inference reads
    // the statement first.
    let parens = format!("select {}$1{}", "(".repeat(depth), ")".repeat(depth));
    assert!(answered(client.prepare(&parens).await.map(drop)));
    // Real depth: past SQLite's expression depth limit, an error.
    let deep = format!(
        "select {} 1 {}",
        "case when 1 then ".repeat(5_000),
        "end ".repeat(5_000)
    );
    let err = client.simple_query(&deep).await.expect_err("too deep");
    assert!(err.as_db_error().is_some(), "{}", err.to_string().len());
    client.query_one("select 1", &[]).await.unwrap();
}

/// Messages whose inner lengths and counts point past their end (found by
/// fuzzing: pgwire's decoders panicked on them) close their connection; no
/// thread panics and everyone else is served.
#[tokio::test]
async fn messages_with_lying_inner_lengths_close_only_their_connection() {
    let sqld = Sqld::start();
    let keeper = sqld.connect().await;
    let lying = [
        // Bind: one parameter of 16 bytes, one sent.
        message(b'B', &[0, 0, 0, 0, 0, 1, 0, 0, 0, 16, b'x']),
        // Bind cut short inside its counts.
        message(b'B', &[0, 0, 0]),
        // Parse declaring a parameter type it does not send.
        message(b'P', b"\0select 1\0\0\x01"),
        // Execute without its row limit.
        message(b'E', b"\0"),
    ];
    for bad in &lying {
        let mut s = raw(&sqld);
        s.write_all(&startup_packet("sqld")).unwrap();
        s.write_all(bad).unwrap();
        assert!(closed_by_server(s), "{bad:?}");
    }
    // A startup packet with bytes after its parameters' terminator.
    let mut startup = startup_packet("sqld");
    startup.extend_from_slice(b"p\0\0\0\0");
    let len = startup.len() as i32;
    startup[..4].copy_from_slice(&len.to_be_bytes());
    let mut s = raw(&sqld);
    s.write_all(&startup).unwrap();
    assert!(closed_by_server(s));

    keeper.query_one("select 1", &[]).await.unwrap();
    let (_, metrics) = sqld.http_get("/metrics");
    assert!(
        metrics.contains("sqld_connection_panics_total 0"),
        "a thread panicked"
    );
}

/// A binary NUMERIC parameter with a negative display scale (8 bytes; it
/// once made the server write digits until memory ran out) is refused.
#[tokio::test]
async fn a_numeric_parameter_with_a_negative_scale_is_refused() {
    let sqld = Sqld::start();
    let mut parse = b"\0select $1::text\0".to_vec();
    parse.extend_from_slice(&1i16.to_be_bytes());
    parse.extend_from_slice(&1700i32.to_be_bytes()); // numeric
    let mut bind = b"\0\0".to_vec();
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes()); // binary
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&8i32.to_be_bytes());
    bind.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xff, 0xff]);
    bind.extend_from_slice(&0i16.to_be_bytes());
    let mut s = raw(&sqld);
    s.write_all(&startup_packet("sqld")).unwrap();
    for m in [
        message(b'P', &parse),
        message(b'B', &bind),
        message(b'E', b"\0\0\0\0\0"),
        message(b'S', b""),
    ] {
        s.write_all(&m).unwrap();
    }
    // Read until ReadyForQuery after the Sync: an error must have come.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let started = std::time::Instant::now();
    while !seen.windows(5).any(|w| w == b"22P02") {
        let n = s.read(&mut buf).expect("an answer within the read timeout");
        assert!(n > 0, "closed without an answer");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let client = sqld.connect().await;
    client.query_one("select 1", &[]).await.unwrap();
}

fn open_descriptors(sqld: &Sqld) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", sqld.child.id()))
        .unwrap()
        .count()
}

/// Each fuzz finding's shape, sent again and again: 2,000 broken
/// connections later, no thread has panicked, and the connection gauge,
/// the server's descriptors and its connection slots are back where they
/// were (a leaked slot per panic once locked everyone out).
#[tokio::test]
async fn two_thousand_malformed_connections_leak_nothing() {
    let sqld = Sqld::start_with(&["--dev", "--max-connections", "16"]);
    let keeper = sqld.connect().await;
    keeper.query_one("select 1", &[]).await.unwrap();
    let parse = |sql: &str| message(b'P', format!("\0{sql}\0\0\0").as_bytes());
    let mut bind_formats = b"\0\0".to_vec();
    bind_formats.extend_from_slice(&0i16.to_be_bytes()); // parameter formats
    bind_formats.extend_from_slice(&0i16.to_be_bytes()); // parameters
    bind_formats.extend_from_slice(&3i16.to_be_bytes()); // 3 result formats, 1 column
    bind_formats.extend_from_slice(&[0, 1, 0, 1, 0, 1]);
    let mut bind_params = b"\0\0".to_vec();
    bind_params.extend_from_slice(&2i16.to_be_bytes()); // 2 parameter formats, 1 parameter
    bind_params.extend_from_slice(&[0, 1, 0, 1]);
    bind_params.extend_from_slice(&1i16.to_be_bytes());
    bind_params.extend_from_slice(&1i32.to_be_bytes());
    bind_params.push(b'7');
    bind_params.extend_from_slice(&0i16.to_be_bytes());
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![message(b'B', &[0, 0, 0, 0, 0, 1, 0, 0, 0, 16, b'x'])],
        vec![message(b'B', &[0, 0, 0])],
        vec![message(b'P', b"\0select 1\0\0\x01")],
        vec![message(b'E', b"\0")],
        vec![message(b'D', b"")],
        vec![message(b'C', b"X")],
        vec![
            parse("select 1"),
            message(b'B', &bind_formats),
            message(b'S', b""),
        ],
        vec![
            parse("select $1"),
            message(b'B', &bind_params),
            message(b'S', b""),
        ],
        vec![message(b'Q', b"select cast(x'ff' as text)\0")],
        vec![message(b'Q', b"select 1")],
        vec![message(b'p', b"\xff\xff\xff\xff")],
    ];
    let broken = |i: usize| {
        let mut s = raw(&sqld);
        let _ = s.write_all(&startup_packet("sqld"));
        for m in &cases[i % cases.len()] {
            let _ = s.write_all(m);
        }
        // Every other client leaves at once; the rest wait for the answer.
        if i % 2 == 1 {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    };
    let settled = || {
        std::thread::sleep(Duration::from_millis(500));
        open_descriptors(&sqld)
    };
    // A first round opens what the server keeps open once used (SQLite
    // holds on to descriptors of closed database connections for reuse).
    (0..100).for_each(broken);
    let descriptors = settled();
    (0..2000).for_each(broken);
    // Back where they were (the connection threads close as they see
    // their sockets end).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (gauge, open) = (
            common::metric(&sqld, "sqld_connections"),
            open_descriptors(&sqld),
        );
        // A few descriptors may come and go (SQLite keeps those of closed
        // database connections for reuse); a leak per connection would be
        // hundreds.
        if gauge == 1.0 && open <= descriptors + 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s: {gauge} connections (1 expected), {open} descriptors (about {descriptors} expected)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // All 16 slots are free again.
    let mut clients = Vec::new();
    for _ in 0..15 {
        clients.push(sqld.connect().await);
    }
    for c in &clients {
        c.query_one("select 1", &[]).await.unwrap();
    }
    keeper.query_one("select 1", &[]).await.unwrap();
    assert_eq!(common::metric(&sqld, "sqld_connection_panics_total"), 0.0);
}
