//! The middleware: a lazy session registry per request, saved when the response goes out.

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
};

use actix_service::{Service, Transform};
use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{Extensions, ServiceRequest, ServiceResponse},
    http::header::{HeaderValue, SET_COOKIE},
    HttpMessage as _, HttpResponse,
};
use futures_util::future::{ready, LocalBoxFuture, Ready};

use crate::{
    config::{Config, SessionMiddlewareBuilder},
    request::{Marker, Registry},
    response_headers::{keep_private, vary_on_cookie},
    save::{save, save_cookie_session},
    Key, SessionStatus,
};

/// Sessions for an actix-web `App`: wrap the app, then extract [`Session`](crate::Session),
/// [`Sessions`](crate::Sessions) or a typed session in handlers.
///
/// A route that never asks for a session costs no store I/O and allocates nothing of the
/// middleware's own (the response body becomes a `BoxBody`: free for the bodies actix-web's
/// routes give, one box for a body type of a service's own). A session is loaded when a handler
/// (or a middleware inside this one) first asks for it, and when the inner services answer each
/// opened session is written back if (and only if) it changed, or its idle deadline is due for a
/// refresh.
///
/// The request carries its sessions (in its extensions), so they can be reached wherever the
/// request can: extractors, route guards ([`Sessions::from_guard`](crate::Sessions::from_guard);
/// [`guard::Preload`](crate::guard::Preload) loads a server-side session for them before routing),
/// middlewares inside this one (also one that runs the rest of the request on a task of its own)
/// and, after the inner services answered, middlewares outside it. A
/// [`Sessions`](crate::Sessions) or [`Session`](crate::Session) handle holds no `HttpRequest` and
/// may be kept across `next.call(req)`. Sessions are saved when the inner services answer: what
/// is opened or changed after that is not saved.
///
/// Like actix-web's own routing, the middleware needs the request to itself when it is called
/// (it adds its data to the request): a middleware outside it must not keep a clone of the
/// `HttpRequest` across the call. Wrapped twice (at App and at scope level, say), the innermost
/// one serves the request's sessions.
///
/// If the response is a server error (5xx) or the handler returned an `Err`, nothing is saved
/// but purges: the request's session changes are dropped along with its other work, while a
/// [`purge`](crate::Session::purge) (a logout) still ends the session. If a store fails while
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

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
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
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let mut marker = Extensions::new();
        let id = {
            let added = Marker::new(self.config.clone());
            let id = added.id;
            marker.insert(added);
            id
        };
        ready(Ok(SessionService {
            service,
            id,
            marker: Rc::new(marker),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around an app's services.
#[doc(hidden)]
pub struct SessionService<S> {
    service: S,
    /// Its marker's id (see `request`).
    id: u64,
    /// Added to each request's app data (see `request`).
    marker: Rc<Extensions>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionService")
    }
}

type Saved = Result<ServiceResponse<BoxBody>, actix_web::Error>;

/// What follows the inner service's response: the final response at once, unless a server-side
/// session has to be written (then a boxed future does the I/O).
enum After {
    Done(Saved),
    Save(LocalBoxFuture<'static, Saved>),
}

pin_project_lite::pin_project! {
    /// The future of [`SessionService::call`]: the inner service's future, then the save. Nothing
    /// is boxed unless a server-side session is written.
    #[doc(hidden)]
    pub struct SessionFuture<F> {
        #[pin]
        inner: F,
        // The service's marker id: finds its registry (see `request`).
        id: u64,
        saving: Option<LocalBoxFuture<'static, Saved>>,
    }
}

impl<F> std::fmt::Debug for SessionFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFuture")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for SessionFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Saved;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(saving) = this.saving {
            return saving.as_mut().poll(cx);
        }
        let answered = std::task::ready!(this.inner.poll(cx));
        let registry = match &answered {
            Ok(res) => Registry::made(&res.request().extensions(), *this.id),
            Err(_) => None,
        };
        match after(answered, registry) {
            After::Done(saved) => Poll::Ready(saved),
            After::Save(mut saving) => {
                let polled = saving.as_mut().poll(cx);
                if polled.is_pending() {
                    *this.saving = Some(saving);
                }
                polled
            }
        }
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = actix_web::Error;
    type Future = SessionFuture<S::Future>;

    actix_service::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        req.add_data_container(self.marker.clone());
        SessionFuture {
            inner: self.service.call(req),
            id: self.id,
            saving: None,
        }
    }
}

/// Saves the sessions the request opened, once the inner service has answered.
fn after<B: MessageBody + 'static>(
    res: Result<ServiceResponse<B>, actix_web::Error>,
    registry: Option<Rc<Registry>>,
) -> After {
    let mut res = match res {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => return After::Done(Err(err)),
    };
    let Some(registry) = registry else {
        return After::Done(Ok(res));
    };
    let mut opened = registry.opened();
    let config = registry.config.clone();
    if opened.is_empty() {
        return After::Done(Ok(res));
    }
    vary_on_cookie(res.response_mut().headers_mut());
    if res.status().is_server_error() || res.response().error().is_some() {
        // The failed request's changes are dropped, but never a purge: a logout must not
        // silently fail to log out because the handler failed after it.
        opened.retain(|session| session.status() == SessionStatus::Purged);
        tracing::debug!(
            status = %res.status(),
            purges_saved = opened.len(),
            "handler failed: session changes of this request are not saved, purges are"
        );
        if opened.is_empty() {
            return After::Done(Ok(res));
        }
    }
    let now = config.clock.now();
    // Cookie sessions first, right here: they do no I/O, so a store failure below cannot leave a
    // cookie session half-written.
    opened.sort_by_key(|s| !s.spec().backend.is_cookie());
    let mut cookies = SetCookies::new();
    let mut server_side = opened.len();
    for (i, session) in opened.iter().enumerate() {
        match save_cookie_session(&config, session, now) {
            None => {
                server_side = i;
                break;
            }
            Some(Ok(Some(cookie))) => cookies.push(cookie),
            Some(Ok(None)) => {}
            Some(Err(_logged)) => return After::Done(Ok(failure(res, &config, cookies))),
        }
    }
    if server_side == opened.len() {
        add_cookies(&mut res, cookies);
        return After::Done(Ok(res));
    }
    After::Save(Box::pin(async move {
        for session in &opened[server_side..] {
            // Boxed on its own, as the load is (see `Sessions::open_inner`).
            match Box::pin(save(&config, session, now)).await {
                Ok(Some(cookie)) => cookies.push(cookie),
                Ok(None) => {}
                Err(_logged) => return Ok(failure(res, &config, cookies)),
            }
        }
        add_cookies(&mut res, cookies);
        Ok(res)
    }))
}

/// The `Set-Cookie` values of the sessions saved so far (inline for the usual one or two).
type SetCookies = smallvec::SmallVec<[HeaderValue; 2]>;

fn add_cookies<B>(res: &mut ServiceResponse<B>, cookies: SetCookies) {
    let headers = res.response_mut().headers_mut();
    if !cookies.is_empty() {
        keep_private(headers);
    }
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

/// The opaque failure response. Sessions saved before the failure stay saved (several stores
/// cannot commit together); the failure response still carries their cookies, so the client's
/// cookies match what the stores hold (a renewed session keeps its new id).
fn failure(
    res: ServiceResponse<BoxBody>,
    config: &Config,
    cookies: SetCookies,
) -> ServiceResponse<BoxBody> {
    let (req, _) = res.into_parts();
    let mut failure = ServiceResponse::new(req, HttpResponse::new(config.failure_status));
    vary_on_cookie(failure.response_mut().headers_mut());
    add_cookies(&mut failure, cookies);
    failure
}
