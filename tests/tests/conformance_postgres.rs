//! The conformance suite on the PostgreSQL backend (a schema of its own per test), with a pooled
//! connection per operation and with shared connections.

mod pooled {
    use actix_typed_session_tests::pg;

    actix_typed_session_tests::conformance_tests!(async pg::store());
    actix_typed_session_tests::server_conformance_tests!(async pg::store());
}

mod shared {
    use actix_typed_session_tests::pg;

    actix_typed_session_tests::conformance_tests!(async pg::shared_store());
    actix_typed_session_tests::server_conformance_tests!(async pg::shared_store());
}
