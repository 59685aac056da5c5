//! The one state a crash inside an append can leave that `check_consistency` would refuse: the last
//! batch's oplog entry is durable, its data is not. An append writes its data and its entry, then syncs
//! both at once (core/append.rs), and replies only when both are done; the next append starts after that.
//! So only the last entry can be ahead of its data, and that batch was never acknowledged. Open drops it
//! (as it drops a torn oplog frame) when its blocks' bytes do not hash to the leaves the entry carries.
//!
//! Kept apart from consistency.rs: that file judges what is left, this one decides what is dropped first.

use libvms_errors::Result;

use crate::crypto::leaf_node;
use crate::oplog::Entry;

use super::Core;

impl Core {
    /// True when `last` (the oplog's last entry, not yet replayed) appends blocks after the current length
    /// whose bytes in `data` are missing or do not match the leaf hashes it records: a torn last batch.
    /// An entry of any other shape (a truncation, a replica's proof) is never judged torn here.
    pub(super) fn is_torn_last_append(&self, last: &Entry) -> Result<bool> {
        let (Some(u), Some(b), Some(nodes)) = (&last.tree_upgrade, &last.bitfield, &last.tree_nodes) else {
            return Ok(false);
        };
        let old = self.length;
        if u.fork != self.fork || u.ancestors != old || u.length <= old || b.drop || b.start != old || b.length != u.length - old {
            return Ok(false);
        }
        let mut leaves: Vec<_> = nodes.iter().filter(|n| n.index % 2 == 0 && n.index / 2 >= old).collect();
        leaves.sort_by_key(|n| n.index);
        if leaves.len() as u64 != u.length - old || leaves.iter().enumerate().any(|(i, n)| n.index != 2 * (old + i as u64)) {
            return Ok(false);
        }
        let mut offset = self.byte_length;
        for leaf in leaves {
            let Ok(size) = usize::try_from(leaf.size) else { return Ok(false) };
            let mut buf = vec![0u8; size];
            let stored = self.data.read_at(offset, &mut buf)?;
            if stored < size || leaf_node(leaf.index, &buf).hash != leaf.hash {
                return Ok(true);
            }
            offset = offset.saturating_add(leaf.size);
        }
        Ok(false)
    }
}
