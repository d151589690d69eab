//! [`CachedStore`] when operations on one key overlap: in each interleaving below, chosen so
//! that a missing check would leave an older copy, the cache ends up holding nothing or the
//! last write's result.
//!
//! A [`Gated`] durable store does its work at once (the "commit") and then holds the answer
//! until the test opens that call's gate; [`SlowPuts`] holds a cache put the same way. The
//! futures run on one thread, so the test decides the interleaving exactly.

use std::{
    collections::VecDeque,
    future::{poll_fn, Future},
    sync::{Arc, Mutex},
    task::{Poll, Waker},
    time::{Duration, SystemTime},
};

use futures_util::future::join;
use serde_json::{json, Map, Value};

use crate::{
    CachedStore, ChangeSet, LocalCache, MemoryStore, Record, SessionCache, SessionStore,
    StorageKey, StoreError, WriteResult,
};

/// Opened once; every waiter then goes on.
#[derive(Clone, Default)]
struct Gate(Arc<Mutex<(bool, Vec<Waker>)>>);

impl Gate {
    fn open(&self) {
        let mut state = self.0.lock().unwrap();
        state.0 = true;
        state.1.drain(..).for_each(Waker::wake);
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            let mut state = self.0.lock().unwrap();
            if state.0 {
                Poll::Ready(())
            } else {
                state.1.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Gates handed to the next calls, in order; a call finds none and goes straight on.
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<VecDeque<Gate>>>);

impl Gates {
    fn hold_next(&self) -> Gate {
        let gate = Gate::default();
        self.0.lock().unwrap().push_back(gate.clone());
        gate
    }

    async fn pass(&self) {
        let gate = self.0.lock().unwrap().pop_front();
        if let Some(gate) = gate {
            gate.wait().await;
        }
    }
}

/// A memory store that gives updated records back, and whose loads and updates answer only
/// when their gate opens (their effect on the data is immediate).
#[derive(Default)]
struct Gated {
    inner: MemoryStore,
    loads: Gates,
    updates: Gates,
}

impl SessionStore for Gated {
    async fn load(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let found = self.inner.load(key, now).await;
        self.loads.pass().await;
        found
    }
    async fn create(&self, key: &StorageKey, record: &Record) -> Result<WriteResult, StoreError> {
        self.inner.create(key, record).await
    }
    async fn update(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        Ok(self
            .update_returning(key, changes, expires_at, now)
            .await?
            .0)
    }
    async fn touch(
        &self,
        key: &StorageKey,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<WriteResult, StoreError> {
        // Not through `update`: a refresh must not take an update's gate.
        self.inner.touch(key, expires_at, now).await
    }
    async fn update_returning(
        &self,
        key: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<(WriteResult, Option<Record>), StoreError> {
        let result = self.inner.update(key, changes, expires_at, now).await?;
        let stored = self.inner.load(key, now).await?;
        self.updates.pass().await;
        Ok((result, stored.filter(|_| result == WriteResult::Done)))
    }
    async fn renew(
        &self,
        old: &StorageKey,
        new: &StorageKey,
        changes: &ChangeSet,
        expires_at: SystemTime,
        now: SystemTime,
        retire_until: Option<SystemTime>,
    ) -> Result<WriteResult, StoreError> {
        self.inner
            .renew(old, new, changes, expires_at, now, retire_until)
            .await
    }
    async fn delete(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    /// Deletes the session, then fails as if the answer was lost on the way: which sessions
    /// went is unknown to the caller.
    async fn delete_all_owned(
        &self,
        _owner: &str,
        _keep: Option<&StorageKey>,
    ) -> Result<Vec<StorageKey>, StoreError> {
        self.inner.delete(&KEY).await?;
        Err(StoreError::new(
            "ending an owner's sessions",
            "connection lost",
        ))
    }
}

/// A local cache whose puts land only when their gate opens, and can be made to report an
/// error after landing (a network cache whose answer was lost).
#[derive(Default)]
struct SlowPuts {
    inner: LocalCache,
    puts: Gates,
    fail_puts: std::sync::atomic::AtomicBool,
}

impl SessionCache for SlowPuts {
    async fn get(&self, key: &StorageKey, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.inner.get(key, now).await
    }
    async fn put(
        &self,
        key: &StorageKey,
        record: &Record,
        now: SystemTime,
        fresh_for: Duration,
    ) -> Result<(), StoreError> {
        self.puts.pass().await;
        self.inner.put(key, record, now, fresh_for).await?;
        if self.fail_puts.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("caching a session", "no answer"));
        }
        Ok(())
    }
    async fn invalidate(&self, key: &StorageKey) -> Result<(), StoreError> {
        self.inner.invalidate(key).await
    }
}

static KEY: std::sync::LazyLock<StorageKey> =
    std::sync::LazyLock::new(|| StorageKey::from_bytes([5; 32]));

/// Lets the other futures of a `join` run once.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

fn block_on<F: Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

fn later(now: SystemTime) -> SystemTime {
    now + Duration::from_secs(60)
}

/// A store holding one session `{"n": 0}` under [`KEY`], nothing cached.
async fn setup(write_through: bool) -> (CachedStore<SlowPuts, Gated>, SystemTime) {
    let store = CachedStore::builder(SlowPuts::default(), Gated::default())
        .write_through(write_through)
        .build()
        .unwrap();
    let now = SystemTime::now();
    let mut data = Map::new();
    data.insert("n".into(), json!(0));
    let created = store
        .durable()
        .create(&KEY, &Record::new(data, now, later(now)))
        .await
        .unwrap();
    assert_eq!(created, WriteResult::Done);
    (store, now)
}

fn set_n(n: u64) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set("n", json!(n));
    changes
}

async fn cached_n(store: &CachedStore<SlowPuts, Gated>, now: SystemTime) -> Option<Value> {
    let copy = store.cache().get(&KEY, now).await.unwrap();
    copy.map(|record| record.data["n"].clone())
}

#[test]
fn a_lone_update_leaves_the_stored_session_as_the_copy() {
    block_on(async {
        let (store, now) = setup(true).await;
        let result = store.update(&KEY, &set_n(1), later(now), now).await;
        assert_eq!(result.unwrap(), WriteResult::Done);
        assert_eq!(cached_n(&store, now).await, Some(json!(1)));
        let read = store.load(&KEY, now).await.unwrap().unwrap();
        assert_eq!(
            read,
            store.durable().load(&KEY, now).await.unwrap().unwrap()
        );
    });
}

#[test]
fn without_write_through_an_update_only_drops_the_copy() {
    block_on(async {
        let (store, now) = setup(false).await;
        store.load(&KEY, now).await.unwrap();
        assert_eq!(cached_n(&store, now).await, Some(json!(0)));
        store
            .update(&KEY, &set_n(1), later(now), now)
            .await
            .unwrap();
        assert_eq!(cached_n(&store, now).await, None);
    });
}

#[test]
fn an_update_answered_after_a_later_one_does_not_overwrite_its_copy() {
    block_on(async {
        let (store, now) = setup(true).await;
        let first = store.durable().updates.hold_next();
        let second = store.durable().updates.hold_next();
        // Both updates reach the durable store, n = 1 then n = 2; the second is answered first.
        let (one, two) = (set_n(1), set_n(2));
        let updates = join(
            store.update(&KEY, &one, later(now), now),
            store.update(&KEY, &two, later(now), now),
        );
        let order = async {
            second.open();
            // Let the second update finish (and put its copy) before the first is answered.
            for _ in 0..10 {
                yield_once().await;
            }
            assert_eq!(cached_n(&store, now).await, Some(json!(2)));
            first.open();
        };
        let ((a, b), ()) = join(updates, order).await;
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            (WriteResult::Done, WriteResult::Done)
        );
        // The first update's answer (n = 1) is older than the cached copy: it drops it.
        assert_eq!(cached_n(&store, now).await, None);
        assert_eq!(
            store.load(&KEY, now).await.unwrap().unwrap().data["n"],
            json!(2)
        );
    });
}

/// A read of `{"n": 0}` held at `gate` (the durable store's answer, or the cache put) while an
/// update writes n = 1 and keeps it as the copy; then the gate opens. What the cache holds at
/// the end.
async fn read_held_during_an_update(
    store: &CachedStore<SlowPuts, Gated>,
    now: SystemTime,
    gate: Gate,
) -> Option<Value> {
    let read = store.load(&KEY, now);
    let update = async {
        store
            .update(&KEY, &set_n(1), later(now), now)
            .await
            .unwrap();
        assert_eq!(cached_n(store, now).await, Some(json!(1)));
        gate.open();
    };
    let (old, ()) = join(read, update).await;
    assert_eq!(old.unwrap().unwrap().data["n"], json!(0));
    cached_n(store, now).await
}

#[test]
fn a_read_that_overlapped_an_update_does_not_put_back_the_old_session() {
    block_on(async {
        let (store, now) = setup(true).await;
        // The read has taken n = 0 from the durable store when the update runs: it sees the
        // write count move and does not put.
        let answer = store.durable().loads.hold_next();
        let cached = read_held_during_an_update(&store, now, answer).await;
        assert_eq!(cached, Some(json!(1)));
    });
}

#[test]
fn a_put_overtaken_by_a_delete_is_dropped_again() {
    block_on(async {
        let (store, now) = setup(true).await;
        let put = store.cache().puts.hold_next();
        let one = set_n(1);
        let update = store.update(&KEY, &one, later(now), now);
        let delete = async {
            // The update is done at the durable store and its put is on its way to the cache
            // when a logout deletes the session; then the put lands.
            store.delete(&KEY).await.unwrap();
            put.open();
        };
        let (updated, ()) = join(update, delete).await;
        assert_eq!(updated.unwrap(), WriteResult::Done);
        assert_eq!(
            cached_n(&store, now).await,
            None,
            "a deleted session is cached"
        );
        assert_eq!(store.load(&KEY, now).await.unwrap(), None);
    });
}

#[test]
fn a_read_whose_put_lands_after_an_update_is_dropped_again() {
    block_on(async {
        let (store, now) = setup(true).await;
        // The read's put of n = 0 is on its way when the update runs, and lands over the
        // update's copy: the read's second check drops it.
        let put = store.cache().puts.hold_next();
        let cached = read_held_during_an_update(&store, now, put).await;
        assert_eq!(cached, None, "the older read stayed");
    });
}

#[test]
fn a_put_that_failed_leaves_no_copy_behind() {
    block_on(async {
        let (store, now) = setup(true).await;
        store
            .cache()
            .fail_puts
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let read = store.load(&KEY, now).await.unwrap().unwrap();
        assert_eq!(read.data["n"], json!(0));
        assert_eq!(cached_n(&store, now).await, None, "after a load");
        store
            .update(&KEY, &set_n(1), later(now), now)
            .await
            .unwrap();
        assert_eq!(cached_n(&store, now).await, None, "after an update");
    });
}

#[test]
fn a_failed_end_of_all_sessions_stops_reads_in_flight_from_caching() {
    block_on(async {
        let (store, now) = setup(true).await;
        let read_gate = store.durable().loads.hold_next();
        let read = store.load(&KEY, now);
        let end_all = async {
            // The read has the session; ending all sessions deletes it, but its answer is lost.
            assert!(store.delete_all_owned("ann", None).await.is_err());
            read_gate.open();
        };
        let (read, ()) = join(read, end_all).await;
        assert!(read.unwrap().is_some());
        assert_eq!(
            cached_n(&store, now).await,
            None,
            "a deleted session is cached"
        );
    });
}

#[test]
fn a_refresh_overlapping_an_update_leaves_no_older_copy() {
    block_on(async {
        let (store, now) = setup(true).await;
        let gate = store.durable().updates.hold_next();
        let one = set_n(1);
        let update = store.update(&KEY, &one, later(now), now);
        let refresh = async {
            // The update is done at the durable store (n = 1) but not answered; a refresh
            // moves the expiry further and ends first.
            let further = later(now) + Duration::from_secs(60);
            let refreshed = store.touch(&KEY, further, now).await.unwrap();
            assert_eq!(refreshed, WriteResult::Done);
            gate.open();
        };
        let (updated, ()) = join(update, refresh).await;
        assert_eq!(updated.unwrap(), WriteResult::Done);
        // The update's answer has the older expiry: it must not become the copy.
        assert_eq!(cached_n(&store, now).await, None);
    });
}
