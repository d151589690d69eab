//! The Redis store on a Redis Cluster of 3 masters (`REDIS_CLUSTER_URLS`, which
//! `bash tests/run.sh` starts): sessions and owner sets spread over every shard, the owner index
//! works across them, and a renew that crosses slots either moves the session whole or leaves it
//! as it was. (The conformance suite on the cluster: `conformance_redis_cluster.rs`.)

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, SystemTime},
};

use actix_typed_session::{
    redis::cmd, ChangeSet, Record, RedisStore, SessionStore, StorageKey, WriteResult,
};
use actix_typed_session_tests::{
    init_logs,
    redis::command,
    redis_cluster::{self, cluster_keys, ClusterPrefix},
};
use serde_json::{json, Value};

fn key_n(n: u8) -> StorageKey {
    StorageKey::from_bytes([n; 32])
}

fn owned(data: Value, owner: &str) -> Record {
    let now = SystemTime::now();
    let Value::Object(map) = data else {
        panic!("records hold objects")
    };
    Record::new(map, now, now + Duration::from_secs(60)).with_owner(Some(owner.to_owned()))
}

fn owner_change(owner: &str) -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.set_owner(Some(owner.to_owned()));
    changes
}

async fn listed(store: &RedisStore, owner: &str) -> BTreeSet<StorageKey> {
    let listed = store.list_owned(owner, SystemTime::now()).await.unwrap();
    listed.iter().map(|s| s.key).collect()
}

fn keys_of(range: impl IntoIterator<Item = u8>) -> BTreeSet<StorageKey> {
    range.into_iter().map(key_n).collect()
}

/// The node (URL) holding each key under the test's prefix.
fn placement(prefix: &ClusterPrefix) -> BTreeMap<String, String> {
    cluster_keys(&prefix.urls, &prefix.prefix)
        .into_iter()
        .map(|(node, key)| (key, node))
        .collect()
}

#[actix_web::test]
async fn an_owners_sessions_on_every_shard_are_listed_and_ended_through_one_index() {
    init_logs();
    let (store, prefix) = redis_cluster::store().await;
    assert!(store.is_cluster());
    let now = SystemTime::now();
    for n in 1..=48 {
        let created = store
            .create(&key_n(n), &owned(json!({"n": n}), "ann"))
            .await
            .unwrap();
        assert_eq!(created, WriteResult::Done);
    }
    // The sessions are on every primary, so mostly not on the one of the owner's set.
    let placed = placement(&prefix);
    let sessions: BTreeMap<u8, &String> = (1..=48)
        .map(|n| (n, &placed[&store.redis_key(&key_n(n))]))
        .collect();
    let shards: BTreeSet<&String> = sessions.values().copied().collect();
    assert_eq!(shards.len(), 3, "48 sessions on {shards:?}");
    let set_node = &placed[&store.owner_key("ann")];
    assert!(sessions.values().any(|node| *node != set_node));
    assert_eq!(listed(&store, "ann").await, keys_of(1..=48));

    // Ending one, and moving one to another owner (whose set may be on a third shard).
    assert!(store.delete_owned("ann", &key_n(1)).await.unwrap());
    assert!(!store.delete_owned("ann", &key_n(1)).await.unwrap());
    assert!(!store.delete_owned("bob", &key_n(2)).await.unwrap());
    let moved = store
        .update(
            &key_n(2),
            &owner_change("bob"),
            now + Duration::from_secs(60),
            now,
        )
        .await
        .unwrap();
    assert_eq!(moved, WriteResult::Done);
    assert_eq!(listed(&store, "ann").await, keys_of(3..=48));
    assert_eq!(listed(&store, "bob").await, keys_of([2]));

    // A renew with a grace window moves the session to another key (another slot), leaves a
    // retired copy, and the index follows; deleting the session ends the copy too.
    let renewed = store
        .renew(
            &key_n(3),
            &key_n(100),
            &ChangeSet::default(),
            now + Duration::from_secs(60),
            now,
            Some(now + Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!(renewed, WriteResult::Done);
    let copy = store.load(&key_n(3), now).await.unwrap().expect("a copy");
    assert!(copy.retired);
    let moved = store.load(&key_n(100), now).await.unwrap().expect("moved");
    assert_eq!(moved.data["n"], json!(3));
    assert!(!moved.retired);
    assert_eq!(listed(&store, "ann").await, keys_of((4..=48).chain([100])));
    store.delete(&key_n(100)).await.unwrap();
    assert_eq!(store.load(&key_n(3), now).await.unwrap(), None);
    assert_eq!(store.load(&key_n(100), now).await.unwrap(), None);

    // An expiry that moves puts a session back into its owner's set, wherever the set lives.
    let member = key_n(4).to_hex();
    let set_url = placed[&store.owner_key("ann")].clone();
    let _: () = command(
        &set_url,
        cmd("SREM").arg(store.owner_key("ann")).arg(&member),
    )
    .unwrap();
    assert!(!listed(&store, "ann").await.contains(&key_n(4)));
    store
        .touch(&key_n(4), now + Duration::from_secs(90), now)
        .await
        .unwrap();
    assert!(listed(&store, "ann").await.contains(&key_n(4)));

    // Every key carries a TTL on its shard (owner sets included).
    for (node, key) in cluster_keys(&prefix.urls, &prefix.prefix) {
        let ttl: i64 = command(&node, cmd("PTTL").arg(&key)).unwrap();
        assert!(ttl > 0, "{key} on {node} has TTL {ttl}");
    }

    // All but one, across the shards.
    let ended: BTreeSet<StorageKey> = store
        .delete_all_owned("ann", Some(&key_n(48)))
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ended, keys_of(4..=47));
    assert_eq!(listed(&store, "ann").await, keys_of([48]));
    for n in 4..=47 {
        assert_eq!(store.load(&key_n(n), now).await.unwrap(), None, "{n}");
    }
    assert!(store.load(&key_n(2), now).await.unwrap().is_some());
    // Left: ann's last session and set, bob's session and set.
    assert_eq!(placement(&prefix).len(), 4, "{:?}", placement(&prefix));
}

#[actix_web::test]
async fn a_renew_into_a_taken_key_leaves_both_sessions_as_they_were() {
    init_logs();
    let (store, prefix) = redis_cluster::store().await;
    let now = SystemTime::now();
    for grace in [None, Some(now + Duration::from_secs(30))] {
        store
            .create(&key_n(1), &owned(json!({"a": 1}), "ann"))
            .await
            .unwrap();
        store
            .create(&key_n(2), &owned(json!({"b": 2}), "bob"))
            .await
            .unwrap();
        let mut changes = owner_change("bob");
        changes.set("a", json!(9));
        let renewed = store
            .renew(
                &key_n(1),
                &key_n(2),
                &changes,
                now + Duration::from_secs(60),
                now,
                grace,
            )
            .await
            .unwrap();
        assert_eq!(renewed, WriteResult::Collision, "grace {grace:?}");
        let old = store.load(&key_n(1), now).await.unwrap().expect("kept");
        assert_eq!(old.data["a"], json!(1));
        assert_eq!(old.owner.as_deref(), Some("ann"));
        assert!(!old.retired, "grace {grace:?}");
        // Put back with the TTL of its own deadline (a minute), not a placeholder.
        let old_key = store.redis_key(&key_n(1));
        let node = placement(&prefix)[&old_key].clone();
        let ttl: i64 = command(&node, cmd("PTTL").arg(&old_key)).unwrap();
        assert!(ttl > 50_000, "TTL {ttl} ms after the renew was undone");
        let taken = store.load(&key_n(2), now).await.unwrap().expect("kept");
        assert_eq!(taken.data.get("a"), None);
        assert_eq!(listed(&store, "ann").await, keys_of([1]));
        assert_eq!(listed(&store, "bob").await, keys_of([2]));
        // The old session still takes writes.
        let mut changes = ChangeSet::default();
        changes.set("a", json!(2));
        let updated = store
            .update(&key_n(1), &changes, now + Duration::from_secs(60), now)
            .await
            .unwrap();
        assert_eq!(updated, WriteResult::Done);
        store.delete(&key_n(1)).await.unwrap();
        store.delete(&key_n(2)).await.unwrap();
    }
}

#[actix_web::test]
async fn a_cleared_renew_still_ends_its_grace_copy_on_delete() {
    init_logs();
    let (store, _prefix) = redis_cluster::store().await;
    actix_typed_session_tests::redis::a_cleared_renew_still_ends_its_grace_copy_on_delete(&store)
        .await;
}
