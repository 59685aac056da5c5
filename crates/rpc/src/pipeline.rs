//! A pipelined backend: a VM whose calls run on another thread (JavaScript's) in the order it received them.
//!
//! Calls go over in hand-offs, each named by a ticket and answered once with every call's outcome. The next hand-off
//! is welcome as soon as the VM's thread has taken the last one (calls arriving meanwhile gather into one hand-off),
//! so the outcomes' slow tail, making their log entries durable, overlaps and calls share a group commit. Replies
//! wait here for that durability, then carry the receipts of signed calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::auth::MountAuth;
use crate::backend::{Backend, BoxFuture, Call, Outcome};
use crate::inflight::InFlight;

/// Most calls in one hand-off.
const MAX_HANDOFF: usize = 256;

/// The VM's thread, as the pipeline sees it.
pub trait VmThread: Send + Sync + 'static {
    /// Queue `calls` for the VM's thread (in order, before returning), to be answered with [`Tickets::answer`] under
    /// `ticket`. `taken` must run once the thread has taken them up. `Err` (why) when the thread is gone; `taken`
    /// is then never run.
    fn hand_over(&self, ticket: u32, calls: &[Call], taken: Box<dyn FnOnce() + Send>) -> Result<(), String>;
}

/// The VM's call log, as the pipeline sees it.
pub trait LogTail: Send + Sync + 'static {
    /// Resolves once the log holds `length` entries durably; `Err` (why) when it never will.
    fn wait_durable(&self, length: u64) -> BoxFuture<Result<(), String>>;
    /// The receipt of the signed call at `index` (hash `call`) under the log's signed head, which holds it.
    fn receipt(&self, index: u64, call: [u8; 32]) -> Option<Value>;
}

/// The VM thread's answer to one hand-off.
pub struct Answer {
    /// One per call, in order; `None` when the thread's answer could not be read.
    pub outcomes: Option<Vec<Outcome>>,
    /// The log length that makes every entry of the hand-off durable.
    pub durable_at: u64,
    /// Each call's log index, when the hand-off held signed calls (their receipts name it).
    pub indexes: Option<Vec<u64>>,
}

/// Hand-offs waiting for their answer, by ticket; one set may serve every mount of a server.
#[derive(Default)]
pub struct Tickets {
    next: AtomicU32,
    waiting: Mutex<HashMap<u32, oneshot::Sender<Answer>>>,
}

impl Tickets {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u32, oneshot::Sender<Answer>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self) -> (u32, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.waiting().insert(ticket, tx);
        (ticket, rx)
    }

    /// The answer to hand-off `ticket` (a ticket answered twice, or unknown, is ignored).
    pub fn answer(&self, ticket: u32, answer: Answer) {
        if let Some(tx) = self.waiting().remove(&ticket) {
            let _ = tx.send(answer);
        }
    }
}

/// A mounted VM whose calls run on its own thread.
pub struct Pipelined {
    pub methods: Vec<String>,
    pub info: Map<String, Value>,
    /// Signed mode, when the VM is signed.
    pub auth: Option<MountAuth>,
    pub vm: Box<dyn VmThread>,
    pub tickets: Arc<Tickets>,
    /// The VM's call log: replies wait here until their entries are durable. `None`: they do not wait.
    pub log: Option<Arc<dyn LogTail>>,
    /// Hand-offs queued for the VM's thread and not yet taken up.
    untaken: Arc<InFlight>,
}

impl Pipelined {
    pub fn new(vm: Box<dyn VmThread>, tickets: Arc<Tickets>) -> Pipelined {
        Pipelined { methods: Vec::new(), info: Map::new(), auth: None, vm, tickets, log: None, untaken: Arc::default() }
    }
}

fn internal(message: String) -> Outcome {
    Outcome::Thrown { name: "Error".into(), message }
}

/// Signed calls' outcomes with their receipts: the log's signed head now holds their entries (durable).
fn with_receipts(log: &dyn LogTail, outcomes: Vec<Outcome>, hashes: &[Option<[u8; 32]>], indexes: &[u64]) -> Vec<Outcome> {
    let parts = outcomes.into_iter().zip(hashes).zip(indexes);
    parts
        .map(|((o, h), &i)| match h.and_then(|h| log.receipt(i, h)) {
            Some(r) => Outcome::WithReceipt(Box::new(o), r),
            None => o,
        })
        .collect()
}

impl Backend for Pipelined {
    fn methods(&self) -> Vec<String> {
        self.methods.clone()
    }

    fn info(&self) -> Map<String, Value> {
        self.info.clone()
    }

    fn auth(&self) -> Option<MountAuth> {
        self.auth.clone()
    }

    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        let many = self.call_many(vec![call]);
        Box::pin(async move { many.await.into_iter().next().unwrap_or_else(|| internal("Internal error: no outcome".into())) })
    }

    fn max_handoff(&self) -> usize {
        MAX_HANDOFF
    }

    /// Once the VM's thread has taken up the last hand-off: while it is busy, calls gather into the next one (one
    /// crossing and one answer for all of them instead of one each).
    fn ready(&self, _answered: BoxFuture<()>) -> BoxFuture<()> {
        let untaken = self.untaken.clone();
        Box::pin(async move { untaken.none().await })
    }

    /// Queues the calls on the VM's thread before returning, so they reach the VM in arrival order even though the
    /// server does not wait for one to finish before handing over the next.
    fn call_many(&self, calls: Vec<Call>) -> BoxFuture<Vec<Outcome>> {
        let n = calls.len();
        // A signed call's receipt names it by hash.
        let log_key = self.auth.as_ref().map(|a| a.log_key);
        let hashes: Vec<Option<[u8; 32]>> = calls
            .iter()
            .map(|c| c.auth.as_ref().zip(log_key).and_then(|(s, k)| s.hash(&k, &c.method, &c.params).ok()))
            .collect();
        let (ticket, rx) = self.tickets.issue();
        let untaken = self.untaken.clone();
        untaken.start();
        let handed = self.vm.hand_over(ticket, &calls, Box::new(move || untaken.end()));
        if handed.is_err() {
            self.untaken.end();
            self.tickets.waiting().remove(&ticket);
        }
        let log = self.log.clone();
        Box::pin(async move {
            let failed = |why: &str| (0..n).map(|_| internal(why.to_owned())).collect::<Vec<_>>();
            if let Err(why) = handed {
                return failed(&format!("Internal error: the VM is gone ({why})"));
            }
            // The VM's thread always answers; the sender is dropped only if it is gone (Node exiting).
            let Ok(Answer { outcomes, durable_at, indexes }) = rx.await else { return failed("Internal error: the VM is gone") };
            if let Some(log) = &log {
                if let Err(why) = log.wait_durable(durable_at).await {
                    return failed(&format!("Internal error: the call log failed: {why}"));
                }
            }
            let outcomes = match outcomes {
                Some(o) if o.len() == n => o,
                _ => return failed("Internal error: bad outcomes"),
            };
            match (&log, indexes) {
                (Some(log), Some(indexes)) if indexes.len() == n => with_receipts(log.as_ref(), outcomes, &hashes, &indexes),
                _ => outcomes,
            }
        })
    }
}
