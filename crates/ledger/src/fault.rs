//! A test hook: a disk that fills up. While set, disk writes of this process may take that many more bytes, then
//! fail as a full disk does (ENOSPC), until cleared. Lets tests of disk-full handling run where no small
//! filesystem can be mounted.
use std::sync::atomic::{AtomicI64, Ordering};

/// Bytes disk writes may still take; negative: no limit (the normal case).
static BUDGET: AtomicI64 = AtomicI64::new(-1);

/// `Some(n)`: writes fail once `n` more bytes have been written; `None`: no limit.
pub fn set_disk_full_after(bytes: Option<u64>) {
    BUDGET.store(bytes.map_or(-1, |b| b.min(i64::MAX as u64) as i64), Ordering::SeqCst);
}

/// Take `n` bytes from the budget, or fail as a full disk.
pub(crate) fn take(n: usize) -> std::io::Result<()> {
    let n = n as i64;
    let r = BUDGET.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
        b if b < 0 => Some(b),
        b if b >= n => Some(b - n),
        _ => None,
    });
    match r {
        Ok(_) => Ok(()),
        Err(_) => Err(std::io::Error::from_raw_os_error(28)), // ENOSPC
    }
}
