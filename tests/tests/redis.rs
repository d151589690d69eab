//! Redis backend: key layout, atomic change sets under contention, TTLs, conditional writes,
//! several instances, and faults on throw-away servers (outage, restart, out of memory, flush).

use std::time::{Duration, SystemTime};

use actix_typed_session::{
    redis::{cmd, Client},
    BuildError, ChangeSet, Key, Record, RedisStore, SessionMiddleware, SessionStore, StatusCode,
    StorageKey, WriteResult,
};
use actix_typed_session_tests::{
    client, init_logs,
    pg::eventually,
    redis::{self, keys, redis_url, TempRedis},
};
use serde_json::{json, Map, Value};

fn key_n(n: u8) -> StorageKey {
    StorageKey::from_bytes([n; 32])
}

fn record(data: Value, ttl_secs: i64) -> Record {
    let now = SystemTime::now();
    let expires_at = if ttl_secs >= 0 {
        now + Duration::from_secs(ttl_secs as u64)
    } else {
        now - Duration::from_secs((-ttl_secs) as u64)
    };
    let Value::Object(map) = data else {
        panic!("records hold objects")
    };
    Record::new(map, now - Duration::from_secs(1), expires_at)
}

fn middleware(store: RedisStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[12u8; 64][..]))
        .backend("redis", store)
        .build()
        .unwrap()
}

/// The remaining TTL of every key under `prefix`, in milliseconds.
fn ttls(url: &str, prefix: &str) -> Vec<(String, i64)> {
    keys(url, prefix)
        .into_iter()
        .map(|k| {
            let ttl: i64 = redis::command(url, cmd("PTTL").arg(&k)).unwrap();
            (k, ttl)
        })
        .collect()
}

fn assert_all_keys_expire(url: &str, prefix: &str, at_most: Duration) {
    for (key, ttl) in ttls(url, prefix) {
        assert!(
            ttl > 0 && ttl <= at_most.as_millis() as i64,
            "{key} has TTL {ttl} ms"
        );
    }
}

#[actix_web::test]
async fn prefixes_and_timeouts_are_validated_at_build_time() {
    let client = Client::open("redis://127.0.0.1:1/").unwrap();
    for bad in ["with space", "tab\there", "ünicode", &"x".repeat(129)] {
        let err = RedisStore::builder(client.clone())
            .prefix(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidIdentifier { .. }),
            "{bad:?}: {err}"
        );
    }
    let err = RedisStore::builder(client)
        .timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Timeouts(_)), "{err}");
}

#[actix_web::test]
async fn the_key_is_a_hash_of_the_id_and_every_entry_its_own_field() {
    let (store, prefix) = redis::store().await;
    let c = client(middleware(store)).await;
    c.set("session", "user", json!("ann")).await;
    c.set("session", "@e", json!("looks reserved")).await;
    let id = c.cookie("session").unwrap();
    let found = keys(&prefix.url, &prefix.prefix);
    assert_eq!(found.len(), 1);
    let hash = found[0].strip_prefix(&prefix.prefix).unwrap();
    assert_eq!(hash.len(), 64);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!found[0].contains(&id));
    let mut fields: Vec<(String, String)> =
        redis::command(&prefix.url, cmd("HGETALL").arg(&found[0])).unwrap();
    fields.sort();
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["@c", "@e", "d:@e", "d:user"]);
    assert!(fields.iter().all(|(_, v)| !v.contains(&id)));
    assert_eq!(c.read("session", "@e").await, Some(json!("looks reserved")));
}

#[actix_web::test]
async fn store_level_writes_are_conditional() {
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(60);
    let mut changes = ChangeSet::default();
    changes.set("b", json!(2));
    // An expired session is never loaded, updated, refreshed or renewed.
    store
        .create(&key_n(1), &record(json!({"a": 1}), 30))
        .await
        .unwrap();
    let after = now + Duration::from_secs(31);
    assert_eq!(store.load(&key_n(1), after).await.unwrap(), None);
    let far = after + Duration::from_secs(60);
    assert_eq!(
        store.update(&key_n(1), &changes, far, after).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(1), far, after).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(9), &changes, far, after, None)
            .await
            .unwrap(),
        WriteResult::Missing
    );
    // A missing session is not created by an update (no resurrection).
    assert_eq!(
        store.update(&key_n(8), &changes, later, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(store.load(&key_n(8), now).await.unwrap(), None);
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
    assert_eq!(
        Value::Object(store.load(&key_n(3), now).await.unwrap().unwrap().data),
        json!({"other": true})
    );
    // A real renew moves the data, applies the change, keeps the creation time and kills the
    // old key.
    assert_eq!(
        store
            .renew(&key_n(2), &key_n(4), &changes, later, now, None)
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert_eq!(store.load(&key_n(2), now).await.unwrap(), None);
    let moved = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert_eq!(Value::Object(moved.data), json!({"owner": "ann", "b": 2}));
    assert_eq!(moved.created_at, kept.created_at);
    // Clear + patch replaces the entries; remove drops keys.
    let mut clear = ChangeSet::default();
    clear.clear();
    clear.set("only", json!(true));
    store.update(&key_n(4), &clear, later, now).await.unwrap();
    let mut remove = ChangeSet::default();
    remove.remove("nothing-here");
    remove.set("x", json!(1));
    store.update(&key_n(4), &remove, later, now).await.unwrap();
    let cleared = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert_eq!(Value::Object(cleared.data), json!({"only": true, "x": 1}));
    assert_eq!(cleared.created_at, kept.created_at);
    // Delete is idempotent.
    store.delete(&key_n(4)).await.unwrap();
    store.delete(&key_n(4)).await.unwrap();
    assert_eq!(store.load(&key_n(4), now).await.unwrap(), None);
}

#[actix_web::test]
async fn every_key_always_has_a_ttl_and_the_refresh_moves_only_the_expiry() {
    let (store, prefix) = redis::store().await;
    let now = SystemTime::now();
    let minute = Duration::from_secs(60);
    store
        .create(&key_n(1), &record(json!({"a": 1}), 60))
        .await
        .unwrap();
    assert_all_keys_expire(&prefix.url, &prefix.prefix, minute);

    let mut changes = ChangeSet::default();
    changes.set("b", json!(2));
    store
        .update(&key_n(1), &changes, now + 2 * minute, now)
        .await
        .unwrap();
    assert_all_keys_expire(&prefix.url, &prefix.prefix, 2 * minute);

    let before = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(
        store
            .touch(&key_n(1), now + 10 * minute, now)
            .await
            .unwrap(),
        WriteResult::Done
    );
    let after = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(after.data, before.data);
    assert_eq!(after.created_at, before.created_at);
    assert!(after.expires_at > before.expires_at + 7 * minute);
    let (_, ttl) = ttls(&prefix.url, &prefix.prefix).pop().unwrap();
    assert!(ttl > (9 * minute).as_millis() as i64, "TTL {ttl} ms");

    let mut clear = ChangeSet::default();
    clear.clear();
    store
        .update(&key_n(1), &clear, now + minute, now)
        .await
        .unwrap();
    store
        .renew(
            &key_n(1),
            &key_n(2),
            &ChangeSet::default(),
            now + minute,
            now,
            None,
        )
        .await
        .unwrap();
    assert_eq!(keys(&prefix.url, &prefix.prefix).len(), 1);
    assert_all_keys_expire(&prefix.url, &prefix.prefix, minute);

    // Through the middleware too.
    let c = client(middleware(store)).await;
    c.set("session", "a", json!(1)).await;
    c.post("/session/renew").await;
    c.set("session", "b", json!(2)).await;
    assert_all_keys_expire(&prefix.url, &prefix.prefix, Duration::from_secs(24 * 3600));
}

#[actix_web::test]
async fn large_change_sets_are_applied_whole() {
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    let mut data = Map::new();
    for n in 0..20_000 {
        data.insert(format!("k{n}"), json!(n));
    }
    let created = Record::new(data, now, now + Duration::from_secs(60));
    store.create(&key_n(1), &created).await.unwrap();
    let mut changes = ChangeSet::default();
    for n in 0..20_000 {
        if n % 2 == 0 {
            changes.remove(&format!("k{n}"));
        } else {
            changes.set(format!("k{n}"), json!(-n));
        }
    }
    let later = now + Duration::from_secs(60);
    assert_eq!(
        store.update(&key_n(1), &changes, later, now).await.unwrap(),
        WriteResult::Done
    );
    let loaded = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(loaded.data.len(), 10_000);
    assert_eq!(loaded.data.get("k19999"), Some(&json!(-19_999)));
    assert_eq!(loaded.data.get("k0"), None);
}

/// Two barrier-released requests of one visitor that set different keys, 1,000 times.
#[actix_web::test]
async fn one_thousand_parallel_trials_lose_no_update() {
    let (store, prefix) = redis::store().await;
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
    assert_eq!(keys(&prefix.url, &prefix.prefix).len(), 1000);
}

#[actix_web::test]
async fn two_instances_on_one_redis_share_sessions() {
    let (store_a, prefix) = redis::store().await;
    let store_b = RedisStore::builder(redis::client(&prefix.url))
        .prefix(prefix.prefix.clone())
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
async fn stores_with_different_prefixes_do_not_see_each_other() {
    let (store_a, _a) = redis::store().await;
    let (store_b, _b) = redis::store().await;
    let a = client(middleware(store_a)).await;
    let b = client(middleware(store_b)).await;
    a.set("session", "user", json!("ann")).await;
    b.set_cookie("session", &a.cookie("session").unwrap());
    assert_eq!(b.read("session", "user").await, None);
}

#[actix_web::test]
async fn a_redis_outage_fails_only_session_routes_and_recovers_by_itself() {
    init_logs();
    let server = TempRedis::start();
    let (store, _prefix) = redis::store_on(&server.url());
    let store = RedisStore::builder(redis::client(&server.url()))
        .prefix(store.prefix().to_owned())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mw = SessionMiddleware::builder(Key::from(&[12u8; 64][..]))
        .backend("redis", store)
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "user", json!("ann")).await;
    let cookie = c.cookie("session").unwrap();

    server.stop();
    let read = c.get("/session/get/user").await;
    assert_eq!(read.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(read.body.is_empty() && read.set_cookies.is_empty());
    let write = c.post_json("/session/set/user", json!("eve")).await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(write.body.is_empty() && write.set_cookies.is_empty());
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

    // The restarted server is empty (no persistence): the old cookie is a fresh, empty session.
    server.resume();
    let recovered = eventually(Duration::from_secs(15), || async {
        c.get("/session/entries").await.status == StatusCode::OK
    })
    .await;
    assert!(
        recovered.is_some(),
        "the application did not recover after the restart"
    );
    assert_eq!(c.get("/session/entries").await.json(), json!({}));
    let reply = c.set("session", "user", json!("bob")).await;
    assert_ne!(
        reply.cookie("session").unwrap().value(),
        cookie,
        "the old id must never be adopted"
    );
    assert_eq!(c.read("session", "user").await, Some(json!("bob")));
}

#[actix_web::test]
async fn the_store_can_be_built_before_redis_is_up() {
    let server = TempRedis::start();
    server.stop();
    let (store, _prefix) = redis::store_on(&server.url());
    let c = client(middleware(store)).await;
    let reply = c.post_json("/session/set/a", json!(1)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty());
    server.resume();
    c.set("session", "a", json!(1)).await;
    assert_eq!(c.read("session", "a").await, Some(json!(1)));
}

#[actix_web::test]
async fn a_redis_that_refuses_writes_fails_writes_with_an_opaque_500_and_keeps_the_data() {
    init_logs();
    let server = TempRedis::start();
    let (store, _prefix) = redis::store_on(&server.url());
    let c = client(middleware(store)).await;
    c.set("session", "user", json!("ann")).await;

    server.refuse_writes();
    let write = c.post_json("/session/set/user", json!("eve")).await;
    assert_eq!(write.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(write.body.is_empty() && write.set_cookies.is_empty());
    let new_visitor = c
        .send_raw(
            actix_web::test::TestRequest::post()
                .uri("/session/set/x")
                .set_json(json!(1)),
        )
        .await;
    assert_eq!(new_visitor.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(new_visitor.set_cookies.is_empty());
    // Reads and routes without sessions still work.
    assert_eq!(c.read("session", "user").await, Some(json!("ann")));
    assert_eq!(c.get("/untouched").await.status, StatusCode::OK);

    server.accept_writes();
    c.set("session", "user", json!("bob")).await;
    assert_eq!(c.read("session", "user").await, Some(json!("bob")));
}

#[actix_web::test]
async fn data_gone_under_a_valid_cookie_is_a_fresh_session_with_a_new_id() {
    let server = TempRedis::start();
    let (store, prefix) = redis::store_on(&server.url());
    let c = client(middleware(store)).await;
    c.set("session", "user", json!("ann")).await;
    let old = c.cookie("session").unwrap();
    server.command::<()>(&cmd("FLUSHALL"));

    let read = c.get("/session/entries").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json(), json!({}));
    // A write after the flush neither fails nor brings the old id back.
    let reply = c.set("session", "cart", json!(["book"])).await;
    let new = reply
        .cookie("session")
        .expect("a new cookie")
        .value()
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(
        c.get("/session/entries").await.json(),
        json!({"cart": ["book"]})
    );
    assert_eq!(keys(&prefix.url, &prefix.prefix).len(), 1);
}

#[actix_web::test]
async fn a_redis_that_never_answers_fails_the_request_after_the_timeout() {
    // A listener that accepts connections and never replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", silent.local_addr().unwrap());
    let _accepting = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming().take(16).flatten() {
            held.push(conn);
        }
    });
    let store = RedisStore::builder(redis::client(&url))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let c = client(middleware(store)).await;
    c.set_cookie("session", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let started = std::time::Instant::now();
    let reply = c.get("/session/get/a").await;
    let waited = started.elapsed();
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        waited >= Duration::from_millis(300),
        "gave up before the timeout: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "hung for {waited:?}");
}

#[test]
fn the_shared_test_server_is_reachable() {
    let pong: String = redis::command(&redis_url(), &cmd("PING")).unwrap();
    assert_eq!(pong, "PONG");
}
