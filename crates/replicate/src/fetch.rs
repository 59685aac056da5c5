//! Fetching: keep a session with every listed peer (reconnecting while the fetch lives), let them
//! share the work through the cores' claims, drop for good a peer whose data fails verification,
//! and report completion, or CONNECTION_FAILED / TIMEOUT, within a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libvms_errors::{err, Error, Result};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::core_handle::ReplCore;
use crate::link::Link;
use crate::session::{self, core_set, is_peer_fault, CoreSet, SessionOptions};

#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Delay before reconnecting to a peer that failed or went away.
    pub retry: Duration,
    /// Limit for one TCP connect.
    pub connect_timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions { retry: Duration::from_millis(250), connect_timeout: Duration::from_secs(3) }
    }
}

#[derive(Default)]
struct State {
    connected: bool,
    last_error: Option<Error>,
    /// Peers dropped because they sent data that failed verification.
    banned: Vec<(String, Error)>,
    /// Peer loops still running.
    alive: usize,
}

/// A running fetch of some cores from some peers. Sessions stay up (following live appends) until `close`.
pub struct Fetch {
    /// The cores fetched; every session opens each one (`add` appends, sessions follow).
    cores: watch::Sender<Vec<ReplCore>>,
    set: CoreSet,
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Fetch {
    /// Start fetching `cores` from `peers` ("host:port"). Must be called inside a tokio runtime.
    pub fn start(cores: Vec<ReplCore>, peers: Vec<String>, opts: FetchOptions) -> Fetch {
        Fetch::start_with_links(cores, peers, None, opts)
    }

    /// As `start`, and every link received on `links` (a stream found through Hyperswarm) runs a
    /// session for the same cores, sharing the work with the TCP peers.
    pub fn start_with_links(
        cores: Vec<ReplCore>,
        peers: Vec<String>,
        links: Option<mpsc::UnboundedReceiver<Link>>,
        opts: FetchOptions,
    ) -> Fetch {
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(Mutex::new(State::default()));
        let mut tasks = JoinSet::new();
        let set = core_set(cores.clone());
        let (cores, follow) = watch::channel(cores);
        let sopts = SessionOptions { open: Vec::new(), cores: set.clone(), tamper: None, follow: Some(follow) };
        lock(&state).alive = peers.len();
        for peer in peers {
            tasks.spawn(peer_loop(peer, sopts.clone(), opts.clone(), state.clone(), stop_rx.clone()));
        }
        if let Some(links) = links {
            tasks.spawn(link_loop(links, sopts, state.clone(), stop_rx));
        }
        Fetch { cores, set, state, stop, tasks: Mutex::new(Some(tasks)) }
    }

    pub fn cores(&self) -> Vec<ReplCore> {
        self.cores.borrow().clone()
    }

    /// Fetch one more core on every session, open or future.
    pub fn add(&self, core: ReplCore) {
        self.set.write().unwrap_or_else(|p| p.into_inner()).insert(core.discovery_key(), core.clone());
        self.cores.send_modify(|c| c.push(core));
    }

    pub fn is_complete(&self) -> bool {
        self.cores.borrow().iter().all(ReplCore::is_complete)
    }

    /// Wait until every core holds everything wanted. After `timeout`: CONNECTION_FAILED when no
    /// peer could be reached, TIMEOUT otherwise.
    pub async fn synced(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watches: Vec<_> = self.cores().iter().map(ReplCore::watch).collect();
        loop {
            if self.is_complete() {
                return Ok(());
            }
            if let Some(e) = self.failure() {
                return Err(e);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(self.gave_up(timeout));
            }
            let changed = futures_any(&mut watches);
            let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)), changed).await;
        }
    }

    /// When every peer was dropped for sending data that failed verification: that error.
    pub fn failure(&self) -> Option<Error> {
        let st = lock(&self.state);
        if st.alive == 0 && !st.banned.is_empty() {
            let (p, e) = &st.banned[st.banned.len() - 1];
            return Some(Error::new(e.code, format!("every peer failed verification (last {p}: {})", e.message)));
        }
        None
    }

    /// The error of a wait that ran out of `timeout`: CONNECTION_FAILED when no peer could be
    /// reached, TIMEOUT otherwise.
    pub fn gave_up(&self, timeout: Duration) -> Error {
        let st = lock(&self.state);
        let why = st.last_error.as_ref().map(|e| format!(": {}", e.message)).unwrap_or_default();
        if st.connected {
            err::timeout(format!("download not complete after {} ms{why}", timeout.as_millis()))
        } else {
            err::connection(format!("no peer reachable within {} ms{why}", timeout.as_millis()))
        }
    }

    /// Wake every session to look at what its cores want now (after `ReplCore::set_want`).
    pub fn nudge(&self) {
        self.cores.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        *self.stop.borrow()
    }

    /// Peers dropped for sending data that failed verification, with the error.
    pub fn banned_peers(&self) -> Vec<(String, Error)> {
        lock(&self.state).banned.clone()
    }

    /// End all sessions and wait for them to release the cores. Idempotent.
    pub async fn close(&self) {
        let _ = self.stop.send(true);
        let tasks = lock(&self.tasks).take();
        if let Some(mut t) = tasks {
            while t.join_next().await.is_some() {}
        }
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn futures_any(ws: &mut [watch::Receiver<crate::Progress>]) {
    // Progress of any core wakes the waiter; polled in turn with a short slice each.
    for w in ws.iter_mut() {
        if w.has_changed().unwrap_or(false) {
            w.borrow_and_update();
            return;
        }
    }
    match ws.first_mut() {
        Some(w) => {
            let _ = w.changed().await;
        }
        None => std::future::pending::<()>().await,
    }
}

async fn peer_loop(peer: String, sopts: SessionOptions, opts: FetchOptions, state: Arc<Mutex<State>>, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let conn = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(&peer)).await;
        let res = match conn {
            Ok(Ok(sock)) => {
                let _ = sock.set_nodelay(true);
                lock(&state).connected = true;
                let (r, w) = sock.into_split();
                session::run(r, w, true, sopts.clone(), stop.clone()).await
            }
            Ok(Err(e)) => Err(err::connection(format!("connect {peer}: {e}"))),
            Err(_) => Err(err::timeout(format!("connect {peer}: timed out"))),
        };
        if let Err(e) = res {
            let fault = is_peer_fault(&e);
            let mut st = lock(&state);
            st.last_error = Some(e.clone().context(&peer));
            if fault {
                st.banned.push((peer.clone(), e));
                st.alive -= 1;
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.retry) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Run a session on every link that arrives, until `stop`; a link's end is its holder's to retry.
async fn link_loop(mut links: mpsc::UnboundedReceiver<Link>, sopts: SessionOptions, state: Arc<Mutex<State>>, stop: watch::Receiver<bool>) {
    let mut sessions = JoinSet::new();
    let mut stopped = stop.clone();
    loop {
        tokio::select! {
            l = links.recv() => {
                let Some(link) = l else { break };
                let peer = format!("swarm peer {}", hex32(&link.info.remote_public_key));
                {
                    let mut st = lock(&state);
                    st.connected = true;
                    st.alive += 1;
                }
                let (sopts, state, stop) = (sopts.clone(), state.clone(), stop.clone());
                sessions.spawn(async move {
                    let res = session::run_link(link, sopts, stop).await;
                    let mut st = lock(&state);
                    st.alive -= 1;
                    if let Err(e) = res {
                        if is_peer_fault(&e) {
                            st.banned.push((peer.clone(), e.clone()));
                        }
                        st.last_error = Some(e.context(&peer));
                    }
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
    }
    // Links that arrive after the stop are dropped unanswered, which ends them for their holder.
    links.close();
    while sessions.join_next().await.is_some() {}
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
