//! The Redis store, on the `redis` crate's connection manager.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    thread::ThreadId,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ::redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client, ErrorKind, RedisError, Script, ScriptInvocation,
};
use serde_json::{Map, Value};

use crate::{
    store::cached::SessionCache, BuildError, ChangeSet, Record, SessionStore, StorageKey,
    StoreError, WriteResult,
};

const DEFAULT_PREFIX: &str = "session:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_PREFIX: usize = 128;

/// Field names of a session hash. Reserved fields start with `@`, data fields with `d:`, so no
/// user key can ever land on a reserved field.
const CREATED: &str = "@c";
const EXPIRES: &str = "@e";
const DATA: &str = "d:";

/// Shared by every script: bounded `unpack` (Lua's stack is limited), the liveness check and
/// the application of a change set.
///
/// Update-style scripts take `ARGV = [now_ms, expires_ms, ttl_ms, cleared, n_removed,
/// removed fields..., field, value, ...]`.
const PRELUDE: &str = r#"
local function each(cmd, key, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 511, last)
    redis.call(cmd, key, unpack(ARGV, i, j))
    i = j + 1
  end
end
local function live(key)
  local e = redis.call('HGET', key, '@e')
  return e and tonumber(e) > tonumber(ARGV[1])
end
local function apply(key)
  -- The first write grows the hash: when Redis is out of memory it refuses the whole script
  -- here, before anything was changed.
  redis.call('HSET', key, '@e', ARGV[2])
  if ARGV[4] == '1' then
    local c = redis.call('HGET', key, '@c') or ARGV[1]
    redis.call('DEL', key)
    redis.call('HSET', key, '@c', c, '@e', ARGV[2])
  end
  local n = tonumber(ARGV[5])
  each('HDEL', key, 6, 5 + n)
  each('HSET', key, 6 + n, #ARGV)
  redis.call('PEXPIRE', key, ARGV[3])
end
"#;

/// `KEYS = [key]`, `ARGV = [created_ms, expires_ms, ttl_ms, field, value, ...]`.
/// Returns 1 when created, 2 when the key was taken.
const CREATE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 2 end
redis.call('HSET', KEYS[1], '@c', ARGV[1], '@e', ARGV[2])
each('HSET', KEYS[1], 4, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// `KEYS = [key]`, update arguments. Returns 1 when applied, 0 when the session is gone.
const UPDATE: &str = r#"
if not live(KEYS[1]) then return 0 end
apply(KEYS[1])
return 1
"#;

/// `KEYS = [old, new]`, update arguments. Returns 1 when moved, 0 when `old` is gone, 2 when
/// `new` is taken.
const RENEW: &str = r#"
if not live(KEYS[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('HSET', KEYS[1], '@e', ARGV[2])
redis.call('RENAME', KEYS[1], KEYS[2])
apply(KEYS[2])
return 1
"#;

/// `KEYS = [key]`, `ARGV = [created_ms, expires_ms, ttl_ms, field, value, ...]`: overwrites
/// (used when the store is a cache in front of another store).
const PUT: &str = r#"
redis.call('HSET', KEYS[1], '@e', ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '@c', ARGV[1], '@e', ARGV[2])
each('HSET', KEYS[1], 4, #ARGV)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Sessions in Redis, shared by every instance of the application.
///
/// Each session is one Redis hash under `{prefix}{hex of the SHA-256 of its id}`: the id never
/// reaches Redis, and the key is built only from the validated prefix and the hash. The hash
/// holds the session's entries as JSON (fields `d:{key}`) next to two reserved fields for its
/// creation and expiry (`@c`, `@e`), which no entry can collide with. Every write is one Lua
/// script (`EVALSHA`, one round trip), run atomically by Redis:
///
/// - **create** files the hash only if the key is absent (a taken key is retried with a fresh id);
/// - **update** applies the change set as `HDEL` + `HSET` and moves the expiry, only if the session
///   still exists and has not expired, so parallel requests that change different keys both
///   survive and a request that finishes after a logout does not bring the session back;
/// - the **idle refresh** moves only the expiry, at most once per refresh interval;
/// - **renew** `RENAME`s the hash to the new key after checking both keys.
///
/// A load is one `HGETALL`. Every key always carries a Redis TTL (`PEXPIRE` to the session's
/// deadline), so Redis reclaims expired sessions by itself: no clean-up task is needed.
///
/// Each worker thread keeps one multiplexed connection (a [`ConnectionManager`]), opened on first
/// use and reopened after a failure, so the store can be built before Redis is reachable and
/// recovers by itself after a restart. Every operation is bounded by a timeout (2 seconds by
/// default): a dead Redis fails the request instead of hanging it.
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
/// - Redis Cluster is not supported: a renew touches two keys, which may live on different slots.
///   Use a single primary (with replicas or Sentinel-managed failover behind one address).
/// - Durability is whatever Redis is configured for: without AOF or RDB snapshots a restart
///   logs everyone out (each visitor then simply gets a fresh session).
/// - Under `maxmemory` with an evicting policy, Redis may evict live sessions; their visitors get
///   fresh sessions. Prefer `volatile-*` policies or `noeviction` (writes then fail with a 500).
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
    connections: Mutex<HashMap<ThreadId, ConnectionManager>>,
    create: Script,
    update: Script,
    renew: Script,
    put: Script,
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
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client: self.client,
                prefix: self.prefix,
                timeout: self.timeout,
                connections: Mutex::new(HashMap::new()),
                create: script(CREATE),
                update: script(UPDATE),
                renew: script(RENEW),
                put: script(PUT),
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

fn field(key: &str) -> String {
    format!("{DATA}{key}")
}

/// Appends `field, json` pairs for `data` to a script call.
fn push_pairs<'a>(
    call: &mut ScriptInvocation<'a>,
    data: &Map<String, Value>,
) -> Result<(), serde_json::Error> {
    for (key, value) in data {
        call.arg(field(key)).arg(serde_json::to_string(value)?);
    }
    Ok(())
}

/// Whether a failed connection should be dropped and reopened on next use.
fn connection_broken(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
        || matches!(err.kind(), ErrorKind::ReadOnly | ErrorKind::ClientError)
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
        format!("{}{}", self.inner.prefix, key.to_hex())
    }

    /// This thread's connection, opened if there is none yet.
    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let thread = std::thread::current().id();
        if let Some(conn) = self.lock().get(&thread) {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.inner.timeout)
            .set_response_timeout(self.inner.timeout)
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_with_config(self.inner.client.clone(), config).await?;
        Ok(self.lock().entry(thread).or_insert(conn).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThreadId, ConnectionManager>> {
        self.inner
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `work` on this thread's connection, within the timeout; a broken connection is
    /// dropped so that the next operation reconnects.
    async fn run<T, F, Fut>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            work(conn).await
        };
        match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if connection_broken(&err) {
                    self.lock().remove(&std::thread::current().id());
                }
                Err(StoreError::new(op, err))
            }
            Err(_) => {
                self.lock().remove(&std::thread::current().id());
                Err(StoreError::new(
                    op,
                    format!("timed out after {:?}", self.inner.timeout),
                ))
            }
        }
    }

    async fn hgetall(
        &self,
        op: &'static str,
        key: &StorageKey,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError> {
        let redis_key = self.redis_key(key);
        let fields: HashMap<String, String> = self
            .run(op, |mut conn| async move {
                ::redis::cmd("HGETALL")
                    .arg(&redis_key)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        decode(op, fields, now)
    }

    /// Runs an update-style script: `ARGV = [now, expires, ttl, cleared, n_removed, removed...,
    /// pairs...]`.
    async fn change(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[String],
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<i64, StoreError> {
        let mut call = script.prepare_invoke();
        for key in keys {
            call.key(key);
        }
        call.arg(millis(now))
            .arg(millis(expires_at))
            .arg(ttl_millis(expires_at, now))
            .arg(if changes.is_cleared() { "1" } else { "0" })
            .arg(changes.removed().len());
        for removed in changes.removed() {
            call.arg(field(removed));
        }
        push_pairs(&mut call, changes.patch()).map_err(|e| StoreError::new(op, e))?;
        self.run(
            op,
            |mut conn| async move { call.invoke_async(&mut conn).await },
        )
        .await
    }

    /// Runs a script that writes a whole record: `ARGV = [created, expires, ttl, pairs...]`.
    async fn write_record(
        &self,
        op: &'static str,
        script: &Script,
        key: &StorageKey,
        record: &Record,
        ttl: u64,
    ) -> Result<i64, StoreError> {
        let mut call = script.key(self.redis_key(key));
        call.arg(millis(record.created_at))
            .arg(millis(record.expires_at))
            .arg(ttl);
        push_pairs(&mut call, &record.data).map_err(|e| StoreError::new(op, e))?;
        self.run(
            op,
            |mut conn| async move { call.invoke_async(&mut conn).await },
        )
        .await
    }

    async fn del(&self, op: &'static str, key: &StorageKey) -> Result<(), StoreError> {
        let redis_key = self.redis_key(key);
        self.run(op, |mut conn| async move {
            ::redis::cmd("DEL")
                .arg(&redis_key)
                .query_async::<()>(&mut conn)
                .await
        })
        .await
    }
}

/// Turns the fields of a session hash into a record; `None` when absent or expired.
fn decode(
    op: &'static str,
    mut fields: HashMap<String, String>,
    now: SystemTime,
) -> Result<Option<Record>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let time = |fields: &mut HashMap<String, String>, name: &str| {
        fields
            .remove(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map(from_millis)
            .ok_or_else(|| StoreError::new(op, format!("session hash without a valid `{name}`")))
    };
    let expires_at = time(&mut fields, EXPIRES)?;
    if expires_at <= now {
        return Ok(None);
    }
    let created_at = time(&mut fields, CREATED)?;
    let mut data = Map::new();
    for (name, json) in fields {
        let Some(key) = name.strip_prefix(DATA) else {
            continue;
        };
        let value = serde_json::from_str(&json).map_err(|e| StoreError::new(op, e))?;
        data.insert(key.to_owned(), value);
    }
    Ok(Some(Record::new(data, created_at, expires_at)))
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
            .write_record("creating a session", &self.inner.create, key, record, ttl)
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
        let code = self
            .change(
                "updating a session",
                &self.inner.update,
                &[self.redis_key(key)],
                changes,
                expires_at,
                now,
            )
            .await?;
        Ok(result(code, WriteResult::Missing))
    }

    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        let code = self
            .change(
                "refreshing a session's expiry",
                &self.inner.update,
                &[self.redis_key(key)],
                &ChangeSet::default(),
                expires_at,
                now,
            )
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
        _retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        let code = self
            .change(
                "renewing a session",
                &self.inner.renew,
                &[self.redis_key(old), self.redis_key(new)],
                changes,
                expires_at,
                now,
            )
            .await?;
        Ok(result(code, WriteResult::Missing))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.del("deleting a session", key).await
    }
}

/// Redis as the shared cache of a [`CachedStore`](crate::CachedStore): entries are whole
/// records under this store's prefix, each with a Redis TTL of at most the cache's staleness
/// bound.
impl SessionCache for RedisStore {
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
        self.write_record("caching a session", &self.inner.put, key, record, ttl)
            .await
            .map(drop)
    }

    async fn invalidate(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.del("invalidating a cached session", key).await
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
        for key in ["@c", "@e", "", "d:", "c"] {
            let f = field(key);
            assert!(f.starts_with(DATA) && f != CREATED && f != EXPIRES);
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
        let now = SystemTime::now();
        let mut fields = HashMap::new();
        fields.insert(CREATED.to_owned(), millis(now).to_string());
        fields.insert(
            EXPIRES.to_owned(),
            millis(now + Duration::from_secs(60)).to_string(),
        );
        fields.insert("d:a".to_owned(), "[1,2]".to_owned());
        fields.insert("stray".to_owned(), "x".to_owned());
        let record = decode("test", fields.clone(), now).unwrap().unwrap();
        assert_eq!(Value::Object(record.data), serde_json::json!({"a": [1, 2]}));
        assert!(decode("test", fields, now + Duration::from_secs(61))
            .unwrap()
            .is_none());
        assert!(decode("test", HashMap::new(), now).unwrap().is_none());
    }
}
