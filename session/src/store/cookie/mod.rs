//! The cookie backend: the whole session sealed (or signed) into its cookie.

use std::{
    rc::Rc,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    store::{DynStore, ErasedStore},
    ChangeSet, Record, SessionStore, StorageKey, StoreError, WriteResult,
};

mod cache;
mod payload;
mod seal;

/// The format version bound into every cookie; a cookie of another version does not open.
/// (Sealed values also start with a version byte of their own, `seal::VERSION`, with the
/// epoch; this text stays as it was, so that earlier sealed and signed values keep opening.)
const FORMAT: &[u8] = b"actix-typed-session cookie v1";
const TAG_LEN: usize = 16;
/// Length of an HMAC-SHA256 tag in unpadded base64url.
const SIGNATURE_LEN: usize = 43;

/// How the cookie backend protects the session it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieSecurity {
    /// Encrypted and authenticated with AES-256-GCM (a fresh random nonce per cookie): the client
    /// can neither read nor change the data. The default.
    #[default]
    Sealed,
    /// Authenticated with HMAC-SHA256 but readable by the client (base64url JSON): the client
    /// cannot change the data, but can read it. Use only for data that is not secret.
    Signed,
}

/// The cookie backend: the whole session travels in its own cookie, sealed with AES-256-GCM
/// (or signed with HMAC-SHA256), with keys derived from the middleware's master key.
///
/// The cookie name and a format version are bound as associated data, so a value made for one
/// cookie does not open under another.
///
/// Sealed cookies use a key per hour (an *epoch*): a sealed value starts with a version byte and
/// the epoch it was sealed in, both authenticated, and opens with that epoch's key for as long
/// as its session lives (epochs more than five minutes in the future, or from before the
/// absolute timeout, are refused). AES-GCM with random 96-bit nonces allows at most 2^32 seals
/// per key (NIST SP 800-38D); an hour stays under that up to about 1.19 million cookie writes a
/// second per master key, summed over every instance. Sealed cookies of builds before epochs
/// still open and are re-sealed in the current format by the response. The payload carries its own idle and absolute deadlines,
/// which the server checks: a client that ignores `Max-Age` and replays an old cookie gets a
/// fresh session.
///
/// # Limitations
/// - Browsers drop a cookie whose `name=value` is over 4096 bytes. Each insert checks the final
///   encoded size and returns [`SessionError::TooLarge`](crate::SessionError::TooLarge) instead
///   of letting the data vanish; move such sessions to a server-side backend.
/// - The server cannot revoke a cookie that a client kept: [`purge`](crate::Session::purge)
///   removes it from a cooperating browser, but a copy stays valid until its deadlines pass.
///   Use short timeouts, or a server-side backend, where that matters, or give the backend a
///   revocation store ([`with_revocations`](Self::with_revocations)) so that all cookies of one
///   owner can be refused at once.
/// - Parallel requests cannot be merged: the last response to arrive sets the cookie.
///
/// ```
/// use actix_typed_session::{CookieSecurity, CookieStore};
///
/// let sealed = CookieStore::default();
/// let signed = CookieStore::new(CookieSecurity::Signed);
/// assert_eq!(sealed.security(), CookieSecurity::Sealed);
/// assert_eq!(signed.security(), CookieSecurity::Signed);
/// ```
#[derive(Clone)]
pub struct CookieStore {
    security: CookieSecurity,
    revocations: Option<Arc<dyn DynStore>>,
    /// Slots of each worker thread's cache of opened values (0: none).
    opened_cache: usize,
}

/// The default size of each worker thread's cache of opened cookie values.
const OPENED_CACHE_SLOTS: usize = 512;

impl Default for CookieStore {
    fn default() -> Self {
        Self::new(CookieSecurity::default())
    }
}

impl std::fmt::Debug for CookieStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieStore")
            .field("security", &self.security)
            .field(
                "revocations",
                &self.revocations.as_ref().map(|s| s.type_name()),
            )
            .field("opened_cache", &self.opened_cache)
            .finish()
    }
}

impl CookieStore {
    /// A cookie backend with the given protection.
    pub fn new(security: CookieSecurity) -> Self {
        Self {
            security,
            revocations: None,
            opened_cache: OPENED_CACHE_SLOTS,
        }
    }

    /// Sets how many recently opened cookie values each worker thread remembers (512 by
    /// default; 0 turns the cache off for this store).
    ///
    /// A browser sends the same cookie with every request until its session changes. Opening
    /// it (base64url, AES-GCM or HMAC, the payload's JSON) is most of what a cookie session costs
    /// a request that reads it, so each worker thread keeps the values it opened or sealed last,
    /// in a table of `slots` entries (sets of four, least recently used out first), and a value
    /// seen again skips the work. A hit gives what opening would: an entry is used only for the
    /// same value, key ring, cookie name and [`CookieSecurity`], and the expiry and revocation
    /// checks still run. Values that do not open are never kept, and a lookup compares the
    /// whole value in constant time.
    ///
    /// The cost is memory, in one table per worker thread shared by every cookie store on it
    /// and as large as the largest setting (at most 65,536 slots): about 1 KB an entry for a
    /// small session (~0.5 MB a thread at the default), at most ~30 KB for the longest value
    /// kept (1 KB of cookie; longer values are opened every time).
    ///
    /// ```
    /// use actix_typed_session::CookieStore;
    ///
    /// // Many worker threads on a small machine: remember fewer values.
    /// let store = CookieStore::default().with_opened_cache(64);
    /// # let _ = store;
    /// ```
    pub fn with_opened_cache(mut self, slots: usize) -> Self {
        self.opened_cache = slots;
        self
    }

    /// How this backend protects its cookies.
    pub fn security(&self) -> CookieSecurity {
        self.security
    }

    /// Keeps per-owner revocations in `store` (a server-side store, e.g. the application's
    /// PostgreSQL or Redis store), so that the cookies of an owner can be ended although browsers
    /// hold them: [`Session::end_other_sessions`](crate::Session::end_other_sessions),
    /// [`end_all_sessions`](crate::Session::end_all_sessions) and
    /// [`SessionAdmin::end_all`](crate::SessionAdmin::end_all) record "not valid before now" for
    /// the owner, and every cookie session with an owner is checked against it when it loads.
    ///
    /// The cost: one store read for every request that loads a cookie session tied to an owner
    /// (anonymous cookie sessions cost nothing), and a failing store fails those requests as
    /// a server-side backend would. A revocation is remembered for the absolute timeout, after
    /// which every cookie it applies to has expired anyway. Cookies cannot be listed or ended
    /// one by one: only "all of this owner's cookies issued before now".
    ///
    /// ```
    /// use actix_typed_session::{CookieStore, MemoryStore};
    ///
    /// let cookies = CookieStore::default().with_revocations(MemoryStore::default());
    /// assert!(cookies.revocable());
    /// ```
    pub fn with_revocations(mut self, store: impl SessionStore) -> Self {
        self.revocations = Some(Arc::new(ErasedStore(store)));
        self
    }

    /// Whether this backend keeps revocations (see [`with_revocations`](Self::with_revocations)).
    pub fn revocable(&self) -> bool {
        self.revocations.is_some()
    }

    /// Records that `owner`'s cookies issued before `now` are revoked, until `keep_until`.
    /// `None` when there is no revocation store.
    pub(crate) async fn revoke_before(
        &self,
        owner: &str,
        now: SystemTime,
        keep_until: SystemTime,
    ) -> Option<Result<(), StoreError>> {
        let store = self.revocations.as_ref()?;
        let key = revocation_key(owner);
        let mut changes = ChangeSet::default();
        changes.set(NOT_BEFORE, Value::from(unix_millis(now)));
        Some(
            async {
                for _ in 0..3 {
                    if store.update(&key, &changes, keep_until, now).await? == WriteResult::Done {
                        return Ok(());
                    }
                    let mut record = Record::new(Map::new(), now, keep_until);
                    changes.apply_to(&mut record.data);
                    if store.create(&key, &record).await? == WriteResult::Done {
                        return Ok(());
                    }
                }
                Err(StoreError::new(
                    "revoking an owner's cookies",
                    "the revocation record kept changing under this write",
                ))
            }
            .await,
        )
    }

    /// Whether a cookie of `owner`, valid from `valid_from`, has been revoked. `Ok(false)` when
    /// there is no revocation store.
    pub(crate) async fn is_revoked(
        &self,
        owner: &str,
        valid_from: SystemTime,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let Some(store) = &self.revocations else {
            return Ok(false);
        };
        let Some(record) = store.load(&revocation_key(owner), now).await? else {
            return Ok(false);
        };
        let not_before = record.data.get(NOT_BEFORE).and_then(Value::as_u64);
        // Fail closed: a cookie issued in the very millisecond of the revocation is refused.
        Ok(not_before.is_some_and(|nbf| unix_millis(valid_from) <= nbf))
    }
}

/// The entry of a revocation record: unix milliseconds before which cookies are refused.
const NOT_BEFORE: &str = "not_before_ms";

/// Where an owner's revocation lives: a hash of the owner, in a domain of its own (no session
/// id hashes to it).
fn revocation_key(owner: &str) -> StorageKey {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"actix-typed-session cookie revocation\0");
    ctx.update(owner.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    StorageKey::from_bytes(out)
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a session cookie carries.
#[derive(Serialize)]
pub(crate) struct PayloadRef<'a> {
    /// Creation time, unix seconds.
    c: u64,
    /// Expiry (idle deadline capped by the absolute one), unix seconds.
    e: u64,
    d: &'a Map<String, Value>,
    /// The owner, if the session is tied to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    o: Option<&'a str>,
    /// Revocations before this time (unix milliseconds) spare the cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
}

impl PayloadRef<'_> {
    /// Appends the payload to `out` in the compact form [`payload`] describes: a tag byte,
    /// the times as variable-length integers, the owner's bytes, then the session map as JSON.
    /// (Payloads used to be all JSON, `{"c":…,"e":…,"d":…}`; those still open.)
    pub(crate) fn write_to(&self, out: &mut impl std::io::Write) -> Result<(), serde_json::Error> {
        let mut tag = payload::COMPACT;
        if self.v.is_some() {
            tag |= payload::HAS_VALID_FROM;
        }
        if self.o.is_some() {
            tag |= payload::HAS_OWNER;
        }
        // Up to 1 + 4 × 10 bytes: the tag and the integers, written at once.
        let mut head = [0u8; 41];
        head[0] = tag;
        let mut len = 1;
        let mut put = |n: u64| len += payload::put_varint(&mut head[len..], n);
        put(self.c);
        put(self.e);
        if let Some(v) = self.v {
            put(v);
        }
        if let Some(owner) = self.o {
            put(owner.len() as u64);
        }
        out.write_all(&head[..len]).map_err(serde_json::Error::io)?;
        if let Some(owner) = self.o {
            out.write_all(owner.as_bytes())
                .map_err(serde_json::Error::io)?;
        }
        serde_json::to_writer(out, self.d)
    }

    /// The length of what [`write_to`](Self::write_to) writes, counted without writing it.
    pub(crate) fn encoded_len(&self) -> Result<usize, serde_json::Error> {
        let mut counter = ByteCounter(0);
        self.write_to(&mut counter)?;
        Ok(counter.0)
    }
}

/// An `io::Write` that only counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0 += buf.len();
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses a decrypted payload in either form; one that parses is written again in the compact
/// form, which must parse to the same fields (`Err` says which differ). For fuzzing.
#[cfg(any(test, feature = "__fuzz"))]
pub(crate) fn payload_round_trip(plaintext: &[u8]) -> Result<(), String> {
    let Some(first) = payload::parse(plaintext) else {
        return Ok(());
    };
    let mut written = Vec::new();
    PayloadRef {
        c: first.c,
        e: first.e,
        d: &first.d,
        o: first.o.as_deref(),
        v: first.v,
    }
    .write_to(&mut written)
    .map_err(|err| format!("a parsed payload did not write: {err}"))?;
    match payload::parse(&written) {
        Some(second) if second == first => Ok(()),
        Some(second) => Err(format!("read back as {second:?}, not {first:?}")),
        None => Err(format!("its compact form does not parse: {written:?}")),
    }
}

/// A cookie that opened.
#[derive(Debug, Clone)]
#[cfg_attr(test, derive(PartialEq))]
pub(crate) struct Opened {
    /// Shared with this thread's cache of opened values.
    pub(crate) data: Rc<Map<String, Value>>,
    pub(crate) created_at: SystemTime,
    pub(crate) expires_at: SystemTime,
    pub(crate) owner: Option<String>,
    /// When revocations stop applying to it: its creation unless it was re-issued by
    /// "end all other sessions".
    pub(crate) valid_from: SystemTime,
    /// Opened with a previous key, or sealed in the format before epochs: re-seal with the
    /// current key.
    pub(crate) stale_key: bool,
}

/// Why a cookie did not open (logged, never shown to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    NotBase64,
    TooShort,
    BadSeal,
    Epoch,
    BadPayload,
}

impl Rejected {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::NotBase64 => "not base64url",
            Self::TooShort => "too short",
            Self::BadSeal => "does not open with any configured key",
            Self::Epoch => "sealed in an epoch in the future or before the absolute timeout",
            Self::BadPayload => "opened but the payload is malformed",
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_unix(secs: u64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// The associated data bound into the cookies called `cookie_name` (built once per session spec).
pub(crate) fn aad(cookie_name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(FORMAT.len() + 1 + cookie_name.len());
    aad.extend_from_slice(FORMAT);
    aad.push(0);
    aad.extend_from_slice(cookie_name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
    use serde_json::json;

    use super::*;
    use crate::{key::KeyRing, Key};

    fn ring(keys: &[&Key]) -> KeyRing {
        KeyRing::new(
            keys[0],
            &keys[1..].iter().map(|k| (*k).clone()).collect::<Vec<_>>(),
        )
    }

    fn plaintext(data: &Map<String, Value>) -> Vec<u8> {
        let now = SystemTime::now();
        serde_json::to_vec(&CookieStore::payload(
            data,
            now,
            now + Duration::from_secs(60),
            None,
            None,
        ))
        .unwrap()
    }

    fn sample() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("user".into(), json!("ann"));
        m
    }

    #[test]
    fn sealed_and_signed_values_round_trip_with_the_predicted_length() {
        let key = Key::generate();
        let keys = ring(&[&key]);
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            let plain = plaintext(&sample());
            let len = plain.len();
            let value = store.seal(&keys, "s", plain);
            assert_eq!(value.len(), store.encoded_len(len), "{security:?}");
            let opened = store.open(&keys, "s", &value).unwrap();
            assert_eq!(*opened.data, sample());
            assert!(!opened.stale_key);
        }
    }

    #[test]
    fn a_value_remembered_at_sealing_opens_as_it_does_from_its_bytes() {
        let keys = ring(&[&Key::generate()]);
        let aad: Arc<[u8]> = aad("s").into();
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            let mut data = sample();
            // Floats that serde_json reads back one unit in the last place off unless it parses
            // them exactly (its `float_roundtrip` feature).
            data.insert("f".into(), json!(97.213_844_820_775_49));
            data.insert("g".into(), json!(0.939_652_818_613_887_9));
            let data = Rc::new(data);
            let now = SystemTime::now();
            let later = now + Duration::from_secs(60);
            let payload = CookieStore::payload(&data, now, later, Some("ann"), Some(now));
            let value = store.seal_payload(&keys, &aad, &payload, now).unwrap();
            let value = value.as_bytes();
            store.remember_sealed(&keys, &aad, value, &payload, &data);
            let opened = store.open_with_aad(&keys, &aad, value, now).unwrap();
            let cached = store.open_cached(&keys, &aad, value, now).unwrap();
            assert!(Rc::ptr_eq(&cached.data, &data), "not served from the cache");
            assert_eq!(opened, cached, "{security:?}");
        }
    }

    #[test]
    fn payloads_are_written_compactly_and_read_back_exactly() {
        let now = SystemTime::now();
        let mut awkward = sample();
        awkward.insert(
            "quote\"\\\u{1}é".into(),
            json!({"nested": [1.5, null, "\n"]}),
        );
        for data in [Map::new(), sample(), awkward] {
            for owner in [None, Some(""), Some("ann"), Some("\"odd\u{7f}\" é")] {
                for valid_from in [None, Some(now)] {
                    for (created, expires) in [
                        (UNIX_EPOCH, UNIX_EPOCH),
                        (now, now + Duration::from_secs(86_400)),
                        (now, UNIX_EPOCH + Duration::from_secs(1 << 40)),
                    ] {
                        let payload =
                            CookieStore::payload(&data, created, expires, owner, valid_from);
                        let mut written = Vec::new();
                        payload.write_to(&mut written).unwrap();
                        // Counted as written (the exact size check near the cookie limit).
                        assert_eq!(written.len(), payload.encoded_len().unwrap());
                        // Shorter than the JSON it replaces.
                        assert!(written.len() < serde_json::to_vec(&payload).unwrap().len());
                        let read = payload::parse(&written).expect("reads back");
                        assert_eq!(read.c, payload.c);
                        assert_eq!(read.e, payload.e);
                        assert_eq!(read.d, data);
                        assert_eq!(read.o.as_deref(), owner);
                        assert_eq!(read.v, payload.v);
                    }
                }
            }
        }
    }

    #[test]
    fn every_payload_that_parses_reads_back_from_its_compact_form() {
        let now = SystemTime::now();
        let mut compact = Vec::new();
        CookieStore::payload(&sample(), now, now, Some("ann"), Some(now))
            .write_to(&mut compact)
            .unwrap();
        for input in [
            &br#"{"c":1,"e":2,"d":{"x":[1.5,null,"\u00e9"]},"o":"ann","v":3}"#[..],
            br#"{ "e": 2, "c": 1, "d": {} }"#,
            &compact,
        ] {
            payload_round_trip(input).unwrap();
        }
    }

    #[test]
    fn cookies_written_as_json_by_earlier_builds_still_open() {
        let keys = ring(&[&Key::generate()]);
        let store = CookieStore::default();
        let now = SystemTime::now();
        let data = sample();
        let payload =
            CookieStore::payload(&data, now, now + Duration::from_secs(60), Some("ann"), None);
        let value = store.seal(&keys, "s", serde_json::to_vec(&payload).unwrap());
        let opened = store.open(&keys, "s", &value).unwrap();
        assert_eq!(*opened.data, data);
        assert_eq!(opened.owner.as_deref(), Some("ann"));
        assert_eq!(unix(opened.expires_at), payload.e);
    }

    #[test]
    fn values_in_the_v1_format_keep_opening() {
        // `{"user":"ann"}` from 2,000,000,000 to 60 s later, for the key [7; 64] and the cookie
        // `s`: sealed is base64url(nonce 1..=12 | AES-256-GCM ciphertext | tag), signed is
        // base64url(HMAC-SHA256) "." base64url(payload), both unpadded.
        const SEALED: &str =
            "AQIDBAUGBwgJCgsMnwuauCj4o2QEp3siAfGJAr0pPTcWjtao65B58FuGVlSpD9-ZfJrBKYY";
        const SIGNED: &str =
            "GX_3_SXEtM2qMaxzqk8wxukYKZmgeKW8RQ1lTA6Zei4.gICo1rkHvKjWuQd7InVzZXIiOiJhbm4ifQ";
        let keys = ring(&[&Key::from(&[7u8; 64][..])]);
        for (security, value) in [
            (CookieSecurity::Sealed, SEALED),
            (CookieSecurity::Signed, SIGNED),
        ] {
            let opened = CookieStore::new(security).open(&keys, "s", value).unwrap();
            assert_eq!(*opened.data, sample(), "{security:?}");
            // Sealed values of this format predate epoch keys: re-sealed on their next response.
            assert_eq!(opened.stale_key, security == CookieSecurity::Sealed);
            assert_eq!(unix(opened.created_at), 2_000_000_000);
            assert_eq!(unix(opened.expires_at), 2_000_000_060);
        }
        // Signing is deterministic: today's writer gives the same value.
        let t = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let mut plain = Vec::new();
        CookieStore::payload(&sample(), t, t + Duration::from_secs(60), None, None)
            .write_to(&mut plain)
            .unwrap();
        let signed = CookieStore::new(CookieSecurity::Signed).seal(&keys, "s", plain);
        assert_eq!(signed, SIGNED);
    }

    #[test]
    fn payloads_serialized_in_place_open_and_have_the_predicted_length() {
        let key = Key::generate();
        let keys = ring(&[&key, &Key::generate()]);
        let mut big = sample();
        big.insert("pad".into(), json!("p".repeat(1000)));
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            for data in [sample(), big.clone()] {
                let now = SystemTime::now();
                let payload = CookieStore::payload(&data, now, now, Some("ann"), Some(now));
                let plain_len = payload.encoded_len().unwrap();
                let value = store.seal_payload(&keys, &aad("s"), &payload, now).unwrap();
                assert_eq!(value.len(), store.encoded_len(plain_len), "{security:?}");
                let opened = store.open(&keys, "s", &value).unwrap();
                assert_eq!(*opened.data, data);
                assert_eq!(opened.owner.as_deref(), Some("ann"));
                assert!(!opened.stale_key);
                assert!(store.open(&keys, "t", &value).is_err());
            }
        }
    }

    #[test]
    fn sealed_values_hide_the_data_and_signed_values_do_not() {
        let keys = ring(&[&Key::generate()]);
        let sealed = CookieStore::default().seal(&keys, "s", plaintext(&sample()));
        let signed =
            CookieStore::new(CookieSecurity::Signed).seal(&keys, "s", plaintext(&sample()));
        let reveal = |v: &str| {
            v.split('.')
                .filter_map(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .any(|b| String::from_utf8_lossy(&b).contains("ann"))
        };
        assert!(!reveal(&sealed));
        assert!(reveal(&signed));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let keys = ring(&[&Key::generate()]);
        let a = CookieStore::default().seal(&keys, "s", plaintext(&sample()));
        let b = CookieStore::default().seal(&keys, "s", plaintext(&sample()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_value_does_not_open_under_another_cookie_name_or_key() {
        let key = Key::generate();
        let keys = ring(&[&key]);
        let other = ring(&[&Key::generate()]);
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            let value = store.seal(&keys, "prefs", plaintext(&sample()));
            assert_eq!(
                store.open(&keys, "cart", &value).unwrap_err(),
                Rejected::BadSeal
            );
            assert_eq!(
                store.open(&other, "prefs", &value).unwrap_err(),
                Rejected::BadSeal
            );
        }
    }

    #[test]
    fn a_previous_key_opens_and_asks_for_a_reseal() {
        let old = Key::generate();
        let new = Key::generate();
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            let value = store.seal(&ring(&[&old]), "s", plaintext(&sample()));
            let opened = store.open(&ring(&[&new, &old]), "s", &value).unwrap();
            assert!(opened.stale_key);
            assert!(store.open(&ring(&[&new]), "s", &value).is_err());
        }
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let keys = ring(&[&Key::generate()]);
        for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
            let store = CookieStore::new(security);
            for junk in [
                "",
                "a",
                "====",
                "é😀",
                ".",
                "abc.def",
                &"A".repeat(40),
                &"A".repeat(4000),
            ] {
                assert!(store.open(&keys, "s", junk).is_err(), "{junk:?}");
            }
        }
    }
}
