//! The PostgreSQL store's shared connections: its single-row statements sent over a few
//! connections that every request shares, pipelined, instead of one pooled connection per
//! operation (see [`PostgresStoreBuilder::shared_connections`](super::PostgresStoreBuilder::shared_connections)).
//!
//! A session's key always picks the same connection, so the statements of one session reach the
//! server in the order they were issued and two requests of one visitor never wait for each
//! other's row lock. What needs care is a statement that times out: it may still be queued at
//! the server. So the connection leaves service at once, a drain cancels whatever runs on it
//! until a marker statement sent behind everything else answers, and no new connection serves
//! those keys before the drain is over: the timed-out write either never lands or lands before
//! any later statement of this instance on its session.

use std::{
    pin::pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use deadpool_postgres::{Object, Pool};
use tokio::{sync::Notify, time::Instant};
use tokio_postgres::{Client, Statement};

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
/// How long a drain goes on cancelling before it closes the connection.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// A few connections taken from the pool for good, each serving the keys of one slot.
pub(super) struct SharedConnections {
    pool: Pool,
    /// The text of each [`Single`] statement, in [`Single::ALL`]'s order.
    sql: [String; 6],
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
    /// Drains in progress: no new connection serves the slot until they end.
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

/// A connection and its prepared statements.
struct Connection {
    /// Taken out in `drop` when the connection must not go back to the pool.
    object: Option<Object>,
    statements: Vec<Statement>,
    /// Set when a drain gave up on it: its state at the server is unknown.
    discard: AtomicBool,
}

impl Connection {
    fn client(&self) -> &Client {
        self.object.as_ref().expect("present until dropped")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.discard.load(Ordering::Relaxed) {
            if let Some(object) = self.object.take() {
                drop(Object::take(object));
            }
        }
    }
}

impl SharedConnections {
    pub(super) fn new(pool: Pool, sql: [String; 6], connections: usize) -> Self {
        Self {
            pool,
            sql,
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

    /// Runs `run` with `which`'s statement on the connection of `key`'s slot, within `timeout`.
    /// On a timeout the connection is drained (see the module's documentation).
    pub(super) async fn run<T>(
        &self,
        op: &'static str,
        key: &StorageKey,
        which: Single,
        timeout: Duration,
        run: impl AsyncFnOnce(&Client, &Statement) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let deadline = Instant::now() + timeout;
        let slot = &self.slots[usize::from(key.as_bytes()[0]) % self.slots.len()];
        let timed_out = || StoreError::new(op, format!("timed out after {timeout:?}"));
        let connection = tokio::time::timeout_at(deadline, self.connection(slot, op))
            .await
            .map_err(|_| timed_out())??;
        let statement = &connection.statements[which as usize];
        match tokio::time::timeout_at(deadline, run(connection.client(), statement)).await {
            Ok(result) => result,
            Err(_) => {
                drain(slot, connection);
                Err(timed_out())
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
                if let Some(live) = state.usable() {
                    return Ok(live.clone());
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
        let mut statements = Vec::with_capacity(self.sql.len());
        for sql in &self.sql {
            statements.push(
                object
                    .prepare(sql)
                    .await
                    .map_err(|e| StoreError::new(op, e))?,
            );
        }
        Ok(Connection {
            object: Some(object),
            statements,
            discard: AtomicBool::new(false),
        })
    }
}

/// Takes `connection` out of service and, in a task of its own, cancels what it runs until a
/// marker statement queued behind everything else answers (or the server stays silent for
/// the drain's time limit, after which the connection is closed).
fn drain(slot: &Arc<Slot>, connection: Arc<Connection>) {
    {
        let mut state = slot.lock();
        if state
            .live
            .as_ref()
            .is_some_and(|live| Arc::ptr_eq(live, &connection))
        {
            state.live = None;
        }
        state.draining += 1;
    }
    let slot = slot.clone();
    let finish = move |slot: &Slot| {
        slot.lock().draining -= 1;
        slot.drained.notify_waiters();
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        connection.discard.store(true, Ordering::Relaxed);
        finish(&slot);
        return;
    };
    runtime.spawn(async move {
        if !cancel_until_answered(connection.client()).await {
            tracing::warn!(
                "a drained session store connection stayed silent; closing it with its \
                 statements in an unknown state"
            );
            connection.discard.store(true, Ordering::Relaxed);
        }
        drop(connection);
        finish(&slot);
    });
}

/// Asks the server to cancel what `client`'s connection runs, every [`CANCEL_EVERY`], until a
/// marker statement sent behind everything else answers (true), or for at most
/// [`DRAIN_LIMIT`] (false).
async fn cancel_until_answered(client: &Client) -> bool {
    let token = client.cancel_token();
    let mut marker = pin!(client.simple_query(""));
    let give_up = Instant::now() + DRAIN_LIMIT;
    loop {
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
        // Any answer, an error included, means every statement sent before it is over.
        if tokio::time::timeout(CANCEL_EVERY, &mut marker)
            .await
            .is_ok()
        {
            return true;
        }
        if Instant::now() >= give_up {
            return false;
        }
    }
}
