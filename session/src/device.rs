//! Recognisable sessions: a short description of the device a session was tied to its owner
//! from ("Firefox on Linux"), and optionally the client's address, shown by
//! [`Session::owned_sessions`](crate::Session::owned_sessions) next to created and last seen.
//!
//! The request's `User-Agent` (and its peer address, when
//! [`record_client_address`](crate::SessionMiddlewareBuilder::record_client_address) is on) is
//! captured where the request's registry is made (a `HeaderValue` clone); it is classified only
//! when [`Session::set_owner`](crate::Session::set_owner) runs. The raw `User-Agent` is never
//! stored: only the description, built from a fixed list of browser and system names.
//!
//! The description is stored with the session as a reserved entry of its map ([`DEVICE_KEY`]),
//! as the [expiry](crate::expiry) is, so every server-side backend carries it without a schema
//! change; loading takes it out of the map again. Cookie sessions record none: they cannot be
//! listed.

use std::net::IpAddr;

use actix_web::http::header::HeaderValue;
use serde_json::{Map, Value};

/// The reserved key under which a session's [`Device`] is stored. [`Session::insert`]
/// (crate::Session::insert) refuses it.
pub(crate) const DEVICE_KEY: &str = "__session_device";

/// The longest description or address kept, in bytes (longer stored values are cut; ours are
/// far shorter).
const MAX_LEN: usize = 64;

/// How much of a `User-Agent` the classifier reads: the names it looks for come early, and a
/// planted megabyte-long header costs no more than this.
const MAX_SCANNED: usize = 512;

/// What a request tells about its client, captured when its registry is made.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    /// The `User-Agent` header (shares its bytes with the request).
    pub(crate) user_agent: Option<HeaderValue>,
    /// The connection's peer address, only when the middleware records addresses.
    pub(crate) address: Option<IpAddr>,
}

impl Client {
    /// The device record of this client: its description and address (if recorded).
    pub(crate) fn device(&self) -> Device {
        Device {
            description: self
                .user_agent
                .as_ref()
                .and_then(|ua| describe(ua.as_bytes())),
            address: self.address.map(|ip| ip.to_string()),
        }
    }
}

/// The stored description of a session's device: what
/// [`SessionInfo`](crate::SessionInfo) shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) description: Option<String>,
    pub(crate) address: Option<String>,
}

impl Device {
    pub(crate) fn is_empty(&self) -> bool {
        self.description.is_none() && self.address.is_none()
    }

    /// The stored form: `None` when there is nothing to store (no entry).
    pub(crate) fn to_value(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut map = Map::new();
        if let Some(d) = &self.description {
            map.insert("device".into(), Value::from(d.as_str()));
        }
        if let Some(a) = &self.address {
            map.insert("address".into(), Value::from(a.as_str()));
        }
        Some(Value::Object(map))
    }

    /// Reads the stored form; anything else is no device. Strings are cut to [`MAX_LEN`] bytes.
    pub(crate) fn from_value(value: &Value) -> Self {
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(|s| cut(s, MAX_LEN).to_owned())
        };
        Self {
            description: field("device"),
            address: field("address"),
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Takes the stored device out of a loaded map (copying the map only when it has one).
pub(crate) fn take_stored(entries: &mut std::rc::Rc<Map<String, Value>>) -> Device {
    if !entries.contains_key(DEVICE_KEY) {
        return Device::default();
    }
    std::rc::Rc::make_mut(entries)
        .remove(DEVICE_KEY)
        .map_or_else(Device::default, |value| Device::from_value(&value))
}

/// Browsers, in the order they are tested: a browser built on another names both in its
/// `User-Agent` (Edge says "Chrome/" and "Safari/", Chrome says "Safari/"), so the more
/// specific one comes first.
const BROWSERS: [(&str, &str); 13] = [
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Vivaldi/", "Vivaldi"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Trident/", "Internet Explorer"),
    ("MSIE ", "Internet Explorer"),
    ("Safari/", "Safari"),
];

/// Operating systems, in the order they are tested: iOS says "like Mac OS X", Android says
/// "Linux", ChromeOS says "X11".
const SYSTEMS: [(&str, &str); 8] = [
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

fn find(user_agent: &[u8], table: &[(&str, &'static str)]) -> Option<&'static str> {
    table
        .iter()
        .find(|(needle, _)| {
            user_agent
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .map(|(_, name)| *name)
}

/// A short description of the device behind a `User-Agent` ("Firefox on Linux", "Safari on
/// iPhone"), from fixed lists of names (so never any text of the header itself); `None` when
/// neither the browser nor the system is recognised. Reads at most the first 512 bytes.
pub(crate) fn describe(user_agent: &[u8]) -> Option<String> {
    let scanned = &user_agent[..user_agent.len().min(MAX_SCANNED)];
    match (find(scanned, &BROWSERS), find(scanned, &SYSTEMS)) {
        (Some(browser), Some(system)) => Some(format!("{browser} on {system}")),
        (Some(browser), None) => Some(browser.to_owned()),
        (None, Some(system)) => Some(format!("Unknown browser on {system}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn described(ua: &str) -> Option<String> {
        describe(ua.as_bytes())
    }

    #[test]
    fn real_user_agents_are_described_by_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
                "Chrome on iPad",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15",
                "Firefox on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 OPR/111.0.0.0",
                "Opera on Windows",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
                "Internet Explorer on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
                "Firefox on macOS",
            ),
        ];
        for (ua, expected) in cases {
            assert_eq!(described(ua).as_deref(), Some(expected), "{ua}");
        }
    }

    #[test]
    fn unknown_agents_are_described_by_what_is_known_or_not_at_all() {
        assert_eq!(described("curl/8.5.0"), None);
        assert_eq!(described(""), None);
        assert_eq!(
            described("SomeApp/1.0 (Linux; x86_64)").as_deref(),
            Some("Unknown browser on Linux")
        );
        assert_eq!(described("Firefox/1.0").as_deref(), Some("Firefox"));
    }

    #[test]
    fn the_description_never_carries_text_of_the_header_and_reads_a_bounded_prefix() {
        let planted = "Mozilla/5.0 (<script>alert(1)</script>; Linux) Firefox/1.0";
        assert_eq!(described(planted).as_deref(), Some("Firefox on Linux"));
        // A name past the scanned prefix is not read.
        let long = format!("{}Firefox/1.0", "x".repeat(MAX_SCANNED));
        assert_eq!(described(&long), None);
        let bytes = b"\xff\xfe Firefox/1.0 (Windows)";
        assert_eq!(describe(bytes).as_deref(), Some("Firefox on Windows"));
    }

    #[test]
    fn a_device_reads_back_from_its_stored_form() {
        let device = Device {
            description: Some("Firefox on Linux".into()),
            address: Some("203.0.113.7".into()),
        };
        let value = device.to_value().expect("stored");
        assert_eq!(Device::from_value(&value), device);
        assert_eq!(Device::default().to_value(), None);
        for odd in [json!(1), json!("x"), json!({"device": 3}), json!({})] {
            assert!(Device::from_value(&odd).is_empty(), "{odd}");
        }
        let long = Device::from_value(&json!({"device": "é".repeat(100)}));
        let cut = long.description.expect("kept");
        assert!(cut.len() <= MAX_LEN && cut.chars().all(|c| c == 'é'));
    }
}
