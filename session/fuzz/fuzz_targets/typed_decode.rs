//! Typed field decoding: whatever JSON a session holds, the generated accessors return a value
//! or a typed error; they never panic.
#![no_main]

use actix_typed_session::{__private, fuzz_support::detached_session};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Serialize, Deserialize, Default)]
struct LineItem {
    sku: String,
    quantity: u32,
    price_cents: Option<i64>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let session = detached_session(map);
    let keys: Vec<String> = session.entries().keys().cloned().collect();
    for key in keys.iter().map(String::as_str).chain(["absent"]) {
        let _ = __private::get::<Vec<LineItem>>(&session, key, Vec::new);
        let _ = __private::get::<Option<u64>>(&session, key, || None);
        let _ = __private::get::<String>(&session, key, String::new);
        let _ = __private::get::<(u8, bool)>(&session, key, || (0, false));
        let _ = __private::push::<String>(&session, key, "notice".into());
        let _ = __private::take::<LineItem>(&session, key);
    }
});
