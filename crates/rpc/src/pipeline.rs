//! A pipelined backend: a VM whose calls run on another thread (JavaScript's) in the order it received them.
//!
//! Calls go over in hand-offs, each named by a ticket and answered once with every call's outcome. The next hand-off
//! is welcome as soon as the VM's thread has taken the last one (calls arriving meanwhile gather into one hand-off),
//! so the outcomes' slow tail, making their log entries durable, overlaps and calls share a group commit.
//!
//! This side owns each call's commit: as a call runs, the VM's thread reports its outcome for the log (`commit`),
//! and the entry is built here from the call as received (crates/calllog `CallEntry`, byte for byte what
//! JavaScript would write) and queued for the log in call order. Replies wait for their entries to be durable (the
//! log's writer counts that, nobody else), then carry the receipts of signed calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use libvms_calllog::{CallEntry, Ended};

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
    /// Queue `entry` for the log's next group commit, after everything queued before (before returning); resolves
    /// with its index once durable, or `Err` (why) when it will never be.
    fn append(&self, entry: Vec<u8>) -> BoxFuture<Result<u64, String>>;
    /// The receipt of the signed call at `index` (hash `call`) under the log's signed head, which holds it.
    fn receipt(&self, index: u64, call: [u8; 32]) -> Option<Value>;
}

/// A call's outcome as its log entry records it: what the VM reports; the rest of the entry is the call itself.
pub struct Logged {
    pub files_version: u64,
    pub ended: Ended,
    /// Members after `result`, in order, values as JSON text: a signed call's `auth`, a limit's `stopped`, oracle
    /// records, whatever else a call records.
    pub extra: Vec<(String, String)>,
}

/// A hand-off waiting for its answer.
struct Pending {
    answer: oneshot::Sender<Answer>,
    calls: Vec<Call>,
    log: Option<Arc<dyn LogTail>>,
    /// Each call's commit, once it has run and made an entry.
    commits: Vec<Option<BoxFuture<Result<u64, String>>>>,
}

/// The VM thread's answer to one hand-off.
struct Answer {
    /// One per call, in order; `None` when the thread's answer could not be read.
    outcomes: Option<Vec<Outcome>>,
    commits: Vec<Option<BoxFuture<Result<u64, String>>>>,
}

/// Hand-offs waiting for their answer, by ticket; one set may serve every mount of a server.
#[derive(Default)]
pub struct Tickets {
    next: AtomicU32,
    waiting: Mutex<HashMap<u32, Pending>>,
}

impl Tickets {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self, calls: Vec<Call>, log: Option<Arc<dyn LogTail>>) -> (u32, oneshot::Receiver<Answer>) {
        let (answer, rx) = oneshot::channel();
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let commits = calls.iter().map(|_| None).collect();
        self.waiting().insert(ticket, Pending { answer, calls, log, commits });
        (ticket, rx)
    }

    /// Call `slot` of hand-off `ticket` has run: build its entry and queue it for the log (unknown tickets and
    /// slots, and mounts without a log, are ignored).
    pub fn commit(&self, ticket: u32, slot: usize, logged: Logged) {
        let mut waiting = self.waiting();
        let Some(p) = waiting.get_mut(&ticket) else { return };
        let (Some(call), Some(log)) = (p.calls.get(slot), p.log.as_ref()) else { return };
        let mut logged = logged;
        if let Some(auth) = &call.auth {
            add_auth(&mut logged.extra, auth);
        }
        let entry = CallEntry {
            method: &call.method,
            args: &call.params,
            user_id: Some(&call.user_id),
            files_version: logged.files_version,
            ended: &logged.ended,
            extra: &logged.extra,
        };
        p.commits[slot] = Some(log.append(entry.to_bytes()));
    }

    /// Every call of hand-off `ticket` has run: their outcomes, in order (`None`: unreadable). Answered once.
    pub fn answer(&self, ticket: u32, outcomes: Option<Vec<Outcome>>) {
        if let Some(p) = self.waiting().remove(&ticket) {
            let _ = p.answer.send(Answer { outcomes, commits: p.commits });
        }
    }
}

/// A signed call's `auth` member, added here rather than by the VM's thread (which never sees it), where
/// `lib/vm.js` puts it: after a limit's `stopped`, before everything else the call records. Left alone if the VM
/// gave one.
fn add_auth(extra: &mut Vec<(String, String)>, auth: &libvms_auth::SignedCall) {
    if extra.iter().any(|(k, _)| k == "auth") {
        return;
    }
    let at = usize::from(extra.first().is_some_and(|(k, _)| k == "stopped"));
    extra.insert(at, ("auth".to_owned(), libvms_auth::call::entry_auth_text(auth)));
}

/// A mounted VM whose calls run on its own thread.
pub struct Pipelined {
    pub methods: Vec<String>,
    pub info: Map<String, Value>,
    /// Signed mode, when the VM is signed.
    pub auth: Option<MountAuth>,
    pub vm: Box<dyn VmThread>,
    pub tickets: Arc<Tickets>,
    /// The VM's call log, which this side commits calls to. `None`: calls are not logged.
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
        // A signed call's receipt names it by hash (computed when it was verified, unless made elsewhere).
        let log_key = self.auth.as_ref().map(|a| a.log_key);
        let hashes: Vec<Option<[u8; 32]>> = calls
            .iter()
            .map(|c| c.auth_hash.or_else(|| c.auth.as_ref().zip(log_key).and_then(|(s, k)| s.hash(&k, &c.method, &c.params).ok())))
            .collect();
        let (ticket, rx) = self.tickets.issue(calls, self.log.clone());
        let untaken = self.untaken.clone();
        untaken.start();
        let handed = {
            // Under the lock, so the VM's commits for this ticket wait until the hand-off is recorded.
            let waiting = self.tickets.waiting();
            let calls = waiting.get(&ticket).map(|p| p.calls.as_slice()).unwrap_or_default();
            self.vm.hand_over(ticket, calls, Box::new(move || untaken.end()))
        };
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
            let Ok(Answer { outcomes, commits }) = rx.await else { return failed("Internal error: the VM is gone") };
            let mut out = Vec::with_capacity(n);
            for ((outcome, commit), hash) in outcomes.unwrap_or_default().into_iter().zip(commits).zip(hashes) {
                let Some(commit) = commit else {
                    out.push(outcome); // no entry (refused before it ran, or nothing logged)
                    continue;
                };
                out.push(match commit.await {
                    // A signed call's receipt: the log's signed head now holds its entry.
                    Ok(index) => match hash.zip(log.as_ref()).and_then(|(h, log)| log.receipt(index, h)) {
                        Some(r) => Outcome::WithReceipt(Box::new(outcome), r),
                        None => outcome,
                    },
                    Err(why) => internal(format!("Internal error: the call log failed: {why}")),
                });
            }
            if out.len() != n {
                return failed("Internal error: bad outcomes");
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_member_goes_where_lib_vm_puts_it() {
        let (_, secret) = libvms_auth::generate_key_pair();
        let c = libvms_auth::call::sign(&secret, &[1; 32], 7, "m", &[]).unwrap();
        let auth = ("auth".to_owned(), libvms_auth::call::entry_auth_text(&c));
        let member = |k: &str| (k.to_owned(), "1".to_owned());
        let cases = [
            (vec![], vec![auth.clone()]),
            (vec![member("time")], vec![auth.clone(), member("time")]),
            (vec![member("stopped"), member("time")], vec![member("stopped"), auth.clone(), member("time")]),
            (vec![member("auth")], vec![member("auth")]), // the VM's own is kept
        ];
        for (mut extra, want) in cases {
            add_auth(&mut extra, &c);
            assert_eq!(extra, want);
        }
    }
}
