//! Integers written as ASCII decimal without `fmt` (on the hot path: `Max-Age`, cookie dates,
//! cookie payload times, and the lengths and numbers of Redis commands).

/// "00", "01", …, "99": two digits per division.
const PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// `n` in decimal, written at the end of `buf`; returns the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_those_of_display() {
        let mut buf = [0u8; 20];
        let mut check = |n: u64| assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        (0..=100_000).for_each(&mut check);
        for power in 0..=19 {
            let p = 10u64.pow(power);
            [p - 1, p, p + 1, p.saturating_mul(3).saturating_add(7)]
                .into_iter()
                .for_each(&mut check);
        }
        [1_700_000_000_123, u64::MAX - 1, u64::MAX]
            .into_iter()
            .for_each(&mut check);
    }
}
