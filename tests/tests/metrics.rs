//! Metrics through the `metrics` facade (feature `metrics`): what each request did, labelled by
//! backend and session only.

use std::collections::HashMap;

use actix_typed_session::{CookieStore, Key, SessionConfig, SessionMiddleware};
use actix_typed_session_tests::{client, FailingStore};
use actix_web::http::StatusCode;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

/// Counter values by `name{label=value,...}`, labels sorted.
fn counters(snapshotter: &Snapshotter) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => {
                out.insert(name, n);
            }
            DebugValue::Histogram(samples) => {
                out.insert(name, samples.len() as u64);
            }
            DebugValue::Gauge(_) => {}
        }
    }
    out
}

fn middleware(
    failing: actix_typed_session_tests::HookedStore<actix_typed_session::MemoryStore>,
) -> SessionMiddleware {
    SessionMiddleware::builder(Key::generate())
        .backend("memory", failing)
        .backend("cookie", CookieStore::default())
        .session("prefs", SessionConfig::new().backend("cookie"))
        .build()
        .unwrap()
}

#[actix_web::test]
async fn every_session_event_is_counted_by_backend_and_session_without_ids_or_owners() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (store, mode) = FailingStore::new();
    let c = client(middleware(store)).await;

    c.set("session", "cart", json!([1])).await; // created
    c.set("session", "cart", json!([1, 2])).await; // loaded + saved
    c.post("/session/login/owner-secret-7").await; // loaded + renewed
    c.set("prefs", "theme", json!("dark")).await; // cookie created
    let big = c
        .post_json("/prefs/set/notes", json!("n".repeat(5000)))
        .await; // refused: too large
    assert_eq!(big.status, StatusCode::INTERNAL_SERVER_ERROR);
    mode.fail_writes();
    let failed = c.post_json("/session/set/cart", json!([3])).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    mode.healthy();
    c.post("/session/purge").await; // loaded + purged

    let seen = counters(&snapshotter);
    let memory = "backend=memory,session=session";
    let cookie = "backend=cookie,session=prefs";
    let get = |name: &str, labels: &str| seen.get(&format!("{name}{{{labels}}}")).copied();
    assert_eq!(get("session_created_total", memory), Some(1), "{seen:#?}");
    assert_eq!(get("session_saved_total", memory), Some(1), "{seen:#?}");
    assert_eq!(get("session_renewed_total", memory), Some(1), "{seen:#?}");
    assert_eq!(get("session_purged_total", memory), Some(1), "{seen:#?}");
    assert_eq!(get("session_loaded_total", memory), Some(4), "{seen:#?}");
    assert_eq!(get("session_created_total", cookie), Some(1), "{seen:#?}");
    assert_eq!(
        get("session_refused_too_large_total", cookie),
        Some(1),
        "{seen:#?}"
    );
    assert_eq!(
        get(
            "session_store_errors_total",
            "backend=memory,operation=update,session=session"
        ),
        Some(1),
        "{seen:#?}"
    );
    assert!(
        get(
            "session_store_seconds",
            "backend=memory,operation=load,session=session"
        )
        .unwrap_or(0)
            >= 4,
        "{seen:#?}"
    );
    let jar = c.cookie_header();
    for name in seen.keys() {
        assert!(
            !name.contains("owner-secret-7"),
            "an owner in a label: {name}"
        );
        for value in jar
            .split("; ")
            .filter_map(|kv| kv.split_once('='))
            .map(|(_, v)| v)
        {
            assert!(
                value.is_empty() || !name.contains(value),
                "an id in a label: {name}"
            );
        }
    }
}

#[actix_web::test]
async fn a_change_set_that_merged_with_a_parallel_write_is_counted_as_a_conflict_avoided() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (store, _) = FailingStore::new();
    let c = client(middleware(store)).await;
    c.set("session", "a", json!(0)).await;
    // The slow request loads, another request writes, then the slow one writes its change set.
    let slow = c.post_json("/session/wait-then-set/late", json!(1));
    let control = async {
        c.gate.wait_loaded(1).await;
        c.set("session", "early", json!(1)).await;
        c.gate.release(1);
    };
    let (slow, ()) = tokio::join!(slow, control);
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(
        c.get("/session/entries").await.json(),
        json!({"a": 0, "early": 1, "late": 1}),
        "both writes survived"
    );
    // One more request that overlaps nothing.
    c.set("session", "alone", json!(1)).await;
    let seen = counters(&snapshotter);
    assert_eq!(
        seen.get("session_conflicts_avoided_total{backend=memory,session=session}")
            .copied(),
        Some(1),
        "{seen:#?}"
    );
}
