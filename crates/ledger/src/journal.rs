//! The journal: one extra file per core (`journal`, next to the oplog) that makes an append durable with one
//! `fdatasync` instead of two. On this kind of disk two files synced at once still cost two journal commits of the
//! filesystem; one file synced in place costs one.
//!
//! An append writes its data and its oplog frame to their files as before, but does not sync them: it writes the
//! same bytes as one record here and syncs only this file. The data and oplog files become durable later, before
//! anything depends on them alone (a header flush, a truncation). Open redoes the records, so a crash loses nothing
//! that was acknowledged.
//!
//! Layout: a header at 0 (`LVMSJRN1`, epoch u64, slot u32, crc32 of those), records from 4096, each
//! `crc32 ‖ len u32 ‖ body`, the crc over (epoch ‖ len ‖ body) so records of an earlier epoch, left in place when
//! the file is reused, never read as current. A body is a list of writes: target u8, offset u64, len u32, bytes.
//!
//! When records stop counting:
//! - `slot` names the oplog header slot the records extend (its frame's crc). A header flush makes the data durable
//!   first and then writes a new slot: the records then describe entries the flush already holds, and open skips
//!   them. The next record starts a new epoch.
//! - Before a write the journal does not cover reuses offsets its records name (a truncation), the data and oplog
//!   are synced and the epoch is bumped durably (`retire`), so a redo never overwrites newer bytes.
//!
//! Files npm hypercore@10 reads are unchanged; it does not know this file. After a crash, a directory must be
//! opened by libvms first (which redoes the journal) for acknowledged appends not yet in the oplog to show.

use std::path::{Path, PathBuf};

use libvms_errors::{err, Result};

use crate::storage::StoreFile;

const MAGIC: &[u8; 8] = b"LVMSJRN1";
const HEADER_LEN: usize = 24;
/// Records start on their own page, so a header write never shares a sector with one.
const RECORDS_AT: u64 = 4096;
/// The file grows in steps written with zeros, so most records overwrite bytes in place (no size change to sync).
const GROW: u64 = 64 * 1024;
/// Appends with more data than this skip the journal: writing it twice would cost more than a second sync.
pub(crate) const MAX_DATA: usize = 64 * 1024;
/// A journal this long asks for a header flush, which lets it start over.
pub(crate) const FLUSH_AT: u64 = 1024 * 1024;

/// The file a write goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Data = 1,
    Oplog = 2,
}

/// One positional write of a record.
pub(crate) struct Write<'a> {
    pub target: Target,
    pub offset: u64,
    pub bytes: &'a [u8],
}

pub(crate) struct Journal {
    dir: PathBuf,
    file: Option<StoreFile>,
    epoch: u64,
    slot: u32,
    /// Where the next record goes.
    end: u64,
    /// Bytes of the file already written (records below this overwrite in place).
    allocated: u64,
    /// Records of the current epoch.
    records: u64,
    /// The epoch or slot changed in memory: the next commit writes the header with its record.
    header_due: bool,
}

/// A record read back at open.
pub(crate) struct Record {
    pub writes: Vec<(Target, u64, Vec<u8>)>,
}

impl Journal {
    /// The journal of the core in `dir`, with the records of its current epoch (none if it has no file yet).
    pub fn open(dir: &Path) -> Result<(Journal, Vec<Record>)> {
        let mut j = Journal { dir: dir.to_path_buf(), file: None, epoch: 0, slot: 0, end: RECORDS_AT, allocated: 0, records: 0, header_due: true };
        let file = StoreFile::disk(dir, "journal")?;
        if !file.exists() {
            return Ok((j, vec![]));
        }
        let buf = file.read_all()?;
        j.allocated = buf.len() as u64;
        j.file = Some(file);
        let Some((epoch, slot)) = read_header(&buf) else {
            // A torn header: no record after it was acknowledged. Records of an unknown earlier epoch may lie in
            // place, so the next epoch is drawn at random rather than counted.
            j.epoch = random_epoch();
            return Ok((j, vec![]));
        };
        j.epoch = epoch;
        j.slot = slot;
        j.header_due = false;
        let mut records = Vec::new();
        let mut pos = RECORDS_AT as usize;
        while let Some((record, next)) = read_record(&buf, pos, epoch) {
            records.push(record);
            pos = next;
        }
        j.end = pos as u64;
        j.records = records.len() as u64;
        Ok((j, records))
    }

    /// The oplog slot this journal's records extend.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub fn has_records(&self) -> bool {
        self.records > 0
    }

    pub fn len(&self) -> u64 {
        self.end
    }

    /// Write one record of `writes` (extending oplog slot `slot`) and make it durable: one write, one `fdatasync`
    /// (plus the header when the epoch starts, in the same sync). On failure nothing is known about the record;
    /// the caller must stop appending.
    pub fn commit(&mut self, writes: &[Write<'_>], slot: u32) -> Result<()> {
        if self.slot != slot || self.header_due {
            // The records so far extend an older slot (a flush holds them now): start over.
            if self.records > 0 || self.file.is_some() {
                self.epoch += 1;
            }
            self.slot = slot;
            self.end = RECORDS_AT;
            self.records = 0;
            self.header_due = true;
        }
        let created = self.file.is_none();
        if created {
            self.file = Some(StoreFile::disk(&self.dir, "journal")?);
        }
        let record = encode_record(writes, self.epoch)?;
        let end = self.end + record.len() as u64;
        let file = self.file.as_mut().expect("opened above");
        if self.header_due {
            file.write_at(0, &encode_header(self.epoch, self.slot))?;
        }
        let mut out = record;
        if end > self.allocated {
            // Zeros up to the next step, written now, so the following records land in place.
            let grown = end.div_ceil(GROW) * GROW;
            out.resize(out.len() + (grown - end) as usize, 0);
            self.allocated = grown;
        }
        file.write_at(self.end, &out)?;
        file.sync()?;
        if created {
            // The file's name must outlive a crash too.
            crate::core::sync_dir(&self.dir)?;
        }
        self.header_due = false;
        self.end = end;
        self.records += 1;
        Ok(())
    }

    /// Make the current records void, durably: a later write will reuse offsets they name. The caller has made
    /// what they describe durable in the data and oplog files first.
    pub fn retire(&mut self) -> Result<()> {
        if self.records == 0 {
            return Ok(());
        }
        self.epoch += 1;
        let file = self.file.as_mut().ok_or_else(|| err::internal("journal records without a file"))?;
        file.write_at(0, &encode_header(self.epoch, self.slot))?;
        file.sync()?;
        self.end = RECORDS_AT;
        self.records = 0;
        Ok(())
    }
}

fn random_epoch() -> u64 {
    let mut b = [0u8; 8];
    // Only a system without any entropy source fails; a counted epoch is then the fallback.
    let _ = getrandom::getrandom(&mut b);
    u64::from_le_bytes(b)
}

fn encode_header(epoch: u64, slot: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    h[16..20].copy_from_slice(&slot.to_le_bytes());
    let crc = crc32fast::hash(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn read_header(buf: &[u8]) -> Option<(u64, u32)> {
    let h = buf.get(..HEADER_LEN)?;
    if &h[..8] != MAGIC || crc32fast::hash(&h[..20]).to_le_bytes() != h[20..24] {
        return None;
    }
    Some((u64::from_le_bytes(h[8..16].try_into().ok()?), u32::from_le_bytes(h[16..20].try_into().ok()?)))
}

fn record_crc(epoch: u64, len: u32, body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&epoch.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(body);
    h.finalize()
}

fn encode_record(writes: &[Write<'_>], epoch: u64) -> Result<Vec<u8>> {
    let body_len: usize = writes.iter().map(|w| 13 + w.bytes.len()).sum();
    let len = u32::try_from(body_len).map_err(|_| err::bad_argument("journal record too large"))?;
    let mut out = Vec::with_capacity(8 + body_len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    for w in writes {
        out.push(w.target as u8);
        out.extend_from_slice(&w.offset.to_le_bytes());
        out.extend_from_slice(&(w.bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(w.bytes);
    }
    let crc = record_crc(epoch, len, &out[8..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The record at `pos` and where the next one starts, or None where the current epoch's records end (zeros, a torn
/// record, or one of an earlier epoch).
fn read_record(buf: &[u8], pos: usize, epoch: u64) -> Option<(Record, usize)> {
    let head = buf.get(pos..pos.checked_add(8)?)?;
    let crc = u32::from_le_bytes(head[..4].try_into().ok()?);
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let body = buf.get(pos + 8..(pos + 8).checked_add(len as usize)?)?;
    if len == 0 || record_crc(epoch, len, body) != crc {
        return None;
    }
    let mut writes = Vec::new();
    let mut p = 0usize;
    while p < body.len() {
        let target = match *body.get(p)? {
            1 => Target::Data,
            2 => Target::Oplog,
            _ => return None,
        };
        let offset = u64::from_le_bytes(body.get(p + 1..p + 9)?.try_into().ok()?);
        let n = u32::from_le_bytes(body.get(p + 9..p + 13)?.try_into().ok()?) as usize;
        let bytes = body.get(p + 13..(p + 13).checked_add(n)?)?.to_vec();
        writes.push((target, offset, bytes));
        p += 13 + n;
    }
    Some((Record { writes }, pos + 8 + len as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(target: Target, offset: u64, bytes: &[u8]) -> Write<'_> {
        Write { target, offset, bytes }
    }

    #[test]
    fn records_read_back_in_order_and_a_torn_one_ends_them() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, recs) = Journal::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        assert!(!dir.path().join("journal").exists(), "nothing is written before the first commit");
        j.commit(&[write(Target::Data, 0, b"abc"), write(Target::Oplog, 8192, b"frame")], 7).unwrap();
        j.commit(&[write(Target::Data, 3, b"de")], 7).unwrap();
        let end = j.len();
        let (_, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].writes, vec![(Target::Data, 0, b"abc".to_vec()), (Target::Oplog, 8192, b"frame".to_vec())]);
        assert_eq!(recs[1].writes, vec![(Target::Data, 3, b"de".to_vec())]);
        // A torn second record: only the first counts.
        let path = dir.path().join("journal");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[end as usize - 1] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (j2, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(j2.slot(), 7);
    }

    #[test]
    fn a_new_slot_or_a_retire_voids_the_records_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.commit(&[write(Target::Data, 0, b"one")], 1).unwrap();
        j.commit(&[write(Target::Data, 3, b"two")], 1).unwrap();
        // A flush wrote another slot: the next record starts a new epoch over the old ones.
        j.commit(&[write(Target::Data, 6, b"three")], 2).unwrap();
        let (mut j, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 1, "the old second record lies past the new first, but is of another epoch");
        assert_eq!(recs[0].writes[0].2, b"three");
        j.retire().unwrap();
        let (_, recs) = Journal::open(dir.path()).unwrap();
        assert!(recs.is_empty());
    }

    #[test]
    fn a_torn_header_reads_as_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        j.commit(&[write(Target::Data, 0, b"x")], 1).unwrap();
        let path = dir.path().join("journal");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (mut j, recs) = Journal::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        // It still takes new records.
        j.commit(&[write(Target::Data, 0, b"y")], 1).unwrap();
        let (_, recs) = Journal::open(dir.path()).unwrap();
        assert_eq!(recs.len(), 1);
    }
}
