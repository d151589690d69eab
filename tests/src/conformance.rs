//! The conformance suite: one set of HTTP-level behaviours that every backend must show.
//!
//! Run it for a backend with [`conformance_tests!`](crate::conformance_tests) (every backend)
//! and [`server_conformance_tests!`](crate::server_conformance_tests) (server-side backends,
//! which can merge parallel writes and forget an id).

use std::time::Duration;

use actix_typed_session::{
    Backend, CookieLifetime, Key, SessionConfig, SessionMiddleware, SessionMiddlewareBuilder,
};
use actix_web::{
    http::{
        header::{CACHE_CONTROL, VARY},
        StatusCode,
    },
    test::TestRequest,
};
use serde_json::json;

use crate::{client, Reply, TestClock};
pub use crate::{devices::*, expiry::*, outside::*, owners::*};

pub const IDLE: Duration = Duration::from_secs(60);
pub const ABSOLUTE: Duration = Duration::from_secs(600);
pub const REFRESH: Duration = Duration::from_secs(10);

/// One fixed key, so that every test of a run speaks the same cookies.
pub fn key() -> Key {
    Key::from(&b"conformance-suite-master-key-0123456789-0123456789-0123456789-xyz"[..])
}

/// A middleware with the backend under test holding session `s`.
pub fn middleware(
    backend: Backend,
    clock: &TestClock,
    lifetime: CookieLifetime,
    customize: impl FnOnce(SessionMiddlewareBuilder) -> SessionMiddlewareBuilder,
) -> SessionMiddleware {
    let builder = SessionMiddleware::builder(key())
        .backend("under_test", backend)
        .session(
            "s",
            SessionConfig::new()
                .backend("under_test")
                .lifetime(lifetime),
        )
        .clock(clock.clone())
        .idle_timeout(IDLE)
        .absolute_timeout(ABSOLUTE)
        .refresh_interval(REFRESH);
    customize(builder)
        .build()
        .expect("valid test configuration")
}

pub(crate) fn plain(backend: Backend) -> (SessionMiddleware, TestClock) {
    let clock = TestClock::default();
    (
        middleware(backend, &clock, CookieLifetime::BrowserSession, |b| b),
        clock,
    )
}

pub(crate) fn persistent(backend: Backend) -> (SessionMiddleware, TestClock) {
    let clock = TestClock::default();
    (
        middleware(backend, &clock, CookieLifetime::Persistent, |b| b),
        clock,
    )
}

pub async fn empty_new_session_sets_no_cookie(backend: Backend) {
    let c = client(plain(backend).0).await;
    let reply = c.get("/s/get/anything").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    let reply = c.get("/s/entries").await;
    assert_eq!(reply.json(), json!({}));
    assert!(reply.set_cookies.is_empty());
}

pub async fn untouched_route_sets_no_cookie(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "a", json!(1)).await;
    let reply = c.get("/untouched").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookies.is_empty());
}

/// Shared caches must neither answer one visitor with another's page nor keep a session cookie.
pub async fn responses_that_used_a_session_are_kept_from_shared_caches(backend: Backend) {
    let c = client(plain(backend).0).await;
    let header = |reply: &Reply, name| {
        let values = reply.headers.get_all(name);
        values
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // The handler's own Cache-Control is kept.
    let own = c.post("/s/set-cacheable/b").await;
    assert!(own.cookie("s").is_some());
    assert_eq!(header(&own, CACHE_CONTROL), ["public, max-age=60"]);
    assert_eq!(header(&own, VARY), ["Cookie"]);
    // Otherwise a response that sets a session's cookie (a removal too) is private.
    let purged = c.post("/s/purge").await;
    assert!(purged.cookie("s").is_some());
    assert_eq!(header(&purged, CACHE_CONTROL), ["private"]);
    let set = c.set("s", "a", json!(1)).await;
    assert!(set.cookie("s").is_some());
    assert_eq!(header(&set, VARY), ["Cookie"]);
    assert_eq!(header(&set, CACHE_CONTROL), ["private"]);
    // A read sets no cookie, but its page still depends on the cookie.
    let read = c.get("/s/get/a").await;
    assert!(read.set_cookies.is_empty());
    assert_eq!(header(&read, VARY), ["Cookie"]);
    assert!(header(&read, CACHE_CONTROL).is_empty());
    // So does a page that found no session (no cookie sent).
    let anonymous = c.send_raw(TestRequest::get().uri("/s/get/a")).await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND);
    assert_eq!(header(&anonymous, VARY), ["Cookie"]);
    let untouched = c.get("/untouched").await;
    assert!(header(&untouched, VARY).is_empty());
    assert!(header(&untouched, CACHE_CONTROL).is_empty());
    // A handler's error page saves nothing, but depends on the cookie too.
    let failed = c.post("/s/set-then-500/c").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(header(&failed, VARY), ["Cookie"]);
}

pub async fn inserted_values_are_read_back_on_later_requests(backend: Backend) {
    let c = client(plain(backend).0).await;
    let reply = c
        .set("s", "user", json!({"name": "ann", "roles": ["admin"]}))
        .await;
    assert!(reply.cookie("s").is_some(), "a new session sets its cookie");
    c.set("s", "n", json!(7)).await;
    assert_eq!(
        c.read("s", "user").await,
        Some(json!({"name": "ann", "roles": ["admin"]}))
    );
    assert_eq!(c.read("s", "n").await, Some(json!(7)));
    assert_eq!(c.read("s", "missing").await, None);
}

pub async fn unchanged_session_is_not_written_back(backend: Backend) {
    let c = client(persistent(backend).0).await;
    c.set("s", "a", json!(1)).await;
    for _ in 0..3 {
        let reply = c.get("/s/get/a").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.set_cookies.is_empty(),
            "a read wrote: {:?}",
            reply.set_cookies
        );
    }
}

pub async fn setting_an_equal_value_is_not_a_change(backend: Backend) {
    let c = client(persistent(backend).0).await;
    c.set("s", "a", json!([1, 2])).await;
    let again = c.set("s", "a", json!([1, 2])).await;
    assert!(again.set_cookies.is_empty(), "{:?}", again.set_cookies);
    let changed = c.set("s", "a", json!([1, 2, 3])).await;
    assert!(changed.cookie("s").is_some());
}

pub async fn remove_and_contains_key(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "a", json!(1)).await;
    c.set("s", "b", json!(2)).await;
    assert_eq!(c.get("/s/contains/a").await.json(), json!(true));
    assert_eq!(c.post("/s/remove/a").await.json(), json!(1));
    assert_eq!(c.get("/s/contains/a").await.json(), json!(false));
    assert_eq!(c.post("/s/remove/a").await.json(), json!(null));
    assert_eq!(c.get("/s/entries").await.json(), json!({"b": 2}));
}

pub async fn update_and_update_or_change_one_key_in_place(backend: Backend) {
    let c = client(plain(backend).0).await;
    // `update` of an absent key changes nothing: no session is started.
    let absent = c.post("/s/increment/n").await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert!(absent.set_cookies.is_empty(), "{:?}", absent.set_cookies);
    // `update_or` stores the default, then applies the closure.
    let first = c.post("/s/count/n").await;
    assert_eq!(first.json(), json!(1));
    assert!(first.cookie("s").is_some(), "the new value is saved");
    assert_eq!(c.post("/s/count/n").await.json(), json!(2));
    assert_eq!(c.post("/s/increment/n").await.json(), json!(3));
    assert_eq!(c.read("s", "n").await, Some(json!(3)));
    // A value of another type is an error naming the key, and stays.
    c.set("s", "n", json!("three")).await;
    for path in ["/s/increment/n", "/s/count/n"] {
        let wrong = c.post(path).await;
        assert_eq!(wrong.status, StatusCode::CONFLICT, "{path}");
        assert!(wrong.body.contains("key `n`"), "{}", wrong.body);
        assert!(
            wrong.set_cookies.is_empty(),
            "{path}: {:?}",
            wrong.set_cookies
        );
    }
    assert_eq!(c.read("s", "n").await, Some(json!("three")));
}

pub async fn clear_empties_the_session(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "a", json!(1)).await;
    c.set("s", "b", json!(2)).await;
    assert_eq!(c.post("/s/clear").await.status, StatusCode::OK);
    assert_eq!(c.get("/s/entries").await.json(), json!({}));
    c.set("s", "c", json!(3)).await;
    assert_eq!(c.get("/s/entries").await.json(), json!({"c": 3}));
}

pub async fn changes_of_a_failing_handler_are_not_saved(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "a", json!("kept")).await;
    let five = c.post("/s/set-then-500/a").await;
    assert_eq!(five.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(five.set_cookies.is_empty());
    let err = c.post("/s/set-then-err/a").await;
    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert!(err.set_cookies.is_empty());
    assert_eq!(c.read("s", "a").await, Some(json!("kept")));

    // A new session started by a failing handler leaves nothing behind either.
    let fresh = client(plain_like(&c)).await;
    let reply = fresh.post("/s/set-then-500/a").await;
    assert!(reply.set_cookies.is_empty());
}

/// A logout must never silently fail to log out.
pub async fn a_purge_is_saved_even_when_the_handler_fails_after_it(backend: Backend) {
    let server_side = !backend.is_cookie();
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let old = c.cookie("s").unwrap();
    let failed = c.post("/s/purge-then-err").await;
    assert_eq!(failed.status, StatusCode::BAD_REQUEST);
    let removal = failed.cookie("s").expect("a removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(c.read("s", "user").await, None);
    if server_side {
        // The id is dead in the store, not only in this browser.
        let replay = TestRequest::get()
            .uri("/s/get/user")
            .insert_header(("Cookie", format!("__Host-s={old}")));
        assert_eq!(c.send_raw(replay).await.status, StatusCode::NOT_FOUND);
    }
}

fn plain_like<S>(_: &crate::Client<S>) -> SessionMiddleware {
    // A second app on a cookie-only backend is enough: the check is that no cookie is set.
    plain(actix_typed_session::CookieStore::default().into()).0
}

pub async fn renew_keeps_the_data_under_a_new_cookie(backend: Backend) {
    let server_side = !backend.is_cookie();
    let (middleware, clock) = plain(backend);
    let c = client(middleware).await;
    c.set("s", "user", json!("ann")).await;
    let old = c.cookie("s").unwrap();
    let reply = c.post("/s/renew").await;
    let new = reply
        .cookie("s")
        .expect("renew re-issues the cookie")
        .value()
        .to_owned();
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    // A renewed session is told apart from the one before (signed cookies included).
    assert_ne!(new, old, "renew must change the cookie's value");
    if server_side {
        // Past the renew grace window (see `owners::renew_grace_*` for what happens within it).
        clock.advance(Duration::from_secs(6));
        let replay = c
            .send_raw(
                TestRequest::get()
                    .uri("/s/get/user")
                    .cookie(cookie("s", &old)),
            )
            .await;
        assert_eq!(
            replay.status,
            StatusCode::NOT_FOUND,
            "the old id must be dead"
        );
    }
}

pub async fn purge_removes_the_cookie_and_the_data(backend: Backend) {
    let server_side = !backend.is_cookie();
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let old = c.cookie("s").unwrap();
    let reply = c.post("/s/purge").await;
    let removal = reply.cookie("s").expect("purge sends a removal cookie");
    assert_eq!(removal.value(), "");
    assert_eq!(
        removal.max_age(),
        Some(actix_web::cookie::time::Duration::ZERO)
    );
    assert_eq!(removal.path(), Some("/"));
    assert!(c.cookie("s").is_none());
    assert_eq!(c.read("s", "user").await, None);
    if server_side {
        let replay = c
            .send_raw(
                TestRequest::get()
                    .uri("/s/get/user")
                    .cookie(cookie("s", &old)),
            )
            .await;
        assert_eq!(
            replay.status,
            StatusCode::NOT_FOUND,
            "a purged id must be dead"
        );
    }
}

pub async fn tampered_cookie_is_a_fresh_session(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let good = c.cookie("s").unwrap();
    let mut bytes = good.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    for bad in [
        tampered.as_str(),
        "",
        "x",
        &good[..good.len() - 1],
        "%%%",
        "é",
    ] {
        c.set_cookie("s", bad);
        let reply = c.get("/s/get/user").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "cookie {bad:?}");
    }
    // Writing after a bad cookie gives a new, working session.
    c.set_cookie("s", &tampered);
    let reply = c.set("s", "user", json!("bob")).await;
    assert_ne!(reply.cookie("s").unwrap().value(), tampered);
    assert_eq!(c.read("s", "user").await, Some(json!("bob")));
}

pub async fn malformed_neighbour_cookies_do_not_hide_the_session(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let value = c.cookie("s").unwrap();
    // The same name in other cases, and the name without its prefix, are other cookies.
    let header = format!("junk; =; ;;a=b=c; __host-s=other; s=other; __Host-s={value}; x=\"q; y");
    let reply = c.get_with_cookie_header("/s/get/user", &header).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!("ann"));
}

pub async fn stale_same_name_cookies_before_the_live_one_do_not_hide_it(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let live = c.cookie("s").unwrap();
    // Junk, then a well-formed id that no store knows, then the live cookie.
    let header = format!(
        "__Host-s=junk; __Host-s=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; __Host-s={live}"
    );
    let reply = c.get_with_cookie_header("/s/get/user", &header).await;
    assert_eq!(reply.status, StatusCode::OK, "the live session was hidden");
    assert_eq!(reply.json(), json!("ann"));
}

pub async fn idle_timeout_is_enforced_by_the_server(backend: Backend) {
    let (mw, clock) = plain(backend);
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    clock.advance(IDLE - Duration::from_secs(5));
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    // The read above refreshed the idle deadline: wait past the original one, not the new one.
    clock.advance(Duration::from_secs(10));
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
    clock.advance(IDLE + Duration::from_secs(1));
    // The client still sends the cookie; the server refuses it.
    assert!(c.cookie("s").is_some());
    assert_eq!(c.read("s", "user").await, None);
}

pub async fn absolute_timeout_is_enforced_despite_activity(backend: Backend) {
    let (mw, clock) = plain(backend);
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    let step = IDLE / 2;
    let mut elapsed = Duration::ZERO;
    while elapsed + step < ABSOLUTE {
        clock.advance(step);
        elapsed += step;
        assert_eq!(
            c.read("s", "user").await,
            Some(json!("ann")),
            "at {elapsed:?}"
        );
    }
    clock.advance(step);
    assert_eq!(c.read("s", "user").await, None, "past the absolute timeout");
}

pub async fn idle_refresh_is_throttled(backend: Backend) {
    let (mw, clock) = persistent(backend);
    let c = client(mw).await;
    c.set("s", "user", json!("ann")).await;
    clock.advance(REFRESH / 2);
    let early = c.get("/s/get/user").await;
    assert!(
        early.set_cookies.is_empty(),
        "refreshed before the interval"
    );
    clock.advance(REFRESH);
    let due = c.get("/s/get/user").await;
    let cookie = due
        .cookie("s")
        .expect("refresh re-sends the persistent cookie");
    assert_eq!(
        cookie.max_age().map(|d| d.whole_seconds()),
        Some(IDLE.as_secs() as i64)
    );
    let after = c.get("/s/get/user").await;
    assert!(
        after.set_cookies.is_empty(),
        "refreshed twice in one interval"
    );
    // The refresh moved the deadline: past the original deadline the session lives on.
    clock.advance(IDLE - REFRESH);
    assert_eq!(c.read("s", "user").await, Some(json!("ann")));
}

/// Server-side sessions: a write moves the expiry only when a read would (once per refresh
/// interval), which spares the store its expiry update on most writes.
pub async fn a_change_moves_the_expiry_at_most_once_per_refresh_interval(backend: Backend) {
    let (mw, clock) = persistent(backend);
    let c = client(mw).await;
    c.set("s", "n", json!(1)).await;
    let max_age = |reply: &Reply| {
        reply
            .cookie("s")
            .and_then(|cookie| cookie.max_age())
            .map(|d| d.whole_seconds())
    };
    clock.advance(REFRESH / 2);
    // Within the interval: the change is saved, the deadline stays where it was.
    let early = c.set("s", "n", json!(2)).await;
    // (Stored deadlines keep whole milliseconds: a remaining time can round down a second.)
    let kept = (IDLE - REFRESH / 2).as_secs() as i64;
    let early = max_age(&early).expect("the persistent cookie is re-sent");
    assert!(
        early == kept || early == kept - 1,
        "Max-Age {early}, not {kept}"
    );
    clock.advance(REFRESH);
    // Past it: the deadline moves a whole idle timeout ahead.
    let due = c.set("s", "n", json!(3)).await;
    assert_eq!(max_age(&due), Some(IDLE.as_secs() as i64));
    assert_eq!(c.read("s", "n").await, Some(json!(3)));
}

/// The other side of the same rule: a change soon after the last refresh does not postpone the
/// idle deadline, so the session ends on time.
pub async fn a_change_within_the_refresh_interval_keeps_the_deadline(backend: Backend) {
    let (mw, clock) = plain(backend);
    let c = client(mw).await;
    c.set("s", "n", json!(1)).await;
    clock.advance(REFRESH / 2);
    c.set("s", "n", json!(2)).await;
    // A second past the first deadline (the write would have moved it REFRESH / 2 further).
    clock.advance(IDLE - REFRESH / 2 + Duration::from_secs(1));
    assert_eq!(c.read("s", "n").await, None);
}

pub async fn persistent_cookie_has_max_age_and_matching_expires(backend: Backend) {
    let c = client(persistent(backend).0).await;
    let reply = c.set("s", "a", json!(1)).await;
    let cookie = reply.cookie("s").unwrap();
    let max_age = cookie.max_age().expect("Max-Age").whole_seconds();
    assert_eq!(max_age, IDLE.as_secs() as i64);
    let expires = cookie.expires_datetime().expect("Expires");
    let from_now = expires - actix_web::cookie::time::OffsetDateTime::now_utc();
    assert!(
        (from_now.whole_seconds() - max_age).abs() <= 2,
        "Expires is {from_now} from now, Max-Age {max_age}s"
    );
    assert!(cookie.http_only().unwrap_or(false));
    assert_eq!(cookie.path(), Some("/"));
}

pub async fn browser_session_cookie_has_no_max_age_or_expires(backend: Backend) {
    let c = client(plain(backend).0).await;
    let reply = c.set("s", "a", json!(1)).await;
    let cookie = reply.cookie("s").unwrap();
    assert_eq!(cookie.max_age(), None);
    assert_eq!(cookie.expires(), None);
    assert_eq!(cookie.secure(), Some(true));
    assert_eq!(cookie.http_only(), Some(true));
}

// ---- server-side backends only ----------------------------------------------------------------

pub async fn parallel_requests_changing_different_keys_both_survive(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "base", json!(0)).await;
    let a = c.post_json("/s/wait-then-set/a", json!("from a"));
    let b = c.post_json("/s/wait-then-set/b", json!("from b"));
    let control = async {
        c.gate.wait_loaded(2).await;
        c.gate.release(2);
    };
    let (ra, rb, ()) = tokio::join!(a, b, control);
    assert_eq!((ra.status, rb.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(
        c.get("/s/entries").await.json(),
        json!({"base": 0, "a": "from a", "b": "from b"})
    );
}

pub async fn slow_request_does_not_resurrect_a_purged_session(backend: Backend) {
    let c = client(plain(backend).0).await;
    c.set("s", "user", json!("ann")).await;
    let old = c.cookie("s").unwrap();
    let slow = c.post_json("/s/wait-then-set/late", json!(1));
    let control = async {
        c.gate.wait_loaded(1).await;
        let logout = c.post("/s/purge").await;
        assert!(logout.cookie("s").is_some_and(|k| k.value().is_empty()));
        c.gate.release(1);
    };
    let (slow, ()) = tokio::join!(slow, control);
    assert_eq!(slow.status, StatusCode::OK);
    assert!(
        slow.cookie("s").is_none(),
        "the slow response re-issued a cookie"
    );
    let replay = c
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(cookie("s", &old)),
        )
        .await;
    assert_eq!(replay.json(), json!({}), "the purged session came back");
}

pub async fn slow_request_does_not_resurrect_a_renewed_session(backend: Backend) {
    let (middleware, clock) = plain(backend);
    let c = client(middleware).await;
    c.set("s", "user", json!("ann")).await;
    let old = c.cookie("s").unwrap();
    let slow = c.post_json("/s/wait-then-set/late", json!(1));
    let control = async {
        c.gate.wait_loaded(1).await;
        let login = c.post("/s/renew").await;
        assert!(login.cookie("s").is_some());
        c.gate.release(1);
    };
    let (slow, ()) = tokio::join!(slow, control);
    assert!(
        slow.cookie("s").is_none(),
        "the slow response re-issued the old id"
    );
    clock.advance(Duration::from_secs(6)); // past the renew grace window
    let replay = c
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(cookie("s", &old)),
        )
        .await;
    assert_eq!(replay.json(), json!({}), "the old id came back to life");
    assert_ne!(c.cookie("s").unwrap(), old);
    assert_eq!(c.get("/s/entries").await.json(), json!({"user": "ann"}));
}

pub async fn unknown_well_formed_id_is_never_adopted(backend: Backend) {
    let c = client(plain(backend).0).await;
    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    c.set_cookie("s", forged);
    assert_eq!(c.read("s", "user").await, None);
    let reply = c.set("s", "user", json!("mallory")).await;
    let issued = reply.cookie("s").expect("a new id").value().to_owned();
    assert_ne!(issued, forged);
    let replay = c
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(cookie("s", forged)),
        )
        .await;
    assert_eq!(replay.json(), json!({}), "the forged id was adopted");
}

/// The cookie of session `session` (its default name, `__Host-{session}`) holding `value`.
pub(crate) fn cookie(session: &str, value: &str) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::new(crate::host(session), value.to_owned())
}

/// Runs every backend-agnostic conformance test against the backend `$backend` builds.
///
/// `async $setup` takes a future that gives `(backend, guard)`; the guard lives until the test
/// ends (e.g. a database schema dropped on drop).
#[macro_export]
macro_rules! conformance_tests {
    (async $setup:expr) => {
        $crate::conformance_tests!(@names @async $setup);
    };
    (@names @$mode:ident $backend:expr) => {
        $crate::conformance_tests!(@$mode $backend;
            empty_new_session_sets_no_cookie,
            untouched_route_sets_no_cookie,
            responses_that_used_a_session_are_kept_from_shared_caches,
            inserted_values_are_read_back_on_later_requests,
            unchanged_session_is_not_written_back,
            setting_an_equal_value_is_not_a_change,
            remove_and_contains_key,
            update_and_update_or_change_one_key_in_place,
            clear_empties_the_session,
            changes_of_a_failing_handler_are_not_saved,
            a_purge_is_saved_even_when_the_handler_fails_after_it,
            renew_keeps_the_data_under_a_new_cookie,
            purge_removes_the_cookie_and_the_data,
            tampered_cookie_is_a_fresh_session,
            malformed_neighbour_cookies_do_not_hide_the_session,
            stale_same_name_cookies_before_the_live_one_do_not_hide_it,
            idle_timeout_is_enforced_by_the_server,
            absolute_timeout_is_enforced_despite_activity,
            idle_refresh_is_throttled,
            persistent_cookie_has_max_age_and_matching_expires,
            browser_session_cookie_has_no_max_age_or_expires,
            an_older_planted_session_does_not_replace_the_real_one,
            planted_unknown_values_ahead_of_the_real_one_do_not_hide_it,
            values_that_do_not_load_get_no_removal_cookie,
            clear_on_a_new_empty_session_is_a_change_that_writes_nothing,
            a_chosen_idle_timeout_holds_on_later_requests_and_ends_the_session,
            a_chosen_idle_timeout_is_capped_by_the_configured_one,
            a_browser_session_expiry_drops_max_age_until_set_back,
            the_expiry_survives_clear_and_renew_and_purge_resets_it,
            a_refused_expiry_or_the_reserved_key_changes_nothing
        );
    };
    (@sync $backend:expr; $($name:ident),* $(,)?) => {
        $(
            #[actix_web::test]
            async fn $name() {
                $crate::init_logs();
                $crate::conformance::$name(($backend).into()).await;
            }
        )*
    };
    (@async $setup:expr; $($name:ident),* $(,)?) => {
        $(
            #[actix_web::test]
            async fn $name() {
                $crate::init_logs();
                let (backend, _guard) = $setup.await;
                $crate::conformance::$name(backend.into()).await;
            }
        )*
    };
    ($backend:expr) => {
        $crate::conformance_tests!(@names @sync $backend);
    };
}

/// Runs the conformance tests that only server-side backends can pass.
#[macro_export]
macro_rules! server_conformance_tests {
    (async $setup:expr) => {
        $crate::server_conformance_tests!(@names @async $setup);
    };
    (@names @$mode:ident $backend:expr) => {
        $crate::conformance_tests!(@$mode $backend;
            parallel_requests_changing_different_keys_both_survive,
            slow_request_does_not_resurrect_a_purged_session,
            slow_request_does_not_resurrect_a_renewed_session,
            unknown_well_formed_id_is_never_adopted,
            owners_list_sessions_of_logins_from_two_clients,
            owners_end_one_session_by_its_handle,
            owners_end_all_but_the_current_session,
            owners_end_all_sessions_including_the_current_one,
            owners_index_forgets_expired_and_purged_sessions,
            owners_list_the_device_of_each_login,
            owners_list_the_client_address_when_the_middleware_records_it,
            renew_grace_keeps_the_old_id_readable_then_kills_it,
            a_purge_in_the_grace_window_also_ends_the_old_ids,
            ending_all_sessions_also_ends_old_ids_in_their_grace_window,
            renew_without_grace_kills_the_old_id_at_once,
            a_change_moves_the_expiry_at_most_once_per_refresh_interval,
            a_change_within_the_refresh_interval_keeps_the_deadline
        );
    };
    ($backend:expr) => {
        $crate::server_conformance_tests!(@names @sync $backend);
    };
}
