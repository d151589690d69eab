//! What a request changed in a session.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The changes one request made to a session: keys set (with their new values), keys removed,
/// and whether the session was cleared first.
///
/// Server-side stores apply a change set to the stored data atomically instead of overwriting
/// the whole session, so two parallel requests of one visitor that change different keys both
/// survive. Apply it with [`apply_to`](Self::apply_to), or translate it into the store's own
/// language (`(data - removed) || patch` in SQL, `HDEL` + `HSET` in Redis).
///
/// ```
/// use actix_typed_session::ChangeSet;
/// use serde_json::{json, Map};
///
/// let mut stored = Map::new();
/// stored.insert("a".into(), json!(1));
/// stored.insert("b".into(), json!(2));
///
/// let mut changes = ChangeSet::default();
/// changes.set("c", json!(3));
/// changes.remove("a");
/// changes.apply_to(&mut stored);
///
/// assert_eq!(serde_json::Value::Object(stored), json!({"b": 2, "c": 3}));
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct ChangeSet {
    cleared: bool,
    set: Map<String, Value>,
    removed: BTreeSet<String>,
    owner: Option<Option<String>>,
    /// Keys changed without being recorded: a cookie session, rewritten whole, needs to know
    /// only that something changed.
    touched: bool,
}

impl std::fmt::Debug for ChangeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are the application's names; values and the owner are its data.
        f.debug_struct("ChangeSet")
            .field("cleared", &self.cleared)
            .field("touched", &self.touched)
            .field("set", &self.set.keys().collect::<Vec<_>>())
            .field("removed", &self.removed)
            .field(
                "owner",
                &self.owner.as_ref().map(|o| o.as_ref().map(|_| "<owner>")),
            )
            .finish()
    }
}

impl ChangeSet {
    /// Records that `key` now holds `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.removed.remove(&key);
        self.set.insert(key, value);
    }

    /// Records that `key` was removed.
    pub fn remove(&mut self, key: &str) {
        self.set.remove(key);
        if !self.cleared {
            self.removed.insert(key.to_owned());
        }
    }

    /// Records that every stored key was dropped before the keys in [`patch`](Self::patch).
    pub fn clear(&mut self) {
        self.cleared = true;
        self.set.clear();
        self.removed.clear();
    }

    /// Records that the session is now tied to `owner` (`None`: to no owner).
    ///
    /// ```
    /// use actix_typed_session::ChangeSet;
    ///
    /// let mut changes = ChangeSet::default();
    /// assert_eq!(changes.owner(), None); // the owner is not changed
    /// changes.set_owner(Some("alice".into()));
    /// assert_eq!(changes.owner(), Some(Some("alice")));
    /// assert!(!changes.is_empty());
    /// ```
    pub fn set_owner(&mut self, owner: Option<String>) {
        self.owner = Some(owner);
    }

    /// The owner change: `None` when the owner is unchanged, `Some(None)` when the session is
    /// no longer tied to an owner, `Some(Some(owner))` when it is now tied to `owner`.
    pub fn owner(&self) -> Option<Option<&str>> {
        self.owner.as_ref().map(Option::as_deref)
    }

    /// Whether the stored data is dropped before the patch is applied.
    pub fn is_cleared(&self) -> bool {
        self.cleared
    }

    /// The keys set by this change, with their new values.
    pub fn patch(&self) -> &Map<String, Value> {
        &self.set
    }

    /// The keys removed by this change (empty when [`is_cleared`](Self::is_cleared)).
    pub fn removed(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.removed.iter().map(String::as_str)
    }

    /// Whether nothing changed: applying an empty change set leaves the stored data (entries and
    /// owner) unchanged. (A cookie session's change set may record only that something
    /// changed; it is never applied, the cookie is rewritten whole.)
    pub fn is_empty(&self) -> bool {
        !self.cleared
            && !self.touched
            && self.set.is_empty()
            && self.removed.is_empty()
            && self.owner.is_none()
    }

    /// Records that some key changed, without saying which (a cookie session is written whole).
    pub(crate) fn touch(&mut self) {
        self.touched = true;
    }

    /// Applies the change to `data`: clear if cleared, drop the removed keys, then merge the patch.
    pub fn apply_to(&self, data: &mut Map<String, Value>) {
        if self.cleared {
            data.clear();
        }
        for key in &self.removed {
            data.remove(key);
        }
        for (key, value) in &self.set {
            data.insert(key.clone(), value.clone());
        }
    }

    /// Applies the change to a stored record: its entries as [`apply_to`](Self::apply_to) does,
    /// and its owner. Expiry and `last_seen` are the store's to set.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use actix_typed_session::{ChangeSet, Record};
    /// use serde_json::json;
    ///
    /// let now = SystemTime::now();
    /// let mut record = Record::new(Default::default(), now, now);
    /// let mut changes = ChangeSet::default();
    /// changes.set("user", json!(7));
    /// changes.set_owner(Some("user-7".into()));
    /// changes.apply_to_record(&mut record);
    /// assert_eq!(record.data["user"], json!(7));
    /// assert_eq!(record.owner.as_deref(), Some("user-7"));
    /// ```
    pub fn apply_to_record(&self, record: &mut crate::Record) {
        self.apply_to(&mut record.data);
        if let Some(owner) = &self.owner {
            record.owner.clone_from(owner);
        }
    }

    /// Applies the entry changes (not the owner) to a session map kept as a JSON object, without
    /// building the map: untouched entries are copied byte for byte, set ones are serialized
    /// after them. Decoding the result gives what [`apply_to`](Self::apply_to) gives on the
    /// decoded map. `Err` when `json` is not an object, or has a key that needs unescaping (the
    /// caller then takes the decoding path).
    #[cfg(feature = "memory")]
    pub(crate) fn apply_to_json(&self, json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        let RawEntries(stored) = serde_json::from_slice(json)?;
        let mut out = Vec::with_capacity(json.len() + 16 * self.set.len() + 2);
        out.push(b'{');
        let mut first = true;
        let mut separate = |out: &mut Vec<u8>| {
            if !std::mem::replace(&mut first, false) {
                out.push(b',');
            }
        };
        if !self.cleared {
            for (key, raw) in stored {
                if self.removed.contains(key) || self.set.contains_key(key) {
                    continue;
                }
                separate(&mut out);
                serde_json::to_writer(&mut out, key)?;
                out.push(b':');
                out.extend_from_slice(raw.get().as_bytes());
            }
        }
        for (key, value) in &self.set {
            separate(&mut out);
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut out, value)?;
        }
        out.push(b'}');
        Ok(out)
    }
}

/// The entries of a JSON object as borrowed keys and raw values, in their order.
#[cfg(feature = "memory")]
struct RawEntries<'a>(Vec<(&'a str, &'a serde_json::value::RawValue)>);

#[cfg(feature = "memory")]
impl<'de> serde::Deserialize<'de> for RawEntries<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = RawEntries<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawEntries(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[cfg(feature = "memory")]
    #[test]
    fn applying_to_json_equals_applying_to_the_decoded_map() {
        let stored = json!({"a": 1, "b": {"deep": [1, 2, "x"]}, "c": "sp\"ace", "é": null});
        let bytes = serde_json::to_vec(&stored).unwrap();
        let mut cases = Vec::new();
        let mut set = ChangeSet::default();
        set.set("a", json!(2));
        set.set("new", json!({"k": [true]}));
        cases.push(set);
        let mut remove = ChangeSet::default();
        remove.remove("b");
        remove.remove("missing");
        remove.set("é", json!("now"));
        cases.push(remove);
        let mut clear = ChangeSet::default();
        clear.clear();
        clear.set("only", json!(1));
        cases.push(clear);
        let mut cleared_only = ChangeSet::default();
        cleared_only.clear();
        cases.push(cleared_only);
        cases.push(ChangeSet::default());
        for changes in cases {
            let mut expected = stored.as_object().unwrap().clone();
            changes.apply_to(&mut expected);
            let patched = changes.apply_to_json(&bytes).unwrap();
            let got: Map<String, Value> = serde_json::from_slice(&patched).unwrap();
            assert_eq!(got, expected, "{changes:?}");
        }
        // Keys that need unescaping, and anything but an object, are left to the caller.
        assert!(ChangeSet::default()
            .apply_to_json(br#"{"a\u0062": 1}"#)
            .is_err());
        assert!(ChangeSet::default().apply_to_json(b"[1]").is_err());
    }

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test maps are objects"),
        }
    }

    #[test]
    fn set_after_remove_keeps_only_the_set() {
        let mut c = ChangeSet::default();
        c.remove("a");
        c.set("a", json!(1));
        assert_eq!(c.removed().count(), 0);
        let mut data = map(json!({"a": 0}));
        c.apply_to(&mut data);
        assert_eq!(data, map(json!({"a": 1})));
    }

    #[test]
    fn remove_after_set_keeps_only_the_removal() {
        let mut c = ChangeSet::default();
        c.set("a", json!(1));
        c.remove("a");
        assert!(c.patch().is_empty());
        let mut data = map(json!({"a": 0, "b": 1}));
        c.apply_to(&mut data);
        assert_eq!(data, map(json!({"b": 1})));
    }

    #[test]
    fn clear_drops_stored_keys_and_keeps_later_sets() {
        let mut c = ChangeSet::default();
        c.set("x", json!(1));
        c.clear();
        c.set("y", json!(2));
        c.remove("z");
        assert!(c.is_cleared());
        assert_eq!(c.removed().count(), 0);
        let mut data = map(json!({"x": 0, "z": 0}));
        c.apply_to(&mut data);
        assert_eq!(data, map(json!({"y": 2})));
    }

    #[test]
    fn two_change_sets_on_different_keys_commute() {
        let mut a = ChangeSet::default();
        a.set("a", json!(1));
        let mut b = ChangeSet::default();
        b.set("b", json!(2));
        let mut one = Map::new();
        a.apply_to(&mut one);
        b.apply_to(&mut one);
        let mut two = Map::new();
        b.apply_to(&mut two);
        a.apply_to(&mut two);
        assert_eq!(one, two);
        assert_eq!(one.len(), 2);
    }
}
