//! A hypercore 10 core: open/create, batched appends with JS's flush schedule, verified reads,
//! full verification, and proofs for replication.
//!
//! Durability: an append writes and syncs `data` first, then appends one oplog entry and syncs
//! it; the entry carries the new tree nodes, the signed head and the bitfield range, so nothing is
//! visible before the data it refers to is durable. A flush (first mutation after open, then every
//! 4th, when entries reach 64 KiB, and on close) writes dirty bitfield pages and tree nodes, syncs
//! them, and only then writes the header into the other slot. A batch that flushes appends its
//! oplog entry first, as JS does, so the tree and bitfield never run ahead of the oplog (open
//! checks that they agree: core/consistency.rs).

mod consistency;

use std::path::{Path, PathBuf};

use libvms_errors::{err, Error, ErrorCode, Result};

use crate::bitfield::Bitfield;
use crate::crypto::{self, leaf_hash, leaf_node, parent_node, tree_hash, KeyPair, Manifest, Verifier};
use crate::flat::{self, Iter};
use crate::oplog::{self, BitfieldUpdate, Entry, Header, Hints, Oplog, SlotHeader, StoredKeyPair, TreeHeader, TreeUpgrade};
use crate::proof::{self, Batch, DataBlock, DataHash, DataSeek, DataUpgrade, Proof, ProofRequest, TreeView};
use crate::storage::{Storage, StoreFile};
use crate::tree::{total_size, IndexMap, Node, TreeStore, Verified, VerifiedCache};

mod truncate;

/// A proof that checked out against this core; `apply_proof` commits it.
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    pub fork: u64,
    /// Length of the tree once applied (the current length when there is no upgrade).
    pub length: u64,
    pub upgraded: bool,
    /// Index of the block whose value was verified, if any.
    pub block: Option<u64>,
    pub(crate) batch: Batch,
    pub(crate) value: Option<Vec<u8>>,
}

/// One hypercore on disk or in memory. `Send`; not shared between threads without a lock.
pub struct Core {
    dir: Option<PathBuf>,
    oplog: Oplog,
    tree: TreeStore,
    bitfield: Bitfield,
    data: StoreFile,
    header_file: StoreFile,
    header: Header,
    verifier: Verifier,
    key_pair: Option<KeyPair>,
    roots: Vec<Node>,
    length: u64,
    byte_length: u64,
    fork: u64,
    signature: Option<Vec<u8>>,
    cache: VerifiedCache,
    /// False when the stored roots do not match the signature: every read then fails.
    roots_trusted: bool,
    auto_flush: u32,
    /// Batches between header flushes (JS: 4). Each flush syncs tree, bitfield and header and truncates the oplog.
    flush_interval: u32,
    manifest_flushed: bool,
    /// Header fields changed since the last flush without an oplog entry recording them.
    header_dirty: bool,
    /// A write failed after memory was updated: refuse further mutations (reopen to recover).
    failed: bool,
    /// This handle changed something. A handle that only read (`libvms log`, `verify`) writes nothing at close.
    touched: bool,
}

struct Files {
    dir: Option<PathBuf>,
    oplog: StoreFile,
    tree: StoreFile,
    bitfield: StoreFile,
    data: StoreFile,
    header: StoreFile,
}

impl Files {
    fn open(storage: &Storage) -> Result<Files> {
        match storage {
            Storage::Memory => Ok(Files {
                dir: None,
                oplog: StoreFile::memory("oplog"),
                tree: StoreFile::memory("tree"),
                bitfield: StoreFile::memory("bitfield"),
                data: StoreFile::memory("data"),
                header: StoreFile::memory("header"),
            }),
            Storage::Disk(dir) => Ok(Files {
                dir: Some(dir.clone()),
                oplog: StoreFile::disk(dir, "oplog")?,
                tree: StoreFile::disk(dir, "tree")?,
                bitfield: StoreFile::disk(dir, "bitfield")?,
                data: StoreFile::disk(dir, "data")?,
                header: StoreFile::disk(dir, "header")?,
            }),
        }
    }

    fn any_data(&self) -> Result<bool> {
        Ok(self.tree.len()? > 0 || self.bitfield.len()? > 0 || self.data.len()? > 0)
    }
}

/// JS hypercore flushes its header every 4th batch; our files match its bytes at that cadence.
const JS_FLUSH_INTERVAL: u32 = 4;

/// For logs that append small batches all day (call logs, archives): a header flush (tree, bitfield and header
/// syncs and an oplog truncation) then happens when the oplog's 64 KiB fill up, which nearly always comes first.
pub const LAZY_FLUSH_INTERVAL: u32 = 1024;

fn verification_failed(index: u64, what: impl Into<String>) -> Error {
    err::verification(what).at(index)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes newly created files durable; some filesystems refuse fsync on a directory: ignore that.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Core {
    // -----------------------------------------------------------------------------------------
    // Opening and creating
    // -----------------------------------------------------------------------------------------

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
        };
        if core.length >= proof::MAX_BLOCKS {
            return Err(err::corrupt("header length out of range"));
        }
        core.roots = core.read_roots(core.length)?;
        core.byte_length = total_size(&core.roots).ok_or_else(|| err::corrupt("tree sizes overflow"))?;
        if core.header.hints.contiguous_length == 0 {
            core.header.hints.contiguous_length = core.bitfield.first_unset(0);
        }
        for e in opened.entries {
            core.replay(e)?;
        }
        // Header, oplog, tree, bitfield and data must agree; nothing is written before they do.
        core.check_consistency(header_length)?;
        core.roots_trusted = true;
        core.cache.reset_to_roots(&core.roots);
        // Only now, with everything read and checked, drop torn or stale trailing frames.
        if opened.file_size != opened.good_size {
            core.oplog.file.set_len(opened.good_size)?;
            core.oplog.file.sync()?;
        }
        Ok(Some(core))
    }

    fn read_roots(&self, length: u64) -> Result<Vec<Node>> {
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

    fn signature_ok(&self, roots: &[Node]) -> bool {
        match &self.signature {
            Some(sig) => self.verifier.verify(&tree_hash(roots), self.length, self.fork, sig),
            None => false,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Accessors
    // -----------------------------------------------------------------------------------------

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

    fn check_usable(&self) -> Result<()> {
        if self.failed {
            return Err(err::io("an earlier write failed; reopen the core"));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Appending
    // -----------------------------------------------------------------------------------------

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

        // 1. Data first, durable.
        let mut buf = Vec::with_capacity(total as usize);
        for b in blocks {
            buf.extend_from_slice(b);
        }
        self.data.write_at(self.byte_length, &buf)?;
        self.data.sync()?;

        // 2. The entry that makes it visible, even when this batch flushes the header: the tree and
        // bitfield written by the flush must never run ahead of what the oplog accounts for (a crash
        // before the header write would otherwise leave them past the length, which open refuses).
        let body = entry.encode();
        let flush = self.should_flush(Oplog::frame_size(&body));
        self.oplog.append(&body)?;

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

        if flush {
            if let Err(e) = self.flush_now() {
                self.failed = true;
                return Err(e);
            }
        }
        Ok(len)
    }

    /// JS `_shouldFlush`, evaluated as if the entry of `entry_bytes` had been appended.
    fn should_flush(&mut self, entry_bytes: u64) -> bool {
        self.touched = true; // every mutation asks
        self.auto_flush = self.auto_flush.saturating_sub(1);
        if self.auto_flush == 0 || self.oplog.entries_bytes + entry_bytes >= oplog::MAX_ENTRIES_BYTES {
            self.auto_flush = self.flush_interval;
            return true;
        }
        if !self.manifest_flushed && self.header.manifest.is_some() {
            self.manifest_flushed = true;
            return true;
        }
        false
    }

    fn sync_header_tree(&mut self) {
        self.header.tree = TreeHeader {
            fork: self.fork,
            length: self.length,
            root_hash: Some(tree_hash(&self.roots).to_vec()),
            signature: self.signature.clone(),
        };
    }

    /// core.js `updateContig`.
    fn update_contig(&mut self, upd: &BitfieldUpdate) {
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

    // -----------------------------------------------------------------------------------------
    // Flushing and closing
    // -----------------------------------------------------------------------------------------

    /// Write the header so the oplog entries can be dropped (JS `core.flush()`).
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        self.touched = true;
        self.manifest_flushed = true;
        self.auto_flush = self.flush_interval;
        self.flush_now()
    }

    fn needs_flush(&self) -> bool {
        self.oplog.entries_count > 0 || self.tree.has_unflushed() || self.bitfield.is_dirty() || self.header_dirty
    }

    fn flush_now(&mut self) -> Result<()> {
        // Bitfield pages and tree nodes durable before the header that makes them authoritative.
        if self.bitfield.flush()? {
            self.bitfield.file.sync()?;
        }
        if self.tree.flush()? {
            self.tree.file.sync()?;
        }
        let mut body = self.header.encode();
        if self.header.external.is_some() || body.len() + 8 > oplog::PAGE as usize {
            body = self.write_big_header(body)?;
        }
        self.oplog.flush_header(&body)?;
        self.header_dirty = false;
        Ok(())
    }

    /// big-header.js: the full header goes to the `header` file, the slot points at it.
    fn write_big_header(&mut self, mut full: Vec<u8>) -> Result<Vec<u8>> {
        let (old_start, old_len) = self.header.external.unwrap_or((0, 0));
        if self.header.external.is_some() {
            // The encoding above included no external pointer (it is never encoded in full form).
            full = Header { external: None, ..self.header.clone() }.encode();
        }
        let mut start = 0u64;
        if full.len() as u64 > old_start {
            start = old_start + old_len;
            let rem = start & 4095;
            if rem > 0 {
                start += 4096 - rem;
            }
        }
        self.header_file.write_at(start, &full)?;
        self.header_file.sync()?;
        self.header.external = Some((start, full.len() as u64));
        Ok(Header::encode_external(start, full.len() as u64))
    }

    /// Batches between header flushes (at least 1; JS uses 4). A flush also happens whenever the oplog's entries
    /// reach 64 KiB, so a larger interval trades a longer oplog to replay at open for fewer syncs and truncations
    /// per append. Every batch is durable either way (its oplog entry carries the tree nodes and signature).
    pub fn set_flush_interval(&mut self, batches: u32) {
        self.flush_interval = batches.max(1);
        self.auto_flush = self.auto_flush.min(self.flush_interval);
    }

    /// Flush (if this handle changed anything) and release the lock: a handle that only read writes nothing.
    pub fn close(mut self) -> Result<()> {
        if !self.failed && (self.touched || self.header_dirty) && self.needs_flush() {
            self.flush_now()?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Reading
    // -----------------------------------------------------------------------------------------

    /// Verified read of block `index`.
    pub fn get(&mut self, index: u64) -> Result<Vec<u8>> {
        if index >= self.length {
            return Err(err::out_of_bounds(format!("block {index} is past the end ({})", self.length)).at(index));
        }
        if !self.bitfield.get(index) {
            return Err(err::out_of_bounds(format!("block {index} is not held locally")).at(index));
        }
        if !self.roots_trusted {
            return Err(verification_failed(index, "the stored tree does not match the signature"));
        }
        let leaf_index = 2 * index;
        if let Some(v) = self.cache.get(leaf_index).copied() {
            let data = self.read_data(index, v.offset, v.size)?;
            if leaf_hash(&data) != v.hash {
                return Err(verification_failed(index, format!("block {index} does not match its signed hash")));
            }
            return Ok(data);
        }
        self.get_slow(index)
    }

    fn read_data(&self, index: u64, offset: u64, size: u64) -> Result<Vec<u8>> {
        let size = usize::try_from(size).map_err(|_| verification_failed(index, "block size out of range"))?;
        let mut buf = vec![0u8; size];
        let n = self.data.read_at(offset, &mut buf)?;
        if n < size {
            return Err(verification_failed(index, format!("block {index} is missing from the data file")));
        }
        Ok(buf)
    }

    /// Climb from the leaf to the nearest verified node, reading the siblings on the way, then
    /// hash the block and recompute upwards; cache everything once it matches.
    fn get_slow(&mut self, index: u64) -> Result<Vec<u8>> {
        let leaf_index = 2 * index;
        let (path, anchor) = self.climb_to_verified(leaf_index).map_err(|e| remap_at(e, index))?;
        let mut siblings = Vec::with_capacity(path.len());
        for &p in &path {
            let s = flat::sibling(p);
            let node = self.tree.get(s)?.ok_or_else(|| verification_failed(index, format!("tree node {s} is missing")))?;
            siblings.push(node);
        }
        // Offset of the leaf: the anchor's offset plus every left sibling on the way down.
        let mut offset = anchor.offset;
        for (p, s) in path.iter().zip(&siblings) {
            if s.index < *p {
                offset = offset.checked_add(s.size).ok_or_else(|| verification_failed(index, "size overflow"))?;
            }
        }
        let stored_leaf = self.tree.get(leaf_index)?.ok_or_else(|| verification_failed(index, format!("tree node {leaf_index} is missing")))?;
        let data_len = self.data.len()?;
        if offset.checked_add(stored_leaf.size).is_none_or(|e| e > data_len) {
            return Err(verification_failed(index, format!("block {index} does not fit the data file")));
        }
        let data = self.read_data(index, offset, stored_leaf.size)?;
        let leaf = leaf_node(leaf_index, &data);
        if leaf != stored_leaf {
            return Err(verification_failed(index, format!("tree node {leaf_index} does not match block {index}")));
        }
        let mut computed = Vec::with_capacity(path.len() + 1);
        computed.push(leaf);
        let mut cur = leaf;
        for s in &siblings {
            cur = parent_node(flat::parent(cur.index), &cur, s).ok_or_else(|| verification_failed(index, "size overflow"))?;
            computed.push(cur);
        }
        if cur.index != anchor.index || cur.hash != anchor.hash || cur.size != anchor.size {
            return Err(verification_failed(index, format!("block {index} does not match the signed tree")));
        }
        // Verified: cache path nodes and siblings with their offsets, top-down.
        if self.cache.is_full() {
            self.cache.reset_to_roots(&self.roots);
        }
        let mut parent_off = anchor.offset;
        for k in (0..path.len()).rev() {
            let node = computed[k];
            let sib = siblings[k];
            let (node_off, sib_off) = if sib.index < node.index {
                (parent_off.saturating_add(sib.size), parent_off)
            } else {
                (parent_off, parent_off.saturating_add(node.size))
            };
            self.cache.insert(node.index, Verified { size: node.size, hash: node.hash, offset: node_off });
            self.cache.insert(sib.index, Verified { size: sib.size, hash: sib.hash, offset: sib_off });
            parent_off = node_off;
        }
        Ok(data)
    }

    /// Indexes from `start` up to (not including) the nearest verified ancestor, and that ancestor.
    fn climb_to_verified(&self, start: u64) -> Result<(Vec<u64>, Anchor)> {
        let mut path = Vec::new();
        let mut ite = Iter::new(start);
        loop {
            if let Some(v) = self.cache.get(ite.index) {
                return Ok((path, Anchor { index: ite.index, size: v.size, hash: v.hash, offset: v.offset }));
            }
            if ite.factor >= flat::MAX_INDEX || path.len() > 64 {
                return Err(err::verification("no verified ancestor"));
            }
            path.push(ite.index);
            ite.parent();
        }
    }

    /// Is this stored node part of the signed tree? (Read-only: climbs stored siblings.)
    fn trusted_node(&self, index: u64) -> Result<Option<Node>> {
        if let Some(v) = self.cache.get(index) {
            return Ok(Some(Node { index, size: v.size, hash: v.hash }));
        }
        let Some(node) = self.tree.get(index)? else { return Ok(None) };
        let Ok((path, anchor)) = self.climb_to_verified(index) else { return Ok(None) };
        let mut cur = node;
        for &p in &path {
            let Some(s) = self.tree.get(flat::sibling(p))? else { return Ok(None) };
            match parent_node(flat::parent(p), &cur, &s) {
                Some(n) => cur = n,
                None => return Ok(None),
            }
        }
        Ok(if cur.hash == anchor.hash && cur.size == anchor.size { Some(node) } else { None })
    }

    /// A stored node proven to be part of the signed tree (None if it is not, or is missing).
    pub(crate) fn trusted_subtree(&self, index: u64) -> Result<Option<Node>> {
        if !self.roots_trusted {
            return Ok(None);
        }
        self.trusted_node(index)
    }

    /// Stored tree nodes `first..first + count`, with one file read.
    pub(crate) fn tree_span(&self, first: u64, count: u64) -> Result<Vec<Option<Node>>> {
        self.tree.get_span(first, count)
    }

    /// Raw read from the data file; returns the bytes read.
    pub(crate) fn read_data_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.data.read_at(offset, buf)
    }

    /// Byte offset of block `index` from the tree (unverified sizes).
    pub fn byte_offset(&self, index: u64) -> Result<u64> {
        if index > self.length {
            return Err(err::out_of_bounds("block past the end").at(index));
        }
        proof::byte_offset_with(&self.roots, self.length, self.byte_length, 2 * index, |i| {
            self.node(i)?.ok_or_else(|| err::corrupt(format!("tree node {i} is missing")))
        })
    }

    /// Verified reads of blocks `start..end`.
    pub fn get_batch(&mut self, start: u64, end: u64) -> Result<Vec<Vec<u8>>> {
        if start > end {
            return Err(err::bad_argument("start is after end"));
        }
        (start..end).map(|i| self.get(i)).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Full verification
    // -----------------------------------------------------------------------------------------

    /// Signature over the stored roots, then every held block against its leaf and every stored
    /// parent against its children. The error names the lowest bad block index.
    pub fn verify(&mut self) -> Result<()> {
        if self.length == 0 {
            return Ok(());
        }
        // Stored roots, as on disk (not the in-memory trusted copies).
        let stored_roots: Vec<Option<Node>> = flat::full_roots(2 * self.length).into_iter().map(|i| self.tree.get(i)).collect::<Result<_>>()?;
        let sig_ok = match stored_roots.iter().copied().collect::<Option<Vec<Node>>>() {
            Some(r) => self.signature_ok(&r),
            None => false,
        };
        let mut first_bad: Option<(u64, String)> = None;
        let mut note = |i: u64, msg: String| {
            if first_bad.as_ref().is_none_or(|(b, _)| i < *b) {
                first_bad = Some((i, msg));
            }
        };
        // Nodes found bad, so a parent is not blamed for a damaged child.
        let mut bad_nodes = std::collections::HashSet::new();
        let mut reader = NodeReader::new(&self.tree, 2 * self.length);
        let data_len = self.data.len()?;
        let mut data = DataReader::new(&self.data);
        let mut offset: Option<u64> = Some(0);
        for i in 0..self.length {
            let leaf = reader.get(2 * i)?;
            let held = self.bitfield.get(i);
            let Some(leaf) = leaf else {
                if held {
                    note(i, format!("tree node {} is missing", 2 * i));
                    bad_nodes.insert(2 * i);
                }
                offset = None;
                continue;
            };
            let off = match offset {
                Some(o) => o,
                None => match self.byte_offset(i) {
                    Ok(o) => o,
                    Err(_) => {
                        if held {
                            note(i, format!("cannot locate block {i}"));
                            bad_nodes.insert(2 * i);
                        }
                        continue;
                    }
                },
            };
            if held {
                if off.checked_add(leaf.size).is_none_or(|e| e > data_len) {
                    note(i, format!("block {i} does not fit the data file"));
                    bad_nodes.insert(2 * i);
                } else {
                    let bytes = data.read(off, leaf.size)?;
                    if leaf_hash(bytes) != leaf.hash {
                        note(i, format!("block {i} does not match tree node {}", 2 * i));
                        bad_nodes.insert(2 * i);
                    }
                }
            }
            offset = off.checked_add(leaf.size);
        }
        // Parents: every stored parent inside the tree must be the hash of its stored children.
        let head = 2 * self.length;
        let mut depth = 1u32;
        while (1u64 << depth) <= self.length {
            let mut o = 0u64;
            loop {
                let p = flat::index(depth, o);
                if flat::right_span(p) >= head {
                    break;
                }
                if let Some(pn) = reader.get(p)? {
                    let (l, r) = flat::children(p).expect("depth >= 1");
                    let first = flat::left_span(p) / 2;
                    match (reader.get(l)?, reader.get(r)?) {
                        (Some(ln), Some(rn)) => {
                            let ok = parent_node(p, &ln, &rn).is_some_and(|c| c == pn);
                            if !ok {
                                // A damaged child is the culprit, not this parent.
                                if !bad_nodes.contains(&l) && !bad_nodes.contains(&r) {
                                    note(first, format!("tree node {p} does not match its children"));
                                }
                                bad_nodes.insert(p);
                            }
                        }
                        _ => {
                            // A replica may hold a parent without its children; a full core may not.
                            if (first..=flat::right_span(p) / 2).all(|b| self.bitfield.get(b)) {
                                note(first, format!("children of tree node {p} are missing"));
                            }
                        }
                    }
                }
                o += 1;
            }
            depth += 1;
        }
        if let Some((i, msg)) = first_bad {
            return Err(verification_failed(i, msg));
        }
        if !sig_ok {
            return Err(err::signature("the signature does not match the stored tree"));
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Proofs
    // -----------------------------------------------------------------------------------------

    /// Build the proof a peer asked for (shapes as hypercore@10's `generateProof`).
    pub fn proof(&mut self, req: &ProofRequest) -> Result<Proof> {
        if req.fork != self.fork {
            return Err(err::bad_argument(format!("request is for fork {}, the core is at fork {}", req.fork, self.fork)));
        }
        let view = TreeView { store: &self.tree, roots: &self.roots, length: self.length, byte_length: self.byte_length, cache: None };
        let idx = proof::generate_indexes(&view, req)?;
        let mut out = Proof { fork: self.fork, ..Default::default() };
        if self.length == 0 {
            return Ok(out);
        }
        // The verified read comes first: it leaves the block's path and siblings in the cache of
        // verified nodes, which then supplies the proof's nodes without file reads.
        let value = match &req.block {
            Some(b) => Some(self.get(b.index)?),
            None => None,
        };
        let view = TreeView {
            store: &self.tree,
            roots: &self.roots,
            length: self.length,
            byte_length: self.byte_length,
            cache: Some(&self.cache),
        };
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
                signature: self.signature.clone().unwrap_or_default(),
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

/// The nearest verified node above a read, with its byte offset.
#[derive(Clone, Copy)]
struct Anchor {
    index: u64,
    size: u64,
    hash: [u8; 32],
    offset: u64,
}

fn remap_at(e: Error, index: u64) -> Error {
    if e.code == ErrorCode::VerificationFailed {
        e.at(index)
    } else {
        e
    }
}

/// Offsets (in `data`) of each root.
fn offsets_of(roots: &[Node]) -> Vec<u64> {
    let mut off = 0u64;
    roots
        .iter()
        .map(|r| {
            let o = off;
            off = off.saturating_add(r.size);
            o
        })
        .collect()
}

fn stored_key_pair(h: &Header, v: &Verifier) -> Option<KeyPair> {
    let kp = h.key_pair.as_ref()?;
    let public: [u8; 32] = kp.public_key.as_deref()?.try_into().ok()?;
    let secret: [u8; 64] = kp.secret_key.as_deref()?.try_into().ok()?;
    let kp = KeyPair { public, secret: Some(secret) };
    kp.signing_key()?;
    // Only a declared signer can append.
    let dummy = [0u8; 32];
    v.sign(&dummy, 0, 0, &kp).ok()?;
    Some(kp)
}

fn update_user_data(list: &mut Vec<(String, Option<Vec<u8>>)>, key: String, value: Option<Vec<u8>>) {
    if let Some(pos) = list.iter().position(|(k, _)| *k == key) {
        match value {
            Some(v) => list[pos].1 = Some(v),
            None => {
                list.remove(pos);
            }
        }
        return;
    }
    if value.is_some() {
        list.push((key, value));
    }
}

fn add_reorg_hint(list: &mut Vec<oplog::ReorgHint>, from: u64, to: u64, ancestors: u64) {
    while list.len() >= 4 {
        list.remove(0);
    }
    while list.last().is_some_and(|r| r.ancestors > ancestors) {
        list.pop();
    }
    list.push(oplog::ReorgHint { from, to, ancestors });
}

/// Reads tree nodes for `verify` in large chunks (unflushed nodes take precedence).
struct NodeReader<'a> {
    tree: &'a TreeStore,
    chunks: std::collections::HashMap<u64, Vec<u8>>,
    limit: u64,
}

const CHUNK_NODES: u64 = 16384;

impl<'a> NodeReader<'a> {
    fn new(tree: &'a TreeStore, limit: u64) -> Self {
        NodeReader { tree, chunks: Default::default(), limit }
    }

    fn get(&mut self, index: u64) -> Result<Option<Node>> {
        if index >= self.limit {
            return Ok(None);
        }
        if self.tree.has_unflushed() {
            // Unflushed nodes or a pending truncation: go through the store's own rules.
            return self.tree.get(index);
        }
        let c = index / CHUNK_NODES;
        if !self.chunks.contains_key(&c) {
            if self.chunks.len() >= 64 {
                self.chunks.clear();
            }
            let mut buf = vec![0u8; (CHUNK_NODES * 40) as usize];
            self.tree.file.read_at(c * CHUNK_NODES * 40, &mut buf)?;
            self.chunks.insert(c, buf);
        }
        let buf = &self.chunks[&c];
        let at = ((index % CHUNK_NODES) * 40) as usize;
        let r = &buf[at..at + 40];
        let size = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&r[8..]);
        let n = Node { index, size, hash };
        Ok(if n.is_blank() { None } else { Some(n) })
    }
}

/// Sequential reads of `data` through a 1 MiB window.
struct DataReader<'a> {
    file: &'a StoreFile,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> DataReader<'a> {
    fn new(file: &'a StoreFile) -> Self {
        DataReader { file, start: 0, buf: Vec::new() }
    }

    fn read(&mut self, offset: u64, size: u64) -> Result<&[u8]> {
        let end = offset + size;
        if offset < self.start || end > self.start + self.buf.len() as u64 {
            let want = size.max(1 << 20) as usize;
            self.buf.resize(want, 0);
            let n = self.file.read_at(offset, &mut self.buf)?;
            self.buf.truncate(n.max(size as usize));
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + size as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp() -> KeyPair {
        KeyPair::from_seed([7; 32])
    }

    /// A header too big for its 4 KiB slot goes to the `header` file (big-header.js), and is
    /// read back from there.
    #[test]
    fn external_header_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"x"]).unwrap();
        core.header.user_data.push(("big".into(), Some(vec![0x5a; 5000])));
        core.flush().unwrap();
        assert!(core.header.external.is_some());
        core.append_batch(&[b"y"]).unwrap();
        core.close().unwrap();
        assert!(std::fs::metadata(dir.join("header")).unwrap().len() > 5000);
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.length(), 2);
        assert_eq!(core.header.user_data[0].1.as_ref().unwrap().len(), 5000);
        assert_eq!(core.get(1).unwrap(), b"y");
        core.append_batch(&[b"z"]).unwrap();
        core.close().unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.get(2).unwrap(), b"z");
        core.verify().unwrap();
    }

    /// Legacy version-0 headers (hypercore 10.0.x) open as compat cores keyed by the public key.
    #[test]
    fn v0_header_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"one", b"two"]).unwrap();
        core.close().unwrap();
        let core = Core::open(&dir).unwrap();
        let h = core.header.clone();
        drop(core);
        let mut e = crate::encoding::Encoder::new();
        e.uint(0);
        e.string("blake2b");
        e.string("raw");
        e.string("ed25519");
        e.uint(0); // userData
        e.uint(h.tree.fork);
        e.uint(h.tree.length);
        e.buffer(h.tree.root_hash.as_deref());
        e.buffer(h.tree.signature.as_deref());
        e.buffer(Some(&kp().public));
        e.buffer(Some(&kp().secret.unwrap()));
        e.uint(0);
        e.uint(2);
        let mut op = vec![0u8; 8192];
        let f = oplog::frame(&e.buf, 0, false);
        op[..f.len()].copy_from_slice(&f);
        std::fs::write(dir.join("oplog"), op).unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.key(), kp().public);
        assert!(core.compat() && core.writable());
        assert_eq!(core.manifest().unwrap().version, 0);
        assert_eq!(core.get(1).unwrap(), b"two");
        core.append_batch(&[b"three"]).unwrap();
        core.close().unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.get(2).unwrap(), b"three");
        core.verify().unwrap();
    }

    /// JS flush schedule: the first mutation after open, then every 4th, or at 64 KiB of entries.
    #[test]
    fn flush_schedule() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        // Through the file handle: it waits for the background truncate after a header flush.
        let oplog_len = |c: &Core| c.oplog.file.len().unwrap();
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        let mut sizes = vec![];
        for i in 0..9u8 {
            core.append_batch(&[&[i][..]]).unwrap();
            sizes.push(oplog_len(&core) > 8192);
        }
        // flushes at appends 1, 5, 9
        assert_eq!(sizes, [false, true, true, true, false, true, true, true, false]);
        drop(core);
        let mut core = Core::open(&dir).unwrap();
        core.append_batch(&[b"after reopen"]).unwrap();
        assert_eq!(oplog_len(&core), 8192, "first mutation after open flushes");
        core.append_batch(&[b"x"]).unwrap();
        assert!(oplog_len(&core) > 8192);
        // A batch whose entry reaches 64 KiB flushes at once.
        let big: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = big.iter().map(|b| &b[..]).collect();
        core.append_batch(&refs).unwrap();
        assert_eq!(oplog_len(&core), 8192);
        assert_eq!(core.length(), 1011);
    }

    #[test]
    fn hostile_oplog_entry_ranges_are_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), kp()).unwrap();
        core.append_batch(&[b"a"]).unwrap();
        core.append_batch(&[b"b"]).unwrap();
        drop(core);
        let op = std::fs::read(dir.join("oplog")).unwrap();
        let entry = Entry {
            bitfield: Some(BitfieldUpdate { drop: false, start: 0, length: 1 << 40 }),
            ..Default::default()
        };
        let mut op2 = op.clone();
        op2.extend_from_slice(&oplog::frame(&entry.encode(), 1, false));
        std::fs::write(dir.join("oplog"), &op2).unwrap();
        assert_eq!(Core::open(&dir).err().unwrap().code, ErrorCode::StorageCorrupt);
        // Nothing was rewritten by the failed open.
        assert_eq!(std::fs::read(dir.join("oplog")).unwrap(), op2);
    }
}

#[cfg(test)]
mod manifest_from_peer {
    use super::*;

    #[test]
    fn a_replica_takes_the_manifest_its_key_hashes_to_and_refuses_another() {
        let m = Manifest::default_signer([9u8; 32]);
        let key = m.hash();
        let mut r = Core::open_replica(Storage::Memory, key).unwrap();
        assert!(r.manifest().is_none() && r.compat());
        let wrong = Manifest::default_signer([8u8; 32]);
        let e = r.set_manifest(wrong).unwrap_err();
        assert_eq!(e.code, libvms_errors::ErrorCode::InvalidProof);
        assert!(r.manifest().is_none());
        r.set_manifest(m.clone()).unwrap();
        assert_eq!(r.manifest(), Some(&m));
        assert!(!r.compat());
        // Known once: a later one is ignored.
        r.set_manifest(Manifest::default_signer([7u8; 32])).unwrap();
        assert_eq!(r.manifest(), Some(&m));
    }
}
