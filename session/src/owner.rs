//! Tying sessions to owners, and listing and ending an owner's sessions.

use std::{fmt, sync::Arc, time::SystemTime};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::digest;

use crate::{
    config::{Config, Spec},
    device::{Device, DEVICE_KEY},
    load::log_store_error,
    session::{Origin, State},
    store::BackendKind,
    telemetry::timed,
    Session, SessionError, StorageKey, StoreError,
};

/// The longest owner value accepted, in bytes.
const MAX_OWNER_LEN: usize = 256;
/// Bytes of a [`SessionHandle`].
const HANDLE_BYTES: usize = 16;

/// An opaque name for one of an owner's sessions, safe to show to the visitor and to put in a
/// form: it is derived one-way from the session's storage key (itself a hash of the id), so it
/// can be turned neither into the id nor into the key, and it only works for ending a session
/// together with its owner.
///
/// ```
/// use actix_typed_session::SessionHandle;
///
/// let handle: SessionHandle = "AAECAwQFBgcICQoLDA0ODw".parse().unwrap();
/// assert_eq!(handle.to_string(), "AAECAwQFBgcICQoLDA0ODw");
/// assert!("not a handle".parse::<SessionHandle>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle([u8; HANDLE_BYTES]);

impl SessionHandle {
    pub(crate) fn of(key: &StorageKey) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"actix-typed-session handle\0");
        ctx.update(key.as_bytes());
        let mut out = [0u8; HANDLE_BYTES];
        out.copy_from_slice(&ctx.finish().as_ref()[..HANDLE_BYTES]);
        Self(out)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionHandle({self})")
    }
}

/// The text is not a [`SessionHandle`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session handle")]
pub struct InvalidHandle;

impl std::str::FromStr for SessionHandle {
    type Err = InvalidHandle;

    fn from_str(s: &str) -> Result<Self, InvalidHandle> {
        let mut out = [0u8; HANDLE_BYTES + 1];
        match URL_SAFE_NO_PAD.decode_slice(s, &mut out) {
            Ok(HANDLE_BYTES) if s.len() == 22 => {
                let mut bytes = [0u8; HANDLE_BYTES];
                bytes.copy_from_slice(&out[..HANDLE_BYTES]);
                Ok(Self(bytes))
            }
            _ => Err(InvalidHandle),
        }
    }
}

impl serde::Serialize for SessionHandle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One live session of an owner, as [`Session::owned_sessions`] and [`SessionAdmin::list`]
/// list them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Names the session for [`Session::end_session`] and [`SessionAdmin::end`].
    pub handle: SessionHandle,
    /// When the session was created (its login, usually).
    #[serde(with = "unix_seconds")]
    pub created_at: SystemTime,
    /// When the session was last written: a change, or the throttled idle refresh (so at most
    /// one refresh interval behind the visitor's last request).
    #[serde(with = "unix_seconds")]
    pub last_seen: SystemTime,
    /// When the session expires unless it is used again.
    #[serde(with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// Whether this is the session of the current request.
    pub current: bool,
    /// A short description of the device the session was tied to its owner from, made from the
    /// `User-Agent` when [`Session::set_owner`] ran ("Firefox on Linux", "Safari on iPhone"):
    /// for the visitor to recognise the session by. `None` when the agent was not recognised.
    /// The raw `User-Agent` is never stored. Only the browser and system names of a fixed list
    /// appear, but the header is the client's word: do not trust it for security decisions.
    pub device: Option<String>,
    /// The client's IP address when the owner was set, only if the middleware
    /// [records addresses](crate::SessionMiddlewareBuilder::record_client_address) (personal
    /// data; behind a proxy, the proxy's address).
    pub address: Option<String>,
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

/// Sets the session's device record, and records the change in the change set of a loaded
/// session (a new one stores it with its whole map).
fn record_device(state: &mut State, device: Device) {
    if state.device == device {
        return;
    }
    if matches!(state.origin, Origin::Loaded { .. }) {
        match device.to_value() {
            Some(value) => state.changes.set(DEVICE_KEY, value),
            None => state.changes.remove(DEVICE_KEY),
        }
    }
    state.device = device;
}

fn check_owner(spec: &Spec, owner: &str) -> Result<(), SessionError> {
    let reason = if owner.is_empty() {
        "it is empty"
    } else if owner.len() > MAX_OWNER_LEN {
        "it is longer than 256 bytes"
    } else {
        return Ok(());
    };
    Err(SessionError::InvalidOwner {
        session: spec.name.clone(),
        reason,
    })
}

fn unsupported(spec: &Spec, operation: &'static str) -> SessionError {
    SessionError::OwnersUnsupported {
        session: spec.name.clone(),
        backend: spec.backend_name.clone(),
        operation,
    }
}

fn store_failed(
    spec: &Spec,
    status: actix_web::http::StatusCode,
    source: StoreError,
) -> SessionError {
    log_store_error(spec, source.operation(), &source);
    SessionError::Store {
        session: spec.name.clone(),
        source,
        status,
    }
}

/// Lists `owner`'s sessions on `spec`'s backend; `current` marks the request's own.
async fn list(
    spec: &Spec,
    status: actix_web::http::StatusCode,
    owner: &str,
    current: Option<&StorageKey>,
) -> Result<Vec<SessionInfo>, SessionError> {
    let Some(store) = spec.backend.server() else {
        return Err(unsupported(
            spec,
            "list sessions: cookies are held by browsers, not the server",
        ));
    };
    if !store.indexes_owners() {
        return Err(unsupported(
            spec,
            "list sessions: its store keeps no owner index",
        ));
    }
    let now = spec.clock.now();
    let mut listed: Vec<SessionInfo> = timed(spec, "list owned", store.list_owned(owner, now))
        .await
        .map_err(|e| store_failed(spec, status, e))?
        .into_iter()
        .filter(|s| s.expires_at > now)
        .map(|s| SessionInfo {
            handle: SessionHandle::of(&s.key),
            created_at: s.created_at,
            last_seen: s.last_seen,
            expires_at: s.expires_at,
            current: Some(&s.key) == current,
            device: s.device,
            address: s.address,
        })
        .collect();
    listed.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
    Ok(listed)
}

/// Ends the session of `owner` named by `handle`; whether there was one.
async fn end_one(
    spec: &Spec,
    status: actix_web::http::StatusCode,
    owner: &str,
    handle: &SessionHandle,
) -> Result<bool, SessionError> {
    let Some(store) = spec.backend.server() else {
        return Err(unsupported(
            spec,
            "end one session: cookies are held by browsers, not the server",
        ));
    };
    if !store.indexes_owners() {
        return Err(unsupported(
            spec,
            "end one session: its store keeps no owner index",
        ));
    }
    let now = spec.clock.now();
    let owned = timed(spec, "list owned", store.list_owned(owner, now))
        .await
        .map_err(|e| store_failed(spec, status, e))?;
    let Some(target) = owned.iter().find(|s| SessionHandle::of(&s.key) == *handle) else {
        return Ok(false);
    };
    timed(spec, "delete owned", store.delete_owned(owner, &target.key))
        .await
        .map_err(|e| store_failed(spec, status, e))
}

/// Ends every session of `owner` except `keep`; how many server-side sessions were ended (a
/// cookie backend counts none: it records a revocation instead).
async fn end_all(
    spec: &Spec,
    status: actix_web::http::StatusCode,
    owner: &str,
    keep: Option<&StorageKey>,
) -> Result<usize, SessionError> {
    match &spec.backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(cookie) => {
            let now = spec.clock.now();
            if !cookie.revocable() {
                return Err(unsupported(
                    spec,
                    "end sessions: the cookie backend has no revocation store (see CookieStore::with_revocations)",
                ));
            }
            let keep_until = crate::config::later(now, spec.absolute);
            let revoked = async {
                cookie
                    .revoke_before(owner, now, keep_until)
                    .await
                    .unwrap_or(Ok(()))
            };
            match timed(spec, "revoke", revoked).await {
                Ok(()) => Ok(0),
                Err(e) => Err(store_failed(spec, status, e)),
            }
        }
        BackendKind::Server(store) => {
            if !store.indexes_owners() {
                return Err(unsupported(
                    spec,
                    "end sessions: its store keeps no owner index",
                ));
            }
            let ended = timed(spec, "delete owned", store.delete_all_owned(owner, keep))
                .await
                .map_err(|e| store_failed(spec, status, e))?;
            Ok(ended.len())
        }
    }
}

impl Session {
    /// The owner this session is tied to (the logged-in user), if any.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn whoami(session: Session) -> String {
    ///     session.owner().unwrap_or_else(|| "nobody".into())
    /// }
    /// ```
    pub fn owner(&self) -> Option<String> {
        self.state().owner.clone()
    }

    /// Ties the session to `owner` (usually the user id, at login), so that the owner's sessions
    /// can be listed and ended ([`owned_sessions`](Self::owned_sessions),
    /// [`end_other_sessions`](Self::end_other_sessions), [`SessionAdmin`]). Saved with the rest
    /// of the session's changes, in the same atomic write.
    ///
    /// Fails when the owner is empty or over 256 bytes, when the session is
    /// [read-only](SessionError::ReadOnly), and on a server-side store that keeps no owner
    /// index. On the cookie backend the owner travels inside the sealed cookie.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn login(session: Session) -> actix_web::Result<&'static str> {
    ///     session.renew(); // new id at login, against session fixation
    ///     session.set_owner("user-42")?;
    ///     Ok("welcome")
    /// }
    /// ```
    pub fn set_owner(&self, owner: impl Into<String>) -> Result<(), SessionError> {
        let owner = owner.into();
        let spec = self.spec().clone();
        check_owner(&spec, &owner)?;
        if let Some(store) = spec.backend.server() {
            if !store.indexes_owners() {
                return Err(unsupported(
                    &spec,
                    "tie sessions to owners: its store keeps no owner index",
                ));
            }
        }
        let mut state = self.state();
        if state.read_only {
            return Err(SessionError::ReadOnly {
                session: spec.name.clone(),
            });
        }
        let (previous, changes, valid_from) =
            (state.owner.clone(), state.changes.clone(), state.valid_from);
        if state.owner.as_deref() != Some(owner.as_str()) && spec.backend.is_cookie() {
            // A cookie tied to an owner from now on: revocations issued before now (in
            // milliseconds, finer than the cookie's creation second) do not apply to it.
            state.valid_from = Some(spec.clock.now());
        }
        state.change_owner(Some(owner));
        if let Err(err) = self.check_size(&state) {
            // A cookie session keeps its previous state when the cookie would be too large.
            state.owner = previous;
            state.changes = changes;
            state.valid_from = valid_from;
            return Err(err);
        }
        if !spec.backend.is_cookie() {
            // Classified only now: most requests never tie a session to an owner.
            let device = state.client.device();
            record_device(&mut state, device);
        }
        Ok(())
    }

    /// Unties the session from its owner (it stays, with its data).
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn forget_owner(session: Session) -> &'static str {
    ///     session.clear_owner();
    ///     assert_eq!(session.owner(), None);
    ///     "done"
    /// }
    /// ```
    pub fn clear_owner(&self) {
        let mut state = self.state();
        if !state.read_only {
            state.change_owner(None);
            record_device(&mut state, Device::default());
        }
    }

    /// Owner operations that end sessions are writes: refused through an old id in its renew
    /// grace window (it could otherwise end the session's own new id).
    fn check_writable(&self) -> Result<(), SessionError> {
        if self.state().read_only {
            return Err(SessionError::ReadOnly {
                session: self.name().to_owned(),
            });
        }
        Ok(())
    }

    fn current_key(&self) -> Option<StorageKey> {
        match &self.state().origin {
            Origin::Loaded { id: Some(id), .. } => Some(id.storage_key()),
            _ => None,
        }
    }

    /// The live sessions of this session's owner on its backend, most recently seen first, the
    /// current one marked. Empty when the session has no owner. The owner's sessions as stored:
    /// an owner set in this request counts once the response has saved it.
    ///
    /// Server-side backends only: the server cannot list cookies kept by browsers.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn devices(session: Session) -> actix_web::Result<String> {
    ///     let mine = session.owned_sessions().await?;
    ///     Ok(mine.iter().map(|s| format!("{}{}\n", s.handle, if s.current { " (this one)" } else { "" })).collect())
    /// }
    /// ```
    pub async fn owned_sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let Some(owner) = self.owner() else {
            return Ok(Vec::new());
        };
        let current = self.current_key();
        list(self.spec(), self.failure_status(), &owner, current.as_ref()).await
    }

    /// Ends one of the owner's sessions, named by the handle
    /// [`owned_sessions`](Self::owned_sessions) gave; whether it was found. Its next request is
    /// anonymous. Ending the current session this way also purges it.
    ///
    /// ```
    /// # use actix_typed_session::{Session, SessionHandle};
    /// async fn end(session: Session, handle: SessionHandle) -> actix_web::Result<&'static str> {
    ///     Ok(if session.end_session(&handle).await? { "ended" } else { "no such session" })
    /// }
    /// ```
    pub async fn end_session(&self, handle: &SessionHandle) -> Result<bool, SessionError> {
        self.check_writable()?;
        let Some(owner) = self.owner() else {
            return Ok(false);
        };
        let ended = end_one(self.spec(), self.failure_status(), &owner, handle).await?;
        if ended
            && self
                .current_key()
                .is_some_and(|k| SessionHandle::of(&k) == *handle)
        {
            self.purge();
        }
        Ok(ended)
    }

    /// Ends every session of the owner except this one ("log out everywhere else", e.g. after a
    /// password change); how many server-side sessions ended.
    ///
    /// On the cookie backend this records a revocation in the backend's revocation store: every
    /// cookie of the owner issued before now is refused from then on, and this session's cookie
    /// is re-issued so that it survives.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn change_password(session: Session) -> actix_web::Result<String> {
    ///     // ... store the new password, then:
    ///     let ended = session.end_other_sessions().await?;
    ///     Ok(format!("{ended} other sessions ended"))
    /// }
    /// ```
    pub async fn end_other_sessions(&self) -> Result<usize, SessionError> {
        self.check_writable()?;
        let Some(owner) = self.owner() else {
            return Ok(0);
        };
        let keep = self.current_key();
        let ended = end_all(self.spec(), self.failure_status(), &owner, keep.as_ref()).await?;
        if self.spec().backend.is_cookie() {
            // Re-issue this cookie as valid from just after the revocation, which spares it.
            let now = self.spec().clock.now();
            let mut state = self.state();
            state.valid_from = Some(now + std::time::Duration::from_millis(1));
            state.reseal = true;
        }
        Ok(ended)
    }

    /// Ends every session of the owner, this one included (it is purged, as by
    /// [`purge`](Self::purge)); how many server-side sessions ended.
    ///
    /// ```
    /// # use actix_typed_session::Session;
    /// async fn log_out_everywhere(session: Session) -> actix_web::Result<&'static str> {
    ///     session.end_all_sessions().await?;
    ///     Ok("logged out on every device")
    /// }
    /// ```
    pub async fn end_all_sessions(&self) -> Result<usize, SessionError> {
        self.check_writable()?;
        let Some(owner) = self.owner() else {
            self.purge();
            return Ok(0);
        };
        let ended = end_all(self.spec(), self.failure_status(), &owner, None).await?;
        self.purge();
        Ok(ended)
    }
}

/// Lists and ends the sessions of any owner, outside of a request: for operators (disable an
/// account, answer "log me out everywhere" from support) and background jobs. Get one from
/// [`SessionMiddleware::admin`](crate::SessionMiddleware::admin) and keep it in the app's data.
///
/// Sessions are named as configured on the middleware: `"session"` for the default one.
///
/// ```
/// use actix_web::{web, HttpResponse};
/// use actix_typed_session::{Key, MemoryStore, SessionAdmin, SessionMiddleware};
///
/// async fn disable_account(admin: web::Data<SessionAdmin>, user: web::Path<String>)
///     -> actix_web::Result<HttpResponse> {
///     let ended = admin.end_all("session", &user).await?;
///     Ok(HttpResponse::Ok().body(format!("{ended} sessions ended")))
/// }
///
/// let middleware = SessionMiddleware::builder(Key::generate())
///     .backend("memory", MemoryStore::default())
///     .build()
///     .unwrap();
/// let admin = web::Data::new(middleware.admin());
/// let app = actix_web::App::new()
///     .app_data(admin)
///     .wrap(middleware)
///     .route("/admin/users/{user}/sessions", web::delete().to(disable_account));
/// ```
#[derive(Clone)]
pub struct SessionAdmin {
    config: Arc<Config>,
}

impl fmt::Debug for SessionAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionAdmin").finish_non_exhaustive()
    }
}

impl SessionAdmin {
    pub(crate) fn new(config: Arc<Config>) -> Self {
        Self { config }
    }

    fn spec(&self, session: &str) -> Result<Arc<Spec>, SessionError> {
        self.config.resolve(session, None)
    }

    /// The live sessions of `owner` under the session name `session`, most recently seen first.
    pub async fn list(&self, session: &str, owner: &str) -> Result<Vec<SessionInfo>, SessionError> {
        let spec = self.spec(session)?;
        list(&spec, self.config.failure_status, owner, None).await
    }

    /// Ends the session of `owner` named by `handle`; whether it was found.
    pub async fn end(
        &self,
        session: &str,
        owner: &str,
        handle: &SessionHandle,
    ) -> Result<bool, SessionError> {
        let spec = self.spec(session)?;
        end_one(&spec, self.config.failure_status, owner, handle).await
    }

    /// Ends every session of `owner` under the session name `session`; how many server-side
    /// sessions ended. On the cookie backend, records a revocation instead (see
    /// [`Session::end_other_sessions`]).
    pub async fn end_all(&self, session: &str, owner: &str) -> Result<usize, SessionError> {
        let spec = self.spec(session)?;
        end_all(&spec, self.config.failure_status, owner, None).await
    }
}

impl Session {
    fn failure_status(&self) -> actix_web::http::StatusCode {
        self.spec().failure_status
    }
}
