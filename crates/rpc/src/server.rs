//! `RpcServer`: mounts, the listener, and an orderly close.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use libvms_errors::{err, Result};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::conn::{self, CloseReason, LiveGuard};
use crate::limits::{self, Limits};
use crate::queue::{self, Queue, Worker};

/// Counts the server's tasks (listener, connections, mount workers) so that `close()` can wait for them all.
pub(crate) struct Tracker {
    n: AtomicUsize,
    idle: Notify,
}

pub(crate) struct TaskGuard(Arc<Tracker>);

impl Tracker {
    fn guard(self: &Arc<Self>) -> TaskGuard {
        self.n.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.n.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A backend mounted at a path.
pub(crate) struct Mount {
    pub methods: HashSet<String>,
    /// The handshake result, serialised once: `{"methods":[...], ...info}`.
    pub handshake: String,
    pub queue: Queue,
    /// Signed mode's checks (auth.rs); `None` in debug mode.
    pub(crate) auth: Option<crate::auth::Guard>,
    alive: AtomicBool,
    /// The queue's consumer until it is started (a mount made before `listen` waits for a runtime).
    worker: Mutex<Option<Worker>>,
}

impl Mount {
    fn new(backend: Arc<dyn Backend>, max_queue: usize) -> Mount {
        let methods: Vec<String> = backend.methods().into_iter().filter(|m| m != "init").collect();
        let mut raw = Vec::with_capacity(256);
        raw.extend_from_slice(b"{\"methods\":");
        serde_json::to_writer(&mut raw, &methods).expect("strings serialise");
        for (k, v) in backend.info() {
            if k == "methods" {
                continue;
            }
            raw.push(b',');
            serde_json::to_writer(&mut raw, &k).expect("strings serialise");
            raw.push(b':');
            serde_json::to_writer(&mut raw, &v).expect("values serialise");
        }
        raw.push(b'}');
        let auth = backend.auth().map(crate::auth::Guard::new);
        let (queue, worker) = Queue::new(max_queue, backend);
        Mount {
            methods: methods.into_iter().collect(),
            handshake: String::from_utf8(raw).expect("serde_json writes UTF-8"),
            queue,
            auth,
            alive: AtomicBool::new(true),
            worker: Mutex::new(Some(worker)),
        }
    }

    pub(crate) fn alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    fn start(&self, handle: &Handle, tracker: &Arc<Tracker>) {
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let guard = tracker.guard();
            handle.spawn(async move {
                queue::run(w).await;
                drop(guard);
            });
        }
    }
}

struct ConnCtl {
    path: String,
    close: watch::Sender<Option<CloseReason>>,
}

#[derive(Default)]
struct Conns {
    closing: bool,
    map: HashMap<u64, ConnCtl>,
}

#[derive(Default)]
struct State {
    handle: Option<Handle>,
    addr: Option<SocketAddr>,
    binding: bool,
    closed: bool,
    stop: Option<watch::Sender<bool>>,
}

pub(crate) struct Shared {
    pub config: ServerConfig,
    mounts: RwLock<HashMap<String, Arc<Mount>>>,
    conns: Mutex<Conns>,
    next_conn: AtomicU64,
    /// Open (and upgrading) connections.
    pub live: AtomicUsize,
    tracker: Arc<Tracker>,
    state: Mutex<State>,
    pub(crate) limits: Arc<Limits>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn lookup(&self, path: &str) -> Option<Arc<Mount>> {
        self.mounts.read().unwrap_or_else(|p| p.into_inner()).get(path).cloned()
    }

    /// Record an open connection; one that arrives while the server closes is told to close at once.
    pub(crate) fn register_conn(&self, path: &str, close: watch::Sender<Option<CloseReason>>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut conns = lock(&self.conns);
        if conns.closing {
            close.send_replace(Some(CloseReason::ServerClosing));
        }
        conns.map.insert(id, ConnCtl { path: path.to_owned(), close });
        id
    }

    pub(crate) fn deregister_conn(&self, id: u64) {
        lock(&self.conns).map.remove(&id);
    }
}

/// A WebSocket JSON-RPC server for mounted VMs, wire-compatible with libvms 2.
///
/// Cheap to clone (all clones are the same server). Call [`close`](RpcServer::close) when done: until then its
/// tasks keep running.
#[derive(Clone)]
pub struct RpcServer {
    shared: Arc<Shared>,
}

impl RpcServer {
    pub fn new(config: ServerConfig) -> RpcServer {
        RpcServer {
            shared: Arc::new(Shared {
                limits: Limits::new(&config),
                config,
                mounts: RwLock::new(HashMap::new()),
                conns: Mutex::new(Conns::default()),
                next_conn: AtomicU64::new(0),
                live: AtomicUsize::new(0),
                tracker: Arc::new(Tracker { n: AtomicUsize::new(0), idle: Notify::new() }),
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Serve `backend` at `path` (e.g. `"/vm1"`), before or after `listen`. `methods()` and `info()` are read
    /// now. Mounting over an existing path replaces it (the old mount's queued calls still run).
    pub fn mount(&self, path: &str, backend: Arc<dyn Backend>) -> Result<()> {
        if !path.starts_with('/') {
            return Err(err::bad_argument(format!("mount path must start with '/': {path:?}")));
        }
        let handle = {
            let st = lock(&self.shared.state);
            if st.closed {
                return Err(err::closed("RPC server is closed"));
            }
            st.handle.clone()
        };
        let mount = Arc::new(Mount::new(backend, self.shared.config.max_queue));
        let old = {
            let mut mounts = self.shared.mounts.write().unwrap_or_else(|p| p.into_inner());
            mounts.insert(path.to_owned(), mount.clone())
        };
        if let Some(old) = old {
            old.alive.store(false, Ordering::Release);
        }
        if let Some(h) = handle {
            mount.start(&h, &self.shared.tracker);
        }
        Ok(())
    }

    /// Stop serving `path`: its connections are closed (close code 1000), later requests there get -32601; calls
    /// already queued still run to the end. Returns whether something was mounted there.
    pub fn unmount(&self, path: &str) -> bool {
        let Some(m) = self.shared.mounts.write().unwrap_or_else(|p| p.into_inner()).remove(path) else {
            return false;
        };
        m.alive.store(false, Ordering::Release);
        for c in lock(&self.shared.conns).map.values() {
            if c.path == path {
                c.close.send_replace(Some(CloseReason::Unmounted));
            }
        }
        true
    }

    pub fn is_mounted(&self, path: &str) -> bool {
        self.shared.lookup(path).is_some()
    }

    /// Mounted paths (unordered).
    pub fn mounts(&self) -> Vec<String> {
        self.shared.mounts.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Calls waiting in the queue of `path` (the running one not counted).
    pub fn queued(&self, path: &str) -> Option<usize> {
        self.shared.lookup(path).map(|m| m.queue.waiting())
    }

    /// Open WebSocket connections (including ones still upgrading).
    pub fn connections(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// Bytes of unfinished messages charged against the shared bounds now (see `ServerConfig`).
    pub fn buffered_bytes(&self) -> usize {
        self.shared.limits.buffered()
    }

    /// The bound address once listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.shared.state).addr
    }

    /// Bind `host:port` (port 0: the OS picks) and serve. Must run inside a tokio runtime.
    pub async fn listen(&self, host: &str, port: u16) -> Result<SocketAddr> {
        {
            let mut st = lock(&self.shared.state);
            if st.closed {
                return Err(err::closed("RPC server is closed"));
            }
            if st.binding || st.addr.is_some() {
                return Err(err::bad_argument("Already listening"));
            }
            st.binding = true;
        }
        let bound = TcpListener::bind((host, port)).await.and_then(|l| Ok((l.local_addr()?, l)));
        let (addr, listener) = match bound {
            Ok(x) => x,
            Err(e) => {
                lock(&self.shared.state).binding = false;
                return Err(err::io(format!("cannot listen on {host}:{port}: {e}")));
            }
        };
        let handle = Handle::current();
        let (stop_tx, stop_rx) = watch::channel(false);
        {
            let mut st = lock(&self.shared.state);
            st.binding = false;
            if st.closed {
                return Err(err::closed("RPC server is closed"));
            }
            st.addr = Some(addr);
            st.handle = Some(handle.clone());
            st.stop = Some(stop_tx);
        }
        let mounts: Vec<Arc<Mount>> =
            self.shared.mounts.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for m in mounts {
            m.start(&handle, &self.shared.tracker);
        }
        let guard = self.shared.tracker.guard();
        handle.spawn(accept_loop(self.shared.clone(), listener, stop_rx, guard));
        Ok(addr)
    }

    /// Stop listening, close every connection (code 1000), and resolve once all of them are gone and every
    /// accepted call has finished. Idempotent.
    pub async fn close(&self) {
        let stop = {
            let mut st = lock(&self.shared.state);
            st.closed = true;
            st.stop.take()
        };
        if let Some(s) = stop {
            let _ = s.send(true);
        }
        {
            let mut conns = lock(&self.shared.conns);
            conns.closing = true;
            for c in conns.map.values() {
                c.close.send_replace(Some(CloseReason::ServerClosing));
            }
        }
        let mounts = std::mem::take(&mut *self.shared.mounts.write().unwrap_or_else(|p| p.into_inner()));
        for m in mounts.values() {
            m.alive.store(false, Ordering::Release);
        }
        drop(mounts);
        self.shared.tracker.wait_idle().await;
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>, _g: TaskGuard) {
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        let (tcp, slot) = match accepted {
            // Over its address's bound: turned away before any WebSocket work (limits.rs).
            Ok((tcp, peer)) => match shared.limits.admit(peer) {
                Some(slot) => (tcp, slot),
                None => {
                    limits::refuse(tcp);
                    continue;
                }
            },
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let refuse = shared.live.fetch_add(1, Ordering::AcqRel) >= shared.config.max_connections;
        let live = LiveGuard(shared.clone());
        let task = shared.tracker.guard();
        tokio::spawn(conn::serve(shared.clone(), limits::Metered::new(tcp, slot), refuse, live, task));
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<RpcServer>();
    is::<Value>();
}
