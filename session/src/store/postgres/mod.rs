//! The PostgreSQL store, on the application's own `deadpool-postgres` pool.

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use tokio_postgres::{error::SqlState, types::Json, IsolationLevel};

mod builder;
mod connection;
mod deadline;
mod queries;
mod shared;
mod statements;

pub use self::{builder::PostgresStoreBuilder, statements::PostgresStatements};
use self::{
    connection::{connection_lost, Answer, Call, Checkout, Params},
    queries::{removed, Queries, UpdateArgs, ADDED_COLUMNS, MISSING_COLUMNS},
    shared::{SharedConnections, Single},
    statements::{send, Outcome, Query},
};
use crate::{ChangeSet, OwnedSession, Record, SessionStore, StorageKey, StoreError, WriteResult};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_BATCH: i64 = 1_000;
/// How many times ending an owner's sessions is tried when concurrent writes to them conflict.
const OWNER_ATTEMPTS: usize = 5;

/// Sessions in a PostgreSQL table, shared by every instance of the application.
///
/// One row per session: the SHA-256 hash of its id as primary key (a leaked table or backup
/// holds no usable session id), the data as `jsonb`, creation, expiry and last-write times, the
/// owner the session is tied to (`owner text NULL`, with a partial index on the owned rows)
/// and a `retired` flag. Every change is one conditional statement, and the owner and `last_seen`
/// columns change in that same statement:
///
/// - **create** is an `INSERT` that never overwrites (a taken key is retried with a fresh id);
/// - **update** merges the change set into the stored object, `(data - removed) || patch`, sets
///   the owner if the change set changes it, and moves expiry and `last_seen`, only if the row
///   still exists, has not expired and is not retired, so parallel requests that change
///   different keys both survive and a request that finishes after a logout does not bring the
///   session back;
/// - the **idle refresh** moves only the expiry and `last_seen` columns, at most once per refresh
///   interval;
/// - **renew** moves the session to a new key in one transaction. With a grace window, the old
///   row is not deleted but kept unchanged as a read-only copy (`retired = true`, expiring at
///   the end of the window or at its own deadline, whichever comes first): loads still find
///   it, writes never apply to it, and it is never listed. The retired copy keeps its `owner`
///   value (a load returns it as it was), so that ending all of an owner's sessions deletes it
///   too; listing and ending one session skip retired rows.
///
/// The owner index ([`list_owned`](SessionStore::list_owned),
/// [`delete_owned`](SessionStore::delete_owned),
/// [`delete_all_owned`](SessionStore::delete_all_owned)) is the `owner` column itself, so it can
/// never disagree with the sessions. Ending all of an owner's sessions is one `DELETE` in a
/// repeatable-read transaction, retried if a concurrent write to one of them (a renew, say)
/// conflicts, so that no session renewed meanwhile escapes.
///
/// Expired rows (retired copies included) are never loaded. [`delete_expired`](Self::delete_expired)
/// removes them in bounded batches, on demand or from the background task of
/// [`spawn_cleanup`](Self::spawn_cleanup).
///
/// Every operation (waiting for a connection included) is bounded by a timeout (5 seconds by
/// default), so an exhausted pool or an unreachable server fails the request instead of hanging it.
///
/// After a restart of the server, a read that meets a pooled connection the server ended runs
/// once more on another connection, so the pool's default `RecyclingMethod::Fast` (no round trip
/// at checkout) is enough; `Verified` costs a round trip more per operation for nothing here.
///
/// Each operation checks a connection out of the pool. A busy instance can instead send the
/// single-row statements (load, create, update, idle refresh, delete) over a few connections
/// that all requests share, pipelined, each session's always over the same one: 30–70 % more
/// read+write requests per second at 32 in flight
/// ([`shared_connections`](PostgresStoreBuilder::shared_connections)).
///
/// ```no_run
/// use actix_typed_session::{deadpool_postgres, PostgresStore};
/// use deadpool_postgres::{Config, Runtime};
/// use deadpool_postgres::tokio_postgres::NoTls;
///
/// # async fn setup() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = Config::new();
/// config.url = Some("postgres://app@localhost/app".into());
/// let pool = config.create_pool(Some(Runtime::Tokio1), NoTls)?;
///
/// let store = PostgresStore::builder(pool).schema("app").table("sessions").build()?;
/// store.migrate().await?;           // creates or upgrades the schema, table and indexes
/// let _cleanup = store.spawn_cleanup(std::time::Duration::from_secs(300));
/// # Ok(()) }
/// ```
///
/// # Behind PgBouncer
/// PgBouncer in transaction pooling mode (`pool_mode = transaction`; before 1.21, or without
/// `max_prepared_statements`) hands each transaction to whichever server connection is free,
/// so a statement prepared in one is missing in the next ("prepared statement \"s3\" does not
/// exist"). Build the store with [`PostgresStatements::Unnamed`]: every statement is then sent
/// unnamed, with its parameter types, and parsed, bound and run in one round trip. Renew and
/// ending an owner's sessions are each one transaction, which PgBouncer keeps on one server
/// connection, and `migrate` takes a transaction-scoped advisory lock, so the whole store works
/// there (the conformance suite runs through PgBouncer 1.18). Shared connections rely on state
/// kept on a server connection (prepared statements, `lock_timeout`), so [`build`] refuses
/// them with unnamed statements. The cost: each statement is planned anew.
///
/// ```no_run
/// use actix_typed_session::{deadpool_postgres, PostgresStatements, PostgresStore};
/// use deadpool_postgres::{Config, Runtime};
/// use deadpool_postgres::tokio_postgres::NoTls;
///
/// # async fn setup() -> Result<(), Box<dyn std::error::Error>> {
/// let mut config = Config::new();
/// config.url = Some("postgres://app@pgbouncer.internal:6432/app".into());
/// let pool = config.create_pool(Some(Runtime::Tokio1), NoTls)?;
///
/// let store = PostgresStore::builder(pool)
///     .statements(PostgresStatements::Unnamed)
///     .build()?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
///
/// [`build`]: PostgresStoreBuilder::build
///
/// # Limitations
/// Expiry is decided by the application's clock (the time passed by the middleware), so the
/// instances of one application should keep their clocks in sync (NTP).
///
/// An update or idle refresh carries a deadline (90 % of the timeout from its start, on the
/// application's clock) that the database checks against its own clock, so that a write the
/// client gave up on cannot land later over newer ones. That holds while the database's clock is
/// behind the application's by less than 10 % of the timeout; one ahead by more than 90 % of it
/// makes those writes fail, with an error that says so.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    queries: std::sync::Arc<Queries>,
    shared: Option<std::sync::Arc<SharedConnections>>,
    statements: PostgresStatements,
    timeout: Duration,
    batch: i64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.queries.table)
            .field("timeout", &self.timeout)
            .field("batch", &self.batch)
            .field("statements", &self.statements)
            .field(
                "shared_connections",
                &self.shared.as_ref().map_or(0, |s| s.len()),
            )
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The text of the `load` and `update` statements, for the load benchmark's bare-driver
    /// reference loops (reached through the hidden `__bench` module).
    #[cfg(feature = "__bench")]
    pub(crate) fn load_and_update_sql(&self) -> (&str, &str) {
        (&self.queries.load.text, &self.queries.update.text)
    }

    /// Starts building a store on `pool` (the application's own pool).
    pub fn builder(pool: Pool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            schema: "public".into(),
            table: "sessions".into(),
            timeout: DEFAULT_TIMEOUT,
            batch: DEFAULT_BATCH,
            shared: 0,
            statements: PostgresStatements::Prepared,
        }
    }

    /// A store on `pool` with the default schema (`public`) and table (`sessions`).
    pub fn new(pool: Pool) -> Self {
        Self::builder(pool)
            .build()
            .expect("the default names are valid identifiers")
    }

    /// Creates the schema, the table and its indexes if they do not exist, and upgrades a table
    /// created by an earlier version (adds the `last_seen`, `owner` and `retired` columns and the
    /// owner index; existing rows are kept). Safe to run at every start, from several instances
    /// at once.
    ///
    /// A table that already has every column is not altered, so a routine start takes no
    /// exclusive lock on it.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let op = "migrating the session table";
        self.bounded(op, async {
            let mut client = self.checkout(op).await?;
            let result = async {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| StoreError::new(op, e))?;
                // Serialize concurrent migrations: `IF NOT EXISTS` alone races on the catalog.
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))",
                    &[&self.queries.table],
                )
                .await
                .map_err(|e| StoreError::new(op, e))?;
                tx.batch_execute(&self.queries.create_table)
                    .await
                    .map_err(|e| StoreError::new(op, e))?;
                let wanted: Vec<&str> = ADDED_COLUMNS.iter().map(|(name, _)| *name).collect();
                let missing: i64 = tx
                    .query_one(MISSING_COLUMNS, &[&self.queries.table, &wanted])
                    .await
                    .and_then(|row| row.try_get(0))
                    .map_err(|e| StoreError::new(op, e))?;
                if missing > 0 {
                    tx.batch_execute(&self.queries.add_columns)
                        .await
                        .map_err(|e| StoreError::new(op, e))?;
                }
                tx.batch_execute(&self.queries.create_indexes)
                    .await
                    .map_err(|e| StoreError::new(op, e))?;
                tx.commit().await.map_err(|e| StoreError::new(op, e))
            }
            .await;
            client.release();
            result
        })
        .await
    }

    /// Deletes every session expired at this moment, in batches of at most `cleanup_batch`
    /// rows per statement, and returns how many were deleted.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let op = "deleting expired sessions";
        let now = SystemTime::now();
        let mut total = 0;
        loop {
            let deleted = self
                .execute(
                    op,
                    Sql::Other(&self.queries.delete_expired),
                    &[&now, &self.batch],
                )
                .await?;
            total += deleted;
            if deleted < self.batch as u64 {
                return Ok(total);
            }
            // Let other work at the database between batches.
            tokio::task::yield_now().await;
        }
    }

    /// Spawns a task that runs [`delete_expired`](Self::delete_expired) every `period` until the
    /// returned handle is aborted. Failures are logged and retried at the next period.
    ///
    /// Call it from within the actix (tokio) runtime, e.g. in `main` before starting the server.
    pub fn spawn_cleanup(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period.max(Duration::from_secs(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.delete_expired().await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "deleted expired sessions"),
                    Err(err) => tracing::warn!(
                        error = %err,
                        cause = %std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default(),
                        "expired-session cleanup failed; retrying at the next period"
                    ),
                }
            }
        })
    }

    /// A pooled connection whose statement in flight is cancelled if the operation is dropped
    /// before it [`release`](Checkout::release)s it (see [`Checkout`]).
    async fn checkout(&self, op: &'static str) -> Result<Checkout, StoreError> {
        let client = self.pool.get().await.map_err(|e| StoreError::new(op, e))?;
        Ok(Checkout::new(client))
    }

    async fn bounded<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                op,
                format!("timed out after {:?}", self.timeout),
            )),
        }
    }

    /// Runs `call` with the prepared statement `sql`, within the timeout: on the shared
    /// connection of its key when the store has shared connections and `sql` is a single-row
    /// statement, on a pooled connection otherwise (a statement still running when the timeout
    /// expires is cancelled: see [`Checkout`] and [`SharedConnections`]).
    ///
    /// On a connection found lost (see [`connection`]), a read runs once more on another
    /// connection, and so does a write that failed before it was sent.
    async fn with_statement(
        &self,
        op: &'static str,
        sql: Sql<'_>,
        call: Call<'_>,
    ) -> Result<Answer, StoreError> {
        let (query, read) = match sql {
            Sql::Single(which, key) => {
                if let Some(shared) = &self.shared {
                    return shared.run(op, key, which, self.timeout, call).await;
                }
                (self.queries.single(which), which.is_read())
            }
            Sql::Read(query) => (query, true),
            Sql::Other(query) => (query, false),
        };
        self.bounded(op, async {
            let mut retried = false;
            loop {
                let client = self.checkout(op).await?;
                // Whether the connection proved lost before the statement was sent.
                let (result, unsent_lost) =
                    match send(self.statements, &**client, op, query, call).await {
                        Outcome::Unsent { err, lost } => (Err(err), lost),
                        Outcome::Sent(result) => (result, false),
                    };
                match result {
                    Err(err) if !retried && (unsent_lost || read && connection_lost(&err)) => {
                        tracing::debug!(
                            error = %err,
                            cause = %std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default(),
                            "a pooled session store connection was lost; trying another"
                        );
                        client.discard();
                        retried = true;
                    }
                    result => {
                        client.release();
                        return result;
                    }
                }
            }
        })
        .await
    }

    /// Runs a query of [`RECORD_COLUMNS`] that gives at most one row.
    async fn query_record(
        &self,
        op: &'static str,
        sql: Sql<'_>,
        params: Params<'_>,
    ) -> Result<Option<Record>, StoreError> {
        self.one_row(op, sql, params)
            .await?
            .map(|row| record(&row).map_err(|e| StoreError::new(op, e)))
            .transpose()
    }

    /// Runs a query that gives at most one row.
    async fn one_row(
        &self,
        op: &'static str,
        sql: Sql<'_>,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let Answer::OneRow(row) = self.with_statement(op, sql, Call::OneRow(params)).await? else {
            unreachable!("a one-row call answers with at most one row")
        };
        Ok(row)
    }

    /// Runs a query that gives at most one row in the transaction `tx`.
    async fn one_row_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        op: &'static str,
        query: &Query,
        params: Params<'_>,
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        let call = Call::OneRow(params);
        let Answer::OneRow(row) = send(self.statements, tx, op, query, call)
            .await
            .into_result()?
        else {
            unreachable!("a one-row call answers with at most one row")
        };
        Ok(row)
    }

    /// The deadline of a write that starts now (see [`deadline`]).
    fn deadline(&self) -> SystemTime {
        deadline::deadline(self.timeout)
    }

    async fn execute(
        &self,
        op: &'static str,
        sql: Sql<'_>,
        params: Params<'_>,
    ) -> Result<u64, StoreError> {
        let Answer::Execute(rows) = self.with_statement(op, sql, Call::Execute(params)).await?
        else {
            unreachable!("an execute call answers with a row count")
        };
        Ok(rows)
    }
}

/// The statement an operation runs.
#[derive(Clone, Copy)]
enum Sql<'a> {
    /// A single-row statement on the session of this key (shared connections serve these).
    Single(Single, &'a StorageKey),
    /// Any other statement that only reads, on a pooled connection.
    Read(&'a Query),
    /// Any other statement, on a pooled connection.
    Other(&'a Query),
}

/// Whether `err` is a serialization failure (a repeatable-read transaction that must be retried).
fn serialization_failure(err: &StoreError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<tokio_postgres::Error>())
        .is_some_and(|e| e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE))
}

fn written(rows: u64, otherwise: WriteResult) -> WriteResult {
    if rows == 1 {
        WriteResult::Done
    } else {
        otherwise
    }
}

/// The columns [`record`] reads, in its order.
pub(super) const RECORD_COLUMNS: &str =
    "data, created_at, expires_at, COALESCE(last_seen, created_at), owner, retired";

/// A record from a row of [`RECORD_COLUMNS`] (the `load` and `update_returning` queries).
fn record(row: &tokio_postgres::Row) -> Result<Record, tokio_postgres::Error> {
    let Json(data): Json<Map<String, Value>> = row.try_get(0)?;
    Ok(Record::new(data, row.try_get(1)?, row.try_get(2)?)
        .with_owner(row.try_get(4)?)
        .with_activity(row.try_get(3)?, row.try_get(5)?))
}

/// A key from an `id_hash` column (32 bytes by the table's check constraint).
fn storage_key(bytes: &[u8]) -> Result<StorageKey, String> {
    <[u8; 32]>::try_from(bytes)
        .map(StorageKey::from_bytes)
        .map_err(|_| format!("a stored key of {} bytes instead of 32", bytes.len()))
}

impl SessionStore for PostgresStore {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.query_record(
            "loading a session",
            Sql::Single(Single::Load, key),
            &[&key.as_bytes().as_slice(), &now],
        )
        .await
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        let rows = self
            .execute(
                "creating a session",
                Sql::Single(Single::Create, key),
                &[
                    &key.as_bytes().as_slice(),
                    &Json(&record.data),
                    &record.created_at,
                    &record.expires_at,
                    &record.last_seen,
                    &record.owner,
                    &record.retired,
                ],
            )
            .await?;
        Ok(written(rows, WriteResult::Collision))
    }

    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let op = "updating a session";
        let args = UpdateArgs::new(key, changes, expires_at, now, self.deadline());
        let row = self
            .one_row(op, Sql::Single(Single::Update, key), &args.params())
            .await?;
        Ok(written(deadline::counted(op, row)?, WriteResult::Missing))
    }

    async fn update_returning(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(WriteResult, Option<Record>), StoreError> {
        let op = "updating a session";
        let args = UpdateArgs::new(key, changes, expires_at, now, self.deadline());
        let row = self
            .one_row(
                op,
                Sql::Single(Single::UpdateReturning, key),
                &args.params(),
            )
            .await?
            .ok_or_else(|| StoreError::new(op, "the write answered no row"))?;
        // The row: the record's columns (all NULL when nothing was written), then `in_time`.
        deadline::in_time(op, &row, 6)?;
        let written: Option<Json<Value>> = row.try_get(0).map_err(|e| StoreError::new(op, e))?;
        if written.is_none() {
            return Ok((WriteResult::Missing, None));
        }
        let stored = record(&row).map_err(|e| StoreError::new(op, e))?;
        Ok(if stored.expires_at > now {
            (WriteResult::Done, Some(stored))
        } else {
            // Written with an expiry already past: a load would not return it.
            (WriteResult::Done, None)
        })
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let op = "refreshing a session's expiry";
        let row = self
            .one_row(
                op,
                Sql::Single(Single::Touch, key),
                &[
                    &key.as_bytes().as_slice(),
                    &expires_at,
                    &now,
                    &self.deadline(),
                ],
            )
            .await?;
        Ok(written(deadline::counted(op, row)?, WriteResult::Missing))
    }

    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        let op = "renewing a session";
        self.bounded(op, async {
            let mut client = self.checkout(op).await?;
            let result = async {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| StoreError::new(op, e))?;
                // Take the old row out of service: delete it, or retire it for the grace window.
                // Either way the statement locks it and returns it as it was.
                let old_key = old.as_bytes().as_slice();
                let taken = match retire_until {
                    None => {
                        let params: Params<'_> = &[&old_key, &now];
                        self.one_row_in(&tx, op, &self.queries.take, params).await
                    }
                    Some(until) => {
                        let params: Params<'_> = &[&old_key, &now, &until];
                        self.one_row_in(&tx, op, &self.queries.retire, params).await
                    }
                };
                let Some(row) = taken? else {
                    // Dropping the transaction rolls it back.
                    return Ok(WriteResult::Missing);
                };
                let data: Value = row.try_get(0).map_err(|e| StoreError::new(op, e))?;
                let created_at: SystemTime = row.try_get(1).map_err(|e| StoreError::new(op, e))?;
                let old_owner: Option<&str> = row.try_get(2).map_err(|e| StoreError::new(op, e))?;
                let owner = changes.owner().unwrap_or(old_owner);
                // The new row names the retired copy, or (without one) inherits the old row's.
                let older: Option<&[u8]> = row.try_get(3).map_err(|e| StoreError::new(op, e))?;
                let predecessor = if retire_until.is_some() {
                    Some(old_key)
                } else {
                    older
                };
                let put: Params<'_> = &[
                    &new.as_bytes().as_slice(),
                    &data,
                    &changes.is_cleared(),
                    &removed(changes),
                    &Json(changes.patch()),
                    &created_at,
                    &expires_at,
                    &now,
                    &owner,
                    &predecessor,
                ];
                let Answer::Execute(rows) = send(
                    self.statements,
                    &tx,
                    op,
                    &self.queries.put,
                    Call::Execute(put),
                )
                .await
                .into_result()?
                else {
                    unreachable!("an execute call answers with a row count")
                };
                if rows != 1 {
                    // The old row is back as it was once the transaction is rolled back.
                    return Ok(WriteResult::Collision);
                }
                tx.commit().await.map_err(|e| StoreError::new(op, e))?;
                Ok(WriteResult::Done)
            }
            .await;
            client.release();
            result
        })
        .await
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.execute(
            "deleting a session",
            Sql::Single(Single::Delete, key),
            &[&key.as_bytes().as_slice()],
        )
        .await
        .map(drop)
    }

    fn indexes_owners(&self) -> bool {
        true
    }

    async fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        let op = "listing an owner's sessions";
        let Answer::Rows(rows) = self
            .with_statement(
                op,
                Sql::Read(&self.queries.list_owned),
                Call::Rows(&[&owner, &now]),
            )
            .await?
        else {
            unreachable!("a rows call answers with rows")
        };
        rows.iter()
            .map(|row| {
                let listed = OwnedSession::new(
                    storage_key(row.try_get(0).map_err(|e| StoreError::new(op, e))?)
                        .map_err(|e| StoreError::new(op, e))?,
                    row.try_get(1).map_err(|e| StoreError::new(op, e))?,
                    row.try_get(2).map_err(|e| StoreError::new(op, e))?,
                    row.try_get(3).map_err(|e| StoreError::new(op, e))?,
                );
                // The device recorded with the owner: the map's reserved entry (`crate::device`).
                let device: Option<serde_json::Value> =
                    row.try_get(4).map_err(|e| StoreError::new(op, e))?;
                Ok(match device {
                    Some(entry) => listed.with_device_entry(&entry),
                    None => listed,
                })
            })
            .collect()
    }

    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        let rows = self
            .execute(
                "ending one of an owner's sessions",
                Sql::Other(&self.queries.delete_owned),
                &[&key.as_bytes().as_slice(), &owner],
            )
            .await?;
        Ok(rows == 1)
    }

    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        let op = "ending an owner's sessions";
        self.bounded(op, async {
            let mut client = self.checkout(op).await?;
            let result = async {
                let keep = keep.map(|k| k.as_bytes().as_slice());
                // One DELETE, in a repeatable-read transaction. Under read committed, a DELETE that
                // waits for a concurrent renew of one of the owner's sessions skips the old row
                // (retired or gone once the renew commits) and cannot see the new one, which started
                // after its snapshot: the renewed session would escape. Repeatable read fails the
                // DELETE instead, and the retry's fresh snapshot sees the new row.
                for _ in 0..OWNER_ATTEMPTS {
                    let tx = client
                        .build_transaction()
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .start()
                        .await
                        .map_err(|e| StoreError::new(op, e))?;
                    let query = &self.queries.delete_all_owned;
                    let call = Call::Rows(&[&owner, &keep]);
                    let rows = match send(self.statements, &tx, op, query, call)
                        .await
                        .into_result()
                    {
                        Ok(Answer::Rows(rows)) => rows,
                        Ok(_) => unreachable!("a rows call answers with rows"),
                        // Dropping the transaction rolls it back.
                        Err(e) if serialization_failure(&e) => continue,
                        Err(e) => return Err(e),
                    };
                    // Retired copies of the owner's renewed sessions go too (ending "everywhere"
                    // includes an old id in its grace window), but only live sessions are reported.
                    let deleted = rows
                        .iter()
                        .filter(|row| !row.get::<_, bool>(1))
                        .map(|row| {
                            row.try_get(0)
                                .map_err(|e| StoreError::new(op, e))
                                .and_then(|b| storage_key(b).map_err(|e| StoreError::new(op, e)))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    tx.commit().await.map_err(|e| StoreError::new(op, e))?;
                    return Ok(deleted);
                }
                Err(StoreError::new(
                    op,
                    format!("the sessions kept changing during {OWNER_ATTEMPTS} attempts"),
                ))
            }
            .await;
            client.release();
            result
        })
        .await
    }
}
