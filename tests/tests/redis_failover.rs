//! A primary killed (`SIGKILL`) under load and its replica promoted (`REPLICAOF NO ONE`): with
//! [`RedisStoreBuilder::wait_for_replicas`], every write answered 200 is on the promoted
//! replica; without it, the writes the replica had not received are lost.
//!
//! Each run starts a primary and one replica (throw-away `redis-server`s on free ports), points
//! the store at the primary and has clients write an increasing counter into their sessions
//! (`n` = 1, 2, 3, …, one request at a time per client), recording which values were answered
//! 200. Then the primary is killed with `kill -9` while the load runs, the replica is promoted,
//! and each client's session is read from it with the client's cookie: every value answered
//! 200 that is above the one found there is a lost write.
//!
//! On one machine, replication is usually done before the client has its answer, so a plain
//! kill loses few writes or none. To model a replica that lags when the primary dies (a slow
//! link, a partition), the "lagging" runs cut the replication link first: the replica is
//! pointed at a port that takes connections but never answers (`REPLICAOF 127.0.0.1 <port>`;
//! the replica keeps its data until a sync with the new primary succeeds, and none does), and
//! the load goes on for 0.6 s against the primary alone before the kill.
//!
//! [`RedisStoreBuilder::wait_for_replicas`]: actix_typed_session::RedisStoreBuilder::wait_for_replicas

use std::{
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_typed_session::{redis::cmd, RedisStore, RedisStoreBuilder, StatusCode};
use actix_typed_session_tests::{
    failover::{self, Write},
    redis::{self, TempRedis},
};

/// Clients writing at the same time, each with a session of its own.
const CLIENTS: usize = 8;
const PREFIX: &str = "failover:";
/// How long a write waits for the replica when the wait is on.
const WAIT: Duration = Duration::from_millis(100);

/// What one run saw.
#[derive(Debug)]
struct Run {
    /// Writes answered 200.
    acked: usize,
    /// Writes answered 200 that were sent after the link was cut (and before the kill).
    acked_while_cut: usize,
    /// Writes answered otherwise that were sent after the link was cut (and before the kill).
    refused_while_cut: usize,
    /// Writes answered 200 that the promoted replica does not have.
    lost: usize,
}

#[test]
fn with_the_wait_no_write_answered_ok_is_lost_when_the_primary_dies() {
    let mut acked = 0;
    for lagging in [false, true] {
        let run = failover(true, lagging);
        eprintln!("failover: wait=on  lagging={lagging:<5} {run:?}");
        assert!(run.acked >= 200, "too little load: {run:?}");
        acked += run.acked;
        assert_eq!(run.lost, 0, "writes answered 200 were lost: {run:?}");
        if lagging {
            // The wait is what kept them: with the replica gone, no write was confirmed. (Few
            // writes are refused: a `WAIT` blocks the runtime's one connection, so the writes
            // queue behind each other's 100 ms wait until the kill.)
            assert_eq!(run.acked_while_cut, 0, "{run:?}");
            assert!(run.refused_while_cut > 0, "no write while cut: {run:?}");
        }
    }
    assert!(acked >= 500, "only {acked} writes answered 200");
}

#[test]
fn without_the_wait_writes_answered_ok_are_lost_when_the_replica_lags() {
    // A plain kill: only reported (whether a write is caught in flight is luck).
    let run = failover(false, false);
    eprintln!("failover: wait=off lagging=false {run:?}");
    assert!(run.acked >= 200, "too little load: {run:?}");
    // A lagging replica: every write confirmed after the cut is gone (and those sent while the
    // link was being cut may be too).
    let run = failover(false, true);
    eprintln!("failover: wait=off lagging=true  {run:?}");
    assert!(run.acked_while_cut > 0, "no write while cut: {run:?}");
    assert!(run.lost >= run.acked_while_cut, "{run:?}");
}

fn failover(wait: bool, lagging: bool) -> Run {
    let primary = TempRedis::start();
    let replica = TempRedis::start_replica_of(&primary);
    let builder = |url: &str| -> RedisStoreBuilder {
        RedisStore::builder(redis::client(url))
            .prefix(PREFIX)
            .timeout(Duration::from_secs(1))
    };
    let mut on_primary = builder(&primary.url());
    if wait {
        on_primary = on_primary.wait_for_replicas(1, WAIT);
    }
    let store = on_primary.build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(10);
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let clients =
                    (0..CLIENTS).map(|_| failover::writes(store.clone(), &stop, deadline));
                futures_util::future::join_all(clients).await
            })
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    let cut = Instant::now();
    // A port that takes connections but never answers: the replica hangs in its handshake with
    // it (and keeps its data), and no other server can take the port meanwhile.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    if lagging {
        let port = silent.local_addr().unwrap().port();
        replica.command::<()>(cmd("REPLICAOF").arg("127.0.0.1").arg(port));
        while !primary.info("replication").contains("connected_slaves:0") {
            assert!(Instant::now() < deadline, "the replica stayed connected");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // Writes sent from here on cannot reach the replica (when lagging).
    let cut_done = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let killed = Instant::now();
    primary.stop();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let clients = load.join().expect("the load panicked");
    replica.command::<()>(cmd("REPLICAOF").arg("NO").arg("ONE"));
    drop(silent);

    // Each client's value on the promoted replica, read through the store with its cookie.
    let found = actix_rt::System::new().block_on(failover::values(
        builder(&replica.url()).build().unwrap(),
        &clients,
    ));

    let ok = |w: &&Write| w.3 == StatusCode::OK;
    let while_cut = |w: &&Write| lagging && w.0 >= cut_done && w.0 < killed;
    let all = || clients.iter().flat_map(|(_, writes)| writes);
    // Before the cut, the wait (if on) succeeds.
    assert!(all().filter(|w| w.1 < cut).all(|w| ok(&w)));
    Run {
        acked: all().filter(ok).count(),
        acked_while_cut: all().filter(while_cut).filter(ok).count(),
        refused_while_cut: all().filter(while_cut).filter(|w| !ok(w)).count(),
        lost: failover::lost(&clients, &found),
    }
}
