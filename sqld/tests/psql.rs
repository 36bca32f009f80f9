//! The real `psql` (Debian `postgresql-client`) against a started sqld:
//! what an operator typing at a terminal, or a deploy script, would do.
//!
//! psql must be installed; a missing binary fails the tests rather than
//! skipping them, so a CI image without it cannot pass by accident.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Sqld;

/// No single psql run here should come near this.
const PSQL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs psql against `sqld` with `args`, never reading `~/.psqlrc` (`-X`)
/// and never prompting for a password (`-w`). `env` adds variables such
/// as `PGPASSWORD`.
fn psql(sqld: &Sqld, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.arg("-X")
        .arg("-w")
        .arg("-d")
        .arg(sqld.conn_str())
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env("PGCONNECT_TIMEOUT", "5")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    run_bounded(cmd, PSQL_TIMEOUT)
}

fn run_bounded(cmd: Command, timeout: Duration) -> Output {
    common::run_bounded(
        cmd,
        timeout,
        "it comes with Debian's postgresql-client package: apt-get install postgresql-client",
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with everything psql said unless it exited 0.
#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "psql failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn write_script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn several_commands_round_trip_in_unaligned_output() {
    let sqld = Sqld::start();
    let out = psql(
        &sqld,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-qAt",
            "-c",
            "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL)",
            "-c",
            "INSERT INTO items VALUES (1, 'apple', 0.5), (2, 'pear', 1.25), (3, NULL, 2)",
            "-c",
            "SELECT id, name, price FROM items ORDER BY id",
            "-c",
            "SELECT count(*), sum(price) FROM items",
        ],
        &[],
    );
    assert_ok(&out);
    // -At prints no command tags for utility statements and rows as
    // `a|b|c`; NULL is the empty string.
    assert_eq!(
        stdout(&out),
        "1|apple|0.5\n2|pear|1.25\n3||2\n3|3.75\n",
        "stderr: {}",
        stderr(&out)
    );
}

#[test]
fn aligned_output_shows_command_tags() {
    let sqld = Sqld::start();
    let out = psql(
        &sqld,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
            "-c",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "-c",
            "UPDATE t SET v = 'c' WHERE id = 2",
            "-c",
            "DELETE FROM t WHERE id = 1",
            "-c",
            "SELECT * FROM t",
        ],
        &[],
    );
    assert_ok(&out);
    let text = stdout(&out);
    for expected in [
        "CREATE TABLE",
        "INSERT 0 2",
        "UPDATE 1",
        "DELETE 1",
        " id | v ",
        "  2 | c",
        "(1 row)",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn multi_statement_string_in_one_c() {
    let sqld = Sqld::start();
    // One -c with several statements goes out as one simple Query message;
    // psql prints the last result.
    let out = psql(
        &sqld,
        &[
            "-qAt",
            "-c",
            "CREATE TABLE m(x INTEGER); INSERT INTO m VALUES (1),(2),(3); SELECT sum(x) FROM m",
        ],
        &[],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "6\n");
}

#[test]
fn script_file_with_on_error_stop() {
    let sqld = Sqld::start();
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "load.sql",
        "\\set ON_ERROR_STOP 1\n\
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER);\n\
         BEGIN;\n\
         INSERT INTO accounts VALUES (1, 'ann', 100);\n\
         INSERT INTO accounts VALUES (2, 'bob', 50);\n\
         UPDATE accounts SET balance = balance - 30 WHERE id = 1;\n\
         UPDATE accounts SET balance = balance + 30 WHERE id = 2;\n\
         COMMIT;\n\
         -- a comment, then a statement over two lines\n\
         SELECT owner, balance\n  FROM accounts ORDER BY id;\n\
         SELECT sum(balance) AS total FROM accounts;\n",
    );
    let out = psql(&sqld, &["-qAt", "-f", &script], &[]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "ann|70\nbob|80\n150\n");

    // The same script stops at the first error: exit status 3, the rest
    // is not run, and the message names file and line.
    let failing = write_script(
        dir.path(),
        "fail.sql",
        "\\set ON_ERROR_STOP 1\n\
         INSERT INTO accounts VALUES (3, 'cid', 1);\n\
         INSERT INTO no_such_table VALUES (1);\n\
         INSERT INTO accounts VALUES (4, 'dee', 1);\n",
    );
    let out = psql(&sqld, &["-qAt", "-f", &failing], &[]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("fail.sql:3: ERROR:"), "{err}");
    assert!(err.contains("no_such_table"), "{err}");

    let out = psql(
        &sqld,
        &["-qAt", "-c", "SELECT id FROM accounts ORDER BY id"],
        &[],
    );
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "1\n2\n3\n",
        "row 4 must not have been inserted"
    );
}

#[test]
fn errors_exit_non_zero_with_sqlstate_on_stderr() {
    let sqld = Sqld::start();
    let setup = psql(
        &sqld,
        &[
            "-c",
            "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        ],
        &[],
    );
    assert_ok(&setup);

    let cases = [
        ("SELECT * FROM missing_table", "42P01", "missing_table"),
        ("SELEC 1", "42601", "syntax error"),
        ("INSERT INTO u VALUES (1, NULL)", "23502", "NOT NULL"),
    ];
    for (sql, state, fragment) in cases {
        let out = psql(
            &sqld,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                sql,
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(1), "{sql}: stderr {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("ERROR:  {state}:")), "{sql}: {err}");
        assert!(err.contains(fragment), "{sql}: {err}");
    }

    // A unique violation, and the row that was there is intact.
    let out = psql(
        &sqld,
        &[
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "INSERT INTO u VALUES (7, 'first')",
            "-c",
            "INSERT INTO u VALUES (7, 'second')",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("ERROR:  23505:"), "{}", stderr(&out));
    let out = psql(&sqld, &["-qAt", "-c", "SELECT v FROM u WHERE id = 7"], &[]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "first\n");

    // At default verbosity the message still reaches stderr.
    let out = psql(&sqld, &["-c", "SELECT * FROM missing_table"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ERROR:  no such table: missing_table"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failed_statement_aborts_transaction_until_rollback() {
    let sqld = Sqld::start();
    let dir = tempfile::tempdir().unwrap();
    // Without ON_ERROR_STOP psql carries on; like Postgres, the server
    // refuses everything in the failed transaction until ROLLBACK.
    let script = write_script(
        dir.path(),
        "txn.sql",
        "CREATE TABLE k(id INTEGER PRIMARY KEY);\n\
         BEGIN;\n\
         INSERT INTO k VALUES (1);\n\
         INSERT INTO k VALUES (1);\n\
         INSERT INTO k VALUES (2);\n\
         ROLLBACK;\n\
         INSERT INTO k VALUES (3);\n\
         SELECT id FROM k ORDER BY id;\n",
    );
    let out = psql(
        &sqld,
        &["-qAt", "-v", "VERBOSITY=verbose", "-f", &script],
        &[],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "3\n");
    let err = stderr(&out);
    assert!(err.contains("txn.sql:4: ERROR:  23505:"), "{err}");
    assert!(err.contains("txn.sql:5: ERROR:  25P02:"), "{err}");
}

#[test]
fn timing_and_echo_meta_commands() {
    let sqld = Sqld::start();
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "meta.sql",
        "\\set ON_ERROR_STOP 1\n\
         \\timing on\n\
         \\echo starting\n\
         CREATE TABLE e(x INTEGER);\n\
         INSERT INTO e VALUES (41);\n\
         SELECT x + 1 AS answer FROM e;\n\
         \\set name world\n\
         \\echo hello :name\n\
         \\timing off\n\
         SELECT 'done';\n",
    );
    // Not quiet (-q would hide the "Timing is on." notices).
    let out = psql(&sqld, &["-At", "-f", &script], &[]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"Timing is on."), "{text}");
    assert!(lines.contains(&"starting"), "{text}");
    assert!(lines.contains(&"42"), "{text}");
    assert!(lines.contains(&"hello world"), "{text}");
    assert!(lines.contains(&"Timing is off."), "{text}");
    assert!(lines.contains(&"CREATE TABLE"), "{text}");
    assert!(lines.contains(&"INSERT 0 1"), "{text}");
    assert_eq!(lines.last(), Some(&"done"), "{text}");
    let timings = lines.iter().filter(|l| l.starts_with("Time: ")).count();
    assert_eq!(timings, 3, "one Time: line per statement while on:\n{text}");
}

#[test]
fn server_version_is_reported() {
    let sqld = Sqld::start();
    let out = psql(&sqld, &["-qAt", "-c", "SHOW server_version"], &[]);
    assert_ok(&out);
    assert!(stdout(&out).contains("sqld"), "{}", stdout(&out));
}

#[test]
fn scram_password_authentication() {
    let sqld = Sqld::start_with(&["--auth", "password", "--password", "correct horse"]);

    let out = psql(
        &sqld,
        &["-qAt", "-c", "SELECT 'in'"],
        &[("PGPASSWORD", "correct horse")],
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "in\n");

    let out = psql(
        &sqld,
        &["-qAt", "-c", "SELECT 'in'"],
        &[("PGPASSWORD", "battery staple")],
    );
    assert_eq!(out.status.code(), Some(2), "wrong password must not log in");
    let err = stderr(&out);
    // Named as the startup packet names it, as Postgres does (libpq leaves
    // the name in the SCRAM messages empty).
    assert!(
        err.to_ascii_lowercase()
            .contains("password authentication failed for user \"sqld\""),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    // No password at all: the server asks for one, psql -w cannot give it.
    let out = psql(&sqld, &["-qAt", "-c", "SELECT 'in'"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no password supplied"),
        "{}",
        stderr(&out)
    );
}

/// psql prints the FATAL a session gets when the server ends it while it
/// waits for the next command: the reason, not just a lost connection.
#[test]
fn psql_is_told_why_its_session_ended() {
    fn assert_ended_with(out: &Output, reason: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(reason), "{stderr}");
    }

    let sqld = Sqld::start_with(&["--dev", "--idle-in-transaction-timeout", "300ms"]);
    let commands = ["-c", "begin", "-c", "\\! sleep 1", "-c", "select 1"];
    let out = psql(&sqld, &commands, &[]);
    assert_ended_with(
        &out,
        "terminating connection due to idle-in-transaction timeout",
    );

    let mut sqld = Sqld::start_with(&["--dev"]);
    let kill = format!("\\! kill -TERM {}; sleep 1", sqld.child.id());
    let out = psql(
        &sqld,
        &["-c", "select 1", "-c", &kill, "-c", "select 1"],
        &[],
    );
    assert_ended_with(&out, "terminating connection due to administrator command");
    assert!(sqld.terminate().success());
}

/// psql's describe commands read the catalog views: their output is what
/// psql prints for the same schema on Postgres.
#[test]
fn describe_commands_show_the_schema() {
    let sqld = Sqld::start();
    assert_ok(&psql(
        &sqld,
        &[
            "-q",
            "-c",
            "create table author(id integer primary key, name text not null unique, born date)",
            "-c",
            "create table book(id integer primary key, author_id integer not null \
             references author(id), title varchar(200) default 'untitled', price numeric)",
            "-c",
            "create index book_author on book(author_id)",
        ],
        &[],
    ));
    let describe = |command: &str| {
        let out = psql(&sqld, &["-c", command], &[]);
        assert_ok(&out);
        stdout(&out)
    };
    assert_eq!(
        describe("\\dt"),
        "        List of relations
 Schema |  Name  | Type  | Owner 
--------+--------+-------+-------
 public | author | table | sqld
 public | book   | table | sqld
(2 rows)

"
    );
    assert_eq!(
        describe("\\di"),
        "                 List of relations
 Schema |      Name       | Type  | Owner | Table  
--------+-----------------+-------+-------+--------
 public | author_name_key | index | sqld  | author
 public | author_pkey     | index | sqld  | author
 public | book_author     | index | sqld  | book
 public | book_pkey       | index | sqld  | book
(4 rows)

"
    );
    assert_eq!(
        describe("\\dn"),
        "List of schemas
  Name  | Owner 
--------+-------
 public | sqld
(1 row)

"
    );
    assert_eq!(
        describe("\\d book"),
        "                        Table \"public.book\"
  Column   |       Type        | Collation | Nullable |  Default   
-----------+-------------------+-----------+----------+------------
 id        | bigint            |           | not null | 
 author_id | bigint            |           | not null | 
 title     | character varying |           |          | 'untitled'
 price     | numeric           |           |          | 
Indexes:
    \"book_pkey\" PRIMARY KEY, btree (id)
    \"book_author\" btree (author_id)
Foreign-key constraints:
    \"book_author_id_fkey\" FOREIGN KEY (author_id) REFERENCES author(id)

"
    );
    assert_eq!(
        describe("\\d author"),
        "              Table \"public.author\"
 Column |  Type  | Collation | Nullable | Default 
--------+--------+-----------+----------+---------
 id     | bigint |           | not null | 
 name   | text   |           | not null | 
 born   | date   |           |          | 
Indexes:
    \"author_pkey\" PRIMARY KEY, btree (id)
    \"author_name_key\" UNIQUE CONSTRAINT, btree (name)

"
    );
    let databases = describe("\\l");
    assert!(
        databases.contains(" sqld | sqld  | UTF8     | C       | C     |"),
        "{databases}"
    );
    // No user functions; the one role, a superuser.
    assert!(describe("\\df").contains("(0 rows)"));
    let roles = describe("\\du");
    assert!(
        roles.contains(" sqld      | Superuser, Create role, Create DB |"),
        "{roles}"
    );
}
