//! A VM's archive is served to peers only up to the version its durable call log accounts for: the
//! `filesVersion` of the log's last durable call entry. A call's writes reach the archive before its entry is
//! durable, and a crash then rolls them back (lib/recovery.js), so a follower must not see them before that.
//! The content log is limited to where it stood at that version (the drive's write marks). Both archive cores
//! keep the signed heads of recent lengths, so the limited prefix can be served with its own signature.

use std::future::Future;

use libvms_archive::{BlockStore, SharedDrive};
use libvms_calllog::logged_files_version;
use libvms_errors::{ErrorCode, Result};
use libvms_ledger::SharedCore;

use crate::ReplCore;

/// Signed heads kept per archive core: how many writes the archive may run ahead of the durable log and still
/// be served as of the log (past that, announcements pause until the log catches up).
const HEADS_KEPT: usize = 4096;

fn apply(drive: &SharedDrive, log: &SharedCore, meta: &ReplCore, content: &ReplCore) -> Result<()> {
    // libvms counts writes (src/archive.rs `version_of`): version V is a metadata log of V + 1 blocks.
    let version = logged_files_version(log)?;
    let meta_len = version + 1;
    let content_len = {
        let at = drive.with(|d| Ok(if d.version() == meta_len { Some(d.content().len()) } else { d.content_len_at(meta_len) }));
        match at {
            Err(e) if e.code == ErrorCode::Closed => return Ok(()),
            at => at?,
        }
    };
    // Unknown (older than every mark): the content log keeps its earlier limit.
    if let Some(c) = content_len {
        content.limit_served(c);
    }
    meta.limit_served(meta_len);
    Ok(())
}

/// Limit what peers see of the archive (`meta`, `content`: its two cores as served) by `log`, now; the future
/// returned re-applies the limit after every commit of the log, until the log closes (the caller spawns it).
pub fn limit_by_log(
    drive: SharedDrive,
    log: SharedCore,
    meta: ReplCore,
    content: ReplCore,
) -> Result<impl Future<Output = ()> + Send + 'static> {
    for core in [&meta, &content] {
        core.with(|c| {
            c.keep_signed_heads(HEADS_KEPT);
            Ok(())
        })?;
    }
    // The length read before the first limit: a commit after it wakes the loop, however soon it lands.
    let mut seen = log.length();
    apply(&drive, &log, &meta, &content)?;
    Ok(async move {
        loop {
            if log.wait_durable(seen + 1).await.is_err() {
                return; // the log closed (or stopped): nothing more becomes durable
            }
            seen = log.length();
            let (d, l, m, c) = (drive.clone(), log.clone(), meta.clone(), content.clone());
            match tokio::task::spawn_blocking(move || apply(&d, &l, &m, &c)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    })
}
