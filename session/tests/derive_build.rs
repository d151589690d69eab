//! Misconfigured typed sessions fail `SessionMiddlewareBuilder::build`, not a request.

use actix_typed_session::{
    BuildError, CookieStore, Key, MemoryStore, SessionConfig, SessionData, SessionMiddleware,
    SessionMiddlewareBuilder,
};

#[derive(SessionData)]
#[session(name = "cart", backend = "datastore")]
struct Cart {
    items: Vec<String>,
    #[session(rename = "uid")]
    user_id: Option<u64>,
}

/// Shares `cart` with `Cart`, storing `uid` as the same type (`Option<u64>` stores a `u64`).
#[derive(SessionData)]
#[session(name = "cart")]
struct CartOwner {
    uid: u64,
}

/// Shares `cart` with `Cart`, but `items` is a number here.
#[derive(SessionData)]
#[session(name = "cart")]
struct CartCount {
    items: u32,
}

/// Puts `cart` on another backend.
#[derive(SessionData)]
#[session(name = "cart", backend = "memory")]
struct CartInMemory {
    coupon: Option<String>,
}

/// Typed access to the middleware's default session.
#[derive(SessionData)]
#[session(name = "session")]
struct Visits {
    count: u32,
}

/// `build()`'s error.
trait BuildErr {
    fn build_err(self) -> BuildError;
}

impl BuildErr for SessionMiddlewareBuilder {
    fn build_err(self) -> BuildError {
        match self.build() {
            Ok(_) => panic!("expected a build error"),
            Err(err) => err,
        }
    }
}

fn builder() -> SessionMiddlewareBuilder {
    SessionMiddleware::builder(Key::generate())
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
}

#[test]
fn a_missing_backend_names_the_type_the_backend_and_the_registered_backends() {
    let err = builder().register::<Cart>().build_err();
    let BuildError::TypedUnknownBackend {
        data,
        session,
        backend,
        available,
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert!(data.ends_with("Cart"), "{data}");
    assert_eq!((session.as_str(), backend.as_str()), ("cart", "datastore"));
    assert_eq!(available, &["cookie", "memory"]);
    let message = err.to_string();
    assert!(
        message.contains("Cart")
            && message.contains("`datastore`")
            && message.contains("cookie, memory"),
        "{message}"
    );
}

#[test]
fn the_named_backend_makes_the_type_valid() {
    let built = builder()
        .backend("datastore", MemoryStore::default())
        .register::<Cart>()
        .register::<Cart>() // twice is harmless
        .register::<CartOwner>()
        .build();
    assert!(built.is_ok(), "{:?}", built.err());
}

#[test]
fn two_types_storing_different_types_under_one_key_fail() {
    let err = builder()
        .backend("datastore", MemoryStore::default())
        .register::<Cart>()
        .register::<CartCount>()
        .build_err();
    let BuildError::TypedKeyConflict {
        session,
        key,
        first,
        first_type,
        second,
        second_type,
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert_eq!((session.as_str(), key.as_str()), ("cart", "items"));
    assert!(first.ends_with("::Cart") && second.ends_with("::CartCount"));
    assert!(first_type.contains("Vec") && *second_type == "u32");
    assert!(err.to_string().contains("rename"), "{err}");
}

#[test]
fn two_types_putting_one_session_on_two_backends_fail() {
    let err = builder()
        .backend("datastore", MemoryStore::default())
        .register::<Cart>()
        .register::<CartInMemory>()
        .build_err();
    let BuildError::TypedBackendConflict {
        data,
        session,
        requested,
        configured,
        by,
    } = &err
    else {
        panic!("unexpected {err:?}");
    };
    assert!(data.ends_with("CartInMemory"));
    assert_eq!(session, "cart");
    assert_eq!(
        (requested.as_str(), configured.as_str()),
        ("memory", "datastore")
    );
    assert!(by.contains("Cart"), "{by}");
}

#[test]
fn a_session_config_on_another_backend_conflicts() {
    let err = builder()
        .session("cart", SessionConfig::new().backend("cookie"))
        .register::<CartInMemory>()
        .build_err();
    assert!(
        matches!(&err, BuildError::TypedBackendConflict { by, .. } if by.contains("SessionConfig")),
        "{err:?}"
    );
}

#[test]
fn a_session_config_without_a_backend_takes_the_types_backend() {
    let built = builder()
        .session("cart", SessionConfig::new().cookie_name("__Host-cart"))
        .register::<CartInMemory>()
        .build();
    assert!(built.is_ok(), "{:?}", built.err());
}

#[test]
fn a_type_on_the_default_session_is_not_a_second_session() {
    let built = builder().register::<Visits>().build();
    assert!(built.is_ok(), "{:?}", built.err());
}

#[test]
fn a_typed_session_whose_cookie_is_taken_fails() {
    // The typed session "cart" gets the cookie `__Host-cart` (the default attributes allow the
    // prefix); another session asks for that very name.
    let err = builder()
        .session("other", SessionConfig::new().cookie_name("__Host-cart"))
        .register::<CartInMemory>()
        .build_err();
    assert!(matches!(err, BuildError::DuplicateCookie { .. }), "{err:?}");
}
