//! Writing what a request changed back to the session's cookie or store.

use std::time::SystemTime;

use actix_web::http::header::{HeaderValue, InvalidHeaderValue};

use crate::{
    config::{later, Config, Spec},
    cookie_header::{removal_cookie, session_cookie},
    id::SessionId,
    load::log_store_error,
    session::Origin,
    store::{BackendKind, DynStore},
    telemetry::{count, timed, Event},
    Expiry, Record, Session, WriteResult,
};

/// How many fresh ids to try when a new id collides (with 256-bit ids, one always suffices
/// unless the store misbehaves).
const ID_ATTEMPTS: usize = 4;

/// The save failed; the cause has been logged.
#[derive(Debug)]
pub(crate) struct SaveFailed;

/// The `Set-Cookie` value, or the logged failure to make one (never with a validated
/// configuration: names are tokens, values base64url, attributes checked by `build()`).
fn encoded(
    spec: &Spec,
    cookie: Result<HeaderValue, InvalidHeaderValue>,
) -> Result<HeaderValue, SaveFailed> {
    cookie.map_err(|err| {
        tracing::error!(session = %spec.name, error = %err, "could not encode a session cookie");
        SaveFailed
    })
}

/// Saves a cookie-backed `session` at once (it does no I/O) and returns the `Set-Cookie` value to
/// send, if any; `None` for a server-side session, which [`save`] writes.
pub(crate) fn save_cookie_session(
    config: &Config,
    session: &Session,
    now: SystemTime,
) -> Option<Result<Option<HeaderValue>, SaveFailed>> {
    match &session.spec().backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(store) => {
            Some(save_cookie(config, session.spec(), store, session, now))
        }
        BackendKind::Server(_) => {
            let _ = (config, now);
            None
        }
    }
}

/// Saves `session` and returns the `Set-Cookie` value to send, if any.
pub(crate) async fn save(
    config: &Config,
    session: &Session,
    now: SystemTime,
) -> Result<Option<HeaderValue>, SaveFailed> {
    let spec = session.spec().clone();
    match &spec.backend.kind {
        #[cfg(feature = "cookie")]
        BackendKind::Cookie(store) => save_cookie(config, &spec, store, session, now),
        BackendKind::Server(store) => save_server(config, &spec, &**store, session, now).await,
    }
}

/// The idle deadline of a session used `now` (under its chosen expiry), capped by the absolute one.
fn deadline(
    config: &Config,
    expiry: Expiry,
    created_at: SystemTime,
    now: SystemTime,
) -> SystemTime {
    later(now, expiry.idle(config.idle)).min(later(created_at, config.absolute))
}

fn refresh_due(
    config: &Config,
    expiry: Expiry,
    expires_at: SystemTime,
    target: SystemTime,
) -> bool {
    let interval = expiry.refresh(config.refresh, config.idle);
    target
        .duration_since(expires_at)
        .is_ok_and(|gain| gain >= interval)
}

#[cfg(feature = "cookie")]
fn save_cookie(
    config: &Config,
    spec: &Spec,
    store: &crate::CookieStore,
    session: &Session,
    now: SystemTime,
) -> Result<Option<HeaderValue>, SaveFailed> {
    let state = session.state();
    let (created_at, expires_at) = match state.origin {
        Origin::New if state.entries.is_empty() && state.owner.is_none() => {
            if state.purged && state.stale_cookie {
                count(spec, Event::Purged);
            }
            return state
                .stale_cookie
                .then(|| encoded(spec, removal_cookie(spec)))
                .transpose();
        }
        Origin::New => (now, deadline(config, state.expiry, now, now)),
        Origin::Loaded {
            created_at,
            expires_at,
            ..
        } => {
            if state.entries.is_empty()
                && state.owner.is_none()
                && state.expiry == Expiry::Default
                && !state.changes.is_empty()
            {
                // Emptied: a cookie with no data (and no chosen expiry, which a server-side
                // session would keep too) is just a removal.
                return encoded(spec, removal_cookie(spec)).map(Some);
            }
            let target = deadline(config, state.expiry, created_at, now);
            let due = !state.changes.is_empty()
                || state.renew
                || state.reseal
                || state.expiry_changed
                || refresh_due(config, state.expiry, expires_at, target);
            if !due {
                return Ok(None);
            }
            (created_at, target)
        }
    };
    count(
        spec,
        match state.origin {
            Origin::New => Event::Created,
            _ if state.renew => Event::Renewed,
            _ => Event::Saved,
        },
    );
    // The chosen expiry travels in the map, as a reserved entry.
    let with_expiry = match crate::expiry::stored_entries(&state) {
        std::borrow::Cow::Owned(entries) => Some(std::rc::Rc::new(entries)),
        std::borrow::Cow::Borrowed(_) => None,
    };
    let entries = with_expiry.as_ref().unwrap_or(&state.entries);
    let payload = crate::CookieStore::payload(
        entries,
        created_at,
        expires_at,
        state.owner.as_deref(),
        state.valid_from,
    );
    // Serialized straight into the buffer that is sealed in place.
    let value = store
        .seal_payload(&config.keys, &spec.cookie_aad, &payload, now)
        .map_err(|err| {
            tracing::error!(session = %spec.name, error = %err, "could not serialize a cookie session");
            SaveFailed
        })?;
    let size = spec.cookie_name.len() + 1 + value.len();
    if size > crate::config::COOKIE_LIMIT {
        // Inserts check the size, so this needs a clock jump that lengthens the times; refuse
        // loudly.
        tracing::error!(
            session = %spec.name,
            size,
            limit = crate::config::COOKIE_LIMIT,
            "session cookie is over the browser limit; not sending it"
        );
        return Err(SaveFailed);
    }
    store.remember_sealed(
        &config.keys,
        &spec.cookie_aad,
        value.as_bytes(),
        &payload,
        entries,
    );
    let persistent = state.expiry.persistent(spec.lifetime);
    encoded(
        spec,
        session_cookie(spec, &value, now, expires_at, persistent),
    )
    .map(Some)
}

async fn save_server(
    config: &Config,
    spec: &Spec,
    store: &dyn DynStore,
    session: &Session,
    now: SystemTime,
) -> Result<Option<HeaderValue>, SaveFailed> {
    // Copy what is needed out of the state: no borrow may live across an await.
    let (origin, entries, owner, changes, renew, delete, stale_cookie, loaded_seq, expiry) = {
        let mut state = session.state();
        if state.read_only && state.delete.is_none() {
            // The old id of a session renewed moments ago: its new id is already with the
            // browser, so nothing is written and no cookie is sent.
            if !state.changes.is_empty() {
                tracing::info!(
                    session = %spec.name,
                    "changes to a renewed session through its old id are dropped"
                );
            }
            return Ok(None);
        }
        // Only a new session writes its whole map; a loaded one writes its change set.
        let entries = (matches!(state.origin, Origin::New)
            && (!state.entries.is_empty() || state.owner.is_some()))
        .then(|| crate::expiry::stored_entries(&state).into_owned());
        (
            state.origin.clone(),
            entries,
            state.owner.clone(),
            // Taken, not copied: this is the request's one save of the session. What is left
            // still says that something changed (`Session::status`, as for a cookie session).
            {
                let changes = std::mem::take(&mut state.changes);
                if !changes.is_empty() {
                    state.changes.touch();
                }
                changes
            },
            state.renew,
            state.delete.take(),
            state.stale_cookie,
            state.loaded_seq,
            (state.expiry, state.expiry_changed),
        )
    };
    let (expiry, expiry_changed) = expiry;
    let persistent = expiry.persistent(spec.lifetime);
    let fail = |operation: &str, err: &crate::StoreError| {
        log_store_error(spec, operation, err);
        SaveFailed
    };
    let cookie = |id: &SessionId, expires_at: SystemTime| {
        encoded(
            spec,
            session_cookie(spec, id.as_str(), now, expires_at, persistent),
        )
    };

    if let Some(old) = delete {
        let key = old.storage_key();
        timed(spec, "delete", store.delete(&key))
            .await
            .map_err(|e| fail("delete", &e))?;
        count(spec, Event::Purged);
    }

    match origin {
        Origin::New => {
            let Some(data) = entries else {
                return stale_cookie
                    .then(|| encoded(spec, removal_cookie(spec)))
                    .transpose();
            };
            let record =
                Record::new(data, now, deadline(config, expiry, now, now)).with_owner(owner);
            for _ in 0..ID_ATTEMPTS {
                let id = SessionId::generate(&config.rng);
                let key = id.storage_key();
                match timed(spec, "create", store.create(&key, &record)).await {
                    Ok(WriteResult::Done) => {
                        count(spec, Event::Created);
                        return cookie(&id, record.expires_at).map(Some);
                    }
                    Ok(_) => continue,
                    Err(e) => return Err(fail("create", &e)),
                }
            }
            tracing::error!(session = %spec.name, "no free session id after {ID_ATTEMPTS} attempts");
            Err(SaveFailed)
        }
        Origin::Loaded {
            id: Some(id),
            created_at,
            expires_at,
        } => {
            let target = deadline(config, expiry, created_at, now);
            let key = id.storage_key();
            if renew {
                let retire_until =
                    (!config.renew_grace.is_zero()).then(|| later(now, config.renew_grace));
                for _ in 0..ID_ATTEMPTS {
                    let new = SessionId::generate(&config.rng);
                    let new_key = new.storage_key();
                    let renewed = store.renew(&key, &new_key, &changes, target, now, retire_until);
                    match timed(spec, "renew", renewed).await {
                        Ok(WriteResult::Done) => {
                            count(spec, Event::Renewed);
                            return cookie(&new, target).map(Some);
                        }
                        Ok(WriteResult::Collision) => continue,
                        Ok(_) => return Ok(gone(spec)),
                        Err(e) => return Err(fail("renew", &e)),
                    }
                }
                tracing::error!(session = %spec.name, "no free session id after {ID_ATTEMPTS} attempts");
                return Err(SaveFailed);
            }
            // The expiry moves at most once per refresh interval, whether or not the request
            // changed the session: a write that keeps it spares the store its TTL update.
            // (A deadline now earlier than the stored one, after the idle timeout was lowered,
            // is written at once.)
            let refresh = refresh_due(config, expiry, expires_at, target) || target < expires_at;
            let until = if refresh { target } else { expires_at };
            let written = if !changes.is_empty() {
                timed(spec, "update", store.update(&key, &changes, until, now)).await
            } else if refresh {
                timed(spec, "touch", store.touch(&key, target, now)).await
            } else {
                return Ok(None);
            };
            match written {
                Ok(WriteResult::Done) => {
                    if !changes.is_empty() {
                        count(spec, Event::Saved);
                        if config.writes.wrote(&key, loaded_seq) {
                            count(spec, Event::ConflictAvoided);
                        }
                    }
                    // A browser-session cookie is sent once, when the expiry is chosen (to drop
                    // the `Max-Age` of a persistent one); a persistent one on every refresh.
                    (persistent || expiry_changed)
                        .then(|| cookie(&id, until))
                        .transpose()
                }
                Ok(_) => Ok(gone(spec)),
                Err(e) => Err(fail(
                    if changes.is_empty() {
                        "touch"
                    } else {
                        "update"
                    },
                    &e,
                )),
            }
        }
        Origin::Loaded { id: None, .. } => {
            // A server-side session always has an id; keep the data safe by refusing.
            tracing::error!(session = %spec.name, "server-side session without an id");
            Err(SaveFailed)
        }
    }
}

/// The session ended elsewhere (purged, renewed or expired) while this request ran: its
/// changes are dropped rather than bringing the session back, and no cookie is re-issued.
fn gone(spec: &Spec) -> Option<HeaderValue> {
    tracing::info!(
        session = %spec.name,
        "session ended by another request before this one saved; its changes are dropped"
    );
    None
}
