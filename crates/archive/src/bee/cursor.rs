//! Ordered range walk over one version of the tree. The cursor keeps only the path from the root
//! (decoded blocks are shared through the bee's cache), so a range over a huge tree holds O(depth) nodes.
//! It borrows the bee only during `next`, so two cursors (a diff) can walk one bee in turn.

use super::block::{Block, NodePtr};
use super::{Bee, BlockStore, Entry, RangeOptions};
use libvms_errors::{err, Result};
use std::cmp::Ordering;
use std::sync::Arc;

const MAX_DEPTH: usize = 128;

struct Frame {
    block: Arc<Block>,
    level: usize,
    i: usize, // forward: next key to emit; reverse: one past it
}

impl Frame {
    fn keys(&self) -> &[u64] {
        &self.block.levels[self.level].keys
    }
    fn children(&self) -> &[NodePtr] {
        &self.block.levels[self.level].children
    }
}

pub struct Cursor {
    len: u64,
    opts: RangeOptions,
    stack: Vec<Frame>,
    started: bool,
    done: bool,
    emitted: usize,
}

impl Cursor {
    /// A cursor over the tree of version `len` (blocks `< len`).
    pub fn new(len: u64, opts: RangeOptions) -> Cursor {
        Cursor {
            len,
            opts,
            stack: Vec::new(),
            started: false,
            done: false,
            emitted: 0,
        }
    }

    fn push<S: BlockStore>(
        &mut self,
        bee: &mut Bee<S>,
        ptr: NodePtr,
        i_from_end: bool,
    ) -> Result<()> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(err::corrupt("tree deeper than 128 levels").at(ptr.seq));
        }
        let block = bee.block(ptr.seq)?;
        block.level(ptr.offset)?;
        let level = ptr.offset as usize;
        let i = if i_from_end {
            block.levels[level].keys.len()
        } else {
            0
        };
        self.stack.push(Frame { block, level, i });
        Ok(())
    }

    /// From the frame on top, descend to the leftmost (forward) or rightmost (reverse) leaf of child `ci`.
    fn descend_edge<S: BlockStore>(&mut self, bee: &mut Bee<S>, mut ptr: NodePtr) -> Result<()> {
        let rev = self.opts.reverse;
        loop {
            self.push(bee, ptr, rev)?;
            let top = self.stack.last().expect("pushed");
            if top.children().is_empty() {
                return Ok(());
            }
            ptr = if rev {
                top.children()[top.children().len() - 1]
            } else {
                top.children()[0]
            };
        }
    }

    /// Binary search: (index of the first key >= target, whether it is equal).
    fn lower_bound<S: BlockStore>(
        bee: &mut Bee<S>,
        keys: &[u64],
        target: &[u8],
    ) -> Result<(usize, bool)> {
        let (mut s, mut e) = (0, keys.len());
        while s < e {
            let mid = (s + e) >> 1;
            let b = bee.block(keys[mid])?;
            match b.key.as_slice().cmp(target) {
                Ordering::Equal => return Ok((mid, true)),
                Ordering::Less => s = mid + 1,
                Ordering::Greater => e = mid,
            }
        }
        Ok((s, false))
    }

    fn seek<S: BlockStore>(&mut self, bee: &mut Bee<S>) -> Result<()> {
        if self.len < 2 {
            self.done = true;
            return Ok(());
        }
        let root = NodePtr {
            seq: self.len - 1,
            offset: 0,
        };
        let rev = self.opts.reverse;
        let (bound, inclusive) = if rev {
            match (&self.opts.lte, &self.opts.lt) {
                (Some(b), _) => (Some(b.clone()), true),
                (None, Some(b)) => (Some(b.clone()), false),
                _ => (None, false),
            }
        } else {
            match (&self.opts.gte, &self.opts.gt) {
                (Some(b), _) => (Some(b.clone()), true),
                (None, Some(b)) => (Some(b.clone()), false),
                _ => (None, false),
            }
        };
        let Some(bound) = bound else {
            return self.descend_edge(bee, root);
        };
        let mut ptr = root;
        loop {
            self.push(bee, ptr, false)?;
            let top = self.stack.last().expect("pushed");
            let keys = top.keys().to_vec();
            let (lb, exact) = Self::lower_bound(bee, &keys, &bound)?;
            // forward: i = first key to emit; reverse: i = one past the first key to emit.
            let i = match (rev, inclusive, exact) {
                (false, true, _) | (true, false, _) => lb,
                (false, false, e) | (true, true, e) => lb + e as usize,
            };
            let top = self.stack.last_mut().expect("pushed");
            top.i = i;
            if (exact && inclusive) || top.children().is_empty() {
                return Ok(());
            }
            ptr = top.children()[i];
        }
    }

    fn past_end(&self, key: &[u8]) -> bool {
        let o = &self.opts;
        if self.opts.reverse {
            o.gte.as_ref().is_some_and(|b| key < b.as_slice())
                || o.gt.as_ref().is_some_and(|b| key <= b.as_slice())
        } else {
            o.lte.as_ref().is_some_and(|b| key > b.as_slice())
                || o.lt.as_ref().is_some_and(|b| key >= b.as_slice())
        }
    }

    pub fn next<S: BlockStore>(&mut self, bee: &mut Bee<S>) -> Result<Option<Entry>> {
        let r = self.step(bee);
        if r.is_err() {
            self.done = true; // a damaged tree ends the walk after reporting it once
        }
        r
    }

    fn step<S: BlockStore>(&mut self, bee: &mut Bee<S>) -> Result<Option<Entry>> {
        if self.done || self.opts.limit.is_some_and(|l| self.emitted >= l) {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            self.seek(bee)?;
        }
        let rev = self.opts.reverse;
        loop {
            let Some(top) = self.stack.last_mut() else {
                self.done = true;
                return Ok(None);
            };
            let n = top.keys().len();
            let (key_seq, child) = if !rev && top.i < n {
                let k = top.keys()[top.i];
                top.i += 1;
                (k, top.children().get(top.i).copied())
            } else if rev && top.i > 0 {
                top.i -= 1;
                (top.keys()[top.i], top.children().get(top.i).copied())
            } else {
                self.stack.pop();
                continue;
            };
            let entry = bee.entry(key_seq)?;
            if self.past_end(&entry.key) {
                self.done = true;
                self.stack.clear();
                return Ok(None);
            }
            if let Some(c) = child {
                self.descend_edge(bee, c)?;
            }
            self.emitted += 1;
            return Ok(Some(entry));
        }
    }
}
