//! The Redis store: sessions as hashes, every write one Lua script (`EVALSHA`), on the `redis`
//! crate's multiplexed connections (one per runtime, replaced after a failure: `conn`), over TCP,
//! TLS (`rediss://`) or a Unix socket, with the URL's ACL user, password and database.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use ::redis::{cluster::ClusterClient, Client, Cmd, Script, Value};

mod args;
mod builder;
mod cluster;
mod conn;
mod replicas;
mod reply;
mod scripts;

pub use self::builder::RedisStoreBuilder;
use self::{
    args::*,
    conn::{Connections, Target},
    replicas::Replicas,
    reply::{decode, integer, member_key, owned_session, strings, unexpected},
    scripts::*,
};
use crate::{
    store::cached::SessionCache, ChangeSet, OwnedSession, Record, SessionStore, StorageKey,
    StoreError, WriteResult,
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
/// In a session renewed with a grace window: the key of its retired copy (which may name an
/// older one in turn), so that deleting the session ends those copies too.
const PREDECESSOR: &str = "@p";
const DATA: &str = "d:";
/// What follows the prefix in the key of an owner's index set. It starts with a letter that is
/// not a hex digit, so it can never collide with a session key (`{prefix}{64 hex digits}`).
const OWNER_SET: &str = "owner:";

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
/// - **delete** removes the hash and its member of the owner's set, and the retired copies it was
///   renewed from (the new hash names its copy in `@p`).
///
/// A load is one `HGETALL`. Listing an owner's sessions, ending one of them and ending all of them
/// are one script each, over the owner's set; a listing also drops the members whose hash Redis
/// has expired. Every key always carries a Redis TTL (`PEXPIRE` to the session's deadline), so
/// Redis reclaims expired sessions by itself: no clean-up task is needed.
///
/// It runs on the [`redis`](::redis) crate. Each tokio runtime that uses the store (each
/// actix-web worker) gets one multiplexed connection, opened on first use and shared by the
/// requests of all of its sessions (pipelined); after a failure the next operation opens a new
/// one, so the store can be built before Redis is reachable and recovers by itself after a
/// restart. Every operation, connecting included, is bounded by a timeout (2 seconds by
/// default): a dead Redis fails the request instead of hanging it.
///
/// The [`redis::Client`](::redis::Client) given to the builder names the server: TCP
/// (`redis://host:port/`), TLS (`rediss://`, checked against the system's root certificates or
/// [`RedisStoreBuilder::tls_root_certificates`]) or a Unix socket (`redis+unix:///path`), the
/// ACL user and password (`redis://user:password@host/`) and the database (`redis://host/2`
/// selects database 2): `AUTH` and `SELECT` are answered before anything else is sent on a new
/// connection. Scripts are sent by their SHA-1 (`EVALSHA`, as [`redis::Script`](::redis::Script)
/// names them) and loaded again when Redis has forgotten them (a restart, `SCRIPT FLUSH`).
/// TLS runs on rustls with its `ring` crypto provider: building a store for a `rediss://` URL
/// makes `ring` rustls's process-wide default, unless the application installed one before.
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
/// # On a Redis Cluster
/// [`RedisStore::cluster_builder`] takes a [`redis::cluster::ClusterClient`](::redis::cluster::ClusterClient)
/// instead: each runtime gets one cluster connection, which follows `MOVED` and `ASK`
/// redirections and reloads the slot map by itself. Keys are laid out as above, so a session's
/// hash, its owner's set and the key it is renewed into hash to slots of their own, on any
/// shard. A cluster runs a script only on keys of one slot, so every script touches only the
/// key it declares, and what one script does on a single server takes a few steps:
///
/// - a write that changes the owner index writes the hash first, then the owner's set (one
///   more round trip). A failure between the two leaves the session out of its owner's set until
///   its expiry next moves, which adds it again; until then, listing and ending the owner's
///   sessions miss it;
/// - a renew **takes** the old hash (a script deletes it, or retires it for the grace window,
///   and returns its fields; no write lands on it after that), **places** the new hash with the
///   change applied (only if its key is free), then moves the index entry. If the place fails
///   (a taken key, an unreachable shard), the old hash is put back as it was;
/// - a delete follows the retired copies a session was renewed from one key at a time;
/// - listing and ending an owner's sessions read the owner's set, then each session on its own
///   shard (concurrently), then drop from the set the members that are gone.
///
/// The hash and the set are not changed in one atomic step: a session created while all of its
/// owner's sessions are being ended may outlive that, as one created just after it would. A renew
/// whose index step fails answers an error although the new hash is placed: the visitor keeps
/// neither id (failing closed, as a failed login does). The cluster client re-sends a command
/// whose connection broke, whatever the store asked: a re-sent refresh may skip its owner-set
/// step (repaired at the next expiry move), a re-sent create or renew answers as if the key were
/// taken or the session gone (the middleware then retries with a fresh id, or starts a fresh
/// session), leaving at most an unreachable hash that expires.
/// [`wait_for_replicas`](RedisStoreBuilder::wait_for_replicas) waits on the shard of each write.
///
/// # Limitations
/// - Sentinel is not built in: use a single primary behind one address that failover moves
///   (a Sentinel-aware proxy, a managed endpoint), or a Redis Cluster.
/// - Durability is whatever Redis is configured for: without AOF or RDB snapshots a restart
///   logs everyone out (each visitor then simply gets a fresh session). Replication is
///   asynchronous: a write answered 200 that had not reached a replica when the primary died is
///   lost when that replica is promoted, unless the store waits for replicas
///   ([`RedisStoreBuilder::wait_for_replicas`], off by default), which fails a write fewer
///   replicas have than asked for.
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
    conns: Connections,
    prefix: String,
    timeout: Duration,
    /// The opt-in wait after every write ([`RedisStoreBuilder::wait_for_replicas`]).
    replicas: Option<Replicas>,
    /// On a Redis Cluster, the scripts of its one-slot flows (see `cluster`).
    cluster: Option<cluster::Scripts>,
    /// `{prefix}owner:`, the start of every owner set's key.
    owner_prefix: String,
    create: Script,
    update: Script,
    update_small: Script,
    renew: Script,
    delete: Script,
    put: Script,
    list_owned: Script,
    delete_owned: Script,
    delete_all_owned: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Starts building a store on `client` (only a parsed URL; nothing is connected yet).
    pub fn builder(client: Client) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Server(client))
    }

    /// Starts building a store on a Redis Cluster (nothing is connected yet): sessions spread
    /// over its shards by their keys, an owner's sessions included. See the type's documentation
    /// for what changes on a cluster.
    ///
    /// The cluster client keeps its own TCP settings: turn `TCP_NODELAY` on when building it, as
    /// the store does for a single server's client (a connection writes its commands in batches,
    /// and with Nagle's algorithm a batch can wait for the previous one's reply).
    ///
    /// ```no_run
    /// use actix_typed_session::{
    ///     redis::{cluster::ClusterClient, io::tcp::TcpSettings},
    ///     RedisStore,
    /// };
    ///
    /// # fn setup() -> Result<(), Box<dyn std::error::Error>> {
    /// // Any reachable nodes: the client learns the others, and which slots each serves.
    /// let client = ClusterClient::builder(["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/"])
    ///     .tcp_settings(TcpSettings::default().set_nodelay(true))
    ///     .build()?;
    /// let store = RedisStore::cluster_builder(client).prefix("myapp:s:").build()?;
    /// assert!(store.client().is_none());
    /// # Ok(()) }
    /// ```
    pub fn cluster_builder(client: ClusterClient) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Cluster(client))
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

    /// The client the store connects with (with the builder's TLS root certificates, if any, and
    /// `TCP_NODELAY` on); `None` on a cluster.
    ///
    /// ```
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// let store = RedisStore::new(redis::Client::open("redis://127.0.0.1:6380/2").unwrap());
    /// let info = store.client().unwrap().get_connection_info();
    /// assert_eq!(info.redis_settings().db(), 2);
    /// assert!(info.tcp_settings().nodelay());
    /// ```
    pub fn client(&self) -> Option<&Client> {
        match self.inner.conns.target() {
            Target::Server(client) => Some(client),
            Target::Cluster(_) => None,
        }
    }

    /// Whether the store runs on a Redis Cluster ([`cluster_builder`](Self::cluster_builder)).
    ///
    /// ```
    /// use actix_typed_session::{redis, RedisStore};
    ///
    /// assert!(!RedisStore::new(redis::Client::open("redis://127.0.0.1/").unwrap()).is_cluster());
    /// ```
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster.is_some()
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

    /// Appends the session key `{prefix}{hex of key}` as one argument.
    fn arg_key(&self, cmd: &mut Cmd, key: &StorageKey) {
        arg_pair(cmd, self.inner.prefix.as_bytes(), &key.hex());
    }

    /// Reads a session hash (see [`LOAD`]); a read changes nothing, so it is retried once on a
    /// new connection when an idle one had died.
    async fn read_hash(
        &self,
        op: &'static str,
        key: &StorageKey,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError> {
        let mut cmd = Cmd::with_capacity(2, 16 + self.inner.prefix.len() + 64);
        cmd.arg("HGETALL");
        self.arg_key(&mut cmd, key);
        let reply = self.inner.conns.query(op, &cmd, None, true, None).await?;
        decode(op, reply, now)
    }

    /// Runs a script's `EVALSHA` (loading the script if Redis does not have it). `retry`: a
    /// second run changes nothing more than the first (see [`Connections::query`]).
    async fn invoke(
        &self,
        op: &'static str,
        script: &Script,
        cmd: &Cmd,
        retry: bool,
    ) -> Result<Value, StoreError> {
        self.inner
            .conns
            .query(op, cmd, Some(script), retry, None)
            .await
    }

    /// Runs an update-style script (see [`PRELUDE`] for its arguments); `keys` are the session
    /// keys, followed by the new owner's set when the change names one.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[&str],
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<i64, StoreError> {
        let set = match changes.owner() {
            Some(Some(owner)) => self.owner_key(owner),
            _ => String::new(),
        };
        let mut all = keys.to_vec();
        if !set.is_empty() {
            all.push(&set);
        }
        let mut cmd = evalsha(script, &all);
        self.push_update_args(&mut cmd, changes, expires_at, now, retire_until)
            .map_err(|e| StoreError::new(op, e))?;
        // A renew moves the key: run again, it would find the old one gone.
        let retry = retire_until.is_none() && keys.len() == 1;
        integer(op, self.invoke_write(op, script, &cmd, retry).await?)
    }

    /// Appends the arguments of an update-style script (see [`PRELUDE`]).
    fn push_update_args(
        &self,
        cmd: &mut Cmd,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<(), serde_json::Error> {
        let (owner_change, owner, digest) = match changes.owner() {
            None => ("", "", String::new()),
            Some(None) => ("-", "", String::new()),
            Some(Some(owner)) => ("+", owner, owner_digest(owner)),
        };
        cmd.arg(&self.inner.owner_prefix)
            .arg(millis(now))
            .arg(millis(expires_at))
            .arg(ttl_millis(expires_at, now))
            .arg(if changes.is_cleared() { "1" } else { "0" })
            .arg(owner_change)
            .arg(owner)
            .arg(&digest);
        match retire_until {
            Some(t) => cmd.arg(millis(t)),
            None => cmd.arg(""),
        };
        push_change(cmd, changes)
    }

    /// Runs [`UPDATE_SMALL`] (see there for its arguments). On a cluster, an expiry that moved
    /// moves the owner's set's TTL here, after the script (which cannot reach the set).
    async fn change_small(
        &self,
        op: &'static str,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<i64, StoreError> {
        let script = &self.inner.update_small;
        let mut cmd = evalsha_head(script, 1);
        self.arg_key(&mut cmd, key);
        // An empty owner-set prefix tells the script to answer the owner's digest instead.
        let owner_prefix = match self.inner.cluster {
            Some(_) => "",
            None => &self.inner.owner_prefix,
        };
        cmd.arg(owner_prefix)
            .arg(millis(now))
            .arg(millis(expires_at))
            .arg(ttl_millis(expires_at, now));
        push_change(&mut cmd, changes).map_err(|e| StoreError::new(op, e))?;
        // Applying the same change twice leaves the session as applying it once.
        match self.invoke_write(op, script, &cmd, true).await? {
            Value::BulkString(digest) => {
                let digest = String::from_utf8_lossy(&digest);
                let ttl = ttl_millis(expires_at, now);
                self.index(op, &digest, ttl, &[], &[key.to_hex()]).await?;
                Ok(1)
            }
            reply => integer(op, reply),
        }
    }

    /// Runs a script that writes a whole record (see [`WRITE`] for its arguments); with `index`,
    /// an owned record joins its owner's set.
    async fn write_record(
        &self,
        op: &'static str,
        script: &Script,
        key: &StorageKey,
        record: &Record,
        ttl: u64,
        index: bool,
    ) -> Result<i64, StoreError> {
        let redis_key = self.redis_key(key);
        let (mut cmd, digest) = match &record.owner {
            // On a cluster the owner's set is on another slot: it is written after the hash.
            Some(owner) if index && !record.retired && self.inner.cluster.is_some() => {
                (evalsha(script, &[&redis_key]), owner_digest(owner))
            }
            Some(owner) if index && !record.retired => {
                let digest = owner_digest(owner);
                let set = self.owner_set(&digest);
                (evalsha(script, &[&redis_key, &set]), digest)
            }
            _ => (evalsha(script, &[&redis_key]), String::new()),
        };
        cmd.arg(&self.inner.owner_prefix)
            .arg(millis(record.created_at))
            .arg(millis(record.expires_at))
            .arg(ttl)
            .arg(millis(record.last_seen))
            .arg(if record.retired { "1" } else { "0" })
            .arg(if record.owner.is_some() { "1" } else { "0" })
            .arg(record.owner.as_deref().unwrap_or(""))
            .arg(&digest);
        push_pairs(&mut cmd, &record.data).map_err(|e| StoreError::new(op, e))?;
        // A create run twice would find its own key taken; a cache `put` overwrites. A cache copy
        // (not `index`) that a failover loses is only a cache miss: it does not wait.
        let reply = if index {
            self.invoke_write(op, script, &cmd, false).await?
        } else {
            self.invoke(op, script, &cmd, true).await?
        };
        let code = integer(op, reply)?;
        if code == 1 && self.inner.cluster.is_some() {
            self.index(op, &digest, ttl, &[], &[key.to_hex()]).await?;
        }
        Ok(code)
    }
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
        self.read_hash("loading a session", key, now).await
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
        const OP: &str = "updating a session";
        let code = if small {
            self.change_small(OP, key, changes, expires_at, now).await?
        } else if self.inner.cluster.is_some() {
            return self.cluster_update(OP, key, changes, expires_at, now).await;
        } else {
            self.change(
                OP,
                &self.inner.update,
                &[&self.redis_key(key)],
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
        const OP: &str = "renewing a session";
        if self.inner.cluster.is_some() {
            return self
                .cluster_renew(OP, old, new, changes, expires_at, now, retire_until)
                .await;
        }
        let code = self
            .change(
                OP,
                &self.inner.renew,
                &[&self.redis_key(old), &self.redis_key(new)],
                changes,
                expires_at,
                now,
                retire_until,
            )
            .await?;
        Ok(result(code, WriteResult::Missing))
    }

    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        if self.inner.cluster.is_some() {
            return self.cluster_delete(key).await;
        }
        let script = &self.inner.delete;
        let mut cmd = evalsha_head(script, 1);
        self.arg_key(&mut cmd, key);
        cmd.arg(&self.inner.owner_prefix);
        // Deleting twice deletes once.
        self.invoke_write("deleting a session", script, &cmd, true)
            .await
            .map(drop)
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
        if self.inner.cluster.is_some() {
            return self.cluster_list_owned(owner, now).await;
        }
        let script = &self.inner.list_owned;
        let mut cmd = evalsha(script, &[&self.owner_key(owner)]);
        cmd.arg(&self.inner.prefix).arg(millis(now)).arg(owner);
        // A listing only drops members whose session is gone: running it twice is harmless.
        let Value::Array(rows) = self.invoke(OP, script, &cmd, true).await? else {
            return Err(unexpected(OP, "a listing that is not an array"));
        };
        rows.into_iter()
            .map(|row| owned_session(OP, strings(OP, row)?))
            .collect()
    }

    async fn delete_owned(&self, owner: &str, key: &StorageKey) -> Result<bool, StoreError> {
        const OP: &str = "ending one of an owner's sessions";
        if self.inner.cluster.is_some() {
            return self.cluster_delete_owned(owner, key).await;
        }
        let script = &self.inner.delete_owned;
        let mut cmd = evalsha(script, &[&self.redis_key(key), &self.owner_key(owner)]);
        cmd.arg(owner);
        // Not run twice: the second run would answer that the session was not the owner's.
        Ok(integer(OP, self.invoke_write(OP, script, &cmd, false).await?)? == 1)
    }

    async fn delete_all_owned(
        &self,
        owner: &str,
        keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        const OP: &str = "ending an owner's sessions";
        if self.inner.cluster.is_some() {
            return self.cluster_delete_all_owned(owner, keep).await;
        }
        let script = &self.inner.delete_all_owned;
        let mut cmd = evalsha(script, &[&self.owner_key(owner)]);
        cmd.arg(&self.inner.prefix)
            .arg(owner)
            .arg(keep.map_or_else(String::new, StorageKey::to_hex));
        // Not run twice: the second run would not list what the first deleted.
        let deleted = strings(OP, self.invoke_write(OP, script, &cmd, false).await?)?;
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
        self.read_hash("reading a cached session", key, now).await
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
        let mut cmd = Cmd::with_capacity(2, 16 + self.inner.prefix.len() + 64);
        cmd.arg("DEL");
        self.arg_key(&mut cmd, key);
        // A copy a failover brought back would be served as fresh: this waits for replicas.
        let (op, wait) = (
            "invalidating a cached session",
            self.inner.replicas.as_ref(),
        );
        self.inner
            .conns
            .query(op, &cmd, None, true, wait)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests;
