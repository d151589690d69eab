//! The shop's sessions and the operations on them, shared by the HTML pages and the JSON API.

use actix_typed_session::{SessionData, SessionError, SessionHandle, SessionInfo, SessionStatus};
use serde::{Deserialize, Serialize};

/// One product of the (fixed) catalogue.
pub(crate) struct Product {
    pub(crate) sku: &'static str,
    pub(crate) name: &'static str,
    pub(crate) price_cents: u32,
}

pub(crate) const CATALOG: &[Product] = &[
    Product {
        sku: "tea",
        name: "Green tea, 100 g",
        price_cents: 650,
    },
    Product {
        sku: "mug",
        name: "Enamel mug",
        price_cents: 1200,
    },
    Product {
        sku: "pot",
        name: "Cast-iron teapot",
        price_cents: 3400,
    },
    Product {
        sku: "book",
        name: "A Little Book of Tea",
        price_cents: 1800,
    },
];

pub(crate) fn product(sku: &str) -> Option<&'static Product> {
    CATALOG.iter().find(|p| p.sku == sku)
}

/// `1234` → `"12.34"`.
pub(crate) fn money(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LineItem {
    pub(crate) sku: String,
    pub(crate) quantity: u32,
}

/// The cart and the login: server-side, on the backend registered as `datastore` (PostgreSQL,
/// Redis or memory). Its cookie holds only an opaque id and lasts as long as the browser.
#[derive(SessionData)]
#[session(name = "cart", backend = "datastore")]
pub(crate) struct Cart {
    /// Who is logged in; absent for a guest.
    pub(crate) user: Option<String>,
    /// The cart's lines; absent means empty.
    pub(crate) items: Vec<LineItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Theme {
    #[default]
    Light,
    Dark,
}

impl Theme {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "light" => Some(Self::Light),
            "dark" => Some(Self::Dark),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Dark => "dark",
        }
    }
}

/// Preferences: kept in the cookie itself (sealed with AES-256-GCM), in a persistent cookie
/// that outlives the browser. Small by nature, which is what a cookie is for.
#[derive(SessionData)]
#[session(name = "prefs", backend = "cookie")]
pub(crate) struct Prefs {
    /// The page's colours.
    pub(crate) theme: Theme,
    /// A free-text note: the field that shows the cookie's size limit.
    pub(crate) note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Message {
    pub(crate) error: bool,
    pub(crate) text: String,
}

/// Messages for the next page, read once: in a browser-session cookie of their own.
#[derive(SessionData)]
#[session(name = "flash", backend = "cookie")]
pub(crate) struct Flash {
    #[session(flash)]
    pub(crate) messages: Vec<Message>,
}

/// What an operation refused, in words for the visitor. Store failures stay `SessionError`s:
/// the middleware logs them and answers with an opaque 500.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Bad input: the message says why.
    Invalid(String),
    /// The change would not fit in the cookie; the session kept its previous state.
    TooLarge(SessionError),
    /// Only for a logged-in visitor.
    NotLoggedIn,
    /// What was asked for is not there (any more): the message says what.
    NotFound(String),
}

impl Refusal {
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Invalid(why) => why.clone(),
            Self::TooLarge(err) => format!("Your note was not saved: {err}."),
            Self::NotLoggedIn => "Log in first to see your sessions.".into(),
            Self::NotFound(what) => what.clone(),
        }
    }
}

pub(crate) type Outcome<T> = Result<Result<T, Refusal>, SessionError>;

pub(crate) fn add_to_cart(cart: &CartSession, sku: &str) -> Outcome<&'static Product> {
    let Some(product) = product(sku) else {
        return Ok(Err(Refusal::Invalid(format!(
            "There is no product {sku:?}."
        ))));
    };
    let mut items = cart.items()?;
    match items.iter_mut().find(|i| i.sku == sku) {
        Some(line) => line.quantity = line.quantity.saturating_add(1),
        None => items.push(LineItem {
            sku: sku.to_owned(),
            quantity: 1,
        }),
    }
    cart.set_items(items)?;
    Ok(Ok(product))
}

pub(crate) fn remove_from_cart(cart: &CartSession, sku: &str) -> Outcome<&'static Product> {
    let mut items = cart.items()?;
    let before = items.len();
    items.retain(|i| i.sku != sku);
    match product(sku) {
        Some(product) if items.len() < before => {
            cart.set_items(items)?;
            Ok(Ok(product))
        }
        _ => Ok(Err(Refusal::Invalid(format!(
            "There is no {sku:?} in your cart."
        )))),
    }
}

pub(crate) fn login(cart: &CartSession, user: &str) -> Outcome<String> {
    let user = user.trim();
    if user.is_empty() || user.chars().count() > 40 {
        return Ok(Err(Refusal::Invalid(
            "A user name has 1 to 40 characters.".into(),
        )));
    }
    cart.set_user(Some(user.to_owned()))?;
    // New privileges, new id: an id planted in the browser before the login (session fixation)
    // is dead afterwards. The cart's contents move to the new id.
    cart.renew();
    // Ties the session to its user, so that the user can list and end it from any browser
    // ("Your sessions"). Saved with the login, in the same write.
    cart.as_session().set_owner(user)?;
    Ok(Ok(user.to_owned()))
}

pub(crate) fn logout(cart: &CartSession) {
    // Deletes the stored session and tells the browser to delete its cookie (and the session
    // leaves its user's list).
    cart.purge();
}

/// The logged-in user and their sessions (one per browser that logged in: the cart session on
/// the datastore), most recently seen first, this browser's marked.
pub(crate) async fn my_sessions(cart: &CartSession) -> Outcome<(String, Vec<SessionInfo>)> {
    let Some(user) = cart.user()? else {
        return Ok(Err(Refusal::NotLoggedIn));
    };
    Ok(Ok((user, cart.as_session().owned_sessions().await?)))
}

/// Which session [`end_session`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Another browser's: it is logged out, its cart gone with its session.
    Other,
    /// This browser's own: purged, as by a logout.
    ThisOne,
}

/// Ends one of the user's sessions, named by the handle the list shows. A handle can only end
/// a session of the logged-in user.
pub(crate) async fn end_session(cart: &CartSession, handle: &str) -> Outcome<Ended> {
    if cart.user()?.is_none() {
        return Ok(Err(Refusal::NotLoggedIn));
    }
    let Ok(handle) = handle.parse::<SessionHandle>() else {
        return Ok(Err(Refusal::Invalid(format!(
            "{handle:?} is not a session handle."
        ))));
    };
    let session = cart.as_session();
    if !session.end_session(&handle).await? {
        return Ok(Err(Refusal::NotFound(
            "That session had already ended.".into(),
        )));
    }
    Ok(Ok(if session.status() == SessionStatus::Purged {
        Ended::ThisOne
    } else {
        Ended::Other
    }))
}

/// Ends every session of the user but this browser's ("log out everywhere else"); how many.
pub(crate) async fn end_other_sessions(cart: &CartSession) -> Outcome<usize> {
    if cart.user()?.is_none() {
        return Ok(Err(Refusal::NotLoggedIn));
    }
    Ok(Ok(cart.as_session().end_other_sessions().await?))
}

pub(crate) fn set_theme(prefs: &PrefsSession, theme: &str) -> Outcome<Theme> {
    let Some(theme) = Theme::parse(theme) else {
        return Ok(Err(Refusal::Invalid(format!(
            "There is no theme {theme:?}."
        ))));
    };
    prefs.set_theme(theme)?;
    Ok(Ok(theme))
}

pub(crate) fn set_note(prefs: &PrefsSession, note: &str) -> Outcome<usize> {
    let result = if note.is_empty() {
        prefs.remove_note();
        Ok(())
    } else {
        prefs.set_note(Some(note.to_owned()))
    };
    match result {
        Ok(()) => Ok(Ok(note.len())),
        // The library refuses a change whose cookie the browser would drop, and keeps the
        // session as it was: the visitor is told, and the previous note is still there.
        Err(err @ SessionError::TooLarge { .. }) => Ok(Err(Refusal::TooLarge(err))),
        Err(err) => Err(err),
    }
}

pub(crate) fn cart_total(items: &[LineItem]) -> u32 {
    items
        .iter()
        .filter_map(|i| product(&i.sku).map(|p| p.price_cents.saturating_mul(i.quantity)))
        .fold(0, u32::saturating_add)
}
