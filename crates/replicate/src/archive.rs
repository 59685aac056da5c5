//! Fetching a files archive: its metadata core (the archive key), then the content core named in
//! the metadata header (block 0), both stored as corestore@6 lays them out under `root`; optionally
//! kept following the peers afterwards.

use std::path::Path;
use std::time::Duration;

use libvms_archive::bee::Header;
use libvms_archive::corestore;
use libvms_archive::disk::{self, DiskDrive};
use libvms_archive::Drive;
use libvms_errors::{err, Result};
use libvms_ledger::{Core, SharedCore, Storage};

use tokio::sync::mpsc;

use crate::{fetch_path, Fetch, FetchOptions, Link, ReplCore};

fn replica_store(root: &Path, key: [u8; 32]) -> Result<SharedCore> {
    let dir = root.join(corestore::core_dir(&corestore::discovery_key(&key)));
    Ok(disk::share(Core::open_replica(Storage::Disk(dir), key)?))
}

/// Download (or resume) archive `key` into `root` from `peers` and open it read-only.
pub async fn fetch_archive(root: &Path, key: [u8; 32], peers: &[String], timeout: Duration) -> Result<DiskDrive> {
    let (drive, fetch) = fetch_archive_live(root, key, peers, timeout).await?;
    fetch.close().await;
    Ok(drive)
}

/// As `fetch_archive`, and the returned fetch keeps both logs following the peers (files the host
/// writes later arrive: a new file's metadata and its content travel on the same connection) until
/// it is closed.
pub async fn fetch_archive_live(root: &Path, key: [u8; 32], peers: &[String], timeout: Duration) -> Result<(DiskDrive, Fetch)> {
    fetch_archive_from(root, key, peers, None, timeout).await
}

/// As `fetch_archive_live`, also from the streams received on `links` (Hyperswarm peers).
pub async fn fetch_archive_from(
    root: &Path,
    key: [u8; 32],
    peers: &[String],
    links: Option<mpsc::UnboundedReceiver<Link>>,
    timeout: Duration,
) -> Result<(DiskDrive, Fetch)> {
    fetch_archive_with(root, key, peers, links, timeout, false).await
}

/// As `fetch_archive_from`; `sparse` fetches only the metadata header and both logs' lengths (signed
/// tree heads): paths are then fetched on demand (`SparseArchive::fetch_path`).
pub async fn fetch_archive_with(
    root: &Path,
    key: [u8; 32],
    peers: &[String],
    links: Option<mpsc::UnboundedReceiver<Link>>,
    timeout: Duration,
    sparse: bool,
) -> Result<(DiskDrive, Fetch)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let meta = replica_store(root, key)?;
    let mut content_store = None;
    let mut fetch = None;
    let done = async {
        let meta_core = ReplCore::from_shared(meta.clone())?;
        if sparse {
            fetch_path::want_header_only(&meta_core);
        }
        // The metadata first: its header block names the content log, which the same sessions
        // then open too.
        let f = fetch.insert(Fetch::start_with_links(vec![meta_core], peers.to_vec(), links, FetchOptions::default()));
        f.synced(timeout).await?;
        let block0 = meta.with(|c| if c.length() == 0 { Ok(None) } else { c.get(0).map(Some) })?;
        let block0 = block0.ok_or_else(|| err::corrupt("remote archive has no header block"))?;
        let content_key = Header::decode_block(&block0)?
            .content_key()?
            .ok_or_else(|| err::corrupt("archive header names no content log"))?;
        let content = content_store.insert(replica_store(root, content_key)?).clone();
        let content_core = ReplCore::from_shared(content.clone())?;
        if sparse {
            fetch_path::want_nothing(&content_core);
        }
        f.add(content_core);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        f.synced(left).await?;
        if sparse {
            fetch_path::want_nothing(&f.cores()[0]);
        }
        Drive::new(meta.clone(), content, Some(content_key))
    }
    .await;
    match done {
        Ok(d) => Ok((d, fetch.expect("fetch started"))),
        Err(e) => {
            if let Some(f) = fetch {
                f.close().await;
            }
            if let Some(c) = content_store {
                let _ = c.close();
            }
            let _ = meta.close();
            Err(e)
        }
    }
}
