//! `NativeDrive`: the files archive behind `lib/dat-archive.js`. Work runs on the blocking pool (each write syncs);
//! versions are libvms's (writes so far: 1 after the `/dat.json` of create), one less than Hyperdrive's.
use std::path::PathBuf;
use std::sync::Arc;

use libvms_archive::bee::ChangeType;
use libvms_archive::disk::{self, DiskDrive};
use libvms_archive::{content_diff, SharedDrive};
use libvms_errors::{err, Result};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::errors::{blocking, guard, js_index};


#[napi]
pub struct NativeDrive {
    pub(crate) drive: SharedDrive,
    key: [u8; 32],
    /// For a fetched archive: the sessions that keep it following its peers, ended by `close`.
    following: Option<Arc<libvms_replicate::Fetch>>,
    /// For a sparse fetched archive: paths are fetched on demand through this.
    sparse: Option<Arc<libvms_replicate::SparseArchive>>,
}

#[napi(object)]
pub struct DriveStat {
    pub is_dir: bool,
    pub size: f64,
    pub mtime: f64,
    pub ctime: f64,
    pub blocks: f64,
    pub downloaded: f64,
}

#[napi(object)]
pub struct HistoryItem {
    #[napi(js_name = "type")]
    pub kind: String,
    pub path: String,
    pub version: f64,
}

/// What a rollback undid: writes (metadata blocks) and content blocks dropped.
#[napi(object)]
pub struct RolledBack {
    pub writes: f64,
    pub content_blocks: f64,
}

#[napi(object)]
pub struct DriveDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

fn key_from_hex(hex: &str) -> Result<[u8; 32]> {
    let bad = || err::bad_argument(format!("not a 64-hex-digit key: {hex}"));
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(key)
}

fn drive_stat(s: libvms_archive::drive::Stat) -> DriveStat {
    DriveStat {
        is_dir: s.is_dir,
        size: s.size as f64,
        mtime: s.mtime as f64,
        ctime: s.ctime as f64,
        blocks: s.blocks as f64,
        downloaded: s.downloaded as f64,
    }
}

/// Run `f` on the drive on the blocking pool, catching panics.
async fn run<R: Send + 'static>(drive: &SharedDrive, f: impl FnOnce(&mut DiskDrive) -> Result<R> + Send + 'static) -> napi::Result<R> {
    let drive = drive.clone();
    blocking(move || drive.with(f)).await
}

/// Hyperdrive's version (max(1, metadata length)) as libvms counts: writes so far.
fn version_of(d: &DiskDrive) -> f64 {
    d.version().saturating_sub(1) as f64
}

impl NativeDrive {
    pub(crate) fn wrap(drive: DiskDrive, key: [u8; 32]) -> NativeDrive {
        NativeDrive { drive: SharedDrive::new(drive), key, following: None, sparse: None }
    }

    /// A fetched archive that keeps following its peers until closed.
    pub(crate) fn wrap_following(drive: DiskDrive, key: [u8; 32], fetch: libvms_replicate::Fetch) -> NativeDrive {
        NativeDrive { following: Some(Arc::new(fetch)), ..NativeDrive::wrap(drive, key) }
    }

    /// A fetched archive holding only its header: paths are fetched on demand (`fetchPath`).
    pub(crate) fn wrap_sparse(drive: DiskDrive, key: [u8; 32], fetch: libvms_replicate::Fetch) -> Result<NativeDrive> {
        let fetch = Arc::new(fetch);
        let sparse = Some(Arc::new(libvms_replicate::SparseArchive::new(fetch.clone())?));
        Ok(NativeDrive { following: Some(fetch), sparse, ..NativeDrive::wrap(drive, key) })
    }
}

#[napi]
impl NativeDrive {
    /// A new, empty archive in `dir` (corestore@6 layout).
    #[napi(factory, catch_unwind)]
    pub fn create(dir: String) -> napi::Result<NativeDrive> {
        guard(|| {
            let mut drive = disk::create(&PathBuf::from(dir))?;
            let key = drive.bee().store().key();
            Ok(NativeDrive::wrap(drive, key))
        })
    }

    /// Reopen the archive in `dir`, which must be `key_hex` when given.
    #[napi(factory, catch_unwind)]
    pub fn open(dir: String, key_hex: Option<String>) -> napi::Result<NativeDrive> {
        guard(|| {
            let expected = key_hex.as_deref().map(key_from_hex).transpose()?;
            let mut drive = disk::open(&PathBuf::from(dir), expected)?;
            let key = drive.bee().store().key();
            Ok(NativeDrive::wrap(drive, key))
        })
    }

    #[napi(getter)]
    pub fn key(&self) -> Buffer {
        self.key.to_vec().into()
    }

    #[napi(getter, catch_unwind)]
    pub fn version(&self) -> napi::Result<f64> {
        guard(|| self.drive.with(|d| Ok(version_of(d))))
    }

    #[napi(getter)]
    pub fn writable(&self) -> bool {
        self.drive.with(|d| Ok(d.is_writable())).unwrap_or(false)
    }

    #[napi]
    pub async fn write_file(&self, path: String, data: Buffer) -> napi::Result<f64> {
        let data = data.to_vec();
        run(&self.drive, move |d| d.write_file(&path, &data).map(|_| version_of(d))).await
    }

    /// Synchronous durable write of a small file: a few syncs of microseconds each cost less than the two thread
    /// hops of `writeFile`. Null when the drive is busy (another write in progress): use `writeFile` then.
    #[napi(catch_unwind)]
    pub fn write_small_file(&self, path: String, data: Buffer) -> napi::Result<Option<f64>> {
        guard(|| self.drive.try_with(|d| d.write_file(&path, &data).map(|_| version_of(d))))
    }

    #[napi]
    pub async fn read_file(&self, path: String) -> napi::Result<Buffer> {
        run(&self.drive, move |d| d.read_file(&path).map(Buffer::from)).await
    }

    /// Synchronous verified read of a file of at most `max_bytes` (page-cache reads take microseconds, less than
    /// the hop to the blocking pool). Null when the file is bigger or the drive is busy: use `readFile` then.
    #[napi(catch_unwind)]
    pub fn read_small_file(&self, path: String, max_bytes: f64) -> napi::Result<Option<Buffer>> {
        guard(|| {
            let max = js_index(max_bytes, "maxBytes")?;
            Ok(self.drive.try_with(|d| d.read_file_if_small(&path, max))?.flatten().map(Buffer::from))
        })
    }

    #[napi]
    pub async fn stat(&self, path: String) -> napi::Result<DriveStat> {
        run(&self.drive, move |d| d.stat(&path).map(drive_stat)).await
    }

    /// Synchronous `stat` (one tree lookup); null when the drive is busy: use `stat` then.
    #[napi(catch_unwind)]
    pub fn stat_now(&self, path: String) -> napi::Result<Option<DriveStat>> {
        guard(|| Ok(self.drive.try_with(|d| d.stat(&path))?.map(drive_stat)))
    }

    #[napi]
    pub async fn readdir(&self, path: String, recursive: bool) -> napi::Result<Vec<String>> {
        run(&self.drive, move |d| d.readdir(&path, recursive)).await
    }

    #[napi]
    pub async fn mkdir(&self, path: String) -> napi::Result<f64> {
        run(&self.drive, move |d| d.mkdir(&path).map(|_| version_of(d))).await
    }

    #[napi]
    pub async fn unlink(&self, path: String) -> napi::Result<f64> {
        run(&self.drive, move |d| d.unlink(&path).map(|_| version_of(d))).await
    }

    #[napi]
    pub async fn rmdir(&self, path: String, recursive: bool) -> napi::Result<f64> {
        run(&self.drive, move |d| d.rmdir(&path, recursive).map(|_| version_of(d))).await
    }

    #[napi]
    pub async fn rename(&self, src: String, dst: String) -> napi::Result<f64> {
        run(&self.drive, move |d| d.rename(&src, &dst).map(|_| version_of(d))).await
    }

    #[napi]
    pub async fn copy(&self, src: String, dst: String) -> napi::Result<f64> {
        run(&self.drive, move |d| d.copy(&src, &dst).map(|_| version_of(d))).await
    }

    /// Writes with libvms version in [start, end): `{type: 'put'|'del', path, version}`.
    #[napi]
    pub async fn history(&self, start: f64, end: Option<f64>, reverse: bool) -> napi::Result<Vec<HistoryItem>> {
        let start = js_index(start, "start");
        let end = end.map(|e| js_index(e, "end")).transpose();
        run(&self.drive, move |d| {
            let (start, end) = (start?, end?);
            let records = d.history(start + 1, end.map(|e| e + 1), reverse)?;
            Ok(records
                .into_iter()
                .map(|r| HistoryItem {
                    kind: match r.kind {
                        ChangeType::Put => "put".into(),
                        ChangeType::Del => "del".into(),
                    },
                    path: r.path,
                    version: r.version.saturating_sub(1) as f64,
                })
                .collect())
        })
        .await
    }

    /// Roll back to libvms version `version` (Hypercore truncations of both logs, durable): the writes made after
    /// it are gone, as if never made. A no-op at the current version.
    #[napi]
    pub async fn truncate(&self, version: f64) -> napi::Result<RolledBack> {
        let v = js_index(version, "version");
        run(&self.drive, move |d| {
            let r = d.truncate(v? + 1)?;
            Ok(RolledBack { writes: r.writes as f64, content_blocks: r.content_blocks as f64 })
        })
        .await
    }

    /// The first storage failure since the archive was opened (a write the disk refused, a read that failed its
    /// signed tree), as `CODE: message`, or null: a call met it even if the script caught the error.
    #[napi(catch_unwind)]
    pub fn storage_failure(&self) -> napi::Result<Option<crate::errors::NativeError>> {
        guard(|| self.drive.with(|d| Ok(d.bee().store().failure().or_else(|| d.content().failure()).map(crate::errors::structured))))
    }

    /// A read-only view at libvms version `version`.
    #[napi(catch_unwind)]
    pub fn checkout(&self, version: f64) -> napi::Result<NativeDrive> {
        guard(|| {
            let v = js_index(version, "version")?;
            let view = self.drive.with(|d| {
                if v > d.version().saturating_sub(1) {
                    return Err(err::bad_argument(format!("version {v} is in the future")));
                }
                d.checkout(v + 1)
            })?;
            Ok(NativeDrive::wrap(view, self.key))
        })
    }

    /// Every held block of the metadata and content cores against their signed trees; rejects naming the core.
    #[napi]
    pub async fn verify_storage(&self) -> napi::Result<()> {
        run(&self.drive, disk::verify_storage).await
    }

    /// BLAKE2b-256 over the sorted (path, content hash) list of files, `/dat.json` excluded.
    #[napi]
    pub async fn content_digest(&self) -> napi::Result<Buffer> {
        run(&self.drive, |d| d.content_digest().map(|h| Buffer::from(h.to_vec()))).await
    }

    /// Paths added, removed and changed from archive `a` to archive `b` (content only, `/dat.json` excluded).
    #[napi]
    pub async fn diff(a: &NativeDrive, b: &NativeDrive) -> napi::Result<DriveDiff> {
        let (a, b) = (a.drive.clone(), b.drive.clone());
        let same = a.is_same(&b);
        blocking(move || {
            if same {
                return Ok(DriveDiff { added: vec![], removed: vec![], changed: vec![] });
            }
            a.with(|da| {
                b.with(|db| {
                    let shared = da.content().key() == db.content().key();
                    let d = content_diff(da, db, shared)?;
                    Ok(DriveDiff { added: d.added, removed: d.removed, changed: d.changed })
                })
            })
        })
        .await
    }

    /// Whether paths are fetched on demand (a sparse fetched archive).
    #[napi(getter)]
    pub fn sparse(&self) -> bool {
        self.sparse.is_some()
    }

    /// Fetch what `need` ("entry", "content", "list", "listRecursive", "metadata", "all") of `path`
    /// reads; resolves at once for an archive that is not sparse.
    #[napi]
    pub async fn fetch_path(&self, path: String, need: String, timeout_ms: f64) -> napi::Result<()> {
        let Some(sparse) = self.sparse.clone() else { return Ok(()) };
        let (need, timeout) = guard(|| Ok((libvms_replicate::Need::parse(&need)?, std::time::Duration::from_millis(js_index(timeout_ms, "timeout")?))))?;
        sparse.fetch_path(&self.drive, &path, need, timeout).await.map_err(crate::errors::to_js)
    }

    /// Blocks held locally: [metadata held, metadata length, content held, content length].
    #[napi(catch_unwind)]
    pub fn held_blocks(&self) -> napi::Result<Vec<f64>> {
        guard(|| {
            let (mh, ml, ch, cl) = match &self.sparse {
                Some(s) => s.held()?,
                None => self.drive.with(|d| {
                    let count = |s: &libvms_ledger::SharedCore| s.with(|c| Ok(((0..c.length()).filter(|&i| c.has(i)).count() as u64, c.length())));
                    let (mh, ml) = count(d.bee().store())?;
                    let (ch, cl) = count(d.content())?;
                    Ok((mh, ml, ch, cl))
                })?,
            };
            Ok(vec![mh as f64, ml as f64, ch as f64, cl as f64])
        })
    }

    /// Flush and release both logs (and end every checkout of this archive). Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        if let Some(f) = &self.following {
            f.close().await;
        }
        let drive = self.drive.clone();
        blocking(move || drive.close()).await
    }
}


