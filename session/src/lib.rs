//! Sessions for [actix-web] with pluggable storage, change sets and typed access.
//!
//! # What a session is
//! HTTP forgets: every request arrives on its own. A *session* is what a server remembers about
//! one visitor from one request to the next: who logged in, what is in the cart, which theme
//! they chose, a message to show on the next page. The browser brings it back on each request
//! through a cookie, in one of two ways:
//!
//! - the cookie carries the data itself, sealed so that the visitor can neither read nor change
//!   it ([`CookieStore`]): nothing to run on the server, but at most about 4 KB;
//! - the cookie carries only a random id, and the data lives in a store on the server
//!   ([`MemoryStore`], PostgreSQL, Redis, or your own): room for anything, and the server can
//!   end a session at any time.
//!
//! This crate does both side by side. A request can use several **named sessions**, each with
//! its own cookie and its own backend: preferences in a cookie, a cart in PostgreSQL. Handlers
//! reach them through extractors: [`Session`] (the default session), [`Sessions`] (any session
//! by name), or a struct of your own with `#[derive(SessionData)]`, which gives each field a
//! typed getter and setter.
//!
//! The project grew from a 2012 story of a webapp2 application whose cookie sessions silently
//! lost data once they outgrew the cookie, fixed by moving them to the datastore. The
//! `walkthrough` example in the repository retells it step by step in this crate's terms, and
//! the `shop` example is a small application to click through (`cargo run -p examples --bin
//! shop`).
//!
//! # Why
//! Cookie sessions are limited to about 4 KB and browsers drop a bigger cookie without a word;
//! server-side sessions meet lost updates when two requests save whole sessions over each other,
//! and expired rows that pile up. This crate:
//!
//! - loads a session only when a handler asks for it, and writes back only what changed;
//! - keeps several **named sessions**, each on its own backend, in one request;
//! - hands stores a [`ChangeSet`] (keys set and removed) instead of a whole map, so parallel
//!   requests that change different keys both survive, and never resurrects a purged session;
//! - checks the final size of a cookie when you insert, and returns
//!   [`SessionError::TooLarge`] instead of losing data;
//! - seals cookies with AES-256-GCM (keys derived from one master key, with rotation);
//! - enforces idle and absolute timeouts on the server, renews ids on login, purges on logout.
//!
//! # Getting started
//! ```sh
//! cargo add actix-typed-session   # the cookie and memory backends and the derive
//! ```
//!
//! Build a [`SessionMiddleware`] with a secret [`Key`] and at least one backend, wrap your App
//! in it, and take sessions as handler arguments:
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use actix_typed_session::{CookieStore, Key, MemoryStore, Session, SessionMiddleware, Sessions};
//!
//! async fn count(session: Session) -> actix_web::Result<HttpResponse> {
//!     let n: u32 = session.get("n")?.unwrap_or(0);
//!     session.insert("n", n + 1)?;
//!     Ok(HttpResponse::Ok().body((n + 1).to_string()))
//! }
//!
//! async fn add_to_cart(sessions: Sessions) -> actix_web::Result<HttpResponse> {
//!     let cart = sessions.open_on("cart", "memory").await?;
//!     let mut items: Vec<String> = cart.get("items")?.unwrap_or_default();
//!     items.push("book".into());
//!     cart.insert("items", items)?;
//!     Ok(HttpResponse::Ok().finish())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let sessions = SessionMiddleware::builder(Key::generate())
//!     .backend("cookie", CookieStore::default()) // the first backend is the default
//!     .backend("memory", MemoryStore::default())
//!     .build()
//!     .unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .wrap(sessions)
//!         .route("/count", web::get().to(count))
//!         .route("/cart", web::post().to(add_to_cart)),
//! )
//! .await;
//! let res = test::call_service(&app, test::TestRequest::get().uri("/count").to_request()).await;
//! assert!(res.response().cookies().any(|c| c.name() == "__Host-session"));
//! # });
//! ```
//!
//! # Typed sessions
//! `#[derive(SessionData)]` (feature `derive`, on by default) turns a struct into a typed
//! extractor with a getter, a setter and a remover per field, over one named session:
//!
//! ```
//! use actix_web::{web, HttpResponse};
//! use actix_typed_session::SessionData;
//!
//! #[derive(SessionData)]
//! #[session(name = "cart", backend = "memory")]
//! struct Cart {
//!     /// The items in the cart.
//!     items: Vec<String>,
//!     #[session(flash)]
//!     notices: Vec<String>,
//! }
//!
//! async fn add(cart: CartSession, item: web::Json<String>) -> actix_web::Result<HttpResponse> {
//!     let mut items = cart.items()?;
//!     items.push(item.into_inner());
//!     cart.set_items(items)?;
//!     cart.push_notices("added to your cart".to_owned())?;
//!     Ok(HttpResponse::Ok().finish())
//! }
//! ```
//!
//! Register each such type with
//! [`register::<Cart>()`](SessionMiddlewareBuilder::register) so that a missing backend fails
//! at `build()`, not at the first request.
//!
//! # Sessions in route guards
//! A guard cannot wait for a store, so it reads a session that opens without I/O (a cookie
//! session) or one opened before routing: wrap the guarded routes in [`guard::Preload`], and
//! route on the session with [`guard::has_key`] or a guard of your own
//! ([`Sessions::from_guard`]). The guard and the handler share one load.
//!
//! # Choosing a backend
//! Register backends by name with [`backend`](SessionMiddlewareBuilder::backend); each session
//! picks one by name (the first registered is the default). Names are yours: `"cookie"`,
//! `"datastore"`, `"cache"`.
//!
//! **[`CookieStore`]** (feature `cookie`, on by default) keeps the whole session in its cookie,
//! sealed with AES-256-GCM ([`CookieSecurity::Sealed`], the default) or signed with
//! HMAC-SHA256. No server-side store (each worker thread only remembers the values it opened
//! last, see [`CookieStore::with_opened_cache`]), so it suits small data that may live as long
//! as the browser keeps it: preferences, a flash message. Up to about 4 KB: a change that would pass
//! the browser's limit is refused with [`SessionError::TooLarge`]. It cannot be revoked from
//! the server and cannot merge parallel writes.
//! ```sh
//! cargo add actix-typed-session   # feature `cookie` is on by default
//! ```
//!
//! **[`MemoryStore`]** (feature `memory`, on by default) keeps sessions in this process:
//! bounded, with change sets merged under a lock and expired sessions reclaimed in the
//! background. For development, tests and single-instance apps that can lose sessions on a
//! restart.
//! ```sh
//! cargo add actix-typed-session   # feature `memory` is on by default
//! ```
//!
//! **[`PostgresStore`]** (feature `postgres`) keeps sessions in a table, on your own
//! `deadpool-postgres` pool (the crate is re-exported as [`deadpool_postgres`]): durable,
//! shared by every instance, change sets merged in one statement, expired rows deleted in
//! bounded batches. Call [`migrate`](PostgresStore::migrate) once at start-up.
//! ```sh
//! cargo add actix-typed-session --features postgres
//! ```
//!
//! **[`RedisStore`]** (feature `redis`) keeps each session in a Redis hash with a TTL, on the
//! re-exported [`redis`] crate: shared by every instance, expiry handled by Redis, as durable as
//! your Redis configuration. It reconnects by itself, speaks TLS (`rediss://`), and runs on a
//! Redis Cluster too ([`RedisStore::cluster_builder`]).
//! ```sh
//! cargo add actix-typed-session --features redis
//! ```
//!
//! **[`CachedStore`]** puts a cache (a [`LocalCache`] in the process, or Redis) in front of a
//! durable store, to spare it reads: writes go to the durable store first. With a [`LocalCache`]
//! in front of PostgreSQL, an update's result comes back in the same statement and becomes the
//! copy, so a request that reads and writes its session costs one statement. Needs no feature of
//! its own, only those of the stores it combines.
//! ```sh
//! cargo add actix-typed-session --features postgres,redis
//! ```
//!
//! **Your own store**: implement [`SessionStore`] (see [Custom stores](#custom-stores)).
//!
//! What each backend guarantees when one visitor's requests run in parallel, and when things
//! fail ("500" is the middleware's failure status: an empty response, the cause in the logs):
//!
//! | backend | parallel requests changing different keys | a slow request finishing after a logout or renew | store down or refusing writes | data gone under a valid cookie | several instances |
//! |---|---|---|---|---|---|
//! | [`CookieStore`] | the last response's cookie wins: changes can be lost | its cookie brings the old data back | — (no store) | — | share sessions (same key) |
//! | [`MemoryStore`] | change sets merged under a lock: none lost | conditional write: not brought back | full store with [`WhenFull::Refuse`]: 500 for new sessions | process restart: fresh empty session | each has its own sessions |
//! | [`PostgresStore`] | merged in one `UPDATE`: none lost | conditional `UPDATE`: not brought back | 500 within the timeout; recovers by itself | fresh empty session, new id | share sessions |
//! | [`PostgresStore`] behind PgBouncer (transaction pooling), with [`PostgresStatements::Unnamed`] | as [`PostgresStore`] | as [`PostgresStore`] | as [`PostgresStore`] | as [`PostgresStore`] | share sessions |
//! | [`RedisStore`] | `HDEL` + `HSET` in one Lua script: none lost | the script checks the session first: not brought back | 500 within the timeout (down, out of memory); reconnects by itself | flush, eviction, restart without persistence: fresh empty session, new id | share sessions |
//! | [`CachedStore`] | as its durable store (every write goes there first) | as its durable store; with a [`LocalCache`], *reads* on other instances may still see the old session for up to the staleness bound | durable store down: 500; cache down: bypassed (logged) | as its durable store | share sessions; a [`LocalCache`] serves reads up to the staleness bound old |
//!
//! # Failure behaviour
//! A tampered, expired or unknown cookie is a fresh empty session (and a `warn!` that never
//! contains the cookie's value). A store failure is logged with its cause and answered with an
//! empty 500 (or the configured status). Changes made by a handler that fails (5xx or `Err`)
//! are not saved.
//!
//! # Lifecycle and security
//! - **Birth.** A session exists once something is stored in it: an empty new session sets no
//!   cookie and writes nothing.
//! - **Cookies.** `HttpOnly` (scripts cannot read them), `Secure` and `SameSite=Lax` by
//!   default; a session's cookie is then called `__Host-{name}` (`__Host-session`), which no
//!   subdomain or other path can plant ([Cookie names](SessionConfig#cookie-names)). `__Host-`
//!   and `__Secure-` names given explicitly are checked by `build()`.
//!   Browsers accept `Secure` cookies from `http://localhost`, so development needs no TLS
//!   (some Chromium versions refuse `__Host-` names there, though: if a session does not stick
//!   in local development, set `cookie_secure(false)` for it, which drops the prefix).
//! - **Ids.** A server-side session's cookie holds 256 random bits (43 characters); stores
//!   keep only their SHA-256 hash ([`StorageKey`]). Ids never appear in logs or `Debug`.
//! - **Expiry, enforced by the server.** An [idle timeout](SessionMiddlewareBuilder::idle_timeout)
//!   (24 hours by default, sliding, refreshed at most once per
//!   [refresh interval](SessionMiddlewareBuilder::refresh_interval)) and an
//!   [absolute timeout](SessionMiddlewareBuilder::absolute_timeout) (7 days). A client that
//!   ignores `Max-Age` gains nothing: cookie sessions carry their deadlines inside the sealed
//!   payload.
//! - **Cookie lifetime.** [`CookieLifetime::BrowserSession`] (the default: no `Max-Age`, gone
//!   when the browser closes) or [`CookieLifetime::Persistent`] (`Max-Age` *and* `Expires`, for
//!   browsers that honour only one), for all sessions or per session with [`SessionConfig`].
//! - **Per visitor ("remember me"): [`set_expiry`](Session::set_expiry).** A handler gives one
//!   session a browser-session or a persistent cookie, or a shorter idle timeout
//!   ([`Expiry`]); the choice is stored with the session on every backend and never outlives
//!   the configured timeouts.
//! - **Login: [`renew`](Session::renew).** Keeps the data under a new id and kills the old one,
//!   so an id planted before the login (session fixation) is worthless afterwards. On
//!   server-side backends the old id stays readable for a short
//!   [grace window](SessionMiddlewareBuilder::renew_grace) (5 seconds by default), read-only
//!   and showing only the data from before the renew: requests that were already in flight do
//!   not log the visitor out, and whoever planted the old id learns nothing new.
//! - **Logout: [`purge`](Session::purge).** Deletes the stored session and removes the cookie.
//! - **Keys.** One master key of at least 64 bytes; sealing and signing keys are derived from it
//!   with HKDF, a sealing key per hour (a cookie names the hour it was sealed in and opens as long
//!   as its session lives). [`previous_keys`](SessionMiddlewareBuilder::previous_keys) keeps cookies made
//!   with older keys readable (and re-seals them) while you rotate.
//!
//! ```
//! use std::time::Duration;
//! use actix_web::{test, web, App, HttpResponse};
//! use actix_typed_session::{
//!     CookieLifetime, CookieStore, Key, MemoryStore, SessionConfig, SessionMiddleware, Sessions,
//! };
//!
//! async fn login(sessions: Sessions) -> actix_web::Result<HttpResponse> {
//!     let account = sessions.open("account").await?;
//!     account.insert("user", "ann")?;
//!     account.renew(); // new privileges, new id
//!     Ok(HttpResponse::Ok().finish())
//! }
//!
//! async fn logout(sessions: Sessions) -> actix_web::Result<HttpResponse> {
//!     sessions.open("account").await?.purge(); // deleted, and its cookie removed
//!     Ok(HttpResponse::Ok().finish())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let old_key = Key::generate(); // the key before the last rotation
//! let sessions = SessionMiddleware::builder(Key::generate())
//!     .previous_keys([old_key])
//!     .backend("datastore", MemoryStore::default())
//!     .backend("cookie", CookieStore::default())
//!     .session("prefs", SessionConfig::new().backend("cookie").lifetime(CookieLifetime::Persistent))
//!     .idle_timeout(Duration::from_secs(30 * 60))
//!     .absolute_timeout(Duration::from_secs(8 * 3600))
//!     .build()
//!     .unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .wrap(sessions)
//!         .route("/login", web::post().to(login))
//!         .route("/logout", web::post().to(logout)),
//! )
//! .await;
//!
//! let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
//! let mut cookies = res.response().cookies();
//! let cookie = cookies.find(|c| c.name() == "__Host-account").unwrap().into_owned();
//! assert_eq!(cookie.http_only(), Some(true));
//! assert_eq!(cookie.secure(), Some(true));
//! assert_eq!(cookie.max_age(), None); // a browser-session cookie
//! assert_eq!(cookie.value().len(), 43); // an opaque id, not the data
//!
//! let res = test::call_service(
//!     &app,
//!     test::TestRequest::post().uri("/logout").cookie(cookie).to_request(),
//! )
//! .await;
//! let removal = res.response().cookies().find(|c| c.name() == "__Host-account").unwrap();
//! assert_eq!(removal.max_age(), Some(actix_web::cookie::time::Duration::ZERO));
//! # });
//! ```
//!
//! # Custom stores
//! Any storage can hold sessions: implement [`SessionStore`] and register the store with
//! [`backend`](SessionMiddlewareBuilder::backend). The middleware does everything else (ids,
//! cookies, expiry, change tracking); a store only keeps [`Record`]s under [`StorageKey`]s and
//! keeps four promises:
//!
//! 1. **Never return an expired record** (`expires_at <= now`).
//! 2. **Never overwrite on create**: a taken key is [`WriteResult::Collision`] (the middleware
//!    retries with a fresh id).
//! 3. **Never resurrect**: `update`, `touch` and `renew` of a session that is gone or expired
//!    write nothing and return [`WriteResult::Missing`], so a slow request cannot bring back a
//!    session that was logged out in the meantime.
//! 4. **Merge, do not replace**: apply the [`ChangeSet`] (keys set and removed, or a clear)
//!    to the stored data atomically, so parallel requests that change different keys both
//!    survive. [`ChangeSet::apply_to`] does it for a map in memory.
//!
//! Failures are [`StoreError`]s: the middleware logs them with their cause and answers with an
//! opaque error. The futures need not be `Send` (actix-web runs each worker on one thread); the
//! store itself is shared by all workers, hence `Send + Sync`.
//!
//! Optional: a store that can read a row back in the same step as it writes it (SQL's
//! `RETURNING`) implements [`SessionStore::update_returning`]; a [`CachedStore`] in front of it
//! then keeps the result as its copy when it writes through (by default with a [`LocalCache`],
//! see [`CachedStoreBuilder::write_through`]), so a request that reads and writes costs one
//! round trip.
//!
//! A complete store, here a map behind a mutex (a real one would talk to a database), and a
//! request cycle through it:
//!
//! ```
//! use std::{collections::HashMap, sync::{Arc, Mutex}, time::SystemTime};
//! use actix_web::{test, web, App, HttpResponse};
//! use actix_typed_session::{
//!     ChangeSet, Key, Record, Session, SessionMiddleware, SessionStore, StorageKey, StoreError,
//!     WriteResult,
//! };
//!
//! /// Sessions in a shared map. Clones share the map, like clones of a connection pool.
//! #[derive(Clone, Default)]
//! struct MapStore {
//!     records: Arc<Mutex<HashMap<StorageKey, Record>>>,
//! }
//!
//! impl MapStore {
//!     fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<StorageKey, Record>>, StoreError> {
//!         // A poisoned lock is a store failure like any other: the request gets an opaque 500.
//!         self.records.lock().map_err(|_| StoreError::new("locking the map", "poisoned"))
//!     }
//!
//!     fn len(&self) -> usize {
//!         self.records.lock().unwrap().len()
//!     }
//! }
//!
//! impl SessionStore for MapStore {
//!     async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
//!         // Promise 1: an expired record is as good as absent.
//!         Ok(self.lock()?.get(key).filter(|r| r.expires_at > now).cloned())
//!     }
//!
//!     async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
//!         let mut map = self.lock()?;
//!         if map.contains_key(key) {
//!             return Ok(WriteResult::Collision); // promise 2
//!         }
//!         map.insert(*key, record.clone());
//!         Ok(WriteResult::Done)
//!     }
//!
//!     async fn update(
//!         &self,
//!         key: &StorageKey,
//!         changes: &ChangeSet,
//!         expires_at: SystemTime,
//!         now: SystemTime,
//!     ) -> Result<WriteResult, StoreError> {
//!         let mut map = self.lock()?;
//!         match map.get_mut(key).filter(|r| r.expires_at > now) {
//!             Some(record) => {
//!                 changes.apply_to_record(record); // promise 4, atomic under the lock
//!                 record.expires_at = expires_at;
//!                 record.last_seen = now;
//!                 Ok(WriteResult::Done)
//!             }
//!             None => Ok(WriteResult::Missing), // promise 3
//!         }
//!     }
//!
//!     // Optional: the default calls `update` with an empty change set.
//!     async fn touch(
//!         &self,
//!         key: &StorageKey,
//!         expires_at: SystemTime,
//!         now: SystemTime,
//!     ) -> Result<WriteResult, StoreError> {
//!         let mut map = self.lock()?;
//!         match map.get_mut(key).filter(|r| r.expires_at > now) {
//!             Some(record) => {
//!                 record.expires_at = expires_at;
//!                 record.last_seen = now;
//!                 Ok(WriteResult::Done)
//!             }
//!             None => Ok(WriteResult::Missing),
//!         }
//!     }
//!
//!     async fn renew(
//!         &self,
//!         old: &StorageKey,
//!         new: &StorageKey,
//!         changes: &ChangeSet,
//!         expires_at: SystemTime,
//!         now: SystemTime,
//!         // Optional: keeping the old key as a read-only copy until then (see the trait docs).
//!         _retire_until: Option<SystemTime>,
//!     ) -> Result<WriteResult, StoreError> {
//!         let mut map = self.lock()?;
//!         if map.contains_key(new) {
//!             return Ok(WriteResult::Collision);
//!         }
//!         // Move, apply and delete the old key in one step: nobody sees a half-renewed session.
//!         match map.remove(old).filter(|r| r.expires_at > now) {
//!             Some(mut record) => {
//!                 changes.apply_to_record(&mut record);
//!                 record.expires_at = expires_at;
//!                 record.last_seen = now;
//!                 map.insert(*new, record);
//!                 Ok(WriteResult::Done)
//!             }
//!             None => Ok(WriteResult::Missing),
//!         }
//!     }
//!
//!     async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
//!         self.lock()?.remove(key);
//!         Ok(())
//!     }
//! }
//!
//! async fn visit(session: Session) -> actix_web::Result<HttpResponse> {
//!     let n: u32 = session.get("visits")?.unwrap_or(0);
//!     session.insert("visits", n + 1)?;
//!     Ok(HttpResponse::Ok().body((n + 1).to_string()))
//! }
//!
//! async fn forget(session: Session) -> HttpResponse {
//!     session.purge();
//!     HttpResponse::Ok().finish()
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let store = MapStore::default();
//! let sessions = SessionMiddleware::builder(Key::generate())
//!     .backend("map", store.clone())
//!     .build()
//!     .unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .wrap(sessions)
//!         .route("/", web::get().to(visit))
//!         .route("/forget", web::post().to(forget)),
//! )
//! .await;
//!
//! let first = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! let cookie = first.response().cookies().next().unwrap().into_owned();
//! assert_eq!(store.len(), 1); // created
//!
//! let again = test::TestRequest::get().uri("/").cookie(cookie.clone()).to_request();
//! assert_eq!(test::call_and_read_body(&app, again).await, "2"); // loaded and updated
//!
//! let forget = test::TestRequest::post().uri("/forget").cookie(cookie).to_request();
//! test::call_service(&app, forget).await;
//! assert_eq!(store.len(), 0); // deleted
//! # });
//! ```
//!
//! Run the repository's conformance suite (`tests/src/conformance.rs`) against a new store:
//! it checks these promises with real requests, parallel ones included.
//!
//! Two parts of the trait are optional: the renew grace window (a store that deletes the old
//! key at once, like this one, is still correct) and the owner index
//! ([`SessionStore::indexes_owners`] and the `*_owned` methods); without it, tying a session to
//! an owner is refused with [`SessionError::OwnersUnsupported`].
//!
//! # Owners: listing and ending a user's sessions
//! Tie a session to its user at login with [`Session::set_owner`] (or a
//! `#[session(owner)]` field). The memory, PostgreSQL and Redis stores keep an index from
//! owner to sessions, updated in the same atomic write as the rest of the session and cleaned
//! up with expired sessions. Then, from the user's own requests:
//!
//! - [`Session::owned_sessions`]: the user's live sessions (created, last seen, expires), each
//!   named by an opaque [`SessionHandle`] that cannot be turned into a session id;
//! - [`Session::end_session`]: end one by its handle ("sign out that phone");
//! - [`Session::end_other_sessions`]: "log out everywhere else", e.g. after a password change;
//! - [`Session::end_all_sessions`]: everywhere, this one included.
//!
//! and for operators, outside any request, [`SessionAdmin`] (from
//! [`SessionMiddleware::admin`]): list or end all sessions of any user, e.g. when an account is
//! disabled. A request whose session was ended elsewhere is anonymous on its next load.
//!
//! Cookie sessions live in browsers, so the server cannot list them or end one; give the cookie
//! backend a revocation store ([`CookieStore::with_revocations`]) and "end all (other)
//! sessions" records a per-owner "not valid before" time that every owned cookie session is
//! checked against when it loads (one store read per such request).
//!
//! ```
//! use actix_web::{web, HttpResponse};
//! use actix_typed_session::{Session, SessionHandle};
//!
//! async fn login(session: Session) -> actix_web::Result<HttpResponse> {
//!     // ... check the password, then:
//!     session.renew();
//!     session.set_owner("user-42")?;
//!     Ok(HttpResponse::SeeOther().insert_header(("location", "/")).finish())
//! }
//!
//! async fn my_sessions(session: Session) -> actix_web::Result<HttpResponse> {
//!     Ok(HttpResponse::Ok().json(session.owned_sessions().await?))
//! }
//!
//! async fn end_one(session: Session, handle: web::Path<String>) -> actix_web::Result<HttpResponse> {
//!     let handle: SessionHandle = handle.parse().map_err(actix_web::error::ErrorBadRequest)?;
//!     let ended = session.end_session(&handle).await?;
//!     Ok(HttpResponse::Ok().json(ended))
//! }
//! ```
//!
//! # Testing handlers
//! The [`test`](mod@test) module seeds sessions under your middleware's configuration, for
//! handler tests without a server (a request that carries them) and for service tests with
//! `actix_web::test::call_service` (cookies that bring them back); [`test::opened`] reads what
//! the handler changed.
//!
//! ```
//! use actix_web::{test::TestRequest, FromRequest as _, HttpResponse};
//! use actix_typed_session::{test, Key, MemoryStore, SessionMiddleware, SessionStatus, Sessions};
//! use serde_json::json;
//!
//! async fn logout(sessions: Sessions) -> actix_web::Result<HttpResponse> {
//!     sessions.open("account").await?.purge();
//!     Ok(HttpResponse::Ok().finish())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let middleware = SessionMiddleware::builder(Key::generate())
//!     .backend("memory", MemoryStore::default())
//!     .build()
//!     .unwrap();
//! let req = test::TestSessions::new(&middleware)
//!     .session("account", json!({"user": "ann"}))
//!     .to_http_request(TestRequest::post());
//! logout(Sessions::extract(&req).await.unwrap()).await.unwrap();
//! assert_eq!(test::opened(&req, "account").unwrap().status(), SessionStatus::Purged);
//! # });
//! ```
//!
//! # Metrics
//! With the `metrics` feature, the middleware reports through the [`metrics`](https://docs.rs/metrics)
//! facade (install any exporter, e.g. Prometheus): sessions loaded, created, saved, renewed and
//! purged, writes refused for size, change sets that merged with a parallel write of the same
//! session (the lost updates a whole-session overwrite would have caused; counted per
//! process), store errors, and store latency (`session_store_seconds`, by operation). Labels are
//! the backend and session names only: never an id or an owner.
//!
//! # Migrating from actix-session
//! [`guide::migrating_from_actix_session`] maps each of its types and methods to this crate's,
//! and says what behaves differently and why.
//!
//! [actix-web]: https://docs.rs/actix-web
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The docs link every backend; with some backend features off those items do not exist, and
// their links render as plain text instead of warning (docs.rs builds with all features).
#![cfg_attr(
    not(all(
        feature = "cookie",
        feature = "memory",
        feature = "postgres",
        feature = "redis",
        feature = "derive"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

mod changes;
mod clock;
mod config;
mod cookie_header;
mod device;
mod error;
mod expiry;
mod extract;
/// Entry points for `session/fuzz` only (feature `__fuzz`); not an API.
#[cfg(all(feature = "cookie", any(test, feature = "__fuzz")))]
#[doc(hidden)]
pub mod fuzz_support;
pub mod guard;
pub mod guide;
mod id;
mod key;
mod load;
mod middleware;
mod owner;
mod request;
mod response_headers;
mod save;
mod session;
mod store;
mod telemetry;
pub mod test;
mod typed;

/// Crate-private hot paths for `session/benches/` and the load benchmark only (feature
/// `__bench`); not an API.
#[cfg(feature = "__bench")]
#[doc(hidden)]
#[path = "bench.rs"]
pub mod __bench;

#[cfg(feature = "cookie")]
pub use self::store::{CookieSecurity, CookieStore};
#[cfg(feature = "memory")]
pub use self::store::{MemoryStore, MemoryStoreBuilder, WhenFull};
#[cfg(feature = "postgres")]
pub use self::store::{PostgresStatements, PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use self::store::{RedisStore, RedisStoreBuilder};
#[doc(hidden)]
pub use self::typed::__private;
pub use self::{
    changes::ChangeSet,
    clock::{Clock, SystemClock},
    config::{CookieLifetime, SessionConfig, SessionMiddlewareBuilder},
    error::{BuildError, SessionError},
    expiry::Expiry,
    extract::Sessions,
    id::StorageKey,
    key::Key,
    middleware::SessionMiddleware,
    owner::{InvalidHandle, SessionAdmin, SessionHandle, SessionInfo},
    session::{Session, SessionStatus},
    store::{
        Backend, CachedStore, CachedStoreBuilder, LocalCache, OwnedSession, Record, SessionCache,
        SessionStore, StoreError, WriteResult,
    },
    typed::SessionData,
};
/// Derives [`SessionData`](trait@SessionData) and a typed extractor for a struct (feature
/// `derive`, on by default).
#[cfg(feature = "derive")]
pub use actix_typed_session_derive::SessionData;
/// Re-exported so that `SameSite` and `StatusCode` in the builder match your actix-web.
pub use actix_web::{cookie::SameSite, http::StatusCode};
/// The `deadpool-postgres` this crate is built with: create your pool from it.
#[cfg(feature = "postgres")]
pub use deadpool_postgres;
/// The `redis` crate this crate is built with: create your `redis::Client` from it.
#[cfg(feature = "redis")]
pub use redis;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
