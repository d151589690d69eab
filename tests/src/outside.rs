//! Conformance tests for cookies planted or replayed from outside (issue 23): a sibling
//! subdomain or a longer Path can send values of the session's cookie name beside the real one.

use std::time::Duration;

use actix_typed_session::Backend;
use actix_web::{http::StatusCode, test::TestRequest};
use serde_json::json;

use crate::{
    client,
    conformance::{cookie, plain},
};

/// A well-formed id (43 characters of base64url, the last one `A` so that its unused low bits
/// are zero) that no backend issued; `n` picks which.
fn unknown(n: usize) -> String {
    format!("{:A>42}A", format!("B{n}"))
}

/// An attacker plants a session of their own (obtained by visiting the site) under the same
/// cookie name, in front of or behind the victim's: the session the server wrote last, the
/// victim's, is the one loaded.
pub async fn an_older_planted_session_does_not_replace_the_real_one(backend: Backend) {
    let (middleware, clock) = plain(backend);
    let c = client(middleware).await;
    c.set("s", "user", json!("mallory")).await;
    let planted = c.cookie("s").unwrap();
    clock.advance(Duration::from_secs(2));
    let victim = c
        .send_raw(
            TestRequest::post()
                .uri("/s/set/user")
                .set_json(json!("ann")),
        )
        .await
        .cookie("s")
        .expect("a new session")
        .value()
        .to_owned();
    for header in [
        format!("__Host-s={planted}; __Host-s={victim}"),
        format!("__Host-s={victim}; __Host-s={planted}"),
    ] {
        let reply = c.get_with_cookie_header("/s/get/user", &header).await;
        assert_eq!(reply.status, StatusCode::OK, "{header}");
        assert_eq!(reply.json(), json!("ann"), "the planted session won");
    }
}

/// Seven distinct well-formed values nobody issued, and one repeated twenty times, in front of
/// the live cookie: the live session still loads.
pub async fn planted_unknown_values_ahead_of_the_real_one_do_not_hide_it(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let live = c.cookie("s").unwrap();
    let seven: Vec<String> = (0..7).map(|n| format!("__Host-s={}", unknown(n))).collect();
    let repeated = vec![format!("__Host-s={}", unknown(99)); 20];
    for planted in [seven, repeated] {
        let header = format!("{}; __Host-s={live}", planted.join("; "));
        let reply = c.get_with_cookie_header("/s/get/user", &header).await;
        assert_eq!(reply.status, StatusCode::OK, "the live session was hidden");
        assert_eq!(reply.json(), json!("ann"));
    }
}

/// A value that does not load (never issued, tampered, or an id that has ended) gets no removal
/// cookie: the browser's cookie of that name may by now be a live session (a login that
/// happened meanwhile, or the real cookie beside a planted one).
pub async fn values_that_do_not_load_get_no_removal_cookie(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let live = c.cookie("s").unwrap();
    c.post("/s/purge").await;
    let ended = live.clone();
    let tampered = format!(
        "{}{}",
        &live[..live.len() - 1],
        if live.ends_with('A') { 'B' } else { 'A' }
    );
    for (value, what) in [
        (unknown(1), "an unknown id"),
        (tampered, "a tampered value"),
        (ended, "a purged session's value"),
    ] {
        for uri in ["/s/get/user", "/s/entries"] {
            let reply = c
                .send_raw(TestRequest::get().uri(uri).cookie(cookie("s", &value)))
                .await;
            assert!(
                reply.set_cookies.is_empty(),
                "{what} got {:?} from {uri}",
                reply.set_cookies
            );
        }
    }
}

/// `clear()` says that it changed the session even when there was nothing to clear, as on a
/// loaded session, and an empty new session still writes nothing.
pub async fn clear_on_a_new_empty_session_is_a_change_that_writes_nothing(backend: Backend) {
    let c = client(plain(backend).0).await;
    let reply = c.post("/s/clear").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "Changed");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    c.set("s", "a", json!(1)).await;
    let reply = c.post("/s/clear").await;
    assert_eq!(reply.body, "Changed");
}
