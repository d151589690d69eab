//! The in-process memory store.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::{Duration, SystemTime},
};

use crate::{ChangeSet, Record, SessionStore, StorageKey, StoreError, WriteResult};

const DEFAULT_CAPACITY: usize = 100_000;
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What the [`MemoryStore`] does when a new session arrives and it already holds `capacity`
/// live sessions (expired ones are reclaimed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Evict the live session closest to its expiry to make room (the default). The evicted
    /// visitor's next request starts a fresh session; a warning is logged.
    #[default]
    EvictSoonestExpiring,
    /// Refuse the new session: the request that tried to create it fails with the middleware's
    /// opaque failure response. Existing sessions are never dropped.
    Refuse,
}

/// An in-process session store, for a single instance or for development.
///
/// Change sets are applied under one lock, so parallel requests of one visitor that change
/// different keys both survive. Sessions expire on their idle and absolute deadlines; a
/// background thread reclaims expired entries every `sweep_interval` without a request having
/// to touch them, and stops when the last clone of the store is dropped.
///
/// The store is bounded: see [`WhenFull`] for what happens at `capacity` (100,000 by default).
///
/// Clone it into each worker: clones share the same sessions.
///
/// # Limitations
/// Sessions live in this process only: they vanish on restart and are not shared between
/// instances. Use PostgreSQL or Redis for that.
///
/// ```
/// use std::time::Duration;
/// use actix_typed_session::{MemoryStore, WhenFull};
///
/// let store = MemoryStore::builder()
///     .capacity(10_000)
///     .when_full(WhenFull::Refuse)
///     .sweep_interval(Duration::from_secs(30))
///     .build();
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    table: Mutex<Table>,
    capacity: usize,
    when_full: WhenFull,
}

#[derive(Default)]
struct Table {
    entries: HashMap<StorageKey, Record>,
    by_expiry: BTreeSet<(SystemTime, StorageKey)>,
}

/// Builds a [`MemoryStore`]; get one with [`MemoryStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct MemoryStoreBuilder {
    capacity: usize,
    when_full: WhenFull,
    sweep_interval: Duration,
}

impl MemoryStoreBuilder {
    /// The most live sessions kept at once (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// What happens when the store is full.
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// How often the background thread reclaims expired sessions.
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Builds the store and starts its sweeper thread.
    pub fn build(self) -> MemoryStore {
        let inner = Arc::new(Inner {
            table: Mutex::new(Table::default()),
            capacity: self.capacity,
            when_full: self.when_full,
        });
        spawn_sweeper(Arc::downgrade(&inner), self.sweep_interval);
        MemoryStore { inner }
    }
}

fn spawn_sweeper(store: Weak<Inner>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("session-sweeper".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(inner) = store.upgrade() else { break };
            let reclaimed = inner.lock().reclaim_expired(SystemTime::now());
            if reclaimed > 0 {
                tracing::debug!(reclaimed, "memory store reclaimed expired sessions");
            }
        });
    if let Err(err) = spawned {
        // Without the thread, expired entries are still reclaimed on every create.
        tracing::warn!(error = %err, "memory store could not start its sweeper thread");
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .field("when_full", &self.inner.when_full)
            .finish()
    }
}

impl MemoryStore {
    /// Starts building a store with custom limits.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            capacity: DEFAULT_CAPACITY,
            when_full: WhenFull::default(),
            sweep_interval: DEFAULT_SWEEP_INTERVAL,
        }
    }

    /// The number of sessions held, including expired ones not reclaimed yet.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every session expired at `now` and returns how many were dropped. The sweeper
    /// thread calls this on its own; call it to reclaim on demand.
    pub fn reclaim_expired(&self, now: SystemTime) -> usize {
        self.inner.lock().reclaim_expired(now)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated: every mutation
        // below keeps `entries` and `by_expiry` in step before it can panic.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Table {
    fn live(&self, key: &StorageKey, now: SystemTime) -> Option<&Record> {
        self.entries.get(key).filter(|r| r.expires_at > now)
    }

    fn insert(&mut self, key: StorageKey, record: Record) {
        // Drop the old index entry first: it may equal the new one.
        self.remove(&key);
        self.by_expiry.insert((record.expires_at, key));
        self.entries.insert(key, record);
    }

    fn remove(&mut self, key: &StorageKey) -> Option<Record> {
        let old = self.entries.remove(key)?;
        self.by_expiry.remove(&(old.expires_at, *key));
        Some(old)
    }

    fn set_expiry(&mut self, key: &StorageKey, expires_at: SystemTime) {
        if let Some(record) = self.entries.get_mut(key) {
            self.by_expiry.remove(&(record.expires_at, *key));
            record.expires_at = expires_at;
            self.by_expiry.insert((expires_at, *key));
        }
    }

    fn reclaim_expired(&mut self, now: SystemTime) -> usize {
        let mut reclaimed = 0;
        while let Some(&(expires_at, key)) = self.by_expiry.first() {
            if expires_at > now {
                break;
            }
            self.remove(&key);
            reclaimed += 1;
        }
        reclaimed
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        Ok(self.inner.lock().live(key, now).cloned())
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        let mut table = self.inner.lock();
        // A new record is created "now" by the middleware's clock.
        let now = record.created_at;
        if table.entries.contains_key(key) {
            if table.live(key, now).is_some() {
                return Ok(WriteResult::Collision);
            }
            table.remove(key);
        }
        if table.entries.len() >= self.inner.capacity {
            table.reclaim_expired(now);
        }
        if table.entries.len() >= self.inner.capacity {
            match self.inner.when_full {
                WhenFull::Refuse => {
                    return Err(StoreError::new(
                        "creating a session",
                        format!("memory store is full ({} sessions)", self.inner.capacity),
                    ))
                }
                WhenFull::EvictSoonestExpiring => {
                    if let Some(&(_, victim)) = table.by_expiry.first() {
                        table.remove(&victim);
                        tracing::warn!(
                            capacity = self.inner.capacity,
                            "memory store is full: evicted the session closest to expiry"
                        );
                    }
                }
            }
        }
        table.insert(*key, record.clone());
        Ok(WriteResult::Done)
    }

    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let mut table = self.inner.lock();
        if table.live(key, now).is_none() {
            return Ok(WriteResult::Missing);
        }
        if let Some(record) = table.entries.get_mut(key) {
            changes.apply_to(&mut record.data);
        }
        table.set_expiry(key, expires_at);
        Ok(WriteResult::Done)
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let mut table = self.inner.lock();
        if table.live(key, now).is_none() {
            return Ok(WriteResult::Missing);
        }
        table.set_expiry(key, expires_at);
        Ok(WriteResult::Done)
    }

    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let mut table = self.inner.lock();
        if table.live(old, now).is_none() {
            return Ok(WriteResult::Missing);
        }
        if table.live(new, now).is_some() {
            return Ok(WriteResult::Collision);
        }
        let Some(mut record) = table.remove(old) else {
            return Ok(WriteResult::Missing);
        };
        changes.apply_to(&mut record.data);
        record.expires_at = expires_at;
        table.remove(new);
        table.insert(*new, record);
        Ok(WriteResult::Done)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.inner.lock().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
            block_on(store.renew(&key(1), &key(2), &changes, later, now)).unwrap(),
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
}
