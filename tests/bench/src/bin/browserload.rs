//! A browser-like load client for `tests/bench/loadbench.sh` (`LB_CLIENT=browser`).
//!
//! wrk replays the same cookies on every request; a browser sends back the value it was last
//! given, and a read+write route gives a new one on every response. Here each connection is one
//! browser: it sends `GET /` with its cookie jar and updates the jar from every response's
//! `Set-Cookie` headers (`Max-Age=0` removes a cookie). One thread, HTTP/1.1 keep-alive.
//!
//! ```text
//! browserload --port P --pid SERVER_PID [--conns 32] [--warmup 1] [--seconds 10]
//!             [--cookies FILE] [--trace N]
//! ```
//!
//! - `--cookies FILE`: one `name=value` per line (`collect_cookies` of bench_cookies.sh); browser
//!   `i` starts with line `i mod lines`. Without it, each browser first calls `GET /init`.
//! - `--trace N`: browser 0's first N `Cookie` headers go to stderr.
//!
//! After the warm-up, it measures for `--seconds` and prints one line:
//! `RESULT rps= requests= errors= io_errors= p99_ms= server_cpu_us_per_req= server_cpu_pct=
//! client_cpu_us_per_req= client_cpu_pct= cookie_changes=`. CPU is utime + stime from
//! `/proc/<pid>/stat` (all the server's threads) and `/proc/self/stat`, read around the window;
//! `cookie_changes` counts the measured responses that changed a cookie the browser holds.
//! Loopback only; the run ends after warm-up + seconds.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    rc::Rc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Args {
    port: u16,
    pid: u32,
    conns: usize,
    warmup: f64,
    seconds: f64,
    cookies: Option<String>,
    trace: usize,
}

fn usage(why: &str) -> ! {
    eprintln!("browserload: {why}\nusage: browserload --port P --pid SERVER_PID [--conns 32] [--warmup 1] [--seconds 10] [--cookies FILE] [--trace N]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut map = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix("--") else {
            usage(&format!("unexpected argument {arg:?}"))
        };
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("--{name} needs a value")));
        map.insert(name.to_owned(), value);
    }
    fn num<T: std::str::FromStr>(
        map: &HashMap<String, String>,
        name: &str,
        default: Option<T>,
    ) -> T {
        match map.get(name) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| usage(&format!("--{name}: not a number: {v:?}"))),
            None => default.unwrap_or_else(|| usage(&format!("--{name} is required"))),
        }
    }
    let args = Args {
        port: num(&map, "port", None),
        pid: num(&map, "pid", None),
        conns: num(&map, "conns", Some(32)),
        warmup: num(&map, "warmup", Some(1.0)),
        seconds: num(&map, "seconds", Some(10.0)),
        cookies: map.get("cookies").cloned(),
        trace: num(&map, "trace", Some(0)),
    };
    if args.conns == 0 || !(args.seconds > 0.0 && args.seconds <= 3600.0) || args.warmup < 0.0 {
        usage("needs --conns > 0, 0 < --seconds <= 3600 and --warmup >= 0");
    }
    args
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| std::io::Error::other("malformed stat"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are the 12th and 13th after the name.
    let field = |i: usize| -> std::io::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed stat"))
    };
    Ok(field(11)? + field(12)?)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What all browsers add to.
#[derive(Default)]
struct Shared {
    stop: Cell<bool>,
    measuring: Cell<bool>,
    requests: Cell<u64>,
    errors: Cell<u64>,
    io_errors: Cell<u64>,
    cookie_changes: Cell<u64>,
    /// Microseconds per request, measured window only.
    latencies: RefCell<Vec<u32>>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// A browser's cookies for the one host, in the order first set.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    /// Applies one `Set-Cookie` value; true if it changed the jar.
    fn apply(&mut self, header: &[u8]) -> bool {
        let Ok(header) = std::str::from_utf8(header) else {
            return false;
        };
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return false;
        };
        let (name, value) = (name.trim(), value.trim());
        let removal = parts.any(|attr| {
            let attr = attr.trim();
            attr.len() > 8
                && attr[..8].eq_ignore_ascii_case("max-age=")
                && attr[8..].parse::<i64>().is_ok_and(|secs| secs <= 0)
        });
        let at = self.0.iter().position(|(n, _)| n == name);
        match (at, removal) {
            (Some(i), true) => {
                self.0.remove(i);
                true
            }
            (None, true) => false,
            (Some(i), false) if self.0[i].1 == value => false,
            (Some(i), false) => {
                self.0[i].1.clear();
                self.0[i].1.push_str(value);
                true
            }
            (None, false) => {
                self.0.push((name.to_owned(), value.to_owned()));
                true
            }
        }
    }

    /// The `Cookie` header's value.
    fn header(&self, out: &mut Vec<u8>) {
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"; ");
            }
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
        }
    }
}

/// One response's outcome.
struct Reply {
    status: u16,
    close: bool,
    changed: bool,
}

/// One kept-alive connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl Conn {
    async fn open(port: u16) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 8192],
            filled: 0,
        })
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        Ok(())
    }

    /// Sends `request`, reads the response and applies its cookies to `jar`.
    async fn exchange(&mut self, request: &[u8], jar: &mut Jar) -> std::io::Result<Reply> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        self.stream.write_all(request).await?;
        let (head, length, reply) = loop {
            self.fill().await?;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head) = response
                .parse(&self.buf[..self.filled])
                .map_err(|_| bad("malformed response"))?
            else {
                continue;
            };
            let mut reply = Reply {
                status: response.code.unwrap_or(0),
                close: response.version == Some(0),
                changed: false,
            };
            let mut length = 0usize;
            for h in response.headers.iter() {
                if h.name.eq_ignore_ascii_case("set-cookie") {
                    reply.changed |= jar.apply(h.value);
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| bad("content-length"))?;
                } else if h.name.eq_ignore_ascii_case("connection") {
                    reply.close = h.value.eq_ignore_ascii_case(b"close");
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(bad("chunked responses are not expected"));
                }
            }
            break (head, length, reply);
        };
        let end = head + length;
        while self.filled < end {
            self.fill().await?;
        }
        // No pipelining: nothing follows, but keep whatever did.
        self.buf.copy_within(end..self.filled, 0);
        self.filled -= end;
        Ok(reply)
    }
}

/// One browser: requests `GET /` until told to stop, following `Set-Cookie`.
async fn browser(id: usize, port: u16, mut jar: Jar, init: bool, trace: usize, shared: Rc<Shared>) {
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let mut request = Vec::with_capacity(512);
    let mut conn: Option<Conn> = None;
    let (mut traced, mut path) = (0, if init { "/init" } else { "/" });
    while !shared.stop.get() {
        if conn.is_none() {
            match Conn::open(port).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    bump(&shared.io_errors);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        request.clear();
        request.extend_from_slice(b"GET ");
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\n");
        request.extend_from_slice(host.as_bytes());
        if !jar.0.is_empty() {
            request.extend_from_slice(b"Cookie: ");
            jar.header(&mut request);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        if id == 0 && traced < trace {
            traced += 1;
            let line = request
                .split(|b| *b == b'\n')
                .find(|l| l.starts_with(b"Cookie: "))
                .unwrap_or(b"(no cookie)");
            eprintln!("{path} {}", String::from_utf8_lossy(line).trim_end());
        }
        let began = Instant::now();
        let c = conn.as_mut().expect("opened above");
        match c.exchange(&request, &mut jar).await {
            Ok(reply) => {
                if path == "/init" {
                    path = "/";
                    continue;
                }
                bump(&shared.requests);
                if !(200..300).contains(&reply.status) {
                    bump(&shared.errors);
                }
                if shared.measuring.get() {
                    if reply.changed {
                        bump(&shared.cookie_changes);
                    }
                    let micros = began.elapsed().as_micros().min(u32::MAX as u128) as u32;
                    shared.latencies.borrow_mut().push(micros);
                }
                if reply.close {
                    conn = None;
                }
            }
            Err(_) => {
                bump(&shared.io_errors);
                conn = None;
            }
        }
    }
}

/// `browser i` starts with line `i mod lines` of the file.
fn starting_jars(args: &Args) -> std::io::Result<Vec<Jar>> {
    let Some(path) = &args.cookies else {
        return Ok((0..args.conns).map(|_| Jar::default()).collect());
    };
    let lines: Vec<String> = std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(std::io::Error::other(format!("{path}: no cookies")));
    }
    Ok((0..args.conns)
        .map(|i| {
            let mut jar = Jar::default();
            jar.apply(lines[i % lines.len()].as_bytes());
            jar
        })
        .collect())
}

async fn run(args: Args) -> std::io::Result<()> {
    let shared = Rc::new(Shared::default());
    let init = args.cookies.is_none();
    for (id, jar) in starting_jars(&args)?.into_iter().enumerate() {
        tokio::task::spawn_local(browser(
            id,
            args.port,
            jar,
            init,
            args.trace,
            shared.clone(),
        ));
    }
    let (server, hz) = (args.pid.to_string(), clock_ticks_per_second());
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;

    let snapshot = || -> std::io::Result<_> {
        Ok((
            Instant::now(),
            shared.requests.get(),
            shared.errors.get(),
            shared.io_errors.get(),
            cpu_ticks(&server)?,
            cpu_ticks("self")?,
        ))
    };
    let (t0, n0, e0, io0, s0, c0) = snapshot()?;
    shared.measuring.set(true);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let (t1, n1, e1, io1, s1, c1) = snapshot()?;
    shared.measuring.set(false);
    shared.stop.set(true);

    let secs = (t1 - t0).as_secs_f64();
    let n = (n1 - n0).max(1) as f64;
    let micros = |ticks: u64| ticks as f64 / hz * 1e6;
    let mut latencies = shared.latencies.take();
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(0);
    println!(
        "RESULT rps={:.1} requests={} errors={} io_errors={} p99_ms={:.3} \
         server_cpu_us_per_req={:.2} server_cpu_pct={:.1} client_cpu_us_per_req={:.2} \
         client_cpu_pct={:.1} cookie_changes={}",
        (n1 - n0) as f64 / secs,
        n1 - n0,
        e1 - e0,
        io1 - io0,
        f64::from(p99) / 1e3,
        micros(s1 - s0) / n,
        micros(s1 - s0) / 1e4 / secs,
        micros(c1 - c0) / n,
        micros(c1 - c0) / 1e4 / secs,
        shared.cookie_changes.get(),
    );
    Ok(())
}

fn main() {
    let args = parse_args();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|rt| rt.block_on(tokio::task::LocalSet::new().run_until(run(args))));
    if let Err(err) = result {
        eprintln!("browserload: {err}");
        std::process::exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::Jar;

    fn header(jar: &Jar) -> String {
        let mut out = Vec::new();
        jar.header(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn jar_follows_set_cookie() {
        let mut jar = Jar::default();
        assert!(jar.apply(b"session=a; Path=/; HttpOnly"));
        assert!(jar.apply(b"other=x"));
        assert_eq!(header(&jar), "session=a; other=x");
        assert!(!jar.apply(b"session=a; Path=/"));
        assert!(jar.apply(b"session=b; Max-Age=3600; Path=/"));
        assert_eq!(header(&jar), "session=b; other=x");
        assert!(jar.apply(b"session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
        assert_eq!(header(&jar), "other=x");
        assert!(!jar.apply(b"gone=; max-age=0"));
        assert!(!jar.apply(b"no pair here"));
    }
}
