//! How a session's messages leave (onto a stream it owns, or to a link's holder) and arrive (a link's inbox).

use std::sync::Arc;

use libvms_errors::{err, Result};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use crate::link::{Gauge, Incoming};
use crate::stream::Writer;

/// Where a session's messages go: encrypted onto a byte stream it owns, or as plaintext to the
/// holder of a `Link`, which encrypts them (and keeps its stream alive itself).
pub(super) enum Out<W> {
    Stream(Writer<W>),
    Link { tx: mpsc::Sender<Vec<Vec<u8>>>, buf: Vec<Vec<u8>>, bytes: usize },
}

impl<W: AsyncWrite + Unpin> Out<W> {
    pub(super) fn queue(&mut self, msg: Vec<u8>) -> Result<()> {
        match self {
            Out::Stream(w) => w.queue(&msg),
            Out::Link { buf, bytes, .. } => {
                if !msg.is_empty() {
                    *bytes += msg.len();
                    buf.push(msg);
                }
                Ok(())
            }
        }
    }

    pub(super) fn pending(&self) -> usize {
        match self {
            Out::Stream(w) => w.pending(),
            Out::Link { bytes, .. } => *bytes,
        }
    }

    /// Waits while the holder has not taken the earlier batches (its stream's backpressure).
    pub(super) async fn flush(&mut self) -> Result<()> {
        match self {
            Out::Stream(w) => w.flush().await,
            Out::Link { tx, buf, bytes } => {
                if buf.is_empty() {
                    return Ok(());
                }
                *bytes = 0;
                tx.send(std::mem::take(buf)).await.map_err(|_| err::connection("stream closed"))
            }
        }
    }

    pub(super) async fn shutdown(&mut self) {
        match self {
            Out::Stream(w) => w.shutdown().await,
            Out::Link { .. } => {
                // What is queued still goes out; dropping the sender then tells the holder to close.
                let _ = self.flush().await;
            }
        }
    }
}

/// Received plaintext messages, with the holder's byte gauge for a link.
pub(super) struct Inbox {
    pub(super) rx: mpsc::UnboundedReceiver<Incoming>,
    pub(super) gauge: Option<Arc<Gauge>>,
}

impl Inbox {
    pub(super) fn took(&self, m: &Incoming) {
        if let (Some(g), Ok(Some(b))) = (&self.gauge, m) {
            g.sub(b.len());
        }
    }

    pub(super) async fn recv(&mut self) -> Option<Incoming> {
        let m = self.rx.recv().await;
        if let Some(m) = &m {
            self.took(m);
        }
        m
    }

    pub(super) fn try_recv(&mut self) -> Option<Incoming> {
        let m = self.rx.try_recv().ok();
        if let Some(m) = &m {
            self.took(m);
        }
        m
    }
}
