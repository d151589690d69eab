//! The master key and the keys derived from it.
// Only the cookie backend seals and signs; without it the derived keys are unused.
#![cfg_attr(not(feature = "cookie"), allow(dead_code))]

use std::{
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, PoisonError, RwLock,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

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
        let mut legacy = [0u8; 32];
        let mut signing = [0u8; 32];
        expand(&prk, &[b"cookie sealing: aes-256-gcm"], &mut legacy);
        expand(&prk, &[b"cookie signing: hmac-sha256"], &mut signing);
        DerivedKeys {
            sealing: EpochKeys::new(prk),
            legacy_sealing: aes_key(&legacy),
            signing: hmac::Key::new(hmac::HMAC_SHA256, &signing),
        }
    }
}

fn aes_key(bytes: &[u8; 32]) -> aead::LessSafeKey {
    let unbound = aead::UnboundKey::new(&aead::AES_256_GCM, bytes)
        .expect("32 bytes is the AES-256-GCM key length");
    aead::LessSafeKey::new(unbound)
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], out: &mut [u8; 32]) {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    prk.expand(info, Len32)
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
    /// How long a sealed cookie can stay valid (the absolute timeout): older epochs are refused.
    lookback: Duration,
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
            // Until told otherwise: the longest timeout the builder accepts.
            lookback: Duration::from_secs(10 * 366 * 24 * 3600),
        }
    }

    /// Refuses cookies sealed more than `lookback` (the absolute timeout) ago: their payload
    /// deadline has passed, so no key needs deriving for them.
    pub(crate) fn with_lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
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

    /// Whether a cookie sealed in `epoch` may open at `now`: not from further in the future than
    /// [`EPOCH_SKEW`] (another instance's clock running ahead), not from before the lookback.
    pub(crate) fn accepts_epoch(&self, epoch: u32, now: SystemTime) -> bool {
        let oldest = now
            .checked_sub(self.lookback + EPOCH_SKEW)
            .unwrap_or(UNIX_EPOCH);
        let newest = now.checked_add(EPOCH_SKEW).unwrap_or(now);
        (epoch_of(oldest)..=epoch_of(newest)).contains(&epoch)
    }
}

/// How long one sealing key is used: each epoch has an AES-256-GCM key of its own. With random
/// 96-bit nonces, NIST SP 800-38D allows at most 2^32 seals per key; an hour stays under that up
/// to 2^32 / 3600 ≈ 1.19 million seals a second per master key, across every instance.
pub(crate) const EPOCH: Duration = Duration::from_secs(3600);

/// How far in the future a cookie's epoch may lie: instances whose clocks run ahead by up to
/// this much seal in the next epoch a little early.
pub(crate) const EPOCH_SKEW: Duration = Duration::from_secs(300);

/// The epoch of the time `t`: whole hours since the Unix epoch.
pub(crate) fn epoch_of(t: SystemTime) -> u32 {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u32::try_from(secs / EPOCH.as_secs()).unwrap_or(u32::MAX)
}

/// Keys derived from one master key.
pub(crate) struct DerivedKeys {
    /// AES-256-GCM, one key per epoch.
    pub(crate) sealing: EpochKeys,
    /// The single AES-256-GCM key of the format before epochs: opens cookies sealed by earlier
    /// builds, never seals.
    pub(crate) legacy_sealing: aead::LessSafeKey,
    pub(crate) signing: hmac::Key,
}

impl fmt::Debug for DerivedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKeys(..)")
    }
}

/// The sealing keys of one master key, one per epoch, derived on demand and the recent ones kept.
///
/// The key of epoch `n` is HKDF-SHA256-Expand(PRK, "cookie sealing: aes-256-gcm, epoch " ‖
/// `n` as 4 bytes big-endian), the PRK extracted once from the master key. Deriving costs an HMAC
/// and an AES key schedule; the hot path (sealing in the current epoch, opening a recent cookie)
/// finds its key here instead.
pub(crate) struct EpochKeys {
    prk: hkdf::Prk,
    /// Newest epoch first, at most [`EPOCH_KEYS_KEPT`].
    kept: RwLock<Vec<(u32, Arc<aead::LessSafeKey>)>>,
    /// How many keys were derived (tests check that the hot path derives none).
    derived: AtomicUsize,
}

/// The epoch keys kept per master key: a day of hourly epochs (a few hundred bytes each). A
/// cookie from an older epoch still opens; its key is derived again.
const EPOCH_KEYS_KEPT: usize = 24;

impl EpochKeys {
    fn new(prk: hkdf::Prk) -> Self {
        Self {
            prk,
            kept: RwLock::new(Vec::with_capacity(EPOCH_KEYS_KEPT)),
            derived: AtomicUsize::new(0),
        }
    }

    /// The key to seal with in `epoch`: kept, or derived and kept.
    pub(crate) fn for_sealing(&self, epoch: u32) -> Arc<aead::LessSafeKey> {
        self.kept(epoch).unwrap_or_else(|| {
            let key = self.derive(epoch);
            self.keep(epoch, &key);
            key
        })
    }

    /// The key of `epoch` to try a cookie with, and whether it is kept already. A derived key is
    /// kept only once a cookie opened with it ([`keep`](Self::keep)), so forged epochs do not
    /// push real ones out.
    pub(crate) fn for_opening(&self, epoch: u32) -> (Arc<aead::LessSafeKey>, bool) {
        match self.kept(epoch) {
            Some(key) => (key, true),
            None => (self.derive(epoch), false),
        }
    }

    /// Keeps the key of `epoch`, pushing out the oldest epoch when full (an epoch older than all
    /// kept ones is not kept).
    pub(crate) fn keep(&self, epoch: u32, key: &Arc<aead::LessSafeKey>) {
        let mut kept = self.kept.write().unwrap_or_else(PoisonError::into_inner);
        let at = match kept.binary_search_by(|(e, _)| epoch.cmp(e)) {
            Ok(_) => return,
            Err(at) => at,
        };
        if kept.len() == EPOCH_KEYS_KEPT {
            if at == EPOCH_KEYS_KEPT {
                return;
            }
            kept.pop();
        }
        kept.insert(at, (epoch, Arc::clone(key)));
    }

    fn kept(&self, epoch: u32) -> Option<Arc<aead::LessSafeKey>> {
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, key)| Arc::clone(key))
    }

    fn derive(&self, epoch: u32) -> Arc<aead::LessSafeKey> {
        self.derived.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0u8; 32];
        expand(
            &self.prk,
            &[b"cookie sealing: aes-256-gcm, epoch ", &epoch.to_be_bytes()],
            &mut bytes,
        );
        Arc::new(aes_key(&bytes))
    }

    /// How many keys this master key has derived so far.
    #[cfg(test)]
    pub(crate) fn derivations(&self) -> usize {
        self.derived.load(Ordering::Relaxed)
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
        expand(&prk, &[b"cookie sealing: aes-256-gcm"], &mut sealing);
        let as_hmac = hmac::Key::new(hmac::HMAC_SHA256, &sealing);
        let derived = key.derive();
        assert_ne!(
            hmac::sign(&as_hmac, b"x").as_ref(),
            hmac::sign(&derived.signing, b"x").as_ref()
        );
    }

    /// Seals the same plaintext under the same nonce with `key`.
    fn ciphertext(key: &aead::LessSafeKey) -> Vec<u8> {
        let mut data = b"same plaintext".to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            &mut data,
        )
        .unwrap();
        data
    }

    #[test]
    fn every_epoch_has_a_sealing_key_of_its_own() {
        let keys = Key::from(&[4u8; 64][..]).derive();
        let this = ciphertext(&keys.sealing.for_sealing(500_000));
        let next = ciphertext(&keys.sealing.for_sealing(500_001));
        assert_ne!(this, next);
        assert_ne!(this, ciphertext(&keys.legacy_sealing));
        // Derived from the master key alone: the same epoch gives the same key again.
        let again = Key::from(&[4u8; 64][..]).derive();
        assert_eq!(this, ciphertext(&again.sealing.for_sealing(500_000)));
    }

    #[test]
    fn epoch_keys_are_derived_once_and_the_newest_are_kept() {
        let keys = Key::generate().derive();
        for _ in 0..100 {
            keys.sealing.for_sealing(7);
        }
        assert_eq!(keys.sealing.derivations(), 1);
        // Trying an epoch does not keep its key; keeping it does.
        let (key, kept) = keys.sealing.for_opening(6);
        assert!(!kept);
        assert!(!keys.sealing.for_opening(6).1);
        keys.sealing.keep(6, &key);
        assert!(keys.sealing.for_opening(6).1);
        assert_eq!(keys.sealing.derivations(), 3);
        // Full: the oldest epoch goes, and one older than all kept is not kept.
        for epoch in 100..100 + EPOCH_KEYS_KEPT as u32 {
            keys.sealing.for_sealing(epoch);
        }
        assert!(!keys.sealing.for_opening(6).1);
        assert!(keys.sealing.for_opening(100).1);
        keys.sealing.for_sealing(5);
        assert!(!keys.sealing.for_opening(5).1);
        keys.sealing.for_sealing(1_000);
        assert!(keys.sealing.for_opening(1_000).1);
        assert!(!keys.sealing.for_opening(100).1);
    }

    #[test]
    fn epochs_are_whole_hours_since_the_unix_epoch() {
        assert_eq!(epoch_of(UNIX_EPOCH), 0);
        assert_eq!(epoch_of(UNIX_EPOCH + Duration::from_secs(3_599)), 0);
        assert_eq!(epoch_of(UNIX_EPOCH + Duration::from_secs(3_600)), 1);
        assert_eq!(epoch_of(UNIX_EPOCH - Duration::from_secs(1)), 0);
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
