//! The files archive (Beaker DatArchive semantics) on a Hyperdrive 11 layout: entries in a Hyperbee on
//! the metadata log, contents as Hyperblobs on the content log.
//!
//! Directories. Hyperdrive has no directory entries; DatArchive needs mkdir/rmdir/stat on directories, so a
//! directory is stored as a marker entry at its own path: `blob: null`, `linkname: null`,
//! `metadata: {"ctime","mtime","type":"directory"}` (JS hyperdrive lists it as an empty entry). The root
//! always exists. A directory that only exists because files lie under it (a JS-written drive) is also
//! a directory here ("implicit"). Writes require the parent directory to exist, as Beaker's DatArchive.
//!
//! Times. `metadata.mtime`/`ctime` (ms) come from an injectable clock, so a replay with the same clock
//! writes the same bytes. ctime is kept when a file is overwritten; rename and copy keep the entry's
//! metadata. Digests (digest.rs) ignore metadata entirely.
//!
//! Versions. `version()` = max(1, metadata length); every successful single-entry write adds exactly 1,
//! and a multi-entry operation (rmdir -r, rename/copy of a directory) adds one per entry, all appended in
//! one durable batch. Every check runs before anything is appended, so a failed operation changes nothing.

mod entry;
pub mod path;
mod rollback;

pub use entry::DriveEntry;
pub use rollback::RolledBack;

use crate::bee::{Bee, ChangeType, Cursor, Header, Op, RangeOptions};
use crate::blobs::{self, BlobId};
use crate::store::BlockStore;
use libvms_errors::{err, Result};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Milliseconds since the epoch for mtime/ctime.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// A clock that always says `ms` (replays, tests).
pub fn fixed_clock(ms: u64) -> Clock {
    Arc::new(move || ms)
}

const MAX_LINK_HOPS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub is_file: bool,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub blocks: u64,
    pub downloaded: u64,
    /// Seq of the entry's block; None for the root and implicit directories.
    pub seq: Option<u64>,
}

/// One write of the history: `version` is the archive version that write produced (its block seq + 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRecord {
    pub kind: ChangeType,
    pub path: String,
    pub version: u64,
}

/// Put options of the hyperdrive-level `put` (JS semantics, no directory rules).
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    pub executable: bool,
    pub metadata: Value,
}

enum Found {
    Missing,
    File(u64, DriveEntry),
    Dir(Option<(u64, DriveEntry)>),
}

pub(crate) type HashCache = Arc<Mutex<HashMap<BlobId, [u8; 32]>>>;

pub struct Drive<M: BlockStore, C: BlockStore> {
    bee: Bee<M>,
    content: C,
    clock: Clock,
    pub(crate) hashes: HashCache,
    marks: rollback::Marks,
}

impl<M: BlockStore, C: BlockStore> Drive<M, C> {
    /// Opens (or, when `meta` is empty, prepares) a drive. `content_key` goes in the header's contentFeed
    /// on first write (a compat drive); None writes empty header metadata (manifest-v1 drives).
    pub fn new(meta: M, content: C, content_key: Option<[u8; 32]>) -> Result<Self> {
        let bee = Bee::with_header(meta, Header::drive(content_key.as_ref().map(|k| &k[..])))?;
        let mut drive = Drive {
            bee,
            content,
            clock: system_clock(),
            hashes: Arc::new(Mutex::new(HashMap::new())),
            marks: rollback::Marks::default(),
        };
        drive.mark();
        Ok(drive)
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Content key from the stored (or pending) header.
    pub fn content_key(&self) -> Result<Option<[u8; 32]>> {
        self.bee.header().content_key()
    }

    pub fn version(&self) -> u64 {
        self.bee.version()
    }

    pub fn is_writable(&self) -> bool {
        self.bee.is_writable() && self.content.is_writable()
    }

    pub fn bee(&mut self) -> &mut Bee<M> {
        &mut self.bee
    }

    pub fn content(&mut self) -> &mut C {
        &mut self.content
    }

    /// Read-only view of `version`.
    pub fn checkout(&self, version: u64) -> Result<Drive<M, C>>
    where
        M: Clone,
        C: Clone,
    {
        Ok(Drive {
            bee: self.bee.checkout(version)?,
            content: self.content.clone(),
            clock: self.clock.clone(),
            hashes: self.hashes.clone(),
            marks: rollback::Marks::default(),
        })
    }

    // ---- lookups ----

    fn entry_at(&mut self, path: &str) -> Result<Option<(u64, DriveEntry)>> {
        match self.bee.get(&path::key(path))? {
            None => Ok(None),
            Some(e) => {
                let v = e
                    .value
                    .ok_or_else(|| err::corrupt(format!("entry {path} has no value")).at(e.seq))?;
                Ok(Some((
                    e.seq,
                    DriveEntry::decode(&v).map_err(|x| x.at(e.seq))?,
                )))
            }
        }
    }

    fn has_children(&mut self, path: &str) -> Result<bool> {
        let (gte, lt) = path::children_range(path);
        Ok(self
            .bee
            .peek(RangeOptions {
                gte: Some(gte),
                lt: Some(lt),
                ..Default::default()
            })?
            .is_some())
    }

    fn find(&mut self, path: &str) -> Result<Found> {
        if path == "/" {
            return Ok(Found::Dir(None));
        }
        match self.entry_at(path)? {
            Some((seq, e)) if e.is_dir() => Ok(Found::Dir(Some((seq, e)))),
            Some((seq, e)) => Ok(Found::File(seq, e)),
            None if self.has_children(path)? => Ok(Found::Dir(None)),
            None => Ok(Found::Missing),
        }
    }

    /// Like `find`, following symlinks (relative targets resolve against the link's folder).
    fn find_follow(&mut self, path: &str) -> Result<Found> {
        let mut p = path.to_string();
        for _ in 0..=MAX_LINK_HOPS {
            match self.find(&p)? {
                Found::File(_, e) if e.is_symlink() => {
                    let target = e.linkname.unwrap_or_default();
                    let base = if target.starts_with('/') {
                        String::new()
                    } else {
                        path::parent(&p).unwrap_or("/").to_string()
                    };
                    p = path::normalize(&format!("{base}/{target}"))
                        .map_err(|_| err::not_found(format!("{path}: bad link")))?;
                }
                f => return Ok(f),
            }
        }
        Err(err::not_found(format!("{path}: too many symbolic links")))
    }

    fn is_dir(&mut self, path: &str) -> Result<bool> {
        Ok(matches!(self.find(path)?, Found::Dir(_)))
    }

    fn check_writable(&self) -> Result<()> {
        if self.bee.is_checkout() {
            return Err(err::archive_not_writable("a checkout is read-only"));
        }
        if !self.is_writable() {
            return Err(err::archive_not_writable("the archive is read-only"));
        }
        Ok(())
    }

    fn require_parent(&mut self, path: &str) -> Result<()> {
        let parent = path::parent(path).unwrap_or("/");
        if !self.is_dir(parent)? {
            return Err(err::parent_missing(format!(
                "parent folder of {path} does not exist"
            )));
        }
        Ok(())
    }

    /// Normalised, writable, not the root.
    fn writable_path(&self, p: &str) -> Result<String> {
        let path = path::normalize(p)?;
        self.check_writable()?;
        if path == "/" {
            return Err(err::invalid_path("the root folder cannot be written"));
        }
        Ok(path)
    }

    /// Every entry under directory `dir` (not the marker itself), in key order.
    fn entries_under(&mut self, dir: &str) -> Result<Vec<(String, u64, DriveEntry)>> {
        let (gte, lt) = path::children_range(dir);
        let mut c = self.bee.cursor(RangeOptions {
            gte: Some(gte),
            lt: Some(lt),
            ..Default::default()
        });
        let mut out = Vec::new();
        while let Some(x) = self.next_entry(&mut c)? {
            out.push(x);
        }
        Ok(out)
    }

    /// Next entry of a cursor over `files\0` keys, decoded (other keys are skipped).
    pub(crate) fn next_entry(
        &mut self,
        c: &mut Cursor,
    ) -> Result<Option<(String, u64, DriveEntry)>> {
        while let Some(e) = c.next(&mut self.bee)? {
            let Some(p) = path::from_key(&e.key) else {
                continue;
            };
            let v = e
                .value
                .ok_or_else(|| err::corrupt(format!("entry {p} has no value")).at(e.seq))?;
            return Ok(Some((
                p,
                e.seq,
                DriveEntry::decode(&v).map_err(|x| x.at(e.seq))?,
            )));
        }
        Ok(None)
    }

    /// A cursor over every entry of this view, in path order (drive it with `next_entry`).
    pub(crate) fn all_entries(&self) -> Cursor {
        let (gte, lt) = path::children_range("/");
        self.bee.cursor(RangeOptions {
            gte: Some(gte),
            lt: Some(lt),
            ..Default::default()
        })
    }

    fn put_entry(&mut self, path: &str, e: &DriveEntry) -> Result<u64> {
        self.bee.put(&path::key(path), Some(&e.encode()))?;
        self.mark();
        Ok(self.version())
    }

    // ---- hyperdrive-level primitives (JS semantics: no directory rules, metadata as given) ----

    /// `drive.put(path, data, {executable, metadata})`: blob first, then the entry. Returns the new version.
    pub fn put(&mut self, p: &str, data: &[u8], opts: PutOptions) -> Result<u64> {
        let path = self.writable_path(p)?;
        let blob = blobs::put_blob(&mut self.content, data)?;
        let e = DriveEntry {
            executable: opts.executable,
            linkname: None,
            blob: Some(blob),
            metadata: opts.metadata,
        };
        self.put_entry(&path, &e)
    }

    /// `drive.symlink(path, target)`.
    pub fn symlink(&mut self, p: &str, target: &str) -> Result<u64> {
        let path = self.writable_path(p)?;
        let e = DriveEntry {
            executable: false,
            linkname: Some(target.to_string()),
            blob: None,
            metadata: Value::Null,
        };
        self.put_entry(&path, &e)
    }

    /// `drive.del(path)`: false (and no write) when missing.
    pub fn del(&mut self, p: &str) -> Result<bool> {
        let path = self.writable_path(p)?;
        let deleted = self.bee.del(&path::key(&path))?;
        self.mark();
        Ok(deleted)
    }

    /// `drive.entry(path)`: the raw entry and its seq.
    pub fn entry(&mut self, p: &str) -> Result<Option<(u64, DriveEntry)>> {
        let path = path::normalize(p)?;
        if path == "/" {
            return Ok(None);
        }
        self.entry_at(&path)
    }

    // ---- DatArchive operations ----

    /// Writes a file (creating or replacing it). Returns the new version.
    pub fn write_file(&mut self, p: &str, data: &[u8]) -> Result<u64> {
        // Blocks are cut straight from `data`: no copy of a big file before the log write.
        self.write_file_with(p, |content| blobs::put_blob(content, data))
    }

    /// Writes a file from a stream of chunks (never more than one 64 KiB block × 16 buffered).
    pub fn write_file_chunks<I>(&mut self, p: &str, chunks: I) -> Result<u64>
    where
        I: IntoIterator<Item = Result<Vec<u8>>>,
    {
        self.write_file_with(p, |content| blobs::put_blob_chunks(content, chunks))
    }

    /// Checks, then `put` appends the blob, then the entry is written.
    fn write_file_with(&mut self, p: &str, put: impl FnOnce(&mut C) -> Result<BlobId>) -> Result<u64> {
        let path = self.writable_path(p)?;
        let ctime = match self.find(&path)? {
            Found::Dir(_) => return Err(err::entry_exists(format!("{path} is a folder"))),
            Found::File(_, e) => Some(e.ctime()),
            Found::Missing => None,
        };
        self.require_parent(&path)?;
        let now = (self.clock)();
        let blob = put(&mut self.content)?;
        let e = DriveEntry::file(blob, json!({"ctime": ctime.unwrap_or(now), "mtime": now}));
        self.put_entry(&path, &e)
    }

    /// Reads a whole file (symlinks followed).
    pub fn read_file(&mut self, p: &str) -> Result<Vec<u8>> {
        let blob = self.file_blob(p)?;
        blobs::read_blob(&mut self.content, &blob)
    }

    /// Reads a file only if it holds at most `max_bytes` (None otherwise, nothing read): lets a caller read
    /// small files inline and hand big ones to a worker.
    pub fn read_file_if_small(&mut self, p: &str, max_bytes: u64) -> Result<Option<Vec<u8>>> {
        let blob = self.file_blob(p)?;
        if blob.byte_length > max_bytes {
            return Ok(None);
        }
        blobs::read_blob(&mut self.content, &blob).map(Some)
    }

    /// Reads a file block by block.
    pub fn read_file_chunks(&mut self, p: &str) -> Result<blobs::BlobChunks<'_, C>> {
        let blob = self.file_blob(p)?;
        Ok(blobs::read_blob_chunks(&mut self.content, blob))
    }

    /// Where a file's content is (symlinks followed): a sparse replica fetches just these blocks.
    pub fn file_blob(&mut self, p: &str) -> Result<BlobId> {
        let path = path::normalize(p)?;
        match self.find_follow(&path)? {
            Found::File(_, e) => Ok(e.blob.unwrap_or_default()),
            Found::Dir(_) => Err(err::not_found(format!("{path} is a folder, not a file"))),
            Found::Missing => Err(err::not_found(format!("{path} not found"))),
        }
    }

    pub fn stat(&mut self, p: &str) -> Result<Stat> {
        let path = path::normalize(p)?;
        match self.find_follow(&path)? {
            Found::Missing => Err(err::not_found(format!("{path} not found"))),
            Found::Dir(e) => Ok(Stat {
                is_file: false,
                is_dir: true,
                size: 0,
                mtime: e.as_ref().map_or(0, |(_, e)| e.mtime()),
                ctime: e.as_ref().map_or(0, |(_, e)| e.ctime()),
                blocks: 0,
                downloaded: 0,
                seq: e.map(|(s, _)| s),
            }),
            Found::File(seq, e) => {
                let b = e.blob.unwrap_or_default();
                let downloaded = if b.block_offset.checked_add(b.block_length).is_some() {
                    (b.block_offset..b.block_offset + b.block_length)
                        .filter(|&i| self.content.has(i))
                        .count() as u64
                } else {
                    0
                };
                Ok(Stat {
                    is_file: true,
                    is_dir: false,
                    size: b.byte_length,
                    mtime: e.mtime(),
                    ctime: e.ctime(),
                    blocks: b.block_length,
                    downloaded,
                    seq: Some(seq),
                })
            }
        }
    }

    /// Names in a folder (shallow, sorted bytewise), or paths relative to it (recursive, sorted,
    /// including sub-folders).
    pub fn readdir(&mut self, p: &str, recursive: bool) -> Result<Vec<String>> {
        let dir = path::normalize(p)?;
        match self.find_follow(&dir)? {
            Found::Dir(_) => {}
            Found::File(..) => return Err(err::not_found(format!("{dir} is not a folder"))),
            Found::Missing => return Err(err::not_found(format!("{dir} not found"))),
        }
        let (gte, lt) = path::children_range(&dir);
        let mut names = BTreeSet::new();
        if recursive {
            let mut c = self.bee.cursor(RangeOptions {
                gte: Some(gte),
                lt: Some(lt),
                ..Default::default()
            });
            while let Some(e) = c.next(&mut self.bee)? {
                let Some(full) = path::from_key(&e.key) else {
                    continue;
                };
                let rel = path::relative(&dir, &full);
                // implicit folders of JS-written drives appear too
                for (i, _) in rel.match_indices('/') {
                    names.insert(rel[..i].to_string());
                }
                names.insert(rel.to_string());
            }
            return Ok(names.into_iter().collect());
        }
        // Shallow: one ordered walk; a key inside a sub-folder names that folder, then the walk seeks past
        // the folder's subtree (re-seeking per entry would cost a root-to-leaf descent per name).
        let range = |from: Vec<u8>| RangeOptions {
            gte: Some(from),
            lt: Some(lt.clone()),
            ..Default::default()
        };
        let mut c = self.bee.cursor(range(gte.clone()));
        while let Some(e) = c.next(&mut self.bee)? {
            let rest = &e.key[gte.len()..];
            match rest.iter().position(|&b| b == b'/') {
                Some(i) => {
                    names.insert(String::from_utf8_lossy(&rest[..i]).into_owned());
                    let mut from = e.key[..gte.len() + i].to_vec();
                    from.push(b'/' + 1);
                    c = self.bee.cursor(range(from));
                }
                None => {
                    names.insert(String::from_utf8_lossy(rest).into_owned());
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    pub fn mkdir(&mut self, p: &str) -> Result<u64> {
        let path = path::normalize(p)?;
        self.check_writable()?;
        if !matches!(self.find(&path)?, Found::Missing) {
            return Err(err::entry_exists(format!("{path} already exists")));
        }
        self.require_parent(&path)?;
        let now = (self.clock)();
        self.put_entry(&path, &DriveEntry::directory(now, now))
    }

    /// Deletes a file (or symlink).
    pub fn unlink(&mut self, p: &str) -> Result<u64> {
        let path = self.writable_path(p)?;
        match self.find(&path)? {
            Found::File(..) => {}
            Found::Dir(_) => return Err(err::not_found(format!("{path} is a folder, not a file"))),
            Found::Missing => return Err(err::not_found(format!("{path} not found"))),
        }
        self.bee.del(&path::key(&path))?;
        self.mark();
        Ok(self.version())
    }

    /// Removes a folder; with `recursive`, everything in it too (one version per entry).
    pub fn rmdir(&mut self, p: &str, recursive: bool) -> Result<u64> {
        let path = self.writable_path(p)?;
        let marker = match self.find(&path)? {
            Found::Dir(m) => m.is_some(),
            Found::File(..) => return Err(err::not_found(format!("{path} is not a folder"))),
            Found::Missing => return Err(err::not_found(format!("{path} not found"))),
        };
        let mut ops: Vec<Op> = Vec::new();
        if recursive {
            let under = self.entries_under(&path)?;
            ops.extend(
                under
                    .into_iter()
                    .rev()
                    .map(|(p, _, _)| Op::Del(path::key(&p))),
            );
        } else if self.has_children(&path)? {
            return Err(err::dest_not_empty(format!("{path} is not empty")));
        }
        if marker {
            ops.push(Op::Del(path::key(&path)));
        }
        self.bee.apply(&ops)?;
        self.mark();
        Ok(self.version())
    }

    /// Moves a file or folder (a folder moves entry by entry: puts at the destination, then deletes).
    pub fn rename(&mut self, src: &str, dst: &str) -> Result<u64> {
        self.move_or_copy(src, dst, true)
    }

    /// Copies a file or folder; copies share the source's blobs and keep its metadata.
    pub fn copy(&mut self, src: &str, dst: &str) -> Result<u64> {
        self.move_or_copy(src, dst, false)
    }

    fn move_or_copy(&mut self, src: &str, dst: &str, remove: bool) -> Result<u64> {
        let src = self.writable_path(src)?;
        let dst = self.writable_path(dst)?;
        let entries: Vec<(String, DriveEntry)> = match self.find(&src)? {
            Found::Missing => return Err(err::not_found(format!("{src} not found"))),
            Found::File(_, e) => vec![(src.clone(), e)],
            Found::Dir(marker) => {
                if path::is_within(&dst, &src) {
                    return Err(err::invalid_path(format!(
                        "cannot move or copy {src} into itself"
                    )));
                }
                let mut v: Vec<(String, DriveEntry)> =
                    marker.map(|(_, e)| (src.clone(), e)).into_iter().collect();
                v.extend(
                    self.entries_under(&src)?
                        .into_iter()
                        .map(|(p, _, e)| (p, e)),
                );
                v
            }
        };
        if !matches!(self.find(&dst)?, Found::Missing) {
            return Err(err::entry_exists(format!("{dst} already exists")));
        }
        self.require_parent(&dst)?;
        let mut ops: Vec<Op> = entries
            .iter()
            .map(|(p, e)| {
                Op::Put(
                    path::key(&format!("{dst}{}", &p[src.len()..])),
                    Some(e.encode()),
                )
            })
            .collect();
        if remove {
            ops.extend(entries.iter().map(|(p, _)| Op::Del(path::key(p))));
        }
        self.bee.apply(&ops)?;
        self.mark();
        Ok(self.version())
    }

    /// One record per write with `start <= version < end` (end: None = up to now).
    pub fn history(
        &mut self,
        start: u64,
        end: Option<u64>,
        reverse: bool,
    ) -> Result<Vec<HistoryRecord>> {
        let gte = start.saturating_sub(1);
        let lt = end.map(|e| e.saturating_sub(1));
        let mut out = Vec::new();
        for h in self.bee.history(Some(gte), lt, reverse) {
            let h = h?;
            if let Some(path) = path::from_key(&h.key) {
                out.push(HistoryRecord {
                    kind: h.kind,
                    path,
                    version: h.seq + 1,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
