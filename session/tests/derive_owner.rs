//! `#[session(owner)]`: the owner field's setter, remover and `store()` keep the session's owner
//! in step with the field, all or nothing, and the accessor lists and ends the owner's sessions.

mod derive_common;

use std::rc::Rc;

use actix_typed_session::{
    CookieStore, Key, MemoryStore, SessionData, SessionError, SessionHandle, SessionMiddleware,
};
use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::StatusCode,
    test, web, App, HttpResponse,
};
use derive_common::{Client, Reply};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(SessionData, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[session(name = "auth")]
struct Auth {
    /// Before the owner, so that `store()` has written it when the owner fails.
    theme: Option<String>,
    /// The logged-in user.
    #[session(owner, rename = "uid")]
    user: Option<String>,
    note: Option<String>,
}

/// A plain (non-`Option`) owner field.
#[derive(SessionData)]
#[session(name = "badge")]
struct Badge {
    #[session(owner)]
    number: u32,
}

type Handler = actix_web::Result<HttpResponse>;

fn state(auth: &AuthSession) -> Result<Value, SessionError> {
    Ok(json!({
        "owner": auth.as_session().owner(),
        "user": auth.user()?,
        "theme": auth.theme()?,
    }))
}

/// The outcome of a write (`null`, or the expected error's name) and the state after it.
fn outcome(auth: &AuthSession, result: Result<(), SessionError>) -> Result<Value, SessionError> {
    let error = match result {
        Ok(()) => Value::Null,
        Err(SessionError::InvalidOwner { .. }) => json!("InvalidOwner"),
        Err(SessionError::TooLarge { .. }) => json!("TooLarge"),
        Err(other) => return Err(other),
    };
    Ok(json!({"error": error, "state": state(auth)?}))
}

fn reply(value: Result<Value, SessionError>) -> Handler {
    Ok(HttpResponse::Ok().json(value?))
}

async fn get_state(auth: AuthSession) -> Handler {
    Ok(HttpResponse::Ok().json(state(&auth)?))
}

async fn set_user(auth: AuthSession, user: web::Json<Option<String>>) -> Handler {
    let result = auth.set_user(user.into_inner());
    reply(outcome(&auth, result))
}

async fn remove_user(auth: AuthSession) -> Handler {
    auth.remove_user();
    reply(outcome(&auth, Ok(())))
}

async fn store(auth: AuthSession, value: web::Json<Auth>) -> Handler {
    let result = auth.store(&value);
    reply(outcome(&auth, result))
}

async fn sessions(auth: AuthSession) -> Handler {
    Ok(HttpResponse::Ok().json(auth.owned_sessions().await?))
}

async fn end_others(auth: AuthSession) -> Handler {
    Ok(HttpResponse::Ok().json(auth.end_other_sessions().await?))
}

async fn end_all(auth: AuthSession) -> Handler {
    Ok(HttpResponse::Ok().json(auth.end_all_sessions().await?))
}

async fn end_one(auth: AuthSession, handle: web::Path<String>) -> Handler {
    let handle: SessionHandle = handle.parse().expect("a handle");
    Ok(HttpResponse::Ok().json(auth.end_session(&handle).await?))
}

async fn set_badge(badge: BadgeSession, number: web::Path<u32>) -> Handler {
    badge.set_number(number.into_inner())?;
    Ok(HttpResponse::Ok().json(badge.as_session().owner()))
}

async fn remove_badge(badge: BadgeSession) -> Handler {
    badge.remove_number();
    Ok(HttpResponse::Ok().json(badge.as_session().owner()))
}

/// Cookie backend: fills the cookie to 100 plain bytes below its limit, then sets an owner that
/// fits alone but not together with its field. The setter fails after `set_owner` succeeded
/// inside it, and must roll the owner back.
async fn fill_then_grow(auth: AuthSession) -> Handler {
    let note = |len: usize| Some("n".repeat(len));
    let (mut fits, mut too_big) = (0, 4096);
    while too_big - fits > 1 {
        let mid = (fits + too_big) / 2;
        match auth.set_note(note(mid)) {
            Ok(()) => fits = mid,
            Err(SessionError::TooLarge { .. }) => too_big = mid,
            Err(other) => return Err(other.into()),
        }
    }
    auth.set_note(note(fits - 100))?;
    let user = "u".repeat(60);
    let owner_alone_fits = auth.as_session().set_owner(user.as_str()).is_ok();
    auth.as_session().clear_owner();
    let result = auth.set_user(Some(user));
    let outcome = outcome(&auth, result)?;
    reply(Ok(json!({
        "owner_alone_fits": owner_alone_fits,
        "outcome": outcome,
    })))
}

async fn app(
    backend: &str,
) -> Rc<
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
        .register::<Auth>()
        .register::<Badge>()
        .build()
        .expect("valid configuration");
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            .route("/state", web::get().to(get_state))
            .route("/user", web::post().to(set_user))
            .route("/user", web::delete().to(remove_user))
            .route("/store", web::post().to(store))
            .route("/sessions", web::get().to(sessions))
            .route("/end-others", web::post().to(end_others))
            .route("/end-all", web::post().to(end_all))
            .route("/end/{handle}", web::post().to(end_one))
            .route("/badge/{number}", web::post().to(set_badge))
            .route("/badge", web::delete().to(remove_badge))
            .route("/fill-then-grow", web::post().to(fill_then_grow)),
    )
    .await;
    Rc::new(app)
}

fn json_of(reply: &Reply) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {:?}", reply.body))
}

async fn login<S, B>(client: &Client<S>, user: &str) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = client
        .send(test::TestRequest::post().uri("/user").set_json(user))
        .await;
    json_of(&reply)
}

fn post(path: &str) -> test::TestRequest {
    test::TestRequest::post().uri(path)
}

fn signed_in(user: &str) -> Value {
    json!({"owner": user, "user": user, "theme": null})
}

fn anonymous() -> Value {
    json!({"owner": null, "user": null, "theme": null})
}

/// How many sessions `owned_sessions()` lists, and how many of them are marked current.
fn counts(list: &Value) -> (usize, usize) {
    let list = list.as_array().expect("a list");
    let current = list.iter().filter(|s| s["current"] == json!(true)).count();
    (list.len(), current)
}

#[actix_web::test]
async fn setting_the_owner_field_ties_the_session() {
    let client = Client::new(app("memory").await);
    let reply = login(&client, "ann").await;
    assert_eq!(reply, json!({"error": null, "state": signed_in("ann")}));
    // The owner was saved with the session, and loads with it.
    assert_eq!(json_of(&client.get("/state").await), signed_in("ann"));
    // Logging in as someone else moves the owner along with the field.
    login(&client, "bob").await;
    assert_eq!(json_of(&client.get("/state").await), signed_in("bob"));
}

#[actix_web::test]
async fn two_clients_of_one_user_are_both_listed() {
    let app = app("memory").await;
    let (first, second, other) = (
        Client::new(Rc::clone(&app)),
        Client::new(Rc::clone(&app)),
        Client::new(Rc::clone(&app)),
    );
    login(&first, "ann").await;
    login(&second, "ann").await;
    login(&other, "bob").await;
    assert_eq!(counts(&json_of(&first.get("/sessions").await)), (2, 1));
    assert_eq!(counts(&json_of(&second.get("/sessions").await)), (2, 1));
    assert_eq!(counts(&json_of(&other.get("/sessions").await)), (1, 1));
}

#[actix_web::test]
async fn clearing_the_field_unties_the_session() {
    let app = app("memory").await;
    let (first, second) = (Client::new(Rc::clone(&app)), Client::new(Rc::clone(&app)));
    login(&first, "ann").await;
    login(&second, "ann").await;

    // `set_user(None)` unties the second session: ann has one left.
    let reply = json_of(&second.send(post("/user").set_json(Value::Null)).await);
    assert_eq!(reply["state"], anonymous());
    assert_eq!(json_of(&second.get("/state").await), anonymous());
    assert_eq!(counts(&json_of(&first.get("/sessions").await)), (1, 1));
    assert_eq!(json_of(&second.get("/sessions").await), json!([]));

    // `remove_user()` unties too.
    let reply = json_of(&first.send(test::TestRequest::delete().uri("/user")).await);
    assert_eq!(reply["state"], anonymous());
    assert_eq!(json_of(&first.get("/state").await), anonymous());
    assert_eq!(json_of(&first.get("/sessions").await), json!([]));
}

#[actix_web::test]
async fn store_keeps_the_owner_in_step() {
    let client = Client::new(app("memory").await);
    let signed = json!({"user": "ann", "theme": "dark", "note": null});
    assert_eq!(
        json_of(&client.send(post("/store").set_json(&signed)).await)["error"],
        Value::Null
    );
    let expected = json!({"owner": "ann", "user": "ann", "theme": "dark"});
    assert_eq!(json_of(&client.get("/state").await), expected);
    assert_eq!(counts(&json_of(&client.get("/sessions").await)), (1, 1));

    let out = json!({"user": null, "theme": "light", "note": null});
    client.send(post("/store").set_json(&out)).await;
    let expected = json!({"owner": null, "user": null, "theme": "light"});
    assert_eq!(json_of(&client.get("/state").await), expected);
}

#[actix_web::test]
async fn a_failed_set_keeps_the_previous_state() {
    let client = Client::new(app("memory").await);
    login(&client, "ann").await;
    for bad in [String::new(), "x".repeat(300)] {
        let reply = json_of(&client.send(post("/user").set_json(&bad)).await);
        assert_eq!(
            reply,
            json!({"error": "InvalidOwner", "state": signed_in("ann")}),
            "{bad:?}"
        );
        assert_eq!(json_of(&client.get("/state").await), signed_in("ann"));
    }
    // `store()` writes no field when the owner is refused.
    let bad = json!({"user": "", "theme": "dark", "note": null});
    let reply = json_of(&client.send(post("/store").set_json(&bad)).await);
    assert_eq!(
        reply,
        json!({"error": "InvalidOwner", "state": signed_in("ann")})
    );
    assert_eq!(json_of(&client.get("/state").await), signed_in("ann"));
    assert_eq!(counts(&json_of(&client.get("/sessions").await)), (1, 1));
}

#[actix_web::test]
async fn an_entry_over_the_cookie_limit_rolls_the_owner_back() {
    let client = Client::new(app("cookie").await);
    let reply = json_of(&client.send(post("/fill-then-grow")).await);
    assert_eq!(
        reply,
        json!({
            "owner_alone_fits": true,
            "outcome": {"error": "TooLarge", "state": anonymous()},
        })
    );
    assert_eq!(json_of(&client.get("/state").await), anonymous());
}

#[actix_web::test]
async fn the_owner_verbs_pass_through() {
    let app = app("memory").await;
    let clients: Vec<_> = (0..3).map(|_| Client::new(Rc::clone(&app))).collect();
    for client in &clients {
        login(client, "ann").await;
    }
    // End one session by its handle.
    let listed = json_of(&clients[0].get("/sessions").await);
    let other = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == json!(false))
        .unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let ended = json_of(&clients[0].send(post(&format!("/end/{other}"))).await);
    assert_eq!(ended, json!(true));
    assert_eq!(counts(&json_of(&clients[0].get("/sessions").await)), (2, 1));
    // End the others, then all.
    assert_eq!(
        json_of(&clients[0].send(post("/end-others")).await),
        json!(1)
    );
    assert_eq!(counts(&json_of(&clients[0].get("/sessions").await)), (1, 1));
    for client in &clients[1..] {
        assert_eq!(json_of(&client.get("/state").await), anonymous());
    }
    assert_eq!(json_of(&clients[0].send(post("/end-all")).await), json!(1));
    assert_eq!(json_of(&clients[0].get("/state").await), anonymous());
}

#[actix_web::test]
async fn a_plain_owner_field_ties_the_session_to_its_text() {
    let client = Client::new(app("memory").await);
    assert_eq!(json_of(&client.send(post("/badge/7")).await), json!("7"));
    assert_eq!(
        json_of(&client.send(test::TestRequest::delete().uri("/badge")).await),
        Value::Null
    );
}
