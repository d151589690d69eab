//! The store's Lua scripts, each in a `.lua` file of this folder: what each takes (`KEYS`,
//! `ARGV`) and returns. Scripts that share helpers are sent with [`PRELUDE`] (and [`WRITE`])
//! in front (see `RedisStoreBuilder::build`).

/// Shared by every script: bounded `unpack` (Lua's stack is limited), the session key's hex
/// (the member of its owner's set), and the TTL of an owner's set, which only ever grows.
///
/// The remaining helpers serve the update-style scripts (update, refresh, renew), which take
/// `ARGV = [owner_set_prefix, now_ms, expires_ms, ttl_ms, cleared, owner_change, owner,
/// owner_digest, retire_until_ms, n_removed, removed fields..., field, value, ...]`, where
/// `owner_change` is `''` (unchanged), `'-'` (no owner any more) or `'+'` (now `owner`, whose
/// set is `owner_set_prefix .. owner_digest`), and `retire_until_ms` is `''` but in a renew
/// that keeps the old key for a grace window.
pub(super) const PRELUDE: &str = include_str!("prelude.lua");

/// Writes a whole record into an empty key: `ARGV = [owner_set_prefix, created_ms, expires_ms,
/// ttl_ms, last_seen_ms, retired, has_owner, owner, owner_digest, field, value, ...]`
/// (`owner_digest` is `''` when the record is not indexed).
pub(super) const WRITE: &str = include_str!("write.lua");

/// `KEYS = [key, owner's set (only for an owned record)]`, write arguments.
/// Returns 1 when created, 2 when the key was taken.
pub(super) const CREATE: &str = include_str!("create.lua");

/// `KEYS = [key, new owner's set (only when the change names an owner)]`, update arguments.
/// Returns 1 when applied, 0 when the session is gone, expired or retired.
pub(super) const UPDATE: &str = include_str!("update.lua");

/// [`UPDATE`] for the common case, which every request that changes a few entries (or only
/// refreshes the expiry) is: no owner change, not cleared, fewer than [`SMALL_ARGS`] arguments
/// of entries. The same checks and effects in two to eight calls: one `HGET` of `@e` tells a
/// writable session (a retired copy has none, see [`RETIRED`](super::RETIRED); an `HMGET` of three fields costs
/// Redis ~0.4 µs more, a seventh of the call); the expiry, the TTL and the owner's set are
/// written only when the expiry moves (at most once per refresh interval). Without the shared
/// helpers (defining them is a tenth of a script call's cost in Redis), and with only the
/// arguments it reads (each one is a Lua string to make: the five unused ones of [`UPDATE`]'s
/// list cost a tenth of the call).
///
/// `KEYS = [key]`, `ARGV = [owner-set prefix, now ms, expires_at ms, TTL ms, n, n removed
/// fields, then field–value pairs]`.
pub(super) const UPDATE_SMALL: &str = include_str!("update_small.lua");

/// How many arguments of entries (removed fields, then field–value pairs) [`UPDATE_SMALL`]
/// takes: few enough to `unpack` at once.
pub(super) const SMALL_ARGS: usize = 128;

/// `KEYS = [old, new, new owner's set (only when the change names an owner)]`, update
/// arguments. Returns 1 when moved, 0 when `old` is gone, expired or retired, 2 when `new` is
/// taken.
///
/// Without a grace window the hash is `RENAME`d. With one, it is copied to `new`, and `old`
/// stays as it was but retired: its deadline, the grace deadline or its own, whichever comes
/// first, moves from `@e` to `@r` (see [`RETIRED`](super::RETIRED)), and it expires then; `new`
/// names it in `@p`, so that deleting the session ends it too. The retired copy stays in its
/// owner's set (never listed, but ending all of the owner's sessions deletes it too).
pub(super) const RENEW: &str = include_str!("renew.lua");

/// `KEYS = [key]`, `ARGV = [owner_set_prefix]`: deletes the hash and its index entry, then the
/// retired copies it was renewed from, following `@p` (at most 8; the keys are not in `KEYS`:
/// a copy's key is known only once the hash is read).
pub(super) const DELETE: &str = include_str!("delete.lua");

/// `KEYS = [key]`, write arguments: overwrites (used when the store is a cache in front of
/// another store; a copy is never indexed).
pub(super) const PUT: &str = include_str!("put.lua");

/// `KEYS = [owner's set]`, `ARGV = [session_prefix, now_ms, owner]`: `[hex, created_ms,
/// last_seen_ms, expires_ms, device_json or '']` of each live, writable session of the owner. Members whose hash is
/// gone (expired in Redis) or no longer belongs to the owner are dropped from the set; retired
/// copies stay in it but are not listed.
pub(super) const LIST_OWNED: &str = include_str!("list_owned.lua");

/// `KEYS = [key, owner's set]`, `ARGV = [owner]`. Returns 1 when the session was the owner's
/// (and is now deleted, with the retired copies it was renewed from), 0 otherwise.
pub(super) const DELETE_OWNED: &str = include_str!("delete_owned.lua");

/// `KEYS = [owner's set]`, `ARGV = [session_prefix, owner, keep_hex or '']`: deletes every
/// session of the owner but `keep` (retired copies included), empties the set but for `keep`,
/// and returns the hex of the deleted live sessions.
pub(super) const DELETE_ALL_OWNED: &str = include_str!("delete_all_owned.lua");
