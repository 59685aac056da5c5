//! Verifying a peer's proofs: block and hash proofs, seeks and upgrades (merkle-tree.js `verifyTree`,
//! `verifyUpgrade`), into a batch of nodes that commits to the tree.

use libvms_errors::Result;

use crate::crypto::{leaf_node, parent_node};
use crate::flat::{Iter, MAX_INDEX};
use crate::tree::Node;

use super::{bad, DataUpgrade, Proof, MAX_BLOCKS};

/// The proof's nodes, consumed in order, plus the root of an earlier sub-proof that may stand in.
struct NodeQueue<'a> {
    nodes: &'a [Node],
    i: usize,
    extra: Option<Node>,
}

impl<'a> NodeQueue<'a> {
    fn new(nodes: &'a [Node], extra: Option<Node>) -> Self {
        NodeQueue { nodes, i: 0, extra }
    }

    fn len(&self) -> usize {
        self.nodes.len() - self.i + self.extra.is_some() as usize
    }

    fn shift(&mut self, index: u64) -> Result<Node> {
        if let Some(e) = self.extra {
            if e.index == index {
                self.extra = None;
                return Ok(e);
            }
        }
        let Some(n) = self.nodes.get(self.i) else {
            return Err(bad(format!("expected node {index}, got none")));
        };
        if n.index != index {
            return Err(bad(format!("expected node {index}, got node {}", n.index)));
        }
        self.i += 1;
        Ok(*n)
    }
}

/// A tentative tree: the current roots grown by a proof (merkle-tree.js `MerkleTreeBatch`).
#[derive(Clone, Debug)]
pub struct Batch {
    pub fork: u64,
    pub roots: Vec<Node>,
    pub length: u64,
    pub byte_length: u64,
    /// Tree length when the batch was made.
    pub ancestors: u64,
    /// New nodes, in the order JS stores them in the oplog entry.
    pub nodes: Vec<Node>,
    pub signature: Option<Vec<u8>>,
    pub upgraded: bool,
}

impl Batch {
    pub fn new(fork: u64, roots: &[Node], length: u64, byte_length: u64) -> Self {
        Batch {
            fork,
            roots: roots.to_vec(),
            length,
            byte_length,
            ancestors: length,
            nodes: Vec::new(),
            signature: None,
            upgraded: false,
        }
    }

    /// Add `node` (at the cursor) as a new root and merge it with its left sibling roots.
    pub fn append_root(&mut self, node: Node, ite: &mut Iter) -> Result<()> {
        self.upgraded = true;
        self.length = self.length.checked_add(ite.factor / 2).filter(|&l| l <= MAX_BLOCKS).ok_or_else(|| bad("length overflow"))?;
        self.byte_length = self.byte_length.checked_add(node.size).ok_or_else(|| bad("byte length overflow"))?;
        self.roots.push(node);
        self.nodes.push(node);
        while self.roots.len() > 1 {
            let a = self.roots[self.roots.len() - 1];
            let b = self.roots[self.roots.len() - 2];
            if ite.sibling() != b.index {
                ite.sibling();
                break;
            }
            let p = parent_node(ite.parent(), &a, &b).ok_or_else(|| bad("size overflow"))?;
            self.nodes.push(p);
            self.roots.pop();
            self.roots.pop();
            self.roots.push(p);
        }
        Ok(())
    }

    pub fn get(&self, index: u64) -> Option<Node> {
        self.nodes.iter().rev().find(|n| n.index == index).copied().or_else(|| self.roots.iter().find(|n| n.index == index).copied())
    }
}

fn check_nodes(nodes: &[Node]) -> Result<()> {
    for n in nodes {
        if n.index >= MAX_INDEX {
            return Err(bad(format!("node index {} out of range", n.index)));
        }
    }
    Ok(())
}

/// Bounds every number of an untrusted proof so the tree math cannot overflow.
pub fn sanity_check(p: &Proof) -> Result<()> {
    if let Some(b) = &p.block {
        if b.index >= MAX_BLOCKS {
            return Err(bad("block index out of range"));
        }
        check_nodes(&b.nodes)?;
    }
    if let Some(h) = &p.hash {
        if h.index >= MAX_INDEX {
            return Err(bad("hash index out of range"));
        }
        check_nodes(&h.nodes)?;
    }
    if let Some(s) = &p.seek {
        check_nodes(&s.nodes)?;
    }
    if let Some(u) = &p.upgrade {
        if u.start.checked_add(u.length).is_none_or(|e| e > MAX_BLOCKS) {
            return Err(bad("upgrade range out of range"));
        }
        check_nodes(&u.nodes)?;
        check_nodes(&u.additional_nodes)?;
    }
    Ok(())
}

/// Recompute the top of the block/hash/seek part; every node seen is pushed to `out`.
pub fn verify_tree(p: &Proof, value: Option<&[u8]>, out: &mut Vec<Node>) -> Result<Option<Node>> {
    // (tree index, block value if any, nodes) of the block or hash part.
    type Untrusted<'a> = Option<(u64, Option<&'a [u8]>, &'a [Node])>;
    let untrusted: Untrusted = if let Some(b) = &p.block {
        Some((2 * b.index, Some(value.unwrap_or(&b.value)), &b.nodes))
    } else {
        p.hash.as_ref().map(|h| (h.index, None, &h.nodes[..]))
    };
    let seek_nodes = p.seek.as_ref().map(|s| &s.nodes[..]).unwrap_or(&[]);
    if untrusted.is_none() && seek_nodes.is_empty() {
        return Ok(None);
    }

    let mut root: Option<Node> = None;
    if !seek_nodes.is_empty() {
        let start = seek_nodes[0].index;
        let mut q = NodeQueue::new(seek_nodes, None);
        let r = q.shift(start)?;
        out.push(r);
        root = Some(climb(start, &mut q, r, out)?);
    }

    let Some((index, value, nodes)) = untrusted else { return Ok(root) };
    let mut q = NodeQueue::new(nodes, root);
    let r = match value {
        Some(v) => leaf_node(index, v),
        None => q.shift(index)?,
    };
    out.push(r);
    Ok(Some(climb(index, &mut q, r, out)?))
}

/// From node `r` at tree index `index`, combine it with each sibling `q` holds up to the top, pushing every sibling
/// and parent to `out`; returns the top.
fn climb(index: u64, q: &mut NodeQueue<'_>, mut r: Node, out: &mut Vec<Node>) -> Result<Node> {
    let mut ite = Iter::new(index);
    while q.len() > 0 {
        let n = q.shift(ite.sibling())?;
        r = parent_node(ite.parent(), &r, &n).ok_or_else(|| bad("size overflow"))?;
        out.push(n);
        out.push(r);
    }
    Ok(r)
}

/// Grow `batch` with the upgrade's nodes (and the block root, if it stands for one of them).
/// Returns whether the block root was used by the upgrade (then it is signed, not just trusted).
pub fn verify_upgrade(fork: u64, up: &DataUpgrade, block_root: Option<Node>, batch: &mut Batch) -> Result<bool> {
    let mut q = NodeQueue::new(&up.nodes, block_root);
    let mut grow = !batch.roots.is_empty();
    let mut i = 0usize;
    let to = 2 * (up.start + up.length);
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if i < batch.roots.len() && batch.roots[i].index == ite.index {
            i += 1;
            ite.next_tree();
            continue;
        }
        if grow {
            grow = false;
            let root = ite.index;
            if i < batch.roots.len() {
                let last = batch.roots[batch.roots.len() - 1].index;
                ite.seek(last);
                while ite.index != root {
                    let sib = ite.sibling();
                    let n = q.shift(sib)?;
                    batch.append_root(n, &mut ite)?;
                }
                ite.next_tree();
                continue;
            }
        }
        let n = q.shift(ite.index)?;
        batch.append_root(n, &mut ite)?;
        ite.next_tree();
    }

    let Some(last) = batch.roots.last() else { return Err(bad("upgrade has no roots")) };
    let extra = &up.additional_nodes;
    ite.seek(last.index);
    let mut i = 0usize;
    while i < extra.len() && extra[i].index == ite.sibling() {
        batch.append_root(extra[i], &mut ite)?;
        i += 1;
    }
    while i < extra.len() {
        let node = extra[i];
        i += 1;
        while node.index != ite.index {
            if ite.factor == 2 {
                return Err(bad(format!("unexpected node {}", node.index)));
            }
            ite.left_child();
        }
        batch.append_root(node, &mut ite)?;
        ite.sibling();
    }
    batch.signature = Some(up.signature.clone());
    batch.fork = fork;
    Ok(q.extra.is_none())
}
