//! Fetching a files archive: its metadata core (the archive key), then the content core named in
//! the metadata header (block 0), both stored as corestore@6 lays them out under `root`; optionally
//! kept following the peers afterwards.

use std::path::Path;
use std::time::Duration;

use libvms_archive::bee::Header;
use libvms_archive::corestore;
use libvms_archive::disk::{DiskDrive, LedgerStore};
use libvms_archive::Drive;
use libvms_errors::{err, Result};
use libvms_ledger::{Core, Storage};

use crate::{Fetch, FetchOptions, ReplCore};

fn replica_store(root: &Path, key: [u8; 32]) -> Result<LedgerStore> {
    let dir = root.join(corestore::core_dir(&corestore::discovery_key(&key)));
    Ok(LedgerStore::new(Core::open_replica(Storage::Disk(dir), key)?))
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
    let deadline = tokio::time::Instant::now() + timeout;
    let meta = replica_store(root, key)?;
    let done = async {
        let meta_core = ReplCore::from_ledger_store(meta.clone())?;
        // The metadata first: its header block names the content log.
        let f = Fetch::start(vec![meta_core.clone()], peers.to_vec(), FetchOptions::default());
        let res = f.synced(timeout).await;
        f.close().await;
        res?;
        let block0 = meta.with(|c| if c.length() == 0 { Ok(None) } else { c.get(0).map(Some) })?;
        let block0 = block0.ok_or_else(|| err::corrupt("remote archive has no header block"))?;
        let content_key = Header::decode_block(&block0)?
            .content_key()?
            .ok_or_else(|| err::corrupt("archive header names no content log"))?;
        let content = replica_store(root, content_key)?;
        let both = ReplCore::from_ledger_store(content.clone()).map(|c| vec![meta_core, c]);
        let both = match both {
            Ok(b) => b,
            Err(e) => {
                let _ = content.close();
                return Err(e);
            }
        };
        let f = Fetch::start(both, peers.to_vec(), FetchOptions::default());
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Err(e) = f.synced(left).await {
            f.close().await;
            let _ = content.close();
            return Err(e);
        }
        match Drive::new(meta.clone(), content.clone(), Some(content_key)) {
            Ok(d) => Ok((d, f)),
            Err(e) => {
                f.close().await;
                let _ = content.close();
                Err(e)
            }
        }
    }
    .await;
    if done.is_err() {
        let _ = meta.close();
    }
    done
}
