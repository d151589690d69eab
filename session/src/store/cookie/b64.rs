//! Unpadded base64url encoding of sealed cookie values, two characters per table lookup.
//!
//! Every write of a sealed cookie encodes its ~60–3,000 bytes; the `base64` crate's general
//! engine spends about six instructions per input byte on it, a table of all 4,096 pairs of
//! characters about two. The output is exactly the `base64` crate's `URL_SAFE_NO_PAD` encoding
//! (tested against it); decoding stays with that crate.

/// The base64url alphabet.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The two characters of every 12-bit group.
static PAIRS: [[u8; 2]; 4096] = pairs();

const fn pairs() -> [[u8; 2]; 4096] {
    let mut table = [[0u8; 2]; 4096];
    let mut i = 0;
    while i < 4096 {
        table[i] = [ALPHABET[i >> 6], ALPHABET[i & 63]];
        i += 1;
    }
    table
}

/// The length of `len` bytes once encoded.
pub(crate) const fn encoded_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

/// Encodes `bytes` into `out`, which must be exactly [`encoded_len`] bytes long.
pub(crate) fn encode_into(bytes: &[u8], out: &mut [u8]) {
    assert_eq!(
        out.len(),
        encoded_len(bytes.len()),
        "output sized for the encoding"
    );
    let (groups, tail) = bytes.split_at(bytes.len() - bytes.len() % 3);
    let (whole, rest) = out.split_at_mut(groups.len() / 3 * 4);
    // Two groups at a time, read as one word while eight bytes are left to read.
    let (mut read, mut written) = (0, 0);
    while let Some(word) = groups.get(read..read + 8) {
        let n = u64::from_be_bytes(word.try_into().expect("eight bytes"));
        let pair = |shift: u32| PAIRS[(n >> shift) as usize & 0xFFF];
        let [a, b, c, d] = [pair(52), pair(40), pair(28), pair(16)];
        whole[written..written + 8]
            .copy_from_slice(&[a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1]]);
        read += 6;
        written += 8;
    }
    let (groups, whole) = (&groups[read..], &mut whole[written..]);
    for (group, chars) in groups.chunks_exact(3).zip(whole.chunks_exact_mut(4)) {
        let n = usize::from(group[0]) << 16 | usize::from(group[1]) << 8 | usize::from(group[2]);
        let (high, low) = (PAIRS[n >> 12], PAIRS[n & 0xFFF]);
        chars[0] = high[0];
        chars[1] = high[1];
        chars[2] = low[0];
        chars[3] = low[1];
    }
    match *tail {
        [] => {}
        [a] => {
            let pair = PAIRS[usize::from(a) << 4];
            rest.copy_from_slice(&pair);
        }
        [a, b] => {
            let n = usize::from(a) << 10 | usize::from(b) << 2;
            let pair = PAIRS[n >> 6];
            rest[..2].copy_from_slice(&pair);
            rest[2] = ALPHABET[n & 63];
        }
        _ => unreachable!("a tail is shorter than a group"),
    }
}

#[cfg(test)]
mod tests {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};

    use super::*;

    fn encode(bytes: &[u8]) -> String {
        let mut out = vec![0; encoded_len(bytes.len())];
        encode_into(bytes, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn encodes_as_the_base64_crate_does() {
        // Every length up to a few groups past a typical sealed cookie, with bytes that cover
        // every 6-bit value in every position.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            assert_eq!(
                encode(&bytes),
                URL_SAFE_NO_PAD.encode(&bytes),
                "{len} bytes"
            );
        }
        for byte in 0..=255u8 {
            for len in 1..=3 {
                let bytes = vec![byte; len];
                assert_eq!(encode(&bytes), URL_SAFE_NO_PAD.encode(&bytes));
            }
        }
    }

    #[test]
    #[should_panic(expected = "output sized for the encoding")]
    fn a_wrongly_sized_output_is_a_bug() {
        encode_into(b"abcd", &mut [0; 5]);
    }
}
