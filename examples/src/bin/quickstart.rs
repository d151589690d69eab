//! Quick start: two named sessions on two backends, login/logout, and the cookie size limit.
//!
//! ```text
//! cargo run -p examples --bin quickstart            # then open http://localhost:8080
//! PORT=9000 cargo run -p examples --bin quickstart  # another port (ADDR sets the address)
//! ```
//! With curl: `curl -c jar -b jar -X POST 'http://localhost:8080/cart?item=book'`.

use actix_typed_session::{
    CookieStore, Key, MemoryStore, SessionConfig, SessionError, SessionMiddleware, Sessions,
};
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

/// `prefs` lives in an encrypted cookie, `cart` in server memory (the cookie holds only an id).
async fn index(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    let prefs = sessions.open("prefs").await?;
    let cart = sessions.open("cart").await?;
    let visits: u32 = prefs.get("visits")?.unwrap_or(0) + 1;
    prefs.insert("visits", visits)?;
    let user: Option<String> = cart.get("user")?;
    let items: Vec<String> = cart.get("items")?.unwrap_or_default();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "visit #{visits} (counted in the encrypted `prefs` cookie)\n\
         user: {}\n\
         cart: {items:?} (kept in server memory; its cookie holds only an opaque id)\n\n\
         POST /cart?item=book   add an item\n\
         POST /login?user=ann   log in (renews the session id)\n\
         POST /logout           log out (purges both sessions)\n\
         POST /notes?bytes=5000 try to keep 5000 bytes in the cookie session\n",
            user.as_deref().unwrap_or("(anonymous)")
        )))
}

#[derive(Deserialize)]
struct Item {
    item: String,
}

async fn add_to_cart(sessions: Sessions, q: web::Query<Item>) -> actix_web::Result<HttpResponse> {
    let cart = sessions.open("cart").await?;
    let mut items: Vec<String> = cart.get("items")?.unwrap_or_default();
    items.push(q.into_inner().item);
    cart.insert("items", &items)?;
    Ok(HttpResponse::Ok().json(items))
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(sessions: Sessions, q: web::Query<Login>) -> actix_web::Result<HttpResponse> {
    let cart = sessions.open("cart").await?;
    cart.insert("user", &q.user)?;
    // New privileges, new id: a session id planted before login is worthless afterwards.
    cart.renew();
    Ok(HttpResponse::Ok().body(format!("welcome, {}\n", q.user)))
}

async fn logout(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    sessions.open("cart").await?.purge();
    sessions.open("prefs").await?.purge();
    Ok(HttpResponse::Ok().body("logged out: both sessions deleted, both cookies removed\n"))
}

#[derive(Deserialize)]
struct Notes {
    bytes: usize,
}

async fn notes(sessions: Sessions, q: web::Query<Notes>) -> actix_web::Result<HttpResponse> {
    let prefs = sessions.open("prefs").await?;
    match prefs.insert("notes", "n".repeat(q.bytes)) {
        Ok(()) => Ok(HttpResponse::Ok().body(format!("kept {} bytes in the cookie\n", q.bytes))),
        // Instead of a cookie the browser would silently drop, a clear error; nothing is lost.
        Err(err @ SessionError::TooLarge { .. }) => {
            Ok(HttpResponse::PayloadTooLarge().body(format!("{err}\n")))
        }
        Err(other) => Err(other.into()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        // Colours only on a terminal: a log redirected to a file stays plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_typed_session=debug".into()),
        )
        .init();

    // A real application loads 64+ secret bytes from its secret store, so that sessions survive
    // restarts. Here a fresh key is generated at every start.
    let key = Key::generate();
    let sessions = SessionMiddleware::builder(key)
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
        .session("prefs", SessionConfig::new().backend("cookie"))
        .session("cart", SessionConfig::new().backend("memory"))
        .build()
        .expect("valid session configuration");

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().expect("PORT must be a port number"),
        Err(_) => 8080,
    };
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .route("/", web::get().to(index))
            .route("/cart", web::post().to(add_to_cart))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/notes", web::post().to(notes))
    })
    .bind((addr.as_str(), port))?;
    for bound in server.addrs() {
        // Browsers accept the `Secure` session cookies from http://localhost.
        println!(
            "quickstart listening on http://localhost:{} ({bound})",
            bound.port()
        );
    }
    server.run().await
}
