//! Caps on the connections one api process holds: in all (each costs a file
//! descriptor and buffers; past the cap the acceptor stops accepting, and
//! further connections wait in the kernel's backlog until one closes,
//! instead of failing the process with EMFILE), and per client address (so
//! one host cannot take every slot; its extra connections are closed at once;
//! an IPv6 host counts by its /64, which it commonly holds whole).
//! Trusted proxies carry many clients and have no per-address cap.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ratelimit::TrustedProxies;

/// Accepts through `inner` while fewer than the cap's connections are open.
pub struct ConnectionLimit<A> {
    inner: A,
    slots: Arc<Semaphore>,
    per_address: usize,
    trusted: TrustedProxies,
    /// Open connections per client address; a std Mutex: held for a map
    /// update only, never across an await.
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl<A> ConnectionLimit<A> {
    /// At most `max` connections at once, `per_address` from any one address
    /// that is not a trusted proxy.
    pub fn new(inner: A, max: usize, per_address: usize, trusted: TrustedProxies) -> Self {
        ConnectionLimit {
            inner,
            slots: Arc::new(Semaphore::new(max.max(1))),
            per_address: per_address.max(1),
            trusted,
            open: Arc::default(),
        }
    }
}

impl<A: Acceptor> Acceptor for ConnectionLimit<A> {
    type Io = Counted<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // The semaphore is never closed, so acquiring only waits.
        let slot = self.slots.clone().acquire_owned().await.map_err(io::Error::other)?;
        loop {
            let (io, local, remote, scheme) = self.inner.accept().await?;
            let ip = remote.as_socket_addr().map(|a| a.ip().to_canonical());
            let address = match ip {
                Some(ip) if !self.trusted.contains(ip) => {
                    let ip = crate::ratelimit::bucket(ip);
                    let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                    let n = open.entry(ip).or_default();
                    if *n >= self.per_address {
                        tracing::info!(remote_addr = %remote, "closing connection: too many from this address");
                        continue; // dropping `io` closes it
                    }
                    *n += 1;
                    Some(AddressSlot { ip, open: self.open.clone() })
                }
                _ => None,
            };
            return Ok((Counted { inner: io, _slot: slot, _address: address }, local, remote, scheme));
        }
    }
}

/// A connection that holds its slots until it is dropped.
pub struct Counted<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    _address: Option<AddressSlot>,
}

/// One connection counted against its client address.
struct AddressSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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
