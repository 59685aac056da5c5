use std::ops::Deref;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use libvms_errors::{err, Result};
use libvms_ledger::{Core, SharedCore};
use tokio::sync::oneshot;

/// Upper bound of one group commit, so one batch never holds the lock for long.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
const MAX_BATCH_BLOCKS: usize = 4096;

struct Job {
    blocks: Vec<Vec<u8>>,
    /// Receives the index of the job's first block.
    reply: oneshot::Sender<Result<u64>>,
}

struct Inner {
    core: SharedCore,
    /// The writer's queue and thread; `None` once closed (or for a log without its secret key).
    writer: Mutex<Option<(mpsc::Sender<Job>, JoinHandle<()>)>>,
}

/// A call log: a shared ledger core (`Deref`: reads, lengths, the signed head, the durability waits) plus the one
/// writer thread that group-commits appends. Clone it freely; `close` ends it for all clones.
#[derive(Clone)]
pub struct CallLog {
    inner: Arc<Inner>,
}

fn writer(inner: &Inner) -> MutexGuard<'_, Option<(mpsc::Sender<Job>, JoinHandle<()>)>> {
    // Nothing that can panic runs under this lock (it guards a channel end and a join handle).
    inner.writer.lock().unwrap_or_else(|p| p.into_inner())
}

impl CallLog {
    pub fn new(core: Core) -> CallLog {
        CallLog::from_shared(SharedCore::new(core, "call log"))
    }

    /// A call log over a core already shared (a fetched replica: no writer thread without the secret key).
    pub fn from_shared(core: SharedCore) -> CallLog {
        let writable = core.writable();
        let inner = Arc::new(Inner { core, writer: Mutex::new(None) });
        if writable {
            let (tx, rx) = mpsc::channel::<Job>();
            let for_thread = inner.clone();
            let handle = std::thread::Builder::new()
                .name("libvms-log-writer".into())
                .spawn(move || write_loop(&for_thread, rx))
                .expect("spawn log writer thread");
            *writer(&inner) = Some((tx, handle));
        }
        CallLog { inner }
    }

    /// The shared core under this log.
    pub fn core(&self) -> &SharedCore {
        &self.inner.core
    }

    /// Queue blocks for the next group commit; resolves with the index of the first block once durable.
    pub fn append(&self, blocks: Vec<Vec<u8>>) -> impl std::future::Future<Output = Result<u64>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = match writer(&self.inner).as_ref() {
            None => Err(self.closed_or_readonly()),
            Some((q, _)) => q.send(Job { blocks, reply }).map_err(|_| err::closed("call log is closed")),
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
        match self.inner.core.writable() {
            true => err::closed("call log is closed"),
            false => err::not_writable("this log was opened without its secret key"),
        }
    }

    /// Append on the calling thread, now: for a caller that knows nothing is queued for the writer (so order
    /// holds) and prefers one durable commit without thread hops to waiting for the writer.
    pub fn append_now(&self, blocks: &[&[u8]]) -> Result<u64> {
        if !self.inner.core.writable() {
            return Err(self.closed_or_readonly());
        }
        append_locked(&self.inner, blocks)
    }

    /// Stop accepting appends, wait for queued ones to commit, then flush and close the core. Idempotent.
    pub fn close(&self) -> Result<()> {
        let taken = writer(&self.inner).take();
        if let Some((queue, handle)) = taken {
            drop(queue); // the writer drains what is queued, then sees the channel closed
            let _ = handle.join();
        }
        self.inner.core.close()
    }
}

impl Deref for CallLog {
    type Target = SharedCore;

    fn deref(&self) -> &SharedCore {
        &self.inner.core
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

/// One ledger batch under the core's lock; the handle publishes the new length and head. Returns the first
/// block's index. After a failed batch the log takes no more: later appends and waits get that error.
fn append_locked(inner: &Inner, blocks: &[&[u8]]) -> Result<u64> {
    inner.core.write(|core| {
        let start = core.length();
        core.append_batch(blocks).map(|_| start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_ledger::Storage;

    fn create(dir: &std::path::Path) -> CallLog {
        CallLog::new(Core::create(Storage::Disk(dir.to_path_buf())).unwrap())
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
        let log = CallLog::new(core);
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
