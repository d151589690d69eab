//! Redis Cluster for tests: a key prefix of its own per test on the cluster named by
//! `REDIS_CLUSTER_URLS` (which `bash tests/run.sh` starts), and throw-away clusters with
//! replicas for the failover test.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use actix_typed_session::{redis, redis::cluster::ClusterClient, RedisStore, RedisStoreBuilder};

use crate::redis::{free_port, resp3, unique_prefix, TempRedis};

/// The node URLs of the cluster the tests share, from `REDIS_CLUSTER_URLS`.
pub fn cluster_urls() -> Vec<String> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!(
            "REDIS_CLUSTER_URLS is not set. Run `bash tests/run.sh`, which starts a throw-away \
             Redis Cluster, or set it to the comma-separated node URLs of a cluster the tests \
             may write to."
        )
    });
    urls.split(',').map(str::to_owned).collect()
}

/// A cluster client for `urls`.
pub fn cluster_client(urls: &[String]) -> ClusterClient {
    ClusterClient::builder(urls.to_vec())
        .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true))
        .build()
        .expect("valid node URLs")
}

/// The primaries of the cluster at `urls`, as URLs (from `CLUSTER NODES` on the first node).
pub fn primaries(urls: &[String]) -> Vec<String> {
    let nodes: String =
        crate::redis::command(&urls[0], redis::cmd("CLUSTER").arg("NODES")).expect("CLUSTER NODES");
    nodes
        .lines()
        .filter(|line| line.split(' ').nth(2).is_some_and(|f| f.contains("master")))
        .filter_map(|line| {
            let addr = line.split(' ').nth(1)?.split('@').next()?;
            Some(format!("redis://{addr}/"))
        })
        .collect()
}

/// The keys under a prefix on every primary of the cluster at `urls`.
pub fn cluster_keys(urls: &[String], prefix: &str) -> Vec<(String, String)> {
    primaries(urls)
        .into_iter()
        .flat_map(|node| {
            crate::redis::keys(&node, prefix)
                .into_iter()
                .map(move |key| (node.clone(), key))
        })
        .collect()
}

/// A prefix of its own for one test on a cluster; its keys are deleted when this is dropped.
pub struct ClusterPrefix {
    pub urls: Vec<String>,
    pub prefix: String,
}

impl Drop for ClusterPrefix {
    fn drop(&mut self) {
        let deleted = std::panic::catch_unwind(|| {
            for (node, key) in cluster_keys(&self.urls, &self.prefix) {
                crate::redis::command::<()>(&node, redis::cmd("DEL").arg(key))?;
            }
            Ok::<_, redis::RedisError>(())
        });
        if !matches!(deleted, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("could not delete the test keys under {}", self.prefix);
        }
    }
}

/// A store under a prefix of its own on the shared cluster.
pub async fn store() -> (RedisStore, ClusterPrefix) {
    let urls = cluster_urls();
    let (store, prefix) = store_on(&urls, |builder| builder);
    (store, ClusterPrefix { urls, prefix })
}

/// The same over RESP3 (`?protocol=resp3` on every node's URL).
pub async fn store_resp3() -> (RedisStore, ClusterPrefix) {
    let urls: Vec<String> = cluster_urls().iter().map(|url| resp3(url)).collect();
    let (store, prefix) = store_on(&urls, |builder| builder);
    (store, ClusterPrefix { urls, prefix })
}

/// A store under a new prefix (returned) on the cluster at `urls`, with more settings from
/// `configure`. Nothing deletes its keys: for a throw-away cluster.
pub fn store_on(
    urls: &[String],
    configure: impl FnOnce(RedisStoreBuilder) -> RedisStoreBuilder,
) -> (RedisStore, String) {
    let prefix = unique_prefix();
    let store = configure(RedisStore::cluster_builder(cluster_client(urls)).prefix(&prefix))
        .build()
        .expect("valid settings");
    (store, prefix)
}

/// A throw-away Redis Cluster on free loopback ports: `masters` primaries, each with `replicas`
/// replicas; every node is killed when this is dropped.
pub struct TempCluster {
    pub nodes: Vec<TempRedis>,
}

impl TempCluster {
    /// Starts the nodes, joins them (`redis-cli --cluster create`) and waits until every node
    /// reports `cluster_state:ok` and every primary's writes reach its replica.
    pub fn start(masters: usize, replicas: usize) -> Self {
        let nodes: Vec<TempRedis> = (0..masters * (1 + replicas))
            .map(|_| {
                let args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    // Long enough that a loaded test machine sees no failover it did not ask for.
                    "--cluster-node-timeout",
                    "5000",
                    "--cluster-port",
                    &free_port().to_string(),
                ];
                TempRedis::start_with_args(false, args.map(str::to_owned).to_vec())
            })
            .collect();
        let out = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("running redis-cli: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &cluster.nodes {
            loop {
                let info: String = node.command(redis::cmd("CLUSTER").arg("INFO"));
                let replication = node.info("replication");
                let synced = !replication.contains("role:slave")
                    || replication.contains("master_link_status:up");
                if info.contains("cluster_state:ok") && synced {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if replicas > 0 {
            for node in cluster.nodes.iter().filter(|n| Self::is_primary(n)) {
                replicated(node, deadline);
            }
        }
        cluster
    }

    /// The URLs of all nodes.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(TempRedis::url).collect()
    }

    /// Whether a node is a primary now.
    pub fn is_primary(node: &TempRedis) -> bool {
        node.info("replication").contains("role:master")
    }
}

/// Waits until a write on `primary` reaches a replica (`WAIT 1` answers 1): a replica that
/// reports its link up may not take the stream yet.
fn replicated(primary: &TempRedis, deadline: Instant) {
    let mut conn = primary.client().get_connection().expect("a primary");
    // A key of one of the primary's slots: the others answer MOVED.
    let mut n = 0;
    loop {
        let replied: redis::RedisResult<((), i64)> = redis::pipe()
            .cmd("SET")
            .arg(format!("ats-ready-{n}"))
            .arg(1)
            .cmd("WAIT")
            .arg(1)
            .arg(100)
            .query(&mut conn);
        match replied {
            Ok((_, 1)) => return,
            Err(err) if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => {
                n += 1
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(err) => panic!("checking replication: {err}"),
        }
        assert!(Instant::now() < deadline, "a replica did not take writes");
    }
}

/// Where `redis-cli` is (it joins the test clusters).
fn redis_cli() -> std::path::PathBuf {
    crate::redis::on_path("redis-cli").unwrap_or_else(|| {
        panic!("redis-cli not found: install Debian's `redis-tools` package (it joins the cluster)")
    })
}
