//! Middleware behaviour beyond the per-backend conformance suite: laziness, several named
//! sessions on different backends, the cookie size limit, key rotation, store failures and logs.

use actix_typed_session::{
    CookieSecurity, CookieStore, Key, MemoryStore, Session, SessionConfig, SessionError,
    SessionMiddleware, Sessions, StatusCode,
};
use actix_typed_session_tests::{
    client, get_ok, CountingStore, FailingStore, LogCapture, SECRET_DETAIL,
};
use actix_web::{test, web, App, HttpResponse};
use serde_json::json;

fn key(n: u8) -> Key {
    Key::from(&[n; 64][..])
}

#[actix_web::test]
async fn a_route_that_never_extracts_a_session_does_no_store_io() {
    let (store, counts) = CountingStore::new(MemoryStore::default());
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", store)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "a", json!(1)).await;
    let (loads, writes) = (counts.loads(), counts.writes());
    for _ in 0..5 {
        let reply = c.get("/untouched").await;
        assert!(reply.set_cookies.is_empty());
    }
    assert_eq!((counts.loads(), counts.writes()), (loads, writes));
    // A read loads once and writes nothing.
    c.get("/session/get/a").await;
    assert_eq!((counts.loads(), counts.writes()), (loads + 1, writes));
}

#[actix_web::test]
async fn a_new_empty_session_touches_no_store() {
    let (store, counts) = CountingStore::new(MemoryStore::default());
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", store)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.get("/session/get/a").await;
    c.get("/session/entries").await;
    // No cookie came in, so there was nothing to load and nothing to write.
    assert_eq!((counts.loads(), counts.writes()), (0, 0));
}

async fn both(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    let prefs = sessions.open("prefs").await?;
    let cart = sessions.open("cart").await?;
    prefs.insert("theme", "dark")?;
    let mut items: Vec<String> = cart.get("items")?.unwrap_or_default();
    items.push(format!("item{}", items.len()));
    cart.insert("items", &items)?;
    Ok(HttpResponse::Ok().json(items))
}

#[actix_web::test]
async fn named_sessions_on_different_backends_share_one_request() {
    let memory = MemoryStore::default();
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .backend("memory", memory.clone())
        .session("prefs", SessionConfig::new().backend("cookie"))
        .session("cart", SessionConfig::new().backend("memory"))
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route("/both", web::post().to(both))).await;
    let c = actix_typed_session_tests::Client::new(app);
    let first = c.post("/both").await;
    assert_eq!(first.set_cookies.len(), 2, "one cookie per session");
    let cart_id = c.cookie("cart").unwrap();
    assert_eq!(
        cart_id.len(),
        43,
        "the server-side session's cookie is an opaque id"
    );
    assert!(
        c.cookie("prefs").unwrap().len() > 43,
        "the cookie session carries its data"
    );
    assert_eq!(memory.len(), 1);
    let second = c.post("/both").await;
    assert_eq!(second.json(), json!(["item0", "item1"]));
    // prefs did not change (same value), cart changed: only the cart was written, and the
    // browser-session cart cookie did not need re-sending.
    assert!(second.set_cookies.is_empty(), "{:?}", second.set_cookies);
}

async fn open_twice(sessions: Sessions, default: Session) -> actix_web::Result<HttpResponse> {
    let again = sessions.open_default().await?;
    default.insert("a", 1)?;
    // Both handles are the same session.
    Ok(HttpResponse::Ok().json(again.get::<i32>("a")?))
}

async fn two_extractors(first: Session, second: Session) -> actix_web::Result<HttpResponse> {
    first.insert("a", 1)?;
    Ok(HttpResponse::Ok().json(second.get::<i32>("a")?))
}

#[actix_web::test]
async fn two_session_extractors_in_one_handler_are_one_session() {
    // A cookie session opens at extraction (no I/O); a memory one through the store's future.
    for backend in ["cookie", "memory"] {
        let mw = SessionMiddleware::builder(key(1))
            .backend("cookie", CookieStore::default())
            .backend("memory", MemoryStore::default())
            .default_backend(backend)
            .build()
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(mw)
                .route("/two", web::get().to(two_extractors)),
        )
        .await;
        let c = actix_typed_session_tests::Client::new(app);
        let reply = c.get("/two").await;
        assert_eq!(reply.json(), json!(1), "{backend}");
        assert_eq!(
            reply.set_cookies.len(),
            1,
            "{backend}: one session, one cookie"
        );
    }
}

async fn wrong_backend(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    sessions.open_on("prefs", "memory").await?;
    Ok(HttpResponse::Ok().finish())
}

#[actix_web::test]
async fn one_session_opened_twice_is_one_state_and_backend_conflicts_are_errors() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
        .session("prefs", SessionConfig::new().backend("cookie"))
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(mw)
            .route("/twice", web::get().to(open_twice))
            .route("/wrong", web::get().to(wrong_backend)),
    )
    .await;
    let c = actix_typed_session_tests::Client::new(app);
    assert_eq!(c.get("/twice").await.json(), json!(1));
    let wrong = c.get("/wrong").await;
    assert_eq!(wrong.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(wrong.body.is_empty(), "errors are opaque: {:?}", wrong.body);
}

async fn fill(session: Session, size: web::Path<usize>) -> actix_web::Result<HttpResponse> {
    match session.insert("blob", "x".repeat(*size)) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(SessionError::TooLarge {
            session: name,
            size,
            limit,
        }) => Ok(HttpResponse::PayloadTooLarge().json(json!([name, size, limit]))),
        Err(other) => Err(other.into()),
    }
}

#[actix_web::test]
async fn cookie_size_is_checked_on_the_final_cookie_at_insert() {
    for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
        let mw = SessionMiddleware::builder(key(1))
            .backend("cookie", CookieStore::new(security))
            .build()
            .unwrap();
        let app =
            test::init_service(App::new().wrap(mw).route("/fill/{n}", web::post().to(fill))).await;
        let c = actix_typed_session_tests::Client::new(app);
        // Find the largest blob that fits by bisection over real requests.
        let (mut fits, mut too_big) = (0usize, 4096usize);
        while too_big - fits > 1 {
            let mid = (fits + too_big) / 2;
            let reply = c
                .send_raw(test::TestRequest::post().uri(&format!("/fill/{mid}")))
                .await;
            if reply.status == StatusCode::OK {
                fits = mid;
            } else {
                assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
                too_big = mid;
            }
        }
        let ok = c
            .send_raw(test::TestRequest::post().uri(&format!("/fill/{fits}")))
            .await;
        let cookie = ok
            .cookie("session")
            .expect("the largest fitting session is sent");
        let size = cookie.name().len() + 1 + cookie.value().len();
        assert!(
            size <= 4096 && size > 4090,
            "{security:?}: largest cookie is {size} bytes"
        );
        let refused = c
            .send_raw(test::TestRequest::post().uri(&format!("/fill/{too_big}")))
            .await;
        let [name, size, limit] = refused
            .json()
            .as_array()
            .unwrap()
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(name, json!("session"));
        assert!(size.as_u64().unwrap() > 4096);
        assert_eq!(limit, json!(4096));
        assert!(
            refused.set_cookies.is_empty(),
            "nothing is sent for a refused insert"
        );
    }
}

async fn grow(session: Session) -> actix_web::Result<HttpResponse> {
    let small: Option<String> = session.get("small")?;
    let err = session.insert("big", "y".repeat(5000)).unwrap_err();
    assert!(err.to_string().contains("server-side backend"), "{err}");
    // The session keeps its previous state and can still take small changes.
    assert!(!session.contains_key("big"));
    session.insert("small", format!("{}+", small.unwrap_or_default()))?;
    Ok(HttpResponse::Ok().json(session.entries().clone()))
}

#[actix_web::test]
async fn a_refused_insert_keeps_the_previous_state() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route("/grow", web::post().to(grow))).await;
    let c = actix_typed_session_tests::Client::new(app);
    assert_eq!(c.post("/grow").await.json(), json!({"small": "+"}));
    assert_eq!(c.post("/grow").await.json(), json!({"small": "++"}));
}

/// `levels` arrays, one inside the other, around a number.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

async fn deep(session: Session) -> actix_web::Result<HttpResponse> {
    if let Some(stored) = session.get::<serde_json::Value>("deep")? {
        return Ok(HttpResponse::Ok().json(stored == nested(100)));
    }
    let err = session.insert("deep", nested(101)).unwrap_err();
    assert!(matches!(err, SessionError::Serialize { .. }), "{err:?}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("100 levels"), "{cause}");
    session.insert("deep", nested(100))?;
    Ok(HttpResponse::Ok().json(false))
}

#[actix_web::test]
async fn values_nested_too_deep_to_read_back_are_refused_at_insert() {
    for backend in ["cookie", "memory"] {
        let builder = SessionMiddleware::builder(key(1));
        let mw = match backend {
            "cookie" => builder.backend("s", CookieStore::default()),
            _ => builder.backend("s", MemoryStore::default()),
        }
        .build()
        .unwrap();
        let app =
            test::init_service(App::new().wrap(mw).route("/deep", web::post().to(deep))).await;
        let c = actix_typed_session_tests::Client::new(app);
        // The first request stores the deepest value allowed; the second reads it back.
        assert_eq!(c.post("/deep").await.json(), json!(false), "{backend}");
        assert_eq!(c.post("/deep").await.json(), json!(true), "{backend}");
    }
}

#[actix_web::test]
async fn an_incoming_cookie_over_4096_bytes_is_ignored() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set_cookie("session", &"A".repeat(4100));
    let reply = c.get("/session/entries").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
}

fn rotating(current: u8, previous: &[u8]) -> SessionMiddleware {
    SessionMiddleware::builder(key(current))
        .previous_keys(previous.iter().map(|n| key(*n)))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap()
}

#[actix_web::test]
async fn key_rotation_accepts_and_reseals_old_cookies_until_the_old_key_is_removed() {
    let old = client(rotating(1, &[])).await;
    old.set("session", "user", json!("ann")).await;
    let sealed_with_old = old.cookie("session").unwrap();

    // Rotated: the new key writes, the old key still reads, and the cookie is re-sealed at once.
    let rotated = client(rotating(2, &[1])).await;
    rotated.set_cookie("session", &sealed_with_old);
    let reply = rotated.get("/session/get/user").await;
    assert_eq!(reply.json(), json!("ann"));
    let resealed = reply
        .cookie("session")
        .expect("re-sealed with the current key");
    assert_ne!(resealed.value(), sealed_with_old);

    // Only the new key: the re-sealed cookie works, the old one is anonymous.
    let new_only = client(rotating(2, &[])).await;
    new_only.set_cookie("session", resealed.value());
    assert_eq!(new_only.read("session", "user").await, Some(json!("ann")));
    new_only.set_cookie("session", &sealed_with_old);
    assert_eq!(new_only.read("session", "user").await, None);
}

#[actix_web::test]
async fn a_cookie_sealed_for_one_session_does_not_open_as_another() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("prefs", "admin", json!(true)).await;
    let prefs = c.cookie("prefs").unwrap();
    c.set_cookie("cart", &prefs);
    assert_eq!(c.read("cart", "admin").await, None);
}

#[actix_web::test]
async fn store_failures_are_logged_with_their_cause_and_opaque_to_clients() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let (store, mode) = FailingStore::new();
    let mw = SessionMiddleware::builder(key(1))
        .backend("db", store)
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "a", json!(1)).await;
    let id = c.cookie("session").unwrap();

    mode.fail_loads();
    let reply = c.get("/session/get/a").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.is_empty(), "detail leaked: {:?}", reply.body);
    assert!(reply.set_cookies.is_empty());
    // Routes without sessions are unaffected by the outage.
    assert_eq!(c.get("/untouched").await.status, StatusCode::OK);

    mode.fail_writes();
    let reply = c.post_json("/session/set/a", json!(99)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.is_empty());
    assert!(
        reply.set_cookies.is_empty(),
        "no cookie for a write that failed"
    );

    // A new visitor whose session cannot be created gets no cookie either.
    let fresh = c
        .send_raw(
            test::TestRequest::post()
                .uri("/session/set/b")
                .set_json(json!(2)),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(fresh.set_cookies.is_empty());

    mode.healthy();
    assert_eq!(
        c.read("session", "a").await,
        Some(json!(1)),
        "the failed write changed nothing"
    );

    let text = logs.text();
    assert!(text.contains(SECRET_DETAIL), "the cause is logged: {text}");
    assert!(text.contains("session store failed"));
    assert!(!text.contains(&id), "the session id was logged");
}

#[actix_web::test]
async fn bad_cookies_are_warned_about_without_their_value() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .backend("memory", MemoryStore::default())
        .session("m", SessionConfig::new().backend("memory"))
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "a", json!("secret-value")).await;
    c.set("m", "a", json!(1)).await;
    let good = c.cookie("session").unwrap();
    let id = c.cookie("m").unwrap();
    // The last character changed (to `B` when it was `A`, so that the value does change).
    let last = if good.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{}{last}", &good[..good.len() - 1]);
    c.set_cookie("session", &tampered);
    assert_eq!(c.read("session", "a").await, None);
    let last = if id.ends_with('B') { 'C' } else { 'B' };
    let forged = format!("{}{last}", &id[..id.len() - 1]);
    c.set_cookie("m", &forged);
    assert_eq!(c.read("m", "a").await, None);
    let text = logs.text();
    assert!(text.contains("WARN"), "tampering is warned about: {text}");
    for secret in [&good, &tampered, &id, &forged, &"secret-value".to_owned()] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} appeared in the logs"
        );
    }
}

async fn needs_session(session: Session) -> HttpResponse {
    HttpResponse::Ok().body(session.name().to_owned())
}

/// A missing middleware is an opaque 500 to the client, and the message that names the fix is
/// logged at error level (once: it is the same mistake on every request).
#[actix_web::test]
async fn a_missing_middleware_is_an_opaque_error_logged_with_the_fix() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let app = test::init_service(App::new().route("/", web::get().to(needs_session))).await;
    for _ in 0..2 {
        let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = test::read_body(res).await;
        assert!(body.is_empty());
    }
    let message = SessionError::MissingMiddleware.to_string();
    assert!(message.contains("SessionMiddleware"), "{message}");
    actix_typed_session_tests::assert_opaque(&SessionError::MissingMiddleware);
    let text = logs.text();
    assert_eq!(text.matches(&message).count(), 1, "{text}");
    assert!(text.contains("ERROR"), "{text}");
}

/// A session asked for on a backend that was never registered is logged at error level too.
#[actix_web::test]
async fn an_unregistered_backend_is_logged() {
    let logs = LogCapture::default();
    let _guard = logs.install();
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route(
        "/",
        web::get().to(|sessions: Sessions| async move {
            sessions.open_on("cart", "datastore").await?;
            Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
        }),
    ))
    .await;
    let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let text = logs.text();
    assert!(
        text.contains("ERROR") && text.contains("datastore"),
        "{text}"
    );
}

async fn two_sessions(sessions: Sessions) -> actix_web::Result<HttpResponse> {
    sessions.open("a").await?.insert("x", 1)?;
    sessions.open("b").await?.insert("x", 1)?;
    Ok(HttpResponse::Ok().finish())
}

/// Two stores cannot commit together: when the second fails, the first stays saved, and the
/// failure response carries its cookie so that the client and the store agree.
#[actix_web::test]
async fn a_failed_save_still_sends_the_cookies_of_sessions_already_saved() {
    let memory = MemoryStore::default();
    let (failing, mode) = FailingStore::new();
    let mw = SessionMiddleware::builder(key(1))
        .backend("mem", memory.clone())
        .backend("bad", failing)
        .session("a", SessionConfig::new().backend("mem"))
        .session("b", SessionConfig::new().backend("bad"))
        .build()
        .unwrap();
    mode.fail_writes();
    let app = test::init_service(
        App::new()
            .wrap(mw)
            .route("/two", web::post().to(two_sessions)),
    )
    .await;
    let c = actix_typed_session_tests::Client::new(app);
    let reply = c.post("/two").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(reply.body.is_empty());
    assert_eq!(memory.len(), 1);
    assert!(
        reply.cookie("a").is_some(),
        "the saved session's cookie was not sent"
    );
    assert!(reply.cookie("b").is_none());
}

/// Ids are taken from the session cookie only: never from the query, a header or the body.
#[actix_web::test]
async fn ids_are_accepted_only_from_the_cookie() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", MemoryStore::default())
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "user", json!("ann")).await;
    let id = c.cookie("session").unwrap();
    for req in [
        test::TestRequest::get().uri(&format!(
            "/session/get/user?session={id}&__Host-session={id}&id={id}"
        )),
        test::TestRequest::get()
            .uri("/session/get/user")
            .insert_header(("session", id.as_str()))
            .insert_header(("__Host-session", id.as_str()))
            .insert_header(("x-session-id", id.as_str()))
            .insert_header(("authorization", format!("Bearer {id}"))),
        test::TestRequest::get()
            .uri("/session/get/user")
            .insert_header(("cookie2", format!("__Host-session={id}"))),
    ] {
        let reply = c.send_raw(req).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "an id outside the cookie was adopted"
        );
    }
}

/// Purge leaves no record behind on a server-side store.
#[actix_web::test]
async fn purge_leaves_no_record_behind() {
    let memory = MemoryStore::default();
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", memory.clone())
        // No grace window: the old id's read-only copy would be a second record for a while.
        .renew_grace(std::time::Duration::ZERO)
        .build()
        .unwrap();
    let c = client(mw).await;
    c.set("session", "user", json!("ann")).await;
    c.post("/session/renew").await;
    assert_eq!(memory.len(), 1, "renew leaves exactly one record");
    c.post("/session/purge").await;
    assert_eq!(memory.len(), 0);
}

/// An earlier cookie value still opens to its own data after a request changed the session it
/// was read into: a handler's change copies the data it shares with the thread's cache of opened
/// values, which never hands out changed data for the value it was opened from.
#[actix_web::test]
async fn an_earlier_cookie_value_keeps_its_data_after_the_session_changed() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route(
        "/",
        web::get().to(|session: Session| async move {
            let n: u64 = session.get("n")?.unwrap_or(0);
            session.insert("n", n + 1)?;
            Ok::<_, actix_web::Error>(HttpResponse::Ok().body(n.to_string()))
        }),
    ))
    .await;
    let send = |cookie: Option<actix_web::cookie::Cookie<'static>>| {
        let app = &app;
        async move {
            let mut req = test::TestRequest::get().uri("/");
            if let Some(cookie) = cookie {
                req = req.cookie(cookie);
            }
            let res = test::call_service(app, req.to_request()).await;
            let next = res.response().cookies().next().map(|c| c.into_owned());
            let body = test::read_body(res).await;
            (String::from_utf8(body.to_vec()).unwrap(), next)
        }
    };
    let (n, first) = send(None).await;
    assert_eq!(n, "0");
    // Served from the cache (the value was remembered when it was sealed), then changed.
    let (n, second) = send(first.clone()).await;
    assert_eq!(n, "1");
    let (n, _) = send(first.clone()).await;
    assert_eq!(
        n, "1",
        "the first value opened to data a later request changed"
    );
    let (n, _) = send(second).await;
    assert_eq!(n, "2");
    // And again from the first value: its own data, whether cached or opened.
    let (n, _) = send(first).await;
    assert_eq!(n, "1");
}

/// An insert refused as too large leaves the key's earlier value (and the rest of the session)
/// as it was, in the same request and in the cookie that goes out.
#[actix_web::test]
async fn a_refused_overwrite_keeps_the_earlier_value() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route(
        "/",
        web::get().to(|session: Session| async move {
            session.insert("a", "small")?;
            session.insert("b", 2)?;
            let refused = session.insert("a", "x".repeat(5000));
            assert!(
                matches!(refused, Err(SessionError::TooLarge { .. })),
                "{refused:?}"
            );
            let a: Option<String> = session.get("a")?;
            let b: Option<u32> = session.get("b")?;
            Ok::<_, actix_web::Error>(HttpResponse::Ok().json(json!([
                a,
                b,
                session.entries().len()
            ])))
        }),
    ))
    .await;
    let res = get_ok(&app, "/").await;
    assert_eq!(res.response().cookies().count(), 1);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body, json!(["small", 2, 2]));
}
