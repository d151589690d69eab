//! `actix_typed_session::test`: seeding sessions for handler and service tests, and reading
//! back what the handler changed, on every backend.

use actix_typed_session::{
    test::{opened, TestSessions},
    Backend, CookieStore, Key, MemoryStore, Session, SessionConfig, SessionData, SessionMiddleware,
    SessionStatus, Sessions,
};
use actix_typed_session_tests::{pg, redis, CountingStore};
use actix_web::{http::StatusCode, test, web, App, FromRequest as _, HttpResponse};
use serde_json::json;

#[derive(SessionData)]
#[session(name = "cart", backend = "memory")]
struct Cart {
    items: Vec<u32>,
    coupon: Option<String>,
}

/// The default session on the cookie backend; `cart` and `prefs` on the memory backend.
fn middleware(memory: MemoryStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[3u8; 64][..]))
        .backend("cookie", CookieStore::default())
        .backend("memory", memory)
        .session("prefs", SessionConfig::new().backend("memory"))
        .build()
        .unwrap()
}

async fn count(session: Session) -> actix_web::Result<HttpResponse> {
    let n = session.update_or("n", 1, |n: u32| n + 1)?;
    Ok(HttpResponse::Ok().body(n.to_string()))
}

async fn checkout(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    let prefs = sessions.open("prefs").await?;
    let cart = sessions.open_on("cart", "memory").await?;
    let currency: String = prefs.get("currency")?.unwrap_or_else(|| "EUR".into());
    let items: Vec<u32> = cart.remove_as("items")?.unwrap_or_default();
    cart.insert("paid", format!("{} items in {currency}", items.len()))?;
    Ok(HttpResponse::Ok().finish())
}

async fn add(cart: CartSession, item: web::Path<u32>) -> actix_web::Result<HttpResponse> {
    let mut items = cart.items()?;
    items.push(item.into_inner());
    cart.set_items(items)?;
    cart.remove_coupon();
    Ok(HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn a_handler_taking_session_sees_the_seed_and_its_change_is_read_back() {
    let mw = middleware(MemoryStore::default());
    let req = TestSessions::new(&mw)
        .session("session", json!({"n": 41, "user": "ann"}))
        .to_http_request(test::TestRequest::get());
    let res = count(Session::extract(&req).await.unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let after = opened(&req, "session").expect("opened");
    assert_eq!(after.status(), SessionStatus::Changed);
    assert_eq!(after.get::<u32>("n").unwrap(), Some(42));
    assert_eq!(after.get::<String>("user").unwrap().as_deref(), Some("ann"));
}

#[actix_web::test]
async fn a_seeded_session_is_unchanged_until_the_handler_changes_it() {
    let mw = middleware(MemoryStore::default());
    let req = TestSessions::new(&mw)
        .session("session", json!({"n": 1}))
        .to_http_request(test::TestRequest::get());
    assert_eq!(
        opened(&req, "session").unwrap().status(),
        SessionStatus::Unchanged
    );
    assert!(opened(&req, "prefs").is_none(), "not seeded, not opened");
}

#[actix_web::test]
async fn a_handler_taking_sessions_opens_seeded_and_fresh_sessions_without_store_io() {
    let (store, counts) = CountingStore::new(MemoryStore::default());
    let mw = SessionMiddleware::builder(Key::from(&[3u8; 64][..]))
        .backend("memory", store)
        .session("prefs", SessionConfig::new())
        .build()
        .unwrap();
    let seeded = TestSessions::new(&mw).session("cart", json!({"items": [1, 2]}));
    let req = seeded.to_http_request(test::TestRequest::post());
    checkout(Sessions::extract(&req).await.unwrap())
        .await
        .unwrap();
    let cart = opened(&req, "cart").unwrap();
    assert_eq!(cart.get::<Vec<u32>>("items").unwrap(), None);
    assert_eq!(
        cart.get::<String>("paid").unwrap().as_deref(),
        Some("2 items in EUR")
    );
    let prefs = opened(&req, "prefs").expect("the handler opened it");
    assert_eq!(prefs.status(), SessionStatus::Unchanged);
    assert!(prefs.entries().is_empty());
    assert_eq!(
        (counts.loads(), counts.writes()),
        (0, 0),
        "a handler test touched the store"
    );
    // Each request gets fresh copies of the seeds.
    let again = seeded.to_http_request(test::TestRequest::post());
    let cart = opened(&again, "cart").unwrap();
    assert_eq!(cart.get::<Vec<u32>>("items").unwrap(), Some(vec![1, 2]));
}

#[actix_web::test]
async fn a_handler_taking_a_derived_type_reads_and_changes_its_fields() {
    let mw = middleware(MemoryStore::default());
    let req = TestSessions::new(&mw)
        .typed::<Cart>(json!({"items": [7], "coupon": "TEN"}))
        .to_http_request(test::TestRequest::post());
    let cart = CartSession::extract(&req).await.unwrap();
    add(cart, web::Path::from(8)).await.unwrap();
    let after = opened(&req, "cart").unwrap();
    assert_eq!(after.get::<Vec<u32>>("items").unwrap(), Some(vec![7, 8]));
    assert!(!after.contains_key("coupon"));
    assert_eq!(after.status(), SessionStatus::Changed);
}

#[actix_web::test]
#[should_panic(expected = "`item` is not a stored key of")]
async fn seeding_a_derived_type_with_an_unknown_key_panics_at_the_seed() {
    let mw = middleware(MemoryStore::default());
    let _ = TestSessions::new(&mw).typed::<Cart>(json!({"item": [1]}));
}

#[actix_web::test]
#[should_panic(expected = "entries must be a JSON object, not `[1]`")]
async fn seeding_with_a_non_object_panics_at_the_seed() {
    let mw = middleware(MemoryStore::default());
    let _ = TestSessions::new(&mw).session("session", json!([1]));
}

#[actix_web::test]
#[should_panic(expected = "cannot seed session `session`: session `session` would need a")]
async fn seeding_a_cookie_session_past_the_cookie_limit_panics_at_the_seed() {
    let mw = middleware(MemoryStore::default());
    let _ = TestSessions::new(&mw).session("session", json!({"big": "x".repeat(5000)}));
}

#[actix_web::test]
#[should_panic(expected = "is reserved")]
async fn seeding_the_reserved_expiry_key_panics_at_the_seed() {
    let mw = middleware(MemoryStore::default());
    let _ = TestSessions::new(&mw).session("session", json!({"__session_expiry": 1}));
}

/// `cookies()` writes the seed through `backend`; a service call with them finds it, and
/// `opened(res.request())` reads what the handler left; the response's cookie brings it back.
async fn seeded_cookies_reach_a_service(backend: Backend) {
    let mw = SessionMiddleware::builder(Key::from(&[4u8; 64][..]))
        .backend("under_test", backend)
        .build()
        .unwrap();
    let cookies = TestSessions::new(&mw)
        .session("session", json!({"n": 9, "user": "ann"}))
        .cookies()
        .await;
    assert_eq!(cookies.len(), 1);
    let app = test::init_service(App::new().wrap(mw).route("/", web::post().to(count))).await;
    let req = test::TestRequest::post()
        .uri("/")
        .cookie(cookies[0].clone());
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let after = opened(res.request(), "session").expect("the handler opened it");
    assert_eq!(after.get::<u32>("n").unwrap(), Some(10));
    assert_eq!(after.get::<String>("user").unwrap().as_deref(), Some("ann"));
    let cookie = res
        .response()
        .cookies()
        .next()
        .map(|c| c.into_owned())
        .unwrap_or_else(|| cookies[0].clone()); // a server-side update sets no new cookie
    let req = test::TestRequest::post().uri("/").cookie(cookie);
    assert_eq!(test::call_and_read_body(&app, req.to_request()).await, "11");
}

#[actix_web::test]
async fn cookie_seeded_cookies_reach_a_service() {
    seeded_cookies_reach_a_service(CookieStore::default().into()).await;
}

#[actix_web::test]
async fn memory_seeded_cookies_reach_a_service() {
    seeded_cookies_reach_a_service(MemoryStore::default().into()).await;
}

#[actix_web::test]
async fn postgres_seeded_cookies_reach_a_service() {
    let (store, _schema) = pg::store().await;
    seeded_cookies_reach_a_service(store.into()).await;
}

#[actix_web::test]
async fn redis_seeded_cookies_reach_a_service() {
    let (store, _prefix) = redis::store().await;
    seeded_cookies_reach_a_service(store.into()).await;
}
