//! Every generated accessor of `#[derive(SessionData)]`, over real requests, on the cookie and
//! the memory backend.

mod derive_common;

use std::time::Duration;

use actix_typed_session::{
    CookieStore, Expiry, Key, MemoryStore, SessionData, SessionError, SessionMiddleware,
    SessionStatus, Sessions,
};
use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::StatusCode,
    test, web, App, HttpResponse,
};
use derive_common::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct LineItem {
    sku: String,
    quantity: u32,
}

fn english() -> String {
    "en".to_owned()
}

#[derive(SessionData, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[session(name = "cart")]
struct Cart {
    /// Items in the cart.
    items: Vec<LineItem>,
    coupon: Option<String>,
    #[session(rename = "uid")]
    user_id: Option<u64>,
    #[session(flash)]
    notices: Vec<String>,
    #[session(default = "english")]
    lang: String,
}

type Handler = actix_web::Result<HttpResponse>;

async fn load(cart: CartSession) -> Handler {
    Ok(HttpResponse::Ok().json(cart.load()?))
}

async fn store(cart: CartSession, value: web::Json<Cart>) -> Handler {
    match cart.store(&value) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(SessionError::TooLarge { .. }) => Ok(HttpResponse::PayloadTooLarge().finish()),
        Err(other) => Err(other.into()),
    }
}

/// Sets the fields present in the body, one setter each.
async fn set(cart: CartSession, body: web::Json<Value>) -> Handler {
    let result = (|| {
        if let Some(items) = body.get("items") {
            cart.set_items(serde_json::from_value::<Vec<LineItem>>(items.clone()).unwrap())?;
        }
        if let Some(coupon) = body.get("coupon") {
            cart.set_coupon(serde_json::from_value::<Option<String>>(coupon.clone()).unwrap())?;
        }
        if let Some(uid) = body.get("user_id") {
            cart.set_user_id(serde_json::from_value::<Option<u64>>(uid.clone()).unwrap())?;
        }
        if let Some(notices) = body.get("notices") {
            cart.set_notices(serde_json::from_value::<Vec<String>>(notices.clone()).unwrap())?;
        }
        if let Some(lang) = body.get("lang") {
            cart.set_lang(serde_json::from_value::<String>(lang.clone()).unwrap())?;
        }
        Ok::<_, SessionError>(())
    })();
    match result {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(SessionError::TooLarge { .. }) => Ok(HttpResponse::PayloadTooLarge().finish()),
        Err(other) => Err(other.into()),
    }
}

async fn remove(cart: CartSession, field: web::Path<String>) -> Handler {
    match field.as_str() {
        "items" => cart.remove_items(),
        "coupon" => cart.remove_coupon(),
        "user_id" => cart.remove_user_id(),
        "notices" => cart.remove_notices(),
        "lang" => cart.remove_lang(),
        other => panic!("no field {other}"),
    }
    Ok(HttpResponse::Ok().finish())
}

async fn push(cart: CartSession, notice: web::Path<String>) -> Handler {
    cart.push_notices(notice.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

async fn peek(cart: CartSession) -> Handler {
    Ok(HttpResponse::Ok().json(cart.notices()?))
}

async fn take(cart: CartSession) -> Handler {
    Ok(HttpResponse::Ok().json(cart.take_notices()?))
}

/// The typed getter's error, spelled out.
async fn items(cart: CartSession) -> Handler {
    match cart.items() {
        Ok(items) => Ok(HttpResponse::Ok().json(items)),
        Err(SessionError::WrongType {
            session,
            key,
            expected,
            ..
        }) => Ok(HttpResponse::Conflict().json(json!([session, key, expected]))),
        Err(other) => Err(other.into()),
    }
}

/// `update_items`: appends one item, answers the new length (what the closure returns).
async fn update_items(cart: CartSession, sku: web::Path<String>) -> Handler {
    let item = LineItem {
        sku: sku.into_inner(),
        quantity: 1,
    };
    match cart.update_items(|items| {
        items.push(item);
        items.len()
    }) {
        Ok(len) => Ok(HttpResponse::Ok().json(len)),
        Err(SessionError::WrongType { key, .. }) => Ok(HttpResponse::Conflict().body(key)),
        Err(other) => Err(other.into()),
    }
}

/// `update_coupon` on an `Option` field: `none` clears it, anything else appends to it.
async fn update_coupon(cart: CartSession, code: web::Path<String>) -> Handler {
    cart.update_coupon(|coupon| match code.as_str() {
        "none" => *coupon = None,
        more => coupon.get_or_insert_with(String::new).push_str(more),
    })?;
    Ok(HttpResponse::Ok().finish())
}

/// `update_lang` to `n` copies of "x": 413 when the cookie would be too large.
async fn update_lang(cart: CartSession, n: web::Path<usize>) -> Handler {
    match cart.update_lang(|lang| *lang = "x".repeat(*n)) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(SessionError::TooLarge { .. }) => Ok(HttpResponse::PayloadTooLarge().finish()),
        Err(other) => Err(other.into()),
    }
}

/// Setters borrow: the same values are set by reference and still usable afterwards.
async fn set_borrowed(cart: CartSession, body: web::Json<Cart>) -> Handler {
    let value = body.into_inner();
    cart.set_items(&value.items)?;
    cart.set_coupon(&value.coupon)?;
    cart.set_lang(&value.lang)?;
    Ok(HttpResponse::Ok().json((value.items.len(), value.coupon, value.lang)))
}

/// The untyped view of the same session.
async fn raw_get(sessions: Sessions, key: web::Path<String>) -> Handler {
    let cart = sessions.open("cart").await?;
    Ok(HttpResponse::Ok().json(cart.get::<Value>(&key)?))
}

async fn raw_set(sessions: Sessions, key: web::Path<String>, value: web::Json<Value>) -> Handler {
    sessions
        .open("cart")
        .await?
        .insert(key.into_inner(), value.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

async fn renew(cart: CartSession) -> Handler {
    cart.renew();
    Ok(HttpResponse::Ok().json(cart.as_session().status() == SessionStatus::Renewed))
}

async fn purge(cart: CartSession) -> Handler {
    cart.purge();
    Ok(HttpResponse::Ok().json(cart.as_session().status() == SessionStatus::Purged))
}

/// `set_session_expiry`: an idle timeout of `secs` seconds ("remember me").
async fn remember(cart: CartSession, secs: web::Path<u64>) -> Handler {
    cart.set_session_expiry(Expiry::IdleFor(Duration::from_secs(*secs)))?;
    Ok(HttpResponse::Ok().finish())
}

/// `session_expiry`: the chosen idle timeout in seconds, or null.
async fn remembered(cart: CartSession) -> Handler {
    Ok(HttpResponse::Ok().json(match cart.session_expiry() {
        Expiry::IdleFor(idle) => Some(idle.as_secs()),
        _ => None,
    }))
}

async fn clear(cart: CartSession) -> Handler {
    cart.clear();
    Ok(HttpResponse::Ok().finish())
}

/// Two extractions in one handler share one session.
async fn twice(first: CartSession, second: CartSession) -> Handler {
    first.set_coupon(Some("TWICE".to_owned()))?;
    let seen = second.coupon()?;
    let status = second.into_session().status();
    Ok(HttpResponse::Ok().json(json!([seen, status == SessionStatus::Changed])))
}

async fn client(
    backend: &str,
) -> Client<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    let middleware = SessionMiddleware::builder(Key::generate())
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
        .default_backend(backend)
        .register::<Cart>()
        .build()
        .expect("valid configuration");
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            .route("/load", web::get().to(load))
            .route("/store", web::post().to(store))
            .route("/set", web::post().to(set))
            .route("/set-borrowed", web::post().to(set_borrowed))
            .route("/remove/{field}", web::post().to(remove))
            .route("/push/{notice}", web::post().to(push))
            .route("/peek", web::get().to(peek))
            .route("/take", web::post().to(take))
            .route("/items", web::get().to(items))
            .route("/update-items/{sku}", web::post().to(update_items))
            .route("/update-coupon/{code}", web::post().to(update_coupon))
            .route("/update-lang/{n}", web::post().to(update_lang))
            .route("/raw/{key}", web::get().to(raw_get))
            .route("/raw/{key}", web::post().to(raw_set))
            .route("/renew", web::post().to(renew))
            .route("/purge", web::post().to(purge))
            .route("/clear", web::post().to(clear))
            .route("/remember/{secs}", web::post().to(remember))
            .route("/remembered", web::get().to(remembered))
            .route("/twice", web::post().to(twice)),
    )
    .await;
    Client::new(app)
}

fn post(path: &str) -> test::TestRequest {
    test::TestRequest::post().uri(path)
}

fn json_of(reply: &derive_common::Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {:?}", reply.body))
}

fn full_cart() -> Value {
    json!({
        "items": [{"sku": "book", "quantity": 2}],
        "coupon": "SPRING",
        "user_id": 7,
        "notices": ["welcome"],
        "lang": "fr",
    })
}

fn empty_cart() -> Value {
    json!({"items": [], "coupon": null, "user_id": null, "notices": [], "lang": "en"})
}

async fn getters_give_defaults_when_absent(backend: &str) {
    let client = client(backend).await;
    let reply = client.get("/load").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(json_of(&reply), empty_cart());
    assert!(reply.set_cookies.is_empty(), "reading alone writes nothing");
}

async fn setters_persist_across_requests(backend: &str) {
    let client = client(backend).await;
    let reply = client.send(post("/set").set_json(full_cart())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.cookie("cart").is_some(), "the cart cookie is set");
    assert_eq!(json_of(&client.get("/load").await), full_cart());
}

async fn setters_take_references_too(backend: &str) {
    let client = client(backend).await;
    let reply = client
        .send(post("/set-borrowed").set_json(full_cart()))
        .await;
    assert_eq!(json_of(&reply), json!([1, "SPRING", "fr"]));
    let loaded = json_of(&client.get("/load").await);
    assert_eq!(loaded["items"], full_cart()["items"]);
    assert_eq!(loaded["coupon"], json!("SPRING"));
    assert_eq!(loaded["lang"], json!("fr"));
}

async fn rename_stores_the_field_under_its_key(backend: &str) {
    let client = client(backend).await;
    client
        .send(post("/set").set_json(json!({"user_id": 42})))
        .await;
    assert_eq!(json_of(&client.get("/raw/uid").await), json!(42));
    assert_eq!(json_of(&client.get("/raw/user_id").await), Value::Null);
}

async fn setting_none_removes_an_option_key(backend: &str) {
    let client = client(backend).await;
    client
        .send(post("/set").set_json(json!({"coupon": "X"})))
        .await;
    assert_eq!(json_of(&client.get("/raw/coupon").await), json!("X"));
    client
        .send(post("/set").set_json(json!({"coupon": null})))
        .await;
    assert_eq!(json_of(&client.get("/raw/coupon").await), Value::Null);
    assert_eq!(json_of(&client.get("/load").await)["coupon"], Value::Null);
}

async fn removers_remove_each_field(backend: &str) {
    let client = client(backend).await;
    client.send(post("/set").set_json(full_cart())).await;
    for field in ["items", "coupon", "user_id", "notices", "lang"] {
        let reply = client.send(post(&format!("/remove/{field}"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{field}");
    }
    assert_eq!(json_of(&client.get("/load").await), empty_cart());
    assert_eq!(json_of(&client.get("/raw/uid").await), Value::Null);
}

async fn store_and_load_round_trip(backend: &str) {
    let client = client(backend).await;
    let reply = client.send(post("/store").set_json(full_cart())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(json_of(&client.get("/load").await), full_cart());
    // Storing `None` and an empty flash list removes their keys.
    client.send(post("/store").set_json(empty_cart())).await;
    assert_eq!(json_of(&client.get("/load").await), empty_cart());
    assert_eq!(json_of(&client.get("/raw/coupon").await), Value::Null);
    assert_eq!(json_of(&client.get("/raw/notices").await), Value::Null);
}

async fn flash_messages_are_read_once_across_requests(backend: &str) {
    let client = client(backend).await;
    client.send(post("/push/saved")).await;
    client.send(post("/push/mailed")).await;
    assert_eq!(
        json_of(&client.get("/peek").await),
        json!(["saved", "mailed"])
    );
    let first = client.send(post("/take")).await;
    assert_eq!(json_of(&first), json!(["saved", "mailed"]));
    let second = client.send(post("/take")).await;
    assert_eq!(json_of(&second), json!([]));
    assert_eq!(json_of(&client.get("/raw/notices").await), Value::Null);
}

async fn a_stored_value_of_another_type_is_a_typed_error(backend: &str) {
    let client = client(backend).await;
    client
        .send(post("/raw/items").set_json(json!("not a list")))
        .await;
    let reply = client.get("/items").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let [session, key, expected] = serde_json::from_str::<[String; 3]>(&reply.body).unwrap();
    assert_eq!((session.as_str(), key.as_str()), ("cart", "items"));
    assert!(
        expected.contains("Vec") && expected.contains("LineItem"),
        "{expected}"
    );
    // Through `?` it is an opaque 500, and the bad value is not replaced by a default.
    let reply = client.get("/load").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty());
    assert_eq!(
        json_of(&client.get("/raw/items").await),
        json!("not a list")
    );
}

async fn updaters_change_a_field_in_place_across_requests(backend: &str) {
    let client = client(backend).await;
    // From the default (an empty list), then from the stored value.
    assert_eq!(
        json_of(&client.send(post("/update-items/a")).await),
        json!(1)
    );
    assert_eq!(
        json_of(&client.send(post("/update-items/b")).await),
        json!(2)
    );
    assert_eq!(
        json_of(&client.get("/load").await)["items"],
        json!([{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 1}])
    );
    // An `Option` field: `Some` stores, `None` removes the key.
    client.send(post("/update-coupon/SPR")).await;
    client.send(post("/update-coupon/ING")).await;
    assert_eq!(json_of(&client.get("/raw/coupon").await), json!("SPRING"));
    client.send(post("/update-coupon/none")).await;
    assert_eq!(json_of(&client.get("/raw/coupon").await), Value::Null);
    assert_eq!(json_of(&client.get("/load").await)["coupon"], Value::Null);
}

async fn an_updater_leaves_a_value_of_another_type_in_place(backend: &str) {
    let client = client(backend).await;
    client
        .send(post("/raw/items").set_json(json!({"not": "a list"})))
        .await;
    let reply = client.send(post("/update-items/a")).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.body, "items");
    assert!(reply.set_cookies.is_empty(), "{:?}", reply.set_cookies);
    assert_eq!(
        json_of(&client.get("/raw/items").await),
        json!({"not": "a list"})
    );
}

async fn take_leaves_a_list_of_another_type_in_place(backend: &str) {
    let client = client(backend).await;
    client
        .send(post("/raw/notices").set_json(json!([1, 2])))
        .await;
    let reply = client.send(post("/take")).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&client.get("/raw/notices").await), json!([1, 2]));
}

async fn renew_keeps_the_data_under_a_new_cookie(backend: &str) {
    let client = client(backend).await;
    client.send(post("/set").set_json(full_cart())).await;
    let before = client.value("cart").unwrap();
    let reply = client.send(post("/renew")).await;
    assert_eq!(json_of(&reply), json!(true), "status is Renewed");
    let after = reply
        .cookie("cart")
        .expect("a renewed cookie")
        .value()
        .to_owned();
    assert_ne!(before, after);
    assert_eq!(json_of(&client.get("/load").await), full_cart());
    if backend == "memory" {
        // On a server-side backend the old id is read-only within the renew grace window (the
        // conformance suite checks that it dies after it): the data from before the renew, and
        // no cookie that would replace the new id.
        let old = client
            .send_with_cookie(test::TestRequest::get().uri("/load"), "cart", &before)
            .await;
        assert_eq!(json_of(&old), full_cart());
        assert!(old.set_cookies.is_empty(), "{:?}", old.set_cookies);
    }
}

async fn purge_deletes_the_session_and_its_cookie(backend: &str) {
    let client = client(backend).await;
    client.send(post("/set").set_json(full_cart())).await;
    let before = client.value("cart").unwrap();
    let reply = client.send(post("/purge")).await;
    assert_eq!(json_of(&reply), json!(true), "status is Purged");
    let removal = reply.cookie("cart").expect("a removal cookie");
    assert!(removal.max_age().is_some_and(|a| a.is_zero()), "{removal}");
    assert!(client.value("cart").is_none());
    assert_eq!(json_of(&client.get("/load").await), empty_cart());
    if backend == "memory" {
        let old = client
            .send_with_cookie(test::TestRequest::get().uri("/load"), "cart", &before)
            .await;
        assert_eq!(json_of(&old), empty_cart());
    }
}

async fn clear_removes_every_key(backend: &str) {
    let client = client(backend).await;
    client.send(post("/set").set_json(full_cart())).await;
    client.send(post("/raw/other").set_json(json!(1))).await;
    client.send(post("/clear")).await;
    assert_eq!(json_of(&client.get("/load").await), empty_cart());
    assert_eq!(json_of(&client.get("/raw/other").await), Value::Null);
}

async fn the_accessor_chooses_the_session_expiry(backend: &str) {
    let client = client(backend).await;
    client.send(post("/set").set_json(full_cart())).await;
    assert_eq!(json_of(&client.get("/remembered").await), Value::Null);
    let reply = client.send(post("/remember/20")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let cookie = reply.cookie("cart").expect("the cookie is sent again");
    assert_eq!(cookie.max_age().map(|a| a.whole_seconds()), Some(20));
    assert_eq!(json_of(&client.get("/remembered").await), json!(20));
    assert_eq!(json_of(&client.get("/load").await), full_cart());
    let refused = client.send(post("/remember/0")).await;
    assert_eq!(refused.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(&client.get("/remembered").await), json!(20));
}

async fn extracting_twice_gives_the_same_session(backend: &str) {
    let client = client(backend).await;
    let reply = client.send(post("/twice")).await;
    assert_eq!(json_of(&reply), json!(["TWICE", true]));
    assert_eq!(
        json_of(&client.get("/load").await)["coupon"],
        json!("TWICE")
    );
}

macro_rules! on_backends {
    ($($test:ident),* $(,)?) => {
        mod cookie {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test("cookie").await;
                }
            )*
        }
        mod memory {
            $(
                #[actix_web::test]
                async fn $test() {
                    super::$test("memory").await;
                }
            )*
        }
    };
}

on_backends!(
    getters_give_defaults_when_absent,
    setters_persist_across_requests,
    setters_take_references_too,
    rename_stores_the_field_under_its_key,
    setting_none_removes_an_option_key,
    removers_remove_each_field,
    store_and_load_round_trip,
    flash_messages_are_read_once_across_requests,
    a_stored_value_of_another_type_is_a_typed_error,
    take_leaves_a_list_of_another_type_in_place,
    updaters_change_a_field_in_place_across_requests,
    an_updater_leaves_a_value_of_another_type_in_place,
    renew_keeps_the_data_under_a_new_cookie,
    purge_deletes_the_session_and_its_cookie,
    clear_removes_every_key,
    extracting_twice_gives_the_same_session,
    the_accessor_chooses_the_session_expiry,
);

#[actix_web::test]
async fn a_setter_over_the_cookie_limit_fails_and_changes_nothing() {
    let client = client("cookie").await;
    client.send(post("/set").set_json(full_cart())).await;
    let big = json!({"lang": "x".repeat(5000)});
    let reply = client.send(post("/set").set_json(big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(&client.get("/load").await), full_cart());
}

#[actix_web::test]
async fn an_updater_over_the_cookie_limit_fails_and_changes_nothing() {
    let client = client("cookie").await;
    client.send(post("/set").set_json(full_cart())).await;
    let reply = client.send(post("/update-lang/5000")).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.cookie("cart").is_none(), "nothing to save");
    assert_eq!(json_of(&client.get("/load").await), full_cart());
    let reply = client.send(post("/update-lang/3")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(json_of(&client.get("/raw/lang").await), json!("xxx"));
}

#[actix_web::test]
async fn store_over_the_cookie_limit_writes_no_field() {
    let client = client("cookie").await;
    client.send(post("/set").set_json(full_cart())).await;
    let mut big = full_cart();
    big["coupon"] = json!("NEW");
    big["lang"] = json!("x".repeat(5000));
    let reply = client.send(post("/store").set_json(big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.cookie("cart").is_none(), "nothing to save");
    assert_eq!(json_of(&client.get("/load").await), full_cart());
}

#[actix_web::test]
async fn the_trait_describes_the_session() {
    assert_eq!(<Cart as SessionData>::NAME, "cart");
    assert_eq!(<Cart as SessionData>::BACKEND, None);
}

/// A user type called `PrefsSession` already exists: the extractor gets another name.
#[allow(dead_code)]
struct PrefsSession;

#[derive(SessionData)]
#[session(name = "prefs", extractor = "PrefsAccess")]
struct Prefs {
    theme: Option<String>,
}

#[derive(SessionData)]
#[session(name = "theme", extractor = ThemeAccess)]
struct Theme {
    dark: bool,
}

#[actix_web::test]
async fn the_extractor_can_be_named() {
    async fn set(prefs: PrefsAccess, theme: ThemeAccess) -> Handler {
        prefs.set_theme(Some("dark".to_owned()))?;
        theme.set_dark(true)?;
        Ok(HttpResponse::Ok().finish())
    }
    async fn get(prefs: PrefsAccess, theme: ThemeAccess) -> Handler {
        Ok(HttpResponse::Ok().json((prefs.theme()?, theme.dark()?)))
    }
    let middleware = SessionMiddleware::builder(Key::generate())
        .backend("cookie", CookieStore::default())
        .register::<Prefs>()
        .register::<Theme>()
        .build()
        .expect("valid configuration");
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            .route("/set", web::post().to(set))
            .route("/get", web::get().to(get)),
    )
    .await;
    let client = Client::new(app);
    assert_eq!(json_of(&client.get("/get").await), json!([null, false]));
    client.send(post("/set")).await;
    assert_eq!(json_of(&client.get("/get").await), json!(["dark", true]));
}
