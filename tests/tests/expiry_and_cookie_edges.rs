//! Edges of expiry and of cookie handling that the conformance suite does not reach: removal
//! cookies that match the session cookie, expired records that stay expired, a slow request
//! that cannot resurrect a session, `Debug` without values, a bad same-name cookie.

use std::time::{Duration, SystemTime};

use actix_typed_session::{
    ChangeSet, CookieLifetime, CookieStore, Key, MemoryStore, Record, Session, SessionMiddleware,
    SessionStore, StorageKey, WriteResult,
};
use actix_typed_session_tests::{
    client,
    conformance::{self, IDLE},
    TestClock,
};
use actix_web::{http::StatusCode, web, App, HttpResponse};
use serde_json::json;

/// The removal cookie must carry the same Domain (and Path) as the session cookie,
/// or the browser keeps the original.
#[actix_web::test]
async fn purge_removal_cookie_repeats_path_and_domain() {
    for backend in [
        actix_typed_session::Backend::from(CookieStore::default()),
        MemoryStore::default().into(),
    ] {
        let mw = SessionMiddleware::builder(Key::from(&[5u8; 64][..]))
            .backend("b", backend)
            .cookie_domain("example.com")
            .cookie_path("/app")
            .build()
            .unwrap();
        let c = client(mw).await;
        let set = c.set("session", "user", json!("ann")).await;
        let issued = set.cookie("session").unwrap();
        assert_eq!(issued.domain(), Some("example.com"));
        assert_eq!(issued.path(), Some("/app"));
        let reply = c.post("/session/purge").await;
        let removal = reply.cookie("session").expect("a removal cookie");
        assert_eq!(removal.value(), "");
        assert_eq!(
            removal.domain(),
            Some("example.com"),
            "removal cookie lost its Domain"
        );
        assert_eq!(removal.path(), Some("/app"), "removal cookie lost its Path");
        assert_eq!(
            removal.max_age(),
            Some(actix_web::cookie::time::Duration::ZERO)
        );
    }
}

fn now_or_never<F: std::future::Future>(f: F) -> F::Output {
    futures_util::FutureExt::now_or_never(f).expect("memory store futures never wait")
}

/// Store level: update, touch and renew of an expired record are `Missing` and do
/// not bring it back.
#[::core::prelude::v1::test]
fn memory_store_never_updates_touches_or_renews_an_expired_session() {
    let store = MemoryStore::default();
    let t0 = SystemTime::now();
    let key = StorageKey::from_bytes([1; 32]);
    let other = StorageKey::from_bytes([2; 32]);
    let mut data = serde_json::Map::new();
    data.insert("user".into(), json!("ann"));
    let record = Record::new(data, t0, t0 + Duration::from_secs(10));
    assert_eq!(
        now_or_never(store.create(&key, &record)).unwrap(),
        WriteResult::Done
    );

    let later = t0 + Duration::from_secs(20);
    let far = later + Duration::from_secs(60);
    let mut changes = ChangeSet::default();
    changes.set("late", json!(1));
    assert_eq!(
        now_or_never(store.update(&key, &changes, far, later)).unwrap(),
        WriteResult::Missing,
        "update revived an expired session"
    );
    assert_eq!(
        now_or_never(store.touch(&key, far, later)).unwrap(),
        WriteResult::Missing,
        "touch revived an expired session"
    );
    assert_eq!(
        now_or_never(store.renew(&key, &other, &changes, far, later, None)).unwrap(),
        WriteResult::Missing,
        "renew revived an expired session"
    );
    assert!(now_or_never(store.load(&key, later)).unwrap().is_none());
    assert!(now_or_never(store.load(&other, later)).unwrap().is_none());
}

/// HTTP level: a session that expires while a slow request runs is not brought
/// back by that request's save.
#[actix_web::test]
async fn slow_request_does_not_resurrect_a_session_that_expired_meanwhile() {
    let clock = TestClock::default();
    let mw = conformance::middleware(
        MemoryStore::default().into(),
        &clock,
        CookieLifetime::BrowserSession,
        |b| b,
    );
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    let slow = c.post_json("/s/wait-then-set/late", json!(1));
    let control = async {
        c.gate.wait_loaded(1).await;
        clock.advance(IDLE + Duration::from_secs(5));
        c.gate.release(1);
    };
    let (slow, ()) = tokio::join!(slow, control);
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(
        c.get("/s/entries").await.json(),
        json!({}),
        "the expired session came back"
    );
}

async fn show(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("token", "s3cr3t-value")?;
    Ok(HttpResponse::Ok().body(format!("{session:?}")))
}

/// `Debug` of a session shows neither values nor the id.
#[actix_web::test]
async fn session_debug_shows_no_values() {
    let mw = SessionMiddleware::builder(Key::from(&[6u8; 64][..]))
        .backend("memory", MemoryStore::default())
        .build()
        .unwrap();
    let app =
        actix_web::test::init_service(App::new().wrap(mw).route("/show", web::get().to(show)))
            .await;
    let c = actix_typed_session_tests::Client::new(app);
    let first = c.get("/show").await;
    assert!(
        first.body.contains("token"),
        "keys are shown: {}",
        first.body
    );
    assert!(
        !first.body.contains("s3cr3t-value"),
        "a value leaked: {}",
        first.body
    );
    let second = c.get("/show").await;
    let id = c.cookie("session").unwrap();
    assert!(!second.body.contains("s3cr3t-value"), "{}", second.body);
    assert!(!second.body.contains(&id), "the id leaked: {}", second.body);
}

/// A bad cookie of the same name sent before the valid one (a stale cookie from
/// another Path, or one tossed in by a sibling subdomain) must not hide the session.
#[actix_web::test]
async fn a_bad_same_name_cookie_before_the_valid_one_does_not_hide_the_session() {
    for backend in [
        actix_typed_session::Backend::from(CookieStore::default()),
        CookieStore::new(actix_typed_session::CookieSecurity::Signed).into(),
        MemoryStore::default().into(),
    ] {
        let mw = SessionMiddleware::builder(Key::from(&[7u8; 64][..]))
            .backend("b", backend)
            .build()
            .unwrap();
        let c = client(mw).await;
        c.set("session", "user", json!("ann")).await;
        let valid = c.cookie("session").unwrap();
        let reply = c
            .send_raw(
                actix_web::test::TestRequest::get()
                    .uri("/session/get/user")
                    .insert_header((
                        "cookie",
                        format!("__Host-session=garbage; __Host-session={valid}"),
                    )),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "the valid session was hidden");
        assert_eq!(reply.json(), json!("ann"));
    }
}
