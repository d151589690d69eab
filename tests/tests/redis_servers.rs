//! The Redis store reaches the server the URL names, as it names it: over TLS (`rediss://`)
//! with a private CA, as an ACL user with a password, in a database other than 0. Each test runs
//! its own throw-away `redis-server`.

use std::time::{Duration, SystemTime};

use actix_typed_session::{
    redis::{cmd, Client},
    BuildError, Key, Record, RedisStore, SessionMiddleware, SessionStore, StatusCode, StorageKey,
    WriteResult,
};
use actix_typed_session_tests::{
    client,
    redis::{self, TempRedis},
};
use serde_json::{json, Map};

fn middleware(store: RedisStore) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[12u8; 64][..]))
        .backend("redis", store)
        .build()
        .unwrap()
}

/// The error and its sources, one per line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push('\n');
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn record() -> Record {
    let now = SystemTime::now();
    let mut data = Map::new();
    data.insert("n".into(), json!(1));
    Record::new(data, now, now + Duration::from_secs(60))
}

#[actix_web::test]
async fn sessions_round_trip_over_tls_with_a_private_ca() {
    let server = TempRedis::start_tls();
    let store = RedisStore::builder(Client::open(server.url()).unwrap())
        .prefix("tls:")
        .tls_root_certificates(server.ca_pem())
        .build()
        .unwrap();
    let c = client(middleware(store.clone())).await;
    c.set("session", "user", json!("ann")).await;
    assert_eq!(c.read("session", "user").await, Some(json!("ann")));
    // The session is a hash on that server (read back over TLS by a client of its own).
    let keys: Vec<String> = server.command(cmd("KEYS").arg("tls:*"));
    assert_eq!(keys.len(), 1);
    let user: String = server.command(cmd("HGET").arg(&keys[0]).arg("d:user"));
    assert_eq!(user, "\"ann\"");

    // Without the private CA, the server's certificate is not trusted: the store refuses to
    // talk to it, and the client gets an opaque 500.
    let untrusting = RedisStore::builder(Client::open(server.url()).unwrap())
        .prefix("tls:")
        .build()
        .unwrap();
    let err = untrusting
        .create(&StorageKey::from_bytes([1; 32]), &record())
        .await
        .unwrap_err();
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains("certificate"), "{chain}");
    let c = client(middleware(untrusting)).await;
    let reply = c.post_json("/session/set/user", json!("eve")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty() && reply.set_cookies.is_empty());
    let keys: Vec<String> = server.command(cmd("KEYS").arg("tls:*"));
    assert_eq!(keys.len(), 1);
}

#[test]
fn a_root_certificate_needs_a_tls_url_and_a_pem_certificate() {
    let server = TempRedis::start_tls();
    let plain = Client::open("redis://127.0.0.1:1/").unwrap();
    let err = RedisStore::builder(plain)
        .tls_root_certificates(server.ca_pem())
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::RedisTls(_)), "{err}");
    assert!(error_chain(&err).contains("rediss://"), "{err}");
    let tls = Client::open(server.url()).unwrap();
    let err = RedisStore::builder(tls)
        .tls_root_certificates(b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec())
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::RedisTls(_)), "{err}");
}

#[actix_web::test]
async fn an_acl_user_with_a_password_and_a_database_number_come_from_the_url() {
    let server = TempRedis::start();
    let _: () = server.command(
        cmd("ACL")
            .arg("SETUSER")
            .arg("sessions")
            .arg("on")
            .arg(">s3cret")
            .arg("~*")
            .arg("&*")
            .arg("+@all"),
    );
    let plain = server.url();
    let base = plain.trim_start_matches("redis://").trim_end_matches('/');
    let url = |db: u8| format!("redis://sessions:s3cret@{base}/{db}");
    // From now on only the ACL user gets in: the store must log in as it.
    let _: () = server.command(cmd("ACL").arg("SETUSER").arg("default").arg("off"));

    let store = RedisStore::builder(Client::open(url(2)).unwrap())
        .prefix("acl:")
        .build()
        .unwrap();
    let c = client(middleware(store.clone())).await;
    c.set("session", "user", json!("ann")).await;
    assert_eq!(c.read("session", "user").await, Some(json!("ann")));
    let on = |db: u8| {
        redis::command::<Vec<String>>(&url(db), cmd("KEYS").arg("acl:*"))
            .expect("the ACL user's connection")
    };
    assert_eq!(on(2).len(), 1, "the session is in database 2");
    assert!(on(0).is_empty());

    // The wrong password: refused, with the cause in the error, and nothing is written.
    let wrong = format!("redis://sessions:wrong@{base}/2");
    let store = RedisStore::builder(Client::open(wrong).unwrap())
        .prefix("acl:")
        .build()
        .unwrap();
    let err = store
        .create(&StorageKey::from_bytes([2; 32]), &record())
        .await
        .unwrap_err();
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains("authentication failed"), "{chain}");
    assert_eq!(on(2).len(), 1);
    let right = RedisStore::builder(Client::open(url(2)).unwrap())
        .prefix("acl:")
        .build()
        .unwrap();
    assert_eq!(
        right
            .create(&StorageKey::from_bytes([2; 32]), &record())
            .await
            .unwrap(),
        WriteResult::Done
    );
}

#[actix_web::test]
async fn scripts_flushed_by_redis_are_loaded_again() {
    let server = TempRedis::start();
    let (store, _prefix) = redis::store_on(&server.url());
    let c = client(middleware(store)).await;
    c.set("session", "n", json!(1)).await;
    let _: () = server.command(cmd("SCRIPT").arg("FLUSH"));
    let loaded = || -> i64 {
        server
            .command::<String>(cmd("INFO").arg("memory"))
            .lines()
            .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("number_of_cached_scripts in INFO")
    };
    assert_eq!(loaded(), 0);
    // EVALSHA answers NOSCRIPT: the store loads the script and runs it.
    c.set("session", "n", json!(2)).await;
    assert_eq!(c.read("session", "n").await, Some(json!(2)));
    assert_eq!(loaded(), 1);
}
