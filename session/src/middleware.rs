//! The middleware: a lazy session registry per request, saved when the response goes out.

use std::{future::Future, pin::Pin, rc::Rc, sync::Arc};

use actix_service::{Service, Transform};
use actix_web::{
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::SET_COOKIE,
    HttpMessage, HttpResponse,
};
use futures_util::future::{ready, Ready};

use crate::{
    config::{Config, SessionMiddlewareBuilder},
    extract::Registry,
    save::save,
    Key,
};

/// Sessions for an actix-web `App`: wrap the app, then extract [`Session`](crate::Session),
/// [`Sessions`](crate::Sessions) or a typed session in handlers.
///
/// Per request, the middleware only prepares an empty registry. A session is loaded when a
/// handler first asks for it, and when the response goes out each opened session is written
/// back if (and only if) it changed, or its idle deadline is due for a refresh.
///
/// If the response is a server error (5xx) or the handler returned an `Err`, nothing is saved:
/// the request's session changes are dropped along with its other work. If a store fails while
/// saving, the failure is logged with its cause and the client gets an empty response with the
/// configured failure status. With several server-side sessions in one request, sessions saved
/// before the failing one stay saved (separate stores cannot commit together); the failure
/// response carries their cookies, so the client never holds an id its store has dropped.
///
/// Build it once, outside the `HttpServer` factory, and clone it into each worker:
///
/// ```no_run
/// use actix_web::{web, App, HttpServer, Responder};
/// use actix_typed_session::{CookieStore, Key, MemoryStore, Session, SessionMiddleware};
///
/// async fn index(session: Session) -> actix_web::Result<impl Responder> {
///     let n: u64 = session.get("n")?.unwrap_or(0);
///     session.insert("n", n + 1)?;
///     Ok(format!("hello #{n}"))
/// }
///
/// #[actix_web::main]
/// async fn main() -> std::io::Result<()> {
///     let sessions = SessionMiddleware::builder(Key::generate())
///         .backend("cookie", CookieStore::default())
///         .backend("memory", MemoryStore::default())
///         .build()
///         .expect("valid session configuration");
///     HttpServer::new(move || App::new().wrap(sessions.clone()).route("/", web::get().to(index)))
///         .bind(("127.0.0.1", 8080))?
///         .run()
///         .await
/// }
/// ```
#[derive(Clone)]
pub struct SessionMiddleware {
    config: Arc<Config>,
}

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut backends: Vec<_> = self.config.backends.keys().collect();
        backends.sort();
        f.debug_struct("SessionMiddleware")
            .field("backends", &backends)
            .field("default_backend", &self.config.default_backend)
            .field("default_session", &self.config.default_session)
            .finish_non_exhaustive()
    }
}

impl SessionMiddleware {
    /// Starts configuring a middleware around the master `key` (at least 64 bytes).
    pub fn builder(key: Key) -> SessionMiddlewareBuilder {
        SessionMiddlewareBuilder::new(key)
    }

    /// Lists and ends the sessions of any owner outside of a request (see [`SessionAdmin`](crate::SessionAdmin)).
    ///
    /// ```
    /// use actix_typed_session::{Key, MemoryStore, SessionMiddleware};
    ///
    /// let middleware = SessionMiddleware::builder(Key::generate())
    ///     .backend("memory", MemoryStore::default())
    ///     .build()
    ///     .unwrap();
    /// let admin = middleware.admin(); // keep it in the app's data for admin routes
    /// # let _ = admin;
    /// ```
    pub fn admin(&self) -> crate::SessionAdmin {
        crate::SessionAdmin::new(self.config.clone())
    }

    pub(crate) fn from_config(config: Config) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            config: self.config.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an app's services.
#[doc(hidden)]
pub struct SessionService<S> {
    service: Rc<S>,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionService")
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_service::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let registry = Rc::new(Registry::new(self.config.clone()));
        req.extensions_mut().insert(registry.clone());
        let service = self.service.clone();
        Box::pin(async move {
            let mut res = service.call(req).await?;
            let opened = registry.take_opened();
            if opened.is_empty() {
                return Ok(res.map_into_left_body());
            }
            if res.status().is_server_error() || res.response().error().is_some() {
                tracing::debug!(
                    status = %res.status(),
                    "handler failed: session changes of this request are not saved"
                );
                return Ok(res.map_into_left_body());
            }
            let config = &registry.config;
            let now = config.clock.now();
            // Cookie sessions first: they do no I/O, so a store failure below cannot leave a
            // cookie session half-written.
            let mut opened = opened;
            opened.sort_by_key(|s| !s.spec().backend.is_cookie());
            let mut cookies = Vec::with_capacity(opened.len());
            let mut failed = false;
            for session in &opened {
                match save(config, session, now).await {
                    Ok(Some(cookie)) => cookies.push(cookie),
                    Ok(None) => {}
                    Err(_logged) => {
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                // Sessions saved before the failure stay saved (several stores cannot commit
                // together); the failure response still carries their cookies, so the client's
                // cookies match what the stores hold (a renewed session keeps its new id).
                let (req, _) = res.into_parts();
                let mut failure = HttpResponse::new(config.failure_status);
                for cookie in cookies {
                    failure.headers_mut().append(SET_COOKIE, cookie);
                }
                return Ok(ServiceResponse::new(req, failure).map_into_right_body());
            }
            let headers = res.response_mut().headers_mut();
            for cookie in cookies {
                headers.append(SET_COOKIE, cookie);
            }
            Ok(res.map_into_left_body())
        })
    }
}
