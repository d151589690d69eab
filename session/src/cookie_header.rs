//! Finding a session's cookie in the request, and writing cookies into the response.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{
    cookie::SameSite,
    http::header::{HeaderValue, InvalidHeaderValue},
    web::Bytes,
};

use crate::config::{CookieLifetime, CookieSettings, Spec, COOKIE_LIMIT};

/// Every value sent for the cookie called `name`, in the order of the request's `Cookie`
/// headers (`headers`).
///
/// Names match exactly (cookie names are case-sensitive), so `Session=` is not `session=`.
/// Pairs that are malformed (no `=`, a value that is not ASCII, as no session cookie is) are
/// skipped without hiding their neighbours, and a `name=value` over 4096 bytes is ignored before
/// any decoding.
pub(crate) fn cookie_values<'a>(headers: &'a [HeaderValue], name: &str) -> CookieValues<'a> {
    let mut found = CookieValues::default();
    for header in headers {
        let mut rest = header.as_bytes();
        while !rest.is_empty() {
            let (pair, next) = match memchr::memchr(b';', rest) {
                Some(semi) => (&rest[..semi], &rest[semi + 1..]),
                None => (rest, &[][..]),
            };
            rest = next;
            let Some(eq) = memchr::memchr(b'=', pair) else {
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
            // Every value this library writes is ASCII (base64url, ids); checking that is
            // cheaper than validating UTF-8, and the bytes need no conversion after it.
            if is_ascii(value) {
                found.push(value);
            }
        }
    }
    found
}

/// The values [`cookie_values`] found: usually none or one, kept without allocating.
#[derive(Debug, Default)]
pub(crate) struct CookieValues<'a> {
    first: Option<&'a [u8]>,
    more: Vec<&'a [u8]>,
}

impl<'a> CookieValues<'a> {
    fn push(&mut self, value: &'a [u8]) {
        if self.first.is_none() {
            self.first = Some(value);
        } else {
            self.more.push(value);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// The values in header order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.first.into_iter().chain(self.more.iter().copied())
    }
}

/// Whether every byte is ASCII: eight at a time, with no early exit (a session cookie always is,
/// so the whole value is read anyway). `<[u8]>::is_ascii` goes byte by byte here.
fn is_ascii(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let high = words.fold(0u64, |acc, word| {
        acc | u64::from_ne_bytes(word.try_into().expect("eight bytes"))
    }) | rest.iter().fold(0u64, |acc, &b| acc | u64::from(b));
    high & 0x8080_8080_8080_8080 == 0
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace());
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

/// The attributes every cookie of a session carries after its `name=value`, rendered once per
/// session spec, in the order and format of the `cookie` crate's `Display`:
/// `; HttpOnly; SameSite=Lax; Secure; Path=/; Domain=example.com`.
pub(crate) fn render_attributes(settings: &CookieSettings) -> Box<str> {
    let mut out = String::with_capacity(64);
    if settings.http_only {
        out.push_str("; HttpOnly");
    }
    out.push_str("; SameSite=");
    out.push_str(match settings.same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
        SameSite::None => "None",
    });
    if settings.secure {
        out.push_str("; Secure");
    }
    out.push_str("; Path=");
    out.push_str(&settings.path);
    if let Some(domain) = &settings.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.into_boxed_str()
}

/// Room for `; Max-Age=<secs>; Expires=Www, dd Mmm yyyy hh:mm:ss GMT`.
const LIFETIME_ATTRIBUTES_LEN: usize = 64;

/// A `Set-Cookie` value being written: `name=`, then the value, then [`finish`](Self::finish).
pub(crate) struct SetCookie {
    buf: Vec<u8>,
}

impl SetCookie {
    /// Starts the cookie of `spec`, with room for a value of `value_len` bytes. A browser-session
    /// cookie gets exactly the room it takes: a full buffer becomes the header's bytes as it is
    /// (`Bytes::from` allocates a shared header for a buffer with spare room).
    pub(crate) fn start(spec: &Spec, value_len: usize) -> Self {
        let lifetime = match spec.lifetime {
            CookieLifetime::Persistent => LIFETIME_ATTRIBUTES_LEN,
            CookieLifetime::BrowserSession => 0,
        };
        let mut buf = Vec::with_capacity(
            spec.cookie_name.len() + 1 + value_len + spec.cookie_attributes.len() + lifetime,
        );
        buf.extend_from_slice(spec.cookie_name.as_bytes());
        buf.push(b'=');
        Self { buf }
    }

    /// The buffer to append the value to.
    pub(crate) fn value_buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Appends the fixed attributes, and `Max-Age`/`Expires` when `max_age` is given (the whole
    /// seconds the cookie lives from `now`).
    fn finish(
        mut self,
        spec: &Spec,
        lifetime: Option<(SystemTime, u64)>,
    ) -> Result<HeaderValue, InvalidHeaderValue> {
        self.buf
            .extend_from_slice(spec.cookie_attributes.as_bytes());
        if let Some((now, max_age)) = lifetime {
            let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
            self.buf.extend_from_slice(b"; Max-Age=");
            push_decimal(&mut self.buf, max_age);
            self.buf.extend_from_slice(b"; Expires=");
            push_http_date(&mut self.buf, unix_floor(now).saturating_add(max_age));
        }
        HeaderValue::from_maybe_shared(Bytes::from(self.buf))
    }

    /// The cookie that carries a session until `expires_at` (`Max-Age` and `Expires` only for a
    /// persistent cookie).
    pub(crate) fn session(
        self,
        spec: &Spec,
        now: SystemTime,
        expires_at: SystemTime,
    ) -> Result<HeaderValue, InvalidHeaderValue> {
        let lifetime = (spec.lifetime == CookieLifetime::Persistent).then(|| {
            let remaining = expires_at.duration_since(now).unwrap_or_default();
            // `Expires` for clients that ignore `Max-Age`; both name the same instant.
            (now, remaining.as_secs())
        });
        self.finish(spec, lifetime)
    }
}

/// The cookie that carries a session until `expires_at`.
pub(crate) fn session_cookie(
    spec: &Spec,
    value: &str,
    now: SystemTime,
    expires_at: SystemTime,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut cookie = SetCookie::start(spec, value.len());
    cookie.value_buf().extend_from_slice(value.as_bytes());
    cookie.session(spec, now, expires_at)
}

/// A cookie that tells the browser to drop the session cookie (same Path and Domain): empty,
/// `Max-Age=0` and an `Expires` a year ago.
pub(crate) fn removal_cookie(spec: &Spec) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut cookie = SetCookie::start(spec, 0);
    cookie
        .buf
        .reserve(spec.cookie_attributes.len() + LIFETIME_ATTRIBUTES_LEN);
    cookie
        .buf
        .extend_from_slice(spec.cookie_attributes.as_bytes());
    cookie.buf.extend_from_slice(b"; Max-Age=0; Expires=");
    let year_ago = unix_floor(SystemTime::now()).saturating_sub(365 * 86_400);
    push_http_date(&mut cookie.buf, year_ago);
    HeaderValue::from_maybe_shared(Bytes::from(cookie.buf))
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

fn push_decimal(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    out.extend_from_slice(crate::decimal::decimal(n.unsigned_abs(), &mut digits));
}

fn push_two_digits(out: &mut Vec<u8>, n: u32) {
    out.push(b'0' + (n / 10) as u8);
    out.push(b'0' + (n % 10) as u8);
}

/// `Thu, 01 Jan 1970 00:00:00 GMT`: the `Expires` format of the `cookie` crate (its `FMT1`,
/// with the year unpadded).
fn push_http_date(out: &mut Vec<u8>, unix_secs: i64) {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400) as u32;
    // Days to a civil date (H. Hinnant's algorithm), in the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = yoe + era * 400 + i64::from(month <= 2);

    out.extend_from_slice(WEEKDAYS[days.rem_euclid(7) as usize]);
    out.extend_from_slice(b", ");
    push_two_digits(out, day);
    out.push(b' ');
    out.extend_from_slice(MONTHS[month - 1]);
    out.push(b' ');
    push_decimal(out, year);
    out.push(b' ');
    push_two_digits(out, secs / 3600);
    out.push(b':');
    push_two_digits(out, secs / 60 % 60);
    out.push(b':');
    push_two_digits(out, secs % 60);
    out.extend_from_slice(b" GMT");
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

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
    fn ascii_is_told_apart_at_every_position() {
        for len in 0..40 {
            let mut bytes = vec![b'a'; len];
            assert!(is_ascii(&bytes), "{len}");
            for at in 0..len {
                bytes[at] = 0x80;
                assert!(!is_ascii(&bytes), "{len} {at}");
                bytes[at] = 0x7f;
                assert!(is_ascii(&bytes), "{len} {at}");
            }
        }
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

    #[cfg(feature = "cookie")]
    #[test]
    fn session_cookies_match_the_cookie_crate() {
        use actix_web::cookie::time::{Duration as TimeDuration, OffsetDateTime};
        use std::time::Duration;

        let now = UNIX_EPOCH + Duration::new(1_764_111_722, 987_654_321);
        for settings in all_settings() {
            let spec = spec_with(&settings, CookieLifetime::BrowserSession);
            let ours = session_cookie(&spec, "v4lue", now, now + Duration::from_secs(60)).unwrap();
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
                )
                .unwrap();
                let mut expected = reference(&settings, "v");
                let max_age = TimeDuration::seconds(remaining as i64);
                expected.set_max_age(max_age);
                expected.set_expires(OffsetDateTime::from(now) + max_age);
                assert_eq!(ours.to_str().unwrap(), expected.to_string());
            }
            // A deadline already past: Max-Age=0, Expires now.
            let ours = session_cookie(&spec, "v", now, now - Duration::from_secs(5)).unwrap();
            let mut expected = reference(&settings, "v");
            expected.set_max_age(TimeDuration::ZERO);
            expected.set_expires(OffsetDateTime::from(now));
            assert_eq!(ours.to_str().unwrap(), expected.to_string());
        }
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
            // The same text up to `Expires`, which may be a second apart.
            let cut = |s: &str| s[..s.find("; Expires=").unwrap()].to_owned();
            assert_eq!(cut(ours), cut(&expected));
            let parsed = actix_web::cookie::Cookie::parse(ours.to_owned()).unwrap();
            let expires = parsed.expires_datetime().unwrap();
            let reference = actix_web::cookie::Cookie::parse(expected).unwrap();
            let gap = expires - reference.expires_datetime().unwrap();
            assert!(gap.whole_seconds().abs() <= 1, "{gap}");
        }
    }

    #[test]
    fn http_dates_match_the_cookie_crate() {
        use actix_web::cookie::time::OffsetDateTime;
        let mut samples: Vec<i64> = vec![
            0,
            -1,
            -86_400,
            -86_401,
            951_782_400,   // 2000-02-29
            951_868_799,   // 2000-02-29 23:59:59
            4_107_542_400, // 2100-03-01
            253_402_300_799,
            -62_135_596_800, // 0001-01-01
        ];
        let mut t = -2_000_000_000i64;
        while t < 5_000_000_000 {
            samples.push(t);
            t += 7_777_777;
        }
        for t in samples {
            let mut cookie = actix_web::cookie::Cookie::new("a", "b");
            cookie.set_expires(OffsetDateTime::from_unix_timestamp(t).unwrap());
            let expected = cookie.to_string();
            let expected = &expected[expected.find("Expires=").unwrap() + 8..];
            let mut ours = Vec::new();
            push_http_date(&mut ours, t);
            assert_eq!(std::str::from_utf8(&ours).unwrap(), expected, "{t}");
        }
    }

    #[test]
    fn oversized_values_are_ignored() {
        let big = format!("s={}", "A".repeat(COOKIE_LIMIT));
        let h = headers(&[big.as_bytes()]);
        assert!(cookie_values(&h, "s").is_empty());
    }
}
