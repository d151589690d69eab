//! The conformance suite on the PostgreSQL backend (a schema of its own per test).

use actix_typed_session_tests::pg;

actix_typed_session_tests::conformance_tests!(async pg::store());
actix_typed_session_tests::server_conformance_tests!(async pg::store());
