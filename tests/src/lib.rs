//! Test support shared by the integration tests: a cookie-keeping client over an
//! `actix_web::test` service, a clock that tests can move, stores that count or fail, and the
//! conformance suite every backend runs.
#![allow(missing_docs)]

pub mod conformance;
pub mod devices;
pub mod expiry;
pub mod failover;
pub mod guards;
pub mod outside;
pub mod owners;
pub mod pg;
pub mod pgbouncer;
pub mod redis;
pub mod redis_cluster;
mod stores;

use std::{
    cell::RefCell,
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use actix_typed_session::{Clock, Expiry, SessionError, SessionMiddleware, Sessions};
use actix_web::{
    body::MessageBody,
    cookie::Cookie,
    dev::{Service, ServiceResponse},
    error::ErrorBadRequest,
    http::{header, StatusCode},
    test, web, App, HttpResponse,
};
use serde_json::Value;
use tokio::sync::Semaphore;

pub use stores::{
    CountingStore, Counts, FailingStore, FailureMode, HookedStore, Op, SECRET_DETAIL,
};

/// The cookie name of session `session` under the default cookie attributes (`Secure`,
/// `Path=/`, no `Domain`): `__Host-{session}`.
pub fn host(session: &str) -> String {
    format!("__Host-{session}")
}

/// Real time plus an offset that a test moves forward.
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// Lets a test hold handlers between loading their session and changing it.
pub struct Gate {
    /// One permit per handler that has loaded its session.
    pub loaded: Semaphore,
    /// One permit per handler allowed to go on.
    pub go: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            loaded: Semaphore::new(0),
            go: Semaphore::new(0),
        }
    }
}

impl Gate {
    /// Waits until `n` gated handlers have loaded their sessions.
    pub async fn wait_loaded(&self, n: u32) {
        self.loaded
            .acquire_many(n)
            .await
            .expect("gate open")
            .forget();
    }

    /// Lets `n` gated handlers go on.
    pub fn release(&self, n: usize) {
        self.go.add_permits(n);
    }
}

/// A response, with the cookies it set.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub set_cookies: Vec<Cookie<'static>>,
    pub headers: header::HeaderMap,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    /// The cookie called `name`, or else `__Host-{name}`: session `name`'s cookie under the
    /// default attributes.
    pub fn cookie(&self, name: &str) -> Option<&Cookie<'static>> {
        let find = |name: &str| self.set_cookies.iter().find(|c| c.name() == name);
        find(name).or_else(|| find(&host(name)))
    }
}

/// A client that keeps cookies between requests, like a browser.
pub struct Client<S> {
    app: S,
    pub jar: RefCell<BTreeMap<String, String>>,
    pub gate: Arc<Gate>,
}

type Handler = Result<HttpResponse, actix_web::Error>;

fn key_of(path: &web::Path<(String, String)>) -> (&str, &str) {
    (&path.0, &path.1)
}

async fn get(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    let session = s.open(name).await?;
    match session.get::<Value>(key)? {
        Some(v) => Ok(HttpResponse::Ok().json(v)),
        None => Ok(HttpResponse::NotFound().finish()),
    }
}

async fn set(s: Sessions, p: web::Path<(String, String)>, v: web::Json<Value>) -> Handler {
    let (name, key) = key_of(&p);
    s.open(name).await?.insert(key, v.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

async fn remove(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    let removed = s.open(name).await?.remove(key);
    Ok(HttpResponse::Ok().json(removed))
}

async fn contains(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    Ok(HttpResponse::Ok().json(s.open(name).await?.contains_key(key)))
}

async fn entries(s: Sessions, p: web::Path<String>) -> Handler {
    let session = s.open(&p).await?;
    let entries = session.entries().clone();
    Ok(HttpResponse::Ok().json(entries))
}

/// Clears the session and answers with its status afterwards (`Changed`, ...).
async fn clear(s: Sessions, p: web::Path<String>) -> Handler {
    let session = s.open(&p).await?;
    session.clear();
    Ok(HttpResponse::Ok().body(format!("{:?}", session.status())))
}

async fn renew(s: Sessions, p: web::Path<String>) -> Handler {
    s.open(&p).await?.renew();
    Ok(HttpResponse::Ok().finish())
}

async fn purge(s: Sessions, p: web::Path<String>) -> Handler {
    s.open(&p).await?.purge();
    Ok(HttpResponse::Ok().finish())
}

/// A logout whose handler fails afterwards.
async fn purge_then_err(s: Sessions, p: web::Path<String>) -> Handler {
    s.open(&p).await?.purge();
    Err(ErrorBadRequest("failed after the logout"))
}

/// Sets `k` and answers with a `Cache-Control` of the handler's own.
async fn set_cacheable(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    s.open(name).await?.insert(key, true)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .finish())
}

async fn set_then_500(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    s.open(name).await?.insert(key, "lost")?;
    Ok(HttpResponse::InternalServerError().finish())
}

async fn set_then_err(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    s.open(name).await?.insert(key, "lost")?;
    Err(ErrorBadRequest("handler refused"))
}

/// Loads the session, signals `gate.loaded`, waits for `gate.go`, then sets the key.
async fn wait_then_set(
    s: Sessions,
    p: web::Path<(String, String)>,
    v: web::Json<Value>,
    gate: web::Data<Arc<Gate>>,
) -> Handler {
    let (name, key) = key_of(&p);
    let session = s.open(name).await?;
    gate.loaded.add_permits(1);
    gate.go.acquire().await.expect("gate open").forget();
    session.insert(key, v.into_inner())?;
    Ok(HttpResponse::Ok().finish())
}

/// `Session::update` of a `u32` counter: its new value, 404 when absent, 409 (naming the key)
/// when the stored value is not a `u32`.
async fn increment(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    match s.open(name).await?.update(key, |n: u32| n + 1) {
        Ok(Some(n)) => Ok(HttpResponse::Ok().json(n)),
        Ok(None) => Ok(HttpResponse::NotFound().finish()),
        Err(err @ SessionError::Deserialize { .. }) => {
            Ok(HttpResponse::Conflict().body(err.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

/// `Session::update_or` of a `u32` counter starting at 1: its new value, 409 as above.
async fn count(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, key) = key_of(&p);
    match s.open(name).await?.update_or(key, 1, |n: u32| n + 1) {
        Ok(n) => Ok(HttpResponse::Ok().json(n)),
        Err(err @ SessionError::Deserialize { .. }) => {
            Ok(HttpResponse::Conflict().body(err.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

/// `Session::set_expiry`: `default`, `browser` or an idle timeout in seconds; 400 (with the
/// error) when refused.
async fn set_expiry(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, choice) = key_of(&p);
    let expiry = match choice {
        "default" => Expiry::Default,
        "browser" => Expiry::BrowserSession,
        secs => Expiry::IdleFor(Duration::from_secs(secs.parse().map_err(ErrorBadRequest)?)),
    };
    match s.open(name).await?.set_expiry(expiry) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        Err(err @ SessionError::InvalidExpiry { .. }) => {
            Ok(HttpResponse::BadRequest().body(err.to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

/// `Session::expiry`: `"default"`, `"browser"` or the idle timeout in seconds.
async fn expiry(s: Sessions, p: web::Path<String>) -> Handler {
    let answer = match s.open(&p).await?.expiry() {
        Expiry::BrowserSession => Value::from("browser"),
        Expiry::IdleFor(idle) => Value::from(idle.as_secs()),
        _ => Value::from("default"),
    };
    Ok(HttpResponse::Ok().json(answer))
}

async fn set_owner(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, owner) = key_of(&p);
    let session = s.open(name).await?;
    session.renew();
    session.set_owner(owner)?;
    Ok(HttpResponse::Ok().finish())
}

async fn owned(s: Sessions, p: web::Path<String>) -> Handler {
    let listed = s.open(&p).await?.owned_sessions().await?;
    Ok(HttpResponse::Ok().json(listed))
}

async fn end_one(s: Sessions, p: web::Path<(String, String)>) -> Handler {
    let (name, handle) = key_of(&p);
    let handle = handle.parse().map_err(ErrorBadRequest)?;
    let ended = s.open(name).await?.end_session(&handle).await?;
    Ok(HttpResponse::Ok().json(ended))
}

async fn end_others(s: Sessions, p: web::Path<String>) -> Handler {
    let ended = s.open(&p).await?.end_other_sessions().await?;
    Ok(HttpResponse::Ok().json(ended))
}

async fn end_all(s: Sessions, p: web::Path<String>) -> Handler {
    let ended = s.open(&p).await?.end_all_sessions().await?;
    Ok(HttpResponse::Ok().json(ended))
}

async fn untouched() -> HttpResponse {
    HttpResponse::Ok().body("no session here")
}

/// Builds a client over an app that exposes every session operation under `/{session}/...`.
pub async fn client(
    middleware: SessionMiddleware,
) -> Client<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
> {
    init_logs();
    let gate = Arc::new(Gate::default());
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(gate.clone()))
            .wrap(middleware)
            .route("/untouched", web::get().to(untouched))
            .route("/{s}/get/{k}", web::get().to(get))
            .route("/{s}/set/{k}", web::post().to(set))
            .route("/{s}/remove/{k}", web::post().to(remove))
            .route("/{s}/contains/{k}", web::get().to(contains))
            .route("/{s}/entries", web::get().to(entries))
            .route("/{s}/clear", web::post().to(clear))
            .route("/{s}/renew", web::post().to(renew))
            .route("/{s}/purge", web::post().to(purge))
            .route("/{s}/purge-then-err", web::post().to(purge_then_err))
            .route("/{s}/set-cacheable/{k}", web::post().to(set_cacheable))
            .route("/{s}/set-then-500/{k}", web::post().to(set_then_500))
            .route("/{s}/set-then-err/{k}", web::post().to(set_then_err))
            .route("/{s}/wait-then-set/{k}", web::post().to(wait_then_set))
            .route("/{s}/increment/{k}", web::post().to(increment))
            .route("/{s}/count/{k}", web::post().to(count))
            .route("/{s}/expiry/{choice}", web::post().to(set_expiry))
            .route("/{s}/expiry", web::get().to(expiry))
            .route("/{s}/login/{owner}", web::post().to(set_owner))
            .route("/{s}/owned", web::get().to(owned))
            .route("/{s}/end/{handle}", web::post().to(end_one))
            .route("/{s}/end-others", web::post().to(end_others))
            .route("/{s}/end-all", web::post().to(end_all)),
    )
    .await;
    Client {
        app,
        jar: RefCell::new(BTreeMap::new()),
        gate,
    }
}

impl<S, B> Client<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    /// A client over any app built with `actix_web::test::init_service`.
    pub fn new(app: S) -> Self {
        init_logs();
        Self {
            app,
            jar: RefCell::new(BTreeMap::new()),
            gate: Arc::new(Gate::default()),
        }
    }

    /// Sends a request with the jar's cookies and stores the cookies of the response.
    pub async fn send(&self, req: test::TestRequest) -> Reply {
        let header = self.cookie_header();
        let req = if header.is_empty() {
            req
        } else {
            req.insert_header((header::COOKIE, header))
        };
        let reply = self.send_raw(req).await;
        self.store(&reply);
        reply
    }

    /// Sends a request exactly as given: no cookies from the jar, and the jar is not updated.
    pub async fn send_raw(&self, req: test::TestRequest) -> Reply {
        let res = test::call_service(&self.app, req.to_request()).await;
        let status = res.status();
        let set_cookies = res
            .headers()
            .get_all(header::SET_COOKIE)
            .map(|v| Cookie::parse_encoded(v.to_str().unwrap().to_owned()).unwrap())
            .collect();
        let headers = res.headers().clone();
        let body = test::read_body(res).await;
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            set_cookies,
            headers,
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store(&self, reply: &Reply) {
        let mut jar = self.jar.borrow_mut();
        for cookie in &reply.set_cookies {
            record_secret(cookie.value());
            let removal = cookie
                .max_age()
                .is_some_and(|a| a.is_zero() || a.is_negative());
            if removal {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
    }

    /// A GET of `path` with exactly this `Cookie` header (the jar is neither used nor updated).
    pub async fn get_with_cookie_header(&self, path: &str, header: &str) -> Reply {
        self.send_raw(
            test::TestRequest::get()
                .uri(path)
                .insert_header((header::COOKIE, header)),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(test::TestRequest::get().uri(path)).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        self.send(test::TestRequest::post().uri(path)).await
    }

    pub async fn post_json(&self, path: &str, value: Value) -> Reply {
        self.send(test::TestRequest::post().uri(path).set_json(value))
            .await
    }

    /// Sets `key` of `session` and asserts success.
    pub async fn set(&self, session: &str, key: &str, value: Value) -> Reply {
        let reply = self
            .post_json(&format!("/{session}/set/{key}"), value)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "setting {session}/{key}");
        reply
    }

    /// Reads `key` of `session`: `None` when absent.
    pub async fn read(&self, session: &str, key: &str) -> Option<Value> {
        let reply = self.get(&format!("/{session}/get/{key}")).await;
        match reply.status {
            StatusCode::OK => Some(reply.json()),
            StatusCode::NOT_FOUND => None,
            other => panic!("reading {session}/{key}: unexpected {other}"),
        }
    }

    /// The jar's cookie called `name`, or else `__Host-{name}` (as [`Reply::cookie`]).
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.borrow();
        jar.get(name).or_else(|| jar.get(&host(name))).cloned()
    }

    /// Puts a cookie in the jar: under `name` if the jar holds that cookie or `name` has a
    /// prefix already, else under `__Host-{name}`, session `name`'s cookie under the default
    /// attributes (the tests that change them never set cookies by hand).
    pub fn set_cookie(&self, name: &str, value: &str) {
        let mut jar = self.jar.borrow_mut();
        let name = if jar.contains_key(name) || name.starts_with("__") {
            name.to_owned()
        } else {
            host(name)
        };
        jar.insert(name, value.to_owned());
    }
}

/// Sends `GET uri` to `app` and checks that it succeeded.
pub async fn get_ok<S, B>(app: &S, uri: &str) -> actix_web::dev::ServiceResponse<B>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let res = actix_web::test::call_service(
        app,
        actix_web::test::TestRequest::get().uri(uri).to_request(),
    )
    .await;
    assert_eq!(res.status(), actix_web::http::StatusCode::OK, "GET {uri}");
    res
}

/// The names of the cookies a response sets, in order.
pub fn cookie_names<B>(res: &actix_web::dev::ServiceResponse<B>) -> Vec<String> {
    res.response()
        .cookies()
        .map(|c| c.name().to_owned())
        .collect()
}

/// Checks that a session error renders as an opaque response.
pub fn assert_opaque(err: &SessionError) {
    use actix_web::ResponseError;
    let res = err.error_response();
    assert!(res.status().is_server_error());
    assert!(matches!(
        res.into_body().size(),
        actix_web::body::BodySize::Sized(0)
    ));
}

/// Captures everything logged on this thread while its guard lives ([`LogCapture::install`]).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Makes this capture the thread's subscriber (every level) until the guard is dropped.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The captured lines at WARN level.
    pub fn warnings(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains("WARN"))
            .map(str::to_owned)
            .collect()
    }
}

/// Installs a subscriber for the test process (idempotent).
///
/// Normally it prints DEBUG logs of failing tests. With `ATS_LOG_CAPTURE=<file>` set, every
/// event at TRACE level of every test goes to that file, and every cookie value the test
/// clients receive goes to `<file>.secrets`: `check-log-capture` then proves that no secret
/// reached the logs (see tests/run.sh).
pub fn init_logs() {
    match std::env::var_os("ATS_LOG_CAPTURE") {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("log capture file");
            let _ = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        None => {
            let _ = tracing_subscriber::fmt()
                .with_test_writer()
                .with_max_level(tracing::Level::DEBUG)
                .try_init();
        }
    }
}

/// Records a value that must never appear in logs (when capturing, see [`init_logs`]).
pub fn record_secret(value: &str) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("ATS_LOG_CAPTURE") else {
        return;
    };
    let mut path = std::path::PathBuf::from(path).into_os_string();
    path.push(".secrets");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{value}");
    }
}
