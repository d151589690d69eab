//! The storage interface and the built-in backends.

pub(crate) mod cached;
#[cfg(all(test, feature = "memory"))]
mod cached_races;
#[cfg(feature = "cookie")]
mod cookie;
#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod server;

pub use self::cached::{CachedStore, CachedStoreBuilder, LocalCache, SessionCache};
#[cfg(all(feature = "cookie", any(test, feature = "__fuzz")))]
pub(crate) use self::cookie::payload_round_trip;
#[cfg(feature = "cookie")]
pub(crate) use self::cookie::{aad as cookie_aad, Opened};
#[cfg(feature = "cookie")]
pub use self::cookie::{CookieSecurity, CookieStore};
#[cfg(feature = "memory")]
pub use self::memory::{MemoryStore, MemoryStoreBuilder, WhenFull};
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresStatements, PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use self::redis::{RedisStore, RedisStoreBuilder};
pub(crate) use self::server::{DynStore, ErasedStore};
pub use self::server::{OwnedSession, Record, SessionStore, StoreError, WriteResult};

use std::sync::Arc;

/// A backend that can be registered on the middleware under a name.
///
/// Built from the [`CookieStore`] or from any [`SessionStore`] (the memory store, PostgreSQL,
/// Redis, or your own) with `From`, which
/// [`SessionMiddlewareBuilder::backend`](crate::SessionMiddlewareBuilder::backend) calls for you.
///
/// ```
/// use actix_typed_session::{Backend, CookieStore, MemoryStore};
///
/// let cookie: Backend = CookieStore::default().into();
/// let memory: Backend = MemoryStore::default().into();
/// assert!(cookie.is_cookie() && !memory.is_cookie());
/// ```
#[derive(Clone)]
pub struct Backend {
    pub(crate) kind: BackendKind,
}

#[derive(Clone)]
pub(crate) enum BackendKind {
    #[cfg(feature = "cookie")]
    Cookie(CookieStore),
    Server(Arc<dyn DynStore>),
}

impl Backend {
    /// Whether the session data lives in the cookie itself (rather than in a server-side store).
    pub fn is_cookie(&self) -> bool {
        match self.kind {
            #[cfg(feature = "cookie")]
            BackendKind::Cookie(_) => true,
            BackendKind::Server(_) => false,
        }
    }
}

impl Backend {
    /// The server-side store, unless this is the cookie backend.
    pub(crate) fn server(&self) -> Option<&Arc<dyn DynStore>> {
        match &self.kind {
            #[cfg(feature = "cookie")]
            BackendKind::Cookie(_) => None,
            BackendKind::Server(store) => Some(store),
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            #[cfg(feature = "cookie")]
            BackendKind::Cookie(c) => f.debug_tuple("Backend").field(c).finish(),
            BackendKind::Server(s) => f.debug_tuple("Backend").field(&s.type_name()).finish(),
        }
    }
}

#[cfg(feature = "cookie")]
impl From<CookieStore> for Backend {
    fn from(store: CookieStore) -> Self {
        Self {
            kind: BackendKind::Cookie(store),
        }
    }
}

impl<S: SessionStore> From<S> for Backend {
    fn from(store: S) -> Self {
        Self {
            kind: BackendKind::Server(Arc::new(ErasedStore(store))),
        }
    }
}
