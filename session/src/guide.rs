//! Guides that do not fit on one item's page. Their code examples are compiled and run as
//! doctests, like every other example in this crate.

/// Moving an application from `actix-session` to this crate.
pub mod migrating_from_actix_session {
    // Its examples use the Redis backend: without the feature, point to the file instead of
    // failing the doctests.
    #![cfg_attr(feature = "redis", doc = include_str!("../docs/migrating-from-actix-session.md"))]
    #![cfg_attr(
        not(feature = "redis"),
        doc = "Build the docs with feature `redis` to read this guide here; it is also in \
               `session/docs/migrating-from-actix-session.md` in the repository."
    )]
}
