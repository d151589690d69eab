//! AES-GCM nonces for sealed cookies without a system call per cookie.
//!
//! A nonce is 12 bytes drawn from a per-thread pool of operating-system randomness (one
//! `getrandom` per [`POOL_NONCES`] nonces; no pool byte is handed out twice), with its first
//! 8 bytes XOR-ed with SipHash-2-4 of the associated data and the plaintext, keyed with 128 bits
//! of operating-system randomness that serve nothing else.
//!
//! Above [`HASHED_MAX`] bytes of plaintext, hashing costs more than asking the operating system
//! (about 0.3 µs a call), so such a nonce comes straight from `getrandom`, as it always did; so
//! does every nonce of a thread whose thread-locals are being torn down.
//!
//! The pool alone gives uniformly random nonces, as drawing each one from the operating system
//! did: XOR-ing a uniform value with anything independent of it leaves it uniform. The hash
//! covers the one way a pool can be used twice: a process that forks copies the pool (and the
//! hash key) into the child, and both then draw the same bytes. Their nonces still differ unless
//! the two plaintexts hash alike: SipHash is a pseudorandom function under a key that neither
//! process reveals, so different plaintexts collide with a chance of one in 2^64. For the same
//! plaintext and associated data, the same nonce seals to the same cookie, which reveals nothing
//! that the equal plaintexts did not.

use std::{cell::RefCell, hash::Hasher};

use ring::{
    aead::NONCE_LEN,
    rand::{SecureRandom, SystemRandom},
};

/// Nonces per refill of a thread's pool.
pub(crate) const POOL_NONCES: usize = 340;

/// The largest plaintext whose nonce comes from the pool; larger ones ask the operating system
/// (measured: SipHash-2-4 of 512 bytes costs about as much as the system call).
pub(crate) const HASHED_MAX: usize = 512;

struct Pool {
    bytes: Box<[u8; POOL_NONCES * NONCE_LEN]>,
    /// Bytes of `bytes` already handed out.
    used: usize,
    /// The thread's SipHash key, from the operating system, used for nothing else.
    key: (u64, u64),
    /// The associated data hashed last and the hasher's state after it: a thread seals for the
    /// same few cookie names over and over, and starts from there.
    after_aad: Option<(Box<[u8]>, Hash)>,
}

/// SipHash-2-4 with the keys given, as its documentation specifies; deprecated only in favour
/// of `DefaultHasher`, whose algorithm std leaves open and which takes no key.
#[allow(deprecated)]
type Hash = std::hash::SipHasher;

fn os_random(out: &mut [u8]) {
    SystemRandom::new()
        .fill(out)
        .expect("the operating system's random generator failed");
}

impl Pool {
    fn new() -> Self {
        let mut key = [0u8; 16];
        os_random(&mut key);
        let half = |i: usize| u64::from_le_bytes(key[i..i + 8].try_into().expect("8 bytes"));
        Self {
            bytes: Box::new([0; POOL_NONCES * NONCE_LEN]),
            // Empty: the first draw fills it.
            used: POOL_NONCES * NONCE_LEN,
            key: (half(0), half(8)),
            after_aad: None,
        }
    }

    fn draw(&mut self) -> [u8; NONCE_LEN] {
        if self.used == self.bytes.len() {
            os_random(&mut self.bytes[..]);
            self.used = 0;
        }
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&self.bytes[self.used..self.used + NONCE_LEN]);
        self.used += NONCE_LEN;
        nonce
    }

    fn nonce(&mut self, aad: &[u8], plaintext: &[u8]) -> [u8; NONCE_LEN] {
        let mut nonce = self.draw();
        let mut hasher = match &self.after_aad {
            Some((last, state)) if **last == *aad => state.clone(),
            _ => {
                #[allow(deprecated)]
                let mut hasher = Hash::new_with_keys(self.key.0, self.key.1);
                // Length-prefixed, so that no split of the same bytes between the two hashes
                // alike.
                hasher.write_usize(aad.len());
                hasher.write(aad);
                // Two cookie names of one length (a response that seals both alternates
                // between them) reuse the buffer.
                match &mut self.after_aad {
                    Some((last, state)) if last.len() == aad.len() => {
                        last.copy_from_slice(aad);
                        *state = hasher.clone();
                    }
                    other => *other = Some((aad.into(), hasher.clone())),
                }
                hasher
            }
        };
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
    let direct = || {
        let mut nonce = [0; NONCE_LEN];
        os_random(&mut nonce);
        nonce
    };
    if plaintext.len() > HASHED_MAX {
        return direct();
    }
    POOL.try_with(|pool| pool.borrow_mut().nonce(aad, plaintext))
        .unwrap_or_else(|_| direct())
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
            key: pool.key,
            after_aad: None,
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
    fn the_kept_hash_of_the_associated_data_gives_the_nonce_hashing_anew_gives() {
        let mut kept = Pool::new();
        kept.draw();
        for (aad, plaintext) in [
            (&b"name-a"[..], &b"{\"n\":1}"[..]),
            (b"name-a", b"{\"n\":2}"),
            (b"name-b", b"{\"n\":2}"),
            (b"name-a", b"{\"n\":3}"),
            // A prefix of the kept data is other data.
            (b"name-", b"a{\"n\":3}"),
        ] {
            let mut fresh = Pool {
                bytes: kept.bytes.clone(),
                used: kept.used,
                key: kept.key,
                after_aad: None,
            };
            assert_eq!(
                kept.nonce(aad, plaintext),
                fresh.nonce(aad, plaintext),
                "{aad:?}"
            );
        }
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
