//! PgBouncer for tests: a throw-away `pgbouncer` in transaction pooling mode on a free loopback
//! port, in front of the server named by `DATABASE_URL`, stopped by its process id on drop.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::Command,
    str::FromStr,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use actix_typed_session::{PostgresStatements, PostgresStore};

use crate::pg::{self, TestSchema};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A running `pgbouncer` (`pool_mode = transaction`, `auth_type = trust`) with its own
/// directory (ini, user list, log, pid file).
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    pid: u32,
    user: String,
    database: String,
}

/// The `pgbouncer` program: `PGBOUNCER`, or `pgbouncer` on the PATH or in `/usr/sbin`.
pub fn pgbouncer_bin() -> PathBuf {
    if let Ok(path) = std::env::var("PGBOUNCER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("pgbouncer"))
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer not found: install Debian's `pgbouncer` package (apt-get install \
                 pgbouncer; `bash tests/run.sh` does it when run as root) or set PGBOUNCER to \
                 the program"
            )
        })
}

impl PgBouncer {
    /// Starts PgBouncer in front of the server at `upstream` (a `postgres://` URL, trust
    /// authentication), pooling at most `pool_size` server connections per user and database.
    pub fn start(upstream: &str, pool_size: u32) -> Self {
        // Another process may take the free port before PgBouncer binds it: try another.
        for _ in 0..3 {
            if let Some(started) = Self::start_once(upstream, pool_size) {
                return started;
            }
        }
        panic!("pgbouncer found its port taken three times");
    }

    /// One start on a fresh port; `None` when the port was taken meanwhile.
    fn start_once(upstream: &str, pool_size: u32) -> Option<Self> {
        let config = tokio_postgres::Config::from_str(upstream).expect("a valid DATABASE_URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let database = config.get_dbname().unwrap_or(&user).to_owned();
        let dir = std::env::temp_dir().join(format!(
            "ats-pgbouncer-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let listen = pg::free_port();
        let ini = dir.join("pgbouncer.ini");
        let userlist = dir.join("userlist.txt");
        std::fs::write(&userlist, format!("\"{user}\" \"\"\n")).unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {database} = host={host} port={port} dbname={database}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {listen}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {userlist}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 100\n\
                 logfile = {log}\n\
                 pidfile = {pid}\n",
                userlist = userlist.display(),
                log = dir.join("log").display(),
                pid = dir.join("pid").display(),
            ),
        )
        .unwrap();
        let root = pg::is_root();
        if root {
            // PgBouncer refuses to run as root.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the pgbouncer directory failed");
        }
        let bin = pgbouncer_bin();
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        // `-d`: it forks into the background and writes its pid file.
        let out = cmd
            .arg("-d")
            .arg(&ini)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pgbouncer did not start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            log()
        );
        let started = Instant::now();
        let pid = loop {
            let pid = std::fs::read_to_string(dir.join("pid"))
                .ok()
                .and_then(|pid| pid.trim().parse().ok());
            if let Some(pid) = pid {
                if TcpStream::connect(("127.0.0.1", listen)).is_ok() {
                    break pid;
                }
            }
            if log().contains("Address already in use") {
                let _ = std::fs::remove_dir_all(&dir);
                return None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen on 127.0.0.1:{listen} within 10 s: {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Some(Self {
            dir,
            port: listen,
            pid,
            user,
            database,
        })
    }

    /// The URL of the database through PgBouncer.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            self.user, self.port, self.database
        )
    }
}

impl PgBouncer {
    fn running(&self) -> bool {
        Command::new("kill")
            .args(["-0", &self.pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if !self.running() {
            eprintln!(
                "pgbouncer (pid {}) ended before the test did; its log:\n{}",
                self.pid,
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
        }
        // SIGTERM: immediate shutdown.
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) && self.running() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a store behind PgBouncer keeps alive: its schema (dropped over a direct connection)
/// and the PgBouncer, stopped after the schema is dropped.
pub type Guard = (TestSchema, PgBouncer);

/// A migrated store in a schema of its own, on a pool of `pool_size` connections to a fresh
/// PgBouncer (transaction pooling, 2 server connections) in front of `DATABASE_URL`, sending
/// its statements as `statements` says.
pub async fn store_through(
    statements: PostgresStatements,
    pool_size: usize,
) -> (PostgresStore, Guard) {
    let url = pg::database_url();
    let bouncer = PgBouncer::start(&url, 2);
    let schema = TestSchema::new(&url);
    let store = PostgresStore::builder(pg::pool(&bouncer.url(), pool_size))
        .schema(schema.name.clone())
        .statements(statements)
        .build()
        .expect("valid names");
    store.migrate().await.expect("migration through PgBouncer");
    (store, (schema, bouncer))
}

/// [`store_through`] with unnamed statements on a pool of 4: more client connections than
/// PgBouncer has server connections, so they are really shared.
pub async fn store() -> (PostgresStore, Guard) {
    store_through(PostgresStatements::Unnamed, 4).await
}
