//! Sessions in route guards, on any backend: a route guarded on "logged in" behind
//! `guard::Preload`, and the one store read such a request costs.

use std::sync::Arc;

use actix_typed_session::{guard, Backend, Key, Session, SessionMiddleware, Sessions};
use actix_web::{http::StatusCode, web, App, HttpResponse};

use crate::{Client, Counts};

async fn login(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("user", "ann")?;
    // Owned, so that a cookie session whose store checks revocations costs a store read.
    session.set_owner("ann")?;
    Ok(HttpResponse::Ok().finish())
}

async fn logout(session: Session) -> HttpResponse {
    session.purge();
    HttpResponse::Ok().finish()
}

/// Behind the guard: the user, read through the default session's extractor and through
/// `Sessions` (both the session the guard read).
async fn account(session: Session, sessions: Sessions) -> actix_web::Result<HttpResponse> {
    let user: String = session.get("user")?.unwrap_or_default();
    let again: Option<String> = sessions.open("session").await?.get("user")?;
    assert_eq!(again.as_deref(), Some(user.as_str()));
    Ok(HttpResponse::Ok().body(user))
}

/// A middleware whose default session lives on `backend`.
pub fn middleware(backend: impl Into<Backend>) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[9u8; 64][..]))
        .backend("under_test", backend)
        .build()
        .expect("valid test configuration")
}

/// A route guarded on "logged in" (`/me`, under `Preload`, with a 401 fallback) matches only a
/// logged-in session, and a request through the guard and the handler reads the store once.
/// `counts` counts the operations of the store behind `mw`; `io`: whether loading the session
/// reads that store (then a guard without `Preload`, on `/unloaded`, cannot read the session;
/// otherwise it can, and no request reads the store).
pub async fn a_guarded_route_matches_a_logged_in_session_with_one_load(
    mw: SessionMiddleware,
    counts: Arc<Counts>,
    io: bool,
) {
    let app = actix_web::test::init_service(
        App::new()
            .wrap(mw)
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route(
                "/unloaded",
                web::get()
                    .guard(guard::has_key("session", "user"))
                    .to(HttpResponse::Ok),
            )
            .service(
                web::scope("/me")
                    .wrap(guard::Preload::default_session())
                    .route(
                        "",
                        web::get()
                            .guard(guard::has_key("session", "user"))
                            .to(account),
                    )
                    .route("", web::get().to(HttpResponse::Unauthorized)),
            ),
    )
    .await;
    let c = Client::new(app);
    let anonymous = c.get("/me").await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "the guard let a visitor in"
    );
    assert_eq!(counts.loads(), 0, "no cookie, nothing to load");

    assert_eq!(c.post("/login").await.status, StatusCode::OK);
    let before = counts.loads();
    let me = c.get("/me").await;
    assert_eq!((me.status, me.body.as_str()), (StatusCode::OK, "ann"));
    let expected = usize::from(io);
    assert_eq!(
        counts.loads() - before,
        expected,
        "guard and handler share one load"
    );

    // Without `Preload`, a guard can read only what opens without I/O.
    let before = counts.loads();
    let unloaded = c.get("/unloaded").await;
    let expected = if io {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    assert_eq!(unloaded.status, expected);
    assert_eq!(counts.loads(), before, "a guard never loads by itself");

    assert_eq!(c.post("/logout").await.status, StatusCode::OK);
    let stale = c.get("/me").await;
    assert_eq!(
        stale.status,
        StatusCode::UNAUTHORIZED,
        "logged out, still let in"
    );
}
