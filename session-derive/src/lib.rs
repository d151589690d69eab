//! The `#[derive(SessionData)]` macro of `actix-typed-session`.
//!
//! This crate is an implementation detail: depend on `actix-typed-session`, which re-exports the
//! derive (feature `derive`, on by default) next to the `SessionData` trait it implements.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Turns a struct into typed access to one named session: an extractor `{Struct}Session` (or
/// the name given with `extractor`) with a getter, a setter, an updater and a remover per
/// field, over the key-value session.
///
/// ```
/// use actix_typed_session::SessionData;
/// use actix_web::{web, HttpResponse};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct LineItem {
///     sku: String,
///     quantity: u32,
/// }
///
/// #[derive(SessionData)]
/// #[session(name = "cart", backend = "memory")]
/// struct Cart {
///     /// Items in the cart.
///     items: Vec<LineItem>,
///     coupon: Option<String>,
///     #[session(rename = "uid")]
///     user_id: Option<u64>,
///     #[session(flash)]
///     notices: Vec<String>,
/// }
///
/// async fn add(cart: CartSession, item: web::Json<LineItem>) -> actix_web::Result<HttpResponse> {
///     cart.update_items(|items| items.push(item.into_inner()))?;
///     cart.push_notices("Added to your cart.".to_owned())?;
///     Ok(HttpResponse::Ok().finish())
/// }
/// ```
///
/// Field types need only `Serialize + DeserializeOwned` (and `Default`, unless the field is an
/// `Option` or has `#[session(default = ...)]`). Register the type on the middleware with
/// `SessionMiddlewareBuilder::register::<Cart>()` so that `build()` checks its backend and its
/// keys (see below).
///
/// # The generated accessor
/// `CartSession` (the struct's name plus `Session`, with the struct's visibility) is an
/// actix-web extractor whose error is `SessionError`. Extracting it opens the session on its
/// backend, loading it on first use in the request; extracting it twice, or opening the same
/// session through `Sessions`, gives the same session. For each field `field: T` it has:
///
/// | method | does |
/// |---|---|
/// | `field() -> Result<T, SessionError>` | the stored value; when absent, `None` for an `Option`, else the default |
/// | `set_field(value: impl Borrow<T>) -> Result<(), SessionError>` | stores the value, given as a `T` or a `&T` (`None` removes the key) |
/// | `remove_field()` | removes the key |
/// | `update_field(f: impl FnOnce(&mut T) -> R) -> Result<R, SessionError>` | reads the value (or its default), lets `f` change it, stores it as the setter would |
/// | `push_field(item)` (flash fields) | appends one message to the list |
/// | `take_field() -> Result<T, SessionError>` (flash fields) | returns the list and removes it: read once |
///
/// and for the whole struct:
///
/// | method | does |
/// |---|---|
/// | `load() -> Result<Cart, SessionError>` | reads every field |
/// | `store(&Cart) -> Result<(), SessionError>` | writes every field, all or nothing |
/// | `renew()`, `purge()`, `clear()` | the session's own verbs |
/// | `set_session_expiry(Expiry)`, `session_expiry()` | the session's expiry chosen at run time ("remember me"), as `Session::set_expiry` and `Session::expiry` |
/// | `as_session()`, `into_session()` | the untyped `Session` underneath |
/// | `owned_sessions()`, `end_session(&handle)`, `end_other_sessions()`, `end_all_sessions()` | with an `owner` field (see below): list and end the owner's sessions, as the `Session` methods of the same names (async) |
///
/// Setters only borrow their argument, so `set_items(&items)` stores a value the caller keeps
/// using; `set_items(items)` works as well. (Since setters became generic, an argument whose
/// type was inferred from the setter, such as `set_lang("en".into())`, needs its type written:
/// `set_lang("en".to_owned())`.)
///
/// The field's `///` comments are copied onto its accessors. A stored value that no longer
/// deserializes as the field's type (say, after a deployment changed it) is
/// `SessionError::WrongType`, naming the session, the key and the expected type; never a panic,
/// never a silent default. A write that fails (for example a cookie-backed session over the
/// 4096-byte cookie limit) returns the runtime's `SessionError` and leaves the session unchanged.
///
/// # Struct attributes
/// ## `#[session(name = "...")]`
/// The session's name, which is also its cookie's name (unless a `SessionConfig` sets another
/// cookie name). Default: the type's name in snake_case (`UserPrefs` → `user_prefs`). It must be
/// a valid cookie name: ASCII letters, digits and ``!#$%&'*+-.^_`|~``.
///
/// ```
/// # use actix_typed_session::SessionData;
/// #[derive(SessionData)]
/// #[session(name = "prefs")]
/// struct UserPrefs {
///     lang: Option<String>,
/// }
/// assert_eq!(<UserPrefs as SessionData>::NAME, "prefs");
/// ```
///
/// ## `#[session(backend = "...")]`
/// The name of a backend registered with `.backend(name, store)` on the middleware builder.
/// Default: the session's configured backend, or the middleware's default backend.
///
/// ```
/// # use actix_typed_session::SessionData;
/// #[derive(SessionData)]
/// #[session(backend = "datastore")]
/// struct Cart {
///     items: Vec<String>,
/// }
/// assert_eq!(<Cart as SessionData>::BACKEND, Some("datastore"));
/// ```
///
/// Backend names are yours to choose, with one convention: `"cookie"` and `"memory"`, the names
/// of the built-in backends' cargo features, stand for those backends. Naming one while its
/// feature is off is a compile error that names the feature to enable. (If you register a store
/// of your own under such a name with the feature off, register it under another name.)
/// Whether any other name is registered is checked by `build()` for registered types, and at
/// the first request otherwise.
///
/// ## `#[session(extractor = "...")]`
/// The name of the generated extractor, when `{Struct}Session` is taken by a type of yours.
/// Written as a string or a bare identifier.
///
/// ```
/// # use actix_typed_session::SessionData;
/// struct CartSession; // already the name of something else
///
/// #[derive(SessionData)]
/// #[session(extractor = "CartAccess")]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// async fn count(cart: CartAccess) -> actix_web::Result<String> {
///     Ok(cart.items()?.len().to_string())
/// }
/// ```
///
/// ## `#[session(crate = "...")]`
/// The path of the `actix-typed-session` crate, for code that re-exports it under another
/// name. Default: `::actix_typed_session`.
///
/// ```
/// # use actix_typed_session::SessionData;
/// mod web_kit {
///     pub use actix_typed_session as sessions;
/// }
///
/// #[derive(SessionData)]
/// #[session(crate = "web_kit::sessions")]
/// struct Visit {
///     count: u32,
/// }
/// ```
///
/// # Field attributes
/// ## `#[session(rename = "...")]`
/// The key the field is stored under. Default: the field's name. Renaming a field in Rust
/// while keeping its key keeps existing sessions readable.
///
/// ```
/// # use actix_typed_session::SessionData;
/// #[derive(SessionData)]
/// struct Login {
///     #[session(rename = "uid")]
///     user_id: Option<u64>,
/// }
/// ```
///
/// ## `#[session(flash)]`
/// Read-once messages on a `Vec<T>` field: `push_field(item)` appends one, `take_field()`
/// returns them all and removes the key, so the next request sees none. An empty list is an
/// absent key.
///
/// ```
/// # use actix_typed_session::SessionData;
/// # use actix_web::HttpResponse;
/// #[derive(SessionData)]
/// struct Flash {
///     #[session(flash)]
///     notices: Vec<String>,
/// }
///
/// async fn show(flash: FlashSession) -> actix_web::Result<HttpResponse> {
///     let notices = flash.take_notices()?; // gone from the session afterwards
///     Ok(HttpResponse::Ok().body(notices.join("\n")))
/// }
/// ```
///
/// ## `#[session(default = "...")]`
/// A function (path) called for an absent value, where `Default` does not fit or does not
/// exist. Not for flash fields.
///
/// ```
/// # use actix_typed_session::SessionData;
/// fn english() -> String {
///     "en".to_owned()
/// }
///
/// #[derive(SessionData)]
/// struct Prefs {
///     #[session(default = "english")]
///     lang: String,
/// }
/// ```
///
/// ## `#[session(owner)]`
/// The field that names the logged-in user. Its value is stored under its key like any other
/// field, and the session is also tied to the value's text (its `Display`) as its owner
/// (`Session::set_owner`), so that the user's sessions can be listed and ended:
///
/// - `set_field(value)` stores the value and sets the owner; for an `Option` field,
///   `set_field(None)` removes the key and unties the session (`Session::clear_owner`);
/// - `remove_field()` removes the key and unties the session;
/// - `store(&value)` keeps the owner in step with the field, like the setter.
///
/// The key and the owner change together, or on error not at all: an owner whose text is empty
/// or over 256 bytes is `SessionError::InvalidOwner`, a server-side store that keeps no owner
/// index is `SessionError::OwnersUnsupported`. So a plain `String` owner field cannot hold `""`;
/// make it an `Option` for a session that may be logged out. The field's type (the `T` of an
/// `Option<T>`) must implement `Display`. At most one field of a struct is the owner, and not
/// a flash field. The owner set by other code (`Session::set_owner` directly) is not copied
/// into the field.
///
/// With an owner field the accessor also has `owned_sessions()`, `end_session(&handle)`,
/// `end_other_sessions()` and `end_all_sessions()`, which pass through to the `Session` methods
/// of the same names (also reachable through `as_session()`).
///
/// ```
/// # use actix_typed_session::SessionData;
/// # use actix_web::{web, HttpResponse};
/// #[derive(SessionData)]
/// #[session(name = "auth")]
/// struct Auth {
///     #[session(owner)]
///     user_id: Option<u64>,
/// }
///
/// async fn login(auth: AuthSession, user: web::Path<u64>) -> actix_web::Result<HttpResponse> {
///     auth.renew(); // a new id at login, against session fixation
///     auth.set_user_id(Some(user.into_inner()))?; // stores `user_id`, ties the session to it
///     Ok(HttpResponse::Ok().finish())
/// }
///
/// async fn devices(auth: AuthSession) -> actix_web::Result<HttpResponse> {
///     let sessions = auth.owned_sessions().await?; // every session of this user
///     Ok(HttpResponse::Ok().json(sessions))
/// }
///
/// async fn log_out_everywhere_else(auth: AuthSession) -> actix_web::Result<HttpResponse> {
///     let ended = auth.end_other_sessions().await?;
///     Ok(HttpResponse::Ok().body(format!("{ended} other sessions ended")))
/// }
///
/// async fn logout(auth: AuthSession) -> HttpResponse {
///     auth.purge(); // or `auth.set_user_id(None)?` to keep the session but untie it
///     HttpResponse::Ok().finish()
/// }
/// ```
///
/// # Checked when the app is built
/// `SessionMiddlewareBuilder::register::<T>()` makes `build()` fail with a `BuildError` when the
/// type names a backend that is not registered (naming the type, the backend and the backends
/// that exist), when two types put one session on different backends, and when two types that
/// share a session store different types under one key.
///
/// # Compile errors
/// Each points at the offending tokens: input that is not a struct with named fields, generic
/// structs, unknown or duplicate attributes, two fields on one key, `flash` on a field that is
/// not a `Vec`, more than one `owner` field or `owner` with `flash`, an owner type without
/// `Display`, a session name that cannot be a cookie name, and a field whose accessor names
/// would collide with another method. All errors of one struct are reported in one compile.
///
/// Generic structs are not supported, since one session name stores one set of types:
///
/// ```compile_fail
/// # use actix_typed_session::SessionData;
/// #[derive(SessionData)]
/// struct Wrapper<T> {
///     value: Option<T>,
/// }
/// ```
///
/// `Option<T>` and `Vec<T>` are recognised by their names: a type alias of `Option<T>` is stored
/// as a plain value (its `None` as JSON `null`), and `flash` needs `Vec<T>` written out.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
