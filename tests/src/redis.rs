//! Redis for tests: a unique key prefix per test on the server named by `REDIS_URL`, and
//! throw-away `redis-server` processes for fault tests that stop, restart, fill or flush Redis.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
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

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ats-test:{nanos}:{}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

impl TestPrefix {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: unique_prefix(),
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

/// The same store over RESP3 (`?protocol=resp3`), whose replies have other shapes: maps for
/// `HGETALL`, sets for `SMEMBERS`.
pub async fn store_resp3() -> (RedisStore, TestPrefix) {
    store_on(&resp3(&redis_url()))
}

/// `url` asking for RESP3.
pub fn resp3(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}protocol=resp3")
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
    on_path("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server not found: install Debian's `redis-server` package or set \
             REDIS_SERVER to its path"
        )
    })
}

/// A free loopback port, never one this process handed out before (the system may hand a port
/// it just freed out again, to two servers a test starts one after the other).
pub(crate) fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Where `openssl` is (the TLS tests make their certificates with it).
pub fn openssl() -> PathBuf {
    on_path("openssl")
        .unwrap_or_else(|| panic!("openssl not found: install Debian's `openssl` package"))
}

pub(crate) fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// Runs `openssl` with `args` in `dir`, and panics with its output if it fails.
fn run_openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(openssl())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes a throw-away CA (`ca.crt`) and a server certificate signed by it (`server.crt`,
/// `server.key`) for `127.0.0.1` and `localhost`, in `dir`.
fn make_certificates(dir: &Path) {
    run_openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=ats-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    run_openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run_openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

/// A throw-away `redis-server` on a free loopback port, without persistence; killed on drop.
pub struct TempRedis {
    port: u16,
    dir: PathBuf,
    /// Only TLS connections (with the certificates in `dir`), on `port`.
    tls: bool,
    /// More `redis-server` arguments (a replica's `--replicaof`).
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl TempRedis {
    /// Starts a server and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server that takes only TLS connections, with a certificate for `127.0.0.1`
    /// signed by a throw-away CA ([`ca_pem`](Self::ca_pem)), and waits until it answers.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// Starts a replica of `primary` (a plain TCP server), and waits until it acknowledges the
    /// primary's writes (`WAIT 1` answers 1 on the primary).
    pub fn start_replica_of(primary: &TempRedis) -> Self {
        let args = vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ];
        let replica = Self::start_with_args(false, args);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // `WAIT` counts the replicas that have this connection's last write.
            let mut conn = primary.client().get_connection().expect("the primary");
            let (_, acked): ((), i64) = redis::pipe()
                .cmd("SET")
                .arg("ats-replica-check")
                .arg(1)
                .cmd("WAIT")
                .arg(1)
                .arg(100)
                .query(&mut conn)
                .expect("SET and WAIT on the primary");
            if acked == 1 {
                return replica;
            }
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A section of `INFO`.
    pub fn info(&self, section: &str) -> String {
        self.command(redis::cmd("INFO").arg(section))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    fn start_with(tls: bool) -> Self {
        Self::start_with_args(tls, Vec::new())
    }

    /// Starts a server with more `redis-server` arguments (a cluster node's, say).
    pub fn start_with_args(tls: bool, args: Vec<String>) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ats-redis-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let redis = Self {
            port: free_port(),
            dir,
            tls,
            args,
            child: Mutex::new(None),
        };
        if tls {
            make_certificates(&redis.dir);
        }
        redis.resume();
        redis
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The PEM of the CA that signed a TLS server's certificate.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("a TLS server's CA certificate")
    }

    /// A client for this server (trusting its CA, for a TLS server).
    pub fn client(&self) -> redis::Client {
        if !self.tls {
            return client(&self.url());
        }
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(self.ca_pem()),
        };
        redis::Client::build_with_tls(self.url(), certificates).expect("a TLS client")
    }

    /// Starts the stopped server again on the same port (empty: nothing is persisted).
    pub fn resume(&self) {
        let port = self.port.to_string();
        let mut command = Command::new(redis_server());
        if self.tls {
            command
                .args(["--port", "0", "--tls-port", &port])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                ])
                .args(["--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            // A replica's first sync starts at once (Redis waits 5 s by default).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(&self.args)
            .arg("--dir")
            .arg(&self.dir)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting redis-server: {e}"));
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.try_command::<String>(&redis::cmd("PING")).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let mut conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))?;
        cmd.query(&mut conn)
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
        self.try_command(cmd)
            .unwrap_or_else(|e| panic!("command on the test Redis: {e}"))
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

/// A renew with a grace window whose change set also clears the session (a login that drops
/// the anonymous cart, say) still links the new hash to the retired copy: deleting the session
/// then ends the old id too.
pub async fn a_cleared_renew_still_ends_its_grace_copy_on_delete(store: &RedisStore) {
    use actix_typed_session::{ChangeSet, Record, SessionStore, StorageKey, WriteResult};

    let now = SystemTime::now();
    let (old, new) = (
        StorageKey::from_bytes([31; 32]),
        StorageKey::from_bytes([32; 32]),
    );
    let mut data = serde_json::Map::new();
    data.insert("cart".into(), serde_json::json!([1, 2]));
    let record = Record::new(data, now, now + Duration::from_secs(60));
    assert_eq!(
        store.create(&old, &record).await.unwrap(),
        WriteResult::Done
    );
    let mut changes = ChangeSet::default();
    changes.clear();
    changes.set("user", serde_json::json!("ann"));
    let renewed = store
        .renew(
            &old,
            &new,
            &changes,
            now + Duration::from_secs(60),
            now,
            Some(now + Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(renewed, WriteResult::Done);
    let moved = store.load(&new, now).await.unwrap().expect("renewed");
    assert_eq!(moved.data.get("cart"), None);
    assert!(
        store
            .load(&old, now)
            .await
            .unwrap()
            .expect("grace copy")
            .retired
    );
    store.delete(&new).await.unwrap();
    assert_eq!(
        store.load(&old, now).await.unwrap(),
        None,
        "the grace copy outlived the logout"
    );
}
