//! `RpcServer`: mounts, the listener, and an orderly close. The state its tasks share is in shared.rs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use libvms_errors::{err, Result};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::backend::Backend;
use crate::config::ServerConfig;
use crate::conn::{self, LiveGuard};
use crate::limits;
use crate::shared::{lock, CloseReason, Mount, Shared, TaskGuard};

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
        RpcServer { shared: Arc::new(Shared::new(config)) }
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
