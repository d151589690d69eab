//! How the store sends a statement: prepared once per connection and cached (the default), or
//! unnamed with explicit parameter types, for a pooler that hands each transaction to whichever
//! server connection is free (PgBouncer in transaction pooling mode).
//!
//! A prepared statement lives in one server process. Behind PgBouncer in transaction mode, the
//! next transaction of the same client connection may run in another server process, where the
//! statement does not exist ("prepared statement \"s3\" does not exist"), or where another
//! client process already prepared a statement of the same name ("... already exists").
//! An unnamed statement is parsed, bound and executed in one round trip that ends in one `Sync`,
//! so it never outlives the transaction that used it.

use tokio_postgres::{types::Type, Statement};

use super::connection::{Answer, Call};
use crate::StoreError;

/// How a [`PostgresStore`](super::PostgresStore) sends its statements to the server; set with
/// [`PostgresStoreBuilder::statements`](super::PostgresStoreBuilder::statements).
///
/// ```no_run
/// # use actix_typed_session::{deadpool_postgres::Pool, PostgresStatements, PostgresStore};
/// # fn store(pool: Pool) -> PostgresStore {
/// // `pool` connects to PgBouncer in `pool_mode = transaction`.
/// PostgresStore::builder(pool)
///     .statements(PostgresStatements::Unnamed)
///     .build()
///     .unwrap()
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostgresStatements {
    /// Each statement is prepared once per connection (a named statement, cached by
    /// `deadpool-postgres`), then only bound and executed: the fastest, for a direct connection
    /// to PostgreSQL or a pooler in session mode. The default.
    #[default]
    Prepared,
    /// Each statement is sent unnamed, with its parameter types, parsed, bound and executed in
    /// one round trip: nothing outlives the transaction. For PgBouncer in transaction pooling
    /// mode (before 1.21, or without `max_prepared_statements`), and other poolers that move a
    /// client between server connections at transaction boundaries. The server parses and plans
    /// every statement anew.
    Unnamed,
}

/// A statement's text and the types of its parameters (`$1`, `$2`, ... in order), which an
/// unnamed statement sends along.
pub(super) struct Query {
    pub(super) text: String,
    pub(super) types: &'static [Type],
}

/// A connection a statement can be sent on: a pooled connection, or a transaction on one.
pub(super) trait Conn {
    async fn prepare_cached(&self, text: &str) -> Result<Statement, tokio_postgres::Error>;
    fn client(&self) -> &tokio_postgres::Client;
}

impl Conn for deadpool_postgres::ClientWrapper {
    async fn prepare_cached(&self, text: &str) -> Result<Statement, tokio_postgres::Error> {
        deadpool_postgres::ClientWrapper::prepare_cached(self, text).await
    }

    fn client(&self) -> &tokio_postgres::Client {
        self
    }
}

impl Conn for deadpool_postgres::Transaction<'_> {
    async fn prepare_cached(&self, text: &str) -> Result<Statement, tokio_postgres::Error> {
        deadpool_postgres::Transaction::prepare_cached(self, text).await
    }

    fn client(&self) -> &tokio_postgres::Client {
        tokio_postgres::Transaction::client(self)
    }
}

/// What became of a statement.
pub(super) enum Outcome {
    /// It was not sent: preparing it failed, or the connection was found closed (`lost`: the
    /// connection proved lost, so the operation may run again on another).
    Unsent { err: StoreError, lost: bool },
    /// It was sent; its answer or the error that came back.
    Sent(Result<Answer, StoreError>),
}

impl Outcome {
    /// The answer, whether the statement was sent or not.
    pub(super) fn into_result(self) -> Result<Answer, StoreError> {
        match self {
            Outcome::Unsent { err, .. } => Err(err),
            Outcome::Sent(result) => result,
        }
    }
}

/// Sends `query` on `conn` the way `mode` says and reads its answer as `call` says.
pub(super) async fn send(
    mode: PostgresStatements,
    conn: &impl Conn,
    op: &'static str,
    query: &Query,
    call: Call<'_>,
) -> Outcome {
    let prepared = match mode {
        PostgresStatements::Prepared => match conn.prepare_cached(&query.text).await {
            Ok(statement) => Some(statement),
            Err(e) => {
                let err = StoreError::new(op, e);
                let lost = super::connection::connection_lost(&err);
                return Outcome::Unsent { err, lost };
            }
        },
        PostgresStatements::Unnamed => None,
    };
    let client = conn.client();
    // Closed since the pool checked it: the statement would not even be sent.
    if client.is_closed() {
        return Outcome::Unsent {
            err: StoreError::new(op, "the connection closed before the statement was sent"),
            lost: true,
        };
    }
    let params = call.params();
    let rows = match &prepared {
        Some(statement) => client.query_raw(statement, params.iter().copied()).await,
        None => {
            debug_assert_eq!(params.len(), query.types.len(), "{}", query.text);
            let typed = params.iter().copied().zip(query.types.iter().cloned());
            client.query_typed_raw(&query.text, typed).await
        }
    };
    Outcome::Sent(match rows {
        Ok(rows) => call.collect(op, rows).await,
        Err(e) => Err(StoreError::new(op, e)),
    })
}
