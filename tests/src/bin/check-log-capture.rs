//! Checks a log capture made with `ATS_LOG_CAPTURE` (see `init_logs`): no cookie value, id or
//! key recorded as secret during the run may appear anywhere in the logs.
//!
//! Usage: `check-log-capture <capture-file>` (reads `<capture-file>.secrets` too).

use std::collections::BTreeSet;

/// Secrets shorter than this could match by accident (e.g. an empty removal cookie).
const MIN_SECRET_LEN: usize = 16;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: check-log-capture <capture-file>");
    let logs = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let logs = String::from_utf8_lossy(&logs);
    let secrets_path = format!("{path}.secrets");
    let secrets = std::fs::read_to_string(&secrets_path)
        .unwrap_or_else(|e| panic!("reading {secrets_path}: {e}"));
    let mut secrets: BTreeSet<&str> = secrets
        .lines()
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .collect();
    // The fixed master key of the conformance suite, and the keys other tests use (as text).
    secrets.insert("conformance-suite-master-key");
    let events = logs.lines().count();
    // One pass over the logs for all secrets at once.
    let matcher = aho_corasick::AhoCorasick::new(&secrets).expect("secrets build a matcher");
    let mut leaks = 0;
    for line in logs.lines() {
        if matcher.is_match(line) {
            leaks += 1;
            eprintln!("secret in the logs: {line}");
        }
    }
    // Attacker-supplied bytes are escaped: a control character in a log line would let a
    // request forge log lines.
    let raw_controls = logs
        .lines()
        .filter(|l| l.chars().any(|c| c.is_control() && c != '\t'))
        .count();
    println!(
        "log capture: {events} lines, {} secrets checked, {leaks} leaks, {raw_controls} lines with raw control characters",
        secrets.len()
    );
    if leaks > 0 || raw_controls > 0 || secrets.len() < 100 || events < 100 {
        eprintln!("log hygiene check failed (or the capture is too small to mean anything)");
        std::process::exit(1);
    }
}
