//! pgjdbc (Debian `libpostgresql-jdbc-java`, run by the JDK's single-file
//! source launcher) against a started sqld: the Java program in
//! `tests/jdbc/` checks what it does and prints `ok`.
//!
//! Java and the driver must be installed (scripts/setup.sh installs them);
//! a missing one fails the test rather than skipping it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Sqld;

const DRIVER: &str = "/usr/share/java/postgresql.jar";

fn run_java(program: &str, sqld: &Sqld, options: &str) -> String {
    assert!(
        Path::new(DRIVER).exists(),
        "pgjdbc is not installed: apt-get install libpostgresql-jdbc-java"
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/jdbc")
        .join(program);
    let url = format!("jdbc:postgresql://127.0.0.1:{}/sqld{options}", sqld.port());
    let mut cmd = Command::new("java");
    cmd.arg("-cp").arg(DRIVER).arg(source).arg(url);
    let out = common::run_bounded(
        cmd,
        Duration::from_secs(120),
        "install a JDK: apt-get install default-jdk-headless",
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Ten executions of one PreparedStatement for each kind of statement:
/// pgjdbc switches to a named server-side statement at the fifth.
#[test]
fn prepared_statements_past_the_threshold_transactions_and_types() {
    let sqld = Sqld::start();
    assert_eq!(run_java("Smoke.java", &sqld, "").trim(), "ok");
}

/// The same with parameters whose types pgjdbc leaves to the server (as
/// many applications configure it): the statement is described first,
/// and an INSERT described with an empty RowDescription instead of NoData
/// once failed every execution from the fifth, after committing its row.
#[test]
fn prepared_statements_with_parameter_types_left_to_the_server() {
    let sqld = Sqld::start();
    let out = run_java("Smoke.java", &sqld, "?stringtype=unspecified");
    assert_eq!(out.trim(), "ok");
}

/// `getTransactionIsolation()` (`SHOW TRANSACTION ISOLATION LEVEL`) and
/// `DatabaseMetaData.getTables`/`getColumns`/`getPrimaryKeys`/
/// `getIndexInfo`/`getImportedKeys`/`getExportedKeys` over the catalog
/// views.
#[test]
fn transaction_isolation_and_schema_metadata() {
    let sqld = Sqld::start();
    assert_eq!(run_java("Metadata.java", &sqld, "").trim(), "ok");
}
