//! Crate-private hot paths, exposed only for the Criterion benchmarks in `session/benches/` and
//! the load benchmark's reference loops (`tests/bench/src/bin/loadbench.rs`).
//!
//! Not an API: hidden from the documentation, and free to change with any release.
#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

use ring::rand::SystemRandom;

use crate::{id::SessionId, StorageKey};

/// Seals and opens cookie values exactly as the cookie backend does.
#[cfg(feature = "cookie")]
pub struct Sealer {
    store: crate::CookieStore,
    keys: crate::key::KeyRing,
    name: String,
}

#[cfg(feature = "cookie")]
impl Sealer {
    pub fn new(security: crate::CookieSecurity, key: &crate::Key, cookie_name: &str) -> Self {
        Self {
            store: crate::CookieStore::new(security),
            keys: crate::key::KeyRing::new(key, &[]),
            name: cookie_name.to_owned(),
        }
    }

    /// The plaintext the save path seals for `data` (the payload with its deadlines).
    pub fn plaintext(data: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
        let now = std::time::SystemTime::now();
        let mut plain = Vec::new();
        crate::CookieStore::payload(data, now, now, None, None)
            .write_to(&mut plain)
            .expect("a JSON map serializes");
        plain
    }

    pub fn seal(&self, plaintext: Vec<u8>) -> String {
        self.store.seal(&self.keys, &self.name, plaintext)
    }

    /// The number of entries of the session `value` carries, if it opens.
    pub fn open(&self, value: &str) -> Option<usize> {
        self.store
            .open(&self.keys, &self.name, value)
            .ok()
            .map(|opened| opened.data.len())
    }
}

/// Session ids as the middleware makes and reads them.
pub struct Ids(SystemRandom);

impl Default for Ids {
    fn default() -> Self {
        Self(SystemRandom::new())
    }
}

impl Ids {
    /// A fresh id, as its cookie value.
    pub fn generate(&self) -> String {
        SessionId::generate(&self.0).as_str().to_owned()
    }

    /// A fresh id and the storage key a server-side store gets for it (what creating a session
    /// costs before any I/O).
    pub fn generate_key(&self) -> StorageKey {
        SessionId::generate(&self.0).storage_key()
    }

    /// What loading a server-side session costs before any I/O: parse the cookie, hash it.
    pub fn parse_key(value: &str) -> Option<StorageKey> {
        SessionId::parse(value.as_bytes()).map(|id| id.storage_key())
    }
}

/// The exact SQL of [`PostgresStore`](crate::PostgresStore)'s `load` and `update`, so that a bare
/// driver loop can issue the same statements. Parameters, in order:
///
/// - load: `$1` the storage key's 32 bytes (`bytea`), `$2` now (`timestamptz`);
/// - update: `$1` key, `$2` whether the change set clears the session (`bool`), `$3` the removed
///   keys (`text[]`), `$4` the patch (`jsonb`), `$5` the new expiry, `$6` now (`timestamptz`),
///   `$7` whether the owner changes (`bool`), `$8` the new owner (`text`, nullable).
#[cfg(feature = "postgres")]
pub fn postgres_load_and_update_sql(store: &crate::PostgresStore) -> (String, String) {
    let (load, update) = store.load_and_update_sql();
    (load.to_owned(), update.to_owned())
}
