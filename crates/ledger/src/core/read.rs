//! Reading: blocks and runs of blocks, each verified against the signed tree.

use libvms_errors::{err, Result};

use crate::crypto::{leaf_hash, leaf_node, parent_node};
use crate::flat::{self, Iter};
use crate::proof;
use crate::tree::{Node, Verified};

use super::{Core, Anchor, remap_at, verification_failed};

impl Core {
    /// Verified read of block `index`.
    pub fn get(&mut self, index: u64) -> Result<Vec<u8>> {
        if index >= self.length {
            return Err(err::out_of_bounds(format!("block {index} is past the end ({})", self.length)).at(index));
        }
        if !self.bitfield.get(index) {
            return Err(err::out_of_bounds(format!("block {index} is not held locally")).at(index));
        }
        if !self.roots_trusted {
            return Err(verification_failed(index, "the stored tree does not match the signature"));
        }
        let leaf_index = 2 * index;
        if let Some(v) = self.cache.get(leaf_index).copied() {
            let data = self.read_data(index, v.offset, v.size)?;
            if leaf_hash(&data) != v.hash {
                return Err(verification_failed(index, format!("block {index} does not match its signed hash")));
            }
            return Ok(data);
        }
        self.get_slow(index)
    }

    fn read_data(&self, index: u64, offset: u64, size: u64) -> Result<Vec<u8>> {
        let size = usize::try_from(size).map_err(|_| verification_failed(index, "block size out of range"))?;
        let mut buf = vec![0u8; size];
        let n = self.data.read_at(offset, &mut buf)?;
        if n < size {
            return Err(verification_failed(index, format!("block {index} is missing from the data file")));
        }
        Ok(buf)
    }

    /// Climb from the leaf to the nearest verified node, reading the siblings on the way, then
    /// hash the block and recompute upwards; cache everything once it matches.
    fn get_slow(&mut self, index: u64) -> Result<Vec<u8>> {
        let leaf_index = 2 * index;
        let (path, anchor) = self.climb_to_verified(leaf_index).map_err(|e| remap_at(e, index))?;
        let mut siblings = Vec::with_capacity(path.len());
        for &p in &path {
            let s = flat::sibling(p);
            let node = self.tree.get(s)?.ok_or_else(|| verification_failed(index, format!("tree node {s} is missing")))?;
            siblings.push(node);
        }
        // Offset of the leaf: the anchor's offset plus every left sibling on the way down.
        let mut offset = anchor.offset;
        for (p, s) in path.iter().zip(&siblings) {
            if s.index < *p {
                offset = offset.checked_add(s.size).ok_or_else(|| verification_failed(index, "size overflow"))?;
            }
        }
        let stored_leaf = self.tree.get(leaf_index)?.ok_or_else(|| verification_failed(index, format!("tree node {leaf_index} is missing")))?;
        let data_len = self.data.len()?;
        if offset.checked_add(stored_leaf.size).is_none_or(|e| e > data_len) {
            return Err(verification_failed(index, format!("block {index} does not fit the data file")));
        }
        let data = self.read_data(index, offset, stored_leaf.size)?;
        let leaf = leaf_node(leaf_index, &data);
        if leaf != stored_leaf {
            return Err(verification_failed(index, format!("tree node {leaf_index} does not match block {index}")));
        }
        let mut computed = Vec::with_capacity(path.len() + 1);
        computed.push(leaf);
        let mut cur = leaf;
        for s in &siblings {
            cur = parent_node(flat::parent(cur.index), &cur, s).ok_or_else(|| verification_failed(index, "size overflow"))?;
            computed.push(cur);
        }
        if cur.index != anchor.index || cur.hash != anchor.hash || cur.size != anchor.size {
            return Err(verification_failed(index, format!("block {index} does not match the signed tree")));
        }
        // Verified: cache path nodes and siblings with their offsets, top-down.
        if self.cache.is_full() {
            self.cache.reset_to_roots(&self.roots);
        }
        let mut parent_off = anchor.offset;
        for k in (0..path.len()).rev() {
            let node = computed[k];
            let sib = siblings[k];
            let (node_off, sib_off) = if sib.index < node.index {
                (parent_off.saturating_add(sib.size), parent_off)
            } else {
                (parent_off, parent_off.saturating_add(node.size))
            };
            self.cache.insert(node.index, Verified { size: node.size, hash: node.hash, offset: node_off });
            self.cache.insert(sib.index, Verified { size: sib.size, hash: sib.hash, offset: sib_off });
            parent_off = node_off;
        }
        Ok(data)
    }

    /// Indexes from `start` up to (not including) the nearest verified ancestor, and that ancestor.
    fn climb_to_verified(&self, start: u64) -> Result<(Vec<u64>, Anchor)> {
        let mut path = Vec::new();
        let mut ite = Iter::new(start);
        loop {
            if let Some(v) = self.cache.get(ite.index) {
                return Ok((path, Anchor { index: ite.index, size: v.size, hash: v.hash, offset: v.offset }));
            }
            if ite.factor >= flat::MAX_INDEX || path.len() > 64 {
                return Err(err::verification("no verified ancestor"));
            }
            path.push(ite.index);
            ite.parent();
        }
    }

    /// Is this stored node part of the signed tree? (Read-only: climbs stored siblings.)
    pub(super) fn trusted_node(&self, index: u64) -> Result<Option<Node>> {
        if let Some(v) = self.cache.get(index) {
            return Ok(Some(Node { index, size: v.size, hash: v.hash }));
        }
        let Some(node) = self.tree.get(index)? else { return Ok(None) };
        let Ok((path, anchor)) = self.climb_to_verified(index) else { return Ok(None) };
        let mut cur = node;
        for &p in &path {
            let Some(s) = self.tree.get(flat::sibling(p))? else { return Ok(None) };
            match parent_node(flat::parent(p), &cur, &s) {
                Some(n) => cur = n,
                None => return Ok(None),
            }
        }
        Ok(if cur.hash == anchor.hash && cur.size == anchor.size { Some(node) } else { None })
    }

    /// A stored node proven to be part of the signed tree (None if it is not, or is missing).
    pub(crate) fn trusted_subtree(&self, index: u64) -> Result<Option<Node>> {
        if !self.roots_trusted {
            return Ok(None);
        }
        self.trusted_node(index)
    }

    /// Stored tree nodes `first..first + count`, with one file read.
    pub(crate) fn tree_span(&self, first: u64, count: u64) -> Result<Vec<Option<Node>>> {
        self.tree.get_span(first, count)
    }

    /// Raw read from the data file; returns the bytes read.
    pub(crate) fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.data.read_at(offset, buf)
    }

    /// Byte offset of block `index` from the tree (unverified sizes).
    pub fn byte_offset(&self, index: u64) -> Result<u64> {
        if index > self.length {
            return Err(err::out_of_bounds("block past the end").at(index));
        }
        proof::byte_offset_with(&self.roots, self.length, self.byte_length, 2 * index, |i| {
            self.node(i)?.ok_or_else(|| err::corrupt(format!("tree node {i} is missing")))
        })
    }

    /// Verified reads of blocks `start..end`.
    pub fn get_batch(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        if start > end {
            return Err(err::bad_argument("start is after end"));
        }
        (start..end).map(|i| self.get(i)).collect()
    }
}
