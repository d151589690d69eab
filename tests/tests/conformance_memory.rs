//! The conformance suite on the memory backend.

use actix_typed_session::MemoryStore;

actix_typed_session_tests::conformance_tests!(MemoryStore::default());
actix_typed_session_tests::server_conformance_tests!(MemoryStore::default());
