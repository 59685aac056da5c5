//! A client's replies, collected on tokio threads until the caller's thread takes them: a burst of replies costs one
//! wake-up of that thread (JavaScript's), and no call needs a promise of its own across the boundary.

use std::sync::Mutex;

use crate::inflight::InFlight;

type Wake = Box<dyn Fn() + Send + Sync>;

pub struct ReplyQueue<T> {
    ready: Mutex<Vec<T>>,
    /// Dropped (releasing whatever it holds, say Node's event loop) once `finish` has seen every call answered.
    wake: Mutex<Option<Wake>>,
    /// Calls whose reply has not been queued yet.
    outstanding: InFlight,
}

impl<T> ReplyQueue<T> {
    /// `wake` is called when the first reply lands in an empty queue: the owner then takes them all.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> ReplyQueue<T> {
        ReplyQueue { ready: Mutex::new(Vec::new()), wake: Mutex::new(Some(Box::new(wake))), outstanding: InFlight::default() }
    }

    /// A call was made: its reply will come through `answer`.
    pub fn expect(&self) {
        self.outstanding.start();
    }

    /// Queue the reply of a call announced with `expect`.
    pub fn answer(&self, reply: T) {
        let first = {
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            ready.push(reply);
            ready.len() == 1
        };
        if first {
            if let Some(wake) = self.wake.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                wake();
            }
        }
        self.outstanding.end();
    }

    /// Every reply queued since the last take, in arrival order.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Once the connection has ended: wait until every call is answered (pending ones fail at once then), and drop
    /// `wake`, so a closed client holds nothing of its owner's.
    pub async fn finish(&self) {
        self.outstanding.none().await;
        self.wake.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_burst_of_replies_wakes_once_and_comes_out_in_order() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let q = ReplyQueue::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        for i in 0..3 {
            q.expect();
            q.answer(i);
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert_eq!(q.take(), vec![0, 1, 2]);
        q.expect();
        q.answer(3);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        assert_eq!(q.take(), vec![3]);
    }

    #[tokio::test]
    async fn finish_waits_for_every_reply_then_drops_the_wake() {
        let held = Arc::new(());
        let h = held.clone();
        let q = Arc::new(ReplyQueue::new(move || {
            let _ = &h;
        }));
        q.expect();
        let finishing = tokio::spawn({
            let q = q.clone();
            async move { q.finish().await }
        });
        tokio::task::yield_now().await;
        assert!(!finishing.is_finished(), "a call is still unanswered");
        assert_eq!(Arc::strong_count(&held), 2);
        q.answer("late");
        finishing.await.unwrap();
        assert_eq!(Arc::strong_count(&held), 1, "the wake (and what it holds) is released");
        assert_eq!(q.take(), vec!["late"]);
    }
}
