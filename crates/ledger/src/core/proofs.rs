//! Proofs: what a peer asks for, built from the tree and the data.

use libvms_errors::{err, Result};

use crate::crypto::{tree_hash, Manifest};
use crate::oplog::{BitfieldUpdate, Entry, Oplog, TreeUpgrade};
use crate::proof::{self, Batch, DataBlock, DataHash, DataSeek, DataUpgrade, Proof, ProofRequest, TreeView};

use super::{Core, VerifiedProof};

impl Core {
    /// Build the proof a peer asked for (shapes as hypercore@10's `generateProof`).
    pub fn proof(&mut self, req: &ProofRequest) -> Result<Proof> {
        let (roots, length, byte_length, signature) = (self.roots.clone(), self.length, self.byte_length, self.signature.clone());
        self.proof_against(req, &roots, length, byte_length, signature)
    }

    /// The proof a peer asked for, as if the core were `length` long: what a host serves when only a prefix may
    /// be seen (core/heads.rs keeps the signed heads of recent lengths). Blocks past `length` are not served.
    pub(super) fn proof_against(
        &mut self,
        req: &ProofRequest,
        roots: &[crate::tree::Node],
        length: u64,
        byte_length: u64,
        signature: Option<Vec<u8>>,
    ) -> Result<Proof> {
        if req.fork != self.fork {
            return Err(err::bad_argument(format!("request is for fork {}, the core is at fork {}", req.fork, self.fork)));
        }
        let view = TreeView { store: &self.tree, roots, length, byte_length, cache: None };
        let idx = proof::generate_indexes(&view, req)?;
        let mut out = Proof { fork: self.fork, ..Default::default() };
        if length == 0 {
            return Ok(out);
        }
        // The verified read comes first: it leaves the block's path and siblings in the cache of
        // verified nodes, which then supplies the proof's nodes without file reads.
        let value = match &req.block {
            Some(b) => Some(self.get(b.index)?),
            None => None,
        };
        let view = TreeView { store: &self.tree, roots, length, byte_length, cache: Some(&self.cache) };
        let node_list = idx.node.as_deref().map(|v| proof::fetch(&view, v)).transpose()?;
        let seek_list = idx.seek.as_deref().map(|v| proof::fetch(&view, v)).transpose()?;
        let upgrade_list = idx.upgrade.as_deref().map(|v| proof::fetch(&view, v)).transpose()?;
        let additional = idx.additional.as_deref().map(|v| proof::fetch(&view, v)).transpose()?;
        if let Some(b) = &req.block {
            let nodes = node_list.ok_or_else(|| err::bad_argument("invalid block request"))?;
            out.block = Some(DataBlock { index: b.index, value: value.unwrap_or_default(), nodes });
        } else if let Some(h) = &req.hash {
            let nodes = node_list.ok_or_else(|| err::bad_argument("invalid hash request"))?;
            out.hash = Some(DataHash { index: h.index, nodes });
        }
        if let (Some(s), Some(nodes)) = (&req.seek, seek_list) {
            out.seek = Some(DataSeek { bytes: s.bytes, nodes });
        }
        if let Some(u) = &req.upgrade {
            out.upgrade = Some(DataUpgrade {
                start: u.start,
                length: u.length,
                nodes: upgrade_list.unwrap_or_default(),
                additional_nodes: additional.unwrap_or_default(),
                signature: signature.unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Check a proof against this core: recomputed hashes, and the signature for upgrades.
    pub fn verify_proof(&self, proof: &Proof) -> Result<VerifiedProof> {
        self.verify_proof_with(proof, None)
    }

    fn verify_proof_with(&self, p: &Proof, value: Option<&[u8]>) -> Result<VerifiedProof> {
        proof::sanity_check(p)?;
        // An empty replica takes the writer's fork with its first upgrade (the writer truncated before we met it).
        let adopt = self.length == 0 && p.upgrade.is_some();
        if p.fork != self.fork && !adopt {
            return Err(err::invalid_proof(format!("proof is for fork {}, the core is at fork {}", p.fork, self.fork)));
        }
        let mut batch = Batch::new(self.fork, &self.roots, self.length, self.byte_length);
        let mut unverified = proof::verify_tree(p, value, &mut batch.nodes)?;
        if let Some(up) = &p.upgrade {
            if proof::verify_upgrade(p.fork, up, unverified, &mut batch)? {
                unverified = None;
            }
            if batch.length < self.length {
                return Err(err::invalid_proof("upgrade is shorter than the local tree"));
            }
            let th = tree_hash(&batch.roots);
            if batch.length == self.length && th != tree_hash(&self.roots) {
                return Err(err::invalid_proof("upgrade conflicts with the local tree"));
            }
            if !self.verifier.verify(&th, batch.length, batch.fork, &up.signature) {
                return Err(err::signature("proof signature does not verify"));
            }
        }
        if let Some(top) = unverified {
            let trusted = match batch.roots.iter().find(|r| r.index == top.index) {
                Some(r) if batch.upgraded => Some(*r),
                _ => self.trusted_node(top.index)?,
            };
            match trusted {
                Some(t) if t.hash == top.hash && t.size == top.size => {}
                Some(_) => return Err(err::invalid_proof(format!("invalid checksum at node {}", top.index))),
                None => return Err(err::invalid_proof(format!("node {} is not known to be in the signed tree", top.index))),
            }
        }
        let block = p.block.as_ref().map(|b| b.index);
        if let Some(b) = block {
            if b >= batch.length {
                return Err(err::invalid_proof("block is past the end of the tree"));
            }
        }
        Ok(VerifiedProof {
            fork: batch.fork,
            length: batch.length,
            upgraded: batch.upgraded,
            block,
            value: p.block.as_ref().map(|b| value.unwrap_or(&b.value).to_vec()),
            batch,
        })
    }

    /// Verify and store a proof (nodes, block, upgrade) durably. `block_value`, when given, is
    /// the block's value (it replaces `proof.block.value`, e.g. when the value travels apart).
    pub fn apply_proof(&mut self, proof: &Proof, block_value: Option<&[u8]>) -> Result<()> {
        self.check_usable()?;
        let vp = self.verify_proof_with(proof, block_value)?;
        self.commit(vp)
    }

    fn commit(&mut self, vp: VerifiedProof) -> Result<()> {
        let VerifiedProof { batch, value, block, .. } = vp;
        if batch.ancestors != self.length || batch.fork != self.fork && !batch.upgraded {
            return Err(err::invalid_proof("the tree changed since the proof was verified"));
        }
        let upgraded = batch.upgraded && batch.length > self.length;
        if !upgraded && value.is_none() && batch.nodes.is_empty() {
            return Ok(());
        }
        let new_roots = if upgraded { batch.roots.clone() } else { self.roots.clone() };
        let new_len = if upgraded { batch.length } else { self.length };
        let new_byte_len = if upgraded { batch.byte_length } else { self.byte_length };

        // 1. The block value at its offset in the (possibly upgraded) tree, durable first.
        if let (Some(index), Some(v)) = (block, &value) {
            let offset = proof::byte_offset_with(&new_roots, new_len, new_byte_len, 2 * index, |i| {
                if let Some(n) = batch.get(i) {
                    return Ok(n);
                }
                self.node(i)?.ok_or_else(|| err::invalid_proof(format!("tree node {i} needed for the block offset is missing")))
            })?;
            self.data.write_at(offset, v)?;
            self.data.sync()?;
        }

        // 2. The oplog entry.
        let entry = Entry {
            user_data: None,
            tree_nodes: Some(batch.nodes.clone()),
            tree_upgrade: if upgraded {
                Some(TreeUpgrade { fork: batch.fork, ancestors: batch.ancestors, length: batch.length, signature: batch.signature.clone() })
            } else {
                None
            },
            bitfield: block.filter(|_| value.is_some()).map(|i| BitfieldUpdate { drop: false, start: i, length: 1 }),
        };
        let body = entry.encode();
        let flush = self.should_flush(Oplog::frame_size(&body));
        self.oplog.append(&body)?; // before the flush, as in append_batch

        // 3. Memory.
        for n in &batch.nodes {
            self.tree.add(*n);
        }
        if upgraded {
            if self.header.manifest.is_none() && self.verifier.compat {
                // As JS does for compat cores: the manifest is derived from the key and stored
                // (by the next flush; it can always be derived again).
                self.header.manifest = Some(Manifest::default_signer(self.header.key));
                self.header_dirty = true;
            }
            self.roots = new_roots;
            self.length = new_len;
            self.byte_length = new_byte_len;
            self.fork = batch.fork;
            self.signature = batch.signature.clone();
            self.roots_trusted = true;
            if self.cache.is_full() {
                self.cache.clear();
            }
            self.cache.add_roots(&self.roots);
            self.sync_header_tree();
        }
        if let Some(b) = &entry.bitfield {
            self.bitfield.set_range(b.start, 1, true);
            self.update_contig(b);
        }
        if flush {
            if let Err(e) = self.flush_now() {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(())
    }
}
