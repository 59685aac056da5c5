//! Applying proofs from a peer: verified blocks stored in one batch.

use libvms_errors::{err, Result};

use crate::crypto::{leaf_node, parent_node};
use crate::flat;
use crate::oplog::{BitfieldUpdate, Entry, Oplog};
use crate::proof::{self, Proof};
use crate::tree::{IndexMap, Node, Verified, VerifiedCache};

use super::Core;

/// One block of an `apply_blocks` batch, verified: where its value goes and the tree nodes it adds.
struct VerifiedBlock<'a> {
    index: u64,
    offset: u64,
    value: &'a [u8],
    /// Nodes not known before this block (leaf, siblings, parents below the trusted node), with offsets.
    nodes: Vec<(Node, u64)>,
}

impl Core {
    /// Verify proofs of single blocks (a block and its nodes, no upgrade, as a download asks for
    /// them) and store them together: the data written and synced once, then one atomic oplog
    /// batch with one sync (or one header flush), instead of two syncs per block.
    ///
    /// A proof may lean on the nodes of the proofs before it in `proofs`. Verification climbs
    /// from the block's leaf only until it meets a node already known to be in the signed tree,
    /// so a sequential download hashes a few nodes per block, not the whole path. Nothing is
    /// stored unless every proof verifies: the first failure is returned (with its block index)
    /// and the core is unchanged. Blocks already held, or repeated, are skipped. Returns the
    /// number of blocks stored.
    pub fn apply_blocks(&mut self, proofs: &[&Proof]) -> Result<usize> {
        self.check_usable()?;
        let mut fresh: IndexMap<Verified> = IndexMap::default();
        let mut items: Vec<VerifiedBlock> = Vec::with_capacity(proofs.len());
        let mut seen: std::collections::HashSet<u64> = std::collections::HashSet::with_capacity(proofs.len());
        for p in proofs {
            let index = p.block.as_ref().map_or(0, |b| b.index);
            if p.block.is_some() && !seen.insert(index) {
                continue;
            }
            if let Some(v) = self.verify_block(p, &fresh).map_err(|e| e.at(index))? {
                for (n, off) in &v.nodes {
                    fresh.insert(n.index, Verified { size: n.size, hash: n.hash, offset: *off });
                }
                items.push(v);
            }
        }
        if items.is_empty() {
            return Ok(0);
        }

        // 1. Data, durable first; adjacent blocks go out in one write.
        let mut run_at = items[0].offset;
        let mut run: Vec<u8> = Vec::new();
        for it in &items {
            if it.offset != run_at + run.len() as u64 && !run.is_empty() {
                self.data.write_at(run_at, &run)?;
                run.clear();
            }
            if run.is_empty() {
                run_at = it.offset;
            }
            run.extend_from_slice(it.value);
        }
        if !run.is_empty() {
            self.data.write_at(run_at, &run)?;
        }
        self.data.sync()?;

        // 2. One oplog entry per run of consecutive blocks, appended as one atomic batch.
        let mut entries: Vec<Entry> = Vec::new();
        for it in &items {
            let nodes = it.nodes.iter().map(|(n, _)| *n);
            match entries.last_mut() {
                Some(Entry { bitfield: Some(b), tree_nodes: Some(t), .. }) if b.start + b.length == it.index => {
                    b.length += 1;
                    t.extend(nodes);
                }
                _ => entries.push(Entry {
                    user_data: None,
                    tree_nodes: Some(nodes.collect()),
                    tree_upgrade: None,
                    bitfield: Some(BitfieldUpdate { drop: false, start: it.index, length: 1 }),
                }),
            }
        }
        let bodies: Vec<Vec<u8>> = entries.iter().map(Entry::encode).collect();
        let flush = self.should_flush(bodies.iter().map(|b| Oplog::frame_size(b)).sum());
        self.oplog.append_atomic(&bodies)?; // before the flush, as in append_batch

        // 3. Memory: nodes (stored and known verified), bitfield, contiguous length.
        if self.cache.len() + fresh.len() > VerifiedCache::DEFAULT_CAP {
            self.cache.reset_to_roots(&self.roots);
        }
        for it in &items {
            for (n, off) in &it.nodes {
                self.tree.add(*n);
                self.cache.insert(n.index, Verified { size: n.size, hash: n.hash, offset: *off });
            }
        }
        for e in &entries {
            if let Some(b) = &e.bitfield {
                self.bitfield.set_range(b.start, b.length, true);
                self.update_contig(b);
            }
        }
        if flush {
            if let Err(e) = self.flush_now() {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(items.len())
    }

    /// Check one block proof for `apply_blocks` against the signed tree plus `fresh` (nodes of the
    /// batch so far). None when the block is held already.
    fn verify_block<'a>(&self, p: &'a Proof, fresh: &IndexMap<Verified>) -> Result<Option<VerifiedBlock<'a>>> {
        proof::sanity_check(p)?;
        if p.fork != self.fork {
            return Err(err::invalid_proof(format!("proof is for fork {}, the core is at fork {}", p.fork, self.fork)));
        }
        let Some(b) = p.block.as_ref().filter(|_| p.upgrade.is_none() && p.hash.is_none() && p.seek.is_none()) else {
            return Err(err::invalid_proof("a batched block proof must carry one block and nothing else"));
        };
        if b.index >= self.length {
            return Err(err::invalid_proof("block is past the end of the tree"));
        }
        if self.bitfield.get(b.index) {
            return Ok(None);
        }
        let known = |i: u64| fresh.get(&i).or_else(|| self.cache.get(i)).copied();
        // Climb from the leaf through the proof's siblings until a known node vouches for the path.
        let mut chain = vec![leaf_node(2 * b.index, &b.value)];
        let mut sibs: Vec<Node> = Vec::new();
        let mut anchor: Option<Verified> = None;
        loop {
            let cur = chain[chain.len() - 1];
            if let Some(v) = known(cur.index) {
                if v.hash != cur.hash || v.size != cur.size {
                    return Err(err::invalid_proof(format!("invalid checksum at node {}", cur.index)));
                }
                anchor = Some(v);
                break;
            }
            let Some(s) = b.nodes.get(sibs.len()) else { break };
            if s.index != flat::sibling(cur.index) {
                return Err(err::invalid_proof(format!("expected node {}, got node {}", flat::sibling(cur.index), s.index)));
            }
            let parent = parent_node(flat::parent(cur.index), &cur, s).ok_or_else(|| err::invalid_proof("size overflow"))?;
            sibs.push(*s);
            chain.push(parent);
        }
        let top = chain.len() - 1;
        // Byte offset of the leaf: from the anchor down the path, or from the stored tree.
        let leaf_offset = match anchor {
            Some(a) => {
                let mut off = a.offset;
                for (c, s) in chain[..top].iter().zip(&sibs) {
                    if s.index < c.index {
                        off = off.checked_add(s.size).ok_or_else(|| err::invalid_proof("size overflow"))?;
                    }
                }
                off
            }
            None => {
                let t = chain[top];
                match self.trusted_node(t.index)? {
                    Some(n) if n.hash == t.hash && n.size == t.size => {}
                    Some(_) => return Err(err::invalid_proof(format!("invalid checksum at node {}", t.index))),
                    None => return Err(err::invalid_proof(format!("node {} is not known to be in the signed tree", t.index))),
                }
                proof::byte_offset_with(&self.roots, self.length, self.byte_length, 2 * b.index, |i| {
                    if let Some(v) = fresh.get(&i) {
                        return Ok(Node { index: i, size: v.size, hash: v.hash });
                    }
                    if let Some(n) = chain.iter().chain(&sibs).find(|n| n.index == i) {
                        return Ok(*n);
                    }
                    self.node(i)?.ok_or_else(|| err::invalid_proof(format!("tree node {i} needed for the block offset is missing")))
                })?
            }
        };
        // Offsets of everything below the top, walking up from the leaf.
        let mut nodes = Vec::with_capacity(2 * top);
        let mut off = leaf_offset;
        for (c, s) in chain[..top].iter().zip(&sibs) {
            let s_off = if s.index < c.index {
                off.checked_sub(s.size).ok_or_else(|| err::invalid_proof("size underflow"))?
            } else {
                off.checked_add(c.size).ok_or_else(|| err::invalid_proof("size overflow"))?
            };
            nodes.push((*c, off));
            if known(s.index).is_none() {
                nodes.push((*s, s_off));
            }
            off = off.min(s_off);
        }
        Ok(Some(VerifiedBlock { index: b.index, offset: leaf_offset, value: &b.value, nodes }))
    }
}
