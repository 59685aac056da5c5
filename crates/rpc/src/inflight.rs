//! A count of things under way, and a wait for there being none.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    none: Notify,
}

impl InFlight {
    pub fn start(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    pub fn end(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.none.notify_waiters();
        }
    }

    /// Resolves once nothing is under way.
    pub async fn none(&self) {
        loop {
            let notified = self.none.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}
