//! Two typed sessions on different backends in one handler.

mod derive_common;

use actix_typed_session::{CookieStore, Key, MemoryStore, SessionData, SessionMiddleware};
use actix_web::{http::StatusCode, test, web, App, HttpResponse};
use derive_common::Client;
use serde_json::{json, Value};

#[derive(SessionData)]
#[session(backend = "cookie")]
struct Prefs {
    theme: Option<String>,
}

#[derive(SessionData)]
#[session(name = "cart", backend = "memory")]
struct Basket {
    items: Vec<String>,
}

async fn write(prefs: PrefsSession, basket: BasketSession) -> actix_web::Result<HttpResponse> {
    prefs.set_theme(Some("dark".to_owned()))?;
    let mut items = basket.items()?;
    items.push("book".to_owned());
    basket.set_items(items)?;
    Ok(HttpResponse::Ok().finish())
}

async fn read(prefs: PrefsSession, basket: BasketSession) -> actix_web::Result<HttpResponse> {
    let backends = [
        format!("{:?}", prefs.as_session()),
        format!("{:?}", basket.as_session()),
    ];
    Ok(HttpResponse::Ok().json(json!({
        "theme": prefs.theme()?,
        "items": basket.items()?,
        "debug": backends,
    })))
}

#[actix_web::test]
async fn two_typed_sessions_on_different_backends_in_one_handler() {
    let middleware = SessionMiddleware::builder(Key::generate())
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
        .register::<Prefs>()
        .register::<Basket>()
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            .route("/write", web::post().to(write))
            .route("/read", web::get().to(read)),
    )
    .await;
    let client = Client::new(app);

    let reply = client.send(test::TestRequest::post().uri("/write")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let prefs = reply.cookie("prefs").expect("a prefs cookie");
    let cart = reply.cookie("cart").expect("a cart cookie");
    assert!(
        prefs.value().len() > cart.value().len(),
        "the cookie session carries its data, the memory session only an id"
    );

    client.send(test::TestRequest::post().uri("/write")).await;
    let reply = client.get("/read").await;
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["theme"], json!("dark"));
    assert_eq!(body["items"], json!(["book", "book"]));
    let debug = body["debug"].to_string();
    assert!(debug.contains(r#"backend: \"cookie\""#), "{debug}");
    assert!(debug.contains(r#"backend: \"memory\""#), "{debug}");
}

#[actix_web::test]
async fn an_unregistered_type_still_works_and_fails_only_its_own_requests() {
    // No `register`: the session is resolved at its first request.
    let middleware = SessionMiddleware::builder(Key::generate())
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(middleware)
            .route(
                "/prefs",
                web::get().to(|p: PrefsSession| async move {
                    p.set_theme(Some("light".to_owned()))?;
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/basket",
                web::get().to(|b: BasketSession| async move {
                    b.items()?;
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
                }),
            ),
    )
    .await;
    let client = Client::new(app);
    assert_eq!(client.get("/prefs").await.status, StatusCode::OK);
    let reply = client.get("/basket").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty());
}
