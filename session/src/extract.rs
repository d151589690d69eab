//! Opening sessions from handlers, guards and middlewares: the extractors.

use std::{
    collections::HashSet,
    rc::Rc,
    sync::{Arc, Mutex},
};

use actix_web::{dev::Payload, guard::GuardContext, FromRequest, HttpMessage as _, HttpRequest};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};

use crate::{
    config::Spec,
    load::{load, load_now},
    request::{Marker, Registry},
    Session, SessionError,
};

/// All sessions of the current request, opened by name.
///
/// Opening loads the session from its backend on first use in the request (later opens of the
/// same name return the same session). A request that never opens a session does no store I/O
/// and sets no cookie.
///
/// ```
/// use actix_web::{HttpResponse, Result};
/// use actix_typed_session::Sessions;
///
/// async fn checkout(sessions: Sessions) -> Result<HttpResponse> {
///     let prefs = sessions.open("prefs").await?;            // its configured or the default backend
///     let cart = sessions.open_on("cart", "memory").await?; // a backend chosen by name
///     let currency: String = prefs.get("currency")?.unwrap_or_else(|| "EUR".into());
///     let items: Vec<String> = cart.get("items")?.unwrap_or_default();
///     Ok(HttpResponse::Ok().body(format!("{} items, paid in {currency}", items.len())))
/// }
/// ```
#[derive(Clone)]
pub struct Sessions {
    /// The request's registry, never the request itself (see [`crate::request`]).
    registry: Rc<Registry>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opened = self.registry.opened_count();
        f.debug_struct("Sessions").field("opened", &opened).finish()
    }
}

impl Sessions {
    /// The sessions of the request `req`, or an error naming the missing middleware.
    ///
    /// Works anywhere the request can be seen once a [`SessionMiddleware`](crate::SessionMiddleware)
    /// was called for it: in a handler or extractor, in a middleware inside the session
    /// middleware (`ServiceRequest::request`), and in one outside it after the inner services
    /// answered (`ServiceResponse::request`). The handle holds no `HttpRequest` and may be kept
    /// for the rest of the request, also across `next.call(req)` or in a spawned task. Sessions
    /// are saved when the session middleware's inner services answer: what is opened or changed
    /// after that is not saved. Do not hold the request's extensions borrowed
    /// (`req.extensions()`) while asking for the first time: the request's session registry is
    /// made in them.
    ///
    /// ```
    /// use actix_web::{body::MessageBody, dev::{ServiceRequest, ServiceResponse}, middleware::Next};
    /// use actix_typed_session::Sessions;
    ///
    /// // A middleware inside the session middleware: reads the session after the handler ran.
    /// async fn log_user(
    ///     req: ServiceRequest,
    ///     next: Next<impl MessageBody>,
    /// ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    ///     let sessions = Sessions::from_request_parts(req.request())?;
    ///     let res = next.call(req).await?;
    ///     let user: Option<String> = sessions.open_default().await?.get("user")?;
    ///     tracing::info!(?user, status = %res.status(), "served");
    ///     Ok(res)
    /// }
    /// ```
    pub fn from_request_parts(req: &HttpRequest) -> Result<Self, SessionError> {
        let registry = Registry::find(
            req.app_data::<Marker>(),
            || req.extensions(),
            || req.extensions_mut(),
            req.headers(),
            req.peer_addr(),
        );
        Self::from_registry(registry)
    }

    /// The sessions of the request a route guard is asked about, or an error naming the
    /// missing middleware. Guards cannot wait: open sessions with [`Sessions::open_now`], and
    /// wrap the guarded routes in [`guard::Preload`](crate::guard::Preload) when the session
    /// lives in a server-side store. [`guard::has_key`](crate::guard::has_key) is this guard,
    /// ready-made.
    ///
    /// ```
    /// use actix_web::{guard::{self, GuardContext}, web, App, HttpResponse};
    /// use actix_typed_session::Sessions;
    ///
    /// /// Passes requests whose (cookie-backed) default session has a user.
    /// fn logged_in(ctx: &GuardContext<'_>) -> bool {
    ///     let Ok(sessions) = Sessions::from_guard(ctx) else { return false };
    ///     let Ok(Some(session)) = sessions.open_now("session") else { return false };
    ///     session.contains_key("user")
    /// }
    ///
    /// let app = App::new().route(
    ///     "/account",
    ///     web::get().guard(guard::fn_guard(logged_in)).to(HttpResponse::Ok),
    /// );
    /// # let _ = app;
    /// ```
    pub fn from_guard(ctx: &GuardContext<'_>) -> Result<Self, SessionError> {
        let registry = Registry::find(
            ctx.app_data::<Marker>(),
            || ctx.req_data(),
            || ctx.req_data_mut(),
            ctx.head().headers(),
            ctx.head().peer_addr,
        );
        Self::from_registry(registry)
    }

    fn from_registry(registry: Option<Rc<Registry>>) -> Result<Self, SessionError> {
        match registry {
            Some(registry) => Ok(Self { registry }),
            None => Err(configuration_mistake(SessionError::MissingMiddleware)),
        }
    }

    /// Opens the session `name` without waiting: `Some` when the request already opened it or
    /// its backend needs no I/O to load it (the cookie backend, unless it checks revocations),
    /// `None` when it has to be loaded from a store (call [`open`](Self::open) from async code,
    /// or open it before routing with [`guard::Preload`](crate::guard::Preload)). For guards and
    /// other synchronous code; the session is the one the handler gets.
    pub fn open_now(&self, name: &str) -> Result<Option<Session>, SessionError> {
        match self.open_or_prepare(name, None)? {
            Prepared::Open(session) => Ok(Some(session)),
            Prepared::Load(_) => Ok(None),
        }
    }

    /// The session `name` if this request opened it already (see [`crate::test::opened`]).
    pub(crate) fn opened(&self, name: &str) -> Option<Session> {
        self.registry.get(name)
    }

    /// Opens the session `name` on its registered backend, or on the default backend.
    pub async fn open(&self, name: &str) -> Result<Session, SessionError> {
        self.open_inner(name, None).await
    }

    /// Opens the session `name` on the backend registered as `backend`.
    pub async fn open_on(&self, name: &str, backend: &str) -> Result<Session, SessionError> {
        self.open_inner(name, Some(backend)).await
    }

    /// Opens the middleware's default session (see
    /// [`default_session`](crate::SessionMiddlewareBuilder::default_session)).
    pub async fn open_default(&self) -> Result<Session, SessionError> {
        self.open_inner(&self.registry.config.default_session, None)
            .await
    }

    async fn open_inner(&self, name: &str, backend: Option<&str>) -> Result<Session, SessionError> {
        match self.open_or_prepare(name, backend)? {
            Prepared::Open(session) => Ok(session),
            Prepared::Load(spec) => {
                // Boxed on its own: awaited in place, rustc would keep the loading future twice
                // in this one, and a box that large misses the allocator's per-thread cache.
                let registry = &self.registry;
                let session = Box::pin(load(&registry.config, registry.cookies(), spec)).await?;
                Ok(registry.register(session))
            }
        }
    }

    /// Opens `name` at once when the request already opened it or loading it needs no I/O
    /// (see [`load_now`]); otherwise hands back the spec to [`load`] it with.
    fn open_or_prepare(&self, name: &str, backend: Option<&str>) -> Result<Prepared, SessionError> {
        match self.prepare(name, backend)? {
            Prepared::Load(spec) => {
                match load_now(&self.registry.config, self.registry.cookies(), &spec) {
                    Some(session) => Ok(Prepared::Open(self.registry.register(session))),
                    None => Ok(Prepared::Load(spec)),
                }
            }
            open => Ok(open),
        }
    }

    /// What opening `name` takes: the session itself when the request already opened it, or
    /// the spec to load it with.
    fn prepare(&self, name: &str, backend: Option<&str>) -> Result<Prepared, SessionError> {
        let spec = self
            .registry
            .config
            .resolve(name, backend)
            .map_err(configuration_mistake)?;
        match self.registry.get(name) {
            Some(open) if open.spec().backend_name != spec.backend_name => {
                Err(configuration_mistake(SessionError::BackendMismatch {
                    session: name.to_owned(),
                    configured: open.spec().backend_name.clone(),
                    requested: spec.backend_name.clone(),
                }))
            }
            Some(open) => Ok(Prepared::Open(open)),
            None => Ok(Prepared::Load(spec)),
        }
    }
}

/// Logs `err`, a configuration mistake the client only sees as an opaque 500 (no middleware, an
/// unknown backend, a session asked for on two backends), at error level once per message, and
/// returns it.
fn configuration_mistake(err: SessionError) -> SessionError {
    /// Messages logged so far; bounded, as session names may come from code paths without end.
    static LOGGED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    const MAX_LOGGED: usize = 64;
    let message = err.to_string();
    let mut logged = LOGGED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let logged = logged.get_or_insert_with(HashSet::new);
    if logged.len() < MAX_LOGGED && logged.insert(message.clone()) {
        tracing::error!("session configuration: {message}");
    }
    err
}

/// See [`Sessions::open_or_prepare`] and [`Sessions::prepare`].
enum Prepared {
    Open(Session),
    Load(Arc<Spec>),
}

impl FromRequest for Sessions {
    type Error = SessionError;
    type Future = Ready<Result<Self, SessionError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::from_request_parts(req))
    }
}

/// Extracting a `Session` opens the middleware's default session: at once (nothing boxed) when
/// that needs no I/O, as for a cookie session.
impl FromRequest for Session {
    type Error = SessionError;
    type Future = Either<
        Ready<Result<Self, SessionError>>,
        LocalBoxFuture<'static, Result<Self, SessionError>>,
    >;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let sessions = match Sessions::from_request_parts(req) {
            Ok(sessions) => sessions,
            Err(err) => return Either::Left(ready(Err(err))),
        };
        let default = &sessions.registry.config.default_session;
        match sessions.open_or_prepare(default, None) {
            Err(err) => Either::Left(ready(Err(err))),
            Ok(Prepared::Open(session)) => Either::Left(ready(Ok(session))),
            // One box, of the loading future's size (here it is not kept twice).
            Ok(Prepared::Load(spec)) => Either::Right(Box::pin(async move {
                let registry = &sessions.registry;
                let session = load(&registry.config, registry.cookies(), spec).await?;
                Ok(registry.register(session))
            })),
        }
    }
}
