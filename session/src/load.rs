//! Loading a session from its cookie or store.

use std::{sync::Arc, time::SystemTime};

use actix_web::http::header::HeaderValue;
use serde_json::Map;

use crate::{
    config::{later, Config, Spec},
    cookie_header::cookie_values,
    id::SessionId,
    session::{Origin, State},
    store::BackendKind,
    telemetry::{count, timed, Event},
    Session, SessionError, StoreError,
};

/// The most same-named cookies whose ids are looked up in a store for one request.
const MAX_IDS_TRIED: usize = 3;

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
            let now = config.clock.now();
            let values = cookie_values(cookies, &spec.cookie_name);
            for value in values.iter() {
                match store.open_cached(&config.keys, &spec.cookie_aad, value) {
                    // Straight into the session: a state is a few hundred bytes, and each move
                    // through an `Option` copies it.
                    Ok(opened) => {
                        if let Some(state) = cookie_state(config, spec, opened, now) {
                            return Some(loaded(spec.clone(), state));
                        }
                    }
                    Err(rejected) => ignored(spec, rejected.as_str()),
                }
            }
            Some(fresh(spec.clone(), !values.is_empty()))
        }
        _ => {
            let _ = (config, cookies);
            None
        }
    }
}

pub(crate) async fn load(
    config: &Config,
    cookies: &[HeaderValue],
    spec: Arc<Spec>,
) -> Result<Session, SessionError> {
    let now = config.clock.now();
    let values = cookie_values(cookies, &spec.cookie_name);
    let state = match &spec.backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(store) => {
            let mut loaded = None;
            // Revocation checks cost a store read each: a few per request at most, however
            // many same-named cookies the request carries.
            let mut checks = 0;
            for value in values.iter() {
                match store.open_cached(&config.keys, &spec.cookie_aad, value) {
                    Ok(opened) => {
                        if let Some(owner) = opened.owner.as_ref().filter(|_| store.revocable()) {
                            checks += 1;
                            if checks > MAX_IDS_TRIED {
                                ignored(&spec, "too many owned session cookies in one request");
                                continue;
                            }
                            let revoked = store.is_revoked(owner, opened.valid_from, now);
                            match timed(&spec, "check revocation", revoked).await {
                                Ok(false) => {}
                                Ok(true) => {
                                    ignored(
                                        &spec,
                                        "its owner's sessions were ended after it was issued",
                                    );
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
                        loaded = cookie_state(config, &spec, opened, now);
                        if loaded.is_some() {
                            break;
                        }
                    }
                    Err(rejected) => ignored(&spec, rejected.as_str()),
                }
            }
            loaded
        }
        BackendKind::Server(store) => {
            // Every well-formed id is tried in header order (a stale cookie from another Path or
            // one planted by a sibling domain must not hide the live one), a few at most.
            let ids = values
                .iter()
                .filter_map(|v| {
                    let id = SessionId::parse(v);
                    if id.is_none() {
                        ignored(&spec, "it is not a well-formed session id");
                    }
                    id
                })
                .take(MAX_IDS_TRIED);
            let mut loaded = None;
            for id in ids {
                let key = id.storage_key();
                match timed(&spec, "load", store.load(&key, now)).await {
                    Err(source) => {
                        log_store_error(&spec, "load", &source);
                        return Err(SessionError::Store {
                            session: spec.name.clone(),
                            source,
                            status: config.failure_status,
                        });
                    }
                    Ok(None) => ignored(&spec, "no live session has its id"),
                    Ok(Some(record)) => {
                        match live_until(config, record.created_at, record.expires_at, now) {
                            None => ignored(&spec, "its session has expired"),
                            Some(expires_at) => {
                                if record.retired {
                                    tracing::debug!(
                                        session = %spec.name,
                                        "old id of a session renewed moments ago: read-only"
                                    );
                                }
                                let mut state = State::new(
                                    Origin::Loaded {
                                        id: Some(id),
                                        created_at: record.created_at,
                                        expires_at,
                                    },
                                    record.data,
                                );
                                state.expiry = crate::expiry::take_stored(&mut state.entries);
                                state.owner = record.owner;
                                state.read_only = record.retired;
                                state.loaded_seq = config.writes.now();
                                loaded = Some(state);
                                break;
                            }
                        }
                    }
                }
            }
            loaded
        }
    };
    Ok(match state {
        Some(state) => loaded(spec, state),
        None => fresh(spec, !values.is_empty()),
    })
}

/// The session of a state loaded from its cookie or store.
fn loaded(spec: Arc<Spec>, state: State) -> Session {
    count(&spec, Event::Loaded);
    Session::new(spec, state)
}

/// A new session, as nothing loaded (`had_cookie`: the request carried a cookie of the
/// session's name, which a save then removes unless the session gets data).
fn fresh(spec: Arc<Spec>, had_cookie: bool) -> Session {
    let mut state = State::new(Origin::New, Map::new());
    state.stale_cookie = had_cookie;
    Session::new(spec, state)
}

/// The state of an opened cookie session, if it is still live.
#[cfg(feature = "cookie")]
fn cookie_state(
    config: &Config,
    spec: &Spec,
    opened: crate::store::Opened,
    now: SystemTime,
) -> Option<State> {
    let Some(expires_at) = live_until(config, opened.created_at, opened.expires_at, now) else {
        ignored(spec, "its session has expired");
        return None;
    };
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
    Some(state)
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

fn ignored(spec: &Spec, reason: &str) {
    // Never the cookie's value: only which session and why.
    tracing::warn!(session = %spec.name, reason, "ignoring a session cookie; starting a fresh session");
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
