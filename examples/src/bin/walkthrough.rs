//! Walkthrough: moving sessions off the cookie, step by step.
//!
//! ```text
//! cargo run -p examples --bin walkthrough           # then open http://localhost:8080
//! PORT=9000 cargo run -p examples --bin walkthrough # another port (ADDR sets the address)
//! ```
//! `DATABASE_URL` puts the `datastore` backend on PostgreSQL, `REDIS_URL` the `memcache` backend
//! on Redis; without them both live in process memory. `DATABASE_SCHEMA` (default `public`;
//! created if missing) and `REDIS_PREFIX` (default `session:`) say where in them.
//!
//! # The story
//! In January 2012 a developer on Google App Engine wrote up how they got their sessions back.
//! Their webapp2 application kept sessions in a cookie, the framework's default. Once a session
//! grew past what a browser keeps in one cookie, it simply stopped being saved: no error, the
//! data was just gone on the next request. webapp2 could also keep sessions in memcache or in
//! the datastore, so they switched the session to the datastore, and the problem went away.
//!
//! Their post walks through the change in four moves, and gives three reasons to prefer a
//! server-side session: private data (emails, phone numbers) stays off the visitor's machine;
//! a cookie belongs to one domain; and webapp2 made cookies persistent with `max-age` only,
//! which Internet Explorer ignored. Two readers then asked what the post left out: why a
//! datastore session still sets a cookie, and how to destroy a session.
//!
//! This file makes the same four moves with `actix-typed-session`, marked STEP 1 to STEP 4
//! below, then answers the readers (STEP 5 and 6). Each step is also a page to click.

use actix_typed_session::{CookieStore, Key, SessionData, SessionError, SessionMiddleware};
use actix_web::{http::header, web, App, HttpRequest, HttpResponse, HttpServer};
use examples::escape;
use serde::Deserialize;

// STEP 4 (`get_session(backend='datastore')` becomes an attribute) and STEP 5
// (`session['foo'] = 'bar'` becomes a typed setter).
//
// In webapp2 the handler asked the store for a session and named the backend on every call:
// `self.session_store.get_session(backend='datastore')`, and then used the session as a dict
// of anything. Here a session is a struct: its name and backend are declared once, and the
// derive generates an extractor (`DatastoreNotesSession`) with one getter, setter and remover
// per field. A typo in a key or a wrong type is now a compile error, not a `None` at run time.

/// The same data on the cookie backend: the whole session travels in the cookie.
#[derive(SessionData)]
#[session(name = "in_cookie", backend = "securecookie")]
struct CookieNotes {
    /// The blog's `session['foo']`.
    foo: Option<String>,
    /// Something bigger: what broke the blog author's cookie sessions.
    notes: Option<String>,
}

/// ... and on the datastore backend: only an opaque id travels in the cookie.
#[derive(SessionData)]
#[session(name = "in_datastore", backend = "datastore")]
struct DatastoreNotes {
    /// The blog's `session['foo']`.
    foo: Option<String>,
    /// Something bigger: a datastore has room for it.
    notes: Option<String>,
}

/// A visit counter on the third backend the blog listed, memcache.
#[derive(SessionData)]
#[session(name = "visits", backend = "memcache")]
struct Visits {
    count: u32,
}

// STEP 1: the base handler becomes the middleware.
//
// In webapp2 every handler inherited from a `BaseHandler` whose `dispatch` fetched a session
// store for the request, ran the handler, and saved every session in a `finally` block. That
// is what `SessionMiddleware` does around every request, with two differences: it loads a
// session only when a handler extracts it (a page that never touches a session costs no store
// I/O and sets no cookie), and it writes back only the keys that changed. It does *not* save
// after a handler that failed (an `Err` or a 5xx), where webapp2's `finally` saved anyway.
// There is nothing to inherit: a handler just takes the sessions it needs as arguments.

async fn index(
    visits: VisitsSession,
    cookie: CookieNotesSession,
    datastore: DatastoreNotesSession,
) -> Result<HttpResponse, SessionError> {
    let count = visits.count()? + 1;
    visits.set_count(count)?;
    let show = |v: Option<String>| match v {
        Some(v) => format!("{} bytes", v.len()),
        None => "none".into(),
    };
    let body = format!(
        "<h1>Moving sessions off the cookie</h1>\
         <p>Visit #{count} (counted in the <code>visits</code> session on the \
         <code>memcache</code> backend).</p>\
         <h2>Step 5: <code>session['foo'] = 'bar'</code>, typed</h2>\
         <form method=\"post\" action=\"/foo\"><button id=\"set-foo\">set foo = \"bar\" in both sessions</button></form>\
         <p>foo in the cookie session: <b>{foo_c}</b>; in the datastore session: <b>{foo_d}</b> \
         (<a href=\"/foo\">read it</a>)</p>\
         <h2>Why the datastore: the size limit</h2>\
         <p>Notes in the cookie session: {notes_c}; in the datastore session: {notes_d}.</p>\
         <form method=\"post\" action=\"/notes/securecookie\"><button id=\"notes-securecookie\">save 5,000 bytes of notes \
         in the cookie session</button></form> \
         <form method=\"post\" action=\"/notes/datastore\"><button id=\"notes-datastore\">save the same in the \
         datastore session</button></form>\
         <h2>Step 6: \"how do I destroy a session?\"</h2>\
         <form method=\"post\" action=\"/destroy\"><button id=\"destroy\">destroy both notes sessions</button></form>\
         <h2>\"I still see a session cookie with the datastore\"</h2>\
         <p><a href=\"/cookies\">Show the cookies this browser sent</a>.</p>",
        foo_c = escape(&cookie.foo()?.unwrap_or_else(|| "(unset)".into())),
        foo_d = escape(&datastore.foo()?.unwrap_or_else(|| "(unset)".into())),
        notes_c = show(cookie.notes()?),
        notes_d = show(datastore.notes()?),
    );
    Ok(page(&body))
}

// STEP 5: `self.session['foo'] = 'bar'` and `self.session.get('foo')`.

async fn set_foo(
    cookie: CookieNotesSession,
    datastore: DatastoreNotesSession,
) -> Result<HttpResponse, SessionError> {
    cookie.set_foo(Some("bar".into()))?; // session['foo'] = 'bar'
    datastore.set_foo(Some("bar".into()))?;
    Ok(redirect_home())
}

async fn get_foo(
    cookie: CookieNotesSession,
    datastore: DatastoreNotesSession,
) -> Result<HttpResponse, SessionError> {
    let in_cookie: Option<String> = cookie.foo()?; // session.get('foo')
    let in_datastore = datastore.foo()?;
    // The untyped layer is still there, for keys not known in advance: the same value through
    // `Session::get` with a string key.
    let untyped: Option<String> = datastore.as_session().get("foo")?;
    Ok(page(&format!(
        "<p>typed, cookie session: <code>foo() = {}</code><br>\
         typed, datastore session: <code>foo() = {}</code><br>\
         untyped, datastore session: <code>get::&lt;String&gt;(\"foo\") = {}</code></p>",
        escape(&format!("{in_cookie:?}")),
        escape(&format!("{in_datastore:?}")),
        escape(&format!("{untyped:?}")),
    )))
}

// The problem that started it all. webapp2 sent the oversized cookie, the browser dropped it
// without a word, and the session was lost. Here the setter measures the cookie it would
// produce (sealed, encoded, with its name) and refuses a change that would pass the 4096 bytes
// a browser keeps: a `SessionError::TooLarge` at the line that caused it, and the session keeps
// its previous state. The same change on the datastore backend just works.

#[derive(Deserialize)]
struct Backend {
    backend: String,
}

async fn save_notes(
    path: web::Path<Backend>,
    cookie: CookieNotesSession,
    datastore: DatastoreNotesSession,
) -> Result<HttpResponse, SessionError> {
    let notes = "All work and no play makes a session dull. ".repeat(120); // 5,160 bytes
    let result = match path.backend.as_str() {
        "securecookie" => cookie.set_notes(Some(notes.clone())),
        "datastore" => datastore.set_notes(Some(notes.clone())),
        other => return Ok(page(&format!("<p>no backend {}</p>", escape(other)))),
    };
    Ok(match result {
        Ok(()) => page(&format!(
            "<p>Saved {} bytes of notes on the <code>{}</code> backend.</p>",
            notes.len(),
            escape(&path.backend)
        )),
        Err(err @ SessionError::TooLarge { .. }) => page(&format!(
            "<p><b>Not saved</b>, and nothing was lost: {}.</p><p>This is the failure the blog \
             post ran into, except that there the browser dropped the cookie silently and \
             the session was gone. Try the datastore backend.</p>",
            escape(&err.to_string())
        )),
        Err(other) => return Err(other),
    })
}

// STEP 6: destroying a session (a reader's question under the post).
// `purge()` deletes the stored session (for a server-side backend) and sends the browser a
// removal cookie with the same Path and Domain, so the cookie goes too. Writes made later in
// the same request start a brand-new session with a new id.

async fn destroy(
    cookie: CookieNotesSession,
    datastore: DatastoreNotesSession,
) -> Result<HttpResponse, SessionError> {
    cookie.purge();
    datastore.purge();
    Ok(redirect_home())
}

// The other reader's question: "I use the datastore, so why is there still a session cookie?"
// Because the server has to know which stored session is yours. The datastore session's cookie
// holds only an opaque random id (256 random bits, 43 characters); the store keeps only a hash
// of it, so even a leaked table hands out no session. The data itself never leaves the server.

async fn cookies(req: HttpRequest) -> HttpResponse {
    let mut rows = String::new();
    for cookie in req.cookies().map(|c| c.clone()).unwrap_or_default() {
        let holds = match cookie.name() {
            "in_cookie" => "the whole session, sealed with AES-256-GCM",
            "in_datastore" | "visits" => "an opaque random id; the data is on the server",
            _ => "not ours",
        };
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{} bytes</td><td>{holds}</td></tr>",
            escape(cookie.name()),
            cookie.value().len(),
        ));
    }
    page(&format!(
        "<table><tr><th>cookie</th><th>value</th><th>holds</th></tr>{rows}</table>\
         <p>Every one is <code>HttpOnly</code>: scripts on the page cannot read it.</p>"
    ))
}

fn page(body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Walkthrough</title></head><body style=\"font-family:sans-serif;\
             max-width:48rem;margin:1rem auto\">{body}<p><a id=\"back\" href=\"/\">back</a></p></body></html>"
        ))
}

fn redirect_home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    examples::init_tracing();

    // STEP 2: the configuration dict with a secret key becomes the builder.
    //
    // webapp2 read `config['webapp2_extras.sessions'] = {'secret_key': ...}`. Here the key is
    // the builder's argument: 64 or more secret bytes (load them from your secret store; a
    // random key, as here, logs everyone out at every restart). Sealing and signing keys are
    // derived from it, and `.previous_keys([..])` keeps old cookies readable after a rotation.
    let key = match std::env::var("SESSION_KEY") {
        Ok(secret) => Key::from(secret.as_bytes()),
        Err(_) => Key::generate(),
    };

    // STEP 3: the dict of backends becomes backends registered by name.
    //
    // webapp2's `'backends': {'securecookie': ..., 'memcache': ..., 'datastore': ...}` maps
    // names to session factories. Here each name maps to a store; the names are yours, and the
    // first one registered is the default.
    let datastore = examples::postgres_from_env()
        .await?
        .unwrap_or_else(examples::memory);
    let memcache = examples::redis_from_env()?.unwrap_or_else(examples::memory);
    let sessions = SessionMiddleware::builder(key)
        .backend("securecookie", CookieStore::default())
        .backend("memcache", memcache.backend)
        .backend("datastore", datastore.backend)
        // build() checks that every backend these types name is registered.
        .register::<CookieNotes>()
        .register::<DatastoreNotes>()
        .register::<Visits>()
        .build()
        .map_err(std::io::Error::other)?;

    // STEP 1, continued: where webapp2 passed the config to `WSGIApplication`, the middleware
    // wraps the App.
    let (addr, port) = examples::listen_addr(8080)?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .route("/", web::get().to(index))
            .route("/foo", web::post().to(set_foo))
            .route("/foo", web::get().to(get_foo))
            .route("/notes/{backend}", web::post().to(save_notes))
            .route("/destroy", web::post().to(destroy))
            .route("/cookies", web::get().to(cookies))
    })
    .bind((addr.as_str(), port))?;
    println!("datastore backend: {}", datastore.description);
    println!("memcache backend: {}", memcache.description);
    for bound in server.addrs() {
        // Browsers accept `Secure` cookies from http://localhost (a secure context).
        println!(
            "walkthrough listening on {} (bound to {bound})",
            examples::browser_url(bound)
        );
    }
    server.run().await
}
