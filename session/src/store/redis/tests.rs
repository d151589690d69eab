//! Unit tests of the Redis store's key layout and arguments.

use super::{builder::validate_prefix, reply::key_from_hex, *};

#[test]
fn prefixes_are_validated_before_any_key_is_built() {
    for good in ["", "session:", "app/v2:s:", &"p".repeat(128)] {
        assert!(validate_prefix(good).is_ok(), "{good:?}");
    }
    for bad in [
        "has space",
        "tab\t",
        "new\nline",
        "séance",
        &"p".repeat(129),
    ] {
        assert!(validate_prefix(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn data_fields_cannot_collide_with_reserved_fields() {
    let reserved = [
        CREATED,
        EXPIRES,
        LAST_SEEN,
        OWNER,
        OWNER_INDEX,
        RETIRED,
        PREDECESSOR,
    ];
    for key in ["@c", "@e", "@o", "@i", "@r", "@s", "@p", "", "d:", "c"] {
        let f = format!("{DATA}{key}"); // what `push_pairs` names the field
        assert!(f.starts_with(DATA) && !reserved.contains(&f.as_str()));
    }
    // Every reserved field is the one the scripts use.
    let scripts = [
        PRELUDE,
        WRITE,
        LIST_OWNED,
        DELETE,
        RENEW,
        DELETE_OWNED,
        UPDATE_SMALL,
    ]
    .concat();
    for name in reserved {
        assert!(scripts.contains(&format!("'{name}'")), "{name}");
    }
}

#[test]
fn owner_sets_cannot_collide_with_session_keys() {
    let store = RedisStore::new(Client::open("redis://127.0.0.1/").unwrap());
    let set = store.owner_key("alice");
    let rest = set.strip_prefix(store.prefix()).unwrap();
    assert!(!rest.as_bytes()[0].is_ascii_hexdigit());
    assert_eq!(rest.len(), OWNER_SET.len() + 64);
    assert!(!set.contains("alice"));
    assert_ne!(store.owner_key("alice"), store.owner_key("bob"));
    // The hex of a key comes back as the key.
    let key = StorageKey::from_bytes(std::array::from_fn(|i| i as u8 * 7));
    assert_eq!(key_from_hex(&key.to_hex()), Some(key));
    for bad in ["", "ab", &"g".repeat(64), &"é".repeat(32), &"a".repeat(66)] {
        assert_eq!(key_from_hex(bad), None, "{bad:?}");
    }
}

#[test]
fn ttls_are_positive_durations_from_now() {
    let now = SystemTime::now();
    assert_eq!(ttl_millis(now + Duration::from_secs(3), now), 3000);
    assert_eq!(ttl_millis(now - Duration::from_secs(3), now), 1);
    assert_eq!(ttl_millis(now, now), 1);
}
