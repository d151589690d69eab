#!/usr/bin/env bash
# The load benchmark of issue 7: every variant of tests/bench/src/bin/loadbench.rs, interleaved
# (A B C …, then C B A …, and so on), the server pinned to one core and wrk to the other, then
# a table and a chart.
#
#   bash tests/bench/loadbench.sh                      # 10 s runs, 4 rounds
#   LB_SECONDS=3 LB_ROUNDS=1 bash tests/bench/loadbench.sh   # a quick check
#
# Settings (environment):
#   LB_SECONDS    measured seconds per run (10)          LB_WARMUP  unmeasured seconds first (1)
#   LB_ROUNDS     rounds over all variants (4; even, see below)   LB_CONNS   wrk connections (32)
#   LB_SESSIONS   distinct sessions the requests rotate over (32)
#   LB_VARIANTS   space-separated subset (default: all that `loadbench list` prints, in its
#                 order, with pg-loop and pg-loop-pair around ours-pg-rw)
#   LB_OUT        where results, table and chart go (tests/bench/loadbench)
#   LB_SERVER_CPU / LB_CLIENT_CPU   the two cores (0 / 1)
#   LB_BIN        a loadbench server binary to measure instead of this tree's (e.g. an earlier
#                 build, for a before/after table); the client and report are still built here
#   LB_CLIENT     wrk (default) or browser: tests/bench/src/bin/browserload.rs instead of wrk, each
#                 connection sending back the cookies it was last given (wrk replays the collected
#                 ones); adds the server's CPU per request to the results (its own LB_OUT default:
#                 tests/bench/loadbench-browser)
#   LB_MEMORY     0 skips the memory-store checks (on by default)
#   LB_START_SECONDS  how long a server may take to start (15; more with LB_PREFILL)
#   LB_BLOB, LB_PREFILL  passed to the server (see loadbench.rs; tests/bench/growth.sh uses them)
#   DATABASE_URL  a PostgreSQL to use; otherwise a throw-away cluster (tests/services.sh)
#   REDIS_URL     a Redis to use; otherwise a throw-away redis-server on a free port
# Every load loop is bounded: wrk by -d, the pg loops by LB_SECONDS, each server by a `timeout`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECONDS_PER_RUN=${LB_SECONDS:-10}
WARMUP=${LB_WARMUP:-1}
ROUNDS=${LB_ROUNDS:-4}
CONNS=${LB_CONNS:-32}
SESSIONS=${LB_SESSIONS:-32}
CLIENT=${LB_CLIENT:-wrk}
case "$CLIENT" in
  wrk) OUT=${LB_OUT:-$ROOT/tests/bench/loadbench} ;;
  browser) OUT=${LB_OUT:-$ROOT/tests/bench/loadbench-browser} ;;
  *) echo "LB_CLIENT must be wrk or browser" >&2; exit 2 ;;
esac
SCPU=${LB_SERVER_CPU:-0}
CCPU=${LB_CLIENT_CPU:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/loadbench.XXXXXX)

# shellcheck source=../tests/services.sh
source "$ROOT/tests/services.sh"
# shellcheck source=bench_cookies.sh
source "$ROOT/tests/bench/bench_cookies.sh"

REDIS_PID=
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
  stop_services
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "installing $2"; apt-get install -y -qq "$2" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }; }
need wrk wrk
need curl curl
need taskset util-linux

# --- build -------------------------------------------------------------------------------------
cargo build --release -q -p bench --bin loadbench --bin loadbench_report \
  --bin browserload
BIN=${LB_BIN:-$CARGO_TARGET_DIR/release/loadbench}
REPORT=$CARGO_TARGET_DIR/release/loadbench_report
BROWSER=$CARGO_TARGET_DIR/release/browserload

# --- the memory store, first: its two-thread check runs unpinned, and must not share the cores
# with the benchmark's PostgreSQL (which keeps working, e.g. vacuuming, after the load runs).
if [ "${LB_MEMORY:-1}" != 0 ]; then
  echo "memory store:"
  LB_SECONDS=$(( SECONDS_PER_RUN < 5 ? SECONDS_PER_RUN : 5 )) timeout 120 "$BIN" mem-scaling | tee "$OUT/memory.txt"
  timeout 300 "$BIN" mem-capacity | tee -a "$OUT/memory.txt"
fi

# --- services ----------------------------------------------------------------------------------
start_postgres
if [ -z "${REDIS_URL:-}" ]; then
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --loglevel warning >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  export REDIS_URL="redis://127.0.0.1:$rport"
  for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "Redis: throw-away server on 127.0.0.1:$rport"
fi

# The pg loops go on either side of `ours-pg-rw`, which is compared with both.
VARIANTS=${LB_VARIANTS:-"$("$BIN" list | sed 's/^ours-pg-rw$/pg-loop\nours-pg-rw\npg-loop-pair/' | tr '\n' ' ')"}
grep -qw pg-loop <<<"$VARIANTS" || [ -n "${LB_VARIANTS:-}" ] || VARIANTS="$VARIANTS pg-loop pg-loop-pair"
export LB_CONNS=$CONNS LB_ROWS=$SESSIONS

# wrk sends the requests in turn over the collected cookies (one request string per session).
cp "$ROOT/tests/bench/rotate.lua" "$WORK/rotate.lua"

RESULTS="$OUT/results.tsv"
if [ "$CLIENT" = browser ]; then
  # One more column: the server's CPU time per request (µs), from /proc around the window.
  printf 'variant\tround\trps\tp99_ms\tpeak_rss_kb\tserver_us_per_req\n' >"$RESULTS"
else
  printf 'variant\tround\trps\tp99_ms\tpeak_rss_kb\n' >"$RESULTS"
fi
# The browser mode's extra column (empty where there is no server, the pg loops).
extra() { [ "$CLIENT" = browser ] && printf '\t%s' "$1"; true; }

to_ms() { # "1.23ms" / "456.00us" / "1.02s" -> milliseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

run_variant() { # variant round
  local v=$1 round=$2 cookies="$WORK/cookies" rc=0
  if [ "$v" = pg-loop ] || [ "$v" = pg-loop-pair ]; then
    local line
    line=$(LB_SECONDS=$SECONDS_PER_RUN timeout $((SECONDS_PER_RUN + 60)) taskset -c "$SCPU" "$BIN" "$v" | grep '^RESULT') || rc=$?
    if [ $rc -ne 0 ]; then echo "  $v: failed ($rc)"; return; fi
    local rps p99
    rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")
    p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")
    printf '%s\t%s\t%s\t%s\t%s%s\n' "$v" "$round" "$rps" "$p99" 0 "$(extra '')" >>"$RESULTS"
    printf '  %-16s %10.0f req/s  p99 %7.2f ms\n' "$v" "$rps" "$p99"
    return
  fi
  local up= attempt
  # A fresh port per run, and another one if it was taken meanwhile: ports are picked among the
  # ephemeral ones, which the benchmark's own client connections (pg loops, pools) also use.
  for attempt in 1 2 3; do
    PORT=$(free_port)
    export LB_PORT=$PORT
    timeout $((SECONDS_PER_RUN + WARMUP + 120)) taskset -c "$SCPU" "$BIN" "$v" 2>"$WORK/server.log" &
    SERVER_PID=$!
    for _ in $(seq $(( ${LB_START_SECONDS:-15} * 20 ))); do
      if curl -s -o /dev/null "http://127.0.0.1:$PORT/init" 2>/dev/null; then up=1; break; fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$up" ] && break
    grep -q AddrInUse "$WORK/server.log" || break
    wait "$SERVER_PID" 2>/dev/null || true
    echo "  $v: port $PORT was taken (attempt $attempt); trying another"
  done
  if [ -z "$up" ]; then
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    if [ $rc -eq 3 ]; then echo "  $v: skipped ($(grep -o 'SKIP: .*' "$WORK/server.log" | head -1))"
    else echo "  $v: server did not start ($rc): $(tail -1 "$WORK/server.log")"; fi
    return
  fi
  collect_cookies "$PORT" "$SESSIONS" "$cookies"
  if [ "$CLIENT" = browser ]; then
    run_browser "$v" "$round" "$cookies"
    return
  fi
  taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$WORK/rotate.lua" \
    "http://127.0.0.1:$PORT/" -- "$cookies" >/dev/null
  taskset -c "$CCPU" wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/rotate.lua" \
    "http://127.0.0.1:$PORT/" -- "$cookies" >"$WORK/wrk.out"
  local hwm rps p99 errors
  # $SERVER_PID is `timeout`; the server is its child.
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(pgrep -P "$SERVER_PID" | head -1)/status" 2>/dev/null || echo 0)
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/wrk.out")
  p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$WORK/wrk.out")")
  errors=$(grep -E 'Non-2xx|Socket errors' "$WORK/wrk.out" || true)
  [ -n "$errors" ] && echo "  $v: WARNING: $errors"
  printf '%s\t%s\t%s\t%s\t%s\n' "$v" "$round" "$rps" "$p99" "${hwm:-0}" >>"$RESULTS"
  printf '  %-16s %10.0f req/s  p99 %7.2f ms  peak RSS %6d KB\n' "$v" "$rps" "$p99" "${hwm:-0}"
}

# run_browser variant round cookies: the browser-like client instead of wrk, on the running server.
run_browser() {
  local v=$1 round=$2 cookies=$3 server line hwm rc=0
  server=$(pgrep -P "$SERVER_PID" | head -1) # $SERVER_PID is `timeout`; the server is its child.
  line=$(timeout $((SECONDS_PER_RUN + WARMUP + 30)) taskset -c "$CCPU" "$BROWSER" --port "$PORT" \
    --pid "$server" --conns "$CONNS" --warmup "$WARMUP" --seconds "$SECONDS_PER_RUN" \
    --cookies "$cookies" | grep '^RESULT') || rc=$?
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status" 2>/dev/null || echo 0)
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  if [ $rc -ne 0 ]; then echo "  $v: browserload failed ($rc)"; return; fi
  field() { sed -E "s/.* $1=([0-9.]+).*/\1/" <<<" $line"; }
  local rps p99 cpu scpu ccpu errors io
  rps=$(field rps) p99=$(field p99_ms) cpu=$(field server_cpu_us_per_req)
  scpu=$(field server_cpu_pct) ccpu=$(field client_cpu_pct) errors=$(field errors) io=$(field io_errors)
  [ "$errors" = 0 ] && [ "$io" = 0 ] || echo "  $v: WARNING: $errors non-2xx, $io socket errors"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$round" "$rps" "$p99" "${hwm:-0}" "$cpu" >>"$RESULTS"
  # Busy shares of the two cores: a server under 100 % with an idle machine waits on something.
  printf '  %-16s %10.0f req/s  p99 %7.2f ms  peak RSS %6d KB  server %6.2f µs/req  CPU server %5.1f %% client %5.1f %%\n' \
    "$v" "$rps" "$p99" "${hwm:-0}" "$cpu" "$scpu" "$ccpu"
}

# Every other round runs the variants in reverse order (A B C, C B A, …): with an even number of
# rounds, of each pair compared (next to each other in the list), each goes first as often as
# the other, so a machine that speeds up or slows down over a round favours neither.
REVERSED=$(tr ' ' '\n' <<<"$VARIANTS" | sed '/^$/d' | tac | tr '\n' ' ')
started=$(date +%s)
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  order=$VARIANTS
  [ $((round % 2)) -eq 0 ] && order=$REVERSED
  for v in $order; do run_variant "$v" "$round"; done
done

# --- memory-store targets (not pinned: the two-thread case needs both cores) ------------------

{
  echo "command: $([ "$CLIENT" = browser ] && printf 'LB_CLIENT=browser ')LB_SECONDS=$SECONDS_PER_RUN LB_ROUNDS=$ROUNDS LB_CONNS=$CONNS LB_SESSIONS=$SESSIONS bash tests/bench/loadbench.sh"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cores: $(nproc); cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1); kernel: $(uname -r)"
  echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall time: $(( $(date +%s) - started )) s"
} >"$OUT/machine.txt"
"$REPORT" "$OUT"
echo "table: $OUT/table.md   chart: $OUT/ratios.png"
