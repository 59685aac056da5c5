//! Fetching a files archive: its metadata core (the archive key), then the content core named in
//! the metadata header (block 0), both stored as corestore@6 lays them out under `root`.

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

async fn fetch_one(store: &LedgerStore, peers: &[String], timeout: Duration) -> Result<()> {
    let core = ReplCore::from_ledger_store(store.clone())?;
    let f = Fetch::start(vec![core], peers.to_vec(), FetchOptions::default());
    let res = f.synced(timeout).await;
    f.close().await;
    res
}

/// Download (or resume) archive `key` into `root` from `peers` and open it read-only.
pub async fn fetch_archive(root: &Path, key: [u8; 32], peers: &[String], timeout: Duration) -> Result<DiskDrive> {
    let deadline = tokio::time::Instant::now() + timeout;
    let meta = replica_store(root, key)?;
    let done = async {
        fetch_one(&meta, peers, timeout).await?;
        let block0 = meta.with(|c| if c.length() == 0 { Ok(None) } else { c.get(0).map(Some) })?;
        let block0 = block0.ok_or_else(|| err::corrupt("remote archive has no header block"))?;
        let content_key = Header::decode_block(&block0)?
            .content_key()?
            .ok_or_else(|| err::corrupt("archive header names no content log"))?;
        let content = replica_store(root, content_key)?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Err(e) = fetch_one(&content, peers, left).await {
            let _ = content.close();
            return Err(e);
        }
        Drive::new(meta.clone(), content, Some(content_key))
    }
    .await;
    if done.is_err() {
        let _ = meta.close();
    }
    done
}
