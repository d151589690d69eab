//! The JSON side: the same operations as the pages, for scripts. Refusals are
//! `{"error": "..."}` with 400 (bad input), 401 (only for a logged-in user), 404 (no such
//! session) or 413 (the change would not fit in the cookie).

use actix_typed_session::{SessionError, Sessions};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::{
    model::{self, CartSession, PrefsSession, Refusal},
    session_reports, ShopInfo,
};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/state", web::get().to(state))
        .route("/storage", web::get().to(storage))
        .route("/sessions", web::get().to(sessions))
        .route("/sessions/end-others", web::post().to(end_others))
        .route("/sessions/{handle}/end", web::post().to(end_session))
        .route("/cart", web::post().to(add))
        .route("/cart/{sku}", web::delete().to(remove))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/prefs", web::put().to(prefs));
}

fn refused(refusal: Refusal) -> HttpResponse {
    let body = json!({ "error": refusal.message() });
    match refusal {
        Refusal::Invalid(_) => HttpResponse::BadRequest().json(body),
        Refusal::TooLarge(_) => HttpResponse::PayloadTooLarge().json(body),
        Refusal::NotLoggedIn => HttpResponse::Unauthorized().json(body),
        Refusal::NotFound(_) => HttpResponse::NotFound().json(body),
    }
}

fn state_json(cart: &CartSession, prefs: &PrefsSession) -> Result<serde_json::Value, SessionError> {
    let items = cart.items()?;
    Ok(json!({
        "user": cart.user()?,
        "total": model::money(model::cart_total(&items)),
        "items": items,
        "prefs": { "theme": prefs.theme()?, "note": prefs.note()? },
    }))
}

async fn state(cart: CartSession, prefs: PrefsSession) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(state_json(&cart, &prefs)?))
}

async fn storage(
    req: HttpRequest,
    sessions: Sessions,
    info: web::Data<ShopInfo>,
) -> Result<HttpResponse, SessionError> {
    Ok(HttpResponse::Ok().json(session_reports(&req, &sessions, &info).await?))
}

/// The logged-in user's sessions: `{"user": .., "sessions": [SessionInfo, ..]}`.
async fn sessions(cart: CartSession) -> Result<HttpResponse, SessionError> {
    Ok(match model::my_sessions(&cart).await? {
        Ok((user, sessions)) => {
            HttpResponse::Ok().json(json!({ "user": user, "sessions": sessions }))
        }
        Err(refusal) => refused(refusal),
    })
}

/// Ends the session named by `handle`: `{"ended": handle, "current": bool}`.
async fn end_session(
    cart: CartSession,
    handle: web::Path<String>,
) -> Result<HttpResponse, SessionError> {
    Ok(match model::end_session(&cart, &handle).await? {
        Ok(ended) => HttpResponse::Ok().json(json!({
            "ended": handle.as_str(),
            "current": ended == model::Ended::ThisOne,
        })),
        Err(refusal) => refused(refusal),
    })
}

/// Ends every session of the user but this one: `{"ended": count}`.
async fn end_others(cart: CartSession) -> Result<HttpResponse, SessionError> {
    Ok(match model::end_other_sessions(&cart).await? {
        Ok(ended) => HttpResponse::Ok().json(json!({ "ended": ended })),
        Err(refusal) => refused(refusal),
    })
}

#[derive(Deserialize)]
struct AddItem {
    sku: String,
}

async fn add(
    cart: CartSession,
    prefs: PrefsSession,
    item: web::Json<AddItem>,
) -> Result<HttpResponse, SessionError> {
    Ok(match model::add_to_cart(&cart, &item.sku)? {
        Ok(_) => HttpResponse::Ok().json(state_json(&cart, &prefs)?),
        Err(refusal) => refused(refusal),
    })
}

async fn remove(
    cart: CartSession,
    prefs: PrefsSession,
    sku: web::Path<String>,
) -> Result<HttpResponse, SessionError> {
    Ok(match model::remove_from_cart(&cart, &sku)? {
        Ok(_) => HttpResponse::Ok().json(state_json(&cart, &prefs)?),
        Err(refusal) => refused(refusal),
    })
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

async fn login(
    cart: CartSession,
    prefs: PrefsSession,
    body: web::Json<Login>,
) -> Result<HttpResponse, SessionError> {
    Ok(match model::login(&cart, &body.user)? {
        Ok(_) => HttpResponse::Ok().json(state_json(&cart, &prefs)?),
        Err(refusal) => refused(refusal),
    })
}

async fn logout(cart: CartSession) -> HttpResponse {
    model::logout(&cart);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct PrefsUpdate {
    theme: Option<String>,
    /// An empty string removes the note.
    note: Option<String>,
}

async fn prefs(
    cart: CartSession,
    prefs: PrefsSession,
    body: web::Json<PrefsUpdate>,
) -> Result<HttpResponse, SessionError> {
    // All or nothing: read the whole struct, change it, and store it back in one step.
    let mut new = prefs.load()?;
    if let Some(theme) = &body.theme {
        match model::Theme::parse(theme) {
            Some(theme) => new.theme = theme,
            None => {
                return Ok(refused(Refusal::Invalid(format!(
                    "There is no theme {theme:?}."
                ))))
            }
        }
    }
    if let Some(note) = &body.note {
        new.note = (!note.is_empty()).then(|| note.clone());
    }
    match prefs.store(&new) {
        Ok(()) => Ok(HttpResponse::Ok().json(state_json(&cart, &prefs)?)),
        Err(err @ SessionError::TooLarge { .. }) => Ok(refused(Refusal::TooLarge(err))),
        Err(err) => Err(err),
    }
}
