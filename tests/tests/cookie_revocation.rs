//! Cookie sessions tied to an owner, ended through a revocation store: the server cannot recall
//! a cookie, but it can refuse every cookie of an owner issued before a point in time.

use std::time::Duration;

use actix_typed_session::{
    Backend, CookieLifetime, CookieSecurity, CookieStore, MemoryStore, SessionError,
};
use actix_typed_session_tests::{client, conformance::middleware, FailingStore, TestClock};
use actix_web::{http::StatusCode, test::TestRequest};
use serde_json::json;

fn revocable(security: CookieSecurity) -> Backend {
    CookieStore::new(security)
        .with_revocations(MemoryStore::default())
        .into()
}

async fn end_others_refuses_the_other_cookies_of_the_owner(security: CookieSecurity) {
    let clock = TestClock::default();
    let backend = revocable(security);
    let make = || {
        middleware(
            backend.clone(),
            &clock,
            CookieLifetime::BrowserSession,
            |b| b,
        )
    };
    let (a, b, bob) = (
        client(make()).await,
        client(make()).await,
        client(make()).await,
    );
    for (c, who) in [(&a, "alice"), (&b, "alice"), (&bob, "bob")] {
        c.set("s", "cart", json!([1])).await;
        assert_eq!(
            c.post(&format!("/s/login/{who}")).await.status,
            StatusCode::OK
        );
    }
    let kept_by_b = b.cookie("s").unwrap();
    let reply = a.post("/s/end-others").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(
        reply.cookie("s").is_some(),
        "the current cookie is re-issued so that the revocation spares it"
    );
    assert_eq!(a.read("s", "cart").await, Some(json!([1])), "a survives");
    assert_eq!(b.get("/s/entries").await.json(), json!({}), "b is refused");
    let replay = b
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .cookie(actix_web::cookie::Cookie::new("__Host-s", kept_by_b)),
        )
        .await;
    assert_eq!(replay.json(), json!({}), "a kept copy is refused too");
    assert_eq!(
        bob.read("s", "cart").await,
        Some(json!([1])),
        "other owners untouched"
    );

    // The operator ends all of alice's cookies, the survivor's included.
    let admin = make().admin();
    clock.advance(Duration::from_secs(1));
    assert_eq!(admin.end_all("s", "alice").await.unwrap(), 0);
    assert_eq!(a.get("/s/entries").await.json(), json!({}));
    // A new login after the revocation (not in its very millisecond) is valid.
    clock.advance(Duration::from_secs(1));
    a.set("s", "cart", json!([2])).await;
    a.post("/s/login/alice").await;
    assert_eq!(a.read("s", "cart").await, Some(json!([2])));
}

#[actix_web::test]
async fn sealed_cookies_of_an_owner_can_be_ended() {
    end_others_refuses_the_other_cookies_of_the_owner(CookieSecurity::Sealed).await;
}

#[actix_web::test]
async fn signed_cookies_of_an_owner_can_be_ended() {
    end_others_refuses_the_other_cookies_of_the_owner(CookieSecurity::Signed).await;
}

#[actix_web::test]
async fn without_a_revocation_store_ending_cookies_is_a_clear_error_and_listing_is_refused() {
    let clock = TestClock::default();
    let mw = middleware(
        CookieStore::default().into(),
        &clock,
        CookieLifetime::BrowserSession,
        |b| b,
    );
    let admin = mw.admin();
    let c = client(mw).await;
    c.set("s", "cart", json!([1])).await;
    c.post("/s/login/alice").await;
    assert_eq!(
        c.post("/s/end-others").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        c.get("/s/owned").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let err = admin.end_all("s", "alice").await.unwrap_err();
    assert!(
        matches!(err, SessionError::OwnersUnsupported { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("revocation store"), "{err}");
    assert_eq!(c.read("s", "cart").await, Some(json!([1])), "nothing lost");
}

#[actix_web::test]
async fn a_failing_revocation_store_fails_owned_cookie_loads_opaquely() {
    let clock = TestClock::default();
    let (failing, switch) = FailingStore::new();
    let backend: Backend = CookieStore::default().with_revocations(failing).into();
    let c = client(middleware(
        backend,
        &clock,
        CookieLifetime::BrowserSession,
        |b| b,
    ))
    .await;
    c.set("s", "cart", json!([1])).await;
    c.post("/s/login/alice").await;
    switch.fail_loads();
    let reply = c.get("/s/entries").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty(), "no detail leaks: {}", reply.body);
    switch.healthy();
    assert_eq!(c.read("s", "cart").await, Some(json!([1])));
}

#[actix_web::test]
async fn many_copies_of_an_owned_cookie_cost_a_bounded_number_of_revocation_reads() {
    let clock = TestClock::default();
    let (store, counts) = actix_typed_session_tests::CountingStore::new(MemoryStore::default());
    let backend: Backend = CookieStore::default().with_revocations(store).into();
    let c = client(middleware(
        backend,
        &clock,
        CookieLifetime::BrowserSession,
        |b| b,
    ))
    .await;
    c.set("s", "cart", json!([1])).await;
    c.post("/s/login/alice").await;
    c.post("/s/end-all").await; // alice's cookies issued until now are revoked
    let revoked = c.cookie("s");
    assert!(revoked.is_none(), "end-all removed the cookie");
    // Log in again, keep the cookie, revoke it, then send it 50 times in one header.
    clock.advance(Duration::from_secs(1));
    c.set("s", "cart", json!([1])).await;
    c.post("/s/login/alice").await;
    let kept = c.cookie("s").unwrap();
    c.post("/s/end-all").await;
    let before = counts.get(&counts.loads);
    let header = vec![format!("__Host-s={kept}"); 50].join("; ");
    let reply = c
        .send_raw(
            TestRequest::get()
                .uri("/s/entries")
                .insert_header(("cookie", header)),
        )
        .await;
    assert_eq!(reply.json(), json!({}));
    let reads = counts.get(&counts.loads) - before;
    assert!(reads <= 3, "{reads} revocation reads for one request");
}
