//! `SharedCore`: the one handle to a core that several threads use (a call log's writer and its readers, an
//! archive and its checkouts, replication sessions, a fetch). Every use takes the core's lock; what readers poll
//! (lengths, the signed head) is published after each change, so they never wait for a write in progress. `close`
//! ends the core for every clone.
//!
//! Like a poisoned lock, but with an error that says why:
//! - a panic while the core is held leaves it in an unknown state: every later use fails (`INTERNAL`);
//! - a write that failed after the core's memory moved on (an I/O error): later writes fail with that error's
//!   code (reads go on; `failure` says what was lost). Reopening the core recovers either way.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use libvms_errors::{err, Error, ErrorCode, Result};
use tokio::sync::watch;

use crate::core::Core;

/// What the handle publishes after each change of the core.
#[derive(Clone, Debug, Default)]
struct Status {
    /// Blocks held from 0: all of a writer's blocks, a replica's contiguous length.
    length: u64,
    /// The length of the signed tree (a replica may lack blocks below it).
    signed_length: u64,
    byte_length: u64,
    fork: u64,
    /// `(fork, tree hash, signature)` at `signed_length`, once signed.
    head: Option<(u64, [u8; 32], Vec<u8>)>,
    /// The first failed write, or damage a read met: the handle then refuses writes.
    failure: Option<Error>,
    closed: bool,
}

struct Slot {
    /// `None` once closed.
    core: Option<Core>,
    /// Set by a panic under the lock: nothing the core holds in memory can be trusted any more.
    panicked: Option<Error>,
    /// Released on close, with the core (the archive's `primary-key` lock).
    held: Option<Box<dyn Any + Send>>,
}

struct Inner {
    slot: Mutex<Slot>,
    status: watch::Sender<Status>,
    key: [u8; 32],
    writable: bool,
    /// Names the core in errors ("call log", "archive").
    what: &'static str,
}

/// A ledger core that several threads use. Clone it freely; `close` ends it for all clones.
#[derive(Clone)]
pub struct SharedCore {
    inner: Arc<Inner>,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic under this lock is caught where it happens and recorded in `panicked`; the std flag adds nothing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedCore {
    /// Share `core`; `what` names it in errors ("call log is closed").
    pub fn new(core: Core, what: &'static str) -> SharedCore {
        let mut status = Status::default();
        publish(&core, &mut status);
        SharedCore {
            inner: Arc::new(Inner {
                key: core.key(),
                writable: core.writable(),
                what,
                status: watch::Sender::new(status),
                slot: Mutex::new(Slot { core: Some(core), panicked: None, held: None }),
            }),
        }
    }

    /// Keep `thing` alive until the core closes (a lock file that guards more than the core's own files).
    pub fn hold_until_close(&self, thing: impl Any + Send) {
        lock(&self.inner.slot).held = Some(Box::new(thing));
    }

    /// Run `f` on the core under its lock (reads, and writes whose failure leaves the core as it was).
    pub fn with<R>(&self, f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
        self.run(false, f)
    }

    /// Run a write under the lock. If it fails with the core's memory ahead of its files (an I/O error), the
    /// handle refuses writes from then on, and `failure` and the waits report it.
    pub fn write<R>(&self, f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
        self.run(true, f)
    }

    fn run<R>(&self, write: bool, f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
        let mut slot = lock(&self.inner.slot);
        if let Some(e) = &slot.panicked {
            return Err(e.clone());
        }
        let Slot { core, panicked, .. } = &mut *slot;
        let core = core.as_mut().ok_or_else(|| self.closed())?;
        if write {
            if let Some(first) = self.failure() {
                return Err(refused(&first));
            }
        }
        let r = match catch_unwind(AssertUnwindSafe(|| f(core))) {
            Ok(r) => r,
            Err(p) => {
                let e = err::internal(format!(
                    "{} is unusable after a panic in the ledger ({}); reopen it",
                    self.inner.what,
                    libvms_errors::panic_text(&*p).unwrap_or_else(|| "unknown".into())
                ));
                *panicked = Some(e.clone());
                self.inner.status.send_modify(|s| {
                    s.failure.get_or_insert_with(|| e.clone());
                });
                return Err(e);
            }
        };
        let failed = match &r {
            Err(e) if write && (e.code == ErrorCode::Io || core.failed()) => Some(e.clone()),
            // Damage a read met in a writer's own files: nothing may be written on top of it (a VM stops instead of
            // logging the error as a call's outcome).
            Err(e) if !write && core.writable() && is_damage(e.code) => Some(e.clone()),
            _ => None,
        };
        // Most uses are reads: look (shared lock) before publishing (exclusive lock).
        if failed.is_some() || stale(core, &self.inner.status.borrow()) {
            self.inner.status.send_if_modified(|s| {
                let mut changed = publish(core, s);
                if let Some(e) = failed {
                    changed |= s.failure.is_none();
                    s.failure.get_or_insert(e);
                }
                changed
            });
        }
        r
    }

    fn closed(&self) -> Error {
        err::closed(format!("{} is closed", self.inner.what))
    }

    pub fn key(&self) -> [u8; 32] {
        self.inner.key
    }

    pub fn discovery_key(&self) -> [u8; 32] {
        crate::discovery_key(&self.inner.key)
    }

    /// Opened with its secret key.
    pub fn writable(&self) -> bool {
        self.inner.writable
    }

    /// Blocks held from 0, as of the last change (never blocks): a writer's length, a replica's contiguous
    /// length; what a reader can read in order.
    pub fn length(&self) -> u64 {
        self.inner.status.borrow().length
    }

    /// The signed tree's length, as of the last change (a sparse replica may lack blocks below it).
    pub fn signed_length(&self) -> u64 {
        self.inner.status.borrow().signed_length
    }

    pub fn byte_length(&self) -> u64 {
        self.inner.status.borrow().byte_length
    }

    /// The signed head as of the last change: `(length, fork, tree hash, signature)` (never blocks).
    pub fn signed_head(&self) -> Option<(u64, u64, [u8; 32], Vec<u8>)> {
        let s = self.inner.status.borrow();
        s.head.as_ref().map(|(fork, tree, sig)| (s.signed_length, *fork, *tree, sig.clone()))
    }

    /// The first failed write, damaged read or panic since the core was opened, if any.
    pub fn failure(&self) -> Option<Error> {
        self.inner.status.borrow().failure.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.inner.status.borrow().closed
    }

    /// Resolves once `length` blocks are held; fails if a write failed or the core closed first.
    pub fn wait_durable(&self, length: u64) -> impl Future<Output = Result<()>> + Send + 'static {
        let mut rx = self.inner.status.subscribe();
        let closed = self.closed();
        async move {
            let state = rx.wait_for(|s| s.length >= length || s.failure.is_some() || s.closed).await;
            match state.as_deref() {
                Ok(s) if s.length >= length => Ok(()),
                Ok(Status { failure: Some(e), .. }) => Err(e.clone()),
                _ => Err(closed),
            }
        }
    }

    /// Resolves with the length once it exceeds `after` (blocks appended or fetched), or as it is when the core
    /// closes.
    pub fn wait_beyond(&self, after: u64) -> impl Future<Output = u64> + Send + 'static {
        let mut rx = self.inner.status.subscribe();
        async move {
            match rx.wait_for(|s| s.length > after || s.closed).await {
                Ok(s) => s.length,
                Err(_) => after,
            }
        }
    }

    /// Flush and release the core (and what it holds), for every clone. Idempotent.
    pub fn close(&self) -> Result<()> {
        let (core, held) = {
            let mut slot = lock(&self.inner.slot);
            (slot.core.take(), slot.held.take())
        };
        let r = match core {
            Some(core) => core.close(),
            None => Ok(()),
        };
        drop(held);
        self.inner.status.send_if_modified(|s| !std::mem::replace(&mut s.closed, true));
        r
    }
}

/// Whether `s` no longer tells what `core` holds.
fn stale(core: &Core, s: &Status) -> bool {
    let held = if core.writable() { core.length() } else { core.contiguous_length() };
    let same = s.length == held && s.signed_length == core.length() && s.byte_length == core.byte_length() && s.fork == core.fork();
    !same || (s.head.is_none() && core.signature().is_some())
}

/// Refresh `s` from `core`; true if anything readers see changed.
fn publish(core: &Core, s: &mut Status) -> bool {
    if !stale(core, s) {
        return false;
    }
    s.length = if core.writable() { core.length() } else { core.contiguous_length() };
    s.signed_length = core.length();
    s.byte_length = core.byte_length();
    s.fork = core.fork();
    s.head = core.signature().map(|sig| (core.fork(), core.tree_hash(), sig));
    true
}

fn is_damage(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::Io | ErrorCode::VerificationFailed | ErrorCode::StorageCorrupt)
}

/// Later writes after `first` failed: the same code, saying why.
fn refused(first: &Error) -> Error {
    let mut e = first.clone();
    e.message = format!("an earlier storage failure ({}); reopen the core", first.message);
    e.index = None;
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Storage;

    fn memory() -> SharedCore {
        SharedCore::new(Core::create(Storage::Memory).unwrap(), "test log")
    }

    #[test]
    fn lengths_and_head_are_published_after_each_change_for_every_clone() {
        let a = memory();
        let b = a.clone();
        assert_eq!((b.length(), b.signed_length(), b.byte_length()), (0, 0, 0));
        a.write(|c| c.append_batch(&[b"one", b"three"])).unwrap();
        assert_eq!((b.length(), b.signed_length(), b.byte_length()), (2, 2, 8));
        let (length, fork, tree, sig) = b.signed_head().unwrap();
        let expected = b.with(|c| Ok((c.length(), c.fork(), c.tree_hash(), c.signature().unwrap()))).unwrap();
        assert_eq!((length, fork, tree, sig), expected);
    }

    #[test]
    fn a_panic_under_the_lock_makes_every_later_use_fail_clearly() {
        let log = memory();
        log.write(|c| c.append_batch(&[b"x"])).unwrap();
        let other = log.clone();
        let e = std::thread::spawn(move || other.with(|_| -> Result<()> { panic!("boom") })).join().unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(e.message.contains("boom") && e.message.contains("test log"), "{}", e.message);
        let later = log.with(|c| c.get(0)).unwrap_err();
        assert_eq!(later, e, "reads fail too: the core's memory is not trusted");
        assert_eq!(log.write(|c| c.append_batch(&[b"y"])).unwrap_err(), e);
        assert_eq!(log.failure(), Some(e));
        log.close().unwrap();
    }

    #[test]
    fn a_failed_write_refuses_later_writes_but_not_reads_and_a_plain_error_does_neither() {
        let dir = tempfile::tempdir().unwrap();
        let log = SharedCore::new(Core::create(Storage::Disk(dir.path().to_path_buf())).unwrap(), "test log");
        log.write(|c| c.append_batch(&[b"a"])).unwrap();
        // An error that leaves the core as it was (a bad argument) changes nothing.
        assert_eq!(log.write(|c| c.truncate(5)).unwrap_err().code, ErrorCode::BadArgument);
        assert_eq!(log.failure(), None);
        log.write(|c| c.append_batch(&[b"b"])).unwrap();
        // A failed write: the next write is refused with its code, reads go on.
        let e = log.write(|_| -> Result<()> { Err(err::io("disk full")) }).unwrap_err();
        assert_eq!(log.failure(), Some(e.clone()));
        let refused = log.write(|c| c.append_batch(&[b"c"])).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Io);
        assert!(refused.message.contains("disk full") && refused.message.contains("reopen"), "{}", refused.message);
        assert_eq!(log.with(|c| c.get(1)).unwrap(), b"b");
        assert_eq!(log.length(), 2);
        log.close().unwrap();
    }

    #[test]
    fn close_ends_the_core_for_every_clone_and_releases_what_it_holds() {
        let log = memory();
        let held = Arc::new(());
        log.hold_until_close(held.clone());
        let other = log.clone();
        other.close().unwrap();
        other.close().unwrap();
        assert!(log.is_closed());
        assert_eq!(Arc::strong_count(&held), 1, "released with the core");
        let e = log.with(|c| Ok(c.length())).unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Closed, "test log is closed"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waits_end_on_growth_on_failure_and_on_close() {
        let log = memory();
        log.wait_durable(0).await.unwrap();
        let durable = tokio::spawn(log.wait_durable(2));
        let beyond = tokio::spawn(log.wait_beyond(0));
        let writer = log.clone();
        tokio::task::spawn_blocking(move || writer.write(|c| c.append_batch(&[b"a", b"b"]))).await.unwrap().unwrap();
        durable.await.unwrap().unwrap();
        assert_eq!(beyond.await.unwrap(), 2);

        let failing = memory();
        let never = tokio::spawn(failing.wait_durable(1));
        let _ = failing.write(|_| -> Result<()> { Err(err::io("gone")) });
        assert_eq!(never.await.unwrap().unwrap_err().message, "gone");

        let pending = tokio::spawn(log.wait_beyond(10));
        let never = tokio::spawn(log.wait_durable(10));
        log.close().unwrap();
        assert_eq!(pending.await.unwrap(), 2, "a close ends the wait with the length held");
        assert_eq!(never.await.unwrap().unwrap_err().code, ErrorCode::Closed);
        assert_eq!(log.wait_beyond(5).await, 2);
    }
}
