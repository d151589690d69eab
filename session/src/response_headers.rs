//! What a response that used a session tells caches: it depends on the request's cookies, and
//! one that sets a session cookie is for this visitor alone.

use actix_web::http::header::{HeaderMap, HeaderValue, CACHE_CONTROL, VARY};

/// Adds `Vary: Cookie` unless the response already varies on it (or on everything, `*`): a
/// shared cache must not answer another visitor's request with this response. Called for every
/// response of a request that opened a session, read or written.
pub(crate) fn vary_on_cookie(headers: &mut HeaderMap) {
    let varies = headers.get_all(VARY).any(|value| {
        value.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|name| name == "*" || name.eq_ignore_ascii_case("cookie"))
        })
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
}

/// Adds `Cache-Control: private` unless the handler chose its own `Cache-Control`: a response
/// that sets a session cookie must not be stored by a shared cache (which could hand the cookie
/// to others), while the visitor's own browser may keep it. Called when a `Set-Cookie` of a
/// session goes out.
pub(crate) fn keep_private(headers: &mut HeaderMap) {
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private"));
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;

    use super::*;

    fn headers(pairs: &[(HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_static(value));
        }
        map
    }

    fn all(map: &HeaderMap, name: HeaderName) -> Vec<&str> {
        map.get_all(name).map(|v| v.to_str().unwrap()).collect()
    }

    #[test]
    fn cookie_is_added_to_vary_once() {
        let mut map = headers(&[]);
        vary_on_cookie(&mut map);
        vary_on_cookie(&mut map);
        assert_eq!(all(&map, VARY), ["Cookie"]);
        let mut map = headers(&[(VARY, "Accept-Encoding")]);
        vary_on_cookie(&mut map);
        assert_eq!(all(&map, VARY), ["Accept-Encoding", "Cookie"]);
        for already in ["accept, COOKIE", "*", "Origin,cookie"] {
            let mut map = headers(&[(VARY, already)]);
            vary_on_cookie(&mut map);
            assert_eq!(all(&map, VARY), [already]);
        }
    }

    #[test]
    fn the_handlers_cache_control_wins() {
        let mut map = headers(&[]);
        keep_private(&mut map);
        assert_eq!(all(&map, CACHE_CONTROL), ["private"]);
        let mut map = headers(&[(CACHE_CONTROL, "no-store")]);
        keep_private(&mut map);
        assert_eq!(all(&map, CACHE_CONTROL), ["no-store"]);
    }
}
