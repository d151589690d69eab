//! The trait server-side stores implement, and its object-safe twin used by the middleware.

use std::{error::Error as StdError, fmt, future::Future, time::SystemTime};

use futures_util::future::LocalBoxFuture;
use serde_json::{Map, Value};

use crate::{ChangeSet, StorageKey};

/// One stored session as a server-side store hands it back.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// The session's entries.
    pub data: Map<String, Value>,
    /// When the session was first created (the start of its absolute timeout).
    pub created_at: SystemTime,
    /// When the session expires unless it is used again (the idle deadline, capped by the
    /// absolute one).
    pub expires_at: SystemTime,
    /// When the session was last written: its creation, a change, or a (throttled) idle refresh.
    pub last_seen: SystemTime,
    /// The owner the session is tied to (the logged-in user), if any; stores that
    /// [index owners](SessionStore::indexes_owners) list it under this owner.
    pub owner: Option<String>,
    /// The session was renewed: this record is the old id's read-only copy, kept for the renew
    /// grace window so that requests already in flight with the old id are not logged out.
    /// Stores never apply writes to a retired record.
    pub retired: bool,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Entries and owner are the application's data: show only their shape.
        f.debug_struct("Record")
            .field("keys", &self.data.len())
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("last_seen", &self.last_seen)
            .field("owned", &self.owner.is_some())
            .field("retired", &self.retired)
            .finish()
    }
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
            last_seen: created_at,
            owner: None,
            retired: false,
        }
    }

    /// The same record, tied to `owner`.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use actix_typed_session::Record;
    ///
    /// let now = SystemTime::now();
    /// let record = Record::new(Default::default(), now, now + Duration::from_secs(60))
    ///     .with_owner(Some("alice".into()));
    /// assert_eq!(record.owner.as_deref(), Some("alice"));
    /// ```
    pub fn with_owner(mut self, owner: Option<String>) -> Self {
        self.owner = owner;
        self
    }

    /// The same record with its `last_seen` and `retired` fields set, e.g. from a row a store has
    /// read.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use actix_typed_session::Record;
    ///
    /// let then = SystemTime::now();
    /// let now = then + Duration::from_secs(5);
    /// let record = Record::new(Default::default(), then, now + Duration::from_secs(60))
    ///     .with_activity(now, true);
    /// assert_eq!(record.last_seen, now);
    /// assert!(record.retired);
    /// ```
    pub fn with_activity(mut self, last_seen: SystemTime, retired: bool) -> Self {
        self.last_seen = last_seen;
        self.retired = retired;
        self
    }
}

/// One live session of an owner, as [`SessionStore::list_owned`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnedSession {
    /// The session's storage key (a hash of its id; it cannot be turned back into the id).
    pub key: StorageKey,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When the session was last written.
    pub last_seen: SystemTime,
    /// When the session expires unless it is used again.
    pub expires_at: SystemTime,
    /// A short description of the device the session was tied to its owner from ("Firefox on
    /// Linux"), if one was recorded (see [`with_device_entry`](Self::with_device_entry)).
    pub device: Option<String>,
    /// The client address recorded with the owner, if the middleware records addresses.
    pub address: Option<String>,
}

impl OwnedSession {
    /// Describes one owned session, e.g. from a row a store has read.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use actix_typed_session::{OwnedSession, StorageKey};
    ///
    /// let now = SystemTime::now();
    /// let listed = OwnedSession::new(StorageKey::from_bytes([7; 32]), now, now, now + Duration::from_secs(60));
    /// assert!(listed.expires_at > listed.last_seen);
    /// ```
    pub fn new(
        key: StorageKey,
        created_at: SystemTime,
        last_seen: SystemTime,
        expires_at: SystemTime,
    ) -> Self {
        Self {
            key,
            created_at,
            last_seen,
            expires_at,
            device: None,
            address: None,
        }
    }

    /// Adds the device recorded with the session: `entry` is the value of the reserved entry
    /// `__session_device` of the session's stored map (an object with the optional string
    /// fields `device` and `address`, each cut to 64 bytes here). A custom store's
    /// `list_owned` passes what it stored under that key; anything else records no device.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use actix_typed_session::{OwnedSession, StorageKey};
    ///
    /// let now = SystemTime::now();
    /// let stored = serde_json::json!({"device": "Firefox on Linux"});
    /// let listed = OwnedSession::new(StorageKey::from_bytes([7; 32]), now, now, now)
    ///     .with_device_entry(&stored);
    /// assert_eq!(listed.device.as_deref(), Some("Firefox on Linux"));
    /// assert_eq!(listed.address, None);
    /// ```
    pub fn with_device_entry(mut self, entry: &serde_json::Value) -> Self {
        let device = crate::device::Device::from_value(entry);
        self.device = device.description;
        self.address = device.address;
        self
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

    /// The error of a store that does not implement `operation` (the default of the owner-index
    /// methods of [`SessionStore`]).
    ///
    /// ```
    /// use actix_typed_session::StoreError;
    ///
    /// let err = StoreError::unsupported("listing an owner's sessions");
    /// assert!(std::error::Error::source(&err).unwrap().to_string().contains("does not"));
    /// ```
    pub fn unsupported(operation: &'static str) -> Self {
        Self::new(
            operation,
            "this store does not index sessions by owner (see SessionStore::indexes_owners)",
        )
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
/// `now` is the middleware's clock; stores compare expiry against it, and every write sets the
/// record's `last_seen` to it.
///
/// Two parts are optional, with defaults that keep a simple store correct:
///
/// - the **renew grace**: [`renew`](Self::renew) may keep the old key as a read-only, retired
///   copy until `retire_until`; a store that deletes the old key at once is still correct, it
///   just logs out requests that were in flight during a renew;
/// - the **owner index** ([`indexes_owners`](Self::indexes_owners) and the `*_owned` methods),
///   which lists and ends the sessions of one owner. Without it, tying a session to an owner is
///   refused with a clear error.
///
/// ```
/// use std::{collections::HashMap, sync::Mutex, time::SystemTime};
/// use actix_typed_session::{ChangeSet, Record, SessionStore, StorageKey, StoreError, WriteResult};
///
/// /// A toy store: one map behind a mutex (see `MemoryStore` for the real one).
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<StorageKey, Record>>);
///
/// fn writable(r: &Record, now: SystemTime) -> bool {
///     r.expires_at > now && !r.retired
/// }
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
///         match map.get_mut(key).filter(|r| writable(r, now)) {
///             Some(r) => {
///                 changes.apply_to_record(r);
///                 (r.expires_at, r.last_seen) = (expires_at, now);
///                 Ok(WriteResult::Done)
///             }
///             None => Ok(WriteResult::Missing),
///         }
///     }
///     async fn renew(&self, old: &StorageKey, new: &StorageKey, changes: &ChangeSet,
///         expires_at: SystemTime, now: SystemTime, _retire_until: Option<SystemTime>)
///         -> Result<WriteResult, StoreError> {
///         // No grace window here: the old key dies at once.
///         let mut map = self.0.lock().unwrap();
///         if map.contains_key(new) { return Ok(WriteResult::Collision) }
///         match map.remove(old).filter(|r| writable(r, now)) {
///             Some(mut r) => {
///                 changes.apply_to_record(&mut r);
///                 (r.expires_at, r.last_seen) = (expires_at, now);
///                 map.insert(*new, r);
///                 Ok(WriteResult::Done)
///             }
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
    /// an expired session must never be returned. A retired record (see [`renew`](Self::renew))
    /// is returned with `retired` set while it lasts.
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

    /// Applies `changes` (entries and owner) to a live session, moves its expiry to `expires_at`
    /// and its `last_seen` to `now`, in one atomic step. A session that is gone, expired
    /// (`expires_at <= now`) or retired is [`WriteResult::Missing`] and is not created.
    fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<WriteResult, StoreError>>;

    /// [`update`](Self::update), also giving back the session as stored right after this write,
    /// when the store can read it in the same atomic step (PostgreSQL's `RETURNING`) at no extra
    /// round trip. [`CachedStore`](crate::CachedStore) keeps that copy, so the next request
    /// reads it without asking the durable store.
    ///
    /// The record must be `Some` only with [`WriteResult::Done`], and then be exactly what a
    /// [`load`](Self::load) right after the write would return (so `None` when the new expiry is
    /// already past). The default calls `update` and gives back no record, which is always
    /// correct. A store that wraps another should forward this method too, or write-through
    /// caching stops at the wrapper.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use actix_typed_session::{ChangeSet, MemoryStore, Record, SessionStore, StorageKey, WriteResult};
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let store = MemoryStore::default();
    /// let key = StorageKey::from_bytes([3; 32]);
    /// let now = SystemTime::now();
    /// let later = now + Duration::from_secs(60);
    /// store.create(&key, &Record::new(Default::default(), now, later)).await.unwrap();
    /// // The memory store keeps the default: the write happens, no copy comes back.
    /// let (result, copy) = store.update_returning(&key, &ChangeSet::default(), later, now).await.unwrap();
    /// assert_eq!((result, copy), (WriteResult::Done, None));
    /// # });
    /// ```
    fn update_returning(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<(WriteResult, Option<Record>), StoreError>> {
        async move {
            let result = self.update(key, changes, expires_at, now).await?;
            Ok((result, None))
        }
    }

    /// Moves only the expiry (and `last_seen`) of a live session: the throttled idle refresh.
    /// The default calls [`update`](Self::update) with an empty change set; stores override it
    /// with a cheaper write.
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

    /// Moves a live session from `old` to `new`, applying `changes`, in one atomic step.
    /// [`WriteResult::Missing`] when `old` is gone, expired or retired, [`WriteResult::Collision`]
    /// when `new` is taken; in both cases nothing changes.
    ///
    /// With `retire_until` set, `old` is not deleted but becomes a read-only copy of the session
    /// as it was before this renew (`retired` set, owner kept), which expires at
    /// `retire_until` or at its own deadline, whichever comes first: it is never listed nor
    /// ended alone, but [`delete_all_owned`](Self::delete_all_owned) deletes it, and so does
    /// [`delete`](Self::delete) of `new`: the store remembers that `new` was renewed from it
    /// (and `old`'s own link, if `old` was renewed from a copy still retired). Without
    /// `retire_until`, `old` is deleted (and `new` takes over its link).
    fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> impl Future<Output = Result<WriteResult, StoreError>>;

    /// Deletes a session (live or retired) if it exists, and the retired copies it was renewed
    /// from (see [`renew`](Self::renew); a few at most): a logout within the renew grace window
    /// must not leave the old ids loading the session. A store that deletes the old key at once
    /// in `renew` has none to follow. `conformance::a_purge_in_the_grace_window_also_ends_the_old_ids`
    /// in the project's test suite checks it.
    fn delete(&self, key: &StorageKey) -> impl Future<Output = Result<(), StoreError>>;

    /// Whether this store keeps an index from owners to their sessions, maintained in the same
    /// atomic step as every write. `false` by default; a store that returns `true` implements the
    /// three `*_owned` methods.
    fn indexes_owners(&self) -> bool {
        false
    }

    /// The live, non-retired sessions tied to `owner`, in no particular order, each with the
    /// device recorded in its map (see [`OwnedSession::with_device_entry`]).
    fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> impl Future<Output = Result<Vec<OwnedSession>, StoreError>> {
        let _ = (owner, now);
        async { Err(StoreError::unsupported("listing an owner's sessions")) }
    }

    /// Deletes the session `key` if it is tied to `owner`; whether it was.
    fn delete_owned(
        &self,
        owner: &str,
        key: &StorageKey,
    ) -> impl Future<Output = Result<bool, StoreError>> {
        let _ = (owner, key);
        async { Err(StoreError::unsupported("ending one of an owner's sessions")) }
    }

    /// Deletes every session tied to `owner` except `keep`, in one atomic step, retired copies
    /// of the owner's renewed sessions included (ending "everywhere" must not leave an old id
    /// readable for the rest of its grace window); the keys of the non-retired sessions deleted
    /// (which may include sessions that had expired but were not reclaimed yet).
    fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> impl Future<Output = Result<Vec<StorageKey>, StoreError>> {
        let _ = (owner, keep);
        async { Err(StoreError::unsupported("ending an owner's sessions")) }
    }
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
        retire_until: Option<SystemTime>,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StorageKey) -> LocalBoxFuture<'a, Result<(), StoreError>>;
    fn indexes_owners(&self) -> bool;
    fn list_owned<'a>(
        &'a self,
        owner: &'a str,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<Vec<OwnedSession>, StoreError>>;
    fn delete_owned<'a>(
        &'a self,
        owner: &'a str,
        key: &'a StorageKey,
    ) -> LocalBoxFuture<'a, Result<bool, StoreError>>;
    fn delete_all_owned<'a>(
        &'a self,
        owner: &'a str,
        keep: Option<&'a StorageKey>,
    ) -> LocalBoxFuture<'a, Result<Vec<StorageKey>, StoreError>>;
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
        retire_until: Option<SystemTime>,
    ) -> LocalBoxFuture<'a, Result<WriteResult, StoreError>> {
        Box::pin(
            self.0
                .renew(old, new, changes, expires_at, now, retire_until),
        )
    }
    fn delete<'a>(&'a self, key: &'a StorageKey) -> LocalBoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.0.delete(key))
    }
    fn indexes_owners(&self) -> bool {
        self.0.indexes_owners()
    }
    fn list_owned<'a>(
        &'a self,
        owner: &'a str,
        now: SystemTime,
    ) -> LocalBoxFuture<'a, Result<Vec<OwnedSession>, StoreError>> {
        Box::pin(self.0.list_owned(owner, now))
    }
    fn delete_owned<'a>(
        &'a self,
        owner: &'a str,
        key: &'a StorageKey,
    ) -> LocalBoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.0.delete_owned(owner, key))
    }
    fn delete_all_owned<'a>(
        &'a self,
        owner: &'a str,
        keep: Option<&'a StorageKey>,
    ) -> LocalBoxFuture<'a, Result<Vec<StorageKey>, StoreError>> {
        Box::pin(self.0.delete_all_owned(owner, keep))
    }
}
