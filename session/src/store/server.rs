//! The trait server-side stores implement, and its object-safe twin used by the middleware.

use std::{error::Error as StdError, fmt, future::Future, time::SystemTime};

use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};

use crate::{ChangeSet, StorageKey};

/// One stored session as a server-side store hands it back.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The session's entries.
    pub data: Map<String, Value>,
    /// When the session was first created (the start of its absolute timeout).
    pub created_at: SystemTime,
    /// When the session expires unless it is used again (the idle deadline, capped by the
    /// absolute one).
    pub expires_at: SystemTime,
}

impl Record {
    /// Builds a record, e.g. from a row a store has read.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use actix_typed_session::Record;
    ///
    /// let now = SystemTime::now();
    /// let record = Record::new(Default::default(), now, now + Duration::from_secs(60));
    /// assert!(record.data.is_empty());
    /// ```
    pub fn new(data: Map<String, Value>, created_at: SystemTime, expires_at: SystemTime) -> Self {
        Self {
            data,
            created_at,
            expires_at,
        }
    }
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteResult {
    /// The write happened.
    Done,
    /// The session it was meant for no longer exists (purged, renewed or expired in the meantime);
    /// nothing was written. The middleware then does not bring the session back.
    Missing,
    /// A new session could not be filed because its key is taken; nothing was written. The
    /// middleware retries with a fresh id.
    Collision,
}

/// A store failure: the backend was unreachable, refused the operation or returned garbage.
///
/// The middleware logs it with its whole `source()` chain and answers the client with an opaque
/// error response that carries no detail.
///
/// ```
/// use actix_typed_session::StoreError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = StoreError::new("loading a session", io);
/// assert_eq!(err.to_string(), "session store failed while loading a session");
/// assert!(std::error::Error::source(&err).is_some());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct StoreError {
    operation: &'static str,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl StoreError {
    /// Wraps the store's own error; `operation` says what was being done ("loading a session").
    pub fn new(
        operation: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            operation,
            source: source.into(),
        }
    }

    /// What the store was doing when it failed.
    pub fn operation(&self) -> &'static str {
        self.operation
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session store failed while {}", self.operation)
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A server-side session store: the cookie carries only an opaque id, and the data lives here.
///
/// Stores receive [`StorageKey`]s (hashes of ids), never ids. Every write is conditional, so a
/// store never brings back a session that was purged, renewed or expired in the meantime, and
/// every change arrives as a [`ChangeSet`] to merge, not as a whole map to overwrite.
///
/// The futures need not be `Send`: actix-web runs each worker on one thread. The store value
/// itself is shared by all workers, so it is `Send + Sync` (a connection pool, an `Arc`).
/// `now` is the middleware's clock; stores compare expiry against it.
///
/// ```
/// use std::{cell::RefCell, collections::HashMap, sync::Mutex, time::SystemTime};
/// use actix_typed_session::{ChangeSet, Record, SessionStore, StorageKey, StoreError, WriteResult};
///
/// /// A toy store: one map behind a mutex (see `MemoryStore` for the real one).
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<StorageKey, Record>>);
///
/// impl SessionStore for MapStore {
///     async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
///         Ok(self.0.lock().unwrap().get(key).filter(|r| r.expires_at > now).cloned())
///     }
///     async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(key) { return Ok(WriteResult::Collision) }
///         map.insert(*key, record.clone());
///         Ok(WriteResult::Done)
///     }
///     async fn update(&self, key: &StorageKey, changes: &ChangeSet, expires_at: SystemTime, now: SystemTime)
///         -> Result<WriteResult, StoreError> {
///         let mut map = self.0.lock().unwrap();
///         match map.get_mut(key).filter(|r| r.expires_at > now) {
///             Some(r) => { changes.apply_to(&mut r.data); r.expires_at = expires_at; Ok(WriteResult::Done) }
///             None => Ok(WriteResult::Missing),
///         }
///     }
///     async fn renew(&self, old: &StorageKey, new: &StorageKey, changes: &ChangeSet,
///         expires_at: SystemTime, now: SystemTime) -> Result<WriteResult, StoreError> {
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(new) { return Ok(WriteResult::Collision) }
///         match map.remove(old).filter(|r| r.expires_at > now) {
///             Some(mut r) => { changes.apply_to(&mut r.data); r.expires_at = expires_at; map.insert(*new, r); Ok(WriteResult::Done) }
///             None => Ok(WriteResult::Missing),
///         }
///     }
///     async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
///         self.0.lock().unwrap().remove(key);
///         Ok(())
///     }
/// }
/// ```
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a session. Returns `None` when it does not exist or has expired (`expires_at <= now`):
    /// an expired session must never be returned.
    fn load(
        &self,
        key: &StorageKey,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>>;

    /// Files a new session. Never overwrites: an existing key is [`WriteResult::Collision`].
    fn create(
        &self,
        key: &StorageKey,
        record: &Record,
    ) -> impl Future<Output = Result<WriteResult, StoreError>>;

    /// Applies `changes` to a live session and moves its expiry to `expires_at`, in one atomic
    /// step. A session that is gone or expired (`expires_at <= now`) is [`WriteResult::Missing`]
    /// and is not created.
    fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<WriteResult, StoreError>>;

    /// Moves only the expiry of a live session (the throttled idle refresh). The default calls
    /// [`update`](Self::update) with an empty change set; stores override it with a cheaper write.
    fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<WriteResult, StoreError>> {
        async move {
            self.update(key, &ChangeSet::default(), expires_at, now)
                .await
        }
    }

    /// Moves a live session from `old` to `new`, applying `changes`, and deletes `old`, in one
    /// atomic step. [`WriteResult::Missing`] when `old` is gone or expired,
    /// [`WriteResult::Collision`] when `new` is taken; in both cases nothing changes.
    fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<WriteResult, StoreError>>;

    /// Deletes a session if it exists.
    fn delete(&self, key: &StorageKey) -> impl Future<Output = Result<(), StoreError>>;
}

/// The object-safe form of [`SessionStore`], so that one registry can hold stores of
/// different types.
pub(crate) trait DynStore: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn create<'a>(
        &'a self,
        key: &'a StorageKey,
        record: &'a Record,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>>;
    fn update<'a>(
        &'a self,
        key: &'a StorageKey,
        changes: &'a ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>>;
    fn touch<'a>(
        &'a self,
        key: &'a StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>>;
    fn renew<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        changes: &'a ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StorageKey) -> LocalBoxFuture<'a, Result<(), StoreError>>;
}

pub(crate) struct ErasedStore<S>(pub(crate) S);

impl<S: SessionStore> DynStore for ErasedStore<S> {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<S>()
    }
    fn load<'a>(
        &'a self,
        key: &'a StorageKey,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(self.0.load(key, now))
    }
    fn create<'a>(
        &'a self,
        key: &'a StorageKey,
        record: &'a Record,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>> {
        Box::pin(self.0.create(key, record))
    }
    fn update<'a>(
        &'a self,
        key: &'a StorageKey,
        changes: &'a ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>> {
        Box::pin(self.0.update(key, changes, expires_at, now))
    }
    fn touch<'a>(
        &'a self,
        key: &'a StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>> {
        Box::pin(self.0.touch(key, expires_at, now))
    }
    fn renew<'a>(
        &'a self,
        old: &'a StorageKey,
        new: &'a StorageKey,
        changes: &'a ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>> {
        Box::pin(self.0.renew(old, new, changes, expires_at, now))
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> LocalBoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.delete(key))
    }
}
