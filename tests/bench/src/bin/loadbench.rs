//! The load-benchmark server (issue 7): one variant per process, selected by argument.
//!
//! Driven by `tests/bench/loadbench.sh`, which pins this server to one core and `wrk` to the other,
//! interleaves the variants and hands the numbers to `loadbench_report`. Every variant serves the
//! same counter handler on `GET /` (`rw`: read `n`, write `n + 1`; `ro`: read `n` only) and
//! `GET /init`, which creates a session holding `n = 0` so the driver can collect cookies.
//!
//! ```text
//! loadbench <variant>        serve on 127.0.0.1:$LB_PORT (default 8088)
//! loadbench pg-loop          a bare tokio-postgres loop issuing our store's single-row UPDATE
//! loadbench pg-loop-pair     the same loop issuing our store's load SELECT, then its UPDATE
//! loadbench mem-capacity     1,000,000 sessions of ~100 B in the memory store: resident memory
//! loadbench mem-scaling      memory-store load+save ops/s on one thread, then on two at once
//! loadbench list             the variants this build can serve
//! ```
//!
//! Environment: `LB_PORT`, `DATABASE_URL` (PostgreSQL variants), `REDIS_URL` (Redis variants),
//! `LB_CONNS`, `LB_ROWS`, `LB_SECONDS` (the loops), `LB_PG_CLIENTS` (how many connections the
//! pg loops' `LB_CONNS` tasks share; one each by default), `LB_PG_READERS` (`pg-loop-pair`'s
//! loads on that many shared connections, its updates on the tasks' own), `LB_PG_SHARED` (our
//! PostgreSQL store's `shared_connections`, 4 by default; 0 for one pooled connection per
//! operation, the store's own default), `LB_PG_POOL` (its pool's size; `LB_CONNS` if unset),
//! `LB_MEM_SESSIONS` (mem-capacity; 1,000,000 by default; `LB_SESSIONS` is the load benchmark's
//! rotating sessions), `LB_BLOB` (bytes of filler each `/init` session also holds) and
//! `LB_PREFILL` (other sessions stored beside the measured ones, PostgreSQL and our Redis store;
//! see tests/bench/growth.sh).
//! Exit status 3 means "this variant is not built in" (the driver reports it as skipped).

use std::{
    future::Future,
    time::{Duration, Instant, SystemTime},
};

use actix_typed_session::{
    ChangeSet, CookieStore, Key, MemoryStore, Record, Session, SessionMiddleware, SessionStore,
    StorageKey,
};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::{json, Map, Value};

/// Variants a server process can serve, in the order `loadbench.sh` runs them: each next to the
/// one it is compared with, so that the two are measured seconds apart.
const VARIANTS: &[&str] = &[
    "bare",
    "ours-untouched",
    "as-cookie-rw",
    "ours-cookie-rw",
    "ours-cookie-nocache-rw",
    "as-cookie-ro",
    "ours-cookie-ro",
    "ours-cookie-nocache-ro",
    "as-redis-rw",
    "ours-redis-rw",
    "as-redis-ro",
    "ours-redis-ro",
    "ours-memory-rw",
    "ours-memory-ro",
    "ours-pg-rw",
    "ours-pg-ro",
    "ours-pgcached-rw",
    "ours-pgcached-ro",
];

#[cfg_attr(all(feature = "postgres", feature = "redis"), allow(dead_code))]
const NOT_BUILT: i32 = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[cfg_attr(all(feature = "postgres", feature = "redis"), allow(dead_code))]
fn skip(why: &str) -> ! {
    eprintln!("SKIP: {why}");
    std::process::exit(NOT_BUILT)
}

fn main() -> std::io::Result<()> {
    let variant = std::env::args().nth(1).unwrap_or_else(|| "list".into());
    match variant.as_str() {
        "list" => {
            for v in VARIANTS {
                println!("{v}");
            }
            Ok(())
        }
        "pg-loop" => pg_loop(false),
        "pg-loop-pair" => pg_loop(true),
        "mem-capacity" => mem_capacity(),
        "mem-scaling" => mem_scaling(),
        v if VARIANTS.contains(&v) => actix_web::rt::System::new().block_on(serve(variant)),
        other => {
            eprintln!("unknown variant {other:?}; `loadbench list` shows them");
            std::process::exit(2)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The handlers: the same work in each flavour.

async fn bare() -> HttpResponse {
    HttpResponse::Ok().body("1")
}

async fn ours_rw(session: Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(HttpResponse::Ok().body((n + 1).to_string()))
}

async fn ours_ro(session: Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    Ok(HttpResponse::Ok().body(n.to_string()))
}

async fn ours_init(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("n", 0u64)?;
    if let Some(blob) = blob() {
        session.insert("blob", blob)?;
    }
    Ok(HttpResponse::Ok().body("0"))
}

async fn as_rw(session: actix_session::Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(HttpResponse::Ok().body((n + 1).to_string()))
}

async fn as_ro(session: actix_session::Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    Ok(HttpResponse::Ok().body(n.to_string()))
}

async fn as_init(session: actix_session::Session) -> actix_web::Result<HttpResponse> {
    session.insert("n", 0u64)?;
    if let Some(blob) = blob() {
        session.insert("blob", blob)?;
    }
    Ok(HttpResponse::Ok().body("0"))
}

/// `LB_BLOB` bytes stored with every session by `/init` and never touched by `/`: what changing
/// one key of a large session costs (BENCHMARKS.md, "As the work grows").
fn blob() -> Option<String> {
    let bytes: usize = env_or("LB_BLOB", 0);
    (bytes > 0).then(|| "x".repeat(bytes))
}

// ---------------------------------------------------------------------------------------------
// The servers.

fn port() -> u16 {
    env_or("LB_PORT", 8088)
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Serves `variant` on one worker until killed.
async fn serve(variant: String) -> std::io::Result<()> {
    let addr = ("127.0.0.1", port());
    let (rw, ro) = (variant.ends_with("-rw"), variant.ends_with("-ro"));
    macro_rules! start {
        ($factory:expr) => {{
            let server = HttpServer::new($factory)
                .workers(1)
                .backlog(1024)
                .bind(addr)?
                .run();
            eprintln!("serving {variant} on {}:{}", addr.0, addr.1);
            server.await
        }};
    }
    match variant.as_str() {
        "bare" => start!(|| App::new().route("/", web::get().to(bare))),
        "as-cookie-rw" | "as-cookie-ro" | "as-redis-rw" | "as-redis-ro" => {
            use actix_session::{
                storage::{CookieSessionStore, RedisSessionStore},
                SessionMiddleware as AsMiddleware,
            };
            let key = actix_web::cookie::Key::generate();
            // The measured route first, as in every variant: the router tries routes in order,
            // and `bare` has only this one.
            let handler = move |app: App<_>| {
                let app = if rw {
                    app.route("/", web::get().to(as_rw))
                } else {
                    app.route("/", web::get().to(as_ro))
                };
                app.route("/init", web::get().to(as_init))
            };
            if variant.starts_with("as-cookie") {
                start!(move || handler(App::new()).wrap(AsMiddleware::new(
                    CookieSessionStore::default(),
                    key.clone()
                )))
            } else {
                let store = RedisSessionStore::new(redis_url())
                    .await
                    .map_err(std::io::Error::other)?;
                start!(
                    move || handler(App::new()).wrap(AsMiddleware::new(store.clone(), key.clone()))
                )
            }
        }
        "ours-untouched" => {
            // The middleware is wrapped, the handler never extracts a session; `/init` hands out a
            // real cookie so that the requests carry one.
            let sessions = ours_middleware(CookieStore::default())?;
            start!(move || App::new()
                .wrap(sessions.clone())
                .route("/", web::get().to(bare))
                .route("/init", web::get().to(ours_init)))
        }
        _ => {
            let sessions = match variant.trim_end_matches("-rw").trim_end_matches("-ro") {
                "ours-cookie" => ours_middleware(CookieStore::default())?,
                // Every request opens its cookie: the requests rotate over a few cookies, which a
                // cache of opened values (on by default) serves from memory after the first.
                "ours-cookie-nocache" => {
                    ours_middleware(CookieStore::default().with_opened_cache(0))?
                }
                "ours-memory" => ours_middleware(
                    MemoryStore::builder()
                        .capacity(1_000_000)
                        .sweep_interval(Duration::from_secs(600))
                        .build(),
                )?,
                "ours-pg" => ours_middleware(postgres_store().await?)?,
                // A local cache in front of PostgreSQL: a read+write request is one UPDATE …
                // RETURNING (the update writes through), a read-only one no statement at all.
                "ours-pgcached" => ours_middleware(actix_typed_session::CachedStore::new(
                    actix_typed_session::LocalCache::default(),
                    postgres_store().await?,
                ))?,
                "ours-redis" => {
                    prefill_redis().await?;
                    ours_middleware(redis_store()?)?
                }
                other => unreachable!("variant {other}"),
            };
            debug_assert!(rw || ro);
            start!(move || {
                let app = App::new().wrap(sessions.clone());
                let app = if rw {
                    app.route("/", web::get().to(ours_rw))
                } else {
                    app.route("/", web::get().to(ours_ro))
                };
                app.route("/init", web::get().to(ours_init))
            })
        }
    }
}

fn ours_middleware(
    backend: impl Into<actix_typed_session::Backend>,
) -> std::io::Result<SessionMiddleware> {
    SessionMiddleware::builder(Key::generate())
        .backend("store", backend)
        .build()
        .map_err(std::io::Error::other)
}

#[cfg(feature = "postgres")]
fn pg_pool(size: usize) -> std::io::Result<actix_typed_session::deadpool_postgres::Pool> {
    use actix_typed_session::deadpool_postgres::{tokio_postgres::NoTls, Config, Runtime};
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| std::io::Error::other("set DATABASE_URL for the PostgreSQL variants"))?;
    let mut config = Config::new();
    config.url = Some(url);
    config.pool = Some(actix_typed_session::deadpool_postgres::PoolConfig::new(
        size,
    ));
    config
        .create_pool(Some(Runtime::Tokio1), NoTls)
        .map_err(std::io::Error::other)
}

/// Our store on a pool as large as the driver's concurrency (or `LB_PG_POOL`), with 4 shared
/// connections (or `LB_PG_SHARED`), in a table emptied for this run.
#[cfg(feature = "postgres")]
async fn postgres_store() -> std::io::Result<actix_typed_session::PostgresStore> {
    let pool = pg_pool(env_or("LB_PG_POOL", env_or("LB_CONNS", 32)))?;
    // Shared connections are off by default in the store (they are taken from the
    // application's pool); the benchmark measures the configuration a busy instance would use.
    let store = actix_typed_session::PostgresStore::builder(pool.clone())
        .schema("loadbench")
        .table("sessions")
        .shared_connections(env_or("LB_PG_SHARED", 4))
        .build()
        .map_err(std::io::Error::other)?;
    store.migrate().await.map_err(std::io::Error::other)?;
    let client = pool.get().await.map_err(std::io::Error::other)?;
    client
        .batch_execute("TRUNCATE loadbench.sessions")
        .await
        .map_err(std::io::Error::other)?;
    // `LB_PREFILL` other sessions stored beside the measured ones.
    let others: i64 = env_or("LB_PREFILL", 0);
    if others > 0 {
        client
            .execute(
                "INSERT INTO loadbench.sessions (id_hash, data, created_at, expires_at, last_seen)
                 SELECT sha256(('other-' || i)::bytea), '{\"n\": 0}', now(),
                        now() + interval '1 day', now()
                 FROM generate_series(1, $1::bigint) AS i",
                &[&others],
            )
            .await
            .map_err(std::io::Error::other)?;
        client
            .batch_execute("ANALYZE loadbench.sessions")
            .await
            .map_err(std::io::Error::other)?;
    }
    Ok(store)
}

#[cfg(not(feature = "postgres"))]
async fn postgres_store() -> std::io::Result<MemoryStore> {
    skip("built without the `postgres` feature")
}

/// Our Redis store on `REDIS_URL`, under a prefix of its own.
#[cfg(feature = "redis")]
fn redis_store() -> std::io::Result<actix_typed_session::RedisStore> {
    let client =
        actix_typed_session::redis::Client::open(redis_url()).map_err(std::io::Error::other)?;
    actix_typed_session::RedisStore::builder(client)
        .prefix("loadbench:ours:")
        .build()
        .map_err(std::io::Error::other)
}

/// `LB_PREFILL` other sessions stored in Redis beside the measured ones (kept between runs of one
/// `loadbench.sh`, which has a Redis of its own; never on a shared one: the benchmark's keys are
/// only added).
#[cfg(feature = "redis")]
async fn prefill_redis() -> std::io::Result<()> {
    use actix_typed_session::redis;
    let others: u64 = env_or("LB_PREFILL", 0);
    if others == 0 {
        return Ok(());
    }
    let client = redis::Client::open(redis_url()).map_err(std::io::Error::other)?;
    // A script filling 100,000 hashes runs longer than the crate's default 500 ms reply timeout.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(std::io::Error::other)?;
    let stored: u64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .map_err(std::io::Error::other)?;
    if stored >= others {
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_millis();
    // Hashes shaped like the store's, 100,000 per script call.
    let fill = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
          local key = 'loadbench:other:' .. i
          redis.call('HSET', key, '@c', ARGV[3], '@e', ARGV[4], '@s', ARGV[3], 'd:n', '0')
          redis.call('PEXPIRE', key, 86400000)
        end";
    for first in (1..=others).step_by(100_000) {
        let last = (first + 99_999).min(others);
        redis::cmd("EVAL")
            .arg(fill)
            .arg(0)
            .arg(first)
            .arg(last)
            .arg(now.to_string())
            .arg((now + 86_400_000).to_string())
            .query_async::<()>(&mut conn)
            .await
            .map_err(std::io::Error::other)?;
    }
    Ok(())
}

#[cfg(not(feature = "redis"))]
async fn prefill_redis() -> std::io::Result<()> {
    Ok(())
}

#[cfg(not(feature = "redis"))]
fn redis_store() -> std::io::Result<MemoryStore> {
    skip("built without the `redis` feature (our Redis store)")
}

// ---------------------------------------------------------------------------------------------
// pg-loop, pg-loop-pair: the PostgreSQL references.

/// `LB_CONNS` tasks on one thread, each on its own connection, work on `LB_ROWS` rows in turn for
/// `LB_SECONDS`, issuing exactly our store's statements (their text comes from the store itself)
/// with the parameters its `load` and `update` pass; prints one `RESULT` line.
///
/// - `pair == false` (`pg-loop`, issue 7's reference): one `update` per iteration, the patch
///   `{"n": <a per-task counter>}`;
/// - `pair == true` (`pg-loop-pair`, like-for-like with a read+write request): the store's `load`
///   `SELECT` of the row, then its `update` of the same row with `{"n": n + 1}`, `n` read from
///   the loaded data. Latency is that of the pair.
#[cfg(feature = "postgres")]
fn pg_loop(pair: bool) -> std::io::Result<()> {
    use actix_typed_session::deadpool_postgres::tokio_postgres::types::Json;
    use std::{cell::Cell, rc::Rc};

    let conns: usize = env_or("LB_CONNS", 32);
    let rows: u64 = env_or("LB_ROWS", 32);
    let seconds: f64 = env_or("LB_SECONDS", 10.0);
    actix_web::rt::System::new().block_on(async move {
        let readers: usize = env_or("LB_PG_READERS", 0);
        let pool = pg_pool(conns + readers)?;
        let store = postgres_store().await?;
        let (load_sql, update_sql) =
            actix_typed_session::__bench::postgres_load_and_update_sql(&store);
        // Rows shaped like a counter session.
        let now = SystemTime::now();
        let keys: Vec<StorageKey> = (0..rows).map(key_for).collect();
        for key in &keys {
            let mut data = Map::new();
            data.insert("n".into(), json!(0));
            store
                .create(
                    key,
                    &Record::new(data, now, now + Duration::from_secs(3600)),
                )
                .await
                .map_err(std::io::Error::other)?;
        }
        let next = Rc::new(Cell::new(0usize));
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(seconds);
        let mut tasks = Vec::new();
        let shared: usize = env_or("LB_PG_CLIENTS", conns).clamp(1, conns.max(1));
        // Connections held for the whole loop, each shared by the tasks given it.
        let connections = async |n: usize| -> std::io::Result<Vec<Rc<_>>> {
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(Rc::new(pool.get().await.map_err(std::io::Error::other)?));
            }
            Ok(held)
        };
        let clients = connections(shared).await?;
        // With LB_PG_READERS, the loads go to that many connections shared by all tasks, and
        // the updates stay on the tasks' own.
        let reader_clients = connections(readers).await?;
        for t in 0..conns {
            let client = clients[t % shared].clone();
            let reader = reader_clients
                .get(t % readers.max(1))
                .unwrap_or(&client)
                .clone();
            let keys = keys.clone();
            let next = next.clone();
            let (load_sql, update_sql) = (load_sql.clone(), update_sql.clone());
            tasks.push(actix_web::rt::spawn(async move {
                let load = reader.prepare_cached(&load_sql).await.expect("prepare");
                let update = client.prepare_cached(&update_sql).await.expect("prepare");
                // A change set that sets one key: not cleared, nothing removed, owner unchanged.
                let (cleared, removed, owner_changes, owner) =
                    (false, Vec::<&str>::new(), false, None::<&str>);
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let i = next.get();
                    next.set(i + 1);
                    let key = keys[i % keys.len()];
                    let key = key.as_bytes().as_slice();
                    let now = SystemTime::now();
                    let began = Instant::now();
                    if pair {
                        let row = reader
                            .query_opt(&load, &[&key, &now])
                            .await
                            .expect("load")
                            .expect("a live row");
                        let Json(data): Json<Map<String, Value>> = row.get(0);
                        n = data.get("n").and_then(Value::as_u64).unwrap_or(0);
                    }
                    n += 1;
                    let mut patch = Map::new();
                    patch.insert("n".into(), json!(n));
                    client
                        .execute(
                            &update,
                            &[
                                &key,
                                &cleared,
                                &removed,
                                &Json(&patch),
                                &(now + Duration::from_secs(3600)),
                                &now,
                                &owner_changes,
                                &owner,
                                // The deadline (see `PostgresStore`): the store's default.
                                &(SystemTime::now() + Duration::from_secs(5)),
                            ],
                        )
                        .await
                        .expect("update");
                    latencies.push(began.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.map_err(std::io::Error::other)?);
        }
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort();
        let p99 = latencies
            .get(latencies.len() * 99 / 100)
            .copied()
            .unwrap_or_default();
        println!(
            "RESULT rps={:.1} p99_ms={:.3}",
            latencies.len() as f64 / elapsed,
            p99.as_secs_f64() * 1e3
        );
        Ok(())
    })
}

#[cfg(not(feature = "postgres"))]
fn pg_loop(_pair: bool) -> std::io::Result<()> {
    skip("built without the `postgres` feature")
}

// ---------------------------------------------------------------------------------------------
// The memory-store targets.

fn key_for(i: u64) -> StorageKey {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&i.to_le_bytes());
    bytes[8..16].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    StorageKey::from_bytes(bytes)
}

/// Runs a future that never waits (the memory store's are ready at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// About 100 bytes of JSON, as a small logged-in session would hold.
fn hundred_bytes(i: u64) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("user_id".into(), json!(i));
    data.insert("name".into(), json!(format!("visitor-{i:010}")));
    data.insert("role".into(), json!("customer:gold"));
    data.insert("cart".into(), json!(["sku-00012", "sku-00345"]));
    data
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn mem_capacity() -> std::io::Result<()> {
    let sessions: u64 = env_or("LB_MEM_SESSIONS", 1_000_000);
    let payload = serde_json::to_vec(&hundred_bytes(sessions - 1))?.len();
    let before = status_kb("VmRSS:");
    let store = MemoryStore::builder()
        .capacity(sessions as usize + 1)
        .sweep_interval(Duration::from_secs(3600))
        .build();
    let now = SystemTime::now();
    let expires = now + Duration::from_secs(3600);
    let start = Instant::now();
    for i in 0..sessions {
        let record = Record::new(hundred_bytes(i), now, expires);
        block_on(store.create(&key_for(i), &record)).map_err(std::io::Error::other)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let after = status_kb("VmRSS:");
    assert_eq!(store.len() as u64, sessions);
    println!(
        "RESULT sessions={sessions} payload_bytes={payload} rss_mb={:.1} added_mb={:.1} hwm_mb={:.1} create_per_s={:.0}",
        after as f64 / 1024.0,
        (after - before) as f64 / 1024.0,
        status_kb("VmHWM:") as f64 / 1024.0,
        sessions as f64 / secs
    );
    Ok(())
}

fn mem_scaling() -> std::io::Result<()> {
    let seconds: f64 = env_or("LB_SECONDS", 3.0);
    // `LB_SCALING_SESSIONS` (100,000): fewer make the working set fit in the caches, which
    // tells the store's own limits from the memory system's.
    let sessions: u64 = env_or("LB_SCALING_SESSIONS", 100_000);
    let store = MemoryStore::builder()
        .capacity(sessions as usize + 1)
        .build();
    let now = SystemTime::now();
    let expires = now + Duration::from_secs(3600);
    for i in 0..sessions {
        block_on(store.create(&key_for(i), &Record::new(hundred_bytes(i), now, expires)))
            .map_err(std::io::Error::other)?;
    }
    let work = |thread: u64| {
        let store = store.clone();
        move || {
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let mut ops = 0u64;
            let mut i = thread.wrapping_mul(7919);
            while Instant::now() < deadline {
                for _ in 0..64 {
                    i = (i + 104_729) % sessions;
                    let key = key_for(i);
                    let now = SystemTime::now();
                    let record = block_on(store.load(&key, now))
                        .expect("load")
                        .expect("live");
                    let n = record
                        .data
                        .get("user_id")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let mut changes = ChangeSet::default();
                    changes.set("user_id", json!(n + 1));
                    block_on(store.update(&key, &changes, expires, now)).expect("update");
                    ops += 1;
                }
            }
            ops
        }
    };
    // `LB_SCALING_REPEATS` (3) pairs of one run on one thread and one on two, each pair's
    // ratio taken seconds apart, then the medians: the check is the one step that needs both
    // cores, and anything else running on the machine lands on one of them.
    let repeats: usize = env_or("LB_SCALING_REPEATS", 3usize).max(1);
    let (mut ones, mut twos, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeats {
        let start = Instant::now();
        let one = std::thread::spawn(work(0)).join().expect("thread") as f64
            / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (a, b) = (std::thread::spawn(work(1)), std::thread::spawn(work(2)));
        let two = (a.join().expect("thread") + b.join().expect("thread")) as f64
            / start.elapsed().as_secs_f64();
        println!("run one={one:.0} two={two:.0} ratio={:.3}", two / one);
        ones.push(one);
        twos.push(two);
        ratios.push(two / one);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (min, max) = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "RESULT one_thread={:.0} two_threads={:.0} scaling={:.3} scaling_min={min:.2} \
         scaling_max={max:.2} repeats={repeats}",
        median(&mut ones),
        median(&mut twos),
        median(&mut ratios),
    );
    Ok(())
}
