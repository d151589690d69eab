//! Helpers shared by the example binaries (`shop`, `walkthrough`): choosing the server-side
//! store from the environment, the listening address, the session key and HTML escaping.
//!
//! Nothing here is part of `actix-typed-session`; it is the few lines every example would
//! otherwise repeat.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::{io, net::SocketAddr, time::Duration};

use actix_typed_session::{
    deadpool_postgres::{self, tokio_postgres::NoTls, Runtime},
    redis, Backend, Key, MemoryStore, PostgresStore, RedisStore,
};

/// The server-side store an example uses, and a sentence saying which one it is.
#[derive(Debug)]
pub struct Datastore {
    /// The store, ready to register with `SessionMiddleware::builder(..).backend(name, ..)`.
    pub backend: Backend,
    /// For people: "PostgreSQL (DATABASE_URL)", "Redis (REDIS_URL)" or "memory (...)".
    pub description: &'static str,
}

/// Picks the server-side store from the environment:
///
/// - `DATABASE_URL` set: PostgreSQL, in the schema `DATABASE_SCHEMA` if set (see
///   [`postgres_from_env`]);
/// - else `REDIS_URL` set: Redis, under the key prefix `REDIS_PREFIX` if set (see
///   [`redis_from_env`]);
/// - else: the in-process memory store, standing in for a datastore, so that the examples run
///   with no service at all (sessions then end when the process does).
pub async fn datastore_from_env() -> io::Result<Datastore> {
    if let Some(store) = postgres_from_env().await? {
        return Ok(store);
    }
    if let Some(store) = redis_from_env()? {
        return Ok(store);
    }
    Ok(memory())
}

/// PostgreSQL when `DATABASE_URL` is set: its `sessions` table, in the schema named by
/// `DATABASE_SCHEMA` (default `public`), is created if missing (the schema too), and expired
/// rows are deleted every ten minutes.
pub async fn postgres_from_env() -> io::Result<Option<Datastore>> {
    let Some(url) = env_nonempty("DATABASE_URL") else {
        return Ok(None);
    };
    let mut config = deadpool_postgres::Config::new();
    config.url = Some(url);
    let pool = config
        .create_pool(Some(Runtime::Tokio1), NoTls)
        .map_err(|e| io::Error::other(format!("DATABASE_URL: {e}")))?;
    let store = match env_nonempty("DATABASE_SCHEMA") {
        Some(schema) => PostgresStore::builder(pool)
            .schema(schema)
            .build()
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("DATABASE_SCHEMA: {e}"))
            })?,
        None => PostgresStore::new(pool),
    };
    store.migrate().await.map_err(|e| {
        let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
        io::Error::other(format!("DATABASE_URL: {e}{cause}"))
    })?;
    // Runs for as long as the server: deletes expired sessions in bounded batches.
    drop(store.spawn_cleanup(Duration::from_secs(600)));
    Ok(Some(Datastore {
        backend: store.into(),
        description: "PostgreSQL (DATABASE_URL)",
    }))
}

/// Redis when `REDIS_URL` is set, its keys under the prefix `REDIS_PREFIX` (default
/// `session:`); nothing is connected until the first session is used.
pub fn redis_from_env() -> io::Result<Option<Datastore>> {
    let Some(url) = env_nonempty("REDIS_URL") else {
        return Ok(None);
    };
    let client =
        redis::Client::open(url).map_err(|e| io::Error::other(format!("REDIS_URL: {e}")))?;
    let store = match env_nonempty("REDIS_PREFIX") {
        Some(prefix) => RedisStore::builder(client)
            .prefix(prefix)
            .build()
            .map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("REDIS_PREFIX: {e}"))
            })?,
        None => RedisStore::new(client),
    };
    Ok(Some(Datastore {
        backend: store.into(),
        description: "Redis (REDIS_URL)",
    }))
}

/// The in-process memory store.
pub fn memory() -> Datastore {
    Datastore {
        backend: MemoryStore::default().into(),
        description: "memory (set DATABASE_URL or REDIS_URL for a real datastore)",
    }
}

/// The session master key: the bytes of `SESSION_KEY` (at least 64) when set, so that
/// sessions survive a restart; otherwise a fresh random key, so every restart logs everyone
/// out. A real application loads its key from its secret store.
pub fn session_key() -> Key {
    match env_nonempty("SESSION_KEY") {
        Some(secret) => Key::from(secret.as_bytes()),
        None => Key::generate(),
    }
}

/// The address to listen on: `ADDR` (default `127.0.0.1`) and `PORT` (default `default_port`;
/// `0` picks a free port, which the examples print).
pub fn listen_addr(default_port: u16) -> io::Result<(String, u16)> {
    let addr = env_nonempty("ADDR").unwrap_or_else(|| "127.0.0.1".into());
    let port = match env_nonempty("PORT") {
        Some(p) => p.parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "PORT must be a port number")
        })?,
        None => default_port,
    };
    Ok((addr, port))
}

/// The address to open in a browser for a bound socket: `localhost` for a loopback or
/// wildcard address (browsers accept `Secure` cookies from `http://localhost`), else the
/// address itself.
///
/// ```
/// let bound = "127.0.0.1:8080".parse().unwrap();
/// assert_eq!(examples::browser_url(bound), "http://localhost:8080/");
/// ```
pub fn browser_url(bound: SocketAddr) -> String {
    let ip = bound.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        format!("http://localhost:{}/", bound.port())
    } else {
        format!("http://{bound}/")
    }
}

/// Logs to stderr: `RUST_LOG` if set, else `info` (and `debug` for the session library). Colours
/// only when stderr is a terminal, so that a log redirected to a file stays plain text.
pub fn init_tracing() {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_typed_session=debug".into()),
        )
        .init();
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
///
/// ```
/// assert_eq!(examples::escape(r#"<b class="x">Tom & 'Jerry'</b>"#),
///            "&lt;b class=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/b&gt;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
