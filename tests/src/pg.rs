//! PostgreSQL for tests: a unique schema on the server named by `DATABASE_URL`, and throw-away
//! clusters (initdb on a free port) for fault tests that stop and restart the server.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix_typed_session::{
    deadpool_postgres::{Config, Pool, PoolConfig, Runtime},
    PostgresStore,
};
use tokio_postgres::NoTls;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The server the tests share, from `DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set. Run `bash tests/run.sh`, which starts a throw-away \
             PostgreSQL, or set DATABASE_URL to a server where the user may create schemas."
        )
    })
}

/// A pool on `url` with at most `size` connections.
pub fn pool(url: &str, size: usize) -> Pool {
    let mut config = Config::new();
    config.url = Some(url.to_owned());
    config.pool = Some(PoolConfig::new(size));
    config
        .create_pool(Some(Runtime::Tokio1), NoTls)
        .expect("valid pool configuration")
}

/// A schema of its own for one test; dropped when this value is dropped.
pub struct TestSchema {
    pub url: String,
    pub name: String,
}

impl TestSchema {
    pub fn new(url: &str) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!(
            "ats_test_{secs}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        Self {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop runs outside async code: use a small runtime of its own on a fresh thread.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}

/// A migrated store in a schema of its own on the shared server.
pub async fn store() -> (PostgresStore, TestSchema) {
    store_on(&database_url(), 4).await
}

/// [`store`], with its single-row statements on 2 shared connections
/// ([`PostgresStoreBuilder::shared_connections`](actix_typed_session::PostgresStoreBuilder::shared_connections)).
pub async fn shared_store() -> (PostgresStore, TestSchema) {
    let (_, schema) = store().await;
    let store = PostgresStore::builder(pool(&schema.url, 4))
        .schema(schema.name.clone())
        .shared_connections(2)
        .build()
        .expect("valid names");
    (store, schema)
}

/// A migrated store in a new schema on the server at `url`, with a pooled connection per
/// operation (no shared connections; see [`shared_store`]).
pub async fn store_on(url: &str, pool_size: usize) -> (PostgresStore, TestSchema) {
    let schema = TestSchema::new(url);
    let store = PostgresStore::builder(pool(url, pool_size))
        .schema(schema.name.clone())
        .shared_connections(0)
        .build()
        .expect("valid names");
    store.migrate().await.expect("migration");
    (store, schema)
}

/// A throw-away PostgreSQL cluster: its own data directory and port, stopped and deleted on drop.
pub struct TempCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

/// Where the PostgreSQL server programs are: `PG_BIN`, or the newest Debian install.
pub fn pg_bin() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return dir.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server programs (initdb, pg_ctl) not found: install Debian's \
             `postgresql` package or set PG_BIN to their directory"
        )
    })
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a server program, as the `postgres` user when we are root (PostgreSQL refuses root).
fn run(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let path = bin.join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", path.display()))
}

/// A free loopback port (see [`crate::redis`]'s, which never hands one out twice).
pub(crate) fn free_port() -> u16 {
    crate::redis::free_port()
}

impl TempCluster {
    /// Creates and starts a cluster (a few seconds).
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!(
            "ats-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster directory failed");
        }
        let data = dir.join("data");
        let out = run(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self {
            dir,
            port: free_port(),
            bin,
        };
        cluster.resume();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped server again on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let out = run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A clean restart on the same port and data (`pg_ctl stop -m fast`, then start): the server
    /// ends every connection with "terminating connection due to administrator command".
    pub fn restart(&self) {
        let data = self.dir.join("data");
        let out = run(
            &self.bin,
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.resume();
    }

    /// The process id of the cluster's postmaster (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> u32 {
        let file = std::fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .expect("a running cluster has a postmaster.pid");
        file.lines().next().unwrap().trim().parse().unwrap()
    }

    /// Stops the server at once (connections are cut).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let _ = run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `signal` (`STOP`, `CONT`, ...) to the process `pid` (a server process of a
/// [`TempCluster`]: never one of the shared server).
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -s {signal} {pid} failed");
}

/// Waits up to `limit` for `check` to succeed, polling every 100 ms; returns how long it took.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
