//! A cache in front of a durable store: reads from the cache, writes to the durable store first.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{
    BuildError, ChangeSet, OwnedSession, Record, SessionStore, StorageKey, StoreError, WriteResult,
};

const DEFAULT_STALENESS: Duration = Duration::from_secs(5);
const DEFAULT_CAPACITY: usize = 10_000;
/// Write counters, one per stripe of keys (see [`CachedStore`]'s fill check).
const STRIPES: usize = 1024;

/// Where a [`CachedStore`] keeps copies of sessions: [`LocalCache`] (in-process) or a
/// [`RedisStore`](crate::RedisStore) (shared by all instances; feature `redis`).
///
/// A cache holds copies only. It may forget anything at any time, and a copy must stop being
/// served after `fresh_for` (the staleness bound) has passed since it was put.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use actix_typed_session::{LocalCache, Record, SessionCache, StorageKey};
///
/// # actix_web::rt::System::new().block_on(async {
/// let cache = LocalCache::default();
/// let key = StorageKey::from_bytes([1; 32]);
/// let now = SystemTime::now();
/// let record = Record::new(Default::default(), now, now + Duration::from_secs(60));
/// cache.put(&key, &record, now, Duration::from_secs(5)).await.unwrap();
/// assert_eq!(cache.get(&key, now).await.unwrap(), Some(record));
/// cache.invalidate(&key).await.unwrap();
/// assert_eq!(cache.get(&key, now).await.unwrap(), None);
/// # });
/// ```
pub trait SessionCache: Send + Sync + 'static {
    /// A fresh copy of a live session (`expires_at > now`), if the cache has one.
    fn get(
        &self,
        key: &StorageKey,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>>;

    /// Keeps a copy of `record` (overwriting any), to be served for at most `fresh_for`.
    fn put(
        &self,
        key: &StorageKey,
        record: &Record,
        now: SystemTime,
        fresh_for: Duration,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Drops the copy of a session, if any.
    fn invalidate(&self, key: &StorageKey) -> impl Future<Output = Result<(), StoreError>>;

    /// Whether several application instances share this cache (`false` by default). A
    /// [`CachedStore`] in front of a shared cache does not write updates through unless told to
    /// (see [`CachedStoreBuilder::write_through`]): its guard against overlapping writes only
    /// sees its own instance's.
    fn is_shared(&self) -> bool {
        false
    }
}

/// An in-process [`SessionCache`]: a bounded map of copies, each served for at most the
/// staleness bound of its [`CachedStore`] (measured in real time).
///
/// When full, it first drops stale copies, then arbitrary ones: a dropped copy only costs one
/// read of the durable store.
///
/// ```
/// use actix_typed_session::LocalCache;
///
/// let cache = LocalCache::with_capacity(50_000);
/// assert!(cache.is_empty());
/// ```
#[derive(Clone)]
pub struct LocalCache {
    inner: Arc<Mutex<Copies>>,
    capacity: usize,
}

struct Copies {
    entries: HashMap<StorageKey, Entry>,
    last_sweep: Instant,
}

struct Entry {
    record: Record,
    fresh_until: Instant,
}

impl Default for LocalCache {
    /// Room for 10,000 sessions.
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl LocalCache {
    /// A cache with room for `capacity` sessions (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Copies {
                entries: HashMap::new(),
                last_sweep: Instant::now(),
            })),
            capacity: capacity.max(1),
        }
    }

    /// How many copies it holds, stale ones included.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether it holds no copy.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Copies> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SessionCache for LocalCache {
    async fn get(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let mut copies = self.lock();
        match copies.entries.get(key) {
            Some(c) if c.fresh_until > Instant::now() && c.record.expires_at > now => {
                Ok(Some(c.record.clone()))
            }
            Some(_) => {
                copies.entries.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(
        &self,
        key: &StorageKey,
        record: &Record,
        _now: SystemTime,
        fresh_for: Duration,
    ) -> Result<(), StoreError> {
        let at = Instant::now();
        let mut copies = self.lock();
        if copies.entries.len() >= self.capacity && !copies.entries.contains_key(key) {
            if at.duration_since(copies.last_sweep) >= fresh_for / 4 {
                copies.entries.retain(|_, c| c.fresh_until > at);
                copies.last_sweep = at;
            }
            if copies.entries.len() >= self.capacity {
                let victim = copies.entries.keys().next().copied();
                if let Some(victim) = victim {
                    copies.entries.remove(&victim);
                }
            }
        }
        copies.entries.insert(
            *key,
            Entry {
                record: record.clone(),
                fresh_until: at + fresh_for,
            },
        );
        Ok(())
    }

    async fn invalidate(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.lock().entries.remove(key);
        Ok(())
    }
}

/// A [`SessionStore`] that puts a cache in front of a durable store, e.g. a [`LocalCache`] or
/// Redis in front of PostgreSQL.
///
/// - **Reads** ask the cache first; on a miss they load from the durable store and put a copy
///   in the cache, to be served for at most the staleness bound.
/// - **Writes** (create, update, refresh, renew, delete) go to the durable store first, with all
///   its guarantees (atomic change sets, conditional writes); only then is the cached copy
///   dropped (or replaced, see below). A crash between the two leaves the cache *older* than
///   the truth, never newer, and never holding a session the durable store does not.
/// - **Updates write through** to a [`LocalCache`] when the durable store gives the updated
///   session back in the same step ([`PostgresStore`](crate::PostgresStore) does): that record
///   becomes the cached copy, so a request that reads and writes its session costs one durable
///   round trip, not two. An update that overlapped another write of the same key drops the
///   copy instead (see [`write_through`](CachedStoreBuilder::write_through), also for shared
///   caches).
/// - A cache that fails is logged and bypassed: the request is served from the durable store.
///
/// # Staleness: the trade-off
/// A copy may be served for up to the staleness bound ([`max_staleness`](CachedStoreBuilder::max_staleness),
/// 5 seconds by default) after the durable store changed:
///
/// - With a [`LocalCache`] and **several application instances**, a write on one instance is not
///   seen by the others' caches: they may serve the old data, or a session that was logged out
///   on another instance, for up to the bound. Writes stay safe: they are change sets applied
///   to the durable store, so nothing is lost and nothing purged comes back; but a handler that
///   reads a stale value and writes a value computed from it overwrites the newer one.
///   Route a visitor to one instance (sticky sessions), keep the bound short, or use a shared
///   cache when that matters.
/// - On **one instance**, its own writes replace or drop its copies, so it reads its own
///   writes; a read or an update that overlapped another write of the same key does not leave
///   an older copy behind (a per-key-stripe write counter, checked before and after each put).
/// - With a **Redis cache** shared by all instances, every write drops the shared copy (updates
///   do not write through to it by default), so staleness only arises from such races or from
///   a failed invalidation, again for at most the bound (the copy's Redis TTL).
///
/// A shorter bound means more reads reach the durable store.
///
/// ```
/// use std::time::Duration;
/// use actix_typed_session::{CachedStore, LocalCache, Key, MemoryStore, SessionMiddleware};
///
/// // In production the durable store is e.g. a `PostgresStore`.
/// let durable = MemoryStore::default();
/// let store = CachedStore::builder(LocalCache::default(), durable)
///     .max_staleness(Duration::from_secs(2))
///     .build()
///     .unwrap();
/// let sessions = SessionMiddleware::builder(Key::generate())
///     .backend("cached", store)
///     .build()
///     .unwrap();
/// ```
pub struct CachedStore<C, D> {
    cache: C,
    durable: D,
    fresh_for: Duration,
    write_through: bool,
    writes: Arc<[AtomicU64; STRIPES]>,
}

impl<C: Clone, D: Clone> Clone for CachedStore<C, D> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            durable: self.durable.clone(),
            fresh_for: self.fresh_for,
            write_through: self.write_through,
            writes: self.writes.clone(),
        }
    }
}

impl<C: std::fmt::Debug, D: std::fmt::Debug> std::fmt::Debug for CachedStore<C, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("cache", &self.cache)
            .field("durable", &self.durable)
            .field("max_staleness", &self.fresh_for)
            .field("write_through", &self.write_through)
            .finish()
    }
}

/// Builds a [`CachedStore`]; start with [`CachedStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct CachedStoreBuilder<C, D> {
    cache: C,
    durable: D,
    fresh_for: Duration,
    write_through: bool,
}

impl<C, D> CachedStoreBuilder<C, D> {
    /// The longest a cached copy is served after it was read from the durable store (default
    /// 5 seconds): the bound on how stale a read can be. See [`CachedStore`] for the trade-off.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.fresh_for = bound;
        self
    }

    /// Whether an update keeps the session as the durable store gave it back in the same step
    /// as the cached copy (`true`), or only drops the copy (`false`). The default is `true` for
    /// a cache of one instance ([`LocalCache`]) and `false` for a cache that instances share
    /// ([`SessionCache::is_shared`]; the Redis cache).
    ///
    /// With a durable store that gives the record back (see
    /// [`SessionStore::update_returning`]; [`PostgresStore`](crate::PostgresStore) does), a
    /// request that reads and writes its session then costs one durable round trip instead of
    /// two: the next request is served from the copy. Durable stores that give nothing back are
    /// unaffected.
    ///
    /// The copy is kept only when no other write of the same key (strictly: of the same
    /// 1-in-1024 slice of keys) ended while the update was in flight; otherwise it is dropped,
    /// so a slow update does not leave an older copy over a newer write. That guard sees the
    /// writes made through this `CachedStore` and its clones only (build it once, clone it into
    /// the workers). With a shared cache, two instances updating one session at the same
    /// moment can therefore leave the older of the two results as the shared copy, or a copy of
    /// a session another instance just logged out, for up to the staleness bound: turn it on
    /// for a shared cache only when one visitor's requests reach one instance.
    ///
    /// ```
    /// use actix_typed_session::{CachedStore, LocalCache, MemoryStore};
    ///
    /// let store = CachedStore::builder(LocalCache::default(), MemoryStore::default())
    ///     .write_through(false)
    ///     .build()
    ///     .unwrap();
    /// assert!(!store.writes_through());
    /// ```
    pub fn write_through(mut self, keep: bool) -> Self {
        self.write_through = keep;
        self
    }

    /// Checks the settings and builds the store.
    pub fn build(self) -> Result<CachedStore<C, D>, BuildError> {
        if self.fresh_for.is_zero() {
            return Err(BuildError::Timeouts(
                "the cache's staleness bound must be longer than zero",
            ));
        }
        Ok(CachedStore {
            cache: self.cache,
            durable: self.durable,
            fresh_for: self.fresh_for,
            write_through: self.write_through,
            writes: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
        })
    }
}

impl<C: SessionCache, D: SessionStore> CachedStore<C, D> {
    /// Starts building a store that caches `durable` in `cache`.
    pub fn builder(cache: C, durable: D) -> CachedStoreBuilder<C, D> {
        CachedStoreBuilder {
            write_through: !cache.is_shared(),
            cache,
            durable,
            fresh_for: DEFAULT_STALENESS,
        }
    }

    /// A store that caches `durable` in `cache`, with the default staleness bound (5 seconds).
    pub fn new(cache: C, durable: D) -> Self {
        Self::builder(cache, durable)
            .build()
            .expect("the default staleness bound is valid")
    }

    /// The cache.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    /// The durable store.
    pub fn durable(&self) -> &D {
        &self.durable
    }

    /// Whether updates keep the record the durable store gives back as the cached copy (see
    /// [`CachedStoreBuilder::write_through`]).
    pub fn writes_through(&self) -> bool {
        self.write_through
    }

    fn stripe(&self, key: &StorageKey) -> &AtomicU64 {
        let b = key.as_bytes();
        &self.writes[usize::from(u16::from_le_bytes([b[0], b[1]])) % STRIPES]
    }

    /// Runs after every durable write, whatever its outcome: counts the write (so that a read
    /// that raced it does not fill the cache) and drops the cached copy.
    async fn forget(&self, key: &StorageKey) {
        self.stripe(key).fetch_add(1, Ordering::SeqCst);
        self.drop_copy(key).await;
    }

    async fn drop_copy(&self, key: &StorageKey) {
        if let Err(err) = self.cache.invalidate(key).await {
            warn("dropping a cached session", &err);
        }
    }

    /// Puts `record` as the cached copy of `key` if its stripe's write count is still
    /// `expected`, and drops the copy again if a write ended while it was being put.
    ///
    /// Every write counts itself *before* its own cache action (a put or a drop). So of two
    /// operations that overlap, the one that checks last sees the other's count and does not
    /// put; and a put that a write's drop overtook is caught by the second check. What stays in
    /// the cache is therefore never older than the last write that ended through this store,
    /// as long as the cache does what it acknowledges and the request is not cancelled between
    /// the put and the second check (with a network cache; a failed put is dropped again).
    /// Returns whether it acted on the cache (the copy may have been dropped again since);
    /// `false` when it left the cache as it was.
    async fn fill(
        &self,
        key: &StorageKey,
        record: &Record,
        expected: u64,
        now: SystemTime,
    ) -> bool {
        let stripe = self.stripe(key);
        if record.retired || stripe.load(Ordering::SeqCst) != expected {
            return false;
        }
        let put = self.cache.put(key, record, now, self.fresh_for).await;
        if let Err(err) = &put {
            // The put may still land (a network cache): drop whatever it left.
            warn("caching a session", err);
        }
        if put.is_err() || stripe.load(Ordering::SeqCst) != expected {
            self.drop_copy(key).await;
        }
        true
    }
}

fn warn(what: &str, err: &StoreError) {
    tracing::warn!(
        error = %err,
        cause = %std::error::Error::source(err).map(ToString::to_string).unwrap_or_default(),
        "session cache failed while {what}; going on without it"
    );
}

impl<C: SessionCache, D: SessionStore> SessionStore for CachedStore<C, D> {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        match self.cache.get(key, now).await {
            Ok(Some(record)) => return Ok(Some(record)),
            Ok(None) => {}
            Err(err) => warn("reading a session", &err),
        }
        let writes = self.stripe(key).load(Ordering::SeqCst);
        let record = self.durable.load(key, now).await?;
        // Retired copies (an old id in its renew grace window) are not cached (`fill` skips
        // them): they live for seconds, and ending an owner's sessions deletes them in the
        // durable store, which a cached copy would outlive.
        if let Some(record) = &record {
            self.fill(key, record, writes, now).await;
        }
        Ok(record)
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        let result = self.durable.create(key, record).await;
        if matches!(result, Ok(WriteResult::Collision)) {
            // Nothing was written: the copy of the existing session (if any) stays right.
            return result;
        }
        self.forget(key).await;
        result
    }

    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        if !self.write_through {
            let result = self.durable.update(key, changes, expires_at, now).await;
            self.forget(key).await;
            return result;
        }
        let stripe = self.stripe(key);
        let before = stripe.load(Ordering::SeqCst);
        let result = self
            .durable
            .update_returning(key, changes, expires_at, now)
            .await;
        let mine = stripe.fetch_add(1, Ordering::SeqCst) + 1;
        let put = match &result {
            // `mine == before + 1`: no other write of the stripe ended while this one was in
            // flight (`fill` checks that again after its put).
            Ok((WriteResult::Done, Some(record))) if mine == before + 1 => {
                self.fill(key, record, mine, now).await
            }
            _ => false,
        };
        if !put {
            self.drop_copy(key).await;
        }
        result.map(|(result, _)| result)
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let result = self.durable.touch(key, expires_at, now).await;
        self.forget(key).await;
        result
    }

    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        let result = self
            .durable
            .renew(old, new, changes, expires_at, now, retire_until)
            .await;
        self.forget(old).await;
        self.forget(new).await;
        result
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        let result = self.durable.delete(key).await;
        self.forget(key).await;
        result
    }

    fn indexes_owners(&self) -> bool {
        self.durable.indexes_owners()
    }

    async fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        self.durable.list_owned(owner, now).await
    }

    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        let result = self.durable.delete_owned(owner, key).await;
        self.forget(key).await;
        result
    }

    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        let deleted = match self.durable.delete_all_owned(owner, keep).await {
            Ok(deleted) => deleted,
            Err(err) => {
                // Some sessions may be gone without their keys being known: no fill that is in
                // flight now may cache any of them.
                for stripe in self.writes.iter() {
                    stripe.fetch_add(1, Ordering::SeqCst);
                }
                return Err(err);
            }
        };
        for key in &deleted {
            self.forget(key).await;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(now: SystemTime) -> Record {
        Record::new(Default::default(), now, now + Duration::from_secs(60))
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        actix_web::rt::System::new().block_on(f)
    }

    #[test]
    fn local_copies_expire_after_the_staleness_bound() {
        block_on(async {
            let cache = LocalCache::default();
            let key = StorageKey::from_bytes([7; 32]);
            let now = SystemTime::now();
            cache
                .put(&key, &record(now), now, Duration::from_millis(30))
                .await
                .unwrap();
            assert!(cache.get(&key, now).await.unwrap().is_some());
            std::thread::sleep(Duration::from_millis(40));
            assert!(cache.get(&key, now).await.unwrap().is_none());
            assert!(cache.is_empty(), "a stale copy is dropped when found");
        });
    }

    #[test]
    fn local_copies_of_expired_sessions_are_never_served() {
        block_on(async {
            let cache = LocalCache::default();
            let key = StorageKey::from_bytes([7; 32]);
            let now = SystemTime::now();
            cache
                .put(&key, &record(now), now, Duration::from_secs(60))
                .await
                .unwrap();
            let later = now + Duration::from_secs(61);
            assert!(cache.get(&key, later).await.unwrap().is_none());
        });
    }

    #[test]
    fn a_full_local_cache_stays_within_its_capacity() {
        block_on(async {
            let cache = LocalCache::with_capacity(3);
            let now = SystemTime::now();
            for n in 0..10 {
                let key = StorageKey::from_bytes([n; 32]);
                cache
                    .put(&key, &record(now), now, Duration::from_secs(60))
                    .await
                    .unwrap();
                assert!(cache.len() <= 3);
            }
            let newest = StorageKey::from_bytes([9; 32]);
            assert!(cache.get(&newest, now).await.unwrap().is_some());
        });
    }
}
