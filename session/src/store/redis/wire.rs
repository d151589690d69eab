//! RESP2, the Redis wire protocol: encoding commands and parsing replies.
//!
//! Only what the Redis store sends and receives: commands are arrays of bulk strings; replies are
//! the five RESP2 types, arrays nested to any depth a script returns (bounded, see [`MAX_DEPTH`]).
//! Bulk strings in a reply share the buffer the reply was read into (no copy per string).

use bytes::Bytes;

/// How deeply arrays may nest in a reply before it counts as malformed (the store's scripts
/// return at most two levels).
const MAX_DEPTH: usize = 16;
/// The longest bulk string accepted: Redis's own limit (`proto-max-bulk-len`, 512 MiB).
const MAX_BULK: usize = 512 * 1024 * 1024;
/// The longest status or error line accepted (Redis sends short ones).
const MAX_LINE: usize = 64 * 1024;

/// One reply from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A null bulk string or null array.
    Nil,
    /// A simple string (`+OK`).
    Status(String),
    /// An error reply (`-ERR …`): the command failed, the connection is fine.
    Error(String),
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
}

/// A reply that does not follow RESP2: the connection cannot be trusted any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from Redis: {0}")]
pub(crate) struct ProtocolError(&'static str);

impl ProtocolError {
    /// A reply arrived while no request was waiting for one.
    pub(crate) const UNASKED: Self = Self("a reply no request was waiting for");
    /// A reply that framing found whole but parsing did not (a bug, reported, never looped on).
    pub(crate) const UNPARSED: Self = Self("a reply that could be framed but not parsed");
}

/// A command being encoded: the count of arguments, then each as a bulk string.
///
/// The arguments are encoded into a body as they are added; [`write_to`](Self::write_to) puts the
/// `*<count>` header in front. A command can be written with other leading arguments
/// ([`write_with`](Self::write_with)), which lets a script call be sent as `EVALSHA` and, if
/// Redis lost the script, again as `EVAL` without encoding the arguments twice.
#[derive(Debug, Default)]
pub(crate) struct Command {
    body: Vec<u8>,
    args: usize,
}

impl Command {
    /// A command named `name` (its first argument).
    pub(crate) fn new(name: &str) -> Self {
        // Room for a typical command (a key and a few short arguments) without regrowing.
        let mut cmd = Self::with_capacity(128);
        cmd.arg(name);
        cmd
    }

    /// Arguments only (a script call's), with room for `capacity` bytes of them.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            body: Vec::with_capacity(capacity),
            args: 0,
        }
    }

    /// Appends one argument.
    pub(crate) fn arg(&mut self, bytes: impl AsRef<[u8]>) -> &mut Self {
        encode_bulk(&mut self.body, bytes.as_ref());
        self.args += 1;
        self
    }

    /// Appends one argument made of `first` followed by `second`.
    pub(crate) fn arg_pair(
        &mut self,
        first: impl AsRef<[u8]>,
        second: impl AsRef<[u8]>,
    ) -> &mut Self {
        let (first, second) = (first.as_ref(), second.as_ref());
        let len = first.len() + second.len();
        self.body.push(b'$');
        self.body
            .extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        self.body.extend_from_slice(b"\r\n");
        self.body.extend_from_slice(first);
        self.body.extend_from_slice(second);
        self.body.extend_from_slice(b"\r\n");
        self.args += 1;
        self
    }

    /// Appends an integer argument, in decimal.
    pub(crate) fn int(&mut self, n: u64) -> &mut Self {
        self.arg(itoa::Buffer::new().format(n).as_bytes())
    }

    /// Appends the whole command to `out`.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        self.write_with(&[], out);
    }

    /// Appends the command to `out` with `leading` arguments before its own.
    pub(crate) fn write_with(&self, leading: &[&[u8]], out: &mut Vec<u8>) {
        out.reserve(self.body.len() + 16 + leading.iter().map(|a| a.len() + 16).sum::<usize>());
        out.push(b'*');
        out.extend_from_slice(
            itoa::Buffer::new()
                .format(self.args + leading.len())
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        for arg in leading {
            encode_bulk(out, arg);
        }
        out.extend_from_slice(&self.body);
    }
}

fn encode_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(bytes.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Where the first reply in a buffer ends, as far as [`frame`] can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// The first reply takes this many bytes.
    Whole(usize),
    /// The buffer must hold at least this many bytes before the reply can be whole (a bulk
    /// string's announced end, or one more byte): framing again earlier is wasted work.
    Need(usize),
}

/// How many bytes at the start of `buf` the first reply takes. Nothing is allocated.
pub(crate) fn frame(buf: &[u8]) -> Result<Frame, ProtocolError> {
    let mut at = 0;
    let mut need = 0;
    Ok(match parse_at(buf, &mut at, 0, None, &mut need)? {
        Some(_) => Frame::Whole(at),
        None => Frame::Need(need.max(buf.len() + 1)),
    })
}

/// Parses one reply from the start of `buf`: `Ok(None)` when `buf` does not hold a whole reply
/// yet, otherwise the reply and how many bytes it took. Bulk strings are slices of `buf`.
pub(crate) fn parse(buf: &Bytes) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let mut at = 0;
    Ok(parse_at(buf, &mut at, 0, Some(buf), &mut 0)?.map(|reply| (reply, at)))
}

/// Parses the reply that starts at `*at` in `buf`, moving `*at` past it. When `buf` does not
/// hold all of it yet: `Err` of the buffer length it needs at least (as [`Frame::Need`]), and
/// `*at` unchanged.
pub(crate) fn parse_from(
    buf: &Bytes,
    at: &mut usize,
) -> Result<Result<Reply, usize>, ProtocolError> {
    let mut next = *at;
    let mut need = 0;
    Ok(match parse_at(buf, &mut next, 0, Some(buf), &mut need)? {
        Some(reply) => {
            *at = next;
            Ok(reply)
        }
        None => Err(need.max(buf.len() + 1)),
    })
}

/// Parses the reply at `at`; without `source` only finds where it ends (the reply returned is
/// then a placeholder). When the reply is not whole yet, `need` is raised to the buffer length
/// it needs at least.
fn parse_at(
    buf: &[u8],
    at: &mut usize,
    depth: usize,
    source: Option<&Bytes>,
    need: &mut usize,
) -> Result<Option<Reply>, ProtocolError> {
    let Some((&kind, rest)) = buf[*at..].split_first() else {
        return Ok(None);
    };
    // Integer lines (`:`, `$`, `*`) are at most 20 characters and CRLF: a short scan finds
    // their end faster than a vectorised search would start.
    const INT_LINE: usize = 22;
    let end = if matches!(kind, b':' | b'$' | b'*') {
        match rest.iter().take(INT_LINE).position(|&b| b == b'\n') {
            Some(end) => end,
            None if rest.len() >= INT_LINE => return Err(ProtocolError("a malformed integer")),
            None => return Ok(None),
        }
    } else {
        match memchr::memchr(b'\n', rest) {
            Some(end) => end,
            None if rest.len() > MAX_LINE => return Err(ProtocolError("a line too long")),
            None => return Ok(None),
        }
    };
    if end == 0 || rest[end - 1] != b'\r' {
        return Err(ProtocolError("a line not ended by CRLF"));
    }
    let line = &rest[..end - 1];
    let after_line = *at + 1 + end + 1;
    let text = || {
        let text = std::str::from_utf8(line)
            .map_err(|_| ProtocolError("a status or error line that is not UTF-8"))?;
        Ok::<_, ProtocolError>(if source.is_some() {
            text.to_owned()
        } else {
            String::new()
        })
    };
    let reply = match kind {
        b'+' => Reply::Status(text()?),
        b'-' => Reply::Error(text()?),
        b':' => Reply::Int(integer(line)?),
        b'$' => {
            let len = integer(line)?;
            if len < 0 {
                Reply::Nil
            } else {
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= MAX_BULK)
                    .ok_or(ProtocolError("a bulk longer than Redis sends"))?;
                let end = after_line
                    .checked_add(len)
                    .filter(|end| end.checked_add(2).is_some())
                    .ok_or(ProtocolError("a bulk too long"))?;
                if buf.len() < end + 2 {
                    *need = (*need).max(end + 2);
                    return Ok(None);
                }
                if &buf[end..end + 2] != b"\r\n" {
                    return Err(ProtocolError("a bulk string not ended by CRLF"));
                }
                *at = end + 2;
                return Ok(Some(match source {
                    Some(source) => Reply::Bulk(source.slice(after_line..end)),
                    None => Reply::Nil,
                }));
            }
        }
        b'*' => {
            let len = integer(line)?;
            if len < 0 {
                Reply::Nil
            } else {
                if depth == MAX_DEPTH {
                    return Err(ProtocolError("arrays nested too deeply"));
                }
                *at = after_line;
                // Each element takes at least 3 bytes: never reserve more than the buffer holds.
                let len = usize::try_from(len).map_err(|_| ProtocolError("an array too long"))?;
                let mut items = match source {
                    Some(_) => Vec::with_capacity(len.min((buf.len() - *at) / 3)),
                    None => Vec::new(),
                };
                for _ in 0..len {
                    match parse_at(buf, at, depth + 1, source, need)? {
                        Some(item) if source.is_some() => items.push(item),
                        Some(_) => {}
                        None => return Ok(None),
                    }
                }
                return Ok(Some(Reply::Array(items)));
            }
        }
        _ => return Err(ProtocolError("an unknown reply type")),
    };
    *at = after_line;
    Ok(Some(reply))
}

fn integer(line: &[u8]) -> Result<i64, ProtocolError> {
    let malformed = ProtocolError("a malformed integer");
    let (negative, digits) = match line.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(malformed);
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(malformed);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or(malformed)?;
    }
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `buf`, checking that framing alone finds the same end.
    fn parse_all(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
        let parsed = parse(&Bytes::copy_from_slice(buf));
        match (&parsed, frame(buf)) {
            (Ok(Some((_, used))), Ok(Frame::Whole(framed))) => assert_eq!(*used, framed),
            (Ok(None), Ok(Frame::Need(need))) => assert!(need > buf.len()),
            (Err(a), Err(b)) => assert_eq!(*a, b),
            (parsed, framed) => panic!("parse {parsed:?} but frame {framed:?}"),
        }
        parsed
    }

    fn encoded(cmd: &Command) -> String {
        let mut out = Vec::new();
        cmd.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut cmd = Command::new("HGETALL");
        cmd.arg("session:ab");
        assert_eq!(
            encoded(&cmd),
            "*2\r\n$7\r\nHGETALL\r\n$10\r\nsession:ab\r\n"
        );
        let mut cmd = Command::new("SET");
        cmd.arg(b"k\r\n")
            .int(0)
            .int(18_446_744_073_709_551_615)
            .arg("");
        let mut pair = Command::new("X");
        pair.arg_pair("d:", "key").arg_pair("", "");
        assert_eq!(encoded(&pair), "*3\r\n$1\r\nX\r\n$5\r\nd:key\r\n$0\r\n\r\n");
        assert_eq!(
            encoded(&cmd),
            "*5\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n0\r\n$20\r\n18446744073709551615\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn leading_arguments_go_before_the_commands_own() {
        let mut args = Command::default();
        args.int(1).arg("key");
        let mut out = Vec::new();
        args.write_with(&[b"EVALSHA", b"abc"], &mut out);
        assert_eq!(
            out,
            b"*4\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n1\r\n$3\r\nkey\r\n"
        );
    }

    #[test]
    fn every_reply_type_parses_and_reports_its_length() {
        let cases: Vec<(&[u8], Reply)> = vec![
            (b"+OK\r\n", Reply::Status("OK".into())),
            (b"-ERR no\r\n", Reply::Error("ERR no".into())),
            (b":-42\r\n", Reply::Int(-42)),
            (
                b"$5\r\nab\r\nc\r\n",
                Reply::Bulk(Bytes::from_static(b"ab\r\nc")),
            ),
            (b"$0\r\n\r\n", Reply::Bulk(Bytes::new())),
            (b"$-1\r\n", Reply::Nil),
            (b"*-1\r\n", Reply::Nil),
            (b"*0\r\n", Reply::Array(Vec::new())),
            (
                b"*2\r\n*1\r\n:1\r\n$1\r\nx\r\n",
                Reply::Array(vec![
                    Reply::Array(vec![Reply::Int(1)]),
                    Reply::Bulk(Bytes::from_static(b"x")),
                ]),
            ),
        ];
        for (bytes, expected) in cases {
            let mut with_more = bytes.to_vec();
            with_more.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(
                parse_all(&with_more).unwrap(),
                Some((expected, bytes.len())),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn every_proper_prefix_of_a_reply_is_incomplete() {
        let whole: &[u8] = b"*3\r\n$3\r\nabc\r\n*2\r\n:7\r\n$-1\r\n+OK\r\n";
        for cut in 0..whole.len() {
            assert_eq!(parse_all(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_all(whole).unwrap().is_some());
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let bad: &[&[u8]] = &[
            b"?x\r\n",
            b"+OK\n",
            b":12a\r\n",
            b":\r\n",
            b":99999999999999999999\r\n",
            b"$3\r\nabcXY",
            b"$-\r\n",
            b"*1\r\n!\r\n",
            b"-\xff\r\n",
            // An integer line longer than any integer, not ended yet: malformed, not incomplete.
            b"$1234567890123456789012345",
        ];
        for bytes in bad {
            assert!(
                parse_all(bytes).is_err(),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        deep.extend_from_slice(b":1\r\n");
        assert!(parse_all(&deep).is_err());
        // A huge announced length is waited for, not allocated.
        assert_eq!(parse_all(b"*2147483647\r\n:1\r\n"), Ok(None));
        assert!(parse_all(b"$9223372036854775807\r\n").is_err());
        assert!(parse_all(format!("${}\r\n", MAX_BULK + 1).as_bytes()).is_err());
        assert_eq!(parse_all(format!("${MAX_BULK}\r\n").as_bytes()), Ok(None));
        assert!(parse_all(&[b'+'; MAX_LINE + 2]).is_err());
        // An incomplete bulk string tells how much it still needs.
        assert_eq!(frame(b"*2\r\n$5\r\nab"), Ok(Frame::Need(4 + 4 + 5 + 2)));
    }
}
