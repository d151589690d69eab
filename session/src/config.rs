//! Building the middleware: keys, backends, sessions, cookies and timeouts.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use actix_web::{cookie::SameSite, http::StatusCode};
use ring::rand::SystemRandom;

use crate::{
    clock::{Clock, SystemClock},
    key::{KeyRing, MIN_KEY_LEN},
    middleware::SessionMiddleware,
    store::Backend,
    typed::{self, Registration},
    BuildError, Key, SessionData, SessionError,
};

/// The most a browser keeps of one cookie's `name=value`, in bytes.
pub(crate) const COOKIE_LIMIT: usize = 4096;
/// Chrome caps a cookie's lifetime at 400 days; a longer persistent cookie would silently end
/// before the server-side session does.
const MAX_COOKIE_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);
/// The longest timeout accepted: ten years.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `t + d`, saturating far in the future instead of overflowing.
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_add(d)
        .unwrap_or_else(|| SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40))
}
const DEFAULT_SESSION: &str = "session";
/// How long a renewed session's old id stays readable by default.
const DEFAULT_RENEW_GRACE: Duration = Duration::from_secs(5);
/// The longest renew grace window accepted.
const MAX_RENEW_GRACE: Duration = Duration::from_secs(60);

/// Whether a session's cookie outlives the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieLifetime {
    /// No `Max-Age`: the browser drops the cookie when it closes (the default). The server still
    /// enforces the idle and absolute timeouts.
    #[default]
    BrowserSession,
    /// `Max-Age` and `Expires` (both, matching) set to the session's expiry, and moved forward
    /// whenever the idle deadline is refreshed.
    Persistent,
}

/// Per-session settings; register them with [`SessionMiddlewareBuilder::session`].
///
/// Sessions that are not registered still work: they take their name as cookie name, the
/// backend they are opened on (or the default backend), and the middleware's cookie lifetime.
///
/// ```
/// use actix_typed_session::{CookieLifetime, SessionConfig};
///
/// let cart = SessionConfig::new()
///     .backend("memory")
///     .cookie_name("__Host-cart")
///     .lifetime(CookieLifetime::Persistent);
/// # let _ = cart;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SessionConfig {
    backend: Option<String>,
    cookie_name: Option<String>,
    lifetime: Option<CookieLifetime>,
}

impl SessionConfig {
    /// Default settings: the default backend, a cookie named after the session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registered backend this session lives on.
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.backend = Some(name.into());
        self
    }

    /// The cookie's name, if it should differ from the session's name (e.g. `__Host-cart`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Browser-session or persistent cookie for this session.
    pub fn lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.lifetime = Some(lifetime);
        self
    }
}

/// Builds a [`SessionMiddleware`]; start with [`SessionMiddleware::builder`].
///
/// Nothing is checked until [`build`](Self::build), which validates the whole configuration and
/// returns a [`BuildError`] instead of panicking.
///
/// Every setting in one place:
///
/// ```
/// use std::time::Duration;
/// use actix_typed_session::{
///     CookieLifetime, CookieStore, Key, MemoryStore, SameSite, SessionConfig, SessionMiddleware,
///     StatusCode,
/// };
///
/// let current = Key::generate();
/// let retired = Key::generate(); // still accepted for reading during a rotation
/// let middleware = SessionMiddleware::builder(current)
///     .previous_keys([retired])
///     .backend("cookie", CookieStore::default())
///     .backend("memory", MemoryStore::default())
///     .default_backend("cookie")
///     .session(
///         "cart",
///         SessionConfig::new()
///             .backend("memory")
///             .cookie_name("__Host-cart")
///             .lifetime(CookieLifetime::BrowserSession),
///     )
///     .default_session("session")
///     .cookie_path("/")
///     .cookie_secure(true)
///     .cookie_http_only(true)
///     .cookie_same_site(SameSite::Lax)
///     .cookie_lifetime(CookieLifetime::Persistent)
///     .idle_timeout(Duration::from_secs(30 * 60))
///     .absolute_timeout(Duration::from_secs(8 * 3600))
///     .refresh_interval(Duration::from_secs(60))
///     .failure_status(StatusCode::SERVICE_UNAVAILABLE)
///     .build();
/// assert!(middleware.is_ok());
/// ```
#[must_use]
pub struct SessionMiddlewareBuilder {
    key: Key,
    previous_keys: Vec<Key>,
    backends: Vec<(String, Backend)>,
    default_backend: Option<String>,
    sessions: Vec<(String, SessionConfig)>,
    default_session: String,
    cookie: CookieSettings,
    lifetime: CookieLifetime,
    idle: Duration,
    absolute: Duration,
    refresh: Option<Duration>,
    renew_grace: Duration,
    failure_status: StatusCode,
    clock: Arc<dyn Clock>,
    typed: Vec<Registration>,
}

impl std::fmt::Debug for SessionMiddlewareBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddlewareBuilder")
            .field("key", &self.key)
            .field("previous_keys", &self.previous_keys.len())
            .field("backends", &self.backends)
            .field("sessions", &self.sessions)
            .field("cookie", &self.cookie)
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .finish_non_exhaustive()
    }
}

/// Cookie attributes shared by every session.
#[derive(Debug, Clone)]
pub(crate) struct CookieSettings {
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
}

impl SessionMiddlewareBuilder {
    pub(crate) fn new(key: Key) -> Self {
        Self {
            key,
            previous_keys: Vec::new(),
            backends: Vec::new(),
            default_backend: None,
            sessions: Vec::new(),
            default_session: DEFAULT_SESSION.to_owned(),
            cookie: CookieSettings {
                path: "/".to_owned(),
                domain: None,
                secure: true,
                http_only: true,
                same_site: SameSite::Lax,
            },
            lifetime: CookieLifetime::BrowserSession,
            idle: Duration::from_secs(24 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            refresh: None,
            renew_grace: DEFAULT_RENEW_GRACE,
            failure_status: StatusCode::INTERNAL_SERVER_ERROR,
            clock: Arc::new(SystemClock),
            typed: Vec::new(),
        }
    }

    /// Keys that are no longer used for writing but still accepted for reading, so that a key
    /// rotation logs nobody out. A cookie opened with one is re-sealed with the current key in the
    /// same response. Each must be at least 64 bytes.
    pub fn previous_keys(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.previous_keys = keys.into_iter().collect();
        self
    }

    /// Registers a backend under `name`. The first one registered is the default backend unless
    /// [`default_backend`](Self::default_backend) says otherwise.
    pub fn backend(mut self, name: impl Into<String>, backend: impl Into<Backend>) -> Self {
        self.backends.push((name.into(), backend.into()));
        self
    }

    /// The backend used by sessions that do not name one.
    pub fn default_backend(mut self, name: impl Into<String>) -> Self {
        self.default_backend = Some(name.into());
        self
    }

    /// Registers settings for the session called `name`.
    pub fn session(mut self, name: impl Into<String>, config: SessionConfig) -> Self {
        self.sessions.push((name.into(), config));
        self
    }

    /// Declares a [`SessionData`] type (a `#[derive(SessionData)]` struct) that the app uses, so
    /// that [`build`](Self::build) checks it against the rest of the configuration:
    ///
    /// - the backend it names must be registered ([`BuildError::TypedUnknownBackend`] names the
    ///   type, the backend and the registered backends);
    /// - its session must not be put on another backend by another type or by a
    ///   [`SessionConfig`] ([`BuildError::TypedBackendConflict`]);
    /// - types sharing a session must store the same type under a shared key
    ///   ([`BuildError::TypedKeyConflict`]).
    ///
    /// A registered type's session becomes a registered session: its name is checked as a cookie
    /// name, and a [`SessionConfig`] given with [`session`](Self::session) that names no backend
    /// gets the type's backend. Registering a type twice is harmless.
    ///
    /// Types that are not registered work too, but their mistakes show up at their first
    /// request (as a [`SessionError`]) or not at all.
    ///
    /// ```
    /// use actix_typed_session::{BuildError, CookieStore, Key, SessionData, SessionMiddleware};
    ///
    /// #[derive(SessionData)]
    /// #[session(name = "cart", backend = "datastore")]
    /// struct Cart {
    ///     items: Vec<String>,
    /// }
    ///
    /// let built = SessionMiddleware::builder(Key::generate())
    ///     .backend("cookie", CookieStore::default())
    ///     .register::<Cart>()
    ///     .build();
    /// let Err(BuildError::TypedUnknownBackend { backend, available, .. }) = built else {
    ///     panic!("expected an unknown-backend error");
    /// };
    /// assert_eq!((backend.as_str(), available), ("datastore", vec!["cookie".to_owned()]));
    /// ```
    pub fn register<T: SessionData>(mut self) -> Self {
        self.typed.push(Registration::of::<T>());
        self
    }

    /// The name of the session that the [`Session`](crate::Session) extractor opens
    /// (default: `session`).
    pub fn default_session(mut self, name: impl Into<String>) -> Self {
        self.default_session = name.into();
        self
    }

    /// The cookies' `Path` (default `/`).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookies' `Domain` (default: none, so the cookie goes only to the host that set it).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// Whether cookies carry `Secure` (default `true`; browsers accept secure cookies from
    /// `http://localhost`).
    pub fn cookie_secure(mut self, secure: bool) -> Self {
        self.cookie.secure = secure;
        self
    }

    /// Whether cookies carry `HttpOnly`, hiding them from scripts (default `true`).
    pub fn cookie_http_only(mut self, http_only: bool) -> Self {
        self.cookie.http_only = http_only;
        self
    }

    /// The cookies' `SameSite` (default `Lax`).
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Browser-session (default) or persistent cookies, for sessions that do not set their own.
    pub fn cookie_lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// How long a session lives without being used (default 24 hours). Sliding: each use moves
    /// the deadline, at most once per [`refresh_interval`](Self::refresh_interval).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = timeout;
        self
    }

    /// How long a session lives at most, however active (default 7 days).
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute = timeout;
        self
    }

    /// The least time between two expiry refreshes of a session (default: a quarter of the idle
    /// timeout, at most one minute). Reading a session writes nothing until the refresh would
    /// move its deadline by at least this much. A server-side session that changes is written at
    /// once, but its deadline moves by the same rule, which spares the store an expiry update
    /// on most writes; a session can so end up to this interval before its last use plus the
    /// idle timeout. (A cookie session is rewritten whole on a change, deadline included.)
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh = Some(interval);
        self
    }

    /// How long the old id of a renewed server-side session stays readable (default 5 seconds;
    /// zero turns it off, at most one minute).
    ///
    /// Renewing (on login, say) gives the session a new id. Requests the visitor sent before the
    /// response with the new id arrived still carry the old one; without a grace window they
    /// would find no session, start an anonymous one and overwrite the new cookie, logging the
    /// visitor out. Within the window they see the session **as it was before the renew**,
    /// read-only: writes fail with [`SessionError::ReadOnly`](crate::SessionError::ReadOnly) and
    /// no cookie is sent, so the new id stays in the browser (`remove` and `clear`, which cannot
    /// fail, are dropped at save). Someone who knew the old id learns nothing new: the new data is
    /// never readable through it.
    ///
    /// [`purge`](crate::Session::purge) ends the current id at once, but not an old id from a
    /// renew within the last window: that one stays readable, with the data from before that
    /// renew, until its window ends. [`end_all_sessions`](crate::Session::end_all_sessions) and
    /// [`SessionAdmin::end_all`](crate::SessionAdmin::end_all) end such old ids too. Where a
    /// session is renewed while logged in (periodic rotation, step-up) and logout must end every
    /// id at once, use those, or a zero window.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_typed_session::{Key, MemoryStore, SessionMiddleware};
    ///
    /// let middleware = SessionMiddleware::builder(Key::generate())
    ///     .backend("memory", MemoryStore::default())
    ///     .renew_grace(Duration::from_secs(2))
    ///     .build();
    /// assert!(middleware.is_ok());
    /// ```
    pub fn renew_grace(mut self, grace: Duration) -> Self {
        self.renew_grace = grace;
        self
    }

    /// The status of the opaque response sent when a store fails (default 500; 503 also fits).
    pub fn failure_status(mut self, status: StatusCode) -> Self {
        self.failure_status = status;
        self
    }

    /// The clock used for expiry (default: the system clock). Meant for tests.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the configuration and builds the middleware.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_typed_session::{BuildError, CookieStore, Key, SessionMiddleware};
    ///
    /// let short = SessionMiddleware::builder(Key::from(&[1u8; 32][..]))
    ///     .backend("cookie", CookieStore::default())
    ///     .build();
    /// assert!(matches!(short, Err(BuildError::KeyTooShort { len: 32 })));
    ///
    /// let backwards = SessionMiddleware::builder(Key::generate())
    ///     .backend("cookie", CookieStore::default())
    ///     .idle_timeout(Duration::from_secs(3600))
    ///     .absolute_timeout(Duration::from_secs(60))
    ///     .build();
    /// assert!(matches!(backwards, Err(BuildError::Timeouts(_))));
    /// ```
    pub fn build(self) -> Result<SessionMiddleware, BuildError> {
        for key in std::iter::once(&self.key).chain(&self.previous_keys) {
            if key.len() < MIN_KEY_LEN {
                return Err(BuildError::KeyTooShort { len: key.len() });
            }
        }
        let refresh = self.check_timeouts()?;
        if !self.failure_status.is_server_error() {
            return Err(BuildError::FailureStatus(self.failure_status));
        }
        self.check_cookie_attributes()?;

        let mut backends = HashMap::new();
        for (name, backend) in &self.backends {
            if backends.insert(name.clone(), backend.clone()).is_some() {
                return Err(BuildError::DuplicateBackend { name: name.clone() });
            }
        }
        let default_backend = match &self.default_backend {
            Some(name) => name.clone(),
            None => self
                .backends
                .first()
                .ok_or(BuildError::NoBackend)?
                .0
                .clone(),
        };
        if !backends.contains_key(&default_backend) {
            return Err(BuildError::UnknownBackend {
                session: "(default)".into(),
                backend: default_backend,
            });
        }

        let mut config = Config {
            keys: KeyRing::new(&self.key, &self.previous_keys),
            rng: SystemRandom::new(),
            backends,
            default_backend,
            sessions: HashMap::new(),
            default_session: self.default_session.clone(),
            default_spec: None,
            cookie: self.cookie.clone(),
            lifetime: self.lifetime,
            idle: self.idle,
            absolute: self.absolute,
            refresh,
            renew_grace: self.renew_grace,
            failure_status: self.failure_status,
            clock: self.clock.clone(),
            writes: Default::default(),
        };
        let mut cookie_owner: HashMap<String, String> = HashMap::new();
        let sessions = self.typed_sessions(&config.backends)?;
        let registered = sessions.iter().map(|(n, c)| (n.clone(), c.clone()));
        let implicit_default = (!sessions.iter().any(|(n, _)| *n == self.default_session))
            .then(|| (self.default_session.clone(), SessionConfig::new()));
        for (name, session) in registered.chain(implicit_default) {
            let spec = config.spec(&name, &session, None)?;
            if let Some(first) = cookie_owner.insert(spec.cookie_name.clone(), name.clone()) {
                return Err(BuildError::DuplicateCookie {
                    first,
                    second: name,
                    cookie: spec.cookie_name,
                });
            }
            config.sessions.insert(name, Arc::new(spec));
        }
        config.default_spec = config.sessions.get(&config.default_session).cloned();
        Ok(SessionMiddleware::from_config(config))
    }

    fn check_timeouts(&self) -> Result<Duration, BuildError> {
        if self.idle.is_zero() || self.absolute.is_zero() {
            return Err(BuildError::Timeouts("timeouts must be longer than zero"));
        }
        if self.idle < Duration::from_secs(1) {
            return Err(BuildError::Timeouts(
                "the idle timeout must be at least one second (cookies count in seconds)",
            ));
        }
        if self.idle > self.absolute {
            return Err(BuildError::Timeouts(
                "the idle timeout is longer than the absolute timeout",
            ));
        }
        if self.absolute > MAX_TIMEOUT {
            return Err(BuildError::Timeouts(
                "timeouts longer than ten years are not supported",
            ));
        }
        let refresh = self
            .refresh
            .unwrap_or_else(|| (self.idle / 4).min(Duration::from_secs(60)));
        if refresh >= self.idle {
            return Err(BuildError::Timeouts(
                "the refresh interval must be shorter than the idle timeout",
            ));
        }
        if self.renew_grace > MAX_RENEW_GRACE {
            return Err(BuildError::Timeouts(
                "the renew grace window must be at most one minute",
            ));
        }
        Ok(refresh)
    }

    fn check_cookie_attributes(&self) -> Result<(), BuildError> {
        if self.cookie.same_site == SameSite::None && !self.cookie.secure {
            return Err(BuildError::InvalidCookieAttribute {
                attribute: "same_site",
                value: "None".into(),
                reason: "browsers drop `SameSite=None` cookies that are not `Secure`",
            });
        }
        let path = &self.cookie.path;
        if !path.starts_with('/') || path.bytes().any(|b| b == b';' || b.is_ascii_control()) {
            return Err(BuildError::InvalidCookieAttribute {
                attribute: "path",
                value: path.clone(),
                reason: "must start with `/` and contain no `;` or control characters",
            });
        }
        if let Some(domain) = &self.cookie.domain {
            let valid = !domain.is_empty()
                && domain.trim_start_matches('.').split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(BuildError::InvalidCookieAttribute {
                    attribute: "domain",
                    value: domain.clone(),
                    reason: "must be a host name such as `example.com`",
                });
            }
        }
        Ok(())
    }
}

impl SessionMiddlewareBuilder {
    /// The registered sessions plus those of the registered [`SessionData`] types, after
    /// checking the types against the backends, the session configs and each other.
    fn typed_sessions(
        &self,
        backends: &HashMap<String, Backend>,
    ) -> Result<Vec<(String, SessionConfig)>, BuildError> {
        let registered = typed::dedup(&self.typed);
        typed::check_keys(&registered)?;
        let mut sessions = self.sessions.clone();
        // The type that set each session's backend, for error messages.
        let mut set_by: HashMap<&str, &str> = HashMap::new();
        for data in registered {
            let Some(backend) = data.backend else {
                if !sessions.iter().any(|(n, _)| n == data.name) {
                    sessions.push((data.name.to_owned(), SessionConfig::new()));
                }
                continue;
            };
            if !backends.contains_key(backend) {
                let mut available: Vec<String> = backends.keys().cloned().collect();
                available.sort();
                return Err(BuildError::TypedUnknownBackend {
                    data: data.type_name,
                    session: data.name.to_owned(),
                    backend: backend.to_owned(),
                    available,
                });
            }
            match sessions.iter_mut().find(|(n, _)| n == data.name) {
                None => {
                    sessions.push((data.name.to_owned(), SessionConfig::new().backend(backend)));
                    set_by.insert(data.name, data.type_name);
                }
                Some((_, config)) => match &config.backend {
                    None => {
                        config.backend = Some(backend.to_owned());
                        set_by.insert(data.name, data.type_name);
                    }
                    Some(configured) if configured != backend => {
                        let by = match set_by.get(data.name) {
                            Some(other) => format!("`{other}`"),
                            None => {
                                format!("its `SessionConfig` (`.session(\"{}\", ..)`)", data.name)
                            }
                        };
                        return Err(BuildError::TypedBackendConflict {
                            data: data.type_name,
                            session: data.name.to_owned(),
                            requested: backend.to_owned(),
                            configured: configured.clone(),
                            by,
                        });
                    }
                    Some(_) => {}
                },
            }
        }
        Ok(sessions)
    }
}

/// The validated configuration shared by every worker.
pub(crate) struct Config {
    #[cfg_attr(not(feature = "cookie"), allow(dead_code))]
    pub(crate) keys: KeyRing,
    pub(crate) rng: SystemRandom,
    pub(crate) backends: HashMap<String, Backend>,
    pub(crate) default_backend: String,
    pub(crate) sessions: HashMap<String, Arc<Spec>>,
    pub(crate) default_session: String,
    /// `sessions[default_session]`, which the `Session` extractor opens on every request:
    /// found without hashing its name.
    pub(crate) default_spec: Option<Arc<Spec>>,
    pub(crate) cookie: CookieSettings,
    pub(crate) lifetime: CookieLifetime,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
    pub(crate) refresh: Duration,
    pub(crate) renew_grace: Duration,
    pub(crate) failure_status: StatusCode,
    pub(crate) clock: Arc<dyn Clock>,
    /// Detects change sets that merged with another write (metric only).
    pub(crate) writes: crate::telemetry::WriteClock,
}

/// Everything needed to load and save one named session.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) cookie_name: String,
    pub(crate) backend_name: String,
    pub(crate) backend: Backend,
    pub(crate) lifetime: CookieLifetime,
    /// The cookie's fixed attributes (`; HttpOnly; SameSite=Lax; Secure; Path=/`), rendered once.
    pub(crate) cookie_attributes: Box<str>,
    /// The associated data sealed into a cookie session's cookies (format version and cookie
    /// name), built once.
    #[cfg_attr(not(feature = "cookie"), allow(dead_code))]
    pub(crate) cookie_aad: Arc<[u8]>,
    /// The middleware's clock, for owner operations run from a handler.
    pub(crate) clock: Arc<dyn Clock>,
    /// The absolute timeout: how long a cookie revocation must be remembered.
    #[cfg_attr(not(feature = "cookie"), allow(dead_code))]
    pub(crate) absolute: Duration,
    /// The status of the opaque response when a store fails.
    pub(crate) failure_status: StatusCode,
    /// The labels of this session's metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) labels: crate::telemetry::Labels,
}

impl Config {
    /// The settings of session `name`, opened on `backend` (or its configured/default backend).
    pub(crate) fn resolve(
        &self,
        name: &str,
        backend: Option<&str>,
    ) -> Result<Arc<Spec>, SessionError> {
        let registered = match &self.default_spec {
            Some(spec) if name == self.default_session => Some(spec),
            _ => self.sessions.get(name),
        };
        if let Some(spec) = registered {
            return match backend {
                Some(requested) if requested != spec.backend_name => {
                    Err(SessionError::BackendMismatch {
                        session: name.to_owned(),
                        configured: spec.backend_name.clone(),
                        requested: requested.to_owned(),
                    })
                }
                _ => Ok(spec.clone()),
            };
        }
        let config = SessionConfig {
            backend: backend.map(str::to_owned),
            ..SessionConfig::default()
        };
        let spec = self.spec(name, &config, backend).map_err(|err| match err {
            BuildError::UnknownBackend { session, backend } => {
                SessionError::UnknownBackend { session, backend }
            }
            BuildError::InvalidCookieName { name, reason } => {
                SessionError::InvalidName { name, reason }
            }
            other => SessionError::InvalidName {
                name: name.to_owned(),
                reason: match other {
                    BuildError::CookiePrefix { requirement, .. } => requirement,
                    _ => "invalid session configuration",
                },
            },
        })?;
        if self
            .sessions
            .values()
            .any(|s| s.cookie_name == spec.cookie_name)
        {
            return Err(SessionError::InvalidName {
                name: name.to_owned(),
                reason: "its cookie name is already used by a registered session",
            });
        }
        Ok(Arc::new(spec))
    }

    fn spec(
        &self,
        name: &str,
        config: &SessionConfig,
        requested_backend: Option<&str>,
    ) -> Result<Spec, BuildError> {
        validate_token(name)?;
        let cookie_name = config
            .cookie_name
            .clone()
            .unwrap_or_else(|| name.to_owned());
        validate_token(&cookie_name)?;
        self.check_prefix(&cookie_name)?;
        let backend_name = config
            .backend
            .as_deref()
            .or(requested_backend)
            .unwrap_or(&self.default_backend)
            .to_owned();
        let backend = self
            .backends
            .get(&backend_name)
            .ok_or_else(|| BuildError::UnknownBackend {
                session: name.to_owned(),
                backend: backend_name.clone(),
            })?
            .clone();
        let lifetime = config.lifetime.unwrap_or(self.lifetime);
        if lifetime == CookieLifetime::Persistent && self.absolute > MAX_COOKIE_LIFETIME {
            return Err(BuildError::Timeouts(
                "persistent cookies live at most 400 days in browsers; lower the absolute timeout",
            ));
        }
        let labels = crate::telemetry::labels(name, &backend_name);
        #[cfg(feature = "cookie")]
        let cookie_aad = crate::store::cookie_aad(&cookie_name).into();
        #[cfg(not(feature = "cookie"))]
        let cookie_aad = Arc::from(Vec::new());
        Ok(Spec {
            name: name.to_owned(),
            cookie_name,
            backend_name,
            backend,
            lifetime,
            cookie_attributes: crate::cookie_header::render_attributes(&self.cookie),
            cookie_aad,
            clock: self.clock.clone(),
            absolute: self.absolute,
            failure_status: self.failure_status,
            labels,
        })
    }

    fn check_prefix(&self, cookie: &str) -> Result<(), BuildError> {
        let prefix_error = |prefix, requirement| BuildError::CookiePrefix {
            cookie: cookie.to_owned(),
            prefix,
            requirement,
        };
        // Browsers match these prefixes case-insensitively.
        let lower = cookie.to_ascii_lowercase();
        if lower.starts_with("__host-") {
            if !self.cookie.secure {
                return Err(prefix_error("__Host-", "`Secure` (cookie_secure(true))"));
            }
            if self.cookie.path != "/" {
                return Err(prefix_error("__Host-", "`Path=/`"));
            }
            if self.cookie.domain.is_some() {
                return Err(prefix_error("__Host-", "no `Domain` attribute"));
            }
        } else if lower.starts_with("__secure-") && !self.cookie.secure {
            return Err(prefix_error("__Secure-", "`Secure` (cookie_secure(true))"));
        }
        Ok(())
    }
}

/// Checks that `name` is an RFC 6265 cookie-name (an RFC 9110 token).
pub(crate) fn validate_token(name: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidCookieName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 256 {
        return Err(invalid("it is longer than 256 bytes"));
    }
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(is_tchar) {
        return Err(invalid(
            "only letters, digits and !#$%&'*+-.^_`|~ are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(validate_token("session").is_ok());
        assert!(validate_token("__Host-cart").is_ok());
        for bad in ["", "a b", "a;b", "a=b", "é", "a\"b", "a,b", "(x)"] {
            assert!(validate_token(bad).is_err(), "{bad:?}");
        }
    }
}
