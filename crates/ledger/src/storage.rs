//! File backends: positional reads/writes on disk (`pread`/`pwrite`) or in memory, `fdatasync`,
//! and the exclusive lock on `oplog` that npm hypercore takes (random-access-file through
//! fs-native-extensions: `fcntl(F_OFD_SETLK)`, a whole-file write lock, on Linux).
//!
//! Disk files are opened lazily: a file that does not exist reads as empty and is created on the
//! first write, so a failed open never leaves new files behind.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use libvms_errors::{err, Error, Result};

/// Where a core lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Disk(PathBuf),
    Memory,
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    err::io(format!("{what}: {e}"))
}

enum Backend {
    Disk { path: PathBuf, file: Option<File> },
    Memory(Vec<u8>),
}

/// One of the core's files (`oplog`, `tree`, `bitfield`, `data`, `header`).
pub struct StoreFile {
    name: &'static str,
    backend: Backend,
    /// A truncate running on its own thread (`set_len_in_background`); every other use of the file waits for it.
    pending: Mutex<Option<JoinHandle<std::io::Result<()>>>>,
}

impl Drop for StoreFile {
    fn drop(&mut self) {
        let _ = self.settle(); // the truncate ends before the descriptor (and its lock) goes
    }
}

impl StoreFile {
    pub fn memory(name: &'static str) -> Self {
        StoreFile { name, backend: Backend::Memory(Vec::new()), pending: Mutex::new(None) }
    }

    /// Open an existing file read-write, or remember the path to create it on first write.
    pub fn disk(dir: &Path, name: &'static str) -> Result<Self> {
        let path = dir.join(name);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(name, e)),
        };
        Ok(StoreFile { name, backend: Backend::Disk { path, file }, pending: Mutex::new(None) })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn exists(&self) -> bool {
        match &self.backend {
            Backend::Disk { file, .. } => file.is_some(),
            Backend::Memory(_) => true,
        }
    }

    fn file_mut(&mut self) -> Result<&File> {
        match &mut self.backend {
            Backend::Disk { path, file } => {
                if file.is_none() {
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&*path)
                        .map_err(|e| io_err(self.name, e))?;
                    *file = Some(f);
                }
                Ok(file.as_ref().expect("just opened"))
            }
            Backend::Memory(_) => Err(err::internal("memory file has no descriptor")),
        }
    }

    /// Wait for a background truncate, reporting its failure.
    fn settle(&self) -> Result<()> {
        let handle = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
        match handle.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(io_err(self.name, e)),
            Some(Err(_)) => Err(err::io(format!("{}: background truncate panicked", self.name))),
        }
    }

    /// `set_len` on another thread: on ext4 a shrinking truncate takes about a millisecond, and the oplog's
    /// (after a header flush) needs no durability, only to be done before the file is next used. Callers
    /// must not depend on its result until the next operation on this file, which reports a failure.
    pub fn set_len_in_background(&mut self, len: u64) -> Result<()> {
        self.settle()?;
        let dup = match &self.backend {
            Backend::Disk { file: Some(f), .. } => f.try_clone().map_err(|e| io_err(self.name, e))?,
            _ => return self.set_len(len),
        };
        let handle = std::thread::Builder::new()
            .name("oplog-truncate".into())
            .spawn(move || dup.set_len(len))
            .map_err(|e| io_err(self.name, e))?;
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    pub fn len(&self) -> Result<u64> {
        self.settle()?;
        match &self.backend {
            Backend::Disk { file: Some(f), .. } => Ok(f.metadata().map_err(|e| io_err(self.name, e))?.len()),
            Backend::Disk { file: None, .. } => Ok(0),
            Backend::Memory(v) => Ok(v.len() as u64),
        }
    }

    /// Read up to `buf.len()` bytes at `offset`; bytes past the end read as zero (sparse files).
    /// Returns how many bytes were actually stored.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.settle()?;
        match &self.backend {
            Backend::Disk { file: Some(f), .. } => {
                let mut done = 0;
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_err(self.name, e)),
                    }
                }
                buf[done..].fill(0);
                Ok(done)
            }
            Backend::Disk { file: None, .. } => {
                buf.fill(0);
                Ok(0)
            }
            Backend::Memory(v) => {
                let start = offset.min(v.len() as u64) as usize;
                let n = (v.len() - start).min(buf.len());
                buf[..n].copy_from_slice(&v[start..start + n]);
                buf[n..].fill(0);
                Ok(n)
            }
        }
    }

    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.settle()?;
        let len = self.len()?;
        let len = usize::try_from(len).map_err(|_| err::corrupt(format!("{} is too large", self.name)))?;
        let mut buf = vec![0u8; len];
        let n = self.read_at(0, &mut buf)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.settle()?;
        let name = self.name;
        if let Backend::Memory(v) = &mut self.backend {
            let end = offset
                .checked_add(data.len() as u64)
                .and_then(|e| usize::try_from(e).ok())
                .ok_or_else(|| err::io("memory file offset too large"))?;
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(data);
            return Ok(());
        }
        crate::fault::take(data.len()).map_err(|e| io_err(name, e))?;
        let f = self.file_mut()?;
        f.write_all_at(data, offset).map_err(|e| io_err(name, e))
    }

    pub fn set_len(&mut self, len: u64) -> Result<()> {
        self.settle()?;
        let name = self.name;
        if let Backend::Memory(v) = &mut self.backend {
            let len = usize::try_from(len).map_err(|_| err::io("memory file too large"))?;
            v.resize(len, 0);
            return Ok(());
        }
        if matches!(self.backend, Backend::Disk { file: None, .. }) && len == 0 {
            return Ok(());
        }
        self.file_mut()?.set_len(len).map_err(|e| io_err(name, e))
    }

    /// `fdatasync`: the data (and the size) are durable when this returns.
    pub fn sync(&self) -> Result<()> {
        self.settle()?;
        match &self.backend {
            Backend::Disk { file: Some(f), .. } => f.sync_data().map_err(|e| io_err(self.name, e)),
            _ => Ok(()),
        }
    }

    /// `fdatasync` this file and `other` at once (see syncer.rs): both are durable when this returns.
    pub fn sync_with(&self, other: &StoreFile) -> Result<()> {
        self.settle()?;
        other.settle()?;
        match (&self.backend, &other.backend) {
            (Backend::Disk { file: Some(a), .. }, Backend::Disk { file: Some(b), .. }) => {
                crate::syncer::sync_data_pair(a, b).map_err(|e| io_err(&format!("{} and {}", self.name, other.name), e))
            }
            _ => {
                self.sync()?;
                other.sync()
            }
        }
    }

    /// Make sure the file exists on disk (an empty core still has its four files, as in JS).
    pub fn create(&mut self) -> Result<()> {
        self.settle()?;
        if matches!(self.backend, Backend::Disk { .. }) {
            self.file_mut()?;
        }
        Ok(())
    }

    /// Exclusive, non-blocking advisory lock (released when the file is closed).
    pub fn lock_exclusive(&mut self) -> Result<()> {
        self.settle()?;
        if let Backend::Memory(_) = self.backend {
            return Ok(());
        }
        let f = self.file_mut()?;
        lock_exclusive(f)
    }
}

/// Open an existing file read-write and take the same exclusive lock as an oplog's (corestore@6 locks its
/// `primary-key` file this way). The lock lasts as long as the returned handle.
pub fn lock_existing_file(path: &Path) -> Result<File> {
    let f = OpenOptions::new().read(true).write(true).open(path).map_err(|e| io_err(&path.display().to_string(), e))?;
    lock_exclusive(&f)?;
    Ok(f)
}

/// `fcntl(fd, F_OFD_SETLK, whole-file F_WRLCK)`, exactly what fs-native-extensions' `tryLock` does for npm
/// hypercore's oplog: the lock belongs to the open file description, so it excludes npm hypercore, hyperdrive
/// (through corestore), a second handle in this process and any other process. (`flock` would not: on Linux
/// flock and fcntl locks ignore each other.)
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lock_exclusive(f: &File) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 0; // to the end of the file, however long it grows
    fl.l_pid = 0; // required by F_OFD_SETLK
    // SAFETY: the descriptor is valid for the lifetime of `f`, and `fl` outlives the call.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_SETLK, &fl as *const libc::flock) };
    if rc == 0 {
        return Ok(());
    }
    lock_error(std::io::Error::last_os_error())
}

/// Elsewhere (no OFD locks): `flock`, as fs-native-extensions does on macOS.
#[cfg(not(target_os = "linux"))]
#[allow(unsafe_code)]
fn lock_exclusive(f: &File) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: the descriptor is valid for the lifetime of `f`; flock touches no memory.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    lock_error(std::io::Error::last_os_error())
}

fn lock_error(e: std::io::Error) -> Result<()> {
    // EAGAIN / EACCES (fcntl) and EWOULDBLOCK (flock) all mean: someone else holds it.
    if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EACCES) || e.raw_os_error() == Some(libc::EAGAIN) {
        return Err(err::locked("the core is open elsewhere (oplog is locked)"));
    }
    Err(io_err("lock oplog", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_file_is_sparse_and_positional() {
        let mut f = StoreFile::memory("data");
        f.write_at(4, b"ab").unwrap();
        assert_eq!(f.len().unwrap(), 6);
        let mut b = [9u8; 8];
        assert_eq!(f.read_at(0, &mut b).unwrap(), 6);
        assert_eq!(b, [0, 0, 0, 0, b'a', b'b', 0, 0]);
        f.set_len(5).unwrap();
        assert_eq!(f.read_all().unwrap(), vec![0, 0, 0, 0, b'a']);
    }

    #[test]
    fn disk_file_created_lazily_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = StoreFile::disk(dir.path(), "oplog").unwrap();
        assert!(!f.exists());
        assert_eq!(f.len().unwrap(), 0);
        assert!(!dir.path().join("oplog").exists());
        f.lock_exclusive().unwrap();
        assert!(dir.path().join("oplog").exists());
        let mut g = StoreFile::disk(dir.path(), "oplog").unwrap();
        assert_eq!(g.lock_exclusive().unwrap_err().code, libvms_errors::ErrorCode::StorageLocked);
        drop(f);
        g.lock_exclusive().unwrap();
    }

    #[test]
    fn background_truncate_is_done_before_the_next_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = StoreFile::disk(dir.path(), "oplog").unwrap();
        f.write_at(0, &[9u8; 10_000]).unwrap();
        f.set_len_in_background(100).unwrap();
        assert_eq!(f.len().unwrap(), 100);
        f.set_len_in_background(50).unwrap();
        // a write right after lands past the truncated end, not cut by it
        f.write_at(50, b"tail").unwrap();
        assert_eq!(f.read_all().unwrap().len(), 54);
        f.set_len_in_background(10).unwrap();
        drop(f);
        assert_eq!(std::fs::metadata(dir.path().join("oplog")).unwrap().len(), 10);
        let mut m = StoreFile::memory("oplog");
        m.write_at(0, b"abcdef").unwrap();
        m.set_len_in_background(2).unwrap();
        assert_eq!(m.read_all().unwrap(), b"ab");
    }
}
