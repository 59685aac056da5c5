//! Generating proofs for a peer's request from a full or partial tree (merkle-tree.js `generateProof`).

use libvms_errors::{err, Error, Result};

use crate::flat::{self, Iter, MAX_INDEX};
use crate::tree::{Node, TreeStore, VerifiedCache};

use super::ProofRequest;

/// Read access to a full or partial tree for proof generation.
pub struct TreeView<'a> {
    pub store: &'a TreeStore,
    pub roots: &'a [Node],
    pub length: u64,
    pub byte_length: u64,
    /// Verified nodes held in memory: looked up before the store (no file read).
    pub cache: Option<&'a VerifiedCache>,
}

fn missing(index: u64) -> Error {
    err::out_of_bounds(format!("tree node {index} is not held locally"))
}

impl TreeView<'_> {
    fn get(&self, index: u64) -> Result<Node> {
        self.get_opt(index)?.ok_or_else(|| missing(index))
    }

    fn get_opt(&self, index: u64) -> Result<Option<Node>> {
        if let Some(r) = self.roots.iter().find(|r| r.index == index) {
            return Ok(Some(*r));
        }
        if let Some(v) = self.cache.and_then(|c| c.get(index)) {
            return Ok(Some(Node { index, size: v.size, hash: v.hash }));
        }
        self.store.get(index)
    }

    /// Byte offset of a node's first block (merkle-tree.js `getByteOffset`).
    pub fn byte_offset(&self, index: u64) -> Result<u64> {
        byte_offset_with(self.roots, self.length, self.byte_length, index, |i| self.get(i))
    }
}

/// Byte offset of tree node `index` given the roots and a node lookup.
pub fn byte_offset_with(roots: &[Node], length: u64, byte_length: u64, index: u64, get: impl Fn(u64) -> Result<Node>) -> Result<u64> {
    if index == 2 * length {
        return Ok(byte_length);
    }
    let index = if index & 1 == 1 { flat::left_span(index) } else { index };
    let mut head = 0u64;
    let mut offset = 0u64;
    for r in roots {
        head = flat::right_span(r.index) + 2;
        if index >= head {
            offset = offset.checked_add(r.size).ok_or_else(|| err::corrupt("size overflow"))?;
            continue;
        }
        let mut ite = Iter::new(r.index);
        while ite.index != index {
            if ite.factor == 2 {
                return Err(err::corrupt("byte offset walk left the tree"));
            }
            if index < ite.index {
                ite.left_child();
            } else {
                let l = get(ite.left_child())?;
                offset = offset.checked_add(l.size).ok_or_else(|| err::corrupt("size overflow"))?;
                ite.sibling();
            }
        }
        return Ok(offset);
    }
    let _ = head;
    Err(err::out_of_bounds(format!("node {index} is outside the tree")))
}

/// Which nodes a proof needs, as indexes (filled like merkle-tree.js `generateProof`).
#[derive(Default, Debug)]
pub struct ProofIndexes {
    pub node: Option<Vec<u64>>,
    pub seek: Option<Vec<u64>>,
    pub upgrade: Option<Vec<u64>>,
    pub additional: Option<Vec<u64>>,
}

#[derive(Clone, Copy)]
struct Indexed {
    value: bool,
    index: u64,
    nodes: u64,
    last_index: u64,
}

fn unpadded(node: &Node, padding: u64, leaves: u64) -> Result<u64> {
    if padding == 0 {
        return Ok(node.size);
    }
    padding
        .checked_mul(leaves)
        .and_then(|p| node.size.checked_sub(p))
        .ok_or_else(|| err::bad_argument("seek padding larger than the data"))
}

impl TreeView<'_> {
    fn seek_trusted_tree(&self, root: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        if bytes == 0 {
            return Ok(root);
        }
        let mut ite = Iter::new(root);
        while ite.index & 1 == 1 {
            let l = self.get_opt(ite.left_child())?;
            match l {
                Some(l) => {
                    let size = unpadded(&l, padding, ite.count_leaves())?;
                    if size == bytes {
                        return Ok(ite.index);
                    }
                    if size > bytes {
                        continue;
                    }
                    bytes -= size;
                    ite.sibling();
                }
                None => {
                    ite.parent();
                    return Ok(ite.index);
                }
            }
        }
        Ok(ite.index)
    }

    fn seek_from_head(&self, head: u64, mut bytes: u64, padding: u64) -> Result<u64> {
        for root in flat::full_roots(head) {
            let node = self.get(root)?;
            let size = unpadded(&node, padding, flat::count_leaves(root))?;
            if bytes == size {
                return Ok(root);
            }
            if bytes > size {
                bytes -= size;
                continue;
            }
            return self.seek_trusted_tree(root, bytes, padding);
        }
        Ok(head)
    }

    fn seek_untrusted_tree(&self, root: u64, bytes: u64, padding: u64) -> Result<u64> {
        let pad = if padding > 0 {
            padding.checked_mul(flat::left_span(root) / 2).ok_or_else(|| err::bad_argument("invalid seek"))?
        } else {
            0
        };
        let offset = self.byte_offset(root)?.checked_sub(pad).ok_or_else(|| err::bad_argument("invalid seek"))?;
        if offset > bytes {
            return Err(err::bad_argument("invalid seek"));
        }
        if offset == bytes {
            return Ok(root);
        }
        let bytes = bytes - offset;
        let node = self.get(root)?;
        if unpadded(&node, padding, flat::count_leaves(root))? <= bytes {
            return Err(err::bad_argument("invalid seek"));
        }
        self.seek_trusted_tree(root, bytes, padding)
    }
}

fn seek_proof(seek_root: u64, root: u64, p: &mut ProofIndexes) {
    let mut ite = Iter::new(seek_root);
    let mut v = vec![ite.index];
    while ite.index != root {
        if ite.factor >= MAX_INDEX {
            break;
        }
        v.push(ite.sibling());
        ite.parent();
    }
    p.seek = Some(v);
}

fn block_and_seek_proof(node: Option<Indexed>, seek: bool, seek_root: u64, root: u64, p: &mut ProofIndexes) {
    let Some(node) = node else { return seek_proof(seek_root, root, p) };
    let mut ite = Iter::new(node.index);
    let mut v = Vec::new();
    if !node.value {
        v.push(ite.index);
    }
    while ite.index != root && ite.factor < MAX_INDEX {
        ite.sibling();
        if seek && ite.contains(seek_root) && ite.index != seek_root {
            seek_proof(seek_root, ite.index, p);
        } else {
            v.push(ite.index);
        }
        ite.parent();
    }
    p.node = Some(v);
}

fn upgrade_proof(node: Option<Indexed>, seek: bool, from: u64, to: u64, sub_tree: u64, p: &mut ProofIndexes) {
    if from == 0 {
        p.upgrade = Some(Vec::new());
    }
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        // The requester already has this whole root.
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        // Connect to the requester's last root.
        if p.upgrade.is_none() && from >= 2 && ite.contains(from - 2) {
            let mut up = Vec::new();
            let root = ite.index;
            let target = from - 2;
            ite.seek(target);
            while ite.index != root {
                ite.sibling();
                if ite.index > target {
                    if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
                        block_and_seek_proof(node, seek, sub_tree, ite.index, p);
                    } else {
                        up.push(ite.index);
                    }
                }
                ite.parent();
            }
            p.upgrade = Some(up);
            ite.next_tree();
            continue;
        }
        if p.upgrade.is_none() {
            p.upgrade = Some(Vec::new());
        }
        // The block's subtree replaces a root the requester would otherwise get twice.
        if p.node.is_none() && p.seek.is_none() && ite.contains(sub_tree) {
            block_and_seek_proof(node, seek, sub_tree, ite.index, p);
            ite.next_tree();
            continue;
        }
        if let Some(up) = p.upgrade.as_mut() {
            up.push(ite.index);
        }
        ite.next_tree();
    }
}

fn additional_upgrade_proof(from: u64, to: u64, p: &mut ProofIndexes) {
    let mut v: Option<Vec<u64>> = if from == 0 { Some(Vec::new()) } else { None };
    let mut ite = Iter::new(0);
    while ite.full_root(to) {
        if ite.index + ite.factor / 2 < from {
            ite.next_tree();
            continue;
        }
        if v.is_none() && from >= 2 && ite.contains(from - 2) {
            let mut add = Vec::new();
            let root = ite.index;
            let target = from - 2;
            ite.seek(target);
            while ite.index != root {
                ite.sibling();
                if ite.index > target {
                    add.push(ite.index);
                }
                ite.parent();
            }
            v = Some(add);
            ite.next_tree();
            continue;
        }
        v.get_or_insert_with(Vec::new).push(ite.index);
        ite.next_tree();
    }
    p.additional = v;
}

fn nodes_to_root(index: u64, nodes: u64, head: u64) -> Result<u64> {
    let mut ite = Iter::new(index);
    for _ in 0..nodes {
        ite.parent();
        if ite.contains(head) || ite.index >= MAX_INDEX {
            return Err(err::bad_argument("nodes is out of bounds"));
        }
    }
    Ok(ite.index)
}

/// Work out the node indexes of a proof for `req` against `view` (sizes/hashes fetched later).
pub fn generate_indexes(view: &TreeView, req: &ProofRequest) -> Result<ProofIndexes> {
    let head = 2 * view.length;
    let mut p = ProofIndexes::default();
    if head == 0 {
        return Ok(p);
    }
    let (from, to) = match &req.upgrade {
        Some(u) => {
            let from = u.start.checked_mul(2).ok_or_else(|| err::bad_argument("invalid upgrade"))?;
            let to = u.length.checked_mul(2).and_then(|l| l.checked_add(from)).ok_or_else(|| err::bad_argument("invalid upgrade"))?;
            (from, to)
        }
        None => (0, head),
    };
    if from >= to || to > head {
        return Err(err::bad_argument("invalid upgrade"));
    }
    let node = if let Some(b) = &req.block {
        if b.index >= view.length {
            return Err(err::out_of_bounds(format!("block {} is past the end", b.index)).at(b.index));
        }
        Some(Indexed { value: true, index: 2 * b.index, nodes: b.nodes, last_index: b.index })
    } else if let Some(h) = &req.hash {
        if h.index >= head || flat::right_span(h.index) >= head {
            return Err(err::bad_argument(format!("hash index {} is outside the tree", h.index)));
        }
        Some(Indexed { value: false, index: h.index, nodes: h.nodes, last_index: flat::right_span(h.index) / 2 })
    } else {
        None
    };
    let seek = req.seek;
    if let (Some(_), Some(_), Some(n)) = (&seek, &req.upgrade, &node) {
        if n.index >= from {
            return Err(err::bad_argument("cannot both seek and request a block or hash when upgrading"));
        }
    }

    let mut sub_tree = head;
    let upgrade_start = req.upgrade.map(|u| u.start);
    match node {
        Some(n) if upgrade_start.is_none_or(|s| n.last_index < s) => {
            sub_tree = nodes_to_root(n.index, n.nodes, to)?;
            let seek_root = match seek {
                Some(s) => view.seek_untrusted_tree(sub_tree, s.bytes, s.padding)?,
                None => head,
            };
            block_and_seek_proof(node, seek.is_some(), seek_root, sub_tree, &mut p);
        }
        _ => {
            if (node.is_some() || seek.is_some()) && req.upgrade.is_some() {
                sub_tree = match (seek, node) {
                    (Some(s), _) => view.seek_from_head(to, s.bytes, s.padding)?,
                    (None, Some(n)) => n.index,
                    (None, None) => head,
                };
            }
        }
    }
    if req.upgrade.is_some() {
        upgrade_proof(node, seek.is_some(), from, to, sub_tree, &mut p);
        if head > to {
            additional_upgrade_proof(to, head, &mut p);
        }
    }
    Ok(p)
}

/// Fetch the nodes of a list of indexes.
pub fn fetch(view: &TreeView, idx: &[u64]) -> Result<Vec<Node>> {
    idx.iter().map(|&i| view.get(i)).collect()
}
