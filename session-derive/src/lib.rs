//! The `#[derive(SessionData)]` macro of `actix-typed-session`.
//!
//! This crate is an implementation detail: depend on `actix-typed-session`, which re-exports the
//! derive. The macro itself lands with the typed-session work; this crate is its home.
#![forbid(unsafe_code)]
