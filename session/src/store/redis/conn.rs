//! The store's connections: one multiplexed `redis` connection (or, on a Redis Cluster, one
//! cluster connection, which keeps a multiplexed connection per node) per tokio runtime that
//! uses the store, opened on first use and replaced after a failure.
//!
//! A multiplexed connection spawns its driver task on the runtime that opened it, and answers
//! only while that runtime runs: so each runtime (an actix-web worker, a test's runtime) gets its
//! own, and the requests of all of its sessions share it (pipelined by the `redis` crate).
//!
//! The `redis` crate's `ConnectionManager` is not used: it keeps a failed reconnect until a
//! request trips over it (so the first request after Redis is back would fail) and retries
//! with a backoff that can outlast the store's timeout. Here a failed connect is forgotten at
//! once, and the next operation connects again.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use ::redis::{
    aio::{ConnectionLike, MultiplexedConnection},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
    AsyncConnectionConfig, Client, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult,
    Script, ServerErrorKind, Value,
};
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::runtime::Id;

use super::replicas::Replicas;
use crate::StoreError;

/// What the store connects to: one server (behind one address), or a Redis Cluster. One per
/// store, cloned only to open a connection: the size of either client does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Target {
    Server(Client),
    Cluster(ClusterClient),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Server(client) => f.debug_tuple("Server").field(client).finish(),
            Self::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

/// A runtime's connection: multiplexed to one server, or a cluster connection (which keeps one
/// multiplexed connection per node, follows `MOVED` and `ASK`, and reloads the slot map itself).
#[derive(Clone)]
enum Conn {
    Server(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Server(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Server(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Server(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A connection being opened; every operation of the runtime waits on the same one.
type Connecting = Shared<BoxFuture<'static, Result<Conn, Arc<RedisError>>>>;

enum State {
    Connecting(Connecting),
    Ready(Conn),
}

struct Slot {
    runtime: Id,
    /// Tells this connection from a later one of the same runtime: only the connection that
    /// failed is forgotten, never one another operation opened meanwhile.
    generation: u64,
    state: State,
}

#[derive(Default)]
struct Slots {
    list: Vec<Slot>,
    next_generation: u64,
}

/// No connection lent yet (see [`Connections::query`]).
const NONE: u64 = u64::MAX;

pub(super) struct Connections {
    target: Target,
    timeout: Duration,
    /// One per runtime that used the store (a handful: the workers). A runtime that ended
    /// leaves its slot (its connection's driver task ended with it) until the store is dropped,
    /// which closes every connection.
    slots: Mutex<Slots>,
}

/// A connection lent to one operation.
struct Lent {
    conn: Conn,
    generation: u64,
    /// Opened for this operation (not one that may have died unnoticed since its last use).
    fresh: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis")]
struct ConnectError(#[source] Arc<RedisError>);

#[derive(Debug, thiserror::Error)]
#[error("Redis did not answer within {0:?}")]
struct TimedOut(Duration);

impl Connections {
    pub(super) fn new(target: Target, timeout: Duration) -> Self {
        Self {
            target,
            timeout,
            slots: Mutex::default(),
        }
    }

    pub(super) fn target(&self) -> &Target {
        &self.target
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `cmd` and returns the reply; an error reply is an `Err`. With `script`, `cmd` is its
    /// `EVALSHA`, and a `NOSCRIPT` reply (Redis restarted or flushed its scripts) loads the script
    /// and sends `cmd` again. With `retry`, an operation that found its connection dropped is
    /// sent once more on a new one: only for commands whose second run changes nothing more than
    /// the first (a dropped connection does not tell whether the first ran). With `wait`, `cmd`
    /// is a write: its `WAIT` is pipelined behind it, and too few replicas make it an `Err`.
    ///
    /// The whole operation, connecting included, is bounded by the store's timeout. A timeout, or
    /// an error after which the connection cannot be trusted, makes the next operation connect
    /// again.
    pub(super) async fn query(
        &self,
        op: &'static str,
        cmd: &Cmd,
        script: Option<&Script>,
        retry: bool,
        wait: Option<&Replicas>,
    ) -> Result<Value, StoreError> {
        // The runtime decides which connection; outside of one, nothing can be awaited.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::new(op, "the Redis store runs only inside a tokio runtime"))?
            .id();
        let used = AtomicU64::new(NONE);
        let attempt = self.attempt(op, runtime, cmd, script, retry, wait, &used);
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                // The connection may be stuck (a Redis that stopped answering): the next
                // operation gets a new one.
                self.forget(runtime, used.load(Ordering::Relaxed));
                Err(StoreError::new(op, TimedOut(self.timeout)))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        op: &'static str,
        runtime: Id,
        cmd: &Cmd,
        script: Option<&Script>,
        retry: bool,
        wait: Option<&Replicas>,
        used: &AtomicU64,
    ) -> Result<Value, StoreError> {
        let mut lent = self.lend(op, runtime, used).await?;
        let mut result = send(&mut lent.conn, cmd, script, wait).await;
        if let Err(err) = &result {
            if retry && !lent.fresh && err.is_connection_dropped() {
                // An idle connection that died unnoticed (Redis restarted, say).
                self.forget(runtime, lent.generation);
                lent = self.lend(op, runtime, used).await?;
                result = send(&mut lent.conn, cmd, script, wait).await;
            }
        }
        let (value, replicated) = result.map_err(|err| {
            if needs_new_connection(&err) {
                self.forget(runtime, lent.generation);
            }
            StoreError::new(op, err)
        })?;
        if let (Some(wait), Some(replicated)) = (wait, replicated) {
            wait.check(replicated)
                .map_err(|err| StoreError::new(op, err))?;
        }
        Ok(value)
    }

    /// This runtime's connection, opened if there is none.
    async fn lend(
        &self,
        op: &'static str,
        runtime: Id,
        used: &AtomicU64,
    ) -> Result<Lent, StoreError> {
        let (generation, connecting) = {
            let mut slots = self.lock();
            match slots.list.iter().find(|slot| slot.runtime == runtime) {
                Some(Slot {
                    state: State::Ready(conn),
                    generation,
                    ..
                }) => {
                    used.store(*generation, Ordering::Relaxed);
                    return Ok(Lent {
                        conn: conn.clone(),
                        generation: *generation,
                        fresh: false,
                    });
                }
                Some(Slot {
                    state: State::Connecting(connecting),
                    generation,
                    ..
                }) => (*generation, connecting.clone()),
                None => {
                    let generation = slots.next_generation;
                    slots.next_generation += 1;
                    let connecting = self.connect();
                    slots.list.push(Slot {
                        runtime,
                        generation,
                        state: State::Connecting(connecting.clone()),
                    });
                    (generation, connecting)
                }
            }
        };
        used.store(generation, Ordering::Relaxed);
        match connecting.await {
            Ok(conn) => {
                let mut slots = self.lock();
                if let Some(slot) = slots
                    .list
                    .iter_mut()
                    .find(|slot| slot.runtime == runtime && slot.generation == generation)
                {
                    slot.state = State::Ready(conn.clone());
                }
                Ok(Lent {
                    conn,
                    generation,
                    fresh: true,
                })
            }
            Err(err) => {
                self.forget(runtime, generation);
                Err(StoreError::new(op, ConnectError(err)))
            }
        }
    }

    /// Opens a connection: TCP, TLS or a Unix socket, then `AUTH` and `SELECT` as the URL says
    /// (the `redis` crate does all of it). Bounded by the timeout of the operations waiting on it:
    /// on one server the crate's own connect and response timeouts are off, so that the store's
    /// timeout is the only one (a longer one must not fail at the crate's 500 ms).
    ///
    /// A cluster connection asks a node for the slot map first, then connects to each primary.
    fn connect(&self) -> Connecting {
        let target = self.target.clone();
        async move {
            match target {
                Target::Server(client) => {
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(None)
                        .set_response_timeout(None);
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                        .map(Conn::Server)
                }
                // A cluster config without a per-request response timeout. The connect timeout
                // stays the client's, and so does a response timeout the client was built with
                // (the crate then also bounds each operation by it).
                Target::Cluster(client) => client
                    .get_async_connection_with_config(ClusterConfig::new())
                    .await
                    .map(Conn::Cluster),
            }
            .map_err(Arc::new)
        }
        .boxed()
        .shared()
    }

    /// Drops the runtime's connection if it is still the given one.
    fn forget(&self, runtime: Id, generation: u64) {
        if generation != NONE {
            self.lock()
                .list
                .retain(|slot| slot.runtime != runtime || slot.generation != generation);
        }
    }
}

/// Sends `cmd`, loading `script` once if Redis does not have it (`EVALSHA`'s `NOSCRIPT`). With
/// `wait`, its `WAIT` follows `cmd` in one pipeline, and its reply comes back next to `cmd`'s.
async fn send(
    conn: &mut Conn,
    cmd: &Cmd,
    script: Option<&Script>,
    wait: Option<&Replicas>,
) -> RedisResult<(Value, Option<Value>)> {
    let pipeline = wait.map(|wait| {
        let mut pipeline = Pipeline::with_capacity(2);
        pipeline
            .add_command(cmd.clone())
            .add_command(wait.command().clone());
        pipeline
    });
    match exchange(conn, cmd, pipeline.as_ref()).await {
        Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => match script {
            Some(script) => {
                script.load_async(conn).await?;
                exchange(conn, cmd, pipeline.as_ref()).await
            }
            None => Err(err),
        },
        result => result,
    }
}

/// Sends `cmd` alone, or `pipeline` (`cmd` and its `WAIT`) when there is one.
async fn exchange(
    conn: &mut Conn,
    cmd: &Cmd,
    pipeline: Option<&Pipeline>,
) -> RedisResult<(Value, Option<Value>)> {
    match pipeline {
        None => request(conn, cmd).await.map(|value| (value, None)),
        Some(pipeline) => request_waiting(conn, pipeline).await,
    }
}

/// Sends a write and its `WAIT` (`pipeline`); an error reply to the write is an `Err`, and so
/// is one to `WAIT` after a write that succeeded.
async fn request_waiting(
    conn: &mut Conn,
    pipeline: &Pipeline,
) -> RedisResult<(Value, Option<Value>)> {
    // On a cluster, the pipeline goes to the node of the write's key (`WAIT` names none).
    let mut replies = conn.req_packed_commands(pipeline, 0, 2).await?.into_iter();
    match (replies.next(), replies.next()) {
        (Some(Value::ServerError(err)), _) | (_, Some(Value::ServerError(err))) => Err(err.into()),
        (Some(value), Some(replicated)) => Ok((value, Some(replicated))),
        _ => Err(RedisError::from((
            ErrorKind::Parse,
            "a write and its WAIT did not get two replies",
        ))),
    }
}

/// Sends `cmd`; an error reply is an `Err`. Only the reply itself is checked, not the items of
/// an array (`query_async` would rebuild every array to look into it): none of the store's
/// commands answers with nested errors, and the reply readers take one for an unexpected reply.
async fn request(conn: &mut Conn, cmd: &Cmd) -> RedisResult<Value> {
    match conn.req_packed_command(cmd).await? {
        Value::ServerError(err) => Err(err.into()),
        value => Ok(value),
    }
}

/// Errors after which the connection is replaced: it broke, or Redis refuses it in a way a
/// new connection may not be refused (behind a failover address, it reaches the new primary).
fn needs_new_connection(err: &RedisError) -> bool {
    err.is_unrecoverable_error()
        || err.is_io_error()
        || matches!(
            err.code(),
            Some("READONLY" | "MASTERDOWN" | "NOAUTH" | "WRONGPASS")
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of an error reply, as Redis writes it.
    fn reply(line: &str) -> RedisError {
        ::redis::parse_redis_value(format!("-{line}\r\n").as_bytes())
            .and_then(Value::extract_error)
            .expect_err("an error reply")
    }

    #[test]
    fn only_errors_a_new_connection_may_not_meet_replace_it() {
        let io = |kind| RedisError::from(std::io::Error::from(kind));
        assert!(needs_new_connection(&io(
            std::io::ErrorKind::ConnectionReset
        )));
        assert!(needs_new_connection(&io(std::io::ErrorKind::BrokenPipe)));
        // A primary turned replica (failover behind one address), or one that lost its own.
        for line in [
            "READONLY You can't write against a read only replica.",
            "MASTERDOWN Link with MASTER is down",
            "NOAUTH Authentication required.",
            "WRONGPASS invalid username-password pair or user is disabled.",
        ] {
            assert!(needs_new_connection(&reply(line)), "{line}");
        }
        // Refusals of one command: the connection is fine.
        for line in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "ERR wrong number of arguments",
            "NOSCRIPT No matching script.",
        ] {
            assert!(!needs_new_connection(&reply(line)), "{line}");
        }
    }
}
