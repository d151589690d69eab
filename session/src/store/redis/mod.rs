//! The Redis store: sessions as hashes, every write one Lua script, on pipelined connections of
//! its own (`pipe`); the `redis` crate only parses the URL.

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::Client;
use serde_json::{Map, Value};

mod pipe;
mod wire;

use self::{
    pipe::{Closer, Pipe},
    wire::{Command, Reply},
};
use crate::{
    store::cached::SessionCache, BuildError, ChangeSet, OwnedSession, Record, SessionStore,
    StorageKey, StoreError, WriteResult,
};

const DEFAULT_PREFIX: &str = "session:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_PREFIX: usize = 128;

/// Field names of a session hash. Reserved fields start with `@`, data fields with `d:`, so no
/// user key can ever land on a reserved field.
const CREATED: &str = "@c";
const EXPIRES: &str = "@e";
const LAST_SEEN: &str = "@s";
const OWNER: &str = "@o";
/// The hex SHA-256 of the owner: the name of the owner's index set, present exactly while the
/// session is in that set (scripts cannot hash the owner themselves).
const OWNER_INDEX: &str = "@i";
/// Present once the session is retired (the old id's read-only copy after a renew with a grace
/// window), holding the copy's deadline in place of [`EXPIRES`]. A retired copy has no `@e`, so
/// that [`UPDATE_SMALL`] tells a writable session by `@e` alone: one `HGET`. (Earlier builds
/// kept `@e` and set `@r` to `1`; [`decode`] reads both.)
const RETIRED: &str = "@r";
const DATA: &str = "d:";
/// What follows the prefix in the key of an owner's index set. It starts with a letter that is
/// not a hex digit, so it can never collide with a session key (`{prefix}{64 hex digits}`).
const OWNER_SET: &str = "owner:";

/// Shared by every script: bounded `unpack` (Lua's stack is limited), the session key's hex
/// (the member of its owner's set), and the TTL of an owner's set, which only ever grows.
///
/// The remaining helpers serve the update-style scripts (update, refresh, renew), which take
/// `ARGV = [owner_set_prefix, now_ms, expires_ms, ttl_ms, cleared, owner_change, owner,
/// owner_digest, retire_until_ms, n_removed, removed fields..., field, value, ...]`, where
/// `owner_change` is `''` (unchanged), `'-'` (no owner any more) or `'+'` (now `owner`, whose
/// set is `owner_set_prefix .. owner_digest`), and `retire_until_ms` is `''` but in a renew
/// that keeps the old key for a grace window.
const PRELUDE: &str = r#"
local function each(cmd, key, list, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 511, last)
    redis.call(cmd, key, unpack(list, i, j))
    i = j + 1
  end
end
local function member(key)
  return string.sub(key, -64)
end
local function extend(set, ttl)
  if redis.call('PTTL', set) < tonumber(ttl) then
    redis.call('PEXPIRE', set, ttl)
  end
end
-- Whether the session can be written (there, not expired, not retired), and the digest of its
-- owner (false when it has none), in one read.
local function writable(key)
  local f = redis.call('HMGET', key, '@e', '@r', '@i')
  return f[1] and tonumber(f[1]) > tonumber(ARGV[2]) and not f[2], f[3]
end
local function apply(key)
  local n = tonumber(ARGV[10])
  local first = 11 + n
  -- The first write grows the hash: when Redis is out of memory it refuses the whole script
  -- here, before anything was changed.
  if ARGV[5] ~= '1' and #ARGV - first < 128 then
    -- A small change set: the times and the entries in one HSET.
    redis.call('HSET', key, '@e', ARGV[3], '@s', ARGV[2], unpack(ARGV, first, #ARGV))
  else
    redis.call('HSET', key, '@e', ARGV[3], '@s', ARGV[2])
    if ARGV[5] == '1' then
      -- Clearing drops the entries, not the creation time or the owner.
      local kept = redis.call('HMGET', key, '@c', '@o', '@i')
      redis.call('DEL', key)
      redis.call('HSET', key, '@c', kept[1] or ARGV[2], '@e', ARGV[3], '@s', ARGV[2])
      if kept[2] and kept[3] then
        redis.call('HSET', key, '@o', kept[2], '@i', kept[3])
      end
    end
    each('HSET', key, ARGV, first, #ARGV)
  end
  -- Removed entries and set entries never share a field.
  each('HDEL', key, ARGV, 11, 10 + n)
  if ARGV[6] == '-' then
    redis.call('HDEL', key, '@o', '@i')
  elseif ARGV[6] == '+' then
    redis.call('HSET', key, '@o', ARGV[7], '@i', ARGV[8])
  end
  redis.call('PEXPIRE', key, ARGV[4])
end
-- Moves the session's index entry: it was `from`, owned by the digest `old` (or false), and is
-- now `to`. `given` is the new owner's set when this change names the owner (declared in KEYS);
-- an unchanged owner's set is derived from the digest kept in the hash.
local function reindex(from, old, to, given)
  local new = old
  if ARGV[6] == '+' then
    new = ARGV[8]
  elseif ARGV[6] == '-' then
    new = false
  end
  if old and (old ~= new or from ~= to) then
    redis.call('SREM', ARGV[1] .. old, member(from))
  end
  if new then
    local set = given or (ARGV[1] .. new)
    redis.call('SADD', set, member(to))
    extend(set, ARGV[4])
  end
end
"#;

/// Writes a whole record into an empty key: `ARGV = [owner_set_prefix, created_ms, expires_ms,
/// ttl_ms, last_seen_ms, retired, has_owner, owner, owner_digest, field, value, ...]`
/// (`owner_digest` is `''` when the record is not indexed).
const WRITE: &str = r#"
local function write(key)
  -- A retired copy keeps its deadline in `@r` instead of `@e` (see `RETIRED`).
  local deadline = '@e'
  if ARGV[6] == '1' then deadline = '@r' end
  redis.call('HSET', key, '@c', ARGV[2], deadline, ARGV[3], '@s', ARGV[5])
  if ARGV[7] == '1' then
    redis.call('HSET', key, '@o', ARGV[8])
  end
  if ARGV[9] ~= '' then
    redis.call('HSET', key, '@i', ARGV[9])
  end
  each('HSET', key, ARGV, 10, #ARGV)
  redis.call('PEXPIRE', key, ARGV[4])
end
"#;

/// `KEYS = [key, owner's set (only for an owned record)]`, write arguments.
/// Returns 1 when created, 2 when the key was taken.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
write(KEYS[1])
if KEYS[2] then
  redis.call('SADD', KEYS[2], member(KEYS[1]))
  extend(KEYS[2], ARGV[4])
end
return 1
"#;

/// `KEYS = [key, new owner's set (only when the change names an owner)]`, update arguments.
/// Returns 1 when applied, 0 when the session is gone, expired or retired.
const UPDATE: &str = r#"
local ok, old = writable(KEYS[1])
if not ok then return 0 end
apply(KEYS[1])
reindex(KEYS[1], old, KEYS[1], KEYS[2])
return 1
"#;

/// [`UPDATE`] for the common case, which every request that changes a few entries (or only
/// refreshes the expiry) is: no owner change, not cleared, fewer than [`SMALL_ARGS`] arguments
/// of entries. The same checks and effects in two to eight calls: one `HGET` of `@e` tells a
/// writable session (a retired copy has none, see [`RETIRED`]; an `HMGET` of three fields costs
/// Redis ~0.4 µs more, a seventh of the call); the expiry, the TTL and the owner's set are
/// written only when the expiry moves (at most once per refresh interval). Without the shared
/// helpers (defining them is a tenth of a script call's cost in Redis), and with only the
/// arguments it reads (each one is a Lua string to make: the five unused ones of [`UPDATE`]'s
/// list cost a tenth of the call).
///
/// `KEYS = [key]`, `ARGV = [owner-set prefix, now ms, expires_at ms, TTL ms, n, n removed
/// fields, then field–value pairs]`.
const UPDATE_SMALL: &str = r#"
local e = redis.call('HGET', KEYS[1], '@e')
if not e or tonumber(e) <= tonumber(ARGV[2]) then return 0 end
local n = tonumber(ARGV[5])
if e == ARGV[3] then
  -- The expiry stays (it moves at most once per refresh interval), and so do the TTL and the
  -- owner's set, whose TTL already covers it.
  redis.call('HSET', KEYS[1], '@s', ARGV[2], unpack(ARGV, 6 + n, #ARGV))
else
  -- A retired copy in the layout of earlier builds (`@e` and `@r` = 1) never gets a longer life.
  local f = redis.call('HMGET', KEYS[1], '@r', '@i')
  if f[1] then return 0 end
  redis.call('HSET', KEYS[1], '@e', ARGV[3], '@s', ARGV[2], unpack(ARGV, 6 + n, #ARGV))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  local owner = f[2]
  if owner then
    local set = ARGV[1] .. owner
    redis.call('SADD', set, string.sub(KEYS[1], -64))
    if redis.call('PTTL', set) < tonumber(ARGV[4]) then
      redis.call('PEXPIRE', set, ARGV[4])
    end
  end
end
if n > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 6, 5 + n))
end
return 1
"#;

/// How many arguments of entries (removed fields, then field–value pairs) [`UPDATE_SMALL`]
/// takes: few enough to `unpack` at once.
const SMALL_ARGS: usize = 128;

/// `KEYS = [old, new, new owner's set (only when the change names an owner)]`, update
/// arguments. Returns 1 when moved, 0 when `old` is gone, expired or retired, 2 when `new` is
/// taken.
///
/// Without a grace window the hash is `RENAME`d. With one, it is copied to `new`, and `old`
/// stays as it was but retired: its deadline, the grace deadline or its own, whichever comes
/// first, moves from `@e` to `@r` (see [`RETIRED`]), and it expires then. The retired copy stays in its owner's set (never listed, but ending all of the
/// owner's sessions deletes it too).
const RENEW: &str = r#"
if not writable(KEYS[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local old = redis.call('HGET', KEYS[1], '@i')
if ARGV[9] == '' then
  redis.call('HSET', KEYS[1], '@e', ARGV[3])
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  local fields = redis.call('HGETALL', KEYS[1])
  each('HSET', KEYS[2], fields, 1, #fields)
  local until_ms = redis.call('HGET', KEYS[1], '@e')
  if tonumber(ARGV[9]) < tonumber(until_ms) then until_ms = ARGV[9] end
  local left = tonumber(until_ms) - tonumber(ARGV[2])
  if left > 0 then
    redis.call('HSET', KEYS[1], '@r', until_ms)
    redis.call('HDEL', KEYS[1], '@e')
    redis.call('PEXPIRE', KEYS[1], left)
  else
    redis.call('DEL', KEYS[1])
  end
end
apply(KEYS[2])
reindex(KEYS[1], old, KEYS[2], KEYS[3])
if old and ARGV[9] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  -- The retired copy stays in its owner's set. `reindex` may have emptied (and so deleted)
  -- that set when the owner changed: give it back a TTL that covers the copy.
  redis.call('SADD', ARGV[1] .. old, member(KEYS[1]))
  extend(ARGV[1] .. old, redis.call('PTTL', KEYS[1]))
end
return 1
"#;

/// `KEYS = [key]`, `ARGV = [owner_set_prefix]`: deletes the hash and its index entry.
const DELETE: &str = r#"
local digest = redis.call('HGET', KEYS[1], '@i')
redis.call('DEL', KEYS[1])
if digest then
  redis.call('SREM', ARGV[1] .. digest, member(KEYS[1]))
end
return 1
"#;

/// `KEYS = [key]`, write arguments: overwrites (used when the store is a cache in front of
/// another store; a copy is never indexed).
const PUT: &str = r#"
redis.call('HSET', KEYS[1], '@e', ARGV[3])
redis.call('DEL', KEYS[1])
write(KEYS[1])
return 1
"#;

/// `KEYS = [owner's set]`, `ARGV = [session_prefix, now_ms, owner]`: `[hex, created_ms,
/// last_seen_ms, expires_ms]` of each live, writable session of the owner. Members whose hash is
/// gone (expired in Redis) or no longer belongs to the owner are dropped from the set; retired
/// copies stay in it but are not listed.
const LIST_OWNED: &str = r#"
local listed = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[1] .. m, '@c', '@s', '@e', '@o', '@r')
  if not (f[3] or f[5]) or f[4] ~= ARGV[3] then
    redis.call('SREM', KEYS[1], m)
  elseif not f[5] and tonumber(f[3]) > tonumber(ARGV[2]) then
    listed[#listed + 1] = {m, f[1] or '0', f[2] or f[1] or '0', f[3]}
  end
end
return listed
"#;

/// `KEYS = [key, owner's set]`, `ARGV = [owner]`. Returns 1 when the session was the owner's
/// (and is now deleted), 0 otherwise.
const DELETE_OWNED: &str = r#"
local f = redis.call('HMGET', KEYS[1], '@o', '@r')
if f[1] ~= ARGV[1] or f[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], member(KEYS[1]))
return 1
"#;

/// `KEYS = [owner's set]`, `ARGV = [session_prefix, owner, keep_hex or '']`: deletes every
/// session of the owner but `keep` (retired copies included), empties the set but for `keep`,
/// and returns the hex of the deleted live sessions.
const DELETE_ALL_OWNED: &str = r#"
local deleted = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if m ~= ARGV[3] then
    local key = ARGV[1] .. m
    local f = redis.call('HMGET', key, '@o', '@r')
    if f[1] == ARGV[2] then
      redis.call('DEL', key)
      if not f[2] then
        deleted[#deleted + 1] = m
      end
    end
    redis.call('SREM', KEYS[1], m)
  end
end
return deleted
"#;

/// Sessions in Redis, shared by every instance of the application.
///
/// Each session is one Redis hash under `{prefix}{hex of the SHA-256 of its id}`: the id never
/// reaches Redis, and the key is built only from the validated prefix and the hash. The hash
/// holds the session's entries as JSON (fields `d:{key}`) next to reserved fields, which no
/// entry can collide with: its creation, expiry and last write (`@c`, `@e`, `@s`, in
/// milliseconds since the Unix epoch), its owner (`@o`) and the SHA-256 of the owner in hex
/// (`@i`, the name of the owner's index set) when it has one. A retired copy has `@r`, its
/// deadline, in place of `@e`.
///
/// The **owner index** is one Redis set per owner, under `{prefix}owner:{hex of the SHA-256 of
/// the owner}` (the owner itself never appears in a key name, and `o` is not a hex digit, so the
/// set cannot collide with a session), whose members are the hex hashes of the owner's sessions
/// (retired copies included: they are never listed, but ending all sessions deletes them). Its TTL is moved on every write to one of its sessions to at least that session's
/// TTL, never shortened, so a set outlives its members and goes away by itself after the last
/// one.
///
/// Every write is one Lua script (`EVALSHA`, one round trip), run atomically by Redis, that keeps
/// the owner index in step with the hash:
///
/// - **create** files the hash only if the key is absent (a taken key is retried with a fresh id)
///   and adds it to its owner's set;
/// - **update** applies the change set as `HDEL` + `HSET`, writes the last write and the expiry
///   it is given (the TTL moves only when the expiry does), and
///   moves the session between owner sets when the change names a new owner, only if the
///   session still exists, has not expired and is not retired, so parallel requests that change
///   different keys both survive and a request that finishes after a logout does not bring the
///   session back;
/// - the **idle refresh** moves only the expiry and last write, at most once per refresh
///   interval;
/// - **renew** `RENAME`s the hash to the new key after checking both keys; with a grace window
///   it copies the hash instead and leaves the old one as it was but retired (its deadline, the
///   grace deadline or its own, whichever comes first, in `@r` instead of `@e`), still in the
///   owner's set;
/// - **delete** removes the hash and its member of the owner's set.
///
/// A load is one `HGETALL`. Listing an owner's sessions, ending one of them and ending all of them
/// are one script each, over the owner's set; a listing also drops the members whose hash Redis
/// has expired. Every key always carries a Redis TTL (`PEXPIRE` to the session's deadline), so
/// Redis reclaims expired sessions by itself: no clean-up task is needed.
///
/// Each worker thread keeps one pipelined connection of the store's own, opened on first use
/// and reopened after a failure, so the store can be built before Redis is reachable and
/// recovers by itself after a restart. The requests of all the thread's sessions share it: what
/// they send while the connection is busy goes out together in one write, and their replies
/// come back in one read. Every operation is bounded by a timeout (2 seconds by default): a dead
/// Redis fails the request instead of hanging it, and closes the connection, failing the
/// requests waiting on it at once.
///
/// The [`redis::Client`](::redis::Client) given to the builder only carries the URL: a TCP host
/// and port or a Unix socket (`redis+unix://`), the database and the credentials (`AUTH` and
/// `SELECT` are sent and answered before anything else on a new connection). TLS (`rediss://`)
/// is not supported; operations on such a store fail with an error that says so.
///
/// ```no_run
/// use actix_typed_session::{redis, Key, RedisStore, SessionMiddleware};
///
/// # fn setup() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://127.0.0.1:6379/")?;
/// let store = RedisStore::builder(client)
///     .prefix("myapp:session:")
///     .timeout(std::time::Duration::from_secs(1))
///     .build()?;
/// let sessions = SessionMiddleware::builder(Key::generate())
///     .backend("redis", store)
///     .build()?;
/// # Ok(()) }
/// ```
///
/// # Limitations
/// - Redis Cluster is not supported: a renew touches two keys, which may live on different slots,
///   and the owner index is kept by scripts that reach keys they do not declare in `KEYS` (an
///   unchanged owner's set is named by the hash itself, and listing or ending an owner's sessions
///   reaches the sessions named by the set). Use a single primary (with replicas or
///   Sentinel-managed failover behind one address).
/// - Durability is whatever Redis is configured for: without AOF or RDB snapshots a restart
///   logs everyone out (each visitor then simply gets a fresh session).
/// - Under `maxmemory` with an evicting policy, Redis may evict live sessions; their visitors get
///   fresh sessions. Prefer `volatile-*` policies or `noeviction` (writes then fail with a 500).
///   An evicted owner's set loses its members until each session next moves its expiry (at most
///   once per refresh interval, never once the absolute timeout caps it): until then, listing
///   the owner's sessions misses them, and so does ending them. Where ending all of a user's
///   sessions must be reliable, use `noeviction`.
/// - Expiry is decided by the application's clock, so the instances of one application should
///   keep their clocks in sync (NTP). The Redis TTL is computed from the same clock as a
///   duration, so a skew between Redis and the application does not matter.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    prefix: String,
    timeout: Duration,
    /// `{prefix}owner:`, the start of every owner set's key.
    owner_prefix: String,
    /// Tells this store's connections from other stores' in a thread's list (see [`PIPES`]).
    id: u64,
    /// The connections this store opened, on any thread: closed when the store goes.
    opened: Mutex<Vec<Closer>>,
    create: LuaScript,
    update: LuaScript,
    update_small: LuaScript,
    renew: LuaScript,
    delete: LuaScript,
    put: LuaScript,
    list_owned: LuaScript,
    delete_owned: LuaScript,
    delete_all_owned: LuaScript,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for closer in self
            .opened
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            closer.close("its store was dropped");
        }
    }
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connection of each Redis store used on it, by store id and runtime.
    static PIPES: RefCell<Vec<(u64, tokio::runtime::Id, Pipe)>> = const { RefCell::new(Vec::new()) };
}

/// A script and its SHA-1, under which Redis caches it: sent as `EVALSHA`, and as `EVAL` when
/// Redis does not know it (after a restart or `SCRIPT FLUSH`).
struct LuaScript {
    code: String,
    sha1: String,
}

impl LuaScript {
    fn new(code: String) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, code.as_bytes());
        let sha1 = digest.as_ref().iter().fold(String::new(), |mut hex, b| {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
            hex
        });
        Self { code, sha1 }
    }

    /// A call of this script on `keys`, to which the caller adds the arguments.
    fn call<K: AsRef<[u8]>>(&self, keys: &[K]) -> ScriptCall<'_> {
        let mut args = Command::with_capacity(512);
        args.int(keys.len() as u64);
        for key in keys {
            args.arg(key);
        }
        ScriptCall { script: self, args }
    }

    /// [`call`](Self::call) on the one session key `{prefix}{hex of key}`.
    fn call_on(&self, prefix: &str, key: &StorageKey) -> ScriptCall<'_> {
        let mut args = Command::with_capacity(512);
        args.int(1).arg_pair(prefix, key.hex());
        ScriptCall { script: self, args }
    }
}

/// The number of keys, the keys and the arguments of a script call.
struct ScriptCall<'a> {
    script: &'a LuaScript,
    args: Command,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`]; start with [`RedisStore::builder`].
///
/// ```
/// use actix_typed_session::{redis, RedisStore};
///
/// let client = redis::Client::open("redis://127.0.0.1/").unwrap();
/// assert!(RedisStore::builder(client.clone()).prefix("app:sess:").build().is_ok());
/// assert!(RedisStore::builder(client).prefix("has space").build().is_err());
/// ```
#[derive(Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    client: Client,
    prefix: String,
    timeout: Duration,
}

impl RedisStoreBuilder {
    /// The text every key of this store starts with (default `session:`): printable ASCII
    /// without spaces, at most 128 bytes. Give each application (or each store in one
    /// application) its own prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most time one operation may take, connecting included (default 2 seconds).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the settings and builds the store. No connection is opened yet.
    pub fn build(self) -> Result<RedisStore, BuildError> {
        validate_prefix(&self.prefix)?;
        if self.timeout.is_zero() {
            return Err(BuildError::Timeouts(
                "the Redis timeout must be longer than zero",
            ));
        }
        let script = |body: &str| LuaScript::new(format!("{PRELUDE}{body}"));
        let writer = |body: &str| LuaScript::new(format!("{PRELUDE}{WRITE}{body}"));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client: self.client,
                owner_prefix: format!("{}{OWNER_SET}", self.prefix),
                prefix: self.prefix,
                timeout: self.timeout,
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                opened: Mutex::new(Vec::new()),
                create: writer(CREATE),
                update: script(UPDATE),
                update_small: LuaScript::new(UPDATE_SMALL.to_owned()),
                renew: script(RENEW),
                delete: script(DELETE),
                put: writer(PUT),
                list_owned: script(LIST_OWNED),
                delete_owned: script(DELETE_OWNED),
                delete_all_owned: script(DELETE_ALL_OWNED),
            }),
        })
    }
}

fn validate_prefix(prefix: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidIdentifier {
        what: "Redis key prefix",
        name: prefix.to_owned(),
        reason,
    };
    if prefix.len() > MAX_PREFIX {
        return Err(invalid("it is longer than 128 bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "only printable ASCII characters without spaces are allowed",
        ));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch (0 before it).
fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The Redis TTL for a deadline, as a duration from `now` (at least 1 ms: Redis deletes a key
/// whose TTL is zero or negative).
fn ttl_millis(expires_at: SystemTime, now: SystemTime) -> u64 {
    let left = expires_at.duration_since(now).unwrap_or_default();
    u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The hex SHA-256 of an owner: names its index set.
fn owner_digest(owner: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, owner.as_bytes());
    let mut bytes = [0; 32];
    bytes.copy_from_slice(digest.as_ref());
    StorageKey::from_bytes(bytes).to_hex()
}

/// A storage key back from the 64 hex digits of a set member.
fn key_from_hex(hex: &str) -> Option<StorageKey> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(StorageKey::from_bytes(bytes))
}

fn member_key(op: &'static str, hex: &str) -> Result<StorageKey, StoreError> {
    key_from_hex(hex).ok_or_else(|| StoreError::new(op, "owner set with a malformed member"))
}

fn parse_millis(op: &'static str, value: &str) -> Result<SystemTime, StoreError> {
    value
        .parse::<u64>()
        .map(from_millis)
        .map_err(|_| StoreError::new(op, "owner set listing with a malformed time"))
}

/// Appends `d:{key}, json` pairs for `data` to a command.
fn push_pairs(args: &mut Command, data: &Map<String, Value>) -> Result<(), serde_json::Error> {
    // On the stack unless a value's JSON is long.
    let mut json = smallvec::SmallVec::<[u8; 128]>::new();
    for (key, value) in data {
        args.arg_pair(DATA, key);
        json.clear();
        serde_json::to_writer(&mut json, value)?;
        args.arg(&json);
    }
    Ok(())
}

/// Appends a change set's entries as the update scripts take them: the number of removed
/// fields, the removed `d:{key}` fields, then the `d:{key}, json` pairs it sets.
fn push_change(args: &mut Command, changes: &ChangeSet) -> Result<(), serde_json::Error> {
    args.int(changes.removed().len() as u64);
    for removed in changes.removed() {
        args.arg_pair(DATA, removed);
    }
    push_pairs(args, changes.patch())
}

/// An error reply from Redis (the command failed; the connection is fine).
#[derive(Debug, thiserror::Error)]
#[error("Redis answered with an error: {0}")]
struct ErrorReply(String);

/// Error replies after which the connection is closed, so that the next operation reconnects
/// (and, behind a failover address, reaches the new primary).
fn reconnect_after(message: &str) -> bool {
    ["READONLY", "MASTERDOWN", "NOAUTH", "WRONGPASS"]
        .iter()
        .any(|code| message.starts_with(code))
}

fn unexpected(op: &'static str, what: &'static str) -> StoreError {
    StoreError::new(op, format!("unexpected reply from Redis: {what}"))
}

/// The integer a script returned.
fn integer(op: &'static str, reply: Reply) -> Result<i64, StoreError> {
    match reply {
        Reply::Int(n) => Ok(n),
        _ => Err(unexpected(op, "not an integer")),
    }
}

/// The strings of an array reply.
fn strings(op: &'static str, reply: Reply) -> Result<Vec<String>, StoreError> {
    let Reply::Array(items) = reply else {
        return Err(unexpected(op, "not an array"));
    };
    items.into_iter().map(|item| string(op, item)).collect()
}

fn string(op: &'static str, reply: Reply) -> Result<String, StoreError> {
    match reply {
        Reply::Bulk(bytes) => std::str::from_utf8(&bytes)
            .map(str::to_owned)
            .map_err(|_| unexpected(op, "a string that is not UTF-8")),
        Reply::Int(n) => Ok(n.to_string()),
        Reply::Status(text) => Ok(text),
        _ => Err(unexpected(op, "not a string")),
    }
}

impl RedisStore {
    /// Starts building a store on `client` (only a parsed URL; nothing is connected yet).
    pub fn builder(client: Client) -> RedisStoreBuilder {
        RedisStoreBuilder {
            client,
            prefix: DEFAULT_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A store on `client` with the default prefix (`session:`) and timeout (2 seconds).
    ///
    /// ```
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// let store = RedisStore::new(redis::Client::open("redis://127.0.0.1/").unwrap());
    /// assert_eq!(store.prefix(), "session:");
    /// ```
    pub fn new(client: Client) -> Self {
        Self::builder(client)
            .build()
            .expect("the default settings are valid")
    }

    /// The prefix of every key this store writes.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis key of a session: the prefix, then the hash of its id in hex.
    ///
    /// ```
    /// use actix_typed_session::{redis, RedisStore, StorageKey};
    ///
    /// let store = RedisStore::new(redis::Client::open("redis://127.0.0.1/").unwrap());
    /// let key = store.redis_key(&StorageKey::from_bytes([0xab; 32]));
    /// assert_eq!(key, format!("session:{}", "ab".repeat(32)));
    /// ```
    pub fn redis_key(&self, key: &StorageKey) -> String {
        let mut redis_key = String::with_capacity(self.inner.prefix.len() + 64);
        redis_key.push_str(&self.inner.prefix);
        key.push_hex(&mut redis_key);
        redis_key
    }

    /// The Redis key of an owner's index set (the set of its sessions' hashes in hex): the
    /// prefix, `owner:`, then the SHA-256 of the owner in hex.
    ///
    /// ```
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// let store = RedisStore::new(redis::Client::open("redis://127.0.0.1/").unwrap());
    /// let key = store.owner_key("alice@example.com");
    /// assert!(key.starts_with("session:owner:") && !key.contains("alice"));
    /// assert_eq!(key.len(), "session:owner:".len() + 64);
    /// ```
    pub fn owner_key(&self, owner: &str) -> String {
        self.owner_set(&owner_digest(owner))
    }

    fn owner_set(&self, digest: &str) -> String {
        format!("{}{digest}", self.inner.owner_prefix)
    }

    /// This thread's connection, opened if there is none yet (or the last one was closed).
    fn pipe(&self, op: &'static str) -> Result<Pipe, StoreError> {
        // A connection belongs to the runtime that drives it: a thread that runs another runtime
        // (one after the other, or nested) gets a connection of that runtime.
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| StoreError::new(op, "the Redis store runs only inside a tokio runtime"))?
            .id();
        let id = self.inner.id;
        Ok(PIPES.with(|pipes| {
            let mut pipes = pipes.borrow_mut();
            if let Some((.., pipe)) = pipes.iter().find(|(of, on, _)| *of == id && *on == runtime) {
                if !pipe.is_closed() {
                    return pipe.clone();
                }
            }
            // Closed connections (this store's, and those of dropped stores) leave the list.
            pipes.retain(|(of, on, pipe)| (*of != id || *on != runtime) && !pipe.is_closed());
            let pipe = Pipe::open(self.inner.client.get_connection_info(), self.inner.timeout);
            pipes.push((id, runtime, pipe.clone()));
            let mut opened = self
                .inner
                .opened
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            opened.retain(|closer| !closer.is_done());
            opened.push(pipe.closer());
            pipe
        }))
    }

    /// Sends `leading` arguments then `args` on `pipe` and waits for the reply, within the
    /// store's timeout. An error reply is returned as such (see [`Self::checked`]).
    async fn exchange(
        &self,
        op: &'static str,
        pipe: &Pipe,
        leading: &[&[u8]],
        args: &Command,
    ) -> Result<Reply, StoreError> {
        // The connection bounds the wait: when a request waits longer than the timeout, it
        // closes and fails every request on it (they would wait as long), and the next
        // operation opens a new one.
        pipe.send_with(leading, args)
            .await
            .map_err(|err| StoreError::new(op, err))
    }

    /// An error reply turned into an error; one that calls for a reconnect closes `pipe`, the
    /// connection it came on (not a newer one another request opened meanwhile).
    fn checked(op: &'static str, pipe: &Pipe, reply: Reply) -> Result<Reply, StoreError> {
        match reply {
            Reply::Error(message) => {
                if reconnect_after(&message) {
                    pipe.close("Redis refused a command in a way that calls for a reconnect");
                }
                Err(StoreError::new(op, ErrorReply(message)))
            }
            reply => Ok(reply),
        }
    }

    /// Sends one command and returns its reply.
    async fn request(&self, op: &'static str, cmd: &Command) -> Result<Reply, StoreError> {
        let pipe = self.pipe(op)?;
        let reply = self.exchange(op, &pipe, &[], cmd).await?;
        Self::checked(op, &pipe, reply)
    }

    async fn hgetall(
        &self,
        op: &'static str,
        key: &StorageKey,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError> {
        let mut cmd = Command::new("HGETALL");
        // The key straight into the command, without a `String` of its own.
        cmd.arg_pair(&self.inner.prefix, key.hex());
        let reply = self.request(op, &cmd).await?;
        decode(op, reply, now)
    }

    /// Runs a script call: `EVALSHA`, then `EVAL` if Redis does not have the script cached.
    async fn invoke(&self, op: &'static str, call: &ScriptCall<'_>) -> Result<Reply, StoreError> {
        let script = call.script;
        let pipe = self.pipe(op)?;
        let reply = self
            .exchange(op, &pipe, &[b"EVALSHA", script.sha1.as_bytes()], &call.args)
            .await?;
        let reply = match reply {
            Reply::Error(message) if message.starts_with("NOSCRIPT") => {
                self.exchange(op, &pipe, &[b"EVAL", script.code.as_bytes()], &call.args)
                    .await?
            }
            reply => reply,
        };
        Self::checked(op, &pipe, reply)
    }

    /// Runs an update-style script (see [`PRELUDE`] for its arguments); `keys` are the session
    /// keys, followed by the new owner's set when the change names one.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        op: &'static str,
        script: &LuaScript,
        keys: &[String],
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<i64, StoreError> {
        let (owner_change, owner, digest) = match changes.owner() {
            None => ("", "", String::new()),
            Some(None) => ("-", "", String::new()),
            Some(Some(owner)) => ("+", owner, owner_digest(owner)),
        };
        let mut call = if digest.is_empty() {
            script.call(keys)
        } else {
            let mut all: Vec<&str> = keys.iter().map(String::as_str).collect();
            let set = self.owner_set(&digest);
            all.push(&set);
            script.call(&all)
        };
        let args = &mut call.args;
        args.arg(&self.inner.owner_prefix)
            .int(millis(now))
            .int(millis(expires_at))
            .int(ttl_millis(expires_at, now))
            .arg(if changes.is_cleared() { "1" } else { "0" })
            .arg(owner_change)
            .arg(owner)
            .arg(&digest);
        match retire_until {
            Some(t) => args.int(millis(t)),
            None => args.arg(""),
        };
        push_change(args, changes).map_err(|e| StoreError::new(op, e))?;
        integer(op, self.invoke(op, &call).await?)
    }

    /// Runs [`UPDATE_SMALL`] (see there for its arguments).
    async fn change_small(
        &self,
        op: &'static str,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<i64, StoreError> {
        let mut call = self.inner.update_small.call_on(&self.inner.prefix, key);
        let args = &mut call.args;
        args.arg(&self.inner.owner_prefix)
            .int(millis(now))
            .int(millis(expires_at))
            .int(ttl_millis(expires_at, now));
        push_change(args, changes).map_err(|e| StoreError::new(op, e))?;
        integer(op, self.invoke(op, &call).await?)
    }

    /// Runs a script that writes a whole record (see [`WRITE`] for its arguments); with `index`,
    /// an owned record joins its owner's set.
    async fn write_record(
        &self,
        op: &'static str,
        script: &LuaScript,
        key: &StorageKey,
        record: &Record,
        ttl: u64,
        index: bool,
    ) -> Result<i64, StoreError> {
        let redis_key = self.redis_key(key);
        let (mut call, digest) = match &record.owner {
            Some(owner) if index && !record.retired => {
                let digest = owner_digest(owner);
                let set = self.owner_set(&digest);
                (script.call(&[redis_key.as_str(), &set]), digest)
            }
            _ => (script.call(&[redis_key.as_str()]), String::new()),
        };
        let args = &mut call.args;
        args.arg(&self.inner.owner_prefix)
            .int(millis(record.created_at))
            .int(millis(record.expires_at))
            .int(ttl)
            .int(millis(record.last_seen))
            .arg(if record.retired { "1" } else { "0" })
            .arg(if record.owner.is_some() { "1" } else { "0" })
            .arg(record.owner.as_deref().unwrap_or(""))
            .arg(&digest);
        push_pairs(args, &record.data).map_err(|e| StoreError::new(op, e))?;
        integer(op, self.invoke(op, &call).await?)
    }
}

/// Turns the `HGETALL` reply of a session hash into a record; `None` when absent or expired.
fn decode(op: &'static str, reply: Reply, now: SystemTime) -> Result<Option<Record>, StoreError> {
    let Reply::Array(items) = reply else {
        return Err(unexpected(op, "a hash that is not an array"));
    };
    if items.is_empty() {
        return Ok(None);
    }
    if items.len() % 2 != 0 {
        return Err(unexpected(op, "a hash with an odd number of items"));
    }
    let time = |value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(from_millis)
    };
    let (mut created_at, mut expires_at, mut last_seen) = (None, None, None);
    let mut owner = None;
    let mut retired = false;
    let mut retired_until = None;
    let mut data = Map::new();
    let mut items = items.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        let (Reply::Bulk(name), Reply::Bulk(value)) = (name, value) else {
            return Err(unexpected(op, "a hash field that is not a string"));
        };
        match name.as_ref() {
            n if n == CREATED.as_bytes() => created_at = Some(time(&value)),
            n if n == EXPIRES.as_bytes() => expires_at = Some(time(&value)),
            n if n == LAST_SEEN.as_bytes() => last_seen = Some(time(&value)),
            n if n == OWNER.as_bytes() => owner = Some(string(op, Reply::Bulk(value))?),
            n if n == RETIRED.as_bytes() => {
                retired = true;
                retired_until = Some(time(&value));
            }
            // The owner's digest only names its index set; it is not part of the record.
            n if n == OWNER_INDEX.as_bytes() => {}
            _ => {
                let Some(key) = name.strip_prefix(DATA.as_bytes()) else {
                    continue;
                };
                let key = std::str::from_utf8(key)
                    .map_err(|_| unexpected(op, "a field name that is not UTF-8"))?;
                let value = serde_json::from_slice(&value).map_err(|e| StoreError::new(op, e))?;
                data.insert(key.to_owned(), value);
            }
        }
    }
    let invalid = |name: &str| {
        StoreError::new(
            op,
            format!("session hash without a valid `{name}` (or, retired, `{RETIRED}`)"),
        )
    };
    // A retired copy's deadline is in `@r` (in earlier builds: in `@e`, with `@r` = 1).
    let expires_at = expires_at
        .or(retired_until)
        .flatten()
        .ok_or_else(|| invalid(EXPIRES))?;
    if expires_at <= now {
        return Ok(None);
    }
    let created_at = created_at.flatten().ok_or_else(|| invalid(CREATED))?;
    // Hashes written before the last write was recorded count it as their creation.
    let last_seen = match last_seen {
        Some(t) => t.ok_or_else(|| invalid(LAST_SEEN))?,
        None => created_at,
    };
    Ok(Some(
        Record::new(data, created_at, expires_at)
            .with_owner(owner)
            .with_activity(last_seen, retired),
    ))
}

fn result(code: i64, otherwise: WriteResult) -> WriteResult {
    match code {
        1 => WriteResult::Done,
        2 => WriteResult::Collision,
        _ => otherwise,
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.hgetall("loading a session", key, now).await
    }

    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        // `create` has no `now`: the TTL runs from the real time, which is never later than the
        // middleware's clock in production (they are the same clock).
        let ttl = ttl_millis(record.expires_at, SystemTime::now());
        let code = self
            .write_record(
                "creating a session",
                &self.inner.create,
                key,
                record,
                ttl,
                true,
            )
            .await?;
        Ok(result(code, WriteResult::Collision))
    }

    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let small = changes.owner().is_none()
            && !changes.is_cleared()
            && changes.removed().len() + 2 * changes.patch().len() < SMALL_ARGS;
        let code = if small {
            self.change_small("updating a session", key, changes, expires_at, now)
                .await?
        } else {
            self.change(
                "updating a session",
                &self.inner.update,
                &[self.redis_key(key)],
                changes,
                expires_at,
                now,
                None,
            )
            .await?
        };
        Ok(result(code, WriteResult::Missing))
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let op = "refreshing a session's expiry";
        let code = self
            .change_small(op, key, &ChangeSet::default(), expires_at, now)
            .await?;
        Ok(result(code, WriteResult::Missing))
    }

    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        let code = self
            .change(
                "renewing a session",
                &self.inner.renew,
                &[self.redis_key(old), self.redis_key(new)],
                changes,
                expires_at,
                now,
                retire_until,
            )
            .await?;
        Ok(result(code, WriteResult::Missing))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        let mut call = self.inner.delete.call(&[self.redis_key(key)]);
        call.args.arg(&self.inner.owner_prefix);
        self.invoke("deleting a session", &call).await.map(drop)
    }

    fn indexes_owners(&self) -> bool {
        true
    }

    async fn list_owned(
        &self,
        owner: &str,
        now: SystemTime,
    ) -> Result<Vec<OwnedSession>, StoreError> {
        const OP: &str = "listing an owner's sessions";
        let mut call = self.inner.list_owned.call(&[self.owner_key(owner)]);
        call.args
            .arg(&self.inner.prefix)
            .int(millis(now))
            .arg(owner);
        let Reply::Array(rows) = self.invoke(OP, &call).await? else {
            return Err(unexpected(OP, "a listing that is not an array"));
        };
        rows.into_iter()
            .map(|row| strings(OP, row))
            .map(|row| match row?.as_slice() {
                [hex, created, last_seen, expires] => Ok(OwnedSession::new(
                    member_key(OP, hex)?,
                    parse_millis(OP, created)?,
                    parse_millis(OP, last_seen)?,
                    parse_millis(OP, expires)?,
                )),
                _ => Err(StoreError::new(
                    OP,
                    "owner set listing of an unexpected shape",
                )),
            })
            .collect()
    }

    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        const OP: &str = "ending one of an owner's sessions";
        let mut call = self
            .inner
            .delete_owned
            .call(&[self.redis_key(key), self.owner_key(owner)]);
        call.args.arg(owner);
        Ok(integer(OP, self.invoke(OP, &call).await?)? == 1)
    }

    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        const OP: &str = "ending an owner's sessions";
        let mut call = self.inner.delete_all_owned.call(&[self.owner_key(owner)]);
        call.args
            .arg(&self.inner.prefix)
            .arg(owner)
            .arg(keep.map_or_else(String::new, StorageKey::to_hex));
        let deleted = strings(OP, self.invoke(OP, &call).await?)?;
        deleted.iter().map(|hex| member_key(OP, hex)).collect()
    }
}

/// Redis as the shared cache of a [`CachedStore`](crate::CachedStore): entries are whole
/// records (owner, last write and retired flag included) under this store's prefix, each with a
/// Redis TTL of at most the cache's staleness bound. Copies are never added to an owner's set.
impl SessionCache for RedisStore {
    /// Every instance pointed at the same Redis sees the same copies.
    fn is_shared(&self) -> bool {
        true
    }

    async fn get(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.hgetall("reading a cached session", key, now).await
    }

    async fn put(
        &self,
        key: &StorageKey,
        record: &Record,
        now: SystemTime,
        fresh_for: Duration,
    ) -> Result<(), StoreError> {
        let ttl = ttl_millis(record.expires_at, now)
            .min(u64::try_from(fresh_for.as_millis()).unwrap_or(u64::MAX))
            .max(1);
        self.write_record(
            "caching a session",
            &self.inner.put,
            key,
            record,
            ttl,
            false,
        )
        .await
        .map(drop)
    }

    async fn invalidate(&self, key: &StorageKey) -> Result<(), StoreError> {
        let mut cmd = Command::new("DEL");
        cmd.arg(self.redis_key(key));
        self.request("invalidating a cached session", &cmd)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_validated_before_any_key_is_built() {
        for good in ["", "session:", "app/v2:s:", &"p".repeat(128)] {
            assert!(validate_prefix(good).is_ok(), "{good:?}");
        }
        for bad in [
            "has space",
            "tab\t",
            "new\nline",
            "séance",
            &"p".repeat(129),
        ] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_fields_cannot_collide_with_reserved_fields() {
        let reserved = [CREATED, EXPIRES, LAST_SEEN, OWNER, OWNER_INDEX, RETIRED];
        for key in ["@c", "@e", "@o", "@i", "@r", "@s", "", "d:", "c"] {
            let f = format!("{DATA}{key}"); // what `push_pairs` names the field
            assert!(f.starts_with(DATA) && !reserved.contains(&f.as_str()));
        }
        // Every reserved field is the one the scripts use.
        let scripts = [
            PRELUDE,
            WRITE,
            LIST_OWNED,
            DELETE,
            DELETE_OWNED,
            UPDATE_SMALL,
        ]
        .concat();
        for name in reserved {
            assert!(scripts.contains(&format!("'{name}'")), "{name}");
        }
    }

    #[test]
    fn owner_sets_cannot_collide_with_session_keys() {
        let store = RedisStore::new(Client::open("redis://127.0.0.1/").unwrap());
        let set = store.owner_key("alice");
        let rest = set.strip_prefix(store.prefix()).unwrap();
        assert!(!rest.as_bytes()[0].is_ascii_hexdigit());
        assert_eq!(rest.len(), OWNER_SET.len() + 64);
        assert!(!set.contains("alice"));
        assert_ne!(store.owner_key("alice"), store.owner_key("bob"));
        // The hex of a key comes back as the key.
        let key = StorageKey::from_bytes(std::array::from_fn(|i| i as u8 * 7));
        assert_eq!(key_from_hex(&key.to_hex()), Some(key));
        for bad in ["", "ab", &"g".repeat(64), &"é".repeat(32), &"a".repeat(66)] {
            assert_eq!(key_from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ttls_are_positive_durations_from_now() {
        let now = SystemTime::now();
        assert_eq!(ttl_millis(now + Duration::from_secs(3), now), 3000);
        assert_eq!(ttl_millis(now - Duration::from_secs(3), now), 1);
        assert_eq!(ttl_millis(now, now), 1);
    }

    #[test]
    fn decoding_skips_expired_and_foreign_fields() {
        fn hash(fields: &[(&str, String)]) -> Reply {
            Reply::Array(
                fields
                    .iter()
                    .flat_map(|(name, value)| {
                        [
                            Reply::Bulk(name.as_bytes().to_vec().into()),
                            Reply::Bulk(value.as_bytes().to_vec().into()),
                        ]
                    })
                    .collect(),
            )
        }
        let now = SystemTime::now();
        let fields = vec![
            (CREATED, millis(now).to_string()),
            (EXPIRES, millis(now + Duration::from_secs(60)).to_string()),
            ("d:a", "[1,2]".to_owned()),
            ("stray", "x".to_owned()),
        ];
        let record = decode("test", hash(&fields), now).unwrap().unwrap();
        // A hash without a last write (written by an older version) was last seen at creation.
        assert_eq!(record.last_seen, record.created_at);
        assert_eq!((record.owner, record.retired), (None, false));
        assert_eq!(Value::Object(record.data), serde_json::json!({"a": [1, 2]}));
        let mut owned = fields.clone();
        let seen = millis(now + Duration::from_secs(5));
        owned.push((LAST_SEEN, seen.to_string()));
        owned.push((OWNER, "ann".to_owned()));
        owned.push((OWNER_INDEX, owner_digest("ann")));
        owned.push((RETIRED, "1".to_owned()));
        let record = decode("test", hash(&owned), now).unwrap().unwrap();
        assert_eq!(record.last_seen, from_millis(seen));
        assert_eq!(record.owner.as_deref(), Some("ann"));
        assert!(record.retired);
        assert_eq!(record.data.len(), 1);
        // A retired copy keeps its deadline in `@r`, in place of `@e`.
        let deadline = millis(now + Duration::from_secs(30));
        let mut retired: Vec<_> = fields
            .iter()
            .filter(|(n, _)| *n != EXPIRES)
            .cloned()
            .collect();
        retired.push((RETIRED, deadline.to_string()));
        let record = decode("test", hash(&retired), now).unwrap().unwrap();
        assert!(record.retired);
        assert_eq!(record.expires_at, from_millis(deadline));
        assert!(
            decode("test", hash(&retired), now + Duration::from_secs(30))
                .unwrap()
                .is_none()
        );
        assert!(decode("test", hash(&fields), now + Duration::from_secs(61))
            .unwrap()
            .is_none());
        assert!(decode("test", Reply::Array(Vec::new()), now)
            .unwrap()
            .is_none());
    }

    #[test]
    fn malformed_hashes_are_errors() {
        let now = SystemTime::now();
        let later = millis(now + Duration::from_secs(60)).to_string();
        let bulk = |s: &str| Reply::Bulk(s.as_bytes().to_vec().into());
        let bad = [
            Reply::Int(1),
            Reply::Array(vec![bulk(EXPIRES)]),
            Reply::Array(vec![bulk(EXPIRES), Reply::Int(5)]),
            // No creation time.
            Reply::Array(vec![bulk(EXPIRES), bulk(&later)]),
            Reply::Array(vec![bulk(EXPIRES), bulk("soon"), bulk(CREATED), bulk("0")]),
            Reply::Array(vec![
                bulk(EXPIRES),
                bulk(&later),
                bulk(CREATED),
                bulk("0"),
                bulk("d:k"),
                bulk("{not json"),
            ]),
        ];
        for reply in bad {
            assert!(decode("test", reply.clone(), now).is_err(), "{reply:?}");
        }
    }

    #[test]
    fn scripts_are_named_by_the_sha1_redis_gives_them() {
        // `redis-cli SCRIPT LOAD "return 1"` prints this digest.
        assert_eq!(
            LuaScript::new("return 1".into()).sha1,
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
