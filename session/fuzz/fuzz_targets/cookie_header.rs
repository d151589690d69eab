//! The `Cookie` header lookup: any bytes, never a panic; every value found really is a
//! `name=value` pair of the header, within the size limit.
#![no_main]

use actix_typed_session::fuzz_support::cookie_values;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (name, header) = match data.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("session".to_owned(), data),
    };
    for value in cookie_values(header, &name) {
        assert!(name.len() + 1 + value.len() <= 4096);
        assert!(header
            .windows(value.len().max(1))
            .any(|w| value.is_empty() || w == value.as_bytes()));
    }
});
