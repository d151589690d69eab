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
    aead::{Aad, Nonce, NONCE_LEN},
    hmac,
};
use serde_json::{Map, Value};

use super::{
    cache, from_unix, payload, unix, unix_millis, CookieSecurity, CookieStore, Opened, PayloadRef,
    Rejected, SIGNATURE_LEN, TAG_LEN,
};
use crate::key::KeyRing;

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
            CookieSecurity::Sealed => b64_len(NONCE_LEN + plain_len + TAG_LEN),
            CookieSecurity::Signed => SIGNATURE_LEN + 1 + b64_len(plain_len),
        }
    }

    /// Seals `plaintext` for the cookie `cookie_name` (tests, benchmarks and fuzzing; the
    /// middleware writes the payload straight into the sealing buffer with
    /// [`seal_payload`](Self::seal_payload)).
    #[cfg(any(test, feature = "__bench", feature = "__fuzz"))]
    pub(crate) fn seal(&self, keys: &KeyRing, cookie_name: &str, plaintext: Vec<u8>) -> String {
        self.try_seal_with(keys, &super::aad(cookie_name), plaintext.len(), |buf| {
            buf.extend_from_slice(&plaintext);
            Ok(())
        })
        .expect("copying bytes does not fail")
    }

    /// Seals `payload`, written straight into the buffer that is encrypted in place.
    pub(crate) fn seal_payload(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        payload: &PayloadRef<'_>,
    ) -> Result<String, serde_json::Error> {
        self.try_seal_with(keys, aad, PLAINTEXT_CAPACITY, |buf| payload.write_to(buf))
    }

    /// The cookie value (base64url) that seals (or signs) the plaintext `write` appends to a
    /// buffer.
    fn try_seal_with(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        plain_len: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<String, serde_json::Error> {
        let key = keys.current();
        match self.security {
            CookieSecurity::Sealed => {
                // nonce | plaintext, encrypted in place | tag
                let mut out = Vec::with_capacity(NONCE_LEN + plain_len + TAG_LEN);
                out.resize(NONCE_LEN, 0);
                write(&mut out)?;
                // 96 random bits from the thread's CSPRNG (ChaCha12 seeded from the operating
                // system, reseeded every 64 KiB and after a fork): no system call per cookie.
                let mut nonce = [0u8; NONCE_LEN];
                rand::thread_rng().fill_bytes(&mut nonce);
                out[..NONCE_LEN].copy_from_slice(&nonce);
                let tag = key
                    .sealing
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        &mut out[NONCE_LEN..],
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
        self.open_with_aad(keys, &super::aad(cookie_name), value.as_bytes())
    }

    /// Opens a cookie value sealed (or signed) for the associated data `aad`, from this
    /// thread's cache of opened values when it opened here recently.
    pub(crate) fn open_cached(
        &self,
        keys: &KeyRing,
        aad: &Arc<[u8]>,
        value: &[u8],
    ) -> Result<Opened, Rejected> {
        cache::open_cached(
            self.opened_cache,
            self.cache_context(keys, aad),
            value,
            || self.open_with_aad(keys, aad, value),
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

    /// Opens a cookie value sealed (or signed) for the associated data `aad`.
    pub(crate) fn open_with_aad(
        &self,
        keys: &KeyRing,
        aad: &[u8],
        value: &[u8],
    ) -> Result<Opened, Rejected> {
        let mut buf;
        let (plaintext, key_index): (&[u8], usize) = match self.security {
            CookieSecurity::Sealed => {
                let decode = || {
                    let sealed = URL_SAFE_NO_PAD
                        .decode(value)
                        .map_err(|_| Rejected::NotBase64)?;
                    if sealed.len() < NONCE_LEN + TAG_LEN {
                        return Err(Rejected::TooShort);
                    }
                    Ok(sealed)
                };
                buf = decode()?;
                let nonce: [u8; NONCE_LEN] =
                    buf[..NONCE_LEN].try_into().expect("length checked above");
                // Decrypted in place; a failed attempt may leave the buffer changed, so a
                // previous key (rare: only during a key rotation) gets a freshly decoded copy.
                let mut opened = None;
                for (index, key) in keys.all() {
                    if index > 0 {
                        buf = decode()?;
                    }
                    if key
                        .sealing
                        .open_in_place(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(aad),
                            &mut buf[NONCE_LEN..],
                        )
                        .is_ok()
                    {
                        opened = Some(index);
                        break;
                    }
                }
                let index = opened.ok_or(Rejected::BadSeal)?;
                let end = buf.len() - TAG_LEN;
                (&buf[NONCE_LEN..end], index)
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
                (&buf, index)
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
            stale_key: key_index != 0,
        })
    }
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
