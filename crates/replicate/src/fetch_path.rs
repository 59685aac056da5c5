//! Fetching one path of a sparse archive: only the metadata blocks a lookup of that path touches
//! (the Hyperbee nodes from the root down to the entry), then only that file's content blocks.
//!
//! The lookup is the drive's own, run on what is held: when it stops at a metadata block that is
//! not held, that one block is fetched (verified against the signed tree like any other) and the
//! lookup runs again. Each round goes one level deeper, so a path costs about the tree's depth in
//! round trips, and nothing else of the archive is downloaded.

use std::sync::Arc;
use std::time::Duration;

use libvms_archive::disk::DiskDrive;
use libvms_archive::{BlobId, SharedDrive};
use libvms_errors::{err, ErrorCode, Result};

use crate::{Fetch, ReplCore};

/// A drive as the addon holds it: None once closed.

/// What of a path to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Its entry (`stat`): metadata only.
    Entry,
    /// A file's entry and content; for a folder, every file under it.
    Content,
    /// The names in a folder (`readdir`), or everything below it when `recursive`.
    List { recursive: bool },
    /// Every metadata block (history, diffs).
    Metadata,
    /// Everything: metadata and content.
    All,
}

impl Need {
    pub fn parse(s: &str) -> Result<Need> {
        Ok(match s {
            "entry" => Need::Entry,
            "content" => Need::Content,
            "list" => Need::List { recursive: false },
            "listRecursive" => Need::List { recursive: true },
            "metadata" => Need::Metadata,
            "all" => Need::All,
            _ => return Err(err::bad_argument(format!("unknown fetch need {s:?}"))),
        })
    }
}

/// Nothing to download: wanted blocks are then set one path at a time.
const NOTHING: Option<(u64, u64)> = Some((0, 0));
/// How often a wait looks at the blocks it waits for (a block stored out of order changes no
/// progress counter that could wake it).
const POLL: Duration = Duration::from_millis(2);

/// The fetch behind a sparse archive: its metadata and content cores, fetched on demand.
pub struct SparseArchive {
    fetch: Arc<Fetch>,
    meta: ReplCore,
    content: ReplCore,
    /// A core downloads one wanted range at a time: concurrent path fetches take turns per step.
    step: tokio::sync::Mutex<()>,
}

impl SparseArchive {
    /// `fetch` must fetch [metadata, content], started sparse (`fetch_archive_with(.., sparse)`).
    pub fn new(fetch: Arc<Fetch>) -> Result<SparseArchive> {
        let cores = fetch.cores();
        let [meta, content] = <[ReplCore; 2]>::try_from(cores).map_err(|_| err::internal("a sparse archive fetch has two cores"))?;
        Ok(SparseArchive { fetch, meta, content, step: tokio::sync::Mutex::new(()) })
    }

    /// Blocks held locally, per core: (metadata held, metadata length, content held, content length).
    pub fn held(&self) -> Result<(u64, u64, u64, u64)> {
        let count = |c: &ReplCore| c.with(|c| Ok(((0..c.length()).filter(|&i| c.has(i)).count() as u64, c.length())));
        let (mh, ml) = count(&self.meta)?;
        let (ch, cl) = count(&self.content)?;
        Ok((mh, ml, ch, cl))
    }

    /// Fetch what `need` of `path` reads, within `timeout`. The drive's lookups then answer from
    /// local blocks. Errors: the lookup's own (NOT_FOUND ...), a verification failure of every
    /// peer, CONNECTION_FAILED / TIMEOUT, CLOSED.
    pub async fn fetch_path(&self, drive: &SharedDrive, path: &str, need: Need, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        match need {
            Need::All => {
                let len = self.meta.with(|c| Ok(c.length()))?;
                self.get(&self.meta, 0, len, deadline, timeout).await?;
                let len = self.content.with(|c| Ok(c.length()))?;
                return self.get(&self.content, 0, len, deadline, timeout).await;
            }
            Need::Metadata => {
                let len = self.meta.with(|c| Ok(c.length()))?;
                return self.get(&self.meta, 0, len, deadline, timeout).await;
            }
            _ => {}
        }
        loop {
            let (d, p) = (drive.clone(), path.to_string());
            let probed = tokio::task::spawn_blocking(move || d.with(|d| probe(d, &p, need)))
                .await
                .map_err(|e| err::internal(format!("lookup task failed: {e}")))?;
            match probed {
                Ok(blobs) => {
                    for b in blobs {
                        self.get(&self.content, b.block_offset, b.block_offset + b.block_length, deadline, timeout).await?;
                    }
                    return Ok(());
                }
                Err(e) => match self.missing_meta(&e)? {
                    Some(i) => self.get(&self.meta, i, i + 1, deadline, timeout).await?,
                    None => return Err(e),
                },
            }
        }
    }

    /// The metadata block a failed lookup needed and we do not hold (None: a real error).
    fn missing_meta(&self, e: &libvms_errors::Error) -> Result<Option<u64>> {
        let Some(i) = e.index.filter(|_| e.code == ErrorCode::OutOfBounds) else { return Ok(None) };
        self.meta.with(|c| Ok((i < c.length() && !c.has(i)).then_some(i)))
    }

    /// Download blocks [start, end) of `core` and wait until they are all held.
    async fn get(&self, core: &ReplCore, start: u64, end: u64, deadline: tokio::time::Instant, timeout: Duration) -> Result<()> {
        // Blocks only arrive while we wait: the first missing one only moves up.
        let mut next = start;
        let mut held = || {
            core.with(|c| {
                while next < end && c.has(next) {
                    next += 1;
                }
                Ok(next >= end)
            })
        };
        if held()? {
            return Ok(());
        }
        let _turn = self.step.lock().await;
        core.set_want(Some((start, end)));
        self.fetch.nudge();
        let res = async {
            loop {
                if held()? {
                    return Ok(());
                }
                if self.fetch.is_closed() {
                    return Err(err::closed("archive is closed"));
                }
                if let Some(e) = self.fetch.failure() {
                    return Err(e);
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(self.fetch.gave_up(timeout));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        .await;
        core.set_want(NOTHING);
        res
    }
}

/// Run the lookups `need` makes on what is held; returns the content blobs it needs.
fn probe(d: &mut DiskDrive, path: &str, need: Need) -> Result<Vec<BlobId>> {
    match need {
        Need::Entry => d.stat(path).map(|_| Vec::new()),
        Need::List { recursive } => d.readdir(path, recursive).map(|_| Vec::new()),
        Need::Content => {
            if !d.stat(path)?.is_dir {
                return Ok(vec![d.file_blob(path)?]);
            }
            let base = libvms_archive::drive::path::normalize(path)?;
            let mut blobs = Vec::new();
            for name in d.readdir(&base, true)? {
                let p = if base == "/" { format!("/{name}") } else { format!("{base}/{name}") };
                if !d.stat(&p)?.is_dir {
                    blobs.push(d.file_blob(&p)?);
                }
            }
            Ok(blobs)
        }
        Need::Metadata | Need::All => Ok(Vec::new()),
    }
}

/// Start a sparse archive fetch's cores wanting nothing but the metadata header (block 0).
pub(crate) fn want_header_only(meta: &ReplCore) {
    meta.set_want(Some((0, 1)));
}

pub(crate) fn want_nothing(core: &ReplCore) {
    core.set_want(NOTHING);
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_archive::disk;

    /// A host serving a 40-file archive; a sparse fetch of one path downloads its content blocks
    /// and a few metadata blocks, and nothing of the other files.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_path_fetches_only_its_blocks() {
        let src_dir = tempfile::tempdir().unwrap();
        let mut src = disk::create(src_dir.path()).unwrap();
        for d in 0..4 {
            src.mkdir(&format!("/d{d}")).unwrap();
        }
        for i in 0..40 {
            src.write_file(&format!("/d{}/f{i}.bin", i % 4), &vec![i as u8; 3 * 65536 + 7]).unwrap();
        }
        let key = src.bee().store().key();
        let host = crate::Host::bind("127.0.0.1:0", crate::core_set(Vec::new())).await.unwrap();
        host.add(ReplCore::from_shared(src.bee().store().clone()).unwrap());
        host.add(ReplCore::from_shared(src.content().clone()).unwrap());
        let peers = vec![host.local_addr().to_string()];

        let dir = tempfile::tempdir().unwrap();
        let t = Duration::from_secs(10);
        let (drive, fetch) = crate::archive::fetch_archive_with(dir.path(), key, &peers, None, t, true).await.unwrap();
        let sparse = SparseArchive::new(Arc::new(fetch)).unwrap();
        let drive = SharedDrive::new(drive);
        let (mh, ml, ch, cl) = sparse.held().unwrap();
        assert_eq!((mh, ml, ch, cl), (1, 45, 0, 40 * 4), "the open fetched the header only");

        sparse.fetch_path(&drive, "/d3/f7.bin", Need::Content, t).await.unwrap();
        let (mh, _, ch, _) = sparse.held().unwrap();
        assert_eq!(ch, 4, "one file's four content blocks");
        assert!(mh > 1 && mh < 10, "a few metadata blocks, not all 45: {mh}");
        let data = drive.with(|d| d.read_file("/d3/f7.bin")).unwrap();
        assert_eq!(data, vec![7u8; 3 * 65536 + 7]);
        let other = drive.with(|d| d.read_file("/d0/f8.bin")).unwrap_err();
        assert_eq!(other.code, ErrorCode::OutOfBounds, "another file's content is not here");

        // A folder brings every file under it; a missing path is NOT_FOUND, having fetched its lookup.
        sparse.fetch_path(&drive, "/d1", Need::Content, t).await.unwrap();
        assert_eq!(sparse.held().unwrap().2, 4 + 10 * 4);
        let e = sparse.fetch_path(&drive, "/nope", Need::Entry, t).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        sparse.fetch_path(&drive, "/", Need::All, t).await.unwrap();
        assert_eq!(sparse.held().unwrap(), (45, 45, 160, 160));
        sparse.fetch.close().await;
        host.close().await;
    }
}
