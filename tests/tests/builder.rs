//! Building the middleware validates the whole configuration and fails with a typed error.

use std::time::Duration;

use actix_typed_session::{
    BuildError, CookieLifetime, CookieStore, Key, MemoryStore, SameSite, SessionConfig,
    SessionMiddleware, SessionMiddlewareBuilder, StatusCode,
};
use actix_typed_session_tests::client;
use serde_json::json;

fn base() -> SessionMiddlewareBuilder {
    SessionMiddleware::builder(Key::generate()).backend("cookie", CookieStore::default())
}

fn err(builder: SessionMiddlewareBuilder) -> BuildError {
    builder
        .build()
        .expect_err("the configuration must be refused")
}

#[test]
fn a_valid_configuration_builds() {
    let built = base()
        .backend("memory", MemoryStore::default())
        .session(
            "cart",
            SessionConfig::new()
                .backend("memory")
                .cookie_name("__Host-cart"),
        )
        .cookie_lifetime(CookieLifetime::Persistent)
        .idle_timeout(Duration::from_secs(1800))
        .absolute_timeout(Duration::from_secs(8 * 3600))
        .build();
    assert!(built.is_ok(), "{built:?}");
}

#[test]
fn keys_shorter_than_64_bytes_are_refused() {
    let short = SessionMiddleware::builder(Key::from(&[9u8; 63][..]))
        .backend("cookie", CookieStore::default());
    assert!(matches!(err(short), BuildError::KeyTooShort { len: 63 }));
    let short_previous = base().previous_keys([Key::from(&[1u8; 10][..])]);
    assert!(matches!(
        err(short_previous),
        BuildError::KeyTooShort { len: 10 }
    ));
    let exactly = SessionMiddleware::builder(Key::from(&[9u8; 64][..]))
        .backend("cookie", CookieStore::default())
        .build();
    assert!(exactly.is_ok());
}

#[test]
fn backends_must_exist_and_be_unique() {
    assert!(matches!(
        err(SessionMiddleware::builder(Key::generate())),
        BuildError::NoBackend
    ));
    assert!(matches!(
        err(base().backend("cookie", MemoryStore::default())),
        BuildError::DuplicateBackend { name } if name == "cookie"
    ));
    assert!(matches!(
        err(base().session("cart", SessionConfig::new().backend("redis"))),
        BuildError::UnknownBackend { session, backend } if session == "cart" && backend == "redis"
    ));
    assert!(matches!(
        err(base().default_backend("nope")),
        BuildError::UnknownBackend { backend, .. } if backend == "nope"
    ));
}

#[test]
fn cookie_names_must_be_tokens() {
    for bad in [
        "",
        "a b",
        "semi;colon",
        "eq=ual",
        "ünï",
        "quote\"d",
        "comma,",
    ] {
        let e = err(base().session(bad, SessionConfig::new()));
        assert!(
            matches!(e, BuildError::InvalidCookieName { .. }),
            "{bad:?}: {e}"
        );
        let e = err(base().session("ok", SessionConfig::new().cookie_name(bad)));
        assert!(
            matches!(e, BuildError::InvalidCookieName { .. }),
            "{bad:?}: {e}"
        );
    }
    assert!(matches!(
        err(base().default_session("no spaces")),
        BuildError::InvalidCookieName { .. }
    ));
}

#[test]
fn two_sessions_cannot_share_a_cookie() {
    let e = err(base()
        .session("a", SessionConfig::new().cookie_name("c"))
        .session("b", SessionConfig::new().cookie_name("c")));
    assert!(matches!(e, BuildError::DuplicateCookie { cookie, .. } if cookie == "c"));
}

#[actix_web::test]
async fn default_cookie_names_take_the_host_prefix_when_the_attributes_allow_it() {
    let cases = [
        // Opened at run time (not registered), and registered.
        (base(), "__Host-s"),
        (base().session("s", SessionConfig::new()), "__Host-s"),
        (base().cookie_secure(false), "s"),
        (base().cookie_path("/app"), "s"),
        (base().cookie_domain("example.com"), "s"),
        // An explicit name is kept as given, with or without a prefix.
        (
            base().session("s", SessionConfig::new().cookie_name("s")),
            "s",
        ),
        (
            base().session("s", SessionConfig::new().cookie_name("__Secure-s")),
            "__Secure-s",
        ),
    ];
    for (builder, expected) in cases {
        let c = client(builder.build().unwrap()).await;
        let reply = c.set("s", "k", json!(1)).await;
        let names: Vec<&str> = reply.set_cookies.iter().map(|c| c.name()).collect();
        assert_eq!(names, [expected]);
    }
    // The default session too, and clashes are found between resolved names.
    let e = err(base().session("b", SessionConfig::new().cookie_name("__Host-session")));
    assert!(
        matches!(&e, BuildError::DuplicateCookie { cookie, .. } if cookie == "__Host-session"),
        "{e}"
    );
}

#[test]
fn host_prefix_forces_secure_root_path_and_no_domain() {
    let host =
        |b: SessionMiddlewareBuilder| b.session("s", SessionConfig::new().cookie_name("__Host-s"));
    assert!(host(base()).build().is_ok());
    for (builder, needs) in [
        (host(base().cookie_secure(false)), "Secure"),
        (host(base().cookie_path("/app")), "Path=/"),
        (host(base().cookie_domain("example.com")), "Domain"),
    ] {
        let e = err(builder);
        assert!(
            matches!(&e, BuildError::CookiePrefix { prefix: "__Host-", requirement, .. } if requirement.contains(needs)),
            "{e}"
        );
    }
    // Browsers match the prefix case-insensitively, so do we.
    let lower = base()
        .cookie_secure(false)
        .session("s", SessionConfig::new().cookie_name("__host-s"));
    assert!(matches!(err(lower), BuildError::CookiePrefix { .. }));
    let secure = base()
        .cookie_secure(false)
        .session("s", SessionConfig::new().cookie_name("__Secure-s"));
    assert!(matches!(
        err(secure),
        BuildError::CookiePrefix {
            prefix: "__Secure-",
            ..
        }
    ));
}

#[test]
fn timeouts_must_be_sane() {
    let h = Duration::from_secs(3600);
    for builder in [
        base().idle_timeout(Duration::ZERO),
        base().absolute_timeout(Duration::ZERO),
        base().idle_timeout(Duration::from_millis(500)),
        base().idle_timeout(2 * h).absolute_timeout(h),
        base().idle_timeout(h).refresh_interval(h),
        base()
            .cookie_lifetime(CookieLifetime::Persistent)
            .idle_timeout(h)
            .absolute_timeout(Duration::from_secs(500 * 24 * 3600)),
    ] {
        assert!(matches!(err(builder), BuildError::Timeouts(_)));
    }
    // Absurd timeouts fail here instead of overflowing the clock on the first request.
    assert!(matches!(
        err(base().absolute_timeout(Duration::MAX)),
        BuildError::Timeouts(_)
    ));
    // The 400-day browser cap applies to a session made persistent on its own, too.
    let per_session = base()
        .absolute_timeout(Duration::from_secs(500 * 24 * 3600))
        .session(
            "s",
            SessionConfig::new().lifetime(CookieLifetime::Persistent),
        );
    assert!(matches!(err(per_session), BuildError::Timeouts(_)));
    let browser_only = base().absolute_timeout(Duration::from_secs(500 * 24 * 3600));
    assert!(
        browser_only.build().is_ok(),
        "browser-session cookies have no 400-day cap"
    );
    // A short idle timeout gets a matching default refresh interval.
    assert!(base().idle_timeout(Duration::from_secs(2)).build().is_ok());
}

#[test]
fn cookie_attributes_and_failure_status_are_checked() {
    assert!(matches!(
        err(base().cookie_path("app")),
        BuildError::InvalidCookieAttribute {
            attribute: "path",
            ..
        }
    ));
    assert!(matches!(
        err(base().cookie_path("/a;b")),
        BuildError::InvalidCookieAttribute {
            attribute: "path",
            ..
        }
    ));
    assert!(matches!(
        err(base().cookie_domain("exa mple.com")),
        BuildError::InvalidCookieAttribute {
            attribute: "domain",
            ..
        }
    ));
    assert!(matches!(
        err(base().cookie_secure(false).cookie_same_site(SameSite::None)),
        BuildError::InvalidCookieAttribute {
            attribute: "same_site",
            ..
        }
    ));
    assert!(base().cookie_same_site(SameSite::None).build().is_ok());
    assert!(matches!(
        err(base().failure_status(StatusCode::OK)),
        BuildError::FailureStatus(_)
    ));
    assert!(base()
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .is_ok());
}

#[test]
fn build_errors_explain_themselves() {
    let e = err(SessionMiddleware::builder(Key::from(&[0u8; 16][..]))
        .backend("cookie", CookieStore::default()));
    assert_eq!(
        e.to_string(),
        "session key is 16 bytes; at least 64 bytes of secret are required"
    );
}

#[test]
fn debug_output_shows_no_secret() {
    let key = Key::from(&[0x5Au8; 64][..]);
    let builder = SessionMiddleware::builder(key.clone()).backend("cookie", CookieStore::default());
    let shown_builder = format!("{builder:?}");
    let shown = format!("{shown_builder} {:?} {key:?}", builder.build().unwrap());
    assert!(!shown.contains("90, 90"), "raw key bytes in {shown}");
    assert!(!shown.contains("5a5a"), "hex key bytes in {shown}");
}

/// RFC 6265bis caps an attribute value at 1,024 bytes, and a path is visible ASCII without `;`
/// (commas, spaces and other bytes are refused too: they would be emitted raw in `Set-Cookie`).
#[test]
fn overlong_and_unprintable_paths_and_domains_are_refused() {
    let path_error = |path: &str| {
        matches!(
            err(base().cookie_path(path)),
            BuildError::InvalidCookieAttribute {
                attribute: "path",
                ..
            }
        )
    };
    let long_path = format!("/{}", "a".repeat(1100));
    assert_eq!(long_path.len(), 1101);
    assert!(path_error(&long_path));
    for bad in [
        "/caf\u{e9}",
        "/a b",
        "/a,b",
        "/a;b",
        "/a\tb",
        "/a\u{7f}b",
        "/a\nb",
    ] {
        assert!(path_error(bad), "{bad:?} was accepted");
    }
    // The longest path allowed, and printable punctuation, still build.
    let longest = format!("/{}", "a".repeat(1023));
    assert!(base().cookie_path(longest).build().is_ok());
    assert!(base().cookie_path("/app/v1.2/~me_-%20").build().is_ok());

    let long_domain = format!("{}example.com", "a1234567.".repeat(122));
    assert_eq!(long_domain.len(), 1109);
    assert!(matches!(
        err(base().cookie_domain(long_domain)),
        BuildError::InvalidCookieAttribute {
            attribute: "domain",
            ..
        }
    ));
    assert!(base().cookie_domain("example.com").build().is_ok());
}
