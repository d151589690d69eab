//! Hostile cookies: every single-bit change of a valid cookie, in both cookie modes, is an
//! anonymous request: no 5xx, no panic, no data.

use actix_typed_session::{CookieSecurity, CookieStore, Key, SessionMiddleware};
use actix_typed_session_tests::client;
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
        // A sealed `role=admin` session decodes to 55 bytes (440 flips) and is 74 characters of
        // text (about 470 flips that stay a valid header).
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
                        .insert_header(("cookie", format!("session={variant}"))),
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
                        .insert_header(("cookie", format!("session={input}"))),
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
