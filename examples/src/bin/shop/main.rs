//! A small shop to click through: a cart on a server-side store, preferences in a sealed cookie,
//! login (renews the session id and ties the session to the user), logout (purges it), flash
//! messages after every action, a page that shows what each session holds and where, and a
//! "Your sessions" page that lists the user's sessions (one per browser that logged in) and ends
//! them. The same operations are a JSON API.
//!
//! ```text
//! cargo run -p examples --bin shop                  # then open http://localhost:8080
//! PORT=9000 cargo run -p examples --bin shop        # another port (ADDR sets the address)
//! DATABASE_URL=postgres://postgres@127.0.0.1/test cargo run -p examples --bin shop
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p examples --bin shop
//! ```
//!
//! With no `DATABASE_URL` or `REDIS_URL`, the cart lives in process memory. `DATABASE_SCHEMA`
//! names the PostgreSQL schema of the `sessions` table (default `public`; created if missing),
//! `REDIS_PREFIX` the Redis key prefix (default `session:`). `SESSION_KEY` (64 or more
//! characters) keeps sessions valid across restarts.
//!
//! The JSON API, for scripts (`-c jar -b jar` keeps the cookies between calls):
//!
//! ```text
//! curl -c jar -b jar http://localhost:8080/api/state
//! curl -c jar -b jar -H 'content-type: application/json' -d '{"sku":"tea"}' http://localhost:8080/api/cart
//! curl -c jar -b jar -X DELETE http://localhost:8080/api/cart/tea
//! curl -c jar -b jar -H 'content-type: application/json' -d '{"user":"ann"}' http://localhost:8080/api/login
//! curl -c jar -b jar -X PUT -H 'content-type: application/json' -d '{"theme":"dark"}' http://localhost:8080/api/prefs
//! curl -c jar -b jar http://localhost:8080/api/storage       # what each session holds, where
//! curl -c jar -b jar http://localhost:8080/api/sessions      # the user's sessions, with handles
//! curl -c jar -b jar -X POST http://localhost:8080/api/sessions/HANDLE/end
//! curl -c jar -b jar -X POST http://localhost:8080/api/sessions/end-others
//! curl -c jar -b jar -X POST http://localhost:8080/api/logout
//! ```
//!
//! `GET /api/sessions` answers `{"user": .., "sessions": [{"handle", "created_at", "last_seen",
//! "expires_at", "current"}]}` (times in Unix seconds, most recently seen first); a handle names a
//! session without revealing its id. `POST /api/sessions/{handle}/end` answers
//! `{"ended": handle, "current": bool}` (404 when there is no such session; ending the current
//! one logs this client out), `POST /api/sessions/end-others` answers `{"ended": count}`. All
//! three answer 401 to a guest.
//! (curl sends `Secure` cookies to `http://localhost` too.)

mod api;
mod model;
mod pages;

use actix_typed_session::{
    CookieLifetime, CookieStore, SessionConfig, SessionError, SessionMiddleware, Sessions,
};
use actix_web::{web, App, HttpRequest, HttpServer};
use serde::Serialize;

use crate::model::{Cart, Flash, Prefs};

/// What the pages need to know about the running configuration.
pub(crate) struct ShopInfo {
    /// Which store the `datastore` backend is.
    pub(crate) datastore: &'static str,
}

/// What one session holds and where: for the "What the sessions hold" page (`/storage`) and
/// `GET /api/storage`.
#[derive(Serialize)]
pub(crate) struct SessionReport {
    pub(crate) name: &'static str,
    pub(crate) backend: &'static str,
    pub(crate) stored_in: String,
    pub(crate) cookie_holds: &'static str,
    pub(crate) cookie_lifetime: &'static str,
    /// The size of this session's cookie as the browser sent it (`name=value`), if it did.
    pub(crate) cookie_bytes: Option<usize>,
    pub(crate) entries: serde_json::Map<String, serde_json::Value>,
}

pub(crate) async fn session_reports(
    req: &HttpRequest,
    sessions: &Sessions,
    info: &ShopInfo,
) -> Result<Vec<SessionReport>, SessionError> {
    let described = [
        (
            "cart",
            "datastore",
            info.datastore.to_owned(),
            "an opaque 43-character random id; the store knows it only by its hash",
            "browser session (no Max-Age: gone when the browser closes)",
        ),
        (
            "prefs",
            "cookie",
            "the cookie itself".to_owned(),
            "the whole session, sealed with AES-256-GCM (unreadable and tamper-proof)",
            "persistent (Max-Age and Expires)",
        ),
        (
            "flash",
            "cookie",
            "the cookie itself".to_owned(),
            "the whole session, sealed with AES-256-GCM; gone once the messages are shown",
            "browser session",
        ),
    ];
    let mut reports = Vec::new();
    for (name, backend, stored_in, cookie_holds, cookie_lifetime) in described {
        let session = sessions.open(name).await?;
        let entries = session.entries().clone();
        reports.push(SessionReport {
            name,
            backend,
            stored_in,
            cookie_holds,
            cookie_lifetime,
            cookie_bytes: req
                .cookie(name)
                .map(|c| c.name().len() + 1 + c.value().len()),
            entries,
        });
    }
    Ok(reports)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    examples::init_tracing();
    let datastore = examples::datastore_from_env().await?;
    let sessions = SessionMiddleware::builder(examples::session_key())
        // Backends registered by name; each session type names the one it lives on.
        .backend("cookie", CookieStore::default())
        .backend("datastore", datastore.backend)
        // Preferences outlive the browser; the cart and flash cookies do not.
        .session(
            "prefs",
            SessionConfig::new().lifetime(CookieLifetime::Persistent),
        )
        .register::<Cart>()
        .register::<Prefs>()
        .register::<Flash>()
        // "Your sessions" shows where each login came from. An IP address is personal data:
        // off by default; here the shop's visitors are on this machine (behind a proxy it would
        // be the proxy's address: see the option's docs).
        .record_client_address(true)
        .build()
        .map_err(std::io::Error::other)?;
    let info = web::Data::new(ShopInfo {
        datastore: datastore.description,
    });

    let (addr, port) = examples::listen_addr(8080)?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .app_data(info.clone())
            .configure(pages::routes)
            .service(web::scope("/api").configure(api::routes))
    })
    .bind((addr.as_str(), port))?;
    println!("cart datastore: {}", datastore.description);
    for bound in server.addrs() {
        // Browsers accept `Secure` cookies from http://localhost (a secure context).
        println!(
            "shop listening on {} (bound to {bound})",
            examples::browser_url(bound)
        );
    }
    server.run().await
}
