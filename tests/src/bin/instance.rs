//! One application instance for the multi-instance tests (`tests/tests/instances.rs`): an
//! actix-web server on a free loopback port over a store that other instances share. It prints
//! `listening on 127.0.0.1:{port}` once it accepts requests, and runs until killed.
//!
//! ```text
//! instance pg    <database url> <schema> [<local cache staleness bound, ms>]
//! instance redis <redis url>    <prefix> [<local cache staleness bound, ms>]
//! instance redis-cluster <node url>,<node url>,... <prefix> [<local cache staleness bound, ms>]
//! ```
//!
//! Every instance derives the same key, as instances behind one load balancer share theirs.

use std::time::Duration;

use actix_typed_session::{
    deadpool_postgres::{Config, PoolConfig, Runtime},
    redis::io::tcp::TcpSettings,
    Backend, CachedStore, Key, LocalCache, PostgresStore, RedisStore, Session, SessionMiddleware,
    SessionStore,
};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;
use tokio_postgres::NoTls;

type Handler = actix_web::Result<HttpResponse>;

async fn set(session: Session, key: web::Path<String>, value: web::Json<Value>) -> Handler {
    session.insert(key.into_inner(), value.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

async fn entries(session: Session) -> HttpResponse {
    HttpResponse::Ok().json(&*session.entries())
}

/// A login: a new id for the session, tied to `owner`.
async fn login(session: Session, owner: web::Path<String>) -> Handler {
    session.renew();
    session.set_owner(owner.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

/// "Log out everywhere": ends every session of this session's owner, on every instance.
async fn end_all(session: Session) -> Handler {
    let ended = session.end_all_sessions().await?;
    Ok(HttpResponse::Ok().json(ended))
}

/// The shared store, behind a local cache of this instance's own when `bound` is set.
fn backend<S: SessionStore>(store: S, bound: Option<Duration>) -> std::io::Result<Backend> {
    Ok(match bound {
        None => store.into(),
        Some(bound) => CachedStore::builder(LocalCache::default(), store)
            .max_staleness(bound)
            .build()
            .map_err(std::io::Error::other)?
            .into(),
    })
}

async fn shared_store(
    kind: &str,
    url: &str,
    name: &str,
    bound: Option<Duration>,
) -> std::io::Result<Backend> {
    match kind {
        "pg" => {
            let mut config = Config::new();
            config.url = Some(url.to_owned());
            config.pool = Some(PoolConfig::new(4));
            let pool = config
                .create_pool(Some(Runtime::Tokio1), NoTls)
                .map_err(std::io::Error::other)?;
            let store = PostgresStore::builder(pool)
                .schema(name)
                .build()
                .map_err(std::io::Error::other)?;
            store.migrate().await.map_err(std::io::Error::other)?;
            backend(store, bound)
        }
        "redis" => {
            let client =
                actix_typed_session::redis::Client::open(url).map_err(std::io::Error::other)?;
            let store = RedisStore::builder(client)
                .prefix(name)
                .build()
                .map_err(std::io::Error::other)?;
            backend(store, bound)
        }
        "redis-cluster" => {
            let nodes: Vec<&str> = url.split(',').collect();
            let client = actix_typed_session::redis::cluster::ClusterClient::builder(nodes)
                .tcp_settings(TcpSettings::default().set_nodelay(true))
                .build()
                .map_err(std::io::Error::other)?;
            let store = RedisStore::cluster_builder(client)
                .prefix(name)
                .build()
                .map_err(std::io::Error::other)?;
            backend(store, bound)
        }
        other => Err(std::io::Error::other(format!(
            "unknown backend {other:?}: pg, redis or redis-cluster"
        ))),
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, url, name, rest @ ..] = args.as_slice() else {
        return Err(std::io::Error::other(
            "usage: instance pg|redis|redis-cluster <url> <schema or prefix> [<local cache bound, ms>]",
        ));
    };
    let bound = match rest {
        [] => None,
        [ms] => Some(Duration::from_millis(
            ms.parse().map_err(std::io::Error::other)?,
        )),
        _ => return Err(std::io::Error::other("too many arguments")),
    };
    actix_web::rt::System::new().block_on(async move {
        let backend = shared_store(kind, url, name, bound).await?;
        let sessions = SessionMiddleware::builder(Key::from(&[7u8; 64][..]))
            .backend("store", backend)
            .build()
            .map_err(std::io::Error::other)?;
        let server = HttpServer::new(move || {
            App::new()
                .wrap(sessions.clone())
                .route("/set/{key}", web::post().to(set))
                .route("/entries", web::get().to(entries))
                .route("/login/{owner}", web::post().to(login))
                .route("/end-all", web::post().to(end_all))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        let running = server.run();
        println!("listening on {addr}");
        running.await
    })
}
