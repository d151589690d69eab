//! The configuration `build()` resolves, shared by every worker: backends, one spec per named
//! session, and the resolution of sessions opened by name at run time.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix_web::http::StatusCode;
use ring::rand::SystemRandom;

use super::{validate_token, CookieLifetime, CookieSettings, SessionConfig, MAX_COOKIE_LIFETIME};
use crate::{clock::Clock, key::KeyRing, store::Backend, BuildError, SessionError};

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
    /// Whether [`Session::set_owner`](crate::Session::set_owner) records the client's address.
    pub(crate) record_address: bool,
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

    pub(super) fn spec(
        &self,
        name: &str,
        config: &SessionConfig,
        requested_backend: Option<&str>,
    ) -> Result<Spec, BuildError> {
        validate_token(name)?;
        let cookie_name = config
            .cookie_name
            .clone()
            .unwrap_or_else(|| self.default_cookie_name(name));
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

    /// The cookie name of a session that does not set one: `__Host-{name}` when the cookie
    /// attributes allow the prefix (`Secure`, `Path=/`, no `Domain`: the defaults), so that
    /// neither a sibling subdomain nor a page on a longer path can set a cookie of that name;
    /// otherwise the session's name. A name that already has a prefix is kept.
    fn default_cookie_name(&self, name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        let host_allowed =
            self.cookie.secure && self.cookie.path == "/" && self.cookie.domain.is_none();
        if host_allowed && !lower.starts_with("__host-") && !lower.starts_with("__secure-") {
            format!("__Host-{name}")
        } else {
            name.to_owned()
        }
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
