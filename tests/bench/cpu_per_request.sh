#!/usr/bin/env bash
# CPU time per request of the load-benchmark server, of Redis and of wrk, in real time: reads
# utime + stime from /proc around one wrk run per variant (the same pinning and rotating cookies
# as loadbench.sh). Tells which process a variant's time goes to, which req/s alone does not.
#
#   REDIS_URL=redis://127.0.0.1:6379 bash tests/bench/cpu_per_request.sh as-redis-rw ours-redis-rw
#   DATABASE_URL=postgres://… bash tests/bench/cpu_per_request.sh pg-loop ours-pg-rw ours-pgcached-rw
#
# The last two columns are the whole machine's busy and idle time per request (both cores, from
# /proc/stat): with PostgreSQL, busy time that is neither the server's nor wrk's is mostly the
# database's. For the pg loops (no HTTP), `server_us` is the loop process.
#
# Settings (environment): CPR_SECONDS (5), CPR_CONNS (32), CPR_SESSIONS (32), REDIS_URL and
# DATABASE_URL for the variants that need them (the Redis column is the process listening on
# REDIS_URL's port). Builds the release loadbench unless CPR_NO_BUILD is set. Every run is
# bounded: wrk by -d, the server by `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECONDS_PER_RUN=${CPR_SECONDS:-5}
CONNS=${CPR_CONNS:-32}
SESSIONS=${CPR_SESSIONS:-32}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[ $# -gt 0 ] || { echo "usage: $0 variant..." >&2; exit 2; }
for tool in wrk curl taskset time; do
  command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[ -n "${CPR_NO_BUILD:-}" ] || cargo build --release -q -p bench --bin loadbench
BIN=$CARGO_TARGET_DIR/release/loadbench
WORK=$(mktemp -d /tmp/cpr.XXXXXX)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=../tests/services.sh
source "$ROOT/tests/services.sh"
# shellcheck source=bench_cookies.sh
source "$ROOT/tests/bench/bench_cookies.sh"
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
redis_pid() {
  [ -n "${REDIS_URL:-}" ] || return 0
  local port=${REDIS_URL##*:}
  port=${port%%/*}
  pgrep -f "redis-server.*:$port" | head -1 || true
}
hz=$(getconf CLK_TCK)
# The whole machine's busy and idle ticks (all cores): what PostgreSQL's many processes take
# shows as busy time that is neither the server's nor wrk's.
# (user nice system irq softirq, then idle iowait; steal, the hypervisor's, is neither).
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat; }

printf '%-16s %10s %12s %12s %10s %12s %10s\n' variant req/s server_us redis_us wrk_us machine_us idle_us
for v in "$@"; do
  if [ "$v" = pg-loop ] || [ "$v" = pg-loop-pair ]; then
    # No HTTP: the loop is the client; its RESULT line gives req/s. Measured over all but the
    # first and last second of its run.
    [ "$SECONDS_PER_RUN" -ge 3 ] || { echo "the pg loops need CPR_SECONDS >= 3" >&2; exit 2; }
    LB_CONNS=$CONNS LB_ROWS=$SESSIONS LB_SECONDS=$SECONDS_PER_RUN timeout $((SECONDS_PER_RUN + 60)) \
      taskset -c 0 "$BIN" "$v" >"$WORK/loop.out" &
    SERVER_PID=$!
    sleep 1
    loop=$(pgrep -P "$SERVER_PID" | head -1 || true) # $SERVER_PID is `timeout`
    [ -n "$loop" ] || { echo "$v did not start" >&2; exit 1; }
    read -r b0 i0 < <(machine); l0=$(ticks "$loop")
    sleep $((SECONDS_PER_RUN - 2))
    read -r b1 i1 < <(machine); l1=$(ticks "$loop")
    wait "$SERVER_PID" || true
    SERVER_PID=
    rps=$(sed -nE 's/^RESULT rps=([0-9.]+).*/\1/p' "$WORK/loop.out")
    [ -n "$rps" ] || { echo "$v printed no result" >&2; exit 1; }
    awk -v v="$v" -v rps="$rps" -v t=$((SECONDS_PER_RUN - 2)) -v l=$((l1 - l0)) -v hz="$hz" \
      -v b=$((b1 - b0)) -v i=$((i1 - i0)) \
      'BEGIN { n = rps * t; printf "%-16s %10.0f %12.1f %12s %10s %12.1f %10.1f\n", v, rps, l * 1e6 / hz / n, "-", "-", b * 1e6 / hz / n, i * 1e6 / hz / n }'
    continue
  fi
  port=$(free_port)
  LB_PORT=$port timeout $((SECONDS_PER_RUN + 60)) taskset -c 0 "$BIN" "$v" 2>"$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/init" && break
    sleep 0.05
  done
  server=$(pgrep -P "$SERVER_PID" | head -1)
  collect_cookies "$port" "$SESSIONS" "$WORK/cookies"
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s -s tests/bench/rotate.lua "http://127.0.0.1:$port/" -- "$WORK/cookies" >/dev/null
  rpid=$(redis_pid)
  s0=$(ticks "$server"); r0=$( [ -n "$rpid" ] && ticks "$rpid" || echo 0 )
  read -r b0 i0 < <(machine)
  /usr/bin/env time -f '%U %S' -o "$WORK/wrk.time" taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" \
    -s tests/bench/rotate.lua "http://127.0.0.1:$port/" -- "$WORK/cookies" >"$WORK/wrk.out"
  s1=$(ticks "$server"); r1=$( [ -n "$rpid" ] && ticks "$rpid" || echo 0 )
  read -r b1 i1 < <(machine)
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  n=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.out")
  awk -v v="$v" -v n="$n" -v rps="$rps" -v s=$((s1 - s0)) -v r=$((r1 - r0)) -v hz="$hz" \
    -v w="$(awk '{ print $1 + $2 }' "$WORK/wrk.time")" -v b=$((b1 - b0)) -v i=$((i1 - i0)) \
    'BEGIN { printf "%-16s %10.0f %12.1f %12.1f %10.1f %12.1f %10.1f\n", v, rps, s * 1e6 / hz / n, r * 1e6 / hz / n, w * 1e6 / n, b * 1e6 / hz / n, i * 1e6 / hz / n }'
done
