//! Conformance cases for the expiry chosen per session at run time (`Session::set_expiry`):
//! it holds on later requests, is capped by the configuration, and shapes the cookie.

use std::time::Duration;

use actix_typed_session::Backend;
use actix_web::http::StatusCode;
use serde_json::json;

use crate::{
    client,
    conformance::{persistent, plain, IDLE, REFRESH},
    Reply,
};

fn max_age(reply: &Reply) -> Option<i64> {
    reply
        .cookie("s")
        .and_then(|cookie| cookie.max_age())
        .map(|age| age.whole_seconds())
}

pub async fn a_chosen_idle_timeout_holds_on_later_requests_and_ends_the_session(backend: Backend) {
    let (mw, clock) = plain(backend);
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    let chosen = c.post("/s/expiry/20").await;
    assert_eq!(chosen.status, StatusCode::OK);
    // The browser-session cookie of the configuration becomes a persistent one.
    assert_eq!(max_age(&chosen), Some(20), "{:?}", chosen.set_cookies);
    assert!(chosen.cookie("s").unwrap().expires().is_some());
    assert_eq!(c.get("/s/expiry").await.json(), json!(20));
    // Stored beside the entries, not among them.
    assert_eq!(c.get("/s/entries").await.json(), json!({"user": "ann"}));
    // In use, it slides (refreshed at least every 10 s, half of its 20 s)...
    clock.advance(Duration::from_secs(15));
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    clock.advance(Duration::from_secs(15));
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    assert_eq!(c.get("/s/expiry").await.json(), json!(20));
    // ...and ends 20 s after its last use, long before the configured 60 s.
    clock.advance(Duration::from_secs(21));
    assert_eq!(c.read("s", "user").await, None);
}

pub async fn a_chosen_idle_timeout_is_capped_by_the_configured_one(backend: Backend) {
    let (mw, clock) = plain(backend);
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    let chosen = c.post("/s/expiry/3600").await;
    // The deadline stays the configured one (stored deadlines keep whole milliseconds: the
    // remaining time can round down a second).
    let idle = IDLE.as_secs() as i64;
    let age = max_age(&chosen).expect("a persistent cookie");
    assert!(age == idle || age == idle - 1, "Max-Age {age}, not {idle}");
    clock.advance(IDLE + Duration::from_secs(1));
    assert_eq!(c.read("s", "user").await, None);
}

pub async fn a_browser_session_expiry_drops_max_age_until_set_back(backend: Backend) {
    let (mw, clock) = persistent(backend);
    let c = client(mw).await;
    let first = c.set("s", "user", json!("ann")).await;
    assert!(max_age(&first).is_some());
    let chosen = c.post("/s/expiry/browser").await;
    let cookie = chosen.cookie("s").expect("the cookie is sent again");
    assert_eq!(
        (cookie.max_age(), cookie.expires()),
        (None, None),
        "{cookie}"
    );
    // It holds: later cookies (a refresh re-sends a cookie session's) carry no Max-Age either.
    clock.advance(REFRESH + Duration::from_secs(1));
    let later = c.set("s", "n", json!(1)).await;
    assert_eq!(max_age(&later), None, "{:?}", later.set_cookies);
    assert_eq!(c.get("/s/expiry").await.json(), json!("browser"));
    // The server still enforces the idle timeout.
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    // Back to the configuration: persistent again.
    let back = c.post("/s/expiry/default").await;
    let age = max_age(&back).expect("a persistent cookie again");
    assert!(age > 0 && age <= IDLE.as_secs() as i64, "{age}");
    assert_eq!(c.get("/s/expiry").await.json(), json!("default"));
    clock.advance(IDLE + Duration::from_secs(1));
    assert_eq!(c.read("s", "user").await, None);
}

pub async fn the_expiry_survives_clear_and_renew_and_purge_resets_it(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    c.post("/s/expiry/30").await;
    c.post("/s/clear").await;
    c.set("s", "n", json!(1)).await;
    assert_eq!(c.get("/s/expiry").await.json(), json!(30));
    let renewed = c.post("/s/renew").await;
    assert_eq!(max_age(&renewed), Some(30), "{:?}", renewed.set_cookies);
    assert_eq!(c.get("/s/expiry").await.json(), json!(30));
    assert_eq!(c.get("/s/entries").await.json(), json!({"n": 1}));
    c.post("/s/purge").await;
    let fresh = c.set("s", "n", json!(2)).await;
    assert_eq!(max_age(&fresh), None, "a new session starts as configured");
    assert_eq!(c.get("/s/expiry").await.json(), json!("default"));
}

pub async fn a_refused_expiry_or_the_reserved_key_changes_nothing(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let zero = c.post("/s/expiry/0").await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    assert!(zero.body.contains("at least one second"), "{}", zero.body);
    assert!(zero.set_cookies.is_empty(), "{:?}", zero.set_cookies);
    let reserved = c
        .post_json("/s/set/__session_expiry", json!({"idle_for": 5}))
        .await;
    assert_eq!(reserved.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(c.get("/s/expiry").await.json(), json!("default"));
    assert_eq!(c.get("/s/entries").await.json(), json!({"user": "ann"}));
}
