//! The conformance suite on the cookie backend, sealed and signed.

mod sealed {
    use actix_typed_session::CookieStore;
    actix_typed_session_tests::conformance_tests!(CookieStore::default());
}

mod signed {
    use actix_typed_session::{CookieSecurity, CookieStore};
    actix_typed_session_tests::conformance_tests!(CookieStore::new(CookieSecurity::Signed));
}
