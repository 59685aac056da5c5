//! A core as replication sees it: the shared core of its owner (a call log, an archive, or a fetch; all
//! reach it through `libvms_ledger::SharedCore`), plus what several sessions on different peers must agree on
//! (which blocks are being requested, what peers claim to have).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use libvms_errors::Result;
use libvms_ledger::{Core, SharedCore, Storage};
use tokio::sync::watch;

/// Snapshot of a core's state for progress reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub length: u64,
    pub contiguous: u64,
    /// Largest length a peer announced for this core (0 until one did).
    pub remote_length: u64,
    /// Some peer has told us its length.
    pub remote_known: bool,
}

struct Inner {
    key: [u8; 32],
    discovery_key: [u8; 32],
    core: SharedCore,
    /// Blocks some session has asked a peer for; others leave them alone.
    claimed: Mutex<HashSet<u64>>,
    progress: watch::Sender<Progress>,
    /// Range to download (None: everything), end exclusive.
    want: Mutex<Option<(u64, u64)>>,
    download: bool,
    /// Served no further than this length (u64::MAX: no limit); see `limit_served`.
    served_limit: AtomicU64,
}

/// A core shared by replication sessions. Cheap to clone.
#[derive(Clone)]
pub struct ReplCore {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplCore {
    /// Wrap a shared core; `download` decides whether sessions fetch missing blocks into it.
    pub fn new(core: SharedCore, download: bool) -> Result<ReplCore> {
        let p = core.with(|c| Ok(Progress { length: c.length(), contiguous: c.contiguous_length(), ..Progress::default() }))?;
        let (progress, _) = watch::channel(p);
        Ok(ReplCore {
            inner: Arc::new(Inner {
                key: core.key(),
                discovery_key: core.discovery_key(),
                core,
                claimed: Mutex::new(HashSet::new()),
                progress,
                want: Mutex::new(None),
                download,
                served_limit: AtomicU64::new(u64::MAX),
            }),
        })
    }

    /// Serve a shared core; sessions download into it only when it was opened without its secret key.
    pub fn from_shared(core: SharedCore) -> Result<ReplCore> {
        let download = !core.writable();
        ReplCore::new(core, download)
    }

    /// A replica of `key` in `storage` (created or resumed), downloading.
    pub fn replica(storage: Storage, key: [u8; 32]) -> Result<(ReplCore, SharedCore)> {
        let core = SharedCore::new(Core::open_replica(storage, key)?, "core");
        Ok((ReplCore::new(core.clone(), true)?, core))
    }

    pub fn key(&self) -> [u8; 32] {
        self.inner.key
    }

    pub fn discovery_key(&self) -> [u8; 32] {
        self.inner.discovery_key
    }

    pub fn downloads(&self) -> bool {
        self.inner.download
    }

    /// Run `f` on the core under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Core) -> Result<R>) -> Result<R> {
        self.inner.core.with(f)
    }

    /// The shared core itself.
    pub fn core(&self) -> &SharedCore {
        &self.inner.core
    }

    /// Serve peers this core only up to `length` (a VM's archive, up to what its durable call log accounts for:
    /// a write a crash could roll back is never seen). The core must keep signed heads (`Core::keep_signed_heads`)
    /// for the lengths it is limited to; while it has none for the limit, nothing new is announced or upgraded.
    pub fn limit_served(&self, length: u64) {
        self.inner.served_limit.store(length, Ordering::Release);
    }

    /// The length peers may see now: the core's, or the limit when that is shorter and has a signed head
    /// (None: the limit has none, so nothing past what was announced before may be served).
    pub(crate) fn served_length(&self, c: &Core) -> Option<u64> {
        let limit = self.inner.served_limit.load(Ordering::Acquire);
        if limit >= c.length() {
            Some(c.length())
        } else if c.can_serve_at(limit) {
            Some(limit)
        } else {
            None
        }
    }

    /// Limit the download to blocks `[start, end)`; `None` downloads everything.
    pub fn set_want(&self, range: Option<(u64, u64)>) {
        *lock(&self.inner.want) = range;
    }

    pub fn want(&self) -> Option<(u64, u64)> {
        *lock(&self.inner.want)
    }

    /// Claim block `i` for a request; false when another session already asked for it.
    pub(crate) fn claim(&self, i: u64) -> bool {
        lock(&self.inner.claimed).insert(i)
    }

    pub(crate) fn release(&self, i: u64) {
        lock(&self.inner.claimed).remove(&i);
    }

    pub(crate) fn is_claimed(&self, i: u64) -> bool {
        lock(&self.inner.claimed).contains(&i)
    }

    /// Re-read the core's length and contiguous length into the progress watch.
    pub(crate) fn refresh(&self) -> Result<Progress> {
        let (length, contiguous) = self.with(|c| Ok((c.length(), c.contiguous_length())))?;
        self.inner.progress.send_if_modified(|p| {
            let changed = p.length != length || p.contiguous != contiguous;
            p.length = length;
            p.contiguous = contiguous;
            changed
        });
        Ok(*self.inner.progress.borrow())
    }

    pub(crate) fn saw_remote_length(&self, length: u64) {
        self.inner.progress.send_if_modified(|p| {
            let changed = !p.remote_known || length > p.remote_length;
            p.remote_known = true;
            p.remote_length = p.remote_length.max(length);
            changed
        });
    }

    pub fn progress(&self) -> Progress {
        *self.inner.progress.borrow()
    }

    /// Subscribe to progress changes (length, contiguous length, remote lengths).
    pub fn watch(&self) -> watch::Receiver<Progress> {
        self.inner.progress.subscribe()
    }

    /// Whether everything wanted is held: a peer told us its length and we hold all blocks up to
    /// it (or the wanted range).
    pub fn is_complete(&self) -> bool {
        let p = self.progress();
        if !p.remote_known || p.length < p.remote_length {
            return false;
        }
        match self.want() {
            None => p.contiguous >= p.length,
            Some((s, e)) => {
                let e = e.min(p.length);
                p.contiguous >= e || self.with(|c| Ok((s..e).all(|i| c.has(i)))).unwrap_or(false)
            }
        }
    }
}
