//! Guides that do not fit on one item's page. Their code examples are compiled and run as
//! doctests, like every other example in this crate.

/// Moving an application from `actix-session` to this crate.
pub mod migrating_from_actix_session {
    #![doc = include_str!("../docs/migrating-from-actix-session.md")]
}
