//! Content digest and content diff of archives, for verifiers: they compare what the files are, not how
//! the bytes were laid out (metadata such as mtime, blob placement and history are ignored).
//!
//! digest = BLAKE2b-256( "libvms-archive-digest-v1" ‖ for each file in bytewise path order:
//!          u64le(len(path)) ‖ path ‖ BLAKE2b-256(content) ).
//! Counted: regular files (blob entries). Not counted: `/dat.json` (the manifest differs per archive),
//! directory markers (so an empty folder does not count, as a "same set of files" comparison wants), and
//! symlinks. Both walk the tree with cursors: only the current path and one content block are in memory.

use crate::blobs::{self, BlobId};
use crate::drive::{Drive, DriveEntry};
use crate::store::BlockStore;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use libvms_errors::Result;

type Blake2b256 = Blake2b<U32>;

const DOMAIN: &[u8] = b"libvms-archive-digest-v1";
const HASH_CACHE_MAX: usize = 16_384;

/// Paths that differ between two archives (each list sorted bytewise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentDiff {
    /// In the second archive only.
    pub added: Vec<String>,
    /// In the first archive only.
    pub removed: Vec<String>,
    /// In both, with different content.
    pub changed: Vec<String>,
}

impl ContentDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn counted(path: &str, e: &DriveEntry) -> Option<BlobId> {
    if path == "/dat.json" || e.is_dir() || e.is_symlink() {
        return None;
    }
    e.blob
}

impl<M: BlockStore, C: BlockStore> Drive<M, C> {
    /// BLAKE2b-256 of a blob's bytes, streamed block by block (cached per blob: blocks never change).
    pub fn blob_hash(&mut self, id: BlobId) -> Result<[u8; 32]> {
        if let Some(h) = self
            .hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(*h);
        }
        let mut h = Blake2b256::new();
        for chunk in blobs::read_blob_chunks(self.content(), id) {
            h.update(chunk?);
        }
        let out: [u8; 32] = h.finalize().into();
        let mut cache = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= HASH_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, out);
        Ok(out)
    }

    /// Next counted file of a cursor: (path, blob).
    fn next_file(&mut self, c: &mut crate::bee::Cursor) -> Result<Option<(String, BlobId)>> {
        while let Some((p, _, e)) = self.next_entry(c)? {
            if let Some(b) = counted(&p, &e) {
                return Ok(Some((p, b)));
            }
        }
        Ok(None)
    }

    /// Digest of this view's files (use `checkout(v)` for an older version).
    pub fn content_digest(&mut self) -> Result<[u8; 32]> {
        let mut h = Blake2b256::new();
        h.update(DOMAIN);
        let mut c = self.all_entries();
        while let Some((p, blob)) = self.next_file(&mut c)? {
            let fh = self.blob_hash(blob)?;
            h.update((p.len() as u64).to_le_bytes());
            h.update(p.as_bytes());
            h.update(fh);
        }
        Ok(h.finalize().into())
    }

    /// Digest at `version` of this drive.
    pub fn content_digest_at(&mut self, version: u64) -> Result<[u8; 32]>
    where
        M: Clone,
        C: Clone,
    {
        self.checkout(version)?.content_digest()
    }

    /// Content differences from version `a` to version `b` of this drive.
    pub fn diff_versions(&mut self, a: u64, b: u64) -> Result<ContentDiff>
    where
        M: Clone,
        C: Clone,
    {
        let (mut va, mut vb) = (self.checkout(a)?, self.checkout(b)?);
        content_diff(&mut va, &mut vb, true)
    }
}

/// Files added/removed/changed from archive `a` to archive `b` (same counting rules as the digest).
/// `same_content_store`: both read one content log, so equal blob ids mean equal bytes without hashing.
/// Empty iff the two content digests are equal.
pub fn content_diff<A, B, C, D>(
    a: &mut Drive<A, B>,
    b: &mut Drive<C, D>,
    same_content_store: bool,
) -> Result<ContentDiff>
where
    A: BlockStore,
    B: BlockStore,
    C: BlockStore,
    D: BlockStore,
{
    let (mut ca, mut cb) = (a.all_entries(), b.all_entries());
    let mut out = ContentDiff::default();
    let (mut x, mut y) = (a.next_file(&mut ca)?, b.next_file(&mut cb)?);
    loop {
        match (x.take(), y.take()) {
            (None, None) => return Ok(out),
            (Some(l), None) => {
                out.removed.push(l.0);
                x = a.next_file(&mut ca)?;
            }
            (None, Some(r)) => {
                out.added.push(r.0);
                y = b.next_file(&mut cb)?;
            }
            (Some(l), Some(r)) => match l.0.as_bytes().cmp(r.0.as_bytes()) {
                std::cmp::Ordering::Less => {
                    out.removed.push(l.0);
                    x = a.next_file(&mut ca)?;
                    y = Some(r);
                }
                std::cmp::Ordering::Greater => {
                    out.added.push(r.0);
                    y = b.next_file(&mut cb)?;
                    x = Some(l);
                }
                std::cmp::Ordering::Equal => {
                    let same = (same_content_store && l.1 == r.1)
                        || a.blob_hash(l.1)? == b.blob_hash(r.1)?;
                    if !same {
                        out.changed.push(l.0);
                    }
                    x = a.next_file(&mut ca)?;
                    y = b.next_file(&mut cb)?;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::fixed_clock;
    use crate::MemoryStore;

    fn new(clock: u64) -> Drive<MemoryStore, MemoryStore> {
        let mut d = Drive::new(MemoryStore::new(), MemoryStore::new(), None).unwrap();
        d.set_clock(fixed_clock(clock));
        d
    }

    #[test]
    fn digest_ignores_layout_times_manifest_and_empty_dirs() {
        let mut a = new(1);
        a.write_file("/dat.json", b"{\"title\":\"a\"}").unwrap();
        a.mkdir("/d").unwrap();
        a.write_file("/d/x", b"same").unwrap();
        a.write_file("/y", b"old").unwrap();
        a.write_file("/y", b"new").unwrap();
        let mut b = new(99);
        b.write_file("/y", b"new").unwrap();
        b.mkdir("/d").unwrap();
        b.mkdir("/empty").unwrap();
        b.write_file("/d/x", b"same").unwrap();
        b.write_file("/dat.json", b"{\"title\":\"b\"}").unwrap();
        assert_eq!(a.content_digest().unwrap(), b.content_digest().unwrap());
        assert!(content_diff(&mut a, &mut b, false).unwrap().is_empty());
        b.write_file("/d/x", b"other").unwrap();
        b.write_file("/z", b"").unwrap();
        a.unlink("/y").unwrap();
        assert_ne!(a.content_digest().unwrap(), b.content_digest().unwrap());
        let d = content_diff(&mut a, &mut b, false).unwrap();
        assert_eq!(
            d,
            ContentDiff {
                added: vec!["/y".into(), "/z".into()],
                removed: vec![],
                changed: vec!["/d/x".into()]
            }
        );
        // a path move is a remove + add; an empty file differs from no file
        let mut c = new(1);
        c.write_file("/x", b"").unwrap();
        let mut e = new(1);
        assert_ne!(c.content_digest().unwrap(), e.content_digest().unwrap());
        e.write_file("/x", b"").unwrap();
        assert_eq!(c.content_digest().unwrap(), e.content_digest().unwrap());
    }

    #[test]
    fn versions_of_one_drive() {
        let mut a = new(1);
        a.write_file("/f", b"1").unwrap(); // v2
        let v2 = a.content_digest().unwrap();
        a.write_file("/g", b"2").unwrap(); // v3
        a.write_file("/f", b"1").unwrap(); // v4: same bytes, new blob
        assert_eq!(a.content_digest_at(2).unwrap(), v2);
        assert_eq!(
            a.content_digest_at(1).unwrap(),
            new(1).content_digest().unwrap()
        );
        let d = a.diff_versions(2, 4).unwrap();
        assert_eq!(
            d,
            ContentDiff {
                added: vec!["/g".into()],
                removed: vec![],
                changed: vec![]
            }
        );
        let d = a.diff_versions(4, 1).unwrap();
        assert_eq!(d.removed, ["/f", "/g"]);
    }
}
