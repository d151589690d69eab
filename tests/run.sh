#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, every crate's tests and doctests, the fault
# runs and a fuzz smoke run. About 20 minutes on an idle 2-core machine from a clean clone (more
# on a busy one), and about 15 GB in target/.
# Usage (from anywhere):
#   bash tests/run.sh           # everything (what CI runs)
#   bash tests/run.sh --quick   # the inner loop: the library's unit tests and the conformance
#                               # suite on the cookie and memory backends (no services, a few min)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then rerun." >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

if [ "${1:-}" = "--quick" ]; then
  step "quick: unit tests and the cookie and memory conformance suites"
  cargo test -p actix-typed-session --lib
  cargo test -p actix-typed-session-tests --test conformance_cookie --test conformance_memory \
    --test middleware --test request_scope
  echo
  echo "quick checks passed (the full suite: bash tests/run.sh)"
  exit 0
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, warnings are errors)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "each feature builds on its own, without warnings"
cargo clippy -q -p actix-typed-session --no-default-features -- -D warnings
for feature in cookie memory postgres redis derive metrics; do
  cargo clippy -q -p actix-typed-session --no-default-features --features "$feature" -- -D warnings
done

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -q --workspace --no-deps --all-features

step "services"
source tests/services.sh
trap stop_services EXIT
start_postgres
start_redis
start_redis_cluster
find_pgbouncer
find_chromium

step "cargo test (unit, integration, UI and doc tests), logging at TRACE into a capture"
capture=$(mktemp /tmp/ats-log-capture.XXXXXX)
ATS_LOG_CAPTURE="$capture" cargo test --workspace --all-features

step "log hygiene: no id, cookie value or key in the captured logs"
cargo run -q -p actix-typed-session-tests --bin check-log-capture -- "$capture"
rm -f "$capture" "$capture.secrets"

step "faults under load from a second process: store down, stalled, pool exhausted, restarted, frozen (${FAULTS_SECONDS:-10} s per scenario)"
# Throw-away PostgreSQL clusters and redis-servers of its own; faultbench runs as a debug build
# (tests/bench/faults.sh without FAULTS_BIN builds it in release instead).
# Fails when a request hung, data was lost or the server did not serve again.
faults_out=$(mktemp -d /tmp/ats-faults.XXXXXX)
cargo build -q -p bench --bin faultbench
FAULTS_BIN="${CARGO_TARGET_DIR:-target}/debug/faultbench" FAULTS_SECONDS="${FAULTS_SECONDS:-10}" \
  FAULTS_OUT="$faults_out" bash tests/bench/faults.sh
rm -rf "$faults_out"

step "fuzz smoke run (${FUZZ_SECONDS:-60} s per target)"
if cargo fuzz --version >/dev/null 2>&1; then
  # cargo-fuzz passes nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
  fuzz_log=$(mktemp /tmp/ats-fuzz.XXXXXX)
  for target in cookie_header cookie_decode cookie_payload typed_decode; do
    if ! (cd session/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" -- \
          -max_total_time="${FUZZ_SECONDS:-60}") >"$fuzz_log" 2>&1; then
      tail -n 60 "$fuzz_log"
      echo "fuzz target $target failed (its input is under session/fuzz/artifacts/$target)"
      exit 1
    fi
    echo "$target: $(grep -E '^Done' "$fuzz_log")"
  done
  rm -f "$fuzz_log"
else
  echo "cargo-fuzz is not installed: skipping the fuzz smoke run (install it with: cargo install cargo-fuzz)"
fi

echo
echo "all checks passed"
