//! PostgreSQL backend: schema, atomic change sets under contention, expiry clean-up, several
//! instances, and faults on throw-away clusters.

use std::time::{Duration, SystemTime};

use actix_typed_session::{
    BuildError, ChangeSet, Key, PostgresStore, Record, SessionMiddleware, SessionStore, StatusCode,
    StorageKey, WriteResult,
};
use actix_typed_session_tests::{
    client,
    pg::{self, eventually, TempCluster},
};
use serde_json::json;

fn key_n(n: u8) -> StorageKey {
    StorageKey::from_bytes([n; 32])
}

fn record(data: serde_json::Value, ttl_secs: i64) -> Record {
    let now = SystemTime::now();
    let expires_at = if ttl_secs >= 0 {
        now + Duration::from_secs(ttl_secs as u64)
    } else {
        now - Duration::from_secs((-ttl_secs) as u64)
    };
    let serde_json::Value::Object(map) = data else {
        panic!("records hold objects")
    };
    Record::new(map, now - Duration::from_secs(1), expires_at)
}

fn middleware(store: PostgresStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[11u8; 64][..]))
        .backend("db", store)
        .build()
        .unwrap()
}

#[actix_web::test]
async fn names_are_validated_at_build_time() {
    let pool = pg::pool("postgres://nobody@127.0.0.1:1/none", 1);
    for (schema, table) in [
        ("Public", "s"),
        ("s", "x; DROP TABLE y"),
        ("1s", "t"),
        ("s", ""),
    ] {
        let err = PostgresStore::builder(pool.clone())
            .schema(schema)
            .table(table)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidIdentifier { .. }),
            "{schema}.{table}: {err}"
        );
    }
}

#[actix_web::test]
async fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let (store, schema) = pg::store().await;
    let runs = futures_util::future::join_all((0..5).map(|_| store.migrate())).await;
    assert!(runs.iter().all(Result::is_ok), "{runs:?}");
    let pool = pg::pool(&schema.url, 1);
    let client = pool.get().await.unwrap();
    let columns: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'sessions' ORDER BY ordinal_position",
            &[&schema.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id_hash", "data", "created_at", "expires_at"]);
    assert_eq!(columns[1].1, "jsonb");
    let indexed: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexdef LIKE '%(expires_at)%'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 1, "an index on the expiry column");
}

#[actix_web::test]
async fn the_table_holds_a_hash_of_the_id_never_the_id() {
    let (store, schema) = pg::store().await;
    let c = client(middleware(store)).await;
    c.set("session", "user", json!("ann")).await;
    let id = c.cookie("session").unwrap();
    let pool = pg::pool(&schema.url, 1);
    let client = pool.get().await.unwrap();
    let rows = client
        .query(
            &format!(
                "SELECT id_hash, data::text FROM \"{}\".sessions",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: Vec<u8> = rows[0].get(0);
    let data: String = rows[0].get(1);
    assert_eq!(hash.len(), 32);
    assert!(!hash
        .windows(8)
        .any(|w| id.as_bytes().windows(8).any(|v| v == w)));
    assert!(!data.contains(&id));
    assert_eq!(data, r#"{"user": "ann"}"#);
}

#[actix_web::test]
async fn store_level_writes_are_conditional() {
    let (store, _schema) = pg::store().await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    // An expired row is never loaded, updated or renewed.
    assert_eq!(
        store
            .create(&key_n(1), &record(json!({"a": 1}), -5))
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert_eq!(store.load(&key_n(1), now).await.unwrap(), None);
    let mut changes = ChangeSet::default();
    changes.set("b", json!(2));
    assert_eq!(
        store.update(&key_n(1), &changes, later, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(1), later, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(9), &changes, later, now, None)
            .await
            .unwrap(),
        WriteResult::Missing
    );
    // Create never overwrites.
    store
        .create(&key_n(2), &record(json!({"owner": "ann"}), 60))
        .await
        .unwrap();
    assert_eq!(
        store
            .create(&key_n(2), &record(json!({"owner": "eve"}), 60))
            .await
            .unwrap(),
        WriteResult::Collision
    );
    // A renew onto a taken key changes nothing.
    store
        .create(&key_n(3), &record(json!({"other": true}), 60))
        .await
        .unwrap();
    assert_eq!(
        store
            .renew(&key_n(2), &key_n(3), &changes, later, now, None)
            .await
            .unwrap(),
        WriteResult::Collision
    );
    let kept = store.load(&key_n(2), now).await.unwrap().unwrap();
    assert_eq!(kept.data.get("owner"), Some(&json!("ann")));
    // A real renew moves the data, applies the change and kills the old key.
    assert_eq!(
        store
            .renew(&key_n(2), &key_n(4), &changes, later, now, None)
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert_eq!(store.load(&key_n(2), now).await.unwrap(), None);
    let moved = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(moved.data),
        json!({"owner": "ann", "b": 2})
    );
    // Clear + patch replaces the object; remove drops keys.
    let mut clear = ChangeSet::default();
    clear.clear();
    clear.set("only", json!(true));
    store.update(&key_n(4), &clear, later, now).await.unwrap();
    let mut remove = ChangeSet::default();
    remove.remove("nothing-here");
    remove.set("x", json!(1));
    store.update(&key_n(4), &remove, later, now).await.unwrap();
    let cleared = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(cleared.data),
        json!({"only": true, "x": 1})
    );
}

/// Two barrier-released requests of one visitor that set different keys, 1,000 times.
#[actix_web::test]
async fn one_thousand_parallel_trials_lose_no_update() {
    let (store, _schema) = pg::store().await;
    let c = client(middleware(store)).await;
    let mut lost = 0;
    for trial in 0..1000 {
        c.jar.borrow_mut().clear();
        c.set("session", "trial", json!(trial)).await;
        let a = c.post_json("/session/wait-then-set/a", json!(trial));
        let b = c.post_json("/session/wait-then-set/b", json!(trial));
        let release = async {
            c.gate.wait_loaded(2).await;
            c.gate.release(2);
        };
        let (ra, rb, ()) = tokio::join!(a, b, release);
        assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
        if c.get("/session/entries").await.json() != json!({"trial": trial, "a": trial, "b": trial})
        {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "{lost} of 1000 trials lost an update");
}

#[actix_web::test]
async fn expired_rows_are_deleted_in_bounded_batches() {
    let (store, schema) = pg::store().await;
    let batched = PostgresStore::builder(pg::pool(&schema.url, 2))
        .schema(schema.name.clone())
        .cleanup_batch(100)
        .build()
        .unwrap();
    let pool = pg::pool(&schema.url, 1);
    let client = pool.get().await.unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO \"{}\".sessions (id_hash, data, created_at, expires_at)
                 SELECT sha256(g::text::bytea), '{{}}', now() - interval '2 hours', now() - interval '1 hour'
                 FROM generate_series(1, 2500) g",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap();
    for n in 0..5 {
        store
            .create(&key_n(n), &record(json!({"live": n}), 3600))
            .await
            .unwrap();
    }
    assert_eq!(batched.delete_expired().await.unwrap(), 2500);
    let left: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".sessions", schema.name),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 5, "live sessions survive the clean-up");
    assert_eq!(batched.delete_expired().await.unwrap(), 0);
}

#[actix_web::test]
async fn the_cleanup_task_runs_in_the_background() {
    let (store, _schema) = pg::store().await;
    let now = SystemTime::now();
    let soon = Record::new(Default::default(), now, now + Duration::from_millis(500));
    store.create(&key_n(1), &soon).await.unwrap();
    let task = store.spawn_cleanup(Duration::from_secs(1));
    let gone = eventually(Duration::from_secs(10), || async {
        // Look past expiry: load() hides expired rows, so ask with an early `now`.
        store.load(&key_n(1), now).await.unwrap().is_none()
    })
    .await;
    task.abort();
    assert!(gone.is_some(), "the expired row was never deleted");
}

#[actix_web::test]
async fn two_instances_on_one_database_share_sessions() {
    let (store_a, schema) = pg::store().await;
    let store_b = PostgresStore::builder(pg::pool(&schema.url, 2))
        .schema(schema.name.clone())
        .build()
        .unwrap();
    let a = client(middleware(store_a)).await;
    let b = client(middleware(store_b)).await;
    a.set("session", "cart", json!(["book"])).await;
    b.set_cookie("session", &a.cookie("session").unwrap());
    assert_eq!(b.read("session", "cart").await, Some(json!(["book"])));
    b.set("session", "coupon", json!("X")).await;
    assert_eq!(a.read("session", "coupon").await, Some(json!("X")));
}

#[actix_web::test]
async fn a_database_outage_fails_only_session_routes_and_recovers_by_itself() {
    let cluster = TempCluster::start();
    let (_, schema) = pg::store_on(&cluster.url(), 4).await;
    let store = PostgresStore::builder(pg::pool(&cluster.url(), 4))
        .schema(schema.name.clone())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mw = SessionMiddleware::builder(Key::from(&[11u8; 64][..]))
        .backend("db", store)
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "user", json!("ann")).await;
    let cookie = c.cookie("session").unwrap();

    cluster.stop();
    let read = c.get("/session/get/user").await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(read.body.is_empty() && read.set_cookies.is_empty());
    let write = c.post_json("/session/set/user", json!("eve")).await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(write.set_cookies.is_empty());
    let fresh = c
        .send_raw(
            actix_web::test::TestRequest::post()
                .uri("/session/set/x")
                .set_json(json!(1)),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        fresh.set_cookies.is_empty(),
        "no cookie for a session that was not stored"
    );
    assert_eq!(c.get("/untouched").await.status, StatusCode::OK);

    cluster.resume();
    let recovered = eventually(Duration::from_secs(15), || async {
        c.get("/session/get/user").await.status == StatusCode::OK
    })
    .await;
    assert!(
        recovered.is_some(),
        "the application did not recover after the restart"
    );
    assert_eq!(c.cookie("session").unwrap(), cookie);
    assert_eq!(
        c.read("session", "user").await,
        Some(json!("ann")),
        "the failed write changed nothing"
    );
}

#[actix_web::test]
async fn an_exhausted_pool_fails_the_request_after_the_timeout_instead_of_hanging() {
    let (_, schema) = pg::store().await;
    let pool = pg::pool(&schema.url, 1);
    let store = PostgresStore::builder(pool.clone())
        .schema(schema.name.clone())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let c = client(middleware(store)).await;
    c.set("session", "a", json!(1)).await;
    let held = pool.get().await.unwrap();
    let started = std::time::Instant::now();
    let reply = c.get("/session/get/a").await;
    let waited = started.elapsed();
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        waited >= Duration::from_millis(300),
        "gave up before the timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(10), "hung for {waited:?}");
    drop(held);
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
}

/// A restart while requests keep coming: requests fail fast while the server is down (none
/// hangs past the store timeout), and the application serves the same session again within
/// seconds of the server accepting connections, without losing it.
#[actix_web::test]
async fn a_restart_under_load_recovers_within_seconds_and_loses_nothing() {
    use std::{cell::RefCell, rc::Rc, sync::Arc, time::Instant};

    let cluster = Arc::new(TempCluster::start());
    let (_, schema) = pg::store_on(&cluster.url(), 4).await;
    let timeout = Duration::from_secs(2);
    let store = PostgresStore::builder(pg::pool(&cluster.url(), 4))
        .schema(schema.name.clone())
        .timeout(timeout)
        .build()
        .unwrap();
    let c = client(middleware(store)).await;
    c.set("session", "user", json!("ann")).await;

    let log: Rc<RefCell<Vec<(Instant, Duration, StatusCode)>>> = Rc::default();
    let done = std::cell::Cell::new(false);
    let load = async {
        while !done.get() {
            let started = Instant::now();
            let status = c.get("/session/get/user").await.status;
            log.borrow_mut()
                .push((Instant::now(), started.elapsed(), status));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let control = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let down = cluster.clone();
        tokio::task::spawn_blocking(move || down.stop())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let up = cluster.clone();
        tokio::task::spawn_blocking(move || up.resume())
            .await
            .unwrap();
        let resumed = Instant::now();
        let recovered = eventually(Duration::from_secs(15), || async {
            log.borrow()
                .iter()
                .any(|(at, _, status)| *at > resumed && *status == StatusCode::OK)
        })
        .await;
        done.set(true);
        recovered
    };
    let ((), recovered) = tokio::join!(load, control);
    let log = std::mem::take(&mut *log.borrow_mut());
    let failed = log.iter().filter(|(_, _, s)| *s != StatusCode::OK).count();
    let slowest = log.iter().map(|(_, took, _)| *took).max().unwrap();
    println!(
        "restart under load: {} requests, {failed} failed, slowest {slowest:?}, recovered {recovered:?} after the server came back",
        log.len()
    );
    assert!(failed > 0, "the outage was never observed");
    assert!(
        log.iter()
            .all(|(_, _, s)| *s == StatusCode::OK || *s == StatusCode::INTERNAL_SERVER_ERROR),
        "only successes and opaque failures"
    );
    assert!(
        slowest < timeout + Duration::from_secs(2),
        "a request hung for {slowest:?}"
    );
    let recovered = recovered.expect("no recovery within 15 s of the restart");
    assert!(
        recovered < Duration::from_secs(10),
        "recovery took {recovered:?}"
    );
    assert_eq!(
        c.read("session", "user").await,
        Some(json!("ann")),
        "the session was lost"
    );
}
