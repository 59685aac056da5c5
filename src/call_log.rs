//! `NativeLog`: the ledger core behind `lib/call-log.js`. Appends go through the group-commit writer; reads are
//! synchronous (a verified read from the page cache costs microseconds, less than a thread hop).
use std::path::PathBuf;

use libvms_calllog::CallLog;
use libvms_ledger::{Core, SharedCore, Storage, LAZY_FLUSH_INTERVAL};
use napi::bindgen_prelude::{Buffer, PromiseRaw, Uint32Array};
use napi::Env;
use napi_derive::napi;

use crate::errors::{blocking, guard, js, js_index};

/// Blocks of a run: block k is `data[ends[k-1]..ends[k]]` (from 0 for the first).
#[napi(object)]
pub struct BlockRun {
    pub data: Buffer,
    pub ends: Uint32Array,
}

#[napi]
pub struct NativeLog {
    pub(crate) core: CallLog,
    /// Set for a log fetched from peers: the sessions that keep it following live appends, closed first.
    following: Option<libvms_replicate::Fetch>,
}

impl NativeLog {
    fn wrap(mut core: Core) -> NativeLog {
        // Flush the header when the oplog is full rather than every 4th batch as JS does; each batch is durable.
        core.set_flush_interval(LAZY_FLUSH_INTERVAL);
        NativeLog { core: CallLog::new(core), following: None }
    }

    /// A log fetched from peers, which `following` keeps up to date until it closes.
    pub(crate) fn fetched(core: SharedCore, following: libvms_replicate::Fetch) -> NativeLog {
        NativeLog { core: CallLog::from_shared(core), following: Some(following) }
    }
}

#[napi]
impl NativeLog {
    /// A new writable core with a fresh key pair in `dir` (which must not hold a core yet).
    #[napi(factory, catch_unwind)]
    pub fn create(dir: String) -> napi::Result<NativeLog> {
        guard(|| Core::create(Storage::Disk(PathBuf::from(dir))).map(NativeLog::wrap))
    }

    /// Reopen the core in `dir`.
    #[napi(factory, catch_unwind)]
    pub fn open(dir: String) -> napi::Result<NativeLog> {
        guard(|| Core::open(&PathBuf::from(dir)).map(NativeLog::wrap))
    }

    #[napi(getter)]
    pub fn key(&self) -> Buffer {
        self.core.key().to_vec().into()
    }

    #[napi(getter)]
    pub fn discovery_key(&self) -> Buffer {
        self.core.discovery_key().to_vec().into()
    }

    /// Entries held from 0 (appended here, or fetched).
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.core.length() as f64
    }

    #[napi(getter)]
    pub fn byte_length(&self) -> f64 {
        self.core.byte_length() as f64
    }

    /// The error that stopped commits, as data (`lib/errors.js` `fromData`), or null.
    #[napi(getter)]
    pub fn failure(&self) -> Option<crate::errors::NativeError> {
        self.core.failure().map(crate::errors::structured)
    }

    #[napi(getter)]
    pub fn writable(&self) -> bool {
        self.core.writable() && !self.core.is_closed()
    }

    /// Append blocks in the next group commit; resolves with the first block's index once durable.
    /// Queued synchronously, so concurrent appends keep the order in which JavaScript made them.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn append<'env>(&self, env: &'env Env, blocks: Vec<Buffer>) -> napi::Result<PromiseRaw<'env, f64>> {
        let blocks: Vec<Vec<u8>> = blocks.iter().map(|b| b.to_vec()).collect();
        let queued = self.core.append(blocks);
        env.spawn_future(async move { js(queued.await).map(|i| i as f64) })
    }

    /// Append blocks durably on this thread and return the first index. Only for a caller with no `append` still
    /// pending (the JS class uses it when the log is idle: one commit, no thread hops).
    #[napi(catch_unwind)]
    pub fn append_now(&self, blocks: Vec<Buffer>) -> napi::Result<f64> {
        guard(|| {
            let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_ref()).collect();
            self.core.append_now(&refs).map(|i| i as f64)
        })
    }

    /// Verified read of one block.
    #[napi(catch_unwind)]
    pub fn get(&self, index_: f64) -> napi::Result<Buffer> {
        guard(|| {
            let i = js_index(index_, "index")?;
            self.core.with(|c| c.get(i)).map(Buffer::from)
        })
    }

    /// Verified reads of blocks [start, end), for streaming in chunks: one buffer and each block's end offset
    /// (one allocation across the boundary instead of one per block).
    #[napi(catch_unwind)]
    pub fn get_range(&self, start: f64, end: f64) -> napi::Result<BlockRun> {
        guard(|| {
            let (start, end) = (js_index(start, "start")?, js_index(end, "end")?);
            let run = self.core.with(|c| c.read_run(start, end))?;
            let ends = run.ends.iter().map(|&e| e as u32).collect::<Vec<u32>>();
            Ok(BlockRun { data: run.data.into(), ends: ends.into() })
        })
    }

    /// Check the signature and every block; the error names the first bad index.
    #[napi]
    pub async fn verify(&self) -> napi::Result<()> {
        let core = self.core.clone();
        blocking(move || {
            core.with(|c| {
                c.verify().map_err(|e| {
                    let dir = c.dir().map(|d| d.display().to_string()).unwrap_or_else(|| "in memory".into());
                    e.context(format!("call log ({dir})"))
                })
            })
        })
        .await
    }

    /// Wait for queued appends, flush, release the lock. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        if let Some(f) = &self.following {
            f.close().await;
        }
        let core = self.core.clone();
        blocking(move || core.close()).await
    }

    /// Resolves with the number of entries held from 0 once it exceeds `after` (for a fetched log: live appends
    /// from peers), or with the current number when the log closes.
    #[napi]
    pub async fn wait_available(&self, after: f64) -> napi::Result<f64> {
        Ok(self.core.wait_beyond(after as u64).await as f64)
    }
}
