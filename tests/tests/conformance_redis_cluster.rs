//! The conformance suite on the Redis backend on a Redis Cluster of 3 masters (a key prefix of
//! its own per test; `bash tests/run.sh` starts the cluster and names it in
//! `REDIS_CLUSTER_URLS`).

use actix_typed_session_tests::redis_cluster;

actix_typed_session_tests::conformance_tests!(async redis_cluster::store());
actix_typed_session_tests::server_conformance_tests!(async redis_cluster::store());

/// The same suite over RESP3, where replies have other shapes (maps, sets).
mod resp3 {
    use actix_typed_session_tests::redis_cluster;

    actix_typed_session_tests::conformance_tests!(async redis_cluster::store_resp3());
    actix_typed_session_tests::server_conformance_tests!(async redis_cluster::store_resp3());
}
