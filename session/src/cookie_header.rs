//! Finding a session's cookie in the request's `Cookie` headers, and writing its `Set-Cookie`,
//! both through the `cookie` crate that actix-web re-exports.

use std::{
    fmt::Write as _,
    time::{SystemTime, UNIX_EPOCH},
};

use actix_web::{
    cookie::{
        time::{Duration, OffsetDateTime},
        Cookie,
    },
    http::header::{HeaderValue, InvalidHeaderValue},
    web::Bytes,
};

use crate::config::{CookieSettings, Spec, COOKIE_LIMIT};

/// The values [`cookie_values`] found, in header order: usually none or one.
pub(crate) type CookieValues<'a> = smallvec::SmallVec<[&'a [u8]; 1]>;

/// Every value sent for the cookie called `name`, in the order of the request's `Cookie`
/// headers (`headers`).
///
/// Each `name=value` pair is parsed on its own by the `cookie` crate (a header is split at `;`,
/// as the crate's `split_parse` of later versions does), so a malformed pair (no `=`, no name,
/// not ASCII: no session cookie is) is skipped without hiding its neighbours. Names match
/// exactly (cookie names are case-sensitive), and a `name=value` over 4096 bytes is ignored
/// before any decoding.
pub(crate) fn cookie_values<'a>(headers: &'a [HeaderValue], name: &str) -> CookieValues<'a> {
    let mut found = CookieValues::new();
    for header in headers {
        let header = header.as_bytes();
        let mut start = 0;
        for end in memchr::memchr_iter(b';', header).chain([header.len()]) {
            let pair = &header[start..end];
            start = end + 1;
            // Checked on the raw bytes: the crate also trims Unicode spaces off a value.
            if !pair.is_ascii() {
                continue;
            }
            let Ok(pair) = std::str::from_utf8(pair) else {
                continue;
            };
            // Only a pair that can be this cookie is parsed (the crate trims the name so).
            if !pair.trim_start().starts_with(name) {
                continue;
            }
            let Ok(cookie) = Cookie::parse(pair) else {
                continue;
            };
            // The raw slices borrow the header, not the parsed cookie.
            let (Some(pair_name), Some(value)) = (cookie.name_raw(), cookie.value_raw()) else {
                continue;
            };
            if pair_name == name && pair_name.len() + 1 + value.len() <= COOKIE_LIMIT {
                found.push(value.as_bytes());
            }
        }
    }
    found
}

/// The attributes every cookie of a session carries after its `name=value`
/// (`; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com`), rendered by the `cookie`
/// crate once per session spec.
pub(crate) fn render_attributes(settings: &CookieSettings) -> Box<str> {
    let mut cookie = Cookie::new("n", "");
    cookie.set_http_only(settings.http_only);
    cookie.set_same_site(settings.same_site);
    cookie.set_secure(settings.secure);
    cookie.set_path(settings.path.as_str());
    if let Some(domain) = &settings.domain {
        cookie.set_domain(domain.as_str());
    }
    let name_value = cookie.stripped().to_string().len();
    cookie.to_string()[name_value..].into()
}

/// Room for `; Max-Age=<secs>; Expires=Www, dd Mmm yyyy hh:mm:ss GMT`.
const LIFETIME_ATTRIBUTES_LEN: usize = 64;

/// The `Set-Cookie` value of `cookie` (its name, value, `Max-Age` and `Expires`) followed by the
/// spec's fixed attributes.
fn set_cookie(spec: &Spec, cookie: &Cookie<'_>) -> Result<HeaderValue, InvalidHeaderValue> {
    let (name, value) = cookie.name_value();
    let mut len = name.len() + 1 + value.len() + spec.cookie_attributes.len();
    if cookie.max_age().is_some() {
        len += LIFETIME_ATTRIBUTES_LEN;
    }
    // A buffer with no spare room becomes the header's bytes as it is.
    let mut out = String::with_capacity(len);
    write!(out, "{cookie}").expect("writing to a String does not fail");
    out.push_str(&spec.cookie_attributes);
    HeaderValue::from_maybe_shared(Bytes::from(out))
}

/// The cookie that carries a session until `expires_at` (`Max-Age` and `Expires` only for a
/// persistent cookie).
pub(crate) fn session_cookie(
    spec: &Spec,
    value: &str,
    now: SystemTime,
    expires_at: SystemTime,
    persistent: bool,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut cookie = Cookie::new(spec.cookie_name.as_str(), value);
    if persistent {
        let remaining = expires_at.duration_since(now).unwrap_or_default().as_secs();
        let max_age = i64::try_from(remaining).unwrap_or(i64::MAX);
        cookie.set_max_age(Duration::seconds(max_age));
        // `Expires` for clients that ignore `Max-Age`; both name the same instant (none when it
        // is beyond what a date can say, where `Max-Age` alone serves).
        let expires = unix_floor(now)
            .checked_add(max_age)
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok());
        if let Some(expires) = expires {
            cookie.set_expires(expires);
        }
    }
    set_cookie(spec, &cookie)
}

/// A cookie that tells the browser to drop the session cookie (same Path and Domain): empty,
/// `Max-Age=0` and an `Expires` a year ago.
pub(crate) fn removal_cookie(spec: &Spec) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut cookie = Cookie::new(spec.cookie_name.as_str(), "");
    cookie.make_removal();
    set_cookie(spec, &cookie)
}

/// Whole seconds since the Unix epoch, rounded down (also before the epoch).
fn unix_floor(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            -secs - i64::from(d.subsec_nanos() > 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{cookie::SameSite, http::header::HeaderValue};

    use super::*;
    use crate::config::CookieLifetime;

    fn headers(values: &[&[u8]]) -> Vec<HeaderValue> {
        values
            .iter()
            .map(|v| HeaderValue::from_bytes(v).unwrap())
            .collect()
    }

    fn cookie_values<'a>(headers: &'a [HeaderValue], name: &str) -> Vec<&'a str> {
        super::cookie_values(headers, name)
            .iter()
            .map(|v| std::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn finds_values_in_order_across_headers() {
        let h = headers(&[b"a=1; s=first; b", b"s=second;x=y"]);
        assert_eq!(cookie_values(&h, "s"), ["first", "second"]);
    }

    #[test]
    fn several_values_keep_their_order() {
        let h = headers(&[b";s=1;; s=2 ;", b"s=3", b"t=0; s=4"]);
        assert_eq!(cookie_values(&h, "s"), ["1", "2", "3", "4"]);
        assert!(super::cookie_values(&h, "u").is_empty());
        assert!(!super::cookie_values(&h, "t").is_empty());
    }

    #[test]
    fn malformed_neighbours_do_not_hide_the_cookie() {
        let h = headers(&[b"=; ;;garbage; \xff\xfe=\xfa; s = v ; t=\x80"]);
        assert_eq!(cookie_values(&h, "s"), ["v"]);
        assert!(cookie_values(&h, "t").is_empty());
    }

    #[test]
    fn names_are_case_sensitive() {
        let h = headers(&[b"S=upper; s=lower"]);
        assert_eq!(cookie_values(&h, "s"), ["lower"]);
    }

    #[cfg(feature = "cookie")]
    fn spec_with(settings: &CookieSettings, lifetime: CookieLifetime) -> Spec {
        let mut spec = crate::fuzz_support::detached_spec();
        spec.cookie_name = "__Host-s".into();
        spec.lifetime = lifetime;
        spec.cookie_attributes = render_attributes(settings);
        spec
    }

    #[cfg(feature = "cookie")]
    /// The `cookie` crate's rendering, which these cookies replaced.
    fn reference(settings: &CookieSettings, value: &str) -> actix_web::cookie::Cookie<'static> {
        let mut cookie = actix_web::cookie::Cookie::new("__Host-s", value.to_owned());
        cookie.set_path(settings.path.clone());
        if let Some(domain) = &settings.domain {
            cookie.set_domain(domain.clone());
        }
        cookie.set_secure(settings.secure);
        cookie.set_http_only(settings.http_only);
        cookie.set_same_site(settings.same_site);
        cookie
    }

    #[cfg(feature = "cookie")]
    fn all_settings() -> Vec<CookieSettings> {
        let mut all = Vec::new();
        for http_only in [true, false] {
            for secure in [true, false] {
                for same_site in [SameSite::Strict, SameSite::Lax, SameSite::None] {
                    for domain in [None, Some("example.com".to_owned())] {
                        for path in ["/", "/app/x"] {
                            all.push(CookieSettings {
                                path: path.into(),
                                domain: domain.clone(),
                                secure,
                                http_only,
                                same_site,
                            });
                        }
                    }
                }
            }
        }
        all
    }

    /// The attributes of a `Set-Cookie` value, in a fixed order (browsers read them in any).
    #[cfg(feature = "cookie")]
    fn attributes(set_cookie: &str) -> Vec<String> {
        let mut parts: Vec<String> = set_cookie.split("; ").map(str::to_owned).collect();
        parts[1..].sort();
        parts
    }

    #[cfg(feature = "cookie")]
    #[test]
    fn session_cookies_match_the_cookie_crate() {
        use actix_web::cookie::time::{Duration as TimeDuration, OffsetDateTime};
        use std::time::Duration;

        let now = UNIX_EPOCH + Duration::new(1_764_111_722, 987_654_321);
        for settings in all_settings() {
            let spec = spec_with(&settings, CookieLifetime::BrowserSession);
            let ours =
                session_cookie(&spec, "v4lue", now, now + Duration::from_secs(60), false).unwrap();
            assert_eq!(
                ours.to_str().unwrap(),
                reference(&settings, "v4lue").to_string()
            );

            let spec = spec_with(&settings, CookieLifetime::Persistent);
            for remaining in [0, 1, 59, 3600, 86_400 * 400 + 7] {
                let ours = session_cookie(
                    &spec,
                    "v",
                    now,
                    now + Duration::from_millis(remaining * 1000 + 400),
                    true,
                )
                .unwrap();
                let mut expected = reference(&settings, "v");
                let max_age = TimeDuration::seconds(remaining as i64);
                expected.set_max_age(max_age);
                expected.set_expires(OffsetDateTime::from(now) + max_age);
                assert_eq!(
                    attributes(ours.to_str().unwrap()),
                    attributes(&expected.to_string())
                );
            }
            // A deadline already past: Max-Age=0, Expires now.
            let ours = session_cookie(&spec, "v", now, now - Duration::from_secs(5), true).unwrap();
            let mut expected = reference(&settings, "v");
            expected.set_max_age(TimeDuration::ZERO);
            expected.set_expires(OffsetDateTime::from(now));
            assert_eq!(
                attributes(ours.to_str().unwrap()),
                attributes(&expected.to_string())
            );
        }
    }

    #[cfg(feature = "cookie")]
    #[test]
    fn a_clock_beyond_what_dates_can_say_gets_max_age_only() {
        use std::time::Duration;

        let settings = &all_settings()[0];
        let spec = spec_with(settings, CookieLifetime::Persistent);
        let now = UNIX_EPOCH + Duration::from_secs(1 << 40);
        let ours = session_cookie(&spec, "v", now, now + Duration::from_secs(60), true).unwrap();
        let ours = ours.to_str().unwrap();
        assert!(ours.contains("; Max-Age=60"), "{ours}");
        assert!(!ours.contains("Expires"), "{ours}");
    }

    #[cfg(feature = "cookie")]
    #[test]
    fn removal_cookies_match_the_cookie_crate() {
        for settings in all_settings() {
            let spec = spec_with(&settings, CookieLifetime::Persistent);
            let ours = removal_cookie(&spec).unwrap();
            let mut expected = reference(&settings, "");
            expected.make_removal();
            let (ours, expected) = (ours.to_str().unwrap(), expected.to_string());
            // The same attributes but `Expires`, which may be a second apart.
            let without_expires = |s: &str| {
                attributes(s)
                    .into_iter()
                    .filter(|a| !a.starts_with("Expires="))
            };
            assert!(without_expires(ours).eq(without_expires(&expected)));
            let parsed = actix_web::cookie::Cookie::parse(ours.to_owned()).unwrap();
            let expires = parsed.expires_datetime().unwrap();
            let reference = actix_web::cookie::Cookie::parse(expected).unwrap();
            let gap = expires - reference.expires_datetime().unwrap();
            assert!(gap.whole_seconds().abs() <= 1, "{gap}");
        }
    }

    #[test]
    fn oversized_values_are_ignored() {
        let big = format!("s={}", "A".repeat(COOKIE_LIMIT));
        let h = headers(&[big.as_bytes()]);
        assert!(cookie_values(&h, "s").is_empty());
        // Exactly at the limit, padding aside: kept.
        let at_limit = format!("s= {} ", "A".repeat(COOKIE_LIMIT - 2));
        let h = headers(&[at_limit.as_bytes(), big.as_bytes()]);
        assert_eq!(cookie_values(&h, "s"), [&at_limit[3..at_limit.len() - 1]]);
    }

    #[test]
    fn values_that_are_not_ascii_are_skipped() {
        let h = headers(&["s=\u{e9}t\u{e9}; s=ok; s=\u{a0}x".as_bytes()]);
        assert_eq!(cookie_values(&h, "s"), ["ok"]);
    }
}
