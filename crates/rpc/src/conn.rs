//! One server-side WebSocket connection: the upgrade, then a reader that validates and enqueues. Its answers go
//! out through reply.rs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use percent_encoding::percent_decode;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::backend::Call;
use crate::limits::Metered;
use crate::queue::Job;
use crate::reply::{write_loop, Batch, Out, Outbox, Reply};
use crate::shared::{CloseReason, Mount, Shared, TaskGuard};
use crate::wire::{self, ErrData, Entry, Incoming, Params};

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
                self.dispatch(e, move |id| Reply::to_conn(out, id))
            }
            Incoming::Batch(entries) => {
                let n = entries.len();
                let batch = Batch::new(self.out.clone(), n);
                for (slot, e) in entries.into_iter().enumerate() {
                    let b = batch.clone();
                    self.dispatch(e, move |id| Reply::in_batch(b, slot, id));
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
        let (signed, hash) = match guard.verify(req.auth.as_ref(), &req.method, &params) {
            Ok(s) => s,
            Err(e) => return refuse(reply, e),
        };
        let mut call = Call::new(req.method, params, signed.caller_id());
        let (key, seq) = (signed.key, signed.seq);
        call.auth = Some(signed);
        call.auth_hash = Some(hash);
        match guard.sequence(key, seq, Job { call, reply }, |job| mount.queue.push(job)) {
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
