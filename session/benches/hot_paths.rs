//! Micro-benchmarks of the hot pieces (issue 7): sealing and opening cookies, change-set
//! encoding, id generation, the typed accessor round trip, and whole requests in process.
//!
//! ```sh
//! cargo bench -p actix-typed-session --features __bench --bench hot_paths            # everything
//! cargo bench -p actix-typed-session --features __bench --bench hot_paths -- cookie  # one group
//! ```

use std::{cell::RefCell, hint::black_box};

use actix_typed_session::{
    __bench::{Ids, Sealer},
    ChangeSet, CookieSecurity, CookieStore, Key, MemoryStore, Session, SessionData,
    SessionMiddleware,
};
use actix_web::{
    dev::{Service, ServiceResponse},
    http::header,
    test, web, App, HttpResponse,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Map, Value};

/// A session whose sealed payload is about `bytes` long.
fn data_of(bytes: usize) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("user_id".into(), json!(42));
    data.insert("n".into(), json!(7));
    let pad = bytes.saturating_sub(Sealer::plaintext(&data).len() + 10);
    data.insert("blob".into(), json!("x".repeat(pad)));
    data
}

fn cookies(c: &mut Criterion) {
    let key = Key::generate();
    let mut group = c.benchmark_group("cookie");
    for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
        let sealer = Sealer::new(security, &key, "session");
        let tag = match security {
            CookieSecurity::Sealed => "sealed",
            _ => "signed",
        };
        for size in [100usize, 1024, 3072] {
            let data = data_of(size);
            let plaintext = Sealer::plaintext(&data);
            group.throughput(Throughput::Bytes(plaintext.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("seal/{tag}"), size),
                &plaintext,
                |b, p| b.iter_batched(|| p.clone(), |p| sealer.seal(p), BatchSize::SmallInput),
            );
            let value = sealer.seal(plaintext.clone());
            assert_eq!(sealer.open(&value), Some(3));
            group.bench_with_input(
                BenchmarkId::new(format!("open/{tag}"), size),
                &value,
                |b, v| b.iter(|| sealer.open(black_box(v))),
            );
            // What a write costs in full: serialize the payload, then seal it.
            group.bench_with_input(
                BenchmarkId::new(format!("serialize+seal/{tag}"), size),
                &data,
                |b, d| b.iter(|| sealer.seal(Sealer::plaintext(black_box(d)))),
            );
        }
    }
    group.finish();
}

fn change_sets(c: &mut Criterion) {
    let mut group = c.benchmark_group("changeset");
    for keys in [1usize, 10] {
        // Build the change set a handler leaves and encode it as the stores do: the patch as one
        // JSON document (PostgreSQL `jsonb`) plus the list of removed keys.
        group.bench_function(BenchmarkId::new("build+encode", keys), |b| {
            b.iter(|| {
                let mut changes = ChangeSet::default();
                for i in 0..keys {
                    changes.set(format!("key{i}"), json!(i));
                }
                changes.remove("gone");
                let patch = serde_json::to_vec(changes.patch()).expect("JSON");
                let removed: Vec<&str> = changes.removed().collect();
                black_box((patch.len(), removed.len()))
            })
        });
        // Per-field encoding, as a hash-based store (Redis) sends it.
        let mut changes = ChangeSet::default();
        for i in 0..keys {
            changes.set(format!("key{i}"), json!({ "id": i, "name": "item" }));
        }
        group.bench_function(BenchmarkId::new("encode-fields", keys), |b| {
            b.iter(|| {
                let fields: Vec<(String, String)> = changes
                    .patch()
                    .iter()
                    .map(|(k, v)| (format!("d:{k}"), v.to_string()))
                    .collect();
                black_box(fields)
            })
        });
        // Applying it to a loaded map, as the memory store does under its lock.
        let base = data_of(1024);
        group.bench_function(BenchmarkId::new("apply", keys), |b| {
            b.iter_batched(
                || base.clone(),
                |mut data| {
                    changes.apply_to(&mut data);
                    data
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn ids(c: &mut Criterion) {
    let ids = Ids::default();
    let mut group = c.benchmark_group("id");
    group.bench_function("generate", |b| b.iter(|| ids.generate()));
    group.bench_function("generate+hash", |b| b.iter(|| ids.generate_key()));
    let id = ids.generate();
    group.bench_function("parse+hash", |b| b.iter(|| Ids::parse_key(black_box(&id))));
    group.finish();
}

#[derive(SessionData)]
#[session(name = "prefs")]
struct Prefs {
    visits: u64,
    theme: Option<String>,
}

thread_local! {
    /// Handles taken out of a request, to time accessors without the request around them.
    static TYPED: RefCell<Option<PrefsSession>> = const { RefCell::new(None) };
    static UNTYPED: RefCell<Option<Session>> = const { RefCell::new(None) };
}

async fn grab(typed: PrefsSession, untyped: Session) -> HttpResponse {
    TYPED.with(|t| *t.borrow_mut() = Some(typed));
    UNTYPED.with(|u| *u.borrow_mut() = Some(untyped));
    HttpResponse::Ok().finish()
}

fn middleware(backend: &str) -> SessionMiddleware {
    let builder = SessionMiddleware::builder(Key::generate());
    let builder = match backend {
        "cookie" => builder.backend("cookie", CookieStore::default()),
        _ => builder.backend("memory", MemoryStore::default()),
    };
    builder
        .default_session("prefs")
        .register::<Prefs>()
        .build()
        .expect("valid")
}

fn accessors(c: &mut Criterion) {
    let rt = actix_web::rt::System::new();
    let mut group = c.benchmark_group("accessor");
    for backend in ["memory", "cookie"] {
        let app = rt.block_on(test::init_service(
            App::new()
                .wrap(middleware(backend))
                .route("/", web::get().to(grab)),
        ));
        rt.block_on(test::call_service(
            &app,
            test::TestRequest::get().uri("/").to_request(),
        ));
        let typed = TYPED.with(|t| t.borrow_mut().take()).expect("typed handle");
        let untyped = UNTYPED.with(|u| u.borrow_mut().take()).expect("handle");
        let mut n = 0u64;
        group.bench_function(BenchmarkId::new("typed set+get", backend), |b| {
            b.iter(|| {
                n += 1;
                typed.set_visits(n).expect("set");
                black_box(typed.visits().expect("get"))
            })
        });
        group.bench_function(BenchmarkId::new("untyped insert+get", backend), |b| {
            b.iter(|| {
                n += 1;
                untyped.insert("visits", n).expect("insert");
                black_box(untyped.get::<u64>("visits").expect("get"))
            })
        });
        group.bench_function(BenchmarkId::new("typed option set+get", backend), |b| {
            b.iter(|| {
                n += 1;
                typed.set_theme(Some(format!("t{}", n % 8))).expect("set");
                black_box(typed.theme().expect("get"))
            })
        });
    }
    group.finish();
}

async fn counter(session: Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    session.insert("n", n + 1)?;
    Ok(HttpResponse::Ok().body((n + 1).to_string()))
}

async fn reader(session: Session) -> actix_web::Result<HttpResponse> {
    let n: u64 = session.get("n")?.unwrap_or(0);
    Ok(HttpResponse::Ok().body(n.to_string()))
}

async fn plain() -> HttpResponse {
    HttpResponse::Ok().body("1")
}

fn cookie_of<B>(res: &ServiceResponse<B>) -> String {
    res.response()
        .cookies()
        .next()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .expect("a session cookie")
}

/// Whole requests through `actix_web::test` (no network): where the per-request time goes.
fn requests(c: &mut Criterion) {
    let rt = actix_web::rt::System::new();
    let mut group = c.benchmark_group("request");
    let bare = rt.block_on(test::init_service(
        App::new().route("/", web::get().to(plain)),
    ));
    let ours = |backend: &str| {
        let builder = SessionMiddleware::builder(Key::generate());
        let builder = match backend {
            "cookie" => builder.backend("cookie", CookieStore::default()),
            _ => builder.backend("memory", MemoryStore::default()),
        };
        let mw = builder.build().expect("valid");
        rt.block_on(test::init_service(
            App::new()
                .wrap(mw)
                .route("/untouched", web::get().to(plain))
                .route("/rw", web::get().to(counter))
                .route("/ro", web::get().to(reader)),
        ))
    };
    group.bench_function("bare", |b| {
        b.iter(|| {
            rt.block_on(
                bare.call(
                    test::TestRequest::get()
                        .uri("/")
                        .insert_header((header::COOKIE, "session=abc"))
                        .to_request(),
                ),
            )
        })
    });
    for backend in ["cookie", "memory"] {
        let app = ours(backend);
        let first = rt.block_on(test::call_service(
            &app,
            test::TestRequest::get().uri("/rw").to_request(),
        ));
        let cookie = cookie_of(&first);
        for route in ["/untouched", "/ro", "/rw"] {
            if backend == "memory" && route == "/untouched" {
                continue;
            }
            group.bench_function(BenchmarkId::new(backend, route), |b| {
                b.iter(|| {
                    rt.block_on(
                        app.call(
                            test::TestRequest::get()
                                .uri(route)
                                .insert_header((header::COOKIE, cookie.as_str()))
                                .to_request(),
                        ),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, cookies, change_sets, ids, accessors, requests);
criterion_main!(benches);
