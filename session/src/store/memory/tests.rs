//! The memory store's unit tests.

use serde_json::json;

use super::*;

fn key(n: u8) -> StorageKey {
    StorageKey::from_bytes([n; 32])
}

fn record(now: SystemTime, ttl: u64) -> Record {
    Record::new(Default::default(), now, now + Duration::from_secs(ttl))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("memory store futures never wait")
}

#[test]
fn full_store_evicts_the_session_closest_to_expiry() {
    let store = MemoryStore::builder().capacity(2).build();
    let now = SystemTime::now();
    block_on(store.create(&key(1), &record(now, 100))).unwrap();
    block_on(store.create(&key(2), &record(now, 10))).unwrap();
    block_on(store.create(&key(3), &record(now, 50))).unwrap();
    assert_eq!(store.len(), 2);
    assert!(block_on(store.load(&key(2), now)).unwrap().is_none());
    assert!(block_on(store.load(&key(1), now)).unwrap().is_some());
    assert!(block_on(store.load(&key(3), now)).unwrap().is_some());
}

#[test]
fn full_store_that_refuses_keeps_every_existing_session() {
    let store = MemoryStore::builder()
        .capacity(1)
        .when_full(WhenFull::Refuse)
        .build();
    let now = SystemTime::now();
    block_on(store.create(&key(1), &record(now, 100))).unwrap();
    let err = block_on(store.create(&key(2), &record(now, 100))).unwrap_err();
    assert!(err.source_text().contains("full"));
    assert!(block_on(store.load(&key(1), now)).unwrap().is_some());
}

#[test]
fn expired_sessions_are_reclaimed_to_make_room_before_anything_is_evicted() {
    let store = MemoryStore::builder()
        .capacity(1)
        .when_full(WhenFull::Refuse)
        .build();
    let past = SystemTime::now() - Duration::from_secs(100);
    block_on(store.create(&key(1), &record(past, 10))).unwrap();
    block_on(store.create(&key(2), &record(SystemTime::now(), 10))).unwrap();
    assert_eq!(store.len(), 1);
}

#[test]
fn sweeper_reclaims_expired_sessions_without_any_request() {
    let store = MemoryStore::builder()
        .sweep_interval(Duration::from_millis(20))
        .build();
    let now = SystemTime::now();
    let soon = Record::new(Default::default(), now, now + Duration::from_millis(30));
    block_on(store.create(&key(1), &soon)).unwrap();
    block_on(store.create(&key(2), &record(now, 3600))).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.len() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(store.len(), 1, "the expired session was not reclaimed");
}

#[test]
fn sweeper_thread_stops_when_the_store_is_dropped() {
    let store = MemoryStore::builder()
        .sweep_interval(Duration::from_millis(10))
        .build();
    let weak = Arc::downgrade(&store.inner);
    drop(store);
    assert!(
        weak.upgrade().is_none(),
        "the sweeper must hold only a weak reference"
    );
}

#[test]
fn update_and_renew_never_resurrect() {
    let store = MemoryStore::default();
    let now = SystemTime::now();
    let mut changes = ChangeSet::default();
    changes.set("a", json!(1));
    let later = now + Duration::from_secs(60);
    assert_eq!(
        block_on(store.update(&key(1), &changes, later, now)).unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        block_on(store.renew(&key(1), &key(2), &changes, later, now, None)).unwrap(),
        WriteResult::Missing
    );
    assert_eq!(
        block_on(store.touch(&key(1), later, now)).unwrap(),
        WriteResult::Missing
    );
    assert!(store.is_empty());
}

#[test]
fn renew_moves_data_and_kills_the_old_key() {
    let store = MemoryStore::default();
    let now = SystemTime::now();
    let mut rec = record(now, 60);
    rec.data.insert("user".into(), json!("ann"));
    block_on(store.create(&key(1), &rec)).unwrap();
    let mut changes = ChangeSet::default();
    changes.set("role", json!("admin"));
    let result = block_on(store.renew(
        &key(1),
        &key(2),
        &changes,
        now + Duration::from_secs(60),
        now,
        None,
    ));
    assert_eq!(result.unwrap(), WriteResult::Done);
    assert!(block_on(store.load(&key(1), now)).unwrap().is_none());
    let moved = block_on(store.load(&key(2), now)).unwrap().unwrap();
    assert_eq!(moved.data.get("user"), Some(&json!("ann")));
    assert_eq!(moved.data.get("role"), Some(&json!("admin")));
}

#[test]
fn create_never_overwrites_a_live_session() {
    let store = MemoryStore::default();
    let now = SystemTime::now();
    let mut first = record(now, 60);
    first.data.insert("owner".into(), json!(1));
    block_on(store.create(&key(1), &first)).unwrap();
    assert_eq!(
        block_on(store.create(&key(1), &record(now, 60))).unwrap(),
        WriteResult::Collision
    );
    let kept = block_on(store.load(&key(1), now)).unwrap().unwrap();
    assert_eq!(kept.data.get("owner"), Some(&json!(1)));
}

impl StoreError {
    fn source_text(&self) -> String {
        std::error::Error::source(self)
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}
