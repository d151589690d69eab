//! End-to-end: the `shop` example driven in headless Chromium through WebDriver.
//!
//! Checks what only a browser can: cookies hidden from scripts, kept across navigation, kept or
//! dropped across a browser restart with the same profile, removed on logout; one user's
//! sessions in two browsers, listed and ended from either; and that the library's 4096-byte
//! check matches what Chromium really does with a bigger cookie.
//!
//! The shop's scenarios run once per datastore, as `memory::..`, `postgres::..` and `redis::..`:
//! in memory always; on PostgreSQL when `DATABASE_URL` is set, in a schema of their own that is
//! dropped at the end; on Redis when `REDIS_URL` is set, under a key prefix of their own whose
//! keys are deleted at the end. A datastore whose variable is unset is skipped with a note on
//! stderr.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`bash tests/run.sh` installs them when run
//! as root). `CHROMEDRIVER` and `CHROMIUM` name other programs.

use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_typed_session::{
    deadpool_postgres::tokio_postgres::{self, NoTls},
    redis::{cmd as redis_cmd, Client as RedisClient, RedisResult},
};
use actix_web::{cookie::Cookie as ActixCookie, web, App, HttpRequest, HttpResponse, HttpServer};
use fantoccini::{cookies::Cookie, Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// A child process killed (and reaped) when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child process leading a process group of its own: the whole group is killed when the test
/// ends, so a failing test leaves no Chromium behind (chromedriver's browsers stay in its group).
struct KilledGroup(Child);

impl Drop for KilledGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        // A port number just handed out by the kernel makes the name unique enough.
        let dir = std::env::temp_dir().join(format!(
            "ats-browser-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn program(env: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found. Install Debian's `chromium` and `chromium-driver` packages \
         (apt-get install chromium chromium-driver; `bash tests/run.sh` does it when run as \
         root), or set {env} to the program. Missing here: the `{package}` package.",
        path.display()
    );
    path
}

/// A running chromedriver, and a directory for the profiles of the browsers it starts.
/// Each browser is a WebDriver session on it.
struct Driver {
    url: String,
    // Fields drop in this order: the processes end before their profiles are removed.
    _process: KilledGroup,
    profiles: TempDir,
}

impl Driver {
    fn start() -> Self {
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver", "chromium-driver");
        let port = free_port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let process = KilledGroup(process);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
            profiles: TempDir::new("profiles"),
        }
    }

    /// A browser profile directory (`--user-data-dir`); the same name gives the same profile.
    fn profile(&self, name: &str) -> PathBuf {
        let dir = self.profiles.0.join(name);
        std::fs::create_dir_all(&dir).expect("create a profile directory");
        dir
    }

    /// Starts Chromium on the profile directory `profile`, as a new WebDriver session.
    async fn browser(&self, profile: &Path) -> Client {
        let chromium = program("CHROMIUM", "/usr/bin/chromium", "chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    // Without these Chromium keeps calling home, which floods a closed network.
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a WebDriver session on Chromium")
    }
}

/// Prints a line on the test's stderr even when the test harness captures output (it captures
/// only the `print!` family of macros).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A name no other test, run or process uses: `{stem}{pid}{sep}{nanos}{sep}{n}`.
fn unique(stem: &str, sep: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{stem}{}{sep}{nanos}{sep}{n}", std::process::id())
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A PostgreSQL schema of one test's own on the server at `url` (the shop creates it); dropped
/// with everything in it when this value is dropped, however the test ends.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect to DATABASE_URL: {e}"));
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime, which must not be blocked: a runtime of its own
        // on a thread of its own.
        let (url, name) = (self.url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, NoTls)
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            note(&format!(
                "could not drop the test schema {} on DATABASE_URL: {dropped:?}",
                self.name
            ));
        }
    }
}

/// A Redis key prefix of one test's own on the server at `url`; its keys are deleted when this
/// value is dropped, however the test ends.
struct TestPrefix {
    url: String,
    prefix: String,
}

impl TestPrefix {
    /// The keys under the prefix (SCAN, so the server is never blocked).
    fn keys(&self) -> RedisResult<Vec<String>> {
        let mut connection = RedisClient::open(self.url.as_str())?
            .get_connection_with_timeout(Duration::from_secs(5))?;
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis_cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut connection)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    fn delete_keys(&self) -> RedisResult<()> {
        let keys = self.keys()?;
        let mut connection = RedisClient::open(self.url.as_str())?
            .get_connection_with_timeout(Duration::from_secs(5))?;
        for chunk in keys.chunks(500) {
            redis_cmd("DEL").arg(chunk).query::<()>(&mut connection)?;
        }
        Ok(())
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        if let Err(e) = self.delete_keys() {
            note(&format!(
                "could not delete the test keys under {} on REDIS_URL: {e}",
                self.prefix
            ));
        }
    }
}

/// Where the shop keeps its server-side sessions (the cart) in one test.
enum Datastore {
    /// The in-process memory store: no `DATABASE_URL`, no `REDIS_URL`.
    Memory,
    /// PostgreSQL at `DATABASE_URL`, in a schema of the test's own.
    Postgres(TestSchema),
    /// Redis at `REDIS_URL`, under a key prefix of the test's own.
    Redis(TestPrefix),
}

impl Datastore {
    /// PostgreSQL when `DATABASE_URL` is set; otherwise a note that `test` is skipped.
    fn postgres(test: &str) -> Option<Self> {
        let Some(url) = env_nonempty("DATABASE_URL") else {
            note(&format!(
                "SKIPPED postgres::{test}: DATABASE_URL is not set (bash tests/run.sh sets it)"
            ));
            return None;
        };
        Some(Self::Postgres(TestSchema {
            url,
            name: unique("ats_browser_", "_"),
        }))
    }

    /// Redis when `REDIS_URL` is set; otherwise a note that `test` is skipped.
    fn redis(test: &str) -> Option<Self> {
        let Some(url) = env_nonempty("REDIS_URL") else {
            note(&format!(
                "SKIPPED redis::{test}: REDIS_URL is not set (bash tests/run.sh sets it)"
            ));
            return None;
        };
        Some(Self::Redis(TestPrefix {
            url,
            prefix: unique("ats-browser:", ":") + ":",
        }))
    }

    /// Points an example's environment at this datastore, and only at it.
    fn configure(&self, command: &mut Command) {
        for var in [
            "DATABASE_URL",
            "DATABASE_SCHEMA",
            "REDIS_URL",
            "REDIS_PREFIX",
        ] {
            command.env_remove(var);
        }
        match self {
            Self::Memory => {}
            Self::Postgres(schema) => {
                command
                    .env("DATABASE_URL", &schema.url)
                    .env("DATABASE_SCHEMA", &schema.name);
            }
            Self::Redis(prefix) => {
                command
                    .env("REDIS_URL", &prefix.url)
                    .env("REDIS_PREFIX", &prefix.prefix);
            }
        }
    }

    /// How the examples describe this datastore when they start (its beginning).
    fn description(&self) -> &'static str {
        match self {
            Self::Memory => "memory (",
            Self::Postgres(_) => "PostgreSQL (DATABASE_URL)",
            Self::Redis(_) => "Redis (REDIS_URL)",
        }
    }

    /// How many sessions this test's schema or key prefix holds (retired copies included, owner
    /// index sets not); `None` in memory, which the test cannot see.
    async fn stored_sessions(&self) -> Option<usize> {
        match self {
            Self::Memory => None,
            Self::Postgres(schema) => {
                let rows: i64 = schema
                    .client()
                    .await
                    .query_one(
                        &format!("SELECT count(*) FROM \"{}\".sessions", schema.name),
                        &[],
                    )
                    .await
                    .and_then(|row| row.try_get(0))
                    .expect("count the sessions");
                Some(usize::try_from(rows).expect("a count"))
            }
            Self::Redis(prefix) => {
                let owners = format!("{}owner:", prefix.prefix);
                let keys = prefix.keys().expect("the test's Redis keys");
                Some(keys.iter().filter(|k| !k.starts_with(&owners)).count())
            }
        }
    }
}

/// An example's binary on a free port, its server-side sessions on `datastore` (no
/// `SESSION_KEY`: a random key).
struct Example {
    base: String,
    /// The lines it printed before its address (which store each backend is).
    said: Vec<String>,
    _process: Killed,
}

impl Example {
    fn start(name: &str, program: &str, datastore: &Datastore) -> Self {
        let mut command = Command::new(program);
        command
            .env("ADDR", "127.0.0.1")
            .env("PORT", "0")
            .env_remove("SESSION_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        datastore.configure(&mut command);
        let mut process = command
            .spawn()
            .unwrap_or_else(|e| panic!("start the {name} example: {e}"));
        let stdout = process.stdout.take().expect("piped stdout");
        let process = Killed(process);
        let mut base = None;
        let mut said = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("the example's output");
            if let Some(rest) = line.strip_prefix(&format!("{name} listening on ")) {
                base = rest
                    .split_whitespace()
                    .next()
                    .map(|u| u.trim_end_matches('/').to_owned());
                break;
            }
            said.push(line);
        }
        Self {
            base: base
                .unwrap_or_else(|| panic!("{name} did not print its address; it said: {said:?}")),
            said,
            _process: process,
        }
    }

    /// The shop on `datastore`, checked to have picked it.
    fn shop(datastore: &Datastore) -> Self {
        let shop = Self::start("shop", env!("CARGO_BIN_EXE_shop"), datastore);
        let expected = format!("cart datastore: {}", datastore.description());
        assert!(
            shop.said.iter().any(|line| line.starts_with(&expected)),
            "the shop did not pick the expected datastore ({expected:?}); it said: {:?}",
            shop.said
        );
        shop
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// The browser's cookie of session `name`: `__Host-{name}` (the default name under the default
/// attributes), or `name` itself.
async fn cookie(client: &Client, name: &str) -> Option<Cookie<'static>> {
    let host = format!("__Host-{name}");
    client
        .get_all_cookies()
        .await
        .expect("the browser's cookies")
        .into_iter()
        .find(|c| c.name() == host || c.name() == name)
}

async fn cookie_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .get_all_cookies()
        .await
        .expect("the browser's cookies")
        .iter()
        .map(|c| c.name().to_owned())
        .collect();
    names.sort();
    names
}

/// The text of the first element matching `css`, once it satisfies `ok` (waits up to 10 s).
async fn text_when(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("(no such element)");
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never matched; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking `{css}`: {e}"));
}

/// Sets a form field's value by script (fast for long values) and submits its form with its
/// submit button, like a person pasting and clicking.
async fn fill_and_submit(client: &Client, field: &str, value: &str, button: &str) {
    client
        .execute(
            "document.getElementById(arguments[0]).value = arguments[1];",
            vec![json!(field), json!(value)],
        )
        .await
        .expect("set the field");
    click(client, &format!("#{button}")).await;
}

async fn flash(client: &Client, ok: impl Fn(&str) -> bool) -> String {
    text_when(client, "#flash", ok).await
}

async fn quantity(client: &Client, sku: &str) -> Option<String> {
    let css = format!("#cart tr[data-sku=\"{sku}\"] .quantity");
    match client.find(Locator::Css(&css)).await {
        Ok(cell) => Some(cell.text().await.expect("cell text")),
        Err(_) => None,
    }
}

async fn value_of(client: &Client, id: &str) -> String {
    client
        .execute(
            "return document.getElementById(arguments[0]).value;",
            vec![json!(id)],
        )
        .await
        .expect("read the field")
        .as_str()
        .expect("a string")
        .to_owned()
}

/// The cart on `datastore`: kept across navigation, renewed at login, purged at logout; the
/// browser-session cart cookie ends with the browser, the persistent preferences do not.
async fn shop_sessions_behave_in_headless_chromium(datastore: Datastore) {
    let driver = Driver::start();
    let shop = Example::shop(&datastore);
    let profile = driver.profile("shop");
    let browser = driver.browser(&profile).await;

    // A first visit reads three empty sessions: nothing to keep, so no cookie at all.
    browser.goto(&shop.url("/")).await.expect("open the shop");
    text_when(&browser, "#cart-empty", |t| t.contains("empty")).await;
    assert_eq!(cookie_names(&browser).await, Vec::<String>::new());

    // Add to the cart: a flash message, and a cart cookie that holds only an id.
    click(&browser, "#add-tea").await;
    flash(&browser, |t| t.contains("Added Green tea")).await;
    assert_eq!(quantity(&browser, "tea").await.as_deref(), Some("1"));
    let cart = cookie(&browser, "cart").await.expect("a cart cookie");
    assert_eq!(
        cart.http_only(),
        Some(true),
        "the session cookie is HttpOnly"
    );
    assert_eq!(
        cart.secure(),
        Some(true),
        "Chromium keeps Secure cookies from http://localhost"
    );
    assert_eq!(cart.value().len(), 43, "an opaque id, not the cart");
    assert!(
        cart.expires().is_none(),
        "the cart cookie ends with the browser"
    );
    // The flash message was shown once, so its session (and cookie) is gone again.
    assert_eq!(cookie_names(&browser).await, ["__Host-cart"]);
    // The cart is on the datastore under test (in its own schema or key prefix).
    if let Some(stored) = datastore.stored_sessions().await {
        assert_eq!(stored, 1, "the cart is the one session stored");
    }

    // HttpOnly: scripts on the page cannot see the session cookie.
    let visible = browser
        .execute("return document.cookie;", vec![])
        .await
        .expect("run a script");
    assert_eq!(
        visible,
        json!(""),
        "document.cookie shows no session cookie"
    );

    // Survives navigation: another page, then back; same cookie, same cart.
    click(&browser, "a[href=\"/storage\"]").await;
    let report = text_when(&browser, "#session-cart", |t| t.contains("tea")).await;
    assert!(report.contains("opaque 43-character random id"), "{report}");
    click(&browser, "nav a[href=\"/\"]").await;
    text_when(&browser, "#cart", |t| t.contains("Green tea")).await;
    click(&browser, "#add-tea").await;
    flash(&browser, |t| t.contains("Added Green tea")).await;
    assert_eq!(quantity(&browser, "tea").await.as_deref(), Some("2"));
    assert_eq!(
        cookie(&browser, "cart").await.expect("cart cookie").value(),
        cart.value()
    );

    // Logging in renews the id; the cart moves with it. The name is shown escaped.
    fill_and_submit(&browser, "user-name", "ann <b>", "login").await;
    flash(&browser, |t| t.contains("Welcome, ann <b>.")).await;
    assert_eq!(
        text_when(&browser, "#user", |t| !t.is_empty()).await,
        "ann <b>"
    );
    let renewed = cookie(&browser, "cart")
        .await
        .expect("cart cookie after login");
    assert_ne!(
        renewed.value(),
        cart.value(),
        "login gives the session a new id"
    );
    assert_eq!(quantity(&browser, "tea").await.as_deref(), Some("2"));

    // Preferences live in a persistent, sealed cookie.
    browser
        .execute("document.getElementById('theme').value = 'dark';", vec![])
        .await
        .expect("choose a theme");
    click(&browser, "#save-theme").await;
    flash(&browser, |t| t.contains("Theme set to dark")).await;
    let prefs = cookie(&browser, "prefs").await.expect("a prefs cookie");
    assert!(prefs.expires().is_some(), "the prefs cookie is persistent");
    assert_eq!(prefs.http_only(), Some(true));
    fill_and_submit(&browser, "note", "remember the milk", "save-note").await;
    flash(&browser, |t| t.contains("Note saved")).await;
    let prefs = cookie(&browser, "prefs").await.expect("a prefs cookie");

    // A note too big for a cookie: the library's error on the page, and nothing lost.
    fill_and_submit(&browser, "note", &"x".repeat(5000), "save-note").await;
    let error = text_when(&browser, "#flash li.error", |t| !t.is_empty()).await;
    assert!(
        error.contains("Your note was not saved")
            && error.contains("session `prefs` would need a")
            && error.contains("over the 4096-byte browser limit"),
        "{error}"
    );
    assert_eq!(value_of(&browser, "note").await, "remember the milk");
    assert_eq!(
        cookie(&browser, "prefs")
            .await
            .expect("prefs cookie")
            .value(),
        prefs.value(),
        "the prefs cookie is untouched"
    );
    assert_eq!(
        quantity(&browser, "tea").await.as_deref(),
        Some("2"),
        "the cart is untouched"
    );

    // Logging out purges the cart session: its cookie is removed, the preferences stay.
    click(&browser, "#logout").await;
    flash(&browser, |t| t.contains("You are logged out")).await;
    text_when(&browser, "#cart-empty", |t| t.contains("empty")).await;
    assert_eq!(cookie_names(&browser).await, ["__Host-prefs"]);

    // A new cart, then a browser restart on the same profile: the browser-session cart cookie
    // is gone, the persistent preferences cookie is not.
    click(&browser, "#add-mug").await;
    flash(&browser, |t| t.contains("Added Enamel mug")).await;
    assert_eq!(
        cookie_names(&browser).await,
        ["__Host-cart", "__Host-prefs"]
    );
    browser.close().await.expect("quit Chromium");

    let browser = driver.browser(&profile).await;
    browser
        .goto(&shop.url("/"))
        .await
        .expect("open the shop again");
    text_when(&browser, "#cart-empty", |t| t.contains("empty")).await;
    assert_eq!(cookie_names(&browser).await, ["__Host-prefs"]);
    assert_eq!(value_of(&browser, "note").await, "remember the milk");
    let theme = browser
        .execute("return document.body.className;", vec![])
        .await
        .expect("read the theme");
    assert_eq!(theme, json!("dark"));
    browser.close().await.expect("quit Chromium");
}

/// One row of the shop's "Your sessions" table.
#[derive(Debug)]
struct Listed {
    handle: String,
    /// Marked "this browser".
    this_browser: bool,
    /// Offers "End this session".
    end_button: bool,
    /// The device it shows.
    device: String,
    /// The address it shows.
    address: String,
}

/// The rows of the "Your sessions" table on the page the browser shows.
async fn listed_sessions(client: &Client) -> Vec<Listed> {
    text_when(client, "h2", |t| t == "Your sessions").await;
    let rows = client
        .find_all(Locator::Css("#owned-sessions tr.owned-session"))
        .await
        .expect("the table's rows");
    let mut listed = Vec::new();
    for row in rows {
        let handle = row
            .attr("data-handle")
            .await
            .expect("read the row's handle")
            .expect("a data-handle");
        let shown = row
            .find(Locator::Css("code.handle"))
            .await
            .expect("the handle's cell")
            .text()
            .await
            .expect("the handle's text");
        assert_eq!(shown, handle, "the row shows its handle");
        let text = row.text().await.expect("the row's text");
        let buttons = row
            .find_all(Locator::Css("button.end-session"))
            .await
            .expect("the row's buttons");
        let device = row
            .find(Locator::Css("span.device"))
            .await
            .expect("the device's cell")
            .text()
            .await
            .expect("the device's text");
        let address = row
            .find(Locator::Css("small.address"))
            .await
            .expect("the address")
            .text()
            .await
            .expect("the address's text");
        listed.push(Listed {
            device,
            address,
            handle,
            this_browser: text.contains("this browser"),
            end_button: buttons.len() == 1,
        });
    }
    listed
}

/// Opens "Your sessions" from the navigation and checks the table: `count` sessions, exactly
/// one of them this browser's (without a button), the others with "End this session". Returns
/// this browser's handle and the others'.
async fn your_sessions(client: &Client, shop: &Example, count: usize) -> (String, Vec<String>) {
    client.goto(&shop.url("/")).await.expect("open the shop");
    click(client, "nav a#your-sessions").await;
    let listed = listed_sessions(client).await;
    assert_eq!(listed.len(), count, "{listed:?}");
    let (mine, others): (Vec<&Listed>, Vec<&Listed>) = listed.iter().partition(|l| l.this_browser);
    assert_eq!(
        mine.len(),
        1,
        "exactly one session is this browser's: {listed:?}"
    );
    assert!(!mine[0].end_button, "{listed:?}");
    assert!(others.iter().all(|l| l.end_button), "{listed:?}");
    // Headless Chromium on Linux, recognised from its User-Agent, connected from this machine.
    assert!(
        listed
            .iter()
            .all(|l| l.device == "Chrome on Linux" && l.address == "from 127.0.0.1"),
        "{listed:?}"
    );
    (
        mine[0].handle.clone(),
        others.iter().map(|l| l.handle.clone()).collect(),
    )
}

/// Logs in as `user` on the shop page; the flash message confirms it.
async fn log_in(client: &Client, shop: &Example, user: &str) {
    client.goto(&shop.url("/")).await.expect("open the shop");
    fill_and_submit(client, "user-name", user, "login").await;
    flash(client, |t| t.contains(&format!("Welcome, {user}."))).await;
}

/// The shop page as the browser sees it now: logged in as whom, if anyone.
async fn logged_in_as(client: &Client, shop: &Example) -> Option<String> {
    client.goto(&shop.url("/")).await.expect("open the shop");
    text_when(client, "#catalog", |_| true).await;
    match client.find(Locator::Css("#user")).await {
        Ok(user) => Some(user.text().await.expect("the user's name")),
        Err(_) => {
            // A guest: the login form is there instead.
            client
                .find(Locator::Css("#login"))
                .await
                .expect("a login form for a guest");
            None
        }
    }
}

/// One user logged in in two browsers, the sessions on `datastore`: each lists both, ends the
/// other's, and "log out everywhere else" ends the other.
async fn shop_lists_and_ends_a_users_sessions_across_two_browsers(datastore: Datastore) {
    let driver = Driver::start();
    let shop = Example::shop(&datastore);
    // Two browser profiles: two browsers with cookie jars of their own, as on two devices.
    let a = driver.browser(&driver.profile("owner-a")).await;
    let b = driver.browser(&driver.profile("owner-b")).await;

    // A guest has no sessions to list: sent to the login form, with a word why.
    a.goto(&shop.url("/sessions"))
        .await
        .expect("open /sessions");
    flash(&a, |t| t.contains("Log in first")).await;
    a.find(Locator::Css("#login"))
        .await
        .expect("the login form");

    // Each browser fills a cart, then logs in as the same user.
    a.goto(&shop.url("/")).await.expect("open the shop");
    click(&a, "#add-mug").await;
    flash(&a, |t| t.contains("Added Enamel mug")).await;
    log_in(&a, &shop, "ann").await;
    b.goto(&shop.url("/")).await.expect("open the shop");
    click(&b, "#add-tea").await;
    flash(&b, |t| t.contains("Added Green tea")).await;
    log_in(&b, &shop, "ann").await;

    // Each sees both sessions, its own marked "this browser", the other's with a button.
    let (a_handle, a_others) = your_sessions(&a, &shop, 2).await;
    let (b_handle, b_others) = your_sessions(&b, &shop, 2).await;
    assert_eq!(a_others, std::slice::from_ref(&b_handle));
    assert_eq!(b_others, std::slice::from_ref(&a_handle));
    assert_ne!(a_handle, b_handle);
    // The handle names the session without being its id: not the cookie, nor part of it.
    for (client, handle) in [(&a, &a_handle), (&b, &b_handle)] {
        let id = cookie(client, "cart").await.expect("a cart cookie");
        assert_eq!(id.value().len(), 43);
        assert_eq!(handle.len(), 22);
        assert_ne!(id.value(), handle.as_str());
        assert!(!id.value().contains(handle.as_str()));
    }
    let a_cookie = cookie(&a, "cart")
        .await
        .expect("a cart cookie")
        .value()
        .to_owned();

    // A ends B's session: B is logged out at its next page load, its cart gone with the
    // session; A is still logged in, with its cart.
    a.goto(&shop.url("/sessions"))
        .await
        .expect("open /sessions");
    click(
        &a,
        &format!("tr[data-handle=\"{b_handle}\"] button.end-session"),
    )
    .await;
    flash(&a, |t| t.contains("Ended 1 session")).await;
    let listed = listed_sessions(&a).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].this_browser && listed[0].handle == a_handle);

    assert_eq!(logged_in_as(&b, &shop).await, None, "B is logged out");
    text_when(&b, "#cart-empty", |t| t.contains("empty")).await;
    // The dead id's cookie stays in B (B has no other cookie: no preferences, and the flash was
    // shown): the server removes only cookies whose session loaded, never one it does not know,
    // which could be a live cookie's twin (SECURITY.md, "Removal cookies"). It is anonymous.
    let left = cookie_names(&b).await;
    assert!(left.iter().all(|name| name.ends_with("cart")), "{left:?}");
    b.goto(&shop.url("/sessions"))
        .await
        .expect("open /sessions");
    flash(&b, |t| t.contains("Log in first")).await;

    assert_eq!(logged_in_as(&a, &shop).await.as_deref(), Some("ann"));
    assert_eq!(quantity(&a, "mug").await.as_deref(), Some("1"));
    assert_eq!(
        cookie(&a, "cart").await.expect("a cart cookie").value(),
        a_cookie,
        "A's session is untouched"
    );

    // B logs in again; A logs out everywhere else: B is logged out, A is not.
    log_in(&b, &shop, "ann").await;
    let (b_handle_again, _) = your_sessions(&b, &shop, 2).await;
    assert_ne!(b_handle_again, b_handle, "a new login, a new session");
    let (_, a_others) = your_sessions(&a, &shop, 2).await;
    assert_eq!(a_others, [b_handle_again]);
    click(&a, "#end-others").await;
    flash(&a, |t| t.contains("Ended 1 other session")).await;
    let listed = listed_sessions(&a).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].this_browser && listed[0].handle == a_handle);

    assert_eq!(logged_in_as(&b, &shop).await, None, "B is logged out");
    assert_eq!(logged_in_as(&a, &shop).await.as_deref(), Some("ann"));
    let (mine, others) = your_sessions(&a, &shop, 1).await;
    assert_eq!((mine, others), (a_handle, Vec::<String>::new()));

    // Nothing else to end now.
    click(&a, "#end-others").await;
    flash(&a, |t| t.contains("There was no other session")).await;

    a.close().await.expect("quit Chromium A");
    b.close().await.expect("quit Chromium B");
}

/// The shop's scenarios on one datastore, as tests named `<datastore>::<scenario>`, so that a
/// failure names the datastore. `$datastore` gives the test's datastore from the test's name,
/// or `None` when that datastore is not configured: the test is then skipped, with a note.
macro_rules! shop_scenarios_on {
    ($module:ident, $datastore:expr) => {
        mod $module {
            use super::*;

            #[tokio::test]
            async fn shop_sessions_behave_in_headless_chromium() {
                let datastore: fn(&str) -> Option<Datastore> = $datastore;
                if let Some(datastore) = datastore("shop_sessions_behave_in_headless_chromium") {
                    super::shop_sessions_behave_in_headless_chromium(datastore).await;
                }
            }

            #[tokio::test]
            async fn shop_lists_and_ends_a_users_sessions_across_two_browsers() {
                let datastore: fn(&str) -> Option<Datastore> = $datastore;
                if let Some(datastore) =
                    datastore("shop_lists_and_ends_a_users_sessions_across_two_browsers")
                {
                    super::shop_lists_and_ends_a_users_sessions_across_two_browsers(datastore)
                        .await;
                }
            }
        }
    };
}

shop_scenarios_on!(memory, |_| Some(Datastore::Memory));
shop_scenarios_on!(postgres, Datastore::postgres);
shop_scenarios_on!(redis, Datastore::redis);

/// A plain actix-web handler, no session library: three cookies whose name and value together
/// are 3995, 4096 and 4097 bytes. The next request shows which ones Chromium kept.
async fn set_three_cookies() -> HttpResponse {
    let cookie = |name: &'static str, size: usize| {
        ActixCookie::build(name, "v".repeat(size - name.len()))
            .path("/")
            .finish()
    };
    HttpResponse::Ok()
        .cookie(cookie("small", 3995))
        .cookie(cookie("edge", 4096))
        .cookie(cookie("big", 4097))
        .content_type("text/html")
        .body("<p id=\"set\">three cookies set</p>")
}

/// Lists the cookies the browser sent as `name:size`, size being name and value together.
async fn echo_cookie_header(req: HttpRequest) -> HttpResponse {
    let mut sent: Vec<String> = req
        .headers()
        .get_all("cookie")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split("; "))
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            format!("{name}:{}", name.len() + value.len())
        })
        .collect();
    sent.sort();
    HttpResponse::Ok()
        .content_type("text/html")
        .body(format!("<p id=\"sent\">{}</p>", sent.join(" ")))
}

#[tokio::test]
async fn chromium_drops_a_cookie_over_4096_bytes() {
    // Its own actix system on a thread of its own, on 127.0.0.1 (the shop uses localhost, so
    // the two never share cookies).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(|| {
                App::new()
                    .route("/set", web::get().to(set_three_cookies))
                    .route("/echo", web::get().to(echo_cookie_header))
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .expect("bind a free port");
            tx.send(server.addrs()[0].port()).expect("send the port");
            server.run().await
        })
    });
    let port = rx.recv().expect("the plain server's port");

    let driver = Driver::start();
    let browser = driver.browser(&driver.profile("limit")).await;
    browser
        .goto(&format!("http://127.0.0.1:{port}/set"))
        .await
        .expect("load the page that sets the cookies");
    text_when(&browser, "#set", |t| !t.is_empty()).await;
    browser
        .goto(&format!("http://127.0.0.1:{port}/echo"))
        .await
        .expect("load the echo page");
    let sent = text_when(&browser, "#sent", |_| true).await;
    // Chromium's rule: name and value together at most 4096 bytes. A bigger cookie is dropped
    // without a word: the response was a 200, and nothing tells the server or the page. The
    // library refuses a cookie whose `name=value` passes 4096 bytes, one byte inside that rule.
    assert_eq!(
        sent, "edge:4096 small:3995",
        "Chromium keeps cookies up to 4096 bytes and silently drops a 4097-byte one"
    );
    assert_eq!(cookie_names(&browser).await, ["edge", "small"]);
    browser.close().await.expect("quit Chromium");
}

#[tokio::test]
async fn walkthrough_refuses_the_big_cookie_and_keeps_it_in_the_datastore() {
    let driver = Driver::start();
    let walkthrough = Example::start(
        "walkthrough",
        env!("CARGO_BIN_EXE_walkthrough"),
        &Datastore::Memory,
    );
    let browser = driver.browser(&driver.profile("walkthrough")).await;
    browser
        .goto(&walkthrough.url("/"))
        .await
        .expect("open the walkthrough");

    // session['foo'] = 'bar', on both backends.
    click(&browser, "#set-foo").await;
    text_when(&browser, "body", |t| {
        t.contains("foo in the cookie session: bar")
    })
    .await;

    // The blog's failure, made loud: the cookie session refuses 5,000 bytes ...
    click(&browser, "#notes-securecookie").await;
    let refused = text_when(&browser, "body", |t| t.contains("Not saved")).await;
    assert!(
        refused.contains("over the 4096-byte browser limit"),
        "{refused}"
    );
    click(&browser, "#back").await;
    // ... and the session still has what it had.
    text_when(&browser, "body", |t| {
        t.contains("foo in the cookie session: bar")
    })
    .await;

    // The same notes on the datastore backend are fine.
    click(&browser, "#notes-datastore").await;
    text_when(&browser, "body", |t| t.contains("Saved 5160 bytes")).await;
    click(&browser, "#back").await;
    text_when(&browser, "body", |t| {
        t.contains("datastore session: 5160 bytes")
    })
    .await;
    let datastore = cookie(&browser, "in_datastore")
        .await
        .expect("a datastore cookie");
    assert_eq!(
        datastore.value().len(),
        43,
        "the datastore session's cookie is only an id"
    );

    // Destroying both sessions removes their cookies; the visit counter stays.
    click(&browser, "#destroy").await;
    text_when(&browser, "body", |t| {
        t.contains("foo in the cookie session: (unset)")
    })
    .await;
    assert_eq!(cookie_names(&browser).await, ["__Host-visits"]);
    browser.close().await.expect("quit Chromium");
}
