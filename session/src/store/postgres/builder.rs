//! Configuring a [`PostgresStore`]: schema, table, timeouts, batches, shared connections.

use std::time::Duration;

use deadpool_postgres::Pool;

use super::{
    queries::Queries,
    shared::{SharedConnections, Single},
    statements::PostgresStatements,
    PostgresStore,
};
use crate::BuildError;

/// Builds a [`PostgresStore`]; start with [`PostgresStore::builder`].
#[derive(Debug)]
#[must_use]
pub struct PostgresStoreBuilder {
    pub(super) pool: Pool,
    pub(super) schema: String,
    pub(super) table: String,
    pub(super) timeout: Duration,
    pub(super) batch: i64,
    pub(super) shared: usize,
    pub(super) statements: PostgresStatements,
}

impl PostgresStoreBuilder {
    /// The schema holding the table (default `public`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The table's name (default `sessions`).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// The most time one operation may take, waiting for a pooled connection included
    /// (default 5 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many expired rows one cleanup statement deletes at most (default 1,000).
    pub fn cleanup_batch(mut self, rows: u32) -> Self {
        self.batch = i64::from(rows.max(1));
        self
    }

    /// Sends the single-row statements (load, create, update, idle refresh, delete) over
    /// `connections` connections that all requests share, pipelined, instead of checking a
    /// pooled connection out for each (default 0: off). The connections are taken from the
    /// pool for good: the pool must hold more than `connections` ([`build`](Self::build) fails
    /// otherwise) for the other operations (renew, ending an owner's sessions, listing, the
    /// expiry clean-up, `migrate`), and whatever else of the application uses the same pool has
    /// that many fewer. Off by default for that reason: size the pool for it.
    ///
    /// At 32 requests in flight against one PostgreSQL server, read+write requests per second
    /// grew by 60–70 % with 4 shared connections out of a pool of 8 and by 30–40 % with 4 out of
    /// 32, against the same pool used one operation at a time; 2 shared connections out of a
    /// pool of 4 gave 5–45 %; with a pool of 32, 2 and 16 did worse than 4 (BENCHMARKS.md,
    /// "PostgreSQL: shared connections").
    ///
    /// Every session's key always uses the same connection, so one session's statements reach
    /// the server in order and two requests of one visitor never wait for each other's row lock.
    /// The cost: a statement that waits for a lock held elsewhere (another instance's renew, say)
    /// holds up the statements queued behind it on its connection; each shared connection sets
    /// PostgreSQL's `lock_timeout` to 90 % of the store's timeout, so such a statement fails at
    /// the server, a definite error (it never lands), before its request would give up, and the
    /// statements behind it go on. When a statement times out all the same, its connection
    /// leaves service and is drained: the server is asked to cancel what it runs until a marker
    /// statement queued behind everything answers, and that connection's keys wait for the
    /// drain before a new connection serves them. So a timed-out write either is
    /// cancelled or lands before any later statement of this instance on its session;
    /// statements of other requests running on that connection meanwhile may be cancelled too.
    /// If the cancel requests cannot reach the server (a proxy, or a server that requires TLS
    /// for them) and the statement does not end within 10 seconds, the drain gives up and lets
    /// the connection go (it closes once what is still queued on it ends), and a statement still
    /// queued at the server may run later, as with a pooled connection whose cancel fails.
    ///
    /// ```no_run
    /// # use actix_typed_session::{deadpool_postgres::Pool, PostgresStore};
    /// # fn store(pool: Pool) -> PostgresStore {
    /// // The pool must hold more than 4 connections.
    /// PostgresStore::builder(pool).shared_connections(4).build().unwrap()
    /// # }
    /// ```
    pub fn shared_connections(mut self, connections: usize) -> Self {
        self.shared = connections;
        self
    }

    /// How statements are sent to the server (default [`PostgresStatements::Prepared`]).
    ///
    /// Behind PgBouncer in transaction pooling mode (`pool_mode = transaction`, before 1.21 or
    /// without `max_prepared_statements`), use [`PostgresStatements::Unnamed`]: every statement
    /// is then parsed, bound and run in one round trip, unnamed, so nothing outlives its
    /// transaction. The default prepares each statement once per connection, which fails
    /// there ("prepared statement \"s3\" does not exist") as soon as a client connection's
    /// next transaction runs on another server connection. The store keeps no other state
    /// on a connection between transactions (renew and ending an owner's sessions are each
    /// one transaction; `migrate` takes a transaction-scoped advisory lock), so it works
    /// through such a pooler. Shared connections cannot: [`build`](Self::build) refuses the
    /// combination.
    ///
    /// ```no_run
    /// # use actix_typed_session::{deadpool_postgres, PostgresStatements, PostgresStore};
    /// use deadpool_postgres::{Config, Runtime};
    /// use deadpool_postgres::tokio_postgres::NoTls;
    ///
    /// # async fn setup() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut config = Config::new();
    /// // PgBouncer, in `pool_mode = transaction`.
    /// config.url = Some("postgres://app@pgbouncer.internal:6432/app".into());
    /// let pool = config.create_pool(Some(Runtime::Tokio1), NoTls)?;
    ///
    /// let store = PostgresStore::builder(pool)
    ///     .statements(PostgresStatements::Unnamed)
    ///     .build()?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn statements(mut self, statements: PostgresStatements) -> Self {
        self.statements = statements;
        self
    }

    /// Validates the names and builds the store. Names must be lowercase SQL identifiers
    /// (`[a-z_][a-z0-9_]*`); they are quoted, never interpolated unchecked.
    pub fn build(self) -> Result<PostgresStore, BuildError> {
        identifier("schema", &self.schema, 63)?;
        // Leaves room for the index name derived from it.
        identifier("table", &self.table, 48)?;
        if self.timeout.is_zero() {
            return Err(BuildError::Timeouts(
                "the PostgreSQL timeout must be longer than zero",
            ));
        }
        let queries = Queries::new(&self.schema, &self.table);
        let pool = self.pool.status().max_size;
        let connections = self.shared;
        if connections > 0 && connections >= pool {
            return Err(BuildError::PoolTooSmall {
                shared: connections,
                pool,
            });
        }
        if connections > 0 && self.statements == PostgresStatements::Unnamed {
            return Err(BuildError::SharedConnectionsUnnamed);
        }
        let shared = (connections > 0).then(|| {
            let sql = Single::ALL.map(|which| queries.single(which).text.clone());
            // A statement waiting for a row lock fails at the server before the client gives
            // up on it: a definite error instead of a timeout, and no drain.
            let lock_timeout = Some(self.timeout / 10 * 9)
                .filter(|wait| (1..=i32::MAX as u128).contains(&wait.as_millis()));
            std::sync::Arc::new(SharedConnections::new(
                self.pool.clone(),
                sql,
                connections,
                lock_timeout,
            ))
        });
        Ok(PostgresStore {
            pool: self.pool,
            queries: std::sync::Arc::new(queries),
            shared,
            statements: self.statements,
            timeout: self.timeout,
            batch: self.batch,
        })
    }
}

fn identifier(what: &'static str, name: &str, max: usize) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidIdentifier {
        what,
        name: name.to_owned(),
        reason,
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return Err(invalid("it is empty")),
        Some(b) if !(b.is_ascii_lowercase() || b == b'_') => {
            return Err(invalid("it must start with a lowercase letter or `_`"))
        }
        _ => {}
    }
    if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(invalid(
            "only lowercase letters, digits and `_` are allowed",
        ));
    }
    if name.len() > max {
        return Err(invalid("it is too long"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated_before_any_sql_is_built() {
        assert!(identifier("table", "sessions", 48).is_ok());
        assert!(identifier("table", "_s2", 48).is_ok());
        for bad in [
            "",
            "Sessions",
            "2sessions",
            "sess-ions",
            "s\"; DROP TABLE users; --",
            "séance",
            &"a".repeat(49),
        ] {
            assert!(identifier("table", bad, 48).is_err(), "{bad:?}");
        }
    }
}
