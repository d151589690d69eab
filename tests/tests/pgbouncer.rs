//! The PostgreSQL store behind PgBouncer in transaction pooling mode: why the default prepared
//! statements fail there, and that unnamed statements do not. The conformance suite through
//! PgBouncer is in `conformance_pgbouncer.rs`.

use std::time::{Duration, SystemTime};

use actix_typed_session::{
    BuildError, ChangeSet, PostgresStatements, PostgresStore, Record, SessionStore, StorageKey,
    WriteResult,
};
use actix_typed_session_tests::{
    pg,
    pgbouncer::{self, PgBouncer},
};
use serde_json::{json, Map};
use tokio_postgres::NoTls;

fn key(byte: u8) -> StorageKey {
    StorageKey::from_bytes([byte; 32])
}

/// Loads once on a pool of one client connection (PgBouncer's only server connection serves
/// it), then holds that server connection in an open transaction of another client, so that
/// the store's next statement runs on a second server connection; loads again.
async fn load_after_the_server_connection_changes(
    statements: PostgresStatements,
) -> Result<(), String> {
    let (store, (_schema, bouncer)) = pgbouncer::store_through(statements, 1).await;
    let now = SystemTime::now();
    assert!(store.load(&key(1), now).await.unwrap().is_none());

    let (holder, connection) = tokio_postgres::connect(&bouncer.url(), NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    holder
        .batch_execute("BEGIN; SELECT 1")
        .await
        .expect("a transaction through PgBouncer");

    let second = store.load(&key(1), now).await;
    holder.batch_execute("ROLLBACK").await.unwrap();
    drop(holder);
    let _ = connection.await;
    second.map(drop).map_err(|err| {
        let db = std::error::Error::source(&err)
            .and_then(|source| source.downcast_ref::<tokio_postgres::Error>())
            .and_then(tokio_postgres::Error::as_db_error)
            .map(|db| db.message().to_owned());
        format!("{err}: {}", db.unwrap_or_default())
    })
}

#[actix_web::test]
async fn prepared_statements_fail_when_pgbouncer_moves_the_client_to_another_server_connection() {
    let err = load_after_the_server_connection_changes(PostgresStatements::Prepared)
        .await
        .expect_err("the cached prepared statement exists only on the first server connection");
    assert!(
        err.contains("prepared statement") && err.contains("does not exist"),
        "{err}"
    );
}

#[actix_web::test]
async fn unnamed_statements_work_when_pgbouncer_moves_the_client_to_another_server_connection() {
    load_after_the_server_connection_changes(PostgresStatements::Unnamed)
        .await
        .unwrap();
}

/// Every store operation, 16 sessions at a time, on 8 client connections sharing PgBouncer's
/// 2 server connections: writes land, renews and an owner's logout everywhere hold together.
#[actix_web::test]
async fn every_operation_works_concurrently_through_pgbouncer_with_unnamed_statements() {
    let (store, _guard) = pgbouncer::store_through(PostgresStatements::Unnamed, 8).await;
    let now = SystemTime::now();
    let later = now + Duration::from_secs(3600);
    let rounds = (0..16u8).map(|i| {
        let store = store.clone();
        async move {
            let mut data = Map::new();
            data.insert("n".into(), json!(i));
            let record = Record::new(data, now, later).with_owner(Some("ada".into()));
            assert_eq!(
                store.create(&key(i), &record).await.unwrap(),
                WriteResult::Done
            );
            let mut changes = ChangeSet::default();
            changes.set("seen", json!(true));
            assert_eq!(
                store.update(&key(i), &changes, later, now).await.unwrap(),
                WriteResult::Done
            );
            assert_eq!(
                store.touch(&key(i), later, now).await.unwrap(),
                WriteResult::Done
            );
            let renewed = key(100 + i);
            assert_eq!(
                store
                    .renew(&key(i), &renewed, &ChangeSet::default(), later, now, None)
                    .await
                    .unwrap(),
                WriteResult::Done
            );
            let loaded = store.load(&renewed, now).await.unwrap().expect("renewed");
            assert_eq!(loaded.data["n"], json!(i));
            assert_eq!(loaded.data["seen"], json!(true));
        }
    });
    futures_util::future::join_all(rounds).await;
    assert_eq!(store.list_owned("ada", now).await.unwrap().len(), 16);
    assert!(store.delete_owned("ada", &key(100)).await.unwrap());
    let ended = store
        .delete_all_owned("ada", Some(&key(101)))
        .await
        .unwrap();
    assert_eq!(ended.len(), 14);
    assert_eq!(store.list_owned("ada", now).await.unwrap().len(), 1);
    store.delete(&key(101)).await.unwrap();
    assert!(store.load(&key(101), now).await.unwrap().is_none());
    assert_eq!(store.delete_expired().await.unwrap(), 0);
}

#[actix_web::test]
async fn shared_connections_are_refused_with_unnamed_statements() {
    let url = "postgres://nobody@127.0.0.1:1/none";
    let err = PostgresStore::builder(pg::pool(url, 8))
        .statements(PostgresStatements::Unnamed)
        .shared_connections(2)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::SharedConnectionsUnnamed), "{err}");
    assert!(err.to_string().contains("shared_connections"), "{err}");
    // Each on its own builds.
    for builder in [
        PostgresStore::builder(pg::pool(url, 8)).statements(PostgresStatements::Unnamed),
        PostgresStore::builder(pg::pool(url, 8)).shared_connections(2),
    ] {
        builder.build().unwrap();
    }
}

#[test]
fn pgbouncer_stops_when_dropped() {
    let bouncer = PgBouncer::start(&pg::database_url(), 1);
    let address = bouncer.url();
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .and_then(|port| port.parse().ok())
        .unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(bouncer);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
