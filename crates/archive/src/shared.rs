//! `SharedDrive`: the one handle to an on-disk archive that several threads use (napi calls on the JS thread and
//! the blocking pool, replication, a path fetch, the served-version limit). Its two logs are `SharedCore`s; this
//! lock guards the drive's own state (the B-tree's cache, the write marks) and `close` ends it for every clone.
//! A panic while the drive is held leaves that state unknown: every later use fails (`INTERNAL`), like a core's.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use libvms_errors::{err, Error, Result};

use crate::disk::DiskDrive;

struct Slot {
    /// `None` once closed.
    drive: Option<DiskDrive>,
    panicked: Option<Error>,
}

#[derive(Clone)]
pub struct SharedDrive {
    slot: Arc<Mutex<Slot>>,
}

fn lock(m: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // A panic under the lock is recorded in the slot (`panicked`), so the poison flag adds nothing.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedDrive {
    pub fn new(drive: DiskDrive) -> SharedDrive {
        SharedDrive { slot: Arc::new(Mutex::new(Slot { drive: Some(drive), panicked: None })) }
    }

    /// Run `f` on the drive under its lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut DiskDrive) -> Result<R>) -> Result<R> {
        run(&mut lock(&self.slot), f)
    }

    /// Run `f` now, or return `None` when another thread holds the drive (a write in progress): a caller on the
    /// JS thread then takes the async path instead of blocking the event loop on that write's syncs.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut DiskDrive) -> Result<R>) -> Result<Option<R>> {
        let mut g = match self.slot.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        run(&mut g, f).map(Some)
    }

    /// Flush and release both logs, for every clone (checkouts of it end too). Idempotent.
    pub fn close(&self) -> Result<()> {
        let taken = lock(&self.slot).drive.take();
        match taken {
            Some(mut d) => {
                d.bee().store().close()?;
                d.content().close()
            }
            None => Ok(()),
        }
    }

    /// Whether both handles are the same archive (locking both would wait on itself).
    pub fn is_same(&self, other: &SharedDrive) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot)
    }

    pub fn is_closed(&self) -> bool {
        lock(&self.slot).drive.is_none()
    }
}

fn run<R>(slot: &mut Slot, f: impl FnOnce(&mut DiskDrive) -> Result<R>) -> Result<R> {
    if let Some(e) = &slot.panicked {
        return Err(e.clone());
    }
    let drive = slot.drive.as_mut().ok_or_else(|| err::closed("archive is closed"))?;
    match catch_unwind(AssertUnwindSafe(|| f(drive))) {
        Ok(r) => r,
        Err(p) => {
            let what = libvms_errors::panic_text(&*p).unwrap_or_default();
            let e = err::internal(format!("archive is unusable after a panic ({what}); reopen it"));
            slot.panicked = Some(e.clone());
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive() -> (tempfile::TempDir, SharedDrive) {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::disk::create(dir.path()).unwrap();
        (dir, SharedDrive::new(d))
    }

    #[test]
    fn close_ends_the_drive_for_every_clone() {
        let (_dir, d) = drive();
        let other = d.clone();
        d.with(|d| d.write_file("/a", b"1")).unwrap();
        d.close().unwrap();
        assert!(other.is_closed());
        assert_eq!(other.with(|d| Ok(d.version())).unwrap_err().code, libvms_errors::ErrorCode::Closed);
        other.close().unwrap();
    }

    #[test]
    fn a_panic_under_the_lock_makes_every_later_use_fail_clearly() {
        let (_dir, d) = drive();
        let r: Result<()> = d.with(|_| panic!("boom"));
        assert_eq!(r.unwrap_err().code, libvms_errors::ErrorCode::Internal);
        let e = d.try_with(|d| Ok(d.version())).unwrap_err();
        assert!(e.message.contains("boom"), "{}", e.message);
        d.close().unwrap();
    }

    #[test]
    fn try_with_steps_aside_while_another_thread_holds_the_drive() {
        let (_dir, d) = drive();
        let held = lock(&d.slot);
        let other = d.clone();
        let r = std::thread::spawn(move || other.try_with(|d| Ok(d.version())).unwrap().is_none()).join().unwrap();
        assert!(r);
        drop(held);
        assert!(d.try_with(|d| Ok(d.version())).unwrap().is_some());
        d.close().unwrap();
    }
}
