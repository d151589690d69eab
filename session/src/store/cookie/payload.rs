//! Reading the payload an opened cookie carries.
//!
//! The save path writes the compact form: a tag byte ([`COMPACT`], with [`HAS_VALID_FROM`] and
//! [`HAS_OWNER`] when those fields follow), the creation and expiry times in unix seconds as
//! variable-length integers (LEB128: seven bits a byte, lowest first), the revocation cut-off
//! in unix milliseconds, the owner as a length and its UTF-8 bytes, and last the session map as
//! JSON. A counter session's payload (`{"n":0}`, times of today) is 18 bytes instead of the 43
//! of the JSON form.
//!
//! Earlier builds wrote JSON, `{"c":…,"e":…,"d":{…}}` then `"o"` and `"v"` when set (and cannot
//! read the compact form: instances of such a build, beside newer ones during a rolling upgrade
//! or after a rollback, treat compact cookies as invalid and start fresh sessions). Their
//! cookies still open: a JSON payload starts with `{`, never with a byte that has its high bit
//! set as the tag has. [`parse`] reads that exact JSON shape directly (serde_json only for the
//! session map and the owner string) and hands any other JSON to serde_json's general
//! deserializer, so a payload in another field order or spacing still opens, with the same
//! result.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::session::nests_deeper_than;

/// The tag byte of a compact payload, before its flags.
pub(crate) const COMPACT: u8 = 0x80;
/// Flag: the revocation cut-off follows the times.
pub(crate) const HAS_VALID_FROM: u8 = 0x01;
/// Flag: the owner follows.
pub(crate) const HAS_OWNER: u8 = 0x02;

/// A cookie's payload.
#[derive(Debug, Deserialize, PartialEq)]
pub(crate) struct PayloadOwned {
    /// Creation time, unix seconds.
    pub(crate) c: u64,
    /// Expiry, unix seconds.
    pub(crate) e: u64,
    /// The session's entries.
    pub(crate) d: Map<String, Value>,
    /// The owner, if the session is tied to one.
    #[serde(default)]
    pub(crate) o: Option<String>,
    /// Revocations before this time (unix milliseconds) spare the cookie.
    #[serde(default)]
    pub(crate) v: Option<u64>,
}

/// Parses a payload; `None` if it is not one.
pub(crate) fn parse(plaintext: &[u8]) -> Option<PayloadOwned> {
    match plaintext.first() {
        Some(&tag) if tag & COMPACT != 0 => compact(tag, &plaintext[1..]),
        _ => match as_written(plaintext) {
            Some(payload) => Some(payload),
            None => serde_json::from_slice(plaintext).ok(),
        },
    }
}

/// Writes `n` as a variable-length integer (LEB128) at the start of `out` (which has room for
/// ten bytes) and returns how many bytes it took.
pub(crate) fn put_varint(out: &mut [u8], mut n: u64) -> usize {
    let mut len = 0;
    while n >= 0x80 {
        out[len] = (n & 0x7f) as u8 | 0x80;
        n >>= 7;
        len += 1;
    }
    out[len] = n as u8;
    len + 1
}

/// A variable-length integer at the start of `input` (at most ten bytes, no bits beyond 64),
/// and what follows it.
fn varint(input: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        // The tenth byte holds the 64th bit only.
        if i == 9 && bits > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &input[i + 1..]));
        }
    }
    None
}

/// A compact payload after its tag byte.
fn compact(tag: u8, input: &[u8]) -> Option<PayloadOwned> {
    if tag & !(COMPACT | HAS_VALID_FROM | HAS_OWNER) != 0 {
        return None;
    }
    let (c, rest) = varint(input)?;
    let (e, mut rest) = varint(rest)?;
    let mut v = None;
    if tag & HAS_VALID_FROM != 0 {
        let (ms, after) = varint(rest)?;
        v = Some(ms);
        rest = after;
    }
    let mut o = None;
    if tag & HAS_OWNER != 0 {
        let (len, after) = varint(rest)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= after.len())?;
        let (owner, after) = after.split_at(len);
        o = Some(std::str::from_utf8(owner).ok()?.to_owned());
        rest = after;
    }
    let (d, rest) = json::<Map<String, Value>>(rest)?;
    // Held to the JSON form's limit, so that a session reads the same in either form.
    if !rest.is_empty() || d.values().any(|v| nests_deeper_than(v, MAX_INNER_DEPTH)) {
        return None;
    }
    Some(PayloadOwned { c, e, d, o, v })
}

/// The deepest nesting of containers inside `d` that serde_json's general deserializer accepts:
/// its limit is 127 nested containers, of which the payload object and `d` take two. Parsed on
/// its own, `d` would be allowed one level more.
const MAX_INNER_DEPTH: usize = 125;

/// The payload, if it has exactly the shape the save path writes.
fn as_written(input: &[u8]) -> Option<PayloadOwned> {
    let rest = input.strip_prefix(b"{\"c\":")?;
    let (c, rest) = integer(rest)?;
    let rest = rest.strip_prefix(b",\"e\":")?;
    let (e, rest) = integer(rest)?;
    let rest = rest.strip_prefix(b",\"d\":")?;
    let (d, mut rest) = json::<Map<String, Value>>(rest)?;
    if d.values().any(|v| nests_deeper_than(v, MAX_INNER_DEPTH)) {
        return None;
    }
    let mut o = None;
    if let Some(after) = rest.strip_prefix(b",\"o\":") {
        let (owner, after) = json::<String>(after)?;
        o = Some(owner);
        rest = after;
    }
    let mut v = None;
    if let Some(after) = rest.strip_prefix(b",\"v\":") {
        let (ms, after) = integer(after)?;
        v = Some(ms);
        rest = after;
    }
    (rest == b"}").then_some(PayloadOwned { c, e, d, o, v })
}

/// A JSON unsigned integer as serde_json writes one (no sign, no leading zero, no fraction),
/// and what follows it.
fn integer(input: &[u8]) -> Option<(u64, &[u8])> {
    let digits = input.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && input[0] == b'0') {
        return None;
    }
    let (number, rest) = input.split_at(digits);
    // A fraction or exponent would make it another number: leave it to serde_json.
    if matches!(rest.first(), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let value = number.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((value, rest))
}

/// One JSON value at the start of `input` (objects and strings end themselves), and what
/// follows it.
fn json<'a, T: Deserialize<'a>>(input: &'a [u8]) -> Option<(T, &'a [u8])> {
    let mut values = serde_json::Deserializer::from_slice(input).into_iter::<T>();
    let value = values.next()?.ok()?;
    Some((value, &input[values.byte_offset()..]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn general(input: &[u8]) -> Option<PayloadOwned> {
        serde_json::from_slice(input).ok()
    }

    #[test]
    fn the_written_shape_parses_as_the_general_deserializer_does() {
        let data = json!({"n": 5, "s": "a\"}\\", "nested": {"x": [1, 2, {"y": null}]}});
        let Value::Object(d) = data else {
            unreachable!()
        };
        let cases = [
            json!({"c": 1_700_000_000u64, "e": 1_700_003_600u64, "d": d}),
            json!({"c": 0, "e": u64::MAX, "d": {}}),
            json!({"c": 1, "e": 2, "d": d, "o": "ann \"the\" owner"}),
            json!({"c": 1, "e": 2, "d": {}, "v": 1_700_000_000_123u64}),
            json!({"c": 1, "e": 2, "d": d, "o": "ann", "v": 3}),
        ];
        for case in cases {
            // serde_json's Value keeps keys sorted; write them in the payload's own order.
            let mut text = format!(
                "{{\"c\":{},\"e\":{},\"d\":{}",
                case["c"], case["e"], case["d"]
            );
            if let Some(o) = case.get("o") {
                text.push_str(&format!(",\"o\":{o}"));
            }
            if let Some(v) = case.get("v") {
                text.push_str(&format!(",\"v\":{v}"));
            }
            text.push('}');
            let fast = as_written(text.as_bytes());
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, general(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn what_the_save_path_writes_takes_the_direct_path() {
        let now = std::time::SystemTime::now();
        let Value::Object(d) = json!({"n": 1, "cart": ["a", "b"], "note": "x\ny"}) else {
            unreachable!()
        };
        for (owner, valid_from) in [
            (None, None),
            (Some("ann"), None),
            (None, Some(now)),
            (Some("ann"), Some(now)),
        ] {
            let payload = crate::CookieStore::payload(&d, now, now, owner, valid_from);
            let text = serde_json::to_vec(&payload).unwrap();
            let fast = as_written(&text);
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(&text));
            assert_eq!(fast, general(&text));
        }
    }

    #[test]
    fn other_shapes_fall_back_to_the_general_deserializer() {
        for text in [
            r#"{"e":2,"c":1,"d":{"n":1}}"#,
            r#"{ "c": 1, "e": 2, "d": {} }"#,
            r#"{"c":1,"e":2,"d":{},"v":3,"o":"ann"}"#,
            r#"{"c":1.0,"e":2,"d":{}}"#,
            r#"{"c":1e3,"e":2,"d":{}}"#,
            r#"{"c":1,"e":2,"d":{},"x":true}"#,
        ] {
            assert!(as_written(text.as_bytes()).is_none(), "{text}");
            assert_eq!(parse(text.as_bytes()), general(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn nesting_is_limited_as_by_the_general_deserializer() {
        for depth in [10, 124, 125, 126, 127, 130] {
            let text = format!(
                r#"{{"c":1,"e":2,"d":{{"x":{}{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert_eq!(
                parse(text.as_bytes()),
                general(text.as_bytes()),
                "depth {depth}"
            );
        }
        let shallow = format!(
            r#"{{"c":1,"e":2,"d":{{"x":{}{}}}}}"#,
            "[".repeat(10),
            "]".repeat(10)
        );
        assert!(as_written(shallow.as_bytes()).is_some());
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for text in [
            "",
            "{",
            r#"{"c":01,"e":2,"d":{}}"#,
            r#"{"c":-1,"e":2,"d":{}}"#,
            r#"{"c":18446744073709551616,"e":2,"d":{}}"#,
            r#"{"c":1,"e":2,"d":[]}"#,
            r#"{"c":1,"e":2,"d":{}"#,
            r#"{"c":1,"e":2,"d":{}}}"#,
            r#"{"c":1,"e":2,"d":{},"o":5}"#,
            r#"{"c":1,"e":2,"d":{"n":1,}}"#,
            r#"{"c":1,"e":2}"#,
        ] {
            assert_eq!(parse(text.as_bytes()), None, "{text}");
            assert_eq!(general(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn varints_round_trip_and_malformed_ones_are_refused() {
        for n in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            1_764_184_000,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = [0u8; 11];
            let len = put_varint(&mut out, n);
            assert_eq!(
                len,
                (64 - n.leading_zeros() as usize).div_ceil(7).max(1),
                "{n}"
            );
            out[len] = b'x';
            assert_eq!(varint(&out[..=len]), Some((n, &b"x"[..])), "{n}");
        }
        // Unterminated, longer than ten bytes, or beyond 64 bits.
        assert_eq!(varint(&[0x80, 0x80]), None);
        assert_eq!(varint(&[0xff; 11]), None);
        assert_eq!(
            varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(varint(&[]), None);
    }

    #[test]
    fn malformed_compact_payloads_are_refused() {
        let mut good = vec![COMPACT | HAS_OWNER, 1, 2, 3];
        good.extend_from_slice(b"ann{\"n\":1}");
        let parsed = parse(&good).expect("well formed");
        assert_eq!(parsed.o.as_deref(), Some("ann"));
        assert_eq!(parsed.d["n"], 1);
        let mut cases: Vec<Vec<u8>> = vec![
            vec![COMPACT],
            vec![COMPACT | 0x04, 1, 2, b'{', b'}'],
            vec![COMPACT, 1, 2, b'[', b']'],
            vec![COMPACT, 1, 2, b'{', b'}', b' '],
            vec![COMPACT, 1, 2, b'{'],
            vec![COMPACT | HAS_OWNER, 1, 2, 9, b'a', b'{', b'}'],
            vec![COMPACT | HAS_OWNER, 1, 2, 1, 0xff, b'{', b'}'],
            vec![COMPACT | HAS_VALID_FROM, 1, 2, b'{', b'}'],
        ];
        let nested = |depth: usize| {
            let map = format!("{{\"x\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            [&[COMPACT, 1, 2][..], map.as_bytes()].concat()
        };
        // As deep as the JSON form allows, and one level more.
        assert!(parse(&nested(125)).is_some());
        cases.push(nested(126));
        for case in cases {
            assert_eq!(parse(&case), None, "{case:?}");
        }
    }

    #[test]
    fn integers_are_read_exactly() {
        assert_eq!(integer(b"0,"), Some((0, &b","[..])));
        assert_eq!(
            integer(b"18446744073709551615}"),
            Some((u64::MAX, &b"}"[..]))
        );
        assert_eq!(integer(b"18446744073709551616"), None);
        assert_eq!(integer(b"007"), None);
        assert_eq!(integer(b"x"), None);
    }
}
