//! Damage sweep: flip bytes all over each file of a core and cut each file short. Every case is
//! either refused at open (`STORAGE_CORRUPT`, nothing written), or found by `verify` at a named
//! block (`VERIFICATION_FAILED`), or provably harmless (the full log reads back and verifies).
//! The recoveries allowed: a cut or damaged last oplog entry drops that last batch, and the journal's records
//! (appends since the last header flush) are redone over whatever damage their bytes cover.
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use libvms_ledger::{Core, ErrorCode, Storage, LAZY_FLUSH_INTERVAL};

const FILES: [&str; 5] = ["oplog", "tree", "bitfield", "data", "journal"];

fn block(i: u64) -> Vec<u8> {
    format!("entry {i} {}", "x".repeat((i % 13) as usize)).into_bytes()
}

fn read_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    FILES.iter().map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap_or_default())).collect()
}

fn write_files(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (f, b) in files {
        std::fs::write(dir.join(f), b).unwrap();
    }
}

/// A core as a host leaves it: flushed history, then unflushed oplog entries. Returns the length
/// and the length before its last batch.
fn make(dir: &Path) -> (u64, u64) {
    // (A handle that only reads writes nothing at close: checked at the end.)
    let mut core = Core::create(Storage::Disk(dir.to_path_buf())).unwrap();
    core.set_flush_interval(LAZY_FLUSH_INTERVAL);
    let mut n = 0u64;
    let mut before_last = 0;
    for round in 0..2 {
        for b in 0..30u64 {
            let size = 1 + (b % 3);
            let blocks: Vec<Vec<u8>> = (n..n + size).map(block).collect();
            let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
            before_last = n;
            n = core.append_batch(&refs).unwrap();
        }
        if round == 0 {
            core.flush().unwrap();
        }
    }
    drop(core); // no close: the second round stays in oplog entries, as after a kill
    (n, before_last)
}

/// Where the last oplog entry frame starts (frames: u32 crc, u32 len<<2|flags, body).
fn last_frame_start(oplog: &[u8]) -> usize {
    let mut pos = 8192;
    let mut last = pos;
    while pos + 8 <= oplog.len() {
        last = pos;
        pos += 8 + (u32::from_le_bytes(oplog[pos + 4..pos + 8].try_into().unwrap()) >> 2) as usize;
    }
    last
}

enum Outcome {
    Refused,
    FoundByVerify,
    Harmless,
    LastBatchDropped,
}

fn judge(dir: &Path, what: &str, full: u64, before_last: u64, damaged: &BTreeMap<String, Vec<u8>>, any_prefix: bool) -> Outcome {
    match Core::open(dir) {
        Err(e) => {
            assert_eq!(e.code, ErrorCode::StorageCorrupt, "{what}: {e}");
            assert!(read_files(dir) == *damaged, "{what}: a refused directory was written to");
            Outcome::Refused
        }
        Ok(mut core) => match core.verify() {
            Err(e) => {
                assert_eq!(e.code, ErrorCode::VerificationFailed, "{what}: {e}");
                assert!(e.index.is_some(), "{what}: verify names the block");
                Outcome::FoundByVerify
            }
            Ok(()) => {
                let len = core.length();
                for i in 0..len {
                    assert_eq!(core.get(i).unwrap(), block(i), "{what}: block {i}");
                }
                if len == full {
                    Outcome::Harmless
                } else {
                    if !any_prefix {
                        assert_eq!(len, before_last, "{what}: only the last batch may be dropped");
                    }
                    Outcome::LastBatchDropped
                }
            }
        },
    }
}

#[test]
fn every_flip_and_cut_is_refused_found_or_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let (full, before_last) = make(&dir);
    let pristine = read_files(&dir);
    let last_data_start = pristine["data"].len() - (before_last..full).map(|i| block(i).len()).sum::<usize>();
    let mut tally: BTreeMap<String, [u32; 4]> = BTreeMap::new();
    let mut count = |file: &str, o: Outcome| {
        let t = tally.entry(file.to_string()).or_default();
        t[match o {
            Outcome::Refused => 0,
            Outcome::FoundByVerify => 1,
            Outcome::Harmless => 2,
            Outcome::LastBatchDropped => 3,
        }] += 1;
    };
    for file in FILES {
        let bytes = &pristine[file];
        // Flips: every byte of small regions, a stride elsewhere (the slots' unused padding and
        // the bitfield's zero page tail are sampled too).
        let stride = if bytes.len() > 2048 { 97 } else { 7 };
        // The journal's tail is zeros written ahead of its records: flips there are skipped.
        let end = match file {
            "journal" => bytes.iter().rposition(|&b| b != 0).map_or(0, |p| (p + 64).min(bytes.len())),
            _ => bytes.len(),
        };
        let mut at = 0;
        while at < end {
            let mut damaged = pristine.clone();
            damaged.get_mut(file).unwrap()[at] ^= 0x10;
            write_files(&dir, &damaged);
            let o = judge(&dir, &format!("{file} flip at {at}"), full, before_last, &damaged, false);
            if matches!(o, Outcome::LastBatchDropped) {
                let torn = (file == "oplog" && at >= last_frame_start(bytes)) || (file == "data" && at >= last_data_start);
                assert!(torn, "{file} flip at {at} of {} dropped a batch", bytes.len());
            }
            count(file, o);
            at += if (file == "oplog" && (at < 300 || (4096..4400).contains(&at))) || at >= bytes.len().saturating_sub(60) { 2 } else { stride };
        }
        // Cuts.
        let mut cuts: Vec<usize> = vec![0, 1, bytes.len() / 3, bytes.len() / 2, bytes.len().saturating_sub(1), bytes.len().saturating_sub(40)];
        if file == "oplog" {
            cuts.extend([4096, 8192, 8200]);
        }
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
            let mut damaged = pristine.clone();
            damaged.get_mut(file).unwrap().truncate(cut);
            write_files(&dir, &damaged);
            // An oplog cut exactly at an entry boundary looks like a crash before those entries were
            // written (the data they describe is then an unacknowledged tail): see the README.
            let o = judge(&dir, &format!("{file} cut to {cut}"), full, before_last, &damaged, file == "oplog");
            if matches!(o, Outcome::Harmless) {
                // Unnoticed only where nothing was lost: zeros, the journal's own bytes (the files hold what it
                // does), or bytes the journal's redo wrote back.
                let repaired = read_files(&dir)[file] == pristine[file];
                assert!(bytes[cut..].iter().all(|&b| b == 0) || matches!(file, "oplog" | "journal") || repaired, "{file} cut to {cut} went unnoticed");
            }
            if file != "oplog" && !(file == "data" && cut >= last_data_start) {
                assert!(!matches!(o, Outcome::LastBatchDropped), "{file} cut to {cut} dropped a batch");
            }
            count(file, o);
        }
    }
    write_files(&dir, &pristine);
    eprintln!("refused / found by verify / harmless / last batch dropped: {tally:?}");
    // The bulk of the damage is refused at open or named by verify.
    // (The last batch's data, synced together with its oplog entry, may be torn: core/torn_tail.rs.)
    for file in ["tree", "bitfield"] {
        let t = tally[file];
        assert_eq!(t[3], 0, "{file}");
    }
}

#[test]
fn a_current_header_slot_that_is_damaged_is_refused_not_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    make(&dir);
    // A flush: both slots hold headers, the current one the full length, the oplog no entries.
    let mut core = Core::open(&dir).unwrap();
    let full = core.length();
    core.flush().unwrap();
    core.close().unwrap();
    // While the journal still holds the appends since the slot before, they are redone over that slot: nothing
    // is rolled back.
    let op = std::fs::read(dir.join("oplog")).unwrap();
    let bit = |slot: usize| op[slot * 4096 + 4] & 1;
    let current = ((bit(0) + bit(1)) & 1) as usize;
    let mut damaged = op.clone();
    damaged[current * 4096 + 20] ^= 1;
    std::fs::write(dir.join("oplog"), &damaged).unwrap();
    let mut core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), full);
    core.verify().unwrap();
    drop(core);
    std::fs::write(dir.join("oplog"), &op).unwrap();
    // Without the journal's records, the damage is refused.
    std::fs::remove_file(dir.join("journal")).unwrap();
    let op = std::fs::read(dir.join("oplog")).unwrap();
    assert_eq!(op.len(), 8192);
    let bit = |slot: usize| op[slot * 4096 + 4] & 1;
    let current = ((bit(0) + bit(1)) & 1) as usize;
    let mut damaged = op.clone();
    damaged[current * 4096 + 20] ^= 1;
    std::fs::write(dir.join("oplog"), &damaged).unwrap();
    let before = read_files(&dir);
    let e = Core::open(&dir).err().expect("refused");
    assert_eq!(e.code, ErrorCode::StorageCorrupt, "{e}");
    assert!(e.message.contains("past the signed length"), "{e}");
    assert_eq!(read_files(&dir), before);
    // The fallback slot damaged instead: nothing is lost, and the next flush rewrites it.
    let mut damaged = op.clone();
    damaged[(1 - current) * 4096 + 20] ^= 1;
    std::fs::write(dir.join("oplog"), &damaged).unwrap();
    let mut core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), full);
    core.verify().unwrap();
    core.close().unwrap();
    assert_eq!(std::fs::read(dir.join("oplog")).unwrap(), damaged, "a reading handle writes nothing at close");
}

/// An oplog cut exactly at an entry boundary leaves no evidence in the core's files: the entries since the last
/// flush exist only in the oplog, and the data past the replayed length is what one in-flight batch would leave.
/// So each such cut opens at exactly that boundary (never earlier) and reads back verified, and a reading handle
/// writes nothing; the README says what proves the loss instead (a held signed head: crates/auth/tests/loss.rs).
/// A cut that reaches into the header slots is refused.
#[test]
fn an_oplog_cut_at_an_entry_boundary_opens_at_that_boundary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let (full, _) = make(&dir);
    // While the journal holds the entries since the last flush, every such cut is redone whole.
    let with_journal = read_files(&dir);
    for cut in [8192, 8192 + 1, with_journal["oplog"].len() / 2] {
        let mut damaged = with_journal.clone();
        damaged.get_mut("oplog").unwrap().truncate(cut);
        write_files(&dir, &damaged);
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.length(), full, "cut to {cut}, journal kept");
        core.verify().unwrap();
        drop(core);
        assert!(read_files(&dir) == with_journal, "cut to {cut}: the redo restores the oplog");
    }
    // Without them (lost with the journal), the cut leaves no evidence.
    std::fs::remove_file(dir.join("journal")).unwrap();
    let pristine = read_files(&dir);
    let oplog = &pristine["oplog"];
    // Frame starts after the header slots, and the length each prefix of entries replays to.
    let mut starts = Vec::new();
    let mut pos = 8192;
    while pos + 8 <= oplog.len() {
        starts.push(pos);
        pos += 8 + (u32::from_le_bytes(oplog[pos + 4..pos + 8].try_into().unwrap()) >> 2) as usize;
    }
    assert!(starts.len() > 3, "the core holds unflushed entries");
    let flushed = {
        let mut d = pristine.clone();
        d.get_mut("oplog").unwrap().truncate(8192);
        write_files(&dir, &d);
        Core::open(&dir).unwrap().length()
    };
    let mut last = flushed;
    // The boundary after k entries, for k = 1..=n.
    let boundaries: Vec<usize> = starts.iter().skip(1).copied().chain([oplog.len()]).collect();
    for (i, &cut) in boundaries.iter().enumerate() {
        let k = i + 1;
        let mut damaged = pristine.clone();
        damaged.get_mut("oplog").unwrap().truncate(cut);
        write_files(&dir, &damaged);
        let mut core = Core::open(&dir).unwrap();
        let len = core.length();
        assert!(len > last && len <= full, "cut after {k} entries: length {len} (previous boundary {last})");
        core.verify().unwrap();
        assert!(core.byte_length() <= std::fs::metadata(dir.join("data")).unwrap().len());
        core.close().unwrap();
        assert!(read_files(&dir) == damaged, "a reading handle wrote to the directory");
        last = len;
        // One byte into the next frame: a torn frame followed by nothing, dropped as the unacknowledged tail.
        if cut < oplog.len() {
            let mut torn = pristine.clone();
            torn.get_mut("oplog").unwrap().truncate(cut + 1);
            write_files(&dir, &torn);
            assert_eq!(Core::open(&dir).unwrap().length(), len, "a torn frame after {k} entries");
        }
    }
    assert_eq!(last, full);
    write_files(&dir, &pristine);
}
