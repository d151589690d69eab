//! Conformance tests for recognisable sessions: the device (and, when asked for, the address)
//! recorded when a session is tied to its owner, run against every server-side backend through
//! [`server_conformance_tests!`](crate::server_conformance_tests).

use actix_typed_session::{Backend, CookieLifetime};
use actix_web::{
    http::{header::USER_AGENT, StatusCode},
    test::TestRequest,
};
use serde_json::{json, Value};

use crate::{client, conformance::middleware, TestClock};

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) \
     AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

/// A login request from `user_agent` (none when `None`), over a connection with a peer address.
fn login(owner: &str, user_agent: Option<&str>) -> TestRequest {
    let req = TestRequest::post()
        .uri(&format!("/s/login/{owner}"))
        .peer_addr("198.51.100.9:40000".parse().unwrap());
    match user_agent {
        Some(ua) => req.insert_header((USER_AGENT, ua)),
        None => req,
    }
}

/// `(device, address, current)` of each listed session, current first.
fn devices(listed: &Value) -> Vec<(Value, Value, bool)> {
    let mut rows: Vec<_> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["device"].clone(),
                s["address"].clone(),
                s["current"].as_bool().expect("a flag"),
            )
        })
        .collect();
    rows.sort_by_key(|(_, _, current)| !current);
    rows
}

pub async fn owners_list_the_device_of_each_login(backend: Backend) {
    let clock = TestClock::default();
    let app = || {
        middleware(
            backend.clone(),
            &clock,
            CookieLifetime::BrowserSession,
            |b| b,
        )
    };
    let (laptop, phone, script) = (
        client(app()).await,
        client(app()).await,
        client(app()).await,
    );
    for (c, ua) in [
        (&laptop, Some(FIREFOX_LINUX)),
        (&phone, Some(SAFARI_IPHONE)),
        (&script, None),
    ] {
        c.set("s", "cart", json!([1])).await;
        assert_eq!(c.send(login("alice", ua)).await.status, StatusCode::OK);
    }
    let listed = laptop.get("/s/owned").await.json();
    let mut seen: Vec<Value> = devices(&listed).into_iter().map(|(d, _, _)| d).collect();
    assert_eq!(
        seen[0],
        json!("Firefox on Linux"),
        "the current one: {listed}"
    );
    seen.sort_by_key(Value::to_string);
    assert_eq!(
        seen,
        [
            json!("Firefox on Linux"),
            json!("Safari on iPhone"),
            json!(null)
        ],
        "{listed}"
    );
    for (_, address, _) in devices(&listed) {
        assert_eq!(
            address,
            json!(null),
            "no address unless asked for: {listed}"
        );
    }
    assert!(
        !listed.to_string().contains("Mozilla"),
        "the raw User-Agent is never stored: {listed}"
    );
    // The handler never sees the record among the entries, nor can it write it.
    assert_eq!(laptop.get("/s/entries").await.json(), json!({"cart": [1]}));
    let reserved = laptop
        .post_json("/s/set/__session_device", json!({"device": "Mine"}))
        .await;
    assert_eq!(reserved.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Kept across a renew and later changes; a later request's agent does not replace it.
    laptop.post("/s/renew").await;
    laptop
        .send(
            TestRequest::post()
                .uri("/s/set/more")
                .insert_header((USER_AGENT, SAFARI_IPHONE))
                .set_json(json!(2)),
        )
        .await;
    let listed = phone.get("/s/owned").await.json();
    let rows = devices(&listed);
    assert_eq!(rows[0].0, json!("Safari on iPhone"), "{listed}");
    assert!(
        rows.iter().any(|(d, _, _)| *d == json!("Firefox on Linux")),
        "the laptop's device outlived its renew: {listed}"
    );
    assert_eq!(
        laptop.get("/s/entries").await.json(),
        json!({"cart": [1], "more": 2})
    );
    // Logging in again from another agent records the new device.
    script.send(login("alice", Some(SAFARI_IPHONE))).await;
    let listed = script.get("/s/owned").await.json();
    let mut seen: Vec<Value> = devices(&listed).into_iter().map(|(d, _, _)| d).collect();
    seen.sort_by_key(Value::to_string);
    assert_eq!(
        seen,
        [
            json!("Firefox on Linux"),
            json!("Safari on iPhone"),
            json!("Safari on iPhone")
        ],
        "{listed}"
    );
    script.send(login("bob", Some(FIREFOX_LINUX))).await;
    let bobs = crate::owners::admin(&backend, &clock)
        .list("s", "bob")
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].device.as_deref(), Some("Firefox on Linux"));
    assert_eq!(bobs[0].address, None);
}

pub async fn owners_list_the_client_address_when_the_middleware_records_it(backend: Backend) {
    let clock = TestClock::default();
    let c = client(middleware(
        backend.clone(),
        &clock,
        CookieLifetime::BrowserSession,
        |b| b.record_client_address(true),
    ))
    .await;
    c.set("s", "cart", json!([1])).await;
    let from = |ip: &str| {
        login("alice", Some(FIREFOX_LINUX)).peer_addr(format!("{ip}:51234").parse().unwrap())
    };
    assert_eq!(c.send(from("203.0.113.7")).await.status, StatusCode::OK);
    let listed = c.get("/s/owned").await.json();
    assert_eq!(
        devices(&listed),
        [(json!("Firefox on Linux"), json!("203.0.113.7"), true)],
        "{listed}"
    );
    assert_eq!(c.get("/s/entries").await.json(), json!({"cart": [1]}));
    // A new login from elsewhere (IPv6, no User-Agent) records where it came from.
    c.send(login("bob", None).peer_addr("[2001:db8::1]:443".parse().unwrap()))
        .await;
    let listed = c.get("/s/owned").await.json();
    assert_eq!(
        devices(&listed),
        [(json!(null), json!("2001:db8::1"), true)],
        "{listed}"
    );
}
