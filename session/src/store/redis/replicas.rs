//! The opt-in wait for replicas ([`RedisStoreBuilder::wait_for_replicas`]): every write is
//! followed, in the same pipeline on the same connection, by `WAIT n timeout`, and a write that
//! fewer than `n` replicas acknowledged in time fails.
//!
//! `WAIT` waits for the replication offset of the connection's last write. The connection is
//! shared by the requests of a runtime, so that offset is at or past this request's own write,
//! which was sent just before the `WAIT` on the same connection: waiting for it covers the
//! write.
//!
//! [`RedisStoreBuilder::wait_for_replicas`]: super::RedisStoreBuilder::wait_for_replicas

use std::time::Duration;

use ::redis::{Cmd, Script, Value};

use super::{RedisStore, RedisStoreBuilder};
use crate::{BuildError, StoreError};

impl RedisStore {
    /// Runs a write script like [`invoke`](Self::invoke), followed by the wait for replicas
    /// when the store has one.
    pub(super) async fn invoke_write(
        &self,
        op: &'static str,
        script: &Script,
        cmd: &Cmd,
        retry: bool,
    ) -> Result<Value, StoreError> {
        let wait = self.inner.replicas.as_ref();
        self.inner
            .conns
            .query(op, cmd, Some(script), retry, wait)
            .await
    }
}

impl RedisStoreBuilder {
    /// Makes every write wait until `count` replicas have it, for at most `timeout` (off by
    /// default; a `count` of 0 turns it off again).
    ///
    /// Redis replicates asynchronously: a write it answered may not have reached any replica
    /// yet, and is lost if the primary dies and a replica is promoted in its place. With this
    /// setting, every write (creating, updating, refreshing, renewing and deleting a session,
    /// ending an owner's sessions, invalidating a cached copy) is followed on the same connection,
    /// in the same pipeline, by Redis's `WAIT count timeout`, and fails when fewer than `count`
    /// replicas acknowledged it within `timeout`: the request then answers with the store's
    /// failure status instead of confirming a write a failover could take back. A write that
    /// failed this way **may still be on the primary** (and reach the replicas later): `WAIT`
    /// does not undo it. Reads, listing an owner's sessions and filling a cache do not wait.
    ///
    /// `WAIT` makes a write as durable as `count` replicas, not strongly consistent: a replica
    /// that acknowledged it can still be the one not promoted. Each write takes at least one
    /// round trip from the primary to its replicas longer, and Redis answers nothing else on a
    /// connection while a `WAIT` on it blocks: the requests of one worker share one connection,
    /// so they queue behind each write's wait, reads included. While the replicas are down or
    /// lagging, every write of a worker holds its connection up to `timeout`: keep it short (a
    /// small multiple of the replication round trip). `timeout` must be shorter than the
    /// store's [`timeout`](Self::timeout), which bounds the write and its wait together;
    /// [`build`](Self::build) fails otherwise, and when `timeout` is zero (which `WAIT` takes
    /// as "forever").
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// # fn setup() -> Result<(), Box<dyn std::error::Error>> {
    /// // A primary with two replicas (Sentinel-managed failover behind one address, say):
    /// // every write must reach at least one of them within 200 ms.
    /// let store = RedisStore::builder(redis::Client::open("redis://redis-primary:6379/")?)
    ///     .wait_for_replicas(1, Duration::from_millis(200))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// let builder = || RedisStore::builder(redis::Client::open("redis://127.0.0.1/").unwrap());
    /// assert!(builder().wait_for_replicas(1, Duration::from_millis(500)).build().is_ok());
    /// // No deadline, or one the store's own timeout (2 s) would cut short:
    /// assert!(builder().wait_for_replicas(1, Duration::ZERO).build().is_err());
    /// assert!(builder().wait_for_replicas(1, Duration::from_secs(2)).build().is_err());
    /// ```
    pub fn wait_for_replicas(mut self, count: usize, timeout: Duration) -> Self {
        self.replicas = (count, timeout);
        self
    }

    /// The checked wait for replicas, if there is one.
    pub(super) fn replicas(&self) -> Result<Option<Replicas>, BuildError> {
        let (count, timeout) = self.replicas;
        if count > 0 && timeout.is_zero() {
            return Err(BuildError::Timeouts(
                "the wait for replicas must be longer than zero",
            ));
        }
        if count > 0 && timeout >= self.timeout {
            return Err(BuildError::Timeouts(
                "the wait for replicas must be shorter than the Redis timeout",
            ));
        }
        Ok(Replicas::new(count, timeout))
    }
}

/// How many replicas must acknowledge a write, and for how long to wait for them.
pub(super) struct Replicas {
    count: usize,
    timeout: Duration,
    /// `WAIT count timeout_ms`, packed once.
    wait: Cmd,
}

/// A write that fewer replicas than asked for acknowledged in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the write reached only {reached} of {wanted} replicas within {timeout:?} \
     (it may still be on the primary, and reach them later)"
)]
pub(super) struct NotReplicated {
    reached: i64,
    wanted: usize,
    timeout: Duration,
}

/// `WAIT` answered with something other than a count.
#[derive(Debug, thiserror::Error)]
#[error("WAIT answered {0:?} instead of a number of replicas")]
pub(super) struct UnexpectedWaitReply(Value);

#[derive(Debug, thiserror::Error)]
pub(super) enum WaitError {
    #[error(transparent)]
    NotReplicated(#[from] NotReplicated),
    #[error(transparent)]
    Unexpected(#[from] UnexpectedWaitReply),
}

impl Replicas {
    /// `None` for no replicas: nothing to wait for.
    pub(super) fn new(count: usize, timeout: Duration) -> Option<Self> {
        if count == 0 {
            return None;
        }
        let mut wait = ::redis::cmd("WAIT");
        wait.arg(count).arg(wait_millis(timeout));
        Some(Self {
            count,
            timeout,
            wait,
        })
    }

    /// The `WAIT` command to send after a write.
    pub(super) fn command(&self) -> &Cmd {
        &self.wait
    }

    /// Checks `WAIT`'s reply: the number of replicas that acknowledged the write.
    pub(super) fn check(&self, reply: Value) -> Result<(), WaitError> {
        let Value::Int(reached) = reply else {
            return Err(UnexpectedWaitReply(reply).into());
        };
        if usize::try_from(reached).is_ok_and(|reached| reached >= self.count) {
            Ok(())
        } else {
            Err(NotReplicated {
                reached,
                wanted: self.count,
                timeout: self.timeout,
            }
            .into())
        }
    }
}

/// `WAIT`'s timeout in milliseconds, at least 1: `WAIT n 0` would block until the replicas
/// answer, however long that takes.
pub(super) fn wait_millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_replicas_means_no_wait() {
        assert!(Replicas::new(0, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn the_wait_never_blocks_forever() {
        let wait = |d| {
            let replicas = Replicas::new(2, d).unwrap();
            String::from_utf8(replicas.command().get_packed_command()).unwrap()
        };
        assert_eq!(wait(Duration::from_millis(250)), wait_cmd("2", "250"));
        // Below a millisecond is one millisecond, not `WAIT 2 0` (no deadline).
        assert_eq!(wait(Duration::from_micros(10)), wait_cmd("2", "1"));
        assert_eq!(wait(Duration::ZERO), wait_cmd("2", "1"));
    }

    fn wait_cmd(count: &str, millis: &str) -> String {
        format!(
            "*3\r\n$4\r\nWAIT\r\n${}\r\n{count}\r\n${}\r\n{millis}\r\n",
            count.len(),
            millis.len()
        )
    }

    #[test]
    fn fewer_replicas_than_asked_for_fail_the_write() {
        let replicas = Replicas::new(2, Duration::from_millis(100)).unwrap();
        assert!(replicas.check(Value::Int(2)).is_ok());
        assert!(replicas.check(Value::Int(3)).is_ok());
        let err = replicas.check(Value::Int(1)).unwrap_err();
        assert!(matches!(err, WaitError::NotReplicated(_)));
        assert_eq!(
            err.to_string(),
            "the write reached only 1 of 2 replicas within 100ms \
             (it may still be on the primary, and reach them later)"
        );
        assert!(matches!(
            replicas.check(Value::Int(-1)),
            Err(WaitError::NotReplicated(_))
        ));
        assert!(matches!(
            replicas.check(Value::Okay),
            Err(WaitError::Unexpected(_))
        ));
    }
}
