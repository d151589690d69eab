//! Entry points for the fuzz targets in `session/fuzz` (hidden; not a public API).

use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use serde_json::{Map, Value};

use crate::{
    config::{CookieLifetime, Spec},
    key::KeyRing,
    session::{Origin, State},
    store::Backend,
    CookieSecurity, CookieStore, Key, Session,
};

/// The values the cookie-header lookup finds for `name` in one `Cookie` header.
pub fn cookie_values(header: &[u8], name: &str) -> Vec<String> {
    let Ok(value) = HeaderValue::from_bytes(header) else {
        return Vec::new();
    };
    crate::cookie_header::cookie_values(&[value], name)
        .iter()
        .map(|v| String::from_utf8(v.to_vec()).expect("values found are ASCII"))
        .collect()
}

/// The cookie backend's sealing and opening, with a fixed key.
#[derive(Debug)]
pub struct CookieCodec {
    store: CookieStore,
    keys: KeyRing,
}

impl CookieCodec {
    /// A codec for `security` with a key made of `seed` repeated.
    pub fn new(security: CookieSecurity, seed: u8) -> Self {
        Self {
            store: CookieStore::new(security),
            keys: KeyRing::new(&Key::from(&[seed; 64][..]), &[]),
        }
    }

    /// Opens a cookie value: its data if it is authentic and well-formed.
    pub fn open(&self, cookie_name: &str, value: &str) -> Option<Map<String, Value>> {
        self.store
            .open(&self.keys, cookie_name, value)
            .ok()
            .map(|o| Map::clone(&o.data))
    }

    /// Seals `data` as the cookie backend would.
    pub fn seal(&self, cookie_name: &str, data: &Map<String, Value>) -> String {
        let now = std::time::SystemTime::now();
        let mut plain = Vec::new();
        CookieStore::payload(data, now, now, None, None)
            .write_to(&mut plain)
            .expect("a JSON map serializes");
        self.store.seal(&self.keys, cookie_name, plain)
    }
}

/// Parses a decrypted cookie payload (either form) and, when it parses, checks that its compact
/// form reads back the same; `Err` says how it did not.
pub fn payload_round_trip(plaintext: &[u8]) -> Result<(), String> {
    crate::store::payload_round_trip(plaintext)
}

/// A session holding `data`, attached to no request (for the typed decoding target).
pub fn detached_session(data: Map<String, Value>) -> Session {
    Session::new(Arc::new(detached_spec()), State::new(Origin::New, data))
}

/// The settings of [`detached_session`]'s session (a cookie session called `fuzz`).
pub(crate) fn detached_spec() -> Spec {
    Spec {
        name: "fuzz".into(),
        cookie_name: "fuzz".into(),
        backend_name: "cookie".into(),
        backend: Backend::from(CookieStore::default()),
        lifetime: CookieLifetime::BrowserSession,
        cookie_attributes: "; HttpOnly; SameSite=Lax; Secure; Path=/".into(),
        cookie_aad: crate::store::cookie_aad("fuzz").into(),
        clock: Arc::new(crate::SystemClock),
        absolute: std::time::Duration::from_secs(3600),
        failure_status: actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        labels: crate::telemetry::labels("fuzz", "cookie"),
    }
}
