//! The conformance suite on the Redis backend (a key prefix of its own per test).

use actix_typed_session_tests::redis;

actix_typed_session_tests::conformance_tests!(async redis::store());
actix_typed_session_tests::server_conformance_tests!(async redis::store());

/// The same suite over RESP3, where replies have other shapes (maps, sets).
mod resp3 {
    use actix_typed_session_tests::redis;

    actix_typed_session_tests::conformance_tests!(async redis::store_resp3());
    actix_typed_session_tests::server_conformance_tests!(async redis::store_resp3());
}
