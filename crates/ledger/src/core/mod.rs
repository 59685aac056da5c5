//! A hypercore 10 core: open/create, batched appends with JS's flush schedule, verified reads,
//! full verification, and proofs for replication.
//!
//! Durability: an append writes `data` and one oplog entry, then makes both durable with one
//! journal record (journal.rs; a large batch syncs both files instead); the entry carries the new
//! tree nodes, the signed head and the bitfield range. Open redoes the journal. A crash can leave
//! the last, unacknowledged entry without its data; open drops it (core/torn_tail.rs), so nothing
//! is visible whose data is not durable. A flush (first mutation after open, then every
//! 4th, when entries reach 64 KiB, and on close) writes dirty bitfield pages and tree nodes, syncs
//! them, and only then writes the header into the other slot. A batch that flushes appends its
//! oplog entry first, as JS does, so the tree and bitfield never run ahead of the oplog (open
//! checks that they agree: core/consistency.rs).

use std::path::{Path, PathBuf};

use libvms_errors::{err, Error, ErrorCode, Result};

use crate::bitfield::Bitfield;
use crate::crypto::{KeyPair, Verifier};
use crate::journal::Journal;
use crate::oplog::{self, Header, Oplog};
use crate::proof::Batch;
use crate::storage::{Storage, StoreFile};
use crate::tree::{Node, TreeStore, VerifiedCache};

mod access;
mod append;
mod apply;
mod consistency;
mod flush;
mod heads;
mod journaled;
mod open;
mod proofs;
mod read;
mod torn_tail;
mod truncate;
mod verify;

/// A proof that checked out against this core; `apply_proof` commits it.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    pub fork: u64,
    /// Length of the tree once applied (the current length when there is no upgrade).
    pub length: u64,
    pub upgraded: bool,
    /// Index of the block whose value was verified, if any.
    pub block: Option<u64>,
    pub(crate) batch: Batch,
    pub(crate) value: Option<Vec<u8>>,
}

/// One hypercore on disk or in memory. `Send`; not shared between threads without a lock.
pub struct Core {
    dir: Option<PathBuf>,
    oplog: Oplog,
    tree: TreeStore,
    bitfield: Bitfield,
    data: StoreFile,
    header_file: StoreFile,
    header: Header,
    verifier: Verifier,
    key_pair: Option<KeyPair>,
    roots: Vec<Node>,
    length: u64,
    byte_length: u64,
    fork: u64,
    signature: Option<Vec<u8>>,
    cache: VerifiedCache,
    /// False when the stored roots do not match the signature: every read then fails.
    roots_trusted: bool,
    auto_flush: u32,
    /// Batches between header flushes (JS: 4). Each flush syncs tree, bitfield and header and truncates the oplog.
    flush_interval: u32,
    manifest_flushed: bool,
    /// Header fields changed since the last flush without an oplog entry recording them.
    header_dirty: bool,
    /// A write failed after memory was updated: refuse further mutations (reopen to recover).
    failed: bool,
    /// This handle changed something. A handle that only read (`libvms log`, `verify`) writes nothing at close.
    touched: bool,
    /// Open dropped a last batch whose oplog entry was durable but whose data was not (core/torn_tail.rs).
    torn_batch_dropped: bool,
    /// Signed heads of recent lengths (core/heads.rs), at most `heads_kept`.
    heads: std::collections::VecDeque<(u64, Vec<u8>)>,
    heads_kept: usize,
    /// Makes an append durable with one sync (journal.rs); None in memory.
    journal: Option<Journal>,
}

struct Files {
    dir: Option<PathBuf>,
    oplog: StoreFile,
    tree: StoreFile,
    bitfield: StoreFile,
    data: StoreFile,
    header: StoreFile,
}

impl Files {
    fn open(storage: &Storage) -> Result<Files> {
        match storage {
            Storage::Memory => Ok(Files {
                dir: None,
                oplog: StoreFile::memory("oplog"),
                tree: StoreFile::memory("tree"),
                bitfield: StoreFile::memory("bitfield"),
                data: StoreFile::memory("data"),
                header: StoreFile::memory("header"),
            }),
            Storage::Disk(dir) => Ok(Files {
                dir: Some(dir.clone()),
                oplog: StoreFile::disk(dir, "oplog")?,
                tree: StoreFile::disk(dir, "tree")?,
                bitfield: StoreFile::disk(dir, "bitfield")?,
                data: StoreFile::disk(dir, "data")?,
                header: StoreFile::disk(dir, "header")?,
            }),
        }
    }

    fn any_data(&self) -> Result<bool> {
        Ok(self.tree.len()? > 0 || self.bitfield.len()? > 0 || self.data.len()? > 0)
    }
}

/// JS hypercore flushes its header every 4th batch; our files match its bytes at that cadence.
const JS_FLUSH_INTERVAL: u32 = 4;

/// For logs that append small batches all day (call logs, archives): a header flush (tree, bitfield and header
/// syncs and an oplog truncation) then happens when the oplog's 64 KiB fill up, which nearly always comes first.
pub const LAZY_FLUSH_INTERVAL: u32 = 1024;

fn verification_failed(index: u64, what: impl Into<String>) -> Error {
    err::verification(what).at(index)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    // Makes newly created files durable; some filesystems refuse fsync on a directory: ignore that.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}


/// The nearest verified node above a read, with its byte offset.
#[derive(Clone, Copy)]
struct Anchor {
    index: u64,
    size: u64,
    hash: [u8; 32],
    offset: u64,
}

fn remap_at(e: Error, index: u64) -> Error {
    if e.code == ErrorCode::VerificationFailed {
        e.at(index)
    } else {
        e
    }
}

/// Offsets (in `data`) of each root.
fn offsets_of(roots: &[Node]) -> Vec<u64> {
    let mut off = 0u64;
    roots
        .iter()
        .map(|r| {
            let o = off;
            off = off.saturating_add(r.size);
            o
        })
        .collect()
}

fn stored_key_pair(h: &Header, v: &Verifier) -> Option<KeyPair> {
    let kp = h.key_pair.as_ref()?;
    let public: [u8; 32] = kp.public_key.as_deref()?.try_into().ok()?;
    let secret: [u8; 64] = kp.secret_key.as_deref()?.try_into().ok()?;
    let kp = KeyPair { public, secret: Some(secret) };
    kp.signing_key()?;
    // Only a declared signer can append.
    let dummy = [0u8; 32];
    v.sign(&dummy, 0, 0, &kp).ok()?;
    Some(kp)
}

fn update_user_data(list: &mut Vec<(String, Option<Vec<u8>>)>, key: String, value: Option<Vec<u8>>) {
    if let Some(pos) = list.iter().position(|(k, _)| *k == key) {
        match value {
            Some(v) => list[pos].1 = Some(v),
            None => {
                list.remove(pos);
            }
        }
        return;
    }
    if value.is_some() {
        list.push((key, value));
    }
}

fn add_reorg_hint(list: &mut Vec<oplog::ReorgHint>, from: u64, to: u64, ancestors: u64) {
    while list.len() >= 4 {
        list.remove(0);
    }
    while list.last().is_some_and(|r| r.ancestors > ancestors) {
        list.pop();
    }
    list.push(oplog::ReorgHint { from, to, ancestors });
}

/// Reads tree nodes for `verify` in large chunks (unflushed nodes take precedence).
struct NodeReader<'a> {
    tree: &'a TreeStore,
    chunks: std::collections::HashMap<u64, Vec<u8>>,
    limit: u64,
}

const CHUNK_NODES: u64 = 16384;

impl<'a> NodeReader<'a> {
    fn new(tree: &'a TreeStore, limit: u64) -> Self {
        NodeReader { tree, chunks: Default::default(), limit }
    }

    fn get(&mut self, index: u64) -> Result<Option<Node>> {
        if index >= self.limit {
            return Ok(None);
        }
        if self.tree.has_unflushed() {
            // Unflushed nodes or a pending truncation: go through the store's own rules.
            return self.tree.get(index);
        }
        let c = index / CHUNK_NODES;
        if !self.chunks.contains_key(&c) {
            if self.chunks.len() >= 64 {
                self.chunks.clear();
            }
            let mut buf = vec![0u8; (CHUNK_NODES * 40) as usize];
            self.tree.file.read_at(c * CHUNK_NODES * 40, &mut buf)?;
            self.chunks.insert(c, buf);
        }
        let buf = &self.chunks[&c];
        let at = ((index % CHUNK_NODES) * 40) as usize;
        let r = &buf[at..at + 40];
        let size = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&r[8..]);
        let n = Node { index, size, hash };
        Ok(if n.is_blank() { None } else { Some(n) })
    }
}

/// Sequential reads of `data` through a 1 MiB window.
struct DataReader<'a> {
    file: &'a StoreFile,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> DataReader<'a> {
    fn new(file: &'a StoreFile) -> Self {
        DataReader { file, start: 0, buf: Vec::new() }
    }

    fn read(&mut self, offset: u64, size: u64) -> Result<&[u8]> {
        let end = offset + size;
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let want = size.max(1 << 20) as usize;
            self.buf.resize(want, 0);
            let n = self.file.read_at(offset, &mut self.buf)?;
            self.buf.truncate(n.max(size as usize));
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + size as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oplog::{BitfieldUpdate, Entry};

    fn kp() -> KeyPair {
        KeyPair::from_seed([7; 32])
    }

    /// A header too big for its 4 KiB slot goes to the `header` file (big-header.js), and is
    /// read back from there.
    #[test]
    fn external_header_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"x"]).unwrap();
        core.header.user_data.push(("big".into(), Some(vec![0x5a; 5000])));
        core.flush().unwrap();
        assert!(core.header.external.is_some());
        core.append_batch(&[b"y"]).unwrap();
        core.close().unwrap();
        assert!(std::fs::metadata(dir.join("header")).unwrap().len() > 5000);
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.length(), 2);
        assert_eq!(core.header.user_data[0].1.as_ref().unwrap().len(), 5000);
        assert_eq!(core.get(1).unwrap(), b"y");
        core.append_batch(&[b"z"]).unwrap();
        core.close().unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.get(2).unwrap(), b"z");
        core.verify().unwrap();
    }

    /// Legacy version-0 headers (hypercore 10.0.x) open as compat cores keyed by the public key.
    #[test]
    fn v0_header_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"one", b"two"]).unwrap();
        core.close().unwrap();
        let core = Core::open(&dir).unwrap();
        let h = core.header.clone();
        drop(core);
        let mut e = crate::encoding::Encoder::new();
        e.uint(0);
        e.string("blake2b");
        e.string("raw");
        e.string("ed25519");
        e.uint(0); // userData
        e.uint(h.tree.fork);
        e.uint(h.tree.length);
        e.buffer(h.tree.root_hash.as_deref());
        e.buffer(h.tree.signature.as_deref());
        e.buffer(Some(&kp().public));
        e.buffer(Some(&kp().secret.unwrap()));
        e.uint(0);
        e.uint(2);
        let mut op = vec![0u8; 8192];
        let f = oplog::frame(&e.buf, 0, false);
        op[..f.len()].copy_from_slice(&f);
        std::fs::write(dir.join("oplog"), op).unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.key(), kp().public);
        assert!(core.compat() && core.writable());
        assert_eq!(core.manifest().unwrap().version, 0);
        assert_eq!(core.get(1).unwrap(), b"two");
        core.append_batch(&[b"three"]).unwrap();
        core.close().unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.get(2).unwrap(), b"three");
        core.verify().unwrap();
    }

    /// JS flush schedule: the first mutation after open, then every 4th, or at 64 KiB of entries.
    #[test]
    fn flush_schedule() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        // Through the file handle: it waits for the background truncate after a header flush.
        let oplog_len = |c: &Core| c.oplog.file.len().unwrap();
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        let mut sizes = vec![];
        for i in 0..9u8 {
            core.append_batch(&[&[i][..]]).unwrap();
            sizes.push(oplog_len(&core) > 8192);
        }
        // flushes at appends 1, 5, 9
        assert_eq!(sizes, [false, true, true, true, false, true, true, true, false]);
        drop(core);
        let mut core = Core::open(&dir).unwrap();
        core.append_batch(&[b"after reopen"]).unwrap();
        assert_eq!(oplog_len(&core), 8192, "first mutation after open flushes");
        core.append_batch(&[b"x"]).unwrap();
        assert!(oplog_len(&core) > 8192);
        // A batch whose entry reaches 64 KiB flushes at once.
        let big: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = big.iter().map(|b| &b[..]).collect();
        core.append_batch(&refs).unwrap();
        assert_eq!(oplog_len(&core), 8192);
        assert_eq!(core.length(), 1011);
    }

    #[test]
    fn hostile_oplog_entry_ranges_are_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"a"]).unwrap();
        core.append_batch(&[b"b"]).unwrap();
        drop(core);
        let op = std::fs::read(dir.join("oplog")).unwrap();
        let entry = Entry {
            bitfield: Some(BitfieldUpdate { drop: false, start: 0, length: 1 << 40 }),
            ..Default::default()
        };
        let mut op2 = op.clone();
        op2.extend_from_slice(&oplog::frame(&entry.encode(), 1, false));
        std::fs::write(dir.join("oplog"), &op2).unwrap();
        assert_eq!(Core::open(&dir).err().unwrap().code, ErrorCode::StorageCorrupt);
        // Nothing was rewritten by the failed open.
        assert_eq!(std::fs::read(dir.join("oplog")).unwrap(), op2);
    }
}

#[cfg(test)]
mod manifest_from_peer {
    use super::*;
    use crate::crypto::Manifest;

    #[test]
    fn a_replica_takes_the_manifest_its_key_hashes_to_and_refuses_another() {
        let m = Manifest::default_signer([9u8; 32]);
        let key = m.hash();
        let mut r = Core::open_replica(Storage::Memory, key).unwrap();
        assert!(r.manifest().is_none() && r.compat());
        let wrong = Manifest::default_signer([8u8; 32]);
        let e = r.set_manifest(wrong).unwrap_err();
        assert_eq!(e.code, libvms_errors::ErrorCode::InvalidProof);
        assert!(r.manifest().is_none());
        r.set_manifest(m.clone()).unwrap();
        assert_eq!(r.manifest(), Some(&m));
        assert!(!r.compat());
        // Known once: a later one is ignored.
        r.set_manifest(Manifest::default_signer([7u8; 32])).unwrap();
        assert_eq!(r.manifest(), Some(&m));
    }
}
