//! pg_dump (Debian's, version 15) against a started sqld: it reads the
//! schema through `pg_catalog`, and what it writes restores into another.
//!
//! pg_dump must be installed (scripts/setup.sh installs postgresql-client);
//! a missing one fails the test rather than skipping it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::Sqld;

const SCHEMA: &str = "
    create table parent (id integer primary key, name text not null unique,
        score real default 0.5, data blob, active boolean default true,
        created timestamp default current_timestamp, check (score >= 0));
    create table child (a integer, b integer, parent_id integer references parent(id),
        note text, primary key (a, b));
    create index child_note on child (note);
    create unique index child_parent_note on child (parent_id, note);
    create view parent_names as select id, name from parent;";

/// Runs a PostgreSQL client program against `sqld`, failing the test if
/// it fails; returns its standard output.
fn run(program: &str, sqld: &Sqld, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &sqld.port().to_string(),
        "-U",
        "sqld",
    ])
    .args(args);
    let out = common::run_bounded(
        cmd,
        Duration::from_secs(60),
        "install postgresql-client (scripts/setup.sh)",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn dump_schema(sqld: &Sqld) -> String {
    run("pg_dump", sqld, &["--schema-only", "sqld"])
}

/// The dump without its comments and the random key of `\restrict`.
fn statements(dump: &str) -> Vec<&str> {
    dump.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("--") && !l.starts_with("\\"))
        .collect()
}

#[tokio::test]
async fn schema_only_dump_describes_the_schema() {
    let sqld = Sqld::start();
    sqld.connect().await.batch_execute(SCHEMA).await.unwrap();
    let dump = dump_schema(&sqld);
    for expected in [
        "-- Dumped from database version 15.0 (sqld",
        "CREATE TABLE public.parent (\n    id bigint NOT NULL,\n    name text NOT NULL,\n    \
         score double precision DEFAULT 0.5,\n    data bytea,\n    active boolean DEFAULT true,\n    \
         created timestamp without time zone DEFAULT current_timestamp,\n    \
         CONSTRAINT parent_score_check CHECK (score >= 0)\n);",
        "CREATE TABLE public.child (\n    a bigint NOT NULL,\n    b bigint NOT NULL,\n    \
         parent_id bigint,\n    note text\n);",
        "CREATE VIEW public.parent_names AS\nselect id, name from parent;",
        "ALTER TABLE ONLY public.child\n    ADD CONSTRAINT child_pkey PRIMARY KEY (a, b);",
        "ALTER TABLE ONLY public.parent\n    ADD CONSTRAINT parent_pkey PRIMARY KEY (id);",
        "ALTER TABLE ONLY public.parent\n    ADD CONSTRAINT parent_name_key UNIQUE (name);",
        "CREATE INDEX child_note ON public.child USING btree (note);",
        "CREATE UNIQUE INDEX child_parent_note ON public.child USING btree (parent_id, note);",
        "ALTER TABLE ONLY public.child\n    ADD CONSTRAINT child_parent_id_fkey \
         FOREIGN KEY (parent_id) REFERENCES parent(id);",
    ] {
        assert!(dump.contains(expected), "{expected}\nnot in:\n{dump}");
    }
    // Nothing about privileges or comments sqld does not have.
    for unexpected in ["REVOKE", "GRANT", "COMMENT ON"] {
        assert!(!dump.contains(unexpected), "{unexpected} in:\n{dump}");
    }
}

/// A table created after the session built its catalog is dumped too.
#[tokio::test]
async fn tables_created_after_the_catalog_was_built_are_dumped() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute("create table first (id integer primary key)")
        .await
        .unwrap();
    assert!(dump_schema(&sqld).contains("CREATE TABLE public.first"));
    c.batch_execute("create table second (id integer primary key)")
        .await
        .unwrap();
    let dump = dump_schema(&sqld);
    assert!(dump.contains("CREATE TABLE public.second"), "{dump}");
}

/// What psql restores from the dump into a fresh sqld dumps the same, and
/// its constraints hold (SQLite cannot add one to a table: sqld makes the
/// table again with it).
#[tokio::test]
async fn a_restored_dump_gives_the_same_schema() {
    let source = Sqld::start();
    source.connect().await.batch_execute(SCHEMA).await.unwrap();
    let dump = dump_schema(&source);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("schema.sql");
    std::fs::write(&file, &dump).unwrap();

    let target = Sqld::start();
    let file = file.display().to_string();
    run(
        "psql",
        &target,
        &["-q", "-v", "ON_ERROR_STOP=1", "-f", &file, "sqld"],
    );
    let restored = dump_schema(&target);
    assert_eq!(
        statements(&restored),
        statements(&dump),
        "restored:\n{restored}"
    );

    let c = target.connect().await;
    c.batch_execute("insert into parent (id, name) values (1, 'a')")
        .await
        .unwrap();
    for (sql, sqlstate) in [
        ("insert into parent (id, name) values (1, 'b')", "23505"),
        ("insert into parent (id, name) values (2, 'a')", "23505"),
        (
            "insert into parent (id, name, score) values (3, 'c', -1)",
            "23514",
        ),
        (
            "insert into child (a, b, parent_id) values (1, 1, 9)",
            "23503",
        ),
    ] {
        let e = c.batch_execute(sql).await.unwrap_err();
        assert_eq!(e.code().unwrap().code(), sqlstate, "{sql}: {e}");
    }
    c.batch_execute("insert into child (a, b, parent_id) values (1, 1, 1)")
        .await
        .unwrap();
}

/// A constraint added to a table with rows keeps them, and one they break
/// is refused with the table as it was.
#[tokio::test]
async fn adding_a_constraint_keeps_the_rows() {
    let sqld = Sqld::start();
    let c = sqld.connect().await;
    c.batch_execute(
        "create table t (id bigint not null, v text);
         create index t_v on t (v);
         insert into t values (1, 'a'), (2, 'b'), (3, 'b')",
    )
    .await
    .unwrap();
    c.batch_execute("alter table only public.t add constraint t_pkey primary key (id)")
        .await
        .unwrap();
    assert_eq!(common::scalar(&c, "select count(*) from t").await, 3);
    let e = c
        .batch_execute("alter table t add constraint t_v_key unique (v)")
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "23505", "{e}");
    assert_eq!(common::scalar(&c, "select count(*) from t").await, 3);
    let indexes = c
        .query(
            "select name, origin from pragma_index_list('t') order by name",
            &[],
        )
        .await
        .unwrap();
    let indexes: Vec<(String, String)> = indexes.iter().map(|r| (r.get(0), r.get(1))).collect();
    // The one-integer key is SQLite's rowid again (no index of its own),
    // so a row left without one is numbered, as before the dump.
    assert_eq!(indexes, [("t_v".to_owned(), "c".to_owned())]);
    c.batch_execute("insert into t (v) values ('c')")
        .await
        .unwrap();
    assert_eq!(common::scalar(&c, "select max(id) from t").await, 4);
}
