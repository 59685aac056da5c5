//! Archives on disk: the drive's two logs are ledger cores laid out as corestore@6 lays them out
//! (`primary-key`, `cores/<dk[0:2]>/<dk[2:4]>/<dk>/`), so npm `hyperdrive@11` + `corestore@6` open the folder.
use std::path::{Path, PathBuf};

use libvms_errors::{err, Result};
use libvms_ledger::{Core, KeyPair, SharedCore, Storage};

use crate::bee::messages::Header;
use crate::corestore::{self, DB_CORE_NAME, DEFAULT_NAMESPACE};
use crate::drive::Drive;
use crate::store::BlockStore;

/// A files archive stored on disk: its two logs are shared ledger cores (a checkout shares them; closing one
/// closes it for all).
pub type DiskDrive = Drive<SharedCore, SharedCore>;

/// Share `core` as one of an archive's logs.
pub fn share(mut core: Core) -> SharedCore {
    // Flush the header when the oplog is full rather than every 4th batch (as JS does): each write is durable
    // either way, and a small write then costs no tree/bitfield/header syncs and no oplog truncation.
    core.set_flush_interval(libvms_ledger::LAZY_FLUSH_INTERVAL);
    SharedCore::new(core, "archive")
}

/// The archive's block log. A failed write (a full disk, an I/O error) marks the core failed: later writes are
/// refused and `failure` tells the caller a write was lost even if the code that made it swallowed the error.
impl BlockStore for SharedCore {
    fn len(&self) -> u64 {
        if self.is_closed() { 0 } else { self.signed_length() }
    }

    fn byte_len(&self) -> u64 {
        if self.is_closed() { 0 } else { self.byte_length() }
    }

    fn get(&mut self, index: u64) -> Result<Vec<u8>> {
        // A damaged block is the disk's failure, not the script's: the handle notes it (`failure`), so the VM stops
        // instead of logging it.
        self.with(|c| c.get(index))
    }

    fn append_batch(&mut self, blocks: &[&[u8]]) -> Result<u64> {
        if !self.writable() {
            return Err(err::archive_not_writable("this archive was opened without its secret key"));
        }
        self.write(|c| c.append_batch(blocks))
    }

    fn truncate(&mut self, length: u64) -> Result<u64> {
        if !self.writable() {
            return Err(err::archive_not_writable("this archive was opened without its secret key"));
        }
        self.write(|c| c.truncate(length))
    }

    fn is_writable(&self) -> bool {
        self.writable()
    }

    fn has(&mut self, index: u64) -> bool {
        self.with(|c| Ok(c.has(index))).unwrap_or(false)
    }
}

fn core_path(root: &Path, key: &[u8; 32]) -> PathBuf {
    root.join(corestore::core_dir(&corestore::discovery_key(key)))
}

/// A new archive in `root` (which must not hold one): fresh primary key, db and blobs cores derived from it as
/// corestore does for `new Hyperdrive(store)`.
pub fn create(root: &Path) -> Result<DiskDrive> {
    if corestore::primary_key_path(root).exists() {
        return Err(err::entry_exists(format!("{} already holds an archive", root.display())));
    }
    let primary = corestore::load_or_create_primary_key(root)?;
    let store_lock = libvms_ledger::lock_existing_file(&corestore::primary_key_path(root))?;
    let (db_seed, db_key) = corestore::core_key_pair(&primary, &DEFAULT_NAMESPACE, DB_CORE_NAME);
    let blobs_name = corestore::blobs_core_name(&db_key);
    let (blobs_seed, blobs_key) = corestore::core_key_pair(&primary, &DEFAULT_NAMESPACE, &blobs_name);
    let meta = Core::create_with_keypair(Storage::Disk(core_path(root, &db_key)), KeyPair::from_seed(db_seed))?;
    let content = Core::create_with_keypair(Storage::Disk(core_path(root, &blobs_key)), KeyPair::from_seed(blobs_seed))?;
    let meta = share(meta);
    // The metadata log holds the archive's `primary-key` lock (corestore@6 locks that file, not the oplogs).
    meta.hold_until_close(store_lock);
    Drive::new(meta, share(content), Some(blobs_key))
}

/// Reopen the archive in `root`; when `expected_key` is given, it must be the archive's key.
pub fn open(root: &Path, expected_key: Option<[u8; 32]>) -> Result<DiskDrive> {
    let primary = match std::fs::read(corestore::primary_key_path(root)) {
        Ok(bytes) => corestore::parse_primary_key(&bytes)
            .ok_or_else(|| err::corrupt(format!("{}: primary-key is shorter than 32 bytes", root.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err::not_a_core(format!("{} holds no archive (no primary-key)", root.display())))
        }
        Err(e) => return Err(e.into()),
    };
    // corestore@6 (and so hyperdrive@11) locks `primary-key`, not the cores: take that lock too.
    let store_lock = libvms_ledger::lock_existing_file(&corestore::primary_key_path(root))?;
    let (_, db_key) = corestore::core_key_pair(&primary, &DEFAULT_NAMESPACE, DB_CORE_NAME);
    if let Some(want) = expected_key {
        if want != db_key {
            return Err(err::bad_argument(format!(
                "{} holds archive {}, not {}",
                root.display(),
                hex(&db_key),
                hex(&want)
            )));
        }
    }
    let mut meta = share(Core::open(&core_path(root, &db_key))?);
    meta.hold_until_close(store_lock);
    if meta.is_empty() {
        return Err(err::corrupt("archive metadata log has no header block"));
    }
    let meta_dir = core_path(root, &db_key);
    let block0 = meta.get(0).map_err(|e| e.context(format!("files archive metadata core ({})", meta_dir.display())))?;
    let header = Header::decode_block(&block0)?;
    let content_key = header
        .content_key()?
        .ok_or_else(|| err::corrupt("archive header names no content log"))?;
    let mut content = share(Core::open(&core_path(root, &content_key))?);
    // Cheap at open: the latest block of each core (the metadata's newest entry and tree, the last content block)
    // against the signed tree, so damage there is refused before a VM writes its restart. `verify` checks the rest.
    for (name, store) in [("metadata", &mut meta), ("content", &mut content)] {
        let len = store.len();
        // A writer's core holds every block (a replica's may not: its reads verify what it holds).
        if len > 0 && store.is_writable() {
            store.get(len - 1).map_err(|e| {
                let dir = store.with(|c| Ok(c.dir().map(|d| d.display().to_string()).unwrap_or_default())).unwrap_or_default();
                e.context(format!("files archive {name} core ({dir})"))
            })?;
        }
    }
    Drive::new(meta, content, Some(content_key))
}

/// Check every held block of both cores against their signed trees (what `libvms verify` does before it replays).
/// The error keeps the ledger's code and block index, and names the core and its directory.
pub fn verify_storage(drive: &mut DiskDrive) -> Result<()> {
    let meta = drive.bee().store().clone();
    let content = drive.content().clone();
    for (name, store) in [("metadata", meta), ("content", content)] {
        store.with(|c| {
            c.verify().map_err(|e| {
                let dir = c.dir().map(|d| d.display().to_string()).unwrap_or_default();
                e.context(format!("files archive {name} core ({dir})"))
            })
        })?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_errors::ErrorCode;
    use crate::drive::RolledBack;

    #[test]
    fn create_write_reopen_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = {
            let mut d = create(dir.path()).unwrap();
            d.write_file("/dat.json", b"{}").unwrap();
            d.mkdir("/a").unwrap();
            d.write_file("/a/big.bin", &vec![7u8; 200_000]).unwrap();
            let key = d.bee().store().key();
            d.bee().store().close().unwrap();
            d.content().close().unwrap();
            key
        };
        let mut d = open(dir.path(), Some(key)).unwrap();
        assert_eq!(d.read_file("/a/big.bin").unwrap(), vec![7u8; 200_000]);
        assert_eq!(d.readdir("/", false).unwrap(), vec!["a".to_string(), "dat.json".to_string()]);
        assert_eq!(d.version(), 4);
    }

    #[test]
    fn wrong_key_missing_dir_and_second_create_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = create(dir.path()).unwrap();
        assert_eq!(create(dir.path()).err().unwrap().code, ErrorCode::EntryAlreadyExists);
        drop(d);
        assert_eq!(open(dir.path(), Some([9; 32])).err().unwrap().code, ErrorCode::BadArgument);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(open(empty.path(), None).err().unwrap().code, ErrorCode::NotACore);
    }

    #[test]
    fn a_second_open_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = create(dir.path()).unwrap();
        d.write_file("/x", b"1").unwrap();
        assert_eq!(open(dir.path(), None).err().unwrap().code, ErrorCode::StorageLocked);
    }

    fn close(mut d: DiskDrive) {
        d.bee().store().close().unwrap();
        d.content().close().unwrap();
    }

    /// Writes of every kind after version `v`, then a rollback to `v`: the content is `v`'s again, and both
    /// logs are as short as `v` needs, whether the drive knows where they stood (marks) or scans (after a reopen).
    #[test]
    fn truncate_rolls_back_both_logs_to_a_version() {
        for reopen_first in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut d = create(dir.path()).unwrap();
            d.write_file("/dat.json", b"{}").unwrap();
            d.mkdir("/a").unwrap();
            d.write_file("/a/one", &vec![1u8; 100_000]).unwrap();
            let v = d.version();
            let digest = d.content_digest().unwrap();
            let content_len = d.content().len();
            d.write_file("/a/big", &vec![2u8; 1_000_000]).unwrap();
            d.write_file("/a/one", b"changed").unwrap();
            d.rename("/a", "/b").unwrap();
            d.mkdir("/c").unwrap();
            d.rmdir("/b", true).unwrap();
            assert_ne!(d.content_digest().unwrap(), digest);
            let key = d.bee().store().key();
            if reopen_first {
                close(d);
                d = open(dir.path(), Some(key)).unwrap();
            }
            let r = d.truncate(v).unwrap();
            assert_eq!(r.writes, 12, "metadata blocks dropped (rename and rmdir -r: one per entry)");
            assert_eq!(r.content_blocks, 17, "the 1 MB file's and the small rewrite's blocks");
            assert_eq!(d.version(), v);
            assert_eq!(d.content().len(), content_len);
            assert_eq!(d.content_digest().unwrap(), digest);
            assert_eq!(d.read_file("/a/one").unwrap(), vec![1u8; 100_000]);
            assert_eq!(d.truncate(v).unwrap(), RolledBack::default(), "nothing more to undo");
            // New writes take the dropped seqs; everything reopens and reads.
            d.write_file("/a/two", b"2").unwrap();
            close(d);
            let mut d = open(dir.path(), Some(key)).unwrap();
            assert_eq!(d.version(), v + 1);
            assert_eq!(d.read_file("/a/two").unwrap(), b"2");
            assert_eq!(d.readdir("/a", false).unwrap(), vec!["one".to_string(), "two".to_string()]);
            d.bee().store().with(|c| c.verify()).unwrap();
            d.content().with(|c| c.verify()).unwrap();
            assert_eq!(d.truncate(v + 5).unwrap_err().code, ErrorCode::BadArgument);
        }
    }
}

