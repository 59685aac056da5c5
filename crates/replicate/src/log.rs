//! Fetching a call log: download it from peers, then keep it following them (live appends arrive) until the
//! returned fetch is closed. Readers wait for new entries on the core itself (`SharedCore::wait_beyond`).

use std::time::Duration;

use libvms_errors::{err, Result};
use libvms_ledger::{Core, SharedCore, Storage};
use tokio::sync::mpsc;

use crate::{Fetch, FetchOptions, Link, ReplCore};

/// Download (or resume) log `key` into `storage` from `peers` and the streams received on `links` until it is
/// complete or `timeout` passes. `started` sees the replication view first (for progress reports). Close the
/// fetch before the core.
pub async fn fetch_log_from(
    key: [u8; 32],
    storage: Storage,
    peers: Vec<String>,
    links: Option<mpsc::UnboundedReceiver<Link>>,
    timeout: Duration,
    started: impl FnOnce(&ReplCore),
) -> Result<(SharedCore, Fetch)> {
    let shared = tokio::task::spawn_blocking(move || Core::open_replica(storage, key).map(|c| SharedCore::new(c, "call log")))
        .await
        .map_err(|e| err::internal(format!("open task failed: {e}")))??;
    let core = match ReplCore::from_shared(shared.clone()) {
        Ok(c) => c,
        Err(e) => {
            let _ = shared.close();
            return Err(e);
        }
    };
    started(&core);
    let fetch = Fetch::start_with_links(vec![core], peers, links, FetchOptions::default());
    if let Err(e) = fetch.synced(timeout).await {
        fetch.close().await;
        let _ = shared.close();
        return Err(e);
    }
    Ok((shared, fetch))
}
