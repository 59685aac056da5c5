//! The `oplog` file: two header slots (offsets 0 and 4096) and entries from 8192 on, each a CRC'd
//! frame `u32le crc ‖ u32le (len<<2 | partial<<1 | headerBit) ‖ body` (lib/oplog.js), plus the
//! header and entry bodies (lib/messages.js `oplog.header` / `oplog.entry`).

use libvms_errors::{err, Result};

use crate::crypto::{default_namespace, Manifest, SignerInfo};
use crate::encoding::{Decoder, Encoder};
use crate::storage::StoreFile;
use crate::tree::Node;

pub const PAGE: u64 = 4096;
pub const ENTRY_OFFSET: u64 = 8192;
/// Entries past this many bytes force a header flush (core.js `_maxOplogSize`).
pub const MAX_ENTRIES_BYTES: u64 = 65536;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TreeHeader {
    pub fork: u64,
    pub length: u64,
    pub root_hash: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReorgHint {
    pub from: u64,
    pub to: u64,
    pub ancestors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Hints {
    pub reorgs: Vec<ReorgHint>,
    pub contiguous_length: u64,
}

/// The stored key pair: raw buffers (null decodes to None), kept as-is so a rewrite is byte-identical.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKeyPair {
    pub public_key: Option<Vec<u8>>,
    pub secret_key: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Where the full header lives in the `header` file, when it did not fit a slot.
    pub external: Option<(u64, u64)>,
    pub key: [u8; 32],
    pub manifest: Option<Manifest>,
    pub key_pair: Option<StoredKeyPair>,
    pub user_data: Vec<(String, Option<Vec<u8>>)>,
    pub tree: TreeHeader,
    pub hints: Hints,
}

/// Decoded slot: either a full header or a pointer into the `header` file.
pub enum SlotHeader {
    Full(Box<Header>),
    External(u64, u64),
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_capacity(512);
        e.uint(1);
        e.uint((if self.manifest.is_some() { 2 } else { 0 }) | (if self.key_pair.is_some() { 4 } else { 0 }));
        e.raw(&self.key);
        if let Some(m) = &self.manifest {
            m.encode(&mut e);
        }
        if let Some(kp) = &self.key_pair {
            e.buffer(kp.public_key.as_deref());
            e.buffer(kp.secret_key.as_deref());
        }
        e.uint(self.user_data.len() as u64);
        for (k, v) in &self.user_data {
            e.string(k);
            e.buffer(v.as_deref());
        }
        encode_tree_header(&mut e, &self.tree);
        e.uint(self.hints.reorgs.len() as u64);
        for r in &self.hints.reorgs {
            e.uint(r.from);
            e.uint(r.to);
            e.uint(r.ancestors);
        }
        e.uint(self.hints.contiguous_length);
        e.buf
    }

    pub fn encode_external(start: u64, length: u64) -> Vec<u8> {
        let mut e = Encoder::new();
        e.uint(1);
        e.uint(1);
        e.uint(start);
        e.uint(length);
        e.buf
    }

    pub fn decode(buf: &[u8]) -> Result<SlotHeader> {
        let mut d = Decoder::new(buf);
        let version = d.uint()?;
        if version > 1 {
            return Err(err::corrupt(format!("oplog header version {version} is not supported")));
        }
        if version == 0 {
            return decode_v0(&mut d).map(|h| SlotHeader::Full(Box::new(h)));
        }
        let flags = d.uint()?;
        if flags & 1 != 0 {
            return Ok(SlotHeader::External(d.uint()?, d.uint()?));
        }
        let key = d.fixed::<32>()?;
        let manifest = if flags & 2 != 0 { Some(Manifest::decode(&mut d)?) } else { None };
        let key_pair = if flags & 4 != 0 {
            Some(StoredKeyPair { public_key: d.buffer()?, secret_key: d.buffer()? })
        } else {
            None
        };
        let user_data = decode_user_data(&mut d)?;
        let tree = decode_tree_header(&mut d)?;
        let hints = decode_hints(&mut d)?;
        Ok(SlotHeader::Full(Box::new(Header { external: None, key, manifest, key_pair, user_data, tree, hints })))
    }
}

/// Legacy version-0 header: key = public key, implied compat v0 manifest.
fn decode_v0(d: &mut Decoder) -> Result<Header> {
    let _tree_type = d.string()?;
    let _bitfield_type = d.string()?;
    let _signer_type = d.string()?;
    let user_data = decode_user_data(d)?;
    let tree = decode_tree_header(d)?;
    let public_key = d.buffer()?;
    let secret_key = d.buffer()?;
    let hints = decode_hints(d)?;
    let key: [u8; 32] = public_key
        .as_deref()
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| err::corrupt("v0 header without a 32-byte public key"))?;
    let manifest = Manifest {
        version: 0,
        allow_patch: false,
        quorum: 1,
        signers: vec![SignerInfo { namespace: default_namespace(), public_key: key }],
        prologue: None,
    };
    let key_pair = secret_key.as_ref().map(|_| StoredKeyPair { public_key: public_key.clone(), secret_key: secret_key.clone() });
    Ok(Header { external: None, key, manifest: Some(manifest), key_pair, user_data, tree, hints })
}

fn decode_user_data(d: &mut Decoder) -> Result<Vec<(String, Option<Vec<u8>>)>> {
    let n = d.array_len(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((d.string()?, d.buffer()?));
    }
    Ok(out)
}

fn encode_tree_header(e: &mut Encoder, t: &TreeHeader) {
    e.uint(t.fork);
    e.uint(t.length);
    e.buffer(t.root_hash.as_deref());
    e.buffer(t.signature.as_deref());
}

fn decode_tree_header(d: &mut Decoder) -> Result<TreeHeader> {
    Ok(TreeHeader { fork: d.uint()?, length: d.uint()?, root_hash: d.buffer()?, signature: d.buffer()? })
}

fn decode_hints(d: &mut Decoder) -> Result<Hints> {
    let n = d.array_len(3)?;
    let mut reorgs = Vec::with_capacity(n);
    for _ in 0..n {
        reorgs.push(ReorgHint { from: d.uint()?, to: d.uint()?, ancestors: d.uint()? });
    }
    // contiguousLength is optional on read (older writers).
    let contiguous_length = if d.is_empty() { 0 } else { d.uint()? };
    Ok(Hints { reorgs, contiguous_length })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeUpgrade {
    pub fork: u64,
    pub ancestors: u64,
    pub length: u64,
    pub signature: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BitfieldUpdate {
    pub drop: bool,
    pub start: u64,
    pub length: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Entry {
    pub user_data: Option<(String, Option<Vec<u8>>)>,
    pub tree_nodes: Option<Vec<Node>>,
    pub tree_upgrade: Option<TreeUpgrade>,
    pub bitfield: Option<BitfieldUpdate>,
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.tree_nodes.as_ref().map_or(0, |v| v.len());
        let mut e = Encoder::with_capacity(32 + n * 44 + 80);
        let mut flags = 0u8;
        e.byte(0); // patched below
        if let Some((k, v)) = &self.user_data {
            flags |= 1;
            e.string(k);
            e.buffer(v.as_deref());
        }
        if let Some(nodes) = &self.tree_nodes {
            flags |= 2;
            e.uint(nodes.len() as u64);
            for node in nodes {
                e.uint(node.index);
                e.uint(node.size);
                e.raw(&node.hash);
            }
        }
        if let Some(u) = &self.tree_upgrade {
            flags |= 4;
            e.uint(u.fork);
            e.uint(u.ancestors);
            e.uint(u.length);
            e.buffer(u.signature.as_deref());
        }
        if let Some(b) = &self.bitfield {
            flags |= 8;
            e.byte(b.drop as u8);
            e.uint(b.start);
            e.uint(b.length);
        }
        e.buf[0] = flags;
        e.buf
    }

    pub fn decode(buf: &[u8]) -> Result<Entry> {
        let mut d = Decoder::new(buf);
        let flags = d.uint()?;
        let user_data = if flags & 1 != 0 { Some((d.string()?, d.buffer()?)) } else { None };
        let tree_nodes = if flags & 2 != 0 {
            let n = d.array_len(34)?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(Node { index: d.uint()?, size: d.uint()?, hash: d.fixed()? });
            }
            Some(v)
        } else {
            None
        };
        let tree_upgrade = if flags & 4 != 0 {
            Some(TreeUpgrade { fork: d.uint()?, ancestors: d.uint()?, length: d.uint()?, signature: d.buffer()? })
        } else {
            None
        };
        let bitfield = if flags & 8 != 0 {
            let f = d.uint()?;
            Some(BitfieldUpdate { drop: f & 1 != 0, start: d.uint()?, length: d.uint()? })
        } else {
            None
        };
        Ok(Entry { user_data, tree_nodes, tree_upgrade, bitfield })
    }
}

/// Wrap a body in a frame.
pub fn frame(body: &[u8], header_bit: u8, partial: bool) -> Vec<u8> {
    let len_field: u32 = ((body.len() as u32) << 2) | (header_bit as u32 & 1) | if partial { 2 } else { 0 };
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

struct RawFrame<'a> {
    header_bit: u8,
    partial: bool,
    body: &'a [u8],
    total: usize,
}

/// Decode the frame at `pos`, or None if it is short, overruns, or fails its CRC.
fn read_frame(buf: &[u8], pos: usize) -> Option<RawFrame<'_>> {
    let rest = buf.get(pos..)?;
    if rest.len() < 8 {
        return None;
    }
    let crc = u32::from_le_bytes(rest[0..4].try_into().ok()?);
    let len_field = u32::from_le_bytes(rest[4..8].try_into().ok()?);
    let len = (len_field >> 2) as usize;
    if rest.len() - 8 < len {
        return None;
    }
    if crc32fast::hash(&rest[4..8 + len]) != crc {
        return None;
    }
    Some(RawFrame { header_bit: (len_field & 1) as u8, partial: len_field & 2 != 0, body: &rest[8..8 + len], total: 8 + len })
}

/// The stored crc of the frame at `pos` (0 if the bytes are not there).
fn frame_crc(buf: &[u8], pos: usize) -> u32 {
    buf.get(pos..pos + 4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// The (unverified) partial flag of a frame header at `pos`, if its length field is there.
fn raw_partial_bit(buf: &[u8], pos: usize) -> bool {
    buf.get(pos + 4..pos + 8).is_some_and(|b| b[0] & 2 != 0)
}

/// The bytes from `bad` (the first frame that fails its CRC) to the end may only be the torn
/// write of one batch: search them for CRC-valid current entries. A complete batch (a frame
/// without the partial flag) found there that is not the end of the batch torn at `bad` means
/// damage, not a torn tail.
fn check_tail(buf: &[u8], bad: usize, current: u8, open_batch: bool) -> Result<()> {
    let mut p = bad + 1;
    let mut found: Vec<(usize, bool)> = Vec::new();
    while p + 8 <= buf.len() {
        match read_frame(buf, p) {
            Some(f) if f.header_bit == current && Entry::decode(f.body).is_ok() => {
                found.push((p, f.partial));
                p += f.total;
            }
            _ => p += 1,
        }
    }
    // Inside one torn batch every frame is partial except the batch's last one, which ends it.
    let complete: Vec<usize> = found.iter().filter(|f| !f.1).map(|f| f.0).collect();
    let one_batch = open_batch && complete.len() <= 1 && found.last().is_none_or(|l| !l.1 || complete.is_empty())
        && complete.first().is_none_or(|&c| found.last().is_some_and(|l| l.0 == c));
    if found.is_empty() || one_batch {
        return Ok(());
    }
    Err(err::corrupt(format!(
        "oplog entry at byte {bad} is damaged, and {} valid entr{} follow it",
        found.len(),
        if found.len() == 1 { "y" } else { "ies" }
    )))
}

/// What `Oplog::open` found.
pub struct Opened {
    /// None: the store is empty (no valid header and the file is shorter than 8192 bytes).
    pub header: Option<SlotHeader>,
    pub entries: Vec<Entry>,
    /// Each entry's frame size in bytes, in order (the last can be dropped after the fact: core/torn_tail.rs).
    pub frame_sizes: Vec<u64>,
    /// Byte size the file should have after dropping torn or stale trailing frames.
    pub good_size: u64,
    pub file_size: u64,
}

/// In-memory oplog state: the two header bits and the size of the entries.
pub struct Oplog {
    pub file: StoreFile,
    bits: [u8; 2],
    /// The crc of each header slot's frame: the current one names the header the entries extend (journal.rs).
    slot_crcs: [u32; 2],
    pub entries_bytes: u64,
    pub entries_count: u64,
}

impl Oplog {
    pub fn new(file: StoreFile) -> Self {
        Oplog { file, bits: [1, 0], slot_crcs: [0, 0], entries_bytes: 0, entries_count: 0 }
    }

    /// Index of the current header slot; entries are tagged with it.
    pub fn current_bit(&self) -> u8 {
        (self.bits[0] + self.bits[1]) & 1
    }

    /// Names the current header slot's contents: it changes with every header flush.
    pub fn slot_id(&self) -> u32 {
        self.slot_crcs[self.current_bit() as usize]
    }

    /// `slot_id` of the oplog as stored, read before `open` (which may refuse entries a journal redo repairs).
    pub fn stored_slot_id(file: &StoreFile) -> Result<u32> {
        let mut buf = vec![0u8; ENTRY_OFFSET as usize];
        let n = file.read_at(0, &mut buf)?;
        buf.truncate(n);
        let slot = |pos: usize| read_frame(&buf, pos).filter(|f| Header::decode(f.body).is_ok()).map(|f| (f.header_bit, frame_crc(&buf, pos)));
        Ok(match (slot(0), slot(PAGE as usize)) {
            (Some((b0, c0)), Some((b1, c1))) => if (b0 + b1) & 1 == 0 { c0 } else { c1 },
            (Some((_, c)), None) | (None, Some((_, c))) => c,
            (None, None) => 0,
        })
    }

    /// Read both slots and the entries that belong to the current one (read-only: the caller
    /// truncates to `good_size` once the whole open has succeeded).
    ///
    /// Only a torn tail of the last write is recovered (dropped): bytes after the last complete
    /// batch that hold no later CRC-valid entry. Anything else that does not add up is
    /// `STORAGE_CORRUPT`: entries written after a header slot that is now damaged (falling back
    /// to the other slot would silently drop them), a damaged entry followed by valid ones, a
    /// CRC-valid entry that does not decode.
    pub fn open(&mut self) -> Result<Opened> {
        let buf = self.file.read_all()?;
        let file_size = buf.len() as u64;
        let slot = |pos: usize| -> Option<(u8, SlotHeader)> {
            let f = read_frame(&buf, pos)?;
            let h = Header::decode(f.body).ok()?;
            Some((f.header_bit, h))
        };
        let h0 = slot(0);
        let h1 = slot(PAGE as usize);
        self.slot_crcs = [frame_crc(&buf, 0), frame_crc(&buf, PAGE as usize)];
        self.entries_bytes = 0;
        self.entries_count = 0;
        let damaged_slot = match (&h0, &h1) {
            (None, Some(_)) => Some(0u8),
            (Some(_), None) => Some(1u8),
            _ => None,
        };
        let (header, cur) = match (h0, h1) {
            (None, None) => {
                self.bits = [1, 0];
                if file_size >= ENTRY_OFFSET {
                    return Err(err::corrupt("both oplog header slots are damaged"));
                }
                return Ok(Opened { header: None, entries: vec![], frame_sizes: vec![], good_size: file_size, file_size });
            }
            (Some((b0, h)), None) => {
                self.bits = [b0, b0];
                (h, 0)
            }
            (None, Some((b1, h))) => {
                self.bits = [b1 ^ 1, b1];
                (h, 1)
            }
            (Some((b0, h0)), Some((b1, h1))) => {
                self.bits = [b0, b1];
                if (b0 + b1) & 1 == 0 {
                    (h0, 0)
                } else {
                    (h1, 1)
                }
            }
        };
        debug_assert_eq!(cur, self.current_bit());
        let current = self.current_bit();
        // Entries are tagged with the slot of the header they extend. Entries tagged with a damaged
        // slot were written after that header: the other slot is older than they are.
        if let Some(d) = damaged_slot {
            if let Some(f) = read_frame(&buf, ENTRY_OFFSET as usize) {
                if f.header_bit == d && Entry::decode(f.body).is_ok() {
                    return Err(err::corrupt(format!(
                        "oplog header slot {d} is damaged, and the oplog holds entries written after it (the other slot is older)"
                    )));
                }
            }
        }
        let mut pos = ENTRY_OFFSET as usize;
        let mut frames: Vec<(bool, Entry, usize)> = Vec::new();
        while let Some(f) = read_frame(&buf, pos) {
            if f.header_bit != current {
                // Stale entries of the previous header (a crash before the truncation that follows a
                // header flush) start the entry area; past a current entry they cannot occur.
                if pos != ENTRY_OFFSET as usize {
                    return Err(err::corrupt(format!("oplog entry at byte {pos} belongs to another header")));
                }
                break;
            }
            let Ok(entry) = Entry::decode(f.body) else {
                return Err(err::corrupt(format!("oplog entry at byte {pos} has a valid checksum but does not decode")));
            };
            frames.push((f.partial, entry, f.total));
            pos += f.total;
        }
        let stale = read_frame(&buf, pos).is_some_and(|f| f.header_bit != current);
        if !stale && pos < buf.len() {
            // A damaged or torn frame at `pos`. A torn write of the last batch leaves no complete
            // batch after it; a complete, valid entry further on means history was damaged.
            let open_batch = frames.last().is_some_and(|f| f.0) || raw_partial_bit(&buf, pos);
            check_tail(&buf, pos, current, open_batch)?;
        }
        // An atomic batch whose last frame is missing is dropped whole.
        while frames.last().is_some_and(|f| f.0) {
            frames.pop();
        }
        let mut entries = Vec::with_capacity(frames.len());
        let mut frame_sizes = Vec::with_capacity(frames.len());
        for (_, e, total) in frames {
            self.entries_bytes += total as u64;
            self.entries_count += 1;
            entries.push(e);
            frame_sizes.push(total as u64);
        }
        let good_size = ENTRY_OFFSET + self.entries_bytes;
        Ok(Opened { header: Some(header), entries, frame_sizes, good_size, file_size })
    }

    /// Write a header into the other slot (making it current), sync, then drop all entries.
    pub fn flush_header(&mut self, body: &[u8]) -> Result<()> {
        if body.len() + 8 > PAGE as usize {
            return Err(err::io("oplog header does not fit its slot"));
        }
        let i = if self.bits[0] == self.bits[1] { 1 } else { 0 };
        let bit = self.bits[i] ^ 1;
        let f = frame(body, bit, false);
        self.file.write_at(i as u64 * PAGE, &f)?;
        self.file.sync()?;
        self.slot_crcs[i] = frame_crc(&f, 0);
        // Entries are tagged with the old slot index, so a crash before this truncate leaves them
        // ignored on the next open.
        self.file.set_len_in_background(ENTRY_OFFSET)?;
        self.bits[i] = bit;
        self.entries_bytes = 0;
        self.entries_count = 0;
        Ok(())
    }

    /// Forget the last entry read at open (its frame is cut off by the open's final truncation).
    pub fn forget_last_entry(&mut self, frame_size: u64) {
        self.entries_bytes -= frame_size;
        self.entries_count -= 1;
    }

    /// Size an entry frame will take.
    pub fn frame_size(body: &[u8]) -> u64 {
        body.len() as u64 + 8
    }

    /// Append entries as one atomic batch (every frame but the last marked partial, so a torn
    /// batch is dropped whole at open), with one write and one sync.
    pub fn append_atomic(&mut self, bodies: &[Vec<u8>]) -> Result<()> {
        if bodies.iter().any(|b| b.len() >= (1 << 30)) {
            return Err(err::bad_argument("oplog entry too large"));
        }
        let bit = self.current_bit();
        let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 8).sum());
        for (i, b) in bodies.iter().enumerate() {
            out.extend_from_slice(&frame(b, bit, i + 1 < bodies.len()));
        }
        if out.is_empty() {
            return Ok(());
        }
        self.file.write_at(ENTRY_OFFSET + self.entries_bytes, &out)?;
        self.file.sync()?;
        self.entries_bytes += out.len() as u64;
        self.entries_count += bodies.len() as u64;
        Ok(())
    }

    /// Append one entry frame and make it durable.
    pub fn append(&mut self, body: &[u8]) -> Result<()> {
        if body.len() >= (1 << 30) {
            return Err(err::bad_argument("oplog entry too large"));
        }
        let f = frame(body, self.current_bit(), false);
        self.file.write_at(ENTRY_OFFSET + self.entries_bytes, &f)?;
        self.file.sync()?;
        self.entries_bytes += f.len() as u64;
        self.entries_count += 1;
        Ok(())
    }

    /// Write one entry frame, not yet durable: the caller syncs the file (with the data it accounts for).
    /// Counted only once written; a sync that then fails must poison the core (the frame may be on disk).
    /// Returns where the frame went and its bytes (for the journal, which makes it durable instead).
    pub fn write_entry(&mut self, body: &[u8]) -> Result<(u64, Vec<u8>)> {
        if body.len() >= (1 << 30) {
            return Err(err::bad_argument("oplog entry too large"));
        }
        let f = frame(body, self.current_bit(), false);
        let at = ENTRY_OFFSET + self.entries_bytes;
        self.file.write_at(at, &f)?;
        self.entries_bytes += f.len() as u64;
        self.entries_count += 1;
        Ok((at, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_crc() {
        let f = frame(b"hello", 1, false);
        let r = read_frame(&f, 0).unwrap();
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header_bit, 1);
        assert!(!r.partial);
        let mut bad = f.clone();
        bad[9] ^= 1;
        assert!(read_frame(&bad, 0).is_none());
        assert!(read_frame(&f[..f.len() - 1], 0).is_none());
        assert!(read_frame(&f, f.len() - 3).is_none());
    }

    #[test]
    fn entry_round_trip() {
        let e = Entry {
            user_data: Some(("k".into(), Some(b"v".to_vec()))),
            tree_nodes: Some(vec![Node { index: 300, size: 70000, hash: [7; 32] }]),
            tree_upgrade: Some(TreeUpgrade { fork: 0, ancestors: 1, length: 2, signature: Some(vec![1; 64]) }),
            bitfield: Some(BitfieldUpdate { drop: true, start: 5, length: 1 }),
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert!(Entry::decode(&e.encode()[..10]).is_err());
    }
}
