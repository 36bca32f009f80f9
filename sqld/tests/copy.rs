//! COPY FROM STDIN and COPY TO STDOUT against the real server, with
//! tokio-postgres (extended protocol), psql's `\copy` (simple protocol)
//! and a raw socket.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{message, read_messages, scalar, startup_packet, Sqld};
use futures::{pin_mut, SinkExt, StreamExt};

async fn copy_in(
    c: &tokio_postgres::Client,
    sql: &str,
    chunks: &[&[u8]],
) -> Result<u64, tokio_postgres::Error> {
    let sink = c.copy_in(sql).await?;
    pin_mut!(sink);
    for chunk in chunks {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

async fn copy_out(c: &tokio_postgres::Client, sql: &str) -> String {
    let stream = c.copy_out(sql).await.unwrap();
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8(out).unwrap()
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

#[tokio::test]
async fn text_copy_in_and_out_round_trips_nulls_escapes_and_unicode() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(id integer, name text, note text)")
        .await
        .unwrap();
    // Chunks split inside rows and escapes, as a client's buffer may.
    let n = copy_in(
        &c,
        "COPY t FROM STDIN",
        &[
            b"1\tone\t\\N\n2\ttab\\there\tline\\nbreak\n3\tback\\\\",
            b"slash\t\xc3\xbcml\xc3\xa4ut\n4\t\\x41\\102\t\n",
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 4);
    let rows = c
        .query("select id, name, note from t order by id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, String, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "one".into(), None),
            (2, "tab\there".into(), Some("line\nbreak".into())),
            (3, "back\\slash".into(), Some("ümläut".into())),
            (4, "AB".into(), Some(String::new())),
        ]
    );
    assert_eq!(
        scalar(&c, "select typeof(id) = 'integer' from t where id = 1").await,
        1
    );
    let out = copy_out(&c, "COPY t TO STDOUT").await;
    assert_eq!(
        out,
        "1\tone\t\\N\n2\ttab\\there\tline\\nbreak\n3\tback\\\\slash\tümläut\n4\tAB\t\n"
    );
}

#[tokio::test]
async fn csv_copy_with_header_quotes_and_embedded_newlines() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(id integer, name text, note text)")
        .await
        .unwrap();
    let input = b"id,name,note\n1,\"a, \"\"quoted\"\"\nvalue\",\n2,,\"\"\n";
    let n = copy_in(
        &c,
        "COPY t (id, name, note) FROM STDIN WITH (FORMAT csv, HEADER true)",
        &[input],
    )
    .await
    .unwrap();
    assert_eq!(n, 2);
    let rows = c
        .query("select name, note from t order by id", &[])
        .await
        .unwrap();
    let got: Vec<(Option<String>, Option<String>)> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![
            (Some("a, \"quoted\"\nvalue".into()), None),
            (None, Some(String::new()))
        ]
    );
    let out = copy_out(&c, "COPY t TO STDOUT WITH (FORMAT csv, HEADER)").await;
    assert_eq!(
        out,
        "id,name,note\n1,\"a, \"\"quoted\"\"\nvalue\",\n2,,\"\"\n"
    );
    // The old syntax psql and pgbench use.
    copy_in(
        &c,
        "COPY t FROM STDIN WITH CSV DELIMITER ';'",
        &[b"3;x;y\n"],
    )
    .await
    .unwrap();
    assert_eq!(
        scalar(&c, "select count(*) from t where note = 'y'").await,
        1
    );
}

#[tokio::test]
async fn copy_out_of_a_query_and_of_named_columns() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute(
        "create table t(a integer, b text); insert into t values (1, 'x'), (2, null), (3, 'z')",
    )
    .await
    .unwrap();
    let out = copy_out(
        &c,
        "COPY (SELECT a * 10, b FROM t WHERE a > 1 ORDER BY a) TO STDOUT",
    )
    .await;
    assert_eq!(out, "20\t\\N\n30\tz\n");
    let out = copy_out(&c, "COPY t (b) TO STDOUT (FORMAT csv)").await;
    assert_eq!(out, "x\n\nz\n");
}

#[tokio::test]
async fn copy_fail_from_the_client_rolls_everything_back() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(id integer primary key); insert into t values (0)")
        .await
        .unwrap();
    {
        let sink = c.copy_in::<_, Bytes>("COPY t FROM STDIN").await.unwrap();
        pin_mut!(sink);
        let rows: String = (1..=2000).map(|i| format!("{i}\n")).collect();
        sink.send(Bytes::from(rows)).await.unwrap();
        // Dropped without finish: tokio-postgres sends CopyFail.
    }
    assert_eq!(scalar(&c, "select count(*) from t").await, 1);
    assert!(c.is_closed() || scalar(&c, "select 1").await == 1);
}

#[tokio::test]
async fn a_bad_row_rolls_back_the_whole_copy_with_its_sqlstate() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(id integer primary key, name text)")
        .await
        .unwrap();
    let good: String = (1..=1500).map(|i| format!("{i}\tn{i}\n")).collect();
    for (bad, want) in [
        (&b"9999\tx\textra\n"[..], "22P04"),
        (&b"9999\n"[..], "22P04"),
        (&b"abc\tx\n"[..], "22P02"),
        (&b"1\tduplicate\n"[..], "23505"),
        (&b"9999\t\"\\"[..], "22P04"),
    ] {
        let e = copy_in(&c, "COPY t FROM STDIN", &[good.as_bytes(), bad])
            .await
            .unwrap_err();
        assert_eq!(code(&e), want, "{e:?}");
        assert_eq!(scalar(&c, "select count(*) from t").await, 0);
    }
    // The connection goes on, outside any transaction.
    c.batch_execute("insert into t values (1, 'ok')")
        .await
        .unwrap();
    assert_eq!(scalar(&c, "select count(*) from t").await, 1);
}

#[tokio::test]
async fn copy_joins_an_explicit_transaction() {
    let s = Sqld::start();
    let mut c = s.connect().await;
    c.batch_execute("create table t(id integer primary key)")
        .await
        .unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute("insert into t values (1)", &[]).await.unwrap();
    let sink = tx.copy_in("COPY t FROM STDIN").await.unwrap();
    pin_mut!(sink);
    sink.send(Bytes::from_static(b"2\n3\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    let n: i64 = tx
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    tx.rollback().await.unwrap();
    assert_eq!(scalar(&c, "select count(*) from t").await, 0);

    // An error inside the transaction fails it, as in Postgres: COMMIT
    // keeps nothing.
    c.batch_execute("begin; insert into t values (1)")
        .await
        .unwrap();
    let e = copy_in(&c, "COPY t FROM STDIN", &[b"2\nnot a number\n"])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "22P02");
    let e = c.simple_query("select 1").await.unwrap_err();
    assert_eq!(code(&e), "25P02");
    c.batch_execute("commit").await.unwrap();
    assert_eq!(scalar(&c, "select count(*) from t").await, 0);
}

#[tokio::test]
async fn server_files_and_programs_are_refused() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(a text)").await.unwrap();
    for (sql, want) in [
        ("COPY t FROM '/etc/passwd'", "42501"),
        ("COPY t TO '/tmp/sqld-copy-out'", "42501"),
        ("COPY t FROM PROGRAM 'id'", "42501"),
        ("COPY t TO PROGRAM 'id'", "42501"),
        ("COPY t FROM STDIN WITH (FORMAT binary, HEADER)", "42601"),
        ("COPY missing FROM STDIN", "42P01"),
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), want, "{sql}: {e:?}");
        let e = c.execute(sql, &[]).await.unwrap_err();
        assert_eq!(code(&e), want, "{sql} (extended): {e:?}");
    }
    assert!(!std::path::Path::new("/tmp/sqld-copy-out").exists());
    assert_eq!(scalar(&c, "select count(*) from t").await, 0);
}

#[tokio::test]
async fn binary_copy_in_and_out_round_trips_every_type() {
    use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
    use tokio_postgres::types::Type;
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute(
        "create table b (id integer, name text, f double precision, data bytea, ok boolean, \
         at timestamp); create table b2 (id integer, name text, f double precision, \
         data bytea, ok boolean, at timestamp)",
    )
    .await
    .unwrap();
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::FLOAT8,
        Type::BYTEA,
        Type::BOOL,
        Type::TIMESTAMP,
    ];
    let at = |i: i64| {
        std::time::SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + i as u64)
    };
    let sink = c
        .copy_in("COPY b FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for i in 0..2_000i64 {
        let name = (i % 7 != 0).then(|| format!("name {i}"));
        let data = vec![(i % 256) as u8, 0, 255];
        writer
            .as_mut()
            .write(&[&i, &name, &(i as f64 / 4.0), &data, &(i % 2 == 0), &at(i)])
            .await
            .unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), 2_000);
    assert_eq!(
        scalar(&c, "select count(*) from b where name is null").await,
        286
    );

    // Out in binary, and back in through a second table.
    let stream = c
        .copy_out("COPY (SELECT * FROM b ORDER BY id) TO STDOUT (FORMAT binary)")
        .await
        .unwrap();
    let rows = BinaryCopyOutStream::new(stream, &types);
    pin_mut!(rows);
    let mut seen = 0i64;
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        let i = seen;
        assert_eq!(row.get::<i64>(0), i);
        assert_eq!(
            row.get::<Option<String>>(1),
            (i % 7 != 0).then(|| format!("name {i}"))
        );
        assert_eq!(row.get::<f64>(2), i as f64 / 4.0);
        assert_eq!(row.get::<Vec<u8>>(3), vec![(i % 256) as u8, 0, 255]);
        assert_eq!(row.get::<bool>(4), i % 2 == 0);
        assert_eq!(row.get::<std::time::SystemTime>(5), at(i));
        seen += 1;
    }
    assert_eq!(seen, 2_000);
    let raw = {
        let stream = c.copy_out("COPY b TO STDOUT BINARY").await.unwrap();
        pin_mut!(stream);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    };
    assert!(raw.starts_with(b"PGCOPY\n\xff\r\n\0"));
    assert_eq!(
        copy_in(&c, "COPY b2 FROM STDIN BINARY", &[&raw])
            .await
            .unwrap(),
        2_000
    );
    assert_eq!(
        scalar(
            &c,
            "select count(*) from (select * from b except select * from b2)"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn malformed_binary_copy_is_refused_and_undone() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table b (id integer)")
        .await
        .unwrap();
    let header = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
    let row = [0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1];
    for (input, want) in [
        // Not the signature.
        (b"PGCOPY\n\xff\r\n\x01\0\0\0\0\0\0\0\0".to_vec(), "22P04"),
        // A good row, then one cut short.
        ([&header[..], &row, &row[..row.len() - 3]].concat(), "22P04"),
        // A 4-byte value for an int8 column.
        (
            [&header[..], &row, &[0, 1, 0, 0, 0, 4, 0, 0, 0, 1]].concat(),
            "22P02",
        ),
        // A negative length that is not NULL's.
        (
            [&header[..], &[0, 1, 0xff, 0xff, 0xff, 0xf0]].concat(),
            "22P04",
        ),
    ] {
        let e = copy_in(&c, "COPY b FROM STDIN (FORMAT binary)", &[&input])
            .await
            .unwrap_err();
        assert_eq!(code(&e), want, "{e:?}");
        assert_eq!(scalar(&c, "select count(*) from b").await, 0);
    }
}

fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

async fn send_rows(c: &tokio_postgres::Client, sql: &str, rows: usize, pad: &str) -> u64 {
    let sink = c.copy_in(sql).await.unwrap();
    pin_mut!(sink);
    let mut chunk = String::new();
    for i in 0..rows {
        chunk.push_str(&format!("{i}\t{pad}\n"));
        if chunk.len() > 64 * 1024 {
            sink.send(Bytes::from(std::mem::take(&mut chunk)))
                .await
                .unwrap();
        }
    }
    sink.send(Bytes::from(chunk)).await.unwrap();
    sink.finish().await.unwrap()
}

#[tokio::test]
async fn a_large_copy_completes() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute("create table t(id integer primary key, pad text)")
        .await
        .unwrap();
    assert_eq!(
        send_rows(&c, "COPY t FROM STDIN", 200_000, "some padding").await,
        200_000
    );
    assert_eq!(scalar(&c, "select count(*) from t").await, 200_000);
    assert_eq!(scalar(&c, "select max(id) from t").await, 199_999);
}

/// The rows go through a view whose trigger keeps only a count, so the
/// transaction stays small: what the server's memory shows is COPY's own
/// holding of its input, which must be bounded. (Rows kept in a table are
/// held as the transaction's pages until commit, whatever the statement.)
#[tokio::test]
async fn copy_does_not_hold_its_input() {
    let s = Sqld::start();
    let c = s.connect().await;
    c.batch_execute(
        "create table tally(rows integer, bytes integer); insert into tally values (0, 0);
         create view v as select 0 as id, '' as pad;
         create trigger v_in instead of insert on v begin
           update tally set rows = rows + 1, bytes = bytes + length(new.pad);
         end",
    )
    .await
    .unwrap();
    let pid = s.child.id();
    let before = vm_kib(pid, "VmRSS:");
    const ROWS: usize = 200_000;
    const PAD: usize = 800;
    assert_eq!(
        send_rows(&c, "COPY v FROM STDIN", ROWS, &"p".repeat(PAD)).await,
        ROWS as u64
    );
    assert_eq!(scalar(&c, "select rows from tally").await, ROWS as i64);
    assert_eq!(
        scalar(&c, "select bytes from tally").await,
        (ROWS * PAD) as i64
    );
    // About 160 MB went in; the server's peak grew by far less.
    let peak = vm_kib(pid, "VmHWM:");
    let input_kib = (ROWS * (PAD + 8) / 1024) as u64;
    assert!(
        peak.saturating_sub(before) < input_kib / 4,
        "peak RSS {peak} KiB from {before} KiB for {input_kib} KiB of input"
    );
}

#[tokio::test]
async fn copy_through_a_replica_lands_on_the_primary() {
    let primary = Sqld::start_with(&["--dev"]);
    let p = primary.connect().await;
    p.batch_execute("create table t(id integer primary key, name text)")
        .await
        .unwrap();
    let replica = Sqld::replica_of(&primary, &[]);
    replica.wait_ready();
    let r = replica.connect().await;
    let rows: String = (1..=1200).map(|i| format!("{i},n{i}\n")).collect();
    let n = copy_in(&r, "COPY t FROM STDIN (FORMAT csv)", &[rows.as_bytes()])
        .await
        .unwrap();
    assert_eq!(n, 1200);
    assert_eq!(scalar(&p, "select count(*) from t").await, 1200);
    // A failed COPY through the replica leaves the primary unchanged.
    let e = copy_in(&r, "COPY t FROM STDIN (FORMAT csv)", &[b"5000,x\n1,dup\n"])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505");
    assert_eq!(scalar(&p, "select count(*) from t").await, 1200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while scalar(&r, "select count(*) from t").await != 1200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never saw the rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        copy_out(&r, "COPY (SELECT name FROM t WHERE id = 7) TO STDOUT").await,
        "n7\n"
    );
}

#[test]
fn copy_data_outside_copy_is_ignored_as_postgres_ignores_it() {
    let s = Sqld::start();
    let mut sock = std::net::TcpStream::connect(s.pg_addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&startup_packet("sqld")).unwrap();
    read_messages(&mut sock, b'Z');
    let mut msgs = message(b'd', b"1\t2\n");
    msgs.extend(message(b'c', b""));
    msgs.extend(message(b'Q', b"select 41 + 1\0"));
    sock.write_all(&msgs).unwrap();
    let got = read_messages(&mut sock, b'Z');
    let kinds: Vec<u8> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, b"TDCZ".to_vec(), "{got:?}");
    assert!(got[1].1.ends_with(b"42"));
}

fn psql(s: &Sqld, command: &str, stdin: &[u8]) -> String {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(s.conn_str())
        .args(["-c", command])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::piped());
    let input = stdin.to_vec();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql is installed");
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "psql {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn psql_backslash_copy_in_and_out() {
    let s = Sqld::start();
    psql(&s, "create table t(id integer, name text)", b"");
    let out = psql(
        &s,
        "\\copy t from stdin with (format csv, header)",
        b"id,name\n1,\"a,b\"\n2,\n3,\xc3\xa9\n",
    );
    assert_eq!(out.trim(), "COPY 3");
    let out = psql(&s, "\\copy t to stdout", b"");
    assert_eq!(out, "1\ta,b\n2\t\\N\n3\té\n");
    let out = psql(
        &s,
        "\\copy (select id from t where name is null) to stdout with csv",
        b"",
    );
    assert_eq!(out, "2\n");
    // A bad row: psql reports the error and exits non-zero; nothing kept.
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-w", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(s.conn_str())
        .args(["-c", "\\copy t from stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"4\tx\n5\tx\ttoo many\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("extra data"),
        "{out:?}"
    );
    assert_eq!(
        psql(&s, "select count(*) from t", b"")
            .lines()
            .nth(2)
            .map(str::trim),
        Some("3")
    );
}

#[test]
fn another_message_in_the_middle_of_copy_ends_it_and_undoes_it() {
    let s = Sqld::start();
    let mut sock = std::net::TcpStream::connect(s.pg_addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(&startup_packet("sqld")).unwrap();
    read_messages(&mut sock, b'Z');
    sock.write_all(&message(b'Q', b"create table t(a integer)\0"))
        .unwrap();
    read_messages(&mut sock, b'Z');
    sock.write_all(&message(b'Q', b"COPY t FROM STDIN\0"))
        .unwrap();
    assert_eq!(
        read_messages(&mut sock, b'G').last().map(|m| m.0),
        Some(b'G')
    );
    // More than a batch: some rows are inserted before the interruption.
    let rows: String = (0..1200).map(|i| format!("{i}\n")).collect();
    sock.write_all(&message(b'd', rows.as_bytes())).unwrap();
    // A query during COPY FROM is a protocol violation: refused, and the
    // COPY is over.
    sock.write_all(&message(b'Q', b"select 1\0")).unwrap();
    let got = read_messages(&mut sock, b'Z');
    assert_eq!(got.first().map(|m| m.0), Some(b'E'), "{got:?}");
    assert_eq!(got.last().map(|m| m.1.as_slice()), Some(&b"I"[..]));
    sock.write_all(&message(b'Q', b"select count(*) from t\0"))
        .unwrap();
    let got = read_messages(&mut sock, b'Z');
    let row = got.iter().find(|m| m.0 == b'D').expect("a row");
    assert!(row.1.ends_with(b"0"), "{got:?}");
    assert_eq!(got.last().map(|m| m.1.as_slice()), Some(&b"I"[..]));
}
