//! Conformance tests for owners (listing and ending an owner's sessions) and for the renew grace
//! window, run against every server-side backend through
//! [`server_conformance_tests!`](crate::server_conformance_tests).

use std::time::Duration;

use actix_typed_session::{Backend, CookieLifetime, SessionAdmin};
use actix_web::{http::StatusCode, test::TestRequest};
use serde_json::{json, Value};

use crate::{client, conformance::middleware, TestClock};

/// The renew grace window the tests configure.
pub const GRACE: Duration = Duration::from_secs(5);

/// `n` visitors of one app (one middleware per client over the same backend and clock), and an
/// admin handle on it.
macro_rules! visitors {
    ($backend:expr, $clock:expr, $($name:ident),+) => {
        $(
            let $name = client(middleware($backend.clone(), &$clock, CookieLifetime::BrowserSession, |b| {
                b.renew_grace(GRACE)
            }))
            .await;
        )+
    };
}

pub(crate) fn admin(backend: &Backend, clock: &TestClock) -> SessionAdmin {
    middleware(
        backend.clone(),
        clock,
        CookieLifetime::BrowserSession,
        |b| b,
    )
    .admin()
}

fn handles(listed: &Value) -> Vec<(String, bool)> {
    listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["handle"].as_str().expect("a handle").to_owned(),
                s["current"].as_bool().expect("a flag"),
            )
        })
        .collect()
}

/// The cookie of session `session` (its default name, `__Host-{session}`) holding `value`.
fn cookie(session: &str, value: &str) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::new(crate::host(session), value.to_owned())
}

pub async fn owners_list_sessions_of_logins_from_two_clients(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, a, b, other);
    for (c, who) in [(&a, "alice"), (&b, "alice"), (&other, "bob")] {
        c.set("s", "cart", json!([1])).await;
        let login = c.post(&format!("/s/login/{who}")).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    }
    let mine = handles(&a.get("/s/owned").await.json());
    assert_eq!(mine.len(), 2, "alice has two sessions: {mine:?}");
    assert_eq!(mine.iter().filter(|(_, cur)| *cur).count(), 1);
    let seen_by_b = handles(&b.get("/s/owned").await.json());
    let mut left: Vec<_> = mine.iter().map(|(h, _)| h.clone()).collect();
    let mut right: Vec<_> = seen_by_b.iter().map(|(h, _)| h.clone()).collect();
    left.sort();
    right.sort();
    assert_eq!(left, right, "both clients see the same two sessions");
    assert_ne!(
        mine.iter().find(|(_, c)| *c),
        seen_by_b.iter().find(|(_, c)| *c),
        "each client is told which session is its own"
    );
    let cookie_a = a.cookie("s").unwrap();
    for (handle, _) in &mine {
        assert_ne!(handle, &cookie_a, "a handle is not the session id");
        assert!(!cookie_a.contains(handle.as_str()));
    }
    let bobs = admin(&backend, &clock).list("s", "bob").await.unwrap();
    assert_eq!(bobs.len(), 1);
}

pub async fn owners_end_one_session_by_its_handle(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, a, b, mallory);
    // b's id from before its login: read-only for the grace window, then dead.
    b.set("s", "cart", json!([1])).await;
    let b_before_login = b.cookie("s").unwrap();
    let through_old_id = || {
        TestRequest::get()
            .uri("/s/entries")
            .cookie(cookie("s", &b_before_login))
    };
    for (c, who) in [(&a, "alice"), (&b, "alice"), (&mallory, "mallory")] {
        c.set("s", "cart", json!([1])).await;
        c.post(&format!("/s/login/{who}")).await;
    }
    let old = b.send_raw(through_old_id()).await;
    assert_eq!(old.json(), json!({"cart": [1]}));
    let mine = handles(&a.get("/s/owned").await.json());
    let (b_handle, _) = mine.iter().find(|(_, cur)| !cur).unwrap().clone();
    // Another owner cannot end alice's session with its handle.
    let foreign = mallory.post(&format!("/s/end/{b_handle}")).await;
    assert_eq!(foreign.json(), json!(false));
    assert_eq!(b.read("s", "cart").await, Some(json!([1])));
    let ended = a.post(&format!("/s/end/{b_handle}")).await;
    assert_eq!(ended.json(), json!(true));
    assert_eq!(
        b.get("/s/entries").await.json(),
        json!({}),
        "b is anonymous"
    );
    let old = b.send_raw(through_old_id()).await;
    assert_eq!(old.json(), json!({}), "b's old id outlived its session");
    assert_eq!(a.read("s", "cart").await, Some(json!([1])), "a lives on");
    assert_eq!(handles(&a.get("/s/owned").await.json()).len(), 1);
}

pub async fn owners_end_all_but_the_current_session(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, a, b, c);
    for v in [&a, &b, &c] {
        v.set("s", "cart", json!([1])).await;
        v.post("/s/login/alice").await;
    }
    let ended = a.post("/s/end-others").await;
    assert_eq!(ended.json(), json!(2));
    assert_eq!(b.get("/s/entries").await.json(), json!({}));
    assert_eq!(c.get("/s/entries").await.json(), json!({}));
    assert_eq!(a.read("s", "cart").await, Some(json!([1])));
    let left = handles(&a.get("/s/owned").await.json());
    assert_eq!(left.len(), 1);
    assert!(left[0].1, "the one left is the current session");
}

pub async fn owners_end_all_sessions_including_the_current_one(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, a, b);
    for v in [&a, &b] {
        v.set("s", "cart", json!([1])).await;
        v.post("/s/login/alice").await;
    }
    let reply = a.post("/s/end-all").await;
    assert!(reply.cookie("s").is_some_and(|k| k.value().is_empty()));
    assert_eq!(a.get("/s/entries").await.json(), json!({}));
    assert_eq!(b.get("/s/entries").await.json(), json!({}));
    assert!(admin(&backend, &clock)
        .list("s", "alice")
        .await
        .unwrap()
        .is_empty());
    // The operator's way does the same.
    a.post("/s/login/alice").await;
    b.post("/s/login/alice").await;
    assert_eq!(
        admin(&backend, &clock).end_all("s", "alice").await.unwrap(),
        2
    );
    assert_eq!(a.get("/s/owned").await.json(), json!([]));
}

pub async fn owners_index_forgets_expired_and_purged_sessions(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, a, b);
    for v in [&a, &b] {
        v.set("s", "cart", json!([1])).await;
        v.post("/s/login/alice").await;
    }
    let admin = admin(&backend, &clock);
    assert_eq!(admin.list("s", "alice").await.unwrap().len(), 2);
    b.post("/s/purge").await;
    assert_eq!(
        admin.list("s", "alice").await.unwrap().len(),
        1,
        "a purged session left an index entry"
    );
    clock.advance(crate::conformance::IDLE + Duration::from_secs(1));
    assert!(
        admin.list("s", "alice").await.unwrap().is_empty(),
        "an expired session is still listed"
    );
    assert_eq!(a.get("/s/entries").await.json(), json!({}));
}

pub async fn renew_grace_keeps_the_old_id_readable_then_kills_it(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, c);
    c.set("s", "cart", json!([1])).await;
    let old = c.cookie("s").unwrap();
    let login = c.post("/s/login/alice").await;
    let new = login.cookie("s").expect("a new id").value().to_owned();
    assert_ne!(new, old);
    c.set("s", "user", json!("alice")).await;
    let in_flight = |path: &str, method: TestRequest| method.uri(path).cookie(cookie("s", &old));
    // Within the window: the session as it was before the renew, read-only, no cookie.
    let read = c
        .send_raw(in_flight("/s/entries", TestRequest::get()))
        .await;
    assert_eq!(read.json(), json!({"cart": [1]}), "pre-renew data only");
    assert!(read.set_cookies.is_empty(), "{:?}", read.set_cookies);
    let write = c
        .send_raw(in_flight("/s/set/late", TestRequest::post()).set_json(json!(1)))
        .await;
    assert_eq!(write.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(write.set_cookies.is_empty(), "{:?}", write.set_cookies);
    let relogin = c
        .send_raw(in_flight("/s/login/mallory", TestRequest::post()))
        .await;
    assert_eq!(relogin.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        c.get("/s/entries").await.json(),
        json!({"cart": [1], "user": "alice"}),
        "the new id kept everything"
    );
    // The old id is never listed.
    assert_eq!(handles(&c.get("/s/owned").await.json()).len(), 1);
    // After the window: dead.
    clock.advance(GRACE + Duration::from_secs(1));
    let late = c
        .send_raw(in_flight("/s/entries", TestRequest::get()))
        .await;
    assert_eq!(
        late.json(),
        json!({}),
        "the old id outlived the grace window"
    );
    assert_eq!(c.read("s", "user").await, Some(json!("alice")));
}

/// A logout soon after a renew (or two) ends the old ids too: their read-only copies would
/// otherwise still load the logged-in data for the rest of the grace window.
pub async fn a_purge_in_the_grace_window_also_ends_the_old_ids(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, c);
    c.set("s", "cart", json!([1])).await;
    let first = c.cookie("s").unwrap();
    c.post("/s/renew").await;
    let second = c.cookie("s").unwrap();
    c.post("/s/login/alice").await;
    c.set("s", "user", json!("alice")).await;
    assert_ne!(first, second);
    let in_flight = |id: &str| TestRequest::get().uri("/s/entries").cookie(cookie("s", id));
    for old in [&first, &second] {
        let read = c.send_raw(in_flight(old)).await;
        assert_eq!(read.json(), json!({"cart": [1]}), "readable in the window");
    }
    assert_eq!(c.post("/s/purge").await.status, StatusCode::OK);
    for old in [&first, &second] {
        let read = c.send_raw(in_flight(old)).await;
        assert_eq!(read.json(), json!({}), "an old id outlived the logout");
    }
    assert_eq!(c.read("s", "user").await, None);
}

pub async fn ending_all_sessions_also_ends_old_ids_in_their_grace_window(backend: Backend) {
    let clock = TestClock::default();
    visitors!(backend, clock, c);
    c.set("s", "cart", json!([1])).await;
    c.post("/s/login/alice").await;
    // A logged-in session renewed again (e.g. on a privilege change): its old id, in its grace
    // window, still reads as alice's.
    let old = c.cookie("s").unwrap();
    c.post("/s/renew").await;
    let read_old = || {
        c.send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(cookie("s", &old)),
        )
    };
    assert_eq!(read_old().await.json(), json!({"cart": [1]}));
    // The old id cannot end the new one.
    let from_old = c
        .send_raw(
            TestRequest::post()
                .uri("/s/end-others")
                .cookie(cookie("s", &old)),
        )
        .await;
    assert_eq!(from_old.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(c.read("s", "cart").await, Some(json!([1])));
    // "Log out everywhere else" reports no other session, and the old id is dead at once.
    assert_eq!(c.post("/s/end-others").await.json(), json!(0));
    assert_eq!(
        read_old().await.json(),
        json!({}),
        "the old id outlived the end"
    );
    assert_eq!(c.read("s", "cart").await, Some(json!([1])));
}

pub async fn renew_without_grace_kills_the_old_id_at_once(backend: Backend) {
    let clock = TestClock::default();
    let c = client(middleware(
        backend,
        &clock,
        CookieLifetime::BrowserSession,
        |b| b.renew_grace(Duration::ZERO),
    ))
    .await;
    c.set("s", "cart", json!([1])).await;
    let old = c.cookie("s").unwrap();
    c.post("/s/renew").await;
    let replay = c
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(cookie("s", &old)),
        )
        .await;
    assert_eq!(replay.json(), json!({}));
}
