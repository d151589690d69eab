//! Sealing and opening cookie values: AES-256-GCM (or HMAC-SHA256 when signed only) over the
//! payload, with the format version and cookie name as associated data, base64url-encoded.

use std::{
    rc::Rc,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore as _;
use ring::{
    aead::{Aad, LessSafeKey, Nonce, NONCE_LEN},
    hmac,
};
use serde_json::{Map, Value};

use super::{
    cache, from_unix, payload, unix, unix_millis, CookieSecurity, CookieStore, Opened, PayloadRef,
    Rejected, SIGNATURE_LEN, TAG_LEN,
};
use crate::key::{epoch_of, KeyRing};

impl CookieStore {
    pub(crate) fn payload<'a>(
        data: &'a Map<String, Value>,
        created_at: SystemTime,
        expires_at: SystemTime,
        owner: Option<&'a str>,
        valid_from: Option<SystemTime>,
    ) -> PayloadRef<'a> {
        PayloadRef {
            c: unix(created_at),
            e: unix(expires_at),
            d: data,
            o: owner,
            v: valid_from.map(unix_millis),
        }
    }

    /// The exact length of the cookie value for a plaintext of `plain_len` bytes.
    pub(crate) fn encoded_len(&self, plain_len: usize) -> usize {
        match self.security {
            CookieSecurity::Sealed => b64_len(HEADER_LEN + NONCE_LEN + plain_len + TAG_LEN),
            CookieSecurity::Signed => SIGNATURE_LEN + 1 + b64_len(plain_len),
        }
    }

    /// Seals `plaintext` for the cookie `cookie_name` (tests, benchmarks and fuzzing; the
    /// middleware writes the payload straight into the sealing buffer with
    /// [`seal_payload`](Self::seal_payload)).
    #[cfg(any(test, feature = "__bench", feature = "__fuzz"))]
    pub(crate) fn seal(&self, keys: &KeyRing, cookie_name: &str, plaintext: Vec<u8>) -> String {
        self.seal_at(keys, cookie_name, plaintext, SystemTime::now())
    }

    /// [`seal`](Self::seal) as if at `now`.
    #[cfg(any(test, feature = "__bench", feature = "__fuzz"))]
    pub(crate) fn seal_at(
        &self,
        keys: &KeyRing,
        cookie_name: &str,
        plaintext: Vec<u8>,
        now: SystemTime,
    ) -> String {
        let aad = super::aad(cookie_name);
        self.try_seal_with(keys, &aad, plaintext.len(), now, |buf| {
            buf.extend_from_slice(&plaintext);
            Ok(())
        })
        .expect("copying bytes does not fail")
    }

    /// Seals `payload` at `now` (which picks the epoch key), written straight into the buffer
    /// that is encrypted in place.
    pub(crate) fn seal_payload(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        payload: &PayloadRef<'_>,
        now: SystemTime,
    ) -> Result<String, serde_json::Error> {
        self.try_seal_with(keys, aad, PLAINTEXT_CAPACITY, now, |buf| {
            payload.write_to(buf)
        })
    }

    /// The cookie value (base64url) that seals (or signs) the plaintext `write` appends to a
    /// buffer.
    fn try_seal_with(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        plain_len: usize,
        now: SystemTime,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<String, serde_json::Error> {
        let key = keys.current();
        match self.security {
            CookieSecurity::Sealed => {
                // header (version, epoch) | nonce | plaintext, encrypted in place | tag
                let header = header(epoch_of(now));
                let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain_len + TAG_LEN);
                out.extend_from_slice(&header);
                out.resize(HEADER_LEN + NONCE_LEN, 0);
                write(&mut out)?;
                // 96 random bits from the thread's CSPRNG (ChaCha12 seeded from the operating
                // system, reseeded every 64 KiB and after a fork): no system call per cookie.
                let mut nonce = [0u8; NONCE_LEN];
                rand::thread_rng().fill_bytes(&mut nonce);
                out[HEADER_LEN..HEADER_LEN + NONCE_LEN].copy_from_slice(&nonce);
                let tag = key
                    .sealing
                    .for_sealing(epoch_of(now))
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(&epoch_aad(&header, aad)),
                        &mut out[HEADER_LEN + NONCE_LEN..],
                    )
                    .expect("a cookie is far below AES-GCM's message limit");
                out.extend_from_slice(tag.as_ref());
                Ok(URL_SAFE_NO_PAD.encode(out))
            }
            CookieSecurity::Signed => {
                let mut plaintext = Vec::with_capacity(plain_len);
                write(&mut plaintext)?;
                // base64url(tag) "." base64url(plaintext), the tag over the encoded payload.
                let payload = URL_SAFE_NO_PAD.encode(plaintext);
                let tag = sign(&key.signing, aad, payload.as_bytes());
                let mut value = String::with_capacity(SIGNATURE_LEN + 1 + payload.len());
                URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut value);
                value.push('.');
                value.push_str(&payload);
                Ok(value)
            }
        }
    }

    /// Opens a value of the cookie `cookie_name` (tests, benchmarks and fuzzing).
    #[cfg(any(test, feature = "__bench", feature = "__fuzz"))]
    pub(crate) fn open(
        &self,
        keys: &KeyRing,
        cookie_name: &str,
        value: &str,
    ) -> Result<Opened, Rejected> {
        self.open_at(keys, cookie_name, value, SystemTime::now())
    }

    /// [`open`](Self::open) as if at `now`.
    #[cfg(any(test, feature = "__bench", feature = "__fuzz"))]
    pub(crate) fn open_at(
        &self,
        keys: &KeyRing,
        cookie_name: &str,
        value: &str,
        now: SystemTime,
    ) -> Result<Opened, Rejected> {
        self.open_with_aad(keys, &super::aad(cookie_name), value.as_bytes(), now)
    }

    /// Opens a cookie value sealed (or signed) for the associated data `aad`, from this
    /// thread's cache of opened values when it opened here recently. (A value that opened once
    /// opens at any later time too, up to its payload deadline, which the caller checks: its
    /// epoch only moves further from the future and stays within the lookback until then.)
    pub(crate) fn open_cached(
        &self,
        keys: &KeyRing,
        aad: &Arc<[u8]>,
        value: &[u8],
        now: SystemTime,
    ) -> Result<Opened, Rejected> {
        cache::open_cached(
            self.opened_cache,
            self.cache_context(keys, aad),
            value,
            || self.open_with_aad(keys, aad, value, now),
        )
    }

    /// Remembers, in this thread's cache of opened values, that `value` (just sealed from
    /// `payload` with the current key) opens to `payload`: the browser sends it back next.
    pub(crate) fn remember_sealed(
        &self,
        keys: &KeyRing,
        aad: &Arc<[u8]>,
        value: &[u8],
        payload: &PayloadRef<'_>,
        data: &Rc<Map<String, Value>>,
    ) {
        // Exactly what opening the value would give; nothing where opening would fail.
        cache::remember(
            self.opened_cache,
            self.cache_context(keys, aad),
            value,
            || {
                let created_at = from_unix(payload.c)?;
                let valid_from = match payload.v {
                    Some(ms) => UNIX_EPOCH.checked_add(Duration::from_millis(ms))?,
                    None => created_at,
                };
                Some(Opened {
                    data: Rc::clone(data),
                    created_at,
                    expires_at: from_unix(payload.e)?,
                    owner: payload.o.map(str::to_owned),
                    valid_from,
                    stale_key: false,
                })
            },
        );
    }

    fn cache_context<'a>(&self, keys: &KeyRing, aad: &'a Arc<[u8]>) -> cache::Context<'a> {
        cache::Context {
            ring: keys.id(),
            security: self.security,
            aad,
        }
    }

    /// Opens a cookie value sealed (or signed) for the associated data `aad`, at `now` (which
    /// bounds the epochs accepted).
    pub(crate) fn open_with_aad(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        value: &[u8],
        now: SystemTime,
    ) -> Result<Opened, Rejected> {
        let mut buf;
        // `stale`: opened with a previous key or in the format before epochs, to be re-sealed.
        let (plaintext, stale): (&[u8], bool) = match self.security {
            CookieSecurity::Sealed => {
                let decode = || {
                    URL_SAFE_NO_PAD
                        .decode(value)
                        .map_err(|_| Rejected::NotBase64)
                };
                buf = decode()?;
                let (start, stale) = open_sealed(keys, aad, now, &mut buf, decode)?;
                let end = buf.len() - TAG_LEN;
                (&buf[start..end], stale)
            }
            CookieSecurity::Signed => {
                let dot = memchr::memchr(b'.', value).ok_or(Rejected::TooShort)?;
                let (tag, payload) = (&value[..dot], &value[dot + 1..]);
                let tag = URL_SAFE_NO_PAD
                    .decode(tag)
                    .map_err(|_| Rejected::NotBase64)?;
                let index = keys
                    .all()
                    .find(|(_, key)| verify(&key.signing, aad, payload, &tag))
                    .map(|(index, _)| index)
                    .ok_or(Rejected::BadSeal)?;
                buf = URL_SAFE_NO_PAD
                    .decode(payload)
                    .map_err(|_| Rejected::NotBase64)?;
                (&buf, index != 0)
            }
        };
        let payload = payload::parse(plaintext).ok_or(Rejected::BadPayload)?;
        let created_at = from_unix(payload.c).ok_or(Rejected::BadPayload)?;
        let valid_from = match payload.v {
            Some(ms) => UNIX_EPOCH
                .checked_add(Duration::from_millis(ms))
                .ok_or(Rejected::BadPayload)?,
            None => created_at,
        };
        Ok(Opened {
            data: Rc::new(payload.d),
            created_at,
            expires_at: from_unix(payload.e).ok_or(Rejected::BadPayload)?,
            owner: payload.o,
            valid_from,
            stale_key: stale,
        })
    }
}

/// The sealed format's version, its first byte; the epoch (4 bytes, big-endian) follows.
/// Earlier builds wrote no header (the value started with the nonce).
const VERSION: u8 = 2;
/// The version byte and the epoch.
const HEADER_LEN: usize = 5;

fn header(epoch: u32) -> [u8; HEADER_LEN] {
    let mut header = [VERSION; HEADER_LEN];
    header[1..].copy_from_slice(&epoch.to_be_bytes());
    header
}

/// What a sealed value authenticates besides its ciphertext: its header (so the epoch is bound
/// twice, by the key and here), then the session's associated data (cookie name).
fn epoch_aad(header: &[u8; HEADER_LEN], aad: &[u8]) -> Vec<u8> {
    [&header[..], aad].concat()
}

/// Opens the decoded sealed value in `buf` in place; the start of its plaintext, and whether it
/// must be re-sealed. `decode` gives a fresh copy of the value: a failed attempt may leave the
/// buffer changed, so attempts after the first (rare: a key rotation, a cookie of an earlier
/// build, tampering) each start from a new one.
fn open_sealed(
    keys: &KeyRing,
    aad: &[u8],
    now: SystemTime,
    buf: &mut Vec<u8>,
    decode: impl Fn() -> Result<Vec<u8>, Rejected>,
) -> Result<(usize, bool), Rejected> {
    if buf.len() < NONCE_LEN + TAG_LEN {
        return Err(Rejected::TooShort);
    }
    let mut pristine = true;
    let mut fresh = |buf: &mut Vec<u8>| {
        if !std::mem::replace(&mut pristine, false) {
            *buf = decode()?;
        }
        Ok::<_, Rejected>(())
    };
    let mut refused = Rejected::BadSeal;
    if buf.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN && buf[0] == VERSION {
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("length checked");
        let epoch = u32::from_be_bytes(header[1..].try_into().expect("four bytes"));
        if keys.accepts_epoch(epoch, now) {
            let aad = epoch_aad(&header, aad);
            for (index, derived) in keys.all() {
                let (key, kept) = derived.sealing.for_opening(epoch);
                fresh(buf)?;
                if open_in_place(&key, &aad, &mut buf[HEADER_LEN..]) {
                    if !kept {
                        derived.sealing.keep(epoch, &key);
                    }
                    return Ok((HEADER_LEN + NONCE_LEN, index != 0));
                }
            }
        } else {
            refused = Rejected::Epoch;
        }
    }
    // The format before epochs: nonce | ciphertext | tag under one key per master key, which
    // seals nothing any more. (Its random first byte is the version byte once in 256 values,
    // so such a value is tried both ways.) What opens so is re-sealed in the current format.
    for (_, derived) in keys.all() {
        fresh(buf)?;
        if open_in_place(&derived.legacy_sealing, aad, buf) {
            return Ok((NONCE_LEN, true));
        }
    }
    Err(refused)
}

/// Opens `nonce | ciphertext | tag` in place; whether the tag matched.
fn open_in_place(key: &LessSafeKey, aad: &[u8], sealed: &mut [u8]) -> bool {
    let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().expect("length checked");
    key.open_in_place(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut sealed[NONCE_LEN..],
    )
    .is_ok()
}

/// A first guess at a session's payload size, to size the sealing buffer.
const PLAINTEXT_CAPACITY: usize = 256;

/// The length of `len` bytes in unpadded base64url.
fn b64_len(len: usize) -> usize {
    base64::encoded_len(len, false).expect("a cookie's length is far from overflowing")
}

fn sign(key: &hmac::Key, aad: &[u8], payload: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(&(aad.len() as u64).to_be_bytes());
    ctx.update(aad);
    ctx.update(payload);
    ctx.sign()
}

/// Constant-time verification through `ring`.
fn verify(key: &hmac::Key, aad: &[u8], payload: &[u8], tag: &[u8]) -> bool {
    let mut msg = Vec::with_capacity(8 + aad.len() + payload.len());
    msg.extend_from_slice(&(aad.len() as u64).to_be_bytes());
    msg.extend_from_slice(aad);
    msg.extend_from_slice(payload);
    hmac::verify(key, &msg, tag).is_ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{key::EPOCH, Key};

    /// A time `secs` into the epoch 500,000 (in the year 2027).
    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(500_000 * EPOCH.as_secs() + secs)
    }

    fn plaintext(now: SystemTime) -> Vec<u8> {
        let Value::Object(data) = json!({"user": "ann"}) else {
            unreachable!()
        };
        let mut plain = Vec::new();
        CookieStore::payload(&data, now, now + Duration::from_secs(60), None, None)
            .write_to(&mut plain)
            .unwrap();
        plain
    }

    fn decoded(value: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(value).unwrap()
    }

    /// Seals as builds before epoch keys did: nonce | ciphertext | tag under the legacy key.
    fn legacy_seal(keys: &KeyRing, cookie_name: &str, nonce: [u8; NONCE_LEN]) -> String {
        let mut out = nonce.to_vec();
        out.extend_from_slice(&plaintext(at(0)));
        let tag = keys
            .current()
            .legacy_sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(super::super::aad(cookie_name)),
                &mut out[NONCE_LEN..],
            )
            .unwrap();
        out.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(out)
    }

    #[test]
    fn a_value_carries_the_epoch_it_was_sealed_in() {
        let keys = KeyRing::new(&Key::generate(), &[]);
        let store = CookieStore::default();
        for (secs, epoch) in [(0, 500_000u32), (3_599, 500_000), (3_600, 500_001)] {
            let value = store.seal_at(&keys, "s", plaintext(at(secs)), at(secs));
            let bytes = decoded(&value);
            assert_eq!(bytes[0], VERSION);
            assert_eq!(bytes[1..HEADER_LEN], epoch.to_be_bytes(), "{secs}");
        }
    }

    #[test]
    fn a_value_sealed_in_an_earlier_epoch_opens_until_the_lookback() {
        let keys = KeyRing::new(&Key::generate(), &[]).with_lookback(Duration::from_secs(86_400));
        let store = CookieStore::default();
        let value = store.seal_at(&keys, "s", plaintext(at(3_599)), at(3_599));
        for later in [3_600, 7_200 + 1_800, 86_400] {
            let opened = store.open_at(&keys, "s", &value, at(later)).unwrap();
            assert!(!opened.stale_key, "{later}");
        }
        // A day later (plus the skew) its epoch is before the lookback: refused before any
        // decryption.
        let too_late = at(3_599 + 86_400 + 3_600);
        assert_eq!(
            store.open_at(&keys, "s", &value, too_late),
            Err(Rejected::Epoch)
        );
    }

    #[test]
    fn epochs_further_in_the_future_than_the_skew_are_refused() {
        let keys = KeyRing::new(&Key::generate(), &[]);
        let store = CookieStore::default();
        // An instance whose clock runs four minutes ahead seals in the next epoch.
        let ahead = store.seal_at(&keys, "s", plaintext(at(3_600)), at(3_600));
        assert!(store.open_at(&keys, "s", &ahead, at(3_360)).is_ok());
        // An epoch more than five minutes ahead does not open.
        assert_eq!(
            store.open_at(&keys, "s", &ahead, at(3_290)),
            Err(Rejected::Epoch)
        );
        let far = store.seal_at(&keys, "s", plaintext(at(7_200)), at(7_200));
        assert_eq!(
            store.open_at(&keys, "s", &far, at(3_600)),
            Err(Rejected::Epoch)
        );
    }

    #[test]
    fn a_tampered_epoch_does_not_open() {
        let keys = KeyRing::new(&Key::generate(), &[]);
        let store = CookieStore::default();
        let now = at(7_200);
        let value = store.seal_at(&keys, "s", plaintext(now), now);
        assert!(store.open_at(&keys, "s", &value, now).is_ok());
        for (epoch, why) in [
            (499_999u32, Rejected::BadSeal),
            (500_001, Rejected::BadSeal),
            (400_000, Rejected::Epoch),
            (u32::MAX, Rejected::Epoch),
        ] {
            let mut bytes = decoded(&value);
            bytes[1..HEADER_LEN].copy_from_slice(&epoch.to_be_bytes());
            let tampered = URL_SAFE_NO_PAD.encode(bytes);
            assert_eq!(
                store.open_at(&keys, "s", &tampered, now),
                Err(why),
                "{epoch}"
            );
        }
    }

    #[test]
    fn the_epoch_is_bound_by_the_associated_data_too() {
        // The same key under another header: the header is authenticated, not only the key choice.
        let keys = KeyRing::new(&Key::generate(), &[]);
        let now = at(10);
        let value = CookieStore::default().seal_at(&keys, "s", plaintext(now), now);
        let mut bytes = decoded(&value);
        let key = keys.current().sealing.for_sealing(epoch_of(now));
        let other_header = header(epoch_of(now) + 1);
        let aad = epoch_aad(&other_header, &super::super::aad("s"));
        assert!(!open_in_place(&key, &aad, &mut bytes[HEADER_LEN..]));
    }

    #[test]
    fn values_sealed_before_epochs_open_and_ask_for_a_reseal() {
        let keys = KeyRing::new(&Key::generate(), &[]);
        let store = CookieStore::default();
        let now = at(100);
        let epoch = epoch_of(now).to_be_bytes();
        // Random nonces; one starts like a current header with a plausible epoch, one with an
        // implausible one: each is tried as both formats.
        let nonces = [
            [9; NONCE_LEN],
            [
                VERSION, epoch[0], epoch[1], epoch[2], epoch[3], 7, 7, 7, 7, 7, 7, 7,
            ],
            [VERSION, 0, 0, 0, 1, 7, 7, 7, 7, 7, 7, 7],
        ];
        for nonce in nonces {
            let value = legacy_seal(&keys, "s", nonce);
            let opened = store.open_at(&keys, "s", &value, now).unwrap();
            assert!(opened.stale_key, "{nonce:?}");
            assert_eq!(opened.data["user"], "ann");
            // Bound to the cookie name as before.
            assert!(store.open_at(&keys, "t", &value, now).is_err());
        }
    }
}
