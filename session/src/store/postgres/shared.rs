//! The PostgreSQL store's shared connections: its single-row statements sent over a few
//! connections that every request shares, pipelined, instead of one pooled connection per
//! operation (see [`PostgresStoreBuilder::shared_connections`](super::super::PostgresStoreBuilder::shared_connections)).
//!
//! A session's key always picks the same connection, so the statements of one session reach the
//! server in the order they were issued and two requests of one visitor never wait for each
//! other's row lock. A statement waiting for a lock held elsewhere fails at the server first
//! (each connection's `lock_timeout` is 90 % of the store's timeout).
//!
//! What needs care is a statement that times out all the same: it may still be queued at the
//! server. So its connection leaves service at once, and one drain per connection sends a
//! marker statement after every statement that timed out on it and, while the marker has not
//! answered, from 100 ms on, cancels whatever the connection runs. While a drain runs, its slot
//! serves no statement, on that connection or a new one, and a drained connection never goes
//! back to the pool (a late cancel request could reach it there). So a timed-out write either
//! is cancelled or lands before any later statement of this instance on its session; unless
//! the drain gives up (cancel requests that cannot reach the server, say through a proxy or
//! with a server that requires TLS for them, and a statement that does not end within
//! [`DRAIN_LIMIT`]), or its task is dropped (the runtime shuts down): then the slot serves again
//! on a new connection, the old one is let go (it closes once what is still queued on it ends),
//! and a statement still queued at the server may run later.

use std::{
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use deadpool_postgres::{Object, Pool};
use tokio::{sync::Notify, time::Instant};
use tokio_postgres::{Client, Statement};

use super::connection::{connection_lost, Answer, Call};
use crate::{StorageKey, StoreError};

/// The statements shared connections serve: one row each, by primary key.
#[derive(Clone, Copy, Debug)]
pub(super) enum Single {
    Load,
    Create,
    Update,
    UpdateReturning,
    Touch,
    Delete,
}

impl Single {
    /// Whether the statement only reads (so it may run again after a lost connection).
    pub(super) fn is_read(self) -> bool {
        matches!(self, Single::Load)
    }

    pub(super) const ALL: [Single; 6] = [
        Single::Load,
        Single::Create,
        Single::Update,
        Single::UpdateReturning,
        Single::Touch,
        Single::Delete,
    ];
}

/// How often a drain asks the server to cancel the statement it is running.
const CANCEL_EVERY: Duration = Duration::from_millis(100);
/// How long a drain goes on cancelling before it gives up and lets the connection go.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// A few connections taken from the pool for good, each serving the keys of one slot.
pub(super) struct SharedConnections {
    pool: Pool,
    /// The text of each [`Single`] statement, in [`Single::ALL`]'s order.
    sql: [String; 6],
    lock_timeout: Option<Duration>,
    slots: Box<[Arc<Slot>]>,
}

struct Slot {
    state: Mutex<SlotState>,
    /// Signalled when a drain of this slot ends.
    drained: Notify,
    /// Held while connecting, so that waiting requests do not each open a connection.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    live: Option<Arc<Connection>>,
    /// Drains in progress: the slot serves no statement until they end.
    draining: usize,
}

impl SlotState {
    fn usable(&self) -> Option<&Arc<Connection>> {
        self.live.as_ref().filter(|c| !c.client().is_closed())
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection and its prepared statements. It never goes back to the pool: a late cancel
/// request could reach it there, and it carries this store's `lock_timeout`.
struct Connection {
    /// Taken out of the pool in `drop`.
    object: Option<Object>,
    statements: Vec<Statement>,
    /// How many statements timed out on it. Changed under the slot's lock.
    timeouts: AtomicU64,
    /// Whether a drain of it runs. Changed under the slot's lock.
    draining: AtomicBool,
}

impl Connection {
    fn client(&self) -> &Client {
        self.object.as_ref().expect("present until dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

impl SharedConnections {
    /// `lock_timeout`: how long a statement may wait for a row lock before the server fails it
    /// (PostgreSQL's `lock_timeout`, set on each shared connection), if at all.
    pub(super) fn new(
        pool: Pool,
        sql: [String; 6],
        connections: usize,
        lock_timeout: Option<Duration>,
    ) -> Self {
        Self {
            pool,
            sql,
            lock_timeout,
            slots: (0..connections.max(1))
                .map(|_| {
                    Arc::new(Slot {
                        state: Mutex::default(),
                        drained: Notify::new(),
                        connecting: tokio::sync::Mutex::new(()),
                    })
                })
                .collect(),
        }
    }

    /// How many connections (slots) there are.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Runs `call` with `which`'s statement on the connection of `key`'s slot, within `timeout`.
    /// On a timeout the connection is drained (see the module's documentation).
    pub(super) async fn run(
        &self,
        op: &'static str,
        key: &StorageKey,
        which: Single,
        timeout: Duration,
        call: Call<'_>,
    ) -> Result<Answer, StoreError> {
        // A timeout too long to add (`Duration::MAX`, say) means none, as with
        // `tokio::time::timeout`.
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365 * 30));
        let slot = &self.slots[usize::from(key.as_bytes()[0]) % self.slots.len()];
        let timed_out = || StoreError::new(op, format!("timed out after {timeout:?}"));
        let mut retried = false;
        loop {
            let connection = tokio::time::timeout_at(deadline, self.connection(slot, op))
                .await
                .map_err(|_| timed_out())??;
            let statement = &connection.statements[which as usize];
            match tokio::time::timeout_at(deadline, call.run(op, connection.client(), statement))
                .await
            {
                // A read on a connection the server ended (a restart, say) runs once more on a
                // new one (see `super::connection`).
                Ok(Err(err)) if !retried && which.is_read() && connection_lost(&err) => {
                    tracing::debug!(
                        error = %err,
                        cause = %std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default(),
                        "a shared session store connection was lost; trying a new one"
                    );
                    forget(slot, &connection);
                    retried = true;
                }
                Ok(result) => return result,
                Err(_) => {
                    retire(slot, connection);
                    return Err(timed_out());
                }
            }
        }
    }

    async fn connection(
        &self,
        slot: &Slot,
        op: &'static str,
    ) -> Result<Arc<Connection>, StoreError> {
        loop {
            let mut drained = pin!(slot.drained.notified());
            let draining = {
                let state = slot.lock();
                if state.draining == 0 {
                    if let Some(live) = state.usable() {
                        return Ok(live.clone());
                    }
                }
                // Registered before the lock is let go, so the end of the drain is not missed.
                drained.as_mut().enable();
                state.draining > 0
            };
            if draining {
                drained.await;
                continue;
            }
            let _connecting = slot.connecting.lock().await;
            {
                let state = slot.lock();
                if state.usable().is_some() || state.draining > 0 {
                    continue;
                }
            }
            let connection = Arc::new(self.connect(op).await?);
            slot.lock().live = Some(connection.clone());
            return Ok(connection);
        }
    }

    async fn connect(&self, op: &'static str) -> Result<Connection, StoreError> {
        let object = self.pool.get().await.map_err(|e| StoreError::new(op, e))?;
        // Out of the pool from here on, whatever happens below.
        let mut connection = Connection {
            object: Some(object),
            statements: Vec::with_capacity(self.sql.len()),
            timeouts: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        };
        let client = connection.client();
        if let Some(wait) = self.lock_timeout {
            client
                .batch_execute(&format!("SET lock_timeout = {}", wait.as_millis()))
                .await
                .map_err(|e| StoreError::new(op, e))?;
        }
        let mut statements = Vec::with_capacity(self.sql.len());
        for sql in &self.sql {
            statements.push(
                client
                    .prepare(sql)
                    .await
                    .map_err(|e| StoreError::new(op, e))?,
            );
        }
        connection.statements = statements;
        Ok(connection)
    }
}

/// `connection` was lost: the slot's next statement gets a new one.
fn forget(slot: &Slot, connection: &Arc<Connection>) {
    let mut state = slot.lock();
    if state
        .live
        .as_ref()
        .is_some_and(|live| Arc::ptr_eq(live, connection))
    {
        state.live = None;
    }
}

/// A statement timed out on `connection`: takes it out of service and makes sure a drain of it
/// runs (a drain already running sees this timeout and sends another marker).
fn retire(slot: &Arc<Slot>, connection: Arc<Connection>) {
    let mut state = slot.lock();
    if state
        .live
        .as_ref()
        .is_some_and(|live| Arc::ptr_eq(live, &connection))
    {
        state.live = None;
    }
    connection.timeouts.fetch_add(1, Ordering::SeqCst);
    if connection.draining.swap(true, Ordering::SeqCst) {
        return;
    }
    state.draining += 1;
    drop(state);
    tracing::debug!("a session store statement timed out; draining its shared connection");
    let drain = Drain {
        slot: slot.clone(),
        connection,
        ended: false,
    };
    tokio::spawn(drain.run());
}

/// The drain of one connection; holds its slot until it ends (dropped with its task too, say
/// when the runtime shuts down).
struct Drain {
    slot: Arc<Slot>,
    connection: Arc<Connection>,
    ended: bool,
}

impl Drain {
    async fn run(mut self) {
        loop {
            let seen = self.connection.timeouts.load(Ordering::SeqCst);
            if !cancel_until_answered(self.connection.client()).await {
                tracing::warn!(
                    "a drained session store connection stayed silent; letting it go with its \
                     statements in an unknown state"
                );
                let slot = self.slot.clone();
                self.end(&mut slot.lock());
                return;
            }
            if self.end_if_no_timeout_since(seen) {
                return;
            }
        }
    }

    /// Ends the drain if no statement timed out since its marker was sent. Under the slot's
    /// lock, so that a timeout either is seen here or starts a drain of its own.
    fn end_if_no_timeout_since(&mut self, seen: u64) -> bool {
        let slot = self.slot.clone();
        let mut state = slot.lock();
        if self.connection.timeouts.load(Ordering::SeqCst) != seen {
            return false;
        }
        self.end(&mut state);
        true
    }

    fn end(&mut self, state: &mut SlotState) {
        self.connection.draining.store(false, Ordering::SeqCst);
        state.draining -= 1;
        self.ended = true;
        self.slot.drained.notify_waiters();
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if !self.ended {
            tracing::warn!(
                "the drain of a session store connection was dropped before it ended (is the \
                 runtime shutting down?); its statements are in an unknown state"
            );
            let slot = self.slot.clone();
            self.end(&mut slot.lock());
        }
    }
}

/// Sends a marker statement behind everything queued on `client`'s connection and, while it
/// has not answered, asks the server every [`CANCEL_EVERY`] to cancel what the connection runs.
/// True once the marker answers; false after [`DRAIN_LIMIT`] without an answer.
async fn cancel_until_answered(client: &Client) -> bool {
    let token = client.cancel_token();
    let mut marker = pin!(client.simple_query(""));
    let give_up = Instant::now() + DRAIN_LIMIT;
    loop {
        // The marker goes out on the first wait, before any cancel: a connection that was only
        // slow drains without cancelling anything. Any answer, an error included, means every
        // statement sent before it is over.
        if tokio::time::timeout(CANCEL_EVERY, &mut marker)
            .await
            .is_ok()
        {
            return true;
        }
        if Instant::now() >= give_up {
            return false;
        }
        match tokio::time::timeout(CANCEL_EVERY, token.cancel_query(tokio_postgres::NoTls)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(
                error = %err,
                "could not cancel a statement on a drained session store connection"
            ),
            Err(_) => tracing::warn!(
                "no answer to a cancel request for a drained session store connection"
            ),
        }
    }
}
