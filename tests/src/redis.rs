//! Redis for tests: a unique key prefix per test on the server named by `REDIS_URL`, and
//! throw-away `redis-server` processes for fault tests that stop, restart, fill or flush Redis.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_typed_session::{redis, RedisStore};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The server the tests share, from `REDIS_URL`.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "REDIS_URL is not set. Run `bash tests/run.sh`, which starts a throw-away \
             redis-server, or set REDIS_URL to a Redis the tests may write to."
        )
    })
}

/// A client for `url`.
pub fn client(url: &str) -> redis::Client {
    redis::Client::open(url).expect("a valid Redis URL")
}

/// Runs one command on a fresh blocking connection (for set-up and checks in tests).
pub fn command<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let mut conn = client(url).get_connection_with_timeout(Duration::from_secs(5))?;
    cmd.query(&mut conn)
}

/// The keys under `prefix`.
pub fn keys(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = client(url)
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connection to the test Redis");
    let mut found = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .expect("SCAN");
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

/// A key prefix of its own for one test; its keys are deleted when this value is dropped.
pub struct TestPrefix {
    pub url: String,
    pub prefix: String,
}

impl TestPrefix {
    pub fn new(url: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self {
            url: url.to_owned(),
            prefix: format!(
                "ats-test:{nanos}:{}:{}:",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let deleted = std::panic::catch_unwind(|| {
            let keys = keys(&self.url, &self.prefix);
            for chunk in keys.chunks(500) {
                command::<()>(&self.url, redis::cmd("DEL").arg(chunk))?;
            }
            Ok::<_, redis::RedisError>(())
        });
        if !matches!(deleted, Ok(Ok(()))) && !std::thread::panicking() {
            eprintln!("could not delete the test keys under {}", self.prefix);
        }
    }
}

/// A store under a prefix of its own on the shared server.
pub async fn store() -> (RedisStore, TestPrefix) {
    store_on(&redis_url())
}

/// A store under a new prefix on the server at `url`.
pub fn store_on(url: &str) -> (RedisStore, TestPrefix) {
    let prefix = TestPrefix::new(url);
    let store = RedisStore::builder(client(url))
        .prefix(prefix.prefix.clone())
        .build()
        .expect("a valid prefix");
    (store, prefix)
}

/// Where `redis-server` is: `REDIS_SERVER`, or the one on the `PATH`.
pub fn redis_server() -> PathBuf {
    if let Ok(path) = std::env::var("REDIS_SERVER") {
        return path.into();
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "redis-server not found: install Debian's `redis-server` package or set \
             REDIS_SERVER to its path"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throw-away `redis-server` on a free loopback port, without persistence; killed on drop.
pub struct TempRedis {
    port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl TempRedis {
    /// Starts a server and waits until it answers.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ats-redis-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let redis = Self {
            port: free_port(),
            dir,
            child: Mutex::new(None),
        };
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the stopped server again on the same port (empty: nothing is persisted).
    pub fn resume(&self) {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting redis-server: {e}"));
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if command::<String>(&self.url(), &redis::cmd("PING")).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server at once (connections are cut, data is lost).
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs one command on this server.
    pub fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        command(&self.url(), cmd).unwrap_or_else(|e| panic!("command on the test Redis: {e}"))
    }

    /// Makes the server refuse every write that needs memory (`OOM command not allowed`).
    pub fn refuse_writes(&self) {
        self.command::<()>(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("maxmemory-policy")
                .arg("noeviction"),
        );
        self.command::<()>(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("1"));
    }

    /// Lifts the memory limit again.
    pub fn accept_writes(&self) {
        self.command::<()>(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("0"));
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
