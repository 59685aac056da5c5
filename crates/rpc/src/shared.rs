//! What the server's tasks share: the mounts (each with its queue), the open connections, the listener's state,
//! and the count of running tasks that `close()` waits for.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::limits::Limits;
use crate::queue::{self, Queue, Worker};

/// Why the server closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// `unmount()` of the connection's path.
    Unmounted,
    /// `close()` of the server.
    ServerClosing,
}

/// Counts the server's tasks (listener, connections, mount workers) so that `close()` can wait for them all.
pub(crate) struct Tracker {
    n: AtomicUsize,
    idle: Notify,
}

pub(crate) struct TaskGuard(Arc<Tracker>);

impl Tracker {
    pub(crate) fn guard(self: &Arc<Self>) -> TaskGuard {
        self.n.fetch_add(1, Ordering::AcqRel);
        TaskGuard(self.clone())
    }

    pub(crate) async fn wait_idle(&self) {
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
    pub(crate) alive: AtomicBool,
    /// The queue's consumer until it is started (a mount made before `listen` waits for a runtime).
    worker: Mutex<Option<Worker>>,
}

impl Mount {
    pub(crate) fn new(backend: Arc<dyn Backend>, max_queue: usize) -> Mount {
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

    pub(crate) fn start(&self, handle: &Handle, tracker: &Arc<Tracker>) {
        if let Some(w) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let guard = tracker.guard();
            handle.spawn(async move {
                queue::run(w).await;
                drop(guard);
            });
        }
    }
}

pub(crate) struct ConnCtl {
    pub(crate) path: String,
    pub(crate) close: watch::Sender<Option<CloseReason>>,
}

#[derive(Default)]
pub(crate) struct Conns {
    pub(crate) closing: bool,
    pub(crate) map: HashMap<u64, ConnCtl>,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) handle: Option<Handle>,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) binding: bool,
    pub(crate) closed: bool,
    pub(crate) stop: Option<watch::Sender<bool>>,
}

pub(crate) struct Shared {
    pub config: ServerConfig,
    pub(crate) mounts: RwLock<HashMap<String, Arc<Mount>>>,
    pub(crate) conns: Mutex<Conns>,
    next_conn: AtomicU64,
    /// Open (and upgrading) connections.
    pub live: AtomicUsize,
    pub(crate) tracker: Arc<Tracker>,
    pub(crate) state: Mutex<State>,
    pub(crate) limits: Arc<Limits>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Shared {
        Shared {
            limits: Limits::new(&config),
            config,
            mounts: RwLock::new(HashMap::new()),
            conns: Mutex::new(Conns::default()),
            next_conn: AtomicU64::new(0),
            live: AtomicUsize::new(0),
            tracker: Arc::new(Tracker { n: AtomicUsize::new(0), idle: Notify::new() }),
            state: Mutex::new(State::default()),
        }
    }

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
