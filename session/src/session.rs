//! The per-request session handle.

use std::{
    cell::{Ref, RefCell},
    rc::Rc,
    sync::Arc,
    time::SystemTime,
};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

use crate::{
    config::{Spec, COOKIE_LIMIT},
    device::DEVICE_KEY,
    expiry::{record_change, EXPIRY_KEY},
    id::SessionId,
    ChangeSet, Expiry, SessionError,
};

/// What has happened to a session during this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Nothing changed: nothing will be written (apart from a throttled expiry refresh).
    Unchanged,
    /// Keys were set, removed or cleared: the change set will be saved.
    Changed,
    /// The session will move to a new id, keeping its data; the old id dies.
    Renewed,
    /// The session was deleted; its cookie will be removed.
    Purged,
}

/// One named session of the current request: a key-value map of JSON values.
///
/// Extract it in a handler (the default session), or open a named one through
/// [`Sessions`](crate::Sessions). Cloning gives another handle to the same session.
///
/// Changes are recorded as a [`ChangeSet`] and written when the response goes out, unless the
/// response is a server error (5xx) or the handler returned an `Err`: then nothing is saved, but
/// a [`purge`](Self::purge) still ends the session.
///
/// ```
/// use actix_web::{HttpResponse, Result};
/// use actix_typed_session::Session;
///
/// async fn visit(session: Session) -> Result<HttpResponse> {
///     let visits: u32 = session.get("visits")?.unwrap_or(0);
///     session.insert("visits", visits + 1)?;
///     Ok(HttpResponse::Ok().body(format!("visit #{}", visits + 1)))
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    inner: Rc<Inner>,
}

struct Inner {
    spec: Arc<Spec>,
    state: RefCell<State>,
}

/// How a session began in this request.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// No valid session came with the request.
    New,
    /// Loaded from its cookie or store.
    Loaded {
        /// The id (server-side backends only).
        id: Option<SessionId>,
        created_at: SystemTime,
        expires_at: SystemTime,
    },
}

#[derive(Debug)]
pub(crate) struct State {
    /// Shared with this thread's cache of opened cookies until the first change copies it.
    pub(crate) entries: Rc<Map<String, Value>>,
    pub(crate) changes: ChangeSet,
    pub(crate) origin: Origin,
    pub(crate) renew: bool,
    pub(crate) purged: bool,
    /// A server-side session deleted by `purge()`, to delete from its store.
    pub(crate) delete: Option<SessionId>,
    /// The request carried a cookie for this session that did not load: remove it unless the
    /// response sets a new one.
    pub(crate) stale_cookie: bool,
    /// Opened with a previous key: re-seal with the current key.
    pub(crate) reseal: bool,
    /// The owner the session is tied to (after this request's changes).
    pub(crate) owner: Option<String>,
    /// Loaded through a renewed session's old id within the grace window: nothing is saved.
    pub(crate) read_only: bool,
    /// Cookie sessions: revocations of the owner's sessions issued before this time do not
    /// apply to this one (it survived an "end all other sessions").
    pub(crate) valid_from: Option<SystemTime>,
    /// The write sequence when the session was loaded (metrics: merged change sets).
    pub(crate) loaded_seq: u64,
    /// The expiry chosen for this session (stored with it; `Default` when none was).
    pub(crate) expiry: Expiry,
    /// The expiry was set in this request: the cookie is sent again, with or without `Max-Age`.
    pub(crate) expiry_changed: bool,
    /// The device the session was tied to its owner from (stored with it; server-side only).
    pub(crate) device: crate::device::Device,
    /// What the request tells about its client (set when the session is registered).
    pub(crate) client: crate::device::Client,
}

impl State {
    pub(crate) fn new(origin: Origin, entries: impl Into<Rc<Map<String, Value>>>) -> Self {
        Self {
            entries: entries.into(),
            changes: ChangeSet::default(),
            origin,
            renew: false,
            purged: false,
            delete: None,
            stale_cookie: false,
            reseal: false,
            owner: None,
            read_only: false,
            valid_from: None,
            loaded_seq: 0,
            expiry: Expiry::Default,
            expiry_changed: false,
            device: Default::default(),
            client: Default::default(),
        }
    }

    /// Records an owner change (a no-op when the owner stays the same).
    pub(crate) fn change_owner(&mut self, owner: Option<String>) {
        if self.owner != owner {
            self.owner.clone_from(&owner);
            self.changes.set_owner(owner);
        }
    }
}

impl Session {
    pub(crate) fn new(spec: Arc<Spec>, state: State) -> Self {
        Self {
            inner: Rc::new(Inner {
                spec,
                state: RefCell::new(state),
            }),
        }
    }

    pub(crate) fn spec(&self) -> &Arc<Spec> {
        &self.inner.spec
    }

    pub(crate) fn state(&self) -> std::cell::RefMut<'_, State> {
        self.inner.state.borrow_mut()
    }

    /// The session's name.
    ///
    /// ```
    /// # use actix_typed_session::Sessions;
    /// async fn which(sessions: Sessions) -> actix_web::Result<String> {
    ///     let cart = sessions.open("cart").await?;
    ///     assert_eq!(cart.name(), "cart");
    ///     Ok(cart.name().to_owned())
    /// }
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// Reads `key` as a `T`. `Ok(None)` when the key is absent; an error when the stored value
    /// does not deserialize into `T`.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn greet(session: Session) -> actix_web::Result<String> {
    ///     let name: Option<String> = session.get("name")?;
    ///     Ok(format!("hello, {}", name.as_deref().unwrap_or("stranger")))
    /// }
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let state = self.inner.state.borrow();
        match state.entries.get(key) {
            None => Ok(None),
            Some(value) => {
                T::deserialize(value)
                    .map(Some)
                    .map_err(|source| SessionError::Deserialize {
                        session: self.name().to_owned(),
                        key: key.to_owned(),
                        source,
                    })
            }
        }
    }

    /// Sets `key` to `value`. Setting a value equal to the current one is not a change.
    ///
    /// Fails with [`SessionError::ReadOnly`] when the request came with the old id of a session
    /// renewed moments ago (see
    /// [`renew_grace`](crate::SessionMiddlewareBuilder::renew_grace)).
    ///
    /// On a cookie-backed session, fails with [`SessionError::TooLarge`] if the cookie would
    /// exceed 4096 bytes; the session then keeps its previous state.
    ///
    /// Fails with [`SessionError::Serialize`] when the value does not serialize to JSON, or nests
    /// arrays and objects more than 100 levels deep (deeper than a stored session can be read
    /// back with), and with [`SessionError::ReservedKey`] for the keys `__session_expiry`, under
    /// which the session's [`Expiry`] is stored, and `__session_device`, under which the device
    /// it was tied to its owner from is (see [`SessionInfo`](crate::SessionInfo)).
    ///
    /// ```
    /// # use actix_typed_session::{Session, SessionError};
    /// async fn remember(session: Session) -> actix_web::Result<&'static str> {
    ///     match session.insert("notes", "n".repeat(10_000)) {
    ///         Ok(()) => Ok("saved"),
    ///         // On a cookie session: refused instead of a cookie the browser would drop.
    ///         Err(SessionError::TooLarge { .. }) => Ok("too large for a cookie session"),
    ///         Err(other) => Err(other.into()),
    ///     }
    /// }
    /// ```
    pub fn insert<T: Serialize>(
        &self,
        key: impl AsRef<str> + Into<String>,
        value: T,
    ) -> Result<(), SessionError> {
        if let Some(reserved) = [EXPIRY_KEY, DEVICE_KEY]
            .into_iter()
            .find(|k| *k == key.as_ref())
        {
            return Err(SessionError::ReservedKey {
                session: self.name().to_owned(),
                key: reserved,
            });
        }
        let value = serde_json::to_value(value)
            .and_then(readable)
            .map_err(|source| SessionError::Serialize {
                session: self.name().to_owned(),
                key: key.as_ref().to_owned(),
                source,
            })?;
        let mut state = self.inner.state.borrow_mut();
        if state.entries.get(key.as_ref()) == Some(&value) {
            return Ok(());
        }
        if state.read_only {
            return Err(SessionError::ReadOnly {
                session: self.name().to_owned(),
            });
        }
        // A cookie session is written whole: its change set records only that something changed,
        // and needs no copy of the value.
        let (stored, for_changes) = if self.inner.spec.backend.is_cookie() {
            (value, None)
        } else {
            (value.clone(), Some(value))
        };
        let entries = Rc::make_mut(&mut state.entries);
        // A key already there keeps its `String`: only a new key is copied.
        let previous = match entries.get_mut(key.as_ref()) {
            Some(slot) => Some(std::mem::replace(slot, stored)),
            None => {
                entries.insert(key.as_ref().to_owned(), stored);
                None
            }
        };
        if let Err(err) = self.check_size(&state) {
            let entries = Rc::make_mut(&mut state.entries);
            match previous {
                Some(previous) => {
                    if let Some(slot) = entries.get_mut(key.as_ref()) {
                        *slot = previous;
                    }
                }
                None => {
                    entries.remove(key.as_ref());
                }
            }
            return Err(err);
        }
        match for_changes {
            None => state.changes.touch(),
            Some(value) => state.changes.set(key, value),
        }
        Ok(())
    }

    /// Removes `key`, returning its value if it was there.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn forget_coupon(session: Session) -> String {
    ///     match session.remove("coupon") {
    ///         Some(old) => format!("removed {old}"),
    ///         None => "there was no coupon".into(),
    ///     }
    /// }
    /// ```
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.inner.state.borrow_mut();
        if !state.entries.contains_key(key) {
            return None;
        }
        let removed = Rc::make_mut(&mut state.entries).remove(key)?;
        if self.inner.spec.backend.is_cookie() {
            state.changes.touch();
        } else {
            state.changes.remove(key);
        }
        Some(removed)
    }

    /// Removes `key` and returns its value as a `T`. `Ok(None)` when absent. When the value does
    /// not deserialize into `T` it is not removed.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn pop_notice(session: Session) -> actix_web::Result<String> {
    ///     let notice: Option<String> = session.remove_as("notice")?; // shown once
    ///     Ok(notice.unwrap_or_default())
    /// }
    /// ```
    pub fn remove_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let value = self.get::<T>(key)?;
        if value.is_some() {
            self.remove(key);
        }
        Ok(value)
    }

    /// Replaces the `T` stored under `key` with `f` of it, and returns the new value; `Ok(None)`
    /// (and `f` is not called) when the key is absent.
    ///
    /// A stored value that does not deserialize into `T` is [`SessionError::Deserialize`], and
    /// stays as it was. The write fails as [`insert`](Self::insert) does, again leaving the
    /// session unchanged.
    ///
    /// Read and write happen within this request: two parallel requests that update one key
    /// each save their own result, and the later save wins (change sets merge per key).
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn extend(session: Session) -> actix_web::Result<String> {
    ///     // Only a visitor who already has a basket gets one more day.
    ///     match session.update("basket_days", |days: u32| days + 1)? {
    ///         Some(days) => Ok(format!("kept for {days} days")),
    ///         None => Ok("no basket".into()),
    ///     }
    /// }
    /// ```
    pub fn update<T, F>(&self, key: &str, f: F) -> Result<Option<T>, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        let Some(current) = self.get::<T>(key)? else {
            return Ok(None);
        };
        let updated = f(current);
        self.insert(key, &updated)?;
        Ok(Some(updated))
    }

    /// Like [`update`](Self::update), but stores `default` when the key is absent (without
    /// calling `f`). Returns the value now stored.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn count(session: Session) -> actix_web::Result<String> {
    ///     let visits = session.update_or("visits", 1, |n: u32| n + 1)?;
    ///     Ok(format!("visit #{visits}"))
    /// }
    /// ```
    pub fn update_or<T, F>(&self, key: &str, default: T, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(T) -> T,
    {
        let value = match self.get::<T>(key)? {
            Some(current) => f(current),
            None => default,
        };
        self.insert(key, &value)?;
        Ok(value)
    }

    /// Whether `key` is set.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn logged_in(session: Session) -> &'static str {
    ///     if session.contains_key("user") {
    ///         "yes"
    ///     } else {
    ///         "no"
    ///     }
    /// }
    /// ```
    pub fn contains_key(&self, key: &str) -> bool {
        self.inner.state.borrow().entries.contains_key(key)
    }

    /// A read-only view of every entry.
    ///
    /// Do not hold it across a call that changes the session (that call would panic).
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn keys(session: Session) -> String {
    ///     let entries = session.entries();
    ///     entries.keys().cloned().collect::<Vec<_>>().join(", ")
    /// }
    /// ```
    pub fn entries(&self) -> Ref<'_, Map<String, Value>> {
        Ref::map(self.inner.state.borrow(), |s| &*s.entries)
    }

    /// Removes every entry. The session (and its id) stays.
    ///
    /// It always counts as a change ([`status`](Self::status) is then `Changed`), also on a new
    /// or empty session; a session with no entries and no owner is still never written.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn reset(session: Session) -> &'static str {
    ///     session.clear();
    ///     assert!(session.entries().is_empty());
    ///     "cleared"
    /// }
    /// ```
    pub fn clear(&self) {
        let mut state = self.inner.state.borrow_mut();
        state.entries = Rc::default();
        state.changes.clear();
        state.change_owner(None);
        // The device goes with the owner (the clear drops it from the store).
        state.device = Default::default();
        // The expiry is not an entry: it stays.
        if state.expiry != Expiry::Default {
            record_change(&mut state, self.inner.spec.backend.is_cookie());
        }
    }

    /// Keeps the data under a new session id and makes the old id dead. Call it when the
    /// visitor's privileges change (login), against session fixation.
    ///
    /// A new session gets a fresh id anyway, so renewing it changes nothing. A cookie session
    /// gets a new cookie value (re-issued as of now, sealed or signed). On a server-side
    /// backend, requests already in flight with the old id still see the session as it was
    /// before the renew, read-only, for the
    /// [renew grace window](crate::SessionMiddlewareBuilder::renew_grace).
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn login(session: Session) -> actix_web::Result<&'static str> {
    ///     session.insert("user", "ann")?;
    ///     session.renew(); // the id the visitor had before logging in dies with this response
    ///     Ok("welcome")
    /// }
    /// ```
    pub fn renew(&self) {
        let mut state = self.inner.state.borrow_mut();
        if let Origin::Loaded { created_at, .. } = state.origin {
            state.renew = true;
            if self.inner.spec.backend.is_cookie() {
                // A cookie session has no id to change: it is re-issued as of now (at least a
                // millisecond after its previous issue), so that even a signed cookie, which has
                // no nonce, gets a new value. Revocations recorded before now spare it, as they
                // spare a cookie tied to its owner at login.
                let previous = state.valid_from.unwrap_or(created_at);
                let issued = self
                    .inner
                    .spec
                    .clock
                    .now()
                    .max(previous + std::time::Duration::from_millis(1));
                state.valid_from = Some(issued);
            }
        }
    }

    /// Deletes the session: its data, its stored record and (in the response) its cookie. Keys
    /// inserted afterwards start a brand-new session with a new id.
    ///
    /// ```
    /// # use actix_typed_session::{Session, SessionStatus};
    /// async fn logout(session: Session) -> &'static str {
    ///     session.purge();
    ///     assert_eq!(session.status(), SessionStatus::Purged);
    ///     "bye"
    /// }
    /// ```
    pub fn purge(&self) {
        let mut state = self.inner.state.borrow_mut();
        let origin = std::mem::replace(&mut state.origin, Origin::New);
        if let Origin::Loaded { id, .. } = origin {
            state.delete = id;
            state.stale_cookie = true;
        }
        state.entries = Rc::default();
        state.changes = ChangeSet::default();
        state.renew = false;
        state.reseal = false;
        state.purged = true;
        state.owner = None;
        state.valid_from = None;
        state.read_only = false;
        state.expiry = Expiry::Default;
        state.expiry_changed = false;
        state.device = Default::default();
    }

    /// What has happened to the session so far in this request.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn touch(session: Session) -> actix_web::Result<String> {
    ///     let before = session.status();
    ///     session.insert("seen", true)?;
    ///     Ok(format!("{before:?} -> {:?}", session.status()))
    /// }
    /// ```
    pub fn status(&self) -> SessionStatus {
        let state = self.inner.state.borrow();
        if state.purged && state.entries.is_empty() {
            SessionStatus::Purged
        } else if state.renew {
            SessionStatus::Renewed
        } else if !state.changes.is_empty() {
            SessionStatus::Changed
        } else {
            SessionStatus::Unchanged
        }
    }

    pub(crate) fn check_size(&self, state: &State) -> Result<(), SessionError> {
        let size = cookie_size(&self.inner.spec, state);
        match size {
            Some(size) if size > COOKIE_LIMIT => {
                crate::telemetry::count(&self.inner.spec, crate::telemetry::Event::TooLarge);
                Err(SessionError::TooLarge {
                    session: self.name().to_owned(),
                    size,
                    limit: COOKIE_LIMIT,
                })
            }
            _ => Ok(()),
        }
    }
}

/// The deepest nesting of arrays and objects a session value may have. serde_json refuses to read
/// JSON nested more than 127 levels deep, and a stored session wraps its values in one to three
/// levels of its own (the map, a cookie's payload); 100 leaves room for both.
pub(crate) const MAX_NESTING: usize = 100;

/// `value` if a stored session can hold it: serde_json writes JSON nested to any depth but reads
/// at most 127 levels, so a deeper value would lose the whole session on its next load.
fn readable(value: Value) -> Result<Value, serde_json::Error> {
    if nests_deeper_than(&value, MAX_NESTING) {
        return Err(serde::ser::Error::custom(format_args!(
            "the value nests arrays and objects more than {MAX_NESTING} levels deep, more than a \
             stored session can be read back with"
        )));
    }
    Ok(value)
}

/// Whether `value` nests arrays and objects more than `levels` deep (visits each container at
/// most once, and never more than `levels + 1` deep).
pub(crate) fn nests_deeper_than(value: &Value, levels: usize) -> bool {
    match value {
        Value::Array(items) => {
            levels == 0 || items.iter().any(|v| nests_deeper_than(v, levels - 1))
        }
        Value::Object(map) => levels == 0 || map.values().any(|v| nests_deeper_than(v, levels - 1)),
        _ => false,
    }
}

/// The size of `name=value` of a cookie-backed session in its current state (or a bound on it
/// when that bound is within the limit, which is all the caller needs to know), or `None` for a
/// server-side session (whose cookie holds a fixed-size id).
fn cookie_size(spec: &Spec, state: &State) -> Option<usize> {
    #[cfg(feature = "cookie")]
    if let crate::store::BackendKind::Cookie(store) = &spec.backend.kind {
        let (created, expires) = match state.origin {
            Origin::Loaded {
                created_at,
                expires_at,
                ..
            } => (created_at, expires_at),
            // Deadlines in the future take as many bytes as now.
            Origin::New => (SystemTime::now(), SystemTime::now()),
        };
        // Most sessions are far below the limit: a bound on the payload, without writing it, is
        // enough to say so.
        let bound = payload_bound(&state.entries, state.owner.as_deref())
            + if state.expiry == Expiry::Default {
                0
            } else {
                EXPIRY_BOUND
            };
        let size_bound = spec.cookie_name.len() + 1 + store.encoded_len(bound);
        if size_bound <= COOKIE_LIMIT {
            return Some(size_bound);
        }
        let entries = crate::expiry::stored_entries(state);
        let payload = crate::CookieStore::payload(
            &entries,
            created,
            expires,
            state.owner.as_deref(),
            state.valid_from,
        );
        let plain_len = payload.encoded_len().unwrap_or(usize::MAX / 2);
        return Some(spec.cookie_name.len() + 1 + store.encoded_len(plain_len));
    }
    let _ = (spec, state);
    None
}

/// At least as many bytes as a cookie payload with `entries` and `owner` takes (see
/// `PayloadRef::write_to`): the map's JSON with every string byte counted as a six-byte escape
/// and every number at its longest, every optional field present.
#[cfg(feature = "cookie")]
fn payload_bound(entries: &Map<String, Value>, owner: Option<&str>) -> usize {
    /// The tag, then three integers of at most ten bytes each (creation, expiry, cut-off).
    const FIXED: usize = 1 + 3 * 10;
    FIXED + object_bound(entries) + owner.map_or(0, |owner| 10 + owner.len())
}

/// At least as many bytes as the stored expiry entry takes in a cookie's map: its key, the
/// longest value (`{"idle_for":<20 digits>}`) and the separators.
#[cfg(feature = "cookie")]
const EXPIRY_BOUND: usize = EXPIRY_KEY.len() + 2 + 1 + 33 + 1;

#[cfg(feature = "cookie")]
fn str_bound(s: &str) -> usize {
    // serde_json writes at most `\u00XX` (6 bytes) for a byte, between two quotes.
    2 + 6 * s.len()
}

#[cfg(feature = "cookie")]
fn object_bound(map: &Map<String, Value>) -> usize {
    2 + map
        .iter()
        .map(|(k, v)| str_bound(k) + 1 + value_bound(v) + 1)
        .sum::<usize>()
}

#[cfg(feature = "cookie")]
fn value_bound(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        // i64::MIN is 20 bytes, an f64 at most 24 (`-2.2250738585072014e-308`).
        Value::Number(_) => 24,
        Value::String(s) => str_bound(s),
        Value::Array(items) => 2 + items.iter().map(|v| value_bound(v) + 1).sum::<usize>(),
        Value::Object(map) => object_bound(map),
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: values may be secret, and the id must never be printed.
        let state = self.inner.state.borrow();
        f.debug_struct("Session")
            .field("name", &self.inner.spec.name)
            .field("backend", &self.inner.spec.backend_name)
            .field("keys", &state.entries.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "cookie"))]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::json;

    use super::*;

    #[test]
    fn the_payload_bound_is_never_below_the_written_payload() {
        let values = [
            json!(null),
            json!(true),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(f64::MIN_POSITIVE),
            json!(-f64::MAX),
            json!(-2.225_073_858_507_201_4e-308),
            json!("\u{0}\u{1f}\"\\\n plain é 😀"),
            json!([1, [2, [3, {"k\u{7}": "v"}]], []]),
            json!({"nested": {"x": [null, false, 1.5e300]}, "": ""}),
        ];
        for (i, value) in values.iter().enumerate() {
            let mut entries = Map::new();
            entries.insert(format!("key {i} \u{2}"), value.clone());
            entries.insert("n".into(), json!(i));
            for owner in [None, Some(""), Some("ann \"\u{3}\" é")] {
                let payload = crate::CookieStore::payload(
                    &entries,
                    UNIX_EPOCH + Duration::from_secs(1 << 40),
                    UNIX_EPOCH + Duration::from_secs(1 << 40),
                    owner,
                    Some(UNIX_EPOCH + Duration::from_secs(1 << 41)),
                );
                let written = payload.encoded_len().unwrap();
                let bound = payload_bound(&entries, owner);
                assert!(
                    bound >= written,
                    "{value}: bound {bound} < {written} written"
                );
            }
        }
    }
}
