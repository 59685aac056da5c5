//! Bounds against hostile clients: what one peer address may hold (connections, bytes of unfinished messages) and
//! the bytes buffered across all connections. The connection that would exceed a bound is refused; connections
//! that are already in, and other addresses, are not touched.
//!
//! Bytes are counted where they enter: every read from the socket adds to the connection's count of bytes not yet
//! part of a whole message, and a whole message (any frame tungstenite hands us) sets it back to zero. The first
//! [`FREE_BYTES`] of a connection's unfinished message are not charged, so an honest client sending small messages
//! is never refused because others filled the shared budget.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::ServerConfig;

/// Bytes of an unfinished message a connection may hold without being charged against any shared budget.
pub(crate) const FREE_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Use {
    conns: usize,
    bytes: usize,
}

/// The server's accounting, shared by the accept loop and every connection.
pub(crate) struct Limits {
    per_addr_conns: usize,
    per_addr_bytes: usize,
    total_bytes: usize,
    state: Mutex<(HashMap<IpAddr, Use>, usize)>,
}

impl Limits {
    pub(crate) fn new(cfg: &ServerConfig) -> Arc<Limits> {
        Arc::new(Limits {
            per_addr_conns: cfg.max_connections_per_address,
            per_addr_bytes: cfg.max_buffered_bytes_per_address,
            total_bytes: cfg.max_buffered_bytes,
            state: Mutex::new((HashMap::new(), 0)),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (HashMap<IpAddr, Use>, usize)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection slot for `peer`, or `None` when its address holds all it may.
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Slot> {
        let ip = peer.ip();
        let mut st = self.state();
        let u = st.0.entry(ip).or_default();
        if u.conns >= self.per_addr_conns {
            return None;
        }
        u.conns += 1;
        Some(Slot { limits: self.clone(), ip, pending: AtomicUsize::new(0), charged: AtomicUsize::new(0) })
    }

    /// Charge `n` more buffered bytes to `ip`, unless that would pass the address's or the total bound.
    fn charge(&self, ip: IpAddr, n: usize) -> bool {
        let mut st = self.state();
        if st.1 + n > self.total_bytes {
            return false;
        }
        let Some(u) = st.0.get_mut(&ip) else { return false };
        if u.bytes + n > self.per_addr_bytes {
            return false;
        }
        u.bytes += n;
        st.1 += n;
        true
    }

    fn release(&self, ip: IpAddr, bytes: usize, conn: bool) {
        let mut st = self.state();
        st.1 -= bytes;
        if let Some(u) = st.0.get_mut(&ip) {
            u.bytes -= bytes;
            if conn {
                u.conns -= 1;
                if u.conns == 0 {
                    st.0.remove(&ip);
                }
            }
        }
    }

    /// Bytes charged across all connections now (for tests and diagnostics).
    pub(crate) fn buffered(&self) -> usize {
        self.state().1
    }
}

/// One admitted connection's share: released (slot and bytes) when dropped.
pub(crate) struct Slot {
    limits: Arc<Limits>,
    ip: IpAddr,
    /// Bytes read since the last whole message.
    pending: AtomicUsize,
    /// The part of `pending` charged to the shared budgets.
    charged: AtomicUsize,
}

impl Slot {
    /// `n` more bytes were read: false when that passes a bound (the connection is then refused).
    fn read(&self, n: usize) -> bool {
        let pending = self.pending.fetch_add(n, Ordering::AcqRel) + n;
        let want = pending.saturating_sub(FREE_BYTES);
        let charged = self.charged.load(Ordering::Acquire);
        if want <= charged {
            return true;
        }
        if !self.limits.charge(self.ip, want - charged) {
            return false;
        }
        self.charged.store(want, Ordering::Release);
        true
    }

    /// A whole message arrived: what was buffered for it is no longer held by us.
    pub(crate) fn message_done(&self) {
        self.pending.store(0, Ordering::Release);
        let charged = self.charged.swap(0, Ordering::AcqRel);
        if charged > 0 {
            self.limits.release(self.ip, charged, false);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limits.release(self.ip, *self.charged.get_mut(), true);
    }
}

/// A TCP stream whose reads are counted against its [`Slot`]; a read past a bound fails the connection.
pub(crate) struct Metered {
    tcp: TcpStream,
    pub(crate) slot: Arc<Slot>,
}

impl Metered {
    pub(crate) fn new(tcp: TcpStream, slot: Slot) -> Metered {
        Metered { tcp, slot: Arc::new(slot) }
    }
}

impl AsyncRead for Metered {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            if !self.slot.read(buf.filled().len() - before) {
                return Poll::Ready(Err(io::Error::other("buffered bytes bound reached")));
            }
        }
        r
    }
}

impl AsyncWrite for Metered {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Turn away a connection over its address's bound without doing any WebSocket work for it: a short HTTP 503 if
/// the socket takes it at once, then close.
pub(crate) fn refuse(tcp: TcpStream) {
    let _ = tcp.try_write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}
