# Sourced by tests/run.sh: starts the services the tests need, unless the environment names them.
#   DATABASE_URL  a PostgreSQL the tests may create schemas in; otherwise a throw-away cluster is
#                 created with initdb on a free port and deleted when the tests end.
#   REDIS_URL     a Redis the tests may write to (each test uses keys under a prefix of its own);
#                 otherwise a throw-away redis-server without persistence runs on a free port.
#                 The Redis fault tests always start their own redis-server (REDIS_SERVER names
#                 the program if it is not on the PATH).
#   REDIS_CLUSTER_URLS  comma-separated node URLs of a Redis Cluster the tests may write to (each
#                 test uses a prefix of its own); otherwise start_redis_cluster runs a throw-away
#                 cluster of 3 masters (redis-server --cluster-enabled yes, on free ports, joined
#                 by redis-cli --cluster create). The cluster failover test starts its own.
#   CHROMIUM, CHROMEDRIVER  the browser and driver for the browser test; find_chromium looks for
#                 Debian's /usr/bin/chromium and /usr/bin/chromedriver and installs them as root.
#   PGBOUNCER     the pgbouncer program for the PgBouncer tests (each starts its own, in front of
#                 DATABASE_URL); find_pgbouncer looks for Debian's and installs it as root.

as_postgres() {
  # PostgreSQL refuses to run as root.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  local port
  while :; do
    port=$(( (RANDOM % 20000) + 30000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

find_pg_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then echo "$PG_BIN"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    echo "PostgreSQL: using DATABASE_URL"
    return
  fi
  local bin
  bin=$(find_pg_bin)
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "PostgreSQL: server programs not found; installing Debian's postgresql package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(find_pg_bin)
  fi
  if [ -z "$bin" ]; then
    echo "PostgreSQL server programs (initdb, pg_ctl) not found. Install them (Debian: apt-get install postgresql)," >&2
    echo "or set DATABASE_URL to a PostgreSQL server where the test user may create schemas." >&2
    exit 1
  fi
  export PG_BIN="$bin"
  PG_TMP=$(mktemp -d /tmp/ats-pg.XXXXXX)
  chmod 755 "$PG_TMP"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_TMP"
  as_postgres "$bin/initdb" -D "$PG_TMP/data" -A trust -U postgres --no-sync >/dev/null
  local port
  port=$(free_port)
  as_postgres "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w -t 60 \
    -o "-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
    start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "PostgreSQL: throw-away cluster on 127.0.0.1:$port ($PG_TMP)"
}

start_redis() {
  if ! command -v redis-server >/dev/null && [ -z "${REDIS_SERVER:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "Redis: redis-server not found; installing Debian's redis-server package"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
  fi
  if ! command -v redis-server >/dev/null && [ -z "${REDIS_SERVER:-}" ]; then
    echo "redis-server not found. Install it (Debian: apt-get install redis-server), or set" >&2
    echo "REDIS_SERVER to its path (the Redis fault tests start their own servers with it)." >&2
    exit 1
  fi
  if [ -n "${REDIS_URL:-}" ]; then
    echo "Redis: using REDIS_URL"
    return
  fi
  local server port
  server=${REDIS_SERVER:-$(command -v redis-server)}
  REDIS_TMP=$(mktemp -d /tmp/ats-redis.XXXXXX)
  port=$(free_port)
  "$server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$REDIS_TMP" \
    --daemonize yes --pidfile "$REDIS_TMP/pid" --logfile "$REDIS_TMP/log" >/dev/null
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then
      echo "redis-server did not start:" >&2
      cat "$REDIS_TMP/log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  export REDIS_URL="redis://127.0.0.1:$port/"
  echo "Redis: throw-away redis-server on 127.0.0.1:$port ($REDIS_TMP)"
}

start_redis_cluster() {
  if [ -n "${REDIS_CLUSTER_URLS:-}" ]; then
    echo "Redis Cluster: using REDIS_CLUSTER_URLS"
    return
  fi
  if ! command -v redis-cli >/dev/null; then
    echo "redis-cli not found (it joins the test cluster). Install it (Debian: apt-get install" >&2
    echo "redis-tools, which redis-server depends on), or set REDIS_CLUSTER_URLS." >&2
    exit 1
  fi
  local server port bus i tries addrs="" urls=""
  server=${REDIS_SERVER:-$(command -v redis-server)}
  REDIS_CLUSTER_TMP=$(mktemp -d /tmp/ats-redis-cluster.XXXXXX)
  for i in 1 2 3; do
    port=$(free_port)
    bus=$(free_port)
    mkdir -p "$REDIS_CLUSTER_TMP/$i"
    "$server" --port "$port" --cluster-port "$bus" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$REDIS_CLUSTER_TMP/$i" --daemonize yes \
      --pidfile "$REDIS_CLUSTER_TMP/$i/pid" --logfile "$REDIS_CLUSTER_TMP/$i/log" >/dev/null
    tries=0
    until redis-cli -p "$port" ping >/dev/null 2>&1; do
      tries=$((tries + 1))
      if [ "$tries" -ge 100 ]; then
        echo "a Redis Cluster node did not start:" >&2
        cat "$REDIS_CLUSTER_TMP/$i/log" >&2 || true
        exit 1
      fi
      sleep 0.1
    done
    addrs="$addrs 127.0.0.1:$port"
    urls="$urls${urls:+,}redis://127.0.0.1:$port/"
  done
  # shellcheck disable=SC2086 # one argument per node
  if ! redis-cli --cluster create $addrs --cluster-yes >"$REDIS_CLUSTER_TMP/create.log" 2>&1; then
    echo "redis-cli --cluster create failed:" >&2
    cat "$REDIS_CLUSTER_TMP/create.log" >&2
    exit 1
  fi
  for addr in $addrs; do
    tries=0
    until redis-cli -p "${addr#*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
      tries=$((tries + 1))
      if [ "$tries" -ge 200 ]; then
        echo "the test Redis Cluster did not reach cluster_state:ok" >&2
        exit 1
      fi
      sleep 0.1
    done
  done
  export REDIS_CLUSTER_URLS="$urls"
  echo "Redis Cluster: 3 throw-away masters on$addrs ($REDIS_CLUSTER_TMP)"
}

find_chromium() {
  # The browser test (examples/tests/browser.rs) drives Debian's Chromium through chromedriver.
  # CHROMIUM and CHROMEDRIVER name other programs.
  local chromium=${CHROMIUM:-/usr/bin/chromium} driver=${CHROMEDRIVER:-/usr/bin/chromedriver}
  if { [ ! -x "$chromium" ] || [ ! -x "$driver" ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Chromium: chromium or chromedriver not found; installing Debian's chromium and chromium-driver packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  if [ ! -x "$chromium" ] || [ ! -x "$driver" ]; then
    [ -x "$chromium" ] || echo "Chromium not found at $chromium (Debian package: chromium)." >&2
    [ -x "$driver" ] || echo "chromedriver not found at $driver (Debian package: chromium-driver)." >&2
    echo "Install them (apt-get install chromium chromium-driver), or set CHROMIUM and CHROMEDRIVER." >&2
    exit 1
  fi
  export CHROMIUM="$chromium" CHROMEDRIVER="$driver"
  echo "Chromium: $("$chromium" --version 2>/dev/null | head -n 1) with $driver"
}

find_pgbouncer() {
  # tests/tests/pgbouncer.rs and conformance_pgbouncer.rs start their own pgbouncer in
  # transaction pooling mode. PGBOUNCER names another program.
  local bin=${PGBOUNCER:-$(PATH="$PATH:/usr/sbin" command -v pgbouncer || true)}
  if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "PgBouncer: pgbouncer not found; installing Debian's pgbouncer package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
    bin=$(PATH="$PATH:/usr/sbin" command -v pgbouncer || true)
  fi
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "pgbouncer not found. Install it (Debian package: pgbouncer; apt-get install pgbouncer)," >&2
    echo "or set PGBOUNCER to the program." >&2
    exit 1
  fi
  export PGBOUNCER="$bin"
  echo "PgBouncer: $("$bin" --version 2>/dev/null | head -n 1) at $bin"
}

stop_services() {
  if [ -n "${REDIS_CLUSTER_TMP:-}" ]; then
    local node_pid tries
    for pidfile in "$REDIS_CLUSTER_TMP"/*/pid; do
      [ -f "$pidfile" ] || continue
      node_pid=$(cat "$pidfile")
      kill "$node_pid" 2>/dev/null || true
      tries=0
      while kill -0 "$node_pid" 2>/dev/null && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
    done
    rm -rf "$REDIS_CLUSTER_TMP"
  fi
  if [ -n "${REDIS_TMP:-}" ]; then
    if [ -f "$REDIS_TMP/pid" ]; then
      local pid tries=0
      pid=$(cat "$REDIS_TMP/pid")
      kill "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 50 ]; do sleep 0.1; tries=$((tries + 1)); done
    fi
    rm -rf "$REDIS_TMP"
  fi
  if [ -n "${PG_TMP:-}" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
}
