//! Store wrappers for tests: one wrapper that runs a hook before every operation, and the two
//! hooks the tests use (count calls; fail on demand).

use std::{
    sync::{
        atomic::{AtomicU8, AtomicUsize, Ordering},
        Arc,
    },
    time::SystemTime,
};

use actix_typed_session::{
    ChangeSet, MemoryStore, OwnedSession, Record, SessionStore, StorageKey, StoreError, WriteResult,
};

/// A store operation, as seen by a [`HookedStore`]'s hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Load,
    Create,
    Update,
    Touch,
    Renew,
    Delete,
    /// Listing or ending an owner's sessions.
    Owners,
}

impl Op {
    /// Whether the operation writes.
    pub fn writes(self) -> bool {
        self != Op::Load
    }
}

type Hook = dyn Fn(Op) -> Result<(), StoreError> + Send + Sync;

/// Wraps a store and runs a hook before each operation; an `Err` from the hook is returned
/// instead of running the operation.
pub struct HookedStore<S> {
    inner: S,
    hook: Box<Hook>,
}

impl<S> HookedStore<S> {
    pub fn new(
        inner: S,
        hook: impl Fn(Op) -> Result<(), StoreError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            hook: Box::new(hook),
        }
    }
}

impl<S: SessionStore> SessionStore for HookedStore<S> {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        (self.hook)(Op::Load)?;
        self.inner.load(key, now).await
    }
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        (self.hook)(Op::Create)?;
        self.inner.create(key, record).await
    }
    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        (self.hook)(Op::Update)?;
        self.inner.update(key, changes, expires_at, now).await
    }
    async fn update_returning(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(WriteResult, Option<Record>), StoreError> {
        (self.hook)(Op::Update)?;
        self.inner
            .update_returning(key, changes, expires_at, now)
            .await
    }
    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        (self.hook)(Op::Touch)?;
        self.inner.touch(key, expires_at, now).await
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
        (self.hook)(Op::Renew)?;
        self.inner
            .renew(old, new, changes, expires_at, now, retire_until)
            .await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        (self.hook)(Op::Delete)?;
        self.inner.delete(key).await
    }
    fn indexes_owners(&self) -> bool {
        self.inner.indexes_owners()
    }
    async fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        (self.hook)(Op::Owners)?;
        self.inner.list_owned(owner, now).await
    }
    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        (self.hook)(Op::Owners)?;
        self.inner.delete_owned(owner, key).await
    }
    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        (self.hook)(Op::Owners)?;
        self.inner.delete_all_owned(owner, keep).await
    }
}

/// How many times each store operation ran.
#[derive(Debug, Default)]
pub struct Counts {
    pub loads: AtomicUsize,
    pub creates: AtomicUsize,
    pub updates: AtomicUsize,
    pub touches: AtomicUsize,
    pub renews: AtomicUsize,
    pub deletes: AtomicUsize,
    pub owners: AtomicUsize,
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
    fn counter(&self, op: Op) -> &AtomicUsize {
        match op {
            Op::Load => &self.loads,
            Op::Create => &self.creates,
            Op::Update => &self.updates,
            Op::Touch => &self.touches,
            Op::Renew => &self.renews,
            Op::Delete => &self.deletes,
            Op::Owners => &self.owners,
        }
    }
}

/// A store that counts its operations.
pub struct CountingStore;

impl CountingStore {
    /// Wraps `inner`; the counts are shared with the returned handle.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<S: SessionStore>(inner: S) -> (HookedStore<S>, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let seen = counts.clone();
        let store = HookedStore::new(inner, move |op| {
            seen.counter(op).fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        (store, counts)
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
    fn fails(&self, op: Op) -> bool {
        match self.0.load(Ordering::SeqCst) {
            1 => !op.writes(),
            2 => op.writes(),
            _ => false,
        }
    }
}

/// Text that appears in the store's error and must appear in logs only.
pub const SECRET_DETAIL: &str = "db.internal:5432 password=hunter2";

/// A memory store that fails on demand, with an error whose text must never reach a client.
pub struct FailingStore;

impl FailingStore {
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (HookedStore<MemoryStore>, FailureMode) {
        let mode = FailureMode::default();
        let switch = mode.clone();
        let store = HookedStore::new(MemoryStore::default(), move |op| {
            if switch.fails(op) {
                return Err(refused(op));
            }
            Ok(())
        });
        (store, mode)
    }
}

fn refused(op: Op) -> StoreError {
    let operation = match op {
        Op::Load => "loading a session",
        Op::Create => "creating a session",
        Op::Update | Op::Touch => "updating a session",
        Op::Renew => "renewing a session",
        Op::Delete => "deleting a session",
        Op::Owners => "listing an owner's sessions",
    };
    StoreError::new(
        operation,
        std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("connection refused by {SECRET_DETAIL}"),
        ),
    )
}
