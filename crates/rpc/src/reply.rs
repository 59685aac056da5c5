//! Where replies go: each connection's outgoing side (a direct write, else its own queue drained by a writer task,
//! so a slow reader never stalls a mount) and the routing of one request's answer, alone or in a batch.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt};
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::backend::Outcome;
use crate::limits::Metered;
use crate::wire;

pub(crate) type Ws = WebSocketStream<Metered>;

pub(crate) enum Out {
    Text(String),
    Ping,
    /// Finish a write the fast path could not complete.
    Flush,
    Close(CloseFrame),
}

/// The outgoing side of one connection, shared by its reader and by every mount worker holding a reply for it.
///
/// A reply is written straight to the socket when nothing is queued before it and the socket takes it at once
/// (the common case: no task hop); otherwise it goes to this connection's queue, drained by its writer task.
/// Past `limit` queued bytes the connection is dropped: a slow reader loses its connection, never blocks anyone.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Out>,
    sink: tokio::sync::Mutex<Option<SplitSink<Ws, Message>>>,
    /// Items sent to the queue and not yet handed to the socket. Only changes under `sink`'s lock or upwards.
    queued: AtomicUsize,
    bytes: AtomicUsize,
    limit: usize,
    killed: AtomicBool,
    /// A close frame is on its way: nothing more is sent.
    closing: AtomicBool,
    kill_notify: Notify,
}

enum Direct {
    Done,
    /// Accepted, but the flush would block: the writer finishes it.
    NeedsFlush,
    Blocked(String),
    Failed,
}

fn write_now(sink: &mut SplitSink<Ws, Message>, text: String) -> Direct {
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let mut s = Pin::new(sink);
    match s.as_mut().poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(_)) => return Direct::Failed,
        Poll::Pending => return Direct::Blocked(text),
    }
    if s.as_mut().start_send(Message::Text(text.into())).is_err() {
        return Direct::Failed;
    }
    match s.as_mut().poll_flush(&mut cx) {
        Poll::Ready(Ok(())) => Direct::Done,
        Poll::Ready(Err(_)) => Direct::Failed,
        Poll::Pending => Direct::NeedsFlush,
    }
}

impl Outbox {
    pub(crate) fn new(sink: SplitSink<Ws, Message>, limit: usize) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ob = Outbox {
            tx,
            sink: tokio::sync::Mutex::new(Some(sink)),
            queued: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            limit,
            killed: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            kill_notify: Notify::new(),
        };
        (Arc::new(ob), rx)
    }

    /// Send a text frame, in order with every other frame of this connection.
    pub(crate) fn push(&self, text: String) {
        if self.killed.load(Ordering::Acquire) || self.closing.load(Ordering::Acquire) {
            return;
        }
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(mut guard) = self.sink.try_lock() {
                // Re-checked under the lock: nothing queued before us, so writing now keeps the order.
                if self.queued.load(Ordering::Acquire) == 0 {
                    let Some(sink) = guard.as_mut() else { return };
                    match write_now(sink, text) {
                        Direct::Done => {}
                        Direct::NeedsFlush => self.send(Out::Flush),
                        Direct::Failed => self.kill(),
                        // Queued while still holding the lock, so no later frame can overtake it.
                        Direct::Blocked(text) => self.enqueue(text),
                    }
                    return;
                }
            }
        }
        self.enqueue(text);
    }

    fn enqueue(&self, text: String) {
        let n = text.len();
        if self.bytes.fetch_add(n, Ordering::AcqRel) + n > self.limit {
            self.kill();
            return;
        }
        self.send(Out::Text(text));
    }

    pub(crate) fn send(&self, o: Out) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(o).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub(crate) fn close(&self, code: CloseCode, reason: &'static str) {
        self.closing.store(true, Ordering::Release);
        self.send(Out::Close(CloseFrame { code, reason: reason.into() }));
    }

    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_notify.notify_waiters();
    }

    pub(crate) async fn killed(&self) {
        loop {
            let notified = self.kill_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.killed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// Drop the write half (the socket closes once the read half is gone too), even while replies are pending.
    pub(crate) async fn release(&self) {
        self.kill();
        self.sink.lock().await.take();
    }
}

pub(crate) async fn write_loop(mut rx: mpsc::UnboundedReceiver<Out>, ob: Arc<Outbox>) {
    let work = async {
        while let Some(first) = rx.recv().await {
            let mut guard = ob.sink.lock().await;
            let Some(sink) = guard.as_mut() else { return Ok(()) };
            // Coalesce whatever is ready into one flush.
            let mut next = Some(first);
            while let Some(o) = next.take() {
                match o {
                    Out::Text(t) => {
                        let n = t.len();
                        sink.feed(Message::Text(t.into())).await?;
                        ob.bytes.fetch_sub(n, Ordering::AcqRel);
                    }
                    Out::Ping => sink.feed(Message::Ping(Bytes::new())).await?,
                    Out::Flush => {}
                    Out::Close(f) => {
                        ob.queued.fetch_sub(1, Ordering::AcqRel);
                        sink.send(Message::Close(Some(f))).await?;
                        return Ok(());
                    }
                }
                ob.queued.fetch_sub(1, Ordering::AcqRel);
                next = rx.try_recv().ok();
            }
            sink.flush().await?;
        }
        Ok::<(), WsError>(())
    };
    tokio::select! {
        _ = work => {}
        _ = ob.killed() => {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reply routing

enum ReplyTo {
    Conn(Arc<Outbox>),
    Batch(Arc<Batch>, usize),
}

/// Where the answer to one request goes. `id: None` (a notification) sends nothing, but still completes its
/// slot in a batch.
pub(crate) struct Reply {
    to: ReplyTo,
    id: Option<Value>,
}

impl Reply {
    /// The answer to a lone request on connection `out`.
    pub(crate) fn to_conn(out: Arc<Outbox>, id: Option<Value>) -> Reply {
        Reply { to: ReplyTo::Conn(out), id }
    }

    /// The answer to element `slot` of `batch`.
    pub(crate) fn in_batch(batch: Arc<Batch>, slot: usize, id: Option<Value>) -> Reply {
        Reply { to: ReplyTo::Batch(batch, slot), id }
    }

    /// The call ran: answer it (unless it was a notification).
    pub(crate) fn outcome(self, outcome: Outcome) {
        let text = self.id.as_ref().map(|id| wire::outcome_reply(&outcome, id));
        self.finish(text);
    }

    /// Answer without running (errors, handshake), unless it was a notification.
    pub(crate) fn answer(self, f: impl FnOnce(&Value) -> String) {
        let text = self.id.as_ref().map(f);
        self.finish(text);
    }

    fn finish(self, text: Option<String>) {
        match self.to {
            ReplyTo::Conn(ob) => {
                if let Some(t) = text {
                    ob.push(t);
                }
            }
            ReplyTo::Batch(b, slot) => b.fill(slot, text),
        }
    }
}

/// The replies of one batch, sent as one array frame once every element is answered (JSON-RPC 2.0 §6).
pub(crate) struct Batch {
    out: Arc<Outbox>,
    state: Mutex<BatchState>,
}

struct BatchState {
    parts: Vec<Option<String>>,
    remaining: usize,
}

impl Batch {
    /// A batch of `n` requests answering on `out`.
    pub(crate) fn new(out: Arc<Outbox>, n: usize) -> Arc<Batch> {
        Arc::new(Batch { out, state: Mutex::new(BatchState { parts: (0..n).map(|_| None).collect(), remaining: n }) })
    }

    fn fill(&self, slot: usize, text: Option<String>) {
        let parts = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.parts[slot] = text;
            st.remaining -= 1;
            if st.remaining > 0 {
                return;
            }
            std::mem::take(&mut st.parts)
        };
        if parts.iter().any(Option::is_some) {
            self.out.push(wire::batch_reply(parts.iter().flatten().map(String::as_str)));
        }
    }
}
