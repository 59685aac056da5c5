//! `NativeRpcServer` / `NativeRpcClient`: `crates/rpc` behind `lib/rpc-server.js` and `lib/rpc-client.js`.
//!
//! Values cross as JSON text: JavaScript's `JSON.stringify` is exactly what rpc-websockets put on the wire
//! (`toJSON`, dropped `undefined` keys...), and Rust never has to look inside JavaScript objects or errors.
use std::sync::Arc;
use std::time::Duration;

use libvms_calllog::{CallLog, Ended};
use libvms_errors::err;
use libvms_rpc::{
    BoxFuture, Call, CallReply, ClientState, LogTail, Outcome, Pipelined, ReplyQueue, RpcClient, RpcServer,
    ServerConfig, Tickets, VmThread, Logged,
};
use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::Value;
use tokio::sync::watch;

use crate::call_log::NativeLog;
use crate::errors::{guard, js};

/// `(ticket, callsJson) => void`, where callsJson is `[[methodName, argsJson, userId, extra?], ...]`: every call
/// queued at the moment, handed over in order. JavaScript gives each call's entry parts with `commitCall` as it runs
/// and answers with `reply(ticket, outcomesJson)` once every call has run (no promise crosses the boundary). Weak:
/// a mounted VM alone never keeps Node alive (a listening server does, through `untilClosed`), and it is released
/// when the mount's last call is done.
type CallFn = ThreadsafeFunction<FnArgs<(u32, String)>, (), FnArgs<(u32, String)>, Status, false, true>;

/// The JavaScript thread of a mounted VM (the pipeline's policy is in crates/rpc `pipeline`).
struct JsThread(CallFn);

impl VmThread for JsThread {
    /// The tsfn queue is FIFO and the JS function hands the calls to the VM's own serial queue at once.
    fn hand_over(&self, ticket: u32, calls: &[Call], taken: Box<dyn FnOnce() + Send>) -> Result<(), String> {
        let batch: Vec<Value> = calls
            .iter()
            .map(|c| {
                // The arguments as JavaScript's JSON.stringify writes them: the text the script gets and the log keeps.
                let params = libvms_calllog::js_json_args(&c.params);
                // A signed call's `auth` member is added to its entry in Rust (crates/rpc `Tickets::commit`).
                let call = vec![Value::String(c.method.clone()), Value::String(params), Value::String(c.user_id.clone())];
                Value::Array(call)
            })
            .collect();
        let args = FnArgs::from((ticket, Value::Array(batch).to_string()));
        let status = self.0.call_with_return_value(args, ThreadsafeFunctionCallMode::NonBlocking, move |_, _| {
            taken();
            Ok(())
        });
        if status == Status::Ok {
            Ok(())
        } else {
            Err(status.to_string())
        }
    }
}

/// A VM's call log: Rust appends the entries of RPC calls, and replies wait for them to be durable, without a trip
/// through JavaScript.
struct LogOf(CallLog);

impl LogTail for LogOf {
    fn append(&self, entry: Vec<u8>) -> BoxFuture<Result<u64, String>> {
        let appended = self.0.append(vec![entry]);
        Box::pin(async move { appended.await.map_err(|e| e.message) })
    }

    fn receipt(&self, index: u64, call: [u8; 32]) -> Option<Value> {
        crate::auth::make_receipt(&self.0, index, call).ok()
    }
}

fn internal(message: String) -> Outcome {
    Outcome::Thrown { name: "Error".into(), message }
}

/// One call's ending as JavaScript reports it: `["v", result]`, `["u"]` (undefined), `["t", name, message]` (an
/// Error thrown) or `["x", value]` (anything else thrown).
fn to_outcome(o: Value) -> Outcome {
    let Value::Array(mut a) = o else { return internal("Internal error: bad outcome".into()) };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    match a.first().and_then(Value::as_str) {
        Some("v") if a.len() == 2 => Outcome::Value(a.swap_remove(1)),
        Some("u") => Outcome::Undefined,
        Some("t") => Outcome::Thrown { name: text(a.get(1)), message: text(a.get(2)) },
        Some("x") if a.len() == 2 => Outcome::ThrownValue(a.swap_remove(1)),
        _ => internal("Internal error: bad outcome".into()),
    }
}

/// `new RPCServer(opts)` limits; times in milliseconds, sizes in bytes. Absent: the crate's defaults.
#[napi(object)]
pub struct ServerOptions {
    pub max_message_size: Option<f64>,
    pub max_connections: Option<u32>,
    pub max_queue: Option<u32>,
    pub max_outgoing_size: Option<f64>,
    pub ping_interval: Option<f64>,
    /// 0: never drop idle connections.
    pub idle_timeout: Option<f64>,
    pub handshake_timeout: Option<f64>,
    pub close_timeout: Option<f64>,
    pub max_connections_per_address: Option<u32>,
    pub max_buffered_bytes_per_address: Option<f64>,
    pub max_buffered_bytes: Option<f64>,
}

fn positive(v: f64, what: &str) -> libvms_errors::Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(err::bad_argument(format!("{what} must be a non-negative number")))
    }
}

fn ms(v: f64, what: &str) -> libvms_errors::Result<Duration> {
    positive(v, what).map(|v| Duration::from_secs_f64(v / 1000.0))
}

fn config(o: Option<ServerOptions>) -> libvms_errors::Result<ServerConfig> {
    let mut c = ServerConfig::default();
    let Some(o) = o else { return Ok(c) };
    if let Some(v) = o.max_message_size {
        c = c.max_message_bytes(positive(v, "maxMessageSize")? as usize);
    }
    if let Some(v) = o.max_connections {
        c = c.max_connections(v as usize);
    }
    if let Some(v) = o.max_queue {
        c = c.max_queue(v as usize);
    }
    if let Some(v) = o.max_outgoing_size {
        c = c.max_outgoing_bytes(positive(v, "maxOutgoingSize")? as usize);
    }
    if let Some(v) = o.ping_interval {
        c = c.ping_interval(ms(v, "pingInterval")?);
    }
    if let Some(v) = o.idle_timeout {
        c = c.idle_timeout(Some(ms(v, "idleTimeout")?).filter(|d| !d.is_zero()));
    }
    if let Some(v) = o.handshake_timeout {
        c = c.handshake_timeout(ms(v, "handshakeTimeout")?);
    }
    if let Some(v) = o.max_connections_per_address {
        c = c.max_connections_per_address(v as usize);
    }
    if let Some(v) = o.max_buffered_bytes_per_address {
        c = c.max_buffered_bytes_per_address(positive(v, "maxBufferedBytesPerAddress")? as usize);
    }
    if let Some(v) = o.max_buffered_bytes {
        c = c.max_buffered_bytes(positive(v, "maxBufferedBytes")? as usize);
    }
    if let Some(v) = o.close_timeout {
        c = c.close_timeout(ms(v, "closeTimeout")?);
    }
    Ok(c)
}

#[napi]
pub struct NativeRpcServer {
    server: RpcServer,
    tickets: Arc<Tickets>,
    /// Set once `close()` has finished: ends `untilClosed()`.
    closed: watch::Sender<bool>,
}

#[napi]
impl NativeRpcServer {
    #[napi(constructor, catch_unwind)]
    pub fn new(opts: Option<ServerOptions>) -> napi::Result<Self> {
        guard(|| {
            let server = RpcServer::new(config(opts)?);
            Ok(NativeRpcServer { server, tickets: Arc::default(), closed: watch::channel(false).0 })
        })
    }

    /// Serve a VM at `path`: its callable method names, the handshake's extra fields (a JSON object), the
    /// function that runs calls, and the VM's call log (replies wait for their entries to be durable in it).
    #[napi(catch_unwind)]
    pub fn mount(
        &self,
        path: String,
        methods: Vec<String>,
        info_json: String,
        call: CallFn,
        log: Option<&NativeLog>,
        signed: Option<bool>,
    ) -> napi::Result<()> {
        guard(|| {
            let info = match serde_json::from_str::<Value>(&info_json) {
                Ok(Value::Object(m)) => m,
                _ => return Err(err::bad_argument("info must be a JSON object")),
            };
            let log = log.map(|l| l.core.clone());
            // Signed mode: each caller's last sequence number comes from the log, so replays fail after restarts.
            let auth = match (&log, signed.unwrap_or(false)) {
                (Some(core), true) => Some(crate::auth::mount_auth(core)?),
                (None, true) => return Err(err::bad_argument("a signed VM is mounted with its call log")),
                _ => None,
            };
            let mut backend = Pipelined::new(Box::new(JsThread(call)), self.tickets.clone());
            backend.methods = methods;
            backend.info = info;
            backend.auth = auth;
            backend.log = log.map(|l| Arc::new(LogOf(l)) as Arc<dyn LogTail>);
            self.server.mount(&path, Arc::new(backend))
        })
    }

    /// Call `slot` of hand-off `ticket` has run: Rust builds its log entry from the call it holds and this outcome
    /// (`resJson` the result's text, or `errJson` the error's name as JSON text; `extraJson` `[[key, valueJson],
    /// ...]`, members after `result`), and queues it for the log's next group commit, in call order.
    #[napi]
    pub fn commit_call(
        &self,
        ticket: u32,
        slot: u32,
        files_version: f64,
        res_json: Option<String>,
        err_json: Option<String>,
        extra_json: Option<String>,
    ) {
        let ended = match (res_json, err_json) {
            (_, Some(err)) => Ended::Threw(err),
            (Some(res), None) => Ended::Value(res),
            (None, None) => Ended::Undefined,
        };
        let extra = extra_json.and_then(|t| serde_json::from_str::<Vec<(String, String)>>(&t).ok()).unwrap_or_default();
        let logged = Logged { files_version: files_version.max(0.0) as u64, ended, extra };
        self.tickets.commit(ticket, slot as usize, logged);
    }

    /// The outcomes of the calls handed over with `ticket` (a JSON array, one per call, in order; see `to_outcome`),
    /// sent once their entries are durable.
    #[napi]
    pub fn reply(&self, ticket: u32, outcomes_json: String) {
        let outcomes = serde_json::from_str::<Vec<Value>>(&outcomes_json).ok().map(|o| o.into_iter().map(to_outcome).collect());
        self.tickets.answer(ticket, outcomes);
    }

    #[napi(catch_unwind)]
    pub fn unmount(&self, path: String) -> napi::Result<bool> {
        guard(|| Ok(self.server.unmount(&path)))
    }

    #[napi]
    pub fn mounts(&self) -> Vec<String> {
        self.server.mounts()
    }

    /// Calls waiting at `path` (the running one not counted); `null` when nothing is mounted there.
    #[napi]
    pub fn queued(&self, path: String) -> Option<u32> {
        self.server.queued(&path).map(|n| n as u32)
    }

    #[napi(getter)]
    pub fn connections(&self) -> u32 {
        self.server.connections() as u32
    }

    /// The bound port once listening.
    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.server.local_addr().map(|a| a.port() as u32)
    }

    /// The bound address (IP) once listening.
    #[napi(getter)]
    pub fn address(&self) -> Option<String> {
        self.server.local_addr().map(|a| a.ip().to_string())
    }

    /// Bind and serve; resolves with the bound port.
    #[napi]
    pub async fn listen(&self, host: String, port: u32) -> napi::Result<u32> {
        let port = u16::try_from(port).map_err(|_| crate::errors::to_js(err::bad_argument("port must be 0..65535")))?;
        let addr = js(self.server.listen(&host, port).await)?;
        Ok(addr.port() as u32)
    }

    /// Pending while the server is open: as with `net.Server`, a listening server keeps Node running.
    #[napi]
    pub async fn until_closed(&self) -> napi::Result<()> {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
        Ok(())
    }

    /// Close every connection and resolve once they are gone and every accepted call has finished.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.server.close().await;
        self.closed.send_replace(true);
        Ok(())
    }
}

/// A reply as JavaScript sees it: `ok` with `json` the result (absent: `undefined`), or not `ok` with `json`
/// the wire's `error` member.
#[napi(object)]
pub struct WireReply {
    pub ok: bool,
    pub json: Option<String>,
}

fn wire_reply(r: CallReply) -> WireReply {
    match r {
        Ok(v) => WireReply { ok: true, json: v.map(|v| v.to_string()) },
        Err(e) => WireReply { ok: false, json: Some(e.to_json().to_string()) },
    }
}

/// How the connection ended (`code` absent when the server sent no close frame).
#[napi(object)]
pub struct CloseEvent {
    pub code: Option<u32>,
    pub reason: String,
    pub error: Option<String>,
}

#[napi]
pub struct NativeRpcClient {
    client: Arc<RpcClient>,
    replies: Arc<ReplyQueue<ClientReply>>,
}

/// Called (with no arguments) when replies are waiting: JavaScript then takes them all with `takeReplies()`.
type WakeFn = ThreadsafeFunction<(), (), (), Status, false>;

/// One finished call: `token` is the caller's name for it. `error` (a native error, as data) when
/// the call failed here (timeout, closed connection); else the wire reply as in [`WireReply`].
#[napi(object)]
pub struct ClientReply {
    pub token: u32,
    pub ok: bool,
    pub json: Option<String>,
    pub error: Option<crate::errors::NativeError>,
    /// A signed call's receipt, as JSON.
    pub receipt: Option<String>,
}

/// Open a WebSocket to `url` (as `user`, when given) without the handshake. `wake` is called when call replies
/// are waiting (see `takeReplies`).
#[napi]
pub async fn rpc_open(url: String, user: Option<String>, timeout_ms: f64, wake: WakeFn) -> napi::Result<NativeRpcClient> {
    let timeout = js(ms(timeout_ms, "timeout"))?;
    let client = Arc::new(js(RpcClient::open(&url, user.as_deref(), timeout).await)?);
    let replies = Arc::new(ReplyQueue::new(move || {
        wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }));
    Ok(NativeRpcClient { client, replies })
}

#[napi]
impl NativeRpcClient {
    /// Sign every call from now on (call before the handshake, which names the log key calls are signed for).
    #[napi]
    pub fn set_secret_key(&self, secret_key: napi::bindgen_prelude::Buffer) -> napi::Result<()> {
        js(self.client.set_signer(&secret_key))
    }

    #[napi]
    pub async fn handshake(&self) -> napi::Result<WireReply> {
        js(self.client.handshake().await).map(wire_reply)
    }

    /// Call `method` with `params_json` (a JSON array); `timeout_ms` 0 waits as long as the connection lives.
    /// The request is sent before this returns, so calls reach the server in the order JavaScript made them; the
    /// reply comes back through `takeReplies`, named by `token`.
    #[napi]
    pub fn call(&self, token: u32, method: String, params_json: String, timeout_ms: f64) -> napi::Result<()> {
        let params = match serde_json::from_str::<Value>(&params_json) {
            Ok(Value::Array(a)) => a,
            _ => return js(Err(err::bad_argument("params must be a JSON array"))),
        };
        let timeout = Some(js(ms(timeout_ms, "timeout"))?).filter(|t| !t.is_zero());
        let reply = self.client.start_signed_call(&method, params, timeout);
        let replies = self.replies.clone();
        replies.expect();
        napi::bindgen_prelude::spawn(async move {
            let reply = match reply.await {
                Ok((r, receipt)) => {
                    let WireReply { ok, json } = wire_reply(r);
                    ClientReply { token, ok, json, error: None, receipt: receipt.map(|r| r.to_string()) }
                }
                Err(e) => ClientReply { token, ok: false, json: None, error: Some(crate::errors::structured(e)), receipt: None },
            };
            replies.answer(reply);
        });
        Ok(())
    }

    /// Every reply that has arrived since the last take, in arrival order.
    #[napi]
    pub fn take_replies(&self) -> Vec<ClientReply> {
        self.replies.take()
    }

    /// The handshake result as JSON (`null` before it).
    #[napi(getter)]
    pub fn backend_info(&self) -> String {
        self.client.backend_info().to_string()
    }

    #[napi(getter)]
    pub fn is_open(&self) -> bool {
        matches!(self.client.state(), ClientState::Open)
    }

    /// Resolves when the connection ends, for whatever reason, once every call's reply has been queued for
    /// `takeReplies`. Pending while open: an open client keeps Node running, as a `ws` socket does.
    #[napi]
    pub async fn closed(&self) -> napi::Result<CloseEvent> {
        let info = self.client.closed().await;
        self.replies.finish().await;
        Ok(CloseEvent { code: info.code.map(u32::from), reason: info.reason, error: info.error })
    }

    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.client.close().await;
        Ok(())
    }
}
