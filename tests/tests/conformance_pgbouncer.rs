//! The conformance suite on the PostgreSQL backend through PgBouncer in transaction pooling
//! mode (a fresh `pgbouncer` with 2 server connections per test, a pool of 4 client
//! connections), with unnamed statements.

use actix_typed_session_tests::pgbouncer;

actix_typed_session_tests::conformance_tests!(async pgbouncer::store());
actix_typed_session_tests::server_conformance_tests!(async pgbouncer::store());
