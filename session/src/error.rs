//! The errors this crate returns.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};

use crate::StoreError;

/// A misconfiguration found while building the middleware.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The master key (or a previous key) is shorter than 64 bytes.
    #[error("session key is {len} bytes; at least 64 bytes of secret are required")]
    KeyTooShort {
        /// The length that was given.
        len: usize,
    },
    /// No backend was registered.
    #[error("no session backend registered; add one with `.backend(name, store)`")]
    NoBackend,
    /// Two backends were registered under one name.
    #[error("session backend `{name}` is registered twice")]
    DuplicateBackend {
        /// The repeated name.
        name: String,
    },
    /// A session was configured on a backend that is not registered.
    #[error("session `{session}` uses backend `{backend}`, which is not registered")]
    UnknownBackend {
        /// The session's name.
        session: String,
        /// The missing backend.
        backend: String,
    },
    /// A session or cookie name is not a valid cookie-name token.
    #[error("`{name}` is not a valid cookie name: {reason}")]
    InvalidCookieName {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two sessions would share one cookie.
    #[error("sessions `{first}` and `{second}` would both use cookie `{cookie}`")]
    DuplicateCookie {
        /// One session.
        first: String,
        /// The other session.
        second: String,
        /// The shared cookie name.
        cookie: String,
    },
    /// A cookie-name prefix demands attributes the configuration does not give.
    #[error("cookie `{cookie}` has the `{prefix}` prefix, which requires {requirement}")]
    CookiePrefix {
        /// The cookie name.
        cookie: String,
        /// `__Host-` or `__Secure-`.
        prefix: &'static str,
        /// The missing attribute.
        requirement: &'static str,
    },
    /// A cookie attribute value is invalid.
    #[error("invalid cookie {attribute} `{value}`: {reason}")]
    InvalidCookieAttribute {
        /// `path` or `domain`.
        attribute: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Timeouts that cannot work together.
    #[error("invalid timeouts: {0}")]
    Timeouts(&'static str),
    /// A database identifier (schema or table name) or a Redis key prefix is not acceptable.
    #[error("invalid {what} name `{name}`: {reason}")]
    InvalidIdentifier {
        /// `schema`, `table` or `Redis key prefix`.
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A store would take every connection of its pool for its shared connections.
    #[error(
        "{shared} shared connections leave none of the pool's {pool} for the other operations; \
         share fewer or give the pool more"
    )]
    PoolTooSmall {
        /// The shared connections asked for.
        shared: usize,
        /// The pool's maximum size.
        pool: usize,
    },
    /// A PostgreSQL store was asked for shared connections and unnamed statements (for
    /// PgBouncer in transaction pooling mode): shared connections keep prepared statements and
    /// a `lock_timeout` on connections of their own, which such a pooler does not keep.
    #[error(
        "shared connections cannot be used with unnamed statements (PgBouncer in transaction \
         pooling mode): they rely on prepared statements and a `lock_timeout` that live on a \
         server connection; leave `shared_connections` at 0"
    )]
    SharedConnectionsUnnamed,
    /// The failure status is not a server error.
    #[error("failure status {0} is not a 5xx status")]
    FailureStatus(StatusCode),
    /// A registered [`SessionData`](crate::SessionData) type asks for a backend that is not
    /// registered.
    #[error(
        "`{data}` (session `{session}`) asks for backend `{backend}`, which is not registered; \
         the registered backends are: {}",
        .available.join(", ")
    )]
    TypedUnknownBackend {
        /// The `SessionData` type.
        data: &'static str,
        /// Its session's name.
        session: String,
        /// The backend it asks for.
        backend: String,
        /// The registered backends, sorted.
        available: Vec<String>,
    },
    /// A registered [`SessionData`](crate::SessionData) type puts its session on another
    /// backend than the session is already on.
    #[error(
        "`{data}` puts session `{session}` on backend `{requested}`, but {by} puts it on \
         backend `{configured}`; one session lives on one backend"
    )]
    TypedBackendConflict {
        /// The `SessionData` type.
        data: &'static str,
        /// The session's name.
        session: String,
        /// The backend the type asks for.
        requested: String,
        /// The backend the session is on.
        configured: String,
        /// What put it there: another type, or the session's `SessionConfig`.
        by: String,
    },
    /// Two registered [`SessionData`](crate::SessionData) types store different types under
    /// one key of one session.
    #[error(
        "key `{key}` of session `{session}` is a `{first_type}` in `{first}` but a \
         `{second_type}` in `{second}`; rename one of the fields' keys \
         (#[session(rename = \"...\")]) or make the types agree"
    )]
    TypedKeyConflict {
        /// The session's name.
        session: String,
        /// The shared key.
        key: String,
        /// The type registered first.
        first: &'static str,
        /// What it stores under the key.
        first_type: &'static str,
        /// The type registered second.
        second: &'static str,
        /// What it stores under the key.
        second_type: &'static str,
    },
    /// The TLS settings of a Redis store cannot be used: the URL is not `rediss://`, or the
    /// root certificates cannot be read as PEM certificates.
    #[cfg(feature = "redis")]
    #[error("invalid Redis TLS settings")]
    RedisTls(#[source] ::redis::RedisError),
}

/// An error from a session operation inside a handler.
///
/// Every variant answers the client with an empty response (500, or the middleware's
/// configured failure status for store errors): details stay in the logs, never in the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A value could not be serialized to JSON.
    #[error("could not serialize the value for key `{key}` of session `{session}`")]
    Serialize {
        /// The session's name.
        session: String,
        /// The key being set.
        key: String,
        /// Why serialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not deserialize into the requested type.
    #[error("value of key `{key}` in session `{session}` does not have the requested type")]
    Deserialize {
        /// The session's name.
        session: String,
        /// The key being read.
        key: String,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not deserialize as the type a
    /// [`SessionData`](crate::SessionData) field declares (for example, after the field's type
    /// changed between two deployments).
    #[error(
        "value of key `{key}` in session `{session}` is not a valid `{expected}` \
         (the type of its `SessionData` field)"
    )]
    WrongType {
        /// The session's name.
        session: String,
        /// The key being read.
        key: String,
        /// The Rust type the field expects.
        expected: &'static str,
        /// Why deserialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// The change would make a cookie-backed session's cookie exceed the browser limit.
    /// The session keeps its previous state.
    #[error(
        "session `{session}` would need a {size}-byte cookie, over the {limit}-byte browser limit; \
         the change was not applied (move this session to a server-side backend, or store less)"
    )]
    TooLarge {
        /// The session's name.
        session: String,
        /// The size `name=value` would have had, in bytes.
        size: usize,
        /// The limit (4096 bytes).
        limit: usize,
    },
    /// The session's store failed (loading it, or an owner operation).
    #[error("the store of session `{session}` failed")]
    Store {
        /// The session's name.
        session: String,
        /// The store's error.
        #[source]
        source: StoreError,
        /// The status the middleware is configured to answer with.
        status: StatusCode,
    },
    /// A session name is not a valid cookie name.
    #[error("`{name}` is not a valid session name: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The session asks for a backend that is not registered.
    #[error("session `{session}` asks for backend `{backend}`, which is not registered")]
    UnknownBackend {
        /// The session's name.
        session: String,
        /// The backend's name.
        backend: String,
    },
    /// One request opened one session name on two different backends.
    #[error("session `{session}` is configured on backend `{configured}`, not `{requested}`")]
    BackendMismatch {
        /// The session's name.
        session: String,
        /// The backend the session is on.
        configured: String,
        /// The backend that was asked for.
        requested: String,
    },
    /// The request carried the old id of a session renewed moments ago, within the
    /// [renew grace window](crate::SessionMiddlewareBuilder::renew_grace): the session can be
    /// read but not changed (its new id is already with the browser).
    #[error(
        "session `{session}` was renewed by another request moments ago; this request sees it \
         read-only"
    )]
    ReadOnly {
        /// The session's name.
        session: String,
    },
    /// The session's backend cannot tie sessions to owners, or cannot do the owner operation
    /// asked for (a server-side store without an owner index, or the cookie backend without a
    /// revocation store).
    #[error("session `{session}` on backend `{backend}` cannot {operation}")]
    OwnersUnsupported {
        /// The session's name.
        session: String,
        /// The backend's name.
        backend: String,
        /// What was asked for.
        operation: &'static str,
    },
    /// An owner value that cannot be stored: empty, or longer than 256 bytes.
    #[error("invalid owner for session `{session}`: {reason}")]
    InvalidOwner {
        /// The session's name.
        session: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key the library keeps for itself (the session's [`Expiry`](crate::Expiry)), which
    /// [`Session::insert`](crate::Session::insert) refuses.
    #[error("key `{key}` of session `{session}` is reserved; choose another key")]
    ReservedKey {
        /// The session's name.
        session: String,
        /// The reserved key.
        key: &'static str,
    },
    /// An [`Expiry`](crate::Expiry) that cannot be used, such as an idle timeout under one
    /// second.
    #[error("invalid expiry for session `{session}`: {reason}")]
    InvalidExpiry {
        /// The session's name.
        session: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No `SessionMiddleware` serves this request where its sessions were asked for: none wraps
    /// the route, its App or its scope; or they were asked for before the middleware was called
    /// (by a middleware outside it before `next.call`, or by a guard of the very scope or
    /// resource the middleware wraps, which runs first).
    #[error(
        "no session middleware on this request: is `SessionMiddleware` wrapping this App, scope \
         or resource, and called before the session is asked for?"
    )]
    MissingMiddleware,
}

impl ResponseError for SessionError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Store { status, .. } => *status,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Opaque on purpose: the cause is logged where it happens, never sent to the client.
        HttpResponse::new(self.status_code())
    }
}
