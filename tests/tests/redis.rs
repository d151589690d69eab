//! Redis backend: key layout, atomic change sets under contention, TTLs, conditional writes,
//! several instances, and faults on throw-away servers (outage, restart, out of memory, flush).

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use std::collections::BTreeSet;

use actix_typed_session::{
    redis::{cmd, Client},
    BuildError, CachedStore, ChangeSet, Key, MemoryStore, Record, RedisStore, SessionCache,
    SessionMiddleware, SessionStore, StatusCode, StorageKey, WriteResult,
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
    assert_eq!(names, ["@c", "@e", "@s", "d:@e", "d:user"]);
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

// ---- The owner index and the renew grace window, at the store level ----

/// `t` rounded down to the millisecond, as the store keeps it.
fn ms(t: SystemTime) -> SystemTime {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    std::time::UNIX_EPOCH + Duration::from_millis(since.as_millis() as u64)
}

fn owned(data: Value, ttl_secs: i64, owner: &str) -> Record {
    record(data, ttl_secs).with_owner(Some(owner.into()))
}

fn owner_change(owner: Option<&str>) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set_owner(owner.map(str::to_owned));
    changes
}

/// The keys `list_owned` returns for `owner` at `now`.
async fn listed(store: &RedisStore, owner: &str, now: SystemTime) -> BTreeSet<StorageKey> {
    let listed = store.list_owned(owner, now).await.unwrap();
    let keys: BTreeSet<StorageKey> = listed.iter().map(|s| s.key).collect();
    assert_eq!(keys.len(), listed.len(), "a session listed twice");
    keys
}

fn set_of(keys: &[u8]) -> BTreeSet<StorageKey> {
    keys.iter().map(|&n| key_n(n)).collect()
}

/// The members of `owner`'s index set, as the test keys they name.
fn members(store: &RedisStore, owner: &str) -> BTreeSet<StorageKey> {
    let hexes: Vec<String> =
        redis::command(&redis_url(), cmd("SMEMBERS").arg(store.owner_key(owner))).unwrap();
    hexes
        .iter()
        .map(|hex| {
            let key = key_n(u8::from_str_radix(&hex[..2], 16).unwrap());
            assert_eq!(key.to_hex(), *hex, "a member that is not a test key");
            key
        })
        .collect()
}

fn exists(key: &str) -> bool {
    redis::command::<i64>(&redis_url(), cmd("EXISTS").arg(key)).unwrap() == 1
}

fn pttl(key: &str) -> i64 {
    redis::command(&redis_url(), cmd("PTTL").arg(key)).unwrap()
}

/// Every owner set under the store's prefix lives at least as long as each of its sessions.
fn assert_sets_outlive_members(store: &RedisStore, owners: &[&str]) {
    for owner in owners {
        let set = store.owner_key(owner);
        let hexes: Vec<String> = redis::command(&redis_url(), cmd("SMEMBERS").arg(&set)).unwrap();
        let set_ttl = pttl(&set);
        for hex in hexes {
            let member_ttl = pttl(&format!("{}{hex}", store.prefix()));
            assert!(member_ttl > 0, "member {hex} without TTL: {member_ttl}");
            assert!(
                set_ttl >= member_ttl,
                "{owner}'s set expires in {set_ttl} ms, its session {hex} in {member_ttl} ms"
            );
        }
    }
}

#[actix_web::test]
async fn owners_are_indexed_at_create_and_by_updates_and_listed() {
    let (store, prefix) = redis::store().await;
    assert!(store.indexes_owners());
    let now = SystemTime::now();
    let later = now + Duration::from_secs(120);
    let created = owned(json!({"a": 1}), 60, "ann");
    store.create(&key_n(1), &created).await.unwrap();
    store
        .create(&key_n(2), &record(json!({}), 60))
        .await
        .unwrap();
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1]));
    let loaded = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(loaded.owner.as_deref(), Some("ann"));
    assert_eq!(loaded.last_seen, ms(created.last_seen));

    // The listing describes the session.
    let listing = store.list_owned("ann", now).await.unwrap();
    assert_eq!(listing[0].created_at, ms(created.created_at));
    assert_eq!(listing[0].last_seen, ms(created.last_seen));
    assert_eq!(listing[0].expires_at, ms(created.expires_at));

    // An update ties an unowned session to an owner, and moves its last write.
    let seen = now + Duration::from_secs(3);
    let mut changes = owner_change(Some("ann"));
    changes.set("user", json!("ann"));
    assert_eq!(
        store
            .update(&key_n(2), &changes, later, seen)
            .await
            .unwrap(),
        WriteResult::Done
    );
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1, 2]));
    assert_eq!(members(&store, "ann"), set_of(&[1, 2]));
    let two = store.load(&key_n(2), seen).await.unwrap().unwrap();
    assert_eq!(
        (two.owner.as_deref(), two.last_seen, two.expires_at),
        (Some("ann"), ms(seen), ms(later))
    );

    // Moved to another owner: the old owner's set no longer lists it.
    store
        .update(&key_n(2), &owner_change(Some("bob")), later, seen)
        .await
        .unwrap();
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1]));
    assert_eq!(members(&store, "ann"), set_of(&[1]));
    assert_eq!(listed(&store, "bob", now).await, set_of(&[2]));

    // Changes that leave the owner alone keep it, clearing the entries included.
    let mut clear = ChangeSet::default();
    clear.clear();
    clear.set("x", json!(1));
    store.update(&key_n(2), &clear, later, seen).await.unwrap();
    store.touch(&key_n(2), later, seen).await.unwrap();
    let two = store.load(&key_n(2), seen).await.unwrap().unwrap();
    assert_eq!(two.owner.as_deref(), Some("bob"));
    assert_eq!(Value::Object(two.data), json!({"x": 1}));
    assert_eq!(listed(&store, "bob", now).await, set_of(&[2]));

    // No owner any more: out of the index, and an emptied set is gone.
    store
        .update(&key_n(1), &owner_change(None), later, seen)
        .await
        .unwrap();
    assert_eq!(listed(&store, "ann", now).await, BTreeSet::new());
    assert!(!exists(&store.owner_key("ann")));
    let one = store.load(&key_n(1), seen).await.unwrap().unwrap();
    assert_eq!(one.owner, None);
    assert_eq!(Value::Object(one.data), json!({"a": 1}));

    // Any owner string is safe: it never appears in a key name.
    let odd = "ann smith:* {x}\n\u{e9}";
    store
        .update(&key_n(1), &owner_change(Some(odd)), later, seen)
        .await
        .unwrap();
    assert_eq!(listed(&store, odd, now).await, set_of(&[1]));
    assert_eq!(listed(&store, "ann smith", now).await, BTreeSet::new());
    for key in keys(&prefix.url, &prefix.prefix) {
        assert!(!key.contains("ann") && !key.contains("bob"), "{key}");
    }
    assert_sets_outlive_members(&store, &["bob", odd]);
}

#[actix_web::test]
async fn listing_skips_expired_and_retired_sessions_and_drops_members_whose_hash_is_gone() {
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    store
        .create(&key_n(1), &owned(json!({}), 30, "ann"))
        .await
        .unwrap();
    for n in [2, 3] {
        store
            .create(&key_n(n), &owned(json!({}), 60, "ann"))
            .await
            .unwrap();
    }
    store
        .create(&key_n(9), &owned(json!({}), 60, "eve"))
        .await
        .unwrap();
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1, 2, 3]));
    // Expired by the application's clock: not listed (Redis still holds the hash).
    let after = now + Duration::from_secs(31);
    assert_eq!(listed(&store, "ann", after).await, set_of(&[2, 3]));
    assert_eq!(members(&store, "ann"), set_of(&[1, 2, 3]));

    // A retired copy is not listed, but stays a member (so that ending all of the owner's
    // sessions reaches it).
    store
        .renew(
            &key_n(3),
            &key_n(4),
            &ChangeSet::default(),
            now + Duration::from_secs(60),
            now,
            Some(now + Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1, 2, 4]));
    assert_eq!(members(&store, "ann"), set_of(&[1, 2, 3, 4]));

    // A hash that Redis dropped (here by hand) is dropped from the set by the next listing.
    redis::command::<()>(&redis_url(), cmd("DEL").arg(store.redis_key(&key_n(2)))).unwrap();
    assert_eq!(members(&store, "ann"), set_of(&[1, 2, 3, 4]));
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1, 4]));
    assert_eq!(members(&store, "ann"), set_of(&[1, 3, 4]));

    // A hash that Redis expired on its TTL too.
    let short = Record::new(
        Map::new(),
        SystemTime::now(),
        SystemTime::now() + Duration::from_millis(150),
    )
    .with_owner(Some("ann".into()));
    store.create(&key_n(5), &short).await.unwrap();
    assert_eq!(members(&store, "ann"), set_of(&[1, 3, 4, 5]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!exists(&store.redis_key(&key_n(5))));
    assert_eq!(listed(&store, "ann", now).await, set_of(&[1, 4]));
    assert_eq!(members(&store, "ann"), set_of(&[1, 3, 4]));
    // Other owners are untouched.
    assert_eq!(listed(&store, "eve", now).await, set_of(&[9]));
    assert_eq!(listed(&store, "nobody", now).await, BTreeSet::new());
}

#[actix_web::test]
async fn an_owner_set_lives_at_least_as_long_as_each_of_its_sessions() {
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    let minute = Duration::from_secs(60);
    store
        .create(&key_n(1), &owned(json!({}), 60, "ann"))
        .await
        .unwrap();
    store
        .create(&key_n(2), &owned(json!({}), 600, "ann"))
        .await
        .unwrap();
    store
        .create(&key_n(3), &owned(json!({}), 30, "ann"))
        .await
        .unwrap();
    assert_sets_outlive_members(&store, &["ann"]);
    assert!(pttl(&store.owner_key("ann")) > (9 * minute).as_millis() as i64);

    // A write that extends a session extends the set.
    store
        .update(&key_n(1), &ChangeSet::default(), now + 20 * minute, now)
        .await
        .unwrap();
    assert_sets_outlive_members(&store, &["ann"]);
    assert!(pttl(&store.owner_key("ann")) > (19 * minute).as_millis() as i64);
    // A write that shortens one never shortens the set.
    store.touch(&key_n(1), now + minute, now).await.unwrap();
    assert!(pttl(&store.owner_key("ann")) > (19 * minute).as_millis() as i64);
    assert_sets_outlive_members(&store, &["ann"]);

    // A renew into another owner, and an update that names the owner, both set the TTL.
    store
        .renew(
            &key_n(3),
            &key_n(4),
            &owner_change(Some("bob")),
            now + 30 * minute,
            now,
            Some(now + Duration::from_secs(5)),
        )
        .await
        .unwrap();
    store
        .update(
            &key_n(2),
            &owner_change(Some("bob")),
            now + 40 * minute,
            now,
        )
        .await
        .unwrap();
    assert_sets_outlive_members(&store, &["ann", "bob"]);
    assert!(pttl(&store.owner_key("bob")) > (39 * minute).as_millis() as i64);
    assert_eq!(listed(&store, "bob", now).await, set_of(&[2, 4]));
}

#[actix_web::test]
async fn owned_sessions_are_ended_one_by_one_or_all_at_once() {
    let (store, prefix) = redis::store().await;
    let now = SystemTime::now();
    for n in 1..=5 {
        store
            .create(&key_n(n), &owned(json!({"n": n}), 60, "ann"))
            .await
            .unwrap();
    }
    store
        .create(&key_n(8), &owned(json!({}), 60, "bob"))
        .await
        .unwrap();
    store
        .create(&key_n(9), &record(json!({}), 60))
        .await
        .unwrap();

    // Only the owner ends one of its sessions.
    assert!(!store.delete_owned("bob", &key_n(1)).await.unwrap());
    assert!(!store.delete_owned("ann", &key_n(9)).await.unwrap());
    assert!(store.load(&key_n(1), now).await.unwrap().is_some());
    assert!(store.delete_owned("ann", &key_n(1)).await.unwrap());
    assert!(!store.delete_owned("ann", &key_n(1)).await.unwrap());
    assert_eq!(store.load(&key_n(1), now).await.unwrap(), None);
    assert_eq!(members(&store, "ann"), set_of(&[2, 3, 4, 5]));

    // A retired copy is no longer the owner's to end (it expires by itself).
    store
        .renew(
            &key_n(2),
            &key_n(6),
            &ChangeSet::default(),
            now + Duration::from_secs(60),
            now,
            Some(now + Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert!(!store.delete_owned("ann", &key_n(2)).await.unwrap());

    // All but one.
    let deleted: BTreeSet<StorageKey> = store
        .delete_all_owned("ann", Some(&key_n(4)))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(deleted, set_of(&[3, 5, 6]));
    assert_eq!(members(&store, "ann"), set_of(&[4]));
    assert_eq!(listed(&store, "ann", now).await, set_of(&[4]));
    for n in [3, 5, 6] {
        assert_eq!(store.load(&key_n(n), now).await.unwrap(), None);
    }
    // Others' and unowned sessions are untouched; the owner's retired copy is gone too, but not
    // reported among the ended sessions.
    assert!(store.load(&key_n(8), now).await.unwrap().is_some());
    assert!(store.load(&key_n(9), now).await.unwrap().is_some());
    assert_eq!(store.load(&key_n(2), now).await.unwrap(), None);

    // All.
    assert_eq!(
        store.delete_all_owned("ann", None).await.unwrap(),
        vec![key_n(4)]
    );
    assert!(!exists(&store.owner_key("ann")));
    assert_eq!(store.delete_all_owned("ann", None).await.unwrap(), vec![]);

    // A plain delete of an owned session leaves no index entry behind.
    store.delete(&key_n(8)).await.unwrap();
    assert!(!exists(&store.owner_key("bob")));
    assert_eq!(listed(&store, "bob", now).await, BTreeSet::new());
    // What is left: the unowned session.
    assert_eq!(keys(&prefix.url, &prefix.prefix).len(), 1);
}

#[actix_web::test]
async fn a_renew_with_a_grace_window_leaves_a_retired_read_only_copy() {
    let (store, prefix) = redis::store().await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(120);
    let grace = now + Duration::from_secs(5);
    let created = owned(json!({"a": 1}), 60, "ann");
    store.create(&key_n(1), &created).await.unwrap();
    let mut changes = owner_change(Some("bob"));
    changes.set("b", json!(2));
    let seen = now + Duration::from_secs(1);
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(2), &changes, later, seen, Some(grace))
            .await
            .unwrap(),
        WriteResult::Done
    );

    // The old key: the session as it was, retired, until the grace deadline.
    let old = store.load(&key_n(1), seen).await.unwrap().unwrap();
    assert!(old.retired);
    assert_eq!(Value::Object(old.data.clone()), json!({"a": 1}));
    assert_eq!(old.owner.as_deref(), Some("ann"));
    assert_eq!(old.created_at, ms(created.created_at));
    assert_eq!(old.last_seen, ms(created.last_seen));
    assert_eq!(old.expires_at, ms(grace));
    let ttl = pttl(&store.redis_key(&key_n(1)));
    assert!(ttl > 0 && ttl <= 5000, "retired copy TTL {ttl} ms");
    assert_eq!(store.load(&key_n(1), grace).await.unwrap(), None);
    // The new key: the changed session, live.
    let new = store.load(&key_n(2), seen).await.unwrap().unwrap();
    assert!(!new.retired);
    assert_eq!(Value::Object(new.data), json!({"a": 1, "b": 2}));
    assert_eq!(new.owner.as_deref(), Some("bob"));
    assert_eq!(new.created_at, ms(created.created_at));
    assert_eq!((new.last_seen, new.expires_at), (ms(seen), ms(later)));
    let ttl = pttl(&store.redis_key(&key_n(2)));
    assert!(ttl > 100_000, "renewed session TTL {ttl} ms");

    // Read-only: no write reaches the retired copy.
    let mut late = ChangeSet::default();
    late.set("late", json!(true));
    assert_eq!(
        store.update(&key_n(1), &late, later, seen).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(1), later, seen).await.unwrap(),
        WriteResult::Missing
    );
    // Nor one that passes the copy's own deadline (a write that keeps the expiry).
    assert_eq!(
        store.update(&key_n(1), &late, grace, seen).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(3), &late, later, seen, Some(grace))
            .await
            .unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store
            .renew(&key_n(1), &key_n(3), &late, later, seen, None)
            .await
            .unwrap(),
        WriteResult::Missing
    );
    assert_eq!(store.load(&key_n(3), seen).await.unwrap(), None);
    assert_eq!(store.load(&key_n(1), seen).await.unwrap().unwrap(), old);
    assert!(pttl(&store.redis_key(&key_n(1))) <= 5000);
    // Not listed under its owner, nor under the new one; still a member of its owner's set.
    assert_eq!(listed(&store, "ann", seen).await, BTreeSet::new());
    assert_eq!(members(&store, "ann"), set_of(&[1]));
    assert_eq!(listed(&store, "bob", seen).await, set_of(&[2]));

    // A grace deadline past the session's own deadline does not extend it.
    store
        .create(&key_n(4), &owned(json!({}), 3, "ann"))
        .await
        .unwrap();
    let own = store
        .load(&key_n(4), now)
        .await
        .unwrap()
        .unwrap()
        .expires_at;
    store
        .renew(
            &key_n(4),
            &key_n(5),
            &ChangeSet::default(),
            later,
            now,
            Some(now + Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let old = store.load(&key_n(4), now).await.unwrap().unwrap();
    assert!(old.retired);
    assert_eq!(old.expires_at, own);
    // (The TTL runs from the `now` passed to the renew.)
    let left = own.duration_since(ms(now)).unwrap().as_millis() as i64;
    assert!(pttl(&store.redis_key(&key_n(4))) <= left);
    // A request that loaded the session before the renew writes with the expiry it saw, which
    // the retired copy still has: refused all the same.
    assert_eq!(
        store.update(&key_n(4), &late, own, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(4), own, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(store.load(&key_n(4), now).await.unwrap().unwrap(), old);
    assert_eq!(listed(&store, "ann", now).await, set_of(&[5]));

    // A grace deadline already past: the old key is simply gone.
    store
        .create(&key_n(6), &owned(json!({}), 60, "ann"))
        .await
        .unwrap();
    store
        .renew(
            &key_n(6),
            &key_n(7),
            &ChangeSet::default(),
            later,
            now,
            Some(now - Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert!(!exists(&store.redis_key(&key_n(6))));

    // Without a grace window the old key is deleted at once.
    store
        .renew(
            &key_n(7),
            &key_n(8),
            &ChangeSet::default(),
            later,
            now,
            None,
        )
        .await
        .unwrap();
    assert!(!exists(&store.redis_key(&key_n(7))));
    assert_eq!(listed(&store, "ann", now).await, set_of(&[5, 8]));

    // A retired copy can still be deleted (a logout during the grace window).
    store.delete(&key_n(1)).await.unwrap();
    assert_eq!(store.load(&key_n(1), seen).await.unwrap(), None);
    assert_sets_outlive_members(&store, &["ann", "bob"]);
    assert_all_keys_expire(&prefix.url, &prefix.prefix, Duration::from_secs(120));
}

#[actix_web::test]
async fn a_cached_copy_equals_the_durable_record_owner_included() {
    let (cache, prefix) = redis::store().await;
    let now = ms(SystemTime::now());
    let record = Record::new(
        serde_json::from_value::<Map<String, Value>>(json!({"a": 1})).unwrap(),
        now - Duration::from_secs(10),
        now + Duration::from_secs(60),
    )
    .with_owner(Some("ann".into()))
    .with_activity(now - Duration::from_secs(2), true);
    cache
        .put(&key_n(1), &record, now, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(cache.get(&key_n(1), now).await.unwrap(), Some(record));
    // A copy is never indexed.
    assert_eq!(keys(&prefix.url, &prefix.prefix).len(), 1);
    assert!(pttl(&cache.redis_key(&key_n(1))) <= 5000);

    // Through a cached store: the second load, from the cache, equals the first, from the
    // durable store.
    let store = CachedStore::new(cache.clone(), MemoryStore::default());
    let durable = Record::new(
        Map::new(),
        now - Duration::from_secs(1),
        now + Duration::from_secs(60),
    )
    .with_owner(Some("bob".into()))
    .with_activity(now, false);
    store.create(&key_n(2), &durable).await.unwrap();
    let first = store.load(&key_n(2), now).await.unwrap().unwrap();
    assert!(
        exists(&cache.redis_key(&key_n(2))),
        "the load filled the cache"
    );
    let second = store.load(&key_n(2), now).await.unwrap().unwrap();
    assert_eq!(first, durable);
    assert_eq!(second, durable);
    assert_eq!(second.owner.as_deref(), Some("bob"));
}

#[test]
fn the_shared_test_server_is_reachable() {
    let pong: String = redis::command(&redis_url(), &cmd("PING")).unwrap();
    assert_eq!(pong, "PONG");
}

/// A renew with a grace window that moves the session to another owner keeps the retired copy
/// in the old owner's set, and that set (emptied and recreated inside the script) still expires.
#[actix_web::test]
async fn an_owner_set_recreated_by_a_renew_still_has_a_ttl() {
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    store
        .create(&key_n(1), &owned(json!({}), 60, "ann"))
        .await
        .unwrap();
    store
        .renew(
            &key_n(1),
            &key_n(2),
            &owner_change(Some("bob")),
            now + Duration::from_secs(60),
            now,
            Some(now + Duration::from_secs(5)),
        )
        .await
        .unwrap();
    assert_eq!(members(&store, "ann"), set_of(&[1]));
    let ttl = pttl(&store.owner_key("ann"));
    assert!(ttl > 0 && ttl <= 5_000, "the owner set's TTL is {ttl} ms");
    assert_eq!(members(&store, "bob"), set_of(&[2]));
}

/// A throw-away `redis-server` listening only on a Unix socket, with a password.
struct UnixRedis {
    dir: std::path::PathBuf,
    child: std::process::Child,
}

impl UnixRedis {
    fn start(password: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ats-redis-unix-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new(redis::redis_server())
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(dir.join("redis.sock"))
            .args(["--requirepass", password])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let server = Self { dir, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !server.socket().exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.join("redis.sock")
    }

    fn url(&self, query: &str) -> String {
        format!("redis+unix://{}?{query}", self.socket().display())
    }
}

impl Drop for UnixRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[actix_rt::test]
async fn a_unix_socket_with_a_password_and_a_database_is_used_as_given() {
    let server = UnixRedis::start("s3cret");
    let store = RedisStore::builder(Client::open(server.url("db=3&pass=s3cret")).unwrap())
        .prefix("unix:")
        .build()
        .unwrap();
    let now = SystemTime::now();
    let written = record(json!({"n": 7}), 60);
    assert_eq!(
        store.create(&key_n(1), &written).await.unwrap(),
        WriteResult::Done
    );
    let loaded = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert_eq!(loaded.data, written.data);
    // The session is in database 3, not in database 0.
    let on = |db: u8| {
        redis::command::<Vec<String>>(
            &server.url(&format!("db={db}&pass=s3cret")),
            cmd("KEYS").arg("unix:*"),
        )
        .unwrap()
    };
    assert_eq!(on(3), vec![store.redis_key(&key_n(1))]);
    assert!(on(0).is_empty());

    // A wrong password fails the operation with a clear error, and nothing is written.
    let wrong = RedisStore::builder(Client::open(server.url("db=3&pass=wrong")).unwrap())
        .prefix("unix:")
        .build()
        .unwrap();
    let err = wrong
        .create(&key_n(2), &record(json!({"n": 1}), 60))
        .await
        .unwrap_err();
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains("authentication failed"), "{chain}");
    assert_eq!(on(3).len(), 1);
}

/// The error and its sources, one per line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_thread_that_runs_two_runtimes_gets_a_connection_on_each() {
    let (store, _prefix) = redis::store_on(&redis_url());
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let (first, second) = (runtime(), runtime());
    let now = SystemTime::now();
    let written = record(json!({"n": 1}), 60);
    assert_eq!(
        first.block_on(store.create(&key_n(7), &written)).unwrap(),
        WriteResult::Done
    );
    // The first runtime stays alive but is not run any more: a connection driven by it would
    // never answer. The second runtime gets its own.
    let loaded = second
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(5), store.load(&key_n(7), now)).await
        })
        .expect("the load hung on a connection of an idle runtime")
        .unwrap()
        .unwrap();
    assert_eq!(loaded.data, written.data);
    // And back on the first one.
    assert!(first
        .block_on(store.load(&key_n(7), now))
        .unwrap()
        .is_some());
}

#[test]
fn outside_a_tokio_runtime_operations_fail_with_a_clear_error() {
    let (store, _prefix) = redis::store_on(&redis_url());
    // Polled once, with no runtime around: it fails at once, before waiting for anything.
    let key = key_n(8);
    let mut load = std::pin::pin!(store.load(&key, SystemTime::now()));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let std::task::Poll::Ready(result) = load.as_mut().poll(&mut cx) else {
        panic!("the load waited outside a runtime");
    };
    let err = result.unwrap_err();
    assert!(error_chain(&err).contains("tokio runtime"), "{err}");
}

#[actix_rt::test]
async fn a_timeout_too_long_for_the_clock_means_no_timeout() {
    let prefix = redis::TestPrefix::new(&redis_url());
    let store = RedisStore::builder(redis::client(&redis_url()))
        .prefix(prefix.prefix.clone())
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    let now = SystemTime::now();
    let written = record(json!({"n": 2}), 60);
    assert_eq!(
        store.create(&key_n(9), &written).await.unwrap(),
        WriteResult::Done
    );
    assert_eq!(
        store.load(&key_n(9), now).await.unwrap().unwrap().data,
        written.data
    );
}

#[actix_web::test]
async fn a_retired_copy_in_the_earlier_layout_is_read_as_retired_and_never_gets_a_longer_life() {
    // Earlier builds kept a retired copy's deadline in `@e` and set `@r` to 1.
    let (store, _prefix) = redis::store().await;
    let now = SystemTime::now();
    let deadline = now + Duration::from_secs(5);
    let millis = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let key = store.redis_key(&key_n(1));
    let _: () = redis::command(
        &redis_url(),
        cmd("HSET")
            .arg(&key)
            .arg("@c")
            .arg(millis(now).to_string())
            .arg("@e")
            .arg(millis(deadline).to_string())
            .arg("@s")
            .arg(millis(now).to_string())
            .arg("@r")
            .arg("1")
            .arg("d:a")
            .arg("1"),
    )
    .unwrap();
    let _: () = redis::command(&redis_url(), cmd("PEXPIRE").arg(&key).arg(5000)).unwrap();

    let old = store.load(&key_n(1), now).await.unwrap().unwrap();
    assert!(old.retired);
    assert_eq!(old.expires_at, ms(deadline));
    // A write that would move its expiry is refused, and its TTL stays.
    let later = now + Duration::from_secs(600);
    let mut late = ChangeSet::default();
    late.set("late", json!(true));
    assert_eq!(
        store.update(&key_n(1), &late, later, now).await.unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        store.touch(&key_n(1), later, now).await.unwrap(),
        WriteResult::Missing
    );
    assert!(pttl(&key) <= 5000, "TTL {} ms", pttl(&key));
    assert_eq!(store.load(&key_n(1), now).await.unwrap().unwrap(), old);
}

#[actix_web::test]
async fn a_cleared_renew_still_ends_its_grace_copy_on_delete() {
    init_logs();
    let (store, _prefix) = redis::store().await;
    redis::a_cleared_renew_still_ends_its_grace_copy_on_delete(&store).await;
}
