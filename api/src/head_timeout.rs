//! A bound on how long a request head (request line and headers) may take to
//! arrive: a client that opens connections and trickles their heads
//! ("slowloris") would otherwise hold each one for as long as it keeps
//! sending a byte now and then, since any byte resets the idle timeout.
//!
//! hyper has a header read timeout, but it needs a timer and poem 3 gives
//! hyper none, so that setting is inert. The bound is kept below hyper
//! instead, on the byte stream: [`HeadTimeoutAcceptor`] wraps each accepted
//! connection in a [`HeadDeadline`], which watches the bytes read for the
//! empty line that ends a head while a deadline runs, and fails the read
//! when the deadline passes first; hyper then drops the connection.
//!
//! A connection goes through these phases:
//! - **head**: from the connection's start, or from the first byte of a later
//!   request, until the empty line ending its head. The deadline runs.
//! - **request**: the head is in. The body and the handler take what they
//!   take (bodies are never parsed; body reads have limits of their own).
//! - **idle**: a final response has begun; the next byte read starts the next
//!   head. Idle time is the idle timeout's business, not this one's.
//! - **off**: HTTP/2 with prior knowledge (the whole preface arrived in
//!   time): the connection is closed. h2c frames are not HTTP/1 heads, so
//!   no deadline could apply, and a client could hold the connection with a
//!   PING now and then; pan serves HTTP/1.1 (HTTP/2 belongs to a TLS proxy).
//!
//! "The next request starts with the first byte read after a response
//! began" is an approximation, chosen over parsing bodies. Interim responses
//! (`100 Continue`, sent before a body is read) are recognised by their
//! status line and do not count, so an upload's body is never taken for the
//! next head. What is not caught: a client that pipelines a request with a
//! body behind one whose response is still being written may have that body
//! scanned as a head, and the connection closed if the body is slow. Browsers
//! and common HTTP clients do not pipeline.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the status code's first digit sits in a response: `HTTP/1.1 1xx`.
const STATUS_DIGIT_AT: usize = "HTTP/1.1 ".len();

/// An [`Acceptor`] whose connections must deliver each request head within
/// `timeout`.
pub struct HeadTimeoutAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> HeadTimeoutAcceptor<A> {
    /// Wraps `inner`.
    pub fn new(inner: A, timeout: Duration) -> Self {
        HeadTimeoutAcceptor { inner, timeout }
    }
}

impl<A: Acceptor> Acceptor for HeadTimeoutAcceptor<A> {
    type Io = HeadDeadline<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.inner.accept().await?;
        Ok((HeadDeadline::new(io, self.timeout, remote.clone()), local, remote, scheme))
    }
}

/// Where a line scan stands: before any text, inside a line, or at the start
/// of a line that follows a non-empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing but line breaks yet: RFC 9112 §2.2 lets empty lines precede a request.
    Blank,
    Text,
    Start,
}

impl Line {
    /// Takes one byte; true when it completes an empty line, the end of a
    /// head. Bare LF line ends count too, as hyper accepts them.
    fn step(&mut self, b: u8) -> bool {
        match (*self, b) {
            (Line::Blank, b'\r' | b'\n') | (Line::Start, b'\r') | (Line::Text, b'\r') => {}
            (Line::Start, b'\n') => return true,
            (_, b'\n') => *self = Line::Start,
            _ => *self = Line::Text,
        }
        false
    }
}

/// How far the response to the current request has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// This many bytes of a response's status line have been written.
    Status(usize),
    /// Inside an interim (1xx) response's head.
    Interim(Line),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head(Line),
    Request(Reply),
    Idle,
    Off,
    TimedOut,
}

/// A connection whose request heads must each arrive within a deadline
/// (see the module docs).
pub struct HeadDeadline<T> {
    inner: T,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    phase: Phase,
    /// While the connection's first bytes match the HTTP/2 preface: how many did.
    preface: Option<usize>,
    peer: RemoteAddr,
}

impl<T> HeadDeadline<T> {
    /// Wraps a connection that starts now.
    pub fn new(inner: T, timeout: Duration, peer: RemoteAddr) -> Self {
        HeadDeadline {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            phase: Phase::Head(Line::Blank),
            preface: Some(0),
            peer,
        }
    }

    fn on_read(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.phase == Phase::Idle {
                self.sleep.as_mut().reset(Instant::now() + self.timeout);
                self.phase = Phase::Head(Line::Blank);
            }
            let Phase::Head(line) = &mut self.phase else { return };
            if let Some(n) = self.preface {
                if H2_PREFACE.get(n) == Some(&b) {
                    if n + 1 == H2_PREFACE.len() {
                        self.phase = Phase::Off;
                        return;
                    }
                    self.preface = Some(n + 1);
                    continue;
                }
                self.preface = None;
            }
            if line.step(b) {
                // The rest of this read is body or a pipelined request: not scanned.
                self.phase = Phase::Request(Reply::Status(0));
                return;
            }
        }
    }

    fn on_write(&mut self, bytes: &[u8]) {
        let Phase::Request(reply) = &mut self.phase else { return };
        for &b in bytes {
            match reply {
                Reply::Status(seen) if *seen < STATUS_DIGIT_AT => *seen += 1,
                Reply::Status(_) if b == b'1' => *reply = Reply::Interim(Line::Text),
                Reply::Status(_) => {
                    self.phase = Phase::Idle;
                    return;
                }
                Reply::Interim(line) => {
                    if line.step(b) {
                        *reply = Reply::Status(0);
                    }
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Polled only while a head is awaited: that is when hyper reads.
        if matches!(this.phase, Phase::Head(_)) && this.sleep.as_mut().poll(cx).is_ready() {
            this.phase = Phase::TimedOut;
            tracing::info!(
                remote_addr = %this.peer,
                timeout_s = this.timeout.as_secs(),
                "closing connection: request head not received in time"
            );
        }
        if this.phase == Phase::TimedOut {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "request head not received in time")));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.on_read(&buf.filled()[before..]);
        if this.phase == Phase::Off {
            // Cleartext HTTP/2 would bypass this deadline altogether (a PING
            // now and then keeps a connection that never sends a request).
            tracing::info!(remote_addr = %this.peer, "closing connection: HTTP/2 cleartext (h2c) is not served");
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "h2c is not served")));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.on_write(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let k = left.min(b.len());
            this.on_write(&b[..k]);
            left -= k;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn conn(timeout_ms: u64) -> HeadDeadline<()> {
        HeadDeadline::new((), Duration::from_millis(timeout_ms), RemoteAddr(poem::Addr::default()))
    }

    #[tokio::test]
    async fn a_head_ends_at_the_first_empty_line_however_it_is_split() {
        let head = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nbody bytes\r\n\r\n";
        for split in 1..head.len() {
            let mut c = conn(1000);
            c.on_read(&head[..split]);
            c.on_read(&head[split..]);
            assert_eq!(c.phase, Phase::Request(Reply::Status(0)), "split at {split}");
        }
        let mut c = conn(1000);
        c.on_read(b"GET / HTTP/1.1\nHost: x\n\n");
        assert_eq!(c.phase, Phase::Request(Reply::Status(0)), "bare LF");
        let mut c = conn(1000);
        c.on_read(b"GET / HTTP/1.1\r\nHost: x\r\n");
        assert_eq!(c.phase, Phase::Head(Line::Start), "no empty line yet");
    }

    #[tokio::test]
    async fn interim_responses_keep_the_request_phase_and_a_final_one_ends_it() {
        let mut c = conn(1000);
        c.on_read(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        c.on_write(b"HTTP/1.1 100 Continue\r\n");
        c.on_write(b"\r\n");
        assert_eq!(c.phase, Phase::Request(Reply::Status(0)));
        // The body, however long and slow, is not a head.
        c.on_read(b"no empty line here \n at all");
        assert_eq!(c.phase, Phase::Request(Reply::Status(0)));
        c.on_write(b"HTTP/1.1 2");
        assert_eq!(c.phase, Phase::Idle);
        // The next byte starts the next head, and re-arms the deadline.
        c.on_read(b"G");
        assert_eq!(c.phase, Phase::Head(Line::Text));
    }

    #[tokio::test]
    async fn the_http2_preface_ends_the_head_watch_and_refuses_the_connection() {
        let mut c = conn(1000);
        c.on_read(&H2_PREFACE[..10]);
        assert!(matches!(c.phase, Phase::Head(_)), "a partial preface is still a head in progress");
        c.on_read(&H2_PREFACE[10..]);
        assert_eq!(c.phase, Phase::Off);
        let mut c = conn(1000);
        c.on_read(b"POST / HTTP/1.1\r\n\r\n");
        assert_eq!(c.phase, Phase::Request(Reply::Status(0)), "POST starts like PRI, then is HTTP/1");
    }

    #[tokio::test]
    async fn a_trickled_head_fails_the_read_at_the_deadline() {
        let (client, server) = tokio::io::duplex(1024);
        let mut server = HeadDeadline::new(server, Duration::from_millis(300), RemoteAddr(poem::Addr::default()));
        let started = Instant::now();
        let trickle = tokio::spawn(async move {
            let mut client = client;
            for b in b"GET / HTTP/1.1\r\nHost: x\r\n" {
                if client.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client
        });
        let mut buf = [0u8; 64];
        let err = loop {
            match server.read(&mut buf).await {
                Ok(0) => panic!("EOF before the deadline"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2), "{elapsed:?}");
        drop(trickle.await);
    }
}
