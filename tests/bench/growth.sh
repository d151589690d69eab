#!/usr/bin/env bash
# Cost as the work grows (issue 22): the load benchmark (loadbench.sh, browser-like client: each
# connection sends back the cookie it was last given; server CPU per request) run
#   1. with 10^3, 10^5 and 10^6 other sessions stored beside the measured ones (PostgreSQL rows,
#      Redis keys: LB_PREFILL), read+write on our PostgreSQL and Redis stores;
#   2. with sessions holding 1 KB, 16 KB and 256 KB of other data (LB_BLOB) while the request
#      changes one small key, on our Redis and PostgreSQL stores and actix-session's Redis store
#      (which writes the whole session back).
# Each set runs on a throw-away PostgreSQL and Redis of its own (DATABASE_URL and REDIS_URL are
# ignored), so that a prefill never touches a shared server.
#
#   bash tests/bench/growth.sh                     # 4 s runs, 2 rounds
#   GROWTH_SECONDS=10 GROWTH_ROUNDS=4 bash tests/bench/growth.sh
#   GROWTH_SUMMARY_ONLY=1 bash tests/bench/growth.sh   # the summary of the results already there
#   GROWTH_SETS="blob-262144" bash tests/bench/growth.sh # only these sets (names as below)
#
# Results: tests/bench/growth/<set>/results.tsv, and a summary table on stdout and in
# tests/bench/growth/summary.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${GROWTH_OUT:-$ROOT/tests/bench/growth}
mkdir -p "$OUT"
unset DATABASE_URL REDIS_URL
export LB_CLIENT=browser LB_MEMORY=0 LB_SECONDS=${GROWTH_SECONDS:-4} LB_ROUNDS=${GROWTH_ROUNDS:-2}
export LB_START_SECONDS=120

run() { # set-name, then environment assignments
  local name=$1
  shift
  if [ -n "${GROWTH_SETS:-}" ] && ! grep -qw -- "$name" <<<"$GROWTH_SETS"; then return; fi
  echo "== $name"
  # A second try when a set fails to start (a throw-away server's start can lose a port race).
  env "$@" LB_OUT="$OUT/$name" bash "$ROOT/tests/bench/loadbench.sh" >"$OUT/$name.log" 2>&1 ||
    env "$@" LB_OUT="$OUT/$name" bash "$ROOT/tests/bench/loadbench.sh" >"$OUT/$name.log" 2>&1 ||
    { tail -20 "$OUT/$name.log"; echo "growth: $name failed" >&2; exit 1; }
  grep -E '^  (ours|as)-' "$OUT/$name.log" || true
}

if [ -z "${GROWTH_SUMMARY_ONLY:-}" ]; then
for n in 1000 100000 1000000; do
  run "stored-$n" LB_PREFILL=$n LB_VARIANTS="ours-pg-rw ours-redis-rw"
done
for bytes in 1024 16384 262144; do
  run "blob-$bytes" LB_BLOB=$bytes LB_VARIANTS="as-redis-rw ours-redis-rw ours-pg-rw"
done
fi

# Median req/s and server µs per request of each variant in each set.
{
  printf '| set | variant | req/s (median) | server µs/request (median) |\n|---|---|--:|--:|\n'
  for dir in "$OUT"/stored-* "$OUT"/blob-*; do
    [ -f "$dir/results.tsv" ] || continue
    set_name=$(basename "$dir")
    awk -F'\t' -v set="$set_name" 'NR > 1 { rps[$1] = rps[$1] " " $3; us[$1] = us[$1] " " $6 }
      function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      }
      END { for (v in rps) printf "| %s | %s | %.0f | %.1f |\n", set, v, median(rps[v]), median(us[v]) }' \
      "$dir/results.tsv" | sort
  done
} | tee "$OUT/summary.md"
