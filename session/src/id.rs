//! Session ids and the hashes server-side stores keep instead of them.

use std::fmt;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ring::{
    digest,
    rand::{SecureRandom, SystemRandom},
};

/// Random bytes in a session id (256 bits).
const ID_BYTES: usize = 32;
/// Length of an id once encoded as unpadded base64url.
pub(crate) const ID_LEN: usize = 43;

/// An opaque session id: 256 random bits from `ring::rand::SystemRandom`, carried in the
/// session cookie as 43 characters of unpadded base64url.
///
/// Only the middleware sees ids. Stores receive a [`StorageKey`] (a SHA-256 hash of the id), so
/// a leaked table, dump or backup hands out no live session. `Debug` never shows the id.
#[derive(Clone)]
pub(crate) struct SessionId {
    /// The id's base64url characters (ASCII), inline: parsing or copying an id allocates nothing.
    value: [u8; ID_LEN],
    /// The storage key, hashed on first use: a request loads and saves under the same key.
    key: std::cell::OnceCell<StorageKey>,
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for SessionId {}

impl SessionId {
    pub(crate) fn generate(rng: &SystemRandom) -> Self {
        let mut bytes = [0u8; ID_BYTES];
        rng.fill(&mut bytes)
            .expect("the operating system's random generator failed");
        let mut value = [0u8; ID_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut value)
            .expect("32 bytes encode to 43 characters");
        debug_assert_eq!(written, ID_LEN);
        Self::new(value)
    }

    /// Accepts a cookie value only if it has exactly the shape of an id this library issues.
    pub(crate) fn parse(value: &[u8]) -> Option<Self> {
        let value: [u8; ID_LEN] = value.try_into().ok()?;
        let mut bytes = [0u8; ID_BYTES + 1];
        match URL_SAFE_NO_PAD.decode_slice(value, &mut bytes) {
            // Only base64url characters decode: the id is ASCII.
            Ok(ID_BYTES) => Some(Self::new(value)),
            _ => None,
        }
    }

    fn new(value: [u8; ID_LEN]) -> Self {
        Self {
            value,
            key: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.value).expect("base64url characters are ASCII")
    }

    pub(crate) fn storage_key(&self) -> StorageKey {
        *self.key.get_or_init(|| {
            let hash = digest::digest(&digest::SHA256, &self.value);
            let mut out = [0u8; 32];
            out.copy_from_slice(hash.as_ref());
            StorageKey(out)
        })
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// The key a server-side store files a session under: the SHA-256 hash of its session id.
///
/// Stores never see the id itself. Use [`as_bytes`](Self::as_bytes) for binary keys (a `bytea`
/// primary key) or [`to_hex`](Self::to_hex) for text keys (a Redis key).
///
/// ```
/// # use actix_typed_session::StorageKey;
/// fn redis_key(prefix: &str, key: &StorageKey) -> String {
///     format!("{prefix}{}", key.to_hex())
/// }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorageKey([u8; 32]);

impl StorageKey {
    /// The 32 bytes of the hash.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash as 64 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        self.push_hex(&mut hex);
        hex
    }

    /// Appends the 64 hexadecimal characters of [`to_hex`](Self::to_hex) to `out` (a key
    /// prefix, say) without an allocation of its own.
    pub(crate) fn push_hex(&self, out: &mut String) {
        // Into a buffer first, appended at once: pushing 64 `char`s one by one costs a capacity
        // check and a UTF-8 encoding each.
        out.push_str(std::str::from_utf8(&self.hex()).expect("hex digits are ASCII"));
    }

    /// The key in lowercase hex (ASCII), on the stack.
    pub(crate) fn hex(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 64];
        for (pair, b) in hex.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        hex
    }

    /// Rebuilds a key from the bytes a store saved, e.g. when it lists its rows.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines; the hash itself unlocks nothing.
        write!(f, "StorageKey({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_the_documented_shape() {
        let rng = SystemRandom::new();
        let id = SessionId::generate(&rng);
        assert_eq!(id.as_str().len(), ID_LEN);
        assert!(id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(SessionId::parse(id.as_str().as_bytes()), Some(id));
    }

    /// 10^6 ids: no duplicate, each 43 characters of the base64url alphabet decoding to 32 bytes.
    #[test]
    fn a_million_ids_are_unique_and_well_formed() {
        let rng = SystemRandom::new();
        let mut seen = std::collections::HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let id = SessionId::generate(&rng);
            assert_eq!(id.as_str().len(), ID_LEN);
            assert!(id
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            assert!(seen.insert(id.value), "duplicate id");
        }
        // Every position uses the whole alphabet: no stuck bits in what the generator gives.
        let alphabet: std::collections::HashSet<u8> = (0..2_000)
            .flat_map(|_| SessionId::generate(&rng).value)
            .collect();
        assert_eq!(alphabet.len(), 64);
    }

    #[test]
    fn parse_refuses_anything_that_is_not_an_issued_shape() {
        let rng = SystemRandom::new();
        let id = SessionId::generate(&rng);
        assert!(SessionId::parse(&id.as_str().as_bytes()[1..]).is_none());
        assert!(SessionId::parse(format!("{}A", id.as_str()).as_bytes()).is_none());
        assert!(SessionId::parse("+".repeat(ID_LEN).as_bytes()).is_none());
        assert!(SessionId::parse("é".repeat(21).as_bytes()).is_none());
        assert!(SessionId::parse(&[0xff; ID_LEN]).is_none());
        assert!(SessionId::parse(b"").is_none());
    }

    #[test]
    fn storage_key_is_a_hash_not_the_id() {
        let rng = SystemRandom::new();
        let id = SessionId::generate(&rng);
        let key = id.storage_key();
        assert_eq!(key, id.storage_key());
        assert!(!key.to_hex().contains(id.as_str()));
        assert_eq!(key.to_hex().len(), 64);
        assert_ne!(key, SessionId::generate(&rng).storage_key());
    }

    #[test]
    fn hex_is_two_lowercase_digits_per_byte_in_order() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(0x0f);
        }
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(StorageKey::from_bytes(bytes).to_hex(), expected);
        let mut prefixed = String::from("p:");
        StorageKey::from_bytes([0xa5; 32]).push_hex(&mut prefixed);
        assert_eq!(prefixed, format!("p:{}", "a5".repeat(32)));
    }

    #[test]
    fn debug_hides_the_id() {
        let rng = SystemRandom::new();
        let id = SessionId::generate(&rng);
        assert!(!format!("{id:?}").contains(id.as_str()));
    }
}
