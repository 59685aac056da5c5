//! Serving: a TCP listener whose connections each run a session (as the Noise responder)
//! over a shared set of cores. Unknown cores are REJECTed per channel; the stream stays up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use libvms_errors::{err, Result};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::core_handle::ReplCore;
use crate::link::Link;
use crate::session::{self, CoreSet, SessionOptions, Tamper};

pub struct Host {
    addr: SocketAddr,
    cores: CoreSet,
    stop: watch::Sender<bool>,
    /// Streams from elsewhere (Hyperswarm) to serve alongside the TCP connections.
    links: mpsc::UnboundedSender<Link>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Host {
    /// Listen on `addr` (e.g. "127.0.0.1:0") and serve `cores`.
    pub async fn bind(addr: &str, cores: CoreSet) -> Result<Host> {
        Host::bind_with(addr, cores, None).await
    }

    /// As `bind`; `tamper` alters served data (tests of misbehaving peers only).
    pub async fn bind_with(addr: &str, cores: CoreSet, tamper: Option<Tamper>) -> Result<Host> {
        let listener = TcpListener::bind(addr).await.map_err(|e| err::connection(format!("listen on {addr}: {e}")))?;
        let local = listener.local_addr()?;
        let (stop, stop_rx) = watch::channel(false);
        let (links, mut links_rx) = mpsc::unbounded_channel::<Link>();
        let set = cores.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let mut stop_rx2 = stop_rx.clone();
            loop {
                tokio::select! {
                    a = listener.accept() => {
                        let Ok((sock, _)) = a else { continue };
                        let _ = sock.set_nodelay(true);
                        let (r, w) = sock.into_split();
                        let opts = SessionOptions { open: Vec::new(), cores: set.clone(), tamper: tamper.clone(), follow: None };
                        let stop = stop_rx.clone();
                        conns.spawn(async move {
                            // A failed connection concerns only that peer.
                            let _ = session::run(r, w, false, opts, stop).await;
                        });
                    }
                    Some(link) = links_rx.recv() => {
                        let opts = SessionOptions { open: Vec::new(), cores: set.clone(), tamper: tamper.clone(), follow: None };
                        let stop = stop_rx.clone();
                        conns.spawn(async move {
                            let _ = session::run_link(link, opts, stop).await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    _ = stop_rx2.wait_for(|s| *s) => break,
                }
            }
            // Sessions see the stop signal too; wait for them to release their cores.
            while conns.join_next().await.is_some() {}
        });
        Ok(Host { addr: local, cores, stop, links, task: Mutex::new(Some(task)) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve one more core on this host (new connections and open ones alike).
    pub fn add(&self, core: ReplCore) {
        self.cores.write().unwrap_or_else(|p| p.into_inner()).insert(core.discovery_key(), core);
    }

    /// Serve this host's cores on a stream held elsewhere; the link ends when the host closes.
    pub fn attach(&self, link: Link) {
        // After close the receiver is gone and the link is dropped, which ends it for its holder.
        let _ = self.links.send(link);
    }

    pub fn remove(&self, discovery_key: &[u8; 32]) {
        self.cores.write().unwrap_or_else(|p| p.into_inner()).remove(discovery_key);
    }

    /// Stop listening, end every session and wait for them. Idempotent.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Convenience: a host serving these cores.
pub async fn serve(addr: &str, cores: impl IntoIterator<Item = ReplCore>) -> Result<Arc<Host>> {
    Ok(Arc::new(Host::bind(addr, session::core_set(cores)).await?))
}
