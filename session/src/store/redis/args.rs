//! What the store sends: times in milliseconds, and the keys and arguments of its commands,
//! written straight into the command's buffer.

use std::{
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{Cmd, RedisWrite, Script};
use serde_json::Map;

use super::DATA;
use crate::{ChangeSet, StorageKey};

/// Milliseconds since the Unix epoch (0 before it).
pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(super) fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The Redis TTL for a deadline, as a duration from `now` (at least 1 ms: Redis deletes a key
/// whose TTL is zero or negative).
pub(super) fn ttl_millis(expires_at: SystemTime, now: SystemTime) -> u64 {
    let left = expires_at.duration_since(now).unwrap_or_default();
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The hex SHA-256 of an owner: names its index set.
pub(super) fn owner_digest(owner: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, owner.as_bytes());
    let mut bytes = [0; 32];
    bytes.copy_from_slice(digest.as_ref());
    StorageKey::from_bytes(bytes).to_hex()
}

/// Appends one argument made of `first` then `second` (a prefix and a name), written straight
/// into the command's buffer.
pub(super) fn arg_pair(cmd: &mut Cmd, first: &[u8], second: &[u8]) {
    let mut arg = cmd.writer_for_next_arg();
    // Writing into memory cannot fail.
    let _ = arg.write_all(first);
    let _ = arg.write_all(second);
}

/// The start of an `EVALSHA` of `script` on `keys` keys, to which the caller adds the keys, then
/// the arguments.
pub(super) fn evalsha_head(script: &Script, keys: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(32, 512);
    cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys);
    cmd
}

/// An `EVALSHA` of `script` on `keys`, to which the caller adds the arguments.
pub(super) fn evalsha(script: &Script, keys: &[&str]) -> Cmd {
    let mut cmd = evalsha_head(script, keys.len());
    for key in keys {
        cmd.arg(*key);
    }
    cmd
}

/// Appends `d:{key}, json` pairs for `data` to a command.
pub(super) fn push_pairs(
    cmd: &mut Cmd,
    data: &Map<String, serde_json::Value>,
) -> Result<(), serde_json::Error> {
    for (key, value) in data {
        arg_pair(cmd, DATA.as_bytes(), key.as_bytes());
        serde_json::to_writer(cmd.writer_for_next_arg(), value)?;
    }
    Ok(())
}

/// Appends a change set's entries as the update scripts take them: the number of removed
/// fields, the removed `d:{key}` fields, then the `d:{key}, json` pairs it sets.
pub(super) fn push_change(cmd: &mut Cmd, changes: &ChangeSet) -> Result<(), serde_json::Error> {
    cmd.arg(changes.removed().len());
    for removed in changes.removed() {
        arg_pair(cmd, DATA.as_bytes(), removed.as_bytes());
    }
    push_pairs(cmd, changes.patch())
}
