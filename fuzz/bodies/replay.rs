//! Replays a fuzz target's committed seed corpus (`fuzz/corpus/<target>/`)
//! through the target's body, so the project's ordinary `cargo test` keeps
//! checking what the fuzzer starts from. Every file runs, and the test
//! names each file that panicked. Included by path into each crate's
//! `tests/fuzz_corpus.rs`.

use std::path::Path;

pub fn replay(corpus_root: &str, target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let dir = Path::new(corpus_root).join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no seed corpus at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty seed corpus at {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} seeds panicked: {failed:?}",
        failed.len(),
        files.len()
    );
}
