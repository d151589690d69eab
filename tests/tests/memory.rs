//! Memory-backend behaviour beyond the conformance suite.

use std::time::Duration;

use actix_typed_session::{Key, MemoryStore, SessionMiddleware, WhenFull};
use actix_typed_session_tests::{client, TestClock};
use actix_web::http::StatusCode;
use serde_json::json;

/// Two barrier-released requests of one visitor that set different keys, 1,000 times: no
/// change is ever lost.
#[actix_web::test]
async fn parallel_writes_to_different_keys_never_lose_an_update() {
    let store = MemoryStore::default();
    let mw = SessionMiddleware::builder(Key::generate())
        .backend("memory", store.clone())
        .build()
        .unwrap();
    let c = client(mw).await;
    let mut lost = 0;
    for trial in 0..1000 {
        c.jar.borrow_mut().clear();
        c.set("session", "trial", json!(trial)).await;
        let a = c.post_json("/session/wait-then-set/a", json!(trial));
        let b = c.post_json("/session/wait-then-set/b", json!(trial));
        let release = async {
            c.gate.wait_loaded(2).await;
            c.gate.release(2);
        };
        let (ra, rb, ()) = tokio::join!(a, b, release);
        assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
        let entries = c.get("/session/entries").await.json();
        if entries != json!({"trial": trial, "a": trial, "b": trial}) {
            lost += 1;
        }
    }
    assert_eq!(lost, 0, "{lost} of 1000 trials lost an update");
    assert_eq!(store.len(), 1000);
}

#[actix_web::test]
async fn expired_sessions_are_reclaimed_and_never_served() {
    let store = MemoryStore::builder()
        .sweep_interval(Duration::from_millis(20))
        .build();
    let clock = TestClock::default();
    let mw = SessionMiddleware::builder(Key::generate())
        .backend("memory", store.clone())
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(1))
        .absolute_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "a", json!(1)).await;
    assert_eq!(store.len(), 1);
    // Served as expired as soon as the middleware's clock passes the deadline ...
    clock.advance(Duration::from_secs(2));
    assert_eq!(c.read("session", "a").await, None);
    // ... and reclaimed by the sweeper once real time passes it, with no request involved.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !store.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.is_empty(), "the expired session was never reclaimed");
}

#[actix_web::test]
async fn a_full_store_that_refuses_answers_new_visitors_with_the_failure_status() {
    let store = MemoryStore::builder()
        .capacity(1)
        .when_full(WhenFull::Refuse)
        .build();
    let mw = SessionMiddleware::builder(Key::generate())
        .backend("memory", store.clone())
        .build()
        .unwrap();
    let first = client(mw.clone()).await;
    first.set("session", "a", json!(1)).await;
    let second = client(mw).await;
    let reply = second.post_json("/session/set/a", json!(2)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.set_cookies.is_empty());
    // The existing visitor keeps their session.
    assert_eq!(first.read("session", "a").await, Some(json!(1)));
}
