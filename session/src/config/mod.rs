//! Building the middleware: keys, backends, sessions, cookies and timeouts.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use actix_web::{cookie::SameSite, http::StatusCode};
use ring::rand::SystemRandom;

mod resolved;
mod validate;

pub(crate) use self::{
    resolved::{Config, Spec},
    validate::validate_token,
};
use crate::{
    clock::{Clock, SystemClock},
    key::{KeyRing, MIN_KEY_LEN},
    middleware::SessionMiddleware,
    store::Backend,
    typed::Registration,
    BuildError, Key, SessionData,
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
/// Sessions that are not registered still work: they take the default cookie name, the
/// backend they are opened on (or the default backend), and the middleware's cookie lifetime.
///
/// # Cookie names
/// A session's cookie is called `__Host-{name}` (`__Host-session`, `__Host-cart`) when the
/// cookie attributes allow that prefix: `Secure`, `Path=/` and no `Domain`, which are the
/// defaults. Browsers then refuse a cookie of that name from a sibling subdomain, from a page
/// on a longer path, or over plain HTTP, so none can be planted beside the real one. With
/// [`cookie_secure(false)`](SessionMiddlewareBuilder::cookie_secure), another
/// [`cookie_path`](SessionMiddlewareBuilder::cookie_path) or a
/// [`cookie_domain`](SessionMiddlewareBuilder::cookie_domain), the cookie is called `{name}`.
/// A name given with [`cookie_name`](Self::cookie_name) is used as given.
///
/// ```
/// use actix_typed_session::{CookieLifetime, SessionConfig};
///
/// let cart = SessionConfig::new()
///     .backend("memory")
///     .cookie_name("cart") // exactly `cart`: no prefix
///     .lifetime(CookieLifetime::Persistent);
/// # let _ = cart;
/// ```
///
/// The default name, as a browser sees it:
///
/// ```
/// use actix_typed_session::{CookieStore, Key, Session, SessionMiddleware};
/// use actix_web::{test, web, App, HttpResponse};
///
/// # actix_web::rt::System::new().block_on(async {
/// let app = test::init_service(
///     App::new()
///         .wrap(
///             SessionMiddleware::builder(Key::generate())
///                 .backend("cookie", CookieStore::default())
///                 .build()
///                 .unwrap(),
///         )
///         .route("/", web::get().to(|s: Session| async move {
///             s.insert("n", 1)?;
///             Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
///         })),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
/// let names: Vec<_> = res.response().cookies().map(|c| c.name().to_owned()).collect();
/// assert_eq!(names, ["__Host-session"]);
/// # });
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SessionConfig {
    backend: Option<String>,
    cookie_name: Option<String>,
    lifetime: Option<CookieLifetime>,
}

impl SessionConfig {
    /// Default settings: the default backend, a cookie named after the session (`__Host-{name}`
    /// under the default cookie attributes; see [Cookie names](Self#cookie-names)).
    pub fn new() -> Self {
        Self::default()
    }

    /// The registered backend this session lives on.
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.backend = Some(name.into());
        self
    }

    /// The cookie's name, used exactly as given, if it should differ from the default
    /// (`__Host-{name}` under the default cookie attributes, else `{name}`; see
    /// [Cookie names](Self#cookie-names)). A `__Host-` or `__Secure-` name is checked against
    /// the cookie attributes by [`build`](SessionMiddlewareBuilder::build).
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
    record_address: bool,
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
            record_address: false,
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
    /// request (as a [`SessionError`](crate::SessionError)) or not at all.
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

    /// The cookies' `Path` (default `/`). `build()` refuses a path that does not start with `/`,
    /// is longer than 1,024 bytes, or holds anything but visible ASCII other than `;` and `,`.
    /// A path other than `/` drops the `__Host-` prefix from default cookie names
    /// ([Cookie names](SessionConfig#cookie-names)).
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookies' `Domain` (default: none, so the cookie goes only to the host that set it).
    /// `build()` refuses anything but a host name of at most 1,024 bytes. A `Domain` drops the
    /// `__Host-` prefix from default cookie names ([Cookie names](SessionConfig#cookie-names)).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// Whether cookies carry `Secure` (default `true`; browsers accept secure cookies from
    /// `http://localhost`). Without `Secure`, default cookie names lose their `__Host-` prefix
    /// ([Cookie names](SessionConfig#cookie-names)).
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

    /// Whether [`Session::set_owner`](crate::Session::set_owner) records the client's IP
    /// address with the session, for [`SessionInfo::address`](crate::SessionInfo::address)
    /// ("Your sessions" pages). Off by default.
    ///
    /// An IP address is personal data (GDPR and similar laws): record it only when you have a
    /// reason to, say so in your privacy notice, and keep it no longer than the session (it is
    /// deleted with the session, and when the owner is cleared).
    ///
    /// The address is the connection's peer address. Behind a reverse proxy or load balancer
    /// that is the proxy's address, the same for every visitor. This crate does not read
    /// `Forwarded` or `X-Forwarded-For`: any client can send them, and only your deployment
    /// knows which proxies to trust. If you trust yours, wrap a middleware outside this one
    /// that sets `req.head_mut().peer_addr` from the header your proxy sets, when the
    /// connection comes from that proxy (actix-web's `ConnectionInfo::realip_remote_addr` reads
    /// such headers; its documentation explains the spoofing risk). Server-side backends only:
    /// cookie sessions record no device.
    ///
    /// ```
    /// use actix_typed_session::{Key, MemoryStore, SessionMiddleware};
    ///
    /// let middleware = SessionMiddleware::builder(Key::generate())
    ///     .backend("memory", MemoryStore::default())
    ///     .record_client_address(true)
    ///     .build();
    /// assert!(middleware.is_ok());
    /// ```
    pub fn record_client_address(mut self, record: bool) -> Self {
        self.record_address = record;
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
            keys: KeyRing::new(&self.key, &self.previous_keys).with_lookback(self.absolute),
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
            record_address: self.record_address,
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
}
