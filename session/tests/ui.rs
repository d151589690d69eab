//! Compile errors of `#[derive(SessionData)]`: one case per diagnostic in `tests/ui/`, each with
//! the expected compiler output in its `.stderr` (regenerate with `TRYBUILD=overwrite`, then read
//! every changed message).

#[test]
fn derive_diagnostics() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// A built-in backend named while its feature is off. Runs only with that feature off:
/// `cargo test -p actix-typed-session --no-default-features --features derive,cookie --test ui`.
#[cfg(all(feature = "derive", not(feature = "memory")))]
#[test]
fn backend_feature_diagnostics() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui-features/*.rs");
}
