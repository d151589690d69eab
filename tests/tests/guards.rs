//! Sessions in route guards on every backend: `guard::Preload` and `guard::has_key`.

use actix_typed_session::{CookieStore, MemoryStore, SessionStore};
use actix_typed_session_tests::{guards, pg, redis, CountingStore};

/// A cookie session opens without I/O, so a guard reads it even without `Preload`; with a
/// revocation store, an owned cookie session costs one store read, and only under `Preload`.
#[actix_web::test]
async fn cookie_guarded_route_with_one_load() {
    let (revocations, counts) = CountingStore::new(MemoryStore::default());
    let mw = guards::middleware(CookieStore::default().with_revocations(revocations));
    guards::a_guarded_route_matches_a_logged_in_session_with_one_load(mw, counts, true).await;
}

#[actix_web::test]
async fn cookie_without_revocations_needs_no_preload() {
    // Counts nothing: the check that no request reads a store holds trivially here.
    let (_unused, counts) = CountingStore::new(MemoryStore::default());
    let mw = guards::middleware(CookieStore::default());
    guards::a_guarded_route_matches_a_logged_in_session_with_one_load(mw, counts, false).await;
}

/// The scenario on a server-side store, counted.
async fn server_side(store: impl SessionStore) {
    let (store, counts) = CountingStore::new(store);
    guards::a_guarded_route_matches_a_logged_in_session_with_one_load(
        guards::middleware(store),
        counts,
        true,
    )
    .await;
}

#[actix_web::test]
async fn memory_guarded_route_with_one_load() {
    server_side(MemoryStore::default()).await;
}

#[actix_web::test]
async fn postgres_guarded_route_with_one_load() {
    let (store, _schema) = pg::store().await;
    server_side(store).await;
}

#[actix_web::test]
async fn redis_guarded_route_with_one_load() {
    let (store, _prefix) = redis::store().await;
    server_side(store).await;
}
