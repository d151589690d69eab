//! The Redis store's flows on a Redis Cluster ([`RedisStore::cluster_builder`]), where a script
//! may touch only keys of one slot: each script here touches the one key it declares, and the
//! steps of a write are ordered as `RedisStore`'s documentation ("On a Redis Cluster") tells:
//! the session's hash first (its checks decide whether anything happens), then its owner's set;
//! a renew takes the old hash, places the new one, and puts the old one back if that fails.

use std::{collections::HashMap, time::SystemTime};

use ::redis::{Cmd, Script, Value};
use futures_util::future::{try_join, try_join_all};

use super::{
    args::*,
    reply::{
        hash_items, integer, member_key, owned_session, string, strings, unexpected, zero_or_array,
    },
    scripts::PRELUDE,
    RedisStore, DATA, EXPIRES, LAST_SEEN, OWNER, OWNER_INDEX, PREDECESSOR, RETIRED,
};
use crate::{ChangeSet, OwnedSession, StorageKey, StoreError, WriteResult};

/// `KEYS = [key]`, the update arguments of [`PRELUDE`]. The single server's `UPDATE` without
/// the owner index: returns `[1, owner digest before ('' for none)]`,
/// or 0 when the session is gone, expired or retired.
const UPDATE: &str = include_str!("cluster/update.lua");

/// `KEYS = [owner's set]`, `ARGV = [ttl_ms, n, n members to remove, members to add...]`: removes
/// and adds members; when it adds any, the set's TTL grows to at least `ttl_ms`.
const INDEX: &str = include_str!("cluster/index.lua");

/// `KEYS = [old]`, `ARGV = [now_ms, retire_until_ms or '']`: the first half of a renew. Returns
/// 0 when `old` is gone, expired or retired; otherwise `[kept, fields]`, the hash's fields and
/// values before the call, having deleted `old`, or retired it as the single server's `RENEW`
/// does (`kept` = 1) when a grace window is given and ends after `now`.
const TAKE: &str = include_str!("cluster/take.lua");

/// `KEYS = [key]`, `ARGV = [ttl_ms, into, field, value, ...]`: writes a whole hash with its TTL,
/// with `into` = `new` only into a free key (returns 2 when it is taken), with `existing` only in
/// place of a hash that is there (returns 0 when there is none). Returns 1 when written.
const PLACE: &str = include_str!("cluster/place.lua");

/// `KEYS = [key]`, `ARGV = [mode, owner]`: deletes the hash when `mode` allows it: `any`,
/// `owned` (its owner is `owner`), `owned-live` (and it is not retired) or `retired`. Returns 0
/// when nothing was deleted, otherwise `[owner digest or '', predecessor key or '', retired]`.
const DELETE: &str = include_str!("cluster/delete.lua");

/// The cluster's scripts, hashed once when the store is built.
pub(super) struct Scripts {
    update: Script,
    index: Script,
    take: Script,
    place: Script,
    delete: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            update: script(UPDATE),
            index: script(INDEX),
            take: Script::new(TAKE),
            place: script(PLACE),
            delete: Script::new(DELETE),
        }
    }
}

/// Where [`PLACE`] may write.
#[derive(Clone, Copy)]
enum Place {
    /// Only into a free key.
    New,
    /// Only in place of a hash that is there.
    Existing,
}

/// A hash's fields and values, as Redis returns them.
type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// What the cluster's delete script answered: `None` when it deleted nothing.
struct Deleted {
    digest: String,
    predecessor: String,
    retired: bool,
}

impl RedisStore {
    fn scripts(&self) -> &Scripts {
        self.inner
            .cluster
            .as_ref()
            .expect("the cluster's scripts exist on a cluster store")
    }

    /// Adds and removes members of the owner's set named by `digest` (see [`INDEX`]).
    pub(super) async fn index(
        &self,
        op: &'static str,
        digest: &str,
        ttl: u64,
        remove: &[String],
        add: &[String],
    ) -> Result<(), StoreError> {
        if digest.is_empty() || (remove.is_empty() && add.is_empty()) {
            return Ok(());
        }
        let script = &self.scripts().index;
        let mut cmd = evalsha(script, &[&self.owner_set(digest)]);
        cmd.arg(ttl).arg(remove.len()).arg(remove).arg(add);
        // Removing and adding the same members twice leaves the set as once.
        self.invoke_write(op, script, &cmd, true).await.map(drop)
    }

    /// [`SessionStore::update`](crate::SessionStore::update) of a change set that does not fit
    /// the small script: the hash, then the index entry.
    pub(super) async fn cluster_update(
        &self,
        op: &'static str,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let script = &self.scripts().update;
        let mut cmd = evalsha(script, &[&self.redis_key(key)]);
        self.push_update_args(&mut cmd, changes, expires_at, now, None)
            .map_err(|e| StoreError::new(op, e))?;
        let reply = self.invoke_write(op, script, &cmd, true).await?;
        let Some([_, old]) = zero_or_array(op, reply)? else {
            return Ok(WriteResult::Missing);
        };
        let old = string(op, old)?;
        let new = match changes.owner() {
            None => old.clone(),
            Some(None) => String::new(),
            Some(Some(owner)) => owner_digest(owner),
        };
        let member = vec![key.to_hex()];
        let ttl = ttl_millis(expires_at, now);
        let leave = async {
            if !old.is_empty() && old != new {
                self.index(op, &old, ttl, &member, &[]).await?;
            }
            Ok(())
        };
        // Always, as the single server's script does: a re-sent update (whose first reply was
        // lost) finds the owner already in the hash.
        let join = async {
            if !new.is_empty() {
                self.index(op, &new, ttl, &[], &member).await?;
            }
            Ok(())
        };
        try_join(leave, join).await?;
        Ok(WriteResult::Done)
    }

    /// [`SessionStore::renew`](crate::SessionStore::renew): take the old hash, place the new
    /// one, then move the index entry (see the module's documentation).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn cluster_renew(
        &self,
        op: &'static str,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        let (old_key, new_key) = (self.redis_key(old), self.redis_key(new));
        let scripts = self.scripts();
        let mut cmd = evalsha(&scripts.take, &[&old_key]);
        cmd.arg(millis(now))
            .arg(retire_until.map_or_else(String::new, |t| millis(t).to_string()));
        // Not run twice: a second run would find the hash already taken.
        let reply = self.invoke_write(op, &scripts.take, &cmd, false).await?;
        let Some([kept, fields]) = zero_or_array(op, reply)? else {
            return Ok(WriteResult::Missing);
        };
        let kept = integer(op, kept)? == 1;
        let before = pairs(op, fields)?;
        let mut after: HashMap<Vec<u8>, Vec<u8>> = before.iter().cloned().collect();
        apply(&mut after, changes, expires_at, now).map_err(|e| StoreError::new(op, e))?;
        if kept {
            // The new hash names its retired copy, which a delete of the session then ends too.
            after.insert(PREDECESSOR.into(), old_key.clone().into_bytes());
        }
        let placed = self
            .place(
                op,
                &new_key,
                ttl_millis(expires_at, now),
                Place::New,
                after.iter(),
            )
            .await;
        if !matches!(placed, Ok(1)) {
            // Put the old hash back as it was, so the session is not lost with the renew.
            let old_ttl = field(&before, EXPIRES)
                .and_then(|ms| std::str::from_utf8(ms).ok()?.parse().ok())
                .map_or(1, |ms| ttl_millis(from_millis(ms), now));
            // Into the state the take left: a deleted hash into a free key, a retired copy only
            // while it is there (a logout that ended it meanwhile wins).
            let restore = if kept { Place::Existing } else { Place::New };
            let restored = self
                .place(
                    op,
                    &old_key,
                    old_ttl,
                    restore,
                    before.iter().map(|(k, v)| (k, v)),
                )
                .await;
            if let Err(err) = restored {
                tracing::warn!(
                    error = %err,
                    cause = %std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default(),
                    "a renew that failed could not put the old session back: it is lost"
                );
            }
            return match placed? {
                2 => Ok(WriteResult::Collision),
                _ => Err(unexpected(op, "a place answer that is not 1 or 2")),
            };
        }
        let old_digest = field(&before, OWNER_INDEX)
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        let new_digest = field_string(&after, OWNER_INDEX);
        let ttl = ttl_millis(expires_at, now);
        let (old_member, new_member) = (vec![old.to_hex()], vec![new.to_hex()]);
        // A retired copy stays in its owner's set (never listed; ending all sessions ends it).
        let leaving: &[String] = if kept { &[] } else { &old_member };
        if old_digest == new_digest {
            self.index(op, &new_digest, ttl, leaving, &new_member)
                .await?;
        } else {
            try_join(
                self.index(op, &old_digest, ttl, leaving, &[]),
                self.index(op, &new_digest, ttl, &[], &new_member),
            )
            .await?;
        }
        Ok(WriteResult::Done)
    }

    /// Runs [`PLACE`] on `key`.
    async fn place<'a>(
        &self,
        op: &'static str,
        key: &str,
        ttl: u64,
        into: Place,
        fields: impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    ) -> Result<i64, StoreError> {
        let script = &self.scripts().place;
        let mut cmd = evalsha(script, &[key]);
        cmd.arg(ttl).arg(match into {
            Place::New => "new",
            Place::Existing => "existing",
        });
        for (name, value) in fields {
            cmd.arg(name.as_slice()).arg(value.as_slice());
        }
        // Run twice, the second would find the key taken (or, in place of a hash, answer the
        // same): not retried.
        integer(op, self.invoke_write(op, script, &cmd, false).await?)
    }

    /// Runs [`DELETE`] on `key` in `mode`, for `owner`.
    async fn delete_hash(
        &self,
        op: &'static str,
        key: &str,
        mode: &str,
        owner: &str,
    ) -> Result<Option<Deleted>, StoreError> {
        let script = &self.scripts().delete;
        let mut cmd = evalsha(script, &[key]);
        cmd.arg(mode).arg(owner);
        // Run twice, a delete deletes nothing more, but the second answer would say nothing was
        // deleted: only a plain delete (and a copy's) is retried, as on a single server.
        let retry = matches!(mode, "any" | "retired");
        let reply = self.invoke_write(op, script, &cmd, retry).await?;
        let Some([digest, predecessor, retired]) = zero_or_array(op, reply)? else {
            return Ok(None);
        };
        Ok(Some(Deleted {
            digest: string(op, digest)?,
            predecessor: string(op, predecessor)?,
            retired: integer(op, retired)? == 1,
        }))
    }

    /// Deletes the retired copies a deleted session was renewed from, newest first (8 at most,
    /// as on a single server).
    async fn end_copies(&self, op: &'static str, mut previous: String) -> Result<(), StoreError> {
        for _ in 0..8 {
            if previous.is_empty() {
                break;
            }
            match self.delete_hash(op, &previous, "retired", "").await? {
                Some(copy) => previous = copy.predecessor,
                None => break,
            }
        }
        Ok(())
    }

    /// [`SessionStore::delete`](crate::SessionStore::delete).
    pub(super) async fn cluster_delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        const OP: &str = "deleting a session";
        let Some(deleted) = self
            .delete_hash(OP, &self.redis_key(key), "any", "")
            .await?
        else {
            return Ok(());
        };
        // The copies first: they must not outlive a logout whose index step fails.
        self.end_copies(OP, deleted.predecessor).await?;
        self.index(OP, &deleted.digest, 0, &[key.to_hex()], &[])
            .await
    }

    /// [`SessionStore::delete_owned`](crate::SessionStore::delete_owned).
    pub(super) async fn cluster_delete_owned(
        &self,
        owner: &str,
        key: &StorageKey,
    ) -> Result<bool, StoreError> {
        const OP: &str = "ending one of an owner's sessions";
        let Some(deleted) = self
            .delete_hash(OP, &self.redis_key(key), "owned-live", owner)
            .await?
        else {
            return Ok(false);
        };
        self.end_copies(OP, deleted.predecessor).await?;
        self.index(OP, &owner_digest(owner), 0, &[key.to_hex()], &[])
            .await?;
        Ok(true)
    }

    /// The members of an owner's set.
    async fn members(&self, op: &'static str, owner: &str) -> Result<Vec<String>, StoreError> {
        let mut cmd = Cmd::new();
        cmd.arg("SMEMBERS").arg(self.owner_key(owner));
        strings(
            op,
            self.inner.conns.query(op, &cmd, None, true, None).await?,
        )
    }

    /// [`SessionStore::delete_all_owned`](crate::SessionStore::delete_all_owned): each session
    /// of the owner's set but `keep` is deleted on its own shard, then leaves the set.
    pub(super) async fn cluster_delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        const OP: &str = "ending an owner's sessions";
        let keep = keep.map(StorageKey::to_hex);
        let members: Vec<String> = self
            .members(OP, owner)
            .await?
            .into_iter()
            .filter(|m| Some(m) != keep.as_ref())
            .collect();
        let deleted = try_join_all(members.iter().map(|m| async move {
            let key = format!("{}{m}", self.inner.prefix);
            let deleted = self.delete_hash(OP, &key, "owned", owner).await?;
            Ok::<_, StoreError>(deleted.filter(|d| !d.retired).map(|_| m))
        }))
        .await?;
        self.index(OP, &owner_digest(owner), 0, &members, &[])
            .await?;
        deleted
            .into_iter()
            .flatten()
            .map(|m| member_key(OP, m))
            .collect()
    }

    /// [`SessionStore::list_owned`](crate::SessionStore::list_owned): the owner's set, then
    /// each session read on its own shard; members whose session is gone or has another owner
    /// leave the set.
    pub(super) async fn cluster_list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        const OP: &str = "listing an owner's sessions";
        let members = self.members(OP, owner).await?;
        let rows = try_join_all(members.iter().map(|m| async move {
            let mut cmd = Cmd::new();
            cmd.arg("HMGET").arg(format!("{}{m}", self.inner.prefix));
            cmd.arg(super::CREATED).arg(LAST_SEEN).arg(EXPIRES);
            cmd.arg(OWNER).arg(RETIRED);
            cmd.arg(format!("{DATA}{}", crate::device::DEVICE_KEY));
            let reply = self.inner.conns.query(OP, &cmd, None, true, None).await?;
            optional_strings(OP, reply)
        }))
        .await?;
        let mut listed = Vec::new();
        let mut gone = Vec::new();
        for (m, row) in members.iter().zip(rows) {
            let [created, last_seen, expires, row_owner, retired, device] = row;
            if (expires.is_none() && retired.is_none()) || row_owner.as_deref() != Some(owner) {
                gone.push(m.clone());
                continue;
            }
            let Some(expires) = expires.filter(|_| retired.is_none()) else {
                continue;
            };
            if expires.parse::<u64>().is_ok_and(|e| e > millis(now)) {
                let created = created.unwrap_or_else(|| "0".into());
                let last_seen = last_seen.unwrap_or_else(|| created.clone());
                let row = vec![
                    m.clone(),
                    created,
                    last_seen,
                    expires,
                    device.unwrap_or_default(),
                ];
                listed.push(owned_session(OP, row)?);
            }
        }
        // Dropping members whose session is gone: running it twice is harmless.
        self.index(OP, &owner_digest(owner), 0, &gone, &[]).await?;
        Ok(listed)
    }
}

/// The names and values of a hash, from `HGETALL` (RESP2 array or RESP3 map).
fn pairs(op: &'static str, reply: Value) -> Result<Fields, StoreError> {
    let items = hash_items(op, reply)?;
    let mut items = items.into_iter();
    let mut pairs = Vec::with_capacity(items.len() / 2);
    while let Some(name) = items.next() {
        let (Value::BulkString(name), Some(Value::BulkString(value))) = (name, items.next()) else {
            return Err(unexpected(op, "a hash field that is not a string"));
        };
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn field<'a>(pairs: &'a Fields, name: &str) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

fn field_string(fields: &HashMap<Vec<u8>, Vec<u8>>, name: &str) -> String {
    fields
        .get(name.as_bytes())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// An `HMGET` reply: each field's value, or `None` where the hash has none.
fn optional_strings<const N: usize>(
    op: &'static str,
    reply: Value,
) -> Result<[Option<String>; N], StoreError> {
    let Value::Array(items) = reply else {
        return Err(unexpected(op, "not an array"));
    };
    let values = items
        .into_iter()
        .map(|item| match item {
            Value::Nil => Ok(None),
            item => string(op, item).map(Some),
        })
        .collect::<Result<Vec<_>, _>>()?;
    values
        .try_into()
        .map_err(|_| unexpected(op, "an HMGET answer of an unexpected length"))
}

/// Applies a change set to a taken hash as the single server's update does: the entries it
/// removes and sets, clearing (which keeps everything but the entries), the owner, the expiry
/// and the last write.
fn apply(
    fields: &mut HashMap<Vec<u8>, Vec<u8>>,
    changes: &ChangeSet,
    expires_at: SystemTime,
    now: SystemTime,
) -> Result<(), serde_json::Error> {
    let data = |key: &str| [DATA.as_bytes(), key.as_bytes()].concat();
    if changes.is_cleared() {
        fields.retain(|name, _| !name.starts_with(DATA.as_bytes()));
    }
    for key in changes.removed() {
        fields.remove(&data(key));
    }
    for (key, value) in changes.patch() {
        fields.insert(data(key), serde_json::to_vec(value)?);
    }
    match changes.owner() {
        None => {}
        Some(None) => {
            fields.remove(OWNER.as_bytes());
            fields.remove(OWNER_INDEX.as_bytes());
        }
        Some(Some(owner)) => {
            fields.insert(OWNER.into(), owner.as_bytes().to_vec());
            fields.insert(OWNER_INDEX.into(), owner_digest(owner).into_bytes());
        }
    }
    fields.insert(EXPIRES.into(), millis(expires_at).to_string().into_bytes());
    fields.insert(LAST_SEEN.into(), millis(now).to_string().into_bytes());
    fields.remove(RETIRED.as_bytes());
    Ok(())
}
