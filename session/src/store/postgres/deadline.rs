//! The deadline that the overwriting writes (update, idle refresh) carry to the server.
//!
//! A statement can reach a server process that does not run it for a while: a frozen or
//! descheduled backend, with the postmaster frozen too, so that the cancel request sent when
//! the client gives up waits in the listen queue and arrives after the statement has run. The
//! client has answered with an error meanwhile, and the same session has been written through
//! other connections; the stale statement, run last, would set its keys back.
//!
//! So each such write carries a deadline, and the database refuses it (changes nothing, answers
//! "not in time") when its own clock, read as the statement runs, is past it. PostgreSQL's
//! `statement_timeout` and `statement_timestamp()` cannot do this: both start when the backend
//! reads the statement, which is late for exactly the statements in question.
//!
//! Invariant: a write this store reported as timed out never applies afterwards, as long as the
//! database's clock is not behind the application's by more than [`MARGIN`] of the timeout. The
//! deadline is the application's clock when the operation starts plus 90 % of the store's
//! timeout, so that a database clock up to 10 % of the timeout behind still refuses a statement
//! run after the client gave up. A database clock ahead of the application's shortens the
//! window instead: by more than 90 % of the timeout, every write is refused, each with an error
//! that says so (never silently dropped). Once a statement has passed the check, its row lock
//! orders it before any later write of the session, even if its process stalls before commit.

use std::time::{Duration, SystemTime};

use crate::StoreError;

/// The part of the store's timeout kept back from the deadline, for a database clock behind
/// the application's.
pub(super) const MARGIN: u32 = 10;

/// The deadline of a write that starts now under `timeout`.
pub(super) fn deadline(timeout: Duration) -> SystemTime {
    let now = SystemTime::now();
    // A timeout too long to add (`Duration::MAX`, "none") gets a deadline ten years on, well
    // inside PostgreSQL's timestamp range.
    let within = (timeout / 100 * (100 - MARGIN)).min(Duration::from_secs(10 * 365 * 86_400));
    now + within
}

/// Whether the write answered by `row` (its `in_time` column at `column`) ran before its
/// deadline; an error that says why if not.
pub(super) fn in_time(
    op: &'static str,
    row: &tokio_postgres::Row,
    column: usize,
) -> Result<(), StoreError> {
    let in_time: bool = row.try_get(column).map_err(|e| StoreError::new(op, e))?;
    if in_time {
        return Ok(());
    }
    Err(StoreError::new(
        op,
        "the database refused the write: its clock was past the write's deadline (90 % of the \
         store's timeout) when the statement ran, so nothing was changed. Either the server \
         held the statement up, or its clock is ahead of the application's (check NTP)",
    ))
}

/// The row count of an `update` or `touch` answer, once it is known to be in time.
pub(super) fn counted(
    op: &'static str,
    row: Option<tokio_postgres::Row>,
) -> Result<u64, StoreError> {
    let row = row.ok_or_else(|| StoreError::new(op, "the write answered no row"))?;
    in_time(op, &row, 1)?;
    let rows: i64 = row.try_get(0).map_err(|e| StoreError::new(op, e))?;
    Ok(u64::try_from(rows).unwrap_or(0))
}
