//! A replication session over a stream held by someone else (a Hyperswarm `NoiseSecretStream` in
//! Node): the holder decrypts and encrypts, and the session sees plaintext protomux messages only.
//! `pair` makes the two ends: the `Link` a session runs on, and the `LinkHandle` the holder feeds
//! with received messages and drains of messages to send.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use libvms_errors::{err, Result};
use tokio::sync::{mpsc, Mutex, Notify};

use crate::noise::HASHLEN;
use crate::stream::StreamInfo;

/// Received bytes queued for the session above which the holder is told to pause its stream.
pub const INBOX_HIGH: usize = 4 << 20;
/// Batches of outgoing messages the holder may lag behind before the session waits for it.
const OUTBOX_BATCHES: usize = 4;

/// What a session reads: plaintext messages, `Ok(None)` at the end of the stream.
pub type Incoming = Result<Option<Vec<u8>>>;

/// Bytes queued between the holder and the session, and a wake-up for a paused holder.
#[derive(Default)]
pub struct Gauge {
    bytes: AtomicUsize,
    low: Notify,
}

impl Gauge {
    fn add(&self, n: usize) -> usize {
        self.bytes.fetch_add(n, Ordering::AcqRel) + n
    }

    pub(crate) fn sub(&self, n: usize) {
        let before = self.bytes.fetch_sub(n, Ordering::AcqRel);
        if before >= INBOX_HIGH && before - n < INBOX_HIGH {
            self.low.notify_waiters();
        }
    }
}

/// The session's end.
pub struct Link {
    pub info: StreamInfo,
    pub(crate) inbox: mpsc::UnboundedReceiver<Incoming>,
    pub(crate) gauge: Arc<Gauge>,
    pub(crate) outbox: mpsc::Sender<Vec<Vec<u8>>>,
}

/// The holder's end. Dropping it ends the stream for the session.
pub struct LinkHandle {
    inbox: mpsc::UnboundedSender<Incoming>,
    gauge: Arc<Gauge>,
    outbox: Mutex<mpsc::Receiver<Vec<Vec<u8>>>>,
    ended: AtomicBool,
}

/// A link for a stream whose Noise handshake is done: `handshake_hash` and `is_initiator` are what
/// the channel capabilities are keyed by.
pub fn pair(is_initiator: bool, handshake_hash: &[u8], remote_public_key: &[u8]) -> Result<(Link, LinkHandle)> {
    let handshake_hash: [u8; HASHLEN] =
        handshake_hash.try_into().map_err(|_| err::bad_argument(format!("handshake hash must be {HASHLEN} bytes")))?;
    let remote_public_key: [u8; 32] =
        remote_public_key.try_into().map_err(|_| err::bad_argument("remote public key must be 32 bytes"))?;
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::channel(OUTBOX_BATCHES);
    let gauge = Arc::new(Gauge::default());
    let info = StreamInfo { is_initiator, handshake_hash, remote_public_key };
    Ok((
        Link { info, inbox: in_rx, gauge: gauge.clone(), outbox: out_tx },
        LinkHandle { inbox: in_tx, gauge, outbox: Mutex::new(out_rx), ended: AtomicBool::new(false) },
    ))
}

impl LinkHandle {
    /// One received (decrypted) message. False asks the holder to pause its stream until `drained`.
    pub fn push(&self, msg: Vec<u8>) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return true;
        }
        let len = msg.len();
        let n = self.gauge.add(len);
        if self.inbox.send(Ok(Some(msg))).is_err() {
            // The session is gone: nothing will read this, and nothing need wait for it.
            self.gauge.sub(len);
            return true;
        }
        n < INBOX_HIGH
    }

    /// The stream ended (`error` when it failed). Later pushes are ignored.
    pub fn end(&self, error: Option<String>) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let m = match error {
            Some(e) => Err(err::connection(format!("stream: {e}"))),
            None => Ok(None),
        };
        let _ = self.inbox.send(m);
    }

    /// Resolves once the session has worked the queue down below the pause mark (or is gone).
    pub async fn drained(&self) {
        loop {
            let wait = self.gauge.low.notified();
            if self.gauge.bytes.load(Ordering::Acquire) < INBOX_HIGH || self.inbox.is_closed() {
                return;
            }
            tokio::select! {
                _ = wait => {}
                _ = self.inbox.closed() => return,
            }
        }
    }

    /// The next messages to send, in order; `None` once the session has ended (close the stream).
    pub async fn next(&self) -> Option<Vec<Vec<u8>>> {
        self.outbox.lock().await.recv().await
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.end(None);
    }
}
