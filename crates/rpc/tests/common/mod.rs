//! A test VM and a raw WebSocket client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libvms_rpc::{Backend, BoxFuture, Call, Outcome, RpcServer, ServerConfig};
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const LOG_URL: &str = "dat://fde7d15194a0709331d0830287f6568dfbb8c7d28147229972aa2d4ce8f7b210";
pub const FILES_URL: &str = "dat://517d3b8dd6d2b7ec8373e4952712c1c5197d994d6967f97d9aa0272499bf90f8";
pub const HANDSHAKE_RESULT: &str = r#"{"methods":["hello","add","noop","whoami","fail","failType","echo","sleep","block","big","throwValue"],"callLogUrl":"dat://fde7d15194a0709331d0830287f6568dfbb8c7d28147229972aa2d4ce8f7b210","filesArchiveUrl":"dat://517d3b8dd6d2b7ec8373e4952712c1c5197d994d6967f97d9aa0272499bf90f8"}"#;

/// Records every call it runs, and the largest number of calls running at once.
pub struct TestVm {
    pub log: Mutex<Vec<Call>>,
    pub finished: Mutex<Vec<String>>,
    running: AtomicUsize,
    pub max_running: AtomicUsize,
    /// `block` waits for one permit.
    pub gate: Arc<Semaphore>,
}

impl TestVm {
    pub fn new() -> Arc<TestVm> {
        Arc::new(TestVm {
            log: Mutex::new(Vec::new()),
            finished: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            gate: Arc::new(Semaphore::new(0)),
        })
    }
    pub fn methods_called(&self) -> Vec<String> {
        self.log.lock().unwrap().iter().map(|c| c.method.clone()).collect()
    }
    pub fn calls(&self) -> usize {
        self.log.lock().unwrap().len()
    }
    pub fn done(&self) -> usize {
        self.finished.lock().unwrap().len()
    }
}

struct Running<'a>(&'a TestVm);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The backend view of a [`TestVm`].
pub struct Vm(pub Arc<TestVm>);

pub fn backend(vm: &Arc<TestVm>) -> Arc<dyn Backend> {
    Arc::new(Vm(vm.clone()))
}

impl Backend for Vm {
    fn methods(&self) -> Vec<String> {
        ["hello", "add", "noop", "whoami", "fail", "failType", "echo", "sleep", "block", "big", "throwValue"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
    fn info(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("callLogUrl".into(), json!(LOG_URL));
        m.insert("filesArchiveUrl".into(), json!(FILES_URL));
        m
    }
    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        let vm = self.0.clone();
        Box::pin(async move {
            vm.log.lock().unwrap().push(call.clone());
            let now = vm.running.fetch_add(1, Ordering::SeqCst) + 1;
            vm.max_running.fetch_max(now, Ordering::SeqCst);
            let out = {
                let _r = Running(&vm);
                let p = &call.params;
                match call.method.as_str() {
                    "hello" => Outcome::Value(json!(format!("hello {}", p[0].as_str().unwrap_or("")))),
                    "add" => Outcome::Value(json!(p[0].as_i64().unwrap() + p[1].as_i64().unwrap())),
                    "noop" => Outcome::Undefined,
                    "whoami" => Outcome::Value(json!(call.user_id)),
                    "fail" => Outcome::Thrown { name: "Error".into(), message: "boom".into() },
                    "failType" => Outcome::Thrown {
                        name: "TypeError".into(),
                        message: "Cannot read properties of null (reading 'x')".into(),
                    },
                    "echo" => Outcome::Value(Value::Array(call.params.clone())),
                    "sleep" => {
                        tokio::time::sleep(Duration::from_millis(p[0].as_u64().unwrap())).await;
                        Outcome::Value(p[1].clone())
                    }
                    "block" => {
                        vm.gate.acquire().await.unwrap().forget();
                        Outcome::Value(json!("unblocked"))
                    }
                    "big" => Outcome::Value(json!("x".repeat(p[0].as_u64().unwrap() as usize))),
                    "throwValue" => Outcome::ThrownValue(json!("oops")),
                    _ => unreachable!("the server only calls listed methods"),
                }
            };
            vm.finished.lock().unwrap().push(call.method.clone());
            out
        })
    }
}

pub async fn start(config: ServerConfig) -> (RpcServer, Arc<TestVm>, SocketAddr) {
    // Test clients often stop reading: do not wait long for their close answers.
    let server = RpcServer::new(config.close_timeout(Duration::from_millis(200)));
    let vm = TestVm::new();
    server.mount("/vm1", backend(&vm)).unwrap();
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    (server, vm, addr)
}

pub type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn raw(addr: SocketAddr, path_and_query: &str) -> Raw {
    let url = format!("ws://{addr}{path_and_query}");
    tokio_tungstenite::connect_async(url).await.expect("connect").0
}

pub async fn send(ws: &mut Raw, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// The next text frame (pings are skipped), within 10 s.
pub async fn recv(ws: &mut Raw) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("reply in time") {
            Some(Ok(Message::Text(t))) => return t.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Send one request and read one reply.
pub async fn rt(ws: &mut Raw, text: &str) -> String {
    send(ws, text).await;
    recv(ws).await
}

/// Wait until `f` holds (polling), at most 10 s.
pub async fn until(mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached in time");
}

/// Read until the connection ends; returns the close code if a close frame came.
pub async fn closed(ws: &mut Raw) -> Option<u16> {
    let mut code = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("close in time") {
            None => return code,
            Some(Ok(Message::Close(f))) => code = f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) => return code,
        }
    }
}
