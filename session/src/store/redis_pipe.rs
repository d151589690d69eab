//! A pipelined connection to Redis: many requests in flight on one socket, written in batches.
//!
//! Requests append their encoded command to a shared buffer and wait for their reply on a
//! oneshot channel. One task per connection (the driver) owns the socket: it writes everything
//! appended since its last write in one go, reads whatever Redis sent back, parses the replies
//! and hands them out in order (Redis answers the commands of one connection in the order they
//! were sent). Requests made while the driver is busy are simply batched into its next write.
//!
//! When anything goes wrong (the connection cannot be opened, the socket fails, Redis sends
//! something that is not RESP, the owner gives up on it) the connection is closed: every request
//! waiting on it fails at once with the cause, later requests fail without touching the socket,
//! and the store opens a new connection for the next operation.

use std::{
    collections::VecDeque,
    future::poll_fn,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use ::redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::oneshot,
};

use super::redis_wire::{parse, Command, ProtocolError, Reply};

/// The read buffer's size, and the size it shrinks back to after a large reply.
const READ_BUFFER: usize = 16 * 1024;

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

type Waiter = oneshot::Sender<Result<Reply, PipeError>>;

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
        for waiter in waiting {
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
    /// `AUTH` / `SELECT` handshake) may take up to `connect_timeout`.
    pub(crate) fn open(info: &ConnectionInfo, connect_timeout: Duration) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(drive(
            DriverGuard(shared.clone()),
            info.clone(),
            connect_timeout,
        ));
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
        let driver = {
            let mut state = self.handle.shared.lock();
            if let Some(err) = &state.closed {
                return Err(err.clone());
            }
            cmd.write_with(leading, &mut state.out);
            state.waiting.push_back(tx);
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

async fn drive(guard: DriverGuard, info: ConnectionInfo, connect_timeout: Duration) {
    let shared = &guard.0;
    let addr = describe(&info.addr);
    let err = match tokio::time::timeout(connect_timeout, connect(&info, &addr)).await {
        Err(_) => PipeError::ConnectTimeout {
            addr,
            after: connect_timeout,
        },
        Ok(Err(err)) => err,
        Ok(Ok(mut stream)) => run(&mut stream, shared).await,
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
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    for command in sent {
        let reply = loop {
            if let Some((reply, used)) = parse(&buf)? {
                buf.drain(..used);
                break reply;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(PipeError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        if let Reply::Error(message) = reply {
            return Err(PipeError::Handshake { command, message });
        }
    }
    Ok(())
}

/// Moves commands out and replies in until the connection fails or is closed; returns why.
async fn run(stream: &mut Stream, shared: &Shared) -> PipeError {
    let mut write = Vec::new();
    let mut written = 0;
    let mut read = vec![0u8; READ_BUFFER];
    let mut filled = 0;
    let mut replies = Vec::new();
    poll_fn(|cx| loop {
        let mut progress = false;
        if written == write.len() {
            write.clear();
            written = 0;
            let mut state = shared.lock();
            if let Some(err) = &state.closed {
                return Poll::Ready(err.clone());
            }
            std::mem::swap(&mut write, &mut state.out);
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
        if filled == read.len() {
            read.resize(read.len() * 2, 0);
        }
        let mut buf = ReadBuf::new(&mut read[filled..]);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                return Poll::Ready(PipeError::Closed)
            }
            Poll::Ready(Ok(())) => {
                filled += buf.filled().len();
                progress = true;
            }
            Poll::Ready(Err(err)) => return Poll::Ready(err.into()),
            Poll::Pending => {}
        }
        let mut start = 0;
        loop {
            match parse(&read[start..filled]) {
                Ok(Some((reply, used))) => {
                    start += used;
                    replies.push(reply);
                }
                Ok(None) => break,
                Err(err) => return Poll::Ready(err.into()),
            }
        }
        if start > 0 {
            read.copy_within(start..filled, 0);
            filled -= start;
            if filled == 0 && read.len() > READ_BUFFER {
                read.truncate(READ_BUFFER);
                read.shrink_to_fit();
            }
        }
        if !replies.is_empty() {
            let mut state = shared.lock();
            for reply in replies.drain(..) {
                let Some(waiter) = state.waiting.pop_front() else {
                    return Poll::Ready(ProtocolError::UNASKED.into());
                };
                // The request may have given up (timed out): its reply is dropped.
                let _ = waiter.send(Ok(reply));
            }
        }
        if !progress {
            return Poll::Pending;
        }
    })
    .await
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
