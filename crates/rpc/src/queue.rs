//! The FIFO of one mount: calls from every connection reach its backend in arrival order, and their replies leave
//! in that order.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};

use crate::backend::{Backend, BoxFuture, Call, Outcome};
use crate::reply::Reply;

/// Most calls handed to a pipelined backend at once.
const MAX_HANDOFF: usize = 256;

pub(crate) struct Job {
    pub call: Call,
    pub reply: Reply,
}

/// The sending side, held by the mount. Bounded by a count of waiting calls (the running one excluded).
/// `waiting` itself counts every unfinished call.
pub(crate) struct Queue {
    tx: mpsc::UnboundedSender<Job>,
    waiting: Arc<AtomicUsize>,
    max: usize,
}

/// The receiving side, consumed by [`run`].
pub(crate) struct Worker {
    rx: mpsc::UnboundedReceiver<Job>,
    waiting: Arc<AtomicUsize>,
    backend: Arc<dyn Backend>,
}

impl Queue {
    pub fn new(max: usize, backend: Arc<dyn Backend>) -> (Queue, Worker) {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        (Queue { tx, waiting: waiting.clone(), max }, Worker { rx, waiting, backend })
    }

    /// Enqueue, or give the job back when the queue is full (or its worker gone).
    #[allow(clippy::result_large_err)] // the job is handed back by value, once
    pub fn push(&self, job: Job) -> Result<(), Job> {
        // `waiting` counts unfinished calls, the running one included: allow `max` behind it.
        if self.waiting.fetch_add(1, Ordering::AcqRel) > self.max {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(job);
        }
        self.tx.send(job).map_err(|e| {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }

    /// Calls waiting (not counting the one running).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire).saturating_sub(1)
    }
}

/// Run the queue's calls until every sender is gone and the queue is empty. One way for every backend: once it is
/// ready, everything queued (up to its `max_handoff`) goes over in one hand-off, and each hand-off is answered after
/// the one before it, so replies leave in the order the calls ran. A call counts against the bound until answered.
pub(crate) async fn run(mut w: Worker) {
    let limit = w.backend.max_handoff().clamp(1, MAX_HANDOFF);
    // How many hand-offs are answered: a hand-off waits for its predecessor's number before answering, and a serial
    // backend's `ready` waits for the last one's.
    let answered = Arc::new(watch::Sender::new(0u64));
    let mut handed = 0u64;
    while let Some(job) = w.rx.recv().await {
        let backend = &w.backend;
        let previous = until_answered(&answered, handed);
        AssertUnwindSafe(backend.ready(previous)).catch_unwind().await.ok();
        let (mut calls, mut replies) = (vec![job.call], vec![job.reply]);
        while calls.len() < limit {
            match w.rx.try_recv() {
                Ok(next) => {
                    calls.push(next.call);
                    replies.push(next.reply);
                }
                Err(_) => break,
            }
        }
        // A panicking backend must not stop the queue: its calls are answered as internal errors.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| backend.call_many(calls)));
        let (waiting, answered) = (w.waiting.clone(), answered.clone());
        let before = until_answered(&answered, handed);
        handed += 1;
        let mine = handed;
        tokio::spawn(async move {
            let mut outcomes = match started {
                Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_default(),
                Err(_) => Vec::new(),
            }
            .into_iter();
            before.await;
            for reply in replies {
                waiting.fetch_sub(1, Ordering::AcqRel);
                reply.outcome(outcomes.next().unwrap_or_else(internal_error));
            }
            answered.send_modify(|a| *a = (*a).max(mine));
        });
    }
    // The mount's worker ends (and the server's close may resolve) only once every accepted call is answered.
    until_answered(&answered, handed).await;
}

/// Resolves once `n` hand-offs are answered.
fn until_answered(answered: &watch::Sender<u64>, n: u64) -> BoxFuture<()> {
    let mut rx = answered.subscribe();
    Box::pin(async move {
        let _ = rx.wait_for(|&a| a >= n).await;
    })
}

fn internal_error() -> Outcome {
    Outcome::Thrown { name: "Error".into(), message: "Internal error".into() }
}
