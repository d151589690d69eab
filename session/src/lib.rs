//! Sessions for [actix-web] with pluggable storage, change sets and typed access.
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
//! assert!(res.response().cookies().any(|c| c.name() == "session"));
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
//! # Choosing a backend
//! - [`CookieStore`]: no server state; up to ~4 KB, sealed (or signed). It cannot be revoked
//!   server-side and cannot merge parallel writes.
//! - [`MemoryStore`]: one process, development and tests.
//! - [`PostgresStore`] (feature `postgres`): durable, shared by every instance.
//! - [`RedisStore`] (feature `redis`): shared by every instance, expiry handled by Redis; as
//!   durable as your Redis configuration.
//! - [`CachedStore`]: a [`LocalCache`] or Redis in front of a durable store, to spare it reads.
//! - Your own store: implement [`SessionStore`].
//!
//! What each backend guarantees when one visitor's requests run in parallel, and when things
//! fail ("500" is the middleware's failure status: an empty response, the cause in the logs):
//!
//! | backend | parallel requests changing different keys | a slow request finishing after a logout or renew | store down or refusing writes | data gone under a valid cookie | several instances |
//! |---|---|---|---|---|---|
//! | [`CookieStore`] | the last response's cookie wins: changes can be lost | its cookie brings the old data back | — (no store) | — | share sessions (same key) |
//! | [`MemoryStore`] | change sets merged under a lock: none lost | conditional write: not brought back | full store with [`WhenFull::Refuse`]: 500 for new sessions | process restart: fresh empty session | each has its own sessions |
//! | [`PostgresStore`] | merged in one `UPDATE`: none lost | conditional `UPDATE`: not brought back | 500 within the timeout; recovers by itself | fresh empty session, new id | share sessions |
//! | [`RedisStore`] | `HDEL` + `HSET` in one Lua script: none lost | the script checks the session first: not brought back | 500 within the timeout (down, out of memory); reconnects by itself | flush, eviction, restart without persistence: fresh empty session, new id | share sessions |
//! | [`CachedStore`] | as its durable store (every write goes there first) | as its durable store; with a [`LocalCache`], *reads* on other instances may still see the old session for up to the staleness bound | durable store down: 500; cache down: bypassed (logged) | as its durable store | share sessions; a [`LocalCache`] serves reads up to the staleness bound old |
//!
//! # Failure behaviour
//! A tampered, expired or unknown cookie is a fresh empty session (and a `warn!` that never
//! contains the cookie's value). A store failure is logged with its cause and answered with an
//! empty 500 (or the configured status). Changes made by a handler that fails (5xx or `Err`)
//! are not saved.
//!
//! [actix-web]: https://docs.rs/actix-web
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod changes;
mod clock;
mod config;
mod cookie_header;
mod error;
mod extract;
#[cfg(feature = "cookie")]
#[doc(hidden)]
pub mod fuzz_support;
mod id;
mod key;
mod load;
mod middleware;
mod save;
mod session;
mod store;
mod typed;

#[cfg(feature = "cookie")]
pub use self::store::{CookieSecurity, CookieStore};
#[cfg(feature = "memory")]
pub use self::store::{MemoryStore, MemoryStoreBuilder, WhenFull};
#[cfg(feature = "postgres")]
pub use self::store::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "redis")]
pub use self::store::{RedisStore, RedisStoreBuilder};
#[doc(hidden)]
pub use self::typed::__private;
pub use self::{
    changes::ChangeSet,
    clock::{Clock, SystemClock},
    config::{CookieLifetime, SessionConfig, SessionMiddlewareBuilder},
    error::{BuildError, SessionError},
    extract::Sessions,
    id::StorageKey,
    key::Key,
    middleware::SessionMiddleware,
    session::{Session, SessionStatus},
    store::{
        Backend, CachedStore, CachedStoreBuilder, LocalCache, Record, SessionCache, SessionStore,
        StoreError, WriteResult,
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
