//! Payload parsing (the compact form and the JSON form of earlier builds) on arbitrary bytes, as
//! if they had opened: never a panic, and whatever parses reads back the same from the compact
//! form the save path writes.
#![no_main]

use actix_typed_session::fuzz_support::payload_round_trip;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(why) = payload_round_trip(data) {
        panic!("{why}");
    }
});
