//! Redis killed (`SIGKILL`) and restarted under load: requests may fail while it is down, but
//! every request made once it answers again succeeds, on every worker.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_typed_session::{Key, RedisStore, SessionMiddleware, StatusCode};
use actix_typed_session_tests::{
    client,
    redis::{self, TempRedis},
};
use serde_json::json;

/// Worker threads, each with a runtime (and so a connection) of its own, like actix-web's.
const WORKERS: usize = 3;
/// Clients looping on each worker.
const CLIENTS: usize = 2;

/// One request: when it was sent, and its status.
type Outcome = (Instant, StatusCode);

#[test]
fn after_a_kill_and_restart_every_request_succeeds_once_redis_answers() {
    let server = TempRedis::start();
    let (store, _prefix) = redis::store_on(&server.url());
    let store = RedisStore::builder(redis::client(&server.url()))
        .prefix(store.prefix().to_owned())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Every loop ends within this, whatever happens.
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let loops = (0..CLIENTS).map(|_| load(store.clone(), &stop, deadline));
                    futures_util::future::join_all(loops).await.concat()
                })
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(700));
    let killed = Instant::now();
    server.stop();
    std::thread::sleep(Duration::from_millis(500));
    // `resume` returns once the new server answers `PING`.
    server.resume();
    let answered = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<Outcome> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("a load worker panicked"))
        .collect();

    // A request sent just before the kill may be cut by it: "before" leaves a margin.
    let settled = killed - Duration::from_millis(200);
    let before: Vec<_> = outcomes.iter().filter(|(at, _)| *at < settled).collect();
    let during: Vec<_> = outcomes
        .iter()
        .filter(|(at, _)| (killed..answered).contains(at))
        .collect();
    let after: Vec<_> = outcomes.iter().filter(|(at, _)| *at >= answered).collect();
    let failed = |set: &[&Outcome]| set.iter().filter(|(_, s)| *s != StatusCode::OK).count();
    assert!(
        before.len() >= 20,
        "only {} requests before the kill",
        before.len()
    );
    assert_eq!(failed(&before), 0, "requests failed before the kill");
    // The outage was seen (the test would prove nothing otherwise).
    assert!(
        failed(&during) > 0,
        "no request failed while Redis was down"
    );
    assert!(
        after.len() >= 20,
        "only {} requests after the restart",
        after.len()
    );
    let late: Vec<_> = after
        .iter()
        .filter(|(_, s)| *s != StatusCode::OK)
        .map(|(at, s)| (at.duration_since(answered), *s))
        .collect();
    assert!(
        late.is_empty(),
        "requests failed after Redis answered again: {late:?}"
    );
}

/// One client's loop: write a counter into its session, read it back, until `stop` (or the
/// deadline). A read after a failed write may find the session gone (Redis restarted empty);
/// a read after a successful write must find the value.
async fn load(store: RedisStore, stop: &AtomicBool, deadline: Instant) -> Vec<Outcome> {
    let mw = SessionMiddleware::builder(Key::from(&[12u8; 64][..]))
        .backend("redis", store)
        .build()
        .unwrap();
    let c = client(mw).await;
    let mut outcomes = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        n += 1;
        let sent = Instant::now();
        let write = c.post_json("/session/set/n", json!(n)).await;
        outcomes.push((sent, write.status));
        if write.status != StatusCode::OK {
            // Opaque: no detail reaches the client.
            assert_eq!(write.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert!(
                write.body.is_empty(),
                "a failure with a body: {}",
                write.body
            );
            continue;
        }
        let sent = Instant::now();
        let read = c.get("/session/get/n").await;
        // Redis may have been killed between the write and the read (an empty session then).
        let status = match read.status {
            StatusCode::OK if read.json() != json!(n) => StatusCode::CONFLICT,
            StatusCode::NOT_FOUND => StatusCode::CONFLICT,
            status => status,
        };
        outcomes.push((sent, status));
    }
    outcomes
}
