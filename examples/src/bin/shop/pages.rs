//! The HTML side: server-rendered pages and form posts. Every post answers with a redirect
//! (post/redirect/get) and leaves a flash message for the page it leads to.

use std::time::{Duration, SystemTime};

use actix_typed_session::{SessionError, SessionInfo, Sessions};
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use examples::escape;
use serde::Deserialize;

use crate::{
    model::{self, CartSession, Ended, FlashSession, Message, PrefsSession, Refusal, CATALOG},
    session_reports, ShopInfo,
};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/storage", web::get().to(storage_page))
        .route("/sessions", web::get().to(your_sessions))
        .route("/sessions/end", web::post().to(end_session))
        .route("/sessions/end-others", web::post().to(end_others))
        .route("/cart/add", web::post().to(add))
        .route("/cart/remove", web::post().to(remove))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/prefs/theme", web::post().to(theme))
        .route("/prefs/note", web::post().to(note));
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52rem;margin:1rem auto;\
padding:0 1rem;line-height:1.4}body.dark{background:#1e1f22;color:#e6e6e6}\
body.dark a{color:#8ab4f8}table{border-collapse:collapse}td,th{padding:.2rem .6rem;\
text-align:left}form{display:inline}#flash li{padding:.3rem .6rem;margin:.2rem 0;\
list-style:none;background:#e7f5e7;color:#1b4d1b}#flash li.error{background:#fbe3e3;\
color:#7a1717}pre{background:#8881;padding:.5rem;overflow-x:auto}textarea{width:100%}\
td small{opacity:.7}";

fn layout(theme: model::Theme, user: Option<&str>, flash: &[Message], body: &str) -> HttpResponse {
    let account = match user {
        Some(user) => format!(
            "<a href=\"/sessions\" id=\"your-sessions\">Your sessions</a> · \
             logged in as <b id=\"user\">{}</b> \
             <form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>",
            escape(user)
        ),
        None => "browsing as a guest".to_owned(),
    };
    let messages: String = flash
        .iter()
        .map(|m| {
            format!(
                "<li class=\"{}\">{}</li>",
                if m.error { "error" } else { "info" },
                escape(&m.text)
            )
        })
        .collect();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>Tea shop</title><style>{STYLE}</style></head>\n\
         <body class=\"{theme}\"><nav><a href=\"/\">Shop</a> · \
         <a href=\"/storage\">What the sessions hold</a> · {account}</nav>\n\
         <ul id=\"flash\">{messages}</ul>\n{body}\n</body></html>\n",
        theme = theme.as_str(),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html)
}

async fn index(
    req: HttpRequest,
    cart: CartSession,
    prefs: PrefsSession,
    flash: FlashSession,
) -> Result<HttpResponse, SessionError> {
    let user = cart.user()?;
    let items = cart.items()?;
    let theme = prefs.theme()?;
    let note = prefs.note()?.unwrap_or_default();
    // Read once: the messages are removed from their session as they are shown.
    let messages = flash.take_messages()?;

    let mut body = String::new();
    if user.is_none() {
        body.push_str(
            "<h2>Log in</h2><form method=\"post\" action=\"/login\">\
             <input name=\"user\" id=\"user-name\" placeholder=\"any name\" required maxlength=\"40\"> \
             <button id=\"login\">Log in</button></form>\
             <p><small>Logging in gives your cart a new session id (against session fixation); \
             logging out deletes the cart session and its cookie.</small></p>",
        );
    }

    body.push_str("<h2>Tea and things</h2><table id=\"catalog\">");
    for p in CATALOG {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/cart/add\">\
             <input type=\"hidden\" name=\"sku\" value=\"{sku}\">\
             <button id=\"add-{sku}\">Add to cart</button></form></td></tr>",
            escape(p.name),
            model::money(p.price_cents),
            sku = escape(p.sku),
        ));
    }
    body.push_str("</table>");

    body.push_str("<h2>Your cart</h2>");
    if items.is_empty() {
        body.push_str("<p id=\"cart-empty\">Your cart is empty.</p>");
    } else {
        body.push_str("<table id=\"cart\"><tr><th>item</th><th>quantity</th><th></th></tr>");
        for line in &items {
            let name = model::product(&line.sku).map_or(line.sku.as_str(), |p| p.name);
            body.push_str(&format!(
                "<tr data-sku=\"{sku}\"><td>{}</td><td class=\"quantity\">{}</td><td>\
                 <form method=\"post\" action=\"/cart/remove\">\
                 <input type=\"hidden\" name=\"sku\" value=\"{sku}\">\
                 <button id=\"remove-{sku}\">Remove</button></form></td></tr>",
                escape(name),
                line.quantity,
                sku = escape(&line.sku),
            ));
        }
        body.push_str(&format!(
            "</table><p>Total: <b id=\"total\">{}</b></p>",
            model::money(model::cart_total(&items))
        ));
    }
    body.push_str(
        "<p><small>The cart lives in the server-side store; its cookie holds only an opaque id.\
         </small></p>",
    );

    let prefs_bytes = req
        .cookie("prefs")
        .map_or(0, |c| c.name().len() + 1 + c.value().len());
    body.push_str(&format!(
        "<h2>Preferences</h2><p><small>Kept in the <code>prefs</code> cookie itself, sealed, \
         in a cookie that outlives the browser: now {prefs_bytes} of the 4096 bytes a browser \
         keeps.</small></p>\
         <form method=\"post\" action=\"/prefs/theme\"><label>Theme \
         <select name=\"theme\" id=\"theme\">{options}</select></label> \
         <button id=\"save-theme\">Save</button></form>\
         <form method=\"post\" action=\"/prefs/note\" style=\"display:block;margin-top:.6rem\">\
         <label for=\"note\">A note to yourself (try pasting 5 000 characters: a cookie cannot \
         hold them, and you will be told instead of losing the note)</label>\
         <textarea name=\"note\" id=\"note\" rows=\"3\">{note}</textarea>\
         <button id=\"save-note\">Save note</button></form>",
        options = ["light", "dark"]
            .iter()
            .map(|t| format!(
                "<option{}>{t}</option>",
                if *t == theme.as_str() {
                    " selected"
                } else {
                    ""
                }
            ))
            .collect::<String>(),
        note = escape(&note),
    ));
    Ok(layout(theme, user.as_deref(), &messages, &body))
}

async fn storage_page(
    req: HttpRequest,
    sessions: Sessions,
    cart: CartSession,
    prefs: PrefsSession,
    info: web::Data<ShopInfo>,
) -> Result<HttpResponse, SessionError> {
    let reports = session_reports(&req, &sessions, &info).await?;
    let mut body = String::from(
        "<h2>What each session holds, and where</h2>\
         <p>Three named sessions, each with its own cookie and backend. Every cookie is \
         <code>HttpOnly</code> (scripts cannot read it), <code>Secure</code> and \
         <code>SameSite=Lax</code>.</p>",
    );
    for r in &reports {
        let cookie = match r.cookie_bytes {
            Some(n) => format!("sent by your browser: {n} bytes"),
            None => "none yet (an empty session sets no cookie)".to_owned(),
        };
        body.push_str(&format!(
            "<section id=\"session-{name}\"><h3><code>{name}</code> on backend \
             <code>{backend}</code></h3><ul><li>data stored in: {stored}</li>\
             <li>the cookie holds: {holds}</li><li>cookie lifetime: {lifetime}</li>\
             <li>cookie: {cookie}</li></ul><pre>{entries}</pre></section>",
            name = r.name,
            backend = r.backend,
            stored = escape(&r.stored_in),
            holds = r.cookie_holds,
            lifetime = r.cookie_lifetime,
            entries = escape(&serde_json::to_string_pretty(&r.entries).unwrap_or_default()),
        ));
    }
    // The page shows the flash session without taking its messages: they wait for the shop page.
    Ok(layout(prefs.theme()?, cart.user()?.as_deref(), &[], &body))
}

/// A moment for people, relative to `now` ("12 s ago", "in 29 min"), with its UTC time.
fn when(t: SystemTime, now: SystemTime) -> String {
    let relative = match now.duration_since(t) {
        Ok(ago) if ago < Duration::from_secs(2) => "just now".to_owned(),
        Ok(ago) => format!("{} ago", span(ago)),
        Err(ahead) => format!("in {}", span(ahead.duration())),
    };
    format!("{relative} <small>({})</small>", utc(t))
}

/// `150 s` → `"3 min"`: seconds up to two minutes, then the largest unit, rounded.
fn span(d: Duration) -> String {
    let round = |s: u64, unit: u64| (s + unit / 2) / unit;
    match d.as_secs() {
        s @ 0..=119 => format!("{s} s"),
        s @ 120..=7199 => format!("{} min", round(s, 60)),
        s @ 7200..=172_799 => format!("{} h", round(s, 3600)),
        s => format!("{} days", round(s, 86_400)),
    }
}

/// `"2024-05-01 12:00:03 UTC"`, through the `time` crate that actix-web's cookies use.
fn utc(t: SystemTime) -> String {
    let t = actix_web::cookie::time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn session_row(s: &SessionInfo, now: SystemTime) -> String {
    let handle = escape(&s.handle.to_string());
    let action = if s.current {
        "<td class=\"this-browser\"><b>this browser</b></td>".to_owned()
    } else {
        format!(
            "<td><form method=\"post\" action=\"/sessions/end\">\
             <input type=\"hidden\" name=\"handle\" value=\"{handle}\">\
             <button class=\"end-session\">End this session</button></form></td>"
        )
    };
    // What the visitor recognises the session by: the browser and system it logged in from
    // (never the raw User-Agent), and the address when the middleware records it.
    let device = escape(s.device.as_deref().unwrap_or("Unknown device"));
    let address = s.address.as_deref().map_or(String::new(), |a| {
        format!(" <small class=\"address\">from {}</small>", escape(a))
    });
    format!(
        "<tr class=\"owned-session{current}\" data-handle=\"{handle}\">\
         <td><span class=\"device\">{device}</span>{address}</td>\
         <td><code class=\"handle\">{handle}</code></td><td>{created}</td><td>{seen}</td>\
         <td>{expires}</td>{action}</tr>",
        current = if s.current { " current" } else { "" },
        created = when(s.created_at, now),
        seen = when(s.last_seen, now),
        expires = when(s.expires_at, now),
    )
}

async fn your_sessions(
    cart: CartSession,
    prefs: PrefsSession,
    flash: FlashSession,
    info: web::Data<ShopInfo>,
) -> Result<HttpResponse, SessionError> {
    let (user, sessions) = match model::my_sessions(&cart).await? {
        Ok(mine) => mine,
        // A guest has no sessions to list: to the login form, with a word why.
        Err(refusal) => return refused(&flash, refusal),
    };
    let messages = flash.take_messages()?;
    let now = SystemTime::now();
    let mut body = format!(
        "<h2>Your sessions</h2>\
         <p>Every browser where <b>{user}</b> logged in has a session of its own: its cart \
         session, on the server-side store: here {store}. Ending one logs that browser out, \
         and its cart goes with the session.</p>\
         <table id=\"owned-sessions\"><tr><th>device</th><th>session</th><th>created</th><th>last seen</th>\
         <th>expires</th><th></th></tr>",
        user = escape(&user),
        store = escape(info.datastore),
    );
    for s in &sessions {
        body.push_str(&session_row(s, now));
    }
    body.push_str(
        "</table><p><form method=\"post\" action=\"/sessions/end-others\">\
         <button id=\"end-others\">Log out everywhere else</button></form></p>\
         <p><small>A session is named by a handle derived one-way from its stored key: it \
         reveals neither the id in your cookie nor the key, and it ends only a session of \
         yours. The device is what the browser said it was when you logged in (its browser and \
         system only), and the address where it connected from. \"Last seen\" is the last write: a change, or the expiry refresh, which the \
         store throttles.</small></p>",
    );
    Ok(layout(prefs.theme()?, Some(&user), &messages, &body))
}

#[derive(Deserialize)]
struct HandleForm {
    handle: String,
}

async fn end_session(
    cart: CartSession,
    flash: FlashSession,
    form: web::Form<HandleForm>,
) -> Result<HttpResponse, SessionError> {
    match model::end_session(&cart, &form.handle).await? {
        Ok(Ended::Other) => back_to(
            &flash,
            "/sessions",
            false,
            "Ended 1 session: that browser is logged out.".into(),
        ),
        Ok(Ended::ThisOne) => back(
            &flash,
            false,
            "You ended this browser's session: you are logged out.".into(),
        ),
        Err(refusal @ Refusal::NotLoggedIn) => refused(&flash, refusal),
        Err(refusal) => back_to(&flash, "/sessions", true, refusal.message()),
    }
}

async fn end_others(cart: CartSession, flash: FlashSession) -> Result<HttpResponse, SessionError> {
    let text = match model::end_other_sessions(&cart).await? {
        Ok(0) => "There was no other session to end.".to_owned(),
        Ok(1) => "Ended 1 other session: you are logged out everywhere else.".to_owned(),
        Ok(n) => format!("Ended {n} other sessions: you are logged out everywhere else."),
        Err(refusal) => return refused(&flash, refusal),
    };
    back_to(&flash, "/sessions", false, text)
}

/// Leaves a message for the shop page and sends the browser there.
fn back(flash: &FlashSession, error: bool, text: String) -> Result<HttpResponse, SessionError> {
    back_to(flash, "/", error, text)
}

/// Leaves a message for the next page, `location`, and sends the browser there.
fn back_to(
    flash: &FlashSession,
    location: &str,
    error: bool,
    text: String,
) -> Result<HttpResponse, SessionError> {
    flash.push_messages(Message { error, text })?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

fn refused(flash: &FlashSession, refusal: Refusal) -> Result<HttpResponse, SessionError> {
    back(flash, true, refusal.message())
}

#[derive(Deserialize)]
struct SkuForm {
    sku: String,
}

async fn add(
    cart: CartSession,
    flash: FlashSession,
    form: web::Form<SkuForm>,
) -> Result<HttpResponse, SessionError> {
    match model::add_to_cart(&cart, &form.sku)? {
        Ok(p) => back(&flash, false, format!("Added {} to your cart.", p.name)),
        Err(refusal) => refused(&flash, refusal),
    }
}

async fn remove(
    cart: CartSession,
    flash: FlashSession,
    form: web::Form<SkuForm>,
) -> Result<HttpResponse, SessionError> {
    match model::remove_from_cart(&cart, &form.sku)? {
        Ok(p) => back(&flash, false, format!("Removed {} from your cart.", p.name)),
        Err(refusal) => refused(&flash, refusal),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
}

async fn login(
    cart: CartSession,
    flash: FlashSession,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, SessionError> {
    match model::login(&cart, &form.user)? {
        Ok(user) => back(&flash, false, format!("Welcome, {user}.")),
        Err(refusal) => refused(&flash, refusal),
    }
}

async fn logout(cart: CartSession, flash: FlashSession) -> Result<HttpResponse, SessionError> {
    model::logout(&cart);
    back(
        &flash,
        false,
        "You are logged out: your cart session and its cookie are gone.".into(),
    )
}

#[derive(Deserialize)]
struct ThemeForm {
    theme: String,
}

async fn theme(
    prefs: PrefsSession,
    flash: FlashSession,
    form: web::Form<ThemeForm>,
) -> Result<HttpResponse, SessionError> {
    match model::set_theme(&prefs, &form.theme)? {
        Ok(theme) => back(&flash, false, format!("Theme set to {}.", theme.as_str())),
        Err(refusal) => refused(&flash, refusal),
    }
}

#[derive(Deserialize)]
struct NoteForm {
    note: String,
}

async fn note(
    prefs: PrefsSession,
    flash: FlashSession,
    form: web::Form<NoteForm>,
) -> Result<HttpResponse, SessionError> {
    match model::set_note(&prefs, &form.note)? {
        Ok(0) => back(&flash, false, "Note removed.".into()),
        Ok(bytes) => back(&flash, false, format!("Note saved ({bytes} bytes).")),
        Err(refusal) => refused(&flash, refusal),
    }
}
