//! Loading a session from its cookie or store.

use std::{sync::Arc, time::SystemTime};

use actix_web::http::header::HeaderValue;
use futures_util::future::join_all;
use serde_json::Map;

use crate::{
    config::{later, Config, Spec},
    cookie_header::{cookie_values, CookieValues},
    id::SessionId,
    session::{Origin, State},
    store::BackendKind,
    telemetry::{count, timed, Event},
    Session, SessionError, StorageKey, StoreError,
};

/// The most distinct values of a session's cookie one request is allowed to make us open or look
/// up. More are ignored unread: planted or flooded cookies cost a bounded amount of work.
pub(crate) const MAX_VALUES: usize = 8;

/// The most revocation checks (a store read each) one request may cost.
#[cfg(feature = "cookie")]
const MAX_REVOCATION_CHECKS: usize = 3;

/// The distinct values of the session's cookie that are considered, in header order: the first
/// [`MAX_VALUES`] distinct ones. The rest are counted in `ignored`.
fn candidates<'a>(values: &CookieValues<'a>, ignored: &mut Ignored) -> CookieValues<'a> {
    if values.len() < 2 {
        return values.clone();
    }
    let mut distinct = CookieValues::new();
    for value in values.iter() {
        if distinct.contains(value) {
            continue;
        }
        if distinct.len() == MAX_VALUES {
            ignored.add("more distinct values of the session's cookie than are considered");
        } else {
            distinct.push(value);
        }
    }
    distinct
}

/// Loads the session at once when that needs no I/O: a cookie session whose store checks no
/// revocations. `None` when [`load`] has to run.
pub(crate) fn load_now(
    config: &Config,
    cookies: &[HeaderValue],
    spec: &Arc<Spec>,
) -> Option<Session> {
    match &spec.backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(store) if !store.revocable() => {
            let values = cookie_values(cookies, &spec.cookie_name);
            let mut ignored = Ignored::default();
            let mut live = open_cookies(config, spec, store, &values, &mut ignored);
            let newest = (!live.is_empty()).then(|| live.swap_remove(0));
            ignored.add_n(
                "another live value of the session's cookie was newer",
                live.len(),
            );
            ignored.log(spec, newest.is_some());
            Some(match newest {
                Some(cookie) => loaded(spec.clone(), cookie_state(cookie)),
                None => fresh(spec.clone()),
            })
        }
        _ => {
            let _ = (config, cookies);
            None
        }
    }
}

/// A live value of a cookie session, opened: what it holds, and until when it lives.
#[cfg(feature = "cookie")]
struct LiveCookie {
    opened: crate::store::Opened,
    expires_at: SystemTime,
}

/// The live values of a session's cookie: inline for the usual one. Only the one that wins
/// becomes a session [`State`] (a few hundred bytes, costly to move around).
#[cfg(feature = "cookie")]
type Live = smallvec::SmallVec<[LiveCookie; 1]>;

/// Opens the considered values of a cookie session: the live ones, newest first (the latest
/// deadline, which the server set at its latest write; header order among equals).
#[cfg(feature = "cookie")]
fn open_cookies(
    config: &Config,
    spec: &Spec,
    store: &crate::CookieStore,
    values: &CookieValues<'_>,
    ignored: &mut Ignored,
) -> Live {
    let now = config.clock.now();
    let mut live = Live::new();
    for value in candidates(values, ignored) {
        match store.open_cached(&config.keys, &spec.cookie_aad, value, now) {
            Ok(opened) => match live_until(config, opened.created_at, opened.expires_at, now) {
                Some(expires_at) => live.push(LiveCookie { opened, expires_at }),
                None => ignored.add("its session has expired"),
            },
            Err(rejected) => ignored.add(rejected.as_str()),
        }
    }
    // Stable: equal deadlines keep header order.
    if live.len() > 1 {
        live.sort_by_key(|cookie| std::cmp::Reverse(cookie.expires_at));
    }
    live
}

pub(crate) async fn load(
    config: &Config,
    cookies: &[HeaderValue],
    spec: Arc<Spec>,
) -> Result<Session, SessionError> {
    let now = config.clock.now();
    let values = cookie_values(cookies, &spec.cookie_name);
    let mut ignored = Ignored::default();
    let state = match &spec.backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(store) => {
            let live = open_cookies(config, &spec, store, &values, &mut ignored);
            let mut skipped = live.len();
            let mut loaded = None;
            // Revocation checks cost a store read each: a few per request at most, however
            // many same-named cookies the request carries.
            let mut checks = 0;
            for cookie in live {
                skipped -= 1;
                if let (true, Some(owner)) = (store.revocable(), cookie.opened.owner.as_deref()) {
                    checks += 1;
                    if checks > MAX_REVOCATION_CHECKS {
                        ignored.add("too many owned session cookies in one request");
                        continue;
                    }
                    let revoked = store.is_revoked(owner, cookie.opened.valid_from, now);
                    match timed(&spec, "check revocation", revoked).await {
                        Ok(false) => {}
                        Ok(true) => {
                            ignored.add("its owner's sessions were ended after it was issued");
                            continue;
                        }
                        Err(source) => {
                            log_store_error(&spec, "check revocation", &source);
                            return Err(SessionError::Store {
                                session: spec.name.clone(),
                                source,
                                status: config.failure_status,
                            });
                        }
                    }
                }
                loaded = Some(cookie_state(cookie));
                break;
            }
            ignored.add_n(
                "another live value of the session's cookie was newer",
                skipped,
            );
            loaded
        }
        BackendKind::Server(store) => {
            // Every considered well-formed id is looked up at once (a stale cookie from another
            // Path or one planted by a sibling domain must not hide the live one).
            let ids: smallvec::SmallVec<[SessionId; 2]> = candidates(&values, &mut ignored)
                .into_iter()
                .filter_map(|v| {
                    let id = SessionId::parse(v);
                    if id.is_none() {
                        ignored.add("it is not a well-formed session id");
                    }
                    id
                })
                .collect();
            let keys: smallvec::SmallVec<[StorageKey; 2]> =
                ids.iter().map(SessionId::storage_key).collect();
            let lookups = keys
                .iter()
                .map(|key| timed(&spec, "load", store.load(key, now)));
            let mut found = Vec::with_capacity(keys.len());
            for (i, result) in join_all(lookups).await.into_iter().enumerate() {
                match result {
                    Err(source) => {
                        log_store_error(&spec, "load", &source);
                        return Err(SessionError::Store {
                            session: spec.name.clone(),
                            source,
                            status: config.failure_status,
                        });
                    }
                    Ok(None) => ignored.add("no live session has its id"),
                    Ok(Some(record)) => {
                        match live_until(config, record.created_at, record.expires_at, now) {
                            None => ignored.add("its session has expired"),
                            Some(expires_at) => found.push((i, record, expires_at)),
                        }
                    }
                }
            }
            // Several live sessions: a current one over the read-only old id of a renewed one,
            // then the one the server wrote last, then header order.
            let best = found
                .iter()
                .enumerate()
                .max_by_key(|(_, (i, record, _))| {
                    (!record.retired, record.last_seen, std::cmp::Reverse(*i))
                })
                .map(|(at, _)| at);
            ignored.add_n(
                "another live value of the session's cookie was written more recently",
                found.len().saturating_sub(1),
            );
            best.map(|at| {
                let (i, record, expires_at) = found.swap_remove(at);
                if record.retired {
                    tracing::debug!(
                        session = %spec.name,
                        "old id of a session renewed moments ago: read-only"
                    );
                }
                let mut state = State::new(
                    Origin::Loaded {
                        id: Some(ids[i].clone()),
                        created_at: record.created_at,
                        expires_at,
                    },
                    record.data,
                );
                state.expiry = crate::expiry::take_stored(&mut state.entries);
                state.device = crate::device::take_stored(&mut state.entries);
                state.owner = record.owner;
                state.read_only = record.retired;
                state.loaded_seq = config.writes.now();
                state
            })
        }
    };
    ignored.log(&spec, state.is_some());
    Ok(match state {
        Some(state) => loaded(spec, state),
        None => fresh(spec),
    })
}

/// The values of a session's cookie one request ignored, logged as one line.
#[derive(Default)]
struct Ignored {
    count: usize,
    reasons: smallvec::SmallVec<[&'static str; 2]>,
}

impl Ignored {
    fn add(&mut self, reason: &'static str) {
        self.add_n(reason, 1);
    }

    fn add_n(&mut self, reason: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        self.count += n;
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// One line for the whole request (never a value: only which session, how many and why).
    fn log(&self, spec: &Spec, loaded: bool) {
        if self.count == 0 {
            return;
        }
        let reasons = self.reasons.join("; ");
        if loaded {
            tracing::warn!(session = %spec.name, ignored = self.count, reasons, "ignoring other values of a session cookie");
        } else {
            tracing::warn!(session = %spec.name, ignored = self.count, reasons, "ignoring session cookies; starting a fresh session");
        }
    }
}

/// The session of a state loaded from its cookie or store.
fn loaded(spec: Arc<Spec>, state: State) -> Session {
    count(&spec, Event::Loaded);
    Session::new(spec, state)
}

/// A new session, as nothing loaded. Values of the session's cookie that did not load get no
/// removal cookie: the browser may hold a live session under the same name, Path and Domain
/// (a newer login cookie, or the real one beside a planted one), which a removal would delete.
fn fresh(spec: Arc<Spec>) -> Session {
    Session::new(spec, State::new(Origin::New, Map::new()))
}

/// The session state of a live cookie value.
#[cfg(feature = "cookie")]
fn cookie_state(cookie: LiveCookie) -> State {
    let LiveCookie { opened, expires_at } = cookie;
    let mut state = State::new(
        Origin::Loaded {
            id: None,
            created_at: opened.created_at,
            expires_at,
        },
        opened.data,
    );
    state.expiry = crate::expiry::take_stored(&mut state.entries);
    state.reseal = opened.stale_key;
    state.owner = opened.owner;
    state.valid_from = (opened.valid_from != opened.created_at).then_some(opened.valid_from);
    state
}

/// The session's effective expiry if it is still live at `now`: its own deadline, capped by
/// the absolute timeout as configured today.
fn live_until(
    config: &Config,
    created_at: SystemTime,
    expires_at: SystemTime,
    now: SystemTime,
) -> Option<SystemTime> {
    let expires_at = expires_at.min(later(created_at, config.absolute));
    (expires_at > now).then_some(expires_at)
}

pub(crate) fn log_store_error(spec: &Spec, operation: &str, error: &StoreError) {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    tracing::error!(
        session = %spec.name,
        backend = %spec.backend_name,
        operation,
        error = %error,
        cause = %causes.join(": "),
        "session store failed"
    );
}
