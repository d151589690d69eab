//! Integers written as ASCII decimal without `fmt` (on the hot path: `Max-Age`, cookie dates,
//! and the lengths and numbers of Redis commands).

/// `n` in decimal, written at the end of `buf`; returns the digits.
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_those_of_display() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 99, 100, 4096, 1_700_000_000_123, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
