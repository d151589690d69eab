#!/usr/bin/env bash
# Faults under load (issue 6, item 7): for PostgreSQL and Redis, each scenario on a throw-away
# store of its own (a temporary initdb cluster, a redis-server on a free port; never a shared
# server), the faultbench server (tests/bench/src/bin/faultbench.rs) and its load process on
# 127.0.0.1. The store is broken at 1/4 of the run and repaired at 1/2; then a table.
#
#   bash tests/bench/faults.sh                          # 20 s runs, release build (the published table)
#   FAULTS_SECONDS=10 FAULTS_PROFILE=debug bash tests/bench/faults.sh   # a shorter check on a debug build
#
# Scenarios (FAULTS_SCENARIOS, default all; FAULTS_BACKENDS, default "pg pg-shared redis", where
# pg-shared is PostgreSQL with 2 shared connections, `PostgresStoreBuilder::shared_connections`,
# in every scenario but pool, whose pool of 2 cannot hold them):
#   down-load      the store process dies (PG: pg_ctl stop -m immediate; Redis: kill -9) and is
#                  started again on the same port and data; the load only reads (/ro)
#   down-save      the same outage; every request loads and saves (/rw)
#   down-save-mid  the same outage; 50 ms between each load and its save (/rw-slow), so that
#                  saves of requests in flight hit the outage
#   slow           the store stalls without dying (PG: another session holds LOCK TABLE ... IN
#                  ACCESS EXCLUSIVE MODE; Redis: CLIENT PAUSE ... ALL)
#   pool           PG: a pool of 2 connections for 64 clients, and the same stall; Redis has no
#                  pool (one multiplexed connection): 64 clients queue on it during the stall
#   restart        a clean restart (PG: pg_ctl restart -m fast; Redis: SHUTDOWN, start again)
#   freeze         PG only: the postmaster and every other backend of the faultbench server
#                  stopped with SIGSTOP for 8 s (at most half the run) while the other backends
#                  serve on; a timed-out write must not land when they run again
# Redis runs with --appendonly yes --appendfsync always, the configuration under which sessions
# survive a Redis restart; PostgreSQL with its defaults (fsync on).
#
# Settings (environment): FAULTS_SECONDS (20), FAULTS_CLIENTS (16; the pool scenario uses 64),
# FAULTS_PROFILE (release|debug), FAULTS_BIN (a faultbench already built with features postgres
# and redis: no build), FAULTS_OUT (tests/bench/faults), PG_BIN (PostgreSQL's bin dir).
# Exits non-zero when any scenario has a hung request, lost data, a server that does not serve
# at the end of the run, or a load process that did not finish.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
SECS=${FAULTS_SECONDS:-20}
CLIENTS=${FAULTS_CLIENTS:-16}
PROFILE=${FAULTS_PROFILE:-release}
OUT=${FAULTS_OUT:-$ROOT/tests/bench/faults}
BACKENDS=${FAULTS_BACKENDS:-pg pg-shared redis}
SCENARIOS=${FAULTS_SCENARIOS:-down-load down-save down-save-mid slow pool restart freeze}
STORE_TIMEOUT_MS=1000
DEADLINE_MS=10000
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/faults.XXXXXX)
chmod 755 "$WORK"

# shellcheck source=../tests/services.sh
source "$ROOT/tests/services.sh"

SERVER_PID=
LOAD_PID=
FROZEN=() # PostgreSQL processes stopped by the freeze scenario, continued by it or at exit
PG_DIRS=()
REDIS_DIRS=()
cleanup() {
  [ ${#FROZEN[@]} -gt 0 ] && kill -CONT "${FROZEN[@]}" 2>/dev/null || true
  [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  local d
  for d in "${PG_DIRS[@]}"; do
    as_postgres "$PG_BIN/pg_ctl" -D "$d/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$d"
  done
  for d in "${REDIS_DIRS[@]}"; do
    [ -f "$d/pid" ] && kill -9 "$(cat "$d/pid")" 2>/dev/null || true
    rm -rf "$d"
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$(date +%s)

# --- build -------------------------------------------------------------------------------------
if [ -n "${FAULTS_BIN:-}" ]; then
  BIN=$FAULTS_BIN # already built (tests/run.sh: the debug build of its `cargo test`)
  [ -x "$BIN" ] || { echo "FAULTS_BIN=$BIN is not an executable" >&2; exit 1; }
elif [ "$PROFILE" = release ]; then
  nice -n 5 cargo build --release -q -p bench --bin faultbench
  BIN=$CARGO_TARGET_DIR/release/faultbench
else
  nice -n 5 cargo build -q -p bench --bin faultbench
  BIN=$CARGO_TARGET_DIR/debug/faultbench
fi
built=$(date +%s)

PG_BIN=$(find_pg_bin)
if [ -z "$PG_BIN" ] || ! command -v redis-server >/dev/null; then
  echo "faults.sh needs PostgreSQL's server programs (initdb, pg_ctl) and redis-server" >&2
  exit 1
fi
export PG_BIN

# --- throw-away stores ------------------------------------------------------------------------
# Ports below the kernel's ephemeral range: the load opens thousands of connections, and a port
# that is free now but inside that range may be an outgoing connection's local port by the time
# a server binds it.
EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local port
  while :; do
    port=$(( EPHEMERAL_LOW - 1 - (RANDOM % 8000) ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}
PG_DIR= PG_PORT=
pg_start() {
  as_postgres timeout 90 "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1" start >/dev/null \
    || { echo "PostgreSQL did not start:" >&2; tail -n 20 "$PG_DIR/log" >&2; return 1; }
}
pg_new() {
  PG_DIR=$(mktemp -d /tmp/faults-pg.XXXXXX)
  PG_DIRS+=("$PG_DIR")
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR"
  as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >/dev/null \
    || return 1
  PG_PORT=$(free_port)
  pg_start
}
pg_psql() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAtX "$@"; }

REDIS_DIR= REDIS_PORT=
redis_start() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --dir "$REDIS_DIR" --daemonize yes --pidfile "$REDIS_DIR/pid" \
    --logfile "$REDIS_DIR/log" >/dev/null
  local tries=0
  until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
    tries=$((tries + 1))
    [ "$tries" -lt 200 ] || { echo "redis-server did not start" >&2; cat "$REDIS_DIR/log" >&2; return 1; }
    sleep 0.05
  done
}
redis_new() {
  REDIS_DIR=$(mktemp -d /tmp/faults-redis.XXXXXX)
  REDIS_DIRS+=("$REDIS_DIR")
  REDIS_PORT=$(free_port)
  redis_start
}
redis_gone() { # waits until the redis-server of $REDIS_DIR has exited
  local pid=$1 tries=0
  while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 200 ]; do sleep 0.05; tries=$((tries + 1)); done
  rm -f "$REDIS_DIR/pid"
}

# --- timing -------------------------------------------------------------------------------------
now_ms() { date +%s%3N; }
mark() { echo "$1 $(now_ms)" >>"$WORK/marks"; }
sleep_until() { # unix ms
  local left=$(($1 - $(now_ms)))
  [ "$left" -le 0 ] || sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
}

# --- faults -------------------------------------------------------------------------------------
# Each runs from the fault's start (at $AT) to its end (at $CLEAR) and marks both moments; it
# returns non-zero if a step of the injection itself failed (the scenario then counts as failed).
fault() { # backend scenario
  local stall_s
  stall_s=$(awk -v ms="$((CLEAR - AT))" 'BEGIN { printf "%.3f", ms / 1000 }')
  sleep_until "$AT"
  case "$1:$2" in
    pg:down-*)
      mark fault_start
      as_postgres timeout 90 "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null \
        || return 1
      sleep_until "$CLEAR"
      pg_start || return 1
      mark fault_clear ;;
    pg:slow | pg:pool)
      mark fault_start
      timeout 60 "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qAtX -c \
        "BEGIN; LOCK TABLE faultbench.sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($stall_s); COMMIT;" \
        >/dev/null || return 1
      mark fault_clear ;;
    pg:restart)
      mark fault_start
      as_postgres timeout 90 "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -m fast -w -t 60 \
        restart >/dev/null || return 1
      mark fault_clear ;;
    pg:freeze)
      # Every other backend of the faultbench server (by pid), and the postmaster, so that the
      # cancel requests of timed-out statements cannot reach their backends either.
      local backends
      backends=$(pg_psql -c "SELECT pid FROM pg_stat_activity
                             WHERE application_name = 'faultbench' ORDER BY pid" | awk 'NR % 2 == 1')
      [ -n "$backends" ] || return 1
      # shellcheck disable=SC2206
      FROZEN=($(head -n 1 "$PG_DIR/data/postmaster.pid") $backends)
      mark fault_start
      kill -STOP "${FROZEN[@]}" || { kill -CONT "${FROZEN[@]}"; FROZEN=(); return 1; }
      sleep_until "$CLEAR"
      kill -CONT "${FROZEN[@]}" || return 1
      FROZEN=()
      mark fault_clear ;;
    redis:down-*)
      local pid
      pid=$(cat "$REDIS_DIR/pid")
      mark fault_start
      kill -9 "$pid" || return 1
      redis_gone "$pid"
      sleep_until "$CLEAR"
      redis_start || return 1
      mark fault_clear ;;
    redis:slow | redis:pool)
      mark fault_start
      timeout 10 redis-cli -p "$REDIS_PORT" client pause "$((CLEAR - AT))" ALL >/dev/null || return 1
      sleep_until "$CLEAR"
      mark fault_clear ;;
    redis:restart)
      local pid
      pid=$(cat "$REDIS_DIR/pid")
      mark fault_start
      timeout 10 redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
      redis_gone "$pid"
      redis_start || return 1
      mark fault_clear ;;
  esac
}

# --- one scenario -------------------------------------------------------------------------------
RESULTS="$OUT/results.tsv"
printf 'backend\tscenario\troute\tclients\tpool\trequests\tfailed\thung\tfailing_s\trecover_s\trate_back_s\tlost\tlanded\tslowest_ms\tserving_at_end\tfailures\n' >"$RESULTS"
BAD=()

run() { # backend scenario
  local label=$1 backend=$1 scenario=$2 route=rw clients=$CLIENTS pool=4 shared=0 url
  [ "$label" = pg-shared ] && backend=pg shared=2
  case "$scenario" in
    down-load) route=ro ;;
    down-save-mid) route=rw-slow ;;
    pool) clients=64; pool=2 ;;
  esac
  [ "$backend" = redis ] && pool=-
  if [ "$backend" = pg ]; then
    pg_new || { BAD+=("$label $scenario: PostgreSQL did not start"); return; }
    url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  else
    redis_new || { BAD+=("$label $scenario: redis-server did not start"); return; }
    url="redis://127.0.0.1:$REDIS_PORT/"
  fi
  rm -f "$WORK/marks" "$WORK/ready"
  local port
  port=$(free_port)
  timeout $((SECS + 120)) "$BIN" serve --backend "$backend" --url "$url" --port "$port" \
    --pool-size "${pool/-/4}" --shared-connections "$shared" --timeout-ms "$STORE_TIMEOUT_MS" \
    2>"$WORK/server.log" &
  SERVER_PID=$!
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "  $label $scenario: the server did not start: $(tail -n 3 "$WORK/server.log")"
      BAD+=("$label $scenario: server did not start")
      kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
      return
    fi
    sleep 0.05
  done
  local json="$OUT/$label-$scenario.json"
  timeout $((SECS + 90)) "$BIN" load --port "$port" --route "$route" --clients "$clients" \
    --seconds "$SECS" --deadline-ms "$DEADLINE_MS" --out "$json" --marks "$WORK/marks" \
    --ready "$WORK/ready" --label "$label $scenario" >"$WORK/load.out" 2>"$WORK/load.err" &
  LOAD_PID=$!
  tries=0
  until [ -s "$WORK/ready" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 600 ] || ! kill -0 "$LOAD_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if [ -s "$WORK/ready" ]; then
    local t0
    t0=$(head -n 1 "$WORK/ready")
    AT=$((t0 + SECS * 250)) CLEAR=$((t0 + SECS * 500))
    # 8 s of freeze, or half the run if that is shorter.
    [ "$scenario" = freeze ] && CLEAR=$((AT + (SECS * 500 < 8000 ? SECS * 500 : 8000)))
    if ! fault "$backend" "$scenario"; then
      echo "  $label $scenario: injecting or clearing the fault failed"
      BAD+=("$label $scenario: injecting or clearing the fault failed")
    fi
  fi
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  local line
  line=$(grep '^RESULT' "$WORK/load.out" || true)
  if [ $rc -ne 0 ] || [ -z "$line" ]; then
    echo "  $label $scenario: the load process failed ($rc): $(tail -n 3 "$WORK/load.err")"
    BAD+=("$label $scenario: load process failed ($rc)")
    return
  fi
  # RESULT label total failed hung failing recover rate_back lost landed slowest serving failures
  local total failed hung failing recover rate lost landed slowest serving failures
  IFS=$'\t' read -r _ _ total failed hung failing recover rate lost landed slowest serving failures <<<"$line"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" \
    "$scenario" "$route" "$clients" "$pool" "$total" "$failed" "$hung" "$failing" "$recover" "$rate" \
    "$lost" "$landed" "$slowest" "$serving" "$failures" >>"$RESULTS"
  printf '  %-9s %-14s %6s requests %6s failed (for %4s s) %3s hung  recover %4s s (rate %4s s)  lost %s  landed %s  slowest %s ms  %s\n' \
    "$label" "$scenario" "$total" "$failed" "$failing" "$hung" "$recover" "$rate" "$lost" "$landed" \
    "$slowest" "$failures"
  [ "$hung" = 0 ] || BAD+=("$label $scenario: $hung hung")
  [ "$lost" = 0 ] || BAD+=("$label $scenario: $lost lost")
  [ "$serving" = yes ] || BAD+=("$label $scenario: not serving at the end")
  # The store of this scenario is not needed any more.
  if [ "$backend" = pg ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  else
    [ -f "$REDIS_DIR/pid" ] && kill -9 "$(cat "$REDIS_DIR/pid")" 2>/dev/null || true
  fi
}

echo "faults: ${SECS} s runs, fault from $((SECS * 250)) ms to $((SECS * 500)) ms (freeze: for at most 8 s), store timeout ${STORE_TIMEOUT_MS} ms, hung after ${DEADLINE_MS} ms"
for backend in $BACKENDS; do
  for scenario in $SCENARIOS; do
    # A pool of 2 cannot hold 2 shared connections: that scenario is the same as pg's.
    [ "$backend:$scenario" = pg-shared:pool ] && continue
    # Freezing processes by pid is a PostgreSQL scenario (Redis has one process).
    [ "$backend:$scenario" = redis:freeze ] && continue
    run "$backend" "$scenario"
  done
done

# --- table --------------------------------------------------------------------------------------
{
  echo "| backend | scenario | clients | requests | failed | failing for (s) | hung | seconds to recover | to 90 % rate (s) | data lost | failed but stored | slowest (ms) |"
  echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
  tail -n +2 "$RESULTS" | while IFS=$'\t' read -r b s _ c p t f h fs r ra l la sl _ _; do
    case "$b" in
      pg) name=PostgreSQL ;;
      pg-shared) name='PostgreSQL, 2 shared connections' ;;
      *) name=Redis ;;
    esac
    [ "$p" != - ] && c="$c (pool $p)"
    [ "$r" = none ] && r='never'
    [ "$ra" = none ] && ra='not in the run'
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$s" "$c" "$t" \
      "$f" "$fs" "$h" "$r" "$ra" "$l" "$la" "$sl"
  done
} >"$OUT/table.md"
{
  how="FAULTS_PROFILE=$PROFILE"
  [ -n "${FAULTS_BIN:-}" ] && how="FAULTS_BIN=$FAULTS_BIN"
  echo "command: FAULTS_SECONDS=$SECS FAULTS_CLIENTS=$CLIENTS $how bash tests/bench/faults.sh"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cores: $(nproc); cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1); kernel: $(uname -r)"
  echo "postgresql: $("$PG_BIN/postgres" --version); redis: $(redis-server --version | cut -d' ' -f3)"
  echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wall time: $(( $(date +%s) - started )) s (build $(( built - started )) s)"
} >"$OUT/machine.txt"
echo
cat "$OUT/table.md"
echo
cat "$OUT/machine.txt"
if [ ${#BAD[@]} -gt 0 ]; then
  echo
  echo "FAILED:"
  printf '  %s\n' "${BAD[@]}"
  exit 1
fi
echo "no request hung, no data lost"
