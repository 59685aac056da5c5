//! Hyperbee 2 B-tree over a `BlockStore`, byte-exact with JS for puts and deletes (FORMAT.md §1).
//! One block per operation (no JS-style batch compaction), so every version is a valid tree.
//! Multi-operation `apply` stages blocks in memory and appends them in one durable batch.

mod block;
mod cursor;
pub mod messages;
mod write;

pub use block::{Level, NodePtr};
pub use cursor::Cursor;
pub use messages::Header;

use crate::store::BlockStore;
use block::{encode_node, Block, BlockCache};
use libvms_errors::{err, Result};
use prost::Message;
use std::sync::Arc;

// Decoded blocks kept per view (two generations, so up to twice this): enough that listing a folder of
// ~10k recent entries decodes nothing again.
const CACHE_BLOCKS: usize = 8192;

/// A live key: `seq` is the block that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Bounds of a range read, as JS `createReadStream` (gt/gte/lt/lte on key bytes).
#[derive(Clone, Debug, Default)]
pub struct RangeOptions {
    pub gt: Option<Vec<u8>>,
    pub gte: Option<Vec<u8>>,
    pub lt: Option<Vec<u8>>,
    pub lte: Option<Vec<u8>>,
    pub reverse: bool,
    pub limit: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum Op {
    Put(Vec<u8>, Option<Vec<u8>>),
    Del(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Put,
    Del,
}

/// One block of the history (`createHistoryStream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: u64,
    pub kind: ChangeType,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// One difference between two versions: `left` in the newer, `right` in the older (JS `createDiffStream`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffEntry {
    pub left: Option<Entry>,
    pub right: Option<Entry>,
}

struct Staged {
    bytes: Vec<u8>,
    block: Option<Arc<Block>>, // None for the header
}

pub struct Bee<S: BlockStore> {
    store: S,
    cache: BlockCache,
    staged: Vec<Staged>,
    pinned: Option<u64>,
    header: Header,
}

impl<S: BlockStore> Bee<S> {
    /// A plain bee (header without metadata when it is first written).
    pub fn new(store: S) -> Result<Self> {
        Self::with_header(store, Header::plain())
    }

    /// `header` is written as block 0 by the first put or del on an empty store. An existing store's block 0
    /// must be a hyperbee header.
    pub fn with_header(mut store: S, header: Header) -> Result<Self> {
        let header = if store.len() > 0 {
            Header::decode_block(&store.get(0)?)?
        } else {
            header
        };
        Ok(Bee {
            store,
            cache: BlockCache::new(CACHE_BLOCKS),
            staged: Vec::new(),
            pinned: None,
            header,
        })
    }

    /// The stored header, or the one that will be written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    fn total_len(&self) -> u64 {
        self.store.len() + self.staged.len() as u64
    }

    /// Number of blocks this view reads (the checkout length, or the store length).
    pub fn view_len(&self) -> u64 {
        self.pinned.unwrap_or_else(|| self.total_len())
    }

    /// `max(1, length)`, like JS.
    pub fn version(&self) -> u64 {
        self.view_len().max(1)
    }

    pub fn is_checkout(&self) -> bool {
        self.pinned.is_some()
    }

    pub fn is_writable(&self) -> bool {
        self.pinned.is_none() && self.store.is_writable()
    }

    /// A read-only view of version `version` (blocks `< version`; 0 means 1).
    pub fn checkout(&self, version: u64) -> Result<Bee<S>>
    where
        S: Clone,
    {
        let v = version.max(1);
        if v > self.total_len().max(1) {
            return Err(err::bad_argument(format!(
                "version {version} is newer than {}",
                self.version()
            )));
        }
        Ok(Bee {
            store: self.store.clone(),
            cache: BlockCache::new(CACHE_BLOCKS),
            staged: Vec::new(),
            pinned: Some(v),
            header: self.header.clone(),
        })
    }

    /// Decoded Node block `seq` (staged, cached, or read from the store).
    pub(crate) fn block(&mut self, seq: u64) -> Result<Arc<Block>> {
        if seq == 0 {
            return Err(err::corrupt("block 0 is the header, not a tree node").at(0));
        }
        let stored = self.store.len();
        if seq >= stored {
            let s = self
                .staged
                .get((seq - stored) as usize)
                .and_then(|s| s.block.clone());
            return s.ok_or_else(|| {
                err::corrupt(format!("tree points at missing block {seq}")).at(seq)
            });
        }
        if let Some(b) = self.cache.get(seq) {
            return Ok(b);
        }
        let bytes = self
            .store
            .get(seq)
            .map_err(|e| e.context(format!("block {seq}")))?;
        let b = Arc::new(Block::decode(seq, &bytes)?);
        self.cache.insert(b.clone());
        Ok(b)
    }

    fn entry(&mut self, seq: u64) -> Result<Entry> {
        let b = self.block(seq)?;
        Ok(Entry {
            seq,
            key: b.key.clone(),
            value: b.value.clone(),
        })
    }

    /// Plain tree search (not JS's shortcut, which can return deleted values: FORMAT.md §1.5).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Entry>> {
        let mut c = Cursor::new(
            self.view_len(),
            RangeOptions {
                gte: Some(key.to_vec()),
                limit: Some(1),
                ..Default::default()
            },
        );
        Ok(c.next(self)?.filter(|e| e.key == key))
    }

    pub fn range(&mut self, opts: RangeOptions) -> RangeIter<'_, S> {
        let cursor = Cursor::new(self.view_len(), opts);
        RangeIter { bee: self, cursor }
    }

    /// First entry of a range.
    pub fn peek(&mut self, opts: RangeOptions) -> Result<Option<Entry>> {
        Cursor::new(
            self.view_len(),
            RangeOptions {
                limit: Some(1),
                ..opts
            },
        )
        .next(self)
    }

    /// A cursor over this view that the caller drives with `cursor.next(&mut bee)`.
    pub fn cursor(&self, opts: RangeOptions) -> Cursor {
        Cursor::new(self.view_len(), opts)
    }

    /// A cursor over an older version `version` of the same bee.
    pub fn cursor_at(&self, version: u64, opts: RangeOptions) -> Result<Cursor> {
        if version > self.view_len().max(1) {
            return Err(err::bad_argument(format!(
                "version {version} is newer than {}",
                self.version()
            )));
        }
        Ok(Cursor::new(version, opts))
    }

    /// Blocks with seq in `[gte, lt)` (defaults: 1 and the view length), in order or reversed.
    pub fn history(
        &mut self,
        gte: Option<u64>,
        lt: Option<u64>,
        reverse: bool,
    ) -> HistoryIter<'_, S> {
        let lo = gte.unwrap_or(1).max(1);
        let hi = lt.unwrap_or(u64::MAX).min(self.view_len());
        HistoryIter {
            bee: self,
            lo,
            hi,
            reverse,
        }
    }

    /// Differences between this view and the older version `other` (JS `createDiffStream(other, range)`).
    pub fn diff(&mut self, other: u64, range: RangeOptions) -> Result<DiffIter<'_, S>> {
        let left = Cursor::new(
            self.view_len(),
            RangeOptions {
                reverse: false,
                limit: None,
                ..range.clone()
            },
        );
        let right = self.cursor_at(
            other.max(1),
            RangeOptions {
                reverse: false,
                limit: None,
                ..range
            },
        )?;
        Ok(DiffIter {
            bee: self,
            left,
            right,
            l: None,
            r: None,
            primed: false,
        })
    }

    fn check_writable(&self) -> Result<()> {
        if self.pinned.is_some() {
            return Err(err::archive_not_writable("a checkout is read-only"));
        }
        if !self.store.is_writable() {
            return Err(err::archive_not_writable("the store is read-only"));
        }
        Ok(())
    }

    fn stage_header_if_empty(&mut self) {
        if self.total_len() == 0 {
            self.staged.push(Staged {
                bytes: self.header.encode_to_vec(),
                block: None,
            });
        }
    }

    fn stage_block(&mut self, key: &[u8], value: Option<&[u8]>, levels: Vec<Level>) -> Result<u64> {
        let seq = self.total_len();
        let bytes = encode_node(key, value, &levels);
        let block = Block {
            seq,
            key: key.to_vec(),
            value: value.map(|v| v.to_vec()),
            levels,
        };
        self.staged.push(Staged {
            bytes,
            block: Some(Arc::new(block)),
        });
        Ok(seq)
    }

    fn stage_put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<u64> {
        self.stage_header_if_empty();
        let seq = self.total_len();
        let levels = write::Tx::new(self, seq, key).put()?;
        self.stage_block(key, value, levels)
    }

    fn stage_del(&mut self, key: &[u8]) -> Result<Option<u64>> {
        self.stage_header_if_empty();
        let seq = self.total_len();
        match write::Tx::new(self, seq, key).del()? {
            Some(levels) => self.stage_block(key, None, levels).map(Some),
            None => Ok(None),
        }
    }

    /// Applies the operations in order, one block each (a del of a missing key writes none), all appended
    /// in one durable batch. On any error nothing is appended. Returns each op's seq (None: missing key).
    pub fn apply(&mut self, ops: &[Op]) -> Result<Vec<Option<u64>>> {
        self.check_writable()?;
        let mut out = Vec::with_capacity(ops.len());
        let staged = (|| {
            for op in ops {
                out.push(match op {
                    Op::Put(k, v) => Some(self.stage_put(k, v.as_deref())?),
                    Op::Del(k) => self.stage_del(k)?,
                });
            }
            Ok(())
        })();
        let result = staged.and_then(|_| {
            if self.staged.is_empty() {
                return Ok(());
            }
            let blocks: Vec<&[u8]> = self.staged.iter().map(|s| s.bytes.as_slice()).collect();
            self.store.append_batch(&blocks).map(|_| ())
        });
        let staged = std::mem::take(&mut self.staged);
        result?;
        for b in staged.into_iter().filter_map(|s| s.block) {
            self.cache.insert(b);
        }
        Ok(out)
    }

    /// Drops every block from `length` on (at least the header stays), durably; returns how many were dropped.
    /// Decoded blocks cached from the dropped range are forgotten: new blocks will take their seqs.
    pub fn truncate(&mut self, length: u64) -> Result<u64> {
        self.check_writable()?;
        let dropped = self.store.truncate(length.max(1).min(self.store.len()))?;
        if dropped > 0 {
            self.cache = BlockCache::new(CACHE_BLOCKS);
        }
        Ok(dropped)
    }

    /// Puts one key (one block; the header too on an empty store). Returns the new block's seq.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<u64> {
        let r = self.apply(&[Op::Put(key.to_vec(), value.map(|v| v.to_vec()))])?;
        Ok(r[0].expect("a put always writes"))
    }

    /// Deletes one key; false (and no block) when it is missing.
    pub fn del(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.apply(&[Op::Del(key.to_vec())])?[0].is_some())
    }
}

pub struct RangeIter<'a, S: BlockStore> {
    bee: &'a mut Bee<S>,
    cursor: Cursor,
}

impl<S: BlockStore> Iterator for RangeIter<'_, S> {
    type Item = Result<Entry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next(self.bee).transpose()
    }
}

pub struct HistoryIter<'a, S: BlockStore> {
    bee: &'a mut Bee<S>,
    lo: u64,
    hi: u64,
    reverse: bool,
}

impl<S: BlockStore> Iterator for HistoryIter<'_, S> {
    type Item = Result<HistoryEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.lo >= self.hi {
            return None;
        }
        let seq = if self.reverse {
            self.hi -= 1;
            self.hi
        } else {
            self.lo += 1;
            self.lo - 1
        };
        Some(self.bee.block(seq).map(|b| HistoryEntry {
            seq,
            kind: if b.is_del() {
                ChangeType::Del
            } else {
                ChangeType::Put
            },
            key: b.key.clone(),
            value: b.value.clone(),
        }))
    }
}

pub struct DiffIter<'a, S: BlockStore> {
    bee: &'a mut Bee<S>,
    left: Cursor,
    right: Cursor,
    l: Option<Entry>,
    r: Option<Entry>,
    primed: bool,
}

impl<S: BlockStore> DiffIter<'_, S> {
    fn step(&mut self) -> Result<Option<DiffEntry>> {
        if !self.primed {
            self.primed = true;
            self.l = self.left.next(self.bee)?;
            self.r = self.right.next(self.bee)?;
        }
        loop {
            let out = match (&self.l, &self.r) {
                (None, None) => return Ok(None),
                (Some(_), None) => (true, false),
                (None, Some(_)) => (false, true),
                (Some(a), Some(b)) => match a.key.cmp(&b.key) {
                    std::cmp::Ordering::Less => (true, false),
                    std::cmp::Ordering::Greater => (false, true),
                    std::cmp::Ordering::Equal if a.seq == b.seq => {
                        self.l = self.left.next(self.bee)?;
                        self.r = self.right.next(self.bee)?;
                        continue;
                    }
                    std::cmp::Ordering::Equal => (true, true),
                },
            };
            let left = if out.0 {
                std::mem::replace(&mut self.l, self.left.next(self.bee)?)
            } else {
                None
            };
            let right = if out.1 {
                std::mem::replace(&mut self.r, self.right.next(self.bee)?)
            } else {
                None
            };
            return Ok(Some(DiffEntry { left, right }));
        }
    }
}

impl<S: BlockStore> Iterator for DiffIter<'_, S> {
    type Item = Result<DiffEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
