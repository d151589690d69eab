//! Where a request's sessions can be reached: the request carries them, so extractors, route
//! guards, middlewares inside and outside the session middleware (also one that spawns the rest
//! of the request) and handles kept across `next.call` all find the same sessions, and nothing
//! keeps the request shared while actix-web routes it.

use actix_typed_session::{
    CookieStore, Key, MemoryStore, Session, SessionConfig, SessionData, SessionError,
    SessionMiddleware, Sessions, StatusCode,
};
use actix_typed_session_tests::{cookie_names, get_ok};
use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    guard::{self, GuardContext},
    http::header::{HeaderName, HeaderValue},
    middleware::{from_fn, Next},
    test, web, App, FromRequest, HttpResponse,
};
use futures_util::future::{ready, LocalBoxFuture, Ready};
use std::sync::{Arc, Mutex};

fn key(n: u8) -> Key {
    Key::from(&[n; 64][..])
}

fn cookie_mw() -> SessionMiddleware {
    SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .build()
        .unwrap()
}

fn memory_mw() -> SessionMiddleware {
    SessionMiddleware::builder(key(1))
        .backend("memory", MemoryStore::default())
        .build()
        .unwrap()
}

/// The `Cookie` header that sends back every cookie `res` set.
fn cookies_of<B>(res: &ServiceResponse<B>) -> String {
    res.response()
        .cookies()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Sends `GET uri` with `cookie` as its `Cookie` header.
async fn get_with_cookie<S>(app: &S, uri: &str, cookie: String) -> ServiceResponse
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    let req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("cookie", cookie));
    test::call_service(app, req.to_request()).await
}

fn header<B>(res: &ServiceResponse<B>, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn login(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("user", "ann")?;
    Ok(HttpResponse::Ok().finish())
}

/// A guard passes requests whose default session has a user.
fn logged_in(ctx: &GuardContext<'_>) -> bool {
    let Ok(sessions) = Sessions::from_guard(ctx) else {
        return false;
    };
    matches!(sessions.open_now("session"), Ok(Some(s)) if s.contains_key("user"))
}

/// A route guard reads the session, and the handler behind it gets the same session.
#[actix_web::test]
async fn a_route_guard_reads_the_session_the_handler_gets() {
    let app = test::init_service(
        App::new()
            .wrap(cookie_mw())
            .route("/login", web::post().to(login))
            .route(
                "/account",
                web::get()
                    .guard(guard::fn_guard(logged_in))
                    .to(|session: Session| async move {
                        // The guard opened it: the handler's copy is the same state.
                        let user: Option<String> = session.get("user")?;
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().body(user.unwrap_or_default()))
                    }),
            ),
    )
    .await;
    let anonymous =
        test::call_service(&app, test::TestRequest::get().uri("/account").to_request()).await;
    assert_eq!(
        anonymous.status(),
        StatusCode::NOT_FOUND,
        "the guard let an anonymous visitor in"
    );
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = cookies_of(&res);
    let res = get_with_cookie(&app, "/account", cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(test::read_body(res).await, "ann");
}

/// In a guard, a session that must be loaded from a store cannot be waited for: `open_now`
/// says so with `None` instead of blocking or failing.
#[actix_web::test]
async fn a_guard_is_told_when_a_session_needs_a_store_read() {
    let app = test::init_service(
        App::new().wrap(memory_mw()).route(
            "/",
            web::get()
                .guard(guard::fn_guard(|ctx| {
                    let sessions = Sessions::from_guard(ctx).expect("the middleware is there");
                    matches!(sessions.open_now("session"), Ok(None))
                }))
                .to(HttpResponse::Ok),
        ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Opens the default session before routing, so that guards find it without waiting.
async fn open_before_routing(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    Sessions::from_request_parts(req.request())?
        .open_default()
        .await?;
    next.call(req).await
}

/// A server-side session opened by a middleware before routing is the one a guard finds at
/// once.
#[actix_web::test]
async fn a_guard_finds_a_server_side_session_opened_before_routing() {
    let app = test::init_service(
        App::new()
            .wrap(from_fn(open_before_routing))
            .wrap(memory_mw())
            .route("/login", web::post().to(login))
            .route(
                "/account",
                web::get()
                    .guard(guard::fn_guard(logged_in))
                    .to(HttpResponse::Ok),
            ),
    )
    .await;
    let anonymous =
        test::call_service(&app, test::TestRequest::get().uri("/account").to_request()).await;
    assert_eq!(anonymous.status(), StatusCode::NOT_FOUND);
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    let cookie = cookies_of(&res);
    let res = get_with_cookie(&app, "/account", cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// Reads the default session after the handler ran, through a handle taken before: the common
/// "look at the session once the response is known" middleware.
async fn report_user(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let sessions = Sessions::from_request_parts(req.request())?;
    let mut res = next.call(req).await?;
    let user: Option<String> = sessions.open_default().await?.get("user")?;
    res.headers_mut().insert(
        HeaderName::from_static("x-user"),
        HeaderValue::from_str(&user.unwrap_or_default())?,
    );
    Ok(res)
}

/// A `from_fn` middleware inside the session middleware keeps a `Sessions` handle across
/// `next.call`: routing does not panic, and the handle sees what the handler wrote, which is
/// saved.
#[actix_web::test]
async fn a_sessions_handle_kept_across_next_call_sees_the_handlers_changes() {
    for mw in [cookie_mw(), memory_mw()] {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(report_user))
                .wrap(mw)
                .route("/login", web::post().to(login))
                .route("/whoami", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "x-user").as_deref(), Some("ann"));
        let cookie = cookies_of(&res);
        assert!(!cookie.is_empty(), "the handler's change was not saved");
        let res = get_with_cookie(&app, "/whoami", cookie).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(header(&res, "x-user").as_deref(), Some("ann"));
    }
}

#[derive(SessionData)]
struct Visits {
    count: u32,
}

/// Opens a `Session` and a derived handle before `next.call`, keeps both across it and writes
/// through them after the handler ran (before the session middleware saves).
async fn count_visits(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let session = Session::extract(req.request()).await?;
    let visits = VisitsSession::extract(req.request()).await?;
    let res = next.call(req).await?;
    visits.set_count(visits.count()? + 1)?;
    session.insert("last_status", res.status().as_u16())?;
    Ok(res)
}

/// `Session` and derived handles kept across `next.call` keep working, and what they write after
/// the handler ran is saved.
#[actix_web::test]
async fn session_and_derived_handles_kept_across_next_call_write_after_the_handler() {
    let app = test::init_service(
        App::new()
            .wrap(from_fn(count_visits))
            .wrap(memory_mw())
            .route(
                "/",
                web::get().to(|visits: VisitsSession| async move {
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().body(visits.count()?.to_string()))
                }),
            ),
    )
    .await;
    let mut cookie = String::new();
    for expected in ["0", "1", "2"] {
        let mut req = test::TestRequest::get().uri("/");
        if !cookie.is_empty() {
            req = req.insert_header(("cookie", cookie.clone()));
        }
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let set = cookies_of(&res);
        if !set.is_empty() {
            cookie = set;
        }
        assert_eq!(test::read_body(res).await, expected);
    }
}

/// A middleware outside the session middleware reads the request's sessions from the response
/// once the inner services answered.
#[actix_web::test]
async fn a_middleware_outside_reads_the_sessions_after_the_inner_services_answered() {
    let app = test::init_service(
        App::new()
            .wrap(cookie_mw())
            .wrap(from_fn(report_user_outside))
            .route("/login", web::post().to(login)),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-user").as_deref(), Some("ann"));
}

/// Outside the session middleware: no sessions before the inner services run; after, the
/// request's sessions, read from the response's request.
async fn report_user_outside(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    assert!(matches!(
        Sessions::from_request_parts(req.request()),
        Err(SessionError::MissingMiddleware)
    ));
    let mut res = next.call(req).await?;
    let sessions = Sessions::from_request_parts(res.request())?;
    let user: Option<String> = sessions.open_default().await?.get("user")?;
    res.headers_mut().insert(
        HeaderName::from_static("x-user"),
        HeaderValue::from_str(&user.unwrap_or_default())?,
    );
    Ok(res)
}

/// A middleware that runs the rest of the request on a task of its own.
struct Spawning;

impl<S> Transform<S, ServiceRequest> for Spawning
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error> + 'static,
{
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Transform = SpawningService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SpawningService {
            service: std::rc::Rc::new(service),
        }))
    }
}

struct SpawningService<S> {
    service: std::rc::Rc<S>,
}

impl<S> Service<ServiceRequest> for SpawningService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse, Error = actix_web::Error> + 'static,
{
    type Response = ServiceResponse;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        Box::pin(async move {
            actix_web::rt::spawn(async move { service.call(req).await })
                .await
                .expect("the spawned request ran")
        })
    }
}

/// A middleware inside the session middleware that runs the handler on a spawned task: the
/// handler still finds its sessions, and what it writes is saved.
#[actix_web::test]
async fn a_handler_run_on_a_task_spawned_by_a_middleware_finds_its_sessions() {
    for mw in [cookie_mw(), memory_mw()] {
        let app = test::init_service(
            App::new()
                .wrap(Spawning)
                .wrap(mw)
                .route("/login", web::post().to(login)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.response().cookies().count(), 1, "not saved");
    }
}

/// Two session middlewares with named sessions: the one opened between them belongs to the
/// outer one, and both are saved.
#[actix_web::test]
async fn nested_middlewares_each_save_their_own_sessions() {
    let outer = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .session("outer", SessionConfig::new())
        .build()
        .unwrap();
    let inner = SessionMiddleware::builder(key(2))
        .backend("memory", MemoryStore::default())
        .session("inner", SessionConfig::new())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new().wrap(outer).service(
            web::scope("/s")
                .wrap(inner)
                .wrap(from_fn(|req: ServiceRequest, next: Next<_>| async move {
                    {
                        let sessions = Sessions::from_request_parts(req.request())?;
                        sessions.open("outer").await?.insert("seen", true)?;
                    }
                    next.call(req).await
                }))
                .route(
                    "/",
                    web::get().to(|sessions: Sessions| async move {
                        sessions.open("inner").await?.insert("n", 1)?;
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
                    }),
                ),
        ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/s/").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookies: std::collections::HashMap<_, _> = res
        .response()
        .cookies()
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    // Each saved by its own middleware: the memory store's cookie is a 43-character id, the
    // cookie store's a sealed value.
    assert_eq!(cookies["__Host-inner"].len(), 43, "{cookies:?}");
    assert!(cookies["__Host-outer"].len() > 43, "{cookies:?}");
}

/// One middleware wrapped at App and at scope level: the inner one serves the request's
/// sessions, and they are saved once.
#[actix_web::test]
async fn one_middleware_wrapped_twice_saves_a_session_once() {
    let memory = MemoryStore::default();
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", memory.clone())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new().wrap(mw.clone()).service(
            web::scope("/s")
                .wrap(mw)
                .route("/login", web::post().to(login)),
        ),
    )
    .await;
    let res =
        test::call_service(&app, test::TestRequest::post().uri("/s/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(cookie_names(&res), ["__Host-session"]);
    assert_eq!(memory.len(), 1, "one record");
}

/// A request's sessions are found only through that request (not through another request's
/// `HttpRequest`), and a request kept past its response still reads them as they were saved.
#[actix_web::test]
async fn sessions_are_found_only_through_their_own_request() {
    let kept: Arc<Mutex<Option<actix_web::HttpRequest>>> = Arc::default();
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", MemoryStore::default())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(mw)
            .app_data(web::Data::new(kept.clone()))
            .route(
            "/",
            web::get().to(
                |req: actix_web::HttpRequest,
                 kept: web::Data<Arc<Mutex<Option<actix_web::HttpRequest>>>>| async move {
                    let other = test::TestRequest::default().to_http_request();
                    let foreign = Sessions::from_request_parts(&other).map(|_| ());
                    assert!(
                        matches!(foreign, Err(SessionError::MissingMiddleware)),
                        "{foreign:?}"
                    );
                    let sessions = Sessions::from_request_parts(&req)?;
                    sessions.open_default().await?.insert("n", 1)?;
                    *kept.lock().unwrap() = Some(req);
                    Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
                },
            ),
        ),
    )
    .await;
    let res = get_ok(&app, "/").await;
    assert_eq!(res.response().cookies().count(), 1, "the session was saved");
    drop(res);
    let req = kept.lock().unwrap().take().expect("the handler ran");
    let late = Sessions::from_request_parts(&req).expect("the request still carries them");
    let n: Option<u32> = late.open_default().await.unwrap().get("n").unwrap();
    assert_eq!(n, Some(1));
}

/// A handle taken in the handler keeps working in a task spawned on the worker, and what it
/// opens there before the response is saved.
#[actix_web::test]
async fn a_handle_opens_sessions_from_a_spawned_task_before_the_response() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .session("spawned", SessionConfig::new())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route(
        "/",
        web::get().to(|sessions: Sessions| async move {
            actix_web::rt::spawn(async move {
                sessions.open("spawned").await?.insert("from", "task")?;
                Ok::<_, SessionError>(())
            })
            .await
            .expect("the task ran")?;
            Ok::<_, actix_web::Error>(HttpResponse::Ok().finish())
        }),
    ))
    .await;
    let res = get_ok(&app, "/").await;
    assert_eq!(cookie_names(&res), ["__Host-spawned"]);
}

/// A middleware inside the session middleware may open the request's sessions in its `call`,
/// before any future of the request is polled.
#[actix_web::test]
async fn a_middleware_takes_the_sessions_in_its_call() {
    use actix_web::dev::Service as _;
    let mw = SessionMiddleware::builder(key(1))
        .backend("cookie", CookieStore::default())
        .session("seen", SessionConfig::new())
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                // Runs in the session middleware's call of this service: a cookie session opens
                // without waiting, before the future of the rest of the request exists.
                let opened = Sessions::from_request_parts(req.request()).and_then(|sessions| {
                    futures_util::FutureExt::now_or_never(sessions.open("seen"))
                        .expect("a cookie session opens at once")?
                        .insert("by", "middleware")
                });
                let answer = srv.call(req);
                async move {
                    opened?;
                    answer.await
                }
            })
            .wrap(mw)
            .route("/", web::get().to(|| async { HttpResponse::Ok().finish() })),
    )
    .await;
    let res = get_ok(&app, "/").await;
    assert_eq!(cookie_names(&res), ["__Host-seen"]);
}

/// Requests served side by side on one thread, each waiting between its steps, see only their
/// own sessions.
#[actix_web::test]
async fn interleaved_requests_see_only_their_own_sessions() {
    let mw = SessionMiddleware::builder(key(1))
        .backend("memory", MemoryStore::default())
        .build()
        .unwrap();
    let app = test::init_service(App::new().wrap(mw).route(
        "/{who}",
        web::get().to(
            |req: actix_web::HttpRequest, who: web::Path<String>| async move {
                let first = Sessions::from_request_parts(&req)?.open_default().await?;
                first.insert("who", who.as_str())?;
                for _ in 0..3 {
                    actix_web::rt::task::yield_now().await;
                    // Opened again through a new handle: the same session, this request's.
                    let again = Sessions::from_request_parts(&req)?.open_default().await?;
                    let seen: Option<String> = again.get("who")?;
                    assert_eq!(seen.as_deref(), Some(who.as_str()));
                }
                Ok::<_, actix_web::Error>(HttpResponse::Ok().body(who.into_inner()))
            },
        ),
    ))
    .await;
    let call = |who: &str| {
        test::call_service(
            &app,
            test::TestRequest::get()
                .uri(&format!("/{who}"))
                .to_request(),
        )
    };
    let (a, b) = futures_util::future::join(call("alice"), call("bob")).await;
    for (res, who) in [(a, "alice"), (b, "bob")] {
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.response().cookies().count(), 1);
        assert_eq!(test::read_body(res).await, who.as_bytes());
    }
}

/// `Preload` outside any session middleware is a configuration mistake: every request under it
/// fails with an opaque 500, and its routes do not run.
#[actix_web::test]
async fn preload_outside_a_session_middleware_fails_the_requests_under_it() {
    let ran = Arc::new(Mutex::new(false));
    let seen = ran.clone();
    let app = test::init_service(
        App::new()
            .wrap(actix_typed_session::guard::Preload::default_session())
            .route(
                "/",
                web::get().to(move || {
                    *seen.lock().unwrap() = true;
                    HttpResponse::Ok()
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(test::read_body(res).await.is_empty(), "not opaque");
    assert!(!*ran.lock().unwrap(), "the route ran");
}

/// A store failure while `Preload` loads answers with the configured failure status before
/// routing: no guard or handler runs on a session that could not be read.
#[actix_web::test]
async fn preload_answers_a_store_failure_with_the_failure_status() {
    use actix_typed_session_tests::FailingStore;
    let (store, mode) = FailingStore::new();
    let mw = SessionMiddleware::builder(key(1))
        .backend("failing", store)
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(mw)
            .route("/login", web::post().to(login))
            .service(
                web::scope("/me")
                    .wrap(actix_typed_session::guard::Preload::session("session"))
                    .route("", web::get().to(HttpResponse::Ok)),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    let cookie = cookies_of(&res);
    mode.fail_loads();
    let res = get_with_cookie(&app, "/me", cookie).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(test::read_body(res).await.is_empty(), "not opaque");
}
