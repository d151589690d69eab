//! Expiry chosen per session at run time ("remember me"): [`Expiry`], `Session::set_expiry` and
//! how the choice is stored.
//!
//! The choice is stored with the session as a reserved entry of its map ([`EXPIRY_KEY`]), so
//! every backend carries it without a format or schema change: inside the sealed cookie
//! payload's map, in the PostgreSQL `data` jsonb, as a field of the Redis hash, in the memory
//! store's record, and through any custom [`SessionStore`](crate::SessionStore). Loading takes
//! it out of the map again: handlers never see it among the entries.

use std::{borrow::Cow, rc::Rc, time::Duration};

use serde_json::{json, Map, Value};

use crate::{
    config::CookieLifetime,
    session::{Origin, State},
    Session, SessionError,
};

/// The reserved key under which a session's [`Expiry`] is stored (absent for
/// [`Expiry::Default`]). [`Session::insert`] refuses it.
pub(crate) const EXPIRY_KEY: &str = "__session_expiry";

/// How long one session lives, chosen at run time (see [`Session::set_expiry`]).
///
/// The configured [absolute timeout](crate::SessionMiddlewareBuilder::absolute_timeout) caps
/// every choice, and the configured
/// [idle timeout](crate::SessionMiddlewareBuilder::idle_timeout) is the longest idle timeout a
/// session can get: a handler can shorten a session's life, never stretch it past the
/// configuration. For "remember me", configure the long idle timeout and give the sessions
/// that are not remembered [`BrowserSession`](Self::BrowserSession) or a short
/// [`IdleFor`](Self::IdleFor).
///
/// ```
/// use std::time::Duration;
/// use actix_typed_session::Expiry;
///
/// let remember_me = Expiry::IdleFor(Duration::from_secs(30 * 24 * 3600));
/// assert_ne!(remember_me, Expiry::Default);
/// assert_eq!(Expiry::default(), Expiry::Default);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// As configured: the session's [`CookieLifetime`] and the idle timeout.
    #[default]
    Default,
    /// A browser-session cookie (no `Max-Age` or `Expires`: it goes when the browser closes),
    /// whatever the configured [`CookieLifetime`]; the server still enforces the configured idle
    /// timeout.
    BrowserSession,
    /// A persistent cookie (`Max-Age` and `Expires`), whatever the configured
    /// [`CookieLifetime`], and this idle timeout, at most the configured one (a longer one is
    /// cut to it). At least one second.
    IdleFor(Duration),
}

impl Expiry {
    /// The stored form: `None` for the default (no entry).
    fn to_value(self) -> Option<Value> {
        match self {
            Self::Default => None,
            Self::BrowserSession => Some(json!("browser_session")),
            Self::IdleFor(idle) => Some(json!({ "idle_for": idle.as_secs() })),
        }
    }

    /// Reads the stored form; anything else (written by a newer build, say) is the default.
    fn from_value(value: &Value) -> Self {
        match value {
            Value::String(s) if s == "browser_session" => Self::BrowserSession,
            Value::Object(map) => match map.get("idle_for").and_then(Value::as_u64) {
                Some(secs) if secs > 0 => Self::IdleFor(Duration::from_secs(secs)),
                _ => Self::Default,
            },
            _ => Self::Default,
        }
    }

    /// The idle timeout it gives under the configured one.
    pub(crate) fn idle(self, configured: Duration) -> Duration {
        match self {
            Self::IdleFor(idle) => idle.min(configured),
            _ => configured,
        }
    }

    /// The refresh interval under the configured one: at most half the idle timeout, so that a
    /// session in use slides before it ends.
    pub(crate) fn refresh(self, configured: Duration, idle: Duration) -> Duration {
        match self {
            Self::IdleFor(_) => configured.min(self.idle(idle) / 2),
            _ => configured,
        }
    }

    /// Whether the cookie carries `Max-Age` and `Expires`.
    pub(crate) fn persistent(self, configured: CookieLifetime) -> bool {
        match self {
            Self::Default => configured == CookieLifetime::Persistent,
            Self::BrowserSession => false,
            Self::IdleFor(_) => true,
        }
    }
}

/// Takes the stored expiry out of a loaded map (copying the map only when it has one).
pub(crate) fn take_stored(entries: &mut Rc<Map<String, Value>>) -> Expiry {
    if !entries.contains_key(EXPIRY_KEY) {
        return Expiry::Default;
    }
    Rc::make_mut(entries)
        .remove(EXPIRY_KEY)
        .map_or(Expiry::Default, |value| Expiry::from_value(&value))
}

/// The map to store: the entries, plus the expiry when it is not the default and the device
/// when one was recorded (see [`crate::device`]).
pub(crate) fn stored_entries(state: &State) -> Cow<'_, Map<String, Value>> {
    let (expiry, device) = (state.expiry.to_value(), state.device.to_value());
    if expiry.is_none() && device.is_none() {
        return Cow::Borrowed(&*state.entries);
    }
    let mut entries = Map::clone(&state.entries);
    if let Some(value) = expiry {
        entries.insert(EXPIRY_KEY.to_owned(), value);
    }
    if let Some(value) = device {
        entries.insert(crate::device::DEVICE_KEY.to_owned(), value);
    }
    Cow::Owned(entries)
}

/// Records the state's expiry in its change set (after a change or a clear).
pub(crate) fn record_change(state: &mut State, cookie: bool) {
    if cookie {
        state.changes.touch();
        return;
    }
    match state.expiry.to_value() {
        Some(value) => state.changes.set(EXPIRY_KEY, value),
        None => state.changes.remove(EXPIRY_KEY),
    }
}

impl Session {
    /// Chooses how long this session lives, from this response on: a browser-session or a
    /// persistent cookie, or a shorter idle timeout ("remember me"). The choice is stored with
    /// the session and holds on the following requests, on every backend, until it is set again
    /// or the session is purged (renewing and clearing keep it).
    ///
    /// Fails with [`SessionError::InvalidExpiry`] for an idle timeout under one second, and with
    /// [`SessionError::ReadOnly`] as [`insert`](Self::insert) does; the session is then
    /// unchanged. Choosing the current expiry again is not a change.
    ///
    /// ```
    /// use std::time::Duration;
    /// use actix_typed_session::{Expiry, Session};
    ///
    /// async fn login(session: Session, remember_me: bool) -> actix_web::Result<&'static str> {
    ///     session.renew();
    ///     session.insert("user", "ann")?;
    ///     session.set_expiry(if remember_me {
    ///         Expiry::IdleFor(Duration::from_secs(30 * 24 * 3600)) // capped by the configuration
    ///     } else {
    ///         Expiry::BrowserSession
    ///     })?;
    ///     Ok("welcome")
    /// }
    /// ```
    pub fn set_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        if let Expiry::IdleFor(idle) = expiry {
            if idle < Duration::from_secs(1) {
                return Err(SessionError::InvalidExpiry {
                    session: self.name().to_owned(),
                    reason: "an idle timeout must be at least one second",
                });
            }
            // Stored in whole seconds: keep exactly what will be read back.
            let whole = Expiry::IdleFor(Duration::from_secs(idle.as_secs()));
            return self.apply_expiry(whole);
        }
        self.apply_expiry(expiry)
    }

    fn apply_expiry(&self, expiry: Expiry) -> Result<(), SessionError> {
        let mut state = self.state();
        if state.expiry == expiry {
            return Ok(());
        }
        if state.read_only {
            return Err(SessionError::ReadOnly {
                session: self.name().to_owned(),
            });
        }
        let previous = std::mem::replace(&mut state.expiry, expiry);
        if let Err(err) = self.check_size(&state) {
            state.expiry = previous;
            return Err(err);
        }
        state.expiry_changed = true;
        if matches!(state.origin, Origin::Loaded { .. }) {
            record_change(&mut state, self.spec().backend.is_cookie());
        }
        Ok(())
    }

    /// The session's current [`Expiry`] (as stored, or as set in this request).
    ///
    /// ```
    /// use actix_typed_session::{Expiry, Session};
    ///
    /// async fn remembered(session: Session) -> &'static str {
    ///     match session.expiry() {
    ///         Expiry::IdleFor(_) => "you stay logged in on this device",
    ///         _ => "you are logged out when the browser closes",
    ///     }
    /// }
    /// ```
    pub fn expiry(&self) -> Expiry {
        self.state().expiry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_choice_reads_back_from_its_stored_form() {
        for expiry in [
            Expiry::BrowserSession,
            Expiry::IdleFor(Duration::from_secs(1)),
            Expiry::IdleFor(Duration::from_secs(400 * 24 * 3600)),
        ] {
            let value = expiry.to_value().expect("stored");
            assert_eq!(Expiry::from_value(&value), expiry);
        }
        assert_eq!(Expiry::Default.to_value(), None);
        for odd in [json!(1), json!("later"), json!({"idle_for": 0}), json!({})] {
            assert_eq!(Expiry::from_value(&odd), Expiry::Default, "{odd}");
        }
    }

    #[test]
    fn a_chosen_idle_timeout_never_exceeds_the_configured_one() {
        let configured = Duration::from_secs(60);
        let short = Expiry::IdleFor(Duration::from_secs(20));
        assert_eq!(short.idle(configured), Duration::from_secs(20));
        assert_eq!(
            short.refresh(Duration::from_secs(30), configured),
            Duration::from_secs(10)
        );
        let long = Expiry::IdleFor(Duration::from_secs(3600));
        assert_eq!(long.idle(configured), configured);
        assert_eq!(Expiry::BrowserSession.idle(configured), configured);
        assert!(!Expiry::BrowserSession.persistent(CookieLifetime::Persistent));
        assert!(long.persistent(CookieLifetime::BrowserSession));
    }
}
