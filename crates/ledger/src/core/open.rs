//! Opening and creating: a new core, or an existing one read back from its files.

use std::path::Path;

use libvms_errors::{err, Result};

use crate::bitfield::Bitfield;
use crate::crypto::{tree_hash, KeyPair, Manifest, Verifier};
use crate::flat;
use crate::oplog::{self, Entry, Header, Hints, Oplog, SlotHeader, StoredKeyPair, TreeHeader};
use crate::proof;
use crate::storage::Storage;
use crate::tree::{total_size, Node, TreeStore, VerifiedCache};

use super::journaled::redo_journal;
use super::{Core, add_reorg_hint, Files, JS_FLUSH_INTERVAL, stored_key_pair, sync_dir, update_user_data};
use crate::journal::Journal;

impl Core {
    /// A new writable compat core with a fresh key pair.
    pub fn create(storage: Storage) -> Result<Core> {
        Core::create_with_keypair(storage, KeyPair::generate())
    }

    /// A new writable compat core (key = public key, default v1 manifest stored, as JS 10.38.2's
    /// `new Hypercore(dir, {keyPair})`).
    pub fn create_with_keypair(storage: Storage, kp: KeyPair) -> Result<Core> {
        if kp.signing_key().is_none() {
            return Err(err::bad_argument("create needs a key pair with a matching secret key"));
        }
        let header = Header {
            external: None,
            key: kp.public,
            manifest: Some(Manifest::default_signer(kp.public)),
            key_pair: Some(StoredKeyPair { public_key: Some(kp.public.to_vec()), secret_key: kp.secret.map(|s| s.to_vec()) }),
            user_data: vec![],
            tree: TreeHeader::default(),
            hints: Hints::default(),
        };
        Core::create_new(storage, header)
    }

    /// Open (or create, if empty) a read-only replica of the core with this key.
    pub fn open_replica(storage: Storage, key: [u8; 32]) -> Result<Core> {
        if let Storage::Disk(dir) = &storage {
            if dir.join("oplog").exists() {
                let files = Files::open(&storage)?;
                if let Some(core) = Core::open_files(files, true)? {
                    if core.key() != key {
                        return Err(err::bad_argument("another core is stored in this directory"));
                    }
                    return Ok(core);
                }
            }
        }
        // Like JS `new Hypercore(dir, key)`: no manifest stored until the first verified upgrade.
        let header = Header {
            external: None,
            key,
            manifest: None,
            key_pair: None,
            user_data: vec![],
            tree: TreeHeader::default(),
            hints: Hints::default(),
        };
        Core::create_new(storage, header)
    }

    fn create_new(storage: Storage, header: Header) -> Result<Core> {
        if let Storage::Disk(dir) = &storage {
            std::fs::create_dir_all(dir).map_err(|e| err::io(format!("create {}: {e}", dir.display())))?;
        }
        let mut files = Files::open(&storage)?;
        files.oplog.lock_exclusive()?;
        let mut oplog = Oplog::new(files.oplog);
        let opened = oplog.open()?;
        if opened.header.is_some() {
            return Err(err::bad_argument("a core already exists in this directory"));
        }
        files.oplog = oplog.file;
        if files.any_data()? {
            return Err(err::corrupt("directory holds core files but no oplog header"));
        }
        let mut oplog = Oplog::new(files.oplog);
        oplog.flush_header(&header.encode())?;
        for f in [&mut files.tree, &mut files.bitfield, &mut files.data] {
            f.create()?;
        }
        if let Some(dir) = &files.dir {
            sync_dir(dir)?;
        }
        let verifier = Verifier::new(header.key, header.manifest.as_ref());
        let key_pair = stored_key_pair(&header, &verifier);
        // A journal left by another core in this directory extends another slot: its records are never redone.
        let journal = files.dir.as_deref().map(Journal::open).transpose()?.map(|(j, _)| j);
        Ok(Core {
            dir: files.dir,
            oplog,
            tree: TreeStore::new(files.tree),
            bitfield: Bitfield::open(files.bitfield)?,
            data: files.data,
            header_file: files.header,
            manifest_flushed: header.manifest.is_some(),
            header,
            verifier,
            key_pair,
            roots: vec![],
            length: 0,
            byte_length: 0,
            fork: 0,
            signature: None,
            cache: VerifiedCache::new(VerifiedCache::DEFAULT_CAP),
            roots_trusted: true,
            auto_flush: 1,
            flush_interval: JS_FLUSH_INTERVAL,
            header_dirty: false,
            failed: false,
            touched: true,
            torn_batch_dropped: false,
            heads: Default::default(),
            heads_kept: 0,
            journal,
        })
    }

    /// Reopen an existing core; writable iff the secret key is stored.
    pub fn open(dir: &Path) -> Result<Core> {
        if !dir.is_dir() {
            return Err(err::not_a_core(format!("{} is not a directory", dir.display())));
        }
        if !dir.join("oplog").is_file() {
            return Err(err::not_a_core(format!("{} has no oplog", dir.display())));
        }
        let files = Files::open(&Storage::Disk(dir.to_path_buf()))?;
        Core::open_files(files, false)?.ok_or_else(|| err::not_a_core(format!("{} holds no core header", dir.display())))
    }

    /// Open from files; Ok(None) when the oplog holds no header (an empty store).
    fn open_files(mut files: Files, _replica: bool) -> Result<Option<Core>> {
        files.oplog.lock_exclusive()?;
        // Appends acknowledged through the journal but not yet in the oplog's file come back first.
        let journal = match files.dir.clone() {
            Some(dir) => Some(redo_journal(&dir, &mut files)?),
            None => None,
        };
        let mut oplog = Oplog::new(files.oplog);
        let opened = oplog.open()?;
        if opened.file_size < oplog::ENTRY_OFFSET
            && (files.tree.len()? > 0 || files.bitfield.len()? > 0 || files.data.len()? > 0)
        {
            // Every header write leaves the oplog at least 8192 bytes long (both slots).
            return Err(err::corrupt(format!("oplog: cut to {} bytes next to stored blocks", opened.file_size)));
        }
        let header = match opened.header {
            None => {
                // An oplog cut below its first header slot, next to blocks: damage, not an empty store.
                if files.tree.len()? > 0 || files.bitfield.len()? > 0 || files.data.len()? > 0 {
                    return Err(err::corrupt("oplog: no header, but the tree, bitfield or data hold blocks"));
                }
                return Ok(None);
            }
            Some(SlotHeader::Full(h)) => *h,
            Some(SlotHeader::External(start, len)) => {
                let len_usize = usize::try_from(len).map_err(|_| err::corrupt("external header too large"))?;
                if start.checked_add(len).is_none_or(|e| e > files.header.len().unwrap_or(0)) {
                    return Err(err::corrupt("external header is outside the header file"));
                }
                let mut buf = vec![0u8; len_usize];
                files.header.read_at(start, &mut buf)?;
                match Header::decode(&buf)? {
                    SlotHeader::Full(mut h) => {
                        h.external = Some((start, len));
                        *h
                    }
                    SlotHeader::External(..) => return Err(err::corrupt("external header points to another")),
                }
            }
        };
        let tree = TreeStore::new(files.tree);
        if tree.is_old_format()? {
            return Err(err::not_a_core("the tree file is from hypercore 9 or older"));
        }
        if let Some(m) = &header.manifest {
            if !m.is_compat(&header.key) && m.hash() != header.key {
                return Err(err::corrupt("the stored manifest does not hash to the core key"));
            }
        }
        let verifier = Verifier::new(header.key, header.manifest.as_ref());
        let key_pair = stored_key_pair(&header, &verifier);
        let bitfield = Bitfield::open(files.bitfield)?;
        let header_length = header.tree.length;

        let mut core = Core {
            dir: files.dir,
            oplog,
            tree,
            bitfield,
            data: files.data,
            header_file: files.header,
            manifest_flushed: header.manifest.is_some(),
            verifier,
            key_pair,
            roots: vec![],
            length: header.tree.length,
            byte_length: 0,
            fork: header.tree.fork,
            signature: header.tree.signature.clone(),
            header,
            cache: VerifiedCache::new(VerifiedCache::DEFAULT_CAP),
            roots_trusted: false,
            auto_flush: 1,
            flush_interval: JS_FLUSH_INTERVAL,
            header_dirty: false,
            failed: false,
            touched: false,
            torn_batch_dropped: false,
            heads: Default::default(),
            heads_kept: 0,
            journal,
        };
        if core.length >= proof::MAX_BLOCKS {
            return Err(err::corrupt("header length out of range"));
        }
        core.roots = core.read_roots(core.length)?;
        core.byte_length = total_size(&core.roots).ok_or_else(|| err::corrupt("tree sizes overflow"))?;
        if core.header.hints.contiguous_length == 0 {
            core.header.hints.contiguous_length = core.bitfield.first_unset(0);
        }
        let mut entries = opened.entries;
        let last = entries.pop();
        for e in entries {
            core.replay(e)?;
        }
        let mut good_size = opened.good_size;
        if let Some(last) = last {
            if core.is_torn_last_append(&last)? {
                // Its data never became durable: the batch was not acknowledged, drop it as a torn frame.
                let size = opened.frame_sizes.last().copied().unwrap_or(0);
                core.oplog.forget_last_entry(size);
                good_size -= size;
                core.torn_batch_dropped = true;
            } else {
                core.replay(last)?;
            }
        }
        // Header, oplog, tree, bitfield and data must agree; nothing is written before they do.
        core.check_consistency(header_length)?;
        core.roots_trusted = true;
        core.cache.reset_to_roots(&core.roots);
        // Only now, with everything read and checked, drop torn or stale trailing frames.
        if opened.file_size != good_size {
            core.oplog.file.set_len(good_size)?;
            core.oplog.file.sync()?;
        }
        Ok(Some(core))
    }

    pub(super) fn read_roots(&self, length: u64) -> Result<Vec<Node>> {
        flat::full_roots(2 * length).into_iter().map(|i| self.tree.get_required(i)).collect()
    }

    /// Apply one oplog entry on open (userData, nodes, bitfield, then the upgrade).
    fn replay(&mut self, e: Entry) -> Result<()> {
        if let Some((k, v)) = e.user_data {
            update_user_data(&mut self.header.user_data, k, v);
        }
        // A truncating upgrade (reorg) drops the old nodes before this entry's nodes are added.
        if let Some(u) = &e.tree_upgrade {
            if u.ancestors < self.length {
                self.tree.truncate(u.ancestors);
            }
        }
        if let Some(nodes) = e.tree_nodes {
            for n in nodes {
                if n.index >= flat::MAX_INDEX {
                    return Err(err::corrupt("oplog node index out of range"));
                }
                self.tree.add(n);
            }
        }
        if let Some(b) = &e.bitfield {
            // A range can only cover blocks of the tree (as it is, or as this entry makes it).
            let limit = self.length.max(e.tree_upgrade.as_ref().map_or(0, |u| u.length));
            if b.start.checked_add(b.length).is_none_or(|end| end > limit) {
                return Err(err::corrupt("oplog bitfield range is outside the tree"));
            }
            self.bitfield.set_range(b.start, b.length, !b.drop);
            self.update_contig(b);
        }
        if let Some(u) = e.tree_upgrade {
            if u.length >= proof::MAX_BLOCKS {
                return Err(err::corrupt("oplog upgrade length out of range"));
            }
            let roots = self.read_roots(u.length)?;
            if u.fork != self.fork && self.length > 0 {
                add_reorg_hint(&mut self.header.hints.reorgs, self.fork, u.fork, u.ancestors);
            }
            self.byte_length = total_size(&roots).ok_or_else(|| err::corrupt("tree sizes overflow"))?;
            self.roots = roots;
            self.length = u.length;
            self.fork = u.fork;
            self.signature = u.signature;
            self.sync_header_tree();
        }
        Ok(())
    }

    pub(super) fn signature_ok(&self, roots: &[Node]) -> bool {
        match &self.signature {
            Some(sig) => self.verifier.verify(&tree_hash(roots), self.length, self.fork, sig),
            None => false,
        }
    }
}
