//! Reading what Redis answers: session hashes into records, script results into values.

use std::time::SystemTime;

use ::redis::Value;
use serde_json::Map;

use super::{
    from_millis, CREATED, DATA, EXPIRES, LAST_SEEN, OWNER, OWNER_INDEX, PREDECESSOR, RETIRED,
};
use crate::{OwnedSession, Record, StorageKey, StoreError};

/// A storage key back from the 64 hex digits of a set member.
pub(super) fn key_from_hex(hex: &str) -> Option<StorageKey> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(StorageKey::from_bytes(bytes))
}

pub(super) fn member_key(op: &'static str, hex: &str) -> Result<StorageKey, StoreError> {
    key_from_hex(hex).ok_or_else(|| StoreError::new(op, "owner set with a malformed member"))
}

/// One row of the `list_owned` script: `[hex, created_ms, last_seen_ms, expires_ms, device]`,
/// the last the JSON of the map's reserved device entry (`crate::device`), or '' when there is
/// none.
pub(super) fn owned_session(
    op: &'static str,
    row: Vec<String>,
) -> Result<OwnedSession, StoreError> {
    let [hex, created, last_seen, expires, device] = row.as_slice() else {
        return Err(StoreError::new(
            op,
            "owner set listing of an unexpected shape",
        ));
    };
    let listed = OwnedSession::new(
        member_key(op, hex)?,
        parse_millis(op, created)?,
        parse_millis(op, last_seen)?,
        parse_millis(op, expires)?,
    );
    // One that does not parse is no device rather than a failed listing.
    Ok(match serde_json::from_str::<serde_json::Value>(device) {
        Ok(entry) => listed.with_device_entry(&entry),
        Err(_) => listed,
    })
}

pub(super) fn parse_millis(op: &'static str, value: &str) -> Result<SystemTime, StoreError> {
    value
        .parse::<u64>()
        .map(from_millis)
        .map_err(|_| StoreError::new(op, "owner set listing with a malformed time"))
}

pub(super) fn unexpected(op: &'static str, what: &'static str) -> StoreError {
    StoreError::new(op, format!("unexpected reply from Redis: {what}"))
}

/// The integer a script returned.
pub(super) fn integer(op: &'static str, reply: Value) -> Result<i64, StoreError> {
    match reply {
        Value::Int(n) => Ok(n),
        _ => Err(unexpected(op, "not an integer")),
    }
}

/// The strings of an array reply, or of a set (`SMEMBERS` over RESP3).
pub(super) fn strings(op: &'static str, reply: Value) -> Result<Vec<String>, StoreError> {
    let (Value::Array(items) | Value::Set(items)) = reply else {
        return Err(unexpected(op, "not an array"));
    };
    items.into_iter().map(|item| string(op, item)).collect()
}

pub(super) fn string(op: &'static str, reply: Value) -> Result<String, StoreError> {
    match reply {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| unexpected(op, "a string that is not UTF-8"))
        }
        Value::Int(n) => Ok(n.to_string()),
        Value::SimpleString(text) => Ok(text),
        _ => Err(unexpected(op, "not a string")),
    }
}

/// The names and values of an `HGETALL` reply, in turn: an array (RESP2) or a map (RESP3).
pub(super) fn hash_items(op: &'static str, reply: Value) -> Result<Vec<Value>, StoreError> {
    match reply {
        Value::Array(items) => Ok(items),
        Value::Map(pairs) => Ok(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        _ => Err(unexpected(op, "a hash that is neither an array nor a map")),
    }
}

/// A script's answer that is 0 (nothing done: `None`) or an array of `N` items.
pub(super) fn zero_or_array<const N: usize>(
    op: &'static str,
    reply: Value,
) -> Result<Option<[Value; N]>, StoreError> {
    match reply {
        Value::Int(0) => Ok(None),
        Value::Array(items) => items
            .try_into()
            .map(Some)
            .map_err(|_| unexpected(op, "an answer array of an unexpected length")),
        _ => Err(unexpected(op, "an answer that is neither 0 nor an array")),
    }
}

/// Turns the `HGETALL` reply of a session hash into a record; `None` when absent or expired.
/// The reply is an array of names and values (RESP2) or a map (RESP3, `?protocol=resp3`).
///
/// (A load script that packs the hash into one string costs the client a seventh fewer
/// instructions, but Redis more: on one machine with Redis it lowered read throughput; see
/// BENCHMARKS.md.)
pub(super) fn decode(
    op: &'static str,
    reply: Value,
    now: SystemTime,
) -> Result<Option<Record>, StoreError> {
    let items = hash_items(op, reply)?;
    if items.len() % 2 != 0 {
        return Err(unexpected(op, "a hash with an odd number of items"));
    }
    if items.is_empty() {
        return Ok(None);
    }
    let time = |value: &[u8]| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(from_millis)
    };
    let (mut created_at, mut expires_at, mut last_seen) = (None, None, None);
    let mut owner = None;
    let mut retired = false;
    let mut retired_until = None;
    let mut data = Map::new();
    let mut items = items.into_iter();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        let (Value::BulkString(name), Value::BulkString(value)) = (name, value) else {
            return Err(unexpected(op, "a hash field that is not a string"));
        };
        let value = value.as_slice();
        match name.as_slice() {
            n if n == CREATED.as_bytes() => created_at = Some(time(value)),
            n if n == EXPIRES.as_bytes() => expires_at = Some(time(value)),
            n if n == LAST_SEEN.as_bytes() => last_seen = Some(time(value)),
            n if n == OWNER.as_bytes() => {
                let text = std::str::from_utf8(value)
                    .map_err(|_| unexpected(op, "a string that is not UTF-8"))?;
                owner = Some(text.to_owned());
            }
            n if n == RETIRED.as_bytes() => {
                retired = true;
                retired_until = Some(time(value));
            }
            // The owner's digest only names its index set, and the predecessor a retired copy
            // to delete with the session: neither is part of the record.
            n if n == OWNER_INDEX.as_bytes() || n == PREDECESSOR.as_bytes() => {}
            _ => {
                let Some(key) = name.strip_prefix(DATA.as_bytes()) else {
                    continue;
                };
                let key = std::str::from_utf8(key)
                    .map_err(|_| unexpected(op, "a field name that is not UTF-8"))?;
                let value = serde_json::from_slice(value).map_err(|e| StoreError::new(op, e))?;
                data.insert(key.to_owned(), value);
            }
        }
    }
    let invalid = |name: &str| {
        StoreError::new(
            op,
            format!("session hash without a valid `{name}` (or, retired, `{RETIRED}`)"),
        )
    };
    // A retired copy's deadline is in `@r` (in earlier builds: in `@e`, with `@r` = 1).
    let expires_at = expires_at
        .or(retired_until)
        .flatten()
        .ok_or_else(|| invalid(EXPIRES))?;
    if expires_at <= now {
        return Ok(None);
    }
    let created_at = created_at.flatten().ok_or_else(|| invalid(CREATED))?;
    // Hashes written before the last write was recorded count it as their creation.
    let last_seen = match last_seen {
        Some(t) => t.ok_or_else(|| invalid(LAST_SEEN))?,
        None => created_at,
    };
    Ok(Some(
        Record::new(data, created_at, expires_at)
            .with_owner(owner)
            .with_activity(last_seen, retired),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value as Json;

    use super::{
        super::{millis, owner_digest},
        *,
    };

    /// `HGETALL`'s reply for a hash of `items` (names and values).
    fn pack(items: &[&[u8]]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|item| Value::BulkString(item.to_vec()))
                .collect(),
        )
    }

    #[test]
    fn decoding_skips_expired_and_foreign_fields() {
        fn hash(fields: &[(&str, String)]) -> Value {
            let items: Vec<&[u8]> = fields
                .iter()
                .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()])
                .collect();
            pack(&items)
        }
        let now = SystemTime::now();
        let fields = vec![
            (CREATED, millis(now).to_string()),
            (EXPIRES, millis(now + Duration::from_secs(60)).to_string()),
            ("d:a", "[1,2]".to_owned()),
            ("stray", "x".to_owned()),
        ];
        let record = decode("test", hash(&fields), now).unwrap().unwrap();
        // A hash without a last write (written by an older version) was last seen at creation.
        assert_eq!(record.last_seen, record.created_at);
        assert_eq!((record.owner, record.retired), (None, false));
        assert_eq!(Json::Object(record.data), serde_json::json!({"a": [1, 2]}));
        let mut owned = fields.clone();
        let seen = millis(now + Duration::from_secs(5));
        owned.push((LAST_SEEN, seen.to_string()));
        owned.push((OWNER, "ann".to_owned()));
        owned.push((OWNER_INDEX, owner_digest("ann")));
        owned.push((RETIRED, "1".to_owned()));
        let record = decode("test", hash(&owned), now).unwrap().unwrap();
        assert_eq!(record.last_seen, from_millis(seen));
        assert_eq!(record.owner.as_deref(), Some("ann"));
        assert!(record.retired);
        assert_eq!(record.data.len(), 1);
        // A retired copy keeps its deadline in `@r`, in place of `@e`.
        let deadline = millis(now + Duration::from_secs(30));
        let mut retired: Vec<_> = fields
            .iter()
            .filter(|(n, _)| *n != EXPIRES)
            .cloned()
            .collect();
        retired.push((RETIRED, deadline.to_string()));
        let record = decode("test", hash(&retired), now).unwrap().unwrap();
        assert!(record.retired);
        assert_eq!(record.expires_at, from_millis(deadline));
        assert!(
            decode("test", hash(&retired), now + Duration::from_secs(30))
                .unwrap()
                .is_none()
        );
        assert!(decode("test", hash(&fields), now + Duration::from_secs(61))
            .unwrap()
            .is_none());
        assert!(decode("test", pack(&[]), now).unwrap().is_none());
        // A long value.
        let long = format!("\"{}\"", "x".repeat(70_000));
        let mut big = fields.clone();
        big.push(("d:long", long.clone()));
        let record = decode("test", hash(&big), now).unwrap().unwrap();
        assert_eq!(record.data["long"], Json::String("x".repeat(70_000)));
    }

    #[test]
    fn malformed_hashes_are_errors() {
        let now = SystemTime::now();
        let later = millis(now + Duration::from_secs(60)).to_string();
        let later = later.as_bytes();
        let bad = [
            Value::Int(1),
            Value::BulkString(b"not a hash".to_vec()),
            pack(&[EXPIRES.as_bytes()]),
            Value::Array(vec![Value::BulkString(EXPIRES.into()), Value::Int(5)]),
            // No creation time.
            pack(&[EXPIRES.as_bytes(), later]),
            pack(&[EXPIRES.as_bytes(), b"soon", CREATED.as_bytes(), b"0"]),
            pack(&[
                EXPIRES.as_bytes(),
                later,
                CREATED.as_bytes(),
                b"0",
                b"d:k",
                b"{not json",
            ]),
        ];
        for reply in bad {
            assert!(decode("test", reply.clone(), now).is_err(), "{reply:?}");
        }
    }

    #[test]
    fn set_members_read_from_resp2_arrays_and_resp3_sets() {
        let members = || {
            vec![
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"b".to_vec()),
            ]
        };
        for reply in [Value::Array(members()), Value::Set(members())] {
            assert_eq!(strings("test", reply).unwrap(), ["a", "b"]);
        }
        assert!(strings("test", Value::Map(vec![])).is_err());
    }
}
