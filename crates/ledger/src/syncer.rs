//! Two `fdatasync`s at once. An append's data and its oplog entry are synced together, not one after the
//! other: on ext4 two concurrent syncs share one journal commit, so a durable append costs about one sync.
//! Open accepts what a crash between the two can leave (core/torn_tail.rs).
//!
//! The second sync runs on a helper thread taken from a small idle pool (threads are reused; a new one is made
//! only when every helper is busy, as when many cores commit at once).

use std::fs::File;
use std::sync::mpsc::{self, Sender};
use std::sync::Mutex;

type Job = (File, Sender<std::io::Result<()>>);

/// Idle helpers, each waiting on its own channel.
static IDLE: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

fn helper() -> std::io::Result<Sender<Job>> {
    if let Some(tx) = IDLE.lock().unwrap_or_else(|p| p.into_inner()).pop() {
        return Ok(tx);
    }
    let (tx, rx) = mpsc::channel::<Job>();
    let me = tx.clone();
    std::thread::Builder::new().name("ledger-sync".into()).spawn(move || {
        while let Ok((file, reply)) = rx.recv() {
            let r = file.sync_data();
            drop(file);
            // Back in the pool before the reply, so the next append finds this helper idle.
            IDLE.lock().unwrap_or_else(|p| p.into_inner()).push(me.clone());
            let _ = reply.send(r);
        }
    })?;
    Ok(tx)
}

/// `fdatasync` both files, concurrently; both are done when this returns. The first error wins.
pub(crate) fn sync_data_pair(a: &File, b: &File) -> std::io::Result<()> {
    let dup = a.try_clone()?;
    let (reply_tx, reply_rx) = mpsc::channel();
    let sent = helper().and_then(|h| h.send((dup, reply_tx)).map_err(|_| std::io::Error::other("sync helper is gone")));
    if sent.is_err() {
        // No helper: one after the other is still correct, only slower.
        a.sync_data()?;
        return b.sync_data();
    }
    let rb = b.sync_data();
    let ra = reply_rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("sync helper stopped")));
    ra.and(rb)
}
