//! Unpadded base64url (RFC 4648 §5), the alphabet of cookie values and session ids.
//!
//! Decoding is strict: no padding, no characters outside the alphabet, no length that no input
//! encodes to, and no stray bits in the last character (so each byte string has exactly one
//! encoding, and a changed character never decodes to the same bytes).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Each byte's 6-bit value, or `INVALID`.
const INVALID: u8 = 0xFF;
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The length of the encoding of `len` bytes.
pub(crate) const fn encoded_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

/// The length of the bytes an encoding of `len` characters decodes to, if some input encodes to
/// that length.
pub(crate) const fn decoded_len(len: usize) -> Option<usize> {
    match len % 4 {
        1 => None,
        rest => Some(len / 4 * 3 + rest.saturating_sub(1)),
    }
}

/// Appends the encoding of `input` to `out`.
pub(crate) fn encode_into(input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + encoded_len(input.len()), 0);
    let dst = &mut out[start..];
    let mut chunks = input.chunks_exact(3);
    let mut outs = dst.chunks_exact_mut(4);
    for (chunk, dst) in (&mut chunks).zip(&mut outs) {
        let n = u32::from(chunk[0]) << 16 | u32::from(chunk[1]) << 8 | u32::from(chunk[2]);
        dst[0] = ALPHABET[(n >> 18) as usize & 63];
        dst[1] = ALPHABET[(n >> 12) as usize & 63];
        dst[2] = ALPHABET[(n >> 6) as usize & 63];
        dst[3] = ALPHABET[n as usize & 63];
    }
    let dst = outs.into_remainder();
    match *chunks.remainder() {
        [a] => {
            dst[0] = ALPHABET[usize::from(a >> 2)];
            dst[1] = ALPHABET[usize::from(a & 3) << 4];
        }
        [a, b] => {
            let n = u16::from(a) << 8 | u16::from(b);
            dst[0] = ALPHABET[usize::from(n >> 10)];
            dst[1] = ALPHABET[usize::from(n >> 4) & 63];
            dst[2] = ALPHABET[usize::from(n & 15) << 2];
        }
        _ => {}
    }
}

/// The encoding of `input`.
pub(crate) fn encode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(encoded_len(input.len()));
    encode_into(input, &mut out);
    String::from_utf8(out).expect("base64url is ASCII")
}

/// Decodes `input` into `out`, which must be exactly [`decoded_len`] long. `None` for input
/// that is not strict unpadded base64url or does not fit.
pub(crate) fn decode_to_slice(input: &[u8], out: &mut [u8]) -> Option<()> {
    if decoded_len(input.len()) != Some(out.len()) {
        return None;
    }
    let mut chunks = input.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(3);
    // Invalid characters map to 0xFF: OR-ing the looked-up values keeps the high bit.
    let mut bad = 0u8;
    for (chunk, dst) in (&mut chunks).zip(&mut outs) {
        let a = DECODE[usize::from(chunk[0])];
        let b = DECODE[usize::from(chunk[1])];
        let c = DECODE[usize::from(chunk[2])];
        let d = DECODE[usize::from(chunk[3])];
        bad |= a | b | c | d;
        let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        dst[0] = (n >> 16) as u8;
        dst[1] = (n >> 8) as u8;
        dst[2] = n as u8;
    }
    let rest = chunks.remainder();
    let dst = outs.into_remainder();
    match *rest {
        [] => {}
        [a, b] => {
            let [a, b] = [a, b].map(|x| DECODE[usize::from(x)]);
            bad |= a | b | if b & 15 == 0 { 0 } else { INVALID };
            dst[0] = a << 2 | b >> 4;
        }
        [a, b, c] => {
            let [a, b, c] = [a, b, c].map(|x| DECODE[usize::from(x)]);
            bad |= a | b | c | if c & 3 == 0 { 0 } else { INVALID };
            dst[0] = a << 2 | b >> 4;
            dst[1] = b << 4 | c >> 2;
        }
        _ => unreachable!("decoded_len refuses a remainder of one character"),
    }
    (bad & 0xC0 == 0).then_some(())
}

/// Decodes `input`; `None` for input that is not strict unpadded base64url.
#[cfg(any(feature = "cookie", test))]
pub(crate) fn decode(input: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0; decoded_len(input.len())?];
    decode_to_slice(input, &mut out)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

    use super::*;

    /// A deterministic byte stream (no randomness needed to cover every value).
    fn bytes(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn encodes_as_the_reference_implementation_and_round_trips() {
        for len in 0..200 {
            for seed in 0..8 {
                let input = bytes(len, seed);
                let ours = encode(&input);
                assert_eq!(ours, URL_SAFE_NO_PAD.encode(&input), "len {len}");
                assert_eq!(ours.len(), encoded_len(len));
                assert_eq!(decode(ours.as_bytes()).as_deref(), Some(&input[..]));
            }
        }
        assert_eq!(encode(b"\xfb\xff\xfe"), "-__-");
        assert_eq!(encode(b""), "");
    }

    #[test]
    fn accepts_and_refuses_exactly_what_the_reference_implementation_does() {
        // Every string of up to 3 characters over a set of good, bad and boundary characters,
        // and every single-character change of longer encodings.
        let chars: Vec<u8> = b"AQgw_-9azZ+/=. \x00\xff".to_vec();
        let mut inputs: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let mut next = Vec::new();
            for prefix in inputs.iter().filter(|p| p.len() == len - 1) {
                for &c in &chars {
                    let mut s = prefix.clone();
                    s.push(c);
                    next.push(s);
                }
            }
            inputs.extend(next);
        }
        for len in [4, 5, 6, 31, 32, 33] {
            let good = encode(&bytes(len, 7)).into_bytes();
            for at in 0..good.len() {
                for &c in &chars {
                    let mut s = good.clone();
                    s[at] = c;
                    inputs.push(s);
                }
            }
        }
        for input in inputs {
            assert_eq!(
                decode(&input),
                URL_SAFE_NO_PAD.decode(&input).ok(),
                "input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn stray_bits_in_the_last_character_are_refused() {
        // "AQ" is 0x01; "AR" carries a bit past the byte's end.
        assert_eq!(decode(b"AQ"), Some(vec![1]));
        assert_eq!(decode(b"AR"), None);
        assert_eq!(decode(b"AAE"), Some(vec![0, 1]));
        assert_eq!(decode(b"AAF"), None);
        assert_eq!(decode(b"A"), None);
        assert_eq!(decode(b"AA=="), None);
    }

    #[test]
    fn decoding_into_a_slice_of_the_wrong_length_fails() {
        let mut out = [0u8; 2];
        assert!(decode_to_slice(b"AAAA", &mut out).is_none());
        let mut out = [0u8; 3];
        assert!(decode_to_slice(b"AAAA", &mut out).is_some());
    }
}
