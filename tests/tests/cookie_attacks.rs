//! Hostile cookies: every single-bit change of a valid cookie, in both cookie modes, is an
//! anonymous request: no 5xx, no panic, no data.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_typed_session::{CookieSecurity, CookieStore, Key, SessionMiddleware};
use actix_typed_session_tests::{client, TestClock};
use actix_web::{http::StatusCode, test::TestRequest};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde_json::json;

fn middleware(security: CookieSecurity) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[42u8; 64][..]))
        .backend("cookie", CookieStore::new(security))
        .build()
        .unwrap()
}

/// Flips each bit of the decoded cookie (sealed: nonce, ciphertext, tag; signed: tag and
/// payload) and each bit of the raw text that still makes a valid header, and asks for the data.
#[actix_web::test]
async fn every_single_bit_flip_is_rejected_as_anonymous() {
    for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
        let c = client(middleware(security)).await;
        c.set("session", "role", json!("admin")).await;
        let valid = c.cookie("session").unwrap();

        let mut variants = Vec::new();
        match security {
            CookieSecurity::Sealed => {
                let raw = URL_SAFE_NO_PAD.decode(&valid).unwrap();
                for bit in 0..raw.len() * 8 {
                    let mut flipped = raw.clone();
                    flipped[bit / 8] ^= 1 << (bit % 8);
                    variants.push(URL_SAFE_NO_PAD.encode(flipped));
                }
            }
            _ => {
                let (tag, payload) = valid.split_once('.').unwrap();
                for part in [0, 1] {
                    let raw = URL_SAFE_NO_PAD.decode([tag, payload][part]).unwrap();
                    for bit in 0..raw.len() * 8 {
                        let mut flipped = raw.clone();
                        flipped[bit / 8] ^= 1 << (bit % 8);
                        let encoded = URL_SAFE_NO_PAD.encode(flipped);
                        variants.push(if part == 0 {
                            format!("{encoded}.{payload}")
                        } else {
                            format!("{tag}.{encoded}")
                        });
                    }
                }
            }
        }
        let text = valid.as_bytes();
        for bit in 0..text.len() * 8 {
            let mut flipped = text.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let visible = flipped
                .iter()
                .all(|b| (0x21..0x7f).contains(b) && *b != b';' && *b != b',');
            if visible {
                variants.push(String::from_utf8(flipped).unwrap());
            }
        }
        // A sealed `role=admin` session decodes to 60 bytes (480 flips: version, epoch, nonce,
        // ciphertext, tag) and is 80 characters of text (about 510 flips that stay a valid
        // header).
        assert!(
            variants.len() > 800,
            "{security:?}: only {} variants",
            variants.len()
        );

        for variant in &variants {
            assert_ne!(variant, &valid);
            let reply = c
                .send_raw(
                    TestRequest::get()
                        .uri("/session/get/role")
                        .insert_header(("cookie", format!("__Host-session={variant}"))),
                )
                .await;
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{security:?}: a flipped cookie was accepted or failed: {variant}"
            );
        }
        // The original still works.
        assert_eq!(c.read("session", "role").await, Some(json!("admin")));
    }
}

#[actix_web::test]
async fn short_ragged_and_multibyte_values_are_anonymous() {
    for security in [CookieSecurity::Sealed, CookieSecurity::Signed] {
        let c = client(middleware(security)).await;
        let inputs: Vec<String> = vec![
            String::new(),
            "A".into(),
            "AAAA".into(),
            "A=".into(),
            "====".into(),
            ".".into(),
            "..".into(),
            "a.b".into(),
            "AAAA.".into(),
            ".AAAA".into(),
            "A".repeat(27),
            "A".repeat(28),
            "A".repeat(4000),
            "héllo".into(),
            "😀😀😀😀".into(),
            "+/+/+/+/+/".into(),
            "%00%00".into(),
        ];
        for input in &inputs {
            let reply = c
                .send_raw(
                    TestRequest::get()
                        .uri("/session/entries")
                        .insert_header(("cookie", format!("__Host-session={input}"))),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{security:?} {input:?}");
            assert_eq!(reply.json(), json!({}), "{security:?} {input:?}");
        }
    }
}

#[actix_web::test]
async fn a_cookie_from_another_key_is_anonymous() {
    let ours = client(middleware(CookieSecurity::Sealed)).await;
    let theirs = client(
        SessionMiddleware::builder(Key::from(&[43u8; 64][..]))
            .backend("cookie", CookieStore::default())
            .build()
            .unwrap(),
    )
    .await;
    theirs.set("session", "role", json!("admin")).await;
    ours.set_cookie("session", &theirs.cookie("session").unwrap());
    assert_eq!(ours.read("session", "role").await, None);
}

/// A sealed middleware on `clock` whose sessions outlive a few hours.
fn on_clock(clock: &TestClock, key: u8, previous: &[u8]) -> SessionMiddleware {
    SessionMiddleware::builder(Key::from(&[key; 64][..]))
        .previous_keys(previous.iter().map(|n| Key::from(&[*n; 64][..])))
        .backend("cookie", CookieStore::default())
        .clock(clock.clone())
        .idle_timeout(Duration::from_secs(3 * 3600))
        .absolute_timeout(Duration::from_secs(8 * 3600))
        .build()
        .unwrap()
}

/// The epoch a sealed value names: its version byte (2), then the epoch, big-endian.
fn epoch_of_value(value: &str) -> u32 {
    let raw = URL_SAFE_NO_PAD.decode(value).unwrap();
    assert_eq!(raw[0], 2, "version byte");
    u32::from_be_bytes(raw[1..5].try_into().unwrap())
}

fn hours_since_unix_epoch(t: SystemTime) -> u32 {
    (t.duration_since(UNIX_EPOCH).unwrap().as_secs() / 3600) as u32
}

#[actix_web::test]
async fn sealing_moves_to_each_new_hours_key_and_cookies_of_earlier_hours_still_open() {
    let clock = TestClock::default();
    let c = client(on_clock(&clock, 42, &[])).await;
    c.set("session", "user", json!("ann")).await;
    let first = c.cookie("session").unwrap();
    let before = hours_since_unix_epoch(SystemTime::now());
    let e0 = epoch_of_value(&first);
    assert!((before..=before + 1).contains(&e0), "{e0} is not this hour");

    // An hour later the cookie of the previous epoch opens; its idle refresh seals it anew, in
    // the new epoch, with the new epoch's key.
    clock.advance(Duration::from_secs(3600));
    let reply = c.get("/session/get/user").await;
    assert_eq!(reply.json(), json!("ann"));
    let second = reply
        .cookie("session")
        .expect("refreshed")
        .value()
        .to_owned();
    assert!(epoch_of_value(&second) > e0);
    assert_ne!(second, first);
    // The first cookie still opens while its session lives, under a rotated key too.
    c.set_cookie("session", &first);
    assert_eq!(c.read("session", "user").await, Some(json!("ann")));
    let rotated = client(on_clock(&clock, 7, &[42])).await;
    rotated.set_cookie("session", &first);
    assert_eq!(rotated.read("session", "user").await, Some(json!("ann")));

    // A cookie sealed two hours ahead (beyond the five minutes of clock skew allowed) does not
    // open on a server at the real time.
    clock.advance(Duration::from_secs(3600));
    c.set("session", "user", json!("bob")).await;
    let ahead = c.cookie("session").unwrap();
    assert!(epoch_of_value(&ahead) >= e0 + 2);
    let now = client(on_clock(&TestClock::default(), 42, &[])).await;
    now.set_cookie("session", &ahead);
    assert_eq!(now.read("session", "user").await, None);
}
