//! What the failover tests share (`redis_failover.rs` on a primary and its replica,
//! `redis_cluster_failover.rs` on a cluster): clients that each write an increasing counter
//! into a session of their own, and the count of confirmed writes a promoted replica lacks.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use actix_typed_session::{Key, RedisStore, SessionMiddleware, StatusCode};
use actix_web::{http::header, test::TestRequest};
use serde_json::json;

use crate::client;

/// One write: when it was sent, when it was answered, the value written, and the status.
pub type Write = (Instant, Instant, u64, StatusCode);

/// One client's cookies and writes.
pub type Writes = (String, Vec<Write>);

/// The middleware the writers and the reader share (one key, so one reads what the other wrote).
pub fn middleware(store: RedisStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[21u8; 64][..]))
        .backend("redis", store)
        .build()
        .unwrap()
}

/// One client's loop: `n` = 1, 2, 3, … into its session until `stop` (or the deadline).
/// Returns its cookies and its writes.
pub async fn writes(store: RedisStore, stop: &AtomicBool, deadline: Instant) -> Writes {
    let c = client(middleware(store)).await;
    let mut writes = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        n += 1;
        let sent = Instant::now();
        let reply = c.post_json("/session/set/n", json!(n)).await;
        writes.push((sent, Instant::now(), n, reply.status));
        if reply.status != StatusCode::OK {
            // The primary is gone: no need to spin.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (c.cookie_header(), writes)
}

/// Each client's value as `store` has it now, read with the client's cookies (0: none).
pub async fn values(store: RedisStore, clients: &[Writes]) -> Vec<u64> {
    let c = client(middleware(store)).await;
    let mut found = Vec::new();
    for (cookies, _) in clients {
        let read = TestRequest::get()
            .uri("/session/get/n")
            .insert_header((header::COOKIE, cookies.as_str()));
        let reply = c.send_raw(read).await;
        found.push(match reply.status {
            StatusCode::OK => reply.json().as_u64().expect("a number"),
            StatusCode::NOT_FOUND => 0,
            other => panic!("reading after the failover: {other}"),
        });
    }
    found
}

/// Writes answered 200 whose value is above the one found afterwards: lost.
pub fn lost(clients: &[Writes], found: &[u64]) -> usize {
    clients
        .iter()
        .zip(found)
        .map(|((_, writes), &found)| {
            writes
                .iter()
                .filter(|w| w.3 == StatusCode::OK && w.2 > found)
                .count()
        })
        .sum()
}

/// One client's loop of increments (`/session/count/n`, each answered with the counter's new
/// value) until `stop` (or the deadline): unlike [`writes`], a write lost and followed by more
/// shows, as the counter going back. Returns its cookies and its writes (the value each was
/// answered with; 0 when it was not answered 200).
pub async fn increments(store: RedisStore, stop: &AtomicBool, deadline: Instant) -> Writes {
    let c = client(middleware(store)).await;
    let mut writes = Vec::new();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let sent = Instant::now();
        let reply = c.post("/session/count/n").await;
        let value = match reply.status {
            StatusCode::OK => reply.json().as_u64().expect("a number"),
            _ => 0,
        };
        writes.push((sent, Instant::now(), value, reply.status));
        if reply.status != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (c.cookie_header(), writes)
}

/// Increments answered 200 that the counter later lacked: each time the answered value goes
/// back (a later increment started from an older counter), and at the end, what the counter
/// (`found`) is below the last value answered. Increments that were not answered 200 but
/// landed only make the counter larger: they hide nothing.
pub fn lost_increments(clients: &[Writes], found: &[u64]) -> usize {
    clients
        .iter()
        .zip(found)
        .map(|((_, writes), &found)| {
            let mut lost = 0;
            let mut last = 0;
            for &(_, _, value, status) in writes {
                if status != StatusCode::OK {
                    continue;
                }
                if value <= last {
                    lost += last - value + 1;
                }
                last = value;
            }
            lost + last.saturating_sub(found)
        })
        .map(|lost| usize::try_from(lost).unwrap_or(usize::MAX))
        .sum()
}
