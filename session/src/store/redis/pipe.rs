//! A pipelined connection to Redis: many requests in flight on one socket, written in batches.
//!
//! Requests append their encoded command to a shared buffer and wait for their reply on a
//! oneshot channel. One task per connection (the driver) owns the socket: it writes everything
//! appended since its last write in one go, reads whatever Redis sent back, parses the replies
//! and hands them out in order (Redis answers the commands of one connection in the order they
//! were sent). Requests made while the driver is busy are simply batched into its next write.
//!
//! Requests are bounded by one timer per connection rather than one per request: the driver
//! watches the oldest request still waiting, and when it has waited longer than the timeout,
//! Redis is not answering this connection any more.
//!
//! When anything goes wrong (the connection cannot be opened, the socket fails, Redis sends
//! something that is not RESP, a request times out, the owner gives up on it) the connection is
//! closed: every request waiting on it fails at once with the cause, later requests fail without
//! touching the socket, and the store opens a new connection for the next operation.

use std::{
    collections::VecDeque,
    future::{poll_fn, Future},
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::time::{Instant, Sleep};

use ::redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::oneshot,
};

use bytes::BytesMut;

use super::wire::{frame, parse, parse_from, Command, Frame, ProtocolError, Reply};

/// Room kept free in the read buffer before each read.
const READ_BUFFER: usize = 16 * 1024;
/// Up to this much unparsed input, replies are parsed in one pass and an incomplete last one is
/// copied back to wait for the rest; beyond it, whole replies are framed first, so that a large
/// reply arriving in many reads is not parsed and copied again on each of them.
const ONE_PASS: usize = READ_BUFFER;
/// A buffer grown beyond this by one large request or reply is given back once it is empty.
const MAX_IDLE_BUFFER: usize = 1024 * 1024;

/// Why a connection is closed; every request that was waiting on it gets a copy.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum PipeError {
    #[error("cannot connect to Redis at {addr}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<io::Error>,
    },
    #[error("timed out connecting to Redis at {addr} (after {after:?})")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("Redis refused `{command}` when the connection was opened: {message}")]
    Handshake {
        command: &'static str,
        message: String,
    },
    #[error("the connection to Redis failed")]
    Io(#[source] Arc<io::Error>),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("Redis closed the connection")]
    Closed,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("the connection to Redis was closed: {0}")]
    Abandoned(&'static str),
    #[error("{0} connections are not supported by the Redis store")]
    Unsupported(&'static str),
}

impl From<io::Error> for PipeError {
    fn from(err: io::Error) -> Self {
        Self::Io(Arc::new(err))
    }
}

/// A request waiting for its reply, and when it was queued.
type Waiter = (oneshot::Sender<Result<Reply, PipeError>>, Instant);

#[derive(Default)]
struct Shared {
    /// Set once with `state.closed`; read without the lock to skip a closed connection.
    closed: AtomicBool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Encoded commands the driver has not taken yet.
    out: Vec<u8>,
    /// One entry per command sent or queued, in order.
    waiting: VecDeque<Waiter>,
    /// The driver's waker while it waits for commands to send.
    driver: Option<Waker>,
    closed: Option<PipeError>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the connection (the first cause wins) and fails every waiting request.
    fn close(&self, err: PipeError) {
        let (waiting, driver) = {
            let mut state = self.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(err.clone());
            self.closed.store(true, Ordering::Release);
            state.out = Vec::new();
            (std::mem::take(&mut state.waiting), state.driver.take())
        };
        for (waiter, _) in waiting {
            let _ = waiter.send(Err(err.clone()));
        }
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

/// A handle on one connection; clones share it. The connection closes when the last handle
/// goes, or on [`close`](Self::close).
#[derive(Clone)]
pub(crate) struct Pipe {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared
            .close(PipeError::Abandoned("no handle on it is left"));
    }
}

impl Pipe {
    /// Starts opening a connection to `info` on the current tokio runtime. Requests can be made
    /// at once: they are sent when the connection is ready. Opening it (connecting and the
    /// `AUTH` / `SELECT` handshake) may take up to `timeout`, and so may each request, counted
    /// from when it was made (its wait for the connection included).
    pub(crate) fn open(info: &ConnectionInfo, timeout: Duration) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(drive(DriverGuard(shared.clone()), info.clone(), timeout));
        Self {
            handle: Arc::new(Handle { shared }),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.handle.shared.closed.load(Ordering::Acquire)
    }

    /// Closes the connection, failing every request waiting on it.
    pub(crate) fn close(&self, why: &'static str) {
        self.handle.shared.close(PipeError::Abandoned(why));
    }

    /// Something that can close this connection later without keeping it open.
    pub(crate) fn closer(&self) -> Closer {
        Closer(Arc::downgrade(&self.handle.shared))
    }

    /// Sends `leading` arguments followed by `cmd`'s and waits for the reply. An error reply
    /// from Redis is a [`Reply::Error`], not an `Err`: the connection is fine.
    pub(crate) async fn send_with(
        &self,
        leading: &[&[u8]],
        cmd: &Command,
    ) -> Result<Reply, PipeError> {
        let (tx, rx) = oneshot::channel();
        let queued = Instant::now();
        let driver = {
            let mut state = self.handle.shared.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            cmd.write_with(leading, &mut state.out);
            state.waiting.push_back((tx, queued));
            state.driver.take()
        };
        if let Some(driver) = driver {
            driver.wake();
        }
        rx.await.unwrap_or(Err(PipeError::Closed))
    }
}

/// Closes a connection from afar, if it is still open (the store closes its connections on
/// every thread when it is dropped).
pub(crate) struct Closer(std::sync::Weak<Shared>);

impl Closer {
    pub(crate) fn close(&self, why: &'static str) {
        if let Some(shared) = self.0.upgrade() {
            shared.close(PipeError::Abandoned(why));
        }
    }

    /// Whether the connection is gone or closed (nothing left to close).
    pub(crate) fn is_done(&self) -> bool {
        self.0
            .upgrade()
            .is_none_or(|shared| shared.closed.load(Ordering::Acquire))
    }
}

/// Closes the connection when the driver ends, however it ends (its runtime may drop it).
struct DriverGuard(Arc<Shared>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        self.0
            .close(PipeError::Abandoned("the task driving it has ended"));
    }
}

async fn drive(guard: DriverGuard, info: ConnectionInfo, timeout: Duration) {
    let shared = &guard.0;
    let addr = describe(&info.addr);
    let err = match tokio::time::timeout(timeout, connect(&info, &addr)).await {
        Err(_) => PipeError::ConnectTimeout {
            addr,
            after: timeout,
        },
        Ok(Err(err)) => err,
        Ok(Ok(mut stream)) => run(&mut stream, shared, timeout).await,
    };
    if !matches!(err, PipeError::Abandoned(_)) {
        tracing::debug!(error = %err, "a Redis connection closed");
    }
    shared.close(err);
}

/// Where `addr` points, for error messages (never a password: that is not part of the address).
fn describe(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        ConnectionAddr::Unix(path) => path.display().to_string(),
        _ => "an address of an unsupported kind".to_owned(),
    }
}

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

async fn connect(info: &ConnectionInfo, addr: &str) -> Result<Stream, PipeError> {
    let failed = |source: io::Error| PipeError::Connect {
        addr: addr.to_owned(),
        source: Arc::new(source),
    };
    let mut stream = match &info.addr {
        ConnectionAddr::Tcp(host, port) => {
            let tcp = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(failed)?;
            // Batches are flushed by the driver: never hold a write back for Nagle.
            tcp.set_nodelay(true).map_err(failed)?;
            Stream::Tcp(tcp)
        }
        #[cfg(unix)]
        ConnectionAddr::Unix(path) => Stream::Unix(
            tokio::net::UnixStream::connect(path)
                .await
                .map_err(failed)?,
        ),
        ConnectionAddr::TcpTls { .. } => return Err(PipeError::Unsupported("TLS (`rediss://`)")),
        #[allow(unreachable_patterns)]
        _ => return Err(PipeError::Unsupported("this kind of")),
    };
    handshake(&mut stream, &info.redis).await?;
    Ok(stream)
}

/// `AUTH` and `SELECT` when the URL asks for them, answered before any request is sent: a
/// request must never run unauthenticated or on the wrong database.
async fn handshake(stream: &mut Stream, info: &RedisConnectionInfo) -> Result<(), PipeError> {
    let mut out = Vec::new();
    let mut sent = Vec::new();
    if let Some(password) = &info.password {
        let mut auth = Command::new("AUTH");
        if let Some(username) = &info.username {
            auth.arg(username);
        }
        auth.arg(password).write_to(&mut out);
        sent.push("AUTH");
    }
    if info.db != 0 {
        Command::new("SELECT")
            .arg(info.db.to_string())
            .write_to(&mut out);
        sent.push("SELECT");
    }
    if sent.is_empty() {
        return Ok(());
    }
    stream.write_all(&out).await?;
    let mut buf = BytesMut::new();
    for command in sent {
        let reply = loop {
            if let Frame::Whole(used) = frame(&buf)? {
                let whole = buf.split_to(used).freeze();
                break parse(&whole)?.ok_or(ProtocolError::UNPARSED)?.0;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(PipeError::Closed);
            }
        };
        if let Reply::Error(message) = reply {
            return Err(PipeError::Handshake { command, message });
        }
    }
    Ok(())
}

/// Moves commands out and replies in until the connection fails or is closed, or a request has
/// waited longer than `timeout`; returns why.
async fn run(stream: &mut Stream, shared: &Shared, timeout: Duration) -> PipeError {
    let mut write = Vec::new();
    let mut written = 0;
    let mut read = BytesMut::with_capacity(READ_BUFFER);
    let mut replies = Vec::new();
    let mut wait_for = 0;
    let mut timer = Timer::default();
    poll_fn(|cx| loop {
        let mut progress = false;
        {
            // Every round: a closed connection stops here (even in the middle of a write), and
            // the waker is registered, so that a new request or a close always wakes the task.
            let mut state = shared.lock();
            if let Some(err) = &state.closed {
                return Poll::Ready(err.clone());
            }
            if written == write.len() {
                if write.capacity() > MAX_IDLE_BUFFER {
                    write = Vec::new();
                }
                write.clear();
                written = 0;
                std::mem::swap(&mut write, &mut state.out);
            }
            if !state
                .driver
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                state.driver = Some(cx.waker().clone());
            }
        }
        while written < write.len() {
            match Pin::new(&mut *stream).poll_write(cx, &write[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(PipeError::Closed),
                Poll::Ready(Ok(n)) => {
                    written += n;
                    progress = true;
                }
                Poll::Ready(Err(err)) => return Poll::Ready(err.into()),
                Poll::Pending => break,
            }
        }
        // Room for the next read; the space of replies already handed out is reused once their
        // requests have dropped them.
        if read.capacity() - read.len() < READ_BUFFER / 4 {
            read.reserve(READ_BUFFER);
        }
        let mut received = false;
        match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut read) {
            Poll::Ready(Ok(0)) => return Poll::Ready(PipeError::Closed),
            Poll::Ready(Ok(_)) => {
                progress = true;
                received = true;
            }
            Poll::Ready(Err(err)) => return Poll::Ready(err.into()),
            Poll::Pending => {}
        }
        // Replies are taken off the buffer together; their strings are slices of it.
        if received {
            if let Err(err) = take_replies(&mut read, &mut replies, &mut wait_for) {
                return Poll::Ready(err.into());
            }
            if read.is_empty() && read.capacity() > MAX_IDLE_BUFFER {
                read = BytesMut::with_capacity(READ_BUFFER);
            }
        }
        if !replies.is_empty() {
            let mut state = shared.lock();
            for reply in replies.drain(..) {
                let Some((waiter, _)) = state.waiting.pop_front() else {
                    // Closed meanwhile (which emptied the queue), or Redis answered a question
                    // nobody asked.
                    return Poll::Ready(match &state.closed {
                        Some(err) => err.clone(),
                        None => ProtocolError::UNASKED.into(),
                    });
                };
                // The request may have given up (timed out): its reply is dropped.
                let _ = waiter.send(Ok(reply));
            }
        }
        if !progress {
            let oldest = shared.lock().waiting.front().map(|(_, queued)| *queued);
            if let Poll::Ready(err) = timer.poll(cx, oldest, timeout) {
                return Poll::Ready(err);
            }
            return Poll::Pending;
        }
    })
    .await
}

/// Moves the whole replies at the start of `read` to `replies`, leaving an incomplete last one
/// in `read`. `wait_for` carries, from one call to the next, how long `read` must be before a
/// large incomplete reply is worth framing again (so that a reply arriving in many reads is
/// framed a few times, not once per read).
fn take_replies(
    read: &mut BytesMut,
    replies: &mut Vec<Reply>,
    wait_for: &mut usize,
) -> Result<(), ProtocolError> {
    if read.len() < *wait_for {
        return Ok(());
    }
    *wait_for = 0;
    if read.len() <= ONE_PASS {
        let batch = read.split().freeze();
        let mut at = 0;
        while at < batch.len() {
            match parse_from(&batch, &mut at)? {
                Ok(reply) => replies.push(reply),
                Err(need) => {
                    read.extend_from_slice(&batch[at..]);
                    *wait_for = need - at;
                    break;
                }
            }
        }
        return Ok(());
    }
    let mut complete = 0;
    while complete < read.len() {
        match frame(&read[complete..])? {
            Frame::Whole(used) => complete += used,
            Frame::Need(need) => {
                // Counted from the incomplete reply, which starts the buffer once the whole
                // ones are split off below.
                *wait_for = need;
                break;
            }
        }
    }
    let mut batch = read.split_to(complete).freeze();
    while !batch.is_empty() {
        // Framed above: a whole reply parses; never loop on one that does not.
        let (reply, used) = parse(&batch)?.ok_or(ProtocolError::UNPARSED)?;
        replies.push(reply);
        let _ = batch.split_to(used);
    }
    Ok(())
}

/// The connection's one timer: armed at the deadline of the oldest waiting request, and only
/// moved when it fires. It never fires late: a later request's deadline is never earlier.
#[derive(Default)]
struct Timer {
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Timer {
    /// `Ready` with the error to close with when the oldest request (queued at `oldest`) has
    /// waited `timeout`; otherwise registers for the next deadline.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        oldest: Option<Instant>,
        timeout: Duration,
    ) -> Poll<PipeError> {
        loop {
            let Some(sleep) = &mut self.sleep else {
                // A timeout too long to add to the clock never fires.
                let Some(deadline) = oldest.and_then(|queued| queued.checked_add(timeout)) else {
                    return Poll::Pending;
                };
                self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline)));
                continue;
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            match oldest.and_then(|queued| queued.checked_add(timeout)) {
                None => {
                    self.sleep = None;
                    return Poll::Pending;
                }
                Some(deadline) if deadline <= Instant::now() => {
                    return Poll::Ready(PipeError::TimedOut(timeout));
                }
                Some(deadline) => sleep.as_mut().reset(deadline),
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream as StdStream},
        thread,
    };

    use super::*;

    /// A fake Redis on a free port: each accepted connection is handed to `serve`.
    fn fake(serve: impl Fn(StdStream) + Send + Sync + 'static) -> ConnectionInfo {
        fake_url(serve, "")
    }

    fn fake_url(serve: impl Fn(StdStream) + Send + Sync + 'static, path: &str) -> ConnectionInfo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}{path}", listener.local_addr().unwrap());
        let serve = Arc::new(serve);
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let serve = serve.clone();
                thread::spawn(move || serve(conn));
            }
        });
        ::redis::Client::open(url)
            .unwrap()
            .get_connection_info()
            .clone()
    }

    /// Reads whole commands off `conn` (arrays of bulk strings), `count` of them.
    fn read_commands(conn: &mut StdStream, count: usize) -> Vec<Vec<String>> {
        let mut buf = Vec::new();
        let mut commands = Vec::new();
        let mut chunk = [0u8; 4096];
        while commands.len() < count {
            if let Some((Reply::Array(items), used)) =
                parse(&bytes::Bytes::copy_from_slice(&buf)).unwrap()
            {
                buf.drain(..used);
                commands.push(
                    items
                        .into_iter()
                        .map(|item| match item {
                            Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                            other => panic!("not a bulk string: {other:?}"),
                        })
                        .collect(),
                );
                continue;
            }
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "the client closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
        commands
    }

    fn get(key: &str) -> Command {
        let mut cmd = Command::new("GET");
        cmd.arg(key);
        cmd
    }

    #[test]
    fn replies_are_taken_whole_and_an_incomplete_one_waits_for_the_rest() {
        let big = "x".repeat(3 * ONE_PASS);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"+OK\r\n*2\r\n$1\r\na\r\n:5\r\n");
        stream.extend_from_slice(format!("${}\r\n{big}\r\n", big.len()).as_bytes());
        stream.extend_from_slice(b"$-1\r\n");
        // Fed in pieces of several sizes: small ones take the one-pass path, the large reply
        // the framing one; the replies come out whole, in order, whatever the cuts.
        for piece in [1, 7, 1000, 40_000, stream.len()] {
            let mut read = BytesMut::new();
            let mut replies = Vec::new();
            let mut wait_for = 0;
            let mut framed_at = Vec::new();
            for chunk in stream.chunks(piece) {
                read.extend_from_slice(chunk);
                if read.len() >= wait_for {
                    framed_at.push(read.len());
                }
                take_replies(&mut read, &mut replies, &mut wait_for).unwrap();
            }
            // Parsed again only once what it lacks has arrived: a few dozen times for the
            // short lines cut byte by byte, never once per piece of the 48 KiB string.
            assert!(framed_at.len() <= 40, "piece {piece}: {}", framed_at.len());
            assert!(read.is_empty(), "piece {piece}: {} bytes left", read.len());
            assert_eq!(
                replies,
                vec![
                    Reply::Status("OK".into()),
                    Reply::Array(vec![Reply::Bulk("a".into()), Reply::Int(5)]),
                    Reply::Bulk(big.clone().into()),
                    Reply::Nil,
                ],
                "piece {piece}"
            );
        }
        let mut read = BytesMut::from(&b"+OK\r\n?\r\n"[..]);
        assert!(take_replies(&mut read, &mut Vec::new(), &mut 0).is_err());
    }

    #[actix_rt::test]
    async fn replies_split_anywhere_reach_their_requests_in_order() {
        const N: usize = 50;
        let info = fake(|mut conn| {
            let commands = read_commands(&mut conn, N);
            // Each reply echoes the key, sent one byte per write.
            let mut out = Vec::new();
            for command in commands {
                out.extend_from_slice(
                    format!("${}\r\n{}\r\n", command[1].len(), command[1]).as_bytes(),
                );
            }
            for byte in out {
                conn.write_all(&[byte]).unwrap();
            }
            thread::sleep(Duration::from_secs(5));
        });
        let pipe = Pipe::open(&info, Duration::from_secs(5));
        let requests = (0..N).map(|i| {
            let pipe = pipe.clone();
            async move { pipe.send_with(&[], &get(&format!("key-{i}"))).await }
        });
        let replies = futures_util::future::join_all(requests).await;
        for (i, reply) in replies.into_iter().enumerate() {
            assert_eq!(
                reply.unwrap(),
                Reply::Bulk(format!("key-{i}").into_bytes().into())
            );
        }
        assert!(!pipe.is_closed());
    }

    #[actix_rt::test]
    async fn a_request_left_unanswered_closes_the_connection_and_fails_all_of_its_requests() {
        let info = fake(|mut conn| {
            // Answers the first request only.
            read_commands(&mut conn, 1);
            conn.write_all(b"+OK\r\n").unwrap();
            thread::sleep(Duration::from_secs(5));
        });
        let timeout = Duration::from_millis(300);
        let pipe = Pipe::open(&info, timeout);
        assert_eq!(
            pipe.send_with(&[], &get("a")).await.unwrap(),
            Reply::Status("OK".into())
        );
        let started = Instant::now();
        let (b, c) = futures_util::future::join(
            pipe.send_with(&[], &get("b")),
            pipe.send_with(&[], &get("c")),
        )
        .await;
        let waited = started.elapsed();
        for reply in [b, c] {
            assert!(matches!(reply, Err(PipeError::TimedOut(t)) if t == timeout));
        }
        assert!(
            waited >= timeout && waited < Duration::from_secs(3),
            "{waited:?}"
        );
        assert!(pipe.is_closed());
        // Later requests fail at once, without waiting.
        let started = Instant::now();
        assert!(pipe.send_with(&[], &get("d")).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[actix_rt::test]
    async fn a_reply_nobody_asked_for_closes_the_connection() {
        let info = fake(|mut conn| {
            read_commands(&mut conn, 1);
            conn.write_all(b"+OK\r\n+SURPRISE\r\n").unwrap();
            thread::sleep(Duration::from_secs(5));
        });
        let pipe = Pipe::open(&info, Duration::from_secs(2));
        assert!(pipe.send_with(&[], &get("a")).await.is_ok());
        let next = pipe.send_with(&[], &get("b")).await;
        assert!(matches!(next, Err(PipeError::Protocol(_))), "{next:?}");
    }

    #[actix_rt::test]
    async fn auth_and_select_are_answered_before_any_request_is_sent() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let info = fake_url(
            move |mut conn| {
                let handshake = read_commands(&mut conn, 2);
                // Nothing else may arrive before the handshake is answered.
                conn.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut early = [0u8; 64];
                let early = conn.read(&mut early).map_or(0, |n| n);
                conn.write_all(b"+OK\r\n+OK\r\n").unwrap();
                conn.set_read_timeout(None).unwrap();
                let request = read_commands(&mut conn, 1);
                seen_tx.send((handshake, early, request)).unwrap();
                conn.write_all(b":1\r\n").unwrap();
                thread::sleep(Duration::from_secs(5));
            },
            "/3",
        );
        let mut info = info;
        info.redis.username = Some("ann".into());
        info.redis.password = Some("secret".into());
        let pipe = Pipe::open(&info, Duration::from_secs(2));
        assert_eq!(pipe.send_with(&[], &get("k")).await.unwrap(), Reply::Int(1));
        let (handshake, early, request) = seen_rx.recv().unwrap();
        assert_eq!(
            handshake,
            vec![vec!["AUTH", "ann", "secret"], vec!["SELECT", "3"]]
        );
        assert_eq!(
            early, 0,
            "a request was sent before the handshake was answered"
        );
        assert_eq!(request, vec![vec!["GET", "k"]]);
    }

    #[actix_rt::test]
    async fn a_refused_handshake_fails_requests_and_sends_none_of_them() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let mut info = fake(move |mut conn| {
            read_commands(&mut conn, 1);
            conn.write_all(b"-WRONGPASS invalid username-password pair\r\n")
                .unwrap();
            conn.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            let mut rest = [0u8; 64];
            seen_tx.send(conn.read(&mut rest).unwrap_or(0)).unwrap();
        });
        info.redis.password = Some("wrong".into());
        let pipe = Pipe::open(&info, Duration::from_secs(2));
        let reply = pipe.send_with(&[], &get("k")).await;
        match reply {
            Err(PipeError::Handshake { command, message }) => {
                assert_eq!(command, "AUTH");
                assert!(message.starts_with("WRONGPASS"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(seen_rx.recv().unwrap(), 0, "a request reached the server");
    }

    #[actix_rt::test]
    async fn nothing_listening_is_a_connect_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let info = ::redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection_info()
            .clone();
        let pipe = Pipe::open(&info, Duration::from_secs(2));
        let err = pipe.send_with(&[], &get("k")).await.unwrap_err();
        assert!(matches!(err, PipeError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[actix_rt::test]
    async fn dropping_the_last_handle_closes_the_connection() {
        let (closed_tx, closed_rx) = std::sync::mpsc::channel();
        let info = fake(move |mut conn| {
            read_commands(&mut conn, 1);
            conn.write_all(b"+OK\r\n").unwrap();
            let mut rest = [0u8; 16];
            // The client's close reads as end of stream.
            closed_tx.send(conn.read(&mut rest).unwrap_or(0)).unwrap();
        });
        let pipe = Pipe::open(&info, Duration::from_secs(2));
        pipe.send_with(&[], &get("k")).await.unwrap();
        drop(pipe);
        let read =
            tokio::task::spawn_blocking(move || closed_rx.recv_timeout(Duration::from_secs(3)))
                .await
                .unwrap();
        assert_eq!(read, Ok(0));
    }
}
