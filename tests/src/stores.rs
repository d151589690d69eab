//! Store wrappers for tests: one that counts calls, one that fails on demand.

use std::{
    sync::{
        atomic::{AtomicU8, AtomicUsize, Ordering},
        Arc,
    },
    time::SystemTime,
};

use actix_typed_session::{
    ChangeSet, MemoryStore, Record, SessionStore, StorageKey, StoreError, WriteResult,
};

/// How many times each store operation ran.
#[derive(Debug, Default)]
pub struct Counts {
    pub loads: AtomicUsize,
    pub creates: AtomicUsize,
    pub updates: AtomicUsize,
    pub touches: AtomicUsize,
    pub renews: AtomicUsize,
    pub deletes: AtomicUsize,
}

impl Counts {
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
    /// Every write of any kind.
    pub fn writes(&self) -> usize {
        [
            &self.creates,
            &self.updates,
            &self.touches,
            &self.renews,
            &self.deletes,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
    pub fn get(&self, which: &AtomicUsize) -> usize {
        which.load(Ordering::SeqCst)
    }
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::SeqCst);
}

/// Wraps a store and counts its operations.
pub struct CountingStore<S> {
    inner: S,
    pub counts: Arc<Counts>,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        (
            Self {
                inner,
                counts: counts.clone(),
            },
            counts,
        )
    }
}

impl<S: SessionStore> SessionStore for CountingStore<S> {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        bump(&self.counts.loads);
        self.inner.load(key, now).await
    }
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        bump(&self.counts.creates);
        self.inner.create(key, record).await
    }
    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        bump(&self.counts.updates);
        self.inner.update(key, changes, expires_at, now).await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        bump(&self.counts.touches);
        self.inner.touch(key, expires_at, now).await
    }
    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        bump(&self.counts.renews);
        self.inner.renew(old, new, changes, expires_at, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        bump(&self.counts.deletes);
        self.inner.delete(key).await
    }
}

/// Which operations a [`FailingStore`] fails.
#[derive(Debug, Clone, Default)]
pub struct FailureMode(Arc<AtomicU8>);

impl FailureMode {
    pub fn healthy(&self) {
        self.0.store(0, Ordering::SeqCst);
    }
    pub fn fail_loads(&self) {
        self.0.store(1, Ordering::SeqCst);
    }
    pub fn fail_writes(&self) {
        self.0.store(2, Ordering::SeqCst);
    }
    fn loads_fail(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 1
    }
    fn writes_fail(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 2
    }
}

/// A memory store that fails on demand, with an error whose text must never reach a client.
pub struct FailingStore {
    inner: MemoryStore,
    pub mode: FailureMode,
}

/// Text that appears in the store's error and must appear in logs only.
pub const SECRET_DETAIL: &str = "db.internal:5432 password=hunter2";

impl FailingStore {
    pub fn new() -> (Self, FailureMode) {
        let mode = FailureMode::default();
        (
            Self {
                inner: MemoryStore::default(),
                mode: mode.clone(),
            },
            mode,
        )
    }
}

fn refused(operation: &'static str) -> StoreError {
    StoreError::new(
        operation,
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("connection refused by {SECRET_DETAIL}"),
        ),
    )
}

impl SessionStore for FailingStore {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        if self.mode.loads_fail() {
            return Err(refused("loading a session"));
        }
        self.inner.load(key, now).await
    }
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        if self.mode.writes_fail() {
            return Err(refused("creating a session"));
        }
        self.inner.create(key, record).await
    }
    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        if self.mode.writes_fail() {
            return Err(refused("updating a session"));
        }
        self.inner.update(key, changes, expires_at, now).await
    }
    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        if self.mode.writes_fail() {
            return Err(refused("renewing a session"));
        }
        self.inner.renew(old, new, changes, expires_at, now).await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        if self.mode.writes_fail() {
            return Err(refused("deleting a session"));
        }
        self.inner.delete(key).await
    }
}
