//! Promotion, epochs, rejoin and fencing with real processes: a primary
//! killed or paused, a replica promoted with `sqld promote`, the others
//! re-pointed with `sqld follow`, the old primary rejoining as a replica.

mod common;

use std::time::Duration;

use common::{eventually, metric, scalar, sqld_command, Sqld};

const WITHIN: Duration = Duration::from_secs(30);

async fn insert(c: &tokio_postgres::Client, from: i64, to: i64, tag: &str) {
    c.batch_execute(&format!(
        "with recursive n(x) as (select {from} union all select x + 1 from n where x < {to}) \
         insert into t select x, '{tag}' from n"
    ))
    .await
    .unwrap();
}

/// Every row of `t`, in order, as one string: equal strings, equal tables.
async fn content(s: &Sqld) -> String {
    let Ok((c, connection)) = tokio_postgres::connect(&s.conn_str(), tokio_postgres::NoTls).await
    else {
        return "unavailable".into();
    };
    tokio::spawn(connection);
    c.query_one(
        "select coalesce(group_concat(id || ':' || v, ','), '') from (select * from t order by id)",
        &[],
    )
    .await
    .map_or_else(|e| format!("error: {e}"), |row| row.get(0))
}

/// Rows in `t` (-1 while the table is not there yet, or the server is
/// changing role).
async fn count(s: &Sqld) -> i64 {
    let Ok((c, connection)) = tokio_postgres::connect(&s.conn_str(), tokio_postgres::NoTls).await
    else {
        return -1;
    };
    tokio::spawn(connection);
    match c.query_one("select count(*) from t", &[]).await {
        Ok(row) => row.get(0),
        Err(_) => -1,
    }
}

fn wait_count(s: &Sqld, rows: i64) {
    let rt = tokio::runtime::Handle::current();
    eventually(&format!("{} rows", rows), WITHIN, || {
        tokio::task::block_in_place(|| rt.block_on(async { count(s).await == rows }))
    });
}

fn promote(s: &Sqld) -> serde_json::Value {
    let out = sqld_command(&["promote", "--url", &s.http_url(), "--timeout", "30s"]);
    serde_json::from_str(&out).unwrap()
}

fn follow(s: &Sqld, primary: &Sqld) -> serde_json::Value {
    let out = sqld_command(&[
        "follow",
        "--url",
        &s.http_url(),
        "--primary-url",
        &primary.http_url(),
        "--timeout",
        "30s",
    ]);
    serde_json::from_str(&out).unwrap()
}

async fn integrity(s: &Sqld) -> String {
    s.connect()
        .await
        .query_one("pragma integrity_check", &[])
        .await
        .unwrap()
        .get(0)
}

/// A primary with rows 1-100 of `t` and two replicas that have them all;
/// with a client of the primary.
async fn three_with_rows() -> (Sqld, tokio_postgres::Client, Sqld, Sqld) {
    let primary = Sqld::start();
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    insert(&c, 1, 100, "first").await;
    let r1 = Sqld::replica_of(&primary, &[]);
    let r2 = Sqld::replica_of(&primary, &[]);
    wait_count(&r1, 100);
    wait_count(&r2, 100);
    (primary, c, r1, r2)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promoted_replica_takes_writes_and_the_others_follow_it_without_a_bootstrap() {
    let (mut primary, c, r1, mut r2) = three_with_rows().await;

    // r2 stops, so falls behind; r1 gets everything the primary
    // acknowledged.
    r2.terminate();
    insert(&c, 101, 150, "second").await;
    wait_count(&r1, 150);
    primary.kill9();

    let promoted = promote(&r1);
    assert_eq!(promoted["role"], "primary", "{promoted}");
    assert_eq!(promoted["epoch"], 2, "{promoted}");
    let w = r1.connect().await;
    insert(&w, 151, 160, "third").await;

    // r2 had stopped before the promotion point: it follows the new
    // primary from where it was, with no bootstrap (the frames it missed
    // are those r1 kept), once pointed at it.
    r2.restart();
    let following = follow(&r2, &r1);
    assert_eq!(following["role"], "replica", "{following}");
    wait_count(&r2, 160);
    assert_eq!(metric(&r2, "sqld_replication_bootstraps_total"), 0.0);
    assert_eq!(metric(&r2, "sqld_epoch"), 2.0);
    // Its sessions forward writes to the new primary.
    insert(&r2.connect().await, 161, 161, "via-r2").await;
    wait_count(&r1, 161);

    // The old primary, on its own directory, rejoins as a replica of the
    // new one and converges.
    let old = Sqld::replica_on(&primary.db_dir, &r1, &[]);
    old.wait_ready();
    wait_count(&old, 161);
    for s in [&r1, &r2, &old] {
        assert_eq!(integrity(s).await, "ok");
    }
    let expected = content(&r1).await;
    assert_eq!(content(&r2).await, expected);
    assert_eq!(content(&old).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_ahead_of_the_promoted_one_discards_its_divergent_tail() {
    let (mut primary, c, mut r1, r2) = three_with_rows().await;

    // r1 stops, r2 gets commits r1 never will; r1 comes back once the
    // primary is gone. (A paused r1 would not do: on resuming it reads the
    // frames its socket had already received.)
    r1.terminate();
    insert(&c, 101, 150, "lost").await;
    wait_count(&r2, 150);
    primary.kill9();
    r1.restart();

    promote(&r1);
    insert(&r1.connect().await, 1001, 1010, "new").await;
    follow(&r2, &r1);
    wait_count(&r2, 110);
    assert_eq!(
        metric(&r2, "sqld_replication_divergent_rejoins_total"),
        1.0,
        "r2 held frames 101-150 of the old epoch"
    );
    let r2c = r2.connect().await;
    assert_eq!(
        scalar(&r2c, "select count(*) from t where v = 'lost'").await,
        0
    );
    assert_eq!(content(&r2).await, content(&r1).await);
    assert_eq!(integrity(&r2).await, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_primary_fences_itself_and_no_write_it_takes_after_survives() {
    let primary = Sqld::start();
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    insert(&c, 1, 10, "before").await;
    let r1 = Sqld::replica_of(&primary, &[]);
    wait_count(&r1, 10);

    // Two primaries: the old one paused through the promotion, then back.
    primary.pause();
    promote(&r1);
    primary.resume();

    // The old primary's clients: a write either fails, or was taken in the
    // moment before the new primary reached it; once fenced, every write
    // fails (25006; or, as it turns replica, 57P01 or a closed connection).
    let mut taken_after_promotion = 0;
    let deadline = std::time::Instant::now() + WITHIN;
    let refused = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the old primary still takes writes"
        );
        match c
            .batch_execute("insert into t(v) values ('split-brain')")
            .await
        {
            Ok(()) => taken_after_promotion += 1,
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let code = refused.as_db_error().map(|e| e.code().code().to_owned());
    assert!(
        matches!(code.as_deref(), Some("25006" | "57P01")) || refused.is_closed(),
        "{refused:?}"
    );
    eprintln!("writes the old primary took after the promotion, before it was fenced: {taken_after_promotion}");

    // Told by the new primary where it is, it rejoins as its replica by
    // itself: what it took after the promotion is gone.
    eventually("the old primary follows the new one", WITHIN, || {
        let (status, body) = primary.http_get("/v1/admin/status");
        status == 200 && body.contains(r#""role":"replica""#) && body.contains(&r1.http_url())
    });
    insert(&r1.connect().await, 11, 11, "after").await;
    // Until it has bootstrapped (not ready meanwhile) it still holds its
    // own rows: wait for the new primary's.
    primary.wait_ready();
    let rt = tokio::runtime::Handle::current();
    eventually("the old primary has the new primary's rows", WITHIN, || {
        tokio::task::block_in_place(|| {
            rt.block_on(async { content(&primary).await == content(&r1).await })
        })
    });
    let pc = primary.connect().await;
    assert_eq!(
        scalar(&pc, "select count(*) from t where v = 'split-brain'").await,
        0
    );
    assert_eq!(content(&primary).await, content(&r1).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn promoting_a_primary_or_an_unknown_epoch_is_refused() {
    let primary = Sqld::start();
    let (status, body) = primary.http_post("/v1/admin/promote");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already the primary"), "{body}");
    let (status, _) = primary.http_post("/v1/admin/fence?epoch=1");
    assert_eq!(status, 409, "epoch 1 is the primary's own");
    let (status, body) = primary.http_get("/v1/admin/status");
    assert_eq!(status, 200);
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["role"], "primary");
    assert_eq!(s["epoch"], 1);
    assert_eq!(s["fenced"], false);
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();

    // Fenced by an orchestrator naming no new primary: it stays, refusing
    // writes with 25006, not ready, still serving reads.
    let (status, body) = primary.http_post("/v1/admin/fence?epoch=5");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""fenced":true"#), "{body}");
    let err = c
        .batch_execute("insert into t values (1, 'x')")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25006"), "{err:?}");
    assert_eq!(primary.http_get("/ready").0, 503);
    assert_eq!(metric(&primary, "sqld_fenced"), 1.0);
    assert_eq!(count(&primary).await, 0);
}

/// The most advanced of `replicas` by the admin status (highest epoch,
/// then highest frame), once their positions have stopped moving: a
/// replica may still be applying what it received before the primary died.
fn most_advanced<'a>(replicas: &[&'a Sqld]) -> &'a Sqld {
    let positions = || -> Vec<(u64, u64)> {
        replicas
            .iter()
            .map(|r| {
                let s: serde_json::Value =
                    serde_json::from_str(&r.http_get("/v1/admin/status").1).unwrap_or_default();
                (
                    s["epoch"].as_u64().unwrap_or(0),
                    s["frame_no"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let mut last = positions();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = positions();
        if now == last {
            break;
        }
        last = now;
    }
    let best = (0..replicas.len()).max_by_key(|i| last[*i]).unwrap();
    replicas[best]
}

/// How many `acked` transaction ids are missing from `s`.
async fn missing(s: &Sqld, acked: &[i64]) -> usize {
    let c = s.connect().await;
    let mut missing = 0;
    for chunk in acked.chunks(500) {
        let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
        let found = scalar(
            &c,
            &format!("select count(*) from t where id in ({})", ids.join(",")),
        )
        .await;
        missing += chunk.len() - found as usize;
    }
    missing
}

/// One failover under load: 8 writers (4 on the primary, 2 through each
/// replica) commit two-row transactions until the primary is killed with
/// -9; the most advanced replica is promoted, the other follows it, the
/// old primary rejoins. Returns (acknowledged, lost).
async fn failover_under_load(synchronous: bool) -> (usize, usize) {
    let required = if synchronous { "1" } else { "0" };
    let mut primary = Sqld::start_with(&[
        "--dev",
        "--synchronous-replicas",
        required,
        "--synchronous-commit-timeout",
        "5s",
    ]);
    let c = primary.connect().await;
    // No replica yet to confirm it: this session opts out.
    c.batch_execute("set synchronous_commit = off")
        .await
        .unwrap();
    c.batch_execute("create table t(id integer primary key, pair integer not null)")
        .await
        .unwrap();
    let r1 = Sqld::replica_of(&primary, &[]);
    let r2 = Sqld::replica_of(&primary, &[]);
    wait_count(&r1, 0);
    wait_count(&r2, 0);

    let targets = [&primary, &primary, &primary, &primary, &r1, &r1, &r2, &r2];
    let mut writers = Vec::new();
    for (w, target) in targets.iter().enumerate() {
        let client = target.connect().await;
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0.. {
                let id = w as i64 * 1_000_000 + i;
                let txn = format!(
                    "begin; insert into t values ({id}, {id}); \
                     insert into t values ({}, {id}); commit",
                    id + 1_000_000_000
                );
                match client.batch_execute(&txn).await {
                    Ok(()) => acked.push(id),
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    primary.kill9();
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    assert!(acked.len() > 50, "the writers got going: {}", acked.len());

    let new = most_advanced(&[&r1, &r2]);
    let other = if std::ptr::eq(new, &r1) { &r2 } else { &r1 };
    let killed_at = std::time::Instant::now();
    promote(new);
    new.connect()
        .await
        .batch_execute("insert into t values (-1, -1)")
        .await
        .unwrap();
    eprintln!(
        "promotion to the first write on the new primary: {:?}",
        killed_at.elapsed()
    );
    let lost = missing(new, &acked).await;

    // No transaction is half there, anywhere.
    let halves = "select count(*) from t a where not exists \
                  (select 1 from t b where b.pair = a.pair and b.id <> a.id) and a.id >= 0";
    assert_eq!(scalar(&new.connect().await, halves).await, 0);

    follow(other, new);
    assert_eq!(
        metric(other, "sqld_replication_bootstraps_total"),
        0.0,
        "the other replica was at most as far as the promoted one"
    );
    let old = Sqld::replica_on(&primary.db_dir, new, &[]);
    old.wait_ready();
    let rows = count(new).await;
    wait_count(other, rows);
    wait_count(&old, rows);
    let expected = scalar(&new.connect().await, "select sum(id) from t").await;
    for s in [other, &old] {
        assert_eq!(integrity(s).await, "ok");
        assert_eq!(
            scalar(&s.connect().await, "select sum(id) from t").await,
            expected
        );
        assert_eq!(scalar(&s.connect().await, halves).await, 0);
    }
    (acked.len(), lost)
}

/// Rounds of the synchronous failover test: 3 here, more from
/// `scripts/failover.sh` (SQLD_FAILOVER_ROUNDS).
fn rounds() -> usize {
    std::env::var("SQLD_FAILOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_synchronous_replica_a_failover_loses_no_acknowledged_commit() {
    for round in 1..=rounds() {
        let (acked, lost) = failover_under_load(true).await;
        eprintln!("synchronous round {round}: {acked} acknowledged, {lost} lost");
        assert_eq!(lost, 0, "round {round}: acknowledged commits lost");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_asynchronous_replicas_a_failover_loses_at_most_the_unreplicated_tail() {
    let (acked, lost) = failover_under_load(false).await;
    // Not asserted zero: asynchronous commits the replicas had not applied
    // are lost with the primary. Nothing is half there (checked above).
    eprintln!("asynchronous: {acked} acknowledged, {lost} lost");
    assert!(lost < acked);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_under_load_loses_nothing_and_the_old_primary_follows_without_a_bootstrap() {
    let primary = Sqld::start();
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    let target = Sqld::replica_of(&primary, &[]);
    let other = Sqld::replica_of(&primary, &[]);
    wait_count(&target, 0);
    wait_count(&other, 0);

    // Writers on the primary and through the other replica, reconnecting
    // and retrying through the switch.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, conn_str) in [
        primary.conn_str(),
        primary.conn_str(),
        primary.conn_str(),
        other.conn_str(),
    ]
    .into_iter()
    .enumerate()
    {
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), 0);
            let mut client = None;
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if client.is_none() {
                    match tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await {
                        Ok((c, connection)) => {
                            tokio::spawn(connection);
                            client = Some(c);
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let id = w as i64 * 1_000_000 + i;
                i += 1;
                let txn = format!("insert into t values ({id}, 'w{w}')");
                match client.as_ref().unwrap().batch_execute(&txn).await {
                    Ok(()) => acked.push(id),
                    Err(e) => {
                        refused += 1;
                        if e.is_closed() || e.as_db_error().is_none() {
                            client = None;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (acked, refused)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let out = sqld_command(&[
        "switchover",
        "--url",
        &primary.http_url(),
        "--to",
        &target.http_url(),
        "--timeout",
        "30s",
    ]);
    let switched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(switched["primary"]["role"], "primary", "{switched}");
    assert_eq!(switched["primary"]["epoch"], 2, "{switched}");
    assert_eq!(switched["replica"]["role"], "replica", "{switched}");
    eprintln!("switchover write pause: {} ms", switched["write_pause_ms"]);

    follow(&other, &target);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut acked, mut refused) = (Vec::new(), 0);
    for writer in writers {
        let (a, r) = writer.await.unwrap();
        acked.extend(a);
        refused += r;
    }
    eprintln!(
        "switchover: {} acknowledged, {refused} refused during the switch",
        acked.len()
    );
    assert_eq!(
        missing(&target, &acked).await,
        0,
        "acknowledged commits lost"
    );
    // The old primary followed on from its own end, as did the other.
    assert_eq!(metric(&primary, "sqld_replication_bootstraps_total"), 0.0);
    assert_eq!(metric(&other, "sqld_replication_bootstraps_total"), 0.0);
    let rows = count(&target).await;
    wait_count(&primary, rows);
    wait_count(&other, rows);
    assert_eq!(content(&primary).await, content(&target).await);
    assert_eq!(integrity(&primary).await, "ok");
}

/// A loopback TCP proxy that can be cut like a partition: while cut, it
/// forwards nothing either way and holds every connection open, new ones
/// included, as a network that drops packets does.
struct Partition {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    async fn between(to: std::net::SocketAddr) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = tokio::spawn(pump(cr, sw, flag.clone()));
                    let down = tokio::spawn(pump(sr, cw, flag));
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Partition { addr, cut }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes one way while the link is up; while it is cut, holds both
/// ends open and forwards nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        while cut.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while cut.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_cut_off_from_its_replicas_stops_taking_writes_within_fence_after() {
    let primary = Sqld::start_with(&["--dev", "--fence-after", "2s"]);
    let link = Partition::between(primary.http_addr).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = Sqld::spawn(
        &dir.path().join("db"),
        &[
            "--dev",
            "--primary-url",
            &link.url(),
            "--max-replica-lag-frames",
            "0",
        ],
    );
    let c = primary.connect().await;
    c.batch_execute("create table t(id integer primary key, v text)")
        .await
        .unwrap();
    wait_count(&replica, 0);
    // Well past the bound, in contact: writes go on.
    for i in 0..30 {
        c.batch_execute(&format!("insert into t values ({i}, 'in contact')"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    link.cut(true);
    let cut_at = std::time::Instant::now();
    let mut taken = 0;
    let refused = loop {
        assert!(
            cut_at.elapsed() < WITHIN,
            "the isolated primary still takes writes"
        );
        match c
            .batch_execute(&format!(
                "insert into t values ({}, 'cut off')",
                100 + taken
            ))
            .await
        {
            Ok(()) => taken += 1,
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopped_after = cut_at.elapsed();
    eprintln!(
        "isolated primary stopped taking writes {stopped_after:?} after the cut ({taken} taken)"
    );
    assert_eq!(
        refused.as_db_error().map(|e| e.code().code()),
        Some("25006"),
        "{refused:?}"
    );
    assert!(
        stopped_after < Duration::from_secs(4),
        "--fence-after 2s, stopped after {stopped_after:?}"
    );
    // Reads go on; an orchestrator reaching it (or a replica, once the
    // network heals) lifts the fence.
    assert!(count(&primary).await >= 30);
    link.cut(false);
    assert_eq!(primary.http_get("/v1/admin/status").0, 200);
    c.batch_execute("insert into t values (1000, 'back')")
        .await
        .unwrap();
}
