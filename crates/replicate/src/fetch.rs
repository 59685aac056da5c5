//! Fetching: keep a session with every listed peer (reconnecting while the fetch lives), let them
//! share the work through the cores' claims, drop for good a peer whose data fails verification,
//! and report completion, or CONNECTION_FAILED / TIMEOUT, within a deadline.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use libvms_errors::{err, Error, Result};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::core_handle::ReplCore;
use crate::session::{self, core_set, is_peer_fault, SessionOptions};

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
    cores: Vec<ReplCore>,
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
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(Mutex::new(State::default()));
        let mut tasks = JoinSet::new();
        let set = core_set(cores.clone());
        lock(&state).alive = peers.len();
        for peer in peers {
            let sopts = SessionOptions { open: cores.clone(), cores: set.clone(), tamper: None };
            tasks.spawn(peer_loop(peer, sopts, opts.clone(), state.clone(), stop_rx.clone()));
        }
        Fetch { cores, state, stop, tasks: Mutex::new(Some(tasks)) }
    }

    pub fn cores(&self) -> &[ReplCore] {
        &self.cores
    }

    pub fn is_complete(&self) -> bool {
        self.cores.iter().all(ReplCore::is_complete)
    }

    /// Wait until every core holds everything wanted. After `timeout`: CONNECTION_FAILED when no
    /// peer could be reached, TIMEOUT otherwise.
    pub async fn synced(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut watches: Vec<_> = self.cores.iter().map(ReplCore::watch).collect();
        loop {
            if self.is_complete() {
                return Ok(());
            }
            {
                let st = lock(&self.state);
                if st.alive == 0 && !st.banned.is_empty() {
                    let (p, e) = &st.banned[st.banned.len() - 1];
                    return Err(Error::new(e.code, format!("every peer failed verification (last {p}: {})", e.message)));
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let st = lock(&self.state);
                let why = st.last_error.as_ref().map(|e| format!(": {}", e.message)).unwrap_or_default();
                return Err(if st.connected {
                    err::timeout(format!("download not complete after {} ms{why}", timeout.as_millis()))
                } else {
                    err::connection(format!("no peer reachable within {} ms{why}", timeout.as_millis()))
                });
            }
            let changed = futures_any(&mut watches);
            let _ = tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)), changed).await;
        }
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
