//! Accessors: what a core holds, without reading blocks.

use std::path::Path;

use libvms_errors::{err, Result};

use crate::crypto::{self, tree_hash, Manifest, Verifier};
use crate::flat::{self, Iter};
use crate::tree::Node;

use super::Core;

impl Core {
    pub fn key(&self) -> [u8; 32] {
        self.header.key
    }

    pub fn discovery_key(&self) -> [u8; 32] {
        crypto::discovery_key(&self.header.key)
    }

    /// Signed length.
    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn byte_length(&self) -> u64 {
        self.byte_length
    }

    pub fn fork(&self) -> u64 {
        self.fork
    }

    pub fn writable(&self) -> bool {
        self.key_pair.is_some()
    }

    pub fn tree_hash(&self) -> [u8; 32] {
        tree_hash(&self.roots)
    }

    pub fn signature(&self) -> Option<Vec<u8>> {
        self.signature.clone()
    }

    /// A write failed after memory was updated: the core refuses further writes until reopened.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Number of blocks held from 0 without a gap.
    pub fn contiguous_length(&self) -> u64 {
        self.header.hints.contiguous_length.min(self.length)
    }

    /// The stored manifest (None for a replica that has not received its first upgrade).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.header.manifest.as_ref()
    }

    /// A replica opened by key learns its manifest from a peer (JS asks for it with its first
    /// upgrade): a non-compat core's key is the manifest's hash, so a manifest that does not hash
    /// to it is refused. Kept by the next header flush; a no-op once a manifest is known.
    pub fn set_manifest(&mut self, m: Manifest) -> Result<()> {
        if self.header.manifest.is_some() {
            return Ok(());
        }
        if !m.is_compat(&self.header.key) && m.hash() != self.header.key {
            return Err(err::invalid_proof("the peer's manifest does not hash to the core key"));
        }
        self.verifier = Verifier::new(self.header.key, Some(&m));
        self.header.manifest = Some(m);
        self.header_dirty = true;
        Ok(())
    }

    /// Whether this is a compat core (key = the signer's public key).
    pub fn compat(&self) -> bool {
        self.verifier.compat
    }

    /// The core's directory, for disk storage.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Block held locally (per the bitfield).
    pub fn has(&self, index: u64) -> bool {
        index < self.length && self.bitfield.get(index)
    }

    /// Current roots (ascending).
    pub fn roots(&self) -> &[Node] {
        &self.roots
    }

    /// How many tree levels above node `index` this core lacks (the `nodes` of a request).
    pub fn missing_nodes(&self, index: u64) -> Result<u64> {
        let head = 2 * self.length;
        if index >= flat::MAX_INDEX {
            return Ok(0);
        }
        let mut ite = Iter::new(index);
        if ite.right_span() >= head {
            return Ok(0);
        }
        let mut count = 0;
        while !ite.contains(head) && self.node(ite.index)?.is_none() {
            count += 1;
            ite.parent();
        }
        Ok(count)
    }

    /// A stored node (roots first, then unflushed nodes and the tree file). Not verified.
    pub fn node(&self, index: u64) -> Result<Option<Node>> {
        if let Some(r) = self.roots.iter().find(|r| r.index == index) {
            return Ok(Some(*r));
        }
        self.tree.get(index)
    }

    /// Open dropped the last batch: its oplog entry was durable but its data was not (a crash inside an
    /// append that was never acknowledged; core/torn_tail.rs).
    pub fn torn_batch_dropped(&self) -> bool {
        self.torn_batch_dropped
    }

    pub(super) fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(err::io("an earlier write failed; reopen the core"));
        }
        Ok(())
    }
}
