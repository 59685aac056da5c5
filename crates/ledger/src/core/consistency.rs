//! What `Core::open` checks before it trusts a directory: the header (plus the oplog entries
//! replayed on it), the tree, the bitfield and the data must tell the same story. Anything that
//! does not is `STORAGE_CORRUPT`, and the open fails before anything is written.
//!
//! The one disagreement that is allowed is the torn tail of the last, unacknowledged batch: its
//! data may be on disk (written and synced before its oplog entry) without the entry that would
//! account for it. Every other batch's entry is in the oplog before the tree, bitfield and header
//! flush that make it permanent, so the tree and bitfield never run ahead of the replayed length.

use libvms_errors::{err, Result};

use super::Core;

impl Core {
    /// `header_length`: the length the header itself records (before its oplog entries). Read-only.
    pub(super) fn check_consistency(&self, header_length: u64) -> Result<()> {
        let length = self.length;
        // Roots against the signed head: a damaged root record or signature is damaged storage.
        if length > 0 && !self.signature_ok(&self.roots) {
            return Err(err::corrupt(format!("tree: the stored roots of length {length} do not match the signed head")));
        }
        // Tree: no node past the length (a header or oplog entry that lost appends).
        if !self.tree.truncation_pending() {
            let bound = if length == 0 { 0 } else { 40 * (2 * length - 1) };
            let size = self.tree.file.len()?;
            if size > bound {
                let mut tail = vec![0u8; usize::try_from(size - bound).map_err(|_| err::corrupt("tree file too large"))?];
                self.tree.file.read_at(bound, &mut tail)?;
                if let Some(at) = tail.iter().position(|&b| b != 0) {
                    let node = (bound + at as u64) / 40;
                    return Err(err::corrupt(format!(
                        "tree: node {node} lies past the signed length {length} (the header or oplog lost entries)"
                    )));
                }
            }
        }
        // Bitfield: no block held past the length.
        if let Some(i) = self.bitfield.first_set(length) {
            return Err(err::corrupt(format!("bitfield: block {i} is marked held, past the signed length {length}")));
        }
        if self.key_pair.is_none() {
            return Ok(()); // a replica may hold any subset of blocks; reads verify them
        }
        // A writer holds every block, every node, and every byte it signed.
        let first_missing = self.bitfield.first_unset(0);
        if first_missing < length {
            return Err(err::corrupt(format!("bitfield: block {first_missing} of {length} is not marked held")));
        }
        if length > 0 && self.tree.get(2 * length - 2)?.is_none() {
            return Err(err::corrupt(format!("tree: node {} (block {}) is missing", 2 * length - 2, length - 1)));
        }
        // Nodes of the header's length were flushed to the tree file before the header was written.
        let flushed = if header_length == 0 { 0 } else { 40 * (2 * header_length.min(length) - 1) };
        let tree_size = self.tree.file.len()?;
        if tree_size < flushed {
            return Err(err::corrupt(format!(
                "tree: the file is {tree_size} bytes, {flushed} expected for the flushed length {header_length}"
            )));
        }
        let data_size = self.data.len()?;
        if data_size < self.byte_length {
            return Err(err::corrupt(format!(
                "data: the file is {data_size} bytes, the signed tree accounts for {}",
                self.byte_length
            )));
        }
        Ok(())
    }
}
