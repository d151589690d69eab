//! Cookie decoding (base64, open/verify, payload parsing), sealed and signed: arbitrary input
//! never panics and never opens; a sealed cookie with any bytes changed never opens either.
#![no_main]

use std::sync::OnceLock;

use actix_typed_session::{fuzz_support::CookieCodec, CookieSecurity};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

fn codecs() -> &'static [(CookieCodec, String); 2] {
    static CODECS: OnceLock<[(CookieCodec, String); 2]> = OnceLock::new();
    CODECS.get_or_init(|| {
        let mut data = Map::new();
        data.insert("user".into(), json!("ann"));
        data.insert("roles".into(), Value::Array(vec![json!("admin")]));
        [CookieSecurity::Sealed, CookieSecurity::Signed].map(|security| {
            let codec = CookieCodec::new(security, 7);
            let valid = codec.seal("session", &data);
            (codec, valid)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    for (codec, valid) in codecs() {
        // Arbitrary text is never an authentic cookie.
        assert!(codec.open("session", &input).is_none() || input == *valid);
        // The valid cookie with fuzzer-chosen edits: position and replacement bytes.
        if let [pos_hi, pos_lo, rest @ ..] = data {
            let pos = usize::from(u16::from_be_bytes([*pos_hi, *pos_lo])) % valid.len();
            let mut edited = valid.clone().into_bytes();
            for (i, b) in rest.iter().take(8).enumerate() {
                if let Some(slot) = edited.get_mut(pos + i) {
                    *slot = *b;
                }
            }
            if let Ok(edited) = String::from_utf8(edited) {
                if edited != *valid {
                    assert!(
                        codec.open("session", &edited).is_none(),
                        "an edited cookie opened"
                    );
                }
            }
        }
    }
});
