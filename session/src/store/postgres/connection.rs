//! The pooled connection of one operation: what happens to it when the operation times out
//! ([`Checkout`]), and which failures show that it was lost, so that the operation may run again
//! on another ([`connection_lost`]).
//!
//! After a restart of the server, every pooled connection was ended by it ("terminating
//! connection due to administrator command"). `deadpool-postgres` with its default
//! `RecyclingMethod::Fast` checks only `Client::is_closed`, which turns true once the
//! connection's task has read the server's goodbye; a connection checked out before that happens
//! fails its first statement. `RecyclingMethod::Verified` would catch it, at the price of one
//! round trip more per operation, every time; the store instead runs a read again, once, on
//! another connection when the first one proves lost. A write runs again only when it failed
//! before its statement was sent (the connection was lost while preparing it, or was found
//! closed just before): an error that arrives after the statement was sent does not prove that
//! it did not commit.

use std::pin::pin;

use futures_util::TryStreamExt;
use tokio_postgres::{types::ToSql, Client, Row, RowStream, Statement};

use crate::StoreError;

/// The parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What an operation does with its prepared statement. Plain data rather than a closure, so
/// that it can run again on another connection and its future stays `Send`.
#[derive(Clone, Copy)]
pub(super) enum Call<'a> {
    /// At most one row.
    OneRow(Params<'a>),
    /// How many rows changed.
    Execute(Params<'a>),
    /// Every row.
    Rows(Params<'a>),
}

/// The answer to a [`Call`] of the same name.
pub(super) enum Answer {
    OneRow(Option<Row>),
    Execute(u64),
    Rows(Vec<Row>),
}

impl Call<'_> {
    /// Runs the call with the prepared `statement` on `client`.
    pub(super) async fn run(
        self,
        op: &'static str,
        client: &Client,
        statement: &Statement,
    ) -> Result<Answer, StoreError> {
        let rows = client
            .query_raw(statement, self.params().iter().copied())
            .await
            .map_err(|e| StoreError::new(op, e))?;
        self.collect(op, rows).await
    }

    pub(super) fn params(&self) -> Params<'_> {
        match *self {
            Call::OneRow(params) | Call::Execute(params) | Call::Rows(params) => params,
        }
    }

    /// Reads the rows of the call's statement into its answer.
    pub(super) async fn collect(
        self,
        op: &'static str,
        rows: RowStream,
    ) -> Result<Answer, StoreError> {
        let mut rows = pin!(rows);
        let failed = |e| StoreError::new(op, e);
        match self {
            Call::OneRow(_) => {
                // A stream that has ended must not be polled again (it would answer "closed").
                let Some(first) = rows.try_next().await.map_err(failed)? else {
                    return Ok(Answer::OneRow(None));
                };
                if rows.try_next().await.map_err(failed)?.is_some() {
                    return Err(StoreError::new(
                        op,
                        "the statement answered more than one row",
                    ));
                }
                Ok(Answer::OneRow(Some(first)))
            }
            Call::Execute(_) => {
                while rows.try_next().await.map_err(failed)?.is_some() {}
                Ok(Answer::Execute(rows.rows_affected().unwrap_or(0)))
            }
            Call::Rows(_) => rows.try_collect().await.map(Answer::Rows).map_err(failed),
        }
    }
}

/// Whether `err` shows that the operation's connection was lost: closed, cut (an I/O error), or
/// ended by the server (shut down, restarted, crashed, or the backend terminated), as opposed
/// to a statement that the server refused.
pub(super) fn connection_lost(err: &StoreError) -> bool {
    let Some(err) = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<tokio_postgres::Error>())
    else {
        return false;
    };
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        // Class 57P: operator intervention (admin or crash shutdown, cannot connect now);
        // class 08: connection exception.
        return code.code().starts_with("57P") || code.code().starts_with("08");
    }
    std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

/// A pooled connection for one operation.
///
/// When the operation times out, its future is dropped with a statement possibly still queued
/// at the server (waiting for a lock, say). Returned to the pool as is, that statement would
/// still run, and a write the client was told had failed would land later, possibly over a
/// newer one. So a connection dropped before [`release`](Self::release) is taken out of the
/// pool, a cancel request is sent for its statement (PostgreSQL's out-of-band cancellation, over
/// a new plain-TCP connection: with a server that requires TLS for it, the cancel fails and is
/// logged, and the statement may still run), and the connection is closed.
pub(super) struct Checkout {
    client: Option<deadpool_postgres::Object>,
}

impl Checkout {
    pub(super) fn new(client: deadpool_postgres::Object) -> Self {
        Self {
            client: Some(client),
        }
    }

    /// The operation is over: the connection goes back to the pool.
    pub(super) fn release(mut self) {
        drop(self.client.take());
    }

    /// The connection was found lost: it leaves the pool without a cancel request (there is no
    /// server process left to cancel anything on).
    pub(super) fn discard(mut self) {
        if let Some(object) = self.client.take() {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

impl std::ops::Deref for Checkout {
    type Target = deadpool_postgres::Object;

    fn deref(&self) -> &Self::Target {
        self.client.as_ref().expect("present until released")
    }
}

impl std::ops::DerefMut for Checkout {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.client.as_mut().expect("present until released")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        let Some(object) = self.client.take() else {
            return;
        };
        let client = deadpool_postgres::Object::take(object);
        let token = client.cancel_token();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(err) = token.cancel_query(tokio_postgres::NoTls).await {
                tracing::warn!(
                    error = %err,
                    "could not cancel the statement of a timed-out session store operation"
                );
            }
            drop(client);
        });
    }
}
