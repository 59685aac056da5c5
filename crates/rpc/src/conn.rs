//! One server-side WebSocket connection: the upgrade, a reader that validates and enqueues, a writer that
//! drains this connection's own outgoing queue (so a slow reader never stalls a mount), and the reply routing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{Sink, SinkExt, StreamExt};
use percent_encoding::percent_decode;
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::backend::{Call, Outcome};
use crate::limits::Metered;
use crate::queue::Job;
use crate::server::{Mount, Shared, TaskGuard};
use crate::wire::{self, ErrData, Entry, Incoming, Params};

type Ws = WebSocketStream<Metered>;

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// `unmount()` of the connection's path.
    Unmounted,
    /// `close()` of the server.
    ServerClosing,
}

// ---------------------------------------------------------------------------------------------------------
// Outgoing side

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
    fn new(sink: SplitSink<Ws, Message>, limit: usize) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Out>) {
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

    fn send(&self, o: Out) {
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(o).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn close(&self, code: CloseCode, reason: &'static str) {
        self.closing.store(true, Ordering::Release);
        self.send(Out::Close(CloseFrame { code, reason: reason.into() }));
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_notify.notify_waiters();
    }

    async fn killed(&self) {
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
    async fn release(&self) {
        self.kill();
        self.sink.lock().await.take();
    }
}

async fn write_loop(mut rx: mpsc::UnboundedReceiver<Out>, ob: Arc<Outbox>) {
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
struct Batch {
    out: Arc<Outbox>,
    state: Mutex<BatchState>,
}

struct BatchState {
    parts: Vec<Option<String>>,
    remaining: usize,
}

impl Batch {
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

// ---------------------------------------------------------------------------------------------------------
// Incoming side

/// `?user=` of the upgrade URL, decoded as Node's querystring did (`+` is a space, percent-escapes decoded);
/// `""` without it.
pub(crate) fn user_from_query(query: Option<&str>) -> String {
    let decode = |s: &str| -> String {
        let plus = s.replace('+', " ");
        percent_decode(plus.as_bytes()).decode_utf8_lossy().into_owned()
    };
    for pair in query.unwrap_or("").split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(k) == "user" {
            return decode(v);
        }
    }
    String::new()
}

struct Ctx {
    shared: Arc<Shared>,
    path: String,
    user: String,
    mount: Option<Arc<Mount>>,
    out: Arc<Outbox>,
}

impl Ctx {
    /// The mount at this connection's path now (mounts may come and go while it is open).
    fn mount(&mut self) -> Option<Arc<Mount>> {
        if let Some(m) = &self.mount {
            if m.alive() {
                return Some(m.clone());
            }
        }
        self.mount = self.shared.lookup(&self.path);
        self.mount.clone()
    }

    fn handle(&mut self, text: &[u8]) {
        match wire::parse(text) {
            Incoming::ParseError(data) => {
                self.out.push(wire::std_error_reply(wire::PARSE_ERROR, ErrData::Str(&data), &Value::Null))
            }
            Incoming::EmptyBatch => self.out.push(wire::std_error_reply(
                wire::INVALID_REQUEST,
                ErrData::Str("Invalid array"),
                &Value::Null,
            )),
            Incoming::One(e) => {
                let out = self.out.clone();
                self.dispatch(e, move |id| Reply { to: ReplyTo::Conn(out), id })
            }
            Incoming::Batch(entries) => {
                let n = entries.len();
                let batch = Arc::new(Batch {
                    out: self.out.clone(),
                    state: Mutex::new(BatchState { parts: (0..n).map(|_| None).collect(), remaining: n }),
                });
                for (slot, e) in entries.into_iter().enumerate() {
                    let b = batch.clone();
                    self.dispatch(e, move |id| Reply { to: ReplyTo::Batch(b, slot), id });
                }
            }
        }
    }

    fn dispatch(&mut self, entry: Entry, reply: impl FnOnce(Option<Value>) -> Reply) {
        let req = match entry {
            Entry::Invalid { id, data } => {
                // Invalid requests are answered even without an id (which is then null).
                let data = data.map_or(ErrData::None, ErrData::Str);
                return reply(Some(id)).answer(|id| wire::std_error_reply(wire::INVALID_REQUEST, data, id));
            }
            Entry::Request(r) => r,
        };
        let reply = reply(req.id);
        let Some(mount) = self.mount() else {
            return reply.answer(|id| wire::std_error_reply(wire::METHOD_NOT_FOUND, ErrData::None, id));
        };
        match req.method.as_str() {
            "handshake" => return reply.answer(|id| wire::raw_result_reply(&mount.handshake, id)),
            "init" => {
                return reply.answer(|id| {
                    wire::error_reply(wire::SERVER_ERROR, "Error", ErrData::Str(wire::INIT_REFUSED), id)
                })
            }
            m if !mount.methods.contains(m) => {
                return reply.answer(|id| wire::std_error_reply(wire::METHOD_NOT_FOUND, ErrData::None, id))
            }
            _ => {}
        }
        let params = match req.params {
            Params::Missing => Vec::new(),
            Params::Args(a) => a,
            Params::Invalid => {
                return reply.answer(|id| wire::std_error_reply(wire::INVALID_PARAMS, ErrData::None, id))
            }
        };
        let full = |job: Job| {
            job.reply.answer(|id| wire::error_reply(wire::SERVER_ERROR, "Error", ErrData::Str(wire::QUEUE_FULL), id))
        };
        let Some(guard) = &mount.auth else {
            let job = Job { call: Call::new(req.method, params, self.user.clone()), reply };
            return mount.queue.push(job).unwrap_or_else(full);
        };
        // Signed mode (auth.rs): queued only if the signature and the sequence number hold.
        let refuse = |reply: Reply, e: libvms_auth::call::CallError| {
            let why = e.to_string();
            reply.answer(|id| wire::error_reply(crate::auth::AUTH_REFUSED, crate::auth::AUTH_MESSAGE, ErrData::Str(&why), id))
        };
        let signed = match guard.verify(req.auth.as_ref(), &req.method, &params) {
            Ok(s) => s,
            Err(e) => return refuse(reply, e),
        };
        let mut call = Call::new(req.method, params, signed.caller_id());
        call.auth = Some(signed);
        match guard.sequence(Job { call, reply }, |job| mount.queue.push(job)) {
            Ok(()) => {}
            Err((job, Some(e))) => refuse(job.reply, e),
            Err((job, None)) => full(job),
        }
    }
}

/// Keeps the count of open connections right, however the task ends.
pub(crate) struct LiveGuard(pub(crate) Arc<Shared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

enum End {
    /// The close handshake completed or the peer vanished: drop at once.
    Done,
    /// We queued a close frame and cannot read any more: let the writer flush it first.
    Flush,
}

/// Serve one accepted TCP connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, tcp: Metered, refuse: bool, _live: LiveGuard, _task: TaskGuard) {
    let cfg = shared.config.clone();
    let ws_cfg = WebSocketConfig::default()
        .read_buffer_size(crate::config::WS_READ_BUFFER)
        .max_message_size(Some(cfg.max_message_bytes))
        .max_frame_size(Some(cfg.max_message_bytes));

    let mut target: Option<(String, String)> = None;
    let slot = tcp.slot.clone();
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if refuse {
            let mut r = ErrorResponse::new(Some("Too many connections".to_owned()));
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Err(r);
        }
        target = Some((req.uri().path().to_owned(), user_from_query(req.uri().query())));
        Ok(resp)
    };
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(ws_cfg));
    let ws = match tokio::time::timeout(cfg.handshake_timeout, upgrade).await {
        Ok(Ok(ws)) => ws,
        _ => return,
    };
    let Some((path, user)) = target else { return };
    slot.message_done(); // the upgrade request is done with

    let (close_tx, mut close_rx) = watch::channel(None::<CloseReason>);
    let conn_id = shared.register_conn(&path, close_tx);

    let (sink, mut stream) = ws.split();
    let (out, rx) = Outbox::new(sink, cfg.max_outgoing_bytes);
    let mut writer = tokio::spawn(write_loop(rx, out.clone()));
    let mut ctx = Ctx { shared: shared.clone(), path, user, mount: None, out: out.clone() };

    let ping_every = cfg.ping_interval.max(Duration::from_millis(10));
    let mut tick = interval_at(Instant::now() + ping_every, ping_every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_rx = Instant::now();
    let mut deadline: Option<Instant> = None;
    let mut watch_close = true;

    // A close requested before we registered (server closing) is already in the channel.
    if close_rx.borrow_and_update().is_some() {
        out.close(CloseCode::Normal, "");
        deadline = Some(Instant::now() + cfg.close_timeout);
        watch_close = false;
    }

    let end = loop {
        tokio::select! {
            m = stream.next() => match m {
                None => break End::Done,
                Some(Ok(msg)) => {
                    last_rx = Instant::now();
                    slot.message_done();
                    match msg {
                        Message::Text(t) => ctx.handle(t.as_bytes()),
                        Message::Binary(b) => ctx.handle(&b),
                        _ => {} // pings are answered by tungstenite; pongs and close only count as life
                    }
                }
                Some(Err(WsError::Capacity(_))) => {
                    out.close(CloseCode::Size, "Message too big");
                    break End::Flush;
                }
                Some(Err(_)) => break End::Done,
            },
            _ = tick.tick() => {
                let quiet = last_rx.elapsed();
                if matches!(cfg.idle_timeout, Some(idle) if quiet >= idle) {
                    break End::Done;
                }
                if quiet >= ping_every {
                    out.send(Out::Ping);
                }
            }
            r = close_rx.changed(), if watch_close => {
                watch_close = false;
                if r.is_ok() && close_rx.borrow().is_some() {
                    out.close(CloseCode::Normal, "");
                    deadline = Some(Instant::now() + cfg.close_timeout);
                }
            }
            _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => break End::Done,
            _ = out.killed() => break End::Done,
        }
    };

    let mut writer_done = false;
    if let End::Flush = end {
        writer_done = tokio::time::timeout(cfg.close_timeout, &mut writer).await.is_ok();
    }
    out.kill();
    if !writer_done {
        let _ = writer.await;
    }
    out.release().await;
    drop(stream);
    shared.deregister_conn(conn_id);
}
