//! What `build()` checks before it resolves a configuration: timeouts, cookie attributes,
//! cookie names and the sessions of registered `SessionData` types.

use std::{collections::HashMap, time::Duration};

use actix_web::cookie::SameSite;

use super::{SessionConfig, SessionMiddlewareBuilder, MAX_RENEW_GRACE, MAX_TIMEOUT};
use crate::{store::Backend, typed, BuildError};

/// The longest attribute value (`Path`, `Domain`) browsers accept: RFC 6265bis ignores an
/// attribute whose value is longer.
const MAX_ATTRIBUTE_VALUE: usize = 1024;

impl SessionMiddlewareBuilder {
    pub(super) fn check_timeouts(&self) -> Result<Duration, BuildError> {
        if self.idle.is_zero() || self.absolute.is_zero() {
            return Err(BuildError::Timeouts("timeouts must be longer than zero"));
        }
        if self.idle < Duration::from_secs(1) {
            return Err(BuildError::Timeouts(
                "the idle timeout must be at least one second (cookies count in seconds)",
            ));
        }
        if self.idle > self.absolute {
            return Err(BuildError::Timeouts(
                "the idle timeout is longer than the absolute timeout",
            ));
        }
        if self.absolute > MAX_TIMEOUT {
            return Err(BuildError::Timeouts(
                "timeouts longer than ten years are not supported",
            ));
        }
        let refresh = self
            .refresh
            .unwrap_or_else(|| (self.idle / 4).min(Duration::from_secs(60)));
        if refresh >= self.idle {
            return Err(BuildError::Timeouts(
                "the refresh interval must be shorter than the idle timeout",
            ));
        }
        if self.renew_grace > MAX_RENEW_GRACE {
            return Err(BuildError::Timeouts(
                "the renew grace window must be at most one minute",
            ));
        }
        Ok(refresh)
    }

    pub(super) fn check_cookie_attributes(&self) -> Result<(), BuildError> {
        if self.cookie.same_site == SameSite::None && !self.cookie.secure {
            return Err(BuildError::InvalidCookieAttribute {
                attribute: "same_site",
                value: "None".into(),
                reason: "browsers drop `SameSite=None` cookies that are not `Secure`",
            });
        }
        let path = &self.cookie.path;
        // Emitted raw in `Set-Cookie`: visible ASCII only, no `;` (ends the attribute) and no
        // `,` (some parsers split header values there).
        let printable = |b: u8| b.is_ascii_graphic() && b != b';' && b != b',';
        if !path.starts_with('/') || !path.bytes().all(printable) {
            return Err(BuildError::InvalidCookieAttribute {
                attribute: "path",
                value: path.clone(),
                reason: "must start with `/` and hold only visible ASCII characters other than \
                         `;` and `,` (no spaces, control characters or non-ASCII)",
            });
        }
        if path.len() > MAX_ATTRIBUTE_VALUE {
            return Err(BuildError::InvalidCookieAttribute {
                attribute: "path",
                value: path.clone(),
                reason: "is longer than 1024 bytes, which browsers ignore (RFC 6265bis)",
            });
        }
        if let Some(domain) = &self.cookie.domain {
            if domain.len() > MAX_ATTRIBUTE_VALUE {
                return Err(BuildError::InvalidCookieAttribute {
                    attribute: "domain",
                    value: domain.clone(),
                    reason: "is longer than 1024 bytes, which browsers ignore (RFC 6265bis)",
                });
            }
            let valid = !domain.is_empty()
                && domain.trim_start_matches('.').split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(BuildError::InvalidCookieAttribute {
                    attribute: "domain",
                    value: domain.clone(),
                    reason: "must be a host name such as `example.com`",
                });
            }
        }
        Ok(())
    }

    /// The registered sessions plus those of the registered [`SessionData`] types, after
    /// checking the types against the backends, the session configs and each other.
    pub(super) fn typed_sessions(
        &self,
        backends: &HashMap<String, Backend>,
    ) -> Result<Vec<(String, SessionConfig)>, BuildError> {
        let registered = typed::dedup(&self.typed);
        typed::check_keys(&registered)?;
        let mut sessions = self.sessions.clone();
        // The type that set each session's backend, for error messages.
        let mut set_by: HashMap<&str, &str> = HashMap::new();
        for data in registered {
            let Some(backend) = data.backend else {
                if !sessions.iter().any(|(n, _)| n == data.name) {
                    sessions.push((data.name.to_owned(), SessionConfig::new()));
                }
                continue;
            };
            if !backends.contains_key(backend) {
                let mut available: Vec<String> = backends.keys().cloned().collect();
                available.sort();
                return Err(BuildError::TypedUnknownBackend {
                    data: data.type_name,
                    session: data.name.to_owned(),
                    backend: backend.to_owned(),
                    available,
                });
            }
            match sessions.iter_mut().find(|(n, _)| n == data.name) {
                None => {
                    sessions.push((data.name.to_owned(), SessionConfig::new().backend(backend)));
                    set_by.insert(data.name, data.type_name);
                }
                Some((_, config)) => match &config.backend {
                    None => {
                        config.backend = Some(backend.to_owned());
                        set_by.insert(data.name, data.type_name);
                    }
                    Some(configured) if configured != backend => {
                        let by = match set_by.get(data.name) {
                            Some(other) => format!("`{other}`"),
                            None => {
                                format!("its `SessionConfig` (`.session(\"{}\", ..)`)", data.name)
                            }
                        };
                        return Err(BuildError::TypedBackendConflict {
                            data: data.type_name,
                            session: data.name.to_owned(),
                            requested: backend.to_owned(),
                            configured: configured.clone(),
                            by,
                        });
                    }
                    Some(_) => {}
                },
            }
        }
        Ok(sessions)
    }
}

/// Checks that `name` is an RFC 6265 cookie-name (an RFC 9110 token).
pub(crate) fn validate_token(name: &str) -> Result<(), BuildError> {
    let invalid = |reason| BuildError::InvalidCookieName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 256 {
        return Err(invalid("it is longer than 256 bytes"));
    }
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(is_tchar) {
        return Err(invalid(
            "only letters, digits and !#$%&'*+-.^_`|~ are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(validate_token("session").is_ok());
        assert!(validate_token("__Host-cart").is_ok());
        for bad in ["", "a b", "a;b", "a=b", "é", "a\"b", "a,b", "(x)"] {
            assert!(validate_token(bad).is_err(), "{bad:?}");
        }
    }
}
