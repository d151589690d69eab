//! The cached store: the conformance suite with a local cache and with a Redis cache in front of
//! PostgreSQL (the Redis one also with updates written through), two instances with local caches
//! (bounded staleness), the write order, and write-through over PostgreSQL.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use actix_typed_session::{
    CachedStore, Key, LocalCache, MemoryStore, PostgresStore, Record, RedisStore, SessionCache,
    SessionMiddleware, SessionStore, StatusCode, StorageKey, StoreError,
};
use actix_typed_session_tests::{client, pg, redis, HookedStore, Op};
use serde_json::json;

type Guards = (pg::TestSchema, Option<redis::TestPrefix>);

async fn local_over_postgres() -> (CachedStore<LocalCache, PostgresStore>, Guards) {
    let (durable, schema) = pg::store().await;
    (
        CachedStore::new(LocalCache::default(), durable),
        (schema, None),
    )
}

async fn redis_over_postgres() -> (CachedStore<RedisStore, PostgresStore>, Guards) {
    let (durable, schema) = pg::store().await;
    let (cache, prefix) = redis::store().await;
    (CachedStore::new(cache, durable), (schema, Some(prefix)))
}

mod local_cache {
    use super::*;

    actix_typed_session_tests::conformance_tests!(async local_over_postgres());
    actix_typed_session_tests::server_conformance_tests!(async local_over_postgres());
}

mod redis_cache {
    use super::*;

    actix_typed_session_tests::conformance_tests!(async redis_over_postgres());
    actix_typed_session_tests::server_conformance_tests!(async redis_over_postgres());
}

/// A shared cache with updates written through (off by default for a shared cache; a user may
/// turn it on when one visitor's requests reach one instance).
async fn redis_through_over_postgres() -> (CachedStore<RedisStore, PostgresStore>, Guards) {
    let (durable, schema) = pg::store().await;
    let (cache, prefix) = redis::store().await;
    let store = CachedStore::builder(cache, durable)
        .write_through(true)
        .build()
        .unwrap();
    (store, (schema, Some(prefix)))
}

mod redis_cache_written_through {
    use super::*;

    actix_typed_session_tests::conformance_tests!(async redis_through_over_postgres());
    actix_typed_session_tests::server_conformance_tests!(async redis_through_over_postgres());
}

fn middleware(store: impl SessionStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[13u8; 64][..]))
        .backend("cached", store)
        .build()
        .unwrap()
}

#[actix_web::test]
async fn two_instances_with_local_caches_serve_stale_data_for_at_most_the_bound() {
    let bound = Duration::from_millis(600);
    let (durable, _schema) = pg::store().await;
    let instance = |durable: PostgresStore| {
        CachedStore::builder(LocalCache::default(), durable)
            .max_staleness(bound)
            .build()
            .unwrap()
    };
    let a = client(middleware(instance(durable.clone()))).await;
    let b = client(middleware(instance(durable))).await;

    a.set("session", "cart", json!(["book"])).await;
    b.set_cookie("session", &a.cookie("session").unwrap());
    assert_eq!(b.read("session", "cart").await, Some(json!(["book"])));

    // A writes; B's copy is stale until the bound has passed, never longer.
    a.set("session", "cart", json!(["book", "pen"])).await;
    let written = Instant::now();
    assert_eq!(
        a.read("session", "cart").await,
        Some(json!(["book", "pen"])),
        "an instance reads its own writes"
    );
    let mut last_stale = None;
    loop {
        let seen = b.read("session", "cart").await;
        if seen == Some(json!(["book", "pen"])) {
            break;
        }
        assert_eq!(seen, Some(json!(["book"])));
        last_stale = Some(written.elapsed());
        assert!(
            written.elapsed() < bound + Duration::from_millis(400),
            "stale for longer than the bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        last_stale.is_some_and(|t| t <= bound),
        "served stale after the bound: {last_stale:?}"
    );

    // Writes on the stale instance are still merged at the durable store: nothing is lost.
    b.set("session", "coupon", json!("X")).await;
    tokio::time::sleep(bound).await;
    assert_eq!(
        a.get("/session/entries").await.json(),
        json!({"cart": ["book", "pen"], "coupon": "X"})
    );

    // A logout on A reaches B within the bound, and B cannot bring the session back.
    let old = a.cookie("session").unwrap();
    a.post("/session/purge").await;
    let purged = Instant::now();
    let gone = pg::eventually(bound * 3, || async {
        b.read("session", "cart").await.is_none()
    })
    .await;
    assert!(
        gone.is_some(),
        "the purged session was served past the bound"
    );
    assert!(purged.elapsed() < bound + Duration::from_millis(500));
    let late = b.post_json("/session/set/late", json!(1)).await;
    assert_eq!(late.status, StatusCode::OK);
    a.set_cookie("session", &old);
    assert_eq!(a.read("session", "cart").await, None);
    assert_eq!(
        a.read("session", "late").await,
        None,
        "the purged id came back"
    );
}

#[actix_web::test]
async fn a_shared_redis_cache_is_invalidated_by_writes_on_any_instance() {
    let (durable, _schema) = pg::store().await;
    let (cache, _prefix) = redis::store().await;
    let shared = CachedStore::new(cache.clone(), durable.clone());
    assert!(
        !shared.writes_through(),
        "a cache that instances share is not written through by default"
    );
    let a = client(middleware(shared)).await;
    let b = client(middleware(CachedStore::new(cache, durable))).await;
    a.set("session", "n", json!(1)).await;
    b.set_cookie("session", &a.cookie("session").unwrap());
    assert_eq!(b.read("session", "n").await, Some(json!(1)));
    a.set("session", "n", json!(2)).await;
    assert_eq!(
        b.read("session", "n").await,
        Some(json!(2)),
        "no stale read"
    );
}

/// Records the order of operations on both stores.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: &str) {
        self.0.lock().unwrap().push(entry.to_owned());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A local cache that logs its operations.
struct LoggedCache(LocalCache, Log);

impl SessionCache for LoggedCache {
    async fn get(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let found = self.0.get(key, now).await?;
        self.1.push(if found.is_some() {
            "cache hit"
        } else {
            "cache miss"
        });
        Ok(found)
    }
    async fn put(
        &self,
        key: &StorageKey,
        record: &Record,
        now: SystemTime,
        fresh_for: Duration,
    ) -> Result<(), StoreError> {
        self.1.push("cache put");
        self.0.put(key, record, now, fresh_for).await
    }
    async fn invalidate(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.1.push("cache invalidate");
        self.0.invalidate(key).await
    }
}

/// A durable store that logs its operations and can be made to fail writes.
fn logged_durable(log: Log, fail: Arc<Mutex<bool>>) -> HookedStore<MemoryStore> {
    HookedStore::new(MemoryStore::default(), move |op| {
        log.push(match op {
            Op::Load => "durable load",
            Op::Create => "durable create",
            // A refresh counts as an update in this log.
            Op::Update | Op::Touch => "durable update",
            Op::Renew => "durable renew",
            Op::Delete => "durable delete",
            Op::Owners => "durable owners",
        });
        if op.writes() && *fail.lock().unwrap() {
            return Err(StoreError::new("writing", "crashed before the write"));
        }
        Ok(())
    })
}

#[actix_web::test]
async fn writes_reach_the_durable_store_before_the_cache_and_a_failed_write_caches_nothing() {
    let log = Log::default();
    let fail = Arc::new(Mutex::new(false));
    let store = CachedStore::new(
        LoggedCache(LocalCache::default(), log.clone()),
        logged_durable(log.clone(), fail.clone()),
    );
    let c = client(middleware(store)).await;
    c.set("session", "a", json!(1)).await;
    assert_eq!(log.take(), ["durable create", "cache invalidate"]);
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
    assert_eq!(log.take(), ["cache miss", "durable load", "cache put"]);
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
    assert_eq!(log.take(), ["cache hit"]);

    c.set("session", "a", json!(2)).await;
    assert_eq!(
        log.take(),
        ["cache hit", "durable update", "cache invalidate"]
    );

    // The durable store fails (e.g. the process dies during the write): the request fails and
    // the cache does not hold the new value.
    *fail.lock().unwrap() = true;
    let failed = c.post_json("/session/set/a", json!(3)).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    *fail.lock().unwrap() = false;
    log.take();
    assert_eq!(c.read("session", "a").await, Some(json!(2)));
    assert_eq!(log.take(), ["cache miss", "durable load", "cache put"]);
}

#[actix_web::test]
async fn over_postgres_an_update_writes_through_and_the_next_request_asks_no_durable_store() {
    let log = Log::default();
    let (durable, _schema) = pg::store().await;
    let logged = {
        let log = log.clone();
        HookedStore::new(durable.clone(), move |op| {
            log.push(&format!("durable {op:?}").to_lowercase());
            Ok(())
        })
    };
    let store = CachedStore::new(LoggedCache(LocalCache::default(), log.clone()), logged);
    let c = client(middleware(store)).await;
    c.set("session", "n", json!(1)).await;
    assert_eq!(c.read("session", "n").await, Some(json!(1)));
    log.take();

    // Read + write: one durable statement (PostgreSQL's UPDATE … RETURNING), whose answer is
    // the new copy; the next request is served from it.
    c.set("session", "n", json!(2)).await;
    assert_eq!(log.take(), ["cache hit", "durable update", "cache put"]);
    assert_eq!(c.read("session", "n").await, Some(json!(2)));
    assert_eq!(log.take(), ["cache hit"]);

    // The copy is what PostgreSQL holds: an instance without a cache reads the same.
    c.set("session", "cart", json!(["book"])).await;
    let direct = client(middleware(durable)).await;
    direct.set_cookie("session", &c.cookie("session").unwrap());
    let entries = json!({"n": 2, "cart": ["book"]});
    assert_eq!(direct.get("/session/entries").await.json(), entries);
    log.take();
    assert_eq!(c.get("/session/entries").await.json(), entries);
    assert_eq!(log.take(), ["cache hit"]);

    // A removal and a logout go through as well: nothing removed or purged is served.
    c.post("/session/remove/cart").await;
    assert_eq!(c.read("session", "cart").await, None);
    c.post("/session/purge").await;
    assert_eq!(c.read("session", "n").await, None);
}

/// A cache that is down: every operation fails.
struct BrokenCache;

impl SessionCache for BrokenCache {
    async fn get(&self, _: &StorageKey, _: SystemTime) -> Result<Option<Record>, StoreError> {
        Err(StoreError::new("reading", "cache down"))
    }
    async fn put(
        &self,
        _: &StorageKey,
        _: &Record,
        _: SystemTime,
        _: Duration,
    ) -> Result<(), StoreError> {
        Err(StoreError::new("writing", "cache down"))
    }
    async fn invalidate(&self, _: &StorageKey) -> Result<(), StoreError> {
        Err(StoreError::new("writing", "cache down"))
    }
}

#[actix_web::test]
async fn a_failing_cache_is_bypassed() {
    let c = client(middleware(CachedStore::new(
        BrokenCache,
        MemoryStore::default(),
    )))
    .await;
    c.set("session", "a", json!(1)).await;
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
    c.post("/session/renew").await;
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
}

#[actix_web::test]
async fn a_zero_staleness_bound_is_refused() {
    let err = CachedStore::builder(LocalCache::default(), MemoryStore::default())
        .max_staleness(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("staleness"), "{err}");
}
