//! Finding a session's cookie in the request, and writing cookies into the response.

use std::time::SystemTime;

use actix_web::{
    cookie::{time::OffsetDateTime, Cookie},
    http::header::{HeaderMap, COOKIE},
};

use crate::config::{CookieLifetime, CookieSettings, COOKIE_LIMIT};

/// Every value sent for the cookie called `name`, in header order.
///
/// Names match exactly (cookie names are case-sensitive), so `Session=` is not `session=`.
/// Pairs that are malformed (no `=`, not UTF-8) are skipped without hiding their neighbours,
/// and a `name=value` over 4096 bytes is ignored before any decoding.
pub(crate) fn cookie_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    for header in headers.get_all(COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let pair_name = trim(&pair[..eq]);
            if pair_name != name.as_bytes() {
                continue;
            }
            let value = trim(&pair[eq + 1..]);
            if pair_name.len() + 1 + value.len() > COOKIE_LIMIT {
                continue;
            }
            if let Ok(value) = std::str::from_utf8(value) {
                found.push(value);
            }
        }
    }
    found
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

fn base<'c>(settings: &CookieSettings, name: &str, value: String) -> Cookie<'c> {
    let mut cookie = Cookie::new(name.to_owned(), value);
    cookie.set_path(settings.path.clone());
    if let Some(domain) = &settings.domain {
        cookie.set_domain(domain.clone());
    }
    cookie.set_secure(settings.secure);
    cookie.set_http_only(settings.http_only);
    cookie.set_same_site(settings.same_site);
    cookie
}

/// The cookie that carries a session until `expires_at`.
pub(crate) fn session_cookie(
    settings: &CookieSettings,
    lifetime: CookieLifetime,
    name: &str,
    value: String,
    now: SystemTime,
    expires_at: SystemTime,
) -> Cookie<'static> {
    let mut cookie = base(settings, name, value);
    if lifetime == CookieLifetime::Persistent {
        let remaining = expires_at.duration_since(now).unwrap_or_default();
        let max_age = actix_web::cookie::time::Duration::seconds(
            i64::try_from(remaining.as_secs()).unwrap_or(i64::MAX),
        );
        cookie.set_max_age(max_age);
        // `Expires` for clients that ignore `Max-Age`; both name the same instant.
        cookie.set_expires(OffsetDateTime::from(now) + max_age);
    }
    cookie
}

/// A cookie that tells the browser to drop the session cookie (same Path and Domain).
pub(crate) fn removal_cookie(settings: &CookieSettings, name: &str) -> Cookie<'static> {
    let mut cookie = base(settings, name, String::new());
    cookie.make_removal();
    cookie
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn finds_values_in_order_across_headers() {
        let h = headers(&[b"a=1; s=first; b", b"s=second;x=y"]);
        assert_eq!(cookie_values(&h, "s"), ["first", "second"]);
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

    #[test]
    fn oversized_values_are_ignored() {
        let big = format!("s={}", "A".repeat(COOKIE_LIMIT));
        let h = headers(&[big.as_bytes()]);
        assert!(cookie_values(&h, "s").is_empty());
    }
}
