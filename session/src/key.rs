//! The master key and the keys derived from it.
// Only the cookie backend seals and signs; without it the derived keys are unused.
#![cfg_attr(not(feature = "cookie"), allow(dead_code))]

use std::fmt;

use ring::{aead, hkdf, hmac};

/// The smallest master key accepted, in bytes.
pub(crate) const MIN_KEY_LEN: usize = 64;

/// The secret every cookie key is derived from.
///
/// A `Key` holds at least 64 bytes of secret when the middleware is built; a shorter key makes
/// [`SessionMiddlewareBuilder::build`](crate::SessionMiddlewareBuilder::build) fail with
/// [`BuildError::KeyTooShort`](crate::BuildError::KeyTooShort). The key is never printed: its
/// `Debug` output shows only its length.
///
/// Separate keys for sealing (AES-256-GCM) and signing (HMAC-SHA256) are derived from it with
/// HKDF-SHA256, so one master key never serves two algorithms.
///
/// ```
/// use actix_typed_session::Key;
///
/// // In production, load 64+ random bytes from your secret manager.
/// let key = Key::from(&[7u8; 64][..]);
/// assert_eq!(format!("{key:?}"), "Key(64 bytes)");
///
/// // Or generate one, e.g. for tests and development.
/// let fresh = Key::generate();
/// assert_eq!(fresh.len(), 64);
/// ```
#[derive(Clone)]
pub struct Key {
    secret: Box<[u8]>,
}

impl Key {
    /// Generates a new random 64-byte key from the operating system's secure generator.
    pub fn generate() -> Self {
        let mut secret = vec![0u8; MIN_KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .expect("the operating system's random generator failed");
        Self {
            secret: secret.into_boxed_slice(),
        }
    }

    /// The length of the secret in bytes.
    pub fn len(&self) -> usize {
        self.secret.len()
    }

    /// Whether the secret is empty (an empty key is always refused by the builder).
    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }

    pub(crate) fn derive(&self) -> DerivedKeys {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"actix-typed-session/v1");
        let prk = salt.extract(&self.secret);
        let mut sealing = [0u8; 32];
        let mut signing = [0u8; 32];
        expand(&prk, b"cookie sealing: aes-256-gcm", &mut sealing);
        expand(&prk, b"cookie signing: hmac-sha256", &mut signing);
        let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, &sealing)
            .expect("32 bytes is the AES-256-GCM key length");
        DerivedKeys {
            sealing: aead::LessSafeKey::new(unbound),
            signing: hmac::Key::new(hmac::HMAC_SHA256, &signing),
        }
    }
}

fn expand(prk: &hkdf::Prk, info: &[u8], out: &mut [u8; 32]) {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    prk.expand(&[info], Len32)
        .and_then(|okm| okm.fill(out))
        .expect("32 bytes is within HKDF-SHA256's output limit");
}

impl From<&[u8]> for Key {
    fn from(secret: &[u8]) -> Self {
        Self {
            secret: secret.into(),
        }
    }
}

impl From<Vec<u8>> for Key {
    fn from(secret: Vec<u8>) -> Self {
        Self {
            secret: secret.into_boxed_slice(),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.secret.len())
    }
}

/// The current key first, then the previous keys still accepted for reading.
#[derive(Debug)]
pub(crate) struct KeyRing {
    keys: Vec<DerivedKeys>,
    /// Unique to this ring in the process: what a value opened under it is remembered by.
    id: u64,
}

impl KeyRing {
    pub(crate) fn new(current: &Key, previous: &[Key]) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            keys: std::iter::once(current)
                .chain(previous)
                .map(Key::derive)
                .collect(),
        }
    }

    pub(crate) fn current(&self) -> &DerivedKeys {
        &self.keys[0]
    }

    /// This ring's identity, unique in the process (rings with the same keys have different ones).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Every key, current first, with its position (0 = current).
    pub(crate) fn all(&self) -> impl Iterator<Item = (usize, &DerivedKeys)> {
        self.keys.iter().enumerate()
    }
}

/// Keys derived from one master key.
pub(crate) struct DerivedKeys {
    pub(crate) sealing: aead::LessSafeKey,
    pub(crate) signing: hmac::Key,
}

impl fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKeys(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_master_keys_derive_different_signing_keys() {
        let a = Key::from(&[1u8; 64][..]).derive();
        let b = Key::from(&[2u8; 64][..]).derive();
        let tag_a = hmac::sign(&a.signing, b"x");
        let tag_b = hmac::sign(&b.signing, b"x");
        assert_ne!(tag_a.as_ref(), tag_b.as_ref());
    }

    #[test]
    fn sealing_and_signing_keys_are_separated() {
        // The HMAC key must not equal the raw AES key material: sign with a key made from the
        // same bytes HKDF would give for sealing and compare.
        let key = Key::from(&[3u8; 64][..]);
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"actix-typed-session/v1");
        let prk = salt.extract(&key.secret);
        let mut sealing = [0u8; 32];
        expand(&prk, b"cookie sealing: aes-256-gcm", &mut sealing);
        let as_hmac = hmac::Key::new(hmac::HMAC_SHA256, &sealing);
        let derived = key.derive();
        assert_ne!(
            hmac::sign(&as_hmac, b"x").as_ref(),
            hmac::sign(&derived.signing, b"x").as_ref()
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = Key::from(&[0xABu8; 70][..]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "Key(70 bytes)");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Key::generate().secret, Key::generate().secret);
    }
}
