#!/usr/bin/env bash
# User-space instructions per request of the load-benchmark server (tests/bench/src/bin/loadbench.rs)
# under callgrind: noise-free, unlike req/s on a shared machine. For each variant: start the server
# under `valgrind --tool=callgrind`, collect session cookies through `GET /init`, warm up, zero the
# counters, drive it with wrk (the same rotating-cookie Lua script as loadbench.sh), dump the
# counters and print total Ir / wrk's request count.
#
#   bash tests/bench/callgrind.sh                               # the default variants
#   bash tests/bench/callgrind.sh ours-cookie-rw as-cookie-rw   # some variants
#
# Settings (environment):
#   CG_SECONDS   measured seconds per variant (6)    CG_WARMUP  unmeasured wrk seconds first (2)
#   CG_CONNS     wrk connections (8)                 CG_SESSIONS  sessions rotated over (32)
#   CG_KEEP      a directory to keep the callgrind dumps in (for callgrind_annotate)
#   CG_NO_BUILD  set to skip `cargo build`
#   CG_DRIVER    `rotate` (default: every request sends one of the collected cookies in turn) or
#                `browser` (browser.lua: one session per connection, each request sends back the
#                cookie the last response set)
# Every step is bounded: wrk by -d, each server by `timeout`, the start-up wait by a counter.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECONDS_PER_RUN=${CG_SECONDS:-6}
WARMUP=${CG_WARMUP:-2}
CONNS=${CG_CONNS:-8}
SESSIONS=${CG_SESSIONS:-32}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VARIANTS=${*:-bare ours-untouched ours-cookie-ro ours-cookie-rw as-cookie-ro as-cookie-rw ours-memory-rw}
WORK=$(mktemp -d /tmp/callgrind.XXXXXX)

# shellcheck source=bench_cookies.sh
source "$ROOT/tests/bench/bench_cookies.sh"

SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in valgrind callgrind_control wrk curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done

# With the server-side backends, as loadbench.sh builds it (the pg and redis variants need
# DATABASE_URL / REDIS_URL).
[ -n "${CG_NO_BUILD:-}" ] || cargo build --release -q -p bench --bin loadbench
BIN=$CARGO_TARGET_DIR/release/loadbench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The same driver as loadbench.sh: one request string per collected cookie, sent in turn.
DRIVER=${CG_DRIVER:-rotate}
case $DRIVER in
  rotate) WRK_ARGS=(-t1 -c"$CONNS" -s "$WORK/driver.lua") ;;
  browser) WRK_ARGS=(-t"$CONNS" -c"$CONNS" -s "$WORK/driver.lua") ;;
  *) echo "CG_DRIVER is rotate or browser" >&2; exit 1 ;;
esac
cp "$ROOT/tests/bench/$DRIVER.lua" "$WORK/driver.lua"

printf '%-16s %14s %10s %12s\n' variant instructions requests 'Ir/request'
for v in $VARIANTS; do
  PORT=$(free_port)
  out="$WORK/$v.callgrind"
  LB_PORT=$PORT timeout $((SECONDS_PER_RUN + WARMUP + 180)) \
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" "$v" 2>"$WORK/$v.log" &
  SERVER_PID=$!
  up=
  for _ in $(seq 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/init" 2>/dev/null; then up=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$up" ]; then
    echo "$v: server did not start: $(tail -1 "$WORK/$v.log")" >&2
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
    continue
  fi
  # $SERVER_PID is `timeout`; valgrind is its child.
  VG_PID=$(pgrep -P "$SERVER_PID" | head -1)
  cookies="$WORK/$v.cookies"
  collect_cookies "$PORT" "$SESSIONS" "$cookies"
  wrk "${WRK_ARGS[@]}" -d"${WARMUP}s" "http://127.0.0.1:$PORT/" -- "$cookies" >/dev/null
  callgrind_control -z "$VG_PID" >/dev/null 2>&1
  wrk "${WRK_ARGS[@]}" -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$PORT/" -- "$cookies" \
    >"$WORK/$v.wrk"
  callgrind_control -d "$VG_PID" >/dev/null 2>&1
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  if grep -qE 'Non-2xx|Socket errors' "$WORK/$v.wrk"; then
    echo "$v: WARNING: $(grep -E 'Non-2xx|Socket errors' "$WORK/$v.wrk" | tr '\n' ' ')" >&2
  fi
  requests=$(awk '/requests in/ { print $1 }' "$WORK/$v.wrk")
  # The dump after zeroing is "$out.1" (its totals line counts what happened since the zero).
  dump=$(ls "$out".* 2>/dev/null | head -1)
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  [ -n "${CG_KEEP:-}" ] && mkdir -p "$CG_KEEP" && cp "$dump" "$CG_KEEP/$v.callgrind"
  printf '%-16s %14s %10s %12.0f\n' "$v" "$ir" "$requests" "$(echo "$ir / $requests" | bc -l)"
done
