//! Failover on a Redis Cluster under load: 3 masters with one replica each (throw-away
//! `redis-server --cluster-enabled yes` processes on free ports), clients incrementing a counter
//! in sessions of their own spread over the shards, and the increments answered 200 that the
//! cluster lost counted (the counter going back, or ending below the last value answered), with
//! and without [`RedisStoreBuilder::wait_for_replicas`].
//!
//! - **Manual failover** (`CLUSTER FAILOVER` on a replica): the replica takes over once it has
//!   everything its primary had, so no write is lost either way.
//! - **A lagging replica, then its primary killed** (`kill -9`, then `CLUSTER FAILOVER
//!   TAKEOVER` on the replica): the replication link is cut 0.6 s before the kill, under load,
//!   so what the primary confirmed meanwhile never reaches the replica. (The primary turns its
//!   `default` user off, which the replica connects as, and drops the replica's connection:
//!   the connections already open, the store's among them, go on; the replica cannot come
//!   back. Stopping the replica instead would not do: what the primary sent is kept in the
//!   replica's socket buffer, and read once it runs again.) The shard that fails is the one
//!   holding the most of the clients' sessions.
//!
//! [`RedisStoreBuilder::wait_for_replicas`]: actix_typed_session::RedisStoreBuilder::wait_for_replicas

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use actix_typed_session::{redis::cmd, RedisStore, StatusCode};
use actix_typed_session_tests::{
    failover::{self, Writes},
    init_logs,
    redis::keys,
    redis::TempRedis,
    redis_cluster::{self, TempCluster},
};

/// Clients writing at the same time, each with a session of its own (about 8 per shard).
const CLIENTS: usize = 24;
/// How long a write waits for its replica when the wait is on.
const WAIT: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Run {
    /// Writes answered 200.
    acked: usize,
    /// Writes answered otherwise (the wait failed, or the shard was down; reported).
    #[allow(dead_code)]
    refused: usize,
    /// Increments answered 200 that the cluster lost.
    lost: usize,
}

#[test]
fn a_manual_failover_loses_no_write_with_or_without_the_wait() {
    init_logs();
    for wait in [false, true] {
        let run = failover(wait, false);
        eprintln!("cluster failover: manual, wait={wait} {run:?}");
        assert!(run.acked >= 100, "too little load: {run:?}");
        assert_eq!(run.lost, 0, "{run:?}");
    }
}

#[test]
fn with_the_wait_no_write_answered_ok_is_lost_when_a_lagging_replica_takes_over() {
    init_logs();
    let run = failover(true, true);
    eprintln!("cluster failover: primary killed, lagging replica, wait=on  {run:?}");
    assert!(run.acked >= 100, "too little load: {run:?}");
    assert_eq!(run.lost, 0, "writes answered 200 were lost: {run:?}");
    let run = failover(false, true);
    eprintln!("cluster failover: primary killed, lagging replica, wait=off {run:?}");
    assert!(run.lost > 0, "no write lost without the wait: {run:?}");
}

/// One run on a new cluster: `wait` turns the wait for one replica on; `kill` makes the failing
/// shard's replica lag, kills its primary and has the replica take over, instead of a manual
/// failover.
fn failover(wait: bool, kill: bool) -> Run {
    let cluster = TempCluster::start(3, 1);
    let urls = cluster.urls();
    let configure = |builder: actix_typed_session::RedisStoreBuilder| {
        let builder = builder.timeout(Duration::from_secs(1));
        if wait {
            builder.wait_for_replicas(1, WAIT)
        } else {
            builder
        }
    };
    let (store, prefix) = redis_cluster::store_on(&urls, configure);
    let prefix = prefix.as_str();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(90);
    let load = {
        let (stop, store) = (stop.clone(), store.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let clients =
                    (0..CLIENTS).map(|_| failover::increments(store.clone(), &stop, deadline));
                futures_util::future::join_all(clients).await
            })
        })
    };
    // Every client has its session (a loaded machine may take a while to start them), and the
    // load has run for a moment.
    let started = Instant::now() + Duration::from_secs(30);
    // Each primary's sessions, as the primaries themselves say (a node's view of the others
    // may lag).
    let per_primary = || -> Vec<(&TempRedis, usize)> {
        let primaries = cluster.nodes.iter().filter(|n| TempCluster::is_primary(n));
        primaries
            .map(|n| (n, keys(&n.url(), prefix).len()))
            .collect()
    };
    let placed = loop {
        let placed = per_primary();
        let sessions: usize = placed.iter().map(|(_, n)| n).sum();
        if sessions >= CLIENTS {
            break placed;
        }
        assert!(Instant::now() < started, "only {sessions} sessions");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));

    // The primary holding the most sessions, and its replica.
    let (primary, _) = *placed.iter().max_by_key(|(_, n)| *n).expect("primaries");
    let replica = replica_of(&cluster, primary);
    // With a kill, the load stops with the primary (what follows is the replica's takeover);
    // a manual failover runs under load, which goes on for a moment on the new primary.
    if kill {
        cut_replication(primary, replica);
        std::thread::sleep(Duration::from_millis(600));
        primary.stop();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        replica.command::<()>(cmd("CLUSTER").arg("FAILOVER").arg("TAKEOVER"));
    } else {
        replica.command::<()>(cmd("CLUSTER").arg("FAILOVER"));
    }
    // A manual failover that times out (the primary must pause its clients and the replica
    // catch up within 5 s) is aborted by Redis: it is asked again, as an operator would.
    let (mut asked, promoted) = (Instant::now(), Instant::now() + Duration::from_secs(40));
    while !TempCluster::is_primary(replica) {
        assert!(Instant::now() < promoted, "the replica was not promoted");
        if !kill && asked.elapsed() > Duration::from_secs(8) {
            eprintln!("cluster failover: manual failover not done in 8 s; asking again");
            replica.command::<()>(cmd("CLUSTER").arg("FAILOVER"));
            asked = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let clients: Vec<Writes> = load.join().expect("the load panicked");

    // Each client's value, read through a new store from the live nodes.
    let live: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.pid().is_some())
        .map(TempRedis::url)
        .collect();
    let reader = RedisStore::cluster_builder(redis_cluster::cluster_client(&live))
        .prefix(prefix)
        .build()
        .unwrap();
    let found = actix_rt::System::new().block_on(failover::values(reader, &clients));
    let acked = clients
        .iter()
        .flat_map(|(_, writes)| writes)
        .filter(|w| w.3 == StatusCode::OK)
        .count();
    let refused = clients
        .iter()
        .map(|(_, writes)| writes.len())
        .sum::<usize>()
        - acked;
    Run {
        acked,
        refused,
        lost: failover::lost_increments(&clients, &found),
    }
}

/// Cuts the replication link of `primary` for good (see the module's documentation), and waits
/// until `replica` sees it down.
fn cut_replication(primary: &TempRedis, replica: &TempRedis) {
    let mut conn = primary.client().get_connection().expect("the primary");
    let _: () = actix_typed_session::redis::pipe()
        .cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("off")
        .cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut conn)
        .expect("cutting the replication link");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replica
        .info("replication")
        .contains("master_link_status:down")
    {
        assert!(Instant::now() < deadline, "the replica stayed linked");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The replica of `primary`: the one its `INFO replication` lists as connected (`slave0:...`).
fn replica_of<'a>(cluster: &'a TempCluster, primary: &TempRedis) -> &'a TempRedis {
    let info = primary.info("replication");
    let port = info
        .lines()
        .find(|line| line.starts_with("slave0:"))
        .and_then(|line| line.split(',').find_map(|f| f.strip_prefix("port=")))
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no replica of {}: {info}", primary.port()));
    cluster
        .nodes
        .iter()
        .find(|n| n.port() == port)
        .expect("the replica is a node of the cluster")
}
