//! PostgreSQL backend: schema and its upgrade, atomic change sets under contention, the owner
//! index and the renew grace copy, round trips per operation, expiry clean-up, several
//! instances, and faults on throw-away clusters.

use std::{
    collections::BTreeSet,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix_typed_session::{
    BuildError, ChangeSet, Key, OwnedSession, PostgresStore, Record, SessionMiddleware,
    SessionStore, StatusCode, StorageKey, WriteResult,
};
use actix_typed_session_tests::{
    client,
    pg::{self, eventually, TempCluster},
};
use serde_json::{json, Map};

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

/// Stores an empty session under each of `keys`, live for an hour from `now`; gives that hour.
async fn create_empty(store: &PostgresStore, keys: &[u8], now: SystemTime) -> SystemTime {
    let hour = now + Duration::from_secs(3600);
    for &n in keys {
        store
            .create(&key_n(n), &Record::new(Map::new(), now, hour))
            .await
            .unwrap();
    }
    hour
}

/// A connection of its own holding the row of `key` locked, in an open transaction, until it
/// runs `COMMIT`.
async fn lock_row(
    schema: &pg::TestSchema,
    key: &StorageKey,
) -> actix_typed_session::deadpool_postgres::Object {
    let locker = pg::pool(&schema.url, 1).get().await.unwrap();
    locker.batch_execute("BEGIN").await.unwrap();
    locker
        .execute(
            &format!(
                "SELECT 1 FROM \"{}\".sessions WHERE id_hash = $1 FOR UPDATE",
                schema.name
            ),
            &[&key.as_bytes().as_slice()],
        )
        .await
        .unwrap();
    locker
}

/// Runs the PL/pgSQL `body` (which ends with `RETURN NEW;`) as a trigger named `name` on every
/// update of the test table, `when` (`BEFORE` or `AFTER`) it is applied.
async fn on_update(schema: &pg::TestSchema, when: &str, name: &str, body: &str) {
    let s = &schema.name;
    pg::pool(&schema.url, 1)
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE FUNCTION \"{s}\".{name}() RETURNS trigger LANGUAGE plpgsql AS $$ {body} $$;
             CREATE TRIGGER {name} {when} UPDATE ON \"{s}\".sessions
                 FOR EACH ROW EXECUTE FUNCTION \"{s}\".{name}();"
        ))
        .await
        .unwrap();
}

/// A store on `schema` with its own pool of `pool`, `shared` shared connections and `timeout`.
fn impatient(
    schema: &pg::TestSchema,
    pool: usize,
    shared: usize,
    timeout: Duration,
) -> PostgresStore {
    PostgresStore::builder(pg::pool(&schema.url, pool))
        .schema(schema.name.clone())
        .timeout(timeout)
        .shared_connections(shared)
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
    assert_eq!(
        names,
        [
            "id_hash",
            "data",
            "created_at",
            "expires_at",
            "last_seen",
            "owner",
            "retired",
            "predecessor"
        ]
    );
    assert_eq!(columns[1].1, "jsonb");
    assert_eq!(columns[5].1, "text");
    assert_eq!(columns[6].1, "boolean");
    assert_eq!(columns[7].1, "bytea");
    let indexed: i64 = client
        .query_one(
            // The schema filter first (behind `OFFSET 0`): `indexdef` of another test's index
            // being dropped meanwhile fails with "cache lookup failed".
            "SELECT count(*) FROM (SELECT indexdef FROM pg_indexes WHERE schemaname = $1 OFFSET 0) i
             WHERE indexdef LIKE '%(expires_at)%'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 1, "an index on the expiry column");
    let owner_index: String = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'sessions_owner_idx'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        owner_index.contains("(owner) WHERE (owner IS NOT NULL)"),
        "a partial index on the owned rows: {owner_index}"
    );
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
            .update_returning(&key_n(1), &changes, later, now)
            .await
            .unwrap(),
        (WriteResult::Missing, None)
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
    // `update_returning` gives back exactly what a load right after it reads.
    let mut more = owner_change(Some("zoe"));
    more.remove("only");
    more.set("y", json!([2]));
    let (result, stored) = store
        .update_returning(&key_n(4), &more, later, now)
        .await
        .unwrap();
    assert_eq!(result, WriteResult::Done);
    let stored = stored.expect("PostgreSQL gives the record back");
    assert_eq!(
        Some(&stored),
        store.load(&key_n(4), now).await.unwrap().as_ref()
    );
    assert_eq!(
        serde_json::Value::Object(stored.data),
        json!({"x": 1, "y": [2]})
    );
    assert_eq!(stored.owner.as_deref(), Some("zoe"));
    // Written with an expiry already past: done, but nothing a load would return.
    let (result, stored) = store
        .update_returning(&key_n(4), &ChangeSet::default(), now, now)
        .await
        .unwrap();
    assert_eq!((result, stored), (WriteResult::Done, None));
    assert_eq!(store.load(&key_n(4), now).await.unwrap(), None);
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

/// A write that timed out (its row locked by another transaction) is cancelled at the server:
/// it does not land later, behind the back of the error its request got, and the pool keeps
/// serving.
#[actix_web::test]
async fn a_timed_out_write_is_cancelled_and_never_lands_later() {
    let (store, schema) = pg::store().await;
    let impatient = impatient(&schema, 2, 0, Duration::from_millis(1000));
    let now = SystemTime::now();
    let hour = create_empty(&store, &[1], now).await;
    let lock = lock_row(&schema, &key_n(1)).await;
    let mut late = ChangeSet::default();
    late.set("late", json!(true));
    let err = impatient
        .update(&key_n(1), &late, hour, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("updating"), "{err}");
    // Give the cancel request time to reach the server, then let the lock go.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    lock.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stored = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert!(
        !stored.data.contains_key("late"),
        "the timed-out write landed after its request failed"
    );
    // The impatient store still works (the cancelled connection left its pool).
    let mut next = ChangeSet::default();
    next.set("next", json!(1));
    assert_eq!(
        impatient.update(&key_n(1), &next, hour, now).await.unwrap(),
        WriteResult::Done
    );
}

/// A write sent to a backend that stalls (SIGSTOP) together with its postmaster, so that the
/// cancel request sent on the timeout cannot reach it either, times out; the same session is
/// then written through another connection. When the backend runs again (before the postmaster,
/// so that no cancel can come first), the stale statement runs, past its deadline: the database
/// refuses it, and the newer write stays.
#[actix_web::test]
async fn a_timed_out_write_held_up_by_a_frozen_server_never_lands_over_newer_writes() {
    let cluster = TempCluster::start();
    let (setup, schema) = pg::store_on(&cluster.url(), 1).await;
    let now = SystemTime::now();
    let hour = create_empty(&setup, &[1], now).await;
    let frozen_pool = pg::pool(&cluster.url(), 1);
    let frozen = PostgresStore::builder(frozen_pool.clone())
        .schema(schema.name.clone())
        .timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    // Opened before the freeze: the postmaster accepts no new connection during it.
    let healthy = impatient(&schema, 1, 0, Duration::from_secs(5));
    healthy.load(&key_n(1), now).await.unwrap();
    let backend: i32 = {
        let client = frozen_pool.get().await.unwrap();
        client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0)
    };
    let postmaster = cluster.postmaster_pid();
    let set_n = |n: u64| {
        let mut changes = ChangeSet::default();
        changes.set("n", json!(n));
        changes
    };
    // Prepares the statement on the connection that will freeze, so that the update itself
    // (not its preparation) is what waits there.
    assert_eq!(
        frozen
            .update(&key_n(1), &set_n(0), hour, now)
            .await
            .unwrap(),
        WriteResult::Done
    );

    pg::signal(postmaster, "STOP");
    pg::signal(backend as u32, "STOP");
    let stale = frozen.update(&key_n(1), &set_n(1), hour, now).await;
    assert!(stale.is_err(), "the write to the frozen backend timed out");
    assert_eq!(
        healthy
            .update(&key_n(1), &set_n(2), hour, now)
            .await
            .unwrap(),
        WriteResult::Done
    );
    pg::signal(backend as u32, "CONT");
    // The stale statement runs now, if at all; then the postmaster takes the cancel request.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    pg::signal(postmaster, "CONT");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stored = healthy.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(
        stored.data.get("n"),
        Some(&json!(2)),
        "the timed-out write landed over a newer one"
    );
}

/// On shared connections, a write waiting behind a row lock fails at the server just before its
/// timeout (the connection's `lock_timeout`) and never lands, the next write of the same session
/// succeeds, and the other keys of that connection are served. (Statements that time out at
/// the client, and the drain, are the next tests'.)
#[actix_web::test]
async fn on_a_shared_connection_a_write_behind_a_row_lock_fails_at_the_server_and_never_lands() {
    let (store, schema) = pg::store().await;
    let impatient = impatient(&schema, 3, 1, Duration::from_millis(1500));
    let now = SystemTime::now();
    let hour = create_empty(&store, &[1, 2], now).await;
    let lock = lock_row(&schema, &key_n(1)).await;

    let mut late = ChangeSet::default();
    late.set("late", json!(true));
    let err = impatient
        .update(&key_n(1), &late, hour, now)
        .await
        .unwrap_err();
    // Checked once the lock is gone: a panic with it held would block the schema's drop.
    let mut causes = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        causes.push_str(&format!(": {cause}"));
        source = cause.source();
    }

    // The next write of the same session is issued while the lock is still held, and the lock
    // goes once it waits.
    let mut next = ChangeSet::default();
    next.set("next", json!(1));
    let release = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        lock.batch_execute("COMMIT").await.unwrap();
    };
    let key = key_n(1);
    let (written, ()) = tokio::join!(impatient.update(&key, &next, hour, now), release);
    assert!(
        causes.contains("updating") && causes.contains("lock timeout"),
        "failed at the server, not by the client's timeout: {causes}"
    );
    assert_eq!(written.unwrap(), WriteResult::Done);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(stored.data.get("next"), Some(&json!(1)));
    assert!(
        !stored.data.contains_key("late"),
        "the timed-out write landed after its request failed"
    );
    // Another key of the same connection.
    let mut other = ChangeSet::default();
    other.set("other", json!(2));
    assert_eq!(
        impatient
            .update(&key_n(2), &other, hour, now)
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert_eq!(
        impatient
            .load(&key_n(2), now)
            .await
            .unwrap()
            .unwrap()
            .data
            .get("other"),
        Some(&json!(2))
    );
}

/// A write that timed out queued behind a statement its cancel cannot stop (a trigger that
/// ignores cancels for 2.2 s) still lands, but before the next write of its session, which
/// waits for the drain of the connection instead of running at once on a new one.
#[actix_web::test]
async fn on_a_shared_connection_the_next_write_waits_for_a_timed_out_one_that_cannot_be_cancelled()
{
    let (store, schema) = pg::store().await;
    on_update(
        &schema,
        "BEFORE",
        "stubborn",
        "DECLARE until timestamptz := clock_timestamp() + interval '2200 milliseconds';
         BEGIN
             IF NEW.data->>'v' = 'stuck' THEN
                 WHILE clock_timestamp() < until LOOP
                     BEGIN PERFORM pg_sleep(0.02);
                     EXCEPTION WHEN query_canceled THEN NULL; END;
                 END LOOP;
             END IF;
             RETURN NEW;
         END",
    )
    .await;
    let impatient = impatient(&schema, 3, 1, Duration::from_millis(1500));
    let now = SystemTime::now();
    let hour = create_empty(&store, &[1, 2], now).await;
    // Opens the shared connection, so that the two writes below go out in the order polled.
    assert!(impatient.load(&key_n(1), now).await.unwrap().is_some());
    let mut stuck = ChangeSet::default();
    stuck.set("v", json!("stuck"));
    let mut late = ChangeSet::default();
    late.set("v", json!("late"));
    late.set("late", json!(true));
    let (one, two) = (key_n(1), key_n(2));
    let sent = std::time::Instant::now();
    let (stuck_result, late_result) = tokio::join!(
        impatient.update(&two, &stuck, hour, now),
        impatient.update(&one, &late, hour, now)
    );
    for err in [stuck_result.unwrap_err(), late_result.unwrap_err()] {
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause.as_deref().is_some_and(|c| c.contains("timed out")),
            "{err}: {cause:?}"
        );
    }
    let mut next = ChangeSet::default();
    next.set("v", json!("next"));
    assert_eq!(
        impatient.update(&key_n(1), &next, hour, now).await.unwrap(),
        WriteResult::Done
    );
    // By 3 s after the two writes went out, the stubborn statement (2.2 s) is over and the late
    // write, unless a cancel caught it, has landed: also when the next write did not wait.
    tokio::time::sleep_until((sent + Duration::from_secs(3)).into()).await;
    let stored = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(
        stored.data.get("v"),
        Some(&json!("next")),
        "the timed-out write landed after the next one"
    );
}

/// Many timeouts at once on shared connections (statements that sleep 0–60 ms against a 40 ms
/// timeout, 120 of them over 12 sessions, issued together): every operation ends, and the store
/// serves every session again once the statements are quick: no slot stays blocked, no drain
/// is left behind.
#[actix_web::test]
async fn shared_connections_survive_a_storm_of_timeouts() {
    let (store, schema) = pg::store().await;
    on_update(
        &schema,
        "BEFORE",
        "slow",
        "BEGIN
             IF NEW.data ? 'slow' THEN PERFORM pg_sleep(random() * 0.06); END IF;
             RETURN NEW;
         END",
    )
    .await;
    let impatient = impatient(&schema, 4, 2, Duration::from_millis(40));
    let now = SystemTime::now();
    let keys: Vec<u8> = (0..12).collect();
    let hour = create_empty(&store, &keys, now).await;
    let started = std::time::Instant::now();
    let writes = (0..120).map(|i| {
        let mut changes = ChangeSet::default();
        changes.set("slow", json!(i));
        let key = key_n(keys[i % keys.len()]);
        let impatient = &impatient;
        async move { impatient.update(&key, &changes, hour, now).await }
    });
    let results = futures_util::future::join_all(writes).await;
    let took = started.elapsed();
    let timed_out = results.iter().filter(|r| r.is_err()).count();
    println!("storm: {timed_out} of 120 timed out, all answered in {took:?}");
    assert!(timed_out > 0, "the storm never timed out");
    assert!(took < Duration::from_secs(20), "answered in {took:?}");
    // Quick statements again (a write that removes the slow key does not sleep): every session
    // is served once the drains are over (a slot left blocked would time out here for good).
    let served = eventually(Duration::from_secs(15), || async {
        let mut all = true;
        for &n in &keys {
            let mut ping = ChangeSet::default();
            ping.remove("slow");
            ping.set("ping", json!(true));
            all &= matches!(
                impatient.update(&key_n(n), &ping, hour, now).await,
                Ok(WriteResult::Done)
            );
        }
        all
    })
    .await;
    assert!(
        served.is_some(),
        "a shared connection's sessions were not served again"
    );
}

/// A timeout too long to add to the clock means none, on shared connections as on pooled ones.
#[actix_web::test]
async fn an_endless_timeout_works_on_shared_connections() {
    let (_, schema) = pg::store().await;
    for shared in [0, 1] {
        let store = impatient(&schema, 2, shared, Duration::MAX);
        let now = SystemTime::now();
        create_empty(&store, &[shared as u8 + 1], now).await;
        assert!(store
            .load(&key_n(shared as u8 + 1), now)
            .await
            .unwrap()
            .is_some());
    }
}

#[actix_web::test]
async fn shared_connections_leave_room_in_the_pool() {
    let url = "postgres://nobody@127.0.0.1:1/none";
    let err = PostgresStore::builder(pg::pool(url, 4))
        .shared_connections(4)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, BuildError::PoolTooSmall { shared: 4, pool: 4 }),
        "{err}"
    );
    let shared = |pool: usize| {
        let store = PostgresStore::builder(pg::pool(url, pool)).build().unwrap();
        format!("{store:?}")
    };
    for pool in [32, 8, 4, 1] {
        let debug = shared(pool);
        assert!(
            debug.contains("shared_connections: 0"),
            "off by default, pool of {pool}: {debug}"
        );
    }
    let on = PostgresStore::builder(pg::pool(url, 8))
        .shared_connections(4)
        .build()
        .unwrap();
    assert!(format!("{on:?}").contains("shared_connections: 4"));
    let off = PostgresStore::builder(pg::pool(url, 1))
        .shared_connections(0)
        .build()
        .unwrap();
    assert!(format!("{off:?}").contains("shared_connections: 0"));
}

/// With shared connections, every statement of one session goes through one connection (a
/// trigger logs the backend of each update), the keys spread over all of them, and writes issued
/// one after another without waiting are applied in that order.
#[actix_web::test]
async fn a_shared_connection_serves_each_session_so_its_writes_stay_in_order() {
    let (store, schema) = pg::shared_store().await;
    let admin = pg::pool(&schema.url, 1).get().await.unwrap();
    let s = &schema.name;
    admin
        .batch_execute(&format!(
            "CREATE TABLE \"{s}\".writers (id_hash bytea, pid int)"
        ))
        .await
        .unwrap();
    on_update(
        &schema,
        "AFTER",
        "log_writer",
        &format!(
            "BEGIN INSERT INTO \"{s}\".writers VALUES (NEW.id_hash, pg_backend_pid());
             RETURN NEW; END"
        ),
    )
    .await;
    let now = SystemTime::now();
    let hour = now + Duration::from_secs(3600);
    let keys: Vec<StorageKey> = (0..5).map(key_n).collect();
    for key in &keys {
        store
            .create(key, &Record::new(Map::new(), now, hour))
            .await
            .unwrap();
        assert!(store.load(key, now).await.unwrap().is_some());
    }
    // Issued in this order, the keys interleaved (each first poll sends its statement on the
    // connection the loads opened), without waiting for each other's answer.
    let mut writes: Vec<_> = (0..150)
        .map(|i| {
            let mut changes = ChangeSet::default();
            changes.set("n", json!(i));
            changes.set(format!("k{i}"), json!(i));
            let (store, key) = (&store, &keys[i % keys.len()]);
            Box::pin(async move { store.update(key, &changes, hour, now).await })
        })
        .collect();
    for write in &mut writes {
        assert!(futures_util::FutureExt::now_or_never(write.as_mut()).is_none());
    }
    let results = futures_util::future::join_all(writes).await;
    assert!(results
        .iter()
        .all(|r| *r.as_ref().unwrap() == WriteResult::Done));
    for (k, key) in keys.iter().enumerate() {
        let stored = store.load(key, now).await.unwrap().unwrap();
        assert_eq!(
            stored.data.get("n"),
            Some(&json!(145 + k)),
            "the last write of key {k} wins"
        );
        assert_eq!(stored.data.len(), 31, "every write's own key is there");
    }
    let per_key: Vec<(Vec<u8>, i64)> = admin
        .query(
            &format!("SELECT id_hash, count(DISTINCT pid) FROM \"{s}\".writers GROUP BY id_hash"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(per_key.len(), keys.len());
    assert!(
        per_key.iter().all(|(_, backends)| *backends == 1),
        "one session's writes went through several connections: {per_key:?}"
    );
    let backends: i64 = admin
        .query_one(
            &format!("SELECT count(DISTINCT pid) FROM \"{s}\".writers"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(backends, 2, "the keys use both shared connections");
}

/// A restart while requests keep coming: requests fail fast while the server is down (none
/// hangs past the store timeout), and the application serves the same session again within
/// seconds of the server accepting connections, without losing it.
#[actix_web::test]
async fn a_restart_under_load_recovers_within_seconds_and_loses_nothing() {
    restart_under_load(0).await;
}

/// The same with shared connections: the closed ones are replaced.
#[actix_web::test]
async fn with_shared_connections_a_restart_under_load_recovers_within_seconds() {
    restart_under_load(2).await;
}

async fn restart_under_load(shared_connections: usize) {
    use std::{cell::RefCell, rc::Rc, sync::Arc, time::Instant};

    let cluster = Arc::new(TempCluster::start());
    let (_, schema) = pg::store_on(&cluster.url(), 4).await;
    let timeout = Duration::from_secs(2);
    let store = PostgresStore::builder(pg::pool(&cluster.url(), 4))
        .schema(schema.name.clone())
        .timeout(timeout)
        .shared_connections(shared_connections)
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

/// After a clean restart (`pg_ctl stop -m fast`, then start), the pooled connections the server
/// ended are not what requests fail on: every request after the restart is served, loads first
/// (several at once, so that each pooled connection is met), then writes.
#[actix_web::test]
async fn after_a_clean_restart_no_request_fails_on_a_connection_the_server_ended() {
    after_a_clean_restart(0).await;
}

/// The same with shared connections: the ended ones are replaced before they are used.
#[actix_web::test]
async fn with_shared_connections_after_a_clean_restart_no_request_fails() {
    after_a_clean_restart(2).await;
}

async fn after_a_clean_restart(shared_connections: usize) {
    let cluster = TempCluster::start();
    let (_, schema) = pg::store_on(&cluster.url(), 1).await;
    let pool = pg::pool(&cluster.url(), 4);
    let store = PostgresStore::builder(pool.clone())
        .schema(schema.name.clone())
        .timeout(Duration::from_secs(5))
        .shared_connections(shared_connections)
        .build()
        .unwrap();
    let c = client(middleware(store)).await;
    let sessions = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"];
    for (n, s) in sessions.iter().enumerate() {
        c.set(s, "n", json!(n)).await;
    }
    let read_all = || {
        futures_util::future::join_all(sessions.iter().map(|s| {
            let c = &c;
            async move { c.get(&format!("/{s}/get/n")).await }
        }))
    };
    assert!(read_all().await.iter().all(|r| r.status == StatusCode::OK));
    if shared_connections == 0 {
        assert_eq!(pool.status().size, 4, "every pooled connection was opened");
    }

    cluster.restart();
    for (n, reply) in read_all().await.iter().enumerate() {
        assert_eq!(reply.status, StatusCode::OK, "load {n} after the restart");
        assert_eq!(reply.json(), json!(n));
    }
    for (n, s) in sessions.iter().enumerate() {
        c.set(s, "n", json!(n + 10)).await;
    }
    for (n, s) in sessions.iter().enumerate() {
        assert_eq!(c.read(s, "n").await, Some(json!(n + 10)));
    }
}

// ---- Owner index, renew grace, last_seen --------------------------------------------------

/// `t` cut to whole seconds, so that it survives the column's microsecond precision unchanged.
fn whole_secs(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap().as_secs())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn owned(
    data: serde_json::Value,
    created_at: SystemTime,
    expires_at: SystemTime,
    owner: Option<&str>,
) -> Record {
    let serde_json::Value::Object(map) = data else {
        panic!("records hold objects")
    };
    Record::new(map, created_at, expires_at).with_owner(owner.map(str::to_owned))
}

fn owner_change(owner: Option<&str>) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set_owner(owner.map(str::to_owned));
    changes
}

fn listed_keys(listed: &[OwnedSession]) -> BTreeSet<StorageKey> {
    listed.iter().map(|s| s.key).collect()
}

fn keys_of(keys: &[u8]) -> BTreeSet<StorageKey> {
    keys.iter().map(|n| key_n(*n)).collect()
}

async fn listed(store: &PostgresStore, owner: &str, now: SystemTime) -> BTreeSet<StorageKey> {
    listed_keys(&store.list_owned(owner, now).await.unwrap())
}

#[actix_web::test]
async fn the_owner_is_stored_listed_moved_and_cleared_with_the_session() {
    let (store, _schema) = pg::store().await;
    assert!(store.indexes_owners());
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    store
        .create(&key_n(1), &owned(json!({"a": 1}), now, hour, Some("alice")))
        .await
        .unwrap();
    store
        .create(&key_n(2), &owned(json!({}), now, hour, None))
        .await
        .unwrap();
    store
        .create(&key_n(3), &owned(json!({}), now, hour, Some("bob")))
        .await
        .unwrap();
    let loaded = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(loaded.owner.as_deref(), Some("alice"));
    assert_eq!((loaded.last_seen, loaded.retired), (now, false));
    let alice = store.list_owned("alice", now).await.unwrap();
    assert_eq!(alice, [OwnedSession::new(key_n(1), now, now, hour)]);
    assert!(listed(&store, "nobody", now).await.is_empty());

    // An update ties a session to an owner, in the same statement as its data.
    let later = now + secs(10);
    let mut changes = owner_change(Some("alice"));
    changes.set("user", json!("alice"));
    assert_eq!(
        store
            .update(&key_n(2), &changes, later + secs(3600), later)
            .await
            .unwrap(),
        WriteResult::Done
    );
    let two = store.load(&key_n(2), later).await.unwrap().unwrap();
    assert_eq!(two.owner.as_deref(), Some("alice"));
    assert_eq!(two.data.get("user"), Some(&json!("alice")));
    assert_eq!((two.last_seen, two.expires_at), (later, later + secs(3600)));
    assert_eq!(listed(&store, "alice", later).await, keys_of(&[1, 2]));

    // Moved to another owner.
    store
        .update(&key_n(2), &owner_change(Some("bob")), hour, later)
        .await
        .unwrap();
    assert_eq!(listed(&store, "alice", later).await, keys_of(&[1]));
    assert_eq!(listed(&store, "bob", later).await, keys_of(&[2, 3]));

    // A change set that does not mention the owner keeps it.
    let mut data_only = ChangeSet::default();
    data_only.set("cart", json!(["book"]));
    store
        .update(&key_n(2), &data_only, hour, later)
        .await
        .unwrap();
    assert_eq!(
        store
            .load(&key_n(2), later)
            .await
            .unwrap()
            .unwrap()
            .owner
            .as_deref(),
        Some("bob")
    );

    // Cleared.
    store
        .update(&key_n(2), &owner_change(None), hour, later)
        .await
        .unwrap();
    assert_eq!(
        store.load(&key_n(2), later).await.unwrap().unwrap().owner,
        None
    );
    assert_eq!(listed(&store, "bob", later).await, keys_of(&[3]));

    // The idle refresh moves last_seen, and the listing shows it.
    let touched = now + secs(20);
    store
        .touch(&key_n(1), touched + secs(3600), touched)
        .await
        .unwrap();
    let alice = store.list_owned("alice", touched).await.unwrap();
    assert_eq!(
        alice,
        [OwnedSession::new(
            key_n(1),
            now,
            touched,
            touched + secs(3600)
        )]
    );

    // Expired sessions are not listed.
    store
        .create(
            &key_n(4),
            &owned(json!({}), now - secs(100), now - secs(1), Some("alice")),
        )
        .await
        .unwrap();
    store
        .create(
            &key_n(5),
            &owned(json!({}), now, now + secs(30), Some("alice")),
        )
        .await
        .unwrap();
    assert_eq!(listed(&store, "alice", now).await, keys_of(&[1, 5]));
    assert_eq!(listed(&store, "alice", now + secs(30)).await, keys_of(&[1]));
}

#[actix_web::test]
async fn delete_owned_ends_only_a_session_of_that_owner() {
    let (store, _schema) = pg::store().await;
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    store
        .create(&key_n(1), &owned(json!({}), now, hour, Some("alice")))
        .await
        .unwrap();
    store
        .create(&key_n(2), &owned(json!({}), now, hour, None))
        .await
        .unwrap();
    assert!(!store.delete_owned("bob", &key_n(1)).await.unwrap());
    assert!(!store.delete_owned("alice", &key_n(2)).await.unwrap());
    assert!(!store.delete_owned("alice", &key_n(9)).await.unwrap());
    assert!(store.load(&key_n(1), now).await.unwrap().is_some());
    assert!(store.load(&key_n(2), now).await.unwrap().is_some());
    assert!(store.delete_owned("alice", &key_n(1)).await.unwrap());
    assert!(store.load(&key_n(1), now).await.unwrap().is_none());
    assert!(!store.delete_owned("alice", &key_n(1)).await.unwrap());

    // A retired copy is out of the index: not the owner's to end.
    store
        .create(&key_n(3), &owned(json!({}), now, hour, Some("alice")))
        .await
        .unwrap();
    store
        .renew(
            &key_n(3),
            &key_n(4),
            &ChangeSet::default(),
            hour,
            now,
            Some(now + secs(5)),
        )
        .await
        .unwrap();
    assert!(!store.delete_owned("alice", &key_n(3)).await.unwrap());
    assert!(store.load(&key_n(3), now).await.unwrap().unwrap().retired);
    assert!(store.delete_owned("alice", &key_n(4)).await.unwrap());
}

#[actix_web::test]
async fn delete_all_owned_ends_every_session_of_the_owner_but_the_one_kept() {
    let (store, _schema) = pg::store().await;
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    for (n, owner) in [(1, "alice"), (2, "alice"), (3, "alice"), (4, "bob")] {
        store
            .create(&key_n(n), &owned(json!({}), now, hour, Some(owner)))
            .await
            .unwrap();
    }
    store
        .create(&key_n(5), &owned(json!({}), now, hour, None))
        .await
        .unwrap();
    let deleted = store
        .delete_all_owned("alice", Some(&key_n(2)))
        .await
        .unwrap();
    assert_eq!(deleted.len(), 2);
    assert_eq!(
        deleted.into_iter().collect::<BTreeSet<_>>(),
        keys_of(&[1, 3])
    );
    assert_eq!(listed(&store, "alice", now).await, keys_of(&[2]));
    for n in [1, 3] {
        assert!(store.load(&key_n(n), now).await.unwrap().is_none());
    }
    for n in [2, 4, 5] {
        assert!(store.load(&key_n(n), now).await.unwrap().is_some());
    }
    assert_eq!(
        store.delete_all_owned("alice", None).await.unwrap(),
        [key_n(2)]
    );
    assert!(store
        .delete_all_owned("alice", None)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .delete_all_owned("nobody", Some(&key_n(4)))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(listed(&store, "bob", now).await, keys_of(&[4]));
    assert!(store.load(&key_n(5), now).await.unwrap().is_some());
}

/// "End all my other sessions" while one of them is being renewed on another device: the renewed
/// session must not escape. The renew's transaction is played by hand and held open, so the
/// `DELETE` of `delete_all_owned` has to wait for it.
#[actix_web::test]
async fn delete_all_owned_does_not_miss_a_session_renewed_meanwhile() {
    let (store, schema) = pg::store().await;
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    for n in [1, 2] {
        store
            .create(&key_n(n), &owned(json!({}), now, hour, Some("alice")))
            .await
            .unwrap();
    }
    let t = format!("\"{}\".sessions", schema.name);
    let pool = pg::pool(&schema.url, 1);
    let mut client = pool.get().await.unwrap();
    let renew = client.transaction().await.unwrap();
    renew
        .execute(
            &format!("UPDATE {t} SET retired = true, expires_at = $2 WHERE id_hash = $1"),
            &[&key_n(2).as_bytes().as_slice(), &(now + secs(5))],
        )
        .await
        .unwrap();
    renew
        .execute(
            &format!(
                "INSERT INTO {t} (id_hash, data, created_at, expires_at, last_seen, owner)
                 VALUES ($1, '{{}}', $2, $3, $2, 'alice')"
            ),
            &[&key_n(3).as_bytes().as_slice(), &now, &hour],
        )
        .await
        .unwrap();
    let keep = key_n(1);
    let ending = store.delete_all_owned("alice", Some(&keep));
    let committing = async {
        // Long enough for the DELETE to reach the row the renew holds.
        tokio::time::sleep(Duration::from_millis(300)).await;
        renew.commit().await.unwrap();
    };
    let (deleted, ()) = tokio::join!(ending, committing);
    assert_eq!(deleted.unwrap(), [key_n(3)], "the renewed session escaped");
    assert_eq!(listed(&store, "alice", now).await, keys_of(&[1]));
    assert!(store.load(&key_n(3), now).await.unwrap().is_none());
    // The retired copy of the renewed session goes too: ending everywhere leaves no old id
    // readable for the rest of its grace window.
    assert!(store.load(&key_n(2), now).await.unwrap().is_none());
}

#[actix_web::test]
async fn renew_with_a_grace_window_keeps_a_retired_read_only_copy() {
    let (store, schema) = pg::store().await;
    let created = whole_secs(SystemTime::now()) - secs(60);
    let now = created + secs(60);
    let hour = now + secs(3600);
    let until = now + secs(5);
    store
        .create(
            &key_n(1),
            &owned(json!({"a": 1}), created, hour, Some("alice")),
        )
        .await
        .unwrap();
    let mut changes = owner_change(Some("bob"));
    changes.set("b", json!(2));
    let new_expiry = now + secs(1800);
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(2), &changes, new_expiry, now, Some(until))
            .await
            .unwrap(),
        WriteResult::Done
    );

    // The old key reads the session as it was before the renew, retired.
    let old = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert!(old.retired);
    assert_eq!(serde_json::Value::Object(old.data.clone()), json!({"a": 1}));
    assert_eq!(old.owner.as_deref(), Some("alice"));
    assert_eq!((old.created_at, old.last_seen), (created, created));
    assert_eq!(old.expires_at, until);
    // The new key holds the changed session.
    let new = store.load(&key_n(2), now).await.unwrap().unwrap();
    assert!(!new.retired);
    assert_eq!(serde_json::Value::Object(new.data), json!({"a": 1, "b": 2}));
    assert_eq!(new.owner.as_deref(), Some("bob"));
    assert_eq!(
        (new.created_at, new.last_seen, new.expires_at),
        (created, now, new_expiry)
    );

    // The copy is read-only.
    let mut write = ChangeSet::default();
    write.set("c", json!(3));
    assert_eq!(
        store.update(&key_n(1), &write, hour, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store
            .update(&key_n(1), &owner_change(Some("eve")), hour, now)
            .await
            .unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(1), hour, now).await.unwrap(),
        WriteResult::Missing
    );
    for retire_until in [None, Some(until)] {
        assert_eq!(
            store
                .renew(&key_n(1), &key_n(3), &write, hour, now, retire_until)
                .await
                .unwrap(),
            WriteResult::Missing
        );
    }
    assert!(store.load(&key_n(3), now).await.unwrap().is_none());
    assert_eq!(store.load(&key_n(1), now).await.unwrap().unwrap(), old);

    // It is in no owner's list, not even its own owner's.
    assert!(listed(&store, "alice", now).await.is_empty());
    assert_eq!(listed(&store, "bob", now).await, keys_of(&[2]));

    // It expires at the end of the grace window...
    assert!(store
        .load(&key_n(1), until - Duration::from_millis(1))
        .await
        .unwrap()
        .is_some());
    assert!(store.load(&key_n(1), until).await.unwrap().is_none());
    assert!(store.load(&key_n(2), until).await.unwrap().is_some());

    // ...or at its own deadline, if that comes first.
    store
        .create(&key_n(4), &owned(json!({}), now, now + secs(2), None))
        .await
        .unwrap();
    store
        .renew(
            &key_n(4),
            &key_n(5),
            &ChangeSet::default(),
            hour,
            now,
            Some(now + secs(30)),
        )
        .await
        .unwrap();
    let short = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert!(short.retired);
    assert_eq!(short.expires_at, now + secs(2));

    // A delete ends a retired copy too.
    store.delete(&key_n(4)).await.unwrap();
    assert!(store.load(&key_n(4), now).await.unwrap().is_none());

    // The clean-up removes expired copies like any expired row.
    let rows = |at: &'static str| {
        let (url, name) = (schema.url.clone(), schema.name.clone());
        async move {
            let pool = pg::pool(&url, 1);
            let client = pool.get().await.unwrap();
            let n: i64 = client
                .query_one(
                    &format!("SELECT count(*) FROM \"{name}\".sessions WHERE {at}"),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert_eq!(rows("retired").await, 1);
    store
        .create(
            &key_n(6),
            &owned(json!({}), created, created + secs(1), Some("bob")),
        )
        .await
        .unwrap();
    store
        .renew(
            &key_n(6),
            &key_n(7),
            &ChangeSet::default(),
            hour,
            created,
            Some(created + secs(1)),
        )
        .await
        .unwrap();
    assert_eq!(rows("retired").await, 2);
    store.delete_expired().await.unwrap();
    assert_eq!(rows("retired").await, 1, "the expired copy is gone");
    assert_eq!(rows("owner IS NOT NULL").await, 3);
}

#[actix_web::test]
async fn renew_without_a_grace_window_deletes_the_old_key_and_carries_the_owner() {
    let (store, _schema) = pg::store().await;
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    store
        .create(&key_n(1), &owned(json!({"a": 1}), now, hour, Some("alice")))
        .await
        .unwrap();
    let later = now + secs(7);
    assert_eq!(
        store
            .renew(
                &key_n(1),
                &key_n(2),
                &ChangeSet::default(),
                hour,
                later,
                None
            )
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert!(store.load(&key_n(1), now).await.unwrap().is_none());
    let moved = store.load(&key_n(2), later).await.unwrap().unwrap();
    assert_eq!(moved.owner.as_deref(), Some("alice"));
    assert_eq!(moved.last_seen, later);
    assert_eq!(
        store.list_owned("alice", later).await.unwrap(),
        [OwnedSession::new(key_n(2), now, later, hour)]
    );
}

#[actix_web::test]
async fn a_renew_onto_a_taken_key_leaves_the_old_row_live_and_writable() {
    let (store, _schema) = pg::store().await;
    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    store
        .create(&key_n(1), &owned(json!({"a": 1}), now, hour, Some("alice")))
        .await
        .unwrap();
    store
        .create(&key_n(2), &owned(json!({}), now, hour, None))
        .await
        .unwrap();
    let before = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(
        store
            .renew(
                &key_n(1),
                &key_n(2),
                &owner_change(None),
                hour,
                now,
                Some(now + secs(5)),
            )
            .await
            .unwrap(),
        WriteResult::Collision
    );
    assert_eq!(store.load(&key_n(1), now).await.unwrap().unwrap(), before);
    assert_eq!(listed(&store, "alice", now).await, keys_of(&[1]));
    assert_eq!(
        store.touch(&key_n(1), hour, now).await.unwrap(),
        WriteResult::Done
    );
}

/// The shape of the table before the owner and grace columns were added.
const PREVIOUS_SCHEMA: &str = "
    CREATE TABLE {t} (
        id_hash bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
        data jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX sessions_expires_at_idx ON {t} (expires_at);";

#[actix_web::test]
async fn migrate_upgrades_a_table_of_the_previous_schema_and_keeps_its_rows() {
    let schema = pg::TestSchema::new(&pg::database_url());
    let pool = pg::pool(&schema.url, 1);
    let client = pool.get().await.unwrap();
    let t = format!("\"{}\".sessions", schema.name);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{}\"; {}",
            schema.name,
            PREVIOUS_SCHEMA.replace("{t}", &t)
        ))
        .await
        .unwrap();
    let created = whole_secs(SystemTime::now());
    let expires = created + secs(3600);
    client
        .execute(
            &format!(
                "INSERT INTO {t} (id_hash, data, created_at, expires_at) VALUES ($1, $2, $3, $4)"
            ),
            &[
                &key_n(1).as_bytes().as_slice(),
                &tokio_postgres::types::Json(json!({"user": "ann"})),
                &created,
                &expires,
            ],
        )
        .await
        .unwrap();

    let store = PostgresStore::builder(pg::pool(&schema.url, 2))
        .schema(schema.name.clone())
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    let old = store.load(&key_n(1), created).await.unwrap().unwrap();
    assert_eq!(serde_json::Value::Object(old.data), json!({"user": "ann"}));
    assert_eq!(
        (old.created_at, old.expires_at, old.last_seen),
        (created, expires, created),
        "a row from before the upgrade reads its creation as its last write"
    );
    assert_eq!((old.owner, old.retired), (None, false));

    // The upgraded row takes every new write.
    let now = created + secs(30);
    store
        .update(&key_n(1), &owner_change(Some("ann")), expires, now)
        .await
        .unwrap();
    assert_eq!(
        store.list_owned("ann", now).await.unwrap(),
        [OwnedSession::new(key_n(1), created, now, expires)]
    );
    store
        .renew(
            &key_n(1),
            &key_n(2),
            &ChangeSet::default(),
            expires,
            now,
            Some(now + secs(5)),
        )
        .await
        .unwrap();
    assert!(store.load(&key_n(1), now).await.unwrap().unwrap().retired);
    assert_eq!(listed(&store, "ann", now).await, keys_of(&[2]));

    // An instance still running the previous version during a rolling deploy can still insert.
    client
        .execute(
            &format!(
                "INSERT INTO {t} (id_hash, data, created_at, expires_at) VALUES ($1, '{{}}', $2, $3)"
            ),
            &[&key_n(3).as_bytes().as_slice(), &created, &expires],
        )
        .await
        .unwrap();
    let legacy = store.load(&key_n(3), now).await.unwrap().unwrap();
    assert_eq!((legacy.last_seen, legacy.retired), (created, false));

    let indexes: Vec<String> = client
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname",
            &[&schema.name],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexes,
        [
            "sessions_expires_at_idx",
            "sessions_owner_idx",
            "sessions_pkey"
        ]
    );
}

#[actix_web::test]
async fn migrate_on_an_up_to_date_table_does_not_wait_for_open_readers() {
    let (store, schema) = pg::store().await;
    let pool = pg::pool(&schema.url, 1);
    let mut client = pool.get().await.unwrap();
    let reader = client.transaction().await.unwrap();
    reader
        .query(
            &format!("SELECT count(*) FROM \"{}\".sessions", schema.name),
            &[],
        )
        .await
        .unwrap();
    // An ALTER TABLE would queue behind the reader (and every load behind it).
    let quick = PostgresStore::builder(pg::pool(&schema.url, 1))
        .schema(schema.name.clone())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let migrated = quick.migrate().await;
    // End the reader and the migration's connection before any assertion: a panic with either
    // open would block the schema's drop.
    reader.rollback().await.unwrap();
    drop(quick);
    tokio::time::sleep(Duration::from_millis(200)).await;
    migrated.unwrap();
    drop(store);
}

#[actix_web::test]
async fn owner_queries_can_use_the_partial_owner_index() {
    let (_store, schema) = pg::store().await;
    let pool = pg::pool(&schema.url, 1);
    let client = pool.get().await.unwrap();
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    let t = format!("\"{}\".sessions", schema.name);
    for query in [
        format!("SELECT id_hash FROM {t} WHERE owner = 'x' AND NOT retired AND expires_at > now()"),
        format!("DELETE FROM {t} WHERE owner = 'x' AND id_hash IS DISTINCT FROM NULL"),
    ] {
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {query}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|line| line.contains("sessions_owner_idx")),
            "{query}: {plan:#?}"
        );
    }
}

// ---- Round trips ---------------------------------------------------------------------------

/// A TCP proxy in front of the test server that counts the client's round trips: each `Sync`
/// (end of an extended-protocol query) and each simple `Query` makes the client wait for the
/// server's `ReadyForQuery`.
struct RoundTrips {
    port: u16,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RoundTrips {
    fn start(upstream: std::net::SocketAddr) -> Self {
        use std::{
            io::{Read, Write},
            net::{Shutdown, TcpListener, TcpStream},
            sync::{atomic::Ordering, Arc},
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = count.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(upstream).unwrap();
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                let counted = counted.clone();
                let (mut from_client, mut to_server) = (client, server);
                std::thread::spawn(move || {
                    let (mut pending, mut chunk) = (Vec::new(), [0u8; 8192]);
                    let mut started = false;
                    loop {
                        let n = match from_client.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        pending.extend_from_slice(&chunk[..n]);
                        // Count before forwarding, so the count is up when the answer arrives.
                        loop {
                            let header = if started { 5 } else { 4 };
                            if pending.len() < header {
                                break;
                            }
                            let at = header - 4;
                            let len = u32::from_be_bytes(pending[at..at + 4].try_into().unwrap())
                                as usize;
                            if pending.len() < at + len {
                                break;
                            }
                            if started && matches!(pending[0], b'S' | b'Q') {
                                counted.fetch_add(1, Ordering::SeqCst);
                            }
                            started = true;
                            pending.drain(..at + len);
                        }
                        if to_server.write_all(&chunk[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(Shutdown::Both);
                });
            }
        });
        Self { port, count }
    }

    fn get(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Round trips of one operation, run after a first run of the same kind has warmed the
/// connection's statement cache.
async fn trips<F: std::future::Future>(proxy: &RoundTrips, op: F) -> usize {
    let before = proxy.get();
    op.await;
    proxy.get() - before
}

#[actix_web::test]
async fn round_trips_per_operation() {
    use actix_typed_session::deadpool_postgres::{Config, PoolConfig, Runtime, SslMode};

    let (_, schema) = pg::store().await;
    let upstream: tokio_postgres::Config = schema.url.parse().unwrap();
    let (tokio_postgres::config::Host::Tcp(host), Some(port)) =
        (&upstream.get_hosts()[0], upstream.get_ports().first())
    else {
        panic!("the test server is reached over TCP")
    };
    let upstream_addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), *port))
        .unwrap()
        .next()
        .unwrap();
    let proxy = RoundTrips::start(upstream_addr);
    let mut config = Config::new();
    config.host = Some("127.0.0.1".into());
    config.port = Some(proxy.port);
    config.user = upstream.get_user().map(str::to_owned);
    config.password = upstream
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    config.dbname = upstream.get_dbname().map(str::to_owned);
    config.ssl_mode = Some(SslMode::Disable);
    config.pool = Some(PoolConfig::new(1));
    let pool = config
        .create_pool(Some(Runtime::Tokio1), tokio_postgres::NoTls)
        .unwrap();
    let store = PostgresStore::builder(pool)
        .schema(schema.name.clone())
        .build()
        .unwrap();

    let now = whole_secs(SystemTime::now());
    let hour = now + secs(3600);
    let mut changes = owner_change(Some("alice"));
    changes.set("a", json!(1));
    let record = owned(json!({}), now, hour, Some("alice"));
    let mut counted = Vec::new();
    // Each operation runs twice: the first run prepares its statement on the one connection.
    for round in 0..2u8 {
        let k = |n: u8| key_n(n + 20 * round);
        let mut row = Vec::new();
        row.push(trips(&proxy, store.create(&k(1), &record)).await);
        row.push(trips(&proxy, store.load(&k(1), now)).await);
        row.push(trips(&proxy, store.update(&k(1), &changes, hour, now)).await);
        row.push(trips(&proxy, store.update_returning(&k(1), &changes, hour, now)).await);
        row.push(trips(&proxy, store.touch(&k(1), hour, now)).await);
        row.push(trips(&proxy, store.renew(&k(1), &k(2), &changes, hour, now, None)).await);
        row.push(
            trips(
                &proxy,
                store.renew(&k(2), &k(3), &changes, hour, now, Some(now + secs(5))),
            )
            .await,
        );
        row.push(trips(&proxy, store.list_owned("alice", now)).await);
        row.push(trips(&proxy, store.delete_owned("alice", &k(3))).await);
        store.create(&k(4), &record).await.unwrap();
        row.push(trips(&proxy, store.delete_all_owned("alice", Some(&k(4)))).await);
        row.push(trips(&proxy, store.delete(&k(4))).await);
        counted.push(row);
    }
    let warm = &counted[1];
    println!(
        "round trips (create, load, update, update_returning, touch, renew, renew with grace, list_owned, \
         delete_owned, delete_all_owned, delete): cold {:?}, warm {warm:?}",
        counted[0]
    );
    // A renew is BEGIN, take the old row, insert the new one, COMMIT; ending all of an owner's
    // sessions is BEGIN (repeatable read), DELETE, COMMIT.
    assert_eq!(warm, &[1, 1, 1, 1, 1, 4, 4, 1, 1, 3, 1]);
}
