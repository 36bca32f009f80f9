//! Secrets on the command line: any local user can read a process's
//! arguments, so sqld warns when a secret came that way, and not when it
//! came from the environment; `--help` says so too.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, free_port};

/// Starts sqld with `args` and `env`, waits until it listens, stops it,
/// and returns its log (which goes to stdout).
fn log_of(args: &[&str], env: &[(&str, &str)]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let pg = format!("127.0.0.1:{}", free_port());
    let http = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqld"))
        .args(["--db-path", tmp.path().join("db").to_str().unwrap()])
        .args(["--pg-listen-addr", &pg, "--http-listen-addr", &http])
        .args(args)
        .envs(env.iter().copied())
        .env("SQLD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    eventually("listening", Duration::from_secs(20), || {
        TcpStream::connect(&pg).is_ok()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn secrets_given_as_flags_are_warned_about() {
    let log = log_of(
        &[
            "--auth",
            "password",
            "--password",
            "s3cret-pw",
            "--replication-token",
            "s3cret-token",
        ],
        &[],
    );
    for (flag, instead) in [
        ("--password", "SQLD_PASSWORD or --users-file"),
        (
            "--replication-token",
            "SQLD_REPLICATION_TOKEN or --replication-token-file",
        ),
    ] {
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains(&format!("{flag} was given on the command line"))
                && l.contains(instead)),
            "no warning about {flag}: {log}"
        );
    }
    assert!(
        !log.contains("s3cret"),
        "the warning repeats no secret: {log}"
    );
}

#[test]
fn secrets_from_the_environment_are_not() {
    let log = log_of(
        &["--auth", "password"],
        &[("SQLD_PASSWORD", "pw"), ("SQLD_REPLICATION_TOKEN", "tok")],
    );
    assert!(log.contains("INFO"), "the log is read: {log}");
    assert!(!log.contains("command line"), "{log}");
}

#[test]
fn the_help_of_secret_flags_names_the_safer_ways() {
    let out = Command::new(env!("CARGO_BIN_EXE_sqld"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    // Each flag's paragraph, up to the next flag.
    for (flag, instead) in [
        (
            "--password <PASSWORD>",
            "Prefer SQLD_PASSWORD or --users-file",
        ),
        (
            "--replication-token <REPLICATION_TOKEN>",
            "Prefer SQLD_REPLICATION_TOKEN or --replication-token-file",
        ),
    ] {
        let start = help.find(flag).unwrap_or_else(|| panic!("{flag}: {help}"));
        let rest = &help[start + flag.len()..];
        let end = rest.find("\n  -").unwrap_or(rest.len());
        let paragraph = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(paragraph.contains(instead), "{flag}: {paragraph}");
    }
}
