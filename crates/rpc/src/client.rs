//! `RpcClient`: the nodevms-client protocol (connect, handshake, calls with id matching, close).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use libvms_errors::{err, Result};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::wire::{self, WireError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A call's reply and, for a signed call, its receipt.
pub type SignedReply = (CallReply, Option<Value>);

/// The answer to one call: `Ok(Some(v))` a result, `Ok(None)` no result key (undefined), `Err` the wire error.
pub type CallReply = std::result::Result<Option<Value>, WireError>;

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CloseInfo {
    /// The close code the server sent, if it sent a close frame.
    pub code: Option<u16>,
    pub reason: String,
    /// Set when the connection ended by an error (reset, protocol error...): emit `'error'` before `'close'`.
    pub error: Option<String>,
}

/// The client's connection state, as a `tokio::sync::watch` value.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientState {
    Open,
    Closed(CloseInfo),
}

/// encodeURIComponent's set: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
const URI_COMPONENT: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'!').remove(b'~').remove(b'*').remove(b'\'').remove(b'(').remove(b')');

enum Out {
    Text(String),
    Close,
}

struct Inner {
    out: mpsc::UnboundedSender<Out>,
    pending: Mutex<HashMap<u64, oneshot::Sender<SignedReply>>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Signs every call once set (client_auth.rs).
    signer: Mutex<Option<crate::client_auth::Signer>>,
}

impl Inner {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<SignedReply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, text: String) -> Result<()> {
        if self.closed.load(Ordering::Acquire) || self.out.send(Out::Text(text)).is_err() {
            return Err(err::closed("RPC connection is closed"));
        }
        Ok(())
    }

    /// Register the reply slot and queue the request (synchronously).
    fn send_request(&self, method: &str, params: Option<&[Value]>) -> Result<(u64, oneshot::Receiver<SignedReply>)> {
        // A signing client numbers and sends under one lock, so sequence numbers go out in increasing order.
        let mut signer = self.signer.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut text = wire::request(method, params, id);
        if let Some(s) = signer.as_mut().filter(|_| method != "handshake") {
            text = s.sign_request(text, method, params.unwrap_or(&[]))?;
        }
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        // Checked after inserting: the reader drains `pending` after setting `closed`, so no call is stranded.
        if let Err(e) = self.send(text) {
            self.pending().remove(&id);
            return Err(e);
        }
        Ok((id, rx))
    }

    async fn wait_reply(
        &self,
        id: u64,
        rx: oneshot::Receiver<SignedReply>,
        timeout: Option<Duration>,
        method: &str,
    ) -> Result<SignedReply> {
        let outcome = match timeout {
            Some(t) => match tokio::time::timeout(t, rx).await {
                Ok(r) => r,
                Err(_) => {
                    self.pending().remove(&id);
                    return Err(err::timeout(format!("reply timeout: {method}: no reply within {} ms", t.as_millis())));
                }
            },
            None => rx.await,
        };
        outcome.map_err(|_| err::closed(format!("{method}: the connection closed before the reply")))
    }
}

/// A connection to one mounted VM.
pub struct RpcClient {
    url: String,
    timeout: Duration,
    inner: Arc<Inner>,
    info: OnceLock<Value>,
    state: watch::Receiver<ClientState>,
    reader: JoinHandle<()>,
}

impl RpcClient {
    /// Connect to `url` (`ws://host:port/path`) as `user` (sent as `?user=`, percent-encoded) and perform the
    /// handshake. `timeout` bounds the connection and handshake, and is the default timeout of every call.
    /// A handshake answered with an error (e.g. nothing mounted at the path) is `ConnectionFailed`; use
    /// [`open`](Self::open) and [`handshake`](Self::handshake) to get the wire error itself.
    pub async fn connect(url: &str, user: Option<&str>, timeout: Duration) -> Result<RpcClient> {
        let client = RpcClient::open(url, user, timeout).await?;
        match client.handshake().await {
            Ok(Ok(_)) => Ok(client),
            Ok(Err(wire)) => {
                client.close().await;
                Err(err::connection(format!("handshake refused: {wire}")))
            }
            Err(e) => {
                client.close().await;
                Err(e)
            }
        }
    }

    /// Open the WebSocket without the handshake.
    pub async fn open(url: &str, user: Option<&str>, timeout: Duration) -> Result<RpcClient> {
        if !url.starts_with("ws://") {
            return Err(err::bad_argument(format!("expected a ws:// URL, got {url:?}")));
        }
        let mut full = url.to_owned();
        if let Some(u) = user {
            full.push(if url.contains('?') { '&' } else { '?' });
            full.push_str("user=");
            full.extend(utf8_percent_encode(u, URI_COMPONENT));
        }
        let cfg = WebSocketConfig::default()
            .read_buffer_size(crate::config::WS_READ_BUFFER)
            .max_message_size(Some(256 << 20))
            .max_frame_size(Some(256 << 20));
        let ws = match tokio::time::timeout(timeout, tokio_tungstenite::connect_async_with_config(full, Some(cfg), true)).await {
            Err(_) => return Err(err::timeout(format!("connecting to {url} timed out"))),
            Ok(Err(WsError::Url(e))) => return Err(err::bad_argument(format!("bad URL {url:?}: {e}"))),
            Ok(Err(e)) => return Err(err::connection(format!("cannot connect to {url}: {e}"))),
            Ok(Ok((ws, _response))) => ws,
        };
        let (sink, stream) = ws.split();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ClientState::Open);
        let inner = Arc::new(Inner {
            out: out_tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            signer: Mutex::new(None),
        });
        tokio::spawn(write_loop(sink, out_rx));
        let reader = tokio::spawn(read_loop(stream, inner.clone(), state_tx));
        Ok(RpcClient { url: url.to_owned(), timeout, inner, info: OnceLock::new(), state, reader })
    }

    /// Call `handshake` and keep its result as [`backend_info`](Self::backend_info).
    pub async fn handshake(&self) -> Result<CallReply> {
        let reply = self.request("handshake", None, Some(self.timeout)).await?;
        if let Ok(Some(info)) = &reply {
            let _ = self.info.set(info.clone());
            if let Some(s) = self.inner.signer.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                s.learn(info);
            }
        }
        Ok(reply)
    }

    /// The URL given to `connect` (without `?user=`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The handshake result `{methods, callLogUrl, filesArchiveUrl, ...}`; `null` before the handshake.
    pub fn backend_info(&self) -> Value {
        self.info.get().cloned().unwrap_or(Value::Null)
    }

    /// `backend_info().methods`.
    pub fn methods(&self) -> Vec<String> {
        match self.info.get().and_then(|i| i.get("methods")) {
            Some(Value::Array(a)) => a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    }

    /// Call `method` with `params`, with the client's timeout. `Err(Timeout)` when no reply came in time,
    /// `Err(Closed)` when the connection is (or gets) closed.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<CallReply> {
        self.request(method, Some(&params), Some(self.timeout)).await
    }

    /// [`call`](Self::call) with its own timeout (`None`: wait as long as the connection lives).
    pub async fn call_with_timeout(&self, method: &str, params: Vec<Value>, timeout: Option<Duration>) -> Result<CallReply> {
        self.request(method, Some(&params), timeout).await
    }

    /// Send a notification (no id, no reply). It is executed and logged like any call.
    pub fn notify(&self, method: &str, params: Vec<Value>) -> Result<()> {
        let mut text = wire::request(method, Some(&params), 0);
        // A notification has no id member at all.
        let cut = text.rfind(",\"id\":").expect("request() writes an id");
        text.truncate(cut);
        text.push('}');
        self.send(text)
    }

    fn send(&self, text: String) -> Result<()> {
        self.inner.send(text)
    }

    /// Send the request now, on the caller's thread, and return the wait for its reply. Calls started one after
    /// another go out in that order, whatever threads later poll them (a JavaScript caller's order must be
    /// the server's arrival order, as with nodevms-client).
    pub fn start_call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
    ) -> impl std::future::Future<Output = Result<CallReply>> + Send + 'static {
        let signed = self.start_signed_call(method, params, timeout);
        async move { signed.await.map(|r| r.0) }
    }

    /// Sign every call from now on with `secret` (Ed25519: its 32-byte seed or the 64-byte `seed ‖ public`), for
    /// the VM whose log key the handshake names. Set it before the handshake.
    pub fn set_signer(&self, secret: &[u8]) -> Result<()> {
        let s = crate::client_auth::Signer::new(secret)?;
        *self.inner.signer.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
        Ok(())
    }

    /// [`start_call`](Self::start_call), with the receipt a signed call's reply carries.
    pub fn start_signed_call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
    ) -> impl std::future::Future<Output = Result<SignedReply>> + Send + 'static {
        let sent = self.inner.send_request(method, Some(&params));
        let inner = self.inner.clone();
        let method = method.to_owned();
        async move {
            let (id, rx) = sent?;
            inner.wait_reply(id, rx, timeout, &method).await
        }
    }

    async fn request(&self, method: &str, params: Option<&[Value]>, timeout: Option<Duration>) -> Result<CallReply> {
        let (id, rx) = self.inner.send_request(method, params)?;
        self.inner.wait_reply(id, rx, timeout, method).await.map(|r| r.0)
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state.borrow().clone()
    }

    /// A receiver of state changes (`Open`, then `Closed` once), to emit `'close'`/`'error'` from.
    pub fn events(&self) -> watch::Receiver<ClientState> {
        self.state.clone()
    }

    /// Resolves when the connection has closed, for whatever reason.
    pub fn closed(&self) -> impl std::future::Future<Output = CloseInfo> + Send + 'static {
        let mut rx = self.state.clone();
        async move {
            match rx.wait_for(|s| matches!(s, ClientState::Closed(_))).await {
                Ok(s) => match &*s {
                    ClientState::Closed(info) => info.clone(),
                    ClientState::Open => CloseInfo::default(),
                },
                Err(_) => CloseInfo::default(),
            }
        }
    }

    /// Close with code 1000 and wait (at most the client's timeout) for the server's answer. Pending calls fail
    /// with `Closed`. Idempotent.
    pub async fn close(&self) {
        let _ = self.inner.out.send(Out::Close);
        if tokio::time::timeout(self.timeout, self.closed()).await.is_err() {
            self.reader.abort();
        }
    }
}

impl Drop for RpcClient {
    fn drop(&mut self) {
        // Best effort: say goodbye; the tasks end when the server answers (or the socket dies).
        let _ = self.inner.out.send(Out::Close);
    }
}

async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Out>) {
    let _ = async {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(o) = next.take() {
                match o {
                    Out::Text(t) => sink.feed(Message::Text(t.into())).await?,
                    Out::Close => {
                        let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                        sink.send(Message::Close(Some(frame))).await?;
                        return Ok(());
                    }
                }
                next = rx.try_recv().ok();
            }
            sink.flush().await?;
        }
        Ok::<(), WsError>(())
    }
    .await;
}

async fn read_loop(mut stream: SplitStream<Ws>, inner: Arc<Inner>, state: watch::Sender<ClientState>) {
    let mut info = CloseInfo::default();
    loop {
        match stream.next().await {
            None => break,
            Some(Ok(Message::Text(t))) => deliver(&inner, t.as_bytes()),
            Some(Ok(Message::Binary(b))) => deliver(&inner, &b),
            Some(Ok(Message::Close(frame))) => {
                if let Some(f) = frame {
                    info.code = Some(f.code.into());
                    info.reason = f.reason.to_string();
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                info.error = Some(e.to_string());
                break;
            }
        }
    }
    inner.closed.store(true, Ordering::Release);
    // Dropping the senders fails every pending call with `Closed`.
    inner.pending().clear();
    state.send_replace(ClientState::Closed(info));
}

fn deliver(inner: &Inner, text: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(text) else { return };
    let replies = match v {
        Value::Array(items) => items,
        one => vec![one],
    };
    for r in replies.into_iter().filter_map(wire::parse_reply) {
        let Some(id) = wire::id_u64(&r.id) else { continue };
        if let Some(tx) = inner.pending().remove(&id) {
            let _ = tx.send((r.outcome, r.receipt));
        }
    }
}
