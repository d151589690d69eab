//! Testing handlers and services that use sessions, without a server.
//!
//! [`TestSessions`] seeds sessions under your app's own [`SessionMiddleware`] configuration,
//! then either
//!
//! - hands a handler an `HttpRequest` that already carries them
//!   ([`to_http_request`](TestSessions::to_http_request)): extract [`Session`], [`Sessions`] or
//!   a typed session from it, call the handler, and read back what it changed with [`opened`];
//! - or writes them through their backends and gives the cookies that bring them back
//!   ([`cookies`](TestSessions::cookies)), for `actix_web::test::call_service` on an app
//!   wrapped in the middleware; [`opened`] on `res.request()` reads the sessions as the
//!   handler left them.
//!
//! ```
//! use actix_web::{test::TestRequest, FromRequest as _, HttpResponse};
//! use actix_typed_session::{test, Key, MemoryStore, Session, SessionMiddleware, SessionStatus};
//! use serde_json::json;
//!
//! async fn add_item(session: Session) -> actix_web::Result<HttpResponse> {
//!     let mut items: Vec<u32> = session.get("items")?.unwrap_or_default();
//!     items.push(2);
//!     session.insert("items", items)?;
//!     Ok(HttpResponse::Ok().finish())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let middleware = SessionMiddleware::builder(Key::generate())
//!     .backend("memory", MemoryStore::default())
//!     .build()
//!     .unwrap();
//! let req = test::TestSessions::new(&middleware)
//!     .session("session", json!({"items": [1]}))
//!     .to_http_request(TestRequest::post().uri("/cart"));
//!
//! let res = add_item(Session::extract(&req).await.unwrap()).await.unwrap();
//! assert!(res.status().is_success());
//!
//! let after = test::opened(&req, "session").unwrap();
//! assert_eq!(after.status(), SessionStatus::Changed);
//! assert_eq!(after.get::<Vec<u32>>("items").unwrap(), Some(vec![1, 2]));
//! # });
//! ```

use std::{sync::Arc, time::SystemTime};

use actix_web::{cookie::Cookie, test::TestRequest, HttpMessage as _, HttpRequest};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    config::{later, Config, Spec},
    id::SessionId,
    request::{Marker, Registry},
    session::{Origin, State},
    ChangeSet, Session, SessionData, SessionMiddleware, Sessions,
};

/// Sessions to seed into test requests, under a middleware's configuration (see the
/// [module docs](self)).
///
/// The seeded sessions are the ones your handler gets: on the backend and with the settings
/// the middleware gives them, so the same checks apply (a cookie session still refuses to grow
/// past the cookie limit).
#[must_use]
pub struct TestSessions {
    config: Arc<Config>,
    seeds: Vec<(Arc<Spec>, Map<String, Value>)>,
}

impl std::fmt::Debug for TestSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.seeds.iter().map(|(s, _)| s.name.as_str()).collect();
        f.debug_struct("TestSessions")
            .field("seeded", &names)
            .finish()
    }
}

impl TestSessions {
    /// No sessions yet, under `middleware`'s configuration (build it as your app does).
    pub fn new(middleware: &SessionMiddleware) -> Self {
        Self {
            config: middleware.config().clone(),
            seeds: Vec::new(),
        }
    }

    /// Seeds the session `name`, on its configured (or the default) backend, with `entries`:
    /// anything that serializes to a JSON object, such as `json!({"user": "ann"})`. Seeding a
    /// name again replaces its entries.
    ///
    /// # Panics
    /// When `entries` is not an object, holds a key `Session::insert` refuses (the reserved
    /// expiry key), would not fit the session's backend (a cookie over the browser limit), or
    /// `name` is not a valid session name: test set-up mistakes, reported at the call.
    #[track_caller]
    pub fn session(self, name: &str, entries: impl Serialize) -> Self {
        self.seed(name, None, entries)
    }

    /// Seeds the session of a `#[derive(SessionData)]` type `T`, on the backend `T` names,
    /// with `entries` keyed by its fields' stored keys (`json!({"items": ["book"]})`).
    ///
    /// ```
    /// use actix_web::{test::TestRequest, FromRequest as _};
    /// use actix_typed_session::{
    ///     test::TestSessions, Key, MemoryStore, SessionData, SessionMiddleware,
    /// };
    /// use serde_json::json;
    ///
    /// #[derive(SessionData)]
    /// #[session(name = "cart", backend = "memory")]
    /// struct Cart {
    ///     items: Vec<String>,
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let middleware = SessionMiddleware::builder(Key::generate())
    ///     .backend("memory", MemoryStore::default())
    ///     .build()
    ///     .unwrap();
    /// let req = TestSessions::new(&middleware)
    ///     .typed::<Cart>(json!({"items": ["book"]}))
    ///     .to_http_request(TestRequest::default());
    /// let cart = CartSession::extract(&req).await.unwrap();
    /// assert_eq!(cart.items().unwrap(), ["book"]);
    /// # });
    /// ```
    ///
    /// # Panics
    /// As [`session`](Self::session), and when an entry's key is not one of `T`'s stored keys
    /// (a typo would otherwise seed nothing the handler reads).
    #[track_caller]
    pub fn typed<T: SessionData>(self, entries: impl Serialize) -> Self {
        let entries = object(T::NAME, entries);
        if let Some(unknown) = entries
            .keys()
            .find(|key| !T::FIELDS.iter().any(|f| f.key == key.as_str()))
        {
            let known: Vec<&str> = T::FIELDS.iter().map(|f| f.key).collect();
            panic!(
                "`{unknown}` is not a stored key of `{}` (its keys: {known:?})",
                std::any::type_name::<T>()
            );
        }
        self.seed(T::NAME, T::BACKEND, Value::Object(entries))
    }

    #[track_caller]
    fn seed(mut self, name: &str, backend: Option<&str>, entries: impl Serialize) -> Self {
        let spec = self
            .config
            .resolve(name, backend)
            .unwrap_or_else(|err| panic!("cannot seed session `{name}`: {err}"));
        let entries = object(name, entries);
        // The checks of `Session::insert` (reserved key, cookie size), here at the seed.
        if let Err(err) = fill(&spec, Origin::New, &entries) {
            panic!("cannot seed session `{name}`: {err}");
        }
        self.seeds.retain(|(seeded, _)| seeded.name != name);
        self.seeds.push((spec, entries));
        self
    }

    /// The request `req` describes, carrying the seeded sessions as if the visitor had brought
    /// them (loaded, unchanged). Extract [`Session`], [`Sessions`] or a typed session from it
    /// and call the handler; sessions that were not seeded open empty, without store I/O. Each
    /// call gives fresh copies of the seeds.
    ///
    /// Nothing is saved: the request goes through no middleware. Read what the handler did
    /// with [`opened`].
    pub fn to_http_request(&self, req: TestRequest) -> HttpRequest {
        let req = req
            .app_data(Marker::new(self.config.clone()))
            .to_http_request();
        let registry = Registry::find(
            req.app_data::<Marker>(),
            || req.extensions(),
            || req.extensions_mut(),
            req.headers(),
            req.peer_addr(),
        )
        .expect("the marker was added above");
        let now = self.config.clock.now();
        for (spec, entries) in &self.seeds {
            registry.register(self.loaded(spec, entries, now));
        }
        req
    }

    /// A seeded session as loaded from its backend at `now`: unchanged.
    fn loaded(&self, spec: &Arc<Spec>, entries: &Map<String, Value>, now: SystemTime) -> Session {
        let id = spec
            .backend
            .server()
            .map(|_| SessionId::generate(&self.config.rng));
        let origin = Origin::Loaded {
            id,
            created_at: now,
            expires_at: later(now, self.config.idle),
        };
        let session = fill(spec, origin, entries).expect("checked when seeded");
        session.state().changes = ChangeSet::default();
        session
    }

    /// Writes each seeded session through its backend, as a handler's first write would, and
    /// returns the cookies that bring them back: add them to requests
    /// (`TestRequest::cookie(..)`) for an app wrapped in the same middleware, or one sharing
    /// its key and stores.
    ///
    /// ```
    /// use actix_web::{test, web, App, HttpResponse};
    /// use actix_typed_session::{
    ///     test::{opened, TestSessions},
    ///     Key, MemoryStore, Session, SessionMiddleware,
    /// };
    /// use serde_json::json;
    ///
    /// async fn logout(session: Session) -> HttpResponse {
    ///     session.purge();
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let middleware = SessionMiddleware::builder(Key::generate())
    ///     .backend("memory", MemoryStore::default())
    ///     .build()
    ///     .unwrap();
    /// let cookies = TestSessions::new(&middleware)
    ///     .session("session", json!({"user": "ann"}))
    ///     .cookies()
    ///     .await;
    /// let app = test::init_service(
    ///     App::new().wrap(middleware).route("/logout", web::post().to(logout)),
    /// )
    /// .await;
    /// let mut req = test::TestRequest::post().uri("/logout");
    /// for cookie in cookies {
    ///     req = req.cookie(cookie);
    /// }
    /// let res = test::call_service(&app, req.to_request()).await;
    /// let session = opened(res.request(), "session").unwrap();
    /// assert!(session.entries().is_empty()); // purged
    /// # });
    /// ```
    ///
    /// # Panics
    /// When a store fails (the cause is logged, as for a request).
    pub async fn cookies(&self) -> Vec<Cookie<'static>> {
        let now = self.config.clock.now();
        let mut cookies = Vec::with_capacity(self.seeds.len());
        for (spec, entries) in &self.seeds {
            let session = fill(spec, Origin::New, entries).expect("checked when seeded");
            let saved = crate::save::save(&self.config, &session, now).await;
            let Ok(Some(header)) = saved else {
                panic!(
                    "cannot seed session `{}`: its backend did not save it (see the log)",
                    spec.name
                );
            };
            let header = header.to_str().expect("a cookie is visible ASCII");
            let cookie = Cookie::parse(header.to_owned()).expect("the middleware's own cookie");
            cookies.push(cookie);
        }
        cookies
    }
}

/// The session `name` of `req` as the handler left it, if the request opened it (or it was
/// seeded): entries, [`status`](Session::status), expiry. `req` is a request from
/// [`TestSessions::to_http_request`], or `res.request()` of a response from a service wrapped
/// in the [`SessionMiddleware`]; `None` also when there is no session middleware.
pub fn opened(req: &HttpRequest, name: &str) -> Option<Session> {
    Sessions::from_request_parts(req).ok()?.opened(name)
}

/// A session of `spec` from `origin` holding `entries`, each set through `Session::insert`.
fn fill(
    spec: &Arc<Spec>,
    origin: Origin,
    entries: &Map<String, Value>,
) -> Result<Session, crate::SessionError> {
    let session = Session::new(spec.clone(), State::new(origin, Map::new()));
    for (key, value) in entries {
        session.insert(key, value)?;
    }
    Ok(session)
}

/// `entries` as a JSON object; panics (at the caller) otherwise.
#[track_caller]
fn object(name: &str, entries: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(entries) {
        Ok(Value::Object(map)) => map,
        Ok(other) => {
            panic!("cannot seed session `{name}`: entries must be a JSON object, not `{other}`")
        }
        Err(err) => panic!("cannot seed session `{name}`: the entries do not serialize: {err}"),
    }
}
