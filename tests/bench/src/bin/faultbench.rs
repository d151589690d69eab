//! The fault-injection harness (issue 6, item 7): a session server on PostgreSQL or Redis, and a
//! load generator in a second process that measures what a store fault costs the clients.
//!
//! Driven by `tests/bench/faults.sh`, which starts a throw-away PostgreSQL cluster or redis-server
//! per scenario, this server, then the load; it breaks the store while the load runs (stops,
//! stalls, exhausts or restarts it), writes the wall-clock moments it did so to a marks file, and
//! collects one result line per scenario.
//!
//! ```text
//! faultbench serve --backend pg|redis --url URL --port N [--pool-size 4] [--timeout-ms 1000]
//!                   [--shared-connections 0]  (PostgreSQL: `PostgresStoreBuilder::shared_connections`)
//! faultbench load  --port N --route rw|ro|rw-slow --clients C --seconds S --out FILE.json
//!                  [--marks FILE] [--ready FILE] [--label TEXT] [--deadline-ms 10000]
//!                  [--prime 3] [--pause-ms 20] [--max-requests 2000000]
//! ```
//!
//! The server answers `GET /init` (a new session holding `n = 0`), `GET /rw` (load `n`, save
//! `n + 1`, answer `n + 1`), `GET /rw-slow` (the same with 50 ms between the load and the save, so
//! that an outage can begin in between), `GET /ro` (load `n` and answer it) and `GET /health` (no
//! session). A session without `n` (gone from the store) is answered `410 Gone`. Store failures
//! are answered `503` (the middleware's `failure_status`); an outer wrapper tags them with
//! `x-fault-phase: load` or `save`, depending on whether the handler had loaded the session.
//!
//! The load process runs `C` clients on one thread, each with its own session and its own
//! keep-alive HTTP/1.1 connection to 127.0.0.1, one request at a time:
//! 1. *setup*: `/init`, then `--prime` increments on `/rw` (so that every session holds data);
//! 2. *measured*: `--route` in a loop for `S` seconds (the `--ready` file is written when this
//!    starts); a client pauses `--pause-ms` after a failed request instead of retrying at once;
//! 3. *read-back*: each session is read on `/ro` (retried for up to 15 s).
//!
//! Definitions (per scenario, over the measured phase):
//! - **failed**: a response other than 200, or a connection error;
//! - **hung**: a request without a complete response after `--deadline-ms` (10 s, ten times the
//!   server's store timeout); the connection is dropped and the client carries on;
//! - **lost**: acknowledged increments that the store no longer holds. Each client keeps the
//!   highest value the server acknowledged with a 200; a later 200 that shows a smaller value
//!   loses the difference, a `410 Gone` loses everything acknowledged, and the read-back must
//!   show at least the highest acknowledged value (a session that cannot be read back at all
//!   counts as lost too);
//! - **landed**: increments that were answered with a failure but were stored anyway (a later
//!   200 skips values): not a loss, but a 503 does not prove that nothing was written;
//! - **failing for**: from the start of the first failed (or hung) request to the end of the
//!   last one: how long clients saw the fault;
//! - **recover** (seconds to recover): with `fault_clear` from the marks file (the moment the
//!   store is back: `pg_ctl start` or `redis-server` answered, the lock released, the pause
//!   over), the time from `fault_clear` to the start of the last request that failed or hung
//!   after it (0 when none did): from then on, every request succeeded;
//! - **rate back** (seconds to full rate): the first moment `t ≥ fault_clear` (in 100 ms steps)
//!   such that every request started in `[t, t + 2 s)` succeeded, at a rate of at least 90 % of
//!   the pre-fault rate (successes per second from 1 s after the start to `fault_start`);
//!   `t - fault_clear`, none if not reached within the run. On a machine shared with other work
//!   the rate itself is noisy, hence the 2 s window;
//! - **serving at the end**: at least one request started in the last 2 s succeeded.

use std::{
    cell::RefCell,
    collections::{BTreeMap, HashMap},
    io::Write as _,
    rc::Rc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use actix_typed_session::{Key, Session, SessionMiddleware};
use actix_web::{
    dev::Service as _,
    http::{
        header::{HeaderName, HeaderValue},
        StatusCode,
    },
    web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer,
};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let opts = Opts::parse(args);
    let result = match role.as_str() {
        "serve" => actix_web::rt::System::new().block_on(serve(&opts)),
        "load" => load(&opts),
        _ => {
            eprintln!("usage: faultbench serve|load [--option value]... (see the source's header)");
            std::process::exit(2)
        }
    };
    if let Err(err) = result {
        eprintln!("faultbench {role}: {err}");
        std::process::exit(1)
    }
}

/// `--name value` pairs.
struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: impl Iterator<Item = String>) -> Self {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                eprintln!("unexpected argument {arg:?}");
                std::process::exit(2)
            };
            let value = args.next().unwrap_or_else(|| {
                eprintln!("--{name} needs a value");
                std::process::exit(2)
            });
            map.insert(name.to_owned(), value);
        }
        Self(map)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    fn need(&self, name: &str) -> std::io::Result<&str> {
        self.str(name)
            .ok_or_else(|| std::io::Error::other(format!("--{name} is required")))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> std::io::Result<T> {
        match self.str(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| std::io::Error::other(format!("--{name}: not a number: {v:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server.

/// Set by a handler once its session is loaded: a 503 after that is a failed save.
struct Loaded;

async fn init(session: Session) -> actix_web::Result<HttpResponse> {
    session.insert("n", 0u64)?;
    Ok(HttpResponse::Ok().body("0"))
}

async fn increment(req: &HttpRequest, session: &Session, pause: Duration) -> HttpResponse {
    let n = match session.get::<u64>("n") {
        Ok(Some(n)) => n,
        Ok(None) => return HttpResponse::Gone().finish(),
        Err(err) => return actix_web::ResponseError::error_response(&err),
    };
    req.extensions_mut().insert(Loaded);
    if !pause.is_zero() {
        actix_web::rt::time::sleep(pause).await;
    }
    match session.insert("n", n + 1) {
        Ok(()) => HttpResponse::Ok().body((n + 1).to_string()),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

async fn rw(req: HttpRequest, session: Session) -> HttpResponse {
    increment(&req, &session, Duration::ZERO).await
}

async fn rw_slow(req: HttpRequest, session: Session) -> HttpResponse {
    increment(&req, &session, Duration::from_millis(50)).await
}

async fn ro(req: HttpRequest, session: Session) -> HttpResponse {
    match session.get::<u64>("n") {
        Ok(Some(n)) => {
            req.extensions_mut().insert(Loaded);
            HttpResponse::Ok().body(n.to_string())
        }
        Ok(None) => HttpResponse::Gone().finish(),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn serve(opts: &Opts) -> std::io::Result<()> {
    let backend = opts.need("backend")?;
    let url = opts.need("url")?.to_owned();
    let port: u16 = opts.num("port", 0)?;
    let timeout = Duration::from_millis(opts.num("timeout-ms", 1000)?);
    let pool_size: usize = opts.num("pool-size", 4)?;
    let shared: usize = opts.num("shared-connections", 0)?;
    let store: actix_typed_session::Backend = match backend {
        "pg" => {
            use actix_typed_session::deadpool_postgres::{
                tokio_postgres::NoTls, Config, PoolConfig, Runtime,
            };
            let mut config = Config::new();
            config.url = Some(url);
            config.application_name = Some("faultbench".into());
            config.pool = Some(PoolConfig::new(pool_size));
            let pool = config
                .create_pool(Some(Runtime::Tokio1), NoTls)
                .map_err(std::io::Error::other)?;
            let store = actix_typed_session::PostgresStore::builder(pool)
                .schema("faultbench")
                .table("sessions")
                .timeout(timeout)
                .shared_connections(shared)
                .build()
                .map_err(std::io::Error::other)?;
            store.migrate().await.map_err(std::io::Error::other)?;
            store.into()
        }
        "redis" => {
            let client =
                actix_typed_session::redis::Client::open(url).map_err(std::io::Error::other)?;
            actix_typed_session::RedisStore::builder(client)
                .prefix("faultbench:")
                .timeout(timeout)
                .build()
                .map_err(std::io::Error::other)?
                .into()
        }
        other => return Err(std::io::Error::other(format!("unknown backend {other:?}"))),
    };
    let sessions = SessionMiddleware::builder(Key::generate())
        .backend("store", store)
        .failure_status(StatusCode::SERVICE_UNAVAILABLE)
        .build()
        .map_err(std::io::Error::other)?;
    let server = HttpServer::new(move || {
        App::new()
            .wrap(sessions.clone())
            .wrap_fn(|req, srv| {
                let response = srv.call(req);
                async move {
                    let mut res = response.await?;
                    if res.status() == StatusCode::SERVICE_UNAVAILABLE {
                        let loaded = res.request().extensions().get::<Loaded>().is_some();
                        res.headers_mut().insert(
                            HeaderName::from_static("x-fault-phase"),
                            HeaderValue::from_static(if loaded { "save" } else { "load" }),
                        );
                    }
                    Ok(res)
                }
            })
            .route("/init", web::get().to(init))
            .route("/rw", web::get().to(rw))
            .route("/rw-slow", web::get().to(rw_slow))
            .route("/ro", web::get().to(ro))
            .route("/health", web::get().to(health))
    })
    .workers(1)
    .keep_alive(Duration::from_secs(75))
    .backlog(1024)
    .bind(("127.0.0.1", port))?
    .run();
    eprintln!("faultbench: serving {backend} on 127.0.0.1:{port}, store timeout {timeout:?}");
    server.await
}

// ---------------------------------------------------------------------------------------------
// The load: a minimal HTTP/1.1 client over keep-alive connections.

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct Reply {
    status: u16,
    body: String,
    set_cookie: Option<String>,
    phase: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    Hung,
}

struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    cookie: Option<String>,
}

impl Client {
    /// One request on the kept-alive connection (a new one if there is none, or if a reused one
    /// was closed by the server before it answered).
    async fn get(&mut self, path: &str) -> std::io::Result<Reply> {
        let reused = self.conn.is_some();
        match self.try_get(path).await {
            Err(err) if reused && err.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.conn = None;
                self.try_get(path).await
            }
            other => other,
        }
    }

    async fn try_get(&mut self, path: &str) -> std::io::Result<Reply> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(cookie) = &self.cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        let result = async {
            conn.get_mut().write_all(request.as_bytes()).await?;
            read_reply(conn).await
        }
        .await;
        match result {
            Ok((reply, close)) => {
                if close {
                    self.conn = None;
                }
                if let Some(cookie) = &reply.set_cookie {
                    self.cookie = Some(cookie.clone());
                }
                Ok(reply)
            }
            Err(err) => {
                self.conn = None;
                Err(err)
            }
        }
    }
}

/// Reads one response; also says whether the server will close the connection.
async fn read_reply(conn: &mut BufReader<TcpStream>) -> std::io::Result<(Reply, bool)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut length, mut close) = (0usize, false);
    let (mut set_cookie, mut phase) = (None, None);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("malformed header"));
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().map_err(|_| bad("content-length"))?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "transfer-encoding" => return Err(bad("chunked responses are not expected")),
            "x-fault-phase" => phase = Some(value.to_owned()),
            "set-cookie" => {
                let pair = value.split(';').next().unwrap_or_default();
                let removal = value.to_ascii_lowercase().contains("max-age=0");
                if !removal && pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()) {
                    set_cookie = Some(pair.to_owned());
                }
            }
            _ => {}
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    let body = String::from_utf8(body).map_err(|_| bad("body is not UTF-8"))?;
    Ok((
        Reply {
            status,
            body,
            set_cookie,
            phase,
        },
        close,
    ))
}

/// One measured request.
struct Record {
    start: u64,
    end: u64,
    outcome: Outcome,
}

#[derive(Default)]
struct Totals {
    records: Vec<Record>,
    failures: BTreeMap<String, u64>,
    lost: u64,
    landed: u64,
    vanished: u64,
    unverified: u64,
    regressions: u64,
}

struct LoadSettings {
    port: u16,
    route: String,
    deadline: Duration,
    pause: Duration,
    prime: u64,
    max_requests: usize,
}

/// A client's view of its session.
struct Tracker {
    acked: u64,
}

impl Tracker {
    /// Applies a 200 showing the stored value `seen` (before this request's increment, if it
    /// made one).
    fn observe(&mut self, seen: u64, wrote: bool, totals: &mut Totals) {
        if seen < self.acked {
            totals.lost += self.acked - seen;
            totals.regressions += 1;
        } else if seen > self.acked {
            totals.landed += seen - self.acked;
        }
        self.acked = if wrote { seen + 1 } else { seen };
    }
}

/// `/init`, retried a few times; then `prime` increments.
async fn setup(client: &mut Client, s: &LoadSettings) -> std::io::Result<Tracker> {
    let mut tries = 0;
    loop {
        tries += 1;
        match tokio::time::timeout(s.deadline, client.get("/init")).await {
            Ok(Ok(r)) if r.status == 200 && client.cookie.is_some() => break,
            _ if tries < 20 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => return Err(std::io::Error::other("setup: /init kept failing")),
        }
    }
    let mut tracker = Tracker { acked: 0 };
    let mut tries = 0;
    while tracker.acked < s.prime {
        tries += 1;
        match tokio::time::timeout(s.deadline, client.get("/rw")).await {
            Ok(Ok(r)) if r.status == 200 => {
                tracker.acked = r.body.trim().parse().map_err(std::io::Error::other)?;
            }
            _ if tries < 20 => tokio::time::sleep(Duration::from_millis(200)).await,
            _ => return Err(std::io::Error::other("setup: /rw kept failing")),
        }
    }
    Ok(tracker)
}

async fn measured(
    client: &mut Client,
    tracker: &mut Tracker,
    s: &LoadSettings,
    until: u64,
    totals: &RefCell<Totals>,
) {
    let path = format!("/{}", s.route);
    let wrote = s.route != "ro";
    while now_ms() < until && totals.borrow().records.len() < s.max_requests {
        let start = now_ms();
        let result = tokio::time::timeout(s.deadline, client.get(&path)).await;
        let end = now_ms();
        let (outcome, reinit) = classify(result, client, tracker, wrote, &mut totals.borrow_mut());
        totals.borrow_mut().records.push(Record {
            start,
            end,
            outcome,
        });
        if reinit {
            // Not measured: a new session for this client.
            if let Ok(Ok(r)) = tokio::time::timeout(s.deadline, client.get("/init")).await {
                if r.status != 200 {
                    client.cookie = None;
                }
            }
        }
        if outcome != Outcome::Ok && !s.pause.is_zero() {
            tokio::time::sleep(s.pause).await;
        }
    }
}

/// Counts one measured reply; says whether the client needs a new session.
fn classify(
    result: Result<std::io::Result<Reply>, tokio::time::error::Elapsed>,
    client: &mut Client,
    tracker: &mut Tracker,
    wrote: bool,
    t: &mut Totals,
) -> (Outcome, bool) {
    let mut reinit = false;
    let outcome = match result {
        Err(_elapsed) => {
            client.conn = None;
            Outcome::Hung
        }
        Ok(Err(err)) => {
            *t.failures
                .entry(format!("error:{:?}", err.kind()))
                .or_default() += 1;
            Outcome::Failed
        }
        Ok(Ok(reply)) if reply.status == 200 => match reply.body.trim().parse::<u64>() {
            Ok(v) => {
                let seen = if wrote { v.saturating_sub(1) } else { v };
                tracker.observe(seen, wrote, t);
                Outcome::Ok
            }
            Err(_) => {
                *t.failures.entry("200:bad-body".into()).or_default() += 1;
                Outcome::Failed
            }
        },
        Ok(Ok(reply)) => {
            let key = match &reply.phase {
                Some(phase) => format!("{}:{phase}", reply.status),
                None => reply.status.to_string(),
            };
            *t.failures.entry(key).or_default() += 1;
            if reply.status == 410 {
                // The session is gone: everything it acknowledged is lost. Start afresh.
                // (Without a cookie, after a failed re-init, there was nothing to lose.)
                if client.cookie.take().is_some() {
                    t.lost += tracker.acked;
                    t.vanished += 1;
                }
                tracker.acked = 0;
                reinit = true;
            }
            Outcome::Failed
        }
    };
    (outcome, reinit)
}

/// Reads the session back after the fault: retried for up to 15 s.
async fn read_back(
    client: &mut Client,
    tracker: &mut Tracker,
    s: &LoadSettings,
    t: &RefCell<Totals>,
) {
    if client.cookie.is_none() {
        return;
    }
    let give_up = now_ms() + 15_000;
    while now_ms() < give_up {
        match tokio::time::timeout(s.deadline, client.get("/ro")).await {
            Ok(Ok(r)) if r.status == 200 => {
                if let Ok(v) = r.body.trim().parse::<u64>() {
                    tracker.observe(v, false, &mut t.borrow_mut());
                    return;
                }
            }
            Ok(Ok(r)) if r.status == 410 => {
                let mut t = t.borrow_mut();
                t.lost += tracker.acked;
                t.vanished += 1;
                return;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut t = t.borrow_mut();
    t.lost += tracker.acked;
    t.unverified += 1;
}

/// The window over which recovery is judged.
const WINDOW_MS: u64 = 2000;

fn read_marks(path: Option<&str>) -> HashMap<String, u64> {
    let Some(path) = path else {
        return HashMap::new();
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, ms) = l.split_once(' ')?;
            Some((name.to_owned(), ms.trim().parse().ok()?))
        })
        .collect()
}

fn load(opts: &Opts) -> std::io::Result<()> {
    let settings = Rc::new(LoadSettings {
        port: opts.num("port", 0)?,
        route: opts.str("route").unwrap_or("rw").to_owned(),
        deadline: Duration::from_millis(opts.num("deadline-ms", 10_000)?),
        pause: Duration::from_millis(opts.num("pause-ms", 20)?),
        prime: opts.num("prime", 3)?,
        max_requests: opts.num("max-requests", 2_000_000)?,
    });
    if !["rw", "ro", "rw-slow"].contains(&settings.route.as_str()) {
        return Err(std::io::Error::other("--route is rw, ro or rw-slow"));
    }
    let clients: usize = opts.num("clients", 16)?;
    let seconds: f64 = opts.num("seconds", 20.0)?;
    let out = opts.need("out")?.to_owned();
    let label = opts.str("label").unwrap_or("-").to_owned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let totals = Rc::new(RefCell::new(Totals::default()));
    let (start, end) = local.block_on(&runtime, async {
        let mut set = Vec::new();
        for _ in 0..clients {
            let s = settings.clone();
            set.push(tokio::task::spawn_local(async move {
                let mut client = Client {
                    port: s.port,
                    conn: None,
                    cookie: None,
                };
                let tracker = setup(&mut client, &s).await?;
                Ok::<_, std::io::Error>((client, tracker))
            }));
        }
        let mut ready = Vec::new();
        for task in set {
            ready.push(task.await.map_err(std::io::Error::other)??);
        }
        let start = now_ms();
        let until = start + (seconds * 1000.0) as u64;
        if let Some(path) = opts.str("ready") {
            std::fs::write(path, format!("{start}\n"))?;
        }
        let mut set = Vec::new();
        for (mut client, mut tracker) in ready {
            let (s, totals) = (settings.clone(), totals.clone());
            set.push(tokio::task::spawn_local(async move {
                measured(&mut client, &mut tracker, &s, until, &totals).await;
                (client, tracker)
            }));
        }
        let mut done = Vec::new();
        for task in set {
            done.push(task.await.map_err(std::io::Error::other)?);
        }
        let end = now_ms();
        let mut set = Vec::new();
        for (mut client, mut tracker) in done {
            let (s, totals) = (settings.clone(), totals.clone());
            set.push(tokio::task::spawn_local(async move {
                read_back(&mut client, &mut tracker, &s, &totals).await;
            }));
        }
        for task in set {
            task.await.map_err(std::io::Error::other)?;
        }
        Ok::<_, std::io::Error>((start, end))
    })?;

    let totals = totals.borrow();
    let marks = read_marks(opts.str("marks"));
    let records = &totals.records;
    let count = |from: u64, to: u64, what: Outcome| {
        records
            .iter()
            .filter(|r| r.start >= from && r.start < to && r.outcome == what)
            .count()
    };
    let total = records.len();
    let ok = records.iter().filter(|r| r.outcome == Outcome::Ok).count();
    let hung = records
        .iter()
        .filter(|r| r.outcome == Outcome::Hung)
        .count();
    let failed = total - ok - hung;
    let slowest_ms = records.iter().map(|r| r.end - r.start).max().unwrap_or(0);
    let fault_start = marks.get("fault_start").copied();
    let fault_clear = marks.get("fault_clear").copied();
    let baseline = fault_start.and_then(|f| {
        let from = start + 1000;
        (f > from + 500).then(|| count(from, f, Outcome::Ok) as f64 * 1000.0 / (f - from) as f64)
    });
    let recover_s = fault_clear.map(|clear| {
        let last_failure = records
            .iter()
            .filter(|r| r.start >= clear && r.outcome != Outcome::Ok)
            .map(|r| r.start)
            .max();
        last_failure.map_or(0.0, |t| (t - clear) as f64 / 1000.0)
    });
    let rate_back_s = match (baseline, fault_clear) {
        (Some(rate), Some(clear)) => (0..)
            .map(|step| clear + step * 100)
            .take_while(|t| t + WINDOW_MS <= end)
            .find(|&t| {
                let started = records
                    .iter()
                    .filter(|r| r.start >= t && r.start < t + WINDOW_MS)
                    .count();
                let ok = count(t, t + WINDOW_MS, Outcome::Ok);
                ok == started && ok as f64 * 1000.0 / WINDOW_MS as f64 >= 0.9 * rate
            })
            .map(|t| (t - clear) as f64 / 1000.0),
        _ => None,
    };
    let failing_s = {
        let bad = || records.iter().filter(|r| r.outcome != Outcome::Ok);
        match (bad().map(|r| r.start).min(), bad().map(|r| r.end).max()) {
            (Some(first), Some(last)) => (last - first) as f64 / 1000.0,
            _ => 0.0,
        }
    };
    let serving_at_end = count(end.saturating_sub(2000), end, Outcome::Ok) > 0;
    let per_second: Vec<_> = (0..=((end - start) / 1000))
        .map(|i| {
            let (from, to) = (start + i * 1000, start + (i + 1) * 1000);
            json!({
                "t": i,
                "ok": count(from, to, Outcome::Ok),
                "failed": count(from, to, Outcome::Failed),
                "hung": count(from, to, Outcome::Hung),
            })
        })
        .collect();
    let rel = |t: Option<u64>| t.map(|t| (t as f64 - start as f64) / 1000.0);
    let report = json!({
        "label": label,
        "route": settings.route,
        "clients": clients,
        "seconds": seconds,
        "deadline_ms": settings.deadline.as_millis() as u64,
        "total": total,
        "ok": ok,
        "failed": failed,
        "failures": totals.failures,
        "hung": hung,
        "slowest_ms": slowest_ms,
        "lost": totals.lost,
        "regressions": totals.regressions,
        "vanished": totals.vanished,
        "unverified": totals.unverified,
        "landed": totals.landed,
        "baseline_rps": baseline,
        "fault_start_s": rel(fault_start),
        "fault_clear_s": rel(fault_clear),
        "failing_s": failing_s,
        "recover_s": recover_s,
        "rate_back_s": rate_back_s,
        "serving_at_end": serving_at_end,
        "per_second": per_second,
    });
    let mut file = std::fs::File::create(&out)?;
    serde_json::to_writer_pretty(&mut file, &report).map_err(std::io::Error::other)?;
    writeln!(file)?;
    let failures: Vec<String> = totals
        .failures
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "RESULT\t{label}\t{total}\t{failed}\t{hung}\t{failing_s:.1}\t{}\t{}\t{}\t{}\t{slowest_ms}\t{}\t{}",
        recover_s.map_or("none".into(), |s| format!("{s:.1}")),
        rate_back_s.map_or("none".into(), |s| format!("{s:.1}")),
        totals.lost,
        totals.landed,
        if serving_at_end { "yes" } else { "no" },
        if failures.is_empty() {
            "-".into()
        } else {
            failures.join(",")
        },
    );
    Ok(())
}
