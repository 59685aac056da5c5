//! The FIFO of one mount: calls from every connection run one at a time, in arrival order.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::backend::{Backend, Call, Outcome};
use crate::conn::Reply;

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

/// Run the queue's calls one by one until every sender is gone and the queue is empty. A pipelined backend gets
/// the next call as soon as it has taken this one; its calls count against the bound until they finish.
pub(crate) async fn run(mut w: Worker) {
    // Outcomes of several hand-offs can be ready at once (one log commit makes them all durable): each hand-off
    // answers only after the one before it, so replies leave in the order the calls ran.
    let mut answered_before: Option<oneshot::Receiver<()>> = None;
    while let Some(job) = w.rx.recv().await {
        let (backend, call) = (&w.backend, job.call);
        if backend.pipelined() {
            // Everything queued by the time the backend is ready goes over in one hand-off, in order.
            AssertUnwindSafe(backend.ready()).catch_unwind().await.ok();
            let (mut calls, mut replies) = (vec![call], vec![job.reply]);
            while calls.len() < MAX_HANDOFF {
                match w.rx.try_recv() {
                    Ok(next) => {
                        calls.push(next.call);
                        replies.push(next.reply);
                    }
                    Err(_) => break,
                }
            }
            let started = std::panic::catch_unwind(AssertUnwindSafe(|| backend.call_many(calls)));
            let waiting = w.waiting.clone();
            let (answered, next) = oneshot::channel();
            let before = answered_before.replace(next);
            tokio::spawn(async move {
                let mut outcomes = match started {
                    Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await.unwrap_or_default(),
                    Err(_) => Vec::new(),
                }
                .into_iter();
                if let Some(before) = before {
                    let _ = before.await;
                }
                for reply in replies {
                    waiting.fetch_sub(1, Ordering::AcqRel);
                    reply.outcome(outcomes.next().unwrap_or_else(internal_error));
                }
                let _ = answered.send(());
            });
            continue;
        }
        // A panicking backend must not stop the queue: the call is answered as an internal error.
        let outcome = AssertUnwindSafe(async move { backend.call(call).await }).catch_unwind().await.unwrap_or_else(|_| internal_error());
        w.waiting.fetch_sub(1, Ordering::AcqRel);
        job.reply.outcome(outcome);
    }
}

fn internal_error() -> Outcome {
    Outcome::Thrown { name: "Error".into(), message: "Internal error".into() }
}
