//! AES-GCM nonces for sealed cookies without a system call per cookie.
//!
//! A nonce is 12 bytes drawn from a per-thread pool of operating-system randomness (one
//! `getrandom` per [`POOL_NONCES`] nonces; no pool byte is handed out twice), with its first
//! 8 bytes XOR-ed with a keyed hash of the associated data and the plaintext.
//!
//! Above [`HASHED_MAX`] bytes of plaintext, hashing costs more than asking the operating system
//! (about 0.3 µs a call), so such a nonce comes straight from `getrandom`, as it always did.
//!
//! The pool alone gives uniformly random nonces, as drawing each one from the operating system
//! did: XOR-ing a uniform value with anything independent of it leaves it uniform. The hash
//! covers the one way a pool can be used twice: a process that forks copies the pool into the
//! child, and both then draw the same bytes. Their nonces still differ unless the two plaintexts
//! hash alike (for different plaintexts, one chance in 2^64 under a hash whose keys neither
//! process reveals); and for the same plaintext and associated data, the same nonce seals to the
//! same cookie, which reveals nothing that the equal plaintexts did not.

use std::{
    cell::RefCell,
    hash::{BuildHasher, Hasher},
};

use ring::{
    aead::NONCE_LEN,
    rand::{SecureRandom, SystemRandom},
};

/// Nonces per refill of a thread's pool.
pub(crate) const POOL_NONCES: usize = 340;

/// The largest plaintext whose nonce comes from the pool; larger ones ask the operating system
/// (measured: the keyed hash of 1 KB costs about as much as the system call).
pub(crate) const HASHED_MAX: usize = 1024;

struct Pool {
    bytes: Box<[u8; POOL_NONCES * NONCE_LEN]>,
    /// Bytes of `bytes` already handed out.
    used: usize,
    /// Per-thread random keys (std's keyed hasher), fixed for the thread's lifetime.
    hash: std::collections::hash_map::RandomState,
}

impl Pool {
    fn new() -> Self {
        Self {
            bytes: Box::new([0; POOL_NONCES * NONCE_LEN]),
            // Empty: the first draw fills it.
            used: POOL_NONCES * NONCE_LEN,
            hash: std::collections::hash_map::RandomState::new(),
        }
    }

    fn draw(&mut self) -> [u8; NONCE_LEN] {
        if self.used == self.bytes.len() {
            SystemRandom::new()
                .fill(&mut self.bytes[..])
                .expect("the operating system's random generator failed");
            self.used = 0;
        }
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&self.bytes[self.used..self.used + NONCE_LEN]);
        self.used += NONCE_LEN;
        nonce
    }

    fn nonce(&mut self, aad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
        let mut nonce = self.draw();
        let mut hasher = self.hash.build_hasher();
        // Length-prefixed, so that no split of the same bytes between the two hashes alike.
        hasher.write_usize(aad.len());
        hasher.write(aad);
        hasher.write(plaintext);
        let mask = hasher.finish().to_le_bytes();
        for (byte, m) in nonce.iter_mut().zip(mask) {
            *byte ^= m;
        }
        nonce
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::new());
}

/// A fresh nonce for sealing `plaintext` with the associated data `aad`.
pub(crate) fn nonce_for(aad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
    if plaintext.len() > HASHED_MAX {
        let mut nonce = [0; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the operating system's random generator failed");
        return nonce;
    }
    POOL.with(|pool| pool.borrow_mut().nonce(aad, plaintext))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn nonces_do_not_repeat_across_refills() {
        let nonces: HashSet<_> = (0..POOL_NONCES * 3 + 7)
            .map(|_| nonce_for(b"aad", b"same plaintext"))
            .collect();
        assert_eq!(nonces.len(), POOL_NONCES * 3 + 7);
    }

    #[test]
    fn a_copied_pool_gives_different_nonces_for_different_plaintexts() {
        // What a fork does: two processes holding the same pool state.
        let mut parent = Pool::new();
        parent.draw();
        let copy = |pool: &Pool| Pool {
            bytes: pool.bytes.clone(),
            used: pool.used,
            hash: pool.hash.clone(),
        };
        let mut child = copy(&parent);
        assert_ne!(
            parent.nonce(b"aad", b"{\"n\":1}"),
            child.nonce(b"aad", b"{\"n\":2}")
        );
        // Same pool position and the same plaintext: the same nonce (and so the same cookie).
        let mut child = copy(&parent);
        assert_eq!(
            parent.nonce(b"aad", b"{\"n\":1}"),
            child.nonce(b"aad", b"{\"n\":1}")
        );
    }

    #[test]
    fn large_plaintexts_do_not_draw_from_the_pool() {
        let used = || POOL.with(|pool| pool.borrow().used);
        nonce_for(b"aad", b"small");
        let before = used();
        let large = vec![7u8; HASHED_MAX + 1];
        assert_ne!(nonce_for(b"aad", &large), nonce_for(b"aad", &large));
        assert_eq!(used(), before);
        nonce_for(b"aad", &large[..HASHED_MAX]);
        assert_eq!(used(), (before + NONCE_LEN) % (POOL_NONCES * NONCE_LEN));
    }

    #[test]
    fn threads_have_pools_of_their_own() {
        let here = nonce_for(b"aad", b"p");
        let there = std::thread::spawn(|| nonce_for(b"aad", b"p"))
            .join()
            .unwrap();
        assert_ne!(here, there);
    }
}
