//! A per-thread cache of cookie values opened recently.
//!
//! Opening a sealed cookie (base64url, AES-GCM, the payload's JSON) is most of what a cookie
//! session costs a request that only reads it, and a browser sends the same value with every
//! request until the session changes: a page and its dozen follow-up requests, on the same
//! keep-alive connections and so on the same worker thread. Each worker thread remembers the last
//! values it opened, in a table of slots chosen by a keyed hash of the value: a value seen again
//! skips the work.
//!
//! A hit gives exactly what opening would: opening is a function of the value, the key ring, the
//! associated data (which binds the cookie name) and the security mode, and an entry is used only
//! when all four are the same. Rings are told apart by an identity unique in the process, not by
//! their keys, so rings built anew (another middleware, another test) never share entries. The
//! expiry, revocation and ownership checks run after a hit as after an open. Only values that
//! opened are kept: a tampered or foreign value is opened, rejected and forgotten every time.
//!
//! The value is compared in full without an early exit, so the time a lookup takes says nothing
//! about how much of a guessed value matches a cached one. Memory: one table per thread, shared by
//! every cookie store and middleware on it and as large as the largest of their settings (at
//! most [`MAX_SLOTS`]); values over [`MAX_VALUE`] bytes are never kept.

use std::{
    cell::RefCell,
    hash::{BuildHasher, RandomState},
    sync::Arc,
};

use super::{CookieSecurity, Opened};

/// What a cached value was opened under.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) ring: u64,
    pub(crate) security: CookieSecurity,
    /// The associated data (it binds the cookie name), shared with the session's settings.
    pub(crate) aad: &'a Arc<[u8]>,
}

struct Entry {
    /// The value's hash: compared first, so that the full comparison runs only on a likely hit.
    tag: u64,
    /// When the entry was last used (its table's clock): the least recently used one goes.
    used: u64,
    ring: u64,
    security: CookieSecurity,
    aad: Arc<[u8]>,
    value: Box<[u8]>,
    opened: Opened,
}

/// Sets of [`WAYS`] entries; a new entry pushes out the least recently used one of its set.
/// Entries stay where they are (an entry is large: moving them to keep an order costs more than
/// stamping them).
struct Table {
    /// Random per thread: nobody outside can aim values at one set.
    key: (u64, u64),
    /// Counts lookups: the stamp of the entry used or put in last.
    clock: u64,
    sets: Box<[[Option<Entry>; WAYS]]>,
}

/// Entries per set.
const WAYS: usize = 4;

/// The longest value kept. A session decoded into a map takes up to ~30 times its JSON (an
/// array of small numbers: 32 bytes a `Value` for 2 bytes of JSON, and the vector's spare
/// capacity); longer values, rarer and cheaper to open per byte than to keep, are opened every
/// time.
pub(crate) const MAX_VALUE: usize = 1024;

/// The most slots a thread's table has, whatever a store asks for.
pub(crate) const MAX_SLOTS: usize = 1 << 16;

thread_local! {
    static TABLE: RefCell<Option<Table>> = const { RefCell::new(None) };
}

/// The bytes of a value that choose its set: a sealed value starts with its random nonce and a
/// signed one with its tag, so its first 16 bytes already spread values evenly.
const HASHED_PREFIX: usize = 16;

/// The opened form of `value`: from this thread's cache if it opened (or was sealed) here
/// recently, otherwise from `open`, and then remembered. `slots` is the table's size (0: no
/// cache).
pub(crate) fn open_cached<E>(
    slots: usize,
    cx: Context<'_>,
    value: &[u8],
    open: impl FnOnce() -> Result<Opened, E>,
) -> Result<Opened, E> {
    if value.len() > MAX_VALUE {
        return open();
    }
    // `open` runs inside the table's borrow on a miss (it never touches the table), so that the
    // value's set is found once; outside it only when there is no table.
    let mut open = Some(open);
    let cached = with_table(slots, |table| {
        let now = table.tick();
        let (set, tag) = table.set(value);
        if let Some(entry) = set.iter_mut().flatten().find(|e| e.matches(tag, cx, value)) {
            entry.used = now;
            return Ok(entry.opened.clone());
        }
        let opened = open.take().expect("opened once")()?;
        insert(set, now, tag, cx, value, opened.clone());
        Ok(opened)
    });
    match cached {
        Some(result) => result,
        None => open.take().expect("not run without a table")(),
    }
}

/// Remembers that `value` opens to what `opened` gives, if it gives anything (for a value just
/// sealed: the browser sends it back with its next request).
pub(crate) fn remember(
    slots: usize,
    cx: Context<'_>,
    value: &[u8],
    opened: impl FnOnce() -> Option<Opened>,
) {
    if value.len() > MAX_VALUE {
        return;
    }
    with_table(slots, |table| {
        if let Some(opened) = opened() {
            let now = table.tick();
            let (set, tag) = table.set(value);
            insert(set, now, tag, cx, value, opened);
        }
    });
}

/// Puts an entry for `value`, used at `now`, in its set: in a free way, or in place of the
/// least recently used entry, whose value's buffer takes the new value when the two are as long
/// (values of one session are, from one write to the next): no allocation.
fn insert(
    set: &mut [Option<Entry>; WAYS],
    now: u64,
    tag: u64,
    cx: Context<'_>,
    value: &[u8],
    opened: Opened,
) {
    let way = set.iter().position(Option::is_none).unwrap_or_else(|| {
        (0..WAYS)
            .min_by_key(|&way| set[way].as_ref().map_or(0, |e| e.used))
            .expect("a set has ways")
    });
    let value = match set[way].take() {
        Some(Entry { value: mut old, .. }) if old.len() == value.len() => {
            old.copy_from_slice(value);
            old
        }
        _ => value.into(),
    };
    set[way] = Some(Entry {
        tag,
        used: now,
        ring: cx.ring,
        security: cx.security,
        aad: Arc::clone(cx.aad),
        value,
        opened,
    });
}

/// Runs `f` on this thread's table of at least `slots` entries; `None` without a cache (no
/// slots, or the thread's locals are being torn down).
fn with_table<T>(slots: usize, f: impl FnOnce(&mut Table) -> T) -> Option<T> {
    if slots == 0 {
        return None;
    }
    let sets = slots.min(MAX_SLOTS).div_ceil(WAYS);
    TABLE
        .try_with(|table| {
            let mut table = table.borrow_mut();
            let table = match &mut *table {
                Some(t) if t.sets.len() >= sets => t,
                // The first use on this thread, or a store that wants more slots.
                other => other.insert(Table {
                    key: (random_u64(), random_u64()),
                    clock: 0,
                    sets: std::iter::repeat_with(Default::default)
                        .take(sets)
                        .collect(),
                }),
            };
            f(table)
        })
        .ok()
}

/// 64 random bits, from the standard library's per-thread randomly keyed hasher.
fn random_u64() -> u64 {
    RandomState::new().hash_one(0u8)
}

impl Table {
    /// The next stamp of use.
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The set `value` belongs in, and its tag.
    fn set(&mut self, value: &[u8]) -> (&mut [Option<Entry>; WAYS], u64) {
        let mut prefix = [0u8; HASHED_PREFIX];
        let len = value.len().min(HASHED_PREFIX);
        prefix[..len].copy_from_slice(&value[..len]);
        let half = |i: usize| u64::from_le_bytes(prefix[i..i + 8].try_into().expect("8 bytes"));
        // A keyed folded multiply: cheap, and enough to spread values that start out random.
        let product = u128::from(half(0) ^ self.key.0)
            * u128::from(half(8) ^ self.key.1 ^ value.len() as u64);
        #[allow(clippy::cast_possible_truncation)]
        let hash = (product as u64) ^ ((product >> 64) as u64);
        // Lossless on 64-bit targets; elsewhere the low bits choose the set just as well.
        #[allow(clippy::cast_possible_truncation)]
        let index = (hash % self.sets.len() as u64) as usize;
        (&mut self.sets[index], hash)
    }
}

impl Entry {
    fn matches(&self, tag: u64, cx: Context<'_>, value: &[u8]) -> bool {
        self.tag == tag
            && self.ring == cx.ring
            && self.security == cx.security
            && (Arc::ptr_eq(&self.aad, cx.aad) || *self.aad == **cx.aad)
            && same_bytes(&self.value, value)
    }
}

/// Equality that reads every byte whatever the first difference: lengths are not secret (they
/// are the value's own), contents are.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Eight bytes at a time, then the rest: every byte is read, whatever the differences.
    let (words_a, words_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = words_a
        .remainder()
        .iter()
        .zip(words_b.remainder())
        .fold(0u64, |diff, (x, y)| diff | u64::from(x ^ y));
    let diff = words_a.zip(words_b).fold(tail, |diff, (x, y)| {
        let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().expect("8 bytes"));
        diff | (word(x) ^ word(y))
    });
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use std::{
        cell::Cell,
        time::{Duration, UNIX_EPOCH},
    };

    use serde_json::{json, Map};

    use super::*;

    fn opened(n: u64) -> Opened {
        let mut data = Map::new();
        data.insert("n".into(), json!(n));
        Opened {
            data: data.into(),
            created_at: UNIX_EPOCH + Duration::from_secs(n),
            expires_at: UNIX_EPOCH + Duration::from_secs(n + 60),
            owner: Some(format!("owner {n}")),
            valid_from: UNIX_EPOCH + Duration::from_secs(n),
            stale_key: n % 2 == 1,
        }
    }

    fn cx(ring: u64, sealed: bool, aad: &Arc<[u8]>) -> Context<'_> {
        let security = if sealed {
            CookieSecurity::Sealed
        } else {
            CookieSecurity::Signed
        };
        Context {
            ring,
            security,
            aad,
        }
    }

    fn aad(bytes: &[u8]) -> Arc<[u8]> {
        Arc::from(bytes)
    }

    /// Opens `value` through the cache and says whether `open` ran.
    fn lookup(slots: usize, cx: Context<'_>, value: &str, n: u64) -> (Result<Opened, ()>, bool) {
        let ran = Cell::new(false);
        let result = open_cached(slots, cx, value.as_bytes(), || {
            ran.set(true);
            Ok(opened(n))
        });
        (result, ran.get())
    }

    #[test]
    fn a_value_seen_again_is_not_opened_again_and_gives_the_same_result() {
        let value = "a-value-long-enough-to-fill-the-hashed-prefix-and-more";
        let (first, ran) = lookup(64, cx(1, true, &aad(b"aad")), value, 7);
        assert!(ran);
        // Another allocation of the same associated data: compared by content.
        let (second, ran) = lookup(64, cx(1, true, &aad(b"aad")), value, 8);
        assert!(!ran, "the second lookup opened the value again");
        assert_eq!(second.unwrap(), first.unwrap());
    }

    #[test]
    fn another_ring_mode_cookie_name_or_value_misses() {
        let value = "value-for-the-context-test-0123456789-abcdefghijklmnop";
        let (a, b) = (aad(b"name-a"), aad(b"name-b"));
        assert!(lookup(64, cx(10, true, &a), value, 1).1);
        assert!(!lookup(64, cx(10, true, &a), value, 1).1);
        for other in [cx(11, true, &a), cx(10, false, &a), cx(10, true, &b)] {
            let (result, ran) = lookup(64, other, value, 2);
            assert!(ran, "a lookup under another context hit the cache");
            assert_eq!(result.unwrap().data["n"], json!(2));
        }
        // Same prefix and length, last byte different.
        let mut near = value.to_owned();
        near.pop();
        near.push('q');
        assert!(lookup(64, cx(10, true, &a), &near, 3).1);
    }

    #[test]
    fn values_that_fail_to_open_are_not_remembered() {
        let value = "a-value-that-does-not-open-0123456789-abcdefghijklmnopq";
        let ran = Cell::new(0);
        for _ in 0..2 {
            let result: Result<Opened, &str> =
                open_cached(64, cx(3, true, &aad(b"aad")), value.as_bytes(), || {
                    ran.set(ran.get() + 1);
                    Err("bad seal")
                });
            assert_eq!(result.unwrap_err(), "bad seal");
        }
        assert_eq!(ran.get(), 2);
    }

    #[test]
    fn no_slots_means_no_cache() {
        let value = "uncached-value-0123456789-abcdefghijklmnopqrstuvwxyz";
        let a = aad(b"aad");
        assert!(lookup(0, cx(4, true, &a), value, 1).1);
        assert!(lookup(0, cx(4, true, &a), value, 1).1);
    }

    #[test]
    fn a_remembered_value_is_not_opened() {
        let a = aad(b"aad");
        let value = "a-value-sealed-just-now-0123456789-abcdefghijklmnopqrs";
        remember(64, cx(5, true, &a), value.as_bytes(), || Some(opened(9)));
        let (result, ran) = lookup(64, cx(5, true, &a), value, 1);
        assert!(!ran);
        assert_eq!(result.unwrap().data["n"], json!(9));
        // Nothing to remember: nothing remembered.
        let other = "a-value-that-would-not-open-0123456789-abcdefghijklmn";
        remember(64, cx(5, true, &a), other.as_bytes(), || None);
        assert!(lookup(64, cx(5, true, &a), other, 1).1);
    }

    #[test]
    fn a_full_set_pushes_out_the_value_used_least_recently() {
        // As many slots as one set holds: every value lands in it.
        let a = aad(b"aad");
        let cx = cx(6, true, &a);
        let values: Vec<String> = ["v", "w", "x", "y", "z"].map(|c| c.repeat(40)).into();
        for (n, v) in (0..).zip(&values[..WAYS]) {
            assert!(lookup(WAYS, cx, v, n).1);
        }
        // All fit; the first is used again, so the second is now the least recently used.
        for (n, v) in (0..).zip(&values[..WAYS]) {
            assert!(!lookup(WAYS, cx, v, n).1, "{v} was not kept");
        }
        assert!(!lookup(WAYS, cx, &values[0], 0).1);
        remember(WAYS, cx, values[WAYS].as_bytes(), || Some(opened(9)));
        assert!(!lookup(WAYS, cx, &values[WAYS], 9).1);
        assert!(
            !lookup(WAYS, cx, &values[0], 0).1,
            "the value used last was pushed out"
        );
        assert!(
            lookup(WAYS, cx, &values[1], 1).1,
            "the least recently used value stayed"
        );
    }

    #[test]
    fn long_values_are_not_kept_and_huge_tables_are_capped() {
        let a = aad(b"aad");
        let long = "L".repeat(MAX_VALUE + 1);
        assert!(lookup(64, cx(7, true, &a), &long, 1).1);
        assert!(
            lookup(64, cx(7, true, &a), &long, 1).1,
            "a long value was kept"
        );
        remember(64, cx(7, true, &a), long.as_bytes(), || Some(opened(2)));
        assert!(
            lookup(64, cx(7, true, &a), &long, 1).1,
            "a long sealed value was kept"
        );
        let at_limit = "M".repeat(MAX_VALUE);
        assert!(lookup(64, cx(7, true, &a), &at_limit, 1).1);
        assert!(!lookup(64, cx(7, true, &a), &at_limit, 1).1);
        // Asking for more slots than there is memory for gets the capped table, not a panic.
        let value = "capped-table-value-0123456789-abcdefghijklmnopqrstuvwx";
        assert!(lookup(usize::MAX, cx(8, true, &a), value, 1).1);
        assert!(!lookup(usize::MAX, cx(8, true, &a), value, 1).1);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(same_bytes(b"", b""));
        // Every position of a value with whole words and a tail, one bit at a time.
        let value: Vec<u8> = (0..=90u8).collect();
        assert!(same_bytes(&value, &value.clone()));
        for at in 0..value.len() {
            for bit in 0..8 {
                let mut other = value.clone();
                other[at] ^= 1 << bit;
                assert!(!same_bytes(&value, &other), "byte {at}, bit {bit}");
            }
        }
    }
}
