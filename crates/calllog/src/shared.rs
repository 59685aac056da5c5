use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use libvms_errors::{err, Result};
use libvms_ledger::Core;
use tokio::sync::{oneshot, watch};

/// Upper bound of one group commit, so one batch never holds the lock for long.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
const MAX_BATCH_BLOCKS: usize = 4096;

struct Job {
    blocks: Vec<Vec<u8>>,
    /// Receives the index of the job's first block.
    reply: oneshot::Sender<Result<u64>>,
}

struct Inner {
    /// `None` once closed.
    core: Mutex<Option<Core>>,
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// A mirror of the core's byte length, readable without waiting for a commit in progress (its length is
    /// `durable.length`).
    byte_length: AtomicU64,
    writable: bool,
    /// The committed length, and whether the log can still reach a longer one: what `length` reads and
    /// `wait_durable` watches.
    durable: watch::Sender<Durable>,
}

#[derive(Clone, Debug)]
struct Durable {
    length: u64,
    /// Why no more blocks will be committed: a failed commit (then the log refuses appends: the indexes its
    /// callers were promised no longer hold), or closed.
    stopped: Option<libvms_errors::Error>,
    /// The signed head at `length`: (fork, tree hash, signature). Receipts read it without the core's lock, which a
    /// commit in progress holds through its syncs.
    head: Option<(u64, [u8; 32], Vec<u8>)>,
}

/// A ledger core that many tasks append to and read from. Clone it freely; `close` ends it for all clones.
#[derive(Clone)]
pub struct SharedCore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock is already reported as an error to its caller; the data stays usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedCore {
    pub fn new(core: Core) -> SharedCore {
        let writable = core.writable();
        let inner = Arc::new(Inner {
            byte_length: AtomicU64::new(core.byte_length()),
            durable: watch::Sender::new(Durable { length: core.length(), stopped: None, head: signed_head(&core) }),
            core: Mutex::new(Some(core)),
            queue: Mutex::new(None),
            writer: Mutex::new(None),
            writable,
        });
        if writable {
            let (tx, rx) = mpsc::channel::<Job>();
            let for_thread = inner.clone();
            let handle = std::thread::Builder::new()
                .name("libvms-log-writer".into())
                .spawn(move || write_loop(&for_thread, rx))
                .expect("spawn log writer thread");
            *lock(&inner.queue) = Some(tx);
            *lock(&inner.writer) = Some(handle);
        }
        SharedCore { inner }
    }

    /// Queue blocks for the next group commit; resolves with the index of the first block once durable.
    pub fn append(&self, blocks: Vec<Vec<u8>>) -> impl std::future::Future<Output = Result<u64>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = match lock(&self.inner.queue).as_ref() {
            None => Err(self.closed_or_readonly()),
            Some(q) => q.send(Job { blocks, reply }).map_err(|_| err::closed("call log is closed")),
        };
        async move {
            sent?;
            rx.await.map_err(|_| err::internal("log writer stopped before answering"))?
        }
    }

    /// Blocking variant of `append`, for callers outside any async runtime.
    pub fn append_blocking(&self, blocks: Vec<Vec<u8>>) -> Result<u64> {
        let fut = self.append(blocks);
        tokio::runtime::Builder::new_current_thread().build()?.block_on(fut)
    }

    fn closed_or_readonly(&self) -> libvms_errors::Error {
        match lock(&self.inner.core).as_ref() {
            None => err::closed("call log is closed"),
            Some(_) => err::not_writable("this log was opened without its secret key"),
        }
    }

    /// Append on the calling thread, now: for a caller that knows nothing is queued for the writer (so order
    /// holds) and prefers one durable commit without thread hops to waiting for the writer.
    pub fn append_now(&self, blocks: &[&[u8]]) -> Result<u64> {
        append_locked(&self.inner, blocks)
    }

    /// Run `f` on the core under its lock. Errors with `Closed` after `close`.
    pub fn with<R>(&self, f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
        let mut guard = lock(&self.inner.core);
        let core = guard.as_mut().ok_or_else(|| err::closed("call log is closed"))?;
        catch_unwind(AssertUnwindSafe(|| f(core)))
            .unwrap_or_else(|p| Err(err::internal(format!("panic in ledger: {}", panic_message(&p)))))
    }

    /// Resolves once `length` blocks are committed (durable); fails if a commit failed or the log closed first.
    pub fn wait_durable(&self, length: u64) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let mut rx = self.inner.durable.subscribe();
        async move {
            let state = rx.wait_for(|d| d.length >= length || d.stopped.is_some()).await;
            match state.as_deref() {
                Ok(d) if d.length >= length => Ok(()),
                Ok(Durable { stopped: Some(e), .. }) => Err(e.clone()),
                _ => Err(err::closed("call log is closed")),
            }
        }
    }

    /// The error that stopped commits (the log refuses appends from then on), or `None`; closing is not one.
    pub fn failure(&self) -> Option<libvms_errors::Error> {
        let d = self.inner.durable.borrow();
        d.stopped.clone().filter(|e| e.code != libvms_errors::ErrorCode::Closed)
    }

    /// The signed head as of the last commit: `(length, fork, tree hash, signature)` (never blocks).
    pub fn signed_head(&self) -> Option<(u64, u64, [u8; 32], Vec<u8>)> {
        let d = self.inner.durable.borrow();
        d.head.as_ref().map(|(fork, tree, sig)| (d.length, *fork, *tree, sig.clone()))
    }

    /// Length as of the last commit (never blocks).
    pub fn length(&self) -> u64 {
        self.inner.durable.borrow().length
    }

    pub fn byte_length(&self) -> u64 {
        self.inner.byte_length.load(Ordering::Acquire)
    }

    pub fn writable(&self) -> bool {
        self.inner.writable
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.inner.core).is_none()
    }

    /// Stop accepting appends, wait for queued ones to commit, then flush and close the core. Idempotent.
    pub fn close(&self) -> Result<()> {
        lock(&self.inner.queue).take(); // the writer drains what is queued, then sees the channel closed
        if let Some(handle) = lock(&self.inner.writer).take() {
            let _ = handle.join();
        }
        let closed = match lock(&self.inner.core).take() {
            Some(core) => core.close(),
            None => Ok(()),
        };
        self.inner.durable.send_modify(|d| {
            d.stopped.get_or_insert_with(|| err::closed("call log is closed"));
        });
        closed
    }
}

fn write_loop(inner: &Inner, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut bytes: usize = jobs[0].blocks.iter().map(Vec::len).sum();
        let mut count = jobs[0].blocks.len();
        while bytes < MAX_BATCH_BYTES && count < MAX_BATCH_BLOCKS {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.blocks.iter().map(Vec::len).sum::<usize>();
                    count += job.blocks.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        commit(inner, jobs);
    }
}

/// Append every job's blocks as one batch and answer each job with its first index.
fn commit(inner: &Inner, jobs: Vec<Job>) {
    let blocks: Vec<&[u8]> = jobs.iter().flat_map(|j| j.blocks.iter().map(Vec::as_slice)).collect();
    let result = append_locked(inner, &blocks);
    let mut next = result.clone();
    for job in jobs {
        let n = job.blocks.len() as u64;
        let _ = job.reply.send(next.clone());
        if let Ok(i) = next.as_mut() {
            *i += n;
        }
    }
}

/// One ledger batch under the core's lock (a panic becomes an error); publishes the new counters. Returns the first
/// block's index. After a failed batch the log takes no more: later appends and waits get that error.
fn append_locked(inner: &Inner, blocks: &[&[u8]]) -> Result<u64> {
    let mut guard = lock(&inner.core);
    let core = guard.as_mut().ok_or_else(|| err::closed("call log is closed"))?;
    if let Some(e) = inner.durable.borrow().stopped.clone() {
        return Err(e);
    }
    let start = core.length();
    let r = catch_unwind(AssertUnwindSafe(|| core.append_batch(blocks)))
        .unwrap_or_else(|p| Err(err::internal(format!("panic in ledger: {}", panic_message(&p)))));
    inner.byte_length.store(core.byte_length(), Ordering::Release);
    let length = core.length();
    let head = signed_head(core);
    inner.durable.send_modify(|d| match &r {
        Ok(_) => {
            d.length = length;
            d.head = head;
        }
        Err(e) => d.stopped = Some(e.clone()),
    });
    r.map(|_| start)
}

fn signed_head(core: &Core) -> Option<(u64, [u8; 32], Vec<u8>)> {
    core.signature().map(|s| (core.fork(), core.tree_hash(), s))
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_ledger::Storage;

    fn create(dir: &std::path::Path) -> SharedCore {
        SharedCore::new(Core::create(Storage::Disk(dir.to_path_buf())).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_get_distinct_ordered_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path());
        let mut tasks = Vec::new();
        for i in 0..64u32 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move { (i, log.append(vec![i.to_le_bytes().to_vec()]).await.unwrap()) }));
        }
        let mut seen = Vec::new();
        for t in tasks {
            let (i, seq) = t.await.unwrap();
            let got = log.with(|c| c.get(seq)).unwrap();
            assert_eq!(got, i.to_le_bytes().to_vec(), "block at {seq} is the one appended");
            seen.push(seq);
        }
        seen.sort();
        assert_eq!(seen, (0..64).collect::<Vec<u64>>());
        log.close().unwrap();
    }

    #[tokio::test]
    async fn inline_and_queued_appends_interleave_in_order_and_survive_a_reopen_with_a_long_flush_interval() {
        let dir = tempfile::tempdir().unwrap();
        let mut core = Core::create(Storage::Disk(dir.path().to_path_buf())).unwrap();
        core.set_flush_interval(libvms_ledger::LAZY_FLUSH_INTERVAL);
        let log = SharedCore::new(core);
        for i in 0..50u64 {
            let block = i.to_le_bytes().to_vec();
            let seq = if i % 2 == 0 { log.append_now(&[&block]).unwrap() } else { log.append(vec![block]).await.unwrap() };
            assert_eq!(seq, i);
        }
        assert_eq!(log.length(), 50);
        // A crash now (a copy of the files as they are, no close): the oplog entries alone carry the batches.
        let crashed = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), crashed.path().join(f.file_name())).unwrap();
        }
        log.close().unwrap();
        let mut reopened = Core::open(crashed.path()).unwrap();
        assert_eq!(reopened.length(), 50);
        for i in 0..50u64 {
            assert_eq!(reopened.get(i).unwrap(), i.to_le_bytes().to_vec());
        }
        reopened.verify().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_durable_resolves_once_the_blocks_are_committed_and_fails_when_the_log_closes_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path());
        log.wait_durable(0).await.unwrap();
        let waiting = tokio::spawn(log.wait_durable(3));
        let queued = log.append(vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(queued.await.unwrap(), 0);
        log.append_now(&[b"c"]).unwrap();
        waiting.await.unwrap().unwrap();
        assert_eq!(log.length(), 3);

        let never = tokio::spawn(log.wait_durable(10));
        log.close().unwrap();
        let e = never.await.unwrap().unwrap_err();
        assert_eq!(e.code, libvms_errors::ErrorCode::Closed);
        log.wait_durable(3).await.unwrap();
    }

    #[tokio::test]
    async fn append_after_close_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path());
        assert_eq!(log.append(vec![b"a".to_vec(), b"b".to_vec()]).await.unwrap(), 0);
        assert_eq!(log.append(vec![b"c".to_vec()]).await.unwrap(), 2);
        log.close().unwrap();
        log.close().unwrap();
        let e = log.append(vec![b"x".to_vec()]).await.unwrap_err();
        assert_eq!(e.code, libvms_errors::ErrorCode::Closed);
        assert_eq!(log.with(|c| Ok(c.length())).unwrap_err().code, libvms_errors::ErrorCode::Closed);
        // Reopen: everything acknowledged is there.
        let core = Core::open(dir.path()).unwrap();
        assert_eq!(core.length(), 3);
    }

    #[test]
    fn blocking_append_works_outside_a_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path());
        assert_eq!(log.append_blocking(vec![b"x".to_vec()]).unwrap(), 0);
        log.close().unwrap();
    }
}
