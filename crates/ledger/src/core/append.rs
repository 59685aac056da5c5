//! Appending: batches of blocks, signed and made durable.

use libvms_errors::{err, Result};

use crate::crypto::{leaf_node, parent_node, tree_hash};
use crate::flat::Iter;
use crate::oplog::{self, BitfieldUpdate, Entry, Oplog, TreeHeader, TreeUpgrade};
use crate::proof;
use crate::tree::{Node, Verified, VerifiedCache};

use super::{Core, offsets_of};

impl Core {
    /// Append blocks as one batch (one signature, one oplog entry). Returns the new length.
    pub fn append_batch(&mut self, blocks: &[&[u8]]) -> Result<u64> {
        self.check_usable()?;
        let Some(kp) = self.key_pair.clone() else {
            return Err(err::not_writable("this core has no secret key"));
        };
        if blocks.is_empty() {
            return Ok(self.length);
        }
        let old_len = self.length;
        let n = blocks.len() as u64;
        if old_len.checked_add(n).is_none_or(|l| l >= proof::MAX_BLOCKS) {
            return Err(err::bad_argument("core length limit reached"));
        }
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let new_byte_len = self.byte_length.checked_add(total).ok_or_else(|| err::bad_argument("byte length overflow"))?;

        // New nodes: each leaf, then each parent as it closes (the order JS stores them in).
        let mut roots = self.roots.clone();
        let mut root_offsets: Vec<u64> = offsets_of(&roots);
        let mut nodes = Vec::with_capacity(blocks.len() * 2);
        let mut fresh: Vec<(Node, u64)> = Vec::with_capacity(blocks.len() * 2);
        let mut len = old_len;
        let mut offset = self.byte_length;
        for b in blocks {
            let leaf = leaf_node(2 * len, b);
            let mut ite = Iter::new(2 * len);
            roots.push(leaf);
            root_offsets.push(offset);
            nodes.push(leaf);
            fresh.push((leaf, offset));
            while roots.len() > 1 {
                let a = roots[roots.len() - 1];
                let l = roots[roots.len() - 2];
                if ite.sibling() != l.index {
                    ite.sibling();
                    break;
                }
                let p = parent_node(ite.parent(), &l, &a).ok_or_else(|| err::bad_argument("size overflow"))?;
                let p_off = root_offsets[root_offsets.len() - 2];
                nodes.push(p);
                fresh.push((p, p_off));
                roots.truncate(roots.len() - 2);
                root_offsets.truncate(root_offsets.len() - 2);
                roots.push(p);
                root_offsets.push(p_off);
            }
            len += 1;
            offset += b.len() as u64;
        }
        let th = tree_hash(&roots);
        let signature = self.verifier.sign(&th, len, self.fork, &kp)?;

        let entry = Entry {
            user_data: None,
            tree_nodes: Some(nodes),
            tree_upgrade: Some(TreeUpgrade { fork: self.fork, ancestors: old_len, length: len, signature: Some(signature.clone()) }),
            bitfield: Some(BitfieldUpdate { drop: false, start: old_len, length: n }),
        };

        // 1. The data and the entry that makes it visible are written, then made durable together: one journal
        // record and one fdatasync (core/journaled.rs), or both files synced at once for a large batch. A crash
        // in between can leave the entry durable without its data: open drops such a last batch, which was
        // never acknowledged (core/torn_tail.rs). The entry comes before any
        // header flush: the tree and bitfield written by the flush must never run ahead of what the oplog
        // accounts for (a crash before the header write would otherwise leave them past the length).
        let mut buf = Vec::with_capacity(total as usize);
        for b in blocks {
            buf.extend_from_slice(b);
        }
        self.data.write_at(self.byte_length, &buf)?;
        let body = entry.encode();
        let flush = self.should_flush(Oplog::frame_size(&body));
        let (frame_at, frame) = self.oplog.write_entry(&body)?;
        if let Err(e) = self.commit_append(self.byte_length, &buf, frame_at, &frame) {
            // The entry may be on disk: nothing more may be appended behind it until a reopen decides.
            self.failed = true;
            return Err(e);
        }

        // 3. Memory.
        let Entry { tree_nodes, bitfield, .. } = entry;
        for n in tree_nodes.into_iter().flatten() {
            self.tree.add(n);
        }
        if self.cache.len() + fresh.len() > VerifiedCache::DEFAULT_CAP {
            self.cache.clear();
        }
        for (node, off) in fresh {
            self.cache.insert(node.index, Verified { size: node.size, hash: node.hash, offset: off });
        }
        self.roots = roots;
        self.cache.add_roots(&self.roots);
        self.length = len;
        self.byte_length = new_byte_len;
        self.signature = Some(signature);
        if let Some(b) = &bitfield {
            self.bitfield.set_range(b.start, b.length, true);
            self.update_contig(b);
        }
        self.sync_header_tree();
        self.record_head();

        if flush {
            if let Err(e) = self.flush_now() {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(len)
    }

    /// JS `_shouldFlush`, evaluated as if the entry of `entry_bytes` had been appended.
    pub(super) fn should_flush(&mut self, entry_bytes: u64) -> bool {
        self.touched = true; // every mutation asks
        self.auto_flush = self.auto_flush.saturating_sub(1);
        if self.auto_flush == 0 || self.oplog.entries_bytes + entry_bytes >= oplog::MAX_ENTRIES_BYTES || self.journal_full() {
            self.auto_flush = self.flush_interval;
            return true;
        }
        if !self.manifest_flushed && self.header.manifest.is_some() {
            self.manifest_flushed = true;
            return true;
        }
        false
    }

    pub(super) fn sync_header_tree(&mut self) {
        self.header.tree = TreeHeader {
            fork: self.fork,
            length: self.length,
            root_hash: Some(tree_hash(&self.roots).to_vec()),
            signature: self.signature.clone(),
        };
    }

    /// core.js `updateContig`.
    pub(super) fn update_contig(&mut self, upd: &BitfieldUpdate) {
        let end = upd.start.saturating_add(upd.length);
        let mut c = self.header.hints.contiguous_length;
        if upd.drop {
            if c <= end && c > upd.start {
                c = upd.start;
            }
        } else if c <= end && c >= upd.start {
            c = self.bitfield.first_unset(end);
        }
        self.header.hints.contiguous_length = c;
    }
}
