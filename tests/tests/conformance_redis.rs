//! The conformance suite on the Redis backend (a key prefix of its own per test).

use actix_typed_session_tests::redis;

actix_typed_session_tests::conformance_tests!(async redis::store());
actix_typed_session_tests::server_conformance_tests!(async redis::store());
