//! The `tree` file (node i = 40 bytes at 40·i: `u64le size ‖ hash`; all zero = absent), the
//! in-memory nodes not flushed yet, roots and byte offsets, and the cache of verified nodes that
//! makes verified reads cheap.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use libvms_errors::{err, Result};

use crate::flat;
use crate::storage::StoreFile;

/// A Merkle tree node: flat-tree index, bytes beneath it, and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    pub index: u64,
    pub size: u64,
    pub hash: [u8; 32],
}

impl Node {
    pub fn blank(index: u64) -> Node {
        Node { index, size: 0, hash: [0; 32] }
    }

    pub fn is_blank(&self) -> bool {
        self.size == 0 && self.hash == [0; 32]
    }

    fn to_record(self) -> [u8; 40] {
        let mut r = [0u8; 40];
        r[..8].copy_from_slice(&self.size.to_le_bytes());
        r[8..].copy_from_slice(&self.hash);
        r
    }

    fn from_record(index: u64, r: &[u8]) -> Option<Node> {
        let size = u64::from_le_bytes(r[..8].try_into().ok()?);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&r[8..40]);
        let n = Node { index, size, hash };
        if n.is_blank() {
            None
        } else {
            Some(n)
        }
    }
}

/// Header of a pre-v10 (hypercore 9) tree file.
const OLD_TREE: [u8; 15] = [5, 2, 87, 2, 0, 0, 40, 7, 66, 76, 65, 75, 69, 50, 98];

/// Node storage: the tree file plus nodes not yet flushed (they live in oplog entries until then).
pub struct TreeStore {
    pub file: StoreFile,
    unflushed: BTreeMap<u64, Node>,
    /// After a truncation to `t` blocks, stored nodes at 2t and above are stale until the flush.
    truncate_to: Option<u64>,
}

impl TreeStore {
    pub fn new(file: StoreFile) -> Self {
        TreeStore { file, unflushed: BTreeMap::new(), truncate_to: None }
    }

    pub fn is_old_format(&self) -> Result<bool> {
        let mut b = [0u8; 15];
        let n = self.file.read_at(0, &mut b)?;
        Ok(n == 15 && b == OLD_TREE)
    }

    pub fn get(&self, index: u64) -> Result<Option<Node>> {
        if let Some(n) = self.unflushed.get(&index) {
            return Ok(if n.is_blank() { None } else { Some(*n) });
        }
        if let Some(t) = self.truncate_to {
            if index >= 2 * t {
                return Ok(None);
            }
        }
        let off = index.checked_mul(40).ok_or_else(|| err::out_of_bounds("node index too large"))?;
        let mut r = [0u8; 40];
        let n = self.file.read_at(off, &mut r)?;
        if n < 40 {
            return Ok(None);
        }
        Ok(Node::from_record(index, &r))
    }

    /// Stored nodes `first..first + count` (None where blank or missing), read with one file access.
    pub fn get_span(&self, first: u64, count: u64) -> Result<Vec<Option<Node>>> {
        let off = first.checked_mul(40).ok_or_else(|| err::out_of_bounds("node index too large"))?;
        let len = usize::try_from(count.saturating_mul(40)).map_err(|_| err::out_of_bounds("node span too large"))?;
        let mut buf = vec![0u8; len];
        let n = self.file.read_at(off, &mut buf)?;
        let mut out = Vec::with_capacity(count as usize);
        for k in 0..count {
            let index = first + k;
            let at = k as usize * 40;
            let stored = if at + 40 <= n { Node::from_record(index, &buf[at..at + 40]) } else { None };
            out.push(stored);
        }
        if !self.unflushed.is_empty() || self.truncate_to.is_some() {
            for (k, slot) in out.iter_mut().enumerate() {
                *slot = self.get(first + k as u64)?;
            }
        }
        Ok(out)
    }

    /// A node that must exist.
    pub fn get_required(&self, index: u64) -> Result<Node> {
        self.get(index)?.ok_or_else(|| err::corrupt(format!("tree node {index} is missing")))
    }

    pub fn add(&mut self, node: Node) {
        self.unflushed.insert(node.index, node);
    }

    /// A truncation replayed from the oplog and not yet written to the file.
    pub fn truncation_pending(&self) -> bool {
        self.truncate_to.is_some()
    }

    pub fn has_unflushed(&self) -> bool {
        !self.unflushed.is_empty() || self.truncate_to.is_some()
    }

    /// Drop everything from block `length` on (a truncation/reorg replayed from the oplog).
    pub fn truncate(&mut self, length: u64) {
        let head = 2 * length;
        self.unflushed.retain(|&i, _| i < head);
        if length > 0 {
            // Parents whose span crosses the new head and sit below it become blank.
            let mut ite = flat::Iter::new(head - 2);
            loop {
                if ite.contains(head) && ite.index < head {
                    self.unflushed.insert(ite.index, Node::blank(ite.index));
                }
                if ite.offset == 0 {
                    break;
                }
                ite.parent();
            }
        }
        self.truncate_to = Some(self.truncate_to.map_or(length, |t| t.min(length)));
    }

    /// Write unflushed nodes (and a pending truncation) to the file; the caller syncs.
    /// Returns whether anything was written.
    pub fn flush(&mut self) -> Result<bool> {
        if !self.has_unflushed() {
            return Ok(false);
        }
        if let Some(t) = self.truncate_to {
            let size = if t == 0 { 0 } else { (t - 1) * 80 + 40 };
            self.file.set_len(size)?;
        }
        // Coalesce runs of consecutive indexes into one write each.
        let mut run_start = 0u64;
        let mut run: Vec<u8> = Vec::new();
        let mut next = u64::MAX;
        for (&i, n) in &self.unflushed {
            if i != next && !run.is_empty() {
                self.file.write_at(run_start * 40, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = i;
            }
            run.extend_from_slice(&n.to_record());
            next = i + 1;
        }
        if !run.is_empty() {
            self.file.write_at(run_start * 40, &run)?;
        }
        self.unflushed.clear();
        self.truncate_to = None;
        Ok(true)
    }
}

/// Verified node with its byte offset (offset of its leftmost block in `data`).
#[derive(Clone, Copy, Debug)]
pub struct Verified {
    pub size: u64,
    pub hash: [u8; 32],
    pub offset: u64,
}

/// Multiplicative hasher for u64 node indexes (std's SipHash costs more than the lookup).
#[derive(Default)]
pub struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub type IndexMap<V> = HashMap<u64, V, BuildHasherDefault<IndexHasher>>;

/// Nodes known to be in the signed tree (roots checked against the signature, and everything
/// checked on the way up from a block to one of them). Bounded: when full it keeps only the roots.
pub struct VerifiedCache {
    map: IndexMap<Verified>,
    cap: usize,
}

impl VerifiedCache {
    pub const DEFAULT_CAP: usize = 1 << 19;

    pub fn new(cap: usize) -> Self {
        VerifiedCache { map: IndexMap::default(), cap }
    }

    #[inline]
    pub fn get(&self, index: u64) -> Option<&Verified> {
        self.map.get(&index)
    }

    pub fn insert(&mut self, index: u64, v: Verified) {
        self.map.insert(index, v);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_full(&self) -> bool {
        self.map.len() >= self.cap
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Reset to just the roots (at open, after a fork change, or when the cache is full).
    pub fn reset_to_roots(&mut self, roots: &[Node]) {
        self.map.clear();
        self.add_roots(roots);
    }

    pub fn add_roots(&mut self, roots: &[Node]) {
        let mut offset = 0u64;
        for r in roots {
            self.map.insert(r.index, Verified { size: r.size, hash: r.hash, offset });
            offset = offset.saturating_add(r.size);
        }
    }
}

/// Sum of the sizes of `roots` (None on overflow, only possible with hostile input).
pub fn total_size(roots: &[Node]) -> Option<u64> {
    roots.iter().try_fold(0u64, |a, r| a.checked_add(r.size))
}
