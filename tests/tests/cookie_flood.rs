//! A request that floods the session's cookie name with values (issue 23): the work per request
//! is bounded on every backend, and what was ignored is logged as one line with a count.

use std::time::Instant;

use actix_typed_session::{
    Backend, CookieSecurity, CookieStore, Key, MemoryStore, SessionMiddleware,
};
use actix_typed_session_tests::{client, CountingStore, LogCapture};
use actix_web::{http::StatusCode, test::TestRequest};
use serde_json::json;

/// How many values the flood sends: about what fits a 100 KB `Cookie` header.
const FLOOD: usize = 1300;

/// `FLOOD` distinct values shaped like `valid` (same length, alphabet and last character, so a
/// well-formed id stays well-formed) that nobody issued.
fn flood_like(valid: &str) -> Vec<String> {
    let (head, last) = valid.split_at(valid.len() - 1);
    (0..FLOOD)
        .map(|n| {
            let digits = format!("{n:0>6}");
            format!("{}{digits}{last}", &head[..head.len() - digits.len()])
        })
        .collect()
}

fn header(values: &[String], live: &str) -> String {
    let mut pairs: Vec<String> = values
        .iter()
        .map(|v| format!("__Host-session={v}"))
        .collect();
    pairs.push(format!("__Host-session={live}"));
    pairs.join("; ")
}

#[actix_web::test]
async fn a_flood_of_cookie_values_costs_bounded_work_and_one_log_line() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    for backend in [
        Backend::from(CookieStore::default()),
        CookieStore::new(CookieSecurity::Signed).into(),
        MemoryStore::default().into(),
    ] {
        let mw = SessionMiddleware::builder(Key::from(&[9u8; 64][..]))
            .backend("b", backend)
            .build()
            .unwrap();
        let c = client(mw).await;
        c.set("session", "user", json!("ann")).await;
        let live = c.cookie("session").unwrap();
        let flood = flood_like(&live);
        let before = logs.warnings().len();
        let started = Instant::now();
        let reply = c
            .send_raw(
                TestRequest::get()
                    .uri("/session/get/user")
                    .insert_header(("cookie", header(&flood, &live))),
            )
            .await;
        let took = started.elapsed();
        // The live value is past the first 8: the flood hides it, but at a bounded cost.
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
        let warnings = logs.warnings();
        assert_eq!(warnings.len() - before, 1, "{:#?}", &warnings[before..]);
        let line = &warnings[before];
        assert!(line.contains(&format!("ignored={}", FLOOD + 1)), "{line}");
        assert!(line.contains("than are considered"), "{line}");
        eprintln!("{} values: {took:?}", FLOOD + 1);
    }
}

#[actix_web::test]
async fn a_flood_of_ids_makes_at_most_8_store_lookups() {
    let (store, counts) = CountingStore::new(MemoryStore::default());
    let mw = SessionMiddleware::builder(Key::from(&[9u8; 64][..]))
        .backend("memory", store)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "user", json!("ann")).await;
    let live = c.cookie("session").unwrap();
    let loads = counts.loads();
    let mut values = flood_like(&live);
    // The live id among the first 8 distinct values still loads, however many follow.
    values.insert(3, live.clone());
    let reply = c
        .send_raw(
            TestRequest::get()
                .uri("/session/get/user")
                .insert_header(("cookie", header(&values, &live))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!("ann"));
    assert_eq!(counts.loads() - loads, 8);
}
