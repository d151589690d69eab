//! Several application instances over one shared store, as behind a load balancer: three
//! `instance` processes (tests/src/bin/instance.rs) on free loopback ports, driven round-robin by
//! clients that each keep one cookie jar, as a browser does. On PostgreSQL, on Redis and on a
//! Redis Cluster:
//! - parallel writes of disjoint keys of one session through different instances all survive;
//! - "log out everywhere" on one instance ends the owner's sessions on all of them;
//! - with a local cache in each instance, what another instance reads is stale for at most the
//!   cache's configured bound (measured and printed).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use actix_typed_session_tests::{pg, redis, redis_cluster};
use actix_web::{cookie::Cookie, http::header};
use futures_util::future::{join, join_all};
use serde_json::{json, Value};

/// An `instance` process, killed when dropped.
struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    /// Starts one instance and waits until it listens.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_instance"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the instance binary starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the instance listens within a minute");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the instance: {line:?}"));
        Self {
            base: format!("http://{addr}"),
            child,
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three instances over one store: `backend` is `pg`, `redis` or `redis-cluster` (whose `url`
/// lists the nodes, separated by commas), `name` the schema or prefix.
fn three(backend: &str, url: &str, name: &str, cache_bound_ms: Option<u64>) -> Vec<Instance> {
    let bound = cache_bound_ms.map(|ms| ms.to_string());
    let mut args = vec![backend, url, name];
    args.extend(bound.as_deref());
    (0..3).map(|_| Instance::start(&args)).collect()
}

/// A browser's cookie jar: every request sends the cookies the last responses set.
#[derive(Default)]
struct Jar(std::cell::RefCell<BTreeMap<String, String>>);

impl Jar {
    async fn send(&self, req: awc::ClientRequest, body: Option<Value>) -> (u16, Value) {
        let cookies = self
            .0
            .borrow()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookies.is_empty() {
            req
        } else {
            req.insert_header((header::COOKIE, cookies))
        };
        let mut res = match body {
            Some(body) => req.send_json(&body).await,
            None => req.send().await,
        }
        .expect("the instance answers");
        for value in res.headers().get_all(header::SET_COOKIE) {
            let cookie = Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            let mut jar = self.0.borrow_mut();
            if cookie.value().is_empty() {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_owned(), cookie.value().to_owned());
            }
        }
        let body = res.body().limit(1 << 20).await.expect("a body");
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (res.status().as_u16(), json)
    }

    async fn set(&self, client: &awc::Client, at: &Instance, key: &str, value: Value) {
        let req = client.post(format!("{}/set/{key}", at.base));
        let (status, _) = self.send(req, Some(value)).await;
        assert_eq!(status, 200, "setting {key} on {}", at.base);
    }

    async fn entries(&self, client: &awc::Client, at: &Instance) -> Value {
        let (status, entries) = self
            .send(client.get(format!("{}/entries", at.base)), None)
            .await;
        assert_eq!(status, 200);
        entries
    }

    async fn post(&self, client: &awc::Client, at: &Instance, path: &str) -> (u16, Value) {
        self.send(client.post(format!("{}{path}", at.base)), None)
            .await
    }
}

fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

/// 1,000 trials in all: each writes two keys of one session at once through two different
/// instances; afterwards every instance reads every key of every session.
async fn parallel_disjoint_writes_all_survive(instances: &[Instance]) {
    const JARS: usize = 8;
    const TRIALS_PER_JAR: usize = 125;
    let client = client();
    let jars: Vec<Jar> = (0..JARS).map(|_| Jar::default()).collect();
    for (j, jar) in jars.iter().enumerate() {
        jar.set(&client, &instances[j % 3], "start", json!(j)).await;
    }
    let run = |j: usize| {
        let (client, jar) = (&client, &jars[j]);
        async move {
            for t in 0..TRIALS_PER_JAR {
                let (a, b) = (&instances[(j + t) % 3], &instances[(j + t + 1) % 3]);
                join(
                    jar.set(client, a, &format!("a{t}"), json!(t)),
                    jar.set(client, b, &format!("b{t}"), json!(t)),
                )
                .await;
            }
        }
    };
    join_all((0..JARS).map(run)).await;
    let mut lost = 0;
    for (j, jar) in jars.iter().enumerate() {
        for at in instances {
            let entries = jar.entries(&client, at).await;
            let entries = entries.as_object().expect("a map");
            lost += (0..TRIALS_PER_JAR)
                .flat_map(|t| [format!("a{t}"), format!("b{t}")])
                .filter(|key| !entries.contains_key(key))
                .count();
            assert_eq!(entries.get("start"), Some(&json!(j)));
        }
    }
    assert_eq!(
        lost,
        0,
        "updates lost out of {} trials",
        JARS * TRIALS_PER_JAR
    );
}

/// Three logins of one owner, each through another instance; "log out everywhere" through the
/// first ends all three, whichever instance they come back to: at once, or after `staleness`
/// (the bound of the instances' local caches, which may serve an ended session until then).
async fn log_out_everywhere_ends_the_sessions_on_all_instances(
    instances: &[Instance],
    staleness: Duration,
) {
    let client = client();
    let jars: Vec<Jar> = (0..3).map(|_| Jar::default()).collect();
    for (i, jar) in jars.iter().enumerate() {
        jar.set(&client, &instances[i], "cart", json!([i])).await;
        let (status, _) = jar.post(&client, &instances[i], "/login/alice").await;
        assert_eq!(status, 200);
    }
    for (i, jar) in jars.iter().enumerate() {
        let seen = jar.entries(&client, &instances[(i + 1) % 3]).await;
        assert_eq!(
            seen,
            json!({"cart": [i]}),
            "another instance sees the login"
        );
    }
    let (status, ended) = jars[0].post(&client, &instances[0], "/end-all").await;
    assert_eq!((status, ended), (200, json!(3)));
    actix_web::rt::time::sleep(staleness).await;
    for jar in &jars[1..] {
        for at in instances {
            assert_eq!(jar.entries(&client, at).await, json!({}), "{}", at.base);
        }
    }
}

/// How long after a write answered another instance (with a local cache) still reads the old
/// value, over several writes; the bound must hold.
async fn local_caches_stay_within_their_bound(instances: &[Instance], bound: Duration) {
    let client = client();
    let jar = Jar::default();
    let (writer, reader) = (&instances[0], &instances[1]);
    jar.set(&client, writer, "v", json!(0)).await;
    let mut worst = Duration::ZERO;
    for round in 1..=10 {
        // The reader caches the current value, then the writer changes it.
        assert_eq!(jar.entries(&client, reader).await["v"], json!(round - 1));
        jar.set(&client, writer, "v", json!(round)).await;
        let written = Instant::now();
        loop {
            if jar.entries(&client, reader).await["v"] == json!(round) {
                break;
            }
            assert!(
                written.elapsed() < bound + Duration::from_secs(2),
                "round {round}: still stale after {:?} (bound {bound:?})",
                written.elapsed()
            );
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(written.elapsed());
    }
    eprintln!(
        "local cache bound {bound:?}: another instance read stale data for at most {worst:?}"
    );
    // The reader's own request takes a little time past the bound; far past it is a bug.
    assert!(
        worst <= bound + Duration::from_millis(250),
        "stale for {worst:?}, bound {bound:?}"
    );
}

#[actix_web::test]
async fn three_instances_on_postgres() {
    let (_, schema) = pg::store().await;
    let instances = three("pg", &schema.url, &schema.name, None);
    parallel_disjoint_writes_all_survive(&instances).await;
    log_out_everywhere_ends_the_sessions_on_all_instances(&instances, Duration::ZERO).await;
}

#[actix_web::test]
async fn three_instances_on_redis() {
    let (_, prefix) = redis::store().await;
    let instances = three("redis", &prefix.url, &prefix.prefix, None);
    parallel_disjoint_writes_all_survive(&instances).await;
    log_out_everywhere_ends_the_sessions_on_all_instances(&instances, Duration::ZERO).await;
}

#[actix_web::test]
async fn three_instances_on_redis_cluster() {
    let (_, prefix) = redis_cluster::store().await;
    let instances = three(
        "redis-cluster",
        &prefix.urls.join(","),
        &prefix.prefix,
        None,
    );
    parallel_disjoint_writes_all_survive(&instances).await;
    log_out_everywhere_ends_the_sessions_on_all_instances(&instances, Duration::ZERO).await;
}

#[actix_web::test]
async fn three_instances_with_local_caches_on_postgres() {
    let (_, schema) = pg::store().await;
    let bound = Duration::from_millis(300);
    let instances = three("pg", &schema.url, &schema.name, Some(300));
    local_caches_stay_within_their_bound(&instances, bound).await;
    log_out_everywhere_ends_the_sessions_on_all_instances(&instances, bound).await;
}
