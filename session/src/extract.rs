//! Opening sessions from handlers: the per-request registry and the extractors.

use std::{cell::RefCell, rc::Rc, sync::Arc};

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};

use crate::{
    config::{Config, Spec},
    current,
    load::{load, load_now},
    Session, SessionError,
};

/// The sessions a request opened, in order.
pub(crate) type Opened = smallvec::SmallVec<[Session; 2]>;

/// The sessions one request has opened; the middleware saves them when the response goes out.
///
/// It lives in the request's [frame](crate::current), where the extractors find it.
#[derive(Default)]
pub(crate) struct Registry {
    /// Inline for the usual one or two sessions.
    opened: RefCell<Opened>,
}

impl Registry {
    pub(crate) fn take_opened(&self) -> Opened {
        std::mem::take(&mut *self.opened.borrow_mut())
    }

    fn find(&self, name: &str) -> Option<Session> {
        self.opened
            .borrow()
            .iter()
            .find(|s| s.name() == name)
            .cloned()
    }
}

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
    req: HttpRequest,
    config: Arc<Config>,
    registry: Rc<Registry>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opened = self.registry.opened.borrow().len();
        f.debug_struct("Sessions").field("opened", &opened).finish()
    }
}

impl Sessions {
    /// The request's session handle registry, or an error naming the missing middleware.
    ///
    /// Call it while the request is being served (in a handler, an extractor or a middleware
    /// inside the [`SessionMiddleware`](crate::SessionMiddleware)); the returned handle can then
    /// be kept and used for the rest of the request.
    pub fn from_request_parts(req: &HttpRequest) -> Result<Self, SessionError> {
        let (config, registry) = current::registry(req).ok_or(SessionError::MissingMiddleware)?;
        Ok(Self {
            req: req.clone(),
            config,
            registry,
        })
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
        self.open_inner(&self.config.default_session, None).await
    }

    async fn open_inner(&self, name: &str, backend: Option<&str>) -> Result<Session, SessionError> {
        match self.open_now(name, backend)? {
            Prepared::Open(session) => Ok(session),
            Prepared::Load(spec) => {
                // Boxed on its own: awaited in place, the loading future would take this one's
                // size twice over (rustc keeps a large callee future twice), putting the box
                // above glibc's per-thread cache and into its slow path (measured: a 2,136-byte
                // box, now ~300 + 928).
                let session = Box::pin(load(&self.config, &cookies(&self.req), spec)).await?;
                Ok(self.register(name, session))
            }
        }
    }

    /// Opens `name` at once when the request already opened it or loading it needs no I/O
    /// (see [`load_now`]); otherwise hands back the spec to [`load`] it with.
    fn open_now(&self, name: &str, backend: Option<&str>) -> Result<Prepared, SessionError> {
        match self.prepare(name, backend)? {
            Prepared::Load(spec) => match load_now(&self.config, &cookies(&self.req), &spec) {
                Some(session) => Ok(Prepared::Open(self.register(name, session))),
                None => Ok(Prepared::Load(spec)),
            },
            open => Ok(open),
        }
    }

    /// What opening `name` takes: the session itself when the request already opened it, or
    /// the spec to load it with.
    fn prepare(&self, name: &str, backend: Option<&str>) -> Result<Prepared, SessionError> {
        let spec = self.config.resolve(name, backend)?;
        match self.registry.find(name) {
            Some(open) if open.spec().backend_name != spec.backend_name => {
                Err(SessionError::BackendMismatch {
                    session: name.to_owned(),
                    configured: open.spec().backend_name.clone(),
                    requested: spec.backend_name.clone(),
                })
            }
            Some(open) => Ok(Prepared::Open(open)),
            None => Ok(Prepared::Load(spec)),
        }
    }

    /// Registers a session just loaded, so that the middleware saves it.
    fn register(&self, name: &str, session: Session) -> Session {
        // Two extractors of one handler may have loaded the same session side by side: the
        // first one registered wins, so both handles share one state.
        if let Some(open) = self.registry.find(name) {
            return open;
        }
        self.registry.opened.borrow_mut().push(session.clone());
        session
    }
}

/// See [`Sessions::open_now`] and [`Sessions::prepare`].
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
        match sessions.open_now(&sessions.config.default_session, None) {
            Err(err) => Either::Left(ready(Err(err))),
            Ok(Prepared::Open(session)) => Either::Left(ready(Ok(session))),
            // One box, of the loading future's size (here it is not kept twice).
            Ok(Prepared::Load(spec)) => Either::Right(Box::pin(async move {
                let session = load(&sessions.config, &cookies(&sessions.req), spec).await?;
                Ok(sessions.register(&sessions.config.default_session, session))
            })),
        }
    }
}

/// The request's `Cookie` headers.
fn cookies(req: &HttpRequest) -> smallvec::SmallVec<[actix_web::http::header::HeaderValue; 1]> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .cloned()
        .collect()
}
