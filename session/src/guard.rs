//! Sessions in route guards: [`Preload`] loads a session before routing, [`has_key`] routes on
//! it.
//!
//! A guard is synchronous, so it can only read a session that opens without waiting: a cookie
//! session (unless its store checks revocations), or one the request already opened. [`Preload`]
//! is the "already opened": a middleware inside the [`SessionMiddleware`](crate::SessionMiddleware)
//! that loads one named session before the routes under it are matched. The guard and the
//! handler then get that same session: one load per request, whichever backend.
//!
//! Apps that do not wrap [`Preload`] pay nothing for it; routes under it pay the load even when
//! no guard or handler reads the session, so wrap only the scope whose routes are guarded.

use std::{
    rc::Rc,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use actix_service::{Service, Transform};
use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    guard::{Guard, GuardContext},
};
use futures_util::future::{ready, LocalBoxFuture, Ready};

use crate::{Session, Sessions};

/// A middleware that opens one named session before routing, so that route guards can read it
/// (see [`has_key`] and [`Sessions::open_now`]) on every backend.
///
/// Wrap it *inside* the [`SessionMiddleware`](crate::SessionMiddleware) (actix-web runs the
/// last `wrap` first) and around the routes whose guards read the session: an `App`, a `scope`
/// or a `resource`. Guards of routes under it see the session; a guard set on that scope or
/// resource itself is checked before its middlewares run, so it needs `Preload` one level up.
///
/// The session is loaded once; the handler's [`Session`], [`Sessions`] or typed extractor gets
/// the same one (no second load), and it is saved as usual. If loading fails (a store down),
/// the request is answered with the session middleware's opaque failure response and the
/// routes are not run. Outside a session middleware, every request under it fails with a 500
/// (and one error in the log): that is a configuration mistake.
///
/// ```
/// use actix_web::{test, web, App, HttpResponse};
/// use actix_typed_session::{guard, Key, MemoryStore, Session, SessionMiddleware};
///
/// async fn login(session: Session) -> actix_web::Result<HttpResponse> {
///     session.insert("user", "ann")?;
///     Ok(HttpResponse::Ok().finish())
/// }
///
/// async fn account(session: Session) -> actix_web::Result<HttpResponse> {
///     let user: String = session.get("user")?.unwrap_or_default(); // no second load
///     Ok(HttpResponse::Ok().body(user))
/// }
///
/// # actix_web::rt::System::new().block_on(async {
/// let sessions = SessionMiddleware::builder(Key::generate())
///     .backend("memory", MemoryStore::default())
///     .build()
///     .unwrap();
/// let app = test::init_service(
///     App::new()
///         .wrap(sessions)
///         .route("/login", web::post().to(login))
///         .service(
///             web::scope("/me")
///                 .wrap(guard::Preload::default_session()) // only this scope pays the load
///                 .route("", web::get().guard(guard::has_key("session", "user")).to(account))
///                 .route("", web::get().to(|| async { HttpResponse::Unauthorized().finish() })),
///         ),
/// )
/// .await;
///
/// let anonymous = test::TestRequest::get().uri("/me").to_request();
/// assert_eq!(test::call_service(&app, anonymous).await.status(), 401);
/// let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
/// let cookie = res.response().cookies().next().unwrap().into_owned();
/// let req = test::TestRequest::get().uri("/me").cookie(cookie).to_request();
/// assert_eq!(test::call_and_read_body(&app, req).await, "ann");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct Preload {
    /// The session to open; `None` for the middleware's default session.
    name: Option<Arc<str>>,
}

impl Preload {
    /// Opens the session `name` (on its configured or the default backend) before routing.
    pub fn session(name: impl Into<String>) -> Self {
        Self {
            name: Some(Arc::from(name.into())),
        }
    }

    /// Opens the middleware's default session, the one the [`Session`] extractor gets (see
    /// [`default_session`](crate::SessionMiddlewareBuilder::default_session)), before routing.
    pub fn default_session() -> Self {
        Self { name: None }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Preload
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = PreloadService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PreloadService {
            service: Rc::new(service),
            name: self.name.clone(),
        }))
    }
}

/// The service [`Preload`] wraps around the routes under it.
#[doc(hidden)]
pub struct PreloadService<S> {
    service: Rc<S>,
    name: Option<Arc<str>>,
}

impl<S> std::fmt::Debug for PreloadService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreloadService")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for PreloadService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, actix_web::Error>>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        // The handle is taken here, while the request is ours alone (see `crate::request`).
        let sessions = Sessions::from_request_parts(req.request());
        let (service, name) = (self.service.clone(), self.name.clone());
        Box::pin(async move {
            let opened = match (sessions, &name) {
                (Ok(sessions), Some(name)) => sessions.open(name).await,
                (Ok(sessions), None) => sessions.open_default().await,
                (Err(err), _) => Err(err),
            };
            match opened {
                Ok(_) => Ok(service.call(req).await?.map_into_left_body()),
                // A response rather than an `Err`, as a handler's error becomes one: the session
                // middleware (and any outside it) sees a failed request.
                Err(err) => Ok(req.error_response(err).map_into_right_body()),
            }
        })
    }
}

/// A route guard that passes requests whose session `session` holds `key` (a login, say).
///
/// It reads the session without waiting: a cookie session always, a server-side session (or a
/// cookie session whose store checks revocations) once [`Preload`] opened it before routing.
/// Without that, the guard cannot know and does not pass; it logs an error naming the session
/// the first time. A session that fails to open (a configuration mistake, logged) does not
/// pass either.
///
/// For other tests than "holds a key", write a guard of your own with
/// [`Sessions::from_guard`] and [`Sessions::open_now`], as this one is.
///
/// ```
/// use actix_web::{test, web, App, HttpResponse};
/// use actix_typed_session::{guard, CookieStore, Key, Session, SessionMiddleware};
///
/// # actix_web::rt::System::new().block_on(async {
/// let sessions = SessionMiddleware::builder(Key::generate())
///     .backend("cookie", CookieStore::default()) // opens without I/O: no `Preload` needed
///     .build()
///     .unwrap();
/// let app = test::init_service(
///     App::new().wrap(sessions).route(
///         "/admin",
///         web::get().guard(guard::has_key("session", "admin")).to(HttpResponse::Ok),
///     ),
/// )
/// .await;
/// let res = test::call_service(&app, test::TestRequest::get().uri("/admin").to_request()).await;
/// assert_eq!(res.status(), 404); // no route matched
/// # });
/// ```
pub fn has_key(session: impl Into<String>, key: impl Into<String>) -> HasKey {
    HasKey {
        session: session.into(),
        key: key.into(),
        warned: AtomicBool::new(false),
    }
}

/// The guard [`has_key`] returns.
#[derive(Debug)]
pub struct HasKey {
    session: String,
    key: String,
    /// Whether the "not opened before routing" error was logged (once per guard).
    warned: AtomicBool,
}

impl HasKey {
    fn session(&self, ctx: &GuardContext<'_>) -> Option<Session> {
        let sessions = Sessions::from_guard(ctx).ok()?;
        match sessions.open_now(&self.session) {
            Ok(Some(session)) => Some(session),
            Ok(None) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        session = %self.session,
                        "a guard cannot wait for this session to load from its store: wrap the \
                         guarded routes in `guard::Preload`; the guard does not pass meanwhile"
                    );
                }
                None
            }
            Err(_logged) => None,
        }
    }
}

impl Guard for HasKey {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        self.session(ctx)
            .is_some_and(|session| session.contains_key(&self.key))
    }
}
