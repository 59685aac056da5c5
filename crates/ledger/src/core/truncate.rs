//! Truncation (a fork), as JS hypercore 10's `core.truncate(length, fork + 1)`: one oplog entry whose tree upgrade
//! names the smaller length and the next fork (signed), with a bitfield drop of the blocks past it; then a header
//! flush. Used to roll a files archive back to the version its call log accounts for.

use libvms_errors::{err, Result};

use super::{add_reorg_hint, Core};
use crate::crypto::tree_hash;
use crate::oplog::{BitfieldUpdate, Entry, TreeUpgrade};
use crate::tree::total_size;

impl Core {
    /// Drop every block from `length` on, durably; returns how many blocks were dropped (0: nothing to do, no
    /// write). The fork goes up by one and the new head is signed. Readers see the shorter core at once.
    pub fn truncate(&mut self, length: u64) -> Result<u64> {
        let dropped = self.truncate_unflushed(length)?;
        if dropped == 0 {
            return Ok(0);
        }
        // As JS does right after a truncation: the header, tree and bitfield take the new state.
        self.auto_flush = self.flush_interval;
        if let Err(e) = self.flush_now() {
            self.failed = true;
            return Err(e);
        }
        // The dropped blocks' bytes go too (JS leaves them; nothing refers to them any more, and a rolled-back
        // write should not linger on disk). Best effort: a longer data file is valid.
        let _ = self.data.set_len(self.byte_length);
        Ok(dropped)
    }

    /// The durable part of `truncate` (its oplog entry) without the header flush: what a crash between the two
    /// leaves. For tests of that window.
    #[doc(hidden)]
    pub fn truncate_unflushed(&mut self, length: u64) -> Result<u64> {
        self.check_usable()?;
        let Some(kp) = self.key_pair.clone() else {
            return Err(err::not_writable("this core has no secret key"));
        };
        if length > self.length {
            return Err(err::bad_argument(format!("cannot truncate to {length}: the core has {} blocks", self.length)));
        }
        let old_len = self.length;
        if length == old_len {
            return Ok(0);
        }
        // The roots of the shorter tree are complete subtrees of the signed one: each must check out against it.
        let mut roots = Vec::new();
        for i in crate::flat::full_roots(2 * length) {
            let node = self.trusted_node(i)?.ok_or_else(|| err::corrupt(format!("tree node {i} is missing or does not match the signed tree")))?;
            roots.push(node);
        }
        let byte_length = total_size(&roots).ok_or_else(|| err::corrupt("tree sizes overflow"))?;
        let fork = self.fork + 1;
        let signature = match length {
            0 => None,
            _ => Some(self.verifier.sign(&tree_hash(&roots), length, fork, &kp)?),
        };
        let drop = BitfieldUpdate { drop: true, start: length, length: old_len - length };
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(vec![]),
            tree_upgrade: Some(TreeUpgrade { fork, ancestors: length, length, signature: signature.clone() }),
            bitfield: Some(drop.clone()),
        };
        // Durable first: a crash after this replays the truncation at open. The journal's records must not be
        // redone over the blocks written after it.
        self.checkpoint_journal()?;
        self.oplog.append(&entry.encode())?;

        self.tree.truncate(length);
        self.bitfield.set_range(drop.start, drop.length, false);
        self.update_contig(&drop);
        add_reorg_hint(&mut self.header.hints.reorgs, self.fork, fork, length);
        self.roots = roots;
        self.length = length;
        self.byte_length = byte_length;
        self.fork = fork;
        self.signature = signature;
        self.forget_heads();
        self.cache.reset_to_roots(&self.roots);
        self.sync_header_tree();
        Ok(old_len - length)
    }
}
