//! The in-process memory store.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::{Duration, SystemTime},
};

use crate::{ChangeSet, OwnedSession, Record, SessionStore, StorageKey, StoreError, WriteResult};

const DEFAULT_CAPACITY: usize = 100_000;
const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// What the [`MemoryStore`] does when a new session arrives and it already holds `capacity`
/// live sessions (expired ones are reclaimed first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhenFull {
    /// Evict a live session to make room (the default): the one closest to its expiry among a
    /// sample of 16, so that a full store never scans all its sessions. The evicted visitor's
    /// next request starts a fresh session; a warning is logged.
    #[default]
    EvictSoonestExpiring,
    /// Refuse the new session: the request that tried to create it fails with the middleware's
    /// opaque failure response. Existing sessions are never dropped.
    Refuse,
}

/// An in-process session store, for a single instance or for development.
///
/// Change sets are applied under a lock (one of 256 shards, so requests of different visitors
/// rarely wait for each other), so parallel requests of one visitor that change different keys
/// both survive. Sessions expire on their idle and absolute deadlines; a
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

/// Independent locks: two requests contend only when their sessions share a shard. 256 (the
/// first byte of the uniform storage key) against 64 before: two threads updating the same
/// 100,000 sessions reached 1.61–1.70 times one thread's rate with 64 and 1.66–1.76 with 256
/// (interleaved runs, same one-thread rate), for 32 KB of locks; the rare operations over all
/// sessions (an owner's sessions, the sweep, ending all of an owner's sessions, which holds every
/// lock at once) visit four times as many shards.
const SHARDS: usize = 256;
/// How many sessions a full store compares to pick the one to evict.
const EVICTION_SAMPLE: usize = 16;
/// The most retired copies a delete follows: one per renew within a grace window.
const MAX_RETIRED_COPIES: usize = 8;

struct Inner {
    shards: [Padded<Mutex<Shard>>; SHARDS],
    /// Sessions held, expired ones not yet reclaimed included.
    len: AtomicUsize,
    capacity: usize,
    when_full: WhenFull,
}

/// A shard's lock on cache lines of its own: locking one shard must not evict the line of
/// another from the other core's cache (two 64-byte lines, as adjacent-line prefetchers pair
/// them).
#[repr(align(128))]
struct Padded<T>(T);

/// One shard of the table. Data is kept as compact JSON bytes, not as a `serde_json::Map`:
/// a session of a few keys costs a fraction of the memory that way, and is decoded only when
/// it is loaded.
///
/// The owner index of the shard's sessions lives in the shard too, so every write keeps it exact
/// under the one lock it already holds. All insertions and removals go through [`Shard::put`]
/// and [`Shard::take`], which maintain the index.
#[derive(Default)]
struct Shard {
    entries: HashMap<StorageKey, Entry>,
    owners: HashMap<Arc<str>, HashSet<StorageKey>>,
    /// A session renewed with a grace window → its retired copy (in any shard), which a delete
    /// of the session ends too. Empty outside grace windows; the sweeper drops dead links.
    predecessors: HashMap<StorageKey, StorageKey>,
}

struct Entry {
    data: Box<[u8]>,
    created_at: SystemTime,
    expires_at: SystemTime,
    last_seen: SystemTime,
    owner: Option<Arc<str>>,
    retired: bool,
}

impl Entry {
    fn encode(record: &Record) -> Result<Self, StoreError> {
        Ok(Self {
            data: encode(&record.data)?,
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_seen: record.last_seen,
            owner: record.owner.as_deref().map(Arc::from),
            retired: record.retired,
        })
    }

    fn decode(&self) -> Result<Record, StoreError> {
        let data = serde_json::from_slice(&self.data)
            .map_err(|e| StoreError::new("decoding a stored session", e))?;
        Ok(Record::new(data, self.created_at, self.expires_at)
            .with_owner(self.owner.as_deref().map(str::to_owned))
            .with_activity(self.last_seen, self.retired))
    }

    /// The session's stored device entry (see `crate::device`): only that entry of the map is
    /// built, the others are skipped.
    fn device_entry(&self) -> Option<serde_json::Value> {
        #[derive(serde::Deserialize)]
        struct Only {
            #[serde(rename = "__session_device")]
            device: Option<serde_json::Value>,
        }
        serde_json::from_slice::<Only>(&self.data).ok()?.device
    }

    fn is_live(&self, now: SystemTime) -> bool {
        self.expires_at > now
    }

    fn is_writable(&self, now: SystemTime) -> bool {
        self.is_live(now) && !self.retired
    }

    /// The owner the entry is indexed under. Retired copies stay indexed, so that ending all of
    /// an owner's sessions reaches an old id in its grace window too.
    fn indexed_owner(&self) -> Option<&Arc<str>> {
        self.owner.as_ref()
    }
}

impl Shard {
    /// Inserts `entry` (replacing any entry of `key`) and indexes it; whether one was replaced.
    fn put(&mut self, key: StorageKey, entry: Entry) -> bool {
        let replaced = self.take(&key).is_some();
        if let Some(owner) = entry.indexed_owner() {
            self.owners.entry(owner.clone()).or_default().insert(key);
        }
        self.entries.insert(key, entry);
        replaced
    }

    /// Removes the entry of `key` and its index entry.
    fn take(&mut self, key: &StorageKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(owner) = entry.indexed_owner() {
            if let Some(keys) = self.owners.get_mut(owner) {
                keys.remove(key);
                if keys.is_empty() {
                    self.owners.remove(owner);
                }
            }
        }
        Some(entry)
    }

    /// Applies `changes` to the live, writable entry of `key`; `false` when there is none.
    fn change(
        &mut self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let Some(entry) = self.entries.get_mut(key).filter(|e| e.is_writable(now)) else {
            return Ok(false);
        };
        if changes.owner().is_none() {
            if !changes.is_empty() {
                // Patched as JSON: the untouched entries are neither decoded nor re-encoded.
                entry.data = match changes.apply_to_json(&entry.data) {
                    Ok(patched) => patched.into_boxed_slice(),
                    Err(_) => {
                        let mut record = entry.decode()?;
                        changes.apply_to(&mut record.data);
                        encode(&record.data)?
                    }
                };
            }
            entry.expires_at = expires_at;
            entry.last_seen = now;
            return Ok(true);
        }
        // The owner changes: re-file the entry so that the index follows.
        let Some(entry) = self.take(key) else {
            return Ok(false);
        };
        let mut record = entry.decode()?;
        changes.apply_to_record(&mut record);
        record.expires_at = expires_at;
        record.last_seen = now;
        let updated = match Entry::encode(&record) {
            Ok(updated) => updated,
            Err(err) => {
                self.put(*key, entry);
                return Err(err);
            }
        };
        self.put(*key, updated);
        Ok(true)
    }

    /// The keys of `owner`'s live, writable sessions in this shard.
    fn owned(&self, owner: &str, now: SystemTime) -> impl Iterator<Item = (&StorageKey, &Entry)> {
        self.owners
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(move |key| {
                let entry = self.entries.get(key)?;
                entry.is_writable(now).then_some((key, entry))
            })
    }
}

fn encode(data: &serde_json::Map<String, serde_json::Value>) -> Result<Box<[u8]>, StoreError> {
    serde_json::to_vec(data)
        .map(Vec::into_boxed_slice)
        .map_err(|e| StoreError::new("encoding a session", e))
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
    /// The most sessions kept at once (at least 1). Creations running in parallel on several
    /// threads can overshoot it by at most one session per thread.
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
            shards: std::array::from_fn(|_| Padded(Mutex::new(Shard::default()))),
            len: AtomicUsize::new(0),
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
            let reclaimed = inner.reclaim_expired(SystemTime::now());
            if reclaimed > 0 {
                tracing::debug!(reclaimed, "memory store reclaimed expired sessions");
            }
        });
    if let Err(err) = spawned {
        // Without the thread, a full store still reclaims expired sessions it samples.
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
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every session expired at `now` and returns how many were dropped. The sweeper
    /// thread calls this on its own; call it to reclaim on demand.
    pub fn reclaim_expired(&self, now: SystemTime) -> usize {
        self.inner.reclaim_expired(now)
    }
}

impl Inner {
    fn shard_of(&self, key: &StorageKey) -> usize {
        usize::from(key.as_bytes()[0]) % SHARDS
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // Every mutation below leaves its shard consistent before anything can panic.
        self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deletes the retired copies a deleted session was renewed from, starting with `previous`
    /// (its link), each linking to the one before it: a logout within the renew grace window
    /// must not leave the old ids readable. Only retired entries, a few at most.
    fn end_retired_copies(&self, mut previous: Option<StorageKey>) {
        for _ in 0..MAX_RETIRED_COPIES {
            let Some(copy) = previous else { return };
            let mut guard = self.lock(self.shard_of(&copy));
            if !guard.entries.get(&copy).is_some_and(|e| e.retired) {
                return;
            }
            guard.take(&copy);
            self.len.fetch_sub(1, Ordering::Relaxed);
            previous = guard.predecessors.remove(&copy);
        }
    }

    fn reclaim_expired(&self, now: SystemTime) -> usize {
        let mut reclaimed = 0;
        for shard in 0..SHARDS {
            let mut guard = self.lock(shard);
            let expired: Vec<StorageKey> = guard
                .entries
                .iter()
                .filter(|(_, e)| !e.is_live(now))
                .map(|(k, _)| *k)
                .collect();
            for key in &expired {
                guard.take(key);
            }
            let Shard {
                entries,
                predecessors,
                ..
            } = &mut *guard;
            predecessors.retain(|key, _| entries.contains_key(key));
            let dropped = expired.len();
            self.len.fetch_sub(dropped, Ordering::Relaxed);
            reclaimed += dropped;
        }
        reclaimed
    }

    /// Makes room for one session in a full store: drops the session closest to expiry among a
    /// sample (an expired one if the sample holds any). Whether a live session may go is the
    /// policy's call. Locks one shard at a time.
    fn make_room(&self, now: SystemTime, start: usize) -> Result<(), StoreError> {
        let mut soonest: Option<(SystemTime, StorageKey)> = None;
        let mut sampled = 0;
        for offset in 0..SHARDS {
            let guard = self.lock((start + offset) % SHARDS);
            for (key, entry) in guard.entries.iter().take(EVICTION_SAMPLE - sampled) {
                sampled += 1;
                if soonest.is_none_or(|(at, _)| entry.expires_at < at) {
                    soonest = Some((entry.expires_at, *key));
                }
            }
            if sampled >= EVICTION_SAMPLE {
                break;
            }
        }
        let Some((expires_at, victim)) = soonest else {
            return Ok(());
        };
        let live = expires_at > now;
        if live && self.when_full == WhenFull::Refuse {
            return Err(StoreError::new(
                "creating a session",
                format!("memory store is full ({} sessions)", self.capacity),
            ));
        }
        let mut guard = self.lock(self.shard_of(&victim));
        if guard.take(&victim).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
            if live {
                tracing::warn!(
                    capacity = self.capacity,
                    "memory store is full: evicted the session closest to expiry in a sample"
                );
            }
        }
        Ok(())
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let inner = &self.inner;
        let guard = inner.lock(inner.shard_of(key));
        match guard.entries.get(key) {
            Some(entry) if entry.is_live(now) => entry.decode().map(Some),
            _ => Ok(None),
        }
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        let inner = &self.inner;
        // A new record is created "now" by the middleware's clock.
        let now = record.created_at;
        let entry = Entry::encode(record)?;
        let shard = inner.shard_of(key);
        if inner.len.load(Ordering::Relaxed) >= inner.capacity {
            inner.make_room(now, shard)?;
        }
        let mut guard = inner.lock(shard);
        if guard.entries.get(key).is_some_and(|e| e.is_live(now)) {
            return Ok(WriteResult::Collision);
        }
        if !guard.put(*key, entry) {
            inner.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(WriteResult::Done)
    }

    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let inner = &self.inner;
        let mut guard = inner.lock(inner.shard_of(key));
        Ok(if guard.change(key, changes, expires_at, now)? {
            WriteResult::Done
        } else {
            WriteResult::Missing
        })
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let inner = &self.inner;
        let mut guard = inner.lock(inner.shard_of(key));
        match guard.entries.get_mut(key).filter(|e| e.is_writable(now)) {
            Some(entry) => {
                entry.expires_at = expires_at;
                entry.last_seen = now;
                Ok(WriteResult::Done)
            }
            None => Ok(WriteResult::Missing),
        }
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
        let inner = &self.inner;
        let (a, b) = (inner.shard_of(old), inner.shard_of(new));
        // Two shards are always locked in index order, so renews cannot deadlock.
        let (mut first, mut second) = match a.cmp(&b) {
            std::cmp::Ordering::Equal => (inner.lock(a), None),
            std::cmp::Ordering::Less => {
                let first = inner.lock(a);
                (first, Some(inner.lock(b)))
            }
            std::cmp::Ordering::Greater => {
                let second = inner.lock(b);
                (inner.lock(a), Some(second))
            }
        };
        if !first.entries.get(old).is_some_and(|e| e.is_writable(now)) {
            return Ok(WriteResult::Missing);
        }
        let target = second.as_deref_mut().unwrap_or(&mut first);
        if target.entries.get(new).is_some_and(|e| e.is_live(now)) {
            return Ok(WriteResult::Collision);
        }
        let Some(entry) = first.take(old) else {
            return Ok(WriteResult::Missing);
        };
        let mut record = entry.decode()?;
        changes.apply_to_record(&mut record);
        record.expires_at = expires_at;
        record.last_seen = now;
        let moved = match Entry::encode(&record) {
            Ok(moved) => moved,
            Err(err) => {
                first.put(*old, entry);
                return Err(err);
            }
        };
        let mut added = 1;
        // The retired copies the old key was renewed from stay linked to the session.
        let older = first.predecessors.remove(old);
        let predecessor = if let Some(until) = retire_until {
            // The old key stays, read-only and out of the index, as it was before this renew.
            let mut retired = entry;
            retired.retired = true;
            retired.expires_at = retired.expires_at.min(until);
            first.put(*old, retired);
            if let Some(older) = older {
                first.predecessors.insert(*old, older);
            }
            Some(*old)
        } else {
            added -= 1;
            older
        };
        let target = second.as_deref_mut().unwrap_or(&mut first);
        if target.put(*new, moved) {
            added -= 1;
        }
        if let Some(predecessor) = predecessor {
            target.predecessors.insert(*new, predecessor);
        }
        match added {
            1 => inner.len.fetch_add(1, Ordering::Relaxed),
            -1 => inner.len.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        Ok(WriteResult::Done)
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        let inner = &self.inner;
        let previous = {
            let mut guard = inner.lock(inner.shard_of(key));
            if guard.take(key).is_some() {
                inner.len.fetch_sub(1, Ordering::Relaxed);
            }
            guard.predecessors.remove(key)
        };
        inner.end_retired_copies(previous);
        Ok(())
    }

    fn indexes_owners(&self) -> bool {
        true
    }

    async fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        let inner = &self.inner;
        let mut listed = Vec::new();
        for shard in 0..SHARDS {
            let guard = inner.lock(shard);
            listed.extend(guard.owned(owner, now).map(|(key, e)| {
                let listed = OwnedSession::new(*key, e.created_at, e.last_seen, e.expires_at);
                match e.device_entry() {
                    Some(entry) => listed.with_device_entry(&entry),
                    None => listed,
                }
            }));
        }
        Ok(listed)
    }

    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let mut guard = inner.lock(inner.shard_of(key));
        let owned = guard
            .entries
            .get(key)
            .filter(|e| !e.retired)
            .and_then(Entry::indexed_owner)
            .is_some_and(|o| &**o == owner);
        if !owned {
            return Ok(false);
        }
        if guard.take(key).is_some() {
            inner.len.fetch_sub(1, Ordering::Relaxed);
        }
        let previous = guard.predecessors.remove(key);
        drop(guard);
        inner.end_retired_copies(previous);
        Ok(true)
    }

    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        let inner = &self.inner;
        // Every shard is locked (in index order) for one atomic step: no session of `owner` can
        // be filed in a shard already visited while the others are being emptied.
        let mut guards: Vec<_> = (0..SHARDS).map(|shard| inner.lock(shard)).collect();
        let mut deleted = Vec::new();
        for guard in &mut guards {
            let keys: Vec<StorageKey> = guard
                .owners
                .get(owner)
                .into_iter()
                .flatten()
                .filter(|k| Some(*k) != keep)
                .copied()
                .collect();
            for key in keys {
                if let Some(entry) = guard.take(&key) {
                    inner.len.fetch_sub(1, Ordering::Relaxed);
                    // Retired copies go too, but only live sessions are reported.
                    if !entry.retired {
                        deleted.push(key);
                    }
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests;
